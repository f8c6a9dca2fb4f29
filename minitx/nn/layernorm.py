"""Layer normalisation (Ba, Kiros & Hinton 2016) over the last axis, with gain and bias."""

import numpy as np

from minitx.nn.module import Module


class LayerNorm(Module):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta, each row of D numbers normalised on its
    own. params: gamma (D,), beta (D,)."""

    def __init__(self, d, eps=1e-5, dtype=np.float32):
        super().__init__()
        self.eps = eps  # keeps the division finite for a row whose entries are all equal
        self._param("gamma", np.ones(d, dtype=dtype))
        self._param("beta", np.zeros(d, dtype=dtype))

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
        """dout (..., D) -> dx (..., D).

        y = gamma * xhat + beta    =>  dgamma = sum(dout * xhat), dbeta = sum(dout)  (over rows)
                                       dxhat = dout * gamma
        xhat = (x - mean) * rstd   =>  dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
        The last line is the three paths from x to xhat added up: directly, through the mean and
        through the variance (the means are over each row's D entries; docs/backward.md derives
        it).
        """
        xhat, rstd = self.cache
        D = xhat.shape[-1]
        # forward: y = self.params["gamma"] * xhat + self.params["beta"]
        self.grads["gamma"] += (dout * xhat).reshape(-1, D).sum(axis=0)  # (D,)
        self.grads["beta"] += dout.reshape(-1, D).sum(axis=0)  # (D,)
        dxhat = dout * self.params["gamma"]  # (..., D)
        # forward: xhat = (x - mean) * rstd
        # (mean, var and rstd are functions of x too: x reaches xhat along three paths)
        through_mean = dxhat.mean(axis=-1, keepdims=True)  # (..., 1): the path through mean
        through_var = xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)  # (..., D): through var and rstd
        dx = rstd * (dxhat - through_mean - through_var)  # (..., D)
        return dx
