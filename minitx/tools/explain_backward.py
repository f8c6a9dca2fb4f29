"""One attention head's backward pass, step by step, with the real numbers of one example.

    python -m minitx explain RUN_DIR "3 1 4 1 5" --backward [--kind ...] [--layer N] [--head N]
                                                            [--target "3 1 4 1 5"]

We take one real example (minitx.tools.example says where its target comes from), compute the
run's own loss on it, label smoothing and all, and run the model's backward once, exactly as a
training step does, with dropout off. During it we record, without changing any code (as
minitx.tools.explain records the forward):

    attn.backward(dy) -> (dx_q, dx_kv)         dy: the gradient arriving at this attention's output
    attn.output.backward(dy) -> dconcat        the backward through W_O
    attn.attention.backward(dheads) -> (dq, dk, dv)
        and its local variables dP and dscores when it returns: Python's profiling hook
        (sys.setprofile) is told of every function's return, with the function's frame

Then we redo this head's part of MultiHeadAttention.backward and ScaledDotProductAttention.backward
in float64, one step per forward line, each step under the lines of minitx/nn/attention.py that
undo that forward line (quoted from the source as it is now, minitx.tools.walk.code_block), and
compare every array with the model's own. The parameter gradients (this head's columns of dW_Q,
dW_K, dW_V and its entries of their biases, its rows of dW_O, and db_O) are compared with
model.grads, and one entry of each with a central finite difference of the same loss on a
float64 copy of the model:

    (loss(w + h) - loss(w - h)) / 2h,   h = 1e-5

Shape letters as everywhere in minitx: S source length, T target length, D model width, H heads,
K = D/H head width. "rows" are the attention's queries, "keys" its keys.
"""

import math
import sys
from contextlib import contextmanager

import numpy as np

from minitx.build import build_model
from minitx.data import PAD
from minitx.gradcheck import probe
from minitx.nn import CrossEntropy, log_softmax
from minitx.tools.example import make_example
from minitx.tools.explain import TOLERANCE, agree, check_head, f64, find, is_pre_norm, recording, row_labels
from minitx.tools.walk import MAX_COLS, MAX_ROWS, Check, Step, Table, Walk, code_block, in_units, text_lines, unit_of

H_STEP = 1e-5  # the finite difference's step: its error (about h^2) and rounding (1e-16/h) both stay near 1e-10
# The largest |difference - backward| we accept, in float64: 1e-6 of the gradient, plus 1e-9 for
# the difference's own rounding (1e-16 of the loss over 2h) and its h^2 error, which we saw stay
# below 3e-11 on every head of the tour's runs.
FD_RELATIVE, FD_ABSOLUTE = 1e-6, 1e-9
SDPA = "ScaledDotProductAttention.backward"
MHA = "MultiHeadAttention.backward"


@contextmanager
def locals_at_return(function, instance):
    """Inside the `with`: when `function` returns on `instance`, keep its local variables (the
    last call wins). The function itself runs unchanged."""
    seen = {}

    def profile(frame, event, arg):
        if event == "return" and frame.f_code is function.__code__ and frame.f_locals.get("self") is instance:
            seen.update(frame.f_locals)

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield seen
    finally:
        sys.setprofile(previous)


class Loss64:
    """The run's loss on the example, on a float64 copy of the model: for finite differences,
    and for the same backward in float64 to compare them with."""

    def __init__(self, cfg, task, model, example, name):
        self.model = build_model(cfg, task, dtype=np.float64, training=False)
        for key, p in self.model.params.items():
            p[...] = model.params[key]
        self.model.train(False)
        self.ce = CrossEntropy(PAD, cfg.train.label_smoothing)
        self.example = example
        self.name = name
        self.attn = dict(self.model.named_modules())[name]

    def __call__(self):
        e = self.example
        return self.ce.forward(self.model.forward(e.src, e.tgt_in), e.tgt_out)

    def backward(self):
        """The model's backward in float64: (this attention's {key: gradient}, its dy (T, D))."""
        self.model.zero_grad()
        with recording([(self.attn, "backward", "attn_back")]) as seen:
            self()
            self.model.backward(self.ce.backward())
        prefix = self.name + "."
        grads = {k[len(prefix):]: g.copy() for k, g in self.model.grads.items() if k.startswith(prefix)}
        return grads, seen["attn_back"][0][0][0]

    def parameter_difference(self, key, index):
        """The central difference of the loss in this attention's parameter `key` at `index`."""
        p = self.model.params[f"{self.name}.{key}"]
        return float(probe(self, p, [np.ravel_multi_index(index, p.shape)], H_STEP)[0])

    def output_difference(self, t, j):
        """The central difference of the loss when we add +-h to this attention's output y[t, j]."""
        original = self.attn.forward

        def nudged(delta):
            def forward(*args):
                y = original(*args).copy()  # (1, T, D)
                y[0, t, j] += delta
                return y
            return forward

        try:
            self.attn.forward = nudged(H_STEP)
            up = self()
            self.attn.forward = nudged(-H_STEP)
            down = self()
        finally:
            del self.attn.__dict__["forward"]
        return (up - down) / (2 * H_STEP)


def finite_difference_check(entry, analytic32, analytic64, numeric):
    """The Check of the gradient of one entry ("W_Q[3, 5]") against its central difference, both
    in float64. The float32 model's own value is printed beside them, not compared: it may differ
    in the fourth digit, as explained at the top of the printout. A NaN central difference means
    the nudge would carry some ReLU's input across 0 (gradcheck.one_entry): there a finite
    difference measures no derivative, and we say so instead of comparing."""
    if np.isnan(numeric):
        return Check(f"check: d{entry} by finite difference: not measurable here, a nudge of h = {H_STEP:g} carries "
                     f"some ReLU's input across 0 (the backward in float64: {analytic64:.8g})")
    diff = abs(numeric - analytic64)
    assert diff <= FD_RELATIVE * abs(numeric) + FD_ABSOLUTE, (
        f"d{entry}: the backward gives {analytic64:.8g}, the finite difference {numeric:.8g}")
    return Check(f"check: d{entry} by finite difference, (loss({entry} + h) - loss({entry} - h)) / 2h with h = {H_STEP:g}, "
                 f"in float64: {numeric:.8g}; the backward in float64: {analytic64:.8g}, difference {diff:.1e} "
                 f"(in float32, as above: {analytic32:.6g})")


def largest(block):
    """The index of block's largest entry by size: the one a finite difference tells best."""
    return tuple(int(i) for i in np.unravel_index(int(np.abs(block).argmax()), block.shape))


def gradient_agrees(what, ours, model):
    """agree() for a gradient, whose size can be anything: measured against its own largest entry."""
    return agree(what, ours, model, scale=float(np.abs(model).max()) + 1e-30)


def walk_backward(model, task, cfg, text, kind="cross", layer=0, head=0, run_name="the run", target=None):
    """The step-by-step account of one head's backward on one example, as a Walk."""
    site = find(model, kind, layer)
    attn = site.attn
    H, D, K, c, cols = check_head(site, head)
    name = next(n for n, m in model.named_modules() if m is attn)  # "decoder.layers.0.cross_attn"
    example = make_example(model, task, cfg, text, target)
    eps = cfg.train.label_smoothing

    # One training step's forward and backward, dropout off, every array we need recorded.
    model.train(False)
    model.zero_grad()
    ce = CrossEntropy(PAD, eps)
    calls = [(attn, "forward", "attn"), (attn.attention, "forward", "core"), (attn, "backward", "attn_back"),
             (attn.output, "backward", "output_back"), (attn.attention, "backward", "core_back")]
    with recording(calls) as seen, locals_at_return(type(attn.attention).backward, attn.attention) as inside:
        logits = model.forward(example.src, example.tgt_in)  # (1, T, V)
        loss = ce.forward(logits, example.tgt_out)
        model.backward(ce.backward())
    (x_q, x_kv, mask), _ = seen["attn"]
    (q_all, k_all, v_all, _), heads_out = seen["core"]
    (dy_model,), (dx_q_model, dx_kv_model) = seen["attn_back"]
    _, dconcat_model = seen["output_back"]
    (dheads_model,), (dq_model, dk_model, dv_model) = seen["core_back"]
    prefix = name + "."
    grads = {k[len(prefix):]: g.copy() for k, g in model.grads.items() if k.startswith(prefix)}
    P_all = attn.attn  # (1, H, T, S)
    exact = Loss64(cfg, task, model, example, name)
    grads64, dy64 = exact.backward()

    rows, keys = row_labels(kind, example.src_tokens, example.in_tokens, example.out_tokens)
    dims = [f"d{i}" for i in range(D)]
    labels = {n: [f"{n}{i}" for i in range(K)] for n in ("dout", "dq", "dk", "dv", "db")}
    W = {n: f64(getattr(attn, n).params["W"]) for n in ("query", "key", "value", "output")}
    q, k, v = f64(q_all[0, head]), f64(k_all[0, head]), f64(v_all[0, head])  # (T, K), (S, K), (S, K)
    P = f64(P_all[0, head])  # (T, S)
    head_out = f64(heads_out[0, head])  # (T, K)
    xq, xkv = f64(x_q[0]), f64(x_kv[0])  # (T, D), (S, D)
    src_name = "memory" if kind == "cross" else "h"

    def table(values, row_names, col_names):
        """(the Table in the unit that shows its numbers, the words for that unit)."""
        unit = unit_of(values)
        return Table(values, row_names, col_names, unit), in_units(unit)

    def fd(symbol, key, index, shown_index):
        """The finite-difference Check of parameter `key` at `index`, printed as d<symbol>[shown_index]."""
        entry = f"{symbol}[{', '.join(str(i) for i in shown_index)}]"
        return finite_difference_check(entry, float(grads[key][index]), float(grads64[key][index]),
                                       exact.parameter_difference(key, index))

    header = [f"{site.title}, head {head}, in {run_name} (D = {D}, H = {H}, K = D/H = {K}): the backward pass"]
    header += example.describe()
    header += ["The decoder reads <s> + the target (teacher forcing) and must predict the target, as in training; "
               "dropout is off.",
               "Every gradient is recomputed here in float64 from the model's own forward arrays and checked "
               "against the arrays its own backward produced, recorded as it ran.",
               "The finite differences run on a float64 copy of the model. Its gradients can differ from the float32 "
               "model's in the fourth digit: where a head is nearly certain (P near 1), dP - sum(dP * P) cancels, and "
               "float32's rounding of the forward shows."]
    if kind != "encoder":
        header.append("Decoder rows are labelled 'a→b': position t reads token a and its output predicts b.")
    if D > MAX_COLS or len(rows) > MAX_ROWS or len(keys) > MAX_ROWS:
        header.append(f"Each matrix shows at most its first {MAX_ROWS} rows and {MAX_COLS} columns; "
                      f"every check covers the whole arrays.")
    steps = []

    # 1. The loss.
    logp = log_softmax(f64(logits[0]))  # (T, V)
    T, V = logp.shape
    right = example.tgt_out[0]  # (T,)
    smoothed = np.full((T, V), eps / V)  # (T, V): the target distribution q
    smoothed[np.arange(T), right] += 1 - eps
    per_token = -(smoothed * logp).sum(axis=-1)  # (T,)
    ours = float(per_token.mean())
    p_right = np.exp(logp[np.arange(T), right])  # (T,)
    how = ("train.label_smoothing = 0 in this run: q is one-hot, so loss_t = -log p(right token)" if eps == 0 else
           f"train.label_smoothing = {eps:g} in this run: q puts 1 - {eps:g} + {eps:g}/V on the right token and "
           f"{eps:g}/V on each of the other V - 1 = {V - 1}")
    target_rows = [f"{a}→{b}" for a, b in zip(example.in_tokens, example.out_tokens)]
    steps.append(Step("1. The loss, as training computes it (CrossEntropy): the mean over the T target positions of "
                      "loss_t = -sum_v q_v log p_v, where p = softmax(logits) and q is the target distribution", parts=[
        f"  {how}.", Table(np.stack([p_right, per_token], axis=1), target_rows, ["p(right)", "loss_t"]),
        f"  loss = {ours:.6g}, the mean over T = {T}. Its gradient, dlogits = (p - q) / T, starts model.backward.",
        agree("the model's loss (CrossEntropy.forward on its float32 logits)", ours, loss, scale=abs(loss) + 1e-30)]))

    # 2. The gradient arriving at this attention's output.
    dy = f64(dy_model[0])  # (T, D)
    shown, unit = table(dy, rows, dims)
    pre = is_pre_norm(site)
    stack = model.encoder.layers if kind == "encoder" else model.decoder.layers
    n_above = len(stack) - 1 - layer
    path = ["the output projection" if kind != "encoder" else "every decoder layer's cross-attention (which read memory)",
            ("the encoder's final norm" if kind == "encoder" else "the final norm") if pre else None,  # post-norm has none
            f"the {n_above} layer{'s' if n_above > 1 else ''} above" if n_above else None,
            {"decoder": "this layer's cross-attention and feed-forward", "cross": "this layer's feed-forward",
             "encoder": "this layer's feed-forward"}[kind]]
    path = [p for p in path if p]
    above = ", ".join(path[:-1]) + " and " + path[-1]
    handed = ("the residual connection x = x + y hands it to this sub-layer unchanged (dropout is off)" if pre else
              "the norm after the residual sum, x = norm(x + y), passed it through its backward (dropout is off)")
    t, j = largest(dy)
    steps.append(Step(f"2. The gradient arriving at this attention's output y: dy = dloss/dy, (rows, D) = {dy.shape}{unit}. "
                      f"model.backward brought it down from dlogits through {above}; {handed}. This is the "
                      f"array MultiHeadAttention.backward received, recorded as it ran.", parts=[
        shown, finite_difference_check(f"y[{t}, {j}]", float(dy[t, j]), float(dy64[t, j]),
                                       exact.output_difference(t, j))]))

    # 3. Through W_O.
    dconcat_h = dy @ W["output"][c].T  # (T, K): this head's columns of dconcat = dy @ W_O^T
    dW_O = head_out.T @ dy  # (K, D): this head's rows of dW_O = concat^T @ dy
    db_O = dy.sum(axis=0)  # (D,)
    shown_dc, unit_dc = table(dconcat_h, rows, labels["dout"])
    shown_dW, unit_dW = table(dW_O, [f"c{i}" for i in range(c.start, c.stop)], dims)
    shown_db, unit_db = table(db_O[None], ["db_O"], dims)
    i, jj = largest(dW_O)
    steps.append(Step(f"3. Through the output projection y = concat @ W_O + b_O (a Linear): dconcat = dy @ W_O^T, "
                      f"dW_O = concat^T @ dy, db_O = the sum of dy's rows. Head {head} meets only W_O's rows {cols}, "
                      f"so its part of each is:", code_block(MHA, "return self.output.forward(concat)"), parts=[
        f"  dconcat[:, {cols}] = dy @ W_O[{cols}, :]^T   (rows, K) = {dconcat_h.shape}{unit_dc}", shown_dc,
        gradient_agrees(f"the model's dconcat[:, {cols}] (what self.output.backward returned)", dconcat_h, dconcat_model[0][:, c]),
        f"  dW_O[{cols}, :] = head_out^T @ dy, this head's output (step 7 of the forward) times dy   (K, D) = {dW_O.shape}{unit_dW}",
        shown_dW, gradient_agrees(f"the model's grads['output.W'][{cols}, :]", dW_O, grads["output.W"][c]),
        fd("W_O", "output.W", (c.start + i, jj), (c.start + i, jj)),
        f"  db_O = dy summed over the rows   (D,){unit_db}: shared by every head, as b_O is", shown_db,
        gradient_agrees("the model's grads['output.b']", db_O, grads["output.b"]),
        fd("b_O", "output.b", (largest(db_O)[0],), largest(db_O))], where=MHA))

    # 4. Into the heads.
    dout = dconcat_h  # (T, K): split_heads only moves columns
    steps.append(Step(f"4. Back into the heads: dheads = split_heads(dconcat), so head {head}'s gradient dout is "
                      f"columns {cols} of dconcat, the numbers of step 3. Nothing is computed; split_heads undoes "
                      f"merge_heads by moving the columns back.", code_block(MHA, "concat = merge_heads(heads)"), parts=[
        gradient_agrees(f"the model's dheads[:, {head}], what ScaledDotProductAttention.backward received", dout,
                        dheads_model[0, head])], where=MHA))

    # 5. out = P @ v.
    dP = dout @ v.T  # (T, S)
    dv = P.T @ dout  # (S, K)
    shown_dP, unit_dP = table(dP, rows, keys)
    shown_dv, unit_dv = table(dv, keys, labels["dv"])
    steps.append(Step("5. Through head_out = P @ v, a matrix product: dP = dout @ v^T, and dv = P^T @ dout, so each "
                      "value row v[s] collects dout[t] from every query t in proportion to its weight P[t, s].",
                      code_block(SDPA, "forward: out = P @ v"), parts=[
        f"  dP = dout @ v^T   (rows, keys) = {dP.shape}{unit_dP}", shown_dP,
        gradient_agrees(f"the model's dP[:, {head}], a local variable of its backward", dP, inside["dP"][0, head]),
        f"  dv = P^T @ dout   (keys, K) = {dv.shape}{unit_dv}", shown_dv,
        gradient_agrees(f"the model's dv[:, {head}]", dv, dv_model[0, head])], where=SDPA))

    # 6. The softmax.
    coupling = (dP * P).sum(axis=-1, keepdims=True)  # (T, 1)
    dscores_soft = P * (dP - coupling)  # (T, S)
    shown_c, unit_c = table(coupling, rows, ["sum(dP*P)"])
    shown_ds, unit_ds = table(dscores_soft, rows, keys)
    steps.append(Step("6. Through P = softmax(scores), row by row: dscores = P * (dP - sum(dP * P)). The coupling "
                      "term sum_s dP[t, s] P[t, s] is one number per row, the P-weighted average of that row's dP: a "
                      "score's gradient is its weight times how far its dP lies above its row's average.",
                      code_block(SDPA, "forward: P = softmax(scores)"), parts=[
        "  P, the weights of the forward (its step 6):", Table(P, rows, keys),
        f"  the coupling term of each row, sum(dP * P, axis=-1){unit_c}:", shown_c,
        f"  dscores   (rows, keys) = {dscores_soft.shape}{unit_ds}", shown_ds,
        f"    row sums of dscores: {' '.join(f'{x:.1e}' for x in dscores_soft.sum(axis=1)[:MAX_ROWS])}: "
        f"0 up to rounding, since sum_s P (dP - c) = c - c. Adding one number to a whole row of scores "
        f"leaves the softmax unchanged, so the loss cannot depend on it.",
        gradient_agrees(f"the model's dscores[:, {head}] (after the mask's line, which here changes no entry: see step 7)",
                        dscores_soft, inside["dscores"][0, head])], where=SDPA))

    # 7. The mask.
    allowed = np.broadcast_to(mask, P_all.shape)[0, head] if mask is not None else np.ones(P.shape, bool)  # (T, S)
    dscores = np.where(allowed, dscores_soft, 0.0)  # (T, S)
    n_masked = int((~allowed).sum())
    before = float(np.abs(dscores_soft[~allowed]).max()) if n_masked else 0.0
    step = Step(f"7. Through the mask: a masked score was replaced by the constant -1e9, so no gradient passes "
                f"back through it. {n_masked} of {allowed.size} entries are masked here"
                + (f"; their dscores before this line were at most {before:.1e} in size, because P is exactly 0 "
                   f"there: the line changes nothing, and would matter only for a row masked everywhere."
                   if n_masked else "; the line has nothing to zero."),
                code_block(SDPA, "forward: scores = np.where(mask, scores, MASKED)"), where=SDPA)
    if n_masked:
        step.parts.append(table(dscores, rows, keys)[0])
    step.parts.append(gradient_agrees(f"the model's dscores[:, {head}]", dscores, inside["dscores"][0, head]))
    steps.append(step)

    # 8. The scaled product.
    dq = dscores @ k / math.sqrt(K)  # (T, K)
    dk = dscores.T @ q / math.sqrt(K)  # (S, K)
    shown_dq, unit_dq = table(dq, rows, labels["dq"])
    shown_dk, unit_dk = table(dk, keys, labels["dk"])
    steps.append(Step(f"8. Through scores = q @ k^T / sqrt(K): dq = dscores @ k / sqrt(K) and dk = dscores^T @ q / sqrt(K). "
                      f"The forward divided every score by sqrt(K) = {math.sqrt(K):.4g}, so both gradients are divided "
                      f"by it too; dq sums over the keys, dk over the queries.",
                      code_block(SDPA, "forward: scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(K)"), parts=[
        f"  dq   (rows, K) = {dq.shape}{unit_dq}", shown_dq, gradient_agrees(f"the model's dq[:, {head}]", dq, dq_model[0, head]),
        f"  dk   (keys, K) = {dk.shape}{unit_dk}", shown_dk, gradient_agrees(f"the model's dk[:, {head}]", dk, dk_model[0, head])],
        where=SDPA))

    # 9 to 11. The three projections: this head's columns of each weight, and its entries of each bias.
    def projection(number, symbol, key, x, x_name, d, d_name, comment, extra):
        dW = x.T @ d  # (D, K): this head's columns of dW = x^T @ merge_heads(d)
        db = d.sum(axis=0)  # (K,)
        shown_dW, unit_dW = table(dW, dims, labels[d_name])
        shown_db, unit_db = table(db[None], [f"db_{symbol}"], labels["db"])
        i, jj = largest(dW)
        (b_index,) = largest(db)
        parts = [f"  dW_{symbol}[:, {cols}] = {x_name}^T @ {d_name}   (D, K) = {dW.shape}{unit_dW}", shown_dW,
                 gradient_agrees(f"the model's grads['{key}.W'][:, {cols}]", dW, grads[f"{key}.W"][:, c]),
                 fd(f"W_{symbol}", f"{key}.W", (i, c.start + jj), (i, c.start + jj)),
                 f"  db_{symbol}[{cols}] = {d_name} summed over its rows   (K,){unit_db}", shown_db]
        parts += extra(db, b_index)
        return Step(f"{number}. Through {symbol.lower()} = {x_name} @ W_{symbol}[:, {cols}] + b_{symbol}[{cols}] (head {head}'s "
                    f"columns of a Linear): dW_{symbol} = {x_name}^T @ d{symbol.lower()}, db_{symbol} = the sum of "
                    f"d{symbol.lower()}'s rows.", code_block(MHA, comment), parts, where=MHA)

    def plain_bias(symbol, key):
        return lambda db, b_index: [
            gradient_agrees(f"the model's grads['{key}.b'][{cols}]", db, grads[f"{key}.b"][c]),
            fd(f"b_{symbol}", f"{key}.b", (c.start + b_index,), (c.start + b_index,))]

    def key_bias(db, b_index):
        # Every key of this head gets the same b_K added, which adds q_t . b_K / sqrt(K) to every score
        # of row t: one number per row, which the softmax ignores (step 6). So the loss does not depend
        # on b_K, and its gradient is 0; what the backward computes is the rounding of a sum that cancels.
        terms = float(np.abs(dk).sum(axis=0).max())  # the size of what the sum adds up
        sizes = {"ours": db, "the model's float32 one": grads["key.b"][c], "the float64 copy's": grads64["key.b"][c]}
        sizes = {who: float(np.abs(f64(x)).max()) for who, x in sizes.items()}
        for who, size in sizes.items():
            assert size <= TOLERANCE * max(terms, 1e-30), f"db_K: {who} is {size:.3g}, not 0 next to terms of {terms:.3g}"
        return ["  db_K is exactly 0 in exact arithmetic, for every example and every weight: b_K adds q_t . b_K / sqrt(K) "
                "to every score of row t alike, and the softmax ignores a number added to a whole row (step 6), so the "
                "loss does not depend on b_K. In the algebra: sum_s dk[s] = sum_t (sum_s dscores[t, s]) q_t / sqrt(K), "
                "and each row of dscores sums to 0.",
                Check(f"check: db_K[{cols}] is 0 up to rounding, next to terms of the sum up to {terms:.1e} in size: at most "
                      + ", ".join(f"{size:.1e} ({who})" for who, size in sizes.items())),
                fd("b_K", "key.b", (c.start + b_index,), (c.start + b_index,))]

    steps.append(projection(9, "V", "value", xkv, src_name, dv, "dv",
                            "forward: v = split_heads(self.value.forward(x_kv)", plain_bias("V", "value")))
    steps.append(projection(10, "K", "key", xkv, src_name, dk, "dk",
                            "forward: k = split_heads(self.key.forward(x_kv)", key_bias))
    steps.append(projection(11, "Q", "query", xq, "h", dq, "dq",
                            "forward: q = split_heads(self.query.forward(x_q)", plain_bias("Q", "query")))

    # 12. What the attention hands down.
    share = dq @ W["query"][:, c].T  # (T, D): this head's part of dx_q
    dx_q = sum(f64(dq_model[0, g]) @ W["query"][:, g * K:(g + 1) * K].T for g in range(H))  # (T, D)
    dx_kv = sum(f64(dk_model[0, g]) @ W["key"][:, g * K:(g + 1) * K].T
                + f64(dv_model[0, g]) @ W["value"][:, g * K:(g + 1) * K].T for g in range(H))  # (S, D)
    shown_share, unit_share = table(share, rows, dims)
    onward = {"cross": "dx_kv goes to memory, where every decoder layer's cross-attention adds its own, and on into "
                       "the encoder; dx_q goes to this sub-layer's norm (norm2) and joins the residual stream",
              "decoder": "h was both x_q and x_kv, so the layer adds dx_q + dx_kv and hands the sum to norm1's backward",
              "encoder": "h was both x_q and x_kv, so the layer adds dx_q + dx_kv and hands the sum to norm1's backward"}
    if not is_pre_norm(site):
        onward = {"cross": "dx_kv goes to memory, where every decoder layer's cross-attention adds its own, and on into "
                           "the encoder; dx_q joins the residual stream below",
                  "decoder": "x was both x_q and x_kv, so the layer adds dx_q + dx_kv to the skip path's gradient",
                  "encoder": "x was both x_q and x_kv, so the layer adds dx_q + dx_kv to the skip path's gradient"}
    steps.append(Step(f"12. What the attention hands down: dx_q = merge_heads(dq) @ W_Q^T, the sum of every head's "
                      f"dq_g @ W_Q[:, g-th K columns]^T, and dx_kv likewise from dk and dv. Here {onward[kind]}.",
                      parts=[
        f"  head {head}'s part of dx_q: dq @ W_Q[:, {cols}]^T   (rows, D) = {share.shape}{unit_share}", shown_share,
        gradient_agrees("the model's dx_q, summed over its heads", dx_q, dx_q_model[0]),
        gradient_agrees("the model's dx_kv, summed over its heads, keys and values", dx_kv, dx_kv_model[0])]))
    return Walk("backward", header, steps)


def explain_backward(model, task, cfg, text, kind="cross", layer=0, head=0, run_name="the run", target=None):
    """The backward walk as the terminal's lines."""
    return text_lines(walk_backward(model, task, cfg, text, kind, layer, head, run_name, target))


def explain_backward_command(run_dir, text, kind="cross", layer=0, head=0, target=None):
    from minitx.inference import load_run

    cfg, model, task = load_run(run_dir, need_data=False, fused=False)
    print("\n".join(explain_backward(model, task, cfg, text, kind, layer, head, str(run_dir), target)))
