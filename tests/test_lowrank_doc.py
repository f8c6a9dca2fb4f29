"""docs/lowrank.md quotes its experiments' numbers from the tables the experiment scripts wrote
into it (`<!-- value NAME -->`, filled by scripts/lowrank_read.py), never typed by hand."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import lowrank_read  # noqa: E402


def mismatches(text):
    """[(value name, the page's text, what the tables say)] where they differ."""
    L, H = lowrank_read.lora_doc(text), lowrank_read.heads_doc(text)
    return [(m.group("name"), m.group("text"), lowrank_read.VALUES[m.group("name")](L, H))
            for m in lowrank_read.VALUE.finditer(text)
            if m.group("text") != lowrank_read.VALUES[m.group("name")](L, H)]


def test_every_number_the_prose_quotes_is_read_from_the_tables():
    text = lowrank_read.DOC.read_text()
    used = {m.group("name") for m in lowrank_read.VALUE.finditer(text)}
    assert used == set(lowrank_read.VALUES), (sorted(used - set(lowrank_read.VALUES)), sorted(set(lowrank_read.VALUES) - used))
    found = mismatches(text)
    assert not found, f"run python scripts/lowrank_read.py; (value, page, tables): {found}"


def test_a_table_that_changed_under_its_prose_is_caught():
    text = lowrank_read.DOC.read_text()
    planted = text.replace("| LoRA r=1 | 5,632 | 2.4% |", "| LoRA r=1 | 5,633 | 2.4% |")
    assert planted != text, "the rank-1 row of experiment 1's table has changed; update this test's plant"
    assert "rank-1-params" in [name for name, _, _ in mismatches(planted)]
