"""The runs and commands of the tour (docs/tour.md), in one place.

    python scripts/tour.py             # train every run the tour needs (what `make tour` does)

RUNS are the four small runs the tour reads, each trained from a shipped config with
`python -m minitx train`; a run whose directory already holds a checkpoint is kept (delete the
directory to train it again). Together they take well under two minutes on two cores, and the
script prints each run's time and the total.

COMMANDS are the tour's commands, each with the name of the file that
scripts/make_tour_outputs.py writes its real output to (docs/tour/outputs/NAME.txt), and
tests/test_tour.py runs every one of them on tiny runs, so the page cannot name a command
that does not run. `{explain}`, `{copy}`, `{nocausal}` and `{numbers}` stand for the run
directories.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# name: (run directory, config, overrides)
RUNS = {
    "explain": ("runs/tour/explain", "explain", []),
    "copy": ("runs/tour/copy", "tour_copy", []),
    "nocausal": ("runs/tour/copy-nocausal", "tour_copy", ["model.causal=false"]),
    "numbers": ("runs/tour/numbers", "tour_numbers", []),
}

EXPLAIN_INPUT = "3 1 4 1 5"
NUMBERS_INPUT = "seven thousand two hundred forty one"
OTHER_INPUT = "nine hundred five"
NO_CROSS = "decoder.layers.0.cross_attn,decoder.layers.1.cross_attn"  # every cross-attention off

# (output name, the command's arguments after `python`)
COMMANDS = [
    ("attention-explain", ["-m", "minitx", "attention", "{explain}", EXPLAIN_INPUT, "--no-png"]),
    ("explain-cross", ["-m", "minitx", "explain", "{explain}", EXPLAIN_INPUT, "--kind", "cross", "--layer", "0", "--head", "0"]),
    ("explain-decoder", ["-m", "minitx", "explain", "{explain}", EXPLAIN_INPUT, "--kind", "decoder", "--head", "1"]),
    ("explain-encoder", ["-m", "minitx", "explain", "{explain}", EXPLAIN_INPUT, "--kind", "encoder"]),
    ("explain-backward", ["-m", "minitx", "explain", "{explain}", EXPLAIN_INPUT, "--kind", "cross", "--layer", "0", "--head", "0",
                          "--backward"]),
    ("explain-numbers", ["-m", "minitx", "explain", "{numbers}", NUMBERS_INPUT, "--kind", "cross", "--layer", "1", "--head", "0"]),
    ("trace-explain", ["-m", "minitx", "trace", "explain"]),
    ("translate-numbers", ["-m", "minitx", "translate", "{numbers}", NUMBERS_INPUT]),
    ("translate-no-cross", ["-m", "minitx", "translate", "{numbers}", NUMBERS_INPUT, "--ablate", NO_CROSS]),
    ("translate-no-cross-other", ["-m", "minitx", "translate", "{numbers}", OTHER_INPUT, "--ablate", NO_CROSS]),
    ("trace-numbers", ["-m", "minitx", "trace", "tour_numbers", "--depth", "1"]),
    ("attention-numbers", ["-m", "minitx", "attention", "{numbers}", NUMBERS_INPUT, "--kind", "cross", "--no-png"]),
    ("eval-numbers", ["-m", "minitx", "eval", "{numbers}", "--split", "valid"]),
    ("eval-ablate-cross", ["-m", "minitx", "eval", "{numbers}", "--split", "valid", "--ablate", "decoder.layers.1.cross_attn"]),
    ("eval-ablate-heads", ["-m", "minitx", "eval", "{numbers}", "--split", "valid", "--ablate",
                           "decoder.layers.0.self_attn.head1,decoder.layers.0.self_attn.head3"]),
    ("ablate-numbers", ["-m", "minitx", "ablate", "{numbers}"]),
    ("lowrank-heads-explain", ["-m", "minitx", "lowrank", "{explain}", "--heads"]),
    ("lowrank-heads-numbers", ["-m", "minitx", "lowrank", "{numbers}", "--heads", "--png"]),
    ("lab-masking", ["scripts/lab_masking.py", "{copy}", "{nocausal}"]),
    ("lab-scaling", ["scripts/lab_scaling.py"]),
    ("lab-lengths", ["scripts/lab_lengths.py", "{copy}"]),
    ("embeddings-numbers", ["-m", "minitx", "embeddings", "{numbers}", "--png", "{numbers}/embeddings-source.png"]),
    ("embeddings-numbers-change", ["-m", "minitx", "embeddings", "{numbers}", "--change", "--png", "{numbers}/embeddings-source-change.png"]),
]


def environment():
    """One BLAS thread unless the caller chose otherwise, as `make` does: the thread count changes
    the order of float additions, so this keeps runs and outputs the same as make's."""
    return {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}


def fill(args, runs):
    """Replace {name} in each argument by that run's directory."""
    return [a.format(**runs) for a in args]


def command_line(args, runs):
    """The command as a reader types it from the repository root."""
    return "python " + " ".join(a if a and " " not in a else f'"{a}"' for a in fill(args, runs))


def run_command(args, runs, cwd=REPO_ROOT):
    """Run one tour command; returns (the command line as a reader types it, its output).
    Raises CalledProcessError, output attached, if it fails."""
    argv = fill(args, runs)
    shown = command_line(args, runs)
    proc = subprocess.run([sys.executable] + argv, cwd=cwd, env=environment(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, shown, proc.stdout, proc.stderr)
    return shown, proc.stdout + proc.stderr


def train_runs(cwd=REPO_ROOT, extra=()):
    """Train every run that has no checkpoint yet; print and return the seconds each took."""
    seconds = {}
    for name, (run_dir, config, overrides) in RUNS.items():
        path = Path(cwd) / run_dir
        if (path / "checkpoint.npz").exists():
            print(f"{run_dir}: already trained (delete it to train again)")
            continue
        if path.exists():
            shutil.rmtree(path)  # a run stopped before its first checkpoint; start it afresh
        command = [sys.executable, "-m", "minitx", "train", config, "--quiet", "--out", run_dir]
        command += [a for o in list(overrides) + list(extra) for a in ("--set", o)]
        print("python " + " ".join(command[1:]), flush=True)
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, env=environment(), check=True)
        seconds[name] = time.perf_counter() - start
        print(f"  {seconds[name]:.1f} s", flush=True)
    return seconds


def main():
    start = time.perf_counter()
    seconds = train_runs()
    if seconds:
        print(f"trained {len(seconds)} run(s) in {time.perf_counter() - start:.1f} s "
              f"({os.cpu_count()} cores, OPENBLAS_NUM_THREADS={environment()['OPENBLAS_NUM_THREADS']})")
    print("every tour command works now; scripts/make_tour_outputs.py writes their outputs to docs/tour/outputs/")


if __name__ == "__main__":
    main()
