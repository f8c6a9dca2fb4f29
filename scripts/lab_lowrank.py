"""Lab: low rank from scratch. A small matrix rebuilt from its first 1, 2, 3 singular directions.

    python scripts/lab_lowrank.py                       # the small matrix only
    python scripts/lab_lowrank.py runs/tour/explain     # and one head's value-to-output map

The matrix A is six people's marks in five tests, three of maths and two of languages; we made
it up so that two things explain most of it: how good someone is overall, and how much better
at maths than at languages (or the reverse). The singular value decomposition finds such
directions by itself:

    A = s_1 u_1 v_1^T + s_2 u_2 v_2^T + ...      s_1 >= s_2 >= ... >= 0

Each piece s_i u_i v_i^T is one column (u_i, a number per person) times one row (v_i, a number
per test): a matrix of rank one, whose rows are all multiples of one row. A_k, the sum of the
first k pieces, is the best rank-k approximation of A (Eckart-Young): no matrix of rank k is
closer in Frobenius norm, and its distance to A is exactly sqrt(s_{k+1}^2 + s_{k+2}^2 + ...),
the size of what was dropped. We print A_k for k = 1, 2, 3 and both sides of that equality.
(A singular vector's sign is arbitrary, -u_i -v_i^T being the same piece; we print each v_i with
its largest entry positive, so every machine prints the same signs.)

Given a run, we do the same to a real matrix: the value-to-output map of head 0 of its first
cross-attention, W_V[:, c] @ W_O[c, :] (D, D), c = the head's K columns. It passes through K
numbers, so it has rank at most K: its first K directions rebuild it up to rounding, whatever
the training did (docs/tour.md, stop 9, measures every head).
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

PEOPLE = ["ann", "bob", "cat", "dan", "eve", "fay"]
TESTS = ["math1", "math2", "math3", "lang1", "lang2"]
MARKS = np.array([
    [9, 8, 9, 2, 1],
    [8, 8, 7, 1, 2],
    [2, 1, 2, 8, 9],
    [1, 2, 1, 9, 8],
    [5, 5, 5, 5, 5],
    [9, 9, 8, 8, 9],
], dtype=np.float64)  # (6, 5)


def svd(A):
    """A = U diag(s) Vt, with each row of Vt flipped (and its column of U) so that its largest
    entry is positive: the same signs on every machine."""
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    flip = np.sign(Vt[np.arange(len(s)), np.abs(Vt).argmax(axis=1)])  # (p,)
    return U * flip, s, Vt * flip[:, None]


def rebuild(U, s, Vt, k):
    """A_k = sum of the first k pieces s_i u_i v_i^T."""
    return (U[:, :k] * s[:k]) @ Vt[:k]  # (m, n)


def print_matrix(A, rows, cols, decimals=1, indent="  "):
    width = max(len(r) for r in rows)
    print(indent + " " * width + "".join(f"{c:>7}" for c in cols))
    for name, row in zip(rows, A):
        print(indent + f"{name:<{width}}" + "".join(f"{v:7.{decimals}f}" for v in row))


def small_matrix():
    A = MARKS
    U, s, Vt = svd(A)
    m, n = A.shape
    print(f"A: {m} people's marks in {n} tests, ({m}, {n}):")
    print_matrix(A, PEOPLE, TESTS, decimals=0)
    print("\nsingular values: " + "  ".join(f"s_{i + 1} = {v:.3f}" for i, v in enumerate(s)))
    for k in (1, 2, 3):
        print(f"\nrank {k}: A_{k} = A_{k - 1} + s_{k} u_{k} v_{k}^T" if k > 1 else "\nrank 1: A_1 = s_1 u_1 v_1^T")
        print(f"  u_{k} (per person) = " + " ".join(f"{v:6.3f}" for v in U[:, k - 1]))
        print(f"  v_{k} (per test)   = " + " ".join(f"{v:6.3f}" for v in Vt[k - 1]))
        A_k = rebuild(U, s, Vt, k)
        print_matrix(A_k, PEOPLE, TESTS)
        dropped = np.sqrt((s[k:] ** 2).sum())
        print(f"  distance |A - A_{k}| = {np.linalg.norm(A - A_k):.3f};  sqrt(s_{k + 1}^2 + ... + s_{len(s)}^2) = {dropped:.3f};"
              f"  largest entry of A - A_{k}: {np.abs(A - A_k).max():.2f}")
    print(f"\nStored as k columns u_i and k rows s_i v_i, A_k costs k ({m} + {n}) = {m + n}, {2 * (m + n)}, {3 * (m + n)} numbers "
          f"for k = 1, 2, 3,\nagainst {m * n} for A: on a matrix this small only k = 1 and 2 save anything; a 64 x 64 matrix "
          "at rank 4 costs 512 numbers\ninstead of 4,096.")


def head_map(run_dir):
    from minitx.inference import load_run

    cfg, model, task = load_run(run_dir, need_data=False)
    attn = model.decoder.layers[0].cross_attn
    D, H = cfg.model.d_model, cfg.model.n_heads
    K = D // H
    W_V = attn.value.params["W"][:, 0:K].astype(np.float64)  # (D, K)
    W_O = attn.output.params["W"][0:K, :].astype(np.float64)  # (K, D)
    M = W_V @ W_O  # (D, D)
    U, s, Vt = svd(M)
    print(f"\nA trained map: W_V[:, 0:{K}] @ W_O[0:{K}, :] of head 0 of the first cross-attention of {run_dir}, ({D}, {D})")
    print("singular values: " + " ".join(f"{v:.2e}" for v in s))
    print(f"{'k':>4}  {'|M - M_k| / |M|':>16}  {'sqrt(dropped s_i^2) / |M|':>26}")
    for k in range(1, min(D, K + 1) + 1):
        M_k = rebuild(U, s, Vt, k)
        print(f"{k:>4}  {np.linalg.norm(M - M_k) / np.linalg.norm(M):16.2e}  {np.sqrt((s[k:] ** 2).sum()) / np.linalg.norm(M):26.2e}")
    print(f"It passes through K = {K} numbers, so its rank is at most {K}: from k = {K} on, what is left is rounding.")


def main(argv):
    small_matrix()
    if len(argv) > 1:
        head_map(argv[1])


if __name__ == "__main__":
    main(sys.argv)
