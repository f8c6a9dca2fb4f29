"""What each trick of minitx/nn/fused.py buys: every fused layer against its plain parent, timed
on the shapes of a config, forward and backward together.

    .venv/bin/python scripts/bench_layers.py [CONFIG ...] [--repeats N]     (default: tiny base)

For each config we build each plain layer and its fused subclass with the same weights, feed
both the same input and the same upstream gradient (copies: some fused layers overwrite their
arguments), and report the median time of forward + backward over `repeats` calls, after two
untimed ones. Plain and fused calls alternate, so a busy moment on a shared machine slows both.
The shapes are one training batch's: B = train.batch_size, L = data.max_len + 1 (a source with
its </s>), and the config's D, H, F; the loss gets the target vocabulary of the config's task.
One BLAS thread, as `make` runs everything.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from minitx.config import load_config, resolve_config_path  # noqa: E402
from minitx.data import load_task  # noqa: E402
from minitx.model import causal_mask  # noqa: E402
from minitx.nn import CrossEntropy, Embedding, FeedForward, LayerNorm, Linear, MultiHeadAttention  # noqa: E402
from minitx.nn import ScaledDotProductAttention  # noqa: E402
from minitx.nn import fused  # noqa: E402
from minitx.threads import use_blas_threads  # noqa: E402


def timed(call, repeats):
    """Median seconds of call() over `repeats` runs, after two untimed ones."""
    for _ in range(2):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def layer_call(layer, inputs, dout, forward=None):
    """One forward and one backward of `layer`, on copies of its inputs and upstream gradient."""
    forward = forward or layer.forward

    def call():
        layer.zero_grad()
        forward(*[x.copy() if isinstance(x, np.ndarray) and x.dtype.kind == "f" else x for x in inputs])
        layer.backward(dout.copy())

    return call


def loss_call(loss, logits, targets):
    def call():
        loss.forward(logits.copy(), targets)
        loss.backward()

    return call


def cases(cfg, V):
    """(name, plain call, fused call) for every fused class, on one batch's shapes."""
    m = cfg.model
    B, L, D, H, F = cfg.train.batch_size, cfg.data.max_len + 1, m.d_model, m.n_heads, m.d_ff
    K = D // H
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, L, D), dtype=np.float32)  # (B, L, D)
    dx = rng.standard_normal((B, L, D), dtype=np.float32)
    mask = causal_mask(L)  # (L, L)

    def pair(plain_class, fused_class, *args):
        plain, fast = plain_class(*args, np.random.default_rng(1), np.float32), fused_class(*args, np.random.default_rng(1), np.float32)
        return plain, fast

    out = []
    plain, fast = pair(Linear, fused.FusedLinear, D, F)
    out.append(("Linear (D -> F)", layer_call(plain, [x], rng.standard_normal((B, L, F), dtype=np.float32)),
                layer_call(fast, [x], rng.standard_normal((B, L, F), dtype=np.float32))))
    plain, fast = pair(FeedForward, fused.FusedFeedForward, D, F)
    out.append(("FeedForward", layer_call(plain, [x], dx), layer_call(fast, [x], dx)))
    plain, fast = LayerNorm(D), fused.FusedLayerNorm(D)
    out.append(("LayerNorm", layer_call(plain, [x], dx), layer_call(fast, [x], dx)))
    ids = rng.integers(1, V, size=(B, L))
    plain, fast = Embedding(V, D, 0, np.random.default_rng(1)), fused.FusedEmbedding(V, D, 0, np.random.default_rng(1))
    out.append((f"Embedding (V = {V})", layer_call(plain, [ids], dx), layer_call(fast, [ids], dx)))
    q, k, v = (rng.standard_normal((B, H, L, K), dtype=np.float32) for _ in range(3))
    dheads = rng.standard_normal((B, H, L, K), dtype=np.float32)
    plain, fast = ScaledDotProductAttention(), fused.FusedScaledDotProductAttention()
    out.append(("ScaledDotProductAttention", layer_call(plain, [q, k, v, mask], dheads),
                layer_call(fast, [q, k, v, mask], dheads)))
    memory = rng.standard_normal((B, L, D), dtype=np.float32)
    plain, fast = pair(MultiHeadAttention, fused.FusedCrossAttention, D, H)
    out.append(("cross-attention", layer_call(plain, [x, memory, mask], dx), layer_call(fast, [x, memory, mask], dx)))
    plain, fast = pair(MultiHeadAttention, fused.FusedSelfAttention, D, H)

    def self_attend(layer):
        return lambda h, mask: layer.forward(h, h, mask)

    out.append(("self-attention", layer_call(plain, [x, mask], dx, self_attend(plain)),
                layer_call(fast, [x, mask], dx, self_attend(fast))))
    logits = rng.standard_normal((B, L, V), dtype=np.float32)
    targets = rng.integers(1, V, size=(B, L))
    out.append((f"CrossEntropy (V = {V})", loss_call(CrossEntropy(0, 0.1), logits, targets),
                loss_call(fused.FusedCrossEntropy(0, 0.1), logits, targets)))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", default=["tiny", "base"])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    use_blas_threads(1)
    for config in args.configs:
        cfg = load_config(resolve_config_path(config))
        V = len(load_task(cfg).tgt_vocab)
        m = cfg.model
        print(f"\n{config}: B = {cfg.train.batch_size}, L = {cfg.data.max_len + 1}, D = {m.d_model}, "
              f"H = {m.n_heads}, F = {m.d_ff}; forward + backward, median of {args.repeats}")
        print(f"{'layer':<28} {'plain ms':>9} {'fused ms':>9} {'plain/fused':>12}")
        for name, plain_call, fused_call in cases(cfg, V):
            plain_times, fused_times = [], []
            for _ in range(3):  # alternate in rounds, so both see the same load
                plain_times.append(timed(plain_call, args.repeats // 3 or 1))
                fused_times.append(timed(fused_call, args.repeats // 3 or 1))
            p, f = statistics.median(plain_times) * 1e3, statistics.median(fused_times) * 1e3
            print(f"{name:<28} {p:9.3f} {f:9.3f} {p / f:12.2f}", flush=True)


if __name__ == "__main__":
    main()
