"""The whole-model gradient check catches every planted slip of minitx.mutants' catalogue, with
the sample of entries the tests probe, in every variant where the slip's code runs; the harmless
changes pass; docs/backward.md shows the table a fresh run prints; and the catalogue itself can
fail: a slip the check misses, a harmless change it flags or a plant gone stale fails the
command."""

import dataclasses
import importlib.util
import re
from pathlib import Path

import pytest

from minitx import gradcheck, mutants
from minitx.cli import main
from minitx.exercises.breakit import Edit
from minitx.gradcheck import SAMPLE, Check, Variant
from minitx.nn import LayerNorm

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("make_gradcheck_doc", ROOT / "scripts" / "make_gradcheck_doc.py")
make_gradcheck_doc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_gradcheck_doc)

NUMBER = re.compile(r"^\d\.\d\de[+-]\d\d$")


def test_every_slip_is_caught_and_every_harmless_change_passes(catalogue):
    clean, results, text, ok = catalogue
    assert ok, text
    for variant, rows in clean.items():
        assert all(r.ok for r in rows), f"{variant}: the unplanted check fails\n{gradcheck.format_table(rows)}"
    for r in results:
        if not r.slip.harmless:
            assert len(r.caught_in()) == len(r.rows) > 0, f"{r.slip.name}: caught in {r.caught_in()} of {list(r.rows)}"


def test_the_catalogue_has_the_slips_it_promises():
    files = {slip.location()[0] for slip in mutants.SLIPS}
    want = {"minitx/nn/layers.py", "minitx/nn/layernorm.py", "minitx/nn/embedding.py", "minitx/nn/attention.py",
            "minitx/nn/loss.py", "minitx/model.py", "minitx/nn/fused.py", "minitx/lora.py"}
    assert len(mutants.SLIPS) >= 25, len(mutants.SLIPS)
    assert want <= files, f"no slip planted in {want - files}"
    assert all(slip.harmless for slip in mutants.HARMLESS) and not any(slip.harmless for slip in mutants.SLIPS)


def test_the_docs_show_what_a_fresh_run_prints(catalogue):
    _, _, text, _ = catalogue
    command, *shown = make_gradcheck_doc.block_lines((ROOT / "docs" / "backward.md").read_text(), "planted slips")
    assert command == f"$ {make_gradcheck_doc.MUTANTS_COMMAND}", command
    fresh = text.splitlines()
    assert len(shown) == len(fresh), "run `python scripts/make_gradcheck_doc.py`: the doc's table has another length"
    for number, (doc_line, line) in enumerate(zip(shown, fresh), start=1):
        doc_words, words = doc_line.split(), line.split()
        assert len(doc_words) == len(words), f"line {number}: the doc shows\n{doc_line}\na fresh run prints\n{line}"
        for a, b in zip(doc_words, words):
            if NUMBER.match(a) and NUMBER.match(b) and (float(a) <= gradcheck.THRESHOLD or float(b) <= gradcheck.THRESHOLD):
                # A passing error is rounding noise, whose digits differ between machines.
                assert float(a) <= gradcheck.THRESHOLD and float(b) <= gradcheck.THRESHOLD, (number, a, b)
            elif NUMBER.match(a) and NUMBER.match(b):
                assert abs(float(a) - float(b)) <= 0.02 * float(b), f"line {number}: the doc shows {a}, a fresh run {b}"
            else:
                assert a == b, f"line {number}: the doc shows\n{doc_line}\na fresh run prints\n{line}"


def test_sharing_the_clean_finite_differences_gives_the_same_check(catalogue):
    # mutants.run compares each slip's backward with the unplanted model's finite differences;
    # a check run from scratch with the slip planted gives the very same rows.
    _, results, _, _ = catalogue
    result = next(r for r in results if r.slip.name.startswith("LayerNorm: gamma forgotten"))
    variant = Variant()
    check = Check(variant, gradcheck.config_architecture("tiny")[0])
    mutants.plant_everywhere(check.objects(), result.slip)
    rows = check.rows(SAMPLE)
    assert [(r.name, r.rel_error) for r in rows] == [(r.name, r.rel_error) for r in result.rows[variant]]


def test_at_initial_values_a_forgotten_gamma_passes_the_check():
    # Why the check draws trained-looking values: at a new model's gains of exactly 1, these
    # slips compute the right numbers (the catalogue's run shows them caught at the drawn ones).
    slips = [s for s in mutants.SLIPS if "gamma" in s.name]
    assert len(slips) == 5, [s.name for s in slips]
    variants = (Variant(), Variant(fused=True))
    _, results = mutants.run(slips, gradcheck.config_architecture("tiny")[0], variants=variants, weights="initial")
    for r in results:
        assert not r.problem and r.rows and not r.caught_in(), f"{r.slip.name}: caught in {r.caught_in()} at initial values"


def test_a_slip_the_check_misses_or_a_harmless_change_it_flags_fails_the_command(monkeypatch, capsys):
    masked = mutants.HARMLESS[0]
    gamma = next(s for s in mutants.SLIPS if s.name.startswith("LayerNorm: gamma forgotten"))
    monkeypatch.setattr(mutants, "SLIPS", (dataclasses.replace(masked, harmless=""),))  # harmless, listed as a slip
    monkeypatch.setattr(mutants, "HARMLESS", (dataclasses.replace(gamma, harmless="said to change nothing"),))
    monkeypatch.setattr(gradcheck, "VARIANTS", (Variant(),))
    assert main(["gradcheck", "--mutants", "--sample", str(SAMPLE)]) == 1
    out = capsys.readouterr().out
    assert "1 of 1 planted slips NOT CAUGHT" in out and masked.name in out, out
    assert "1 changes listed as harmless are flagged" in out and gamma.name in out, out


def test_a_stale_plant_or_one_that_never_runs_is_named():
    stale = mutants.Slip("a line that is gone", (Edit(LayerNorm.backward, "dxhat = dout * gamma_of_old", "dxhat = dout"),))
    idle = mutants.Slip("planted where nothing calls it", (Edit(LayerNorm.backward, 'dxhat = dout * self.params["gamma"]', "dxhat = dout"),),
                         where="nowhere")
    clean, results = mutants.run([stale, idle], gradcheck.small_architecture(1, 1, 1), variants=(Variant(),))
    text, ok = mutants.describe(clean, results, "tiny", SAMPLE, (Variant(),))
    assert not ok
    assert "is gone from LayerNorm.backward" in results[0].problem, results[0].problem
    assert "planted nowhere" in results[1].problem, results[1].problem
    assert "2 changes could not be tried" in text, text
