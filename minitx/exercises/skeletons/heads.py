"""Exercise 4, heads: splitting into heads, merging them back, and the output projection W_O.

Multi-head attention runs H attentions of width K side by side (D = H * K), as an extra array
axis. This layer is minitx's MultiHeadAttention (minitx/nn/attention.py) with the query, key and
value projections left out, as if W_Q = W_K = W_V = I, so that what remains is the reshaping and
W_O:

    q = split_heads(x_q)             (B, T, D) -> (B, H, T, K)
    k = v = split_heads(x_kv)        (B, S, D) -> (B, H, S, K)
    heads = attention(q, k, v)       exercise 3
    concat = merge_heads(heads)      (B, H, T, K) -> (B, T, D)
    y = concat @ W_O + b_O           exercise 1, with the B * T positions as rows

Replace each line marked TODO with the gradient it names, then grade it:

    python -m minitx exercise heads
"""

import numpy as np

from minitx.nn.attention import ScaledDotProductAttention, merge_heads, split_heads
from minitx.nn.module import Module


class HeadsAndOutput(Module):
    """params: W_O (D, D), b_O (D,). child: attention, minitx's ScaledDotProductAttention, whose
    backward (exercise 3) we call as it is."""

    def __init__(self, d_model, n_heads, rng):
        super().__init__()
        self.n_heads = n_heads
        self._param("W_O", rng.standard_normal((d_model, d_model)) / np.sqrt(d_model))
        self._param("b_O", np.zeros(d_model))
        self.attention = self._child("attention", ScaledDotProductAttention())

    def forward(self, x_q, x_kv, mask=None):
        """x_q (B, T, D), x_kv (B, S, D), mask bool broadcastable to (B, H, T, S) -> y (B, T, D)."""
        q = split_heads(x_q, self.n_heads)  # (B, H, T, K)
        k = split_heads(x_kv, self.n_heads)  # (B, H, S, K)
        v = split_heads(x_kv, self.n_heads)  # (B, H, S, K)
        heads = self.attention.forward(q, k, v, mask)  # (B, H, T, K)
        concat = merge_heads(heads)  # (B, T, D)
        B, T, D = concat.shape
        concat_rows = concat.reshape(B * T, D)  # (B*T, D): every position is one row
        y_rows = concat_rows @ self.params["W_O"] + self.params["b_O"]  # (B*T, D)
        self.cache = concat
        return y_rows.reshape(B, T, D)  # (B, T, D)

    def backward(self, dy):
        """dy (B, T, D) -> dx_q (B, T, D), dx_kv (B, S, D); adds dW_O and db_O into self.grads.

          y = concat @ W_O + b_O        exercise 1 once more.
          concat = merge_heads(heads)   only moves numbers: each one's gradient goes back to
                                        the place its number came from. Which of the two
                                        helpers does that?
          heads = attention(q, k, v)    self.attention.backward, given below.
          q, k, v = split_heads(...)    the same reasoning, the other way round. x_kv was read
                                        twice, as the keys and as the values, so it gets a
                                        gradient from each.
        """
        concat = self.cache  # (B, T, D)
        B, T, D = concat.shape
        W_O = self.params["W_O"]
        dy_rows = dy.reshape(B * T, D)  # (B*T, D)
        concat_rows = concat.reshape(B * T, D)  # (B*T, D)
        # forward: y_rows = concat_rows @ W_O + b_O
        dW_O = np.zeros_like(W_O)  # TODO dW_O (D, D): the gradient of W_O, summed over the rows
        db_O = np.zeros_like(self.params["b_O"])  # TODO db_O (D,): the gradient of b_O
        dconcat = np.zeros_like(concat)  # TODO dconcat (B, T, D): the gradient of concat
        self.grads["W_O"] += dW_O
        self.grads["b_O"] += db_O
        # forward: concat = merge_heads(heads)
        dheads = np.zeros((B, self.n_heads, T, D // self.n_heads))  # TODO dheads (B, H, T, K)
        # forward: heads = self.attention.forward(q, k, v, mask)
        dq, dk, dv = self.attention.backward(dheads)  # (B, H, T, K), (B, H, S, K), (B, H, S, K)
        # forward: q = split_heads(x_q, H); k = split_heads(x_kv, H); v = split_heads(x_kv, H)
        dx_q = np.zeros_like(dy)  # TODO dx_q (B, T, D): the gradient of x_q
        dx_kv = np.zeros((B, dk.shape[2], D))  # TODO dx_kv (B, S, D): from the keys and the values
        return dx_q, dx_kv
