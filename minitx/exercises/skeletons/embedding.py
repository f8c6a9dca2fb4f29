"""Exercise 6, embedding: the backward pass of an embedding lookup, a scatter-add.

    y[b, l] = W[ids[b, l]]

The forward below is minitx's Embedding (minitx/nn/embedding.py). Replace the line marked TODO,
then grade it:

    python -m minitx exercise embedding

The grader's batch holds one id three times, which is the whole point of this exercise.
"""

import numpy as np

from minitx.nn.module import Module


class Embedding(Module):
    """One learned row per token id. params: W (V, D)."""

    def __init__(self, vocab_size, d_model, pad_id, rng):
        super().__init__()
        self.pad_id = pad_id
        W = rng.standard_normal((vocab_size, d_model)) / np.sqrt(d_model)
        W[pad_id] = 0
        self._param("W", W)

    def forward(self, ids):
        """ids (B, L) int -> y (B, L, D)."""
        self.cache = ids
        return self.params["W"][ids]  # (B, L, D)

    def backward(self, dout):
        """dout (B, L, D) -> None (token ids are integers: they have no gradient); adds dW into
        self.grads.

        Row v of W is copied to every position that holds id v, each time with slope 1, so
        dW[v] is the sum of dout over all of those positions. Before you write `dW[ids] += ...`,
        find out what NumPy does when ids holds the same index twice, and look for NumPy's
        unbuffered way to add at repeated indices.
        Like minitx, we give the padding id no gradient: add dout * not_pad. (In the model
        nothing at a padding position reaches the loss, so dout is 0 there anyway, and the
        grader's dout is 0 there too.)
        """
        ids = self.cache  # (B, L)
        not_pad = (ids != self.pad_id)[..., None]  # (B, L, 1)
        # forward: y = W[ids]
        dW = np.zeros_like(self.params["W"])  # TODO dW (V, D): one row of dout added per position
        self.grads["W"] += dW
        return None
