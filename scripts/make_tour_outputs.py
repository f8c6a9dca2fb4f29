"""Write the real output of every tour command to docs/tour/outputs/NAME.txt.

    make tour                                   # trains the runs (scripts/tour.py)
    python scripts/make_tour_outputs.py         # runs every command in scripts/tour.py's COMMANDS

Each file starts with the command line, as a reader would type it from the repository root, and
holds everything it printed. The pictures the commands draw (with matplotlib installed) are
copied to docs/tour/images/.

Then it fills docs/tour.md and docs/backward.md (PAGES): every block between `<!-- output NAME -->` (or
`<!-- output NAME lines 1-7,35-104 -->`, to show some lines of the file, "..." marking the
gaps) and `<!-- /output -->` is replaced by that file's lines, so what the page shows is what the
code prints. A number the prose quotes sits between `<!-- value NAME -->` and `<!-- /value -->`
and is rewritten from the output files by VALUES[NAME] (scripts/tour_read.py reads them), so a
sentence quotes the digits of the output beside it, whichever machine made it.
tests/test_tour.py checks that the tour page and the files agree, and
tests/test_explain_backward.py that backward.md's blocks do.
"""

import re
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tour import COMMANDS, REPO_ROOT, choices, run_command, run_dirs  # noqa: E402
from tour_read import VALUE, fill_values as fill_markers  # noqa: E402,F401  (VALUE: the tests read the markers with it)

OUTPUTS = REPO_ROOT / "docs" / "tour" / "outputs"
IMAGES = REPO_ROOT / "docs" / "tour" / "images"
PICTURES = ["{numbers}/head-spectra.png", "{numbers}/embeddings-source.png", "{numbers}/embeddings-source-change.png"]
PAGE = REPO_ROOT / "docs" / "tour.md"
PAGES = [PAGE, REPO_ROOT / "docs" / "backward.md"]
BLOCK = re.compile(r"<!-- output (?P<name>[\w-]+)(?: lines (?P<lines>[\d,-]+))? -->\n(?P<body>.*?)<!-- /output -->", re.S)


def selected_lines(text, spec):
    """The lines of an output file that a block shows: all, or the 1-based ranges in `spec`
    ("1-7,35-104"), with "..." where lines are left out."""
    lines = text.rstrip("\n").split("\n")
    if not spec:
        return lines
    shown, last = [], 0
    for part in spec.split(","):
        first, _, end = part.partition("-")
        first, end = int(first), int(end or first)
        if not 1 <= first <= end <= len(lines):
            raise ValueError(f"lines {part} is outside the {len(lines)} lines of the output")
        if first > last + 1:
            shown.append("...")
        shown += lines[first - 1 : end]
        last = end
    if last < len(lines):
        shown.append("...")
    return shown


def render_block(name, spec):
    """The text between a block's markers: the selected lines of OUTPUTS/name.txt, fenced."""
    text = (OUTPUTS / f"{name}.txt").read_text()
    return "```\n" + "\n".join(selected_lines(text, spec)) + "\n```\n"


def fill_page(page=PAGE):
    """Rewrite every output block of the tour page from the output files; returns how many."""
    text = page.read_text()
    count = len(BLOCK.findall(text))
    def fill(m):
        lines = f" lines {m.group('lines')}" if m.group("lines") else ""
        return f"<!-- output {m.group('name')}{lines} -->\n{render_block(m.group('name'), m.group('lines'))}<!-- /output -->"

    filled = BLOCK.sub(fill, text)
    page.write_text(filled)
    return count


def output(name):
    """The text of docs/tour/outputs/NAME.txt."""
    return (OUTPUTS / f"{name}.txt").read_text()


def fill_values(page=PAGE):
    """Rewrite every `<!-- value NAME -->` of the page from the output files; returns how many."""
    from tour_values import VALUES

    filled, count = fill_markers(page.read_text(), lambda name: VALUES[name](output))
    page.write_text(filled)
    return count


def main():
    runs = run_dirs()
    missing = [d for d in runs.values() if not (REPO_ROOT / d / "checkpoint.npz").exists()]
    if missing:
        raise SystemExit(f"not trained yet: {', '.join(missing)}; run `make tour` first")
    OUTPUTS.mkdir(parents=True, exist_ok=True)
    chosen = choices(runs)
    print("heads the page explains: " + ", ".join(f"{k} = {v}" for k, v in chosen.items()))
    for name, args in COMMANDS:
        start = time.perf_counter()
        shown, text = run_command(args, runs, chosen=chosen)
        (OUTPUTS / f"{name}.txt").write_text(f"$ {shown}\n{text}")
        print(f"{name:<28} {time.perf_counter() - start:5.1f} s   $ {shown}", flush=True)
    IMAGES.mkdir(parents=True, exist_ok=True)
    for picture in PICTURES:
        path = REPO_ROOT / picture.format(**runs)
        if path.exists():
            shutil.copy(path, IMAGES / path.name)
            print(f"copied {path.relative_to(REPO_ROOT)} to {(IMAGES / path.name).relative_to(REPO_ROOT)}")
    print(f"wrote {len(COMMANDS)} files to {OUTPUTS.relative_to(REPO_ROOT)}")
    for page in PAGES:
        print(f"filled {fill_page(page)} output blocks of {page.relative_to(REPO_ROOT)}")
    print(f"filled {fill_values()} values of {PAGE.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
