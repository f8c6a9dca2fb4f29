"""Grade one implementation of an exercise: the learner's file, or a plain layer with a bug.

For every case of the exercise we build the layer, give it minitx's parameters, and check that
its forward computes what minitx's plain layer computes. Then we draw a random upstream
gradient G and run backward(G), and compare every gradient it produces, of each parameter and
of each float input, with two things:

    vs numeric   central differences of sum(forward(...) * G), in float64 (minitx.gradcheck),
    vs minitx    the same gradient from minitx's plain layer,

both as the norm-based relative error of minitx.gradcheck, passing at THRESHOLD = 1e-6. A loss
already is a scalar, so for the cross-entropy we differentiate the loss itself. G is random, never
all ones: softmax rows sum to 1, so a plain sum loss has a zero gradient there and would pass a
softmax backward that forgot half its terms.

A learner's file can fail in ways a table cannot show: a syntax error, an exception, a gradient
of the wrong shape, a forward that no longer matches. Each is a UserError, one line naming the
file (and the line, where there is one) and the problem.
"""

import fnmatch
import re
import textwrap
import traceback
import types
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from minitx.errors import UserError
from minitx.gradcheck import THRESHOLD, numerical_gradient, rel_error

FORWARD_TOLERANCE = 1e-9  # the learner's forward against minitx's, relative to the output's size


@dataclass
class Row:
    """One gradient: how far it is from the finite differences and from minitx's."""

    name: str
    shape: tuple
    vs_numeric: float
    vs_plain: float
    mine: np.ndarray
    numeric: np.ndarray

    @property
    def ok(self):
        return self.vs_numeric <= THRESHOLD and self.vs_plain <= THRESHOLD


@dataclass
class Result:
    """The rows of one case, and how far its forward was from minitx's (a learner's forward must
    be within FORWARD_TOLERANCE before we check anything; a planted bug's may not be)."""

    label: str
    rows: list
    forward_diff: float


def shape_text(shape):
    return "x".join(map(str, shape)) or "scalar"


@contextmanager
def learner_code(path, what):
    """Run the learner's code; an exception in it becomes a one-line UserError naming the file,
    the deepest line of it the error passed through, and the exception. With path None (a plain
    layer in break-it mode) exceptions are minitx's bugs and keep their traceback."""
    if path is None:
        yield
        return
    try:
        yield
    except UserError:
        raise
    except SystemExit as e:
        # sys.exit() in the learner's file would otherwise end the grader without a word.
        raise UserError(f"{path}: {what} called sys.exit({e.code!r}); the grader needs the file to define its class and return") from None
    except Exception as e:
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == str(path)]
        where = f"line {frames[-1].lineno}, in {frames[-1].name}: " if frames else ""
        message = " ".join(str(e).split())
        raise UserError(f"{path}: {where}{what} raised {type(e).__name__}: {message}") from None


def load_class(path, class_name):
    """The class `class_name` from the learner's file, which we compile and run ourselves (it is
    not on the import path, and a fresh module each time sees every edit)."""
    try:
        source = path.read_text()
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not valid UTF-8 (byte {e.start})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e.strerror})") from None
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as e:
        raise UserError(f"{path}: line {e.lineno}: {type(e).__name__}: {e.msg}") from None
    module = types.ModuleType(f"my_exercise_{path.stem}")
    module.__file__ = str(path)
    with learner_code(path, "running the file"):
        exec(code, module.__dict__)
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise UserError(f"{path}: no class {class_name} in it (the grader builds {class_name} from your file; --reset starts again)")
    return cls


def todo_lines(path):
    """How many lines of the learner's file still carry a TODO marker."""
    return len(re.findall(r"#\s*TODO", path.read_text()))


def copy_parameters(plain, layer, who):
    """Give the learner's layer minitx's parameter values, in place (children share the
    arrays, so this reaches them too)."""
    mine, theirs = getattr(layer, "params", {}), getattr(plain, "params", {})
    if set(mine) != set(theirs):
        raise UserError(f"{who}: its params are {', '.join(sorted(mine)) or 'none'}; the grader expects {', '.join(theirs) or 'none'}, as in the skeleton")
    for key, value in theirs.items():
        if not isinstance(mine[key], np.ndarray) or mine[key].shape != value.shape:
            raise UserError(f"{who}: parameter {key} is {describe(mine[key])}; the grader expects shape {shape_text(value.shape)}")
        mine[key][...] = value


def backward_gradients(layer, case, args, G, who, path):
    """Run forward then backward(G) once on a zeroed layer; return {name: gradient} for every
    parameter and every checked input, after checking that each has its array's shape."""
    with learner_code(path, f"{who}.forward"):
        if hasattr(layer, "zero_grad"):
            layer.zero_grad()
        layer.forward(*args)
    with learner_code(path, f"{who}.backward"):
        returned = layer.backward() if case.loss else layer.backward(G.copy())
    names = case.checked
    if not names:
        returned = ()  # an embedding's ids have no gradient: whatever backward returns is ignored
    elif len(names) == 1 and not isinstance(returned, tuple):
        returned = (returned,)
    if names and (not isinstance(returned, tuple) or len(returned) != len(names)):
        got = f"a tuple of {len(returned)}" if isinstance(returned, tuple) else type(returned).__name__
        raise UserError(f"{path}: {who}.backward returned {got}; it must return {', '.join('d' + n for n in names)}, the gradients of its inputs, in that order")
    gradients = {}
    for key, g in getattr(layer, "grads", {}).items():
        want = layer.params[key].shape
        if not isinstance(g, np.ndarray) or g.shape != want:
            raise UserError(f"{path}: after {who}.backward, grads[{key!r}] is {describe(g)}, but {key} is {shape_text(want)}: a gradient has the shape of what it is the gradient of")
        gradients[key] = g.astype(np.float64, copy=True)
    for name, g in zip(names, returned):
        want = case.inputs[name].shape
        if not isinstance(g, np.ndarray) or g.shape != want:
            raise UserError(f"{path}: {who}.backward returned d{name} of {describe(g)}, but {name} is {shape_text(want)}: a gradient has the shape of what it is the gradient of")
        gradients[name] = g.astype(np.float64, copy=True)
    return gradients


def describe(value):
    if isinstance(value, np.ndarray):
        return f"shape {shape_text(value.shape)}"
    return f"type {type(value).__name__}"


def check_case(case, layer, path=None, who=None):
    """Check `layer` against finite differences and against case.plain, minitx's layer.

    path: the learner's file, whose mistakes become UserErrors; None for a plain layer with a
    planted bug, whose forward may differ from minitx's (that is the bug, and we report it)."""
    who = who or type(layer).__name__
    args = list(case.inputs.values())
    copy_parameters(case.plain, layer, f"{path}: {who}" if path else who)
    expected = case.plain.forward(*args)
    with learner_code(path, f"{who}.forward"):
        y = layer.forward(*args)
    if np.shape(y) != np.shape(expected):
        raise UserError(f"{path}: {who}.forward returned {describe(np.asarray(y))}, but minitx's gives {shape_text(np.shape(expected))}; restore the forward (--reset keeps a backup)")
    forward_diff = float(np.abs(np.asarray(y) - expected).max() / max(np.abs(expected).max(), 1.0))
    if path is not None and forward_diff > FORWARD_TOLERANCE:
        raise UserError(f"{path}: {who}.forward no longer computes what minitx's does (they differ by up to {forward_diff:.1e}); "
                        "the grader needs the forward as given: undo the change, or start again with --reset, which keeps your file as a backup")

    G = None
    if not case.loss:
        G = np.random.default_rng(99).standard_normal(np.shape(expected))
        if case.upstream_mask is not None:
            G = G * case.upstream_mask
    theirs = backward_gradients(case.plain, case, args, G, type(case.plain).__name__, None)
    mine = backward_gradients(layer, case, args, G, who, path)

    if case.loss:
        def loss():
            return float(layer.forward(*args))
    else:
        def loss():
            return float((layer.forward(*args) * G).sum())
    arrays = dict(getattr(layer, "params", {}))
    arrays.update({name: case.inputs[name] for name in case.checked})
    rows = []
    with learner_code(path, f"{who}.forward"):
        for name, x in arrays.items():
            numeric = numerical_gradient(loss, x)
            rows.append(Row(name, x.shape, rel_error(mine[name], numeric), rel_error(mine[name], theirs[name]), mine[name], numeric))
    return Result(case.label, rows, forward_diff)


def diagnose(row):
    """A sentence about what is wrong with this gradient, where the numbers tell us."""
    if row.vs_numeric <= THRESHOLD:
        return "It matches the finite differences of this forward but not minitx's gradient: the forward computes something else."
    if not np.any(row.mine):
        return "Still all zero: not written yet, or never added into the gradient."
    c = float((row.mine * row.numeric).sum() / (row.mine * row.mine).sum())
    if rel_error(c * row.mine, row.numeric) <= THRESHOLD:
        ratio = f" (1/{1 / c:.3g})" if abs(c) < 1 else ""
        return f"Right up to a constant factor: yours times {c:.3g}{ratio} would be right (a scale missed, or applied twice)."
    return ""


def wrap(text, width=100, **indents):
    """textwrap.fill for our sentences, which never breaks a word at its hyphen."""
    return textwrap.fill(text, width, break_on_hyphens=False, **indents)


def hint_for(name, hints):
    if name in hints:
        return hints[name]
    return next((text for pattern, text in hints.items() if fnmatch.fnmatch(name, pattern)), "")


def format_results(results, hints):
    """The table (one per case when an exercise has several), then a hint for each wrong row."""
    width = max([len(r.name) for result in results for r in result.rows] + [len("gradient of")])
    lines, notes = [], []
    for result in results:
        if result.label:
            lines.append(result.label)
        lines.append(f"{'gradient of':<{width}}  {'shape':<9}  {'vs numeric':>10}  {'vs minitx':>10}  ok")
        for r in result.rows:
            lines.append(f"{r.name:<{width}}  {shape_text(r.shape):<9}  {r.vs_numeric:10.2e}  {r.vs_plain:10.2e}  {'yes' if r.ok else 'NO'}")
            if not r.ok:
                label = f"{result.label} {r.name}" if result.label else r.name
                text = " ".join(s for s in (diagnose(r), hint_for(r.name, hints)) if s)
                notes.append(wrap(f"{label}: {text}", initial_indent="  ", subsequent_indent="    "))
        lines.append("")
    if notes:
        lines += ["What is wrong, and a hint:"] + notes + [""]
    return "\n".join(lines)


def counts(results):
    rows = [r for result in results for r in result.rows]
    return sum(r.ok for r in rows), len(rows)


def grade_file(exercise, path):
    """Check the learner's file on every case of the exercise; UserError if it cannot be run."""
    cls = load_class(path, exercise.class_name)
    results = []
    for case in exercise.cases():
        with learner_code(path, case.call):
            layer = case.build(cls)
        results.append(check_case(case, layer, path, exercise.class_name))
    return results
