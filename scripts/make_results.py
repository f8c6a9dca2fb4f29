"""The README's training table, from real runs: each shipped config trained as `make train`
trains it, then evaluated on its test split, greedy and with a beam of 4.

    python scripts/make_results.py [--kernels Haswell]

Each config is trained once on each BLAS kernel named (OpenBLAS's choice for this CPU by
default, plus any other given with OPENBLAS_CORETYPE's names), in its own process, into a
temporary directory that is removed afterwards. Other kernels add a product's terms in another
order, so the same config and seed train to other weights: the table shows how much that moves
the stopping step and the scores, which is what a reader on another machine should expect.
The table is written into README.md between `<!-- results -->` and `<!-- /results -->`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CONFIGS = [
    ("tiny", "copy, 10 symbols, length 10"),
    ("reverse", "reverse, 10 symbols, length 10"),
    ("sort", "sort, 10 symbols, length 10"),
    ("numbers", "English to French number words, 1-9999"),
    ("phrases", "English to French sentences"),
]
START, END = "<!-- results -->", "<!-- /results -->"


def minitx(args, env):
    return subprocess.run([sys.executable, "-m", "minitx", *args], capture_output=True, text=True, env=env, cwd=ROOT, check=True)


def kernel_of(env):
    """The BLAS kernels a process started with `env` uses, as threadpoolctl reports them."""
    code = "from minitx.threads import blas_kernels; print(blas_kernels())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True).stdout.strip()


def measure(config, env, scratch):
    """Train `config` and evaluate it: a dict of what the table shows."""
    run_dir = Path(scratch) / config
    start = time.perf_counter()
    minitx(["train", config, "--quiet", "--out", str(run_dir)], env)
    seconds = time.perf_counter() - start
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    greedy, beam = (json.loads(minitx(["eval", str(run_dir), "--split", "test", "--beam", b], env).stdout.splitlines()[0])
                    for b in ("1", "4"))
    return {"step": last["step"], "seconds": seconds, "valid": last["exact_match"], "greedy": greedy, "beam": beam}


def row(config, task, kernel, m):
    scores = f"{m['greedy']['exact_match']:.3f}, {m['beam']['exact_match']:.3f}"
    if "bleu" in m["greedy"]:
        scores += f" (BLEU {m['greedy']['bleu']:.2f}, chrF {m['greedy']['chrf']:.2f})"
    return f"| `{config}.yaml` | {task} | {kernel} | {m['step']} | {m['seconds']:.1f} s | {m['valid']:.3f} | {scores} |"


def table(rows):
    head = ["| config | task | BLAS kernels | stopped at step | wall time | valid exact match | test exact match (greedy, beam 4) |",
            "|---|---|---|---|---|---|---|"]
    return "\n".join(head + rows) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", default="", help="OPENBLAS_CORETYPE names to run besides this CPU's own choice, comma-separated")
    args = parser.parse_args()
    envs = [dict(os.environ, OPENBLAS_NUM_THREADS="1")]
    envs[0].pop("OPENBLAS_CORETYPE", None)
    envs += [dict(envs[0], OPENBLAS_CORETYPE=name) for name in filter(None, args.kernels.split(","))]
    kernels = [kernel_of(env) for env in envs]
    kernels[0] += " (its own)"
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for config, task in CONFIGS:
            for env, kernel in zip(envs, kernels):
                m = measure(config, env, Path(scratch) / kernel.split()[0])
                rows.append(row(config, task, kernel, m))
                print(rows[-1], flush=True)
    text = README.read_text()
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    README.write_text(before + START + "\n" + table(rows) + END + after)
    print(f"wrote {len(rows)} rows into {README.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
