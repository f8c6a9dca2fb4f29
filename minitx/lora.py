"""LoRA: fine-tuning a trained model through low-rank adapters (Hu et al. 2021, "LoRA: Low-Rank
Adaptation of Large Language Models", section 4.1).

Full fine-tuning changes every weight W (D_in, D_out) by some update dW. LoRA bets that the
update a new task needs is close to low rank, and trains it in factored form:

    W_eff = W0 + s * A @ B        A (D_in, r), B (r, D_out), s = alpha / r

W0 is the trained base weight and stays frozen; only A and B are trained, r * (D_in + D_out)
numbers instead of D_in * D_out. B starts at zero, so training starts exactly at the base model;
A starts random, because with both at zero neither would ever get a gradient (dA = s dW B^T and
dB = s A^T dW would both stay 0). The paper writes the same thing as W0 + B A with x on the
right; with our y = x @ W convention our A is its A^T (the "down" projection) and our B its B^T.

How we apply it. Rather than change the attention and feed-forward code, an Adapter keeps a copy
W0 of the base weight and writes W_eff = W0 + s * A @ B into the model's own weight array, in
place, whenever A or B change. The model then runs exactly as before, and its backward leaves
dL/dW_eff in model.grads, from which the adapter's backward gets dA and dB. The base model is
never modified for good: `unmerge()` writes W0 back.

What this costs, honestly: the model's backward still computes the full (D_in, D_out) gradient
of every adapted weight, as full fine-tuning does. Large-model implementations compute
y = x @ W0 + s * (x @ A) @ B instead and never form dW: they need only dA = s * x^T @ (dy @ B^T)
and dB = s * (x @ A)^T @ dy, which is where LoRA saves memory and time. The gradients are the
same numbers either way (dW = x^T @ dy, so s * dW @ B^T = s * x^T @ dy @ B^T), so what we learn
here about ranks and accuracy carries over; what we save here is the optimizer state (Adam's m
and v exist only for A and B) and the checkpoint, which holds only A and B.

Names: the adapter of "decoder.layers.0.self_attn.query.W" (that attention's W_Q) has parameters
"lora.decoder.layers.0.self_attn.query.W.A" and "...query.W.B".
"""

import hashlib

import numpy as np

from minitx.errors import UserError
from minitx.nn import Module

# lora.targets entry -> the last part of the weight names it selects: the W of one of the four
# Linear projections of every attention (encoder self-attention, decoder self-attention and
# cross-attention), each (D, D), or for "ff" the feed-forward block's two weights, lin1.W (D, F)
# and lin2.W (F, D).
TARGET_SUFFIXES = {
    "W_q": (".query.W",),
    "W_k": (".key.W",),
    "W_v": (".value.W",),
    "W_o": (".output.W",),
    "ff": (".ff.lin1.W", ".ff.lin2.W"),
}


def target_names(model, targets):
    """The names of the model's weights that `targets` (e.g. ["W_q", "ff"]) selects, in the
    model's own order."""
    suffixes = tuple(s for t in targets for s in TARGET_SUFFIXES[t])
    return [name for name in model.params if name.endswith(suffixes)]


class Adapter(Module):
    """The adapter of one weight W (D_in, D_out). params: A (D_in, r), B (r, D_out)."""

    def __init__(self, weight, rank, alpha, rng):
        """weight: the model's own array, which forward() overwrites in place."""
        super().__init__()
        D_in, D_out = weight.shape
        self.weight = weight
        self.W0 = weight.copy()  # the frozen base weight, (D_in, D_out)
        # alpha / r: the paper's scale. Adam moves every entry of A and B by about lr per step
        # whatever r is, and A @ B sums r such products, so its size grows with r; dividing by
        # r lets the same lr and alpha serve several ranks (the paper's reason for it).
        self.scale = alpha / rank
        # Entries of size 1/sqrt(D_in), so x @ A has entries about as large as x's.
        A = rng.standard_normal((D_in, rank)) / np.sqrt(D_in)
        self._param("A", A.astype(weight.dtype))  # (D_in, r)
        self._param("B", np.zeros((rank, D_out), dtype=weight.dtype))  # (r, D_out): start at W0

    def forward(self):
        """Write W_eff = W0 + s * A @ B into the model's weight, in place, and return it."""
        A, B = self.params["A"], self.params["B"]
        self.weight[...] = self.W0 + self.scale * (A @ B)  # (D_in, D_out)
        return self.weight

    def backward(self, dW):
        """dW (D_in, D_out): dL/dW_eff, as the model's backward left it in its grads.

        W_eff[i, j] = W0[i, j] + s * sum_k A[i, k] * B[k, j], so
            dA[i, k] = sum_j dW[i, j] * s * B[k, j]   =>  dA = s * dW @ B^T      (D_in, r)
            dB[k, j] = sum_i dW[i, j] * s * A[i, k]   =>  dB = s * A^T @ dW      (r, D_out)
        W0 is frozen, so nothing flows back to it.
        """
        A, B = self.params["A"], self.params["B"]
        self.grads["A"] += self.scale * (dW @ B.T)  # (D_in, r)
        self.grads["B"] += self.scale * (A.T @ dW)  # (r, D_out)


class LoRA(Module):
    """Adapters on every weight of `model` that `targets` selects.

    params / grads: "lora.<weight name>.A" and ".B" for every adapted weight. Creating a LoRA
    leaves the model's outputs unchanged (B = 0); after that the model's adapted weights always
    hold W0 + s * A @ B, because we call forward() whenever A or B change.
    """

    def __init__(self, model, targets, rank, alpha, rng):
        super().__init__()
        self.model = model
        self.adapters = {
            name: self._child(f"lora.{name}", Adapter(model.params[name], rank, alpha, rng))
            for name in target_names(model, targets)
        }

    def forward(self):
        """Write every W_eff into the model. Call after any change to A or B."""
        for adapter in self.adapters.values():
            adapter.forward()

    def backward(self):
        """Turn the model's dL/dW_eff (left by model.backward) into dA and dB for every adapter."""
        for name, adapter in self.adapters.items():
            adapter.backward(self.model.grads[name])

    def merge(self):
        """Leave W0 + s * A @ B in the model and return it: a plain Transformer, with no adapter
        code left in its forward, that decodes, evaluates and saves like any other."""
        self.forward()
        return self.model

    def unmerge(self):
        """Put the base weights W0 back, exactly: the model is the base model again."""
        for adapter in self.adapters.values():
            adapter.weight[...] = adapter.W0


def fingerprint(arrays):
    """A short hash of a checkpoint's parameters (every "param/" array: name, dtype, shape and
    bytes, in name order). Two checkpoints with equal fingerprints hold the same weights."""
    h = hashlib.sha256()
    for key in sorted(k for k in arrays if k.startswith("param/")):
        value = np.ascontiguousarray(arrays[key])
        h.update(f"{key} {value.dtype.str} {value.shape}\n".encode())
        h.update(value.tobytes())
    return h.hexdigest()[:16]


def check_base(saved, base_run, base_fingerprint, where):
    """Refuse adapters trained on other base weights than the ones now at base_run.

    saved: the adapter checkpoint's arrays (with "base/run" and "base/fingerprint")."""
    saved_run, saved_fp = str(saved["base/run"]), str(saved["base/fingerprint"])
    if saved_fp != base_fingerprint:
        raise UserError(
            f"{where}: its adapters were trained on base {saved_run} (fingerprint {saved_fp}), but "
            f"{base_run} now holds different weights (fingerprint {base_fingerprint}); restore that "
            f"base run or train the adapters again"
        )
