"""Softmax cross-entropy over the vocabulary, ignoring padding, with label smoothing.

Defined exactly as PyTorch's `cross_entropy(logits, target, ignore_index=pad,
label_smoothing=eps)` with mean reduction: for each non-padding position with target y,

    loss_i = (1 - eps) * (-log p_y) + eps * mean_over_v(-log p_v)

and the loss is the mean of loss_i over non-padding positions. Equivalently, the target
distribution is q = (1 - eps) * onehot(y) + eps / V and loss_i = -sum_v q_v log p_v
(Szegedy et al. 2016, section 7; Vaswani et al. 2017, section 5.4).
"""

import numpy as np

from minitx.layers import row_sum


def log_softmax(x, axis=-1):
    """log p = x - logsumexp(x), computed stably: after subtracting the maximum the largest
    exponent is exp(0) = 1, so nothing overflows and the log never sees 0."""
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


class CrossEntropy:
    def __init__(self, pad_id, label_smoothing=0.0):
        self.pad_id = pad_id
        self.eps = label_smoothing

    def forward(self, logits, targets):
        """logits (B, T, V) float, targets (B, T) int -> mean loss over non-padding tokens.

        With z = logits - max (the stable shift) and lse = log(sum_v exp(z_v)), log p_v = z_v - lse.
        The loss needs only two numbers per row from that, so we never build the whole
        (B, T, V) log p:
            -log p_y              = lse - z_y
            mean_over_v(-log p_v) = lse - mean_over_v(z_v)
        """
        V = logits.shape[-1]
        z = logits - logits.max(axis=-1, keepdims=True)  # (B, T, V)
        e = np.exp(z)  # (B, T, V); the largest entry of each row is exp(0) = 1
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
        """-> dlogits (B, T, V).

        loss_i = -sum_v q_v log p_v with log p = logits - logsumexp(logits), and sum_v q_v = 1,
        so dloss_i/dlogits_v = p_v - q_v. Dividing by n gives the mean; padding rows get 0.
        With p = e / total and w = valid / n per row, we build w * (p - q) in one pass over
        (B, T, V): first e * (w / total), then subtract the per-row w * q (its eps / V part
        everywhere, its (1 - eps) part at the target).
        """
        e, total, targets, valid, n = self.cache
        V = e.shape[-1]
        w = (valid / n)[..., None].astype(e.dtype)  # (B, T, 1): 1/n, or 0 on padding
        dlogits = e * (w / total)  # (B, T, V): w * p
        if self.eps:
            dlogits -= w * (self.eps / V)
        at_target = np.take_along_axis(dlogits, targets[..., None], axis=-1)  # (B, T, 1)
        np.put_along_axis(dlogits, targets[..., None], at_target - w * (1.0 - self.eps), axis=-1)
        return dlogits
