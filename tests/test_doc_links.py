"""The docs' links into the code are made from names by scripts/make_doc_links.py: the docs are
as that script leaves them, and moving code then moves the links with it."""

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("make_doc_links", ROOT / "scripts" / "make_doc_links.py")
make_doc_links = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_doc_links)


def anchors(text, file):
    """[(link text, first line)] of every link into `file` (a path under minitx/)."""
    return [(m[1], int(m[4])) for m in make_doc_links.CODE_LINK.finditer(text) if m[3] == file]


@pytest.mark.parametrize("doc", make_doc_links.docs(), ids=lambda p: p.name)
def test_every_code_link_is_where_the_script_puts_it(doc):
    text = doc.read_text()
    relinked = make_doc_links.relink(text, doc)
    before = [m.group(0) for m in make_doc_links.CODE_LINK.finditer(text)]
    after = [m.group(0) for m in make_doc_links.CODE_LINK.finditer(relinked)]
    stale = [f"{a}  should be  {b}" for a, b in zip(before, after) if a != b]
    assert not stale, f"run `python scripts/make_doc_links.py`; stale links in {doc.name}:\n" + "\n".join(stale)


def test_moving_code_and_rerunning_the_script_moves_every_link(tmp_path):
    shutil.copytree(ROOT / "minitx", tmp_path / "minitx", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "docs").mkdir()
    doc = tmp_path / "docs" / "backward.md"
    doc.write_text((ROOT / "docs" / "backward.md").read_text())
    moved = tmp_path / "minitx" / "nn" / "attention.py"
    moved.write_text("# two new lines at the top\n# move everything below them\n" + moved.read_text())

    old = anchors(doc.read_text(), "minitx/nn/attention.py")
    new = anchors(make_doc_links.relink(doc.read_text(), doc), "minitx/nn/attention.py")
    assert len(old) > 10, old
    assert new == [(text, line + 2) for text, line in old], list(zip(old, new))
    others = anchors(doc.read_text(), "minitx/model.py")
    assert anchors(make_doc_links.relink(doc.read_text(), doc), "minitx/model.py") == others


def fake_repo(root, code, doc_text):
    """root/minitx/m.py holding `code` and root/docs/d.md holding `doc_text`; returns the doc."""
    (root / "minitx").mkdir()
    (root / "minitx" / "m.py").write_text(code)
    (root / "docs").mkdir()
    doc = root / "docs" / "d.md"
    doc.write_text(doc_text)
    return doc


def test_a_link_to_a_name_that_is_gone_names_the_docs_line(tmp_path):
    doc = fake_repo(tmp_path, "def kept():\n    return 1\n", "See [`kept`](../minitx/m.py#L9).\nAnd [`renamed`](../minitx/m.py#L1).\n")
    with pytest.raises(LookupError, match=r"d\.md:2: no `renamed` defined in"):
        make_doc_links.relink(doc.read_text(), doc)
    doc.write_text("See [`kept`](../minitx/m.py#L9-L9).\n")
    assert make_doc_links.relink(doc.read_text(), doc) == "See [`kept`](../minitx/m.py#L1-L2).\n"


def test_a_quoted_line_must_be_one_line_of_code_not_a_comment(tmp_path):
    doc = fake_repo(tmp_path, "def f(x):\n    # forward: y = x + 1\n    y = x + 1\n    return y\n", "[`y = x + 1`](../minitx/m.py#L2)\n")
    assert make_doc_links.relink(doc.read_text(), doc) == "[`y = x + 1`](../minitx/m.py#L3)\n"
    assert make_doc_links.relink("[`return y`](../minitx/m.py#L1)\n", doc) == "[`return y`](../minitx/m.py#L4)\n"
    (tmp_path / "minitx" / "m.py").write_text("def f(x):\n    y = x + 1\n    y = x + 1\n    return y\n")
    with pytest.raises(LookupError, match=r"d\.md:1: `y = x \+ 1` starts 2 lines of code"):
        make_doc_links.relink(doc.read_text(), doc)
