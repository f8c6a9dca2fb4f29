"""Tests for the number-words data set: known spellings, and the committed TSV files."""

import subprocess
import sys
from pathlib import Path

import pytest

from minitx.numwords import english, french

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data" / "numbers"
SPLITS = ["train", "valid", "test"]


def test_french_known_forms():
    # Each of these exercises one rule of the traditional spelling (see minitx/numwords.py).
    known = {
        1: "un",
        11: "onze",
        16: "seize",
        17: "dix-sept",
        18: "dix-huit",
        19: "dix-neuf",
        20: "vingt",
        21: "vingt et un",
        22: "vingt-deux",
        31: "trente et un",
        61: "soixante et un",
        70: "soixante-dix",
        71: "soixante et onze",
        72: "soixante-douze",
        79: "soixante-dix-neuf",
        80: "quatre-vingts",
        81: "quatre-vingt-un",
        90: "quatre-vingt-dix",
        91: "quatre-vingt-onze",
        99: "quatre-vingt-dix-neuf",
        100: "cent",
        101: "cent un",
        180: "cent quatre-vingts",
        200: "deux cents",
        201: "deux cent un",
        280: "deux cent quatre-vingts",
        1000: "mille",
        1080: "mille quatre-vingts",
        1100: "mille cent",
        2000: "deux mille",
        2200: "deux mille deux cents",
        7777: "sept mille sept cent soixante-dix-sept",
        9999: "neuf mille neuf cent quatre-vingt-dix-neuf",
    }
    for n, want in known.items():
        got = french(n)
        assert got == want, (n, got, want)


def test_english_known_forms():
    known = {
        1: "one",
        13: "thirteen",
        21: "twenty one",
        71: "seventy one",
        80: "eighty",
        100: "one hundred",
        115: "one hundred fifteen",
        200: "two hundred",
        1000: "one thousand",
        1001: "one thousand one",
        2019: "two thousand nineteen",
        9999: "nine thousand nine hundred ninety nine",
    }
    for n, want in known.items():
        got = english(n)
        assert got == want, (n, got, want)


def test_spellings_are_distinct_and_well_formed():
    # If two numbers shared a spelling, the task would have no single right answer.
    for spell in (english, french):
        seen = {}
        for n in range(1, 10000):
            words = spell(n)
            assert words == words.strip() and "  " not in words, (spell.__name__, n, words)
            assert words not in seen, (spell.__name__, seen.get(words), n, words)
            seen[words] = n


def test_out_of_range_raises():
    for spell in (english, french):
        for n in (0, -1, 10000):
            with pytest.raises(ValueError):
                spell(n)


def test_script_regenerates_committed_files(tmp_path):
    script = REPO_ROOT / "scripts" / "make_numbers.py"
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    for split in SPLITS:
        committed = (DATA_DIR / f"{split}.tsv").read_bytes()
        regenerated = (tmp_path / f"{split}.tsv").read_bytes()
        assert regenerated == committed, (split, len(regenerated), len(committed))


def test_splits_are_disjoint_and_cover_every_number():
    # We map each French spelling back to its number through a full table, and check every
    # line's English side matches, so a swapped or mangled column also fails here.
    number_of = {french(n): n for n in range(1, 10000)}
    numbers_in = {}
    for split in SPLITS:
        lines = (DATA_DIR / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
        numbers_in[split] = []
        for line in lines:
            en, fr = line.split("\t")
            n = number_of[fr]
            assert en == english(n), (split, line, english(n))
            numbers_in[split].append(n)

    sizes = {split: len(numbers) for split, numbers in numbers_in.items()}
    assert sizes == {"train": 8000, "valid": 1000, "test": 999}, sizes
    everything = [n for numbers in numbers_in.values() for n in numbers]
    assert len(set(everything)) == len(everything), len(everything) - len(set(everything))
    missing = set(range(1, 10000)) - set(everything)
    assert not missing, sorted(missing)[:10]
