"""minitx.nn.fused computes what minitx.nn computes: every fused class against its plain parent
in float64 (forward output, input gradients and parameter gradients, to 1e-12), on shapes with
S != T and padding; the whole model both ways; checkpoints that load either way; and a planted
bug in a fused backward that the gradient check catches."""

import numpy as np
import pytest

from helpers import assert_gradients_match, padded_batch, small_model_config
from minitx import checkpoint
from minitx.decode import beam_search, greedy
from minitx.gradcheck import check_lora, check_model
from minitx.lora import LoRA
from minitx.model import Transformer, causal_mask, padding_mask
from minitx.nn import CrossEntropy, Embedding, FeedForward, LayerNorm, Linear, MultiHeadAttention, ReLU, ScaledDotProductAttention
from minitx.nn import fused
from minitx.inference import load_run
from minitx.train import train

F64 = np.float64
TOLERANCE = 1e-12


def assert_equal_arrays(name, plain, fast):
    """Equal to TOLERANCE, relative to the array's size; on failure show where and by how much."""
    plain, fast = np.asarray(plain, dtype=F64), np.asarray(fast, dtype=F64)
    assert plain.shape == fast.shape, f"{name}: shapes {plain.shape} (plain) and {fast.shape} (fused)"
    diff = np.abs(plain - fast)
    worst = np.unravel_index(diff.argmax(), diff.shape) if diff.size else ()
    scale = max(1.0, float(np.abs(plain).max()) if plain.size else 1.0)
    assert diff.max(initial=0.0) <= TOLERANCE * scale, (
        f"{name}: worst at {worst}: plain {plain[worst]!r}, fused {fast[worst]!r}, difference {diff.max():.3e}")


def as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def check_same(plain, fast, inputs, forward="forward", dout_rng=None, **kwargs):
    """Run plain and fast on copies of the same inputs and the same upstream gradient (fused
    layers may overwrite their arguments); compare outputs, input gradients and every parameter
    gradient. The fused layer first takes the plain layer's parameter values."""
    assert set(plain.params) == set(fast.params), "a fused layer must have its parent's parameters"
    for k, p in plain.params.items():
        fast.params[k][...] = p
    dout_rng = dout_rng or np.random.default_rng(99)
    results = []
    dout = None
    for layer in (plain, fast):
        layer.zero_grad()
        y = getattr(layer, forward)(*[x.copy() if isinstance(x, np.ndarray) else x for x in inputs], **kwargs)
        if dout is None:
            dout = dout_rng.standard_normal(y.shape)
        y = y.copy()
        dinputs = as_tuple(layer.backward(dout.copy()))
        results.append((y, dinputs, {k: g.copy() for k, g in layer.grads.items()}))
    (y_p, d_p, g_p), (y_f, d_f, g_f) = results
    assert_equal_arrays("output", y_p, y_f)
    assert len(d_p) == len(d_f)
    for i, (a, b) in enumerate(zip(d_p, d_f)):
        if a is not None or b is not None:
            assert_equal_arrays(f"input gradient {i}", a, b)
    for k in g_p:
        assert_equal_arrays(f"d{k}", g_p[k], g_f[k])


def test_fused_linear():
    rng = np.random.default_rng(0)
    check_same(Linear(5, 3, rng, F64), fused.FusedLinear(5, 3, rng, F64), [rng.standard_normal((2, 4, 5))])


def test_fused_relu_in_place():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7))
    check_same(ReLU(), fused.FusedReLU(), [x])


def test_fused_feed_forward():
    rng = np.random.default_rng(2)
    check_same(FeedForward(6, 10, rng, F64), fused.FusedFeedForward(6, 10, rng, F64), [rng.standard_normal((2, 3, 6))])


def test_fused_layer_norm():
    rng = np.random.default_rng(3)
    plain, fast = LayerNorm(6, dtype=F64), fused.FusedLayerNorm(6, dtype=F64)
    plain.params["gamma"][:] = rng.standard_normal(6)
    plain.params["beta"][:] = rng.standard_normal(6)
    check_same(plain, fast, [rng.standard_normal((2, 5, 6)) * 3 + 1])


def test_fused_embedding_with_repeated_ids_and_padding():
    rng = np.random.default_rng(4)
    ids = np.array([[2, 2, 3, 0], [2, 5, 0, 0]])  # id 2 three times, padding three times
    check_same(Embedding(6, 4, 0, rng, F64), fused.FusedEmbedding(6, 4, 0, rng, F64), [ids])


def test_fused_scaled_dot_product_attention_with_mask_and_s_not_t():
    rng = np.random.default_rng(5)
    B, H, T, S, K = 2, 3, 4, 6, 5
    q, k, v = (rng.standard_normal(shape) for shape in [(B, H, T, K), (B, H, S, K), (B, H, S, K)])
    mask = padding_mask(padded_batch(rng, B, S, 9, [6, 3]), 0)  # (B, 1, 1, S)
    check_same(ScaledDotProductAttention(), fused.FusedScaledDotProductAttention(), [q, k, v, mask])


def test_fused_cross_attention_with_s_not_t_and_source_padding():
    rng = np.random.default_rng(6)
    y = rng.standard_normal((2, 3, 16))  # queries from the decoder, T = 3
    memory = rng.standard_normal((2, 7, 16))  # keys and values from the encoder, S = 7
    mask = padding_mask(padded_batch(rng, 2, 7, 9, [7, 4]), 0)  # (B, 1, 1, S)
    plain = MultiHeadAttention(16, 4, rng, F64)
    check_same(plain, fused.FusedCrossAttention(16, 4, rng, F64), [y, memory, mask])


@pytest.mark.parametrize("causal", [False, True], ids=["encoder", "decoder"])
def test_fused_self_attention_with_padding(causal):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 5, 12))
    mask = padding_mask(padded_batch(rng, 2, 5, 9, [5, 2]), 0)  # (B, 1, 1, L)
    if causal:
        mask = mask & causal_mask(5)  # (B, 1, L, L)
    plain, fast = MultiHeadAttention(12, 3, rng, F64), fused.FusedSelfAttention(12, 3, rng, F64)

    def self_attend(layer):
        def forward(x, mask):
            return layer.forward(x, x, mask)  # one array as both x_q and x_kv
        return forward

    plain.self_attend, fast.self_attend = self_attend(plain), self_attend(fast)
    check_same(plain, fast, [x, mask], forward="self_attend")


def test_fused_cross_entropy_with_padding_and_label_smoothing():
    rng = np.random.default_rng(8)
    logits = rng.standard_normal((2, 5, 7)) * 3
    targets = padded_batch(rng, 2, 5, 7, [5, 2])
    plain, fast = CrossEntropy(0, 0.1), fused.FusedCrossEntropy(0, 0.1)
    assert_equal_arrays("loss", plain.forward(logits, targets), fast.forward(logits.copy(), targets))
    assert_equal_arrays("dlogits", plain.backward(), fast.backward())


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("tie_output", [True, False])
def test_the_whole_model_both_ways(norm, tie_output):
    rng = np.random.default_rng(9)
    src = padded_batch(rng, 2, 6, 7, [6, 4])
    tgt = padded_batch(rng, 2, 5, 9, [5, 3])  # T = 4 != S = 6
    results = []
    for is_fused in (False, True):
        model = Transformer(small_model_config(norm=norm, tie_output=tie_output, fused=is_fused), 7, 9, 0,
                            np.random.default_rng(1), F64)
        model.train(False)
        ce = (fused.FusedCrossEntropy if is_fused else CrossEntropy)(0, 0.1)
        model.zero_grad()
        loss = ce.forward(model.forward(src, tgt[:, :-1]), tgt[:, 1:])
        model.backward(ce.backward())
        results.append((loss, {k: g.copy() for k, g in model.grads.items()}))
    (loss_p, grads_p), (loss_f, grads_f) = results
    assert grads_p.keys() == grads_f.keys()
    assert_equal_arrays("loss", loss_p, loss_f)
    for k in grads_p:
        assert_equal_arrays(f"d{k}", grads_p[k], grads_f[k])


def broken_fused_softmax_backward(self, dout, out=None):
    """The fused attention backward with the softmax's "- sum(dP * P)" term dropped."""
    q, k, v, P, scale = self.cache
    dP = dout @ v.transpose(0, 1, 3, 2)
    grads = (dP * P * scale @ k, (dP * P * scale).transpose(0, 1, 3, 2) @ q, P.transpose(0, 1, 3, 2) @ dout)
    if out is not None:
        for buffer, grad in zip(out, grads):
            buffer[...] = grad
    return grads


def test_a_planted_bug_in_a_fused_backward_is_caught(monkeypatch):
    monkeypatch.setattr(fused.FusedScaledDotProductAttention, "backward", broken_fused_softmax_backward)
    rng = np.random.default_rng(10)
    model = Transformer(small_model_config(fused=True), 7, 9, 0, rng, F64)
    src, tgt = padded_batch(rng, 2, 5, 7, [5, 3]), padded_batch(rng, 2, 5, 9, [5, 4])
    rows = check_model(model, fused.FusedCrossEntropy(0), src, tgt[:, :-1], tgt[:, 1:], sample=8)
    failed = {r.name for r in rows if not r.ok}
    assert "encoder.layers.0.self_attn.query.W" in failed and "decoder.layers.0.cross_attn.key.W" in failed, failed


def test_lora_adapters_on_the_fused_model_pass_the_gradient_check():
    rng = np.random.default_rng(11)
    model = Transformer(small_model_config(fused=True, dropout=0.1), 7, 9, 0, rng, F64)
    adapters = LoRA(model, ["W_q", "W_k", "W_v", "W_o", "ff"], rank=2, alpha=3.0, rng=rng)
    for name, B in adapters.params.items():
        if name.endswith(".B"):
            B[...] = rng.standard_normal(B.shape)  # nonzero, so that dA is not trivially 0
    src, tgt = padded_batch(rng, 2, 6, 7, [6, 4]), padded_batch(rng, 2, 5, 9, [5, 3])
    assert_gradients_match(check_lora(model, adapters, fused.FusedCrossEntropy(0, 0.1), src, tgt[:, :-1], tgt[:, 1:]))


@pytest.mark.parametrize("trained_fused", [True, False], ids=["fused-run-decoded-plain", "plain-run-decoded-fused"])
def test_checkpoints_load_and_decode_either_way(tmp_path, trained_fused):
    run_dir = train("tiny", ["data.n_valid=20", "data.n_test=20", "train.steps=20", "train.warmup=10", "train.eval_every=20",
                             f"model.fused={str(trained_fused).lower()}"], out=tmp_path / "r", quiet=True)
    _, as_trained, task = load_run(run_dir)
    _, other, _ = load_run(run_dir, fused=not trained_fused)
    assert type(other.encoder.layers[0].self_attn) is not type(as_trained.encoder.layers[0].self_attn)
    src = np.array([task.src_vocab.encode("3 1 4 1 5 9 2 6 5 3".split()) + [2]])
    for decode in (lambda m: greedy(m, src, 12), lambda m: beam_search(m, src, 12, beam=3)):
        assert np.array_equal(decode(as_trained), decode(other))
    saved = checkpoint.load(run_dir / checkpoint.CHECKPOINT)
    assert {k[6:] for k in saved if k.startswith("param/")} == set(other.params)
