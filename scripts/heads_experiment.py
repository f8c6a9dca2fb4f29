"""Experiment: how many heads? The numbers task with H = 1, 2, 4, 8 heads at the same width D.

    .venv/bin/python scripts/heads_experiment.py            # several minutes
    .venv/bin/python scripts/heads_experiment.py --quick    # a smoke run of a minute or so
    .venv/bin/python scripts/heads_experiment.py --out DIR  # runs and table in DIR, the docs untouched

Splitting D = 128 into H heads of width K = D / H changes no parameter count: W_q, W_k, W_v and
W_o are (D, D) whatever H is; only how the query-key products are grouped changes. Each head
computes its own softmax over K of the D dimensions, so more heads can attend to several places
at once, each with a narrower view. We train configs/numbers.yaml (English number words to
French) with model.n_heads = 1, 2, 4, 8 for the same number of steps and seeds, with no early
stop, and compare validation exact match along the way. For the best setting we draw every
cross-attention head (docs/images/heads-numbers-cross-attention.png) with matplotlib, when it is
installed.

Runs go to runs/heads/ (cleared first); the table is written between the heads_experiment
markers in docs/lowrank.md (not with --quick), and printed.
"""

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

# One BLAS thread, as in lora_experiment.py: steady timings on a machine shared with other jobs.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from minitx.tools import plots  # noqa: E402
from minitx.data import EOS, PAD, detokenize  # noqa: E402
from minitx.tools.show import look  # noqa: E402
from minitx.inference import load_run  # noqa: E402
from minitx.train import evaluate, train  # noqa: E402
from lowrank_doc import DOC, read_metrics, write_section  # noqa: E402

IMAGE = REPO_ROOT / "docs" / "images" / "heads-numbers-cross-attention.png"
HEADS = (1, 2, 4, 8)
STEPS = 600  # the same budget for every H; numbers.yaml's own runs pass 0.99 near step 500
EVAL_EVERY = 100
SEEDS = (0, 1, 2)
EXAMPLE = "seven thousand two hundred forty one"


def head_sharpness(model, task, n=200):
    """(L, H): for each decoder layer's cross-attention heads, the mean over the first n
    validation examples' target positions of the largest weight on a real source word.

    1.0 means every row looks at one word; 1/S means spread evenly. We leave out </s>, where a
    head with nothing to do parks its attention, and the padding, which gets weight 0."""
    batch, _ = next(task.eval_batches("valid", n))
    model.train(False)
    model.forward(batch.src, batch.tgt_in)
    words = (batch.src != PAD) & (batch.src != EOS)  # (B, S)
    rows = batch.tgt_out != PAD  # (B, T)
    out = []
    for layer in model.decoder.layers:
        P = layer.cross_attn.attn  # (B, H, T, S)
        top = np.where(words[:, None, None, :], P, 0.0).max(axis=-1)  # (B, H, T)
        out.append((top * rows[:, None, :]).sum(axis=(0, 2)) / rows.sum())  # (H,)
    return np.array(out)  # (L, H)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 steps, one seed, runs/heads-quick, docs untouched")
    parser.add_argument("--out", help="train into OUT and write the table to OUT/heads_experiment.md instead of the docs "
                                      "(scripts/check_claims.py runs it so on each BLAS kernel)")
    args = parser.parse_args()
    out_dir = Path(args.out).resolve() if args.out else None
    os.chdir(REPO_ROOT)  # numbers.yaml names its data relative to the repository root
    root = out_dir or Path("runs") / ("heads-quick" if args.quick else "heads")
    if args.out and root.exists() and any(root.iterdir()):
        parser.error(f"--out {args.out}: not empty; give a new directory (we never delete what we did not make)")
    if root.exists():
        shutil.rmtree(root)
    steps, seeds = (100, SEEDS[:1]) if args.quick else (STEPS, SEEDS)
    eval_every = 50 if args.quick else EVAL_EVERY
    started = time.perf_counter()
    results = {}
    for H in HEADS:
        for seed in seeds:
            out = root / f"h{H}-seed{seed}"
            print(f"numbers, H = {H}, seed {seed}", flush=True)
            overrides = [f"model.n_heads={H}", f"train.seed={seed}", f"train.steps={steps}",
                         f"train.eval_every={eval_every}", "train.target_exact_match=0"]
            tick = time.perf_counter()
            train("numbers", overrides, out=out, quiet=True)
            seconds = time.perf_counter() - tick
            cfg, model, task = load_run(out)
            results[H, seed] = dict(metrics=read_metrics(out), seconds=seconds, n_params=model.n_params(),
                                    test=evaluate(model, task, "test", cfg)["exact_match"],
                                    sharpness=head_sharpness(model, task))
    eval_steps = [m["step"] for m in results[HEADS[0], seeds[0]]["metrics"]]

    lines = ["| H | K = D/H | parameters | " + " | ".join(f"valid exact match, step {s}" for s in eval_steps)
             + " | test exact match | sharpest cross-attention head, per decoder layer | wall time per run (s) |",
             "|---:|---:|---:|" + "---:|" * len(eval_steps) + "---:|---|---:|"]
    final = {}
    for H in HEADS:
        runs = [results[H, s] for s in seeds]
        curve = [np.mean([r["metrics"][i]["exact_match"] for r in runs]) for i in range(len(eval_steps))]
        cells = [" / ".join(f"{r['metrics'][i]['exact_match']:.3f}" for r in runs) for i in range(len(eval_steps))]
        final[H] = curve[-1]
        sharp = np.mean([r["sharpness"].max(axis=1) for r in runs], axis=0)  # (L,)
        lines.append(f"| {H} | {128 // H} | {runs[0]['n_params']:,} | " + " | ".join(cells)
                     + f" | {np.mean([r['test'] for r in runs]):.3f} | {', '.join(f'{v:.2f}' for v in sharp)} | "
                     f"{np.mean([r['seconds'] for r in runs]):.0f} |")
    best = max(HEADS, key=lambda H: final[H])
    notes = [f"Each cell lists the seeds ({', '.join(map(str, seeds))}) in order; the test column is their mean. "
             f"Sharpness: the largest weight a head puts on one source word, averaged over 200 validation "
             f"examples' output positions (1.0 = always one word), for the sharpest head of each decoder layer."]

    cfg, model, task = load_run(root / f"h{best}-seed{seeds[0]}")
    src_tokens, out_tokens, maps = look(model, task, cfg, EXAMPLE)
    output = detokenize([t for t in out_tokens if t != "</s>"])
    if args.quick or args.out:
        picture = "(no picture with --quick or --out)"
    elif not plots.have_matplotlib():
        picture = "No picture: matplotlib is not installed. " + plots.INSTALL_HINT
    else:
        title = (f"numbers, H = {best} (the best after {steps} steps, seed {seeds[0]}): {EXAMPLE} -> {output}\n"
                 f"cross-attention, every layer and head")
        plots.attention_figure(maps["cross"], IMAGE, title=title)
        picture = (f"Cross-attention of every head of the best setting, H = {best} (seed {seeds[0]}), "
                   f"on \"{EXAMPLE}\" -> \"{output}\":\n\n![heads](images/{IMAGE.name})")
    total = time.perf_counter() - started
    text = "\n\n".join([
        f"Numbers task (`configs/numbers.yaml`: D = 128, 2 + 2 layers, dropout 0.1, label smoothing "
        f"0.1, warmup 400), {steps} steps for every H, no early stop.",
        "\n".join(lines), notes[0], picture,
        f"*Written by `scripts/heads_experiment.py` in {total / 60:.1f} minutes "
        f"(one BLAS thread, {os.cpu_count()} CPU cores).*",
    ])
    print("\n" + text)
    if out_dir:
        (out_dir / "heads_experiment.md").write_text(text + "\n")
    elif not args.quick:
        write_section(text, "heads_experiment")
        import lowrank_read  # the prose quotes the new tables: rewrite its numbers from them

        lowrank_read.fill_values()
        print(f"\nwrote the table into {DOC.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
