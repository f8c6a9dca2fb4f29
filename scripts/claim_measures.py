"""How each claim of scripts/claims.py is measured: one function per measurement, taking an
Evidence (the runs of one seed on one BLAS kernel, and the tour commands' outputs on them) and
returning plain numbers, tuples or dicts that the claims' tests read and the table prints.

Most read a tour command's printed output with scripts/tour_read.py, so a claim is about what a
reader sees when running the command; the rest compute from a run, a fresh model, or the
experiments' tables (scripts/lowrank_read.py).
"""

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lowrank_read  # noqa: E402
import tour  # noqa: E402
import tour_read as read  # noqa: E402

REPO_ROOT = tour.REPO_ROOT
# The sentences of scripts/make_pictures.py's phrases pictures, and which English word the tour
# says a cross-attention head reads while each French word is written.
PHRASES_READS = {
    "the cat sees the red car": {"voiture": "car", "rouge": "red"},  # le chat voit la voiture rouge
    "the dog does not eat": {"ne": "not", "pas": "not", "mange": "eat"},  # le chien ne mange pas
    "the child does not like the tree": {"l'": "the", "n'": "not"},  # l'enfant n'aime pas l'arbre
}
AGREEMENT = {"the girl has the small red cars": {"la": "girl", "les": "cars"}}  # la fille a les petites voitures rouges
ELISION = "the child does not like the tree"  # l'enfant n'aime pas l'arbre


# Measures. Each returns plain numbers (or tuples or dicts of them), so that a table can print them.

def copy_head_diagonal(ev):
    """The smallest weight, over the rows that write a symbol, that the head stop 1 explains puts
    on the source position it must copy next."""
    rows, _, P = read.explain_table(ev.output("explain-cross"), "6. P = softmax")
    n = len(tour.EXPLAIN_INPUT.split())
    return float(min(P[t, t] for t in range(min(n, len(rows)))))


def keys_and_values_of_the_ones(ev):
    """(cosine of the two source 1s' keys, cosine of their values) in the head of stop 1."""
    text = ev.output("explain-cross")
    return (round(read.cosine(*read.the_ones(text, "k = memory @")), 3),
            round(read.cosine(*read.the_ones(text, "v = memory @")), 3))


def both_ways(ev):
    """(the largest weight any encoder self-attention row puts on a later position, the largest
    any decoder self-attention row puts on a later position) on stop 1's input."""
    _, _, maps = tour.attention_maps(ev.runs["explain"], tour.EXPLAIN_INPUT)
    later = lambda W: float(np.triu(W, k=1).max())  # noqa: E731  W (L, H, R, C)
    return later(maps["encoder"]), later(maps["decoder"])


def mask_before_or_after(ev):
    """(the largest difference between masking the scores before the softmax and zeroing the
    future after it and renormalising; the mean row sum after zeroing without renormalising, and the
    share of those rows that sum to less than 1),
    over random score matrices."""
    from minitx.nn.attention import MASKED, softmax

    rng = np.random.default_rng(ev.seed)
    scores = 3 * rng.standard_normal((64, 4, 9, 9))  # (B, H, T, T)
    mask = np.tril(np.ones((9, 9), dtype=bool))  # (T, T): the causal mask
    before = softmax(np.where(mask, scores, MASKED))  # (B, H, T, T)
    zeroed = softmax(scores) * mask  # (B, H, T, T)
    after = zeroed / zeroed.sum(axis=-1, keepdims=True)
    sums = zeroed.sum(axis=-1)[..., :-1]  # (B, H, T - 1): every row but the last has a future
    return float(np.abs(before - after).max()), round(float(sums.mean()), 3), float((sums < 1).mean())


def masking_lab(ev):
    return read.lab_masking(ev.output("lab-masking"))


def peeking(ev):
    """The no-mask run's (weight on the next position, teacher-forced token accuracy)."""
    t = masking_lab(ev)
    return t["weight on the next position"][1], t["teacher-forced token accuracy"][1]


def decoding(ev):
    """(the no-mask run's exact match, the masked run's exact match, the masked run's weight on
    the next position), real greedy decoding."""
    t = masking_lab(ev)
    return t["exact match, real greedy decoding"][1], t["exact match, real greedy decoding"][0], t["weight on the next position"][0]


def losses(ev):
    """Teacher-forced loss of (the masked run, the no-mask run)."""
    return masking_lab(ev)["teacher-forced loss"]


def after_softmax(ev):
    """(the sum of the copy run's row zeroed after the softmax, the largest difference between
    it renormalised and the model's row)."""
    t = masking_lab(ev)
    return t["zeroed sum"], t["difference"]


def lengths_lab(ev):
    return read.lab_lengths(ev.output("lab-lengths"))


def lengths_seen(ev):
    """(the smallest exact match over lengths 2 to 10, the training set's count of one-symbol sequences)."""
    table = lengths_lab(ev)
    return min(table[n][2] for n in range(2, 11)), table[1][0]


def lengths_beyond(ev):
    """(exact match at length 11, the largest exact match at lengths 12 to 16, the smallest at 2 to 10)."""
    table = lengths_lab(ev)
    return table[11][2], max(table[n][2] for n in range(12, 17)), min(table[n][2] for n in range(2, 11))


def lengths_first_mistakes(ev):
    """The share of the first mistakes at lengths 11 to 16 that fall at output position 10 or
    later (positions training never asked for a symbol), and the share at 8 or 9."""
    table = lengths_lab(ev)
    counts = [c for n in range(11, 17) for c in table[n][3].items()]
    total = sum(c for _, c in counts)
    late = sum(c for p, c in counts if p >= 10)
    middle = sum(c for p, c in counts if p in (8, 9))
    return round(late / total, 3), round(middle / total, 3)


def aligned_rows(ev):
    """(rows of ALIGNMENT whose largest weight, in the head stop 6 explains, is on the English
    word they translate; rows of ALIGNMENT in the output)."""
    found = read.aligned(ev.output("explain-numbers"), tour.ALIGNMENT)
    return sum(hit for _, _, hit in found), len(found)


def cross_ablation(ev):
    """(valid exact match, the same with the last cross-attention switched off)."""
    return (read.eval_metrics(ev.output("eval-numbers"))["exact_match"],
            read.eval_metrics(ev.output("eval-ablate-cross"))["exact_match"])


def no_cross_same(ev):
    """Whether the two inputs translate to the same words with every cross-attention off."""
    a = ev.output("translate-no-cross").strip()
    b = ev.output("translate-no-cross-other").strip()
    return a == b


def heads_on_mille(ev):
    """The source words the heads of the last cross-attention read most while writing `mille`."""
    src, out, maps = tour.attention_maps(ev.runs["numbers"], tour.NUMBERS_INPUT)
    if "mille" not in out:
        return ()
    P = maps["cross"][-1][:, out.index("mille")]  # (H, S)
    return tuple(src[int(j)] for j in P.argmax(axis=-1))


def ablation(ev):
    return read.ablate_table(ev.output("ablate-numbers"))


def single_heads(ev):
    """(single heads whose removal costs at most 0.005 exact match, of how many; the largest
    cost of one head)."""
    costs = list(read.head_costs(ev.output("ablate-numbers")).values())
    return sum(c <= 0.005 for c in costs), len(costs), round(max(costs), 3)


def whole_attentions(ev):
    """({attention: cost in exact match with all its heads off}, exact match with every
    cross-attention off)."""
    costs = {name: round(cost, 3) for name, cost in read.attention_costs(ev.output("ablate-numbers")).items()}
    return costs, ablation(ev)["every cross-attention, all layers"][0]


def pair_costs(ev):
    """(the two costliest heads of the decoder's first self-attention: their costs alone added up,
    their cost together), in exact match."""
    alone = {name: -change for name, (_, change, _) in ablation(ev).items()}
    ablated = read.eval_metrics(ev.output("eval-ablate-heads"))
    together = read.eval_metrics(ev.output("eval-numbers"))["exact_match"] - ablated["exact_match"]
    return round(sum(alone[n] for n in ablated["ablated"].split(", ")), 3), round(together, 3)


def params_for_any_heads(ev):
    """The tour_numbers model's parameter count with H = 1, 2, 4 and 8 heads."""
    from dataclasses import replace

    from minitx.memory import count_params
    from minitx.config import load_config, resolve_config_path

    m = load_config(resolve_config_path("tour_numbers"), check_files=False).model
    return tuple(count_params(replace(m, n_heads=H), 33, 31) for H in (1, 2, 4, 8))


def head_maps_rank(ev):
    """(the largest s_{K+1} / s_1 over every head's W_V W_O and W_Q W_K^T map, K) of a fresh
    model with the seed's initial weights: a head's maps pass through K numbers. The maps are the
    ones `minitx lowrank --heads` takes apart (minitx.tools.lowrank.head_maps)."""
    from minitx.model import Transformer
    from minitx.config import ModelConfig
    from minitx.tools.lowrank import head_maps

    cfg = ModelConfig(d_model=32, n_heads=4, d_ff=64, n_enc_layers=1, n_dec_layers=1)
    model = Transformer(cfg, 12, 12, 0, np.random.default_rng(ev.seed))
    K = cfg.d_model // cfg.n_heads
    ratios = []
    for _, _, W_VO, W_QK in head_maps(model):
        for M in (W_VO, W_QK):
            s = np.linalg.svd(M, compute_uv=False)
            ratios.append(s[K] / s[0])
    return max(ratios), K


def head_maps_rank_trained(ev):
    return read.lowrank_heads_summary(ev.output("lowrank-heads-numbers"))


def scaling_untrained(ev):
    """lab_scaling.py's statistics of untrained heads, drawn with 8 seeds of this seed's own."""
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    import lab_scaling

    if "scaling" not in ev.cache:
        ev.cache["scaling"] = lab_scaling.untrained_table(range(8 * ev.seed, 8 * ev.seed + 8))
    return ev.cache["scaling"]


def scaled_unit(ev):
    """(smallest, largest) std of the scaled scores over K = 8, 32, 128."""
    table = scaling_untrained(ev)
    stds = [table[K, True]["score std"] for K in (8, 32, 128)]
    return round(min(stds), 3), round(max(stds), 3)


def unscaled_spread(ev):
    """At K = 128 without the factor: (score std / sqrt(K), share of rows above 0.99, softmax
    grad with the factor / without)."""
    table = scaling_untrained(ev)
    off, on = table[128, False], table[128, True]
    return round(off["score std"] / math.sqrt(128), 3), round(off["rows > 0.99"], 3), round(on["softmax grad"] / off["softmax grad"], 1)


def scaling_trained(ev):
    return read.lab_scaling_trained(ev.output("lab-scaling"))


def trained_start_unit(ev):
    """(smallest, largest) std of the scores at the run's start, over its attentions."""
    table, _ = scaling_trained(ev)
    stds = [row["std"][0] for row in table.values()]
    return min(stds), max(stds)


def trained_grew(ev):
    """(attentions whose scores spread more after training than at the start, of how many; the
    largest trained std)."""
    table, _ = scaling_trained(ev)
    return sum(row["std"][1] > row["std"][0] for row in table.values()), len(table), max(row["std"][1] for row in table.values())


def trained_no_factor(ev):
    """(exact match trained, with no factor)."""
    return scaling_trained(ev)[1]


def embeddings_moved(ev):
    """(mean move / mean row length of the source embeddings; the chance level)."""
    length, moved, chance, _ = read.embeddings_change(ev.output("embeddings-numbers-change"))
    return round(moved / length, 3), chance


# Pairs of number words whose French names are built alike (soixante-dix and quatre-vingt-dix,
# douze and treize, dix-sept and dix-huit, ...). A pair's order does not matter.
ALIKE = [frozenset(p) for p in [
    ("seventy", "ninety"), ("twelve", "thirteen"), ("thirteen", "fourteen"), ("fourteen", "fifteen"),
    ("fifteen", "sixteen"), ("eleven", "twelve"), ("seventeen", "eighteen"), ("eighteen", "nineteen"),
    ("seventeen", "nineteen"), ("ten", "seventeen"), ("ten", "eighteen"), ("ten", "nineteen"),
    ("sixty", "seventy"), ("eighty", "ninety"), ("seventy", "eighty"),
]]


def embeddings_pairs(ev):
    """The five pairs of source words whose changes W - W_0 are most alike, with how many of them
    are ALIKE."""
    top = [pair for pair, _ in read.closest_pairs(ev.output("embeddings-numbers-change"))]
    return tuple("-".join(sorted(p)) for p in top), sum(p in ALIKE for p in top)


def context_fresh(ev):
    """(cosine at the embedding, cosine after the first encoder layer) of one token's vectors in
    two inputs that put it at the same position, in a fresh model with this seed's weights."""
    from minitx.config import ModelConfig
    from minitx.model import Transformer

    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    import lab_context

    model = Transformer(ModelConfig(d_model=16, n_heads=2, d_ff=32, n_enc_layers=1, n_dec_layers=1), 12, 12, 0,
                        np.random.default_rng(ev.seed))
    model.train(False)
    a = lab_context.encoder_steps(model, np.array([[5, 6, 7, 3]]))  # ids 5 6 7 and </s> (3)
    b = lab_context.encoder_steps(model, np.array([[5, 9, 3]]))
    return round(read.cosine(a[0][1][0], b[0][1][0]), 6), round(read.cosine(a[1][1][0], b[1][1][0]), 3)


def context_lab(ev):
    """lab_context.py's cosines for CONTEXT_WORD: {step: [A-B, A-C, B-C]}."""
    _, table, _ = read.lab_context(ev.output("lab-context"))
    return {step: tuple(c) for step, c in table.items()}


def linear_rules(ev):
    """The largest difference in lab_linear.py's two rules, and between the affine offset and -b."""
    text = ev.output("lab-linear")
    rules = [float(read.line_starting(text, rule).split("difference")[1]) for rule in ("(a + b) @ W", "(2.5 a) @ W")]
    offset = read.numbers_in(read.line_starting(text, "with the bias").split("=")[1])
    minus_b = read.numbers_in(read.line_starting(text, "and -b_Q").split("=")[1])
    return max(rules), float(np.abs(np.array(offset) - np.array(minus_b)).max())


def lowrank_lab(ev):
    """lab_lowrank.py on its small matrix: (largest |distance - sqrt(dropped s_i^2)| over k = 1, 2, 3,
    the largest entry of A - A_2, of A - A_1)."""
    text = tour.run_in_process(["scripts/lab_lowrank.py"])
    gaps, largest = [], {}
    for k in (1, 2, 3):
        line = read.line_starting(text, f"distance |A - A_{k}|")
        numbers = [float(x) for x in line.replace(";", " ").split() if read.is_number(x)]
        gaps.append(abs(numbers[0] - numbers[-2]))
        largest[k] = numbers[-1]
    return max(gaps), largest[2], largest[1]


def heads_reading(ev, expected):
    """{"french->english": [the (layer, head) of every cross-attention head whose largest weight,
    while the French word is written, is on that English word]} over {sentence: {french: english}}."""
    found = {}
    for text, pairs in expected.items():
        src, out, maps = tour.attention_maps(ev.runs["phrases"], text)
        W = maps["cross"]  # (L, H, T, S)
        for french, english in pairs.items():
            t = out.index(french) if french in out else None
            found[f"{french}->{english}"] = [] if t is None else [
                (l, h) for l in range(W.shape[0]) for h in range(W.shape[1]) if src[int(W[l, h, t].argmax())] == english]
    return found


def phrases_reads(ev):
    return heads_reading(ev, PHRASES_READS)


def agreement_reads(ev):
    return heads_reading(ev, AGREEMENT)


def elision_reads(ev):
    """The heads of the first decoder layer's cross-attention whose largest weight, while each l'
    is written, is on the noun that follows it (child for l'enfant, tree for l'arbre)."""
    src, out, maps = tour.attention_maps(ev.runs["phrases"], ELISION)
    W = maps["cross"]  # (L, H, T, S)
    elided = [t for t, w in enumerate(out) if w == "l'"]
    if len(elided) != 2:
        return ()
    return tuple(h for h in range(W.shape[1])
                 if [src[int(W[0, h, t].argmax())] for t in elided] == ["child", "tree"])


def lora_results(ev):
    return lowrank_read.lora(ev.experiment("lora_experiment"))


def heads_results(ev):
    return lowrank_read.heads(ev.experiment("heads_experiment"))


def lora_learns(ev):
    """{variant: (seeds that reached validation exact match 1.0, of how many; mean test exact match)}."""
    return {label: (sum(s is not None for s in r["steps"]), len(r["steps"]), r["test"]) for label, r in lora_results(ev)["runs"].items()}


def rank_one(ev):
    """The rank-1 adapter's (share of the model's parameters in %, seeds reaching 1.0, mean test exact match)."""
    r = lora_results(ev)["runs"]["LoRA r=1"]
    return r["share"], sum(s is not None for s in r["steps"]), r["test"]


def update_ranks(ev):
    """(smallest, largest r90 over the full fine-tuning update's matrices; a random 64 x 64 matrix's r90)."""
    spectra = lora_results(ev)["spectra"]
    r90 = [v["r90"] for m, v in spectra.items() if not m.startswith("*")]
    random = [v["r90"] for m, v in spectra.items() if m.startswith("*") and v["shape"] == "64x64"]
    return min(r90), max(r90), random[0]


def truncations(ev):
    """Test exact match of the base plus the full update truncated to rank 1, 8 and not at all."""
    t = lora_results(ev)["truncation"]
    return t[1][0], t[8][0], t["full"][0]


def adapter_update_rank(ev):
    """The largest s_5 / s_1 over every update W_run - W_base of experiment 1's rank-4 run (seed 0)."""
    from minitx.tools.lowrank import run_matrices, singular_values

    ev.experiment("lora_experiment")
    root = Path(ev.experiments) / "lora_experiment"
    worst = 0.0
    for dW in run_matrices(root / "r4-seed0", root / "copy").values():
        s = singular_values(dW)
        if s[0] > 0:
            worst = max(worst, s[4] / s[0])
    return worst


def base_weights_rank(ev):
    """(smallest, largest r90 over the copy base's 64 x 64 attention weights; a random Gaussian
    64 x 64 matrix's r90)."""
    from minitx.tools.lowrank import effective_rank, run_matrices, singular_values

    ev.experiment("lora_experiment")
    weights = run_matrices(Path(ev.experiments) / "lora_experiment" / "copy")
    r90 = [effective_rank(singular_values(W), 0.9) for name, W in weights.items()
           if "attn" in name and name.endswith(".W") and W.shape == (64, 64)]
    random = effective_rank(singular_values(np.random.default_rng(ev.seed).standard_normal((64, 64))), 0.9)
    return min(r90), max(r90), random


def mean_steps(runs, labels):
    steps = [s for label in labels for s in runs[label]["steps"] if s is not None]
    return float(np.mean(steps))


def lora_speed(ev):
    """(mean steps to validation exact match 1.0 of the adapters of rank 4, 8 and 16; of full
    fine-tuning at lr 1e-3)."""
    runs = lora_results(ev)["runs"]
    return round(mean_steps(runs, ["LoRA r=4", "LoRA r=8", "LoRA r=16"]), 1), round(mean_steps(runs, ["full fine-tuning, lr 1e-3"]), 1)


def rank_one_against_qv(ev):
    """(mean steps of rank 1 on every matrix, of rank 4 on W_q and W_v only)."""
    runs = lora_results(ev)["runs"]
    return round(mean_steps(runs, ["LoRA r=1"]), 1), round(mean_steps(runs, ["LoRA r=4, W_q W_v only"]), 1)


def heads_learn(ev):
    """{H: (mean test exact match, parameters)}."""
    return {H: (h["test"], h["params"]) for H, h in heads_results(ev).items()}


def one_head_sharpness(ev):
    """(H = 1's sharpest head per layer, the smallest over H > 1 of the same)."""
    h = heads_results(ev)
    return tuple(h[1]["sharpness"]), min(min(v["sharpness"]) for H, v in h.items() if H > 1)


def one_head_early(ev):
    """The mean validation exact match at step 200 of each H."""
    return {H: round(float(np.mean(h["valid"][200])), 3) for H, h in heads_results(ev).items()}
