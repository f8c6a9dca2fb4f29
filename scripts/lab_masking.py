"""Lab: what the decoder's causal mask is for. One copy model trained with it, one without.

    python scripts/lab_masking.py [CAUSAL_RUN] [NO_MASK_RUN]     (default runs/tour/copy, runs/tour/copy-nocausal)

`make tour` trains both from configs/tour_copy.yaml, the second with `--set model.causal=false`.
In training the decoder reads the whole target shifted right, <s> y1 ... ym, in one pass
(teacher forcing). Without the causal mask, position t may read position t + 1, which holds
y_{t+1}: exactly the token it is asked to predict. So the model learns to look one step ahead
and copy, its teacher-forced loss falls to nearly zero, and it has learned nothing it can use
when it really decodes, because then position t + 1 does not exist yet.

We measure both runs on the same held-out test split:
  teacher-forced loss and token accuracy: the decoder is given the true target (what training sees);
  exact match: the output of real greedy decoding, token by token, equals the target;
  weight on the next position: for each decoder self-attention head, the mean weight row t puts on
  key t + 1 over the test set (the largest over heads); the causal mask makes it exactly 0.

Last, why the mask goes on the scores, before the softmax: on one row of the causal model's
decoder self-attention we take the softmax of every score, future included, and then zero the
future. That row no longer sums to 1, and its weights on the past depend on the future's scores
through the softmax's denominator: the future leaks in. Dividing by the row's new sum repairs
both, and gives exactly the weights of masking before the softmax, which is the cheaper way to
the same numbers.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from minitx.data import BOS, EOS, PAD, encode_input  # noqa: E402
from minitx.decode import greedy  # noqa: E402
from minitx.inference import load_run  # noqa: E402
from minitx.train import evaluate  # noqa: E402

EXAMPLE = "3 1 4 1 5 9 2 6"


def weight_on_next(model, task, split, batch_size):
    """The largest, over decoder layers and heads, of the mean attention weight a target
    position t puts on position t + 1 in decoder self-attention (teacher-forced, real tokens)."""
    total, count = 0.0, 0
    for batch, _ in task.eval_batches(split, batch_size):
        model.forward(batch.src, batch.tgt_in)
        T = batch.tgt_in.shape[1]
        # Rows t = 0 .. T-2 whose next position t + 1 holds a real token.
        real_next = batch.tgt_in[:, 1:] != PAD  # (B, T-1)
        per_layer = []
        for layer in model.decoder.layers:
            P = layer.self_attn.attn  # (B, H, T, T)
            nxt = P[:, :, np.arange(T - 1), np.arange(1, T)]  # (B, H, T-1): weight of row t on key t+1
            per_layer.append((nxt * real_next[:, None]).sum(axis=(0, 2)))  # (H,)
        total = total + np.array(per_layer)  # (L, H)
        count += int(real_next.sum())
    return float((total / count).max())


def measure(run_dir):
    cfg, model, task = load_run(run_dir)
    metrics = evaluate(model, task, "test", cfg, greedy)  # greedy: real decoding, never the shortcut
    src = encode_input(EXAMPLE, cfg, task)  # (1, S)
    out = greedy(model, src, cfg.eval.max_output_len)[0].tolist()  # the run's own decoding limit
    out = out[: out.index(EOS) + 1] if EOS in out else out  # what it wrote, </s> included
    example = " ".join(task.tgt_vocab.itos[i] for i in out)
    return cfg, metrics, weight_on_next(model, task, "test", cfg.eval.batch_size), example


def mask_after_softmax(run_dir, row=3):
    """Lines showing one decoder self-attention row (layer 0, head 0, of the causal run, reading
    EXAMPLE) masked after the softmax, renormalised, and as the model masks it."""
    cfg, model, task = load_run(run_dir)
    src = encode_input(EXAMPLE, cfg, task)  # (1, S)
    tgt_in = np.array([[BOS] + task.tgt_vocab.encode(EXAMPLE.split())])  # (1, T): the true target
    model.forward(src, tgt_in)
    q, k, _, _, P = model.decoder.layers[0].self_attn.attention.cache  # q, k (1, H, T, K), P (1, H, T, T)
    scores = (q @ k.transpose(0, 1, 3, 2))[0, 0, row] / np.sqrt(q.shape[-1])  # (T,): every key, future included
    e = np.exp(scores - scores.max())
    after = e / e.sum()  # the softmax over all T keys
    after[row + 1:] = 0.0  # then the future zeroed
    renormalised = after / after.sum()
    tokens = task.tgt_vocab.decode(tgt_in[0].tolist())
    keys = ["<s>"] + tokens

    def fmt(values):
        return " ".join(f"{v:6.3f}" for v in values)

    return [
        f"\nmasking after the softmax instead: decoder layer 0, head 0 of {run_dir}, the row that has read "
        f"{' '.join(keys[:row + 1])} (keys: {' '.join(keys)})",
        f"  softmax of every score, then the future zeroed  {fmt(after)}   sum {after.sum():.3f}",
        f"  the same, divided by its sum                    {fmt(renormalised)}   sum {renormalised.sum():.3f}",
        f"  the model: future masked before the softmax     {fmt(P[0, 0, row])}   sum {P[0, 0, row].sum():.3f}",
        f"  largest difference between the last two: {np.abs(renormalised - P[0, 0, row]).max():.1e}",
    ]


def main(argv):
    runs = argv[1:3] if len(argv) >= 3 else ["runs/tour/copy", "runs/tour/copy-nocausal"]
    for run in runs:
        if not (Path(run) / "checkpoint.npz").exists():
            raise SystemExit(f"{run}: no trained run here; `make tour` trains it")
    results = [measure(run) for run in runs]
    labels = [f"causal={cfg.model.causal}" for cfg, *_ in results]
    print(f"copy, {results[0][1]['n']} held-out test sequences; runs {runs[0]} and {runs[1]}\n")
    print(f"{'':<44}" + "".join(f"{label:>18}" for label in labels))
    rows = [
        ("teacher-forced loss (nats per token)", lambda m, w: f"{m['val_loss']:.4f}"),
        ("teacher-forced token accuracy", lambda m, w: f"{m['token_acc']:.4f}"),
        ("exact match, real greedy decoding", lambda m, w: f"{m['exact_match']:.4f}"),
        ("weight on the next position (best head)", lambda m, w: f"{w:.4f}"),
    ]
    for name, cell in rows:
        print(f"{name:<44}" + "".join(f"{cell(m, w):>18}" for _, m, w, _ in results))
    print(f"\ndecoding {EXAMPLE!r} greedily, token by token:")
    for label, (*_, example) in zip(labels, results):
        print(f"  {label:<14} wrote {example}")
    print("\n".join(mask_after_softmax(runs[0])))


if __name__ == "__main__":
    main(sys.argv)
