"""Lab: why the scores are divided by sqrt(K). An untrained head, with and without the factor.

    python scripts/lab_scaling.py

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
"""

import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from minitx.nn import LayerNorm, MultiHeadAttention, split_heads  # noqa: E402

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


def main():
    columns = ["score std", "largest weight", "rows > 0.99", "entropy", "softmax grad"]
    print(f"One untrained head, T = {T} keys per query; a uniform row has largest weight {1 / T:.2f} "
          f"and entropy log(T) = {math.log(T):.2f} nats.\n")
    print(f"{'K':>4}  {'scores':<17}" + "".join(f"{c:>16}" for c in columns))
    for K in (8, 32, 128):
        for scaled in (True, False):
            stats = [one_head(K, seed, scaled) for seed in range(SEEDS)]
            mean = {c: np.mean([s[c] for s in stats]) for c in columns}
            label = "q.k / sqrt(K)" if scaled else "q.k (no factor)"
            print(f"{K:>4}  {label:<17}" + "".join(f"{mean[c]:16.3f}" for c in columns))
    print("\nlargest weight: the mean over rows of a row's largest weight. rows > 0.99: the fraction of rows\n"
          "whose largest weight exceeds 0.99 (saturated). entropy: the mean over rows, in nats.\n"
          "softmax grad: the median over rows of the RMS of dscores = P * (dP - sum(dP * P)) for a\n"
          "random unit upstream gradient dP.")


if __name__ == "__main__":
    main()
