"""Every sentence of the tour that must hold on any machine, as data: what it says, how we
measure it, and the test the measurement must pass.

A learner's machine trains the tour's runs to other weights than ours: another BLAS kernel adds
the same numbers in another order, training takes another path, and the digits, and which head
does what, come out different. docs/tour.md therefore quotes digits only from the output printed
beside them (scripts/make_tour_outputs.py fills them in), and states everything else in words or
ranges that hold whatever the digits. Those statements are listed here, once each, and the page
marks each sentence with the claim it rests on (`<!-- claim NAME -->`); tests/test_claims.py
checks that every marker names a claim here and every claim is cited.

    python scripts/check_claims.py          # every claim, three seeds, each BLAS kernel the CPU offers

A claim needs one of:
    "nothing"   no trained run: plain functions, a fresh model, the labs' own random inputs
    "explain"   the explain run (a few seconds to train): these run in `make test` too
    "tour"      all four tour runs
    "phrases"   a run of configs/phrases.yaml, as scripts/make_pictures.py trains for its pictures
    "experiments"  scripts/lora_experiment.py and scripts/heads_experiment.py, run afresh (their own
                three seeds inside; half an hour): the claims of docs/lowrank.md
Each measure takes an Evidence: the runs of one seed on one BLAS kernel, and the tour commands'
outputs on them, each command run once when a claim first asks for it.
"""

import itertools
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import claim_measures as measure  # noqa: E402
import tour  # noqa: E402

REPO_ROOT = tour.REPO_ROOT


@dataclass
class Claim:
    name: str  # what the docs' marker says: <!-- claim NAME -->
    stop: int  # the stop of docs/tour.md that rests on it (0 for docs/lowrank.md)
    says: str  # the claim in words
    needs: str  # what it must have trained or run first: one of NEEDS
    measure: Callable  # Evidence -> the measured value(s)
    holds: Callable  # value -> bool


class Evidence:
    """The runs of one seed on one BLAS kernel, and the tour commands' outputs on them.

    runs: {name: run directory} (RUNS' names, plus "phrases" when trained); seed: the seed the
    runs were trained with, which the "nothing" claims use for their own random draws. Each
    command runs in this process, once, when first asked for, and its output is kept (and
    written to `outputs`/NAME.txt when given)."""

    def __init__(self, runs=None, seed=0, outputs=None, experiments=None):
        self.runs, self.seed, self.outputs, self.experiments = runs or {}, seed, outputs, experiments
        self.texts = {}
        self.cache = {}  # what more than one measure reads, measured once
        self._chosen = None

    def chosen(self):
        if self._chosen is None:
            self._chosen = tour.choices(self.runs)
        return self._chosen

    def output(self, name):
        if name not in self.texts:
            args = dict(tour.COMMANDS)[name]
            self.texts[name] = tour.run_in_process(tour.fill(args, self.runs, self.chosen()))
            if self.outputs:
                Path(self.outputs).mkdir(parents=True, exist_ok=True)
                (Path(self.outputs) / f"{name}.txt").write_text(self.texts[name])
        return self.texts[name]

    def experiment(self, name):
        """The tables scripts/NAME.py writes (lora_experiment, heads_experiment), from a run of it
        into `experiments`/NAME/, made when first asked for (minutes: it trains dozens of runs)."""
        if name not in self.texts:
            out = Path(self.experiments) / name
            table = out / f"{name}.md"
            if not table.exists():
                if out.exists():
                    shutil.rmtree(out)  # an earlier attempt that did not finish; ours to remove
                subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / f"{name}.py"), "--out", str(out)],
                               cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)
            self.texts[name] = table.read_text()
        return self.texts[name]


CLAIMS = [
    # Stop 1: the attention pattern.
    Claim("copy-head", 1, "one head of the explain run's cross-attention copies: every row puts more than half its weight "
          "on the source token it must write next", "explain", measure.copy_head_diagonal, lambda v: v > 0.5),
    Claim("keys-find-values-carry", 1, "in that head, the keys of the two source 1s point in different directions "
          "(cosine below 0), their values in nearly the same one (cosine above 0.6)", "explain",
          measure.keys_and_values_of_the_ones, lambda v: v[0] < 0 and v[1] > 0.6),
    # Stop 2: masking.
    Claim("both-ways", 2, "the encoder's self-attention reads later positions too (some row puts more than 0.1 on a later "
          "one), the decoder's never (exactly 0)", "explain", measure.both_ways, lambda v: v[0] > 0.1 and v[1] == 0.0),
    Claim("mask-before-softmax", 2, "masking the scores before the softmax gives the same weights as zeroing the future "
          "after it and dividing by the new sum (to 1e-12), and zeroing alone leaves rows that sum to less than 1",
          "nothing", measure.mask_before_or_after, lambda v: v[0] < 1e-12 and v[2] == 1.0),
    Claim("nocausal-peeks", 2, "trained without the mask, a decoder head puts more than a third of its weight on the next position, "
          "and the teacher-forced token accuracy is at least 0.99", "tour", measure.peeking, lambda v: v[0] > 1 / 3 and v[1] >= 0.99),
    Claim("nocausal-fails", 2, "... yet it decodes almost no sequence right (exact match at most 0.1), while the masked "
          "model decodes at least 0.98 and puts exactly 0 on the next position", "tour", measure.decoding,
          lambda v: v[0] <= 0.1 and v[1] >= 0.98 and v[2] == 0.0),
    Claim("nocausal-loss", 2, "both copy models' teacher-forced losses are below 0.01 nats per token", "tour", measure.losses,
          lambda v: max(v) < 0.01),
    Claim("after-softmax-leaks", 2, "on the copy model, the row zeroed after the softmax sums to less than 1, and "
          "renormalised it equals the model's row (to 1e-6)", "tour", measure.after_softmax,
          lambda v: v[0] < 1.0 and v[1] < 1e-6),
    # Stop 3: context size.
    Claim("lengths-seen", 3, "unseen sequences of the trained lengths 2 to 10 are copied with exact match at least 0.98; "
          "training never showed a one-symbol sequence", "tour", measure.lengths_seen, lambda v: v[0] >= 0.98 and v[1] == 0),
    Claim("lengths-beyond", 3, "length 11 scores less than every trained length, and lengths 12 to 16 at most 0.05",
          "tour", measure.lengths_beyond, lambda v: v[0] < v[2] and v[1] <= 0.05),
    Claim("lengths-where", 3, "beyond length 10, most first mistakes (more than half) fall at output position 10 or later",
          "tour", measure.lengths_first_mistakes, lambda v: v[0] > 0.5),
    # Stop 6: cross-attention.
    Claim("aligned-head", 6, "some cross-attention head of the numbers run reads, for at least 4 of the 6 French words "
          "that translate one English word, that English word most", "tour", measure.aligned_rows, lambda v: v[0] >= 4),
    Claim("cross-ablated", 6, "the numbers run scores at least 0.99 exact match, and without its last cross-attention "
          "at least 0.1 less", "tour", measure.cross_ablation, lambda v: v[0] >= 0.99 and v[0] - v[1] >= 0.1),
    Claim("no-cross-same", 6, "with every cross-attention off, two different inputs get the same translation", "tour",
          measure.no_cross_same, lambda v: v is True),
    Claim("phrases-reads", 6, "in the phrases run, some cross-attention head reads car while voiture is written, red for "
          "rouge, not for ne and for pas, eat for mange, the for l' and not for n'", "phrases", measure.phrases_reads,
          lambda v: all(v.values())),
    Claim("phrases-agreement", 6, "some head reads girl while la is written, and cars while les is", "phrases",
          measure.agreement_reads, lambda v: all(v.values())),
    Claim("elision-noun", 6, "some head of the first decoder layer reads, while writing each l', the noun that follows "
          "it (child, tree)", "phrases", measure.elision_reads, lambda v: len(v) >= 1),
    # Stop 7: multiple heads.
    Claim("heads-differ", 7, "while writing mille, the heads of the last cross-attention do not all read the same word",
          "tour", measure.heads_on_mille, lambda v: len(set(v)) >= 2),
    Claim("single-heads", 7, "switching off one head at a time, at least a quarter of the heads cost at most 0.005 exact "
          "match, and some head costs at least 0.1", "tour", measure.single_heads, lambda v: v[0] >= v[1] / 4 and v[2] >= 0.1),
    Claim("whole-attentions", 7, "every cross-attention off scores at most 0.05 exact match, and the decoder's first "
          "self-attention off costs more than either encoder self-attention off", "tour", measure.whole_attentions,
          lambda v: v[1] <= 0.05 and v[0]["decoder.layers.0.self_attn"]
          > max(c for a, c in v[0].items() if a.startswith("encoder"))),
    Claim("heads-interact", 7, "the two heads of the decoder's first self-attention that cost most alone cost, together, "
          "at least their two costs added up (to within a point of exact match)", "tour", measure.pair_costs,
          lambda v: v[1] >= v[0] - 0.01),
    Claim("params-any-heads", 7, "the tour_numbers model has the same number of parameters with 1, 2, 4 or 8 heads",
          "nothing", measure.params_for_any_heads, lambda v: len(set(v)) == 1),
    # Stop 9: low rank.
    Claim("head-rank-K", 9, "every head's W_V W_O and W_Q W_K^T map has rank at most K: s_{K+1} is below 1e-10 of s_1",
          "nothing", measure.head_maps_rank, lambda v: v[0] < 1e-10),
    Claim("head-rank-K-trained", 9, "in the trained numbers run, all 48 head maps have rank exactly K = 16", "tour",
          measure.head_maps_rank_trained, lambda v: v == (48, 16, 16)),
    Claim("lowrank-lab", 9, "the small matrix's rank-k rebuild is exactly sqrt(s_{k+1}^2 + ...) away (to the printed "
          "digits); two directions rebuild every mark to within 1, one direction does not", "nothing", measure.lowrank_lab,
          lambda v: v[0] < 0.0015 and v[1] < 1.0 and v[2] > 1.0),
    # Stop 10: sqrt(K), embeddings, context, linear maps.
    Claim("scaled-unit", 10, "with the factor, an untrained head's scores have a standard deviation between 0.8 and 1.2 "
          "for K = 8, 32 and 128", "nothing", measure.scaled_unit, lambda v: 0.8 <= v[0] and v[1] <= 1.2),
    Claim("unscaled-saturates", 10, "without it, at K = 128 the spread is sqrt(K) times larger (within 20%), at least a third "
          "of the rows put more than 0.99 on one key, and the softmax's gradient is at least 10 times smaller",
          "nothing", measure.unscaled_spread, lambda v: 0.8 <= v[0] <= 1.2 and v[1] >= 1 / 3 and v[2] >= 10),
    Claim("trained-start-unit", 10, "a trained run's attentions started with scores of standard deviation between 0.7 and 1.3",
          "tour", measure.trained_start_unit, lambda v: 0.7 <= v[0] and v[1] <= 1.3),
    Claim("trained-grew", 10, "training spread the scores of every attention further than at the start, some to more than "
          "twice the start", "tour", measure.trained_grew, lambda v: v[0] == v[1] and v[2] > 2.0),
    Claim("trained-no-factor", 10, "the trained model evaluated without the factor scores lower than with it", "tour",
          measure.trained_no_factor, lambda v: v[1] < v[0]),
    Claim("embeddings-moved", 10, "training moved the numbers run's source embeddings by less than half their length",
          "tour", measure.embeddings_moved, lambda v: v[0] < 0.5),
    Claim("embeddings-alike", 10, "among the five pairs of changes W - W_0 most alike, at least one is of number words "
          "whose French names are built alike", "tour", measure.embeddings_pairs, lambda v: v[1] >= 1),
    Claim("context-fresh", 4, "before the first layer a token's vector at one position is the same in any input "
          "(cosine 1); after one layer of a fresh model it is not", "nothing", measure.context_fresh,
          lambda v: v[0] == 1.0 and v[1] < 1.0),
    Claim("context-changes", 4, "in the numbers run, seventy's vectors in the three inputs are the same before the "
          "first layer (cosine 1.000) and differ after the encoder (every cosine below 0.999)", "tour", measure.context_lab,
          lambda t: min(t["embedding + position"]) == 1.0 and max(t["memory (after the final norm)"]) < 0.999),
    Claim("linear-rules", 1, "x @ W is linear to float64 rounding (1e-12), and with its bias the offset is exactly -b",
          "explain", measure.linear_rules, lambda v: v[0] < 1e-12 and v[1] < 0.0015),
]

CLAIMS += [
    # docs/lowrank.md, and the stops of the tour that point there.
    Claim("lora-all-learn", 0, "every fine-tuning variant, full or through adapters, reaches validation exact match 1.0 "
          "with every seed, and test exact match at least 0.99", "experiments", measure.lora_learns,
          lambda v: all(reached == n and test >= 0.99 for reached, n, test in v.values())),
    Claim("lora-rank-1", 9, "a rank-1 adapter, less than 3% of the model's parameters, learns reverse completely: "
          "validation exact match 1.0 with every seed, test at least 0.99", "experiments", measure.rank_one,
          lambda v: v[0] < 3 and v[1] == 3 and v[2] >= 0.99),
    Claim("lora-update-rank", 0, "full fine-tuning's update is not low rank: every matrix needs more than 4 directions for "
          "90% of its energy, and fewer than a random matrix needs", "experiments", measure.update_ranks,
          lambda v: v[0] > 4 and v[1] < v[2]),
    Claim("lora-update-rank-r", 0, "a rank-4 adapter's update has rank 4: its fifth singular value is below 1e-5 of "
          "its first in every matrix", "experiments", measure.adapter_update_rank, lambda v: v < 1e-5),
    Claim("lora-weights-full-rank", 0, "the trained copy model's 64 x 64 attention weights need between 25 and 40 "
          "singular values for 90% of their energy, as a random Gaussian matrix does (about 33)", "experiments",
          measure.base_weights_rank, lambda v: 25 <= v[0] and v[1] <= 40 and 25 <= v[2] <= 40),
    Claim("lora-speed", 0, "the adapters of rank 4 to 16 need within a factor of two as many steps as full "
          "fine-tuning at lr 1e-3", "experiments", measure.lora_speed, lambda v: 0.5 <= v[0] / v[1] <= 2),
    Claim("lora-rank-1-vs-qv", 0, "rank 1 on every matrix needs no more steps, on average, than rank 4 on W_q and W_v "
          "only", "experiments", measure.rank_one_against_qv, lambda v: v[0] <= v[1]),
    Claim("lora-truncation", 0, "the rank-1 truncation of that update fails the task (test exact match at most 0.05), while "
          "its rank-8 truncation keeps at least 0.95 and the whole update solves it", "experiments", measure.truncations,
          lambda v: v[0] <= 0.05 and v[1] >= 0.95 and v[2] >= 0.99),
    Claim("heads-all-learn", 7, "with H = 1, 2, 4 and 8 heads at the same width, the same parameter count, and every H "
          "reaches test exact match at least 0.98", "experiments", measure.heads_learn,
          lambda v: len({p for _, p in v.values()}) == 1 and all(t >= 0.98 for t, _ in v.values())),
    Claim("one-head-less-sharp", 0, "one head's cross-attention is less sharp than the sharpest head of each layer with "
          "two or more heads", "experiments", measure.one_head_sharpness, lambda v: max(v[0]) < v[1]),
    Claim("one-head-behind-early", 0, "at step 200, one head has the lowest mean validation exact match", "experiments",
          measure.one_head_early, lambda v: v[1] == min(v.values())),
]

BY_NAME = {claim.name: claim for claim in CLAIMS}
NEEDS = ("nothing", "explain", "tour", "phrases", "experiments")


def check(evidence, needs=NEEDS, names=None):
    """[(claim, measured value or the error, holds)] for every claim whose needs are in `needs`."""
    results = []
    for claim in CLAIMS:
        if claim.needs not in needs or (names and claim.name not in names):
            continue
        try:
            value = claim.measure(evidence)
            ok = bool(claim.holds(value))
        except Exception as e:  # a measure that cannot run fails its claim, with the reason shown
            value, ok = f"{type(e).__name__}: {e}", False
        results.append((claim, value, ok))
    return results


def shown(value):
    """A measured value, short, for a table cell."""
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{shown(k)}: {shown(v)}" for k, v in itertools.islice(value.items(), 6)) + "}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(shown(v) for v in value) + ")"
    return str(value)
