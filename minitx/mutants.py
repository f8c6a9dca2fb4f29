"""Planted slips: the proof that the whole-model gradient check catches what it exists to catch.

A checker that passes everything proves nothing. So we keep a catalogue of natural mistakes in
the backward code (a forgotten gain or scale, a missing path, a mean for a sum, a wrong axis, an
assignment where gradients must add, the wrong operand transposed, label smoothing dropped, a
post-norm path skipped), plant each one in memory, run the whole-model check (minitx.gradcheck)
with it, and require that the check fails. `python -m minitx gradcheck --mutants` prints the
result as a table; `make test` runs it with the tests' sampled check.

Planting reuses the exercises' break-it mechanism (minitx.exercises.breakit): an Edit names a
function and a piece of its source, found by what it says, and we compile a copy of the function
with that piece replaced. No file changes. We bind the copy to every object of a freshly built
model (or loss, or LoRA adapter set) whose class runs that very function, so a slip in
LayerNorm.backward reaches every plain layer norm, and one in DecoderLayer.backward every
decoder layer, while a fused layer that overrides the method keeps its own. A slip runs in each
check variant (minitx.gradcheck.VARIANTS) where its code runs, and it must be caught in every
one of them.

The numeric side of a check (finite differences of the loss) runs only forward code, so as long
as a slip edits only functions named `backward` or `..._backward`, its finite differences are
the clean model's: we compute them once per variant and compare every slip's backward against
them. That is the same check, not a cheaper one, and tests/test_mutants.py shows it gives the
same rows as a check run from scratch with the slip planted. A slip that edited other code
would get its own finite differences.

Some changes look like slips but are mathematically harmless in this model: they change no
number the check can see. They are listed too, each with the reason, and the check must pass
them: if it ever flagged one, either the reason is wrong or the code changed.
"""

import functools
import inspect
import re
import textwrap
import types
from dataclasses import dataclass, field
from typing import Callable

from minitx import gradcheck
from minitx.exercises.breakit import Edit, methods_to_plant, planted, relative_source_file
from minitx.lora import Adapter
from minitx.model import Decoder, DecoderLayer, Encoder, EncoderLayer, PostNormDecoderLayer, PostNormEncoderLayer, Stack
from minitx.nn import CrossEntropy, Dropout, Embedding, FeedForward, LayerNorm, Linear, MultiHeadAttention, ReLU
from minitx.nn import ScaledDotProductAttention, TiedOutput
from minitx.nn.fused import (FusedCrossAttention, FusedCrossEntropy, FusedEmbedding, FusedFeedForward, FusedLayerNorm,
                             FusedLinear, FusedScaledDotProductAttention, FusedSelfAttention)


def everywhere(variant):
    return True


@dataclass(frozen=True)
class Slip:
    """One planted change. name: what the planted code gets wrong, in one line."""

    name: str
    edits: tuple  # Edit(function, text found once in its source, what we put in its place)
    where: str = ""  # plant only in layers whose dotted name matches this regular expression
    variants: Callable = field(default=everywhere)  # and only in the check variants it accepts
    harmless: str = ""  # for a change that is not a slip: why no number the check sees changes

    def location(self):
        """(file, line) of the first line the slip changes."""
        edit = self.edits[0]
        lines, start = inspect.getsourcelines(edit.function)
        found = [i for i, line in enumerate(lines) if edit.old in line]
        return relative_source_file(edit.function), start + found[0] if found else 0  # 0: the line is gone


def tied(variant):
    return variant.tie_output


def pre_norm(variant):
    return variant.norm == "pre"


SQUARE = r"attn\.(query|key|value|output)$"  # the attention projections: W is (D, D)

SLIPS = (
    # minitx/nn/layers.py
    Slip("ReLU: the mask forgotten, dx = dout", (Edit(ReLU.backward, "dx = dout * (x > 0)", "dx = dout"),)),
    Slip("Dropout: the scale 1/(1-p) forgotten, dx = dout where kept", (Edit(Dropout.backward, "dx = dout * mask\n", "dx = dout * (mask > 0)\n"),)),
    Slip("Linear: db a mean over positions, not a sum", (Edit(Linear.backward, "dout_rows.sum(axis=0)", "dout_rows.mean(axis=0)"),)),
    Slip("Linear: dW transposed, dout^T @ x (W square, so nothing complains)",
         (Edit(Linear.backward, "x_rows.T @ dout_rows", "dout_rows.T @ x_rows"),), where=SQUARE),
    Slip("Linear: dx = dout @ W, W not transposed (W square)", (Edit(Linear.backward, "dout_rows @ W.T", "dout_rows @ W"),), where=SQUARE),
    Slip("FeedForward: the ReLU's backward skipped", (Edit(FeedForward.backward, "dh = self.relu.backward(da)", "dh = da"),)),
    # minitx/nn/layernorm.py
    Slip("LayerNorm: gamma forgotten, dxhat = dout", (Edit(LayerNorm.backward, 'dxhat = dout * self.params["gamma"]', "dxhat = dout"),)),
    Slip("LayerNorm: dgamma multiplied by gamma",
         (Edit(LayerNorm.backward, "(dout * xhat).reshape(-1, D)", '(dout * self.params["gamma"] * xhat).reshape(-1, D)'),)),
    Slip("LayerNorm: dbeta multiplied by gamma",
         (Edit(LayerNorm.backward, 'self.grads["beta"] += dout.reshape(-1, D)', 'self.grads["beta"] += (dout * self.params["gamma"]).reshape(-1, D)'),)),
    Slip("LayerNorm: the path through the variance dropped",
         (Edit(LayerNorm.backward, "dx = rstd * (dxhat - through_mean - through_var)", "dx = rstd * (dxhat - through_mean)"),)),
    Slip("LayerNorm: the mean of dxhat over the wrong axis",
         (Edit(LayerNorm.backward, "through_mean = dxhat.mean(axis=-1, keepdims=True)", "through_mean = dxhat.mean(axis=0, keepdims=True)"),)),
    # minitx/nn/embedding.py
    Slip("Embedding: dW[ids] += dout, which keeps one of several equal ids",
         (Edit(Embedding.backward, 'np.add.at(self.grads["W"], ids, dout * not_pad)', 'self.grads["W"][ids] += dout * not_pad'),)),
    Slip("Embedding: dW assigned, not added to (loses the tied output's share)",
         (Edit(Embedding.backward, 'np.add.at(self.grads["W"], ids, dout * not_pad)',
               'dW = np.zeros_like(self.grads["W"]); np.add.at(dW, ids, dout * not_pad); self.grads["W"][...] = dW'),), variants=tied),
    Slip("TiedOutput: the output projection's share of E forgotten",
         (Edit(TiedOutput.backward, 'self.embedding.grads["W"] += dlogits_rows.T @ h_rows', "pass"),)),
    # minitx/nn/attention.py
    Slip("softmax: the - sum(dP * P) term dropped",
         (Edit(ScaledDotProductAttention.backward, "dscores = P * (dP - (dP * P).sum(axis=-1, keepdims=True))", "dscores = P * dP"),)),
    Slip("softmax: a plain mean of dP for sum(dP * P)",
         (Edit(ScaledDotProductAttention.backward, "(dP * P).sum(axis=-1, keepdims=True)", "dP.mean(axis=-1, keepdims=True)"),)),
    Slip("softmax: sum(dP * P) over the wrong axis",
         (Edit(ScaledDotProductAttention.backward, "(dP * P).sum(axis=-1, keepdims=True)", "(dP * P).sum(axis=-2, keepdims=True)"),)),
    Slip("attention: 1/sqrt(K) forgotten in dq", (Edit(ScaledDotProductAttention.backward, "dq = dscores @ k / math.sqrt(K)", "dq = dscores @ k"),)),
    Slip("attention: dk = dscores @ q, dscores not transposed (runs where S = T)",
         (Edit(ScaledDotProductAttention.backward, "dk = dscores.transpose(0, 1, 3, 2) @ q", "dk = dscores @ q"),), where=r"self_attn\.attention$"),
    Slip("multi-head: dk and dv swapped",
         (Edit(MultiHeadAttention.backward, "self.value.backward(merge_heads(dv))", "self.value.backward(merge_heads(dk))"),
          Edit(MultiHeadAttention.backward, "self.key.backward(merge_heads(dk))", "self.key.backward(merge_heads(dv))"))),
    Slip("multi-head: the key path's share of dx_kv overwritten, not added",
         (Edit(MultiHeadAttention.backward, "dx_kv = dx_kv + self.key.backward", "dx_kv = self.key.backward"),)),
    # minitx/nn/loss.py
    Slip("cross-entropy: label smoothing dropped, p - onehot instead of p - q",
         (Edit(CrossEntropy.backward, "(np.exp(logp) - q)", "(np.exp(logp) - (q == q.max(axis=-1, keepdims=True)))"),)),
    Slip("cross-entropy: a sum over tokens for the mean, 1/n forgotten",
         (Edit(CrossEntropy.backward, "valid[..., None].astype(logp.dtype) / n", "valid[..., None].astype(logp.dtype)"),)),
    # minitx/model.py
    Slip("embedding: the sqrt(D) scale forgotten", (Edit(Stack.embed_backward, "self.embedding.backward(dx * self.scale)", "self.embedding.backward(dx)"),)),
    Slip("encoder layer: the residual's skip path dropped", (Edit(EncoderLayer.backward, "dx = dx + self.norm2.backward(dh)", "dx = self.norm2.backward(dh)"),)),
    Slip("encoder layer: self-attention's key and value path dropped",
         (Edit(EncoderLayer.backward, "self.norm1.backward(dh_q + dh_kv)", "self.norm1.backward(dh_q)"),)),
    Slip("decoder layer: dropout's backward skipped", (Edit(DecoderLayer.backward, "dc = self.dropout2.backward(dy)", "dc = dy"),)),
    Slip("decoder: only one layer's share of dmemory", (Edit(Decoder.backward, "dmemory = dmemory + dmemory_layer", "dmemory = dmemory_layer"),)),
    Slip("encoder: the closing layer norm's backward skipped",
         (Edit(Encoder.backward, "dx = self.norm.backward(dmemory) if self.norm else dmemory", "dx = dmemory"),), variants=pre_norm),
    Slip("post-norm encoder layer: the norm's backward skipped", (Edit(PostNormEncoderLayer.backward, "ds = self.norm2.backward(dx)", "ds = dx"),)),
    Slip("post-norm decoder layer: the skip path around cross-attention dropped",
         (Edit(PostNormDecoderLayer.backward, "dy = ds + dy_q  #", "dy = dy_q  #"),)),
    # minitx/nn/fused.py
    Slip("fused Linear: db a mean over positions", (Edit(FusedLinear.backward, "column_sum(dout_rows)", "column_sum(dout_rows) / len(dout_rows)"),)),
    Slip("fused FeedForward: the ReLU's mask skipped", (Edit(FusedFeedForward.backward, "dh = self.relu.backward(da, out=da)", "dh = da"),)),
    Slip("fused LayerNorm: the row sums taken without gamma",
         (Edit(FusedLayerNorm.backward, "(dout.reshape(-1, D) @ gamma)", "(dout.reshape(-1, D) @ np.ones(D))"),
          Edit(FusedLayerNorm.backward, "(dout_xhat.reshape(-1, D) @ gamma)", "(dout_xhat.reshape(-1, D) @ np.ones(D))"))),
    Slip("fused LayerNorm: gamma forgotten, dx starts from dout", (Edit(FusedLayerNorm.backward, "dx = dout * gamma", "dx = dout.copy()"),)),
    Slip("fused LayerNorm: the path through the variance dropped", (Edit(FusedLayerNorm.backward, "dx -= xhat * mean_dxhat_xhat", "pass"),)),
    Slip("fused embedding: each id's first row instead of the sum of its rows",
         (Edit(FusedEmbedding.backward, "np.add.reduceat(dout[order], starts, axis=0)", "dout[order][starts]"),)),
    Slip("fused attention: 1/sqrt(K) forgotten", (Edit(FusedScaledDotProductAttention.backward, "dscores *= scale", "pass"),)),
    Slip("fused attention: the softmax's row sum without P",
         (Edit(FusedScaledDotProductAttention.backward, "dscores -= row_sum(dP * P)", "dscores -= row_sum(dP)"),)),
    Slip("fused cross-attention: dx_q = dq @ W_q, W_q not transposed",
         (Edit(FusedCrossAttention.backward, 'dx_q = (dq @ self.query.params["W"].T)', 'dx_q = (dq @ self.query.params["W"])'),)),
    Slip("fused projections: every weight gets the first column block of dW",
         (Edit(FusedCrossAttention._weights_backward, "dW[:, i * D : (i + 1) * D]", "dW[:, :D]"),)),
    Slip("fused self-attention: dx_q through W_k's block instead of W_q's",
         (Edit(FusedSelfAttention.backward, "dqkv[:, :D] @ W_qkv[:, :D].T", "dqkv[:, :D] @ W_qkv[:, D : 2 * D].T"),)),
    Slip("fused cross-entropy: label smoothing dropped at the target",
         (Edit(FusedCrossEntropy.backward, "at_target - w * (1.0 - self.eps)", "at_target - w"),)),
    # minitx/lora.py
    Slip("LoRA: the scale alpha / r forgotten in dA", (Edit(Adapter.backward, "self.scale * (dW @ B.T)", "(dW @ B.T)"),)),
    Slip("LoRA: the scale alpha / r forgotten in dB", (Edit(Adapter.backward, "self.scale * (A.T @ dW)", "(A.T @ dW)"),)),
)

HARMLESS = (
    Slip("attention: the masked scores' gradient not zeroed", (Edit(ScaledDotProductAttention.backward, "dscores = np.where(mask, dscores, 0.0)", "pass"),),
         harmless="P is exactly 0 at every masked position of a row with an open key, and so is P * (...): the zeroing "
                  "changes no number (it matters only for a row masked everywhere, docs/backward.md section 10)"),
    Slip("Embedding: padding positions not left out, dout for dout * not_pad",
         (Edit(Embedding.backward, "dout * not_pad)", "dout)"),),
         harmless="nothing at a padding position reaches the loss (padded keys are masked, padded targets ignored), "
                  "so dout is already exactly 0 there"),
    Slip("ReLU: the slope at exactly 0 taken as 1, x >= 0",
         (Edit(ReLU.backward, "(x > 0)", "(x >= 0)"),),
         harmless="no input is exactly 0, and at 0 both slopes are valid subgradients"),
    Slip("Linear: dW assigned in place, not added to",
         (Edit(Linear.backward, 'self.grads["W"] += x_rows.T @ dout_rows', 'self.grads["W"][...] = x_rows.T @ dout_rows'),),
         harmless="every Linear is called once per forward, so after zero_grad there is nothing to add to "
                   "(a layer called twice would need +=)"),
    Slip("TiedOutput: E's gradient assigned in place, not added to",
         (Edit(TiedOutput.backward, 'self.embedding.grads["W"] +=', 'self.embedding.grads["W"][...] ='),),
         harmless="the decoder's backward starts at the output, so this is the first write into E's gradient after "
                  "zero_grad; the lookup's share is added after it"),
    Slip("embedding: the positional encoding's backward skipped",
         (Edit(Stack.embed_backward, "dx = self.positions.backward(dx)", "pass"),),
         harmless="adding a constant table passes the gradient on unchanged"),
    Slip("fused embedding: ids sorted without kind=\"stable\"",
         (Edit(FusedEmbedding.backward, 'np.argsort(ids, kind="stable")', "np.argsort(ids)"),),
         harmless="only the order in which one id's rows are added changes, so only the rounding"),
)


@dataclass
class Result:
    """What the check said about one planted change, in each variant where its code runs."""

    slip: Slip
    rows: dict  # variant -> the check's rows with the change planted
    problem: str = ""  # planting or running failed: the catalogue needs fixing

    def caught_in(self):
        return [v for v, rows in self.rows.items() if not all(r.ok for r in rows)]

    @property
    def ok(self):
        """A slip must be caught in every variant it runs in; a harmless change in none."""
        if self.problem or not self.rows:
            return False
        caught = len(self.caught_in())
        return caught == 0 if self.slip.harmless else caught == len(self.rows)

    def weakest(self):
        """(variant, worst row) of the variant where the check came closest to passing. We
        compare errors as printed, to three digits, and take the first of equals in check
        order, so that rounding noise (which differs between machines) never picks."""
        worst = {v: max(rows, key=lambda r: printed(r.rel_error)) for v, rows in self.rows.items()}
        variant = min(worst, key=lambda v: printed(worst[v].rel_error))
        return variant, worst[variant]


def printed(x):
    """x as the tables print it (three significant digits)."""
    return float(f"{x:.2e}")


def plant_everywhere(objects, slip):
    """Plant `slip` on every object of (dotted name, object) whose class runs an edited function
    and whose name matches slip.where. Returns a list that counts, in its one element, the calls
    the planted copies get: a layer may hold a method it never calls (a fused attention keeps
    plain Linear children for their parameters and does their work itself), and a slip that
    never runs cannot be caught."""
    calls = [0]
    for name, obj in objects:
        if slip.where and not re.search(slip.where, name):
            continue
        for method, original, mine in methods_to_plant(obj, slip.edits):
            bound = types.MethodType(planted_copy(original, mine, slip.name), obj)
            setattr(obj, method, counted(bound, calls))
    return calls


@functools.cache
def planted_copy(function, edits, label):
    """`function` with `edits` applied (breakit.planted), compiled once however many layers get it."""
    return planted(function, edits, label)[0]


def counted(method, calls):
    def call(*args, **kwargs):
        calls[0] += 1
        return method(*args, **kwargs)

    return call


def backward_only(slip):
    """Whether every edited function runs only in the backward pass (see the module docstring)."""
    return all(e.function.__name__ == "backward" or e.function.__name__.endswith("_backward") for e in slip.edits)


def run(slips, arch, label_smoothing=0.1, sample=gradcheck.SAMPLE, variants=gradcheck.VARIANTS, weights=None):
    """Check the model with each change in `slips` planted, in every variant where it runs.
    weights: as gradcheck.Check takes it (default: trained-looking values).

    Returns (clean, results): clean maps each variant to the unplanted check's rows (which must
    pass for the rest to mean anything), results holds one Result per change, in order."""
    results = [Result(slip, {}) for slip in slips]
    for result in results:
        stale = [p for p in (e.problem(result.slip.name) for e in result.slip.edits) if p]
        result.problem = "; ".join(stale)
    clean = {}
    for variant in variants:
        check = gradcheck.Check(variant, arch, label_smoothing=label_smoothing, weights=weights)
        probes = check.probes(sample)
        clean[variant] = gradcheck.rows_against(probes, check.gradients())
        for result in results:
            if result.problem or not result.slip.variants(variant):
                continue
            check = gradcheck.Check(variant, arch, label_smoothing=label_smoothing, weights=weights)
            try:
                calls = plant_everywhere(check.objects(), result.slip)
                analytic = check.gradients()
                if not calls[0]:
                    continue  # no layer of this variant runs the slip's code
                mine = probes if backward_only(result.slip) else check.probes(sample)
                result.rows[variant] = gradcheck.rows_against(mine, analytic)
            except Exception as e:  # a slip that crashes tests nothing about the check
                result.problem = f"planted, it raises {type(e).__name__}: {e}"
    for result in results:
        if not result.rows and not result.problem:
            result.problem = "planted nowhere: no layer of any variant runs the function it edits"
    return clean, results


def format_results(results):
    """The tables `gradcheck --mutants` prints: one row per planted change."""
    lines = []
    slips = [r for r in results if not r.slip.harmless]
    harmless = [r for r in results if r.slip.harmless]
    caught_by = {id(r): caught_by_text(r) for r in slips if not r.problem}
    by_width = max([len("caught by (in the variant it is closest to passing in)"), *map(len, caught_by.values())])
    for heading, mine in (("planted slip", slips), ("harmless change", harmless)):
        if not mine:
            continue
        name_width = max(len(heading), *(len(r.slip.name) for r in mine))
        file_width = max(len(r.slip.location()[0]) for r in mine)
        lines.append("")
        if mine is slips:
            lines.append(f"{heading:<{name_width}}  {'file':<{file_width}}  {'line':>4}  caught in  "
                         f"{'caught by (in the variant it is closest to passing in)':<{by_width}}  rel error")
        else:
            lines.append(f"{heading:<{name_width}}  {'file':<{file_width}}  {'line':>4}  passes in  worst rel error")
        for r in mine:
            file, line = r.slip.location()
            start = f"{r.slip.name:<{name_width}}  {file:<{file_width}}  {line:>4}  "
            if r.problem:
                lines.append(start + f"PROBLEM: {r.problem}")
            elif mine is slips:
                row = r.weakest()[1]
                caught = f"{len(r.caught_in())} of {len(r.rows)}"
                lines.append(start + f"{caught:<9}  {caught_by[id(r)]:<{by_width}}  {row.rel_error:9.2e}"
                             + ("" if r.ok else "  <- NOT CAUGHT"))
            else:
                passes = f"{len(r.rows) - len(r.caught_in())} of {len(r.rows)}"
                worst = max(x.rel_error for rows in r.rows.values() for x in rows)
                lines.append(start + f"{passes:<9}  {worst:15.2e}" + ("" if r.ok else "  <- FLAGGED"))
    return "\n".join(lines)


def caught_by_text(result):
    """"variant: worst tensor (+ how many more failed there)" for the weakest variant."""
    variant, row = result.weakest()
    failing = sum(not x.ok for x in result.rows[variant])
    return f"{variant}: {row.name}" + (f" (+{failing - 1})" if failing > 1 else "")


def summary(clean, results):
    """The closing lines, and whether everything is as the catalogue says."""
    lines, ok = [], True
    broken = [v for v, rows in clean.items() if not all(r.ok for r in rows)]
    if broken:
        ok = False
        lines.append(f"the unplanted check itself fails in {', '.join(map(str, broken))}: fix the backward first, "
                     "a slip caught there proves nothing")
    slips = [r for r in results if not r.slip.harmless]
    harmless = [r for r in results if r.slip.harmless]
    problems = [r.slip.name for r in results if r.problem]
    if problems:
        ok = False
        lines.append(f"{len(problems)} changes could not be tried (see PROBLEM above): {'; '.join(problems)}")
    missed = [r.slip.name for r in slips if not r.ok and not r.problem]
    flagged = [r.slip.name for r in harmless if not r.ok and not r.problem]
    if missed:
        ok = False
        lines.append(f"{len(missed)} of {len(slips)} planted slips NOT CAUGHT in every variant they run in: {'; '.join(missed)}")
    elif slips and not problems:
        lines.append(f"all {len(slips)} planted slips caught, each in every variant it runs in")
    if flagged:
        ok = False
        lines.append(f"{len(flagged)} changes listed as harmless are flagged by the check: {'; '.join(flagged)}")
    elif harmless and not problems:
        lines.append(f"all {len(harmless)} harmless changes pass, as their reasons say")
    return "\n".join(lines), ok


def reasons(results):
    """Why each harmless change is harmless, one paragraph each."""
    return "\n".join(textwrap.fill(f"- {r.slip.name}: {r.slip.harmless}.", 100, subsequent_indent="  ", break_on_hyphens=False)
                     for r in results if r.slip.harmless)


def describe(clean, results, config_name, sample, variants):
    """(text, ok): everything `gradcheck --mutants` prints for run's results, and whether the
    command succeeds."""
    probing = "every entry of every tensor" if not sample else f"a seeded sample of up to {sample} entries per tensor"
    head = textwrap.fill(f"Each change below is planted alone, in memory, in every variant of the whole-model check of "
                         f"{config_name}'s architecture where its code runs ({', '.join(map(str, variants))}), at "
                         f"trained-looking parameter values, probing {probing}.", 100, break_on_hyphens=False)
    text, ok = summary(clean, results)
    harmless = reasons(results)
    return "\n".join([head, format_results(results), "", *(["Why the harmless changes are harmless:", harmless, ""] if harmless else []), text]), ok


def report(config_name, sample, slips=None, variants=None):
    """(text, ok) of `gradcheck --mutants CONFIG`: slips (default SLIPS and HARMLESS) planted in
    variants (default every one)."""
    slips = SLIPS + HARMLESS if slips is None else slips
    variants = gradcheck.VARIANTS if variants is None else variants
    arch, eps = gradcheck.config_architecture(config_name)
    clean, results = run(slips, arch, eps, sample, variants)
    return describe(clean, results, config_name, sample, variants)


def run_cli(config_name, sample):
    """`minitx gradcheck [CONFIG] --mutants [--sample N]`: print the report; 1 unless it holds."""
    from pathlib import Path

    from minitx.errors import UserError

    if Path(config_name).is_dir():
        raise UserError(f"{config_name}: --mutants plants its slips in the small model of a config (e.g. tiny), not in a run")
    text, ok = report(config_name, sample)
    print(text)
    return 0 if ok else 1
