"""Decoding: the key/value cache changes how much work a step does, never its answer; beam
search with one beam is greedy decoding, and with more beams finds outputs at least as likely."""

import numpy as np
import pytest

from helpers import padded_batch, small_model_config
from minitx.data import BOS, EOS, PAD
from minitx.decode import (
    IncrementalDecoder,
    beam_search,
    decoder_for,
    greedy,
    greedy_uncached,
    sequence_score,
)
from minitx.model import Transformer

SRC_VOCAB, TGT_VOCAB = 9, 11
VARIANTS = [("pre", True), ("pre", False), ("post", True), ("post", False)]


def make_model(seed, norm="pre", tie_output=True):
    """A small random float64 model. max_len 32 leaves room to decode 24 tokens."""
    cfg = small_model_config(norm=norm, tie_output=tie_output, max_len=32)
    rng = np.random.default_rng(seed)
    return Transformer(cfg, SRC_VOCAB, TGT_VOCAB, pad_id=PAD, rng=rng, dtype=np.float64)


def make_sources(seed):
    """Six sources of S = 7 positions, four of them padded to shorter lengths."""
    return padded_batch(np.random.default_rng(seed), 6, 7, SRC_VOCAB, [7, 5, 3, 7, 2, 6])


def worst(a, b):
    """A readable failure message: the worst element, both values and the difference."""
    i = np.unravel_index(np.abs(a - b).argmax(), a.shape)
    return f"worst at {i}: {a[i]!r} vs {b[i]!r}, difference {abs(a[i] - b[i]):.3g}"


@pytest.mark.parametrize("norm,tie_output", VARIANTS)
def test_cached_steps_give_the_logits_of_the_whole_prefix(norm, tie_output):
    model = make_model(0, norm, tie_output)
    rng = np.random.default_rng(1)
    src = make_sources(1)  # (6, 7)
    # T = 5 != S = 7, so swapped query and key lengths would fail. Row 1 has finished and is
    # fed <pad> from position 3 on, as greedy does: its padded keys must be masked alike.
    tgt_in = rng.integers(3, TGT_VOCAB, size=(6, 5))  # (6, 5)
    tgt_in[:, 0] = BOS
    tgt_in[1, 3:] = PAD

    memory, src_mask = model.encode(src)
    full = model.decode(tgt_in, memory, src_mask)  # (6, 5, V)

    dec = IncrementalDecoder(model, src)
    cached = np.stack([dec.step(tgt_in[:, t]) for t in range(5)], axis=1)  # (6, 5, V)

    assert cached.shape == full.shape
    assert np.abs(cached - full).max() < 1e-6, worst(cached, full)


@pytest.mark.parametrize("norm,tie_output", VARIANTS)
def test_greedy_with_the_cache_equals_greedy_without(norm, tie_output):
    model = make_model(11, norm, tie_output)
    src = make_sources(12)
    cached = greedy(model, src, max_len=12)
    uncached = greedy_uncached(model, src, max_len=12)
    assert np.array_equal(cached, uncached), f"\ncached:\n{cached}\nuncached:\n{uncached}"


@pytest.mark.parametrize("norm,tie_output", VARIANTS)
def test_beam_of_one_is_greedy(norm, tie_output):
    model = make_model(11, norm, tie_output)
    src = make_sources(12)
    g = greedy(model, src, max_len=20)
    b = beam_search(model, src, max_len=20, beam=1, length_penalty=0.6)
    assert np.array_equal(b, g), f"\nbeam 1:\n{b}\ngreedy:\n{g}"


@pytest.mark.parametrize("beam", [2, 4])
@pytest.mark.parametrize("norm,tie_output", VARIANTS)
def test_beam_scores_at_least_as_well_as_greedy(norm, tie_output, beam):
    # Beam search is not guaranteed to beat greedy: greedy's path can be pruned from the beam.
    # On small random models like this one it scores lower on about 2% of inputs, mostly where
    # greedy ran out of length before </s>; on this model (seed 22) it never does, and scores
    # higher on most inputs. sequence_score recomputes each output's score with a full forward.
    model = make_model(22, norm, tie_output)
    src = make_sources(23)
    alpha = 0.6
    g = greedy(model, src, max_len=24)
    b = beam_search(model, src, max_len=24, beam=beam, length_penalty=alpha)
    g_score = sequence_score(model, src, g, alpha)  # (6,)
    b_score = sequence_score(model, src, b, alpha)  # (6,)
    print(f"greedy {np.round(g_score, 4)}\nbeam {beam} {np.round(b_score, 4)}")
    assert np.all(b_score >= g_score - 1e-9), f"\ngreedy {g_score}\nbeam   {b_score}\ngreedy:\n{g}\nbeam:\n{b}"


@pytest.mark.parametrize("beam", [1, 3])
def test_beam_search_of_a_padded_batch_equals_each_input_alone(beam):
    # Seed 11 gives outputs of many lengths, some ending in </s> and some running to max_len.
    model = make_model(11, "pre", False)
    src = make_sources(12)  # (6, 7), real lengths 7, 5, 3, 7, 2, 6
    batched = beam_search(model, src, max_len=16, beam=beam, length_penalty=0.6)  # (6, L)
    assert batched.ndim == 2 and batched.shape[0] == 6 and batched.shape[1] <= 16
    for i, n in enumerate([7, 5, 3, 7, 2, 6]):
        alone = beam_search(model, src[i : i + 1, :n], max_len=16, beam=beam, length_penalty=0.6)[0]
        row = batched[i, : len(alone)]
        assert np.array_equal(row, alone), f"input {i} (length {n}): batched {batched[i]}, alone {alone}"
        assert np.all(batched[i, len(alone) :] == PAD)
        # Everything after the first </s> is padding, as greedy returns it.
        eos = np.flatnonzero(batched[i] == EOS)
        if len(eos):
            assert np.all(batched[i, eos[0] + 1 :] == PAD), f"input {i}: tokens after </s>: {batched[i]}"


def test_decoder_for_picks_greedy_or_beam():
    model = make_model(10)
    src = make_sources(11)
    assert decoder_for(1, 0.6) is greedy
    expected = beam_search(model, src, 12, beam=3, length_penalty=0.6)
    assert np.array_equal(decoder_for(3, 0.6)(model, src, 12), expected)


def test_decoding_stops_at_the_positional_table_instead_of_failing():
    model = Transformer(small_model_config(max_len=6), 7, 9, 0, np.random.default_rng(0), np.float64)
    src = np.array([[3, 4, 5, 2]])
    for decode in (greedy, greedy_uncached, lambda m, s, n: beam_search(m, s, n, beam=2)):
        out = decode(model, src, 50)
        assert out.shape[1] <= 6, out.shape
