"""Time every command whose duration the docs state, and write the ranges into the docs.

    python scripts/time_docs.py                      # the tour's timings (a few minutes)
    python scripts/time_docs.py make-tour --repeat 3 # one of them, three times
    python scripts/time_docs.py --experiments        # also lowrank.md's two experiments (half an hour;
                                                     # they rewrite their tables in docs/lowrank.md)
    python scripts/time_docs.py --fill               # only rewrite the docs from docs/timings.json

A sentence such as "Set-up, once (<!-- time make-tour -->one to two minutes<!-- /time --> on two
cores)" gets its words from every measurement of `make-tour` kept in docs/timings.json: the
smallest and the largest, rounded outwards, as "50 to 90 seconds" or "4 to 6 minutes". Each
measurement keeps the machine's load average (the number of processes wanting a core, averaged
over the minute before) and its core count beside the seconds. A measurement started while more
processes wanted a core than there were cores says more about those processes than about the
command, so when a name has measurements started on a machine that was not oversubscribed, only
those count (`usable`); the others stay in the file, and count only when there is nothing else.
Measure on a quiet machine to narrow the ranges; delete a name's entries from docs/timings.json
to start it afresh. A record may say `how` it was measured, when not by this script.

What each name times (each from nothing: runs are trained into a temporary directory, so the
runs you have are never touched):
    make-tour         the four runs `make tour` trains (scripts/tour.py's RUNS)
    make-pictures     the four runs scripts/make_pictures.py trains
    phrases           python -m minitx train phrases
    lora-experiment   python scripts/lora_experiment.py   (with --experiments)
    heads-experiment  python scripts/heads_experiment.py  (with --experiments)
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "scripts"))

import tour  # noqa: E402

TIMINGS = REPO_ROOT / "docs" / "timings.json"
DOCS = [REPO_ROOT / "docs" / "tour.md", REPO_ROOT / "docs" / "lowrank.md", REPO_ROOT / "README.md"]
MARKER = re.compile(r"<!-- time (?P<name>[\w-]+) -->(?P<text>.*?)<!-- /time -->", re.S)
PICTURE_CONFIGS = ["tiny", "reverse", "numbers", "phrases"]  # scripts/make_pictures.py's runs


def make_tour(scratch):
    for name, run_dir in tour.run_dirs(scratch).items():
        _, config, overrides = tour.RUNS[name]
        tour.train_run(run_dir, config, overrides, quiet=True)


def make_pictures(scratch):
    for config in PICTURE_CONFIGS:
        tour.train_run(scratch / config, config, quiet=True)


def phrases(scratch):
    tour.train_run(scratch / "phrases", "phrases", quiet=True)


def experiment(script):
    def run(scratch):
        subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / script)], cwd=REPO_ROOT, env=tour.environment(),
                       check=True, stdout=subprocess.DEVNULL)
    return run


TIMED = {
    "make-tour": make_tour,
    "make-pictures": make_pictures,
    "phrases": phrases,
    "lora-experiment": experiment("lora_experiment.py"),
    "heads-experiment": experiment("heads_experiment.py"),
}
EXPERIMENTS = ("lora-experiment", "heads-experiment")


def load():
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def measure(name):
    """Run TIMED[name] once from nothing; return its record."""
    before = load()
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        TIMED[name](Path(scratch))
        seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 1), "load before": before, "load after": load(), "cores": os.cpu_count(),
            "date": date.today().isoformat()}


def phrase(seconds):
    """The words for a range of measured seconds, rounded outwards: "50 to 90 seconds",
    "2 to 4 minutes"."""
    lo, hi = min(seconds), max(seconds)
    if hi < 100:
        lo, hi = 10 * math.floor(lo / 10), 10 * math.ceil(hi / 10)
        return f"{max(lo, 10)} to {max(hi, lo + 10)} seconds"
    lo, hi = math.floor(lo / 60), math.ceil(hi / 60)
    return f"{max(lo, 1)} to {max(hi, lo + 1)} minutes"


def usable(records):
    """The records started with about one process per core or fewer (the load before, or after
    when the start was not recorded, at most the core count plus a half: the load average is an
    average, and our own timer is one of the processes), or all of them when none was."""
    def load_of(r):
        return r["load before"] if r["load before"] is not None else r["load after"]

    quiet = [r for r in records if load_of(r) is not None and load_of(r) <= r["cores"] + 0.5]
    return quiet or records


def fill(timings, docs=DOCS):
    """Rewrite every time marker of the docs from `timings`; returns the names found."""
    found = []
    for doc in docs:
        text = doc.read_text()

        def words(m):
            found.append(m.group("name"))
            records = timings.get(m.group("name"))
            if not records:
                raise SystemExit(f"{doc.name}: no measurement of {m.group('name')!r} in {TIMINGS.name}; "
                                 f"run python scripts/time_docs.py {m.group('name')}")
            return f"<!-- time {m.group('name')} -->{phrase([r['seconds'] for r in usable(records)])}<!-- /time -->"

        doc.write_text(MARKER.sub(words, text))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"what to time (default all but the experiments): {', '.join(TIMED)}")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--experiments", action="store_true", help="also time lowrank.md's two experiments")
    parser.add_argument("--fill", action="store_true", help="measure nothing; rewrite the docs from docs/timings.json")
    args = parser.parse_args()
    timings = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    if not args.fill:
        names = args.names or [n for n in TIMED if args.experiments or n not in EXPERIMENTS]
        unknown = [n for n in names if n not in TIMED]
        if unknown:
            parser.error(f"nothing called {', '.join(unknown)} to time (choose from {', '.join(TIMED)})")
        for name in names:
            for _ in range(args.repeat):
                record = measure(name)
                timings.setdefault(name, []).append(record)
                print(f"{name:<18} {record['seconds']:7.1f} s   load {record['load before']:.1f} -> "
                      f"{record['load after']:.1f} on {record['cores']} cores", flush=True)
                TIMINGS.write_text(json.dumps(timings, indent=1) + "\n")
    for name in dict.fromkeys(fill(timings)):
        print(f"{name:<18} {phrase([r['seconds'] for r in usable(timings[name])])}  "
              f"({len(usable(timings[name]))} of {len(timings[name])} measurements)")


if __name__ == "__main__":
    main()
