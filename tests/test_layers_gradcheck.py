"""One finite-difference check per layer, in float64, against a random upstream gradient."""

import numpy as np

from helpers import assert_gradients_match, padded_batch
from minitx.nn.attention import MultiHeadAttention, ScaledDotProductAttention
from minitx.nn.embedding import Embedding, PositionalEncoding
from minitx.gradcheck import check_layer, compare
from minitx.nn.layernorm import LayerNorm
from minitx.nn.layers import Dropout, FeedForward, Linear, ReLU
from minitx.nn.loss import CrossEntropy, log_softmax
from minitx.model import causal_mask, padding_mask

F64 = np.float64


def test_linear():
    rng = np.random.default_rng(0)
    layer = Linear(5, 3, rng, F64)
    assert_gradients_match(check_layer(layer, [rng.standard_normal((2, 4, 5))], rng))


def test_relu():
    rng = np.random.default_rng(1)
    # Keep inputs away from 0, where ReLU has no derivative and differences straddle the kink.
    x = rng.standard_normal((3, 7))
    x[np.abs(x) < 0.1] += 0.5
    assert_gradients_match(check_layer(ReLU(), [x], rng))


def test_layernorm():
    rng = np.random.default_rng(2)
    layer = LayerNorm(6, dtype=F64)
    layer.params["gamma"][:] = rng.standard_normal(6)
    layer.params["beta"][:] = rng.standard_normal(6)
    assert_gradients_match(check_layer(layer, [rng.standard_normal((2, 3, 6)) * 3 + 1], rng))


def test_dropout_with_a_fixed_mask():
    rng = np.random.default_rng(3)
    layer = Dropout(0.5, np.random.default_rng(7))
    # The same seed before every forward draws the same mask, so the loss is a fixed function.
    def forward(x):
        layer.rng = np.random.default_rng(7)
        return layer.forward(x)
    x = rng.standard_normal((4, 5))
    assert_gradients_match(check_layer(layer, [x], rng, forward=forward))
    y = forward(x)
    kept = y != 0
    assert 0 < kept.mean() < 1, f"mask kept {kept.mean():.2f} of the elements"
    np.testing.assert_allclose(y[kept], 2 * x[kept])


def test_feedforward():
    rng = np.random.default_rng(4)
    layer = FeedForward(6, 10, rng, F64)
    assert_gradients_match(check_layer(layer, [rng.standard_normal((2, 3, 6))], rng))


def test_embedding_accumulates_repeated_ids_and_skips_padding():
    rng = np.random.default_rng(5)
    layer = Embedding(6, 4, pad_id=0, rng=rng, dtype=F64)
    ids = np.array([[2, 2, 3, 0], [2, 5, 0, 0]])  # id 2 three times, padding three times
    # In the model nothing at a padding position reaches the loss (padded keys are masked,
    # padded targets ignored), so the upstream gradient there is 0; we check under that rule.
    G = rng.standard_normal((2, 4, 4)) * (ids != 0)[..., None]
    layer.zero_grad()
    layer.forward(ids)
    layer.backward(G)
    rows = compare(lambda: float((layer.forward(ids) * G).sum()), layer.params, {"W": layer.grads["W"].copy()})
    assert_gradients_match(rows)
    layer.zero_grad()
    layer.forward(ids)
    dout = rng.standard_normal((2, 4, 4))
    layer.backward(dout)
    want_row2 = dout[0, 0] + dout[0, 1] + dout[1, 0]
    np.testing.assert_allclose(layer.grads["W"][2], want_row2, err_msg="repeated id 2 must sum")
    assert np.all(layer.grads["W"][0] == 0), f"padding row got gradient {layer.grads['W'][0]}"


def test_positional_encoding_passes_gradient_through():
    rng = np.random.default_rng(6)
    assert_gradients_match(check_layer(PositionalEncoding(10, 4, F64), [rng.standard_normal((2, 5, 4))], rng))


def test_scaled_dot_product_attention_with_mask_and_s_not_t():
    rng = np.random.default_rng(7)
    B, H, T, S, K = 2, 3, 4, 6, 5
    q, k, v = (rng.standard_normal(shape) for shape in [(B, H, T, K), (B, H, S, K), (B, H, S, K)])
    mask = padding_mask(padded_batch(rng, B, S, 9, [6, 3]), 0)  # (B, 1, 1, S)
    layer = ScaledDotProductAttention()
    assert_gradients_match(check_layer(layer, [q, k, v], rng, forward=lambda q, k, v: layer.forward(q, k, v, mask)))


def test_mha_encoder_self_attention_with_source_padding():
    rng = np.random.default_rng(8)
    mha = MultiHeadAttention(d_model=16, n_heads=4, rng=rng, dtype=F64)
    x = rng.standard_normal((2, 5, 16))
    mask = padding_mask(padded_batch(rng, 2, 5, 9, [5, 2]), 0)  # (B, 1, 1, S)
    # check_layer wants one gradient per input; self-attention's is the sum of both paths.
    mha_backward = mha.backward
    mha.backward = lambda dy: sum(mha_backward(dy))
    rows = check_layer(mha, [x], rng, forward=lambda x: mha.forward(x, x, mask))
    assert len(rows) == 9  # eight parameters (four Linear layers' W and b) and the input
    assert_gradients_match(rows)


def test_mha_decoder_self_attention_with_causal_and_padding_mask():
    rng = np.random.default_rng(9)
    mha = MultiHeadAttention(d_model=12, n_heads=3, rng=rng, dtype=F64)
    y = rng.standard_normal((2, 4, 12))
    mask = causal_mask(4) & padding_mask(padded_batch(rng, 2, 4, 9, [4, 3]), 0)  # (B, 1, T, T)
    mha_backward = mha.backward
    mha.backward = lambda dy: sum(mha_backward(dy))
    assert_gradients_match(check_layer(mha, [y], rng, forward=lambda y: mha.forward(y, y, mask)))


def test_mha_cross_attention_with_s_not_t():
    rng = np.random.default_rng(10)
    mha = MultiHeadAttention(d_model=16, n_heads=4, rng=rng, dtype=F64)
    y = rng.standard_normal((2, 3, 16))  # queries from the decoder, T = 3
    memory = rng.standard_normal((2, 7, 16))  # keys and values from the encoder, S = 7
    mask = padding_mask(padded_batch(rng, 2, 7, 9, [7, 4]), 0)  # (B, 1, 1, S)
    out = mha.forward(y, memory, mask)
    assert out.shape == (2, 3, 16) and mha.attn.shape == (2, 4, 3, 7), (out.shape, mha.attn.shape)
    rows = check_layer(mha, [y, memory], rng, forward=lambda y, m: mha.forward(y, m, mask))
    assert [r.name for r in rows][-2:] == ["input0", "input1"]
    assert_gradients_match(rows)


def test_cross_entropy_matches_its_definition_and_gradient():
    rng = np.random.default_rng(11)
    B, T, V, eps, pad = 2, 5, 7, 0.1, 0
    logits = rng.standard_normal((B, T, V)) * 3
    targets = padded_batch(rng, B, T, V, [5, 2])
    ce = CrossEntropy(pad, label_smoothing=eps)
    loss = ce.forward(logits, targets)
    # PyTorch's definition, written out term by term.
    logp = log_softmax(logits)
    terms = [
        (1 - eps) * -logp[b, t, targets[b, t]] + eps * -logp[b, t].mean()
        for b in range(B) for t in range(T) if targets[b, t] != pad
    ]
    assert abs(loss - np.mean(terms)) < 1e-12, (loss, np.mean(terms))
    dlogits = ce.backward()
    assert np.all(dlogits[1, 2:] == 0), "padding positions must get no gradient"
    rows = compare(lambda: ce.forward(logits, targets), {"logits": logits}, {"logits": dlogits})
    assert_gradients_match(rows)


def test_cross_entropy_is_stable_for_huge_logits():
    # Confidently wrong by a logit gap of 2000: a naive log(softmax) would give inf here.
    logits = np.array([[[1000.0, 0.0, -1000.0]]])
    ce = CrossEntropy(pad_id=3, label_smoothing=0.1)
    loss = ce.forward(logits, np.array([[2]]))
    expected = 0.9 * 2000.0 + 0.1 * (0.0 + 1000.0 + 2000.0) / 3  # -log p_v = 1000 - logit_v
    assert abs(loss - expected) < 1e-9, (loss, expected)
    dlogits = ce.backward()
    assert np.allclose(dlogits, [[[1 - 0.1 / 3, -0.1 / 3, -0.9 - 0.1 / 3]]]), dlogits


def test_log_softmax_is_stable_for_huge_logits():
    x = np.array([[1000.0, 0.0, -1000.0]])
    logp = log_softmax(x)
    assert np.all(np.isfinite(logp)), logp
    assert abs(logp[0, 0]) < 1e-12 and abs(logp[0, 1] + 1000) < 1e-9, logp
