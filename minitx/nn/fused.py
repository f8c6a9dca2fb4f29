"""The same layers, rewritten for speed: opt-in with `model.fused: true`.

Everything in minitx.nn says the math one formula per line. This module trades that reading for
speed, the way a framework's kernels do, and it changes nothing else: every class here is a
subclass of its plain parent with the same parameters (so checkpoints load either way) and the
same numbers up to float rounding (tests/test_fused.py checks forward and every gradient against
the parent in float64, to 1e-12). Read the plain layer first; each docstring below names the
plain lines it replaces and what that buys.

Where the time goes in a plain step, and what each trick does about it:

1. Fewer, larger matrix products. Self-attention's q, k and v are three products with the same
   input, so we make them one against [W_Q | W_K | W_V] (FusedSelfAttention); cross-attention's
   k and v likewise (FusedCrossAttention). The same arithmetic, in fewer and faster calls.
2. No copies between head layouts. merge_heads and split_heads copy (B, H, L, K) arrays to and
   from (B, L, D). We let the attention write its output through a transposed view of the
   (B, L, D) concatenation, and its backward write dq, dk and dv straight into the columns of
   the fused [q | k | v] gradient (the `out=` arguments of FusedScaledDotProductAttention).
3. Fewer passes over memory. Each NumPy expression allocates and fills a new array; on the
   largest arrays of a step (the (B, L, F) feed-forward activations, the (B, T, V) logits) that
   traffic, not arithmetic, is the cost. So: ReLU in place, the softmax in the scores' memory,
   masks added rather than selected with np.where, layer norm's row sums as products with gamma,
   and a loss that never builds the full (B, T, V) log-probabilities.
4. Row and column sums as BLAS products (row_sum, column_sum): NumPy's .sum(axis=-1) walks
   thousands of short rows one at a time.
5. The embedding's scatter-add by sorting and np.add.reduceat instead of np.add.at.

What each class buys, measured by `python scripts/bench_layers.py tiny base` (forward and
backward of one batch, one BLAS thread, median of 30; both columns include copying the inputs,
which the fused layers may overwrite):

    tiny: B = 64, L = 11, D = 64, H = 4, F = 256; forward + backward, median of 30
    layer                         plain ms  fused ms  plain/fused
    Linear (D -> F)                  1.105     0.591         1.87
    FeedForward                      1.306     1.219         1.07
    LayerNorm                        0.183     0.104         1.76
    Embedding (V = 14)               0.306     0.057         5.40
    ScaledDotProductAttention        0.503     0.396         1.27
    cross-attention                  1.253     1.081         1.16
    self-attention                   1.220     1.038         1.18
    CrossEntropy (V = 14)            0.087     0.081         1.08

    base: B = 64, L = 32, D = 256, H = 8, F = 1024; forward + backward, median of 30
    layer                         plain ms  fused ms  plain/fused
    Linear (D -> F)                 28.146    25.618         1.10
    FeedForward                     52.623    51.029         1.03
    LayerNorm                        1.536     0.969         1.59
    Embedding (V = 1000)             3.517     1.573         2.24
    ScaledDotProductAttention        5.692     4.529         1.26
    cross-attention                 32.825    31.858         1.03
    self-attention                  32.129    30.871         1.04
    CrossEntropy (V = 1000)          4.970     3.160         1.57

On tiny's small arrays the per-call and per-pass savings are large (the embedding's grouped
scatter 5x, the in-place Linear and layer norm nearly 2x); on base the matrix products, which
fusing leaves as they are, dominate most layers, and what remains is in layer norm, the loss and
the embedding. `python -m minitx bench CONFIG` times whole steps of both implementations in one
run; the README's speed table reports what fusing buys, step for step.
"""

import math

import numpy as np

from minitx.nn import LayerSet
from minitx.nn.attention import MASKED, MultiHeadAttention, ScaledDotProductAttention
from minitx.nn.embedding import Embedding, TiedOutput
from minitx.nn.layernorm import LayerNorm
from minitx.nn.layers import FeedForward, Linear, ReLU
from minitx.nn.loss import CrossEntropy


def row_sum(x):
    """x.sum(axis=-1, keepdims=True) as a matrix-vector product with a vector of ones: the same
    numbers up to rounding, in one BLAS call (3 to 10 times faster on thousands of short rows)."""
    rows = x.reshape(-1, x.shape[-1])  # (N, D)
    return (rows @ np.ones(x.shape[-1], dtype=x.dtype)).reshape(*x.shape[:-1], 1)  # (..., 1)


def column_sum(x):
    """x (..., D) summed over every position, x.reshape(-1, D).sum(axis=0), as the
    vector-matrix product ones @ rows. Every bias gradient is one of these."""
    rows = x.reshape(-1, x.shape[-1])  # (N, D)
    return np.ones(rows.shape[0], dtype=x.dtype) @ rows  # (D,)


def softmax_inplace(x):
    """softmax(x) over the last axis, written into x's own memory (x must be ours to overwrite)."""
    x -= x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= row_sum(x)
    return x


class FusedLinear(Linear):
    """Replaces `y_rows = x_rows @ W + b` with the bias added in place (trick 3), and the bias
    gradient `dout_rows.sum(axis=0)` with column_sum (trick 4)."""

    def forward(self, x):
        W = self.params["W"]
        x_rows = x.reshape(-1, W.shape[0])  # (N, D_in)
        self.cache = x_rows
        y = x_rows @ W  # (N, D_out)
        y += self.params["b"]
        return y.reshape(*x.shape[:-1], W.shape[1])  # (..., D_out)

    def backward(self, dout):
        x_rows = self.cache  # (N, D_in)
        W = self.params["W"]
        dout_rows = dout.reshape(-1, W.shape[1])  # (N, D_out)
        self.grads["W"] += x_rows.T @ dout_rows  # (D_in, D_out)
        self.grads["b"] += column_sum(dout_rows)  # (D_out,)
        return (dout_rows @ W.T).reshape(*dout.shape[:-1], W.shape[0])  # (..., D_in)


class FusedReLU(ReLU):
    """Replaces `np.maximum(x, 0)` and `dout * (x > 0)` with the products x * (x > 0) and
    dout * (x > 0), which a caller may have written into an array of its own with `out=`
    (trick 3): in place, the (B, L, F) activations and their gradient need no second array.
    Only FusedFeedForward passes `out=`, and only for arrays it made itself; without it, the
    layer writes into neither its input nor the gradient it was handed. (Multiplying by the mask
    leaves -0.0 where x < 0: equal to 0 in every comparison and product.)"""

    def forward(self, x, out=None):
        positive = x > 0
        self.cache = positive
        return np.multiply(x, positive, out=out)

    def backward(self, dout, out=None):
        return np.multiply(dout, self.cache, out=out)


class FusedFeedForward(FeedForward):
    """FeedForward built by its own constructor from FusedLinear and FusedReLU (the same
    parameters, drawn in the same order from rng). Replaces the plain `a = self.relu.forward(h)`
    and `dh = self.relu.backward(da)` with the ReLU applied in place to h and to da: both are
    new arrays of this layer's own Linear children, which nobody else holds."""

    linear_class = FusedLinear
    relu_class = FusedReLU

    def forward(self, x):
        h = self.lin1.forward(x)  # (B, L, F), a new array
        a = self.relu.forward(h, out=h)  # (B, L, F), in h's memory
        return self.lin2.forward(a)  # (B, L, D)

    def backward(self, dout):
        da = self.lin2.backward(dout)  # (B, L, F), a new array
        dh = self.relu.backward(da, out=da)  # (B, L, F), in da's memory
        return self.lin1.backward(dh)  # (B, L, D)


class FusedLayerNorm(LayerNorm):
    """Replaces the plain forward's separate mean, variance and scaling expressions with row
    sums as BLAS products (trick 4) and in-place updates (trick 3), and the backward's
    `mean(dxhat)` and `mean(dxhat * xhat)` with the matrix-vector products
        sum_j dxhat_j        = sum_j dout_j gamma_j          = dout @ gamma
        sum_j dxhat_j xhat_j = sum_j (dout_j xhat_j) gamma_j = (dout * xhat) @ gamma
    so that dxhat * xhat is never built."""

    def forward(self, x):
        D = x.shape[-1]
        mean = row_sum(x) / D  # (..., 1)
        xc = x - mean  # (..., D)
        var = row_sum(xc * xc) / D  # (..., 1)
        rstd = 1.0 / np.sqrt(var + self.eps)  # (..., 1)
        xhat = xc  # (..., D): we scale xc in place, it is our own array
        xhat *= rstd
        self.cache = (xhat, rstd)
        y = xhat * self.params["gamma"]  # (..., D)
        y += self.params["beta"]
        return y

    def backward(self, dout):
        xhat, rstd = self.cache
        D = xhat.shape[-1]
        gamma = self.params["gamma"]
        dout_xhat = dout * xhat  # (..., D)
        self.grads["gamma"] += column_sum(dout_xhat)  # (D,)
        self.grads["beta"] += column_sum(dout)  # (D,)
        mean_dxhat = (dout.reshape(-1, D) @ gamma).reshape(rstd.shape) / D  # (..., 1)
        mean_dxhat_xhat = (dout_xhat.reshape(-1, D) @ gamma).reshape(rstd.shape) / D  # (..., 1)
        dx = dout * gamma  # (..., D): dxhat, which becomes dx in place
        dx -= mean_dxhat
        dx -= xhat * mean_dxhat_xhat
        dx *= rstd
        return dx


class FusedEmbedding(Embedding):
    """Replaces `np.add.at(dW, ids, dout * not_pad)`, which NumPy runs one position at a time,
    with a grouped sum (trick 5): sort the positions by id so equal ids sit next to each other,
    add each run of equal ids with np.add.reduceat, and add one summed row per distinct id."""

    def backward(self, dout):
        ids = self.cache.reshape(-1)  # (N,)
        dout = dout.reshape(-1, dout.shape[-1])  # (N, D)
        order = np.argsort(ids, kind="stable")  # (N,) positions, grouped by id
        sorted_ids = ids[order]  # (N,)
        starts = np.flatnonzero(np.diff(sorted_ids, prepend=-1))  # (U,) first position of each id
        unique_ids = sorted_ids[starts]  # (U,)
        sums = np.add.reduceat(dout[order], starts, axis=0)  # (U, D) one summed row per id
        keep = unique_ids != self.pad_id  # the padding row gets no gradient from the lookup
        self.grads["W"][unique_ids[keep]] += sums[keep]
        return None


class FusedScaledDotProductAttention(ScaledDotProductAttention):
    """Replaces the plain forward's new arrays with work in place (trick 3): the mask is added
    (0 or MASKED) instead of selected with np.where, the softmax overwrites the scores, and the
    backward's dscores is built in dP's memory. The masked entries need no explicit zeroing in
    backward: P is exactly 0 there, so P * (...) is too (this needs at least one open key per
    row, which every minitx batch has: sources end in </s> and targets start with <s>).

    `out=` arguments let the callers choose where results land (trick 2): forward writes the
    (B, H, T, K) output into a view of the caller's (B, T, D) concatenation, and backward writes
    dq, dk, dv into views of the caller's fused projection gradient."""

    def forward(self, q, k, v, mask=None, out=None):
        scale = 1.0 / math.sqrt(q.shape[-1])  # a Python float: keeps float32 arrays float32
        scores = q @ k.transpose(0, 1, 3, 2)  # (B, H, T, S)
        scores *= scale
        if mask is not None:
            zero, blocked = scores.dtype.type(0), scores.dtype.type(MASKED)
            scores += np.where(mask, zero, blocked)  # the addend is only mask-sized
        P = softmax_inplace(scores)  # (B, H, T, S), in the scores' memory
        self.cache = (q, k, v, P, scale)
        self.attn = P
        return np.matmul(P, v, out=out)  # (B, H, T, K)

    def backward(self, dout, out=None):
        q, k, v, P, scale = self.cache
        dq_out, dk_out, dv_out = (None, None, None) if out is None else out
        dP = dout @ v.transpose(0, 1, 3, 2)  # (B, H, T, S)
        dv = np.matmul(P.transpose(0, 1, 3, 2), dout, out=dv_out)  # (B, H, S, K)
        dscores = dP  # P * (dP - sum(dP * P)) * scale, in dP's memory
        dscores -= row_sum(dP * P)  # (B, H, T, 1)
        dscores *= P
        dscores *= scale
        dq = np.matmul(dscores, k, out=dq_out)  # (B, H, T, K)
        dk = np.matmul(dscores.transpose(0, 1, 3, 2), q, out=dk_out)  # (B, H, S, K)
        return dq, dk, dv


class FusedCrossAttention(MultiHeadAttention):
    """Multi-head attention with keys and values projected in one product against
    [W_K | W_V] (D, 2D) (trick 1), and heads merged and split through views, never copied
    (trick 2). It replaces the plain
        k = split_heads(self.key.forward(x_kv)); v = split_heads(self.value.forward(x_kv))
        concat = merge_heads(heads)
    and their backward lines. The parameters stay the four Linear children's."""

    core_class = FusedScaledDotProductAttention

    def _weights(self, names):
        """[W_a | W_b | ...] (D, nD) and [b_a | b_b | ...] (nD,) of the named projections."""
        layers = [self.children[n] for n in names]
        return (np.concatenate([l.params["W"] for l in layers], axis=1),
                np.concatenate([l.params["b"] for l in layers]))

    def _project(self, x, names):
        """x (B, L, D) -> one (B, H, L, K) view per named projection, from a single product."""
        B, L, D = x.shape
        W, b = self._weights(names)
        y = x.reshape(B * L, D) @ W  # (B*L, nD)
        y += b
        return W, y.reshape(B, L, len(names), self.n_heads, D // self.n_heads).transpose(2, 0, 3, 1, 4)  # (n, B, H, L, K)

    def attend(self, q, k, v, mask=None):
        B, H, T, K = q.shape
        D = H * K
        concat = np.empty((B, T, H, K), dtype=q.dtype)  # concat's own memory layout
        self.attention.forward(q, k, v, mask, out=concat.transpose(0, 2, 1, 3))  # heads (B, H, T, K)
        self.concat = concat.reshape(B, T, D)  # (B, T, D)
        y = self.concat.reshape(B * T, D) @ self.output.params["W"]  # (B*T, D)
        y += self.output.params["b"]
        return y.reshape(B, T, D)

    def forward(self, x_q, x_kv, mask=None):
        _, (q,) = self._project(x_q, ["query"])  # (B, H, T, K)
        W_kv, (k, v) = self._project(x_kv, ["key", "value"])  # (B, H, S, K) each
        y = self.attend(q, k, v, mask)  # (B, T, D)
        self.cache = (x_q, x_kv, W_kv)
        return y

    def _attend_backward(self, dy, out):
        """dy (B, T, D) -> the attention's dq, dk, dv, written into `out`; fills dW_O, db_O."""
        B, T, D = dy.shape
        dy_rows = dy.reshape(B * T, D)  # (B*T, D)
        self.output.grads["W"] += self.concat.reshape(B * T, D).T @ dy_rows  # (D, D)
        self.output.grads["b"] += column_sum(dy_rows)  # (D,)
        dconcat = (dy_rows @ self.output.params["W"].T).reshape(B, T, self.n_heads, D // self.n_heads)  # (B, T, H, K)
        self.attention.backward(dconcat.transpose(0, 2, 1, 3), out)

    def _weights_backward(self, x, dy_rows, names):
        """Undo the weights of one fused projection y = x @ [W_a | ...] + [b_a | ...]:
        x (B, L, D), dy_rows (B*L, nD) -> fills each named Linear's dW and db."""
        D = x.shape[-1]
        dW = x.reshape(-1, D).T @ dy_rows  # (D, nD)
        db = column_sum(dy_rows)  # (nD,)
        for i, name in enumerate(names):
            self.children[name].grads["W"] += dW[:, i * D : (i + 1) * D]
            self.children[name].grads["b"] += db[i * D : (i + 1) * D]

    def backward(self, dy):
        x_q, x_kv, W_kv = self.cache
        B, T, D = x_q.shape
        S, H = x_kv.shape[1], self.n_heads
        # The attention writes dq with its heads merged into a (B, T, D) array, and dk, dv into
        # a (B, S, 2D) one laid out as forward's [k heads | v heads].
        dq = np.empty((B, T, H, D // H), dtype=dy.dtype)  # (B, T, H, K)
        dkv = np.empty((B, S, 2, H, D // H), dtype=dy.dtype)  # (B, S, 2, H, K)
        dk_heads, dv_heads = dkv.transpose(2, 0, 3, 1, 4)  # (B, H, S, K) views, each
        self._attend_backward(dy, out=(dq.transpose(0, 2, 1, 3), dk_heads, dv_heads))
        dq, dkv = dq.reshape(B * T, D), dkv.reshape(B * S, 2 * D)  # (B*T, D), (B*S, 2D)
        self._weights_backward(x_q, dq, ["query"])
        self._weights_backward(x_kv, dkv, ["key", "value"])
        dx_q = (dq @ self.query.params["W"].T).reshape(B, T, D)  # (B, T, D)
        dx_kv = (dkv @ W_kv.T).reshape(B, S, D)  # (B, S, D)
        return dx_q, dx_kv


class FusedSelfAttention(FusedCrossAttention):
    """Self-attention with q, k and v projected in one product against [W_Q | W_K | W_V]
    (D, 3D), and their gradients written by the attention straight into one (B, L, 3D) array.
    forward(x, x, mask) only: x_q and x_kv must be the same array.

    backward still returns (dx_q, dx_kv), the two paths from x, for the caller to add, as the
    plain layer does: one (3D, D) product [dq | dk | dv] @ [W_Q | W_K | W_V]^T would give their
    sum, at the same cost as the two products that give them apart."""

    def forward(self, x_q, x_kv, mask=None):
        assert x_q is x_kv, "FusedSelfAttention reads one input: call forward(x, x, mask)"
        W_qkv, (q, k, v) = self._project(x_q, ["query", "key", "value"])  # (B, H, L, K) each
        y = self.attend(q, k, v, mask)  # (B, L, D)
        self.cache = (x_q, W_qkv)
        return y

    def backward(self, dy):
        x, W_qkv = self.cache
        B, L, D = x.shape
        H = self.n_heads
        dqkv = np.empty((B, L, 3, H, D // H), dtype=dy.dtype)  # (B, L, 3, H, K)
        self._attend_backward(dy, out=tuple(dqkv.transpose(2, 0, 3, 1, 4)))  # dq, dk, dv views (B, H, L, K)
        dqkv = dqkv.reshape(B * L, 3 * D)  # (B*L, 3D)
        self._weights_backward(x, dqkv, ["query", "key", "value"])
        dx_q = (dqkv[:, :D] @ W_qkv[:, :D].T).reshape(B, L, D)  # (B, L, D)
        dx_kv = (dqkv[:, D:] @ W_qkv[:, D:].T).reshape(B, L, D)  # (B, L, D)
        return dx_q, dx_kv


class FusedCrossEntropy(CrossEntropy):
    """Replaces the plain loss's full (B, T, V) log p and smoothed target q with two numbers per
    row (trick 3). With z = logits - max and lse = log(sum_v exp(z_v)):
        -log p_y              = lse - z_y
        mean_over_v(-log p_v) = lse - mean_over_v(z_v)
    and the backward is one pass, e * (w / total) with w = valid / n, before subtracting w * q's
    eps / V everywhere and its (1 - eps) at the target."""

    def forward(self, logits, targets):
        V = logits.shape[-1]
        z = logits - logits.max(axis=-1, keepdims=True)  # (B, T, V)
        e = np.exp(z)  # (B, T, V)
        total = row_sum(e)  # (B, T, 1), at least 1
        lse = np.log(total)[..., 0]  # (B, T)
        valid = targets != self.pad_id  # (B, T)
        n = max(int(valid.sum()), 1)
        nll = lse - np.take_along_axis(z, targets[..., None], axis=-1)[..., 0]  # (B, T)
        per_token = (1.0 - self.eps) * nll  # (B, T)
        if self.eps:
            per_token += self.eps * (lse - row_sum(z)[..., 0] / V)
        self.cache = (e, total, targets, valid, n)
        return float((per_token * valid).sum() / n)

    def backward(self):
        e, total, targets, valid, n = self.cache
        V = e.shape[-1]
        w = (valid / n)[..., None].astype(e.dtype)  # (B, T, 1): 1/n, or 0 on padding
        dlogits = e * (w / total)  # (B, T, V): w * p
        if self.eps:
            dlogits -= w * (self.eps / V)
        at_target = np.take_along_axis(dlogits, targets[..., None], axis=-1)  # (B, T, 1)
        np.put_along_axis(dlogits, targets[..., None], at_target - w * (1.0 - self.eps), axis=-1)
        return dlogits


FUSED = LayerSet(FusedLinear, FusedLayerNorm, FusedEmbedding, TiedOutput, FusedSelfAttention,
                 FusedCrossAttention, FusedFeedForward, FusedCrossEntropy)
