"""Exercise 9, residual: a residual connection around a feed-forward block, pre- and post-norm.

    pre-norm:   y = x + ff(norm(x))       the layer norm inside the branch (the modern default)
    post-norm:  y = norm(x + ff(x))       the layer norm after the sum (the original paper's)

This is the second sub-layer of minitx's EncoderLayer and PostNormEncoderLayer
(minitx/model.py), with dropout 0. The grader checks both placements. Replace each line marked
TODO, then grade it:

    python -m minitx exercise residual
"""

import numpy as np

from minitx.nn.layernorm import LayerNorm
from minitx.nn.layers import FeedForward
from minitx.nn.module import Module


class ResidualBlock(Module):
    """children: norm, minitx's LayerNorm (exercise 5), and ff, minitx's FeedForward (linear,
    ReLU, linear: exercise 1 twice). Call their backward methods."""

    def __init__(self, d_model, d_ff, pre, rng):
        super().__init__()
        self.pre = pre
        self.norm = self._child("norm", LayerNorm(d_model, dtype=np.float64))
        self.ff = self._child("ff", FeedForward(d_model, d_ff, rng, np.float64))

    def forward(self, x):
        """x (B, L, D) -> y (B, L, D)."""
        if self.pre:
            h = self.norm.forward(x)  # (B, L, D)
            return x + self.ff.forward(h)  # (B, L, D)
        s = x + self.ff.forward(x)  # (B, L, D)
        return self.norm.forward(s)  # (B, L, D)

    def backward(self, dout):
        """dout (B, L, D) -> dx (B, L, D). The children fill their own parameters' gradients.

        x reaches the output by two paths: the skip, x itself, and the branch through ff (and,
        in pre-norm, through the norm before it). Its gradient is the sum of both. A sum hands
        its gradient unchanged to each of its terms; in post-norm, undo the norm first.
        """
        if self.pre:
            # forward: return x + self.ff.forward(h), with h = self.norm.forward(x)
            dx = np.zeros_like(dout)  # TODO pre-norm dx (B, L, D): the skip plus the branch
            return dx
        # forward: return self.norm.forward(s), with s = x + self.ff.forward(x)
        dx = np.zeros_like(dout)  # TODO post-norm dx (B, L, D): through the norm, then both paths
        return dx
