"""Exercise 5, layernorm: the backward pass of layer normalisation.

    y = gamma * (x - mean) / sqrt(var + eps) + beta, each row of D numbers on its own

The forward below is minitx's LayerNorm (minitx/nn/layernorm.py). Replace each line marked TODO
with the gradient it names, then grade it:

    python -m minitx exercise layernorm
"""

import numpy as np

from minitx.nn.module import Module


class LayerNorm(Module):
    """params: gamma (D,), beta (D,)."""

    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps = eps  # keeps the division finite for a row whose entries are all equal
        self._param("gamma", np.ones(d))
        self._param("beta", np.zeros(d))

    def forward(self, x):
        """x (..., D) -> y (..., D)."""
        mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # (..., 1)
        rstd = 1.0 / np.sqrt(var + self.eps)  # (..., 1)
        xhat = (x - mean) * rstd  # (..., D)
        y = self.params["gamma"] * xhat + self.params["beta"]  # (..., D)
        self.cache = (xhat, rstd)
        return y

    def backward(self, dout):
        """dout (..., D) -> dx (..., D); adds dgamma and dbeta into self.grads.

          y = gamma * xhat + beta     gamma and beta serve every row, like a bias: their
                                      gradients add up over all rows.
          xhat = (x - mean) * rstd    x reaches xhat by three paths: directly, through the
                                      row's mean, and through its variance (rstd depends on x).
        Treating mean and rstd as constants gives only the first path. Adding all three, dx fits
        on one line in rstd, dxhat, xhat and two row means: mean(dxhat) and mean(dxhat * xhat).
        docs/backward.md, section 7, derives it if you are stuck.
        """
        xhat, rstd = self.cache  # (..., D), (..., 1)
        D = xhat.shape[-1]
        # forward: y = gamma * xhat + beta
        dgamma = np.zeros(D)  # TODO dgamma (D,): the gradient of gamma, summed over every row
        dbeta = np.zeros(D)  # TODO dbeta (D,): the gradient of beta
        dxhat = np.zeros_like(xhat)  # TODO dxhat (..., D): the gradient of xhat
        self.grads["gamma"] += dgamma
        self.grads["beta"] += dbeta
        # forward: xhat = (x - mean) * rstd, where mean and rstd are computed from x too
        dx = np.zeros_like(xhat)  # TODO dx (..., D): the three paths added up
        return dx
