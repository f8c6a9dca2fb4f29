"""The exercises: skeletons fail clearly, solved skeletons pass, every planted bug is caught,
a learner's broken file gets one line, and a learner's work is never overwritten."""

import ast
import difflib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from exercise_solutions import SOLUTIONS, solved
from minitx.cli import main
from minitx.exercises import breakit, grader, room
from minitx.exercises.catalog import EXERCISES
from minitx.exercises.command import BUGS, skeleton
from minitx.nn import Linear, ScaledDotProductAttention
from minitx.shell import minitx_command

NAMES = [e.name for e in EXERCISES]
ROOT = Path(__file__).resolve().parent.parent


def run(capsys, *argv):
    """The command line in-process: (exit status, stdout, stderr)."""
    status = main(["exercise", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def table_rows(out):
    """(gradient name, ok) for every row of the grader's tables in `out`."""
    return re.findall(r"^(\S+)\s+\S+\s+\S+e[+-]\d\d\s+\S+e[+-]\d\d\s+(yes|NO)$", out, flags=re.M)


def test_the_list_shows_at_least_nine_exercises_not_started(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, out, _ = run(capsys)
    listed = re.findall(r"^\s*(\d+)\s+(\w+)\s+not started\s", out, flags=re.M)
    assert status == 0 and len(listed) >= 9, out
    assert [name for _, name in listed] == NAMES, out
    assert not (tmp_path / "my_exercises").exists(), "listing must not create the working folder"


@pytest.mark.parametrize("name", NAMES)
def test_an_untouched_skeleton_fails_with_its_table_not_a_traceback(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, out, err = run(capsys, name)
    assert status == 1 and err == "", (status, err)
    assert f"your copy is my_exercises/{name}.py" in out, out
    rows = table_rows(out)
    exercise = next(e for e in EXERCISES if e.name == name)
    expected = sum(len(getattr(case.plain, "params", {})) + len(case.checked) for case in exercise.cases())
    assert len(rows) == expected, out
    # The key biases' true gradient is exactly 0 (shifting every score of a softmax row changes
    # nothing), so zeros are right for them; every other gradient must fail.
    wrong = {row for row, ok in rows if ok == "NO"}
    assert wrong == {row for row, _ in rows if not row.endswith(".key.b")}, out
    todo = re.search(rf"^{name}: failing, \d+ of \d+ gradients right; (\d+) TODO lines? of my_exercises/{name}.py not yet changed\.$", out, re.M)
    assert todo and int(todo.group(1)) == len(re.findall(r"#\s*TODO", skeleton(exercise))), out
    assert "Traceback" not in out


@pytest.mark.parametrize("name", NAMES)
def test_the_solved_skeleton_passes(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_exercises").mkdir()
    (tmp_path / "my_exercises" / f"{name}.py").write_text(solved(name, skeleton(next(e for e in EXERCISES if e.name == name))))
    status, out, err = run(capsys, name)
    rows = table_rows(out)
    assert status == 0 and err == "" and rows and all(ok == "yes" for _, ok in rows), out + err
    assert f"{name}: passing, every gradient right" in out, out


def test_every_exercise_has_a_solution_and_a_planted_bug():
    assert set(SOLUTIONS) == set(NAMES)
    assert all(e.bugs for e in EXERCISES), [e.name for e in EXERCISES if not e.bugs]


@pytest.mark.parametrize("name", NAMES)
def test_minitx_plain_layer_passes_its_own_exercise(name):
    exercise = next(e for e in EXERCISES if e.name == name)
    for case, twin in zip(exercise.cases(), exercise.cases()):
        result = grader.check_case(case, twin.plain)
        assert all(r.ok for r in result.rows), grader.format_results(grader.explain([result], exercise))


# For each bug, exactly the gradients it must break (the rest must stay right).
EXPECTED_FAILURES = {
    "bias-averaged": {"b"},
    "softmax-no-row-sum": {"x"},
    "softmax-row-mean": {"x"},
    "attention-no-scale": {"q", "k"},
    "attention-mask-after-softmax": {"q", "k", "v"},
    "heads-reshape-without-transpose": {"x_q", "x_kv"},
    "layernorm-constant-stats": {"x"},
    "embedding-fancy-index": {"W"},
    "cross-entropy-batch-twice": {"logits"},
    "memory-last-layer-only": {"memory"},
    "residual-no-pass-through": {"pre-norm x", "post-norm x"},
}


@pytest.mark.parametrize("bug", list(BUGS))
def test_break_it_catches_every_planted_bug(bug, capsys):
    status, out, err = run(capsys, "--break", bug)
    assert status == 0 and err == "", out + err
    exercise, _ = BUGS[bug]
    failed = set()
    for label, block in split_cases(out, exercise):
        failed |= {f"{label} {row}".strip() for row, ok in table_rows(block) if ok == "NO"}
    assert failed == EXPECTED_FAILURES[bug], out
    assert "Caught: " in out and "What it teaches: " in out, out


def split_cases(out, exercise):
    """The grader's output cut at each case's label, for exercises checked on several cases."""
    labels = [c.label for c in exercise.cases()]
    if labels == [""]:
        return [("", out)]
    parts = re.split(rf"^({'|'.join(labels)})$", out, flags=re.M)
    return list(zip(parts[1::2], parts[2::2]))


def test_a_planted_bug_changes_one_object_only_and_no_file():
    exercise, bug = BUGS["softmax-no-row-sum"]
    before = (ROOT / "minitx" / "nn" / "attention.py").read_bytes()
    broken, healthy = exercise.cases()[0].plain, exercise.cases()[0].plain
    changes = breakit.plant(broken, bug.edits, bug.name, bug.target)
    assert [c.file for c in changes] == ["minitx/nn/attention.py"], changes
    assert changes[0].before.startswith("dscores = P * (dP - ") and changes[0].after.startswith("dscores = P * dP"), changes
    assert (ROOT / "minitx" / "nn" / "attention.py").read_bytes() == before
    case = exercise.cases()[0]
    assert not grader.check_case(case, broken).rows[0].ok
    assert grader.check_case(exercise.cases()[0], healthy).rows[0].ok, "the bug leaked into another layer"


@pytest.mark.parametrize("bug", list(BUGS))
def test_every_plant_still_finds_the_line_it_changes(bug):
    _, planted = BUGS[bug]
    problems = [problem for edit in planted.edits if (problem := edit.problem(bug))]
    assert not problems, "\n".join(problems)


def test_a_plant_whose_line_is_gone_says_in_one_line_which_plant_to_update():
    gone = breakit.Edit(Linear.backward, "dx_rows = dout_rows @ W.T @ W", "dx_rows = 0")
    assert gone.problem("my-plant") == ("my-plant: the line it changes, `dx_rows = dout_rows @ W.T @ W`, is gone from "
                                        "Linear.backward (minitx/nn/layers.py); update the plant to today's code")
    layer = Linear(3, 2, np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="^my-plant: the line it changes"):
        breakit.plant(layer, (gone,), "my-plant")
    assert "backward" not in vars(layer), "a failed plant must leave the layer as it was"


def test_break_without_a_name_lists_every_bug(capsys):
    status, out, _ = run(capsys, "--break")
    assert status == 0 and all(re.search(rf"^\w+\s+{re.escape(b)}\s", out, re.M) for b in BUGS), out


def learner_file(tmp_path, name, edit):
    """A solved skeleton with one edit applied: edit(text) -> text."""
    text = solved(name, skeleton(next(e for e in EXERCISES if e.name == name)))
    changed = edit(text)
    assert changed != text, "the edit changed nothing"
    (tmp_path / "my_exercises").mkdir(exist_ok=True)
    (tmp_path / "my_exercises" / f"{name}.py").write_text(changed)


def one_line_error(capsys, *argv):
    status, out, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("minitx: error: "), (status, out, err)
    assert "Traceback" not in out + err
    return lines[0]


def test_a_syntax_error_is_one_line_naming_the_file_and_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    learner_file(tmp_path, "linear", lambda t: t.replace("dx_rows = dout_rows @ W.T", "dx_rows = dout_rows @ W.T +"))
    line = one_line_error(capsys, "linear")
    assert re.fullmatch(r"minitx: error: my_exercises/linear.py: line \d+: SyntaxError: invalid syntax", line), line


def test_a_file_that_calls_sys_exit_is_one_line_not_a_silent_stop(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    learner_file(tmp_path, "linear", lambda t: "import sys\nsys.exit(0)\n" + t)
    line = one_line_error(capsys, "linear")
    assert line == ("minitx: error: my_exercises/linear.py: running the file called sys.exit(0); "
                    "the grader needs the file to define its class and return"), line


def test_a_gradient_of_the_wrong_shape_is_one_line_naming_both_shapes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    learner_file(tmp_path, "linear", lambda t: t.replace("return dx_rows.reshape(*dout.shape[:-1], W.shape[0])", "return dx_rows"))
    line = one_line_error(capsys, "linear")
    assert line == "minitx: error: my_exercises/linear.py: Linear.backward returned dx of shape 8x5, but x is 2x4x5: a gradient has the shape of what it is the gradient of", line


def test_a_parameter_gradient_of_the_wrong_shape_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    learner_file(tmp_path, "heads", lambda t: t.replace('self.grads["W_O"] += dW_O', 'self.grads["W_O"] = dW_O[:, :3]'))
    line = one_line_error(capsys, "heads")
    assert "my_exercises/heads.py: after HeadsAndOutput.backward, grads['W_O'] is shape 6x3, but W_O is 6x6" in line, line


def test_an_exception_in_backward_names_the_learners_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    learner_file(tmp_path, "attention", lambda t: t.replace("dq = dscores @ k / math.sqrt(K)", "dq = dscores @ q / math.sqrt(K)"))
    text = (tmp_path / "my_exercises" / "attention.py").read_text().splitlines()
    lineno = next(i for i, line in enumerate(text, 1) if "dq = dscores @ q" in line)
    line = one_line_error(capsys, "attention")
    assert line.startswith(f"minitx: error: my_exercises/attention.py: line {lineno}, in backward: ScaledDotProductAttention.backward raised ValueError: "), line


def test_a_changed_forward_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    learner_file(tmp_path, "layernorm", lambda t: t.replace("var + self.eps", "var + 1.0"))
    line = one_line_error(capsys, "layernorm")
    assert "my_exercises/layernorm.py: LayerNorm.forward no longer computes what minitx's does" in line and "--reset" in line, line


def test_a_missing_class_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    learner_file(tmp_path, "softmax", lambda t: t.replace("class Softmax(", "class SoftMax("))
    line = one_line_error(capsys, "softmax")
    assert "my_exercises/softmax.py: no class Softmax in it" in line, line


def test_an_unknown_exercise_suggests_the_closest(capsys):
    line = one_line_error(capsys, "layer_norm")
    assert "no exercise 'layer_norm' (did you mean 'layernorm'?" in line, line


def test_a_gradient_off_by_a_constant_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    learner_file(tmp_path, "cross_entropy", lambda t: t.replace("valid[..., None] / n", "valid[..., None]"))
    status, out, _ = run(capsys, "cross_entropy")
    assert status == 1 and table_rows(out) == [("logits", "NO")], out
    assert "logits: Right up to a constant factor: yours times 0.143 (1/7) would be right" in out, out


def test_a_slip_that_a_sum_loss_would_hide_fails(tmp_path, monkeypatch, capsys):
    # Subtracting the row mean of dout instead of sum(dout * P): for dout = ones both give 0, as
    # does the truth (rows of P sum to 1), so only a random upstream gradient exposes it.
    monkeypatch.chdir(tmp_path)
    learner_file(tmp_path, "softmax", lambda t: t.replace("(dout * P).sum(axis=-1, keepdims=True)", "dout.mean(axis=-1, keepdims=True)"))
    status, out, _ = run(capsys, "softmax")
    assert status == 1 and table_rows(out) == [("x", "NO")], out


def test_a_half_done_exercise_names_only_its_wrong_gradients(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    learner_file(tmp_path, "cross_attention", lambda t: t.replace("dmemory = dmemory + dmemory_layer", "dmemory = dmemory_layer"))
    status, out, _ = run(capsys, "cross_attention")
    wrong = [row for row, ok in table_rows(out) if ok == "NO"]
    assert status == 1 and wrong == ["memory"], out
    assert re.search(r"^  memory: It is exactly what minitx's layer gives when only the last memory gradient", out, re.M), out
    assert "(`--break memory-last-layer-only` plants that mistake). Every layer reads the same memory" in " ".join(out.split()), out


def test_starting_again_never_overwrites_the_learners_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run(capsys, "linear")
    path = tmp_path / "my_exercises" / "linear.py"
    path.write_text(path.read_text() + "# my notes\n")
    mine = path.read_text()
    status, out, _ = run(capsys, "linear")
    assert status == 1 and "Started" not in out and path.read_text() == mine, out


def test_reset_keeps_numbered_backups_and_never_overwrites_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "my_exercises"
    run(capsys, "softmax")
    path = folder / "softmax.py"
    status, out, _ = run(capsys, "softmax", "--reset")
    assert status == 0 and "still the untouched skeleton" in out and not list(folder.glob("*.bak-*")), out
    (folder / "softmax.py.bak-1").write_text("an earlier backup\n")
    for attempt in ("first try\n", "second try\n"):
        path.write_text(attempt)
        status, out, _ = run(capsys, "softmax", "--reset")
        assert status == 0, out
    assert (folder / "softmax.py.bak-1").read_text() == "an earlier backup\n"
    assert (folder / "softmax.py.bak-2").read_text() == "first try\n"
    assert (folder / "softmax.py.bak-3").read_text() == "second try\n"
    assert "Kept your file as my_exercises/softmax.py.bak-3; my_exercises/softmax.py is the untouched skeleton again." in out, out
    assert path.read_text() == skeleton(EXERCISES[1])


def test_the_list_shows_each_state(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "linear.py").write_text(solved("linear", skeleton(EXERCISES[0])))
    (tmp_path / "mine" / "softmax.py").write_text(skeleton(EXERCISES[1]))
    (tmp_path / "mine" / "attention.py").write_text("def broken(:\n")
    status, out, _ = run(capsys, "--dir", "mine")
    states = dict(re.findall(r"^\s*\d+\s+(\w+)\s+(not started|passing|failing \([^)]*\))", out, flags=re.M))
    assert states["linear"] == "passing" and states["softmax"] == "failing (0 of 1 right)", out
    assert states["attention"] == "failing (stops with an error)" and states["heads"] == "not started", out
    assert f"Next: {minitx_command()} exercise softmax" in out, out


def test_solution_shows_minitx_plain_lines(capsys):
    status, out, _ = run(capsys, "embedding", "--solution")
    source = (ROOT / "minitx" / "nn" / "embedding.py").read_text().splitlines()
    lineno = next(i for i, line in enumerate(source, 1) if "np.add.at(" in line and not line.strip().startswith(("#", "A plain")))
    assert status == 0 and f"{lineno:>4} > {source[lineno - 1]}" in out, out
    assert "minitx/nn/embedding.py, lines " in out and "Embedding.backward:" in out, out


def test_reset_and_solution_need_a_name(capsys):
    assert "--reset needs an exercise name" in one_line_error(capsys, "--reset")


# Names a skeleton may import from minitx: the base class, forward helpers, and the layers whose
# backward an earlier exercise taught. Never the layer the exercise asks the learner to write.
ALLOWED_IMPORTS = {
    "linear": {"Module"},
    "softmax": {"Module"},
    "attention": {"Module", "MASKED", "softmax"},
    "heads": {"Module", "ScaledDotProductAttention", "merge_heads", "split_heads"},
    "layernorm": {"Module"},
    "embedding": {"Module"},
    "cross_entropy": {"log_softmax"},
    "cross_attention": {"Module", "ScaledDotProductAttention", "merge_heads", "split_heads", "Linear"},
    "residual": {"Module", "LayerNorm", "FeedForward"},
}


@pytest.mark.parametrize("exercise", EXERCISES, ids=NAMES)
def test_a_skeleton_imports_only_helpers_never_its_own_answer(exercise):
    tree = ast.parse(skeleton(exercise))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module.split(".")[0] == "minitx":
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            assert all(alias.name == "numpy" or alias.name == "math" for alias in node.names), ast.dump(node)
    assert imported <= ALLOWED_IMPORTS[exercise.name], imported - ALLOWED_IMPORTS[exercise.name]
    assert exercise.class_name not in imported
    assert f"class {exercise.class_name}(" in skeleton(exercise) or f"class {exercise.class_name}:" in skeleton(exercise)


def test_an_unknown_bug_suggests_the_closest(capsys):
    line = one_line_error(capsys, "--break", "softmax-no-rowsum")
    assert "--break softmax-no-rowsum: no such exercise or bug (did you mean 'softmax-no-row-sum'?" in line, line


def test_a_working_folder_that_cannot_be_made_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a folder\n")
    assert one_line_error(capsys, "linear", "--dir", "afile/sub").startswith("minitx: error: afile/sub/linear.py: cannot create it (")
    assert one_line_error(capsys, "linear", "--dir", "afile") == "minitx: error: afile: exists and is not a directory (choose another --dir)"


def noise_free(text):
    """The page with the errors of right gradients (1e-7 and below) blanked: they are rounding
    noise that another BLAS may round differently. Every other character must match."""
    return re.sub(r"\b\d\.\d+e-(0[7-9]|[1-9]\d)\b", "<tiny>", text)


def test_docs_exercises_md_is_what_its_script_prints_today():
    spec = importlib.util.spec_from_file_location("make_exercises_doc", ROOT / "scripts" / "make_exercises_doc.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    documented = noise_free((ROOT / "docs" / "exercises.md").read_text()).splitlines()
    today = noise_free(script.render()).splitlines()
    diff = list(difflib.unified_diff(documented, today, "docs/exercises.md", "today's output", n=1, lineterm=""))
    assert not diff, "\n".join(diff[:30]) + "\nrun: python scripts/make_exercises_doc.py"


def test_under_a_sum_loss_the_row_mean_mistake_would_pass_and_the_missing_row_sum_would_not(tmp_path, monkeypatch):
    # What the softmax skeleton, the grader and docs/exercises.md say about dout = ones, checked
    # by running the grader itself with an upstream gradient of ones instead of a random one.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(grader, "upstream", lambda case, shape: np.ones(shape))
    softmax = EXERCISES[1]
    verdicts = {}
    for label, wrong in (("no row sum", "dx = P * dout"), ("row mean", "dx = P * (dout - dout.mean(axis=-1, keepdims=True))")):
        learner_file(tmp_path, "softmax", lambda t: t.replace("dx = P * (dout - (dout * P).sum(axis=-1, keepdims=True))", wrong))
        row = grader.grade_file(softmax, Path("my_exercises/softmax.py"))[0].rows[0]
        verdicts[label] = (row.ok, row.vs_numeric)
    assert verdicts["no row sum"][0] is False and verdicts["row mean"][0] is True, verdicts
    case = softmax.cases()[0]
    P = case.plain.forward(case.inputs["x"])
    true_dx = case.plain.backward(np.ones_like(P))
    assert np.abs(true_dx).max() < 1e-15, np.abs(true_dx).max()
    assert np.array_equal(P * np.ones_like(P), P) and not np.any(P * (1 - np.ones_like(P).mean(axis=-1, keepdims=True)))


def test_two_softmax_mistakes_get_two_different_sentences(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    notes = {}
    for bug, wrong in (("softmax-no-row-sum", "dx = P * dout"), ("softmax-row-mean", "dx = P * (dout - dout.mean(axis=-1, keepdims=True))")):
        learner_file(tmp_path, "softmax", lambda t: t.replace("dx = P * (dout - (dout * P).sum(axis=-1, keepdims=True))", wrong))
        status, out, _ = run(capsys, "softmax")
        assert status == 1 and table_rows(out) == [("x", "NO")], out
        notes[bug] = " ".join(out.split("What is wrong, and a hint:")[1].split("softmax: failing")[0].split())
        assert f"(`--break {bug}` plants that mistake)" in notes[bug], out
        assert BUGS[bug][1].hint in notes[bug], out
    assert notes["softmax-no-row-sum"] != notes["softmax-row-mean"]


def test_the_softmax_mistakes_are_recognised_in_the_attention_exercise_too(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    learner_file(tmp_path, "attention", lambda t: t.replace("(dP * P).sum(axis=-1, keepdims=True)", "dP.mean(axis=-1, keepdims=True)"))
    status, out, _ = run(capsys, "attention")
    assert status == 1 and table_rows(out) == [("q", "NO"), ("k", "NO"), ("v", "yes")], out
    flat = " ".join(out.split())
    assert flat.count("(`--break softmax-row-mean` plants that mistake)") == 2, out


def test_a_parameter_gradient_added_with_the_wrong_shape_gets_the_graders_line(tmp_path, monkeypatch, capsys):
    # `self.grads[key] += g` with g of another shape stops NumPy in one of two ways; each gets
    # the grader's sentence, naming the key and both shapes, instead of NumPy's.
    monkeypatch.chdir(tmp_path)
    learner_file(tmp_path, "layernorm", lambda t: t.replace("dgamma = (dout * xhat).reshape(-1, D).sum(axis=0)", "dgamma = (dout * xhat).sum(axis=0)"))
    line = one_line_error(capsys, "layernorm")
    assert re.fullmatch(r"minitx: error: my_exercises/layernorm.py: line \d+, in backward: LayerNorm.backward adds an array of shape 3x6 "
                        r"into grads\['gamma'\], which has gamma's shape, 6: a gradient has the shape of what it is the gradient of", line), line
    learner_file(tmp_path, "linear", lambda t: t.replace("dW = x_rows.T @ dout_rows", "dW = dout_rows.T @ x_rows"))
    line = one_line_error(capsys, "linear")
    assert "Linear.backward adds an array of shape 3x5 into grads['W'], which has W's shape, 5x3" in line and "broadcast" not in line, line


def test_the_attention_mask_line_changes_no_number_in_the_graders_case(tmp_path, monkeypatch, capsys):
    # The skeleton says so where the learner meets the line; here is the evidence, and the one
    # case where the line does matter: a row masked everywhere.
    no_mask_line = breakit.Edit(ScaledDotProductAttention.backward, "dscores = np.where(mask, dscores, 0.0)", "dscores = dscores")
    case, twin = EXERCISES[2].cases()[0], EXERCISES[2].cases()[0]
    breakit.plant(twin.plain, (no_mask_line,), "no-mask-line")
    G = np.random.default_rng(0).standard_normal((2, 2, 3, 4))
    for layer in (case.plain, twin.plain):
        layer.forward(*case.inputs.values())
    assert np.all(case.plain.attn[~np.broadcast_to(case.inputs["mask"], case.plain.attn.shape)] == 0.0)
    assert all(np.array_equal(a, b) for a, b in zip(case.plain.backward(G), twin.plain.backward(G)))
    everywhere = case.inputs["mask"].copy()
    everywhere[1] = False
    for layer in (case.plain, twin.plain):
        layer.forward(case.inputs["q"], case.inputs["k"], case.inputs["v"], everywhere)
    dq, dq_without = case.plain.backward(G)[0], twin.plain.backward(G)[0]
    assert not np.any(dq[1]) and np.abs(dq_without[1]).max() > 1e-3, np.abs(dq_without[1]).max()
    monkeypatch.chdir(tmp_path)
    learner_file(tmp_path, "attention", lambda t: t.replace("dscores = np.where(mask, dscores, 0.0)", "dscores = dscores"))
    status, out, _ = run(capsys, "attention")
    assert status == 0, out
    text = skeleton(EXERCISES[2]).splitlines()
    at = next(i for i, line in enumerate(text) if "TODO dscores: 0 wherever the mask is False" in line)
    assert "already exactly 0" in " ".join(text[at - 7: at]), "\n".join(text[at - 7: at + 1])


def test_todo_lines_are_counted_as_shipped_not_by_the_word(tmp_path, monkeypatch, capsys):
    # The learner wrote dW but kept its comment, and added a note of their own that says TODO:
    # two of the skeleton's three TODO lines are still as shipped.
    monkeypatch.chdir(tmp_path)
    run(capsys, "linear")
    path = tmp_path / "my_exercises" / "linear.py"
    text = path.read_text().replace("dW = np.zeros_like(W)  # TODO", "dW = x_rows.T @ dout_rows  # TODO")
    path.write_text(text.replace("        db = np.zeros_like", "        # TODO: ask why db is a sum\n        db = np.zeros_like"))
    status, out, _ = run(capsys, "linear")
    assert status == 1 and "linear: failing, 1 of 3 gradients right; 2 TODO lines of my_exercises/linear.py not yet changed." in out, out


# A learner's file runs in a child process of its own (minitx/exercises/room.py). Each case below
# goes through the real command line; the time limit is cut to 0.3 s to keep them quick.
LOOPS = {
    "at import": ("import numpy as np\n", "import numpy as np\nwhile True: pass\n", "the file had not finished running", "<module>"),
    "in __init__": ("        super().__init__()\n", "        super().__init__()\n        while True: pass\n", "Linear(5, 3, rng) had not returned", "__init__"),
    "in forward": ("        W, b = self.params", "        while True: pass\n        W, b = self.params", "Linear.forward had not returned", "forward"),
    "in backward": ("        x_rows = self.cache", "        while True: pass\n        x_rows = self.cache", "Linear.backward had not returned", "backward"),
}


@pytest.mark.parametrize("where", list(LOOPS))
def test_a_file_that_never_returns_is_stopped_with_one_line_naming_its_line(where, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(room, "TIME_LIMIT", 0.3)
    old, new, what, function = LOOPS[where]
    learner_file(tmp_path, "linear", lambda t: t.replace(old, new, 1))
    text = (tmp_path / "my_exercises" / "linear.py").read_text().splitlines()
    lineno = next(i for i, line in enumerate(text, 1) if line.strip() == "while True: pass")
    line = one_line_error(capsys, "linear")
    assert line == (f"minitx: error: my_exercises/linear.py: line {lineno}, in {function}: {what} after 0.3 s, so the grader stopped "
                    "it (an endless loop? a right file grades in well under a second)"), line


def test_a_looping_file_holds_the_list_up_for_one_time_limit_only(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(room, "TIME_LIMIT", 0.3)
    learner_file(tmp_path, "linear", lambda t: t.replace("import numpy as np\n", "import numpy as np\nwhile True: pass\n", 1))
    learner_file(tmp_path, "softmax", lambda t: t.replace("        P = self.cache", "        while True: pass\n        P = self.cache"))
    (tmp_path / "my_exercises" / "layernorm.py").write_text(solved("layernorm", skeleton(EXERCISES[4])))
    status, out, _ = run(capsys)
    states = dict(re.findall(r"^\s*\d+\s+(\w+)\s+(not started|passing|failing \([^)]*\))", out, flags=re.M))
    assert status == 0 and states["linear"] == states["softmax"] == "failing (still running after 0.3 s)", out
    assert states["layernorm"] == "passing" and states["attention"] == "not started", out


def test_a_file_that_ends_its_process_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    learner_file(tmp_path, "linear", lambda t: t.replace("        x_rows = self.cache", "        import os\n        os._exit(3)\n        x_rows = self.cache"))
    line = one_line_error(capsys, "linear")
    assert line == ("minitx: error: my_exercises/linear.py: the process running your file ended (exit status 3) in Linear.backward, "
                    "without returning: os._exit, or a crash, ends a program at once; the grader needs your code to return"), line


@pytest.mark.parametrize("raised", ["KeyboardInterrupt", "GeneratorExit", "Stop"])
def test_a_base_exception_from_the_file_is_one_line(raised, tmp_path, monkeypatch, capsys):
    # None of these is an Exception: KeyboardInterrupt once ended the grader as if the learner
    # had pressed Ctrl-C, and the others with a traceback.
    monkeypatch.chdir(tmp_path)
    learner_file(tmp_path, "linear", lambda t: t.replace("        x_rows = self.cache", f"        raise {raised}('no')\n        x_rows = self.cache")
                 .replace("class Linear(", "class Stop(BaseException):\n    pass\n\n\nclass Linear("))
    lineno = next(i for i, line in enumerate((tmp_path / "my_exercises" / "linear.py").read_text().splitlines(), 1) if "raise" in line)
    line = one_line_error(capsys, "linear")
    assert line == f"minitx: error: my_exercises/linear.py: line {lineno}, in backward: Linear.backward raised {raised}: no", line


def test_a_flood_of_printing_is_cut_and_says_how_much(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    learner_file(tmp_path, "linear", lambda t: t.replace("import numpy as np\n", "import numpy as np\n\nprint('x' * 100_000)\n", 1)
                 .replace("        W, b = self.params", "        print('forward')\n        W, b = self.params"))
    status, out, err = run(capsys, "linear")
    assert status == 0 and err == "" and "linear: passing" in out, out[-3000:]
    shown, cut = out.split("[the grader cut the rest of what your file printed: ")
    assert len(shown) < room.SHOWN_CHARS + 10, len(shown)
    # 100,000 x and a newline, of which the grader showed the first SHOWN_CHARS, then "forward"
    # and a newline for each forward: one to check it, one before backward, one for each of W, b
    # and x at its values as they are, and two for each of the 15 + 3 + 40 elements of W, b and x
    # that the finite differences nudge (none of them near a kink: no second, smaller nudge).
    forwards = 2 + 3 + 2 * (15 + 3 + 40)
    assert cut.startswith(f"{100_001 - room.SHOWN_CHARS + forwards * 8:,} more characters, {1 + forwards} more lines]\nGrading "), cut[:200]


@pytest.mark.parametrize("writes", ["forward", "backward"])
def test_code_that_writes_into_what_it_was_handed_stops_at_that_line(writes, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if writes == "forward":
        learner_file(tmp_path, "softmax", lambda t: t.replace("e = np.exp(x - x.max(axis=-1, keepdims=True))", "x -= x.max(axis=-1, keepdims=True)\n        e = np.exp(x)"))
        target, rule = "x", "a forward must not change its inputs"
    else:
        learner_file(tmp_path, "softmax", lambda t: t.replace("dx = P * (dout - (dout * P).sum(axis=-1, keepdims=True))",
                                                             "dout -= (dout * P).sum(axis=-1, keepdims=True)\n        dx = P * dout"))
        target, rule = "dout", "a backward must not change what it was handed"
    text = (tmp_path / "my_exercises" / "softmax.py").read_text().splitlines()
    lineno = next(i for i, line in enumerate(text, 1) if line.strip().startswith(f"{target} -="))
    line = one_line_error(capsys, "softmax")
    assert line.startswith(f"minitx: error: my_exercises/softmax.py: line {lineno}, in {writes}: Softmax.{writes} writes into `{target}`; {rule}"), line


def test_a_script_that_grades_without_a_main_guard_works_in_a_real_process(tmp_path):
    # multiprocessing would run a main script again in every child it starts; a script whose
    # top level grades a file would then grade again in each child, and fail there. room.py
    # hides the main module while it starts a child, so this script, unguarded, just works.
    (tmp_path / "my_exercises").mkdir()
    (tmp_path / "my_exercises" / "softmax.py").write_text(solved("softmax", skeleton(EXERCISES[1])))
    (tmp_path / "grade.py").write_text("from minitx.cli import main\n\nraise SystemExit(main(['exercise', 'softmax']))\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "grade.py"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "" and "softmax: passing" in proc.stdout, proc


def test_the_commands_it_prints_keep_the_working_folder(tmp_path, monkeypatch, capsys):
    # Typed as printed, the next command must grade the same file, not start a new one elsewhere.
    monkeypatch.chdir(tmp_path)
    status, out, _ = run(capsys, "linear", "--dir", "mine")
    assert status != 0 and f"`{minitx_command()} exercise linear --dir mine` again" in out, out
    status, out, _ = run(capsys, "--dir", "mine")
    assert f"Next: {minitx_command()} exercise linear --dir mine" in out, out
    status, out, _ = run(capsys, "linear")
    assert f"`{minitx_command()} exercise linear` again" in out, out
