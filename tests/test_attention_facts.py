"""The facts a learner should be able to check by running code."""

import numpy as np

from helpers import padded_batch, small_model_config
from minitx.nn.attention import MultiHeadAttention, merge_heads, split_heads
from minitx.model import Transformer, causal_mask, padding_mask


def test_masked_weights_are_exactly_zero_and_rows_sum_to_one():
    rng = np.random.default_rng(0)
    mha = MultiHeadAttention(d_model=8, n_heads=2, rng=rng, dtype=np.float32)
    y = rng.standard_normal((2, 5, 8)).astype(np.float32)
    mask = causal_mask(5) & padding_mask(padded_batch(rng, 2, 5, 9, [5, 3]), 0)  # (B, 1, T, T)
    mha.forward(y, y, mask)
    P = mha.attn  # (B, H, T, T)
    blocked = ~np.broadcast_to(mask, P.shape)
    assert np.all(P[blocked] == 0.0), f"largest masked weight {P[blocked].max()}"
    row_sums = P.sum(axis=-1)
    assert np.allclose(row_sums, 1.0, atol=1e-6), f"row sums range {row_sums.min()}..{row_sums.max()}"


def test_concat_then_W_O_equals_sum_of_per_head_projections():
    rng = np.random.default_rng(1)
    B, H, T, K = 2, 4, 3, 5
    D = H * K
    heads = rng.standard_normal((B, H, T, K))
    W_o = rng.standard_normal((D, D))
    concat = merge_heads(heads)  # (B, T, D)
    per_head = sum(heads[:, h] @ W_o[h * K : (h + 1) * K] for h in range(H))  # (B, T, D)
    worst = np.abs(concat @ W_o - per_head).max()
    assert worst < 1e-12, f"worst difference {worst}"
    assert np.array_equal(split_heads(concat, H), heads)


def test_parameter_count_does_not_depend_on_sequence_length():
    rng = np.random.default_rng(2)
    model = Transformer(small_model_config(max_len=64), 7, 9, 0, rng, np.float32)
    shapes = {k: v.shape for k, v in model.params.items()}
    n = model.n_params()
    for S, T in [(3, 2), (40, 50)]:
        src = rng.integers(1, 7, (2, S))
        tgt = rng.integers(1, 9, (2, T))
        logits = model.forward(src, tgt)
        attn = model.decoder.layers[0].cross_attn.attn
        assert logits.shape == (2, T, 9)
        assert attn.shape == (2, 2, T, S), f"cross-attention is (B, H, T, S), got {attn.shape}"
        assert model.n_params() == n and {k: v.shape for k, v in model.params.items()} == shapes


def test_model_names_parameters_and_gradients_alike():
    model = Transformer(small_model_config(), 7, 9, 0, np.random.default_rng(3), np.float32)
    assert list(model.params) == list(model.grads)
    assert "decoder.layers.0.cross_attn.query.W" in model.params
    assert all(model.params[k].shape == model.grads[k].shape for k in model.params)
