"""The encoder-decoder transformer (Vaswani et al. 2017, section 3, figure 1).

    source ids (B, S) -> embed * sqrt(D) + PE -> N encoder layers -> memory (B, S, D)
    target ids (B, T) -> embed * sqrt(D) + PE -> N decoder layers (each also reads memory)
                      -> logits (B, T, V)

Every layer wraps its sub-layers in residual connections, with the layer norm either before
the sub-layer ("pre", the modern default: trains stably without careful warmup) or after the
residual sum ("post", the original paper's placement). Parameter and gradient names are dotted
paths such as "decoder.layers.0.cross_attn.W_q".
"""

import numpy as np

from minitx.attention import MultiHeadAttention, SelfAttention
from minitx.embedding import Embedding, PositionalEncoding
from minitx.layernorm import LayerNorm
from minitx.layers import Dropout, FeedForward, Linear
from minitx.module import Module


class Residual:
    """One residual connection around a sub-layer f, with dropout on f's output.

    pre-norm:   y = x + dropout(f(norm(x)))
    post-norm:  y = norm(x + dropout(f(x)))
    """

    def __init__(self, norm, dropout, pre):
        self.norm, self.dropout, self.pre = norm, dropout, pre

    def forward(self, x, f):
        if self.pre:
            return x + self.dropout.forward(f(self.norm.forward(x)))
        return self.norm.forward(x + self.dropout.forward(f(x)))

    def backward(self, dout, f_backward):
        """The residual path passes dout straight through, and the branch adds its part:
        pre:   dx = dout + norm'(f'(dropout'(dout)))
        post:  ds = norm'(dout);  dx = ds + f'(dropout'(ds))
        """
        if self.pre:
            return dout + self.norm.backward(f_backward(self.dropout.backward(dout)))
        ds = self.norm.backward(dout)
        return ds + f_backward(self.dropout.backward(ds))


class EncoderLayer(Module):
    def __init__(self, d_model, n_heads, d_ff, dropout, pre_norm, rng, dtype):
        super().__init__()
        self.self_attn = self._child("self_attn", SelfAttention(d_model, n_heads, rng, dtype))
        self.ff = self._child("ff", FeedForward(d_model, d_ff, rng, dtype))
        norm1 = self._child("norm1", LayerNorm(d_model, dtype=dtype))
        norm2 = self._child("norm2", LayerNorm(d_model, dtype=dtype))
        self.res1 = Residual(norm1, Dropout(dropout, rng), pre_norm)
        self.res2 = Residual(norm2, Dropout(dropout, rng), pre_norm)

    def forward(self, x, src_mask):
        """x (B, S, D), src_mask (B, 1, 1, S) -> (B, S, D)."""
        x = self.res1.forward(x, lambda h: self.self_attn.forward(h, src_mask))  # (B, S, D)
        return self.res2.forward(x, self.ff.forward)  # (B, S, D)

    def backward(self, dout):
        """dout (B, S, D) -> dx (B, S, D): the two residual blocks undone in reverse order.
        x1 = res1(x, self-attention), y = res2(x1, feed-forward)
          =>  dx1 = res2'(dout, ff'),  dx = res1'(dx1, self-attention')"""
        dx = self.res2.backward(dout, self.ff.backward)  # (B, S, D)
        return self.res1.backward(dx, self.self_attn.backward)  # (B, S, D)


class DecoderLayer(Module):
    def __init__(self, d_model, n_heads, d_ff, dropout, pre_norm, rng, dtype):
        super().__init__()
        self.self_attn = self._child("self_attn", SelfAttention(d_model, n_heads, rng, dtype))
        self.cross_attn = self._child("cross_attn", MultiHeadAttention(d_model, n_heads, rng, dtype))
        self.ff = self._child("ff", FeedForward(d_model, d_ff, rng, dtype))
        norms = [self._child(f"norm{i}", LayerNorm(d_model, dtype=dtype)) for i in (1, 2, 3)]
        self.res1, self.res2, self.res3 = (Residual(n, Dropout(dropout, rng), pre_norm) for n in norms)

    def forward(self, y, memory, tgt_mask, src_mask):
        """y (B, T, D), memory (B, S, D), tgt_mask (B, 1, T, T), src_mask (B, 1, 1, S)
        -> (B, T, D). Queries come from y; cross-attention's keys and values from memory."""
        y = self.res1.forward(y, lambda h: self.self_attn.forward(h, tgt_mask))  # (B, T, D)
        y = self.res2.forward(y, lambda h: self.cross_attn.forward(h, memory, src_mask))  # (B, T, D)
        return self.res3.forward(y, self.ff.forward)  # (B, T, D)

    def _cross_backward(self, dh):
        dh, self.dmemory = self.cross_attn.backward(dh)  # (B, T, D), (B, S, D)
        return dh

    def backward(self, dout):
        """dout (B, T, D) -> dy (B, T, D), dmemory (B, S, D): the three blocks in reverse.
        Cross-attention is the only block that reads memory, so dmemory is its dx_kv; the
        Decoder adds these up over its layers."""
        dy = self.res3.backward(dout, self.ff.backward)  # (B, T, D)
        dy = self.res2.backward(dy, self._cross_backward)  # (B, T, D)
        dy = self.res1.backward(dy, self.self_attn.backward)  # (B, T, D)
        return dy, self.dmemory


class Embedder(Module):
    """ids -> embedding * sqrt(D) + positional encoding, then dropout. The sqrt(D) scale keeps
    the learned embedding (entries about 1/sqrt(D)) on the same scale as the encoding."""

    def __init__(self, embedding, positions, dropout, rng):
        super().__init__()
        self.embedding = self._child("embed", embedding)
        self.positions = positions
        self.dropout = Dropout(dropout, rng)
        # A Python float, not np.sqrt(...): a NumPy float64 scalar would turn every float32
        # activation after it into float64 (NumPy 2 lets NumPy scalars set the result type).
        self.scale = float(np.sqrt(embedding.params["W"].shape[1]))

    def forward(self, ids, offset=0):
        """ids (B, L) -> (B, L, D)."""
        x = self.embedding.forward(ids) * self.scale  # (B, L, D)
        return self.dropout.forward(self.positions.forward(x, offset))

    def backward(self, dout):
        """dout (B, L, D) -> None. y = dropout(E[ids] * scale + PE), so the gradient passes back
        through dropout's mask, unchanged through the constant PE, and is scaled by `scale`
        before the embedding scatters it into dE."""
        dx = self.positions.backward(self.dropout.backward(dout))  # (B, L, D)
        self.embedding.backward(dx * self.scale)


class TiedOutput(Module):
    """logits = h @ E^T, reusing the target embedding E (V, D) as the output projection
    (Press & Wolf 2017). No parameters of its own: its gradient is added into E's."""

    def __init__(self, embedding):
        super().__init__()
        self.embedding = embedding

    def forward(self, h):
        """h (B, T, D) -> logits (B, T, V), as one (B*T, D) @ (D, V) product (see Linear)."""
        B, T, D = h.shape
        E = self.embedding.params["W"]  # (V, D)
        self.cache = h
        return (h.reshape(B * T, D) @ E.T).reshape(B, T, E.shape[0])  # (B, T, V)

    def backward(self, dlogits):
        """logits = h @ E^T  =>  dE += dlogits^T @ h (summed over positions), dh = dlogits @ E."""
        h = self.cache
        B, T, D = h.shape
        V = dlogits.shape[-1]
        dlogits2 = dlogits.reshape(B * T, V)  # (B*T, V)
        self.embedding.grads["W"] += dlogits2.T @ h.reshape(B * T, D)  # (V, D)
        return (dlogits2 @ self.embedding.params["W"]).reshape(B, T, D)  # (B, T, D)


class Stack(Module):
    """The shared frame of the encoder and the decoder: embedding plus positions, N identical
    layers and, for pre-norm, one closing layer norm (pre-norm leaves the residual stream
    un-normalised, so the stack must normalise it once at the end)."""

    def __init__(self, layer_class, n_layers, vocab_size, cfg, pad_id, rng, dtype):
        super().__init__()
        pre = cfg.norm == "pre"
        self.embedding = Embedding(vocab_size, cfg.d_model, pad_id, rng, dtype)
        positions = PositionalEncoding(cfg.max_len, cfg.d_model, dtype)
        self.embed = self._child("embed", Embedder(self.embedding, positions, cfg.dropout, rng))
        self.layers = [
            self._child(f"layers.{i}", layer_class(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout, pre, rng, dtype))
            for i in range(n_layers)
        ]
        self.norm = self._child("norm", LayerNorm(cfg.d_model, dtype=dtype)) if pre else None


class Encoder(Stack):
    def __init__(self, vocab_size, cfg, pad_id, rng, dtype):
        super().__init__(EncoderLayer, cfg.n_enc_layers, vocab_size, cfg, pad_id, rng, dtype)

    def forward(self, src, src_mask):
        """src (B, S) ids -> memory (B, S, D)."""
        x = self.embed.forward(src)  # (B, S, D)
        for layer in self.layers:
            x = layer.forward(x, src_mask)  # (B, S, D)
        return self.norm.forward(x) if self.norm else x

    def backward(self, dmemory):
        """dmemory (B, S, D), already summed over every decoder layer -> None: the closing norm,
        the layers in reverse, then the embedding."""
        dx = self.norm.backward(dmemory) if self.norm else dmemory
        for layer in reversed(self.layers):
            dx = layer.backward(dx)
        self.embed.backward(dx)


class Decoder(Stack):
    def __init__(self, vocab_size, cfg, pad_id, rng, dtype):
        super().__init__(DecoderLayer, cfg.n_dec_layers, vocab_size, cfg, pad_id, rng, dtype)
        if cfg.tie_output:
            self.out = TiedOutput(self.embedding)
        else:
            self.out = self._child("out", Linear(cfg.d_model, vocab_size, rng, dtype))

    def forward(self, tgt_in, memory, tgt_mask, src_mask):
        """tgt_in (B, T) ids, memory (B, S, D) -> logits (B, T, V)."""
        y = self.embed.forward(tgt_in)  # (B, T, D)
        for layer in self.layers:
            y = layer.forward(y, memory, tgt_mask, src_mask)  # (B, T, D)
        if self.norm:
            y = self.norm.forward(y)
        return self.out.forward(y)  # (B, T, V)

    def backward(self, dlogits):
        """dlogits (B, T, V) -> dmemory (B, S, D), summed over every layer's cross-attention."""
        dy = self.out.backward(dlogits)  # (B, T, D)
        if self.norm:
            dy = self.norm.backward(dy)
        dmemory = 0
        for layer in reversed(self.layers):
            dy, dmem = layer.backward(dy)
            dmemory = dmemory + dmem  # every layer read the same memory
        self.embed.backward(dy)
        return dmemory


def padding_mask(ids, pad_id):
    """(B, L) ids -> (B, 1, 1, L): True where the key is a real token."""
    return (ids != pad_id)[:, None, None, :]


def causal_mask(T):
    """(T, T): position t may attend to positions 0..t, never to the future."""
    return np.tril(np.ones((T, T), dtype=bool))


class Transformer(Module):
    """params/grads: every weight by dotted name, e.g. "encoder.layers.0.self_attn.W_q"."""

    def __init__(self, cfg, src_vocab_size, tgt_vocab_size, pad_id, rng, dtype=np.float32):
        """cfg: a ModelConfig (d_model, n_heads, d_ff, n_enc_layers, n_dec_layers, dropout,
        norm, tie_output, max_len). rng initialises the weights and then draws dropout masks."""
        super().__init__()
        self.pad_id = pad_id
        self.rng = rng
        self.dtype = dtype
        self.encoder = self._child("encoder", Encoder(src_vocab_size, cfg, pad_id, rng, dtype))
        self.decoder = self._child("decoder", Decoder(tgt_vocab_size, cfg, pad_id, rng, dtype))

    def train(self, mode=True):
        """Dropout is active only in training mode."""
        for m in self.modules():
            for part in vars(m).values():
                if isinstance(part, Dropout):
                    part.training = mode
                if isinstance(part, Residual):
                    part.dropout.training = mode
        return self

    def masks(self, src, tgt_in):
        src_mask = padding_mask(src, self.pad_id)  # (B, 1, 1, S)
        tgt_mask = causal_mask(tgt_in.shape[1]) & padding_mask(tgt_in, self.pad_id)  # (B, 1, T, T)
        return src_mask, tgt_mask

    def forward(self, src, tgt_in):
        """src (B, S), tgt_in (B, T) ids -> logits (B, T, V) for the next target token."""
        src_mask, tgt_mask = self.masks(src, tgt_in)
        memory = self.encoder.forward(src, src_mask)  # (B, S, D)
        return self.decoder.forward(tgt_in, memory, tgt_mask, src_mask)  # (B, T, V)

    def encode(self, src):
        """src (B, S) -> memory (B, S, D) and src_mask (B, 1, 1, S), computed once per input
        when decoding."""
        src_mask = padding_mask(src, self.pad_id)
        return self.encoder.forward(src, src_mask), src_mask

    def decode(self, tgt_in, memory, src_mask):
        """tgt_in (B, T) prefix, memory (B, S, D) -> logits (B, T, V)."""
        tgt_mask = causal_mask(tgt_in.shape[1]) & padding_mask(tgt_in, self.pad_id)
        return self.decoder.forward(tgt_in, memory, tgt_mask, src_mask)

    def backward(self, dlogits):
        """The forward read in reverse: decoder first, then the encoder with the summed dmemory."""
        dmemory = self.decoder.backward(dlogits)  # (B, S, D)
        self.encoder.backward(dmemory)
