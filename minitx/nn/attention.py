"""Scaled dot-product attention and multi-head attention (Vaswani et al. 2017, 3.2).

    Attention(q, k, v) = softmax(q @ k^T / sqrt(K), masked) @ v

q, k and v are the queries, keys and values, and K is the head width (D = H * K). A query asks
"what am I looking for?", a key says "what do I contain?", and a value is "what I hand over if
chosen". Keys and values are separate projections of the same input, so what a position is
matched on can differ from what it contributes.

Multi-head attention runs H attentions of width K side by side. The heads are an extra array
axis, (B, H, T, K), never a Python loop (L below stands for S or T, whichever the input has).
One class serves all three uses in the model:
    encoder self-attention:  forward(x, x, source padding mask)        scores (B, H, S, S)
    decoder self-attention:  forward(y, y, causal & target padding)    scores (B, H, T, T)
    cross-attention:         forward(y, memory, source padding mask)   scores (B, H, T, S)
"""

import math

import numpy as np

from minitx.nn.layers import Linear
from minitx.nn.module import Module

# The score we give a position a query may not attend to. exp(MASKED - max) underflows to
# exactly 0, so a masked position gets zero weight and every row still sums to 1. A finite
# value (rather than -inf) keeps a row that is masked everywhere finite instead of NaN.
MASKED = -1e9


def softmax(x):
    """Stable softmax over the last axis: subtracting the row maximum changes nothing
    mathematically and keeps exp() from overflowing."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def split_heads(x, n_heads):
    """(B, L, D) -> (B, H, L, K): head h owns columns h*K ... (h+1)*K - 1 of x."""
    B, L, D = x.shape
    return x.reshape(B, L, n_heads, D // n_heads).transpose(0, 2, 1, 3)  # (B, H, L, K)


def merge_heads(x):
    """(B, H, L, K) -> (B, L, D): the heads concatenated along the last axis. It undoes
    split_heads, so each is the other's backward."""
    B, H, L, K = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, L, H * K)  # (B, L, D)


class ScaledDotProductAttention(Module):
    """No parameters: softmax(q @ k^T / sqrt(K), masked) @ v on (B, H, L, K) arrays."""

    def forward(self, q, k, v, mask=None):
        """q (B, H, T, K), k and v (B, H, S, K), mask bool broadcastable to (B, H, T, S)
        (True = may attend) -> out (B, H, T, K). Keeps the weights P as self.attn."""
        K = q.shape[-1]
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(K)  # (B, H, T, S)
        # We mask so that a position cannot see what it must not: the future (the causal mask)
        # and padding. Masking the scores, before the softmax, is the cheap way to do it and
        # keep every row of P summing to 1; zeroing entries of P afterwards would not.
        if mask is not None:
            scores = np.where(mask, scores, MASKED)  # (B, H, T, S)
        P = softmax(scores)  # (B, H, T, S)
        out = P @ v  # (B, H, T, K)
        self.cache = (q, k, v, mask, P)
        self.attn = P
        return out

    def backward(self, dout):
        """dout (B, H, T, K) -> dq (B, H, T, K), dk (B, H, S, K), dv (B, H, S, K).

        out = P @ v                       =>  dP = dout @ v^T,  dv = P^T @ dout
        P = softmax(scores)               =>  dscores = P * (dP - sum(dP * P, axis=-1))
            (the softmax Jacobian diag(P) - P P^T applied row by row, never built)
        scores = where(mask, scores, c)   =>  dscores = 0 where masked: c is a constant
        scores = q @ k^T / sqrt(K)        =>  dq = dscores @ k / sqrt(K),
                                              dk = dscores^T @ q / sqrt(K)
        """
        q, k, v, mask, P = self.cache
        K = q.shape[-1]
        # forward: out = P @ v
        dP = dout @ v.transpose(0, 1, 3, 2)  # (B, H, T, S)
        dv = P.transpose(0, 1, 3, 2) @ dout  # (B, H, S, K)
        # forward: P = softmax(scores)
        dscores = P * (dP - (dP * P).sum(axis=-1, keepdims=True))  # (B, H, T, S)
        # forward: scores = np.where(mask, scores, MASKED)
        if mask is not None:
            dscores = np.where(mask, dscores, 0.0)  # (B, H, T, S)
        # forward: scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(K)
        dq = dscores @ k / math.sqrt(K)  # (B, H, T, K)
        dk = dscores.transpose(0, 1, 3, 2) @ q / math.sqrt(K)  # (B, H, S, K)
        return dq, dk, dv


class MultiHeadAttention(Module):
    """MultiHead(x_q, x_kv) = concat(head_1, ..., head_H) @ W_O + b_O, where
    head_h = Attention(x_q @ W_Q[:, h], x_kv @ W_K[:, h], x_kv @ W_V[:, h]) and W[:, h] is
    the h-th block of K columns.

    children: query, key, value, output, four Linear(D, D) layers (W_Q, W_K, W_V and W_O with
    their biases), and attention, the ScaledDotProductAttention. None of these shapes mention S
    or T: the same weights serve any length, while the attention matrix self.attn,
    (B, H, T, S), grows with both.
    """

    # The class of the attention core. minitx.nn.fused's subclasses swap in a faster one.
    core_class = ScaledDotProductAttention

    def __init__(self, d_model, n_heads, rng, dtype=np.float32):
        super().__init__()
        assert d_model % n_heads == 0, "d_model must be divisible by n_heads"
        self.n_heads = n_heads
        self.query = self._child("query", Linear(d_model, d_model, rng, dtype))
        self.key = self._child("key", Linear(d_model, d_model, rng, dtype))
        self.value = self._child("value", Linear(d_model, d_model, rng, dtype))
        self.output = self._child("output", Linear(d_model, d_model, rng, dtype))
        self.attention = self._child("attention", self.core_class())

    @property
    def attn(self):
        """Attention weights of the last forward, (B, H, T, S); each row sums to 1."""
        return self.attention.attn

    def forward(self, x_q, x_kv, mask=None):
        """x_q (B, T, D), x_kv (B, S, D), mask bool broadcastable to (B, H, T, S), True = may
        attend -> y (B, T, D). Self-attention passes the same array as x_q and x_kv."""
        q = split_heads(self.query.forward(x_q), self.n_heads)  # (B, H, T, K)
        k = split_heads(self.key.forward(x_kv), self.n_heads)  # (B, H, S, K)
        v = split_heads(self.value.forward(x_kv), self.n_heads)  # (B, H, S, K)
        return self.attend(q, k, v, mask)  # (B, T, D)

    def attend(self, q, k, v, mask=None):
        """Everything after the projections: heads (B, H, T, K) in, (B, T, D) out. Incremental
        decoding (minitx.decode) calls it with keys and values it has kept from earlier steps."""
        heads = self.attention.forward(q, k, v, mask)  # (B, H, T, K)
        concat = merge_heads(heads)  # (B, T, D)
        return self.output.forward(concat)  # (B, T, D)

    def backward(self, dy):
        """dy (B, T, D) -> dx_q (B, T, D), dx_kv (B, S, D): the forward read bottom-up.

        y = output(concat)            =>  dconcat = output'(dy)   (fills dW_O, db_O)
        concat = merge_heads(heads)   =>  dheads = split_heads(dconcat)
        heads = attention(q, k, v)    =>  dq, dk, dv
        v = split(value(x_kv)), k = split(key(x_kv))
                                      =>  dx_kv = value'(merge(dv)) + key'(merge(dk))
        q = split(query(x_q))         =>  dx_q = query'(merge(dq))
        x_kv feeds both the keys and the values, so its two gradients add. In self-attention
        x_q is x_kv too, and the caller adds dx_q + dx_kv.
        """
        # forward (in attend): return self.output.forward(concat)
        dconcat = self.output.backward(dy)  # (B, T, D)
        # forward (in attend): concat = merge_heads(heads)
        dheads = split_heads(dconcat, self.n_heads)  # (B, H, T, K)
        # forward (in attend): heads = self.attention.forward(q, k, v, mask)
        dq, dk, dv = self.attention.backward(dheads)  # (B, H, T, K), (B, H, S, K), (B, H, S, K)
        # forward: v = split_heads(self.value.forward(x_kv), self.n_heads)
        dx_kv = self.value.backward(merge_heads(dv))  # (B, S, D)
        # forward: k = split_heads(self.key.forward(x_kv), self.n_heads)
        dx_kv = dx_kv + self.key.backward(merge_heads(dk))  # (B, S, D)
        # forward: q = split_heads(self.query.forward(x_q), self.n_heads)
        dx_q = self.query.backward(merge_heads(dq))  # (B, T, D)
        return dx_q, dx_kv
