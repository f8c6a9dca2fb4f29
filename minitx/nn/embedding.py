"""Token embeddings and the sinusoidal positional encoding (Vaswani et al. 2017, 3.4 and 3.5)."""

import numpy as np

from minitx.nn.module import Module


class Embedding(Module):
    """Look up one learned row per token id: y[b, l] = W[ids[b, l]]. params: W (V, D).

    The padding id's row starts at zero and the lookup gives it no gradient, so padding adds
    nothing however many pad tokens a batch holds. (With a tied output layer that row is also
    the output weight of <pad>, and the output layer does send it gradient: the loss pushes the
    probability of <pad> down. So in a tied model the row moves away from zero; it is never
    looked up at a real position, so this changes no output.)
    """

    def __init__(self, vocab_size, d_model, pad_id, rng, dtype=np.float32):
        super().__init__()
        self.pad_id = pad_id
        W = (rng.standard_normal((vocab_size, d_model)) * d_model**-0.5).astype(dtype)
        W[pad_id] = 0
        self._param("W", W)

    def forward(self, ids):
        """ids (B, L) int -> y (B, L, D)."""
        self.cache = ids
        return self.params["W"][ids]  # (B, L, D)

    def backward(self, dout):
        """dout (B, L, D) -> None (token ids have no gradient).

        y[b, l] = W[ids[b, l]]  =>  dW[v] = sum of dout[b, l] over every position holding id v.
        A plain `dW[ids] += dout` would be wrong: with a repeated id, NumPy keeps only one of the
        updates. np.add.at adds every one of them.
        """
        ids = self.cache
        not_pad = (ids != self.pad_id)[..., None]  # (B, L, 1)
        # forward: return self.params["W"][ids]
        np.add.at(self.grads["W"], ids, dout * not_pad)  # (V, D), one row added per position
        return None


class TiedOutput(Module):
    """logits = h @ E^T, reusing the target embedding E (V, D) as the output projection
    (Press & Wolf 2017). No parameters of its own: its gradient is added into E's. Like Linear,
    it multiplies all positions as the rows of one (B*T, D) matrix."""

    def __init__(self, embedding):
        super().__init__()
        self.embedding = embedding  # not a child: the Decoder owns it, and E is named once

    def forward(self, h):
        """h (B, T, D) -> logits (B, T, V)."""
        B, T, D = h.shape
        E = self.embedding.params["W"]  # (V, D)
        h_rows = h.reshape(B * T, D)  # (B*T, D)
        logits_rows = h_rows @ E.T  # (B*T, V)
        self.cache = h_rows
        return logits_rows.reshape(B, T, E.shape[0])  # (B, T, V)

    def backward(self, dlogits):
        """logits = h @ E^T  =>  dE += dlogits^T @ h (summed over positions), dh = dlogits @ E."""
        h_rows = self.cache  # (B*T, D)
        B, T, V = dlogits.shape
        E = self.embedding.params["W"]  # (V, D)
        dlogits_rows = dlogits.reshape(B * T, V)  # (B*T, V)
        # forward: logits_rows = h_rows @ E.T
        self.embedding.grads["W"] += dlogits_rows.T @ h_rows  # (V, D)
        dh_rows = dlogits_rows @ E  # (B*T, D)
        return dh_rows.reshape(B, T, E.shape[1])  # (B, T, D)


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
        return x + self.table[offset : offset + L]  # (B, L, D)

    def backward(self, dout):
        """y = x + PE, and PE is a constant, so dx = dout."""
        return dout
