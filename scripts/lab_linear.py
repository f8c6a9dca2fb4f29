"""Lab: a weight matrix is a function. One head's W_Q of a trained run, applied to several vectors.

    python scripts/lab_linear.py RUN_DIR "INPUT" [--head N]
    python scripts/lab_linear.py runs/tour/explain "3 1 4 1 5"

We take the query block of one head of the first cross-attention, W = W_Q[:, c] (D, K) with
c = the head's K columns, and its bias b = b_Q[c]: the function f(h) = h @ W + b that turns the
decoder's (normed) vector at any position into that position's query. stop 1 of docs/tour.md
shows its outputs; here we look at the function itself.

1. The same W on different vectors. We run the model on INPUT (greedy decoding, then one
   teacher-forced pass, as `minitx explain` does), take the vectors h the cross-attention's
   query projection received, and apply f to three of them. Nothing in W names a position or a
   token: every position's query comes out of the same numbers.
2. The rules of a linear map. x -> x @ W satisfies (a + b) @ W = a @ W + b @ W and
   (c a) @ W = c (a @ W); we check both in float64 on two of those vectors. With its bias, f is
   affine rather than linear: f(a + b) = f(a) + f(b) - b_Q.
3. What W is, as a function: e_i @ W = W[i], the i-th row, so any h @ W = h_0 W[0] + ... +
   h_{D-1} W[D-1]: a mix of W's D rows, weighted by h's D entries. Knowing where the D unit
   vectors go is knowing the whole function.
4. For contrast, two steps of the model that are not linear: the layer norm (norm(2 a) equals
   norm(a), not 2 norm(a)) and the feed-forward block's ReLU.
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from minitx.data import BOS, EOS, encode_input  # noqa: E402
from minitx.decode import greedy  # noqa: E402
from minitx.inference import load_run  # noqa: E402

SHOWN = 3  # positions whose vectors we map


def fmt(values):
    return " ".join(f"{v:7.3f}" for v in values)


def vectors_and_weights(run_dir, text, head):
    """The cross-attention's query inputs h (rows, D) on `text` with their labels, and the head's
    W (D, K), b (K,), in float64; plus the decoder layer, for part 4."""
    cfg, model, task = load_run(run_dir, need_data=False)
    src = encode_input(text, cfg, task)  # (1, S)
    out = greedy(model, src, cfg.eval.max_output_len)[0].tolist()
    out = out[: out.index(EOS) + 1] if EOS in out else out
    tgt_in = np.array([[BOS] + out[:-1]])  # (1, T): <s> + the output, without its last token
    model.forward(src, tgt_in)
    layer = model.decoder.layers[0]
    query = layer.cross_attn.query
    H = layer.cross_attn.n_heads
    D, K = query.params["W"].shape[0], query.params["W"].shape[1] // H
    if head >= H:
        raise SystemExit(f"--head {head}: this run has {H} heads")
    c = slice(head * K, (head + 1) * K)
    h = query.cache.astype(np.float64)  # (T, D): what the query projection received, one row a position
    words = ["<s>"] + task.tgt_vocab.decode(out) + ["</s>"]
    labels = [f"{a}→{b}" for a, b in zip(words[:-1], words[1:])]
    W = query.params["W"][:, c].astype(np.float64)  # (D, K)
    b = query.params["b"][c].astype(np.float64)  # (K,)
    return h, labels, W, b, c, layer, model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("text")
    parser.add_argument("--head", type=int, default=0)
    args = parser.parse_args()
    h, labels, W, b, c, layer, model = vectors_and_weights(args.run_dir, args.text, args.head)
    D, K = W.shape

    def f(x):
        return x @ W + b

    print(f"W = W_Q[:, {c.start}:{c.stop}] of the first cross-attention of {args.run_dir}, head {args.head}: (D, K) = ({D}, {K}); "
          f"b = b_Q[{c.start}:{c.stop}].")
    print(f"The function: f(h) = h @ W + b, from {D} numbers to {K}.\n")
    print(f"1. The same W on the vectors of {SHOWN} positions of {args.text!r} (h: the decoder's vector after its norm):")
    width = max(len(label) for label in labels[:SHOWN])
    for label, row in zip(labels[:SHOWN], h[:SHOWN]):
        print(f"   {label:>{width}}   h = {fmt(row)}   ->   f(h) = {fmt(f(row))}")

    a, bb = h[0], h[1]
    print(f"\n2. The rules of a linear map, for x -> x @ W, with a = h of {labels[0]} and b = h of {labels[1]}, in float64:")
    print(f"   (a + b) @ W  =  a @ W + b @ W        largest difference {np.abs((a + bb) @ W - (a @ W + bb @ W)).max():.1e}")
    print(f"   (2.5 a) @ W  =  2.5 (a @ W)          largest difference {np.abs((2.5 * a) @ W - 2.5 * (a @ W)).max():.1e}")
    print(f"   with the bias, f is affine: f(a + b) - f(a) - f(b) = {fmt(f(a + bb) - f(a) - f(bb))}")
    print(f"                               and -b_Q[{c.start}:{c.stop}]     = {fmt(-b)}")

    print(f"\n3. Row i of W is where W sends the unit vector e_i (e_i @ W = W[i]), and a @ W adds up those rows, each")
    print(f"   times a's entry a_i:")
    left = 8 * K + 12  # the columns i, W[i] and a_i
    print(f"   {'i':>2}  {'W[i] = e_i @ W':<{8 * K - 1}}  {'a_i':>7}    a_i W[i]")
    for i in range(D):
        print(f"   {i:>2}  {fmt(W[i])}  {a[i]:7.3f}    {fmt(a[i] * W[i])}")
    rebuilt = sum(a[i] * W[i] for i in range(D))
    print(f"   {'the sum of the rows a_i W[i]':<{left}}    {fmt(rebuilt)}")
    print(f"   {'a @ W, one matrix product':<{left}}    {fmt(a @ W)}   (largest difference {np.abs(rebuilt - a @ W).max():.1e})")

    norm = layer.norm2  # the norm in front of the cross-attention
    x = a.astype(np.float32)[None]  # (1, D)
    n1, n2 = norm.forward(x)[0], norm.forward(2 * x)[0]

    def relu(v):
        return np.maximum(v, 0)

    print("\n4. Not every step is linear. The layer norm rescales its input away, and the ReLU cuts at zero:")
    print(f"   norm(2 a) - 2 norm(a): largest entry {np.abs(n2 - 2 * n1).max():.3f}   (norm(2 a) - norm(a): {np.abs(n2 - n1).max():.1e},"
          f" not quite 0 only because of the eps = {norm.eps:g} under its square root)")
    print(f"   relu(a) + relu(-a) = |a| = {fmt(relu(a) + relu(-a))}, where a linear map would give 0")


if __name__ == "__main__":
    main()
