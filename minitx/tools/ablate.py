"""Ablation: switch a head, or a whole attention, off and measure what the model loses.

    python -m minitx eval RUN_DIR --ablate decoder.layers.1.cross_attn
    python -m minitx eval RUN_DIR --ablate encoder.layers.0.self_attn.head1,decoder.layers.0.self_attn.head3
    python -m minitx translate RUN_DIR "forty two" --ablate decoder.layers.1.cross_attn
    python -m minitx ablate RUN_DIR          # the table: nothing off, each head off, each attention off

A spec names one MultiHeadAttention by its dotted path in the model (the same names as its
parameters, "decoder.layers.1.cross_attn.query.W" without ".query.W"), optionally followed by
".headN" for one of its H heads. Switching a head off means its output, the (T, K) block
P @ v, is replaced by zeros before the concatenation meets W_O:

    concat = [head_0 | ... | 0 | ... | head_{H-1}]      (B, T, D), head h's K columns zeroed
    y      = concat @ W_O + b_O                         (B, T, D)

so the head adds nothing to the residual stream. W_O's bias b_O still is added: it belongs to no
head. Switching the whole attention off zeroes every head, and the sub-layer then adds only b_O.
(Zeroing head h's output is the same as zeroing rows h*K .. (h+1)*K - 1 of W_O; the tests check
that.)

We change no code and no weights. Like minitx.tools.trace, we give one instance its own
`forward` attribute, which Python finds before the class's method: the attention core of each
chosen MultiHeadAttention (its ScaledDotProductAttention child, `.attention`) gets a stand-in
that runs the real forward and then zeroes the chosen heads of its (B, H, T, K) output. Every
path through the model calls that core: the teacher-forced forward, and the incremental
decoder (minitx.decode), which calls MultiHeadAttention.attend step by step. The fused layers'
core writes its output into the caller's concatenation and returns that same view, so zeroing
what it returns zeroes the concatenation there too.
"""

from contextlib import contextmanager

from minitx.errors import UserError
from minitx.nn import MultiHeadAttention


def attentions(model):
    """{dotted name: MultiHeadAttention} for every attention in the model, in forward order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, MultiHeadAttention)}


def valid_names(model):
    """A one-line description of what a spec may name, for error messages."""
    names = list(attentions(model))
    H = next(iter(attentions(model).values())).n_heads
    return f"{', '.join(names)}, each optionally followed by .head0 to .head{H - 1}"


def parse_specs(model, specs):
    """["a,b", "c"] -> {attention name: sorted list of heads to switch off}.

    Each spec is an attention's dotted name (all its heads) or name.headN (one head)."""
    modules = attentions(model)
    chosen = {}
    for text in specs:
        for spec in (s.strip() for s in text.split(",")):
            name, head = spec, None
            last = spec.rsplit(".", 1)
            if len(last) == 2 and last[1].startswith("head") and last[0] in modules:
                name, number = last[0], last[1][4:]
                H = modules[name].n_heads
                if not (number.isdigit() and int(number) < H):
                    raise UserError(f"--ablate {spec}: {name} has heads head0 to head{H - 1}")
                head = int(number)
            if name not in modules:
                raise UserError(f"--ablate {spec}: no such attention (valid: {valid_names(model)})")
            heads = range(modules[name].n_heads) if head is None else [head]
            chosen[name] = sorted(set(chosen.get(name, [])) | set(heads))
    return chosen


def _silenced(forward, heads):
    """A stand-in for ScaledDotProductAttention.forward that zeroes `heads` of its output."""

    def silenced(*args, **kwargs):
        out = forward(*args, **kwargs)  # (B, H, T, K)
        out[:, heads] = 0.0
        return out

    return silenced


@contextmanager
def ablated(model, chosen):
    """Inside the `with`, the heads in `chosen` ({name: [heads]}) output zeros; afterwards the
    model is exactly as before."""
    modules = attentions(model)
    cores = [modules[name].attention for name in chosen]
    for name, core in zip(chosen, cores):
        core.forward = _silenced(core.forward, chosen[name])
    try:
        yield model
    finally:
        for core in cores:
            del core.forward  # the instance attribute: the class's own method is used again


def describe(chosen, model):
    """{name: heads} -> a short label: "decoder.layers.1.cross_attn (all 4 heads)", ..."""
    modules = attentions(model)
    parts = []
    for name, heads in chosen.items():
        if len(heads) == modules[name].n_heads:
            parts.append(f"{name} (all {len(heads)} heads)")
        else:
            parts.append(", ".join(f"{name}.head{h}" for h in heads))
    return "; ".join(parts) or "nothing"


def eval_ablated(model, task, split, cfg, chosen, decode):
    """evaluate() with the chosen heads switched off: a dict of metrics."""
    from minitx.train import evaluate

    with ablated(model, chosen):
        return evaluate(model, task, split, cfg, decode)


def table_rows(model):
    """What the ablation table switches off, row by row: (label, {name: heads})."""
    rows = [("nothing off", {})]
    for name, m in attentions(model).items():
        for h in range(m.n_heads):
            rows.append((f"{name}.head{h}", {name: [h]}))
    for name, m in attentions(model).items():
        rows.append((f"{name} (all heads)", {name: list(range(m.n_heads))}))
    # With every cross-attention off the decoder cannot read the source at all.
    cross = {name: list(range(m.n_heads)) for name, m in attentions(model).items() if name.endswith("cross_attn")}
    rows.append(("every cross-attention, all layers", cross))
    return rows


def run_table(run_dir, split="valid", limit=None):
    """`minitx ablate RUN_DIR`: exact match with nothing off, each head off, each attention off."""
    from minitx.decode import greedy
    from minitx.inference import load_run

    cfg, model, task = load_run(run_dir, fused=False)
    if split not in task.splits:
        raise UserError(f"--split {split}: no such split (choose from {', '.join(task.splits)})")
    if limit is not None:
        task.splits[split] = task.splits[split][:limit]
    n = len(task.splits[split])
    print(f"{run_dir}: exact match on the first {n} {split} examples, decoded greedily with the chosen "
          f"heads' outputs zeroed before W_O (H = {cfg.model.n_heads}, K = {cfg.model.d_model // cfg.model.n_heads})")
    rows = table_rows(model)
    width = max(len(label) for label, _ in rows)
    print("exact match: greedy decoding reproduces the target exactly; change: against nothing off; token acc: "
          "the teacher-forced token accuracy with the same heads off")
    print(f"\n{'switched off':<{width}}  {'exact match':>11}  {'change':>7}  {'token acc':>9}")
    baseline = None
    for label, chosen in rows:
        m = eval_ablated(model, task, split, cfg, chosen, greedy)
        baseline = m["exact_match"] if baseline is None else baseline
        change = m["exact_match"] - baseline
        print(f"{label:<{width}}  {m['exact_match']:11.3f}  {change:+7.3f}  {m['token_acc']:9.3f}", flush=True)
