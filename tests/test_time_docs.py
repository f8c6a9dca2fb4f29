"""Every duration the docs state (`<!-- time NAME -->`) is the range of the measurements of NAME
that scripts/time_docs.py keeps in docs/timings.json, never a guess."""

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import time_docs  # noqa: E402


def test_every_stated_duration_is_the_range_of_its_measurements():
    timings = json.loads(time_docs.TIMINGS.read_text())
    for doc in time_docs.DOCS:
        for m in time_docs.MARKER.finditer(doc.read_text()):
            name = m.group("name")
            assert name in time_docs.TIMED, f"{doc.name}: nothing called {name!r} is timed"
            assert timings.get(name), f"{doc.name}: {name!r} was never measured; run python scripts/time_docs.py {name}"
            expected = time_docs.phrase([r["seconds"] for r in time_docs.usable(timings[name])])
            assert m.group("text") == expected, f"{doc.name}: {name} says {m.group('text')!r}, the measurements say {expected!r}"


def test_a_range_is_rounded_outwards():
    assert time_docs.phrase([88.5]) == "80 to 90 seconds"
    assert time_docs.phrase([41.0, 88.5]) == "40 to 90 seconds"
    assert time_docs.phrase([65.3, 412.2]) == "1 to 7 minutes"
    assert time_docs.phrase([270.0]) == "4 to 5 minutes"


def test_a_measurement_on_an_oversubscribed_machine_counts_only_when_there_is_no_other():
    quiet = {"seconds": 70.0, "load before": 1.5, "load after": 2.8, "cores": 2}
    busy = {"seconds": 200.0, "load before": 2.6, "load after": 4.9, "cores": 2}
    assert time_docs.usable([quiet, busy]) == [quiet]
    assert time_docs.usable([busy]) == [busy]
