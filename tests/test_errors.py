"""Each bad input gets exit status 2 and one line naming what is wrong; never a traceback."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from error_cases import CASES, as_documented, with_setup
from minitx.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("what, setup, pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_one_line_error(what, setup, pattern, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with with_setup(setup) as argv:
        before = files_under(tmp_path)
        capsys.readouterr()
        status = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    # Nothing the user had is changed or lost by a command that fails.
    after = files_under(tmp_path)
    changed = sorted(str(p.relative_to(tmp_path)) for p in before if after.get(p) != before[p])
    assert not changed, f"{what}: the failed command changed {changed}"
    assert status == 2, f"{what}: exit status {status}, stderr {err}"
    assert len(err) == 1 and err[0].startswith("minitx: error: "), f"{what}: {err}"
    assert re.search(pattern, err[0]), f"{what}: {err[0]!r} does not match {pattern!r}"
    documented = as_documented(err[0])
    assert f"| {what} | `{documented}` |" in (ROOT / "docs" / "errors.md").read_text(), (
        f"{what}: docs/errors.md does not show {documented!r}; run scripts/make_errors_doc.py")


def files_under(directory):
    """Every file below directory, as {path: its bytes}; a symbolic link as its target."""
    return {p: (str(p.readlink()) if p.is_symlink() else p.read_bytes()) for p in directory.rglob("*") if p.is_file() or p.is_symlink()}


def test_a_real_process_prints_no_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "minitx", "train", str(tmp_path / "missing.yaml")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_unknown_words_are_a_warning_not_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    from error_cases import trained_run

    run = trained_run()
    capsys.readouterr()
    assert main(["translate", run, "3 1 banana 4"]) == 0
    assert "read as <unk>: banana" in capsys.readouterr().err


def test_every_case_is_in_the_documented_table():
    table = (ROOT / "docs" / "errors.md").read_text()
    missing = [what for what, _, _ in CASES if f"| {what} |" not in table]
    assert not missing, f"docs/errors.md lacks {missing}; run scripts/make_errors_doc.py"
