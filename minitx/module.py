"""The one base class every layer shares: named parameters and gradients of the same keys.

A leaf layer (Linear, LayerNorm, MultiHeadAttention, ...) registers its own arrays with `_param`.
A layer built from others registers them with `_child`, and its `params` and `grads` then hold
every child's arrays under dotted names ("layers.0.self_attn.W_q"). The dotted dicts hold the
very same array objects as the children, so we always change parameters and gradients in place
(`p -= ...`, `g += ...`, `g.fill(0)`) and never rebind them.
"""

import numpy as np


class Module:
    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.children: dict[str, "Module"] = {}

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

    def modules(self):
        """This layer and every layer inside it, depth first."""
        yield self
        for child in self.children.values():
            yield from child.modules()

    def zero_grad(self):
        # Backward passes accumulate with +=, so every step starts from zero.
        for g in self.grads.values():
            g.fill(0)

    def n_params(self):
        return sum(p.size for p in self.params.values())
