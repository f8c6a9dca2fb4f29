"""One example to look inside: an input, its target, and how we know the target.

`explain --backward` needs a loss, and a loss needs a target; `lens` needs the right token at
every position. We take, in this order:

  1. the target the user gave (--target);
  2. the reference target, where the run's task knows one: the task's rule for copy, reverse and
     sort, or the input's own line in the run's TSV files (valid, test, then train);
  3. otherwise the model's own greedy output, and we say so: the loss then measures how sure
     the model is of what it wrote, not whether it is right.

The decoder then reads <s> + the target (teacher forcing), exactly as in training.
"""

from dataclasses import dataclass

import numpy as np

from minitx.data import BOS, EOS, SPECIALS, AlgorithmicTask, detokenize, encode_input, load_task, tokenize
from minitx.decode import greedy, output_limit
from minitx.errors import UserError


@dataclass
class Example:
    src: np.ndarray  # (1, S) source ids, </s> last
    tgt_in: np.ndarray  # (1, T) <s> + target
    tgt_out: np.ndarray  # (1, T) target + </s>
    src_tokens: list  # S tokens
    in_tokens: list  # T tokens the decoder reads
    out_tokens: list  # T tokens it must predict
    greedy_tokens: list  # what the model wrote, </s> included if it wrote one
    origin: str  # where the target comes from, a phrase for the printout

    @property
    def agrees_with_greedy(self):
        return self.out_tokens == self.greedy_tokens

    def describe(self):
        """Lines saying what the example is, for the top of a printout."""
        lines = [f"input:  {detokenize(self.src_tokens[:-1])}",
                 f"target: {detokenize(self.out_tokens[:-1])}   ({self.origin})"]
        if self.origin.startswith("the model's own greedy output"):
            return lines
        written = detokenize([t for t in self.greedy_tokens if t != "</s>"]) or "(nothing: it wrote </s> first)"
        same = "the same" if self.agrees_with_greedy else "different: the decoder below reads the target, not this"
        return lines + [f"the model's greedy output: {written}   ({same})"]


def names(vocab, ids):
    """Ids -> their tokens, specials included ("<s>", "</s>")."""
    return [vocab.itos[i] for i in ids]


def reference(cfg, src_tokens):
    """(target tokens without </s>, where they come from), or (None, why not)."""
    try:
        task = load_task(cfg)
    except UserError as e:
        return None, f"the run's data could not be read ({e})"
    if isinstance(task, AlgorithmicTask):
        ids = task.src_vocab.encode(src_tokens)
        if min(ids) < len(SPECIALS):  # <unk>: a symbol the task does not use
            return None, "the input has symbols this task does not use"
        return names(task.tgt_vocab, task.rule(ids)), f"the {cfg.data.task} task's rule applied to the input: the reference"
    files = {"train": cfg.data.train, "valid": cfg.data.valid, "test": cfg.data.test}
    for split in ("valid", "test", "train"):
        for src, tgt in task.splits[split]:
            if src == src_tokens:
                return tgt, f"the input's target in {files[split]}, the {split} split: the reference"
    return None, "the input is in none of the run's data files"


def make_example(model, task, cfg, text, target=None):
    """The Example for `text`: its target from --target, the task, or greedy decoding."""
    src = encode_input(text, cfg, task)  # (1, S)
    src_tokens = names(task.src_vocab, src[0])
    written = greedy(model, src, output_limit(cfg, task)[0])[0].tolist()
    written = written[: written.index(EOS) + 1] if EOS in written else written
    greedy_tokens = names(task.tgt_vocab, written)
    if target is not None:
        tokens = tokenize(target, cfg.data.split_hyphens, cfg.data.split_apostrophes)
        unknown = task.tgt_vocab.unknown(tokens)
        if not tokens:
            raise UserError("--target is empty")
        if unknown:
            raise UserError(f"--target: not in this run's target vocabulary: {' '.join(dict.fromkeys(unknown))}")
        origin = "the target you gave with --target"
    else:
        tokens, why = reference(cfg, src_tokens[:-1])
        origin = why
        if tokens is None:
            tokens = [t for t in greedy_tokens if t != "</s>"]
            origin = (f"the model's own greedy output, as no reference is known ({why}): the loss measures "
                      f"how sure the model is of what it wrote")
    ids = task.tgt_vocab.encode(tokens)
    tgt_in = np.array([[BOS] + ids])  # (1, T)
    tgt_out = np.array([ids + [EOS]])  # (1, T)
    return Example(src, tgt_in, tgt_out, src_tokens, names(task.tgt_vocab, tgt_in[0]),
                   names(task.tgt_vocab, tgt_out[0]), greedy_tokens, origin)
