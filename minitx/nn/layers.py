"""Linear, ReLU, Dropout and the position-wise feed-forward block (Vaswani et al. 2017, 3.3).

Each forward sits directly above its backward. A backward undoes its forward's lines in reverse
order, and each of its lines sits under a comment quoting the forward line it undoes.
"""

import numpy as np

from minitx.nn.module import Module


def init_weight(rng, fan_in, fan_out, dtype):
    """Glorot-uniform (D_in, D_out) matrix: keeps activations' variance steady through depth."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(dtype)


class Linear(Module):
    """y = x @ W + b, applied to the last axis. params: W (D_in, D_out), b (D_out,).

    x may have any number of leading axes, (B, L, D_in) in the model: the same W serves every
    position of every sequence. We treat every position as one row of a (N, D_in) matrix,
    N = B * L, which is how the backward must see them anyway (dW sums over all of them), and
    which makes the forward one matrix product: NumPy runs (B, L, D_in) @ (D_in, D_out) as B
    separate small products, two to four times slower on our shapes.
    """

    def __init__(self, d_in, d_out, rng, dtype=np.float32):
        super().__init__()
        self._param("W", init_weight(rng, d_in, d_out, dtype))
        self._param("b", np.zeros(d_out, dtype=dtype))

    def forward(self, x):
        """x (..., D_in) -> y (..., D_out)."""
        W, b = self.params["W"], self.params["b"]
        x_rows = x.reshape(-1, W.shape[0])  # (N, D_in): every position is one row
        y_rows = x_rows @ W + b  # (N, D_out)
        self.cache = x_rows
        return y_rows.reshape(*x.shape[:-1], W.shape[1])  # (..., D_out)

    def backward(self, dout):
        """dout (..., D_out) -> dx (..., D_in).

        y = x @ W + b  =>  dW = x^T @ dout  (summed over every position, as a product of rows),
                           db = dout        summed over every position,
                           dx = dout @ W^T
        """
        x_rows = self.cache  # (N, D_in)
        W = self.params["W"]
        dout_rows = dout.reshape(-1, W.shape[1])  # (N, D_out)
        # forward: y_rows = x_rows @ W + b
        self.grads["W"] += x_rows.T @ dout_rows  # (D_in, D_out)
        self.grads["b"] += dout_rows.sum(axis=0)  # (D_out,)
        dx_rows = dout_rows @ W.T  # (N, D_in)
        return dx_rows.reshape(*dout.shape[:-1], W.shape[0])  # (..., D_in)


class ReLU(Module):
    """y = max(x, 0), elementwise. No parameters."""

    def forward(self, x):
        self.cache = x
        return np.maximum(x, 0)

    def backward(self, dout):
        """y = max(x, 0)  =>  dx = dout where x > 0, and 0 elsewhere."""
        x = self.cache
        # forward: return np.maximum(x, 0)
        dx = dout * (x > 0)
        return dx


class Dropout(Module):
    """Zero each element with probability p in training and scale the rest by 1 / (1 - p), so
    the expected value is unchanged and evaluation needs no rescaling ("inverted dropout").

    The random generator is shared with the whole model, so one seed fixes every mask; the
    gradient check resets its state before each loss evaluation to see the same masks."""

    def __init__(self, p, rng):
        super().__init__()
        self.p = p
        self.rng = rng

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self.cache = None
            return x
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.p  # (same shape as x)
        mask = keep.astype(x.dtype) / x.dtype.type(1.0 - self.p)  # 0 or 1 / (1 - p)
        self.cache = mask
        return x * mask

    def backward(self, dout):
        """y = x * mask  =>  dx = dout * mask: the same mask, scale included."""
        mask = self.cache
        if mask is None:
            return dout
        # forward: return x * mask
        dx = dout * mask
        return dx


class FeedForward(Module):
    """FFN(x) = ReLU(x @ W1 + b1) @ W2 + b2, the same two-layer network at every position."""

    # The classes of its parts. minitx.nn.fused's FusedFeedForward swaps in faster ones, and
    # nothing else.
    linear_class = Linear
    relu_class = ReLU

    def __init__(self, d_model, d_ff, rng, dtype=np.float32):
        super().__init__()
        self.lin1 = self._child("lin1", self.linear_class(d_model, d_ff, rng, dtype))
        self.relu = self._child("relu", self.relu_class())
        self.lin2 = self._child("lin2", self.linear_class(d_ff, d_model, rng, dtype))

    def forward(self, x):
        """x (B, L, D) -> (B, L, D), where L is S or T."""
        h = self.lin1.forward(x)  # (B, L, F)
        a = self.relu.forward(h)  # (B, L, F)
        return self.lin2.forward(a)  # (B, L, D)

    def backward(self, dout):
        """dout (B, L, D) -> dx (B, L, D): the forward's three calls read bottom-up."""
        # forward: return self.lin2.forward(a)
        da = self.lin2.backward(dout)  # (B, L, F)
        # forward: a = self.relu.forward(h)
        dh = self.relu.backward(da)  # (B, L, F)
        # forward: h = self.lin1.forward(x)
        dx = self.lin1.backward(dh)  # (B, L, D)
        return dx
