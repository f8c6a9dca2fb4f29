"""A logit lens for the decoder: what the model would predict if it stopped after each sub-layer.

    python -m minitx lens RUN_DIR "3 1 4 1 5" [--target TEXT]     one input, position by position
    python -m minitx lens RUN_DIR --split valid [--limit 200]      next-token accuracy over a split

The decoder's residual stream runs from the embedding through every sub-layer, each adding its
output to it (pre-norm: y = y + sublayer(norm(y))), and ends in the final norm and the output
projection, which turn it into logits. The lens applies those two last steps to the stream as it
is after each sub-layer, and reads what that stream already predicts (nostalgebraist 2020,
"interpreting GPT: the logit lens"). So we see what self-attention, cross-attention and each
feed-forward block add to the prediction.

We record the stream, without changing any code (as minitx.tools.explain does), where the model
itself reads it: in a pre-norm decoder, the input of each sub-layer's norm (norm1, norm2, norm3)
and of the final norm. In a post-norm decoder the stream after a sub-layer is the output of that
sub-layer's norm, y = norm(y + sublayer(y)), and there is no final norm: the lens applies the
output projection alone to those outputs.

The last reading is the model's own output, and we check that it is, bit for bit.
"""

from dataclasses import dataclass

import numpy as np

from minitx.data import PAD
from minitx.decode import emittable
from minitx.errors import UserError
from minitx.model import PostNormDecoderLayer
from minitx.nn import log_softmax
from minitx.tools.example import make_example
from minitx.tools.explain import recording


@dataclass
class Point:
    """One place the lens reads the stream: after `label`, from `module`'s input or output."""

    label: str  # "layer 0 cross-attention"
    short: str  # "0.cross", a column heading
    module: object
    side: str  # "input" or "output"


def stream_points(model):
    """Where the decoder's residual stream is, from the embedding to the last sub-layer."""
    layers = model.decoder.layers
    names = [("self-attention", "self"), ("cross-attention", "cross"), ("feed-forward", "ff")]
    if isinstance(layers[0], PostNormDecoderLayer):
        # Layer 0's self-attention reads the embedding itself; each later reading is a norm's output.
        points = [Point("embedding + positions", "embed", layers[0].self_attn, "input")]
        for i, layer in enumerate(layers):
            for (label, short), norm in zip(names, (layer.norm1, layer.norm2, layer.norm3)):
                points.append(Point(f"layer {i} {label}", f"{i}.{short}", norm, "output"))
        return points
    # Pre-norm: each sub-layer's norm reads the stream; after the last one, the final norm does.
    readers = [norm for layer in layers for norm in (layer.norm1, layer.norm2, layer.norm3)] + [model.decoder.norm]
    points = [Point("embedding + positions", "embed", readers[0], "input")]
    for i in range(len(layers)):
        for n, (label, short) in enumerate(names):
            points.append(Point(f"layer {i} {label}", f"{i}.{short}", readers[3 * i + n + 1], "input"))
    return points


def lens_logits(model, src, tgt_in):
    """One teacher-forced pass -> (the model's logits (B, T, V), [logits (B, T, V) read at each point])."""
    points = stream_points(model)
    model.train(False)
    with recording([(p.module, "forward", i) for i, p in enumerate(points)]) as seen:
        logits = model.forward(src, tgt_in)  # (B, T, V)
    readings = []
    for i, p in enumerate(points):
        args, result = seen[i]
        stream = args[0] if p.side == "input" else result  # (B, T, D)
        if model.decoder.norm is not None:
            stream = model.decoder.norm.forward(stream)  # (B, T, D)
        readings.append(model.decoder.out.forward(stream))  # (B, T, V)
    assert np.array_equal(readings[-1], logits), "the lens's last reading is not the model's own output"
    return logits, readings


def what_the_lens_reads(model):
    if isinstance(model.decoder.layers[0], PostNormDecoderLayer):
        return ("post-norm: after each sub-layer the lens reads that sub-layer's norm output, "
                "y = norm(y + sublayer(y)), through the output projection (the model has no final norm)")
    return "pre-norm: the lens reads the stream y after each sub-layer through the final norm and the output projection"


def lens_one(model, task, cfg, text, target=None):
    """One input: (example, points, top tokens (T, P), p of the right token (T, P))."""
    example = make_example(model, task, cfg, text, target)
    _, readings = lens_logits(model, example.src, example.tgt_in)
    right = example.tgt_out[0]  # (T,)
    top, p_right = [], []
    for logits in readings:
        logp = log_softmax(logits[0].astype(np.float64))  # (T, V)
        top.append([task.tgt_vocab.itos[i] for i in emittable(logp).argmax(axis=-1)])
        p_right.append(np.exp(logp[np.arange(len(right)), right]))
    return example, stream_points(model), np.array(top).T, np.array(p_right).T


def lens_text(model, task, cfg, text, target=None, run_name="the run"):
    example, points, top, p_right = lens_one(model, task, cfg, text, target)
    rows = [f"{a}→{b}" for a, b in zip(example.in_tokens, example.out_tokens)]
    cells = [[f"{t} {p:.2f}" for t, p in zip(top_row, p_row)] for top_row, p_row in zip(top, p_right)]
    width = max(len(x) for row in cells for x in row + [p.short for p in points]) + 2
    left = max(len(r) for r in rows)
    lines = [f"the logit lens on the decoder of {run_name}: {what_the_lens_reads(model)}."]
    lines += example.describe()
    lines += ["Row 'a→b': the position that reads a and must predict b. Each cell: the lens's top prediction "
              "there, then the probability it gives b.",
              "Columns: the stream after " + "; ".join(f"{p.short} = {p.label}" for p in points) + ".", ""]
    lines.append(" " * left + "".join(p.short.rjust(width) for p in points))
    for label, row in zip(rows, cells):
        lines.append(label.rjust(left) + "".join(x.rjust(width) for x in row))
    lines += ["", "check: the last column is the model's own output, bit for bit"]
    return lines


def lens_summary(model, task, cfg, split, limit=None):
    """Over a split's first `limit` examples: per point, (accuracy, mean p(right), n tokens)."""
    points = stream_points(model)
    correct = np.zeros(len(points))
    p_sum = np.zeros(len(points))
    tokens = examples = model_correct = 0
    for batch, targets in task.eval_batches(split, cfg.eval.batch_size):
        if limit is not None and examples >= limit:
            break
        keep = len(targets) if limit is None else min(len(targets), limit - examples)
        src, tgt_in, tgt_out = batch.src[:keep], batch.tgt_in[:keep], batch.tgt_out[:keep]
        logits, readings = lens_logits(model, src, tgt_in)
        valid = tgt_out != PAD  # (B, T)
        for i, reading in enumerate(readings):
            logp = log_softmax(reading.astype(np.float64))  # (B, T, V)
            correct[i] += ((emittable(logp).argmax(axis=-1) == tgt_out) & valid).sum()
            p_sum[i] += (np.exp(np.take_along_axis(logp, tgt_out[..., None], axis=-1)[..., 0]) * valid).sum()
        model_correct += int(((emittable(logits).argmax(axis=-1) == tgt_out) & valid).sum())
        tokens += int(valid.sum())
        examples += keep
    return points, correct / tokens, p_sum / tokens, tokens, examples, model_correct / tokens


def summary_text(model, task, cfg, split, limit=None, run_name="the run"):
    points, accuracy, p_mean, tokens, examples, model_accuracy = lens_summary(model, task, cfg, split, limit)
    lines = [f"the logit lens on the decoder of {run_name}, over the first {examples} examples of the {split} split "
             f"({tokens} target tokens, </s> included), teacher-forced on their targets:",
             f"{what_the_lens_reads(model)}.", "",
             f"{'the stream after':<26}{'next-token accuracy':>21}{'mean p(right)':>15}"]
    for point, a, p in zip(points, accuracy, p_mean):
        lines.append(f"{point.label:<26}{a:>21.4f}{p:>15.4f}")
    assert accuracy[-1] == model_accuracy, f"the lens's last row {accuracy[-1]} is not the model's {model_accuracy}"
    lines += ["", f"check: the last row is the model's own token accuracy on these examples, {model_accuracy:.4f} "
                  f"(what `minitx eval` reports as token_acc on the whole split)"]
    return lines


def lens_command(run_dir, text=None, split=None, limit=None, target=None):
    from minitx.inference import load_run

    if text is None and split is None:
        raise UserError("give an input TEXT, or --split NAME for a summary over a split (or both)")
    if target is not None and text is None:
        raise UserError("--target goes with an input TEXT")
    cfg, model, task = load_run(run_dir, need_data=split is not None, fused=False)
    if split is not None and split not in task.splits:
        raise UserError(f"--split {split}: no such split (choose from {', '.join(task.splits)})")
    lines = []
    if text is not None:
        lines += lens_text(model, task, cfg, text, target, str(run_dir))
    if split is not None:
        lines += ([""] if lines else []) + summary_text(model, task, cfg, split, limit, str(run_dir))
    print("\n".join(lines))
