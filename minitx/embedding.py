"""Token embeddings and the sinusoidal positional encoding (Vaswani et al. 2017, 3.4 and 3.5)."""

import numpy as np

from minitx.module import Module


class Embedding(Module):
    """Look up one learned row per token id. params: W (V, D).

    The padding id's row starts at zero and gets no gradient from the lookup, so padding
    contributes nothing however many pad tokens a batch holds.
    """

    def __init__(self, vocab_size, d_model, pad_id, rng, dtype=np.float32):
        super().__init__()
        self.pad_id = pad_id
        W = (rng.standard_normal((vocab_size, d_model)) * d_model**-0.5).astype(dtype)
        W[pad_id] = 0
        self._param("W", W)

    def forward(self, ids):
        """ids (B, L) int -> (B, L, D)."""
        self.cache = ids
        return self.params["W"][ids]  # (B, L, D)

    def backward(self, dout):
        """dout (B, L, D) -> None (token ids have no gradient).

        y[b, l] = W[ids[b, l]], so dW[v] = sum of dout[b, l] over every position holding id v.
        A plain `dW[ids] += dout` would keep only one of several equal ids. np.add.at(dW, ids,
        dout) accumulates them all but is slow, so we group instead: sort the positions by id,
        so equal ids sit next to each other, and add up each run of equal ids with
        np.add.reduceat. Each distinct id then gets one row, added to dW once.
        """
        ids = self.cache
        D = dout.shape[-1]
        ids = ids.reshape(-1)  # (N,)
        dout = dout.reshape(-1, D)  # (N, D)
        order = np.argsort(ids, kind="stable")  # (N,) positions, grouped by id
        sorted_ids = ids[order]  # (N,)
        starts = np.flatnonzero(np.diff(sorted_ids, prepend=-1))  # (U,) first position of each id
        unique_ids = sorted_ids[starts]  # (U,)
        sums = np.add.reduceat(dout[order], starts, axis=0)  # (U, D) one summed row per id
        keep = unique_ids != self.pad_id  # the padding row gets no gradient
        self.grads["W"][unique_ids[keep]] += sums[keep]
        return None


def sinusoidal_table(max_len, d_model, dtype=np.float32):
    """PE[pos, 2i] = sin(pos / 10000^(2i/D)), PE[pos, 2i+1] = cos(pos / 10000^(2i/D)).

    Each pair of columns is a clock at its own frequency, so every position gets a distinct
    pattern and relative offsets are linear maps of it. Returns (max_len, D)."""
    pos = np.arange(max_len)[:, None]  # (max_len, 1)
    freq = 10000.0 ** (-np.arange(0, d_model, 2) / d_model)  # (ceil(D/2),)
    table = np.zeros((max_len, d_model))
    table[:, 0::2] = np.sin(pos * freq)
    table[:, 1::2] = np.cos(pos * freq[: d_model // 2])
    return table.astype(dtype)


class PositionalEncoding(Module):
    """x + PE[offset : offset + L]. No parameters; the gradient passes through unchanged."""

    def __init__(self, max_len, d_model, dtype=np.float32):
        super().__init__()
        self.table = sinusoidal_table(max_len, d_model, dtype)  # (max_len, D)

    def forward(self, x, offset=0):
        """x (B, L, D) -> (B, L, D). offset: position of x's first row (used when decoding)."""
        L = x.shape[1]
        return x + self.table[offset : offset + L]

    def backward(self, dout):
        """y = x + PE, and PE is a constant, so dx = dout."""
        return dout
