"""The docs cannot drift from the code: every relative link resolves, and the gradient check's
output shown in README.md and docs/backward.md (written by scripts/make_gradcheck_doc.py)
matches a fresh check."""

import importlib.util
import re
from pathlib import Path

import numpy as np

from minitx import gradcheck

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("make_gradcheck_doc", REPO / "scripts" / "make_gradcheck_doc.py")
make_gradcheck_doc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_gradcheck_doc)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_links(path):
    """(line number, target) for every Markdown link in `path` that is not a URL or an anchor."""
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        for target in LINK.findall(line):
            if not target.startswith(("http://", "https://", "#", "mailto:")):
                yield lineno, target


def test_every_relative_link_in_the_docs_points_at_a_file():
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        for lineno, target in relative_links(page):
            file = (page.parent / target.split("#")[0]).resolve()
            if not file.exists():
                broken.append(f"{page.relative_to(REPO)}:{lineno}: {target}")
    assert not broken, "links to missing files:\n" + "\n".join(broken)


def fresh_rows(catalogue):
    """The first table `gradcheck tiny` prints (plain, pre-norm, tied output), probed as the
    tests probe (the catalogue's clean run of that check): every tensor the docs show has at most
    SAMPLE entries, so it is probed whole and its row is the one the full check prints."""
    check = gradcheck.config_checks("tiny")[0]
    return check.title(), {r.name: r for r in catalogue[0][check.variant]}


def assert_rows_match(lines, fresh):
    """Every table row among `lines` against the fresh check's row of that name."""
    shown = [line.split() for line in lines if line.split() and line.split()[0] in fresh]
    assert shown, lines
    for name, shape, rel_error, _, ok in shown:
        r = fresh[name]
        assert shape == "x".join(map(str, r.shape)) and ok == ("yes" if r.ok else "NO"), (name, shape, ok, r)
        assert r.probed == np.prod(r.shape), f"{name}: the docs may show only tensors the sampled check probes whole"
        # The digits are rounding noise; their size is not, unless both are the noise of an
        # exact zero, far below anything the check could mistake for an error.
        if max(float(rel_error), r.rel_error) > 1e-12:
            ratio = float(rel_error) / max(r.rel_error, 1e-300)
            assert 0.1 < ratio < 10, f"{name}: the docs show {rel_error}, a fresh check gives {r.rel_error:.2e}"
    return shown


def test_the_gradcheck_samples_in_the_docs_match_a_fresh_check(catalogue):
    title, fresh = fresh_rows(catalogue)
    readme = make_gradcheck_doc.block_lines((REPO / "README.md").read_text(), "gradcheck sample")
    backward = (REPO / "docs" / "backward.md").read_text()
    assert readme[0] == title, f"README shows {readme[0]!r}, the check prints {title!r}"
    assert len(assert_rows_match(readme, fresh)) >= 4, readme
    assert readme[-1].endswith("(threshold 1e-06); 0 tensors failed"), readme[-1]
    assert make_gradcheck_doc.block_lines(backward, "gradcheck sample") == readme, "backward.md section 21 differs from the README"
    key_rows = assert_rows_match(make_gradcheck_doc.block_lines(backward, "key.b rows"), fresh)
    assert sorted(row[0] for row in key_rows) == sorted(n for n in fresh if n.endswith(".key.b")), key_rows


def test_every_python_block_of_the_readme_runs_as_written(capsys):
    blocks = re.findall(r"^```python\n(.*?)^```", (REPO / "README.md").read_text(), flags=re.M | re.S)
    assert blocks, "the README has no python block any more"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert "(2, 4, 3, 5)" in capsys.readouterr().out
