"""Exercise 2, softmax: the backward pass of P = softmax(x) along each row.

Every attention layer runs one, P = softmax(scores), and its backward is where most hand-written
attention gradients go wrong. The forward below is minitx's softmax (minitx/nn/attention.py).
Replace the line marked TODO with the gradient it names, then grade your file:

    python -m minitx exercise softmax
"""

import numpy as np

from minitx.nn.module import Module


class Softmax(Module):
    """P[..., j] = exp(x[..., j]) / sum_k exp(x[..., k]), each row of the last axis on its own.
    No parameters."""

    def forward(self, x):
        """x (..., S) -> P (..., S); every row of P sums to 1."""
        # Subtracting the row's maximum cancels between the numerator and the denominator, so it
        # changes nothing (and needs no gradient); it keeps exp() from overflowing.
        e = np.exp(x - x.max(axis=-1, keepdims=True))  # (..., S)
        P = e / e.sum(axis=-1, keepdims=True)  # (..., S)
        self.cache = P
        return P

    def backward(self, dout):
        """dout (..., S) -> dx (..., S).

        Within one row, every P[j] depends on every x[i]:
            dP[j] / dx[i] = P[j] * (1 if i == j else 0) - P[j] * P[i]
        and dx[i] = sum_j dout[j] * dP[j] / dx[i]. The first term gives a diagonal part; the
        second gives the same row sum for every i of the row, times P[i]. Write both with
        elementwise products and one row sum (keepdims=True), never the (S, S) matrix of slopes.
        The grader's dout is random, never all ones: rows of P always sum to 1, so for
        dout = ones the true dx is 0. A backward that forgets the row sum would then give P,
        and fail; but one that subtracts each row's plain mean of dout instead of the row sum
        (which is dout's mean weighted by P) would give exactly 0, and pass.
        """
        P = self.cache  # (..., S)
        # forward: P = e / e.sum(axis=-1, keepdims=True), e = exp(x - max)
        dx = np.zeros_like(P)  # TODO dx (..., S): the gradient of x, row by row
        return dx
