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
That noise grows with the size of the loss and with the number of entries probed, so where it
could reach the threshold (a trained run, every entry) the floor grows with it (noise_floor).

A ReLU makes the loss piecewise smooth, and a nudge that carries a ReLU's input across 0
measures no derivative at all. We notice such an entry from its two one-sided differences and
leave it out, counted in the table (one_entry); a trained run is checked on a batch that keeps
every ReLU input clear of 0 (kink_free_batch).

Two more choices keep the whole-model check honest and quick:

- Parameters that look trained (trained_looking). A freshly built model has every layer-norm
  gain at exactly 1 and every bias at 0. There a backward that forgets to multiply by gamma
  computes the right numbers, and so does one that mixes a bias into a gradient it should not
  touch, so the check would pass them. We check at values drawn to look like a trained model's
  instead, or at a trained run's own weights.
- A sample of entries (Check.rows with sample > 0). Each probed entry costs two evaluations of
  the whole loss. The tests probe a seeded sample of entries per tensor, and
  minitx.mutants proves that this sampled check still catches every slip in its catalogue;
  `minitx gradcheck CONFIG` probes every entry unless told otherwise.
"""

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

THRESHOLD = 1e-6  # a correct float64 backward sits near 1e-8 or below; a wrong one near 1e-1
FLOOR = 1e-3  # see the module docstring: keeps exactly-zero gradients from reading as errors
STEP = 1e-5  # h: smaller adds rounding noise (eps * |L| / h), larger adds truncation (h^2)
KINK = 1e-3  # one-sided differences further apart than this, relative to their size, ask for a second look
NOISE = 1e-9  # a gap this small is rounding noise (eps * |L| / h is about 1e-11 for |L| near 1)
KINK_MARGIN = 1e-5  # a trained run is checked on a batch whose ReLU inputs all keep this far from 0
KINK_TRIES = 20  # batches tried to find one
SAMPLE = 8  # entries per tensor the tests probe; a tensor this small or smaller is probed whole
SAMPLE_SEED = 0  # which entries: the same ones in every run, so a result can be repeated
RUN_SAMPLE = 16  # entries per tensor probed by default at a trained run's full-size weights

# Trained-looking values (trained_looking). After a few hundred steps minitx's gains sit within
# about 0.1 of 1 and its biases within about 0.05 of 0; we spread them wider, so that a backward
# that drops or misplaces a gain or a bias is off by a clear margin, while keeping every gain
# positive and every score of moderate size.
GAIN_RANGE = (0.5, 1.5)  # each gain drawn uniformly from this range
BIAS_SCALE = 0.3  # each bias and beta drawn from a normal distribution with this deviation


@dataclass
class Row:
    name: str
    shape: tuple
    rel_error: float
    max_abs_diff: float
    probed: int = 0  # how many of the tensor's entries were compared (0: not recorded)
    kinks: int = 0  # how many more were left out: a ReLU kink within h of them (one_entry)

    @property
    def ok(self):
        return self.rel_error <= THRESHOLD


def rel_error(analytic, numeric, floor=FLOOR):
    diff = np.linalg.norm(analytic - numeric)
    return float(diff / max(np.linalg.norm(analytic) + np.linalg.norm(numeric), floor))


def noise_floor(loss, n, h=STEP):
    """The floor for a tensor of n probed entries under a loss of size |loss|: FLOOR, or more
    where rounding alone could read as an error. Each central difference carries rounding
    noise of about eps * |loss| / h (float64's eps = 2.2e-16), so n of them about sqrt(n)
    times that; a tensor whose true gradient is exactly 0 (the key bias b_k) shows nothing
    else. We keep that noise below a quarter of THRESHOLD. At the sizes the tests check the
    floor stays FLOOR; it grows for a large loss or many entries (every entry of a trained
    run's key bias)."""
    noise = np.sqrt(n) * np.finfo(np.float64).eps * max(abs(loss), 1.0) / h
    return max(FLOOR, 4 * noise / THRESHOLD)


def probe(loss_fn, x, entries, h=STEP):
    """Central differences of loss_fn() with respect to the entries of x at the flat indices
    `entries`, which we perturb in place and restore. Returns one number per index, NaN where
    the loss has a kink within h of the entry (see one_entry).

    x must be C-contiguous: we reach its elements through x.reshape(-1), which for any other
    array is a copy, so the nudges would never reach what loss_fn reads and every numeric
    gradient would be 0 (a wrong backward whose gradient is also 0 would then pass)."""
    if not x.flags.c_contiguous:
        raise ValueError(f"numerical_gradient needs a C-contiguous array to perturb in place, got one of shape {x.shape} "
                         "that is not (pass the array the loss really reads, not a transposed or sliced view)")
    flat = x.reshape(-1)  # a view: writing flat writes x
    here = loss_fn()
    return np.array([one_entry(loss_fn, flat, i, here, h) for i in entries], dtype=np.float64)


def one_entry(loss_fn, flat, i, here, h):
    """The central difference at flat[i], or NaN where the loss is not smooth there.

    A ReLU makes the loss piecewise smooth: where a ReLU's input lies within h of 0, the nudge
    crosses the kink and the central difference mixes the slopes of both sides, which is no
    derivative at all. We see it in the two one-sided differences, (L(x+h) - L(x)) / h and
    (L(x) - L(x-h)) / h: on a smooth loss they differ by about h * L'', and shrink tenfold
    with h; across a kink they differ by the jump in slope. So when they differ by more than
    KINK of their size, we try again with h / 10: if the gap shrank as a smooth loss's does,
    that central difference is good; if not, a kink lies closer than h / 10, and we say NaN,
    "not measurable here", rather than a wrong number. Which entries are kinks depends only on
    the forward pass, never on the backward being checked."""
    old = flat[i]
    gap = None
    for step in (h, h / 10):
        flat[i] = old + step
        plus = loss_fn()
        flat[i] = old - step
        minus = loss_fn()
        flat[i] = old
        ahead, behind = (plus - here) / step, (here - minus) / step
        new_gap = abs(ahead - behind)
        if new_gap <= KINK * (abs(ahead) + abs(behind)) + NOISE or (gap is not None and new_gap <= gap / 5):
            return (plus - minus) / (2 * step)
        gap = new_gap
    return np.nan


def numerical_gradient(loss_fn, x, h=STEP):
    """Central differences of loss_fn() with respect to every element of x (see probe)."""
    return probe(loss_fn, x, np.arange(x.size), h).reshape(x.shape).astype(x.dtype)


def sample_entries(size, sample, rng):
    """The flat indices to probe in a tensor of `size` entries: every one when sample is 0 or
    the tensor holds no more than `sample`, else `sample` distinct ones drawn by rng."""
    if not sample or size <= sample:
        return np.arange(size)
    return np.sort(rng.choice(size, sample, replace=False))


class Probes(dict):
    """name -> (entries, numeric gradient at those entries), and .loss, the loss at the
    parameters as they are (how much rounding noise to expect depends on its size)."""

    loss = 0.0


def probe_all(loss_fn, arrays, sample=0, seed=SAMPLE_SEED, h=STEP):
    """A Probes for every array of `arrays`."""
    rng = np.random.default_rng(seed)
    probes = Probes()
    probes.loss = loss_fn()
    for name, x in arrays.items():
        entries = sample_entries(x.size, sample, rng)
        probes[name] = entries, probe(loss_fn, x, entries, h)
    return probes


def rows_against(probes, analytic):
    """One Row per probed tensor: its analytic gradient at the probed entries against the
    numeric one, leaving out the entries at a kink (NaN, see one_entry) and counting them. A
    tensor with no measurable entry at all fails: it was not checked."""
    rows = []
    for name, (entries, numeric) in probes.items():
        measured = np.isfinite(numeric)
        a, n = analytic[name].reshape(-1)[entries][measured], numeric[measured]
        floor = noise_floor(getattr(probes, "loss", 0.0), len(n))
        error = rel_error(a, n, floor) if measured.any() else np.inf
        worst = float(np.abs(a - n).max()) if measured.any() else np.inf
        rows.append(Row(name, analytic[name].shape, error, worst, int(measured.sum()), int((~measured).sum())))
    return rows


def compare(loss_fn, arrays, analytic, h=STEP, sample=0):
    """arrays: name -> array that loss_fn reads; analytic: name -> its backward gradient.
    Returns one Row per name, comparing every entry (or `sample` seeded entries per tensor)."""
    return rows_against(probe_all(loss_fn, arrays, sample, h=h), analytic)


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


def analytic_gradients(model, loss, loss_fn, adapters=None):
    """One forward (loss_fn) and the model's backward: name -> a copy of the gradient of every
    parameter of the model, or of the adapters' A and B when adapters are given (their backward
    turns the model's dW into dA and dB)."""
    model.zero_grad()
    if adapters:
        adapters.zero_grad()
    loss_fn()
    model.backward(loss.backward())
    if adapters:
        adapters.backward()
    return {k: g.copy() for k, g in (adapters or model).grads.items()}


def check_model(model, loss, src, tgt_in, tgt_out, sample=0):
    """Check every parameter of a Transformer against the full cross-entropy loss, in training
    mode: dropout on, with the same masks in every evaluation (with_fixed_dropout)."""
    model.train(True)
    loss_fn = with_fixed_dropout(model, lambda: loss.forward(model.forward(src, tgt_in), tgt_out))
    return compare(loss_fn, model.params, analytic_gradients(model, loss, loss_fn), sample=sample)


def check_lora(model, adapters, loss, src, tgt_in, tgt_out, sample=0):
    """Check every adapter's A and B (minitx.lora) against the full cross-entropy loss.

    Each loss evaluation first writes W0 + s * A @ B into the model, so nudging one entry of A
    changes the model exactly as training would. B must not be all zero here: dA = s dW B^T is
    then exactly 0, and a wrong formula for it would pass unnoticed."""
    model.train(False)

    def loss_fn():
        adapters.forward()
        return loss.forward(model.forward(src, tgt_in), tgt_out)

    return compare(loss_fn, adapters.params, analytic_gradients(model, loss, loss_fn, adapters), sample=sample)


def trained_looking(model, rng):
    """Give `model` parameter values like the ones training leaves, drawn from rng, in place.

    Every gain (a layer norm's gamma) from GAIN_RANGE, every bias and beta from a normal
    distribution of deviation BIAS_SCALE: no gain is 1 and no bias is 0, so a backward that
    forgets a gain or misplaces a bias gets wrong numbers. Matrices keep their random initial
    values, which are at the scale training starts from and moves them around. The padding row
    of an embedding is left as training leaves it: zero, since the lookup gives it no gradient,
    except in the target embedding of a tied model, where the output projection does (docs/
    backward.md section 5), so there we give it random values at the embedding's scale."""
    from minitx.nn import TiedOutput

    for name, p in model.params.items():
        if name.endswith("gamma"):
            p[...] = rng.uniform(*GAIN_RANGE, size=p.shape)
        elif p.ndim == 1:
            p[...] = BIAS_SCALE * rng.standard_normal(p.shape)
    if isinstance(model.decoder.out, TiedOutput):
        E = model.decoder.embedding.params["W"]  # (V, D)
        E[model.pad_id] = rng.standard_normal(E.shape[1]) * E.shape[1] ** -0.5
    return model


@dataclass(frozen=True)
class Variant:
    """One architecture a whole-model check covers."""

    fused: bool = False
    norm: str = "pre"
    tie_output: bool = True
    lora: bool = False  # check LoRA adapters on every projection instead of the model's own weights

    def __str__(self):
        if self.lora:
            return "lora"
        return f"{'fused' if self.fused else 'plain'}-{self.norm}-{'tied' if self.tie_output else 'untied'}"


# The nine checks `minitx gradcheck` runs: both implementations in all four variants, then LoRA.
MODEL_VARIANTS = tuple(Variant(fused, norm, tie) for fused in (False, True) for norm in ("pre", "post") for tie in (True, False))
VARIANTS = MODEL_VARIANTS + (Variant(lora=True),)


def small_architecture(n_enc_layers=2, n_dec_layers=2, n_heads=2):
    """A config's depth and head count at a width where finite differences take seconds."""
    return SimpleNamespace(d_model=4 * n_heads, n_heads=n_heads, d_ff=16, n_enc_layers=n_enc_layers,
                           n_dec_layers=n_dec_layers, dropout=0.1, max_len=16, causal=True)


class Check:
    """One whole-model gradient check, ready to run: a float64 model of `arch` (d_model,
    n_heads, d_ff, layer counts, dropout, max_len, causal) in `variant`, its loss with label
    smoothing, and a batch with padding in source and target and S = 6 != T = 4.

    The model's parameters are drawn by trained_looking, or copied from `weights` (name ->
    array, a trained run's), or with weights="initial" left as a new model's are (only to show
    what a check there misses). A LoRA check puts rank-2 adapters (alpha 3, so that a forgotten
    scale alpha / r shows) on every weight lora.targets can name, with B drawn nonzero, and
    checks their A and B. Building a Check twice gives the same numbers, masks and batch."""

    def __init__(self, variant, arch, vocab_sizes=(7, 9), label_smoothing=0.1, weights=None, batch_seed=0):
        from minitx.config import LORA_TARGETS
        from minitx.lora import LoRA
        from minitx.model import Transformer, layer_set

        self.variant = variant
        self.label_smoothing = label_smoothing
        cfg = SimpleNamespace(**vars(arch), norm=variant.norm, tie_output=variant.tie_output, fused=variant.fused)
        src_vocab, tgt_vocab = vocab_sizes
        self.model = Transformer(cfg, src_vocab, tgt_vocab, 0, np.random.default_rng(1), np.float64)
        if weights is None:
            trained_looking(self.model, np.random.default_rng(2))
        elif weights != "initial":
            for name, p in self.model.params.items():
                p[...] = weights[name]
        self.loss = layer_set(variant.fused).cross_entropy(0, label_smoothing)
        self.batch_seed = batch_seed
        rng = np.random.default_rng(batch_seed)
        self.src = rng.integers(1, src_vocab, size=(2, 6))
        self.src[1, 4:] = 0  # padding in the source
        tgt = rng.integers(1, tgt_vocab, size=(2, 5))
        tgt[0, 3:] = 0  # padding in the target; T = 4 != S = 6
        self.tgt_in, self.tgt_out = tgt[:, :-1], tgt[:, 1:]
        self.adapters = None
        if variant.lora:
            self.adapters = LoRA(self.model, LORA_TARGETS, rank=2, alpha=3.0, rng=np.random.default_rng(3))
            for name, B in self.adapters.params.items():
                if name.endswith(".B"):
                    # Nonzero, so that dA is not trivially 0; each row of length about 1, so that a
                    # nudge of one entry of A moves a row of W by about h (times alpha / r), not by
                    # sqrt(D) * h, which would make the central difference's h^2 error show.
                    B[...] = rng.standard_normal(B.shape) / np.sqrt(B.shape[1])
        # Dropout acts in the model checks; the LoRA check runs the model in evaluation mode,
        # as its fine-tuning tests do.
        self.model.train(not variant.lora)
        self.loss_value = with_fixed_dropout(self.model, self._loss)

    def _loss(self):
        if self.adapters:
            self.adapters.forward()
        return self.loss.forward(self.model.forward(self.src, self.tgt_in), self.tgt_out)

    @property
    def checked(self):
        """name -> array of every tensor this check compares: the adapters' or the model's."""
        return (self.adapters or self.model).params

    def objects(self):
        """(dotted name, object) for everything whose backward this check exercises: the loss
        and every layer of the model, or for LoRA the adapters (minitx.mutants plants here)."""
        if self.adapters:
            return list(self.adapters.named_modules())
        return [("loss", self.loss), *self.model.named_modules()]

    def gradients(self):
        """One forward and backward: name -> analytic gradient of every checked tensor."""
        return analytic_gradients(self.model, self.loss, self.loss_value, self.adapters)

    def relu_margin(self):
        """How close to its kink at 0 the input of any ReLU comes in this check's forward pass
        (plain layers only: the fused ReLU keeps no input)."""
        from minitx.nn import ReLU

        self.loss_value()
        inputs = [m.cache for _, m in self.model.named_modules() if type(m) is ReLU]
        return min(float(np.abs(x).min()) for x in inputs)

    def probes(self, sample=0):
        """The numeric gradients: every entry, or `sample` seeded entries per tensor."""
        return probe_all(self.loss_value, self.checked, sample)

    def rows(self, sample=0):
        return rows_against(self.probes(sample), self.gradients())

    def title(self, sample=0):
        """The line above this check's table: what is checked, and how many entries probed."""
        sizes = [p.size for p in self.checked.values()]
        if sample:
            entries = f"{sum(min(n, sample) for n in sizes)} entries probed (up to {sample} per tensor)"
        else:
            entries = "every entry probed"
        v = self.variant
        impl = "fused layers (minitx.nn.fused)" if v.fused else "plain layers (minitx.nn)"
        shape = f"{v.norm}-norm, {'tied' if v.tie_output else 'untied'} output"
        if v.lora:
            what = f"LoRA adapters (rank 2, alpha 3, on every projection and ff), {impl}, {shape}, dropout off"
        else:
            what = f"{impl}: {shape}, dropout {self.model.encoder.dropout.p}"
        return f"{what}, label smoothing {self.label_smoothing}: {len(sizes)} tensors, {sum(sizes)} parameters, {entries}"


def format_table(rows, title=None):
    width = max([len(r.name) for r in rows] + [9])
    lines = [title] if title else []
    lines.append(f"{'parameter':<{width}}  {'shape':<12}  {'rel error':>9}  {'max |diff|':>10}  ok")
    for r in rows:
        shape = "x".join(map(str, r.shape)) or "scalar"
        kinks = f"  ({r.kinks} of its entries at a ReLU kink left out)" if r.kinks else ""
        lines.append(f"{r.name:<{width}}  {shape:<12}  {r.rel_error:9.2e}  {r.max_abs_diff:10.2e}  {'yes' if r.ok else 'NO'}{kinks}")
    return "\n".join(lines)


def config_checks(config_name):
    """The nine Checks `minitx gradcheck CONFIG` runs: a small float64 copy of the configured
    architecture (its depth and, up to two, its heads), plain and fused, each in all four
    variants (pre/post norm x tied/untied output), with dropout 0.1 and label smoothing; then
    LoRA adapters."""
    arch, eps = config_architecture(config_name)
    return [Check(variant, arch, label_smoothing=eps) for variant in VARIANTS]


def config_architecture(config_name):
    """(the small float64 architecture `gradcheck CONFIG` checks, its label smoothing): the
    config's depth and (up to two) heads, and its label smoothing, or 0.1 where it has none."""
    from minitx.config import load_config, resolve_config_path

    cfg = load_config(resolve_config_path(config_name))
    m = cfg.model
    return small_architecture(m.n_enc_layers, m.n_dec_layers, 2 if m.n_heads > 1 else 1), cfg.train.label_smoothing or 0.1


def run_checks(run_dir):
    """The Checks `minitx gradcheck RUN_DIR` runs, at the run's own weights in float64 and at
    its full size: plain and fused in the run's variant, then LoRA adapters on those weights.
    Dropout and label smoothing are the run's, or 0.1 where the run has none, so that their
    backward is checked too."""
    from minitx.inference import load_run

    cfg, trained, task = load_run(run_dir, need_data=False)
    m = cfg.model
    arch = SimpleNamespace(d_model=m.d_model, n_heads=m.n_heads, d_ff=m.d_ff, n_enc_layers=m.n_enc_layers,
                           n_dec_layers=m.n_dec_layers, dropout=m.dropout or 0.1, max_len=m.max_len, causal=m.causal)
    weights = {name: p.astype(np.float64) for name, p in trained.params.items()}
    sizes = (len(task.src_vocab), len(task.tgt_vocab))
    eps = cfg.train.label_smoothing or 0.1
    variants = [Variant(fused, m.norm, m.tie_output) for fused in (False, True)] + [Variant(False, m.norm, m.tie_output, lora=True)]
    seed = kink_free_batch(lambda seed: [Check(v, arch, sizes, eps, weights, seed) for v in variants if not v.fused])
    return [Check(variant, arch, sizes, eps, weights, seed) for variant in variants]


def kink_free_batch(checks_for):
    """The first batch seed whose checks (checks_for(seed)) keep every ReLU input at least
    KINK_MARGIN from 0, trying up to KINK_TRIES of them (else the last one tried).

    A trained run's full-size model has thousands of ReLU inputs, and one of them may sit
    within a nudge of 0. Every entry whose nudge moves it across 0 then has no central
    difference worth the name (one_entry leaves such entries out); with LoRA adapters, where
    one entry of A moves a whole row of W, that can be every entry of a tensor. A batch that
    keeps clear of the kinks avoids that."""
    for seed in range(KINK_TRIES):
        if min(check.relu_margin() for check in checks_for(seed)) >= KINK_MARGIN:
            break
    return seed


def tables(config_name, sample=0):
    """Yield (title, rows) for every table `minitx gradcheck CONFIG` prints."""
    for check in config_checks(config_name):
        rows = check.rows(sample)
        yield check.title(sample), rows


def run_cli(target, sample=None):
    """`minitx gradcheck [CONFIG | RUN_DIR] [--sample N]`: print every table; returns 1 if any
    row fails. A run directory is checked at its own weights, probing RUN_SAMPLE entries per
    tensor unless `sample` says otherwise; a config probes every entry."""
    import textwrap
    from pathlib import Path

    is_run = Path(target).is_dir()
    if is_run:
        sample = RUN_SAMPLE if sample is None else sample
        checks = run_checks(target)
        print(textwrap.fill(f"Checking the trained weights of {target}, in float64, on a batch of random token ids "
                            f"(seed {checks[0].batch_seed}: the first whose ReLU inputs all keep {KINK_MARGIN:g} or more "
                            f"from their kink at 0); dropout and label smoothing as titled.", 100))
    else:
        sample = sample or 0
        checks = config_checks(target)
        print(textwrap.fill(f"Checking a small float64 copy of {target}'s architecture at trained-looking parameter "
                            f"values (gains drawn from {GAIN_RANGE[0]} to {GAIN_RANGE[1]}, biases with deviation "
                            f"{BIAS_SCALE}, seeded), not at its initial ones.", 100))
    print("every entry of every tensor is probed" if not sample else
          f"probing a seeded sample of up to {sample} entries per tensor (--sample 0 probes every entry)")
    worst, failed, kinks = 0.0, 0, 0
    for check in checks:
        rows = check.rows(sample)
        print(format_table(rows, "\n" + check.title(sample)))
        worst = max([worst] + [r.rel_error for r in rows])
        failed += sum(not r.ok for r in rows)
        kinks += sum(r.kinks for r in rows)
    if kinks:
        print(textwrap.fill(f"\n{kinks} probed entries were left out: a ReLU's input lay within {STEP:g} of 0 there, so "
                            f"a finite difference would straddle the kink and measure no derivative (gradcheck.one_entry).", 100))
    print(f"\nworst relative error {worst:.2e} (threshold {THRESHOLD:.0e}); {failed} tensors failed")
    return 1 if failed else 0
