"""What a run learned in its embedding table: a 2-D picture and nearest neighbours.

    python -m minitx embeddings RUN_DIR [--side source|target] [--change] [--neighbours N] [--png PATH]

The embedding table W (V, D) holds one learned row per token; the model reads a token as its
row (times sqrt(D), plus the position's encoding). Tokens the task treats alike tend to end up
with rows pointing the same way, and two views show it:

- nearest neighbours by cosine similarity, cos(a, b) = a . b / (|a| |b|): 1 for rows pointing
  the same way, 0 for orthogonal ones, in the full D dimensions;
- a 2-D projection by PCA: we centre the rows (subtract their mean) and keep their coordinates
  along the two directions of largest variance, the first two right singular vectors of the
  centred table,

      W_c = W - mean(W)  = U diag(s) V^T         coordinates = W_c @ V[:, :2] = U[:, :2] * s[:2]

  The share of variance the two keep, (s_1^2 + s_2^2) / sum(s_i^2), says how faithful the
  flat picture is; neighbours are measured in the full space, so trust them over the picture.

Training starts from random rows (Gaussian, about unit length) and, on a small task, moves them
only part of the way, so in W itself the learned structure sits on top of the random start. With
--change we look at what training added instead, W - W_0, where W_0 is the run's initial table:
building the model again from the run's seed draws exactly the same initial weights.

We leave out the special tokens: <pad>, <s> and <unk> are never, or almost never, read as input,
so their rows say nothing learned, and </s> is a marker rather than a word.
"""

from pathlib import Path

import numpy as np

from minitx.data import SPECIALS
from minitx.errors import UserError
from minitx.tools import plots


def table(model, task, side):
    """(tokens, W (V', D) float64) of one side's embedding, specials left out."""
    stack = model.encoder if side == "source" else model.decoder
    vocab = task.src_vocab if side == "source" else task.tgt_vocab
    keep = [i for i, t in enumerate(vocab.itos) if t not in SPECIALS]
    if len(keep) < 3:
        raise UserError(f"the {side} vocabulary has {len(keep)} tokens besides the specials; a projection needs 3")
    W = np.asarray(stack.embedding.params["W"], dtype=np.float64)[keep]  # (V', D)
    return [vocab.itos[i] for i in keep], W


def pca(W, n=2):
    """W (V, D) -> coordinates (V, n) along the n directions of largest variance, and the
    share of the variance each keeps."""
    centred = W - W.mean(axis=0)  # (V, D)
    U, s, _ = np.linalg.svd(centred, full_matrices=False)  # (V, p), (p,)
    return U[:, :n] * s[:n], s[:n] ** 2 / np.sum(s**2)  # (V, n), (n,)


def cosine(W):
    """W (V, D) -> (V, V) cosine similarity of every pair of rows."""
    unit = W / np.linalg.norm(W, axis=1, keepdims=True)  # (V, D)
    return unit @ unit.T  # (V, V)


def scatter(tokens, xy, width=72, height=22):
    """A text scatter plot of the 2-D coordinates: each token's label starts at its point. A
    label that would overwrite another is replaced by '·' at its point."""
    grid = [[" "] * width for _ in range(height)]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    longest = max(len(t) for t in tokens)
    cols = ((xy[:, 0] - lo[0]) / span[0] * (width - longest - 1)).round().astype(int)
    rows = ((hi[1] - xy[:, 1]) / span[1] * (height - 1)).round().astype(int)  # PC2 grows upwards
    for token, r, c in sorted(zip(tokens, rows, cols), key=lambda x: len(x[0])):
        cells = grid[r][c:c + len(token) + 1]
        if all(ch == " " for ch in cells):
            grid[r][c:c + len(token)] = list(token)
        elif grid[r][c] == " ":
            grid[r][c] = "·"
    return ["".join(row).rstrip() for row in grid]


def figure(tokens, xy, share, path, title):
    """The projection as a PNG; returns the path, or None without matplotlib."""
    fig = plots.new_figure(8, 6.5)
    if fig is None:
        return None
    ax = fig.subplots()
    ax.scatter(xy[:, 0], xy[:, 1], s=12)
    for token, (x, y) in zip(tokens, xy):
        ax.annotate(token, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=8)
    ax.set_xlabel(f"first principal direction ({share[0]:.0%} of the variance)")
    ax.set_ylabel(f"second principal direction ({share[1]:.0%} of the variance)")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    fig.savefig(path, dpi=110)
    return path


def chance_level(V, D, seed=0):
    """The median, over rows, of the nearest neighbour's cosine among V random Gaussian rows in
    D dimensions: how similar the closest row is by chance alone (about 3 / sqrt(D) for a few
    dozen rows). Only similarities well above it say that training grouped two tokens."""
    sim = cosine(np.random.default_rng(seed).standard_normal((V, D)))  # (V, V)
    np.fill_diagonal(sim, -np.inf)
    return float(np.median(sim.max(axis=1)))


def embeddings_command(run_dir, side="source", neighbours=3, png=None, change=False):
    from minitx.build import build_model
    from minitx.inference import load_run

    cfg, model, task = load_run(run_dir, need_data=False)
    tokens, W = table(model, task, side)
    V, D = W.shape
    what = f"the {side} embedding table W"
    if change:
        if cfg.lora.base_run:
            raise UserError(f"--change: {run_dir} was fine-tuned from {cfg.lora.base_run}; its starting table is that run's")
        _, W0 = table(build_model(cfg, task), task, side)  # the same seed draws the same start
        print(f"{run_dir}: rows of W have mean length {np.linalg.norm(W, axis=1).mean():.2f}; training moved "
              f"them by {np.linalg.norm(W - W0, axis=1).mean():.2f} on average from where they started (W_0)")
        W = W - W0  # (V', D)
        what = f"what training added to the {side} embedding table, W - W_0"
    xy, share = pca(W)
    sim = cosine(W)
    print(f"{run_dir}: {what}, {V} tokens (specials left out) x D = {D}")
    print(f"\nnearest neighbours by cosine similarity in all {D} dimensions (for scale: among {V} random rows, "
          f"the nearest neighbour's similarity has median {chance_level(V, D):.2f}):")
    width = max(len(t) for t in tokens)
    np.fill_diagonal(sim, -np.inf)  # a token is not its own neighbour
    for i, token in enumerate(tokens):
        order = np.argsort(-sim[i])[:neighbours]
        print(f"  {token:<{width}}  " + "   ".join(f"{tokens[j]} {sim[i, j]:.2f}" for j in order))
    print(f"\nPCA: the two directions of largest variance keep {share[0]:.0%} + {share[1]:.0%} = "
          f"{share.sum():.0%} of it; horizontal: the first, vertical: the second")
    print("\n".join(scatter(tokens, xy)))
    if not plots.have_matplotlib():
        print(f"\nFor the picture: {plots.INSTALL_HINT}")
        return
    path = Path(png) if png else Path(run_dir) / f"embeddings-{side}{'-change' if change else ''}.png"
    figure(tokens, xy, share, path, f"{run_dir}: {what}, PCA to 2-D")
    print(f"\nwrote {path}")
