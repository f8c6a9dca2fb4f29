"""Singular values of trained weights: how much of a matrix can be dropped, and why.

Every real matrix W (m, n) factors as W = U diag(s) V^T (the singular value decomposition), with
U (m, p) and V (n, p) having orthonormal columns, p = min(m, n), and s_1 >= s_2 >= ... >= s_p >= 0.
W is a sum of p rank-one pieces s_i u_i v_i^T, and keeping the k largest gives

    W_k = U[:, :k] diag(s[:k]) V[:, :k]^T                                      rank k

Eckart-Young (1936): no matrix of rank k is closer to W in Frobenius norm than W_k, and the
error is exactly what we dropped:

    ||W - W_k||_F^2 = s_{k+1}^2 + ... + s_p^2

Because ||W||_F^2 = s_1^2 + ... + s_p^2 too, the "energy" kept by the top k,

    energy(k) = (s_1^2 + ... + s_k^2) / (s_1^2 + ... + s_p^2),

says exactly what fraction of the matrix a rank-k approximation keeps; 1 - energy(k) is its
squared relative error. A matrix whose energy is nearly all in a few singular values is
effectively low rank: the rest can be dropped at little cost. The effective rank at 90% is the
smallest k with energy(k) >= 0.9. This is the question behind LoRA (minitx.lora): is the update
fine-tuning makes, W_finetuned - W_base, effectively low rank?

    python -m minitx lowrank RUN_DIR [--base BASE_RUN] [--k N] [--png]

prints, for every 2-D weight of a run (or, with --base, for every update W_run - W_base), the
first singular values, energy(k), the effective ranks at 90% and 99%, and checks Eckart-Young:
the squared error of the rank-k truncation next to the sum of the dropped s_i^2.

    python -m minitx lowrank RUN_DIR --heads [--png]

answers a different question, the one behind "the value map is a low-rank product": per head.
Head h of an attention reads the input through its K columns of W_V and writes into the
residual stream through its K rows of W_O (minitx.tools.explain shows one head doing it), so
what it does to the values it carries is one (D, D) map, the product of a (D, K) and a (K, D)
block:

    W_VO = W_V[:, c] @ W_O[c, :]        c = h*K ... (h+1)*K - 1          rank at most K

and likewise the bilinear form its scores come from (leaving the biases out):

    W_QK = W_Q[:, c] @ W_K[:, c]^T      score(x, x') = x @ W_QK @ x'^T / sqrt(K)   rank at most K

A (D, D) matrix stored whole costs D^2 numbers; as the two blocks it costs 2DK. Its singular
values show the rank: K of them are of the size of the weights, and the (K+1)-th and after are
float64 rounding noise, about 1e-16 of the first, however the model trained.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minitx.tools import plots
from minitx.tools.ablate import attentions
from minitx.errors import UserError

N_SHOWN = 5  # singular values printed per matrix; the PNG shows them all


def singular_values(W):
    """W (m, n) -> s (p,), p = min(m, n), largest first. In float64 whatever W's dtype."""
    return np.linalg.svd(np.asarray(W, dtype=np.float64), compute_uv=False)


def energy(s, k):
    """Fraction of sum(s^2) in the k largest singular values (s sorted, largest first)."""
    total = np.sum(s**2)
    return float(np.sum(s[:k] ** 2) / total) if total > 0 else 1.0


def effective_rank(s, fraction):
    """The smallest k with energy(k) >= fraction."""
    cumulative = np.cumsum(s**2)  # cumulative[k - 1] = s_1^2 + ... + s_k^2
    if cumulative[-1] == 0:
        return 0
    return int(np.searchsorted(cumulative, fraction * cumulative[-1]) + 1)


def truncate(W, k):
    """The best rank-k approximation W_k = U[:, :k] diag(s[:k]) V[:, :k]^T, (m, n)."""
    U, s, Vt = np.linalg.svd(np.asarray(W, dtype=np.float64), full_matrices=False)
    return (U[:, :k] * s[:k]) @ Vt[:k]  # (m, k) @ (k, n) -> (m, n)


def eckart_young(W, k):
    """(||W - W_k||_F^2, s_{k+1}^2 + ... + s_p^2, their relative difference).

    The two agree to float64 rounding for any W. The relative difference is taken against the
    larger of the two, floored at 1e-20 of ||W||_F^2 so that a truncation that drops nothing
    (k >= rank) does not divide rounding noise by rounding noise."""
    W = np.asarray(W, dtype=np.float64)
    s = singular_values(W)
    error = float(np.sum((W - truncate(W, k)) ** 2))
    dropped = float(np.sum(s[k:] ** 2))
    floor = 1e-20 * float(np.sum(s**2)) or 1e-300
    return error, dropped, abs(error - dropped) / max(error, dropped, floor)


@dataclass
class Spectrum:
    """What we report about one matrix."""

    name: str
    shape: tuple
    s: np.ndarray  # all singular values, largest first
    k: int
    energy_k: float  # energy(k)
    rank90: int
    rank99: int
    error: float  # ||W - W_k||_F^2
    dropped: float  # sum of s_i^2 for i > k
    rel_diff: float  # Eckart-Young says this is 0, up to rounding

    @property
    def zero(self):
        return not np.any(self.s > 0)


def analyse(name, W, k):
    s = singular_values(W)
    error, dropped, rel = eckart_young(W, k)
    return Spectrum(name, W.shape, s, k, energy(s, k), effective_rank(s, 0.9), effective_rank(s, 0.99),
                    error, dropped, rel)


def run_matrices(run_dir, base=None):
    """name -> 2-D weight of a run (adapter runs come merged: W0 + s * A @ B), or with `base`,
    name -> W_run - W_base for every 2-D weight, in float64."""
    from minitx.inference import load_run

    _, model, _ = load_run(run_dir)
    weights = {k: v.astype(np.float64) for k, v in model.params.items() if v.ndim == 2}
    if base is None:
        return weights
    _, base_model, _ = load_run(base)
    for name, W in weights.items():
        W0 = base_model.params.get(name)
        if W0 is None or W0.shape != W.shape:
            raise UserError(f"--base {base}: its weights do not match {run_dir}'s ({name} differs); "
                            f"the base must be the run that {run_dir} was fine-tuned from")
        weights[name] = W - W0
    return weights


def format_table(spectra):
    k = spectra[0].k
    width = max(len(sp.name) for sp in spectra)
    head = (f"{'matrix':<{width}}  {'shape':>7}  {'first singular values':<34}  {f'energy(k={k})':>11}  "
            f"{'r90':>3}  {'r99':>3}  {'|W-W_k|_F^2':>11}  {'sum s_i^2,i>k':>13}  {'rel diff':>8}")
    lines = [head]
    for sp in spectra:
        shape = "x".join(map(str, sp.shape))
        if sp.zero:
            lines.append(f"{sp.name:<{width}}  {shape:>7}  all zero (unchanged)")
            continue
        first = " ".join(f"{v:.3g}" for v in sp.s[:N_SHOWN])
        lines.append(f"{sp.name:<{width}}  {shape:>7}  {first:<34}  {sp.energy_k:11.4f}  {sp.rank90:3d}  "
                     f"{sp.rank99:3d}  {sp.error:11.4e}  {sp.dropped:13.4e}  {sp.rel_diff:8.1e}")
    return "\n".join(lines)


GROUPS = (
    ("encoder self-attention", lambda n: n.startswith("encoder.") and ".self_attn." in n),
    ("decoder self-attention", lambda n: n.startswith("decoder.") and ".self_attn." in n),
    ("cross-attention", lambda n: ".cross_attn." in n),
    ("feed-forward", lambda n: ".ff." in n),
    ("embeddings and output", lambda n: True),
)


def spectra_figure(spectra, path, title=""):
    """One column per kind of weight. Top: each matrix's s_i / s_1 against i, log scale.
    Bottom: energy(k) against k, with the 90% line. A dashed line in each panel is a random
    Gaussian matrix of the same shape, whose energy is spread over nearly every direction.
    Returns the path, or None without matplotlib."""
    groups = {label: [] for label, _ in GROUPS}
    for sp in spectra:
        if not sp.zero:
            groups[next(g for g, belongs in GROUPS if belongs(sp.name))].append(sp)
    groups = {label: members for label, members in groups.items() if members}
    fig = plots.new_figure(3.4 * len(groups), 6.4)
    if fig is None:
        return None
    axes = fig.subplots(2, len(groups), squeeze=False)
    rng = np.random.default_rng(0)
    for col, (label, members) in enumerate(groups.items()):
        top, bottom = axes[0][col], axes[1][col]
        for sp in members:
            short = sp.name.replace("encoder.", "enc ").replace("decoder.", "dec ").replace("layers.", "")
            i = np.arange(1, len(sp.s) + 1)
            top.semilogy(i, sp.s / sp.s[0], linewidth=1, label=short)
            bottom.plot(i, np.cumsum(sp.s**2) / np.sum(sp.s**2), linewidth=1)
        reference = singular_values(rng.standard_normal(members[0].shape))
        i = np.arange(1, len(reference) + 1)
        top.semilogy(i, reference / reference[0], "k--", linewidth=1, label="random Gaussian")
        bottom.plot(i, np.cumsum(reference**2) / np.sum(reference**2), "k--", linewidth=1)
        bottom.axhline(0.9, color="grey", linewidth=0.8, linestyle=":")
        top.set_title(label, fontsize=10)
        top.set_ylabel("s_i / s_1")
        bottom.set_ylabel("energy(k)")
        bottom.set_xlabel("k (number of singular values kept)")
        bottom.set_ylim(0, 1.02)
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
        top.legend(fontsize=6, ncol=1 + len(members) // 10)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    return path


def column_blocks(W, H):
    """W (D, D) -> (H, D, K): head h's K columns W[:, h*K:(h+1)*K] as block h, the heads on an
    axis of their own, as split_heads puts them."""
    D = W.shape[0]
    return W.reshape(D, H, D // H).transpose(1, 0, 2)  # (H, D, K)


def head_maps(model):
    """[(attention name, head, W_VO (D, D), W_QK (D, D))] for every head of every attention, in
    float64."""
    maps = []
    for name, attn in attentions(model).items():
        W_Q, W_K, W_V, W_O = (np.asarray(getattr(attn, n).params["W"], dtype=np.float64)
                              for n in ("query", "key", "value", "output"))
        D, H = W_Q.shape[0], attn.n_heads
        W_O_heads = W_O.reshape(H, D // H, D)  # (H, K, D): head h's K rows of W_O
        W_VO = column_blocks(W_V, H) @ W_O_heads  # (H, D, K) @ (H, K, D) -> (H, D, D)
        W_QK = column_blocks(W_Q, H) @ column_blocks(W_K, H).transpose(0, 2, 1)  # (H, D, K) @ (H, K, D) -> (H, D, D)
        maps += [(name, h, W_VO[h], W_QK[h]) for h in range(H)]
    return maps


def numerical_rank(s):
    """How many singular values stand above float64 rounding of the largest (s sorted)."""
    return int(np.sum(s > s[0] * 1e-10)) if s[0] > 0 else 0


def heads_table(model):
    """The lines `lowrank --heads` prints, and [(label, s_VO, s_QK)] for the picture."""
    maps = head_maps(model)
    D = maps[0][2].shape[0]
    K = D // next(iter(attentions(model).values())).n_heads
    lines = [
        f"Per head: the value-to-output map W_VO = W_V[:, c] @ W_O[c, :] and the query-key map "
        f"W_QK = W_Q[:, c] @ W_K[:, c]^T, c = the head's K = {K} columns (rows of W_O).",
        f"Each is (D, D) = ({D}, {D}): {D * D:,} numbers if stored whole, but built from a (D, K) and a "
        f"(K, D) block: 2DK = {2 * D * K:,} parameters (fewer than D^2 whenever H > 2). Its rank is at most K = {K}: "
        f"s_{K + 1} and beyond are rounding noise.",
        "",
    ]
    width = max(len(f"{name}.head{h}") for name, h, _, _ in maps)
    shown = D <= 8  # small enough to print every singular value
    if shown:
        head = "  ".join(f"{f's_{i + 1}':>8}" for i in range(D))
        lines.append(f"{'head':<{width}}  map    {head}  rank")
    else:
        lines.append(f"{'head':<{width}}  map    {'s_1':>8}  {f's_{K}':>8}  {f's_{K + 1}':>8}  "
                     f"{f's_{K + 1}/s_1':>9}  rank")
    spectra, ranks = [], []
    for name, h, W_VO, W_QK in maps:
        label = f"{name}.head{h}"
        pair = []
        for which, M in (("W_VO", W_VO), ("W_QK", W_QK)):
            s = singular_values(M)
            pair.append(s)
            ranks.append(numerical_rank(s))
            if shown:
                values = "  ".join(f"{v:8.2e}" for v in s)
            else:
                values = f"{s[0]:8.3f}  {s[K - 1]:8.3f}  {s[K]:8.1e}  {s[K] / s[0]:9.1e}"
            lines.append(f"{label:<{width}}  {which}  {values}  {numerical_rank(s):4d}")
            label = ""
        spectra.append((f"{name}.head{h}", *pair))
    lines += ["", f"Every one of the {len(ranks)} maps has rank {min(ranks)}"
                  + (f" to {max(ranks)}" if max(ranks) != min(ranks) else "")
                  + f" (singular values above 1e-10 of the largest); K = {K}."]
    return lines, spectra, K


def heads_figure(spectra, K, path, title=""):
    """Two panels, W_VO and W_QK: every head's s_i / s_1 against i on a log scale, with a line
    at i = K where the spectrum falls to rounding noise. Returns the path, or None without
    matplotlib."""
    fig = plots.new_figure(10, 4)
    if fig is None:
        return None
    axes = fig.subplots(1, 2)
    for ax, which, col in ((axes[0], "value-to-output W_V[:, c] @ W_O[c, :]", 1),
                           (axes[1], "query-key W_Q[:, c] @ W_K[:, c]^T", 2)):
        for entry in spectra:
            s = entry[col]
            i = np.arange(1, len(s) + 1)
            ax.semilogy(i, np.maximum(s / s[0], 1e-18), marker=".", linewidth=0.8, alpha=0.7)
        ax.axvline(K + 0.5, color="k", linestyle="--", linewidth=1, label=f"K = {K}")
        ax.set_title(f"{which}\n{len(spectra)} heads", fontsize=9)
        ax.set_xlabel("i (singular value index)")
        ax.set_ylabel("s_i / s_1")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    return path


def heads_cli(run_dir, png=False):
    """`minitx lowrank RUN_DIR --heads [--png]`."""
    from minitx.inference import load_run

    _, model, _ = load_run(run_dir, need_data=False)
    lines, spectra, K = heads_table(model)
    print("\n".join(lines))
    if not png:
        return
    if not plots.have_matplotlib():
        print(f"\n{plots.INSTALL_HINT}")
        return
    path = Path(run_dir) / "head-spectra.png"
    heads_figure(spectra, K, path, f"per-head maps of {run_dir}: rank K = {K}")
    print(f"wrote {path}")


def run_cli(run_dir, base=None, k=4, png=False, heads=False):
    """`minitx lowrank RUN_DIR [--base BASE] [--k N] [--png] [--heads]`: print the table, draw the PNG."""
    if heads and base:
        raise UserError("--heads and --base: choose one (--heads looks at one run's heads, --base at an update)")
    if heads:
        return heads_cli(run_dir, png)
    if k < 1:
        raise UserError(f"--k {k}: must be a positive integer")
    weights = run_matrices(run_dir, base)
    spectra = [analyse(name, W, k) for name, W in weights.items()]
    what = f"the update W - W_base ({run_dir} minus {base})" if base else f"the weights of {run_dir}"
    print(f"singular values of {what}; energy(k) = share of sum(s_i^2) in the top {k}; r90, r99: the "
          f"smallest k keeping 90% and 99%")
    print(f"Eckart-Young: |W - W_k|_F^2 (rank-{k} truncation) must equal the sum of the dropped s_i^2\n")
    print(format_table(spectra))
    checked = [sp for sp in spectra if not sp.zero]
    if checked:
        worst = max(sp.rel_diff for sp in checked)
        print(f"\nEckart-Young held for all {len(checked)} nonzero matrices: largest relative difference {worst:.1e}")
    if not png:
        return
    if not plots.have_matplotlib():
        print(f"\n{plots.INSTALL_HINT}")
        return
    path = Path(run_dir) / ("spectra-update.png" if base else "spectra.png")
    spectra_figure(spectra, path, f"singular values of {what}")
    print(f"wrote {path}")
