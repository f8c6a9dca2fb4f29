"""minitx's plain layers, shaped like the exercises that need a little shaping.

The grader compares a learner's gradients with minitx's own. For five exercises that layer is
used as it is (Linear, ScaledDotProductAttention, LayerNorm, Embedding, CrossEntropy). The other
four exercises isolate one piece of a larger layer, so here we wrap minitx's layers to compute
exactly that piece. These wrappers do no arithmetic the model does not: each forward and
backward is a few calls to the plain layers, written as model.py writes them. Break-it mode
plants its mistakes in these same objects.
"""

import math

import numpy as np

from minitx.nn import FeedForward, LayerNorm, Module, MultiHeadAttention, ScaledDotProductAttention

F64 = np.float64


class SoftmaxInAttention(Module):
    """The softmax and its backward as they live inside ScaledDotProductAttention.

    With keys sqrt(S) * I and values I (S = K), the attention's scores are x itself, its output
    is P = softmax(x), the dP its backward computes is dout, and the dq it returns is dscores,
    the gradient of x. So the plain attention layer's own softmax line is what we compare with.
    """

    def __init__(self):
        super().__init__()
        self.attention = self._child("attention", ScaledDotProductAttention())

    def forward(self, x):
        """x (B, H, T, S) -> P (B, H, T, S)."""
        S = x.shape[-1]
        eye = np.broadcast_to(np.eye(S), x.shape[:-2] + (S, S))  # (B, H, S, S)
        return self.attention.forward(x, eye * math.sqrt(S), eye)  # (B, H, T, S)

    def backward(self, dout):
        """dout (B, H, T, S) -> dx (B, H, T, S)."""
        dx, _, _ = self.attention.backward(dout)  # dq is dscores here
        return dx


class HeadsInMultiHeadAttention(Module):
    """MultiHeadAttention with W_Q = W_K = W_V = I and zero biases: what is left is splitting
    into heads, attention, merging the heads and the output projection. params: W_O, b_O, the
    output layer's W and b."""

    def __init__(self, d_model, n_heads, rng):
        super().__init__()
        self.mha = MultiHeadAttention(d_model, n_heads, rng, F64)
        for projection in (self.mha.query, self.mha.key, self.mha.value):
            projection.params["W"][...] = np.eye(d_model)
            projection.params["b"][...] = 0.0
        # Only the output projection is the exercise's, under the exercise's names.
        self.params = {"W_O": self.mha.output.params["W"], "b_O": self.mha.output.params["b"]}
        self.grads = {"W_O": self.mha.output.grads["W"], "b_O": self.mha.output.grads["b"]}

    def zero_grad(self):
        self.mha.zero_grad()

    def forward(self, x_q, x_kv, mask=None):
        """x_q (B, T, D), x_kv (B, S, D) -> y (B, T, D)."""
        return self.mha.forward(x_q, x_kv, mask)  # (B, T, D)

    def backward(self, dy):
        """dy (B, T, D) -> dx_q (B, T, D), dx_kv (B, S, D)."""
        return self.mha.backward(dy)


class CrossAttentionStack(Module):
    """N of minitx's MultiHeadAttention used as cross-attention, each reading the previous one's
    output and the same memory. Its backward sums the memory's gradient over the layers, as
    Decoder.backward (model.py) does."""

    def __init__(self, n_layers, d_model, n_heads, rng):
        super().__init__()
        self.layers = [self._child(f"layers.{i}", MultiHeadAttention(d_model, n_heads, rng, F64)) for i in range(n_layers)]

    def forward(self, y, memory, mask=None):
        """y (B, T, D), memory (B, S, D) -> (B, T, D)."""
        for layer in self.layers:
            y = layer.forward(y, memory, mask)  # (B, T, D)
        return y

    def backward(self, dout):
        """dout (B, T, D) -> dy (B, T, D), dmemory (B, S, D)."""
        dy, dmemory = dout, 0
        # forward: y = layer.forward(y, memory, mask), for each layer
        for layer in reversed(self.layers):
            dy, dmemory_layer = layer.backward(dy)  # (B, T, D), (B, S, D)
            dmemory = dmemory + dmemory_layer  # every layer read the same memory
        return dy, dmemory


class ResidualFeedForward(Module):
    """The feed-forward sub-layer of minitx's EncoderLayer, pre-norm, with dropout 0: the same
    lines as EncoderLayer.forward's and .backward's last three, its norm2 called norm.

        x = x + ff(norm(x))
    """

    def __init__(self, d_model, d_ff, rng):
        super().__init__()
        self.norm = self._child("norm", LayerNorm(d_model, dtype=F64))
        self.ff = self._child("ff", FeedForward(d_model, d_ff, rng, F64))

    def forward(self, x):
        """x (B, L, D) -> x (B, L, D)."""
        h = self.norm.forward(x)  # (B, L, D)
        f = self.ff.forward(h)  # (B, L, D)
        x = x + f  # (B, L, D)
        return x

    def backward(self, dx):
        """dx (B, L, D) -> dx (B, L, D)."""
        # forward: x = x + f
        df = dx  # (B, L, D)
        # forward: f = self.ff.forward(h)
        dh = self.ff.backward(df)  # (B, L, D)
        # forward: h = self.norm.forward(x)
        dx = dx + self.norm.backward(dh)  # (B, L, D): the skip path plus the branch
        return dx


class PostNormResidualFeedForward(ResidualFeedForward):
    """The feed-forward sub-layer of minitx's PostNormEncoderLayer, with dropout 0.

        x = norm(x + ff(x))
    """

    def forward(self, x):
        """x (B, L, D) -> x (B, L, D)."""
        f = self.ff.forward(x)  # (B, L, D)
        x = self.norm.forward(x + f)  # (B, L, D)
        return x

    def backward(self, dx):
        """dx (B, L, D) -> dx (B, L, D)."""
        # forward: x = self.norm.forward(x + f)
        ds = self.norm.backward(dx)  # (B, L, D)
        df = ds  # (B, L, D)
        # forward: f = self.ff.forward(x)
        dx = ds + self.ff.backward(df)  # (B, L, D): the skip path plus the branch
        return dx
