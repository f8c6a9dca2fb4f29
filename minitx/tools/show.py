"""Looking inside a trained run: attention heatmaps and training curves, in the terminal.

`python -m minitx attention RUN_DIR "3 1 4 1 5"` decodes the input greedily, then runs the
model once more on (source, <s> + the decoded output) with teacher forcing, so that every
layer has computed its attention over the whole output at once. Every MultiHeadAttention keeps
its weights from the last forward as `.attn`, shaped (B, H, rows, columns); we read them from
all three kinds:

    encoder self-attention   rows: source tokens     columns: source tokens       (S, S)
    decoder self-attention   rows: output tokens     columns: decoder input       (T, T)
    cross-attention          rows: output tokens     columns: source tokens       (T, S)

A decoder row is labelled with the token written at that step: row "7" of cross-attention
shows where the decoder looked while choosing "7". Its decoder input at that step was the
previous token, which is why decoder self-attention's columns start with <s>.

Each heatmap shades a weight with one of " ░▒▓█" (see LEVELS), so it works on any terminal;
with matplotlib installed the same weights are also saved as PNG grids (minitx.plots).

`python -m minitx plot RUN_DIR` draws metrics.jsonl as sparklines and, with matplotlib, as
RUN_DIR/curves.png; a diverged run's values that are not finite show as "!" and gaps.
"""

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minitx.tools import plots
from minitx.data import BOS, EOS, detokenize, encode_input
from minitx.decode import greedy, output_limit
from minitx.errors import UserError

SHADES = " ░▒▓█"
# The weight at which each shade starts. Attention weights are probabilities, so we shade on
# an absolute scale rather than relative to each matrix: a full block always means "most of
# this row's attention". Below 0.1 stays blank, so a spread-out row reads as spread out.
LEVELS = (0.1, 0.25, 0.5, 0.75)
LEGEND = "shades: ' ' < 0.1 <= ░ < 0.25 <= ▒ < 0.5 <= ▓ < 0.75 <= █   (each row sums to 1)"

KINDS = ("encoder", "decoder", "cross")
TITLES = {
    "encoder": "encoder self-attention",
    "decoder": "decoder self-attention",
    "cross": "cross-attention",
}


def shade(weight):
    """One character for one weight: " " for under 0.1 up to "█" for 0.75 or more."""
    return SHADES[int(np.searchsorted(LEVELS, weight, side="right"))]


def heatmap(P, row_labels, col_labels, title="", show_row_labels=True):
    """P (R, C) weights in [0, 1] -> a list of text lines.

    Column labels run across the top, each column as wide as its label (at least 2), and the
    row labels down the left. The title, if any, is the first line."""
    R, C = P.shape
    assert len(row_labels) == R and len(col_labels) == C, (P.shape, len(row_labels), len(col_labels))
    widths = [max(2, len(label)) for label in col_labels]
    left = max(len(label) for label in row_labels) + 1 if show_row_labels else 0
    lines = [title] if title else []
    lines.append(" " * left + " ".join(label.center(w) for label, w in zip(col_labels, widths)))
    for label, row in zip(row_labels, P):
        cells = " ".join(shade(weight) * w for weight, w in zip(row, widths))
        lines.append((label.rjust(left - 1) + " " if show_row_labels else "") + cells)
    return lines


def heads_side_by_side(weights, rows, cols, titles, width, gap=3):
    """Heatmaps of weights (H, R, C) left to right, as many as fit in `width` characters, in
    bands; each band prints the row labels once, on its left."""
    full = heatmap(weights[0], rows, cols, titles[0])
    bare = heatmap(weights[0], rows, cols, titles[0], show_row_labels=False)
    w_full, w_bare = max(map(len, full)), max(map(len, bare))
    per_band = max(1, 1 + (width - w_full) // (gap + w_bare))
    out = []
    for start in range(0, len(weights), per_band):
        panels = [heatmap(weights[i], rows, cols, titles[i], show_row_labels=(i == start))
                  for i in range(start, min(start + per_band, len(weights)))]
        out += ([""] if out else []) + _join(panels, gap)
    return out


def _join(panels, gap):
    widths = [max(len(line) for line in p) for p in panels]
    height = max(len(p) for p in panels)
    rows = []
    for i in range(height):
        parts = [(p[i] if i < len(p) else "").ljust(w) for p, w in zip(panels, widths)]
        rows.append((" " * gap).join(parts).rstrip())
    return rows


@dataclass
class AttentionMaps:
    """One kind of attention for one input: weights (L, H, R, C) over layers and heads."""

    kind: str
    weights: np.ndarray  # (L, H, R, C)
    rows: list  # R token labels
    cols: list  # C token labels
    row_axis: str  # what the rows are, for plot axes
    col_axis: str


def look(model, task, cfg, text):
    """Decode `text` greedily, then capture every attention matrix of one teacher-forced pass.

    Returns (source tokens, output tokens, {kind: AttentionMaps}). The output tokens end with
    </s> when the model produced it."""
    src = encode_input(text, cfg, task)  # (1, S)
    out = greedy(model, src, output_limit(cfg, task)[0])[0].tolist()
    out = out[: out.index(EOS) + 1] if EOS in out else out  # the tokens written, </s> included
    # Step t reads <s> y1 ... y(t-1) and writes y_t, so the decoder input is the output shifted
    # right by one: exactly what greedy decoding fed it, now in a single pass.
    tgt_in = np.array([[BOS] + out[:-1]])  # (1, T)
    model.train(False)
    model.forward(src, tgt_in)  # (1, T, V); we only want the attention it leaves behind
    src_tokens = [task.src_vocab.itos[i] for i in src[0]]
    in_tokens = [task.tgt_vocab.itos[i] for i in tgt_in[0]]
    out_tokens = [task.tgt_vocab.itos[i] for i in out]

    def stack(modules):
        return np.stack([m.attn[0] for m in modules])  # (L, H, R, C)

    enc, dec = model.encoder.layers, model.decoder.layers
    maps = {
        "encoder": AttentionMaps("encoder", stack(l.self_attn for l in enc), src_tokens, src_tokens,
                                 "source token (query)", "source token (key)"),
        "decoder": AttentionMaps("decoder", stack(l.self_attn for l in dec), out_tokens, in_tokens,
                                 "output token being written (query)", "decoder input token (key)"),
        "cross": AttentionMaps("cross", stack(l.cross_attn for l in dec), out_tokens, src_tokens,
                               "output token being written (query)", "source token (key)"),
    }
    return src_tokens, out_tokens, maps


def _pick(n, index, what):
    """All of range(n), or just `index` after checking it is in range."""
    if index is None:
        return list(range(n))
    if not 0 <= index < n:
        raise UserError(f"--{what} {index}: this model has {what}s 0 to {n - 1}")
    return [index]


def attention_command(run_dir, text, kind="all", layer=None, head=None, png_dir=None, png=True, width=None):
    """Print every selected layer's and head's attention, and save PNG grids when we can."""
    from minitx.inference import load_run

    cfg, model, task = load_run(run_dir, need_data=False)
    src_tokens, out_tokens, maps = look(model, task, cfg, text)
    kinds = KINDS if kind == "all" else (kind,)
    # Check --layer and --head before printing anything. With --kind all, a layer may exist in
    # the decoder but not the encoder (or back); we then skip the stack that lacks it.
    _pick(max(maps[k].weights.shape[0] for k in kinds), layer, "layer")
    _pick(maps[kinds[0]].weights.shape[1], head, "head")
    kinds = [k for k in kinds if layer is None or layer < maps[k].weights.shape[0]]
    width = width or shutil.get_terminal_size().columns
    joined = cfg.data.split_apostrophes
    print(f"input:  {detokenize(src_tokens[:-1], joined)}")
    output = out_tokens[:-1] if out_tokens[-1:] == ["</s>"] else out_tokens
    print(f"output: {detokenize(output, joined)}" + ("" if out_tokens[-1:] == ["</s>"] else "   (no </s> before the length limit)"))
    print(LEGEND)
    for k in kinds:
        m = maps[k]
        L, H = m.weights.shape[:2]
        layers, heads = _pick(L, layer, "layer"), _pick(H, head, "head")
        side = "encoder" if k == "encoder" else "decoder"
        print(f"\n== {TITLES[k]} (rows: {m.row_axis}; columns: {m.col_axis}) ==")
        for i, l in enumerate(layers):
            titles = [f"{side} layer {l}, head {h}" for h in heads]
            print(("\n" if i else "") + "\n".join(heads_side_by_side(m.weights[l, heads], m.rows, m.cols, titles, width)))
    if not png:
        return
    if not plots.have_matplotlib():
        print(f"\n{plots.INSTALL_HINT}")
        return
    if png_dir is None and (Path(run_dir) / "attention").is_symlink():
        raise UserError(f"{Path(run_dir) / 'attention'} is a symbolic link; minitx writes only inside the run directory: "
                        f"remove the link, or choose a folder with --png DIR")
    png_dir = Path(png_dir) if png_dir else Path(run_dir) / "attention"
    png_dir.mkdir(parents=True, exist_ok=True)
    print()
    for k in kinds:
        m = maps[k]
        L, H = m.weights.shape[:2]
        title = f"{TITLES[k]}: {detokenize(src_tokens[:-1], joined)} -> {detokenize(output, joined)}"
        path = png_dir / f"{k}-attention.png"
        plots.attention_figure(m, path, _pick(L, layer, "layer"), _pick(H, head, "head"), title)
        print(f"wrote {path}")


SPARKS = "▁▂▃▄▅▆▇█"
CURVES = ("train_loss", "val_loss", "token_acc", "exact_match")


def read_metrics(run_dir):
    """The records of RUN_DIR/metrics.jsonl, one dict per evaluation, each checked to hold a
    step and the numbers we draw. A diverged run's records hold NaN or Infinity, which
    minitx writes and reads as JSON numbers."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise UserError(f"{run_dir}: no metrics.jsonl (has this run reached its first evaluation?)")
    records = []
    for lineno, line in enumerate(path.read_bytes().decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: line {lineno}: not a JSON object ({e.msg})") from None
        if not isinstance(record, dict):
            raise UserError(f"{path}: line {lineno}: not a JSON object (a {type(record).__name__})")
        for key in ("step",) + CURVES:
            value = record.get(key)
            if key not in record:
                raise UserError(f"{path}: line {lineno}: no \"{key}\" (not a record minitx wrote)")
            if isinstance(value, bool) or not isinstance(value, int if key == "step" else (int, float)):
                kind = "an integer" if key == "step" else "a number"
                raise UserError(f"{path}: line {lineno}: \"{key}\" is {json.dumps(value)[:30]}, not {kind}")
        records.append(record)
    if not records:
        raise UserError(f"{path}: empty")
    return records


def sparkline(values, width=60):
    """A row of ▁..█ from the smallest value to the largest, at most `width` characters; a
    value that is not finite (a diverged run's NaN or Infinity) is a "!"."""
    values = np.asarray(values, dtype=float)
    if len(values) > width:
        values = values[np.linspace(0, len(values) - 1, width).round().astype(int)]
    finite = np.isfinite(values)
    if not finite.any():
        return "!" * len(values)
    lo, hi = values[finite].min(), values[finite].max()
    spread = hi - lo if hi - lo >= 1e-12 else 1.0
    levels = ((np.where(finite, values, lo) - lo) / spread * (len(SPARKS) - 1)).round().astype(int)
    return "".join(SPARKS[i] if ok else "!" for i, ok in zip(levels, finite))


def summary(steps, values):
    """First and last value, the range of the finite ones, and where the others are."""
    finite = [v for v in values if math.isfinite(v)]
    text = f"{values[0]:.4f} -> {values[-1]:.4f}"
    if finite:
        text += f"  (min {min(finite):.4f}, max {max(finite):.4f})"
    bad = [s for s, v in zip(steps, values) if not math.isfinite(v)]
    if bad:
        text += f"  not finite at step {bad[0]}" + (f" and {len(bad) - 1} later evaluation(s)" if len(bad) > 1 else "")
    return text


def curves_command(run_dir, out=None, max_rows=20):
    """Sparklines of every curve; a PNG with matplotlib, else a table and the install hint."""
    records = read_metrics(run_dir)
    steps = [r["step"] for r in records]
    print(f"{run_dir}: {len(records)} evaluations, steps {steps[0]} to {steps[-1]}")
    for key in CURVES:
        values = [r[key] for r in records]
        print(f"  {key:<12} {sparkline(values)}  {summary(steps, values)}")
    path = Path(out) if out else Path(run_dir) / "curves.png"
    if plots.curves_figure(records, path, title=Path(run_dir).name) is not None:
        print(f"wrote {path}")
        return
    # Without a picture, a table of evenly spaced evaluations (always the last one).
    keep = sorted(set(np.linspace(0, len(records) - 1, min(max_rows, len(records))).round().astype(int)))
    print("\n" + "".join(f"{h:>12}" for h in ("step",) + CURVES))
    for i in keep:
        print(f"{records[i]['step']:>12}" + "".join(f"{records[i][k]:>12.4f}" for k in CURVES))
    print(f"\n{plots.INSTALL_HINT}")
