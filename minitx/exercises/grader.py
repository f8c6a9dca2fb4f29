"""Grade one implementation of an exercise: the learner's file, or a plain layer with a bug.

For every case of the exercise we build the layer, give it minitx's parameters, and check that
its forward computes what minitx's plain layer computes. Then we draw a random upstream
gradient G and run backward(G), and compare every gradient it produces, of each parameter and
of each float input, with two things:

    vs numeric   central differences of sum(forward(...) * G), in float64 (minitx.gradcheck),
    vs minitx    the same gradient from minitx's plain layer,

both as the norm-based relative error of minitx.gradcheck, passing at THRESHOLD = 1e-6. A loss
already is a scalar, so for the cross-entropy we differentiate the loss itself. G is random, never
all ones: softmax rows sum to 1, so under a plain sum loss the true gradient of a softmax is 0,
and a softmax backward that subtracts the plain mean of dout where it should subtract
sum(dout * P) gives 0 as well and would pass. (One that drops that term altogether gives P, and
even a sum loss catches it.)

Under the table, each wrong gradient gets a sentence: what its numbers say (still all zero,
off by a constant factor, exactly the gradient of one of the exercise's well-known mistakes,
which we compute by planting that mistake in minitx's layer), then a hint.

A learner's file can fail in ways a table cannot show: a syntax error, an exception, a gradient
of the wrong shape, a forward that no longer matches, a forward or backward that writes into the
arrays it was handed (we hand them over read-only, and fresh for every call, so the grader is
never fooled by it). Each is a UserError, one line naming the file (and the line, where there is
one) and the problem. room.py runs all of this in a child process, for what a file can do to the
process itself.
"""

import fnmatch
import re
import textwrap
import traceback
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minitx.errors import UserError
from minitx.exercises import breakit
from minitx.gradcheck import THRESHOLD, numerical_gradient, rel_error

FORWARD_TOLERANCE = 1e-9  # the learner's forward against minitx's, relative to the output's size

# Called with the name of each step of the learner's code as we enter it ("LayerNorm.forward").
# room.py sets it in the child process, so that a file that ends the process, or never returns,
# can be told which step it was in; in-process it stays None.
report_stage = None


@dataclass
class Row:
    """One gradient: how far it is from the finite differences and from minitx's, and the
    sentence we print under the table when it is wrong. The arrays are kept while we write that
    sentence; room.py sends only the numbers and the sentence across."""

    name: str
    shape: tuple
    vs_numeric: float
    vs_plain: float
    note: str = ""
    mine: np.ndarray = field(default=None, repr=False)
    numeric: np.ndarray = field(default=None, repr=False)
    plain: np.ndarray = field(default=None, repr=False)

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
    upstream: np.ndarray = field(default=None, repr=False)


def result_to_json(result):
    rows = [{"name": r.name, "shape": list(r.shape), "vs_numeric": r.vs_numeric, "vs_plain": r.vs_plain, "note": r.note} for r in result.rows]
    return {"label": result.label, "forward_diff": result.forward_diff, "rows": rows}


def result_from_json(data):
    rows = [Row(r["name"], tuple(r["shape"]), r["vs_numeric"], r["vs_plain"], r["note"]) for r in data["rows"]]
    return Result(data["label"], rows, data["forward_diff"])


def shape_text(shape):
    return "x".join(map(str, shape)) or "scalar"


def parse_shape(text):
    return tuple(int(n) for n in re.findall(r"\d+", text))


@contextmanager
def learner_code(path, what):
    """Run the learner's code; anything it raises becomes a one-line UserError naming the file,
    the deepest line of it the error passed through, and the problem. We catch BaseException,
    not only Exception: a file may raise SystemExit, KeyboardInterrupt or its own subclass, and
    each deserves its line too. With path None (a plain layer in break-it mode) exceptions are
    minitx's bugs and keep their traceback."""
    if path is None:
        yield
        return
    if report_stage:
        report_stage(what)
    try:
        yield
    except UserError:
        raise
    except SystemExit as e:
        # sys.exit() in the learner's file would otherwise end the grader without a word.
        raise UserError(f"{path}: {what} called sys.exit({e.code!r}); the grader needs the file to define its class and return") from None
    except BaseException as e:  # not only Exception: see the docstring
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == str(path)]
        where = f"line {frames[-1].lineno}, in {frames[-1].name}: " if frames else ""
        line = frames[-1].line if frames else ""
        plain = why_numpy_refused(e, line, what)
        if plain:
            raise UserError(f"{path}: {where}{plain}") from None
        message = " ".join(str(e).split())
        raise UserError(f"{path}: {where}{what} raised {type(e).__name__}{': ' + message if message else ''}") from None


def why_numpy_refused(e, line, what):
    """For two errors NumPy words in its own terms, the sentence a learner needs; else None.

    A parameter's gradient of the wrong shape, added with `self.grads[key] += ...`, stops NumPy
    with "non-broadcastable output operand" or "could not be broadcast"; we name the key and both
    shapes. An array the grader handed over read-only (every input of forward, and dout) that the
    code writes into stops NumPy with "read-only"; we say which rule that breaks."""
    if not isinstance(e, ValueError):
        return None
    text = str(e)
    key = re.search(r"grads\[\s*(['\"])(.+?)\1\s*\]\s*(?:\+|-)=", line or "")
    into = re.search(r"output operand with shape (\([\d, ]*\)) doesn't match the broadcast shape (\([\d, ]*\))", text)
    apart = re.search(r"could not be broadcast together with shapes (\([\d,]*\)) (\([\d,]*\)) ", text + " ")
    if key and (into or apart):
        have, got = (into.group(1), into.group(2)) if into else (apart.group(1), apart.group(2))
        name = key.group(2)
        return (f"{what} adds an array of shape {shape_text(parse_shape(got))} into grads[{name!r}], which has {name}'s shape, "
                f"{shape_text(parse_shape(have))}: a gradient has the shape of what it is the gradient of")
    if "read-only" in text:
        target = re.match(r"\s*([A-Za-z_]\w*)\s*(?:\[.*\])?\s*(?:\*\*|//|[-+*/@%])?=(?!=)", line or "")
        array = f"`{target.group(1)}`" if target else "an array it was handed"
        if what.endswith(".backward"):
            return (f"{what} writes into {array}; a backward must not change what it was handed (dout, and the inputs its "
                    "forward kept), since the caller may still hold them, so the grader hands them over read-only: make a new "
                    "array (`dx = dout * P`, not `dout *= P`)")
        return (f"{what} writes into {array}; a forward must not change its inputs, since the caller still holds them, so "
                "the grader hands them over read-only: make a new array (`x = x - m`, not `x -= m`)")
    return None


def handed(arrays):
    """Fresh read-only copies of the arrays we hand the learner's code: whatever it does, the
    grader's own arrays stay as they were, and a write into one stops at the line that does it."""
    fresh = []
    for a in arrays:
        if isinstance(a, np.ndarray):
            a = a.copy()
            a.flags.writeable = False
        fresh.append(a)
    return fresh


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


def todo_lines(text, shipped):
    """How many of the skeleton's TODO lines (code lines carrying a `# TODO` comment) are still
    in the learner's text exactly as shipped. A line the learner rewrote but whose comment they
    kept, or a comment of their own that mentions TODO, is not one."""
    left = [line.strip() for line in text.splitlines()]
    count = 0
    for line in shipped.splitlines():
        if re.search(r"#\s*TODO", line) and line.strip() in left:
            left.remove(line.strip())
            count += 1
    return count


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


def upstream(case, shape):
    """The random upstream gradient G for a case whose output has `shape` (None for a loss)."""
    if case.loss:
        return None
    G = np.random.default_rng(99).standard_normal(shape)
    if case.upstream_mask is not None:
        G = G * case.upstream_mask
    return G


def backward_gradients(layer, case, args, G, who, path):
    """Run forward then backward(G) once on a zeroed layer; return {name: gradient} for every
    parameter and every checked input, after checking that each has its array's shape. The
    learner's layer (path not None) gets read-only copies of the inputs and of G."""
    if path is not None:
        args = handed(args)
        G = None if G is None else handed([G])[0]
    with learner_code(path, f"{who}.forward"):
        if hasattr(layer, "zero_grad"):
            layer.zero_grad()
        layer.forward(*args)
    with learner_code(path, f"{who}.backward"):
        returned = layer.backward() if case.loss else layer.backward(G if path is not None else G.copy())
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
        y = layer.forward(*(handed(args) if path is not None else args))
    if np.shape(y) != np.shape(expected):
        raise UserError(f"{path}: {who}.forward returned {describe(np.asarray(y))}, but minitx's gives {shape_text(np.shape(expected))}; restore the forward (--reset keeps a backup)")
    forward_diff = float(np.abs(np.asarray(y) - expected).max() / max(np.abs(expected).max(), 1.0))
    if path is not None and forward_diff > FORWARD_TOLERANCE:
        raise UserError(f"{path}: {who}.forward no longer computes what minitx's does (they differ by up to {forward_diff:.1e}); "
                        "the grader needs the forward as given: undo the change, or start again with --reset, which keeps your file as a backup")

    G = upstream(case, np.shape(expected))
    theirs = backward_gradients(case.plain, case, args, G, type(case.plain).__name__, None)
    mine = backward_gradients(layer, case, args, G, who, path)

    # The finite differences nudge the grader's own arrays in place (the parameters, and the
    # inputs in `args`); the learner's forward reads fresh read-only copies of the inputs.
    def output():
        return layer.forward(*(handed(args) if path is not None else args))

    if case.loss:
        def loss():
            return float(output())
    else:
        def loss():
            return float((output() * G).sum())
    arrays = dict(getattr(layer, "params", {}))
    arrays.update({name: case.inputs[name] for name in case.checked})
    rows = []
    with learner_code(path, f"{who}.forward"):
        for name, x in arrays.items():
            numeric = numerical_gradient(loss, x)
            rows.append(Row(name, x.shape, rel_error(mine[name], numeric), rel_error(mine[name], theirs[name]),
                            mine=mine[name], numeric=numeric, plain=theirs[name]))
    return Result(case.label, rows, forward_diff, G)


def diagnose(row):
    """A sentence about what is wrong with this gradient, where the numbers tell us."""
    if row.vs_numeric <= THRESHOLD:
        return "It matches the finite differences of this forward but not minitx's gradient: the forward computes something else."
    if not np.all(np.isfinite(row.mine)):
        return "It holds NaN or infinite values: something overflowed, or divided by zero."
    if not np.any(row.mine):
        return "Still all zero: not written yet, or never added into the gradient."
    c = float((row.mine * row.numeric).sum() / (row.mine * row.mine).sum())
    if rel_error(c * row.mine, row.numeric) <= THRESHOLD:
        ratio = f" (1/{1 / c:.3g})" if abs(c) < 1 else ""
        return f"Right up to a constant factor: yours times {c:.3g}{ratio} would be right (a scale missed, or applied twice)."
    return ""


def mistake_gradients(exercise, index, G, bug):
    """The gradients minitx's own layer gives for case `index` with `bug` planted in it."""
    case = exercise.cases()[index]
    breakit.plant(case.plain, bug.edits, bug.name, bug.target)
    return backward_gradients(case.plain, case, list(case.inputs.values()), G, type(case.plain).__name__, None)


def known_mistake(exercise, index, result, row, computed):
    """The exercise's well-known mistake whose gradient this row's is, exactly; else None.
    computed caches each mistake's gradients, which we compute only when a row is wrong."""
    for bug in exercise.bugs + exercise.lookalikes:
        if (index, bug.name) not in computed:
            computed[index, bug.name] = mistake_gradients(exercise, index, result.upstream, bug)
        theirs = computed[index, bug.name].get(row.name)
        if theirs is not None and theirs.shape == row.mine.shape and rel_error(theirs, row.plain) > THRESHOLD and rel_error(row.mine, theirs) <= THRESHOLD:
            return bug
    return None


def explain(results, exercise, planted=None):
    """Write the sentence under the table for every wrong row: what the numbers say, then the
    hint. A gradient that is exactly one of the exercise's well-known mistakes (its bugs, and
    its lookalikes from earlier exercises) is named as that mistake, with the hint that fits it.
    Break-it mode passes the bug it planted instead, and gets that bug's hint."""
    computed = {}
    for index, result in enumerate(results):
        for row in result.rows:
            if row.ok:
                continue
            bug = None
            if planted is None and row.vs_numeric > THRESHOLD and np.all(np.isfinite(row.mine)):
                bug = known_mistake(exercise, index, result, row, computed)
            if bug is not None:
                row.note = (f"It is exactly what minitx's layer gives when {bug.mistake} (`--break {bug.name}` plants that mistake). "
                            f"{bug.hint}")
            else:
                hint = planted.hint if planted is not None else hint_for(row.name, exercise.hints)
                row.note = " ".join(s for s in (diagnose(row), hint) if s)
    return results


def wrap(text, width=100, **indents):
    """textwrap.fill for our sentences, which never breaks a word at its hyphen."""
    return textwrap.fill(text, width, break_on_hyphens=False, **indents)


def hint_for(name, hints):
    if name in hints:
        return hints[name]
    return next((text for pattern, text in hints.items() if fnmatch.fnmatch(name, pattern)), "")


def format_results(results):
    """The table (one per case when an exercise has several), then the sentence for each wrong row."""
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
                notes.append(wrap(f"{label}: {r.note}", initial_indent="  ", subsequent_indent="    "))
        lines.append("")
    if notes:
        lines += ["What is wrong, and a hint:"] + notes + [""]
    return "\n".join(lines)


def counts(results):
    rows = [r for result in results for r in result.rows]
    return sum(r.ok for r in rows), len(rows)


def grade_file(exercise, path):
    """Check the learner's file on every case of the exercise, with the sentences under the
    table written; UserError if it cannot be run."""
    path = Path(path)
    cls = load_class(path, exercise.class_name)
    results = []
    for case in exercise.cases():
        with learner_code(path, case.call):
            layer = case.build(cls)
        results.append(check_case(case, layer, path, exercise.class_name))
    return explain(results, exercise)
