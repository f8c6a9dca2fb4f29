"""PNG pictures with matplotlib: attention grids and training curves.

matplotlib is optional (`pip install 'minitx[plot]'`), so nothing here imports it at module
level: each function imports it when called and returns None when it is missing, and the
callers then print INSTALL_HINT and carry on with the terminal view. We draw on a Figure with
the Agg canvas directly rather than through pyplot, so we never touch pyplot's global state or
need a display.
"""

import math
import textwrap
from pathlib import Path

from minitx.errors import UserError

INSTALL_HINT = (
    "PNG pictures need matplotlib: pip install 'minitx[plot]' "
    "(in a clone of the repository: .venv/bin/pip install -e '.[plot]')"
)


def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def new_figure(width, height):
    """An empty Figure drawn by the Agg backend, or None when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig, path):
    """fig.savefig(path), but never through a symbolic link: a link in a run directory (say
    RUN_DIR/curves.png -> ~/.bashrc) must not make us write outside it."""
    if Path(path).is_symlink():
        raise UserError(f"{path} is a symbolic link; minitx does not write through links: remove it, or choose another path")
    fig.savefig(path, dpi=110)
    return path


def attention_figure(maps, path, layers=None, heads=None, title=""):
    """Draw one kind of attention as a grid, a row per layer and a column per head, and save it.

    maps: a show.AttentionMaps (weights (L, H, R, C), row and column token labels).
    layers, heads: which to draw (default all). Every panel shares one colour scale from 0 to 1,
    because attention weights are probabilities: a dark cell means the same in every panel.
    Returns the path written, or None without matplotlib.
    """
    layers = range(maps.weights.shape[0]) if layers is None else layers
    heads = range(maps.weights.shape[1]) if heads is None else heads
    n_rows, n_cols = len(layers), len(heads)
    R, C = maps.weights.shape[2:]
    # Big enough that every token label stays legible, however short the sequences.
    cell_w, cell_h = max(2.4, 0.26 * C + 0.9), max(2.8, 0.26 * R + 0.7)
    width = cell_w * n_cols + 1.9  # the panels and the colour bar with its two-line label
    # Wrap the title to the figure (about 0.08 inch per character at 10 points) rather than
    # widening the figure for it, which would leave the panels adrift in white space.
    title = "\n".join(textwrap.fill(line, int(width / 0.08)) for line in title.splitlines())
    fig = new_figure(width, cell_h * n_rows + 0.2 + 0.2 * len(title.splitlines()))
    if fig is None:
        return None
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for i, layer in enumerate(layers):
        for j, head in enumerate(heads):
            ax = axes[i][j]
            image = ax.imshow(maps.weights[layer, head], vmin=0.0, vmax=1.0, cmap="Blues")
            ax.set_title(f"layer {layer}, head {head}", fontsize=9)
            ax.set_xticks(range(C))
            ax.set_yticks(range(R))
            # Tokens on the outer edges only: every panel of one kind has the same tokens.
            ax.set_xticklabels(maps.cols if i == n_rows - 1 else [], rotation=90, fontsize=8)
            ax.set_yticklabels(maps.rows if j == 0 else [], fontsize=8)
            if i == n_rows - 1:
                ax.set_xlabel(maps.col_axis, fontsize=8)
            if j == 0:
                ax.set_ylabel(maps.row_axis, fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight\n(each row sums to 1)")
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, path)


def curves_figure(metrics, path, title=""):
    """Loss and accuracy against step from metrics.jsonl records; returns the path or None."""
    fig = new_figure(10, 3.8)
    if fig is None:
        return None
    loss_ax, acc_ax = fig.subplots(1, 2)
    steps = [m["step"] for m in metrics]
    # A diverged run's NaN or Infinity is left out of the line, as a gap.
    curve = lambda key: [m[key] if math.isfinite(m[key]) else math.nan for m in metrics]
    for key in ("train_loss", "val_loss"):
        loss_ax.plot(steps, curve(key), marker=".", label=key)
    loss_ax.set_yscale("log")  # losses fall over orders of magnitude; a log axis shows them all
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("cross-entropy (nats per token)")
    for key in ("token_acc", "exact_match"):
        acc_ax.plot(steps, curve(key), marker=".", label=key)
    acc_ax.set_ylim(0, 1.02)
    acc_ax.set_xlabel("step")
    acc_ax.set_ylabel("fraction of the validation set")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return save(fig, path)
