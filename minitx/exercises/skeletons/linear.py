"""Exercise 1, linear: the backward pass of a linear layer, y = x @ W + b.

The forward below is minitx's Linear (minitx/nn/layers.py). Write its backward: replace each line
marked TODO with the gradient it names (the zeros there only show the shape it must have), then
grade your file from the directory that holds my_exercises/:

    python -m minitx exercise linear

The grader nudges every input and parameter to measure the true gradients by finite differences,
compares yours with those and with minitx's own Linear, and names each gradient that is wrong.
"""

import numpy as np

from minitx.nn.module import Module


class Linear(Module):
    """y = x @ W + b, applied to the last axis. params: W (D_in, D_out), b (D_out,).

    x may have leading axes, (B, L, D_in) in the model: the same W serves every position of
    every sequence. We treat each position as one row of an (N, D_in) matrix, N = B * L.
    """

    def __init__(self, d_in, d_out, rng):
        super().__init__()
        self._param("W", rng.standard_normal((d_in, d_out)) / np.sqrt(d_in))
        self._param("b", np.zeros(d_out))

    def forward(self, x):
        """x (..., D_in) -> y (..., D_out)."""
        W, b = self.params["W"], self.params["b"]
        x_rows = x.reshape(-1, W.shape[0])  # (N, D_in): every position is one row
        y_rows = x_rows @ W + b  # (N, D_out)
        self.cache = x_rows
        return y_rows.reshape(*x.shape[:-1], W.shape[1])  # (..., D_out)

    def backward(self, dout):
        """dout (..., D_out) -> dx (..., D_in); adds dW and db into self.grads.

        Written for one row n, the forward is y[n, j] = sum_i x[n, i] * W[i, j] + b[j]. So:
          W[i, j] moves y[n, j] of every row n, each with slope x[n, i]: dW adds up all rows.
          b[j] moves y[n, j] of every row n, with slope 1.
          x[n, i] moves every y[n, j] of its own row only, with slope W[i, j].
        Each gradient is one NumPy expression; two of them are a matrix product.
        """
        x_rows = self.cache  # (N, D_in)
        W = self.params["W"]
        dout_rows = dout.reshape(-1, W.shape[1])  # (N, D_out)
        # forward: y_rows = x_rows @ W + b
        dW = np.zeros_like(W)  # TODO dW (D_in, D_out): the gradient of W, summed over the N rows
        db = np.zeros_like(self.params["b"])  # TODO db (D_out,): the gradient of b
        dx_rows = np.zeros_like(x_rows)  # TODO dx_rows (N, D_in): the gradient of x_rows
        self.grads["W"] += dW
        self.grads["b"] += db
        return dx_rows.reshape(*dout.shape[:-1], W.shape[0])  # (..., D_in)
