"""Exercise 3, attention: the backward pass of scaled dot-product attention, with its mask.

    out = softmax(q @ k^T / sqrt(K), masked) @ v

The forward below is minitx's ScaledDotProductAttention (minitx/nn/attention.py). Replace each
line marked TODO with the gradient it names (the zeros only show the shape), then grade it:

    python -m minitx exercise attention

The grader's queries and keys have different lengths (T = 3, S = 5), so a transpose in the wrong
place shows up as an error rather than hiding, and its mask hides the last keys of one sequence.
"""

import math

import numpy as np

from minitx.nn.attention import MASKED, softmax
from minitx.nn.module import Module


class ScaledDotProductAttention(Module):
    """softmax(q @ k^T / sqrt(K), masked) @ v on (B, H, L, K) arrays. No parameters."""

    def forward(self, q, k, v, mask=None):
        """q (B, H, T, K), k and v (B, H, S, K), mask bool broadcastable to (B, H, T, S)
        (True = may attend) -> out (B, H, T, K)."""
        K = q.shape[-1]
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(K)  # (B, H, T, S)
        # A masked score becomes the constant MASKED, so its weight after the softmax is exactly
        # 0 (unless its whole row is masked) and every row of P still sums to 1.
        if mask is not None:
            scores = np.where(mask, scores, MASKED)  # (B, H, T, S)
        P = softmax(scores)  # (B, H, T, S)
        out = P @ v  # (B, H, T, K)
        self.cache = (q, k, v, mask, P)
        return out

    def backward(self, dout):
        """dout (B, H, T, K) -> dq (B, H, T, K), dk (B, H, S, K), dv (B, H, S, K).

        Undo the forward's lines from the bottom up:
          out = P @ v             a matrix product, like exercise 1: each factor's gradient is
                                  dout times the other factor, transposed to fit.
          P = softmax(scores)     exercise 2, row by row.
          the mask                a masked score was replaced by a constant, so it passes no
                                  gradient back to q and k.
          scores = q @ k^T / c    a product again; the constant c = sqrt(K) does not go away.
        Transposes swap the last two axes only: k^T is k.transpose(0, 1, 3, 2).
        """
        q, k, v, mask, P = self.cache
        K = q.shape[-1]
        # forward: out = P @ v
        dP = np.zeros_like(P)  # TODO dP (B, H, T, S): the gradient of the weights P
        dv = np.zeros_like(v)  # TODO dv (B, H, S, K): the gradient of v
        # forward: P = softmax(scores)
        dscores = np.zeros_like(P)  # TODO dscores (B, H, T, S): the softmax backward of exercise 2
        # forward: scores = np.where(mask, scores, MASKED)
        # A masked score was replaced by a constant, so no gradient reaches it. In the grader's
        # case this line changes no number, and your file passes without it: the softmax gave
        # each masked score a weight of exactly 0, so dscores = P * (...) is already exactly 0
        # there. It matters for a row masked everywhere, whose scores all equal MASKED and whose
        # weights are then uniform, not 0. Write it anyway: it is this forward line's backward.
        if mask is not None:
            dscores = dscores  # TODO dscores: 0 wherever the mask is False
        # forward: scores = q @ k^T / sqrt(K)
        dq = np.zeros_like(q)  # TODO dq (B, H, T, K): the gradient of q
        dk = np.zeros_like(k)  # TODO dk (B, H, S, K): the gradient of k
        return dq, dk, dv
