"""The layers a learner reads, each forward directly above its backward.

    module.py     Module: parameters, gradients and registered sub-layers
    layers.py     Linear, ReLU, Dropout, FeedForward
    attention.py  softmax, split_heads, merge_heads, ScaledDotProductAttention, MultiHeadAttention
    layernorm.py  LayerNorm
    embedding.py  Embedding, TiedOutput, PositionalEncoding
    loss.py       log_softmax, CrossEntropy
    fused.py      the same layers rewritten for speed (opt-in with model.fused: true)

A model is built from a LayerSet: PLAIN below, or fused.FUSED, which has the same fields.
"""

from typing import NamedTuple

from minitx.nn.attention import MultiHeadAttention, ScaledDotProductAttention, merge_heads, softmax, split_heads
from minitx.nn.embedding import Embedding, PositionalEncoding, TiedOutput
from minitx.nn.layernorm import LayerNorm
from minitx.nn.layers import Dropout, FeedForward, Linear, ReLU
from minitx.nn.loss import CrossEntropy, log_softmax
from minitx.nn.module import Module


class LayerSet(NamedTuple):
    """The classes a Transformer is built from, and the loss it is trained with."""

    linear: type
    layer_norm: type
    embedding: type
    tied_output: type
    self_attention: type
    cross_attention: type
    feed_forward: type
    cross_entropy: type


# Self-attention and cross-attention are one class here: forward(x, x, mask) and
# forward(y, memory, mask). The fused set has a class for each.
PLAIN = LayerSet(Linear, LayerNorm, Embedding, TiedOutput, MultiHeadAttention, MultiHeadAttention, FeedForward, CrossEntropy)


__all__ = [
    "CrossEntropy", "Dropout", "Embedding", "FeedForward", "LayerNorm", "LayerSet", "Linear", "Module",
    "MultiHeadAttention", "PLAIN", "PositionalEncoding", "ReLU", "ScaledDotProductAttention", "TiedOutput",
    "log_softmax", "merge_heads", "softmax", "split_heads",
]
