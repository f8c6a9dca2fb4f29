"""The encoder-decoder transformer (Vaswani et al. 2017, section 3, figure 1).

    source ids (B, S) -> embed * sqrt(D) + PE -> N encoder layers -> memory (B, S, D)
    target ids (B, T) -> embed * sqrt(D) + PE -> N decoder layers (each also reads memory)
                      -> logits (B, T, V)

Every layer wraps its sub-layers in residual connections, with the layer norm either before
the sub-layer ("pre", the modern default: trains stably without careful warmup) or after the
residual sum ("post", the original paper's placement). Every backward is its forward read
bottom-up, one call a line, under comments quoting the forward line it undoes.

Parameter and gradient names are dotted paths such as "decoder.layers.0.cross_attn.query.W".
The model is built from minitx.nn's plain layers, or with model.fused from minitx.nn.fused's
faster subclasses, which have the same parameters and compute the same numbers.
"""

import numpy as np

from minitx.nn import PLAIN, Dropout, Module, PositionalEncoding
from minitx.nn.fused import FUSED


def layer_set(fused):
    """The classes a model is built from: minitx.nn's plain ones, or the fused ones."""
    return FUSED if fused else PLAIN


class Residual(Module):
    """One residual connection around a sub-layer f, with dropout on f's output.

    pre-norm:   y = x + dropout(f(norm(x)))
    post-norm:  y = norm(x + dropout(f(x)))

    A layer calls it in two halves around its sub-layer, so that the sub-layer's own call, its
    extra arguments and its extra gradients (cross-attention's memory) stay in the layer's code:
        h = res.branch(x)        pre: norm(x)             post: x
        y = res.merge(x, f(h))   pre: x + dropout(f(h))   post: norm(x + dropout(f(h)))
    """

    def __init__(self, d_model, dropout, pre, rng, layers, dtype):
        super().__init__()
        self.pre = pre
        self.norm = self._child("norm", layers.layer_norm(d_model, dtype=dtype))
        self.dropout = self._child("dropout", Dropout(dropout, rng))

    def branch(self, x):
        """x (B, L, D) -> the sub-layer's input (B, L, D)."""
        return self.norm.forward(x) if self.pre else x

    def merge(self, x, f):
        """x, f (B, L, D): the residual stream and the sub-layer's output -> y (B, L, D)."""
        s = x + self.dropout.forward(f)  # (B, L, D)
        return s if self.pre else self.norm.forward(s)

    def merge_backward(self, dy):
        """dy (B, L, D) -> dx, df (B, L, D): the gradient of the skip path, and of f."""
        # forward: return s if self.pre else self.norm.forward(s)
        ds = dy if self.pre else self.norm.backward(dy)  # (B, L, D)
        # forward: s = x + self.dropout.forward(f)
        df = self.dropout.backward(ds)  # (B, L, D)
        return ds, df

    def branch_backward(self, dh):
        """dh (B, L, D), the gradient of the sub-layer's input -> its share of dx (B, L, D)."""
        # forward: return self.norm.forward(x) if self.pre else x
        return self.norm.backward(dh) if self.pre else dh


class EncoderLayer(Module):
    """Self-attention over the source, then the feed-forward block, each inside a Residual."""

    def __init__(self, d_model, n_heads, d_ff, dropout, pre_norm, rng, layers, dtype):
        super().__init__()
        self.self_attn = self._child("self_attn", layers.self_attention(d_model, n_heads, rng, dtype))
        self.res_self = self._child("res_self", Residual(d_model, dropout, pre_norm, rng, layers, dtype))
        self.ff = self._child("ff", layers.feed_forward(d_model, d_ff, rng, dtype))
        self.res_ff = self._child("res_ff", Residual(d_model, dropout, pre_norm, rng, layers, dtype))

    def forward(self, x, src_mask):
        """x (B, S, D), src_mask (B, 1, 1, S) -> (B, S, D)."""
        h = self.res_self.branch(x)  # (B, S, D)
        a = self.self_attn.forward(h, h, src_mask)  # (B, S, D)
        x = self.res_self.merge(x, a)  # (B, S, D)
        h = self.res_ff.branch(x)  # (B, S, D)
        f = self.ff.forward(h)  # (B, S, D)
        return self.res_ff.merge(x, f)  # (B, S, D)

    def backward(self, dout):
        """dout (B, S, D) -> dx (B, S, D)."""
        # forward: return self.res_ff.merge(x, f)
        dx, df = self.res_ff.merge_backward(dout)  # (B, S, D) each
        # forward: f = self.ff.forward(h)
        dh = self.ff.backward(df)  # (B, S, D)
        # forward: h = self.res_ff.branch(x)
        dx = dx + self.res_ff.branch_backward(dh)  # (B, S, D)
        # forward: x = self.res_self.merge(x, a)
        dx, da = self.res_self.merge_backward(dx)  # (B, S, D) each
        # forward: a = self.self_attn.forward(h, h, src_mask)
        dh_q, dh_kv = self.self_attn.backward(da)  # (B, S, D) each: h was both x_q and x_kv
        # forward: h = self.res_self.branch(x)
        dx = dx + self.res_self.branch_backward(dh_q + dh_kv)  # (B, S, D)
        return dx


class DecoderLayer(Module):
    """Masked self-attention over the target, cross-attention to the encoder's memory, then the
    feed-forward block, each inside a Residual."""

    def __init__(self, d_model, n_heads, d_ff, dropout, pre_norm, rng, layers, dtype):
        super().__init__()
        self.self_attn = self._child("self_attn", layers.self_attention(d_model, n_heads, rng, dtype))
        self.res_self = self._child("res_self", Residual(d_model, dropout, pre_norm, rng, layers, dtype))
        self.cross_attn = self._child("cross_attn", layers.cross_attention(d_model, n_heads, rng, dtype))
        self.res_cross = self._child("res_cross", Residual(d_model, dropout, pre_norm, rng, layers, dtype))
        self.ff = self._child("ff", layers.feed_forward(d_model, d_ff, rng, dtype))
        self.res_ff = self._child("res_ff", Residual(d_model, dropout, pre_norm, rng, layers, dtype))

    def forward(self, y, memory, tgt_mask, src_mask):
        """y (B, T, D), memory (B, S, D), tgt_mask (B, 1, T, T), src_mask (B, 1, 1, S)
        -> (B, T, D). Queries come from y; cross-attention's keys and values from memory."""
        h = self.res_self.branch(y)  # (B, T, D)
        a = self.self_attn.forward(h, h, tgt_mask)  # (B, T, D)
        y = self.res_self.merge(y, a)  # (B, T, D)
        h = self.res_cross.branch(y)  # (B, T, D)
        c = self.cross_attn.forward(h, memory, src_mask)  # (B, T, D)
        y = self.res_cross.merge(y, c)  # (B, T, D)
        h = self.res_ff.branch(y)  # (B, T, D)
        f = self.ff.forward(h)  # (B, T, D)
        return self.res_ff.merge(y, f)  # (B, T, D)

    def backward(self, dout):
        """dout (B, T, D) -> dy (B, T, D), dmemory (B, S, D). Cross-attention is the only block
        that reads memory, so dmemory is its dx_kv; the Decoder adds these up over its layers."""
        # forward: return self.res_ff.merge(y, f)
        dy, df = self.res_ff.merge_backward(dout)  # (B, T, D) each
        # forward: f = self.ff.forward(h)
        dh = self.ff.backward(df)  # (B, T, D)
        # forward: h = self.res_ff.branch(y)
        dy = dy + self.res_ff.branch_backward(dh)  # (B, T, D)
        # forward: y = self.res_cross.merge(y, c)
        dy, dc = self.res_cross.merge_backward(dy)  # (B, T, D) each
        # forward: c = self.cross_attn.forward(h, memory, src_mask)
        dh, dmemory = self.cross_attn.backward(dc)  # (B, T, D), (B, S, D)
        # forward: h = self.res_cross.branch(y)
        dy = dy + self.res_cross.branch_backward(dh)  # (B, T, D)
        # forward: y = self.res_self.merge(y, a)
        dy, da = self.res_self.merge_backward(dy)  # (B, T, D) each
        # forward: a = self.self_attn.forward(h, h, tgt_mask)
        dh_q, dh_kv = self.self_attn.backward(da)  # (B, T, D) each: h was both x_q and x_kv
        # forward: h = self.res_self.branch(y)
        dy = dy + self.res_self.branch_backward(dh_q + dh_kv)  # (B, T, D)
        return dy, dmemory


class Stack(Module):
    """The shared frame of the encoder and the decoder: embedding plus positions, N identical
    layers and, for pre-norm, one closing layer norm (pre-norm leaves the residual stream
    un-normalised, so the stack must normalise it once at the end)."""

    def __init__(self, layer_class, n_layers, vocab_size, cfg, pad_id, rng, layers, dtype):
        super().__init__()
        pre = cfg.norm == "pre"
        self.embedding = self._child("embedding", layers.embedding(vocab_size, cfg.d_model, pad_id, rng, dtype))
        self.positions = self._child("positions", PositionalEncoding(cfg.max_len, cfg.d_model, dtype))
        self.dropout = self._child("dropout", Dropout(cfg.dropout, rng))
        # A Python float, not np.sqrt(...): a NumPy float64 scalar would turn every float32
        # activation after it into float64 (NumPy 2 lets NumPy scalars set the result type).
        # The sqrt(D) scale keeps the learned embedding (entries about 1/sqrt(D)) on the same
        # scale as the positional encoding.
        self.scale = float(np.sqrt(cfg.d_model))
        self.layers = [
            self._child(f"layers.{i}", layer_class(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout, pre, rng, layers, dtype))
            for i in range(n_layers)
        ]
        self.norm = self._child("norm", layers.layer_norm(cfg.d_model, dtype=dtype)) if pre else None

    def embed(self, ids, offset=0):
        """ids (B, L) -> x (B, L, D). offset: position of the first id (used when decoding)."""
        x = self.embedding.forward(ids) * self.scale  # (B, L, D)
        x = self.positions.forward(x, offset)  # (B, L, D)
        return self.dropout.forward(x)  # (B, L, D)

    def embed_backward(self, dx):
        """dx (B, L, D) -> None: the gradient ends in the embedding table."""
        # forward: return self.dropout.forward(x)
        dx = self.dropout.backward(dx)  # (B, L, D)
        # forward: x = self.positions.forward(x, offset)
        dx = self.positions.backward(dx)  # (B, L, D)
        # forward: x = self.embedding.forward(ids) * self.scale
        self.embedding.backward(dx * self.scale)


class Encoder(Stack):
    def __init__(self, vocab_size, cfg, pad_id, rng, layers, dtype):
        super().__init__(EncoderLayer, cfg.n_enc_layers, vocab_size, cfg, pad_id, rng, layers, dtype)

    def forward(self, src, src_mask):
        """src (B, S) ids -> memory (B, S, D)."""
        x = self.embed(src)  # (B, S, D)
        for layer in self.layers:
            x = layer.forward(x, src_mask)  # (B, S, D)
        return self.norm.forward(x) if self.norm else x

    def backward(self, dmemory):
        """dmemory (B, S, D), already summed over every decoder layer -> None."""
        # forward: return self.norm.forward(x) if self.norm else x
        dx = self.norm.backward(dmemory) if self.norm else dmemory  # (B, S, D)
        # forward: x = layer.forward(x, src_mask), for each layer
        for layer in reversed(self.layers):
            dx = layer.backward(dx)  # (B, S, D)
        # forward: x = self.embed(src)
        self.embed_backward(dx)


class Decoder(Stack):
    def __init__(self, vocab_size, cfg, pad_id, rng, layers, dtype):
        super().__init__(DecoderLayer, cfg.n_dec_layers, vocab_size, cfg, pad_id, rng, layers, dtype)
        if cfg.tie_output:
            self.out = self._child("out", layers.tied_output(self.embedding))
        else:
            self.out = self._child("out", layers.linear(cfg.d_model, vocab_size, rng, dtype))

    def forward(self, tgt_in, memory, tgt_mask, src_mask):
        """tgt_in (B, T) ids, memory (B, S, D) -> logits (B, T, V)."""
        y = self.embed(tgt_in)  # (B, T, D)
        for layer in self.layers:
            y = layer.forward(y, memory, tgt_mask, src_mask)  # (B, T, D)
        if self.norm:
            y = self.norm.forward(y)  # (B, T, D)
        return self.out.forward(y)  # (B, T, V)

    def backward(self, dlogits):
        """dlogits (B, T, V) -> dmemory (B, S, D), summed over every layer's cross-attention."""
        # forward: return self.out.forward(y)
        dy = self.out.backward(dlogits)  # (B, T, D)
        # forward: y = self.norm.forward(y)
        if self.norm:
            dy = self.norm.backward(dy)  # (B, T, D)
        # forward: y = layer.forward(y, memory, tgt_mask, src_mask), for each layer
        dmemory = 0
        for layer in reversed(self.layers):
            dy, dmemory_layer = layer.backward(dy)  # (B, T, D), (B, S, D)
            dmemory = dmemory + dmemory_layer  # every layer read the same memory
        # forward: y = self.embed(tgt_in)
        self.embed_backward(dy)
        return dmemory


def padding_mask(ids, pad_id):
    """(B, L) ids -> (B, 1, 1, L): True where the key is a real token."""
    return (ids != pad_id)[:, None, None, :]


def causal_mask(T):
    """(T, T): position t may attend to positions 0..t, never to the future."""
    return np.tril(np.ones((T, T), dtype=bool))


class Transformer(Module):
    """params/grads: every weight by dotted name, e.g. "encoder.layers.0.self_attn.query.W"."""

    def __init__(self, cfg, src_vocab_size, tgt_vocab_size, pad_id, rng, dtype=np.float32):
        """cfg: a ModelConfig (d_model, n_heads, d_ff, n_enc_layers, n_dec_layers, dropout,
        norm, tie_output, max_len, fused, causal). rng initialises the weights and then draws
        dropout masks."""
        super().__init__()
        self.pad_id = pad_id
        self.rng = rng
        self.dtype = dtype
        self.causal = cfg.causal
        layers = layer_set(cfg.fused)
        self.encoder = self._child("encoder", Encoder(src_vocab_size, cfg, pad_id, rng, layers, dtype))
        self.decoder = self._child("decoder", Decoder(tgt_vocab_size, cfg, pad_id, rng, layers, dtype))

    def source_mask(self, src):
        """src (B, S) -> (B, 1, 1, S): every query may look at every real source token."""
        return padding_mask(src, self.pad_id)

    def target_mask(self, tgt_in):
        """tgt_in (B, T) -> (B, 1, T, T): no future positions, no padding."""
        mask = padding_mask(tgt_in, self.pad_id)  # (B, 1, 1, T)
        if self.causal:
            mask = mask & causal_mask(tgt_in.shape[1])  # (B, 1, T, T)
        return mask

    def forward(self, src, tgt_in):
        """src (B, S), tgt_in (B, T) ids -> logits (B, T, V) for the next target token."""
        memory, src_mask = self.encode(src)  # (B, S, D), (B, 1, 1, S)
        return self.decode(tgt_in, memory, src_mask)  # (B, T, V)

    def encode(self, src):
        """src (B, S) -> memory (B, S, D) and src_mask (B, 1, 1, S), computed once per input
        when decoding."""
        src_mask = self.source_mask(src)  # (B, 1, 1, S)
        return self.encoder.forward(src, src_mask), src_mask

    def decode(self, tgt_in, memory, src_mask):
        """tgt_in (B, T) prefix, memory (B, S, D) -> logits (B, T, V)."""
        return self.decoder.forward(tgt_in, memory, self.target_mask(tgt_in), src_mask)  # (B, T, V)

    def backward(self, dlogits):
        """The forward read in reverse: decoder first, then the encoder with the summed dmemory."""
        # forward (in decode): return self.decoder.forward(tgt_in, memory, ...)
        dmemory = self.decoder.backward(dlogits)  # (B, S, D)
        # forward (in encode): return self.encoder.forward(src, src_mask), src_mask
        self.encoder.backward(dmemory)
