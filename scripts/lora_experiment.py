"""Experiment: fine-tune a copy model to reverse, fully or through LoRA adapters of rank 1 to 16,
then ask whether the full fine-tuning update was effectively low rank.

    .venv/bin/python scripts/lora_experiment.py            # a few minutes
    .venv/bin/python scripts/lora_experiment.py --quick    # a 20-second smoke run
    .venv/bin/python scripts/lora_experiment.py --out DIR  # runs and tables in DIR, the docs untouched

What it does, all in runs/lowrank/ (which it clears first, so every timing is fresh):
  1. trains the base: the copy task, configs/tiny.yaml, until validation exact match is 1.0;
  2. fine-tunes it on reverse (same vocabulary) with configs/lora_reverse_full.yaml (every
     weight) and configs/lora_reverse.yaml at lora.rank = 1, 2, 4, 8, 16 (alpha fixed at 8, as
     the LoRA paper fixes alpha and varies r), plus rank 4 on W_q and W_v only (the paper's
     choice of targets) and full fine-tuning at two more learning rates, each with three seeds. Each run stops at validation exact match 1.0
     or after MAX_STEPS;
  3. measures the singular values of the full fine-tuning update W_full - W_base (seed 0), next to a
     random Gaussian matrix of the same shape for scale, and draws them all
     (docs/images/lowrank-full-update.png, with matplotlib);
  4. truncates that update to rank k in every attention and feed-forward matrix (Eckart-Young:
     the best rank-k approximation) and measures test exact match with it.

The tables are written between the lora_experiment markers in docs/lowrank.md (not with
--quick), and printed. Every number comes from this run.
"""

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

# One BLAS thread, set before NumPy loads. On a machine shared with other jobs, two BLAS threads
# fighting them for two cores made a training step swing from 25 ms to 1 s; with one thread the
# timings below are steady, and these small matrices gain little from a second thread anyway.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from minitx import checkpoint, lora
from minitx.tools import plots  # noqa: E402
from minitx.tools.lowrank import (analyse, effective_rank, energy, run_matrices, singular_values,  # noqa: E402
                            spectra_figure, truncate)
from minitx.inference import load_run  # noqa: E402
from minitx.train import evaluate, train  # noqa: E402
from lowrank_doc import DOC, read_metrics, write_section  # noqa: E402

IMAGE = REPO_ROOT / "docs" / "images" / "lowrank-full-update.png"
RANKS = (1, 2, 4, 8, 16)
MAX_STEPS = 1000  # fine-tuning budget; a run that reaches 100% stops there
SEEDS = (0, 1, 2)  # three fine-tuning runs per variant: one run's step count is noisy
EVAL_EVERY = 50  # finer than the configs' 100, so "steps to 100%" is measured to 50 steps
TRUNCATION_RANKS = (0, 1, 2, 4, 8, 16)
QUICK_DATA = ["data.n_valid=100", "data.n_test=100"]  # --quick: smaller held-out sets


def timed_train(config, overrides, out):
    start = time.perf_counter()
    train(config, overrides, out=out, quiet=True)
    return time.perf_counter() - start


def fine_tune_table(root, quick):
    """Every variant with every seed (the seed sets the data order and the adapters' A); the
    base is the same for all. Returns the markdown table."""
    seeds = SEEDS[:1] if quick else SEEDS
    common = [f"lora.base_run={root / 'copy'}", f"train.eval_every={EVAL_EVERY}",
              f"train.steps={60 if quick else MAX_STEPS}"] + (QUICK_DATA if quick else [])
    variants = [("full fine-tuning", "lora_reverse_full", [], "full")]
    # LoRA's update is scaled by alpha / r, so "same lr" does not mean "same step size": we also
    # run full fine-tuning at a third and at three times the lr, to be fair to it.
    variants += [(f"full fine-tuning, lr {lr}", "lora_reverse_full", [f"train.lr={lr}"], f"full-lr{lr}")
                 for lr in ("1e-3", "1e-2")]
    variants += [(f"LoRA r={r}", "lora_reverse", [f"lora.rank={r}"], f"r{r}") for r in RANKS]
    variants += [("LoRA r=4, W_q W_v only", "lora_reverse", ["lora.rank=4", "lora.targets=[W_q, W_v]"], "r4-qv")]
    lines = [f"| run | trained parameters | share of the model | valid exact match 1.0 at step (seeds {', '.join(map(str, seeds))}) | "
             "test exact match (mean) | wall time per run (s, mean) | ms per step, evaluations included | checkpoint (KB) |",
             "|---|---:|---:|---|---:|---:|---:|---:|"]
    full_params = None
    for label, config, extra, name in variants:
        reached, tests, seconds, steps = [], [], [], []
        for seed in seeds:
            out = root / f"{name}-seed{seed}"
            print(f"fine-tuning: {label}, seed {seed}", flush=True)
            seconds.append(timed_train(config, common + extra + [f"train.seed={seed}"], out))
            metrics = read_metrics(out)
            steps.append(metrics[-1]["step"])
            step = next((m["step"] for m in metrics if m["exact_match"] >= 1.0), None)
            reached.append(str(step) if step else f"not in {metrics[-1]['step']} ({metrics[-1]['exact_match']:.3f})")
            cfg, model, task = load_run(out)
            tests.append(evaluate(model, task, "test", cfg)["exact_match"])
        arrays = checkpoint.load(out / checkpoint.CHECKPOINT)
        trained = sum(v.size for k, v in arrays.items() if k.startswith("param/"))
        full_params = full_params or trained  # the first variant is full fine-tuning
        size_kb = (out / checkpoint.CHECKPOINT).stat().st_size / 1024
        lines.append(f"| {label} | {trained:,} | {trained / full_params:.1%} | {' / '.join(reached)} | "
                     f"{np.mean(tests):.3f} | {np.mean(seconds):.1f} | {1000 * sum(seconds) / sum(steps):.0f} | {size_kb:.0f} |")
    return "\n".join(lines)


def spectrum_table(root):
    """Singular values of every attention and feed-forward update of full fine-tuning."""
    updates = run_matrices(root / "full-seed0", root / "copy")
    _, base, _ = load_run(root / "copy")
    names = [n for n in updates if n in lora.target_names(base, ["W_q", "W_k", "W_v", "W_o", "ff"])]
    rng = np.random.default_rng(0)
    lines = ["| matrix | shape | \\|dW\\| / \\|W_base\\| | s_1 ... s_4 of dW | energy(1) | energy(4) | energy(8) | r90 | r99 |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|"]

    def row(label, shape, ratio, s):
        first = " ".join(f"{v:.3f}" for v in s[:4])
        return (f"| {label} | {shape} | {ratio} | {first} | {energy(s, 1):.2f} | {energy(s, 4):.2f} | "
                f"{energy(s, 8):.2f} | {effective_rank(s, 0.9)} | {effective_rank(s, 0.99)} |")

    r90s = []
    for name in names:
        dW, W0 = updates[name], base.params[name]
        s = singular_values(dW)
        r90s.append(effective_rank(s, 0.9))
        ratio = f"{np.linalg.norm(dW) / np.linalg.norm(W0):.3f}"
        lines.append(row(name, "x".join(map(str, dW.shape)), ratio, s))
    for shape in ((64, 64), (64, 256)):
        s = singular_values(rng.standard_normal(shape))
        lines.append(row("*random Gaussian, for scale*", "x".join(map(str, shape)), "-", s))
    summary = (f"Median effective rank at 90% energy over the {len(names)} updated matrices: "
               f"{int(np.median(r90s))} (smallest {min(r90s)}, largest {max(r90s)}); out of a possible 64.")
    return "\n".join(lines), summary


def truncation_table(root):
    """Test exact match of base + rank-k truncation of the full fine-tuning update, for each k."""
    cfg, model, task = load_run(root / "full-seed0")
    _, base, _ = load_run(root / "copy")
    finetuned = {k: v.copy() for k, v in model.params.items()}
    names = lora.target_names(model, ["W_q", "W_k", "W_v", "W_o", "ff"])
    lines = ["| rank k of every attention and feed-forward update | test exact match | test token accuracy |",
             "|---:|---:|---:|"]
    for k in TRUNCATION_RANKS + ("full",):
        for name in names:
            dW = finetuned[name].astype(np.float64) - base.params[name]
            kept = dW if k == "full" else truncate(dW, k)
            model.params[name][...] = base.params[name] + kept
        m = evaluate(model, task, "test", cfg)
        label = "full update (no truncation)" if k == "full" else str(k)
        lines.append(f"| {label} | {m['exact_match']:.3f} | {m['token_acc']:.3f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets, runs/lowrank-quick, docs untouched")
    parser.add_argument("--out", help="train into OUT and write the tables to OUT/lora_experiment.md instead of the docs "
                                      "(scripts/check_claims.py runs it so on each BLAS kernel)")
    args = parser.parse_args()
    root = Path(args.out).resolve() if args.out else REPO_ROOT / "runs" / ("lowrank-quick" if args.quick else "lowrank")
    if args.out and root.exists() and any(root.iterdir()):
        parser.error(f"--out {args.out}: not empty; give a new directory (we never delete what we did not make)")
    if root.exists():
        shutil.rmtree(root)
    # Config paths such as lora.base_run are relative to the repository root; train runs from it.
    os.chdir(REPO_ROOT)
    root = root.relative_to(REPO_ROOT) if root.is_relative_to(REPO_ROOT) else root
    started = time.perf_counter()
    print("training the base on copy (configs/tiny.yaml)", flush=True)
    base_overrides = ["train.steps=200"] + QUICK_DATA if args.quick else []
    base_seconds = timed_train("tiny", base_overrides, root / "copy")
    base_metrics = read_metrics(root / "copy")
    base_line = (f"Base: copy task (`configs/tiny.yaml`), validation exact match {base_metrics[-1]['exact_match']:.3f} "
                 f"at step {base_metrics[-1]['step']}, {base_seconds:.0f} s.")
    table = fine_tune_table(root, args.quick)
    spectrum, summary = spectrum_table(root)
    truncation = truncation_table(root)
    if args.quick or args.out:
        picture = "(no picture with --quick or --out)"
    elif not plots.have_matplotlib():
        picture = "No picture: matplotlib is not installed. " + plots.INSTALL_HINT
    else:
        updates = run_matrices(root / "full-seed0", root / "copy")
        spectra_figure([analyse(name, dW, 4) for name, dW in updates.items()], IMAGE,
                       "full fine-tuning copy -> reverse: singular values of every update W_full - W_base (seed 0)")
        picture = f"![spectra of the full fine-tuning update](images/{IMAGE.name})"
    total = time.perf_counter() - started
    text = "\n\n".join([
        base_line,
        "### Fine-tuning copy -> reverse\n\n" + table,
        "### Singular values of the full fine-tuning update dW = W_full - W_base\n\n" + spectrum + "\n\n" + summary,
        picture,
        "### Keeping only the top k singular directions of every update (Eckart-Young truncation)\n\n" + truncation,
        f"*Written by `scripts/lora_experiment.py` in {total / 60:.1f} minutes "
        f"(one BLAS thread, {os.cpu_count()} CPU cores).*",
    ])
    print("\n" + text)
    if args.out:
        (Path(args.out) / "lora_experiment.md").write_text(text + "\n")
    elif not args.quick:
        write_section(text, "lora_experiment")
        import lowrank_read  # the prose quotes the new tables: rewrite its numbers from them

        lowrank_read.fill_values()
        print(f"\nwrote the tables into {DOC.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
