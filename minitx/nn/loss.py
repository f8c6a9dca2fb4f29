"""Softmax cross-entropy over the vocabulary, ignoring padding, with label smoothing.

Defined exactly as PyTorch's `cross_entropy(logits, target, ignore_index=pad,
label_smoothing=eps)` with mean reduction: for each non-padding position with target y,

    loss_i = (1 - eps) * (-log p_y) + eps * mean_over_v(-log p_v)

and the loss is the mean of loss_i over the n non-padding positions. Equivalently, the target
distribution is q = (1 - eps) * onehot(y) + eps / V and loss_i = -sum_v q_v log p_v
(Szegedy et al. 2016, section 7; Vaswani et al. 2017, section 5.4).
"""

import numpy as np


def log_softmax(x, axis=-1):
    """log p = x - logsumexp(x), computed stably: after subtracting the maximum the largest
    exponent is exp(0) = 1, so nothing overflows and the log never sees 0."""
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


class CrossEntropy:
    """The loss is not a layer: it has no parameters, and backward starts the chain (it takes
    no upstream gradient)."""

    def __init__(self, pad_id, label_smoothing=0.0):
        self.pad_id = pad_id
        self.eps = label_smoothing

    def forward(self, logits, targets):
        """logits (B, T, V) float, targets (B, T) int -> mean loss over non-padding tokens."""
        V = logits.shape[-1]
        logp = log_softmax(logits)  # (B, T, V)
        q = np.full(logp.shape, self.eps / V, dtype=logp.dtype)  # (B, T, V): the smoothed target
        np.put_along_axis(q, targets[..., None], 1.0 - self.eps + self.eps / V, axis=-1)
        valid = targets != self.pad_id  # (B, T)
        n = max(int(valid.sum()), 1)
        per_token = -(q * logp).sum(axis=-1)  # (B, T)
        self.cache = (logp, q, valid, n)
        return float((per_token * valid).sum() / n)

    def backward(self):
        """-> dlogits (B, T, V).

        loss_i = -sum_v q_v log p_v, log p = logits - logsumexp(logits) and sum_v q_v = 1, so
        dloss_i / dlogits_v = p_v - q_v. The mean divides by n, and padding rows get 0.
        """
        logp, q, valid, n = self.cache
        weight = valid[..., None].astype(logp.dtype) / n  # (B, T, 1): 1/n, or 0 on padding
        # forward: return float((per_token * valid).sum() / n)
        # forward: per_token = -(q * logp).sum(axis=-1)
        # forward: logp = log_softmax(logits)
        dlogits = (np.exp(logp) - q) * weight  # (B, T, V)
        return dlogits
