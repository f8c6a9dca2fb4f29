"""Write docs/exercises.md: the learner's guide to the exercises, with every printed output real.

    python scripts/make_exercises_doc.py

Each block that shows minitx's output is produced here by running the command line in a scratch
directory, in the order a learner would: list, start, reset, grade a half-done file and a solved
one, hit an error, look at a solution, break every planted bug. tests/test_exercises.py
regenerates the page and checks that it matches, so the doc cannot drift from the program.
"""

import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from exercise_solutions import solved  # noqa: E402
from minitx.cli import main  # noqa: E402
from minitx.exercises.catalog import BY_NAME, EXERCISES  # noqa: E402
from minitx.exercises.command import BUGS, skeleton  # noqa: E402
from minitx.exercises.room import SHOWN_LINES, TIME_LIMIT  # noqa: E402

DOC = ROOT / "docs" / "exercises.md"


def run(*argv):
    """A fenced block: the command as typed, then what it printed (standard output, then error)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["exercise", *argv])
    text = (out.getvalue() + err.getvalue()).rstrip("\n")
    shown = " ".join(argv)
    return f"```\n$ python -m minitx exercise {shown}".rstrip() + f"\n{text}\n```\n", status


def block(*argv, status=None):
    text, got = run(*argv)
    assert status is None or got == status, (argv, got, text)
    return text


def learner_writes(name, edit=None):
    """Put a solved skeleton (with one slip, if edit is given) where the learner's file goes."""
    text = solved(name, skeleton(BY_NAME[name]))
    if edit:
        changed = edit(text)
        assert changed != text, name
        text = changed
    Path("my_exercises", f"{name}.py").write_text(text)


def order_table():
    rows = ["| # | exercise | what you write | compared with minitx's |", "|---|---|---|---|"]
    for number, e in enumerate(EXERCISES, 1):
        rows.append(f"| {number} | `{e.name}` | {e.what} | {e.plain} |")
    return "\n".join(rows) + "\n"


def render():
    """The page, its commands run in a fresh folder, as a learner would run them in a shell
    where minitx's virtual environment is activated (so the commands minitx prints read
    `python -m minitx`, as the page's own do)."""
    with tempfile.TemporaryDirectory() as scratch:
        cwd, path = os.getcwd(), os.environ.get("PATH", "")
        os.chdir(scratch)
        os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + path
        try:
            return "".join(sections())
        finally:
            os.chdir(cwd)
            os.environ["PATH"] = path


def sections():
    yield """# Exercises: write the backward passes yourself

Can I write these backward passes myself, and find out exactly which gradient I got wrong? Yes:
minitx has nine exercises, from a linear layer to a residual block. In each you get a layer's
forward pass, exactly as minitx computes it, and write its backward pass. The grader then does
what `python -m minitx gradcheck` does for minitx's own layers: it nudges every input and every
parameter to measure the true gradients, compares yours with them and with minitx's own layer,
and names each gradient that is wrong, with a hint.

Every output on this page is real: `python scripts/make_exercises_doc.py` runs each command in a
scratch directory and writes this file, and a test checks that the page still matches.

## Start

Run the commands from any directory you like; your files go into a folder there. With no name,
`exercise` lists the exercises, easiest first, with the state of each:

"""
    yield block(status=0)
    yield """
An exercise is **started** by naming it. The first time, minitx copies the exercise's skeleton
into `my_exercises/` in the current directory (or the folder given with `--dir`) and grades it at
once, so that the first table already lists every gradient you have to write:

"""
    yield block("linear", status=1)
    yield """
Open `my_exercises/linear.py`. Its forward pass is minitx's own; its backward pass has one line
marked `TODO` per gradient, whose zeros only show the shape the gradient must have. The
docstrings say what each gradient is. Replace those lines, save, and run the same command again.

## Your work is never lost

The files in `my_exercises/` are yours: minitx never writes to them again on its own. Running
`exercise linear` a second time grades your file; it does not copy the skeleton over it. (In a
clone of minitx, `my_exercises/` is git-ignored.) To start an exercise again from its skeleton,
ask for it with `--reset`, which first keeps your file as `NAME.py.bak-N`, with N one more than
any backup already there, so no backup is ever overwritten:

"""
    Path("my_exercises", "linear.py").write_text(skeleton(BY_NAME["linear"]).replace("dW = np.zeros_like(W)", "dW = x_rows @ dout_rows"))
    yield block("linear", "--reset", status=0)
    yield """
A file that is still the untouched skeleton is not backed up again; `--reset` just says so.

## The order

Each exercise uses what the ones before it taught. The later ones call the backward passes of
earlier ones through minitx's own layers (the heads exercise calls minitx's attention backward,
for instance), so that each file is about one new idea:

"""
    yield order_table()
    yield """
1. **linear**: the pattern everything else repeats: a weight shared by many positions collects
   one gradient from each.
2. **softmax**: every output of a row depends on every input of the row; the backward needs a
   row sum, without ever building the Jacobian.
3. **attention**: two matrix products around exercise 2, a mask, and a constant 1/sqrt(K).
   Queries and keys have different lengths (T = 3, S = 5), so a misplaced transpose cannot hide.
4. **heads**: splitting and merging heads only move numbers, so their backwards move gradients
   back; the input read as both keys and values gets both gradients.
5. **layernorm**: x reaches its normalised self by three paths: directly, through the mean and
   through the variance.
6. **embedding**: a lookup's backward is a scatter-add, and the batch repeats an id.
7. **cross_entropy**: where the chain starts: label smoothing, padding that contributes nothing,
   and a mean over the real tokens.
8. **cross_attention**: two stacked cross-attention layers reading one encoder memory; the
   memory's gradient is the sum of every layer's share, keys and values alike.
9. **residual**: the skip path hands its gradient straight through, with the layer norm before
   the branch (pre-norm) or after the sum (post-norm); both are checked.

## What the checker's table means

Here is a file where the learner wrote every line of the attention exercise but forgot the
1/sqrt(K) in `dk`:

"""
    learner_writes("attention", lambda t: t.replace("dk = dscores.transpose(0, 1, 3, 2) @ q / math.sqrt(K)", "dk = dscores.transpose(0, 1, 3, 2) @ q"))
    yield block("attention", status=1)
    yield """
One row per gradient: every parameter of the layer and every float input it takes (`q`, `k`, `v`
here; the mask is not differentiable).

- **vs numeric** compares your gradient with central differences,
  `(L(x + h) - L(x - h)) / 2h` for every single element, in float64, where
  `L = sum(forward(...) * G)` for a fixed random `G`. A random `G` matters: the rows of a
  softmax always sum to 1, so with `L = sum(forward(...))` the true gradient of a softmax is 0.
  A softmax backward that drops its row-sum term gives `P` there and fails even so, but one
  that subtracts the plain mean of the upstream gradient where it should subtract
  `sum(dP * P)` gives exactly 0, and would pass (`--break softmax-row-mean` shows it).
- **vs minitx** compares your gradient with the one minitx's own plain layer computes, from the
  same parameters, inputs and `G`.
- Both are the relative error `||yours - theirs|| / max(||yours|| + ||theirs||, 1e-3)` over the
  whole tensor. A row is `yes` when both are at most 1e-6. A right backward lands near 1e-10; a
  wrong one near 1e-1. The `1e-3` floor is there because a few gradients are exactly 0 (below).
- Under the table, each wrong gradient gets a sentence. When the numbers say more, it comes
  first: a gradient that is **still all zero** is not written yet; one that is **exactly what
  a well-known mistake gives** is named as that mistake, as `k` is here (the grader plants
  each of the exercise's mistakes in minitx's own layer and compares), with the `--break`
  command that shows it; one that is **right up to a constant factor** is missing a scale, or
  has one twice. Otherwise the sentence is the gradient's hint.

The command exits with status 0 when every row is `yes` and 1 otherwise. Once the file is right:

"""
    learner_writes("attention")
    yield block("attention", status=0)
    yield """
In the cross-attention exercise two rows pass even before you write anything: the gradient of
each layer's key bias is exactly zero, since adding the same number to every score of a softmax
row changes nothing ([backward.md, section 19](backward.md#19-why-the-key-bias-b_k-has-exactly-zero-gradient)
explains it). Zeros are the right answer there.

The list shows where you are:

"""
    learner_writes("linear")
    learner_writes("softmax")
    yield block(status=0)
    yield """
## When your file does not run

A mistake that stops the grader before it can build a table (a syntax error, an exception, a
gradient of the wrong shape, a changed forward) gets one line naming your file, the line where
there is one, and what is wrong, with exit status 2:

"""
    Path("my_exercises", "layernorm.py").write_text(
        solved("layernorm", skeleton(BY_NAME["layernorm"])).replace("dbeta = dout.reshape(-1, D).sum(axis=0)", "dbeta = dout.reshape(-1, D).sum(axis=0)("))
    yield block("layernorm", status=2)
    learner_writes("layernorm", lambda t: t.replace("dgamma = (dout * xhat).reshape(-1, D).sum(axis=0)", "dgamma = (dout * xhat).sum(axis=0)"))
    yield "\n" + block("layernorm", status=2)
    learner_writes("heads", lambda t: t.replace("dx_q = merge_heads(dq)", "dx_q = dq"))
    yield "\n" + block("heads", status=2)
    learner_writes("embedding", lambda t: t.replace("return self.params[\"W\"][ids]", "return self.params[\"W\"][ids] * 2"))
    yield "\n" + block("embedding", status=2)
    yield """
The grader needs the forward exactly as the skeleton gives it: it compares your backward with
minitx's for the same function. If you changed it by accident, `--reset` gives you the skeleton
back and keeps your file.

A forward must leave its inputs as they were, and a backward must not write into `dout`, the
gradient it was handed: in a model the caller still holds them (a residual connection hands the
same `dout` to two branches). The grader hands them to your code read-only, so a write into one
stops at the line that makes it:

"""
    learner_writes("softmax", lambda t: t.replace("dx = P * (dout - (dout * P).sum(axis=-1, keepdims=True))",
                                                  "dout -= (dout * P).sum(axis=-1, keepdims=True)\n        dx = P * dout"))
    yield block("softmax", status=2)
    yield f"""
Your file runs in a process of its own, so nothing it does can stop the grader from answering.
A file still running after {TIME_LIMIT:g} s (an endless loop, at its top level or in a method) is
stopped, with one line naming the line it was on. A file that ends its process (`os._exit`, a
crash) or raises something that is not an `Exception` (`SystemExit`, `KeyboardInterrupt`) gets
one line saying so. What your file prints reaches you, up to {SHOWN_LINES} lines: a `print` in
`forward` runs once for every nudge of the finite differences, so the grader cuts the rest and
says how much it cut:

"""
    learner_writes("softmax", lambda t: t.replace("        self.cache = P\n", "        self.cache = P\n        print(\"forward\", x.shape)\n"))
    yield block("softmax", status=0)
    yield """
## Seeing minitx's solution

`--solution` prints the plain minitx code the grader compares with, with line numbers, marking
the lines your `TODO` lines correspond to. It is minitx's own layer, not a file written for the
exercise:

"""
    yield block("linear", "--solution", status=0)
    yield """
The solved skeletons that the tests use to prove every exercise can be completed live in
`tests/exercise_solutions.py`, outside the package, so that they are not the first thing a
learner browsing `minitx/exercises/` meets.

## Break it: what each planted bug teaches

The other way to learn what a gradient check is for is to watch it catch a bug. `--break` takes
minitx's working plain layer, plants one well-known mistake in a copy of its code, in memory (no
file changes), and runs the same check on it. Without a name it lists the bugs; with an exercise's
name it plants that exercise's bugs, and with a bug's name just that one:

"""
    yield block("--break", status=0)
    for name, (exercise, bug) in BUGS.items():
        yield f"\n### {name}\n\n"
        yield block("--break", name, status=0)
    yield """
Every one of these is checked by `tests/test_exercises.py`, which asserts that each bug fails
exactly the gradients it should, and that the untouched plain layers pass.
"""


def main_():
    DOC.write_text(render())
    print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main_()
