"""The runs and commands of the tour (docs/tour.md), in one place.

    python scripts/tour.py             # train every run the tour needs (what `make tour` does)

RUNS are the four small runs the tour reads, each trained from a shipped config with
`python -m minitx train`; a run whose directory already holds a checkpoint is kept (delete the
directory to train it again). docs/tour.md states how long they take (scripts/time_docs.py measures it), and the
script prints each run's time and the total.

COMMANDS are the tour's commands, each with the name of the file that
scripts/make_tour_outputs.py writes its real output to (docs/tour/outputs/NAME.txt), and
tests/test_tour.py runs every one of them on tiny runs, so the page cannot name a command
that does not run. `{explain}`, `{copy}`, `{nocausal}` and `{numbers}` stand for the run
directories, and `{copy_head}`, `{align_layer}`, `{align_head}` and `{costly_pair}` for the
heads that choices() finds in those runs: which head of a run does what depends on the machine that
trained it (another BLAS kernel adds floats in another order and training ends elsewhere), so
the page shows the head that does the job in its own run, and says so.
"""

import contextlib
import io
import os
import re
import runpy
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

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
# The French word of NUMBERS_INPUT's translation and the English word it translates, for the
# words that translate one word (et belongs to the pair "forty one" as a whole).
ALIGNMENT = {"sept": "seven", "mille": "thousand", "deux": "two", "cent": "hundred", "quarante": "forty", "un": "one"}
# The word whose vector lab_context.py follows, and three inputs that put it at the same position:
# French writes 70 as soixante-dix and 71 as soixante et onze, so "seventy" followed by "one"
# must be read differently from "seventy" alone or followed by "seven".
CONTEXT_WORD, CONTEXT_INPUTS = "seventy", ["seventy", "seventy one", "seventy seven"]

# (output name, the command's arguments after `python`)
COMMANDS = [
    ("attention-explain", ["-m", "minitx", "attention", "{explain}", EXPLAIN_INPUT, "--no-png"]),
    ("explain-cross", ["-m", "minitx", "explain", "{explain}", EXPLAIN_INPUT, "--kind", "cross", "--layer", "0", "--head", "{copy_head}"]),
    ("explain-decoder", ["-m", "minitx", "explain", "{explain}", EXPLAIN_INPUT, "--kind", "decoder", "--head", "1"]),
    ("explain-encoder", ["-m", "minitx", "explain", "{explain}", EXPLAIN_INPUT, "--kind", "encoder"]),
    ("explain-backward", ["-m", "minitx", "explain", "{explain}", EXPLAIN_INPUT, "--kind", "cross", "--layer", "0", "--head", "0",
                          "--backward"]),
    ("explain-numbers", ["-m", "minitx", "explain", "{numbers}", NUMBERS_INPUT, "--kind", "cross", "--layer", "{align_layer}",
                         "--head", "{align_head}"]),
    ("trace-explain", ["-m", "minitx", "trace", "explain"]),
    ("translate-numbers", ["-m", "minitx", "translate", "{numbers}", NUMBERS_INPUT]),
    ("translate-no-cross", ["-m", "minitx", "translate", "{numbers}", NUMBERS_INPUT, "--ablate", NO_CROSS]),
    ("translate-no-cross-other", ["-m", "minitx", "translate", "{numbers}", OTHER_INPUT, "--ablate", NO_CROSS]),
    ("trace-numbers", ["-m", "minitx", "trace", "tour_numbers", "--depth", "1"]),
    ("trace-numbers-8-heads", ["-m", "minitx", "trace", "tour_numbers", "--set", "model.n_heads=8"]),
    ("attention-numbers", ["-m", "minitx", "attention", "{numbers}", NUMBERS_INPUT, "--kind", "cross", "--no-png"]),
    ("eval-numbers", ["-m", "minitx", "eval", "{numbers}", "--split", "valid"]),
    ("eval-ablate-cross", ["-m", "minitx", "eval", "{numbers}", "--split", "valid", "--ablate", "decoder.layers.1.cross_attn"]),
    ("eval-ablate-heads", ["-m", "minitx", "eval", "{numbers}", "--split", "valid", "--ablate", "{costly_pair}"]),
    ("ablate-numbers", ["-m", "minitx", "ablate", "{numbers}"]),
    ("lowrank-heads-explain", ["-m", "minitx", "lowrank", "{explain}", "--heads"]),
    ("lowrank-heads-numbers", ["-m", "minitx", "lowrank", "{numbers}", "--heads", "--png"]),
    ("lab-masking", ["scripts/lab_masking.py", "{copy}", "{nocausal}"]),
    ("lab-scaling", ["scripts/lab_scaling.py", "{numbers}"]),
    ("lab-lengths", ["scripts/lab_lengths.py", "{copy}"]),
    ("lab-context", ["scripts/lab_context.py", "{numbers}", CONTEXT_WORD, *CONTEXT_INPUTS]),
    ("lab-linear", ["scripts/lab_linear.py", "{explain}", EXPLAIN_INPUT, "--head", "{copy_head}"]),
    ("lab-lowrank", ["scripts/lab_lowrank.py", "{explain}"]),
    ("embeddings-numbers", ["-m", "minitx", "embeddings", "{numbers}", "--png", "{numbers}/embeddings-source.png"]),
    ("embeddings-numbers-change", ["-m", "minitx", "embeddings", "{numbers}", "--change", "--png", "{numbers}/embeddings-source-change.png"]),
]


def environment():
    """One BLAS thread unless the caller chose otherwise, as `make` does: the thread count changes
    the order of float additions, so this keeps runs and outputs the same as make's."""
    return {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}


def attention_maps(run_dir, text):
    """{kind: (L, H, rows, columns) weights} of one teacher-forced pass over `text` and the
    run's greedy output of it, with the source and output tokens (minitx.tools.show.look)."""
    from minitx.inference import load_run
    from minitx.tools.show import look

    cfg, model, task = load_run(run_dir, need_data=False)
    src_tokens, out_tokens, maps = look(model, task, cfg, text)
    return src_tokens, out_tokens, {kind: m.weights for kind, m in maps.items()}


def copy_scores(run_dir):
    """(H,): how much weight each head of the explain run's first cross-attention puts, on
    average, on the source position it must copy next while writing EXPLAIN_INPUT."""
    _, _, maps = attention_maps(run_dir, EXPLAIN_INPUT)
    n = min(len(EXPLAIN_INPUT.split()), maps["cross"].shape[2])
    return maps["cross"][0][:, np.arange(n), np.arange(n)].mean(axis=-1)  # (H,)


def alignment_scores(run_dir):
    """(L, H): how much weight each cross-attention head of the numbers run puts, on average,
    on the English word each French word of NUMBERS_INPUT's translation translates (ALIGNMENT)."""
    src_tokens, out_tokens, maps = attention_maps(run_dir, NUMBERS_INPUT)
    rows = [(t, src_tokens.index(ALIGNMENT[w])) for t, w in enumerate(out_tokens) if w in ALIGNMENT]
    if not rows:
        return np.zeros(maps["cross"].shape[:2])
    return np.mean([maps["cross"][:, :, t, s] for t, s in rows], axis=0)  # (L, H)


PAIR_LAYER = "decoder.layers.0.self_attn"  # the attention whose two costliest heads stop 7 switches off together


def costly_pair(run_dir):
    """The two heads of PAIR_LAYER whose removal, one at a time, costs the numbers run the most
    validation exact match (as `minitx ablate` measures it), as an --ablate list."""
    from minitx.decode import greedy
    from minitx.inference import load_run
    from minitx.tools.ablate import eval_ablated, parse_specs

    cfg, model, task = load_run(run_dir, fused=False)
    heads = [f"{PAIR_LAYER}.head{h}" for h in range(cfg.model.n_heads)]
    exact = [eval_ablated(model, task, "valid", cfg, parse_specs(model, [head]), greedy)["exact_match"] for head in heads]
    return ",".join(heads[h] for h in sorted(np.argsort(exact, kind="stable")[:2]))


def choices(runs):
    """{placeholder: value} for the heads COMMANDS name: the explain run's copying head, and the
    numbers run's cross-attention head that best follows ALIGNMENT and costliest pair of heads
    (each when that run is given)."""
    chosen = {}
    if "explain" in runs:
        chosen["copy_head"] = str(int(copy_scores(runs["explain"]).argmax()))
    if "numbers" in runs:
        align = alignment_scores(runs["numbers"])
        layer, head = np.unravel_index(align.argmax(), align.shape)
        chosen.update(align_layer=str(layer), align_head=str(head), costly_pair=costly_pair(runs["numbers"]))
    return chosen


def fill(args, runs, chosen=None):
    """Replace {name} in each argument by that run's directory, or by that chosen head."""
    return [a.format(**runs, **(chosen or {})) for a in args]


def command_line(args, runs, chosen=None):
    """The command as a reader types it from the repository root."""
    return "python " + " ".join(a if a and " " not in a else f'"{a}"' for a in fill(args, runs, chosen))


def command_pattern(args, runs):
    """A regular expression matching the command line whatever heads were chosen."""
    placeholders = {name: "\x00" for name in ("copy_head", "align_layer", "align_head", "costly_pair")}
    return re.compile(re.escape(command_line(args, runs, placeholders)).replace("\x00", r"[\w.,]+") + "$")


def run_command(args, runs, cwd=REPO_ROOT, chosen=None):
    """Run one tour command; returns (the command line as a reader types it, its output).
    Raises CalledProcessError, output attached, if it fails."""
    argv = fill(args, runs, chosen)
    shown = command_line(args, runs, chosen)
    proc = subprocess.run([sys.executable] + argv, cwd=cwd, env=environment(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, shown, proc.stdout, proc.stderr)
    return shown, proc.stdout + proc.stderr


def run_in_process(argv):
    """Run `python ARGV` (a `-m minitx` command or a script) in this process; return what it
    printed, stdout then stderr, as run_command does in a subprocess."""
    from minitx.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            if argv[:2] == ["-m", "minitx"]:
                code = main(argv[2:])
            else:
                sys.argv = list(argv)
                try:
                    runpy.run_path(str(REPO_ROOT / argv[0]), run_name="__main__")
                    code = 0
                except SystemExit as e:
                    code = e.code or 0
    finally:
        sys.argv = saved
    if code:
        raise RuntimeError(f"python {' '.join(argv)} exited {code}:\n{out.getvalue()}{err.getvalue()}")
    return out.getvalue() + err.getvalue()


def run_dirs(root=None):
    """{name: run directory}: RUNS' own, or the same names under another directory `root`."""
    return {name: (run_dir if root is None else str(Path(root) / Path(run_dir).name)) for name, (run_dir, _, _) in RUNS.items()}


def train_run(run_dir, config, overrides=(), quiet=False):
    """`python -m minitx train CONFIG --out RUN_DIR --set ...`, unless RUN_DIR already holds a
    checkpoint; returns the seconds it took, or None if the run was there already. A directory
    without a checkpoint is a run stopped before its first save: we start it afresh."""
    path = REPO_ROOT / run_dir
    if (path / "checkpoint.npz").exists():
        return None
    if path.exists():
        shutil.rmtree(path)
    command = [sys.executable, "-m", "minitx", "train", config, "--quiet", "--out", str(run_dir)]
    command += [a for o in overrides for a in ("--set", o)]
    if not quiet:
        print("python " + " ".join(command[1:]), flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO_ROOT, env=environment(), check=True, stdout=subprocess.DEVNULL if quiet else None)
    return time.perf_counter() - start


def train_runs(dirs=None):
    """Train every run of RUNS that has no checkpoint yet, into `dirs` (default RUNS' own
    directories); print and return the seconds each took."""
    dirs = dirs or run_dirs()
    seconds = {}
    for name, (_, config, overrides) in RUNS.items():
        took = train_run(dirs[name], config, overrides)
        if took is None:
            print(f"{dirs[name]}: already trained (delete it to train again)")
        else:
            seconds[name] = took
            print(f"  {took:.1f} s", flush=True)
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
