"""Ablation switches heads off without touching code or weights: a head off is exactly its rows
of W_O zeroed, the incremental decoder sees it too, and the model is unchanged afterwards."""

import numpy as np
import pytest

from helpers import padded_batch, small_model_config
from minitx.data import BOS, PAD
from minitx.decode import IncrementalDecoder, greedy, greedy_uncached
from minitx.errors import UserError
from minitx.model import Transformer
from minitx.tools.ablate import ablated, attentions, parse_specs, table_rows

SRC_VOCAB, TGT_VOCAB = 9, 11


def make_model(fused=False):
    """A random float64 model: D = 8, H = 2 (K = 4), two encoder and two decoder layers."""
    cfg = small_model_config(fused=fused, max_len=32)
    return Transformer(cfg, SRC_VOCAB, TGT_VOCAB, PAD, np.random.default_rng(0), np.float64)


def batch(seed=1):
    rng = np.random.default_rng(seed)
    src = padded_batch(rng, 4, 7, SRC_VOCAB, [7, 5, 3, 6])  # (4, 7)
    tgt_in = rng.integers(3, TGT_VOCAB, size=(4, 5))  # (4, 5): T = 5 != S = 7
    tgt_in[:, 0] = BOS
    return src, tgt_in


def worst(a, b):
    i = np.unravel_index(np.abs(a - b).argmax(), a.shape)
    return f"worst at {i}: {a[i]!r} vs {b[i]!r}"


@pytest.mark.parametrize("fused", [False, True], ids=["plain", "fused"])
def test_a_head_switched_off_is_its_rows_of_W_O_zeroed(fused):
    model = make_model(fused)
    src, tgt_in = batch()
    before = model.forward(src, tgt_in)  # (B, T, V)
    name, K = "decoder.layers.1.cross_attn", 4
    with ablated(model, {name: [1]}):
        off = model.forward(src, tgt_in)
    W_O = model.params[f"{name}.output.W"]
    saved = W_O.copy()
    W_O[K:2 * K] = 0.0  # head 1's rows
    zeroed = model.forward(src, tgt_in)
    W_O[...] = saved
    assert np.abs(off - zeroed).max() < 1e-12, worst(off, zeroed)
    assert np.abs(off - before).max() > 1e-3, "switching the head off changed nothing"
    # Afterwards the model is its old self: the same logits, no instance attributes left.
    again = model.forward(src, tgt_in)
    assert np.array_equal(again, before)
    assert all("forward" not in vars(m) for _, m in model.named_modules())


def test_the_whole_attention_off_leaves_only_the_output_bias():
    model = make_model()
    src, tgt_in = batch()
    name = "encoder.layers.0.self_attn"
    attn = attentions(model)[name]
    attn.output.params["b"][...] = np.arange(8) * 0.1
    with ablated(model, {name: [0, 1]}):
        model.forward(src, tgt_in)
        x = np.ones((1, 3, 8))
        y = attn.forward(x, x)  # (1, 3, D)
    assert np.allclose(y, attn.output.params["b"]), y[0, 0]


@pytest.mark.parametrize("fused", [False, True], ids=["plain", "fused"])
def test_the_incremental_decoder_sees_the_ablation(fused):
    model = make_model(fused)
    src, tgt_in = batch()
    chosen = {"decoder.layers.0.self_attn": [0], "decoder.layers.1.cross_attn": [0, 1]}
    with ablated(model, chosen):
        memory, src_mask = model.encode(src)
        full = model.decode(tgt_in, memory, src_mask)  # (B, T, V)
        dec = IncrementalDecoder(model, src)
        cached = np.stack([dec.step(tgt_in[:, t]) for t in range(tgt_in.shape[1])], axis=1)  # (B, T, V)
        fast, slow = greedy(model, src, 12), greedy_uncached(model, src, 12)
    assert np.abs(cached - full).max() < 1e-10, worst(cached, full)
    assert np.array_equal(fast, slow)
    dec = IncrementalDecoder(model, src)
    normal = np.stack([dec.step(tgt_in[:, t]) for t in range(tgt_in.shape[1])], axis=1)
    assert np.abs(normal - cached).max() > 1e-3, "the cached decoder ignored the ablation"


def test_specs_name_attentions_and_heads_and_bad_ones_are_one_line_errors():
    model = make_model()
    chosen = parse_specs(model, ["decoder.layers.1.cross_attn.head1,encoder.layers.0.self_attn",
                                 "decoder.layers.1.cross_attn.head0"])
    assert chosen == {"decoder.layers.1.cross_attn": [0, 1], "encoder.layers.0.self_attn": [0, 1]}
    for spec, message in (("decoder.layers.2.cross_attn", "no such attention (valid: encoder.layers.0.self_attn"),
                          ("decoder.layers.1.cross_attn.head2", "has heads head0 to head1"),
                          ("decoder.layers.1.ff", "no such attention"),
                          ("", "no such attention")):
        with pytest.raises(UserError, match=message.replace("(", r"\(")) as info:
            parse_specs(model, [spec])
        assert "\n" not in str(info.value)


def test_the_table_switches_off_every_head_and_every_attention():
    model = make_model()
    rows = table_rows(model)
    labels = [label for label, _ in rows]
    assert labels[0] == "nothing off" and rows[0][1] == {}
    assert len(rows) == 1 + 6 * 2 + 6 + 1  # nothing, 12 heads, 6 attentions, every cross-attention
    assert "decoder.layers.1.cross_attn.head1" in labels
    assert rows[-1][1] == {"decoder.layers.0.cross_attn": [0, 1], "decoder.layers.1.cross_attn": [0, 1]}
