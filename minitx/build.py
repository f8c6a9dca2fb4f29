"""Building a model and its optimizer from a config.

build_model makes the Transformer the config's model section describes, after minitx.memory has
refused one whose parameters, or whose batches' activations, could not fit in this machine's
memory. build_optimizer makes Adam or AdamW (train section) over the parameters that train,
with weight decay on the weight matrices only.
"""

import numpy as np

from minitx import memory
from minitx.data import PAD
from minitx.model import Transformer
from minitx.optim import OPTIMIZERS


def build_model(cfg, task, dtype=np.float32, training=True):
    """The model the config describes, after checking that it fits in memory, and that a
    training step (when training) and an evaluation batch do (minitx.memory)."""
    memory.check_model(cfg, len(task.src_vocab), len(task.tgt_vocab), dtype, training)
    if task.longest_target is not None:  # the lengths are known when the data is at hand
        held_out = max((len(pairs) for pairs in task.splits.values()), default=0)
        memory.check_batches(cfg, task.longest_source + 1, task.longest_target + 1, len(task.tgt_vocab), held_out, training, dtype)
    rng = np.random.default_rng([cfg.train.seed, 0])
    return Transformer(cfg.model, len(task.src_vocab), len(task.tgt_vocab), PAD, rng, dtype)


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
