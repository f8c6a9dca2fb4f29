"""Building a model and its optimizer from a config.

build_model makes the Transformer the config's model section describes, after check_memory has
refused one whose parameters alone could not fit in this machine's memory; count_params works
that number out without allocating anything. build_optimizer makes Adam or AdamW (train
section) over the parameters that train, with weight decay on the weight matrices only.
"""

import os

import numpy as np

from minitx.data import PAD
from minitx.errors import UserError
from minitx.model import Transformer
from minitx.optim import OPTIMIZERS


def build_model(cfg, task, dtype=np.float32, training=True):
    """The model the config describes, after checking it fits in memory (check_memory)."""
    check_memory(cfg, task, dtype, training)
    rng = np.random.default_rng([cfg.train.seed, 0])
    return Transformer(cfg.model, len(task.src_vocab), len(task.tgt_vocab), PAD, rng, dtype)


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


def check_memory(cfg, task, dtype, training):
    """Refuse, before allocating anything, a model whose parameters alone cannot fit in this
    machine's memory (NumPy would otherwise die with a MemoryError traceback). Every model holds
    its weights and their gradients; training adds Adam's two moments. Activations come on top,
    so passing this check does not promise a model trains, only that it is not hopeless."""
    n = count_params(cfg.model, len(task.src_vocab), len(task.tgt_vocab))
    copies = 4 if training else 2
    need = n * np.dtype(dtype).itemsize * copies
    have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if need > have:
        what = "weights, gradients and Adam's two moments" if training else "weights and gradients"
        raise UserError(f"model too large for this machine: about {n:.3g} parameters need {need / 1e9:.3g} GB for {what} "
                        f"({copies} x {np.dtype(dtype).itemsize} bytes each) before any activations, and it has "
                        f"{have / 1e9:.3g} GB of memory; make model.d_model (now {cfg.model.d_model}), model.d_ff or the layer counts smaller")


def build_optimizer(cfg, params, names=None):
    """Adam or AdamW (train.optimizer) over `params`; only `names`, if given, are trained.

    Weight decay (train.weight_decay) applies to weight matrices only: the parameters with two
    axes, which are every W (attention projections, feed-forward, an untied output layer), the
    embeddings (and so the tied output) and LoRA's A and B. Layer-norm gains (gamma) and shifts
    (beta) and every bias (b) are one-axis vectors and are never decayed. Decay pulls towards
    zero, which for a gain means towards switching its feature off rather than towards its
    neutral value 1, and a bias or shift has D numbers, not D * D, so it adds no capacity worth
    restraining. This is the rule of BERT and GPT-2 (nanoGPT decays exactly the >= 2-axis
    parameters); tests/test_optim.py checks it on a real model."""
    t = cfg.train
    cls = OPTIMIZERS[t.optimizer]
    trained = list(params) if names is None else names
    decay = [n for n in trained if params[n].ndim >= 2]
    return cls(params, lr=t.lr, beta1=t.beta1, beta2=t.beta2, eps=t.eps, weight_decay=t.weight_decay, names=names, decay=decay)
