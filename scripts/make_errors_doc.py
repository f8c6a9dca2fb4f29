"""Write docs/errors.md: every bad input from tests/error_cases.py and the message it really gets.

    python scripts/make_errors_doc.py

Each case runs through the real command line in a scratch directory, so the table can only show
messages minitx actually prints.
"""

import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from error_cases import CASES, as_documented, with_setup  # noqa: E402
from minitx.cli import main  # noqa: E402

HEADER = """# Errors: every bad input and the message it gets

A mistake in what you give minitx gets one line on standard error, starting `minitx: error:`,
and exit status 2, never a traceback. Each row below is a test in `tests/test_errors.py`, which
also checks that the failed command changed none of the files already there; the messages are
the real ones, written by `python scripts/make_errors_doc.py` (paths are relative to a scratch
directory; `<python>` stands for the Python running minitx, `<repo>` for the repository and
`<N>` for the machine's memory size).

Some situations are not errors:
- Words the model never saw in training are read as `<unk>`, with a warning naming them: in an
  input to `translate`, and in the validation and test files of a TSV task.
- Training into a run directory that already holds a run never overwrites it: without
  `--resume` the new run goes to a numbered sibling (`runs/tiny-2`) and says so.
- Drawing more than 100,000 held-out sequences, or evaluating more than 10 batches, shows a
  progress bar.

Faults during training: Ctrl-C or SIGTERM finishes the current step, saves a checkpoint and
prints the command that resumes (exit status 130 for Ctrl-C, 143 for SIGTERM; a second one
quits at once, keeping the last checkpoint). A loss, gradient, validation loss or weight that
is not finite stops training with the step number, saves nothing, keeps the last good
checkpoint and suggests a lower learning rate. Checkpoints, and a run's config.yaml, are
written to a temporary file, flushed, fsynced and renamed, so a crash during a save leaves the
previous one; a temporary file left by a process killed outright is removed by the next
session. `tests/test_train.py` and `tests/test_run_dir.py` plant each of these, with real signals.

| what you did | what minitx says |
|---|---|
"""


def main_():
    rows = []
    for what, setup, _ in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            cwd = os.getcwd()
            os.chdir(tmp)
            try:
                err = io.StringIO()
                with contextlib.redirect_stdout(io.StringIO()), with_setup(setup) as argv:
                    with contextlib.redirect_stderr(err):
                        status = main(argv)
            finally:
                os.chdir(cwd)
        message = err.getvalue().strip().splitlines()[-1]
        assert status == 2, (what, status, message)
        message = as_documented(message)
        rows.append(f"| {what} | `{message}` |")
    (ROOT / "docs" / "errors.md").write_text(HEADER + "\n".join(rows) + "\n")
    print(f"wrote {len(rows)} rows to docs/errors.md")


if __name__ == "__main__":
    main_()
