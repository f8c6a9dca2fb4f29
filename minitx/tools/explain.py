"""One attention head, step by step, with the real numbers of one input.

    python -m minitx explain RUN_DIR "3 1 4 1 5" [--kind encoder|decoder|cross] [--layer N] [--head N]

Like `minitx attention`, we first decode the input greedily, then run the model once more on
(source, <s> + its own output) with teacher forcing. During that pass we record what the chosen
attention received and returned, without changing its code: as minitx.tools.trace does, we give
a few module instances their own method attributes, which Python finds before the class's, and
each records its arguments and result and then returns it unchanged:

    attn.forward(x_q, x_kv, mask)  the whole multi-head attention, y (B, T, D)
    attn.attention.forward(q, k, v, mask) -> out   its core, every head at once (B, H, T, K)
    norm.forward(x) -> h           pre-norm: the sub-layer's own norm, h = norm(x), whose input
                                   x is the residual stream; post-norm: the norm after the sum,
                                   x_new = norm(x + y)
    next_norm.forward(x_new)       pre-norm: the next sub-layer's norm, which reads the stream
                                   after this sub-layer added y

Then we recompute the chosen head from the model's own weight arrays, in float64, one formula
a step, the way the plain layers in minitx/nn/attention.py compute it for every head at once:

    q = x_q @ W_Q[:, c] + b_Q[c]        c = the head's K columns, h*K ... (h+1)*K - 1
    k = x_kv @ W_K[:, c] + b_K[c]
    v = x_kv @ W_V[:, c] + b_V[c]
    scores = q @ k^T / sqrt(K)          masked where the mask says False
    P = softmax(scores)                 every row sums to 1
    head_out = P @ v                    lands in columns c of the concatenation
    share = head_out @ W_O[c, :]        this head's part of y = concat @ W_O + b_O

After each step we compare our numbers with what the model's forward produced and stop with an
AssertionError if they differ by more than float32 rounding, so this printout cannot drift away
from the code it explains. On a model wider than fits a screen we print a slice (the first
columns and rows) and say so; every check still covers the whole arrays.

Shape letters as everywhere in minitx: S source length, T target length, D model width, H heads,
K = D/H head width. Rows are queries (tokens), columns are dimensions or keys.
"""

import math
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from minitx.data import detokenize
from minitx.errors import UserError
from minitx.model import PostNormDecoderLayer, PostNormEncoderLayer
from minitx.nn.attention import MASKED
from minitx.tools.walk import MAX_COLS, MAX_ROWS, Check, Step, Table, Walk, text_lines

TOLERANCE = 1e-4  # largest difference from the model's float32 numbers, relative to their size


@contextmanager
def recording(calls):
    """calls: [(object, method name, key)]. Inside the `with`, each method also stores its
    arguments and result in the yielded dict under `key` (the last call wins)."""
    seen = {}

    def recorder(original, key):
        def record(*args):
            result = original(*args)
            seen[key] = (args, result)
            return result
        return record

    for obj, method, key in calls:
        setattr(obj, method, recorder(getattr(obj, method), key))
    try:
        yield seen
    finally:
        for obj, method, _ in calls:
            del obj.__dict__[method]  # the class's own method is used again


def agree(what, ours, model, scale=None):
    """Assert that our float64 recomputation equals the model's numbers; return the Check that
    says so. A disagreement is a bug in minitx (here or in the layer), not a user error.
    scale: the size the difference is measured against (default: the model's largest entry,
    and at least 1, which suits activations; gradients pass their own)."""
    ours, model = np.asarray(ours, dtype=np.float64), np.asarray(model, dtype=np.float64)
    assert ours.shape == model.shape, f"{what}: shape {ours.shape}, the model's {model.shape}"
    diff = float(np.abs(ours - model).max())
    if scale is None:
        scale = max(1.0, float(np.abs(model).max()))
    assert diff <= TOLERANCE * scale, f"{what}: recomputed differs from the model's by {diff:.3g}"
    return Check(f"check: equals {what}, largest difference {diff:.1e}")


def layer_norm(x, norm):
    """The LayerNorm formula of minitx/nn/layernorm.py, in float64."""
    gamma, beta = (norm.params[k].astype(np.float64) for k in ("gamma", "beta"))
    mean = x.mean(axis=-1, keepdims=True)  # (L, 1)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # (L, 1)
    return gamma * (x - mean) / np.sqrt(var + norm.eps) + beta  # (L, D)


def f64(a):
    """We recompute in float64, so that our own rounding is far below the model's float32's."""
    return np.asarray(a, dtype=np.float64)


def softmax(x):
    """The stable softmax of minitx/nn/attention.py, over the last axis."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class Site:
    """Where the chosen attention sits: its layer, the module, the norms around it, labels."""

    title: str
    layer: object
    attn: object
    norm: object  # the norm of the attention's own sub-layer (norm1, or norm2 for cross-attention)
    next_norm: object  # the norm of the sub-layer after it
    query_side: str  # what the queries read
    kv_side: str  # what the keys and values read


def find(model, kind, layer):
    stack = model.encoder.layers if kind == "encoder" else model.decoder.layers
    side = "encoder" if kind == "encoder" else "decoder"
    if not 0 <= layer < len(stack):
        raise UserError(f"--layer {layer}: this model's {side} has layers 0 to {len(stack) - 1}")
    L = stack[layer]
    if kind == "encoder":
        return Site(f"encoder self-attention, encoder layer {layer}", L, L.self_attn, L.norm1, L.norm2,
                    "the source tokens' residual stream", "the same vectors")
    if kind == "decoder":
        return Site(f"decoder self-attention, decoder layer {layer}", L, L.self_attn, L.norm1, L.norm2,
                    "the decoder's residual stream", "the same vectors")
    return Site(f"cross-attention, decoder layer {layer}", L, L.cross_attn, L.norm2, L.norm3,
                "the decoder's residual stream", "the encoder's output, memory (S, D)")


def check_head(site, head):
    """The head's number checked against the model; returns (H, D, K, columns slice, "a:b")."""
    H = site.attn.n_heads
    if not 0 <= head < H:
        raise UserError(f"--head {head}: this model has heads 0 to {H - 1}")
    D = site.attn.query.params["W"].shape[0]
    K = D // H
    return H, D, K, slice(head * K, (head + 1) * K), f"{head * K}:{(head + 1) * K}"


def is_pre_norm(site):
    return not isinstance(site.layer, (PostNormEncoderLayer, PostNormDecoderLayer))


def row_labels(kind, src_tokens, in_tokens, out_tokens):
    """(query labels, key labels): source tokens in the encoder; 'a→b' for a decoder position
    that reads a and predicts b."""
    if kind == "encoder":
        return src_tokens, src_tokens
    rows = [f"{a}→{b}" for a, b in zip(in_tokens, out_tokens)]
    return rows, src_tokens if kind == "cross" else in_tokens


def walk_forward(model, task, cfg, text, kind="cross", layer=0, head=0, run_name="the run"):
    """The step-by-step account of one head's forward on one input, as a Walk."""
    from minitx.tools.show import look

    site = find(model, kind, layer)
    attn, norm = site.attn, site.norm
    H, D, K, c, cols = check_head(site, head)
    pre = is_pre_norm(site)

    calls = [(norm, "forward", "norm"), (site.next_norm, "forward", "next_norm"), (attn, "forward", "attn"),
             (attn.attention, "forward", "core")]
    with recording(calls) as seen:
        src_tokens, out_tokens, maps = look(model, task, cfg, text)
    (x_q, x_kv, mask), y_model = seen["attn"]
    (q_model, k_model, v_model, _), out_model = seen["core"]
    if pre:  # h = norm(x); the sub-layer adds y to x; the next sub-layer's norm reads x_new
        (x_stream,), h_model = seen["norm"]
        (x_new,), _ = seen["next_norm"]
    else:  # the attention reads x itself; x_new = norm(x + y)
        x_stream = h_model = x_q
        (x_plus_y,), x_new = seen["norm"]
    P_model = attn.attn  # (1, H, T, S)

    in_tokens = maps["decoder"].cols  # <s> y1 ... : what the decoder reads
    rows, keys = row_labels(kind, src_tokens, in_tokens, out_tokens)
    dims = [f"d{i}" for i in range(D)]
    # Column labels: d for the model's D dimensions, q, k, v for a head's K, c for the
    # concatenation's D columns (head g's are c[g*K] ... c[(g+1)*K - 1]).
    per_head = {name: [f"{name}{i}" for i in range(K)] for name in "qkv"}
    concat_cols = [f"c{i}" for i in range(D)]
    W = {n: f64(getattr(attn, n).params["W"]) for n in ("query", "key", "value", "output")}
    b = {n: f64(getattr(attn, n).params["b"]) for n in ("query", "key", "value", "output")}

    output = [t for t in out_tokens if t != "</s>"]
    header = [
        f"{site.title}, head {head}, in {run_name} (D = {D}, H = {H}, K = D/H = {K})",
        f"input:  {detokenize(src_tokens[:-1])}",
        f"output: {detokenize(output)}   (decoded greedily; then one teacher-forced pass over "
        f"<s> + the output, as `minitx attention` does)",
    ]
    if kind != "encoder":
        header.append("Decoder rows are labelled 'a→b': position t reads token a and its output predicts b.")
    header.append("Every number is recomputed here in float64 from the run's weights and checked against "
                  "the model's own float32 forward.")
    if D > MAX_COLS or len(rows) > MAX_ROWS or len(keys) > MAX_ROWS:
        header.append(f"This model is wider than a screen: each matrix shows at most its first {MAX_ROWS} rows "
                      f"and {MAX_COLS} columns (configs/explain.yaml's D = 8 fits whole); every check covers "
                      f"the whole arrays.")
    steps = []

    # Step 1: the inputs.
    x = f64(x_stream[0])  # (L, D): the residual stream before this sub-layer
    h = f64(h_model[0])  # (L, D)
    step = Step(f"1. The input vectors. This attention reads {site.query_side} x, "
                f"{'after its layer norm (pre-norm): h = norm(x)' if pre else 'as it is (post-norm): h = x'}, "
                f"(rows, D) = {h.shape}")
    step.parts += ["  x, the residual stream:", Table(x, rows, dims)]
    if pre:
        h_ours = layer_norm(x, norm)  # (L, D)
        step.parts += ["  h = gamma * (x - mean(x)) / sqrt(var(x) + eps) + beta, each row on its own:",
                       Table(h_ours, rows, dims), agree("the model's h, its norm's output", h_ours, h)]
    x_q64, x_kv64 = f64(x_q[0]), f64(x_kv[0])  # (T, D), (S, D)
    if kind == "cross":
        step.parts += [f"  The keys and values read {site.kv_side} = {x_kv64.shape}:", Table(x_kv64, keys, dims)]
    steps.append(step)

    # Step 2: this head's projections.
    src_name = "memory" if kind == "cross" else "h"
    q = x_q64 @ W["query"][:, c] + b["query"][c]  # (T, K)
    k = x_kv64 @ W["key"][:, c] + b["key"][c]  # (S, K)
    v = x_kv64 @ W["value"][:, c] + b["value"][c]  # (S, K)
    steps.append(Step(f"2. This head's query, key and value: columns {cols} of W_Q, W_K and W_V, "
                      f"each (D, K) = ({D}, {K}); head g owns columns g*K to (g+1)*K - 1 of each.", parts=[
        f"  q = h @ W_Q[:, {cols}] + b_Q[{cols}]   (rows, K) = {q.shape}", Table(q, rows, per_head["q"]),
        agree(f"the model's q[:, {head}] (split_heads of query(h))", q, q_model[0, head]),
        f"  k = {src_name} @ W_K[:, {cols}] + b_K[{cols}]   (keys, K) = {k.shape}", Table(k, keys, per_head["k"]),
        agree(f"the model's k[:, {head}]", k, k_model[0, head]),
        f"  v = {src_name} @ W_V[:, {cols}] + b_V[{cols}]   (keys, K) = {v.shape}", Table(v, keys, per_head["v"]),
        agree(f"the model's v[:, {head}]", v, v_model[0, head])]))

    # Steps 3 to 6: scores, scaling, mask, softmax.
    scores = q @ k.T  # (T, S)
    steps.append(Step("3. scores = q @ k^T: row t, column s is the dot product q_t . k_s   (rows, keys) "
                      f"= {scores.shape}", parts=[Table(scores, rows, keys)]))
    scaled = scores / math.sqrt(K)  # (T, S)
    steps.append(Step(f"4. Divided by sqrt(K) = sqrt({K}) = {math.sqrt(K):.4g}, so the scores of a random "
                      f"head have about unit size whatever K is (scripts/lab_scaling.py shows why):",
                      parts=[Table(scaled, rows, keys)]))
    allowed = np.broadcast_to(mask, P_model.shape)[0, head] if mask is not None else np.ones(scaled.shape, bool)  # (T, S)
    masked = np.where(allowed, scaled, MASKED)  # (T, S)
    if kind == "decoder":
        why = ("the causal mask: position t may read positions 0..t only, never the future it has "
               "not written yet" if model.causal else "model.causal is false: no causal mask, every "
               "position may read every other, the future included")
    else:
        why = "the padding mask only: every real source token may be read"
    n_masked = int((~allowed).sum())
    steps.append(Step(f"5. The mask: {why}. {n_masked} of {allowed.size} scores are set to "
                      f"-1e9 (MASKED) before the softmax, so their weight becomes exactly 0 and each row still sums to 1.",
                      parts=[Table(masked, rows, keys)] if n_masked else []))
    P = softmax(masked)  # (T, S)
    steps.append(Step("6. P = softmax of each row: exp(score - row max) / sum of the row's exps. "
                      "These are the attention weights `minitx attention` draws.", parts=[
        Table(P, rows, keys), f"    row sums: {' '.join(f'{s:.3f}' for s in P.sum(axis=1)[:MAX_ROWS])}",
        agree(f"the model's .attn[:, {head}]", P, P_model[0, head])]))

    # Step 7: the weighted sum of the values.
    head_out = P @ v  # (T, K)
    t = int(P.max(axis=1).argmin())  # the row that mixes the most values
    if len(keys) > 1:
        first, second = np.argsort(-P[t])[:2]
        example = (f"    e.g. row {rows[t]} = {P[t, first]:.3f} x v[{first}] + {P[t, second]:.3f} x v[{second}] + ...: "
                   f"its two largest weights, on the values of key {first} ({keys[first]}) and key {second} ({keys[second]})")
    else:  # one key: the output of a decoder that wrote </s> at once
        example = f"    e.g. row {rows[t]} = {P[t, 0]:.3f} x v[0]: its only key, {keys[0]}"
    steps.append(Step(f"7. head_out = P @ v: each row is a weighted average of the value rows   (rows, K) = {head_out.shape}", parts=[
        example,
        Table(head_out, rows, per_head["v"]),
        agree(f"the model's attention core output[:, {head}]", head_out, out_model[0, head])]))

    # Step 8: the concatenation.
    concat = f64(out_model[0]).transpose(1, 0, 2).reshape(len(rows), D)  # (T, D): merge_heads
    step = Step(f"8. The concatenation of all {H} heads, (rows, D) = {concat.shape}: head {head}'s output "
                f"fills columns {cols} (head g fills g*K to (g+1)*K - 1)")
    if D <= MAX_COLS:
        step.parts += ["  concat, every head:", Table(concat, rows, concat_cols)]
    else:
        step.parts += [f"  concat[:, {cols}]:", Table(concat[:, c], rows, concat_cols[c])]
    step.parts.append(agree(f"our head_out, as concat[:, {cols}]", head_out, concat[:, c]))
    steps.append(step)

    # Step 9: W_O's block.
    W_O_rows = W["output"][c]  # (K, D)
    steps.append(Step(f"9. W_O is (D, D) = ({D}, {D}); rows {cols} are the ones that meet this head's columns "
                      f"of concat, because concat @ W_O = sum over heads g of head_out_g @ W_O[g-th K rows]. "
                      f"W_O[{cols}, :] (K, D) = {W_O_rows.shape}:", parts=[Table(W_O_rows, concat_cols[c], dims)]))

    # Step 10: this head's share of the output, and the whole output.
    share = head_out @ W_O_rows  # (T, D)
    # Every head's share at once: head g's (T, K) output times its (K, D) block of W_O.
    shares = f64(out_model[0]) @ W["output"].reshape(H, K, D)  # (H, T, K) @ (H, K, D) -> (H, T, D)
    y = shares.sum(axis=0) + b["output"]  # (T, D)
    steps.append(Step(f"10. This head's share of the attention's output: head_out @ W_O[{cols}, :]   "
                      f"(rows, D) = {share.shape}", parts=[
        Table(share, rows, dims), f"  The attention's output y = sum of the {H} heads' shares + b_O:",
        Table(y, rows, dims), agree("the model's MultiHeadAttention output (concat @ W_O + b_O)", y, y_model[0])]))

    # Step 11: the residual connection.
    x_new64 = f64(x_new[0])  # (L, D)
    if pre:
        steps.append(Step("11. The residual connection adds y to the stream (pre-norm; no dropout in evaluation): "
                          "x_new = x + y. So y is the change made to each token's vector, and this head's share "
                          "(step 10) is its part of that change. x_new, what the next sub-layer reads:", parts=[
            Table(x_new64, rows, dims), agree("the change the model made: the next norm's input x_new minus x", y, x_new64 - x)]))
    else:
        steps.append(Step("11. The residual connection (post-norm): x_new = norm(x + y). The head's share "
                          "enters through x + y, and the layer norm then rescales each whole row. x_new:", parts=[
            agree("the sum the model's norm received", x + y, f64(x_plus_y[0])), Table(x_new64, rows, dims),
            agree("the model's x_new, its norm's output", layer_norm(x + y, norm), x_new64)]))
    return Walk("forward", header, steps)


def explain(model, task, cfg, text, kind="cross", layer=0, head=0, run_name="the run"):
    """The step-by-step account of one head on one input, as the terminal's lines."""
    return text_lines(walk_forward(model, task, cfg, text, kind, layer, head, run_name))


def explain_command(run_dir, text, kind="cross", layer=0, head=0):
    from minitx.inference import load_run

    cfg, model, task = load_run(run_dir, need_data=False, fused=False)
    print("\n".join(explain(model, task, cfg, text, kind, layer, head, run_name=str(run_dir))))
