"""Draw the attention pictures in docs/images/ from four small trained runs.

    .venv/bin/pip install -e '.[plot]'      # matplotlib, once
    .venv/bin/python scripts/make_pictures.py

For each of the copy (configs/tiny.yaml), reverse, numbers and phrases tasks we train a run into
runs/pictures-<config>/ with `python -m minitx train <config> --quiet`, unless that directory
already holds a checkpoint, so a second invocation only redraws. docs/tour.md states how long
the four take (scripts/time_docs.py measures it), the phrases run most of it. Then we decode one input per task and save, under fixed names:

    copy-cross-attention.png            one head: output position i looks at source position i
    reverse-cross-attention.png         one head: output position i looks at position n-1-i
    numbers-cross-attention.png         one head aligning French words with English ones
    numbers-cross-attention-heads.png   every head of that head's layer, side by side
    copy-decoder-self-attention.png     every head of one layer: the causal mask's triangle
    phrases-<what>-cross-attention.png  English to French sentences (configs/phrases.yaml): a
                                        reordered adjective, agreement, negation and elision

Each single-head picture shows the head that best matches the alignment we expect (copy and
reverse) or the sharpest head (numbers), and says which one it is in its title. The script
prints every run's validation exact match, so a picture from a run that did not learn its
task is never mistaken for one that did.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

# We find the repository from this file's location, so the script works from any directory and
# `import minitx` works even without installing.
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from minitx import checkpoint
from minitx.tools import plots  # noqa: E402
from minitx.data import detokenize  # noqa: E402
from minitx.tools.show import look  # noqa: E402
from minitx.inference import load_run  # noqa: E402

IMAGES = REPO_ROOT / "docs" / "images"
# A permutation of the ten symbols: no symbol repeats, so each output position has exactly one
# source position holding its symbol, and the pattern cannot come from matching symbols alone.
DIGITS = "7 2 9 4 0 5 8 1 6 3"
RUNS = {
    # config: (task name, input, expected alignment of output position i for n source tokens)
    "tiny": ("copy", DIGITS, lambda i, n: i),
    "reverse": ("reverse", DIGITS, lambda i, n: n - 1 - i),
    "numbers": ("numbers", "seven thousand two hundred forty one", None),
}
# The phrases task, one sentence per thing French does differently from English (picture name:
# sentence). Each picture shows the sharpest head of the decoder layer whose heads are sharpest.
PHRASES = {
    "adjective": "the cat sees the red car",  # the adjective follows the noun: the alignment crosses
    "agreement": "the girl has the small red cars",  # article and adjectives agree with the noun
    "negation": "the dog does not eat",  # one English word, two French ones around the verb
    "elision": "the child does not like the tree",  # l' and n' depend on the next word's vowel
}


def ensure_trained(config):
    """Train runs/pictures-<config> unless it already holds a checkpoint; return its path."""
    run_dir = REPO_ROOT / "runs" / f"pictures-{config}"
    if (run_dir / checkpoint.CHECKPOINT).exists():
        print(f"{run_dir.relative_to(REPO_ROOT)}: using the existing checkpoint")
        return run_dir
    if run_dir.exists():
        # A run stopped before its first checkpoint; `train` would otherwise pick a new name.
        shutil.rmtree(run_dir)
    print(f"training {config} into {run_dir.relative_to(REPO_ROOT)} ...", flush=True)
    # One BLAS thread unless the caller chose otherwise, as `make train` does: the thread count
    # changes the order of float additions, so this keeps these runs identical to make's.
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "1")
    command = [sys.executable, "-m", "minitx", "train", config, "--quiet", "--out", str(run_dir), "--threads", threads]
    subprocess.run(command, cwd=REPO_ROOT, check=True)
    return run_dir


def last_exact_match(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return records[-1]["exact_match"], records[-1]["step"]


def alignment_score(weights, expected, n):
    """weights (L, H, T, S) -> (L, H): the mean weight each head puts on the expected source
    position, over the first n output rows (the </s> row has no source symbol to look at)."""
    rows = min(n, weights.shape[2])
    cols = [expected(i, n) for i in range(rows)]
    return weights[:, :, np.arange(rows), cols].mean(axis=-1)  # (L, H)


def sharpness(weights):
    """weights (L, H, T, S) -> (L, H): the mean over rows of the largest weight on a real
    source word. We leave out the last column, </s>, where a head with nothing to do often
    parks its attention; that would look sharp and show nothing."""
    return weights[..., :-1].max(axis=-1).mean(axis=-1)  # (L, H)


def main():
    if not plots.have_matplotlib():
        print(f"make_pictures.py draws with matplotlib, which is not installed. {plots.INSTALL_HINT}")
        return 1
    IMAGES.mkdir(parents=True, exist_ok=True)
    written, summary = [], []
    for config, (task_name, text, expected) in RUNS.items():
        run_dir = ensure_trained(config)
        exact, step = last_exact_match(run_dir)
        cfg, model, task = load_run(run_dir)
        src_tokens, out_tokens, maps = look(model, task, cfg, text)
        cross = maps["cross"]
        n = len(src_tokens) - 1  # source tokens before </s>
        score = alignment_score(cross.weights, expected, n) if expected else sharpness(cross.weights)
        layer, head = np.unravel_index(score.argmax(), score.shape)
        output = detokenize([t for t in out_tokens if t != "</s>"])
        summary.append(f"{task_name:<8} {config + '.yaml':<13} validation exact_match {exact:.3f} at step {step}; "
                       f"{text!r} -> {output!r}")
        why = "expected alignment" if expected else "sharpest head"
        title = (f"{task_name}: {text} -> {output}\n"
                 f"cross-attention, decoder layer {layer} head {head} ({why}; exact match {exact:.2f})")
        path = IMAGES / f"{task_name}-cross-attention.png"
        written.append(plots.attention_figure(cross, path, [layer], [head], title))
        if task_name == "numbers":
            path = IMAGES / "numbers-cross-attention-heads.png"
            title = f"numbers: {text} -> {output}\nevery head of decoder layer {layer}'s cross-attention"
            written.append(plots.attention_figure(cross, path, [layer], None, title))
        if task_name == "copy":
            path = IMAGES / "copy-decoder-self-attention.png"
            title = "copy: decoder self-attention, layer 0: each row sees only <s> and the tokens before it"
            written.append(plots.attention_figure(maps["decoder"], path, [0], None, title))
    run_dir = ensure_trained("phrases")
    exact, step = last_exact_match(run_dir)
    cfg, model, task = load_run(run_dir)
    for what, text in PHRASES.items():
        src_tokens, out_tokens, maps = look(model, task, cfg, text)
        cross = maps["cross"]
        layer, head = np.unravel_index(sharpness(cross.weights).argmax(), cross.weights.shape[:2])
        output = detokenize([t for t in out_tokens if t != "</s>"], cfg.data.split_apostrophes)
        summary.append(f"phrases  phrases.yaml  validation exact_match {exact:.3f} at step {step}; {text!r} -> {output!r}")
        title = (f"phrases ({what}): {text} -> {output}\n"
                 f"cross-attention, decoder layer {layer} head {head} (sharpest head; exact match {exact:.2f})")
        written.append(plots.attention_figure(cross, IMAGES / f"phrases-{what}-cross-attention.png", [layer], [head], title))
    print()
    print("\n".join(summary))
    print("\n".join(f"wrote {p.relative_to(REPO_ROOT)}" for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
