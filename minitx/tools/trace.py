"""A shape trace of one training step: every module's inputs and outputs, forward and backward.

`python -m minitx trace tiny` builds the model a config describes, takes one small batch and
runs forward, the loss and backward once, printing for every module call, nested as the calls
nest, the shape of each array it received and returned. Backward lines also list the gradients
the module filled, which always have exactly their parameters' shapes.

We trace without touching the model's code. Python looks an attribute up on the instance
before the class, so assigning `module.forward = traced(module.forward)` on one instance makes
every call to it go through `traced`, which records the call and then runs the original bound
method. Argument names come from the method's own signature, so the trace uses the code's
names: `x_q`, `x_kv`, `mask`, `dy`, ...

The trace ends by running the same model on longer inputs, to show that the attention
matrices (B, H, T, S) grow with the lengths while the parameters stay the same arrays: no
parameter shape mentions S or T.
"""

import inspect
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from minitx.config import load_config, resolve_config_path
from minitx.data import BOS, EOS, PAD, SPECIALS, load_task
from minitx.nn import CrossEntropy, Dropout, Module, MultiHeadAttention

INDENT = "  "


@dataclass
class Call:
    """One recorded call: who, how deep, what went in, what came out."""

    depth: int
    name: str
    module: Module
    inputs: str
    output: str = ""
    notes: list = field(default_factory=list)


def traced_modules(model):
    """(dotted name, module) for the model and every module inside it, from the model's own
    walk (Module.named_modules). Dropout is left out: it never changes a shape."""
    for name, module in model.named_modules():
        if not isinstance(module, Dropout):
            yield name or "model", module


def describe(value):
    """An array as its shape, a tuple as its parts; anything else (None, offsets) as ''."""
    if isinstance(value, np.ndarray):
        return str(value.shape)
    if isinstance(value, tuple):
        return ", ".join(describe(v) for v in value)
    return "None" if value is None else ""


class Tracer:
    """Records every forward and backward call of every module under a model."""

    def __init__(self, model):
        self.calls = []
        self.enclosing = [""]  # dotted names of the calls under way, innermost last
        self.attention = {}  # id(attention module) -> its attention shape in the traced forward
        for name, module in traced_modules(model):
            for method in ("forward", "backward"):
                if hasattr(module, method):
                    setattr(module, method, self._traced(module, name, method))
        self.model = model

    def _traced(self, module, name, method):
        """A stand-in for module.<method> that records the call, then runs the original."""
        original = getattr(module, method)  # the bound method of the class
        arg_names = list(inspect.signature(original).parameters)
        is_backward = method == "backward"

        def traced(*args, **kwargs):
            named = list(zip(arg_names, args)) + list(kwargs.items())
            inputs = ", ".join(f"{n} {describe(v)}" for n, v in named if isinstance(v, np.ndarray))
            # Named relative to the call it is made from: "layers.0" inside "encoder",
            # "norm1" inside "layers.0".
            outer = self.enclosing[-1]
            short = name[len(outer) + 1:] if outer and name.startswith(outer + ".") else name
            call = Call(len(self.enclosing) - 1, short, module, inputs)
            self.calls.append(call)
            self.enclosing.append(name)
            try:
                result = original(*args, **kwargs)
            finally:
                self.enclosing.pop()
            call.output = describe(result)
            if not is_backward and isinstance(module, MultiHeadAttention):
                call.notes.append(f"attention weights .attn {module.attn.shape}")
                self.attention[id(module)] = module.attn.shape
            own = {k: g for k, g in module.grads.items() if "." not in k}
            if is_backward and own:
                call.notes.append("fills " + group_by_shape({f"d{k}": g.shape for k, g in own.items()}))
            return result

        return traced

    def detach(self):
        """Remove the instance attributes again, so the class methods are used as before."""
        for _, module in traced_modules(self.model):
            for method in ("forward", "backward"):
                module.__dict__.pop(method, None)


def group_by_shape(shapes):
    """{"dW_q": (64, 64), "db_q": (64,), ...} -> "dW_q, dW_k (64, 64); db_q, db_k (64,)"."""
    groups = {}
    for name, shape in shapes.items():
        groups.setdefault(shape, []).append(name)
    return "; ".join(f"{', '.join(names)} {shape}" for shape, names in groups.items())


def format_calls(calls, with_params, depth=None):
    """One line per call, indented by nesting; the parameter count of each module first.
    depth: leave out calls nested deeper than this (0 is the model itself)."""
    lines = []
    for c in calls:
        if depth is not None and c.depth > depth:
            continue
        params = f"{c.module.n_params():>9,}" if with_params else ""
        arrow = f" -> {c.output}" if c.output else ""
        label = INDENT * c.depth + c.name
        lines.append(f"{params}  {label:<22} {c.inputs}{arrow}")
        for note in c.notes:
            lines.append(f"{' ' * len(params)}  {INDENT * (c.depth + 1)}{note}")
    return lines


def synthetic_batch(n_src_tokens, n_tgt_tokens, B, S, T, rng):
    """Random ids shaped like a batch: src ends in </s>, tgt_in starts with <s>. Only the
    shapes matter here, so any non-special tokens will do."""
    first = len(SPECIALS)
    src = rng.integers(first, n_src_tokens, size=(B, S))  # (B, S)
    src[:, -1] = EOS
    tgt_in = rng.integers(first, n_tgt_tokens, size=(B, T))  # (B, T)
    tgt_in[:, 0] = BOS
    return src, tgt_in


def other_length(n, step, longest):
    """A length `step` longer than n, or shorter if that would not fit the positional table."""
    return n + step if n + step <= longest else max(2, n - step)


def trace(config, overrides=(), batch_size=2, depth=None):
    """Trace one training step of the config's model; returns the lines to print.
    depth: show module calls nested at most this deep (default all)."""
    from minitx.build import build_model
    from minitx.memory import check_batch

    cfg = load_config(resolve_config_path(config), overrides)
    task = load_task(cfg)
    model = build_model(cfg, task)
    check_batch(cfg, batch_size, task.longest_source + 1, task.longest_target + 1, len(task.tgt_vocab), "--batch")
    model.train(False)  # no dropout: this trace is about shapes, and they are the same
    batch = task.train_batch(np.random.default_rng([cfg.train.seed, 3]), batch_size)
    B, S = batch.src.shape
    T = batch.tgt_in.shape[1]
    m = cfg.model
    V_src, V_tgt = len(task.src_vocab), len(task.tgt_vocab)
    lines = [
        f"config {config}: B={B} S={S} T={T} D={m.d_model} H={m.n_heads} K={m.d_model // m.n_heads} "
        f"F={m.d_ff} V={V_src} (source), {V_tgt} (target)",
    ]
    if S == T:
        lines.append("(S = T in this batch; the run on longer inputs at the end makes them differ)")

    tracer = Tracer(model)
    logits = model.forward(batch.src, batch.tgt_in)  # (B, T, V)
    forward_calls = tracer.calls
    ce = CrossEntropy(PAD)
    loss = ce.forward(logits, batch.tgt_out)
    dlogits = ce.backward()  # (B, T, V)
    tracer.calls = []
    model.zero_grad()
    model.backward(dlogits)
    backward_calls = tracer.calls
    tracer.detach()

    lines += ["", "forward: each module's inputs -> output, with its parameter count (children included)",
              f"{'params':>9}  module"]
    lines += format_calls(forward_calls, with_params=True, depth=depth)
    lines += ["", f"loss: logits {logits.shape}, tgt_out {batch.tgt_out.shape} -> {loss:.4f}; "
                  f"its gradient dlogits {dlogits.shape} starts the backward pass",
              "", "backward: each module's gradient of its output -> gradients of its inputs;"
                  " 'fills' lists the parameter gradients it adds to"]
    lines += format_calls(backward_calls, with_params=False, depth=depth)

    # Same weights, longer inputs: only the activations and attention matrices change shape.
    # Different steps for S and T, so that S != T and a swapped axis would show.
    S2, T2 = other_length(S, 5, m.max_len), other_length(T, 9, m.max_len)
    src2, tgt2 = synthetic_batch(V_src, V_tgt, B, S2, T2, np.random.default_rng(0))
    n, shapes_before = model.n_params(), {k: v.shape for k, v in model.params.items()}
    model.forward(src2, tgt2)  # (B, T2, V)
    assert {k: v.shape for k, v in model.params.items()} == shapes_before
    largest = max(model.params.items(), key=lambda kv: kv[1].size)
    lines += [
        "",
        f"parameters: {n:,} in total (model.n_params()), in {len(model.params)} arrays; "
        f"the largest is {largest[0]} {largest[1].shape}",
        f"{'first layer':<38}{f'this batch (S={S}, T={T})':<28}{f'longer inputs (S={S2}, T={T2})'}",
    ]
    first_enc, first_dec = model.encoder.layers[0], model.decoder.layers[0]
    for label, module in (("encoder self-attention (B, H, S, S)", first_enc.self_attn),
                          ("decoder self-attention (B, H, T, T)", first_dec.self_attn),
                          ("cross-attention        (B, H, T, S)", first_dec.cross_attn)):
        lines.append(f"  {label:<36}{str(tracer.attention[id(module)]):<28}{module.attn.shape}")
    lines.append(f"  {'parameters':<36}{f'{n:,}':<28}{model.n_params():,} (the same arrays)")
    lines.append(
        f"attention matrices: {tracer.attention[id(first_dec.cross_attn)]} -> {first_dec.cross_attn.attn.shape} "
        f"as S and T grow; largest parameter shape {largest[1].shape} is independent of S and T"
    )
    return lines


def run_cli(config, overrides=(), batch_size=2, depth=None):
    try:
        print("\n".join(trace(config, overrides, batch_size, depth)), flush=True)
    except BrokenPipeError:
        # `minitx trace ... | head` closed the pipe early; that is not an error. We point stdout
        # at /dev/null so that Python's own flush at exit does not report it either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
