"""Lab: how context changes a word's vector. The same source word in several inputs, layer by layer.

    python scripts/lab_context.py RUN_DIR WORD "INPUT 1" "INPUT 2" [...]
    python scripts/lab_context.py runs/tour/numbers one "one" "one hundred" "one thousand two"

Before the first encoder layer a token's vector is its embedding (times sqrt(D)) plus the
positional encoding of its position: it depends on the token and the position and on nothing
else. So when WORD sits at the same position in every input, its vectors there are identical,
cosine 1. Each encoder layer then adds to every vector what its self-attention fetched from the
other positions and what its feed-forward network made of that (x = x + ..., twice a layer), and
from the first layer on the vectors of WORD differ in each input: the other words have been mixed in.

We run the encoder's own steps one by one (Stack.embed, each EncoderLayer.forward, the closing
norm), keep WORD's vector after each, and print the cosine similarity between its vectors in
every pair of inputs. The last step, the memory, is what every cross-attention reads: the
decoder never sees the word itself, only this contextual vector. For scale we also print how
similar two different words are at the same position before any layer, over every pair of
words in the vocabulary.
"""

import argparse
import itertools
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from minitx.data import SPECIALS, detokenize, encode_input  # noqa: E402
from minitx.decode import greedy  # noqa: E402
from minitx.inference import load_run  # noqa: E402


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def encoder_steps(model, src):
    """src (1, S) -> [(name, x (S, D))]: the residual stream after each step of the encoder,
    computed with the encoder's own modules, in float64 only for the comparison."""
    encoder = model.encoder
    mask = model.source_mask(src)  # (1, 1, 1, S)
    x = encoder.embed(src)  # (1, S, D)
    steps = [("embedding + position", x[0])]
    for i, layer in enumerate(encoder.layers):
        x = layer.forward(x, mask)  # (1, S, D)
        steps.append((f"after encoder layer {i}", x[0]))
    if encoder.norm:
        x = encoder.norm.forward(x)  # (1, S, D)
        steps.append(("memory (after the final norm)", x[0]))
    memory, _ = model.encode(src)  # (1, S, D)
    assert np.array_equal(x, memory), "the steps above must be the encoder's own forward"
    return [(name, v.astype(np.float64)) for name, v in steps]


def word_position(src, word_id, text):
    positions = np.flatnonzero(src[0] == word_id)
    if len(positions) == 0:
        raise SystemExit(f"{text!r} does not contain the word")
    return int(positions[0])


def chance_similarity(model, task):
    """The mean cosine between the embeddings (times sqrt(D)) plus position 0 of two different
    source words, over every pair: how alike two words look before any context."""
    ids = [i for i, token in enumerate(task.src_vocab.itos) if token not in SPECIALS]
    x = model.encoder.embed(np.array(ids)[:, None])[:, 0].astype(np.float64)  # (V', D): every word at position 0
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T  # (V', V')
    return float(sim[np.triu_indices(len(ids), k=1)].mean())


def measure(run_dir, word, texts):
    """For each encoder step, the cosine of WORD's vectors in every pair of inputs; the inputs'
    translations; the word's position; and the chance similarity of two different words."""
    cfg, model, task = load_run(run_dir, need_data=False)
    word_id = task.src_vocab.stoi.get(word)
    if word_id is None:
        raise SystemExit(f"{word!r} is not in {run_dir}'s source vocabulary")
    sources = [encode_input(text, cfg, task) for text in texts]  # each (1, S)
    positions = {word_position(src, word_id, text) for src, text in zip(sources, texts)}
    if len(positions) != 1:
        raise SystemExit(f"{word!r} must sit at the same position in every input (found positions {sorted(positions)}), "
                         "so that before the first layer its vectors are the same")
    (position,) = positions
    steps = [encoder_steps(model, src) for src in sources]
    pairs = list(itertools.combinations(range(len(texts)), 2))
    table = []
    for depth, (name, _) in enumerate(steps[0]):
        table.append((name, [cosine(steps[a][depth][1][position], steps[b][depth][1][position]) for a, b in pairs]))
    outputs = []
    for src in sources:
        out = greedy(model, src, cfg.eval.max_output_len)[0].tolist()
        outputs.append(detokenize(task.tgt_vocab.decode(out), cfg.data.split_apostrophes))
    return dict(position=position, pairs=pairs, table=table, outputs=outputs, chance=chance_similarity(model, task))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("word")
    parser.add_argument("texts", nargs="+", metavar="INPUT")
    args = parser.parse_args()
    if len(args.texts) < 2:
        parser.error("give at least two inputs to compare")
    result = measure(args.run_dir, args.word, args.texts)
    letters = [chr(ord("A") + i) for i in range(len(args.texts))]
    width = max(len(t) for t in args.texts)
    print(f"{args.run_dir}: the source word {args.word!r} at position {result['position']} of {len(args.texts)} inputs")
    for letter, text, out in zip(letters, args.texts, result["outputs"]):
        print(f"  {letter}: {text:<{width}}  ->  {out}")
    labels = [f"{letters[a]}-{letters[b]}" for a, b in result["pairs"]]
    print(f"\ncosine similarity of {args.word}'s vectors in each pair of inputs, after each step of the encoder:")
    print(f"  {'':<32}" + "".join(f"{label:>8}" for label in labels))
    for name, cosines in result["table"]:
        print(f"  {name:<32}" + "".join(f"{c:8.3f}" for c in cosines))
    print(f"\nfor scale: two different words at position 0, before any layer, have cosine {result['chance']:.3f} "
          "on average (every pair of source words)")


if __name__ == "__main__":
    main()
