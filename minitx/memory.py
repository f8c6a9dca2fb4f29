"""How much memory the sizes in a config ask for, worked out before anything is allocated.

An array larger than the machine's memory either ends in a MemoryError traceback or, on a
system that promises memory it does not have, gets the process killed later, its run lost. So
every size a user chooses is checked here first against the machine's physical memory, and
refused, with the estimate, in one line naming the key to change:

    model's parameters      count_params, and the positional tables (model.max_len)
    vocabulary              data.n_symbols, through the embeddings it sizes
    held-out sets           data.n_valid, data.n_test
    one step's activations  train.batch_size, eval.batch_size, trace's --batch
    beam search             the beam times the inputs decoded together

Each estimate counts only what is surely allocated, so it is a lower bound: a refusal means
the run cannot fit, never that it might not. Passing does not promise that it fits.
"""

import os

import numpy as np

from minitx.errors import UserError


def physical_memory():
    """Bytes of memory this machine has."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def refuse_beyond_memory(need, what, advice):
    """A one-line UserError when `need` bytes exceed the machine's memory."""
    have = physical_memory()
    if need > have:
        raise UserError(f"{what} need about {need / 1e9:.3g} GB, and this machine has {have / 1e9:.3g} GB of memory; {advice}")


def count_params(m, src_vocab_size, tgt_vocab_size):
    """The number of parameters minitx.model.Transformer will allocate for ModelConfig m, worked
    out without allocating them (tests/test_train.py checks it against n_params())."""
    D, F = m.d_model, m.d_ff
    attention = 4 * (D * D + D)  # W_q, W_k, W_v, W_o and their biases
    feed_forward = D * F + F + F * D + D
    norm = 2 * D  # gamma and beta
    encoder_layer = attention + feed_forward + 2 * norm
    decoder_layer = 2 * attention + feed_forward + 3 * norm
    closing_norms = 2 * norm if m.norm == "pre" else 0
    output = 0 if m.tie_output else D * tgt_vocab_size + tgt_vocab_size
    return ((src_vocab_size + tgt_vocab_size) * D + m.n_enc_layers * encoder_layer
            + m.n_dec_layers * decoder_layer + closing_norms + output)


def check_model(cfg, src_vocab_size, tgt_vocab_size, dtype, training):
    """Refuse a model whose weights alone cannot fit, naming what makes it large: the layers,
    the embeddings (the vocabulary) or the positional tables (model.max_len). Every model
    holds its weights and their gradients; training adds Adam's two moments. The encoder and
    the decoder each hold a positional table of model.max_len x D, built in float64."""
    m, itemsize = cfg.model, np.dtype(dtype).itemsize
    n = count_params(m, src_vocab_size, tgt_vocab_size)
    copies = 4 if training else 2
    weights = n * itemsize * copies
    tables = 2 * m.max_len * m.d_model * (itemsize + 8)
    embeddings = (src_vocab_size + tgt_vocab_size) * m.d_model
    what = "weights, gradients and Adam's two moments" if training else "weights and gradients"
    what = f"their {what} ({copies} x {itemsize} bytes each), before any activations,"
    if tables > weights:
        refuse_beyond_memory(weights + tables, f"model.max_len = {m.max_len}: the positional tables, 2 x {m.max_len} x "
                             f"{m.d_model}, and the model's parameters, {what}",
                             "make model.max_len smaller (it only has to cover the longest sequence, </s> included)")
    if embeddings > n / 2:
        fewer = (f"make data.n_symbols (now {cfg.data.n_symbols}) smaller" if cfg.data.task != "tsv"
                 else "use training data with fewer distinct words, or a smaller model.d_model")
        refuse_beyond_memory(weights + tables, f"model too large for this machine: about {n:.3g} parameters, most of them "
                             f"the embeddings of {src_vocab_size} source and {tgt_vocab_size} target tokens; {what}", fewer)
    refuse_beyond_memory(weights + tables, f"model too large for this machine: about {n:.3g} parameters; {what}",
                         f"make model.d_model (now {m.d_model}), model.d_ff or the layer counts smaller")


def step_bytes(m, B, S, T, V, itemsize):
    """A lower bound on the activations of one forward pass of B sources of S tokens to targets
    of T, which the backward pass reads: each attention's weights P (B, H, rows, columns), each
    feed-forward's hidden layer (B, L, F), and the logits (B, T, V) with the loss's
    probabilities of the same shape. The many (B, L, D) tensors beside them are left out."""
    H, F = m.n_heads, m.d_ff
    encoder = m.n_enc_layers * (H * S * S + S * F)
    decoder = m.n_dec_layers * (H * T * T + H * T * S + T * F)
    return itemsize * B * (encoder + decoder + 2 * T * V)


def check_batch(cfg, B, S, T, V, key, dtype=np.float32):
    """Refuse a batch of B sources of S tokens and targets of T (</s> or <s> included), over a
    target vocabulary of V, whose activations (step_bytes) cannot fit. key: the key or option
    that chose B."""
    need = step_bytes(cfg.model, B, S, T, V, np.dtype(dtype).itemsize)
    chosen = f"{key} {B}" if key.startswith("--") else f"{key} = {B}"
    refuse_beyond_memory(need, f"{chosen}: the activations of one pass over {B} sequences (S = {S}, T = {T})",
                         f"make {key} smaller")


def check_batches(cfg, S, T, V, held_out, training, dtype=np.float32):
    """check_batch for training's batches (train.batch_size) and evaluation's (eval.batch_size,
    never more than the largest held-out split, of held_out pairs), at the data's longest
    sequences, S and T tokens with </s> or <s>: a batch this large holds some of them."""
    if training:
        check_batch(cfg, cfg.train.batch_size, S, T, V, "train.batch_size", dtype)
    check_batch(cfg, min(cfg.eval.batch_size, held_out), S, T, V, "eval.batch_size", dtype)


def held_out_bytes(n, length):
    """The Python lists of n held-out pairs of `length` tokens a side, with the set of sources
    training leaves out. Measured with tracemalloc: 1,622 bytes a pair at length 10 and 4,021
    at length 30, so about 400 bytes plus 120 a token."""
    return n * (400 + 120 * length)


def check_held_out(d):
    """Refuse held-out sets (data.n_valid, data.n_test, for copy, reverse and sort) that
    cannot fit, before drawing them."""
    longest = max(d.max_len, d.test_max_len)
    refuse_beyond_memory(held_out_bytes(d.n_valid + d.n_test, longest),
                         f"data.n_valid = {d.n_valid} and data.n_test = {d.n_test}: the held-out sequences",
                         "make data.n_valid or data.n_test smaller")


def beam_bytes(n_dec_layers, D, rows, S, max_len, V, itemsize):
    """A lower bound on beam search's memory for rows = inputs x beam: each decoder layer's
    cached keys and values, over the S source positions for cross-attention and growing to
    max_len for self-attention, and each step's candidate scores (rows x V, float64) with
    their sort order (int64)."""
    caches = n_dec_layers * 2 * rows * (S + max_len) * D * itemsize
    return caches + rows * V * 16


def check_beam(model, B, beam, S, max_len):
    """Refuse a beam search over B inputs of S tokens that cannot fit (beam_bytes)."""
    V, D = model.decoder.embedding.params["W"].shape
    itemsize = model.decoder.embedding.params["W"].dtype.itemsize
    need = beam_bytes(len(model.decoder.layers), D, B * beam, S, max_len, V, itemsize)
    fewer_inputs = ", or a smaller eval.batch_size" if B > 1 else ""
    refuse_beyond_memory(need, f"a beam of {beam} over {B} input(s): the caches of its {B * beam} hypotheses",
                         f"choose a smaller --beam (or eval.beam){fewer_inputs}")
