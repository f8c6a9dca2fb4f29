"""A backward never writes into the gradient it was handed, nor into its cache (minitx/nn/module.py).

Every layer's backward, plain and fused, runs on a read-only upstream gradient: a write into it
raises. We also keep a copy of everything the layer and its sub-layers hold besides their
gradients (caches, parameters, kept attention weights) and check it is unchanged afterwards, and
that the caller's array still holds what it did.
"""

import numpy as np
import pytest

from helpers import padded_batch, small_model_config
from minitx.lora import Adapter
from minitx.model import DecoderLayer, EncoderLayer, PostNormDecoderLayer, PostNormEncoderLayer, Transformer, causal_mask, padding_mask
from minitx.nn import PLAIN, CrossEntropy, Dropout, Embedding, FeedForward, LayerNorm, Linear, MultiHeadAttention, PositionalEncoding
from minitx.nn import ReLU, ScaledDotProductAttention, TiedOutput
from minitx.nn import fused
from minitx.nn.fused import FUSED

F64 = np.float64


def held_arrays(obj):
    """name -> copy of every array `obj` and its sub-layers hold, gradients aside."""
    modules = obj.named_modules() if hasattr(obj, "named_modules") else [("", obj)]
    held = {}
    for prefix, module in modules:
        for attribute, value in vars(module).items():
            if attribute == "grads":
                continue
            values = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (tuple, list)) else [("", value)]
            for key, item in values:
                if isinstance(item, np.ndarray):
                    held[f"{prefix}.{attribute}[{key}]"] = item.copy()
    return held


def assert_backward_leaves_alone(obj, dout):
    """Run obj.backward on a read-only copy of dout; nothing obj holds may change."""
    before = held_arrays(obj)
    assert before, "found no cache to watch: did the forward run?"
    given = dout.copy()
    given.setflags(write=False)
    obj.backward(given)
    assert np.array_equal(given, dout), "the backward changed the gradient it was handed"
    after = held_arrays(obj)
    changed = [name for name in before if not np.array_equal(before[name], after[name])]
    assert not changed, f"the backward wrote into what its layer holds: {changed}"


def x(rng, *shape):
    return rng.standard_normal(shape)


def source_mask(rng, S=6):
    return padding_mask(padded_batch(rng, 2, S, 9, [S, 3]), 0)  # (B, 1, 1, S)


def layer_cases():
    """(name, layer, forward) for every layer with a backward(dout), plain and fused."""
    rng = np.random.default_rng(0)
    cases = []
    for impl, linear, relu, ff, norm, emb, core, self_attn, cross_attn in [
        ("plain", Linear, ReLU, FeedForward, LayerNorm, Embedding, ScaledDotProductAttention, MultiHeadAttention, MultiHeadAttention),
        ("fused", fused.FusedLinear, fused.FusedReLU, fused.FusedFeedForward, fused.FusedLayerNorm, fused.FusedEmbedding,
         fused.FusedScaledDotProductAttention, fused.FusedSelfAttention, fused.FusedCrossAttention),
    ]:
        layer = linear(8, 5, rng, F64)
        cases.append((f"{impl} Linear", layer, lambda l=layer: l.forward(x(rng, 2, 3, 8))))
        layer = relu()
        cases.append((f"{impl} ReLU", layer, lambda l=layer: l.forward(x(rng, 2, 3, 8))))
        layer = ff(8, 16, rng, F64)
        cases.append((f"{impl} FeedForward", layer, lambda l=layer: l.forward(x(rng, 2, 3, 8))))
        layer = norm(8, dtype=F64)
        cases.append((f"{impl} LayerNorm", layer, lambda l=layer: l.forward(x(rng, 2, 3, 8))))
        layer = emb(9, 8, 0, rng, F64)
        cases.append((f"{impl} Embedding", layer, lambda l=layer: l.forward(padded_batch(rng, 2, 5, 9, [5, 3]))))
        layer = core()
        cases.append((f"{impl} ScaledDotProductAttention", layer,
                      lambda l=layer: l.forward(x(rng, 2, 2, 4, 3), x(rng, 2, 2, 6, 3), x(rng, 2, 2, 6, 3), source_mask(rng))))
        layer = self_attn(8, 2, rng, F64)
        cases.append((f"{impl} self-attention", layer, lambda l=layer, h=x(rng, 2, 6, 8): l.forward(h, h, source_mask(rng))))
        layer = cross_attn(8, 2, rng, F64)
        cases.append((f"{impl} cross-attention", layer, lambda l=layer: l.forward(x(rng, 2, 4, 8), x(rng, 2, 6, 8), source_mask(rng))))
    layer = Dropout(0.5, np.random.default_rng(1))
    cases.append(("Dropout (p = 0.5)", layer, lambda l=layer: l.forward(x(rng, 2, 3, 8))))
    layer = TiedOutput(Embedding(9, 8, 0, rng, F64))
    cases.append(("TiedOutput", layer, lambda l=layer: l.forward(x(rng, 2, 4, 8))))
    layer = PositionalEncoding(16, 8, F64)
    cases.append(("PositionalEncoding", layer, lambda l=layer: l.forward(x(rng, 2, 4, 8))))
    for impl, layers in (("plain", PLAIN), ("fused", FUSED)):
        for cls in (EncoderLayer, PostNormEncoderLayer):
            layer = cls(8, 2, 16, 0.1, np.random.default_rng(2), layers, F64)
            cases.append((f"{impl} {cls.__name__}", layer, lambda l=layer: l.forward(x(rng, 2, 6, 8), source_mask(rng))))
        for cls in (DecoderLayer, PostNormDecoderLayer):
            layer = cls(8, 2, 16, 0.1, np.random.default_rng(2), layers, F64)
            cases.append((f"{impl} {cls.__name__}", layer,
                          lambda l=layer: l.forward(x(rng, 2, 4, 8), x(rng, 2, 6, 8), causal_mask(4), source_mask(rng))))
        for norm in ("pre", "post"):
            for tie in (True, False):
                cfg = small_model_config(norm=norm, tie_output=tie, fused=impl == "fused", dropout=0.1)
                layer = Transformer(cfg, 7, 9, 0, np.random.default_rng(3), F64)
                cases.append((f"{impl} Transformer, {norm}-norm, {'tied' if tie else 'untied'}", layer,
                              lambda l=layer: l.forward(padded_batch(rng, 2, 6, 7, [6, 4]), padded_batch(rng, 2, 4, 9, [4, 2]))))
    return cases


@pytest.mark.parametrize("name, layer, forward", layer_cases(), ids=[c[0] for c in layer_cases()])
def test_backward_writes_neither_its_dout_nor_its_cache(name, layer, forward):
    y = forward()
    dout = np.random.default_rng(4).standard_normal(y.shape)
    assert_backward_leaves_alone(layer, dout)


def test_a_lora_adapter_leaves_the_model_gradient_it_reads_alone():
    rng = np.random.default_rng(5)
    adapter = Adapter(rng.standard_normal((8, 6)), 2, 3.0, rng)
    adapter.params["B"][...] = rng.standard_normal((2, 6))
    adapter.forward()
    assert_backward_leaves_alone(adapter, rng.standard_normal((8, 6)))


@pytest.mark.parametrize("loss_class", [CrossEntropy, fused.FusedCrossEntropy])
def test_the_loss_backward_leaves_its_cache_alone(loss_class):
    # The loss takes no upstream gradient: it starts the chain. Its cache must still survive.
    rng = np.random.default_rng(6)
    loss = loss_class(0, 0.1)
    loss.forward(rng.standard_normal((2, 5, 7)), padded_batch(rng, 2, 5, 7, [5, 2]))
    before = held_arrays(loss)
    loss.backward()
    after = held_arrays(loss)
    assert all(np.array_equal(before[k], after[k]) for k in before), [k for k in before if not np.array_equal(before[k], after[k])]


def test_the_check_fails_on_a_backward_that_scales_its_dout_in_place(monkeypatch):
    # Proof that the test can fail: FusedReLU as it was, multiplying into the dout it was handed.
    monkeypatch.setattr(fused.FusedReLU, "backward", lambda self, dout, out=None: np.multiply(dout, self.cache, out=dout))
    layer = fused.FusedReLU()
    y = layer.forward(np.random.default_rng(7).standard_normal((2, 3)))
    with pytest.raises(ValueError, match="read-only"):
        assert_backward_leaves_alone(layer, np.ones_like(y))


def test_the_check_fails_on_a_backward_that_writes_its_cache(monkeypatch):
    def backward(self, dout):
        x = self.cache
        x *= 2  # a scratch computation in the cached input's memory
        return dout * (x > 0)

    monkeypatch.setattr(ReLU, "backward", backward)
    layer = ReLU()
    layer.forward(np.random.default_rng(8).standard_normal((2, 3)))
    with pytest.raises(AssertionError, match="wrote into what its layer holds"):
        assert_backward_leaves_alone(layer, np.ones((2, 3)))
