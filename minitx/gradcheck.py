"""Finite-difference gradient checks: the proof that every hand-written backward is right.

For each array x that a scalar loss L depends on, we nudge one element at a time and compare
the central difference

    numeric[i] = (L(x + h e_i) - L(x - h e_i)) / (2h)          error O(h^2)

with the analytic gradient from backward(). We always run in float64: in float32 the rounding
error of L would swamp the difference for any useful h.

A layer's output y is not a scalar, so we check L = sum(y * G) for a fixed random G, which makes
backward receive dout = G. A plain L = sum(y) would be too kind: softmax rows always sum to 1, so
sum(softmax(x)) is constant and a broken softmax backward would pass.

The error we report for each tensor is norm-based:

    rel_error = ||analytic - numeric|| / max(||analytic|| + ||numeric||, FLOOR)

(2-norms over the whole tensor, FLOOR = 1e-3). A per-element ratio blows up on elements whose
true gradient is 0 (the padding row of an embedding), where both sides are rounding noise. The
floor matters for one whole tensor: the key bias b_k. Adding the same number to every score of a
softmax row changes nothing, so dL/db_k is exactly 0 and both sides are noise near 1e-10; the
floor reports that as about 1e-7 instead of a meaningless 1.0. Any wrong term larger than
FLOOR * THRESHOLD = 1e-9 still fails, and real mistakes are many orders of magnitude larger.
"""

from dataclasses import dataclass

import numpy as np

THRESHOLD = 1e-6  # a correct float64 backward sits near 1e-8 or below; a wrong one near 1e-1
FLOOR = 1e-3  # see the module docstring: keeps exactly-zero gradients from reading as errors
STEP = 1e-5  # h: smaller adds rounding noise (eps * |L| / h), larger adds truncation (h^2)


@dataclass
class Row:
    name: str
    shape: tuple
    rel_error: float
    max_abs_diff: float

    @property
    def ok(self):
        return self.rel_error <= THRESHOLD


def rel_error(analytic, numeric):
    diff = np.linalg.norm(analytic - numeric)
    return float(diff / max(np.linalg.norm(analytic) + np.linalg.norm(numeric), FLOOR))


def numerical_gradient(loss_fn, x, h=STEP):
    """Central differences of loss_fn() with respect to every element of x, which we perturb
    in place and restore.

    x must be C-contiguous: we reach its elements through x.reshape(-1), which for any other
    array is a copy, so the nudges would never reach what loss_fn reads and every numeric
    gradient would be 0 (a wrong backward whose gradient is also 0 would then pass)."""
    if not x.flags.c_contiguous:
        raise ValueError(f"numerical_gradient needs a C-contiguous array to perturb in place, got one of shape {x.shape} "
                         "that is not (pass the array the loss really reads, not a transposed or sliced view)")
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)  # views: writing flat writes x
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        plus = loss_fn()
        flat[i] = old - h
        minus = loss_fn()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * h)
    return grad


def compare(loss_fn, arrays, analytic, h=STEP):
    """arrays: name -> array that loss_fn reads; analytic: name -> its backward gradient.
    Returns one Row per name."""
    rows = []
    for name, x in arrays.items():
        numeric = numerical_gradient(loss_fn, x, h)
        a = analytic[name]
        rows.append(Row(name, x.shape, rel_error(a, numeric), float(np.abs(a - numeric).max())))
    return rows


def check_layer(layer, inputs, rng, forward=None):
    """Check every parameter of `layer` and every float input, against L = sum(y * G).

    inputs: list of arrays passed to forward (int arrays, such as token ids, are not checked);
    forward: callable(*inputs) -> y, defaulting to layer.forward. backward must return the
    input gradients in the same order as the float inputs (a tuple if several).
    """
    forward = forward or layer.forward
    y = forward(*inputs)
    G = rng.standard_normal(y.shape)
    layer.zero_grad()
    forward(*inputs)
    dinputs = layer.backward(G)
    if not isinstance(dinputs, tuple):
        dinputs = (dinputs,)
    float_inputs = [x for x in inputs if isinstance(x, np.ndarray) and x.dtype.kind == "f"]
    arrays = dict(layer.params)
    analytic = {k: g.copy() for k, g in layer.grads.items()}
    for i, (x, dx) in enumerate(zip(float_inputs, dinputs)):
        arrays[f"input{i}"] = x
        analytic[f"input{i}"] = dx
    return compare(lambda: float((forward(*inputs) * G).sum()), arrays, analytic)


def with_fixed_dropout(model, loss_fn):
    """loss_fn, wrapped so that every call draws the same dropout masks: we reset the model's
    random generator (the one every Dropout draws from) to its state now before each call.
    The loss is then a fixed function of the parameters, and finite differences can check the
    backward through dropout too."""
    state = model.rng.bit_generator.state

    def fixed():
        model.rng.bit_generator.state = state
        return loss_fn()

    return fixed


def check_model(model, loss, src, tgt_in, tgt_out):
    """Check every parameter of a Transformer against the full cross-entropy loss, in training
    mode: dropout on, with the same masks in every evaluation (with_fixed_dropout)."""
    model.train(True)
    loss_fn = with_fixed_dropout(model, lambda: loss.forward(model.forward(src, tgt_in), tgt_out))
    model.zero_grad()
    loss_fn()
    model.backward(loss.backward())
    analytic = {k: g.copy() for k, g in model.grads.items()}
    return compare(loss_fn, model.params, analytic)


def check_lora(model, adapters, loss, src, tgt_in, tgt_out):
    """Check every adapter's A and B (minitx.lora) against the full cross-entropy loss.

    Each loss evaluation first writes W0 + s * A @ B into the model, so nudging one entry of A
    changes the model exactly as training would. B must not be all zero here: dA = s dW B^T is
    then exactly 0, and a wrong formula for it would pass unnoticed."""
    model.train(False)

    def loss_fn():
        adapters.forward()
        return loss.forward(model.forward(src, tgt_in), tgt_out)

    model.zero_grad()
    adapters.zero_grad()
    loss_fn()
    model.backward(loss.backward())
    adapters.backward()
    analytic = {k: g.copy() for k, g in adapters.grads.items()}
    return compare(loss_fn, adapters.params, analytic)


def format_table(rows, title=None):
    width = max([len(r.name) for r in rows] + [9])
    lines = [title] if title else []
    lines.append(f"{'parameter':<{width}}  {'shape':<12}  {'rel error':>9}  {'max |diff|':>10}  ok")
    for r in rows:
        shape = "x".join(map(str, r.shape)) or "scalar"
        lines.append(f"{r.name:<{width}}  {shape:<12}  {r.rel_error:9.2e}  {r.max_abs_diff:10.2e}  {'yes' if r.ok else 'NO'}")
    return "\n".join(lines)


def tables(config_name):
    """Yield (title, rows) for every table `minitx gradcheck CONFIG` prints: a small float64 copy
    of the configured architecture, checked in both implementations (the plain layers of
    minitx.nn and the fused ones), each in all four variants (pre/post norm x tied/untied
    output), with dropout 0.1, label smoothing, padding in source and target, and S != T; then
    LoRA adapters on every weight lora.targets can name, with alpha != r so that a forgotten
    scale alpha / r would show."""
    from types import SimpleNamespace

    from minitx.config import LORA_TARGETS, load_config, resolve_config_path
    from minitx.lora import LoRA
    from minitx.model import Transformer, layer_set

    cfg = load_config(resolve_config_path(config_name))
    m = cfg.model
    # Same depth as the config, but narrow enough that finite differences take seconds.
    n_heads = 2 if m.n_heads > 1 else 1
    small = dict(d_model=4 * n_heads, n_heads=n_heads, d_ff=16, n_enc_layers=m.n_enc_layers,
                 n_dec_layers=m.n_dec_layers, dropout=0.1, max_len=16, causal=True)
    eps = cfg.train.label_smoothing or 0.1
    rng = np.random.default_rng(0)
    src = rng.integers(1, 7, size=(2, 6))
    src[1, 4:] = 0  # padding in the source
    tgt = rng.integers(1, 9, size=(2, 5))
    tgt[0, 3:] = 0  # padding in the target; T = 4 != S = 6
    for fused in (False, True):
        impl = "fused layers (minitx.nn.fused)" if fused else "plain layers (minitx.nn)"
        for norm in ("pre", "post"):
            for tie in (True, False):
                model_cfg = SimpleNamespace(norm=norm, tie_output=tie, fused=fused, **small)
                model = Transformer(model_cfg, 7, 9, 0, np.random.default_rng(1), np.float64)
                rows = check_model(model, layer_set(fused).cross_entropy(0, eps), src, tgt[:, :-1], tgt[:, 1:])
                yield (f"{impl}: {norm}-norm, {'tied' if tie else 'untied'} output, dropout {small['dropout']}, "
                       f"label smoothing {eps}: {len(rows)} tensors, {model.n_params()} parameters"), rows
    model_cfg = SimpleNamespace(norm="pre", tie_output=True, fused=False, **small)
    model = Transformer(model_cfg, 7, 9, 0, np.random.default_rng(1), np.float64)
    adapters = LoRA(model, LORA_TARGETS, rank=2, alpha=3.0, rng=np.random.default_rng(2))
    for name, B in adapters.params.items():
        if name.endswith(".B"):
            B[...] = rng.standard_normal(B.shape)  # nonzero, so that dA is not trivially 0
    rows = check_lora(model, adapters, layer_set(False).cross_entropy(0, eps), src, tgt[:, :-1], tgt[:, 1:])
    yield (f"LoRA adapters (rank 2, alpha 3, on {', '.join(LORA_TARGETS)}), plain layers, pre-norm, tied output, "
           f"dropout {small['dropout']}: {len(rows)} tensors, {adapters.n_params()} parameters"), rows


def run_cli(config_name):
    """`minitx gradcheck [CONFIG]`: print every table of `tables`; returns 1 if any row fails."""
    worst, failed = 0.0, 0
    for title, rows in tables(config_name):
        print(format_table(rows, "\n" + title))
        worst = max([worst] + [r.rel_error for r in rows])
        failed += sum(not r.ok for r in rows)
    print(f"\nworst relative error {worst:.2e} (threshold {THRESHOLD:.0e}); {failed} tensors failed")
    return 1 if failed else 0
