"""Scaled dot-product attention and multi-head attention (Vaswani et al. 2017, 3.2).

Attention(Q, K, V) = softmax(Q K^T / sqrt(K) + mask) V

A query asks "what am I looking for?", a key says "what do I contain?", and a value is "what I
hand over if chosen". Keys and values are separate projections of the same input, so what a
position is matched on can differ from what it contributes.

Multi-head attention runs H attentions of width K = D / H side by side. The heads are an extra
array axis, (B, H, T, K), never a Python loop. It serves all three uses in the model:
    encoder self-attention:  forward(x, source padding mask)           scores (B, H, S, S)
    decoder self-attention:  forward(y, causal & target padding)       scores (B, H, T, T)
    cross-attention:         forward(y, memory, source padding mask)   scores (B, H, T, S)
The two self-attentions are SelfAttention, a MultiHeadAttention that reads one input and so can
project q, k and v in a single matrix product; MultiHeadAttention.forward(x, x, mask) computes
the same thing, returning the gradients of its two uses of x separately.
"""

import math

import numpy as np

from minitx.layers import column_sum, init_weight, row_sum
from minitx.module import Module

# The "+ mask" of the formula above: we add 0 to the scores a query may attend to and MASKED to
# the rest, before the softmax. exp(score + MASKED - max) underflows to exactly 0, so masked
# positions get zero weight and every row still sums to 1. A finite value (rather than -inf)
# keeps a row that is masked everywhere finite instead of NaN. (Adding a small array of 0 and
# MASKED is also several times faster in NumPy than np.where(mask, scores, MASKED).)
MASKED = -1e9


def softmax(x, out=None):
    """Stable softmax over the last axis: subtracting the row maximum changes nothing
    mathematically and keeps exp() from overflowing. Returns a new array, or writes into
    `out` (which may be x itself: the attention reuses its scores' memory this way)."""
    e = np.subtract(x, x.max(axis=-1, keepdims=True), out=out)
    np.exp(e, out=e)  # in place: e is our own array
    e /= row_sum(e)
    return e


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

    def forward(self, q, k, v, mask=None, out=None):
        """q (B, H, T, K), k and v (B, H, S, K), mask bool broadcastable to (B, H, T, S)
        (True = may attend) -> out (B, H, T, K). Keeps the weights P as self.attn.

        `out`, if given, is a (B, H, T, K) array to write the result into; MultiHeadAttention
        passes a view of its (B, T, D) concatenation, so merging the heads costs no copy."""
        scale = 1.0 / math.sqrt(q.shape[-1])  # a Python float: keeps float32 arrays float32
        scores = q @ k.transpose(0, 1, 3, 2)  # (B, H, T, S)
        scores *= scale
        # The mask must act before the softmax: afterwards the row would no longer sum to 1,
        # and the blocked positions would still have taken part in the normalisation.
        if mask is not None:
            zero, blocked = scores.dtype.type(0), scores.dtype.type(MASKED)
            scores += np.where(mask, zero, blocked)  # (B, H, T, S); the addend is mask-sized
        P = softmax(scores, out=scores)  # (B, H, T, S), in the scores' memory
        self.cache = (q, k, v, P, scale)
        self.attn = P
        return np.matmul(P, v, out=out)  # (B, H, T, K)

    def backward(self, dout, out=None):
        """dout (B, H, T, K) -> dq (B, H, T, K), dk (B, H, S, K), dv (B, H, S, K).

        `out`, if given, is three arrays of those shapes to write dq, dk, dv into (the fused
        projections pass views of their fused gradient, which saves copying heads around).

        out = P @ v               =>  dP = dout @ v^T,  dv = P^T @ dout
        P = softmax(scores)       =>  dscores = P * (dP - sum(dP * P, axis=-1))
            (the softmax Jacobian diag(P) - P P^T applied row by row, never built)
        masked scores are constants, and P is exactly 0 there, so dscores is 0 there too
            (this needs at least one open key per row, which every minitx batch has: sources
            end in </s> and targets start with <s>. In a row masked everywhere no P is 0, and
            the rule above does not hold for it.)
        scores = q @ k^T * scale  =>  dq = dscores @ k * scale,  dk = dscores^T @ q * scale
        """
        q, k, v, P, scale = self.cache
        dq_out, dk_out, dv_out = (None, None, None) if out is None else out
        dP = dout @ v.transpose(0, 1, 3, 2)  # (B, H, T, S)
        dv = np.matmul(P.transpose(0, 1, 3, 2), dout, out=dv_out)  # (B, H, S, K)
        # dscores = P * (dP - sum(dP * P)) * scale, computed in dP's memory (dP is ours).
        dscores = dP
        dscores -= row_sum(dP * P)  # (B, H, T, 1)
        dscores *= P
        dscores *= scale
        dq = np.matmul(dscores, k, out=dq_out)  # (B, H, T, K)
        dk = np.matmul(dscores.transpose(0, 1, 3, 2), q, out=dk_out)  # (B, H, S, K)
        return dq, dk, dv


class MultiHeadAttention(Module):
    """MultiHead(x_q, x_kv) = concat(head_1, ..., head_H) @ W_O + b_O, where
    head_h = Attention(x_q W_q[:, h], x_kv W_k[:, h], x_kv W_v[:, h]).

    params: W_q, W_k, W_v, W_o (D, D) and b_q, b_k, b_v, b_o (D,); every projection is
    y = x @ W + b. None of these shapes mention S or T: the same weights serve any length,
    while the attention matrix self.attn, (B, H, T, S), grows with both.

    Every projection multiplies a (B*L, D) array, all positions at once, rather than a
    (B, L, D) one, which NumPy would run as B separate small products (see layers.Linear).
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
        B, T, D = x_q.shape
        q = x_q.reshape(B * T, D) @ p["W_q"]  # (B*T, D)
        q += p["b_q"]  # in place: one pass fewer than "@ W + b"
        return split_heads(q.reshape(B, T, D), self.n_heads)  # (B, H, T, K)

    def project_kv(self, x_kv):
        """x_kv (B, S, D) -> keys and values split into heads, each (B, H, S, K).

        We compute both with one matrix product against [W_k | W_v] (D, 2D): the same
        arithmetic as two products, in one larger and faster call."""
        p = self.params
        B, S, D = x_kv.shape
        W_kv = np.concatenate([p["W_k"], p["W_v"]], axis=1)  # (D, 2D)
        b_kv = np.concatenate([p["b_k"], p["b_v"]])  # (2D,)
        kv = x_kv.reshape(B * S, D) @ W_kv  # (B*S, 2D)
        kv += b_kv
        k, v = kv.reshape(B, S, 2, self.n_heads, D // self.n_heads).transpose(2, 0, 3, 1, 4)  # (B, H, S, K) each
        return k, v, W_kv

    def attend(self, q, k, v, mask=None):
        """Heads in, output projection out: (B, H, T, K) -> (B, T, D), caching nothing.
        Incremental decoding (minitx.decode) calls this with cached keys and values."""
        B, H, T, K = q.shape
        D = H * K
        # concat = merge_heads(heads), with no copy: the attention writes its (B, H, T, K)
        # output through a view of a (B, T, H, K) array, which is concat's own memory layout.
        concat = np.empty((B, T, H, K), dtype=q.dtype)  # (B, T, H, K)
        self.sdpa.forward(q, k, v, mask, out=concat.transpose(0, 2, 1, 3))  # heads (B, H, T, K)
        concat = concat.reshape(B, T, D)  # (B, T, D)
        y = concat.reshape(B * T, D) @ self.params["W_o"]  # (B*T, D)
        y += self.params["b_o"]
        return y.reshape(B, T, D), concat

    def forward(self, x_q, x_kv, mask=None):
        """x_q (B, T, D), x_kv (B, S, D), mask bool broadcastable to (B, H, T, S), True = may
        attend -> y (B, T, D)."""
        q = self.project_q(x_q)  # (B, H, T, K)
        k, v, W_kv = self.project_kv(x_kv)  # (B, H, S, K) each
        y, concat = self.attend(q, k, v, mask)  # (B, T, D), (B, T, D)
        self.cache = (x_q, x_kv, W_kv, concat)
        return y

    def attend_backward(self, dy, concat, out=None):
        """dy (B, T, D) -> dq (B, H, T, K), dk and dv (B, H, S, K); fills dW_o and db_o.
        `out` is passed on to ScaledDotProductAttention.backward.

        y = concat @ W_o + b_o       =>  dW_o = concat^T @ dy, db_o = sum(dy),
                                         dconcat = dy @ W_o^T
        concat = merge(heads)        =>  dheads = split(dconcat)
        heads = attention(q, k, v)   =>  dq, dk, dv (ScaledDotProductAttention.backward)
        """
        g = self.grads
        B, T, D = dy.shape
        dy2 = dy.reshape(B * T, D)  # (B*T, D)
        g["W_o"] += concat.reshape(B * T, D).T @ dy2  # (D, D)
        g["b_o"] += column_sum(dy2)  # (D,)
        dconcat = dy2 @ self.params["W_o"].T  # (B*T, D)
        dheads = split_heads(dconcat.reshape(B, T, D), self.n_heads)  # (B, H, T, K)
        return self.sdpa.backward(dheads, out)  # (B, H, T, K), (B, H, S, K) x 2

    def backward(self, dy):
        """dy (B, T, D) -> dx_q (B, T, D), dx_kv (B, S, D).

        y = attend(q, k, v)          =>  dq, dk, dv (attend_backward)
        q = x_q @ W_q + b_q          =>  dW_q = x_q^T @ dq, db_q = sum(dq), dx_q = dq @ W_q^T
        [k|v] = x_kv @ [W_k|W_v] + b =>  d[W_k|W_v] = x_kv^T @ [dk|dv], dx_kv = [dk|dv] @ [W_k|W_v]^T
        """
        x_q, x_kv, W_kv, concat = self.cache
        p, g = self.params, self.grads
        B, T, D = x_q.shape
        S, H = x_kv.shape[1], self.n_heads
        # The attention writes dq, dk and dv with their heads already merged: dq into a
        # (B, T, D) array, dk and dv into the two halves of a (B, S, 2D) one laid out as
        # forward's [k heads | v heads]. The views below are the forward's own head splits.
        dq_m = np.empty((B, T, H, D // H), dtype=dy.dtype)  # (B, T, H, K)
        dkv = np.empty((B, S, 2, H, D // H), dtype=dy.dtype)  # (B, S, 2, H, K)
        dk_heads, dv_heads = dkv.transpose(2, 0, 3, 1, 4)  # (B, H, S, K) views, each
        self.attend_backward(dy, concat, out=(dq_m.transpose(0, 2, 1, 3), dk_heads, dv_heads))
        dq_m = dq_m.reshape(B * T, D)  # (B*T, D)
        dkv = dkv.reshape(B * S, 2 * D)  # (B*S, 2D)
        g["W_q"] += x_q.reshape(B * T, D).T @ dq_m  # (D, D)
        g["b_q"] += column_sum(dq_m)  # (D,)
        dW_kv = x_kv.reshape(B * S, D).T @ dkv  # (D, 2D)
        g["W_k"] += dW_kv[:, :D]
        g["W_v"] += dW_kv[:, D:]
        db_kv = column_sum(dkv)  # (2D,)
        g["b_k"] += db_kv[:D]
        g["b_v"] += db_kv[D:]
        dx_q = (dq_m @ p["W_q"].T).reshape(B, T, D)  # (B, T, D)
        dx_kv = (dkv @ W_kv.T).reshape(B, S, D)  # (B, S, D)
        return dx_q, dx_kv


class SelfAttention(MultiHeadAttention):
    """Multi-head attention whose queries, keys and values all come from the same x.

    The parameters are MultiHeadAttention's (W_q, W_k, W_v, W_o, ...); only the arithmetic is
    arranged differently. Since q, k and v are projections of one input, we compute all three
    with a single product against [W_q | W_k | W_v] (D, 3D), and in backward the input gets
    one gradient, [dq | dk | dv] @ [W_q | W_k | W_v]^T, which is exactly the sum of what
    MultiHeadAttention.backward returns as dx_q + dx_kv: the two paths from x, added.
    """

    def forward(self, x, mask=None):
        """x (B, L, D), mask bool broadcastable to (B, H, L, L) -> y (B, L, D)."""
        p = self.params
        B, L, D = x.shape
        W_qkv = np.concatenate([p["W_q"], p["W_k"], p["W_v"]], axis=1)  # (D, 3D)
        b_qkv = np.concatenate([p["b_q"], p["b_k"], p["b_v"]])  # (3D,)
        qkv = x.reshape(B * L, D) @ W_qkv  # (B*L, 3D)
        qkv += b_qkv
        # Columns are [q heads | k heads | v heads]; one reshape and transpose splits them all.
        q, k, v = qkv.reshape(B, L, 3, self.n_heads, D // self.n_heads).transpose(2, 0, 3, 1, 4)  # (B, H, L, K) each
        y, concat = self.attend(q, k, v, mask)  # (B, L, D), (B, L, D)
        self.cache = (x, W_qkv, concat)
        return y

    def backward(self, dy):
        """dy (B, L, D) -> dx (B, L, D).

        y = attend(q, k, v)                    =>  dq, dk, dv (attend_backward)
        [q|k|v] = x @ [W_q|W_k|W_v] + b_qkv    =>  d[W_q|W_k|W_v] = x^T @ [dq|dk|dv],
                                                   db_qkv = sum([dq|dk|dv]),
                                                   dx = [dq|dk|dv] @ [W_q|W_k|W_v]^T
        """
        x, W_qkv, concat = self.cache
        g = self.grads
        B, L, D = x.shape
        # [dq | dk | dv] with its columns laid out as forward's qkv: the attention writes each
        # gradient, heads merged, straight into its third of one array, through the same
        # reshape and transpose that split forward's qkv (so no copy and no concatenate).
        dqkv = np.empty((B, L, 3, self.n_heads, D // self.n_heads), dtype=dy.dtype)  # (B, L, 3, H, K)
        self.attend_backward(dy, concat, out=tuple(dqkv.transpose(2, 0, 3, 1, 4)))  # dq, dk, dv (B, H, L, K)
        dqkv = dqkv.reshape(B * L, 3 * D)  # (B*L, 3D)
        dW_qkv = x.reshape(B * L, D).T @ dqkv  # (D, 3D)
        db_qkv = column_sum(dqkv)  # (3D,)
        for i, name in enumerate("qkv"):
            g[f"W_{name}"] += dW_qkv[:, i * D : (i + 1) * D]
            g[f"b_{name}"] += db_qkv[i * D : (i + 1) * D]
        return (dqkv @ W_qkv.T).reshape(B, L, D)  # (B, L, D)
