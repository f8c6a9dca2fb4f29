"""Linear, ReLU, Dropout and the position-wise feed-forward block (Vaswani et al. 2017, 3.3).

Each forward sits directly above its backward; each backward undoes its forward's lines in
reverse order.
"""

import numpy as np

from minitx.module import Module


def init_weight(rng, fan_in, fan_out, dtype):
    """Glorot-uniform (D_in, D_out) matrix: keeps activations' variance steady through depth."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(dtype)


def row_sum(x):
    """x.sum(axis=-1, keepdims=True), computed as a matrix-vector product with a vector of ones.

    The numbers are the same up to float rounding. We use it for the per-row sums of layer norm
    and softmax because NumPy's .sum(axis=-1) works through the rows one at a time, which is
    slow for thousands of short rows, while BLAS does them all in one call (3 to 10 times
    faster here)."""
    rows = x.reshape(-1, x.shape[-1])  # (N, D)
    return (rows @ np.ones(x.shape[-1], dtype=x.dtype)).reshape(*x.shape[:-1], 1)  # (..., 1)


def column_sum(x):
    """x summed over every position: x.reshape(-1, D).sum(axis=0) for x (..., D), computed as
    the vector-matrix product ones @ rows, for the same reason as row_sum. Every bias gradient
    is one of these."""
    rows = x.reshape(-1, x.shape[-1])  # (N, D)
    return np.ones(rows.shape[0], dtype=x.dtype) @ rows  # (D,)


class Linear(Module):
    """y = x @ W + b, applied to the last axis. params: W (D_in, D_out), b (D_out,).

    We flatten every leading axis into one before multiplying: (B, L, D_in) @ (D_in, D_out)
    would make NumPy run B separate (L, D_in) products, while (B*L, D_in) @ (D_in, D_out) is a
    single, much faster one. Both give the same numbers.
    """

    def __init__(self, d_in, d_out, rng, dtype=np.float32):
        super().__init__()
        self._param("W", init_weight(rng, d_in, d_out, dtype))
        self._param("b", np.zeros(d_out, dtype=dtype))

    def forward(self, x):
        """x (..., D_in) -> y (..., D_out)."""
        W = self.params["W"]
        x2 = x.reshape(-1, W.shape[0])  # (N, D_in), N = all leading positions
        self.cache = x2
        y = x2 @ W  # (N, D_out)
        y += self.params["b"]
        return y.reshape(*x.shape[:-1], W.shape[1])  # (..., D_out)

    def backward(self, dout):
        """dout (..., D_out) -> dx (..., D_in).

        y = x @ W + b, so  dW = x^T @ dout  (summed over every leading position),
                           db = sum(dout)   over every leading position,
                           dx = dout @ W^T.
        """
        x2 = self.cache  # (N, D_in)
        W = self.params["W"]
        dout2 = dout.reshape(-1, W.shape[1])  # (N, D_out)
        self.grads["W"] += x2.T @ dout2  # (D_in, D_out)
        self.grads["b"] += column_sum(dout2)  # (D_out,)
        return (dout2 @ W.T).reshape(*dout.shape[:-1], W.shape[0])  # (..., D_in)


class ReLU(Module):
    """y = max(x, 0), computed as x * (x > 0).

    inplace=True (as in PyTorch's nn.ReLU) overwrites x with y in forward and dout with dx in
    backward, which saves allocating and filling a new array each way. Only use it where
    nobody else holds those arrays: FeedForward does, as its x and dout are fresh results of
    its own Linear layers. (Multiplying by the mask leaves -0.0 where x < 0: equal to 0 in
    every comparison and product.)"""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        positive = x > 0
        self.cache = positive
        return np.multiply(x, positive, out=x if self.inplace else None)

    def backward(self, dout):
        """y = max(x, 0), so dx = dout where x > 0 and 0 elsewhere."""
        positive = self.cache
        return np.multiply(dout, positive, out=dout if self.inplace else None)


class Dropout(Module):
    """Zero each element with probability p in training and scale the rest by 1 / (1 - p), so
    the expected value is unchanged and evaluation needs no rescaling ("inverted dropout").

    The random generator is shared with the model, so a seed fixes every mask."""

    def __init__(self, p, rng):
        super().__init__()
        self.p = p
        self.rng = rng
        self.training = True

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self.cache = None
            return x
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.p
        self.cache = keep.astype(x.dtype) / x.dtype.type(1.0 - self.p)  # (same shape as x)
        return x * self.cache

    def backward(self, dout):
        """y = x * mask / (1 - p), so dx = dout * mask / (1 - p): the same scaled mask."""
        scaled_keep = self.cache
        return dout if scaled_keep is None else dout * scaled_keep


class FeedForward(Module):
    """FFN(x) = ReLU(x @ W1 + b1) @ W2 + b2, the same two-layer network at every position."""

    def __init__(self, d_model, d_ff, rng, dtype=np.float32):
        super().__init__()
        self.lin1 = self._child("lin1", Linear(d_model, d_ff, rng, dtype))
        self.relu = ReLU(inplace=True)  # lin1's output and lin2's dx are ours to overwrite
        self.lin2 = self._child("lin2", Linear(d_ff, d_model, rng, dtype))

    def forward(self, x):
        """x (B, L, D) -> (B, L, D), where L is S or T."""
        h = self.lin1.forward(x)  # (B, L, F)
        h = self.relu.forward(h)  # (B, L, F)
        return self.lin2.forward(h)  # (B, L, D)

    def backward(self, dout):
        """dout (B, L, D) -> dx (B, L, D): the forward's three calls read bottom-up,
        dh2 = lin2'(dout), dh1 = dh2 * (h1 > 0), dx = lin1'(dh1)."""
        dh = self.lin2.backward(dout)  # (B, L, F)
        dh = self.relu.backward(dh)  # (B, L, F)
        return self.lin1.backward(dh)  # (B, L, D)
