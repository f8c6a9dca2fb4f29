"""The one base class every layer shares: named parameters, gradients of the same keys, and
registered sub-layers.

A leaf layer (Linear, LayerNorm, Embedding) registers its own arrays with `_param`. A layer built
from others registers each of them with `_child`, parameters or not (a Dropout, a ReLU, the
attention core), and its `params` and `grads` then hold every child's arrays under dotted names
("layers.0.self_attn.query.W"). The dotted dicts hold the very same array objects as the
children, so we always change parameters and gradients in place (`p -= ...`, `g += ...`,
`g.fill(0)`) and never rebind them.

Because every sub-layer is registered, one walk (`named_modules`) reaches them all: switching
dropout off for evaluation, tracing shapes and naming parameters all use it.

One rule every backward keeps: it never writes into the gradient it was handed (`dout`), nor
into its cache. The caller may still hold either: a residual connection hands the same `dx` to
the skip path and to the branch, and with dropout off the branch's first backward returns that
very array.
"""

import numpy as np


class Module:
    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.children: dict[str, "Module"] = {}
        self.training = True  # only Dropout reads it; train(True) and train(False) switch it everywhere

    def _param(self, name, value):
        """Register a parameter and its zeroed gradient of the same shape and dtype."""
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)
        return value

    def _child(self, name, module):
        """Register a sub-layer; its parameters appear here as '<name>.<key>'."""
        self.children[name] = module
        for key, value in module.params.items():
            self.params[f"{name}.{key}"] = value
            self.grads[f"{name}.{key}"] = module.grads[key]
        return module

    def named_modules(self, prefix=""):
        """(dotted name, module) for this layer and every layer inside it, depth first."""
        yield prefix, self
        for name, child in self.children.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def train(self, mode=True):
        """Training mode (dropout active) or, with mode=False, evaluation mode."""
        for _, module in self.named_modules():
            module.training = mode
        return self

    def zero_grad(self):
        # Backward passes accumulate with +=, so every step starts from zero.
        for g in self.grads.values():
            g.fill(0)

    def n_params(self):
        return sum(p.size for p in self.params.values())
