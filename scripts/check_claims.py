"""Check every claim of scripts/claims.py on several seeds and BLAS kernels; print the table.

    python scripts/check_claims.py                       # seeds 0 1 2, this machine's kernel and one other
    python scripts/check_claims.py --kernels all         # every kernel type this CPU offers
    python scripts/check_claims.py --needs nothing,explain --seeds 0   # the quick ones only
    python scripts/check_claims.py --experiments         # and docs/lowrank.md's (half an hour a kernel)

(`make claims` runs the first.) OpenBLAS picks its kernels (the hand-written inner loops of every
matrix product) for the CPU it finds, and each adds the same numbers in its own order, so a model
trained with another kernel ends with other weights, as it would on a learner's machine. OpenBLAS
lets a process ask for another kernel type with the environment variable OPENBLAS_CORETYPE, read
once when NumPy loads; so each (kernel, seed) pair runs in its own process, which trains the
tour's runs with that seed into RUNS_ROOT/KERNEL/seedN/ (kept: a second check only measures
again), measures every claim and writes claims.json there. docs/lowrank.md's claims read
scripts/lora_experiment.py's and heads_experiment.py's tables, which run three seeds each inside:
with --experiments we run both once per kernel (into RUNS_ROOT/KERNEL/experiments/) and show
them in the first seed's column. We use a kernel type only if the
CPU can run it (its instruction set extensions are in /proc/cpuinfo), if OpenBLAS reports it
in use (threadpoolctl's `architecture`), and if a fixed float32 matrix product comes out with
other bits than with the kernels already chosen: two names for one kernel would check nothing
twice. On a machine whose NumPy uses another BLAS (Apple's Accelerate, MKL) only the machine's
own kernel runs, and the table says so.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tour  # noqa: E402

REPO_ROOT = tour.REPO_ROOT
RUNS_ROOT = REPO_ROOT / "runs" / "claims"
SEEDS = (0, 1, 2)
# OpenBLAS's x86-64 kernel types, newest first, with the CPU flags each needs.
CANDIDATES = {
    "SkylakeX": ("avx512f", "avx512bw", "avx512vl", "avx512dq"),
    "Haswell": ("avx2", "fma"),
    "Zen": ("avx2", "fma"),
    "Sandybridge": ("avx",),
    "Nehalem": ("sse4_2",),
}
PROBE = """
import hashlib, json
import numpy as np
from threadpoolctl import threadpool_info
blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
rng = np.random.default_rng(0)
a = rng.standard_normal((64, 200)).astype(np.float32)
b = rng.standard_normal((200, 64)).astype(np.float32)
print(json.dumps({"architecture": blas[0].get("architecture") if blas else None,
                  "library": blas[0].get("internal_api") if blas else None,
                  "product": hashlib.sha1((a @ b).tobytes()).hexdigest()[:12]}))
"""


def environment(kernel):
    """The environment of a process that uses `kernel` (None: the machine's own choice)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    env.pop("OPENBLAS_CORETYPE", None) if kernel is None else env.update(OPENBLAS_CORETYPE=kernel)
    return env


def probe(kernel):
    out = subprocess.run([sys.executable, "-c", PROBE], env=environment(kernel), capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def cpu_flags():
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((l for l in text.splitlines() if l.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


def available_kernels(wanted=2):
    """[(OPENBLAS_CORETYPE value or None for the machine's own, architecture OpenBLAS reports)],
    the machine's own first, then other kernel types that really change the numbers, up to
    `wanted` in all (0: all of them)."""
    own = probe(None)
    chosen = [(None, own["architecture"] or own["library"] or "this machine's BLAS")]
    if own["library"] != "openblas":
        return chosen
    products = {own["product"]}
    flags = cpu_flags()
    for name, needs in CANDIDATES.items():
        if wanted and len(chosen) >= wanted:
            break
        if not set(needs) <= flags:
            continue
        found = probe(name)
        if found["architecture"] in [arch for _, arch in chosen] or found["product"] in products:
            continue
        products.add(found["product"])
        chosen.append((name, found["architecture"]))
    return chosen


def train(wanted, seed):
    """Train each {name: (run directory, config, overrides)} that has no checkpoint yet, with `seed`."""
    for name, (run_dir, config, overrides) in wanted.items():
        took = tour.train_run(run_dir, config, [*overrides, f"train.seed={seed}"], quiet=True)
        if took is not None:
            path = Path(run_dir)
            print(f"  trained {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path} in {took:.0f} s", flush=True)


def worker(seed, root, needs):
    """One kernel (this process's) and one seed: train what the claims need into `root`,
    measure them, write root/claims.json; return its record."""
    from threadpoolctl import threadpool_info

    import claims

    root = Path(root)
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    architecture = (blas[0].get("architecture") or blas[0].get("internal_api")) if blas else "no BLAS found"
    wanted = {}
    for name, run_dir in tour.run_dirs(root).items():
        if "tour" in needs or (name == "explain" and "explain" in needs):
            wanted[name] = (run_dir, tour.RUNS[name][1], tour.RUNS[name][2])
    if "phrases" in needs:
        wanted["phrases"] = (str(root / "phrases"), "phrases", [])
    train(wanted, seed)
    tick = time.perf_counter()
    evidence = claims.Evidence({name: d for name, (d, _, _) in wanted.items()}, seed, root / "outputs", root.parent / "experiments")
    results = claims.check(evidence, needs)
    record = {"architecture": architecture, "seed": seed, "seconds": round(time.perf_counter() - tick, 1),
              "claims": {c.name: {"value": claims.shown(v), "holds": ok} for c, v, ok in results}}
    root.mkdir(parents=True, exist_ok=True)
    (root / "claims.json").write_text(json.dumps(record, indent=1))
    failed = [c.name for c, _, ok in results if not ok]
    print(f"{architecture}, seed {seed}: {len(results) - len(failed)} of {len(results)} claims hold "
          f"({record['seconds']:.0f} s to measure)" + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return record


def table(records, columns):
    """The claim x (kernel, seed) table: a mark per cell, then every measured value."""
    import claims

    names = [c.name for c in claims.CLAIMS if any(c.name in r["claims"] for r in records.values())]
    width = max(len(n) for n in names)
    labels = [f"{arch} s{seed}" for arch, seed in columns]
    cell = max(len(label) for label in labels) + 2
    lines = [f"{'claim':<{width}}" + "".join(f"{label:>{cell}}" for label in labels)]
    for name in names:
        marks = []
        for column in columns:
            result = records[column]["claims"].get(name)
            marks.append("-" if result is None else "holds" if result["holds"] else "FAILS")
        lines.append(f"{name:<{width}}" + "".join(f"{m:>{cell}}" for m in marks))
    lines.append("\nmeasured values (scripts/claims.py says what each is):")
    for name in names:
        lines.append(f"{name}: {claims.BY_NAME[name].says}")
        for label, column in zip(labels, columns):
            result = records[column]["claims"].get(name)
            if result is not None:
                lines.append(f"    {label:<{cell}} {'' if result['holds'] else 'FAILS '}{result['value']}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--kernels", default="2",
                        help="how many kernel types (the machine's own first), 'all', or a comma list of OPENBLAS_CORETYPE names")
    parser.add_argument("--needs", default="nothing,explain,tour,phrases",
                        help="which claims: those needing nothing, the explain run, the tour runs, the phrases run, "
                             "the experiments")
    parser.add_argument("--experiments", action="store_true", help="add docs/lowrank.md's claims (--needs ...,experiments)")
    parser.add_argument("--root", default=str(RUNS_ROOT), help="where the runs are trained (default runs/claims)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    needs = args.needs.split(",") + (["experiments"] if args.experiments and "experiments" not in args.needs else [])
    if args.worker:
        worker(args.seed, args.root, needs)
        return 0
    if args.kernels.replace(",", "").isalpha() and args.kernels != "all":
        kernels = [(name, probe(name)["architecture"]) for name in args.kernels.split(",")]
    else:
        kernels = available_kernels(0 if args.kernels == "all" else int(args.kernels))
    print("kernels: " + ", ".join(f"{arch} ({'this machine' + chr(39) + 's own' if name is None else 'OPENBLAS_CORETYPE=' + name})"
                                  for name, arch in kernels), flush=True)
    if len(kernels) < 2 and not args.kernels.replace(",", "").isalpha():
        print("only one kernel type is available here: the claims run on it alone", flush=True)
    records, columns = {}, []
    start = time.perf_counter()
    for name, arch in kernels:
        for seed in args.seeds:
            root = Path(args.root) / arch / f"seed{seed}"
            per_seed = [n for n in needs if n != "experiments" or seed == args.seeds[0]]  # the experiments seed themselves
            command = [sys.executable, __file__, "--worker", "--seed", str(seed), "--root", str(root), "--needs", ",".join(per_seed)]
            subprocess.run(command, env=environment(name), check=True)
            record = json.loads((root / "claims.json").read_text())
            if record["architecture"] != arch:
                raise SystemExit(f"asked for {arch} but OpenBLAS used {record['architecture']}")
            records[arch, seed] = record
            columns.append((arch, seed))
    print()
    print(table(records, columns))
    failed = sum(not r["holds"] for record in records.values() for r in record["claims"].values())
    print(f"\n{len(columns)} (kernel, seed) pairs, {time.perf_counter() - start:.0f} s; "
          + (f"{failed} claim checks FAILED" if failed else "every claim holds on every one"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
