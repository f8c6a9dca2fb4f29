"""Lab: why the scores are divided by sqrt(K). An untrained head, with and without the factor;
then, given a run, its trained heads.

    python scripts/lab_scaling.py                        # untrained heads only
    python scripts/lab_scaling.py runs/tour/numbers      # and that run's trained heads

No training: we build minitx's own MultiHeadAttention with one head of width K = D (so the head
is the whole layer, freshly initialised as in every run) for K = 8, 32 and 128, and feed it
T = 10 random token vectors that have been through a layer norm, as pre-norm attention's input
is: each of their D entries has mean 0 and variance 1.

A query or key entry is then a sum of D products x_i W_ij, with W's entries of variance 1/D
(Glorot: 2 / (D + D)), so it has variance about 1; a score q . k adds up K such products, so
its variance is about K. Without the factor the scores spread over +-sqrt(K) (+-11 at K = 128),
and the softmax of numbers that far apart puts nearly all the weight on one key: it saturates.
Dividing by sqrt(K) brings the variance back to about 1, whatever K is.

We run ScaledDotProductAttention's own forward; for the unscaled case we hand it q * sqrt(K),
so that its division cancels and the softmax sees q @ k^T.

A saturated softmax also passes almost no gradient. Its backward (the line in
ScaledDotProductAttention.backward) is
    dscores = P * (dP - sum(dP * P, axis=-1))
and when one P is 1 and the rest are 0, every entry of that is 0: the scores, and so W_Q and
W_K, barely learn from that row. We apply it to a random upstream gradient dP (unit Gaussian)
and report the typical row's gradient: the median over rows of the RMS of dscores. (The mean
is dominated by the rows that have not saturated, so it falls more slowly.)

Each number is the mean over 64 sequences of T = 10 tokens and 8 initialisations (seeds 0-7).

Given a trained run we ask the same of its real heads, on its validation split, teacher-forced:
the spread of the scores its softmaxes see, q.k / sqrt(K), and a row's largest weight, once
with the weights the run started from (built again from its seed, which draws exactly the same
initial weights) and once with the trained ones. At the start they sit where the untrained lab
says; training then grows them wherever a head needs to pick one key, so on a trained head the
factor no longer says how sharp the attention is: W_Q and W_K do. The factor is still part of
the function the weights were trained for, though. Dropping the division is the same as
multiplying W_Q and b_Q by sqrt(K) (q = x @ W_Q + b_Q, and scores = q.k / sqrt(K)), and we
evaluate the trained model that way too.
"""

import argparse
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from minitx.build import build_model  # noqa: E402
from minitx.data import PAD  # noqa: E402
from minitx.decode import greedy  # noqa: E402
from minitx.inference import load_run  # noqa: E402
from minitx.nn import LayerNorm, MultiHeadAttention, split_heads  # noqa: E402
from minitx.tools import ablate  # noqa: E402
from minitx.train import evaluate  # noqa: E402

T, B, SEEDS = 10, 64, 8


def one_head(K, seed, scaled):
    """Statistics of one untrained head of width K on B random normalised inputs."""
    rng = np.random.default_rng(seed)
    attn = MultiHeadAttention(K, 1, rng, dtype=np.float64)
    x = LayerNorm(K, dtype=np.float64).forward(rng.standard_normal((B, T, K)))  # (B, T, K)
    q = split_heads(attn.query.forward(x), 1)  # (B, 1, T, K)
    k = split_heads(attn.key.forward(x), 1)  # (B, 1, T, K)
    v = split_heads(attn.value.forward(x), 1)  # (B, 1, T, K)
    factor = 1.0 if scaled else math.sqrt(K)  # unscaled: q * sqrt(K) cancels the module's division
    core = attn.attention
    core.forward(q * factor, k, v)  # (B, 1, T, K); we only read the weights it keeps
    P = core.attn  # (B, 1, T, T)
    scores = (q * factor) @ k.transpose(0, 1, 3, 2) / math.sqrt(K)  # (B, 1, T, T), what the softmax saw
    dP = rng.standard_normal(P.shape)  # (B, 1, T, T) a random upstream gradient
    dscores = P * (dP - (dP * P).sum(axis=-1, keepdims=True))  # (B, 1, T, T)
    entropy = -(P * np.log(np.maximum(P, 1e-300))).sum(axis=-1)  # (B, 1, T)
    return {
        "score std": scores.std(),
        "largest weight": P.max(axis=-1).mean(),
        "rows > 0.99": (P.max(axis=-1) > 0.99).mean(),
        "entropy": entropy.mean(),
        "softmax grad": np.median(np.sqrt((dscores**2).mean(axis=-1))),
    }


def untrained_table(seeds=range(SEEDS)):
    """{(K, scaled): the mean of one_head's statistics over `seeds`}."""
    table = {}
    for K in (8, 32, 128):
        for scaled in (True, False):
            stats = [one_head(K, seed, scaled) for seed in seeds]
            table[K, scaled] = {c: float(np.mean([s[c] for s in stats])) for c in stats[0]}
    return table


def attentions(model):
    """(name, MultiHeadAttention, which ids label its rows: "src" or "tgt") for every attention,
    in the order minitx.tools.ablate.attentions finds them."""
    return [(name, attn, "src" if name.startswith("encoder") else "tgt") for name, attn in ablate.attentions(model).items()]


def score_statistics(model, task, split, batch_size):
    """{attention name: (std of the scaled scores a softmax sees, mean of a row's largest
    weight)}, over every real query row of `split` and every key it may read, teacher-forced."""
    sums = {}
    for batch, _ in task.eval_batches(split, batch_size):
        model.forward(batch.src, batch.tgt_in)
        for name, attn, rows in attentions(model):
            q, k, _, mask, P = attn.attention.cache  # q (B, H, R, K), k (B, H, C, K), P (B, H, R, C)
            scores = q.astype(np.float64) @ k.transpose(0, 1, 3, 2) / math.sqrt(q.shape[-1])  # (B, H, R, C)
            ids = batch.src if rows == "src" else batch.tgt_in
            real = np.broadcast_to((ids != PAD)[:, None, :, None] & mask, scores.shape)  # (B, H, R, C)
            row_real = np.broadcast_to((ids != PAD)[:, None, :], P.shape[:3])  # (B, H, R)
            s = sums.setdefault(name, np.zeros(5))
            s += [real.sum(), scores[real].sum(), (scores[real] ** 2).sum(), row_real.sum(), P.max(axis=-1)[row_real].sum()]
    stats = {}
    for name, (n, total, squares, rows, largest) in sums.items():
        mean = total / n
        stats[name] = (math.sqrt(squares / n - mean**2), largest / rows)
    return stats


def without_the_factor(model):
    """Multiply every attention's W_Q and b_Q by sqrt(K), in place: then q.k / sqrt(K) equals
    the old q.k, as if the division were gone."""
    for _, attn, _ in attentions(model):
        K = attn.query.params["W"].shape[1] // attn.n_heads
        attn.query.params["W"] *= math.sqrt(K)
        attn.query.params["b"] *= math.sqrt(K)


def trained_heads(run_dir, split="valid"):
    """The trained run's score statistics at its start and after training, and its exact match
    on `split` with and without the factor."""
    cfg, model, task = load_run(run_dir)
    start = build_model(cfg, task, training=False)  # the run's seed draws the same initial weights
    start.train(False)
    K = cfg.model.d_model // cfg.model.n_heads
    with_factor = evaluate(model, task, split, cfg, greedy)["exact_match"]
    trained = score_statistics(model, task, split, cfg.eval.batch_size)
    without_the_factor(model)
    without = evaluate(model, task, split, cfg, greedy)["exact_match"]
    return dict(K=K, n=len(task.splits[split]), split=split, start=score_statistics(start, task, split, cfg.eval.batch_size),
                trained=trained, no_factor=score_statistics(model, task, split, cfg.eval.batch_size),
                exact_with=with_factor, exact_without=without)


def print_trained(run_dir, r):
    print(f"\nThe same on a trained run, {run_dir} (K = {r['K']}, sqrt(K) = {math.sqrt(r['K']):g}), teacher-forced on its "
          f"{r['n']} {r['split']} examples.\nstart: the run's initial weights (rebuilt from its seed); trained: its weights now; "
          "no factor: the trained\nweights with W_Q and b_Q multiplied by sqrt(K), which is what dropping the division does.\n")
    print(f"{'':<30}{'std of the scores the softmax sees':>36}{'a row' + chr(39) + 's largest weight':>36}")
    print(f"{'attention':<30}" + "".join(f"{c:>12}" for c in ("start", "trained", "no factor") * 2))
    for name in r["trained"]:
        cells = [r[which][name][0] for which in ("start", "trained", "no_factor")]
        cells += [r[which][name][1] for which in ("start", "trained", "no_factor")]
        print(f"{name:<30}" + "".join(f"{c:12.3f}" for c in cells))
    print(f"\n{r['split']} exact match, greedy: {r['exact_with']:.3f} trained, {r['exact_without']:.3f} with no factor")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", nargs="?", help="a trained run whose heads to measure too")
    args = parser.parse_args()
    columns = ["score std", "largest weight", "rows > 0.99", "entropy", "softmax grad"]
    table = untrained_table()
    print(f"One untrained head, T = {T} keys per query; a uniform row has largest weight {1 / T:.2f} "
          f"and entropy log(T) = {math.log(T):.2f} nats.\n")
    print(f"{'K':>4}  {'scores':<17}" + "".join(f"{c:>16}" for c in columns))
    for (K, scaled), mean in table.items():
        label = "q.k / sqrt(K)" if scaled else "q.k (no factor)"
        print(f"{K:>4}  {label:<17}" + "".join(f"{mean[c]:16.3f}" for c in columns))
    print("\nlargest weight: the mean over rows of a row's largest weight. rows > 0.99: the fraction of rows\n"
          "whose largest weight exceeds 0.99 (saturated). entropy: the mean over rows, in nats.\n"
          "softmax grad: the median over rows of the RMS of dscores = P * (dP - sum(dP * P)) for a\n"
          "random unit upstream gradient dP.")
    if args.run_dir:
        print_trained(args.run_dir, trained_heads(args.run_dir))


if __name__ == "__main__":
    main()
