"""The encoder-decoder transformer (Vaswani et al. 2017, section 3, figure 1).

    source ids (B, S) -> embed * sqrt(D) + PE -> N encoder layers -> memory (B, S, D)
    target ids (B, T) -> embed * sqrt(D) + PE -> N decoder layers (each also reads memory)
                      -> logits (B, T, V)

Every layer wraps its sub-layers in residual connections, with the layer norm either before
the sub-layer ("pre", the modern default: trains stably without careful warmup),

    x = x + dropout(sublayer(norm(x)))          EncoderLayer, DecoderLayer

or after the residual sum ("post", the original paper's placement),

    x = norm(x + dropout(sublayer(x)))          PostNormEncoderLayer, PostNormDecoderLayer

and each layer's forward says so itself, three lines a sub-layer. Every backward is its forward
read bottom-up, under comments quoting the forward line it undoes.

Parameter and gradient names are dotted paths such as "decoder.layers.0.cross_attn.query.W"
or "encoder.layers.1.norm2.gamma" (the norm of that layer's second sub-layer).
The model is built from minitx.nn's plain layers, or with model.fused from minitx.nn.fused's
faster subclasses, which have the same parameters and compute the same numbers.
"""

import re

import numpy as np

from minitx.nn import PLAIN, Dropout, Module, PositionalEncoding
from minitx.nn.fused import FUSED


# Checkpoints written before each layer named its norms norm1, norm2 (and norm3) kept them under
# the residual blocks that owned them then. We read those names too (current_name), so such runs
# still load, resume and fine-tune.
LEGACY_NORMS = {"encoder": {"res_self": "norm1", "res_ff": "norm2"},
                "decoder": {"res_self": "norm1", "res_cross": "norm2", "res_ff": "norm3"}}
LEGACY_NAME = re.compile(r"\b(encoder|decoder)(\.layers\.\d+\.)(res_self|res_cross|res_ff)\.norm\.")


def current_name(key):
    """A checkpoint key in today's spelling: "param/encoder.layers.0.res_ff.norm.gamma" ->
    "param/encoder.layers.0.norm2.gamma"; every other key as it is."""
    return LEGACY_NAME.sub(lambda m: f"{m[1]}{m[2]}{LEGACY_NORMS[m[1]][m[3]]}.", key)


def layer_set(fused):
    """The classes a model is built from: minitx.nn's plain ones, or the fused ones."""
    return FUSED if fused else PLAIN


class EncoderLayer(Module):
    """One encoder layer, pre-norm (the default): two sub-layers, each inside a residual
    connection with its layer norm first and dropout on its output.

        x = x + dropout(self_attn(norm(x)))     every source position reads every other
        x = x + dropout(ff(norm(x)))            the same two-layer network at every position

    The skip path `x + ...` carries x past the sub-layer unchanged, so the gradient reaches x
    twice: straight through the sum, and back through the sub-layer and its norm. The backward
    adds the two. PostNormEncoderLayer below is the original paper's placement.
    """

    def __init__(self, d_model, n_heads, d_ff, dropout, rng, layers, dtype):
        super().__init__()
        self.norm1 = self._child("norm1", layers.layer_norm(d_model, dtype=dtype))
        self.self_attn = self._child("self_attn", layers.self_attention(d_model, n_heads, rng, dtype))
        self.dropout1 = self._child("dropout1", Dropout(dropout, rng))
        self.norm2 = self._child("norm2", layers.layer_norm(d_model, dtype=dtype))
        self.ff = self._child("ff", layers.feed_forward(d_model, d_ff, rng, dtype))
        self.dropout2 = self._child("dropout2", Dropout(dropout, rng))

    def forward(self, x, src_mask):
        """x (B, S, D), src_mask (B, 1, 1, S) -> x (B, S, D)."""
        h = self.norm1.forward(x)  # (B, S, D)
        a = self.self_attn.forward(h, h, src_mask)  # (B, S, D)
        x = x + self.dropout1.forward(a)  # (B, S, D)
        h = self.norm2.forward(x)  # (B, S, D)
        f = self.ff.forward(h)  # (B, S, D)
        x = x + self.dropout2.forward(f)  # (B, S, D)
        return x

    def backward(self, dx):
        """dx (B, S, D) -> dx (B, S, D): the forward read bottom-up. A sum hands its gradient
        unchanged to both terms, so after each sub-layer's backward dx is the skip path's
        gradient plus the branch's."""
        # forward: x = x + self.dropout2.forward(f)
        df = self.dropout2.backward(dx)  # (B, S, D)
        # forward: f = self.ff.forward(h)
        dh = self.ff.backward(df)  # (B, S, D)
        # forward: h = self.norm2.forward(x)
        dx = dx + self.norm2.backward(dh)  # (B, S, D): the skip path plus the branch
        # forward: x = x + self.dropout1.forward(a)
        da = self.dropout1.backward(dx)  # (B, S, D)
        # forward: a = self.self_attn.forward(h, h, src_mask)
        dh_q, dh_kv = self.self_attn.backward(da)  # (B, S, D) each: h was both x_q and x_kv
        # forward: h = self.norm1.forward(x)
        dx = dx + self.norm1.backward(dh_q + dh_kv)  # (B, S, D): the skip path plus the branch
        return dx


class PostNormEncoderLayer(EncoderLayer):
    """The original paper's encoder layer (Vaswani et al. 2017, 3.1): the layer norm after the
    residual sum instead of before the sub-layer. The same children and parameters.

        x = norm(x + dropout(self_attn(x)))
        x = norm(x + dropout(ff(x)))

    Every gradient, the skip path's too, now passes through a norm's backward on its way down.
    """

    def forward(self, x, src_mask):
        """x (B, S, D), src_mask (B, 1, 1, S) -> x (B, S, D)."""
        a = self.self_attn.forward(x, x, src_mask)  # (B, S, D)
        x = self.norm1.forward(x + self.dropout1.forward(a))  # (B, S, D)
        f = self.ff.forward(x)  # (B, S, D)
        x = self.norm2.forward(x + self.dropout2.forward(f))  # (B, S, D)
        return x

    def backward(self, dx):
        """dx (B, S, D) -> dx (B, S, D). ds is the gradient of a residual sum, the norm's input."""
        # forward: x = self.norm2.forward(x + self.dropout2.forward(f))
        ds = self.norm2.backward(dx)  # (B, S, D)
        df = self.dropout2.backward(ds)  # (B, S, D)
        # forward: f = self.ff.forward(x)
        dx = ds + self.ff.backward(df)  # (B, S, D): the skip path plus the branch
        # forward: x = self.norm1.forward(x + self.dropout1.forward(a))
        ds = self.norm1.backward(dx)  # (B, S, D)
        da = self.dropout1.backward(ds)  # (B, S, D)
        # forward: a = self.self_attn.forward(x, x, src_mask)
        dx_q, dx_kv = self.self_attn.backward(da)  # (B, S, D) each: x was both x_q and x_kv
        dx = ds + dx_q + dx_kv  # (B, S, D): the skip path plus the branch
        return dx


class DecoderLayer(Module):
    """One decoder layer, pre-norm (the default): three sub-layers, each inside a residual
    connection with its layer norm first and dropout on its output.

        y = y + dropout(self_attn(norm(y)))             causal: position t reads positions 0..t
        y = y + dropout(cross_attn(norm(y), memory))    queries from y, keys and values from memory
        y = y + dropout(ff(norm(y)))

    PostNormDecoderLayer below is the original paper's placement.
    """

    def __init__(self, d_model, n_heads, d_ff, dropout, rng, layers, dtype):
        super().__init__()
        self.norm1 = self._child("norm1", layers.layer_norm(d_model, dtype=dtype))
        self.self_attn = self._child("self_attn", layers.self_attention(d_model, n_heads, rng, dtype))
        self.dropout1 = self._child("dropout1", Dropout(dropout, rng))
        self.norm2 = self._child("norm2", layers.layer_norm(d_model, dtype=dtype))
        self.cross_attn = self._child("cross_attn", layers.cross_attention(d_model, n_heads, rng, dtype))
        self.dropout2 = self._child("dropout2", Dropout(dropout, rng))
        self.norm3 = self._child("norm3", layers.layer_norm(d_model, dtype=dtype))
        self.ff = self._child("ff", layers.feed_forward(d_model, d_ff, rng, dtype))
        self.dropout3 = self._child("dropout3", Dropout(dropout, rng))

    def forward(self, y, memory, tgt_mask, src_mask):
        """y (B, T, D), memory (B, S, D), tgt_mask (B, 1, T, T), src_mask (B, 1, 1, S)
        -> y (B, T, D)."""
        h = self.norm1.forward(y)  # (B, T, D)
        a = self.self_attn.forward(h, h, tgt_mask)  # (B, T, D)
        y = y + self.dropout1.forward(a)  # (B, T, D)
        h = self.norm2.forward(y)  # (B, T, D)
        c = self.cross_attn.forward(h, memory, src_mask)  # (B, T, D)
        y = y + self.dropout2.forward(c)  # (B, T, D)
        h = self.norm3.forward(y)  # (B, T, D)
        f = self.ff.forward(h)  # (B, T, D)
        y = y + self.dropout3.forward(f)  # (B, T, D)
        return y

    def backward(self, dy):
        """dy (B, T, D) -> dy (B, T, D), dmemory (B, S, D). Cross-attention is the only
        sub-layer that reads memory, so dmemory is its dx_kv; the Decoder adds these up over its
        layers."""
        # forward: y = y + self.dropout3.forward(f)
        df = self.dropout3.backward(dy)  # (B, T, D)
        # forward: f = self.ff.forward(h)
        dh = self.ff.backward(df)  # (B, T, D)
        # forward: h = self.norm3.forward(y)
        dy = dy + self.norm3.backward(dh)  # (B, T, D): the skip path plus the branch
        # forward: y = y + self.dropout2.forward(c)
        dc = self.dropout2.backward(dy)  # (B, T, D)
        # forward: c = self.cross_attn.forward(h, memory, src_mask)
        dh, dmemory = self.cross_attn.backward(dc)  # (B, T, D), (B, S, D)
        # forward: h = self.norm2.forward(y)
        dy = dy + self.norm2.backward(dh)  # (B, T, D): the skip path plus the branch
        # forward: y = y + self.dropout1.forward(a)
        da = self.dropout1.backward(dy)  # (B, T, D)
        # forward: a = self.self_attn.forward(h, h, tgt_mask)
        dh_q, dh_kv = self.self_attn.backward(da)  # (B, T, D) each: h was both x_q and x_kv
        # forward: h = self.norm1.forward(y)
        dy = dy + self.norm1.backward(dh_q + dh_kv)  # (B, T, D): the skip path plus the branch
        return dy, dmemory


class PostNormDecoderLayer(DecoderLayer):
    """The original paper's decoder layer (Vaswani et al. 2017, 3.1): the layer norm after each
    residual sum. The same children and parameters as DecoderLayer.

        y = norm(y + dropout(self_attn(y)))
        y = norm(y + dropout(cross_attn(y, memory)))
        y = norm(y + dropout(ff(y)))
    """

    def forward(self, y, memory, tgt_mask, src_mask):
        """y (B, T, D), memory (B, S, D), tgt_mask (B, 1, T, T), src_mask (B, 1, 1, S)
        -> y (B, T, D)."""
        a = self.self_attn.forward(y, y, tgt_mask)  # (B, T, D)
        y = self.norm1.forward(y + self.dropout1.forward(a))  # (B, T, D)
        c = self.cross_attn.forward(y, memory, src_mask)  # (B, T, D)
        y = self.norm2.forward(y + self.dropout2.forward(c))  # (B, T, D)
        f = self.ff.forward(y)  # (B, T, D)
        y = self.norm3.forward(y + self.dropout3.forward(f))  # (B, T, D)
        return y

    def backward(self, dy):
        """dy (B, T, D) -> dy (B, T, D), dmemory (B, S, D). ds is the gradient of a residual
        sum, the norm's input."""
        # forward: y = self.norm3.forward(y + self.dropout3.forward(f))
        ds = self.norm3.backward(dy)  # (B, T, D)
        df = self.dropout3.backward(ds)  # (B, T, D)
        # forward: f = self.ff.forward(y)
        dy = ds + self.ff.backward(df)  # (B, T, D): the skip path plus the branch
        # forward: y = self.norm2.forward(y + self.dropout2.forward(c))
        ds = self.norm2.backward(dy)  # (B, T, D)
        dc = self.dropout2.backward(ds)  # (B, T, D)
        # forward: c = self.cross_attn.forward(y, memory, src_mask)
        dy_q, dmemory = self.cross_attn.backward(dc)  # (B, T, D), (B, S, D)
        dy = ds + dy_q  # (B, T, D): the skip path plus the branch
        # forward: y = self.norm1.forward(y + self.dropout1.forward(a))
        ds = self.norm1.backward(dy)  # (B, T, D)
        da = self.dropout1.backward(ds)  # (B, T, D)
        # forward: a = self.self_attn.forward(y, y, tgt_mask)
        dy_q, dy_kv = self.self_attn.backward(da)  # (B, T, D) each: y was both x_q and x_kv
        dy = ds + dy_q + dy_kv  # (B, T, D): the skip path plus the branch
        return dy, dmemory


# The layer norm placements model.norm may name: the encoder's and the decoder's layer class for
# each. The config reads its choices from here.
NORMS = {"pre": (EncoderLayer, DecoderLayer), "post": (PostNormEncoderLayer, PostNormDecoderLayer)}


class Stack(Module):
    """The shared frame of the encoder and the decoder: embedding plus positions, N identical
    layers and, for pre-norm, one closing layer norm (pre-norm leaves the residual stream
    un-normalised, so the stack must normalise it once at the end)."""

    def __init__(self, layer_class, n_layers, vocab_size, cfg, pad_id, rng, layers, dtype):
        """layer_class: the pre-norm layer class, or its post-norm subclass when cfg.norm says."""
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
            self._child(f"layers.{i}", layer_class(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout, rng, layers, dtype))
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
        layer_class = NORMS[cfg.norm][0]
        super().__init__(layer_class, cfg.n_enc_layers, vocab_size, cfg, pad_id, rng, layers, dtype)

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
        # forward: for layer in self.layers:
        # forward:     x = layer.forward(x, src_mask)
        for layer in reversed(self.layers):
            dx = layer.backward(dx)  # (B, S, D)
        # forward: x = self.embed(src)
        self.embed_backward(dx)


class Decoder(Stack):
    def __init__(self, vocab_size, cfg, pad_id, rng, layers, dtype):
        layer_class = NORMS[cfg.norm][1]
        super().__init__(layer_class, cfg.n_dec_layers, vocab_size, cfg, pad_id, rng, layers, dtype)
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
        # forward: for layer in self.layers:
        # forward:     y = layer.forward(y, memory, tgt_mask, src_mask)
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
        """tgt_in (B, T) -> (B, 1, T, T): no future positions, no padding. With model.causal
        false there is only the padding mask, (B, 1, 1, T), which broadcasts over the queries."""
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
        """dlogits (B, T, V) -> None: the forward read in reverse, the decoder first, then the
        encoder with dmemory (B, S, D) summed over every decoder layer."""
        # forward (in decode): return self.decoder.forward(tgt_in, memory, self.target_mask(tgt_in), src_mask)
        dmemory = self.decoder.backward(dlogits)  # (B, S, D)
        # forward (in encode): return self.encoder.forward(src, src_mask), src_mask
        self.encoder.backward(dmemory)
