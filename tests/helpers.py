"""Small shared helpers for the tests: a tiny model config and a readable gradcheck assert."""

from types import SimpleNamespace


from minitx import gradcheck


def small_model_config(**overrides):
    """A model small enough that finite differences over every parameter take about a second."""
    cfg = dict(d_model=8, n_heads=2, d_ff=16, n_enc_layers=2, n_dec_layers=2, dropout=0.0,
               norm="pre", tie_output=True, max_len=16, causal=True, fused=False)
    cfg.update(overrides)
    return SimpleNamespace(**cfg)


def assert_gradients_match(rows):
    """Fail with the table, so the reader sees which tensor is wrong and by how much."""
    bad = [r for r in rows if not r.ok]
    assert not bad, "\n" + gradcheck.format_table(rows)


def padded_batch(rng, batch, length, vocab, pad_lengths):
    """Token ids in 1..vocab-1 with row i padded (id 0) from position pad_lengths[i] on."""
    ids = rng.integers(1, vocab, size=(batch, length))
    for i, n in enumerate(pad_lengths):
        ids[i, n:] = 0
    return ids
