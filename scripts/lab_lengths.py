"""Lab: how do weights learned on some sequences work on new ones? Copy, tested length by length.

    python scripts/lab_lengths.py [RUN_DIR] [--longest N]      (default runs/tour/copy, N = 16)

configs/tour_copy.yaml trains copy on sequences of 1 to 10 symbols. For each length L from 1 to
N we build a test split of that length alone with the config keys data.test_min_len and
data.test_max_len, decode it greedily and count exact matches.

A test sequence of length <= 10 may have been drawn in training too (there are only 10^L
sequences of length L), so we replay the run's training stream (it is a seeded generator, so
it repeats exactly) and score only the sequences training never showed. The "trained on"
column counts the distinct training sequences of each length: a length inside the config's range
can still be missing, when the held-out sets took every sequence of it (length 1 has only 10). Those are new
sequences, made of symbols and positions the model has seen: the same weights W_Q, W_K, W_V,
W_O serve every position (nothing in their shapes mentions S or T), and what they learned, to
match a decoder position with the source position of the same index and carry its symbol,
applies to any such sequence.

Longer sequences need positions the model never trained on: a source of L symbols puts a symbol
at position L - 1 and </s> at L, and the decoder must write at positions up to L. The sinusoidal
encoding is defined there, but no weight was ever fitted to those vectors. We print where
the first mistake of each failed sequence falls: at positions the model has never seen.
"""

import argparse
import copy
import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from minitx import checkpoint  # noqa: E402
from minitx.data import EOS, load_task, pad_sources  # noqa: E402
from minitx.decode import greedy, length_limit  # noqa: E402
from minitx.inference import load_run  # noqa: E402

N_TEST = 200  # sequences per length
EXTRA = 10  # tokens we let the model write past the source's length, so a run-on shows as one


def training_sources(cfg, steps):
    """Every source sequence the run trained on: its data generator replayed for `steps`."""
    task = load_task(cfg)
    rng = np.random.default_rng([cfg.train.seed, 3])  # minitx.rundir.Run.data_rng
    seen = set()
    for _ in range(steps):
        batch = task.train_batch(rng, cfg.train.batch_size)
        for row in batch.src.tolist():
            seen.add(tuple(row[: row.index(EOS)]))
    return seen


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default="runs/tour/copy")
    parser.add_argument("--longest", type=int, default=16, help="test lengths 1 to this (default 16)")
    args = parser.parse_args()
    if not (Path(args.run_dir) / "checkpoint.npz").exists():
        raise SystemExit(f"{args.run_dir}: no trained run here; `make tour` trains it")
    cfg, model, _ = load_run(args.run_dir)
    d = cfg.data
    if d.task == "tsv":
        raise SystemExit(f"{args.run_dir}: a {d.task} run; this lab needs copy, reverse or sort")
    steps = int(checkpoint.load(Path(args.run_dir) / checkpoint.CHECKPOINT)["step"])
    seen = training_sources(cfg, steps)
    print(f"{args.run_dir}: {d.task}, trained {steps} steps on lengths {d.min_len} to {d.max_len} "
          f"({len(seen):,} distinct training sequences). {N_TEST} test sequences per length; "
          f"exact match counts only those training never showed.\n")
    trained = Counter(len(s) for s in seen)  # distinct training sequences of each length
    print(f"{'length':>6}  {'trained on':>10}  {'unseen':>6}  {'exact match':>11}  first mistake at output position (count)")
    for L in range(1, args.longest + 1):
        lab = copy.deepcopy(cfg)
        lab.data.test_min_len = lab.data.test_max_len = L
        lab.data.n_test = N_TEST
        lab.model.max_len = max(lab.model.max_len, L + 1)
        task = load_task(lab)
        pairs = task.splits["test"]
        src_ids, tgt_ids = task.encode_pairs(pairs)
        new = [i for i, s in enumerate(src_ids) if tuple(s) not in seen]
        if not new:
            print(f"{L:>6}  {trained[L]:>10,}  {0:>6}  {'-':>11}  (every test sequence was seen in training)")
            continue
        src = pad_sources([src_ids[i] for i in new])  # (n, L + 1)
        out = greedy(model, src, length_limit(model, L + EXTRA)).tolist()
        firsts = Counter()
        right = 0
        for i, row in zip(new, out):
            target = tgt_ids[i] + [EOS]
            written = row[: len(target)] + [None] * (len(target) - len(row))
            if written == target:
                right += 1
            else:
                firsts[next(p for p, (a, b) in enumerate(zip(written, target)) if a != b)] += 1
        mistakes = ", ".join(f"{p} ({n})" for p, n in sorted(firsts.items(), key=lambda x: -x[1])[:4]) or "-"
        print(f"{L:>6}  {trained[L]:>10,}  {len(new):>6}  {right / len(new):11.3f}  {mistakes}")
    print(f"\ntrained on: distinct training sequences of that length. unseen: the {N_TEST} test draws of that length that\n"
          f"training never showed, counted with their repeats (length 2 has only {d.n_symbols} ** 2 = {d.n_symbols ** 2}\n"
          f"possible sequences), so the two columns count different things. "
          f"Training showed source positions 0 to "
          f"{d.max_len} (the last holding </s>)\nand decoder output positions 0 to {d.max_len} (the last writing </s>). "
          f"Output position p is the (p+1)-th token written.")


if __name__ == "__main__":
    main()
