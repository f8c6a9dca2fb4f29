"""What both low-rank experiment scripts share: reading a run's metrics and writing their
results into docs/lowrank.md between markers."""

import json
from pathlib import Path

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
