"""The docs cannot drift from the code: every relative link resolves, and the README's sample of
the gradient check matches a fresh check."""

import re
from pathlib import Path

from minitx import gradcheck

REPO = Path(__file__).resolve().parents[1]
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


def readme_block_after(heading):
    """The first ``` block after `heading` in the README, as lines."""
    text = (REPO / "README.md").read_text()
    section = text[text.index(heading):]
    start = section.index("```\n") + 4
    return section[start:section.index("```", start)].splitlines()


def test_the_readme_gradcheck_sample_matches_a_fresh_check():
    block = readme_block_after("## Gradient checks")
    title, rows = next(gradcheck.tables("tiny"))  # the first table: plain, pre-norm, tied output
    assert block[0] == title, f"README shows {block[0]!r}, the check prints {title!r}"
    fresh = {r.name: r for r in rows}
    sample = [line.split() for line in block[2:] if line.split() and line.split()[0] in fresh]
    assert len(sample) >= 4, block
    for name, shape, rel_error, _, ok in sample:
        r = fresh[name]
        assert shape == "x".join(map(str, r.shape)) and ok == ("yes" if r.ok else "NO"), (name, shape, ok, r)
        # The digits are rounding noise; their size is not.
        ratio = float(rel_error) / max(r.rel_error, 1e-300)
        assert 0.1 < ratio < 10, f"{name}: README shows {rel_error}, a fresh check gives {r.rel_error:.2e}"
    assert block[-1].endswith("(threshold 1e-06); 0 tensors failed"), block[-1]
