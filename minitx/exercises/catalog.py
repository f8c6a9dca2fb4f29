"""The exercises, in the order a learner meets them, and the mistakes break-it mode plants.

Each Exercise names the class a learner's file must define, how the grader builds it, the
inputs it is checked on (float64, with S != T wherever two lengths meet, masks and padding where
the layer has them), one hint sentence per gradient, the plain minitx code that solves it, and
its planted bugs. The cases build fresh layers every time, from fixed seeds, so a check is
repeatable and the learner's layer and minitx's start from the same parameters.
"""

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from minitx.exercises import reference
from minitx.exercises.breakit import Edit
from minitx.model import Decoder, EncoderLayer, PostNormEncoderLayer, padding_mask
from minitx.nn import CrossEntropy, Embedding, LayerNorm, Linear, MultiHeadAttention, ScaledDotProductAttention

F64 = np.float64


@dataclass
class Case:
    """One configuration an exercise is checked on."""

    label: str  # names the variant when an exercise has several ("pre-norm"), else ""
    plain: object  # minitx's plain layer, float64, with the parameters the learner's will get
    build: Callable  # build(cls) -> the learner's layer, built from the class in their file
    call: str  # how the grader builds it, shown when that fails: "Linear(5, 3, rng)"
    inputs: dict  # forward's arguments by name, in order
    checked: tuple  # the float inputs whose gradients backward returns, in that order
    upstream_mask: object = None  # where the random upstream gradient may be non-zero
    loss: bool = False  # forward returns a scalar loss, and backward takes no upstream gradient


@dataclass(frozen=True)
class Bug:
    """A well-known mistake, planted in a copy of the plain layer's method in memory."""

    name: str
    target: str  # the attribute of the case's plain layer whose method we replace ("" = the layer)
    edits: tuple  # breakit.Edit(function, text found once in its source, what we put in its place)
    mistake: str  # one line: what the planted code does wrong
    lesson: str  # what the failing rows teach
    hint: str  # for a learner whose gradient is exactly this bug's: what to change


@dataclass(frozen=True)
class Exercise:
    name: str
    class_name: str  # the class the learner's file defines
    what: str  # one line for the list
    plain: str  # the minitx layer we compare with, for the grader's header
    cases: Callable  # () -> [Case]
    hints: dict  # gradient name (or a glob such as "*.key.*") -> one sentence
    solution: tuple  # (function, [text of the lines to point at]) for --solution
    bugs: tuple = field(default=())
    # Mistakes of an earlier exercise that show in this one's gradients: the grader recognises
    # them in a learner's gradient as it does the exercise's own bugs; --break does not list them.
    lookalikes: tuple = field(default=())


def randomised(layer, rng):
    """Give every parameter random values: ones and zeros (a fresh gamma, every bias) would hide
    mistakes such as confusing dgamma with dbeta. Matrices get variance 1/fan_in, so attention
    scores stay moderate and the softmax unsaturated."""
    for name, p in layer.params.items():
        if p.ndim == 2:
            p[...] = rng.standard_normal(p.shape) / np.sqrt(p.shape[0])
        else:
            p[...] = rng.standard_normal(p.shape) * 0.5 + (1.0 if name.endswith("gamma") else 0.0)
    return layer


def source_mask(rng, B, S, lengths):
    """A padding mask (B, 1, 1, S): sequence b has lengths[b] real tokens."""
    ids = rng.integers(1, 9, size=(B, S))
    for b, n in enumerate(lengths):
        ids[b, n:] = 0
    return padding_mask(ids, 0)


def linear_cases():
    rng = np.random.default_rng(10)
    plain = randomised(Linear(5, 3, rng, F64), rng)
    x = rng.standard_normal((2, 4, 5))
    return [Case("", plain, lambda cls: cls(5, 3, np.random.default_rng(0)), "Linear(5, 3, rng)", {"x": x}, ("x",))]


def softmax_cases():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 2, 3, 5)) * 2  # (B, H, T, S), spread enough that P is uneven
    return [Case("", reference.SoftmaxInAttention(), lambda cls: cls(), "Softmax()", {"x": x}, ("x",))]


def attention_cases():
    rng = np.random.default_rng(12)
    B, H, T, S, K = 2, 2, 3, 5, 4
    q, k, v = rng.standard_normal((B, H, T, K)), rng.standard_normal((B, H, S, K)), rng.standard_normal((B, H, S, K))
    mask = source_mask(rng, B, S, [5, 3])  # the second sequence's last two keys are padding
    inputs = {"q": q, "k": k, "v": v, "mask": mask}
    return [Case("", ScaledDotProductAttention(), lambda cls: cls(), "ScaledDotProductAttention()", inputs, ("q", "k", "v"))]


def heads_cases():
    rng = np.random.default_rng(13)
    plain = reference.HeadsInMultiHeadAttention(6, 2, rng)
    randomised(plain, rng)
    inputs = {"x_q": rng.standard_normal((2, 3, 6)), "x_kv": rng.standard_normal((2, 4, 6)), "mask": source_mask(rng, 2, 4, [4, 2])}
    return [Case("", plain, lambda cls: cls(6, 2, np.random.default_rng(0)), "HeadsAndOutput(6, 2, rng)", inputs, ("x_q", "x_kv"))]


def layernorm_cases():
    rng = np.random.default_rng(14)
    plain = randomised(LayerNorm(6, dtype=F64), rng)
    x = rng.standard_normal((2, 3, 6)) * 3 + 1  # rows far from mean 0 and variance 1
    return [Case("", plain, lambda cls: cls(6), "LayerNorm(6)", {"x": x}, ("x",))]


def embedding_cases():
    rng = np.random.default_rng(15)
    plain = randomised(Embedding(6, 4, 0, rng, F64), rng)
    ids = np.array([[2, 2, 3, 0], [2, 5, 0, 0]])  # id 2 three times, padding (id 0) three times
    # In the model nothing at a padding position reaches the loss, so the upstream gradient
    # is 0 there; checking under that rule is what lets finite differences agree with minitx.
    return [Case("", plain, lambda cls: cls(6, 4, 0, np.random.default_rng(0)), "Embedding(6, 4, 0, rng)", {"ids": ids}, (),
                 upstream_mask=(ids != 0)[..., None])]


def cross_entropy_cases():
    rng = np.random.default_rng(16)
    logits = rng.standard_normal((2, 5, 7)) * 3  # (B, T, V)
    targets = rng.integers(1, 7, size=(2, 5))
    targets[1, 2:] = 0  # padding: 7 real positions out of 10
    return [Case("", CrossEntropy(0, 0.1), lambda cls: cls(0, 0.1), "CrossEntropy(0, 0.1)", {"logits": logits, "targets": targets},
                 ("logits",), loss=True)]


def cross_attention_cases():
    rng = np.random.default_rng(17)
    plain = randomised(reference.CrossAttentionStack(2, 6, 2, rng), rng)
    inputs = {"y": rng.standard_normal((2, 3, 6)), "memory": rng.standard_normal((2, 4, 6)), "mask": source_mask(rng, 2, 4, [4, 3])}
    return [Case("", plain, lambda cls: cls(2, 6, 2, np.random.default_rng(0)), "CrossAttentionStack(2, 6, 2, rng)", inputs, ("y", "memory"))]


def residual_cases():
    cases = []
    for pre in (True, False):
        rng = np.random.default_rng(18)
        layer_class = reference.ResidualFeedForward if pre else reference.PostNormResidualFeedForward
        plain = randomised(layer_class(6, 8, rng), rng)
        x = rng.standard_normal((2, 3, 6))
        cases.append(Case("pre-norm" if pre else "post-norm", plain, lambda cls, pre=pre: cls(6, 8, pre, np.random.default_rng(0)),
                          f"ResidualBlock(6, 8, {pre}, rng)", {"x": x}, ("x",)))
    return cases


# The two softmax mistakes learners make most, planted where minitx's softmax backward lives,
# inside ScaledDotProductAttention: in the softmax exercise's wrapper ("attention") and, as
# lookalikes, in the attention exercise itself.
SOFTMAX_LINE = "dscores = P * (dP - (dP * P).sum(axis=-1, keepdims=True))"
SOFTMAX_BUGS = (
    Bug("softmax-no-row-sum", "attention", (Edit(ScaledDotProductAttention.backward, SOFTMAX_LINE, "dscores = P * dP"),),
        "the softmax backward drops its `- sum(dP * P)` term",
        "Every weight in a row depends on every score of the row, because they share one denominator. The dropped "
        "term is that coupling; it is also what makes each row of dscores sum to 0, as it must, since adding a "
        "constant to a row of scores changes nothing. This mistake shows even under a plain sum loss, where dP is all "
        "ones: the true gradient is then 0 and the bug gives P. Subtracting the plain mean of dP instead "
        "(softmax-row-mean) does not show there.",
        "That is the diagonal term alone, P times the gradient arriving at P. Each weight shares its row's denominator "
        "with every other weight of the row, so the softmax backward needs a second term for that coupling: one number "
        "per row, times P."),
    Bug("softmax-row-mean", "attention",
        (Edit(ScaledDotProductAttention.backward, SOFTMAX_LINE, "dscores = P * (dP - dP.mean(axis=-1, keepdims=True))"),),
        "the softmax backward subtracts the plain mean of dP where it should subtract sum(dP * P)",
        "The number each row subtracts is sum(dP * P): dP's mean weighted by the row's own weights, which is its plain "
        "mean only where P is uniform. Under a plain sum loss this mistake hides: with dP all ones the true gradient is "
        "0 (rows of P always sum to 1), and the plain mean gives exactly 0 too. That is why the check uses a random "
        "upstream gradient.",
        "Yours subtracts the plain mean of the gradient arriving at P in each row; the number to subtract is the "
        "mean weighted by P itself, sum(dP * P) (in exercise 2, dP is dout): the docstring's second term, summed over j."),
)

EXERCISES = [
    Exercise(
        "linear", "Linear", "Linear.backward: y = x @ W + b", "Linear (minitx/nn/layers.py)", linear_cases,
        {
            "W": "W is shared by all B * L positions, so dW collects one contribution from every row of x_rows and dout_rows; one matrix product adds them all.",
            "b": "b is added at every position, so db collects dout from every row: a sum, not a mean.",
            "x": "Row n of x reaches only row n of y, through W: dx_rows has one row per position, with the shape of x_rows.",
        },
        ((Linear.backward, ["self.grads[\"W\"] +=", "self.grads[\"b\"] +=", "dx_rows = "]),),
        (Bug("bias-averaged", "", (Edit(Linear.backward, "dout_rows.sum(axis=0)", "dout_rows.mean(axis=0)"),),
             "db averages dout over the positions instead of adding them up",
             "A parameter used at N positions receives N contributions, and they add: the bias gradient is a sum over "
             "every position of every sequence. Averaging shrinks it by N = B * L, and the loss's own mean over tokens "
             "is already in dout. Only b fails: dW and dx never touch the bias.",
             "Add dout up over the rows instead of averaging it: a parameter used at N positions collects N "
             "contributions, and the mean over the tokens is already in dout."),),
    ),
    Exercise(
        "softmax", "Softmax", "Softmax.backward: P = softmax(x) along each row",
        "softmax backward inside ScaledDotProductAttention (minitx/nn/attention.py), with identity keys and values",
        softmax_cases,
        {"x": "Each P[j] shares its row's denominator with every other weight, so besides the diagonal term P * dout, dx needs a term for that coupling: one number per row, times P."},
        ((ScaledDotProductAttention.backward, ["dscores = P * (dP - "]),),
        SOFTMAX_BUGS,
    ),
    Exercise(
        "attention", "ScaledDotProductAttention", "ScaledDotProductAttention.backward, with the mask",
        "ScaledDotProductAttention (minitx/nn/attention.py)", attention_cases,
        {
            "q": "scores = q @ k^T / sqrt(K), so dq is dscores times k with the 1/sqrt(K) kept; if dv is right and dq is not, look at the softmax step (exercise 2).",
            "k": "dk has one row per key, S of them: dscores with its T and S axes swapped, times q, with the same 1/sqrt(K) as dq.",
            "v": "out = P @ v: each value row reaches every query's output through that query's weight, so dv is P with T and S swapped, times dout.",
        },
        ((ScaledDotProductAttention.backward, ["dP = dout @ ", "dv = P.transpose", "dscores = ", "dq = ", "dk = "]),),
        (
            Bug("attention-no-scale", "",
                (Edit(ScaledDotProductAttention.backward, "dq = dscores @ k / math.sqrt(K)", "dq = dscores @ k"),
                 Edit(ScaledDotProductAttention.backward, "dk = dscores.transpose(0, 1, 3, 2) @ q / math.sqrt(K)",
                      "dk = dscores.transpose(0, 1, 3, 2) @ q")),
                "the backward forgets the 1/sqrt(K) the forward scaled the scores by",
                "Every constant of the forward reappears in the backward: scores = q @ k^T / sqrt(K), so dq and dk carry "
                "the same 1/sqrt(K). The grader's note that each is right up to a constant factor of 1/sqrt(K) = 0.5 "
                "points straight at it. dv is untouched, since v never meets the scale.",
                "scores = q @ k^T / sqrt(K): the forward's 1/sqrt(K) stays in the backward, in dq and in dk alike."),
            Bug("attention-mask-after-softmax", "",
                (Edit(ScaledDotProductAttention.forward, "scores = np.where(mask, scores, MASKED)", "scores = scores"),
                 Edit(ScaledDotProductAttention.forward, "P = softmax(scores)",
                      "P = softmax(scores) if mask is None else np.where(mask, softmax(scores), 0.0)")),
                "the forward zeroes masked weights after the softmax instead of masking the scores",
                "Zeroing weights after the softmax leaves each row summing to less than 1, so the forward no longer "
                "computes minitx's attention, and the masked scores still sit in the softmax's denominator, so they still "
                "change q's and k's gradients while the unchanged backward assumes they are constants. Masking the scores "
                "first gives those positions exactly zero weight and zero gradient, and keeps every row a distribution. "
                "dv matches the finite differences of this forward (the weights it uses are the ones in the cache) but "
                "not minitx's: the forward itself is wrong.",
                "Mask the scores before the softmax, as the forward does, and give dscores 0 where the mask is False."),
        ),
        tuple(replace(bug, target="") for bug in SOFTMAX_BUGS),
    ),
    Exercise(
        "heads", "HeadsAndOutput", "splitting and merging heads, and the output projection W_O",
        "MultiHeadAttention (minitx/nn/attention.py) with identity query, key and value projections", heads_cases,
        {
            "W_O": "concat's B * T positions are the rows here, as in exercise 1: dW_O collects one contribution from every position.",
            "b_O": "b_O is added at every position, so db_O collects dy from all B * T of them.",
            "x_q": "Splitting and merging only move numbers, so their backwards move each gradient back to where its number came from, which is what the other helper of the two does.",
            "x_kv": "x_kv was split into both the keys and the values, so it gets both of their gradients, each moved back to (B, S, D); a reshape without the transpose scrambles the heads.",
        },
        ((MultiHeadAttention.backward, ["dconcat = ", "dheads = ", "dx_kv = ", "dx_q = "]), (Linear.backward, ["self.grads[", "dx_rows = "])),
        (Bug("heads-reshape-without-transpose", "mha",
             (Edit(MultiHeadAttention.backward, "dheads = split_heads(dconcat, self.n_heads)",
                   "dheads = dconcat.reshape(dconcat.shape[0], self.n_heads, dconcat.shape[1], -1)"),),
             "merge_heads' backward reshapes to (B, H, T, K) without the transpose",
             "merge_heads is a transpose then a reshape, so its backward must undo both: split_heads reshapes to "
             "(B, T, H, K) and then swaps T and H. A bare reshape gives the right shape but the wrong numbers in it: "
             "gradients of one head's columns land in another head's rows. Shapes cannot catch this; only the values "
             "can. dW_O and db_O are computed before the split and stay right.",
             "merge_heads is a transpose then a reshape; its backward must undo both, and split_heads does exactly that."),),
    ),
    Exercise(
        "layernorm", "LayerNorm", "LayerNorm.backward: three paths from x to xhat",
        "LayerNorm (minitx/nn/layernorm.py)", layernorm_cases,
        {
            "gamma": "gamma scales xhat at every row, so dgamma collects dout * xhat from every row.",
            "beta": "beta is added at every row, so dbeta collects dout from every row.",
            "x": "The mean and rstd are functions of x as well: next to the direct path, rstd * dxhat, dx needs a term through the mean and one through the variance (docs/backward.md, section 7).",
        },
        ((LayerNorm.backward, ["self.grads[\"gamma\"]", "self.grads[\"beta\"]", "dxhat = ", "through_mean = ", "through_var = ", "dx = "]),),
        (Bug("layernorm-constant-stats", "",
             (Edit(LayerNorm.backward, "dx = rstd * (dxhat - through_mean - through_var)", "dx = rstd * dxhat"),),
             "dx treats the row's mean and variance as constants: dx = rstd * dxhat",
             "x reaches xhat three ways: directly, through the row's mean and through its variance. Dropping the last two "
             "keeps only the direct path. The two missing terms make each row of dx sum to zero and (but for eps) "
             "orthogonal to xhat, because shifting a row of x leaves xhat unchanged, and so, but for eps, does scaling "
             "it. dgamma and dbeta do not depend on those paths and stay right.",
             "That is the direct path alone: the row's mean and variance are functions of x too, and each adds a term "
             "(docs/backward.md, section 7)."),),
    ),
    Exercise(
        "embedding", "Embedding", "Embedding.backward: a scatter-add over repeated ids",
        "Embedding (minitx/nn/embedding.py)", embedding_cases,
        {"W": "Every position holding id v adds its row of dout into dW[v]; with a repeated id `dW[ids] += ...` keeps only one of them, so add without buffering."},
        ((Embedding.backward, ["np.add.at("]),),
        (Bug("embedding-fancy-index", "",
             (Edit(Embedding.backward, "np.add.at(self.grads[\"W\"], ids, dout * not_pad)", "self.grads[\"W\"][ids] += dout * not_pad"),),
             "the scatter-add is written `dW[ids] += dout`, which loses repeated ids",
             "NumPy runs `dW[ids] += dout` as `dW[ids] = dW[ids] + dout`: it reads every indexed row once, adds, and "
             "writes back, so when an id occurs three times the last write wins and two of the three contributions "
             "vanish. Only rows of repeated ids are wrong, which is why the grader's batch repeats one. np.add.at is "
             "unbuffered and adds every occurrence.",
             "`dW[ids] += ...` keeps one contribution per repeated id; np.add.at(dW, ids, ...) adds every one."),),
    ),
    Exercise(
        "cross_entropy", "CrossEntropy", "CrossEntropy.backward, with padding and label smoothing",
        "CrossEntropy (minitx/nn/loss.py)", cross_entropy_cases,
        {"logits": "Per position the gradient is the predicted distribution minus the smoothed target; the mean then divides by n, and padding positions get nothing."},
        ((CrossEntropy.backward, ["weight = ", "dlogits = "]),),
        (Bug("cross-entropy-batch-twice", "",
             (Edit(CrossEntropy.backward, "dlogits = (np.exp(logp) - q) * weight", "dlogits = (np.exp(logp) - q) * weight / n"),),
             "the loss gradient is divided by the number of tokens twice",
             "The loss is a mean over n tokens, so its gradient carries 1/n once. Dividing again is an easy slip when one "
             "function averages and its caller averages too; the gradient then shrinks with the batch, and so does the "
             "effective learning rate. The grader finds the gradient right up to a constant factor of 1/n.",
             "The mean over the n real tokens divides the gradient by n once; yours divides by n twice."),),
    ),
    Exercise(
        "cross_attention", "CrossAttentionStack", "cross-attention, its memory gradient summed over layers",
        "MultiHeadAttention (minitx/nn/attention.py) as cross-attention, summed over layers as in Decoder.backward (minitx/model.py)",
        cross_attention_cases,
        {
            "memory": "memory feeds every layer, and within each both the keys and the values: dmemory collects every one of those shares.",
            "y": "dy passes down through each layer's queries in turn, the last layer first, the way y went up.",
            "*.output.*": "The output projection is the forward's last call, so its backward comes first; what it returns still has to be split into heads.",
            "*.query.*": "The queries came from y: the query layer's backward takes the merged dq, fills its W and b, and gives this layer's dy.",
            "*.key.*": "The keys came from memory: the key layer's backward takes the merged dk, fills its W and b, and gives one share of dmemory.",
            "*.value.*": "The values came from memory: the value layer's backward takes the merged dv, fills its W and b, and gives another share of dmemory.",
        },
        ((MultiHeadAttention.backward, ["dconcat = ", "dheads = ", "dq, dk, dv = ", "dx_kv = ", "dx_q = "]),
         (Decoder.backward, ["dy, dmemory_layer = ", "dmemory = dmemory + "])),
        (Bug("memory-last-layer-only", "",
             (Edit(reference.CrossAttentionStack.backward, "dmemory = dmemory + dmemory_layer", "dmemory = dmemory_layer"),),
             "only the last memory gradient the backward loop sees is kept, not the sum",
             "Every decoder layer reads the same memory, so the encoder must receive the sum of every layer's share. "
             "Overwriting keeps only the share of the layer the backward loop visits last (the first decoder layer); "
             "every parameter row stays right, because each layer's own gradients do not depend on the memory's, and "
             "only the memory row fails. In a full model that error would flow into the whole encoder.",
             "Every layer reads the same memory, so dmemory adds up every layer's share instead of keeping the last."),),
    ),
    Exercise(
        "residual", "ResidualBlock", "a residual block around a feed-forward layer, pre- and post-norm",
        "EncoderLayer's feed-forward sub-layer, pre- and post-norm (minitx/model.py), dropout 0", residual_cases,
        {
            "x": "x reaches y by the skip and by the branch: dx is the gradient that reaches the sum (after the norm's backward in post-norm) plus the branch's backward of it.",
            "norm.*": "The norm sits before ff in pre-norm (call it on ff's input gradient) and after the sum in post-norm (call it first, on dout).",
            "ff.*": "ff's backward takes the gradient of its output: in pre-norm that is dout, in post-norm the norm's backward of dout.",
        },
        ((EncoderLayer.backward, ["df = self.dropout2", "dh = self.ff", "dx = dx + self.norm2"]),
         (PostNormEncoderLayer.backward, ["ds = self.norm2", "df = self.dropout2", "dx = ds + self.ff"])),
        (Bug("residual-no-pass-through", "",
             (Edit(reference.ResidualFeedForward.backward, "dx = dx + self.norm.backward(dh)", "dx = self.norm.backward(dh)"),
              Edit(reference.PostNormResidualFeedForward.backward, "dx = ds + self.ff.backward(df)", "dx = self.ff.backward(df)")),
             "dx keeps the branch's gradient and forgets the skip path's pass-through",
             "y = x + f(...) sends the gradient straight back to x as well as through f; that skip path is why deep "
             "stacks of residual layers train at all, since it carries the gradient past every layer unchanged. "
             "Forgetting it leaves every parameter right (they sit on the branch) and the input's gradient wrong, in "
             "both placements of the norm.",
             "y = x + f(...): the skip path hands its gradient to x unchanged, so dx adds it to the branch's gradient."),),
    ),
]

BY_NAME = {e.name: e for e in EXERCISES}
