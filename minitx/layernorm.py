"""Layer normalisation (Ba, Kiros & Hinton 2016) over the last axis, with gain and bias."""

import numpy as np

from minitx.layers import column_sum, row_sum
from minitx.module import Module


class LayerNorm(Module):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta. params: gamma (D,), beta (D,)."""

    def __init__(self, d, eps=1e-5, dtype=np.float32):
        super().__init__()
        self.eps = eps
        self._param("gamma", np.ones(d, dtype=dtype))
        self._param("beta", np.zeros(d, dtype=dtype))

    def forward(self, x):
        """x (..., D) -> y (..., D)."""
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
        """dout (..., D) -> dx (..., D).

        y = gamma * xhat + beta     =>  dgamma = sum(dout * xhat), dbeta = sum(dout)  (over rows)
                                        dxhat  = dout * gamma
        xhat = (x - mean) * rstd    =>  dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
        The last line folds the paths through mean and var into two row means (each row of D).
        Both are matrix-vector products with gamma, so we never build dxhat * xhat:
            sum(dxhat)        = sum_j dout_j * gamma_j          = dout @ gamma
            sum(dxhat * xhat) = sum_j (dout_j * xhat_j) gamma_j = (dout * xhat) @ gamma
        """
        xhat, rstd = self.cache
        D = xhat.shape[-1]
        gamma = self.params["gamma"]
        dout_xhat = dout * xhat  # (..., D)
        self.grads["gamma"] += column_sum(dout_xhat)  # (D,)
        self.grads["beta"] += column_sum(dout)  # (D,)
        # One (N, D) @ (D,) product each (N = all leading positions), shaped back like rstd.
        mean_dxhat = (dout.reshape(-1, D) @ gamma).reshape(rstd.shape) / D  # (..., 1)
        mean_dxhat_xhat = (dout_xhat.reshape(-1, D) @ gamma).reshape(rstd.shape) / D  # (..., 1)
        dx = dout * gamma  # (..., D): dxhat, which becomes dx in place
        dx -= mean_dxhat
        dx -= xhat * mean_dxhat_xhat
        dx *= rstd
        return dx
