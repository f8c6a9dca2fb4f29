"""Write the gradient check's real output into the docs.

    python scripts/make_gradcheck_doc.py

Each block sits between two marker lines, and this script replaces what is between them:

  README.md and docs/backward.md section 21   some rows of the first table `python -m minitx
                                               gradcheck` prints (every entry probed), and its
                                               closing line
  docs/backward.md section 19                  that table's key.b rows
  docs/backward.md section 23                  what `python -m minitx gradcheck --mutants
                                               --sample 8` prints: the sampled check `make test`
                                               runs, against every planted slip

tests/test_docs.py and tests/test_mutants.py run the same checks and fail if a block is not what
they print (up to the digits of rounding noise, which differ from machine to machine).
"""

import contextlib
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from minitx import gradcheck, mutants  # noqa: E402

README = ROOT / "README.md"
BACKWARD = ROOT / "docs" / "backward.md"
MUTANTS_COMMAND = f"python -m minitx gradcheck --mutants --sample {gradcheck.SAMPLE}"
# The rows of the first table we show: every one a tensor of at most SAMPLE entries, which the
# tests' sampled check probes whole, so that they can compare these rows with a fresh check.
SHOWN = ["encoder.layers.0.norm1.gamma", "encoder.layers.0.norm1.beta", "encoder.layers.0.self_attn.query.b",
         "encoder.layers.0.self_attn.key.b", "decoder.layers.0.cross_attn.key.b", "decoder.layers.1.ff.lin2.b"]


def markers(name):
    """The two lines that enclose the block `name` in a doc."""
    return (f"<!-- {name}: written by scripts/make_gradcheck_doc.py -->", f"<!-- end of {name} -->")


def block_lines(text, name):
    """The lines of the fenced block between `name`'s markers, without the fences."""
    start, end = markers(name)
    inner = text[text.index(start) + len(start):text.index(end)].strip().splitlines()
    return inner[1:-1]


def replace_block(path, name, lines):
    text = path.read_text()
    start, end = markers(name)
    before, after = text[:text.index(start)], text[text.index(end) + len(end):]
    path.write_text(f"{before}{start}\n```text\n" + "\n".join(lines) + f"\n```\n{end}{after}")


def sample_block(title, rows, last_line):
    """The title, the header, the SHOWN rows, "...", and the closing line."""
    table = gradcheck.format_table([r for r in rows if r.name in SHOWN], title).splitlines()
    return [*table, "...", last_line]


def main():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = gradcheck.run_cli("tiny")
    assert status == 0, out.getvalue()
    printed = out.getvalue().splitlines()
    title, rows = next(gradcheck.tables("tiny"))
    assert title in printed
    sample = sample_block(title, rows, printed[-1])
    replace_block(README, "gradcheck sample", sample)
    replace_block(BACKWARD, "gradcheck sample", sample)
    replace_block(BACKWARD, "key.b rows", gradcheck.format_table([r for r in rows if r.name.endswith(".key.b")]).splitlines()[1:])
    text, ok = mutants.report("tiny", gradcheck.SAMPLE)
    assert ok, text
    replace_block(BACKWARD, "planted slips", [f"$ {MUTANTS_COMMAND}", *text.splitlines()])
    print("wrote the gradient check's output into README.md and docs/backward.md (sections 19, 21 and 23)")


if __name__ == "__main__":
    main()
