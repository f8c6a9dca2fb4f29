"""Scaled dot-product attention and multi-head attention (Vaswani et al. 2017, 3.2).

Attention(Q, K, V) = softmax(Q K^T / sqrt(K) + mask) V

A query asks "what am I looking for?", a key says "what do I contain?", and a value is "what I
hand over if chosen". Keys and values are separate projections of the same input, so what a
position is matched on can differ from what it contributes.

Multi-head attention runs H attentions of width K = D / H side by side. The heads are an extra
array axis, (B, H, T, K), never a Python loop. One module serves all three uses in the model:
    encoder self-attention:  forward(x, x, source padding mask)        scores (B, H, S, S)
    decoder self-attention:  forward(y, y, causal & target padding)    scores (B, H, T, T)
    cross-attention:         forward(y, memory, source padding mask)   scores (B, H, T, S)
For self-attention the caller passes the same array twice and adds the two input gradients.
"""

import numpy as np

from minitx.layers import init_weight
from minitx.module import Module

# Masked scores are set to this before the softmax. exp(MASKED - max) underflows to exactly 0,
# so masked positions get zero weight and every row still sums to 1. A finite value (rather
# than -inf) keeps a row that is masked everywhere finite instead of NaN.
MASKED = -1e9


def softmax(x, axis=-1):
    """Stable softmax: subtracting the row maximum changes nothing mathematically and keeps
    exp() from overflowing."""
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def split_heads(x, n_heads):
    """(B, L, D) -> (B, H, L, K): head h owns columns h*K ... (h+1)*K - 1."""
    B, L, D = x.shape
    return x.reshape(B, L, n_heads, D // n_heads).transpose(0, 2, 1, 3)  # (B, H, L, K)


def merge_heads(x):
    """(B, H, L, K) -> (B, L, D): the concatenation of the heads along the last axis."""
    B, H, L, K = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, L, H * K)  # (B, L, D)


class ScaledDotProductAttention(Module):
    """No parameters: softmax(q k^T / sqrt(K), masked) v on (B, H, L, K) arrays."""

    def forward(self, q, k, v, mask=None):
        """q (B, H, T, K), k and v (B, H, S, K), mask bool broadcastable to (B, H, T, S)
        (True = may attend) -> out (B, H, T, K). Keeps the weights P as self.attn."""
        scale = 1.0 / np.sqrt(q.shape[-1])
        scores = (q @ k.transpose(0, 1, 3, 2)) * scale  # (B, H, T, S)
        # The mask must act before the softmax: afterwards the row would no longer sum to 1,
        # and the blocked positions would still have taken part in the normalisation.
        if mask is not None:
            scores = np.where(mask, scores, scores.dtype.type(MASKED))  # (B, H, T, S)
        P = softmax(scores, axis=-1)  # (B, H, T, S)
        self.cache = (q, k, v, P, scale)
        self.attn = P
        return P @ v  # (B, H, T, K)

    def backward(self, dout):
        """dout (B, H, T, K) -> dq (B, H, T, K), dk (B, H, S, K), dv (B, H, S, K).

        out = P @ v               =>  dP = dout @ v^T,  dv = P^T @ dout
        P = softmax(scores)       =>  dscores = P * (dP - sum(dP * P, axis=-1))
            (the softmax Jacobian diag(P) - P P^T applied row by row, never built)
        masked scores are constants, and P is exactly 0 there, so dscores is 0 there too
        scores = q @ k^T * scale  =>  dq = dscores @ k * scale,  dk = dscores^T @ q * scale
        """
        q, k, v, P, scale = self.cache
        dP = dout @ v.transpose(0, 1, 3, 2)  # (B, H, T, S)
        dv = P.transpose(0, 1, 3, 2) @ dout  # (B, H, S, K)
        dscores = P * (dP - (dP * P).sum(axis=-1, keepdims=True))  # (B, H, T, S)
        dscores *= scale
        dq = dscores @ k  # (B, H, T, K)
        dk = dscores.transpose(0, 1, 3, 2) @ q  # (B, H, S, K)
        return dq, dk, dv


class MultiHeadAttention(Module):
    """MultiHead(x_q, x_kv) = concat(head_1, ..., head_H) @ W_O + b_O, where
    head_h = Attention(x_q W_q[:, h], x_kv W_k[:, h], x_kv W_v[:, h]).

    params: W_q, W_k, W_v, W_o (D, D) and b_q, b_k, b_v, b_o (D,); every projection is
    y = x @ W + b. None of these shapes mention S or T: the same weights serve any length,
    while the attention matrix self.attn, (B, H, T, S), grows with both.
    """

    def __init__(self, d_model, n_heads, rng, dtype=np.float32):
        super().__init__()
        assert d_model % n_heads == 0, "d_model must be divisible by n_heads"
        self.n_heads = n_heads
        for name in ("q", "k", "v", "o"):
            self._param(f"W_{name}", init_weight(rng, d_model, d_model, dtype))
            self._param(f"b_{name}", np.zeros(d_model, dtype=dtype))
        self.sdpa = ScaledDotProductAttention()

    @property
    def attn(self):
        """Attention weights of the last forward, (B, H, T, S); each row sums to 1."""
        return self.sdpa.attn

    def project_q(self, x_q):
        """x_q (B, T, D) -> queries split into heads (B, H, T, K)."""
        p = self.params
        return split_heads(x_q @ p["W_q"] + p["b_q"], self.n_heads)  # (B, H, T, K)

    def project_kv(self, x_kv):
        """x_kv (B, S, D) -> keys and values split into heads, each (B, H, S, K).

        We compute both with one matrix product against [W_k | W_v] (D, 2D): the same
        arithmetic as two products, in one larger and faster call."""
        p = self.params
        D = x_kv.shape[-1]
        W_kv = np.concatenate([p["W_k"], p["W_v"]], axis=1)  # (D, 2D)
        b_kv = np.concatenate([p["b_k"], p["b_v"]])  # (2D,)
        kv = x_kv @ W_kv + b_kv  # (B, S, 2D)
        k = split_heads(kv[..., :D], self.n_heads)  # (B, H, S, K)
        v = split_heads(kv[..., D:], self.n_heads)  # (B, H, S, K)
        return k, v, W_kv

    def attend(self, q, k, v, mask=None):
        """Heads in, output projection out: (B, H, T, K) -> (B, T, D), caching nothing.
        Incremental decoding (minitx.decode) calls this with cached keys and values."""
        heads = self.sdpa.forward(q, k, v, mask)  # (B, H, T, K)
        concat = merge_heads(heads)  # (B, T, D)
        return concat @ self.params["W_o"] + self.params["b_o"], concat  # (B, T, D)

    def forward(self, x_q, x_kv, mask=None):
        """x_q (B, T, D), x_kv (B, S, D), mask bool broadcastable to (B, H, T, S), True = may
        attend -> y (B, T, D)."""
        q = self.project_q(x_q)  # (B, H, T, K)
        k, v, W_kv = self.project_kv(x_kv)  # (B, H, S, K) each
        y, concat = self.attend(q, k, v, mask)  # (B, T, D), (B, T, D)
        self.cache = (x_q, x_kv, W_kv, concat)
        return y

    def backward(self, dy):
        """dy (B, T, D) -> dx_q (B, T, D), dx_kv (B, S, D).

        y = concat @ W_o + b_o       =>  dW_o = concat^T @ dy, db_o = sum(dy),
                                         dconcat = dy @ W_o^T
        concat = merge(heads)        =>  dheads = split(dconcat)
        heads = attention(q, k, v)   =>  dq, dk, dv (ScaledDotProductAttention.backward)
        q = x_q @ W_q + b_q          =>  dW_q = x_q^T @ dq, db_q = sum(dq), dx_q = dq @ W_q^T
        [k|v] = x_kv @ [W_k|W_v] + b =>  d[W_k|W_v] = x_kv^T @ [dk|dv], dx_kv = [dk|dv] @ [W_k|W_v]^T
        """
        x_q, x_kv, W_kv, concat = self.cache
        p, g = self.params, self.grads
        D = dy.shape[-1]
        g["W_o"] += concat.reshape(-1, D).T @ dy.reshape(-1, D)  # (D, D)
        g["b_o"] += dy.reshape(-1, D).sum(axis=0)  # (D,)
        dconcat = dy @ p["W_o"].T  # (B, T, D)
        dheads = split_heads(dconcat, self.n_heads)  # (B, H, T, K)
        dq, dk, dv = self.sdpa.backward(dheads)  # (B, H, T, K), (B, H, S, K) x 2
        dq = merge_heads(dq)  # (B, T, D)
        dkv = np.concatenate([merge_heads(dk), merge_heads(dv)], axis=-1)  # (B, S, 2D)
        g["W_q"] += x_q.reshape(-1, D).T @ dq.reshape(-1, D)  # (D, D)
        g["b_q"] += dq.reshape(-1, D).sum(axis=0)  # (D,)
        dW_kv = x_kv.reshape(-1, D).T @ dkv.reshape(-1, 2 * D)  # (D, 2D)
        g["W_k"] += dW_kv[:, :D]
        g["W_v"] += dW_kv[:, D:]
        db_kv = dkv.reshape(-1, 2 * D).sum(axis=0)  # (2D,)
        g["b_k"] += db_kv[:D]
        g["b_v"] += db_kv[D:]
        dx_q = dq @ p["W_q"].T  # (B, T, D)
        dx_kv = dkv @ W_kv.T  # (B, S, D)
        return dx_q, dx_kv
