"""The claims docs/tour.md and docs/lowrank.md rest on (scripts/claims.py): every sentence marked
with a claim names one, every claim is cited, and the claims of the tour's first stops hold here,
on three seeds where they need no training. The whole set, on three seeds and two BLAS kernels,
is the slow suite: `make claims`, or `pytest -m slow`."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from minitx.config import resolve_config_path
from minitx.train import train

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import claims  # noqa: E402

DOCS = [REPO / "docs" / "tour.md", REPO / "docs" / "lowrank.md"]
MARKER = re.compile(r"<!-- claim ([\w-]+) -->")
FIRST_STOPS = [c for c in claims.CLAIMS if c.stop in (1, 2, 3)]


def cited(texts):
    """{claim name: [doc names citing it]} of the markers in {doc name: text}."""
    found = {}
    for doc, text in texts.items():
        for name in MARKER.findall(text):
            found.setdefault(name, []).append(doc)
    return found


def unknown_and_uncited(texts):
    found = cited(texts)
    return sorted(set(found) - set(claims.BY_NAME)), sorted(set(claims.BY_NAME) - set(found))


def test_every_marker_names_a_claim_and_every_claim_is_cited():
    texts = {doc.name: doc.read_text() for doc in DOCS}
    unknown, uncited = unknown_and_uncited(texts)
    assert not unknown, f"the docs cite claims scripts/claims.py does not list: {unknown}"
    assert not uncited, f"claims no sentence of the docs cites: {uncited}"


def test_the_marker_check_catches_a_misspelt_and_a_forgotten_claim():
    texts = {doc.name: doc.read_text() for doc in DOCS}
    first = claims.CLAIMS[0].name
    planted = {doc: text.replace(f"<!-- claim {first} -->", f"<!-- claim {first}s -->") for doc, text in texts.items()}
    unknown, uncited = unknown_and_uncited(planted)
    assert unknown == [f"{first}s"] and uncited == [first], (unknown, uncited)


def test_every_claim_is_complete():
    names = [c.name for c in claims.CLAIMS]
    assert len(names) == len(set(names)), "two claims share a name"
    for c in claims.CLAIMS:
        assert c.needs in claims.NEEDS, f"{c.name}: needs {c.needs!r}"
        assert c.says and callable(c.measure) and callable(c.holds), c.name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_first_stops_claims_that_need_no_training_hold(seed):
    results = claims.check(claims.Evidence(seed=seed), needs=("nothing",), names={c.name for c in FIRST_STOPS})
    assert results, "no claim of stops 1 to 3 needs no training: has the list changed?"
    failed = [(c.name, value) for c, value, ok in results if not ok]
    assert not failed, f"seed {seed}: {failed}"


@pytest.fixture(scope="module")
def tour_explain_run(tmp_path_factory):
    """The tour's explain run, trained here as `make tour` trains it (a few seconds): the claims
    need a run that has learned, not the session's 40-step explain_run."""
    return str(train(resolve_config_path("explain"), [], out=tmp_path_factory.mktemp("claims") / "explain", quiet=True))


def test_the_first_stops_claims_hold_on_the_explain_run(tour_explain_run):
    results = claims.check(claims.Evidence({"explain": tour_explain_run}), needs=("explain",))
    assert {c.name for c, _, _ in results} >= {c.name for c in FIRST_STOPS if c.needs == "explain"}
    table = "\n".join(f"{c.name:<26} {'holds' if ok else 'FAILS'}  {claims.shown(v)}" for c, v, ok in results)
    print(table)
    assert all(ok for _, _, ok in results), table


def test_the_explain_claims_fail_on_a_run_that_has_not_learned(tmp_path):
    # Sixty steps (the warmup is fifty): the heads have not found the copy yet, so the claim that
    # one has must fail.
    run = train(resolve_config_path("explain"), ["train.steps=60", "train.eval_every=60"], out=tmp_path / "early", quiet=True)
    results = {c.name: (v, ok) for c, v, ok in claims.check(claims.Evidence({"explain": str(run)}), needs=("explain",))}
    assert not results["copy-head"][1], f"copy-head holds after 60 steps: {results['copy-head'][0]}"


@pytest.mark.slow
def test_every_claim_holds_on_three_seeds_and_two_kernels():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "check_claims.py")], cwd=REPO, capture_output=True, text=True)
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
