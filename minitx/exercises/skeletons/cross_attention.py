"""Exercise 8, cross_attention: a decoder's cross-attention, and the memory every layer reads.

In an encoder-decoder transformer each decoder layer attends to the encoder's output, the memory:
its queries come from the decoder's own stream y, its keys and values from memory. Every layer
reads the same memory, and within a layer both the keys and the values read it, so the memory's
gradient is the sum of all of those shares: the encoder receives it once, summed.

This stack is minitx's cross-attention (MultiHeadAttention.forward(y, memory, mask), in
minitx/nn/attention.py) N times over. A real decoder layer also has self-attention, a
feed-forward block and residual connections; we leave them out to keep the memory in view.
Replace each line marked TODO, then grade it:

    python -m minitx exercise cross_attention

The grader's memory has S = 4 positions and the decoder stream T = 3, so keys and queries cannot
be swapped unnoticed.
"""

import numpy as np

from minitx.nn.attention import ScaledDotProductAttention, merge_heads, split_heads
from minitx.nn.layers import Linear
from minitx.nn.module import Module


class CrossAttention(Module):
    """One decoder layer's cross-attention. children: query, key, value and output, four
    Linear(D, D) layers (W_Q, W_K, W_V and W_O with their biases), and attention, the scaled
    dot-product attention. Their backward methods are the ones of exercises 1 and 3: call them."""

    def __init__(self, d_model, n_heads, rng):
        super().__init__()
        self.n_heads = n_heads
        self.query = self._child("query", Linear(d_model, d_model, rng, np.float64))
        self.key = self._child("key", Linear(d_model, d_model, rng, np.float64))
        self.value = self._child("value", Linear(d_model, d_model, rng, np.float64))
        self.output = self._child("output", Linear(d_model, d_model, rng, np.float64))
        self.attention = self._child("attention", ScaledDotProductAttention())

    def forward(self, y, memory, mask=None):
        """y (B, T, D), memory (B, S, D), mask bool broadcastable to (B, H, T, S) -> (B, T, D)."""
        q = split_heads(self.query.forward(y), self.n_heads)  # (B, H, T, K)
        k = split_heads(self.key.forward(memory), self.n_heads)  # (B, H, S, K)
        v = split_heads(self.value.forward(memory), self.n_heads)  # (B, H, S, K)
        heads = self.attention.forward(q, k, v, mask)  # (B, H, T, K)
        return self.output.forward(merge_heads(heads))  # (B, T, D)

    def backward(self, dout):
        """dout (B, T, D) -> dy (B, T, D), dmemory (B, S, D). The children's backward methods
        fill their own parameters' gradients.

        The forward read bottom-up, one child's backward for each of its calls; exercise 4 did
        the reshaping. memory went into two projections, so dmemory adds two gradients.
        """
        B, T, D = dout.shape
        # forward: return self.output.forward(merge_heads(heads))
        dheads = np.zeros((B, self.n_heads, T, D // self.n_heads))  # TODO dheads (B, H, T, K)
        # forward: heads = self.attention.forward(q, k, v, mask)
        dq, dk, dv = self.attention.backward(dheads)  # (B, H, T, K), (B, H, S, K), (B, H, S, K)
        # forward: k = split_heads(self.key.forward(memory), H); v = the same with self.value
        dmemory = np.zeros((B, dk.shape[2], D))  # TODO dmemory (B, S, D): from the keys and the values
        # forward: q = split_heads(self.query.forward(y), H)
        dy = np.zeros_like(dout)  # TODO dy (B, T, D): the gradient of y
        return dy, dmemory


class CrossAttentionStack(Module):
    """N cross-attention layers; each reads the stream the one before it wrote, and all read
    the same memory:  y = layer_N(... layer_2(layer_1(y, memory), memory) ..., memory).
    children: layers.0 ... layers.{N-1}."""

    def __init__(self, n_layers, d_model, n_heads, rng):
        super().__init__()
        self.layers = [self._child(f"layers.{i}", CrossAttention(d_model, n_heads, rng)) for i in range(n_layers)]

    def forward(self, y, memory, mask=None):
        """y (B, T, D), memory (B, S, D) -> (B, T, D)."""
        for layer in self.layers:
            y = layer.forward(y, memory, mask)  # (B, T, D)
        self.cache = memory.shape  # backward starts the memory's gradient from zeros of this shape
        return y

    def backward(self, dout):
        """dout (B, T, D) -> dy (B, T, D), dmemory (B, S, D).

        The forward's loop read backwards, the last layer first. The stream's gradient passes
        from layer to layer, as y did; the memory's collects one share from every layer.
        """
        dy = dout  # (B, T, D)
        dmemory = np.zeros(self.cache)  # (B, S, D)
        # forward: y = layer.forward(y, memory, mask), for each layer
        for layer in reversed(self.layers):
            pass  # TODO: this layer's backward: dy for the layer below, and its share of dmemory
        return dy, dmemory
