"""What both low-rank experiment scripts share: reading a run's metrics and writing their
results into docs/lowrank.md between markers.

Run on its own, after scripts/lora_experiment.py, it writes the two `lowrank` command outputs
that docs/lowrank.md shows (the rank-4 adapter update, and the trained copy weights), each the
real output of `python -m minitx lowrank` on that experiment's runs:

    .venv/bin/python scripts/lowrank_doc.py
"""

import contextlib
import io
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

DOC = Path(__file__).resolve().parent.parent / "docs" / "lowrank.md"


def read_metrics(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line.strip()]


def write_section(text, marker):
    """Replace what lies between <!-- BEGIN marker --> and <!-- END marker --> in docs/lowrank.md."""
    begin, end = f"<!-- BEGIN {marker} -->", f"<!-- END {marker} -->"
    doc = DOC.read_text()
    if begin not in doc or end not in doc:
        raise SystemExit(f"{DOC} has no {begin} ... {end} markers to write between")
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    DOC.write_text(f"{head}{begin}\n{text}\n{end}{tail}")


# The two commands docs/lowrank.md shows, on the runs of scripts/lora_experiment.py, each with
# the rows it keeps (the first of each kind of matrix) and its marker.
COMMANDS = {
    "lowrank_update": (["lowrank", "runs/lowrank/r4-seed0", "--base", "runs/lowrank/copy"],
                       ("encoder.embedding.W", "encoder.layers.0.self_attn.query.W", "encoder.layers.0.self_attn.key.W",
                        "decoder.layers.0.cross_attn.query.W")),
    "lowrank_weights": (["lowrank", "runs/lowrank/copy"],
                        ("encoder.layers.0.self_attn.query.W", "encoder.layers.0.ff.lin1.W")),
}


def command_output(argv, keep):
    """Run `python -m minitx ARGV` in this process; return its header, the rows named in `keep`,
    "..." and its last line, as a fenced block."""
    sys.path.insert(0, str(REPO_ROOT))
    from minitx.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    if code:
        raise SystemExit(f"python -m minitx {' '.join(argv)} failed (exit {code}); run scripts/lora_experiment.py first")
    lines = out.getvalue().splitlines()
    header = next(line for line in lines if line.startswith("matrix"))
    rows = [line for line in lines if line.split()[:1] and line.split()[0] in keep]
    last = [line for line in lines if line.strip()][-1]
    return "```\n$ python -m minitx " + " ".join(argv) + "\n" + "\n".join([header, *rows, "...", last]) + "\n```"


if __name__ == "__main__":
    for marker, (argv, keep) in COMMANDS.items():
        write_section(command_output(argv, keep), marker)
        print(f"wrote the output of `python -m minitx {' '.join(argv)}` into {DOC.relative_to(REPO_ROOT)}")
