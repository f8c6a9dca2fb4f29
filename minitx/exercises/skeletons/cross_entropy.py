"""Exercise 7, cross_entropy: the backward pass of the loss, with padding and label smoothing.

For each non-padding position with target y, over a vocabulary of V words:

    loss_i = (1 - eps) * (-log p_y) + eps * mean_over_v(-log p_v),   p = softmax(logits)

and the loss is the mean of loss_i over the n non-padding positions. The forward below is
minitx's CrossEntropy (minitx/nn/loss.py). Replace the line marked TODO, then grade it:

    python -m minitx exercise cross_entropy
"""

import numpy as np

from minitx.nn.loss import log_softmax


class CrossEntropy:
    """Not a layer: no parameters, and its backward starts the chain, so it takes no dout."""

    def __init__(self, pad_id, label_smoothing=0.0):
        self.pad_id = pad_id
        self.eps = label_smoothing

    def forward(self, logits, targets):
        """logits (B, T, V) float, targets (B, T) int -> the mean loss over non-padding tokens."""
        V = logits.shape[-1]
        logp = log_softmax(logits)  # (B, T, V)
        # The smoothed target: 1 - eps + eps / V on the right word, eps / V on every other.
        q = np.full(logp.shape, self.eps / V, dtype=logp.dtype)  # (B, T, V)
        np.put_along_axis(q, targets[..., None], 1.0 - self.eps + self.eps / V, axis=-1)
        valid = targets != self.pad_id  # (B, T)
        n = max(int(valid.sum()), 1)
        per_token = -(q * logp).sum(axis=-1)  # (B, T)
        self.cache = (logp, q, valid, n)
        return float((per_token * valid).sum() / n)

    def backward(self):
        """-> dlogits (B, T, V), the gradient of the loss itself.

        For one position, loss_i = -sum_v q_v * log p_v with log p_v = logits_v - logsumexp(logits).
        The slope of log p_v with respect to logits_u is (1 if u == v else 0) - p_u; sum that
        over v with the weights q_v, and remember that q sums to 1. Then the mean: every
        position's term was divided by n, and a padding position is not in the loss at all.
        """
        logp, q, valid, n = self.cache
        # forward: loss = sum((-(q * logp).sum(axis=-1)) * valid) / n
        dlogits = np.zeros_like(logp)  # TODO dlogits (B, T, V): the gradient of the loss
        return dlogits
