"""Tasks, vocabularies and padded batches.

Two kinds of task:
  * algorithmic (copy, reverse, sort): random sequences over symbols "0", "1", ..., generated
    from the seed. The validation and test sets are drawn first and held out: the training
    sampler rejects any sequence that appears in either, so exact match measures generalisation.
  * tsv: the user's parallel text, one `source<TAB>target` pair per line, whitespace-tokenised
    (the English-to-French numbers task is one). Vocabularies come from the training file.

Every sequence is framed the same way (B batch, S source length, T target length):
    src     = x1 ... xn </s>          (B, S)   what the encoder reads
    tgt_in  = <s> y1 ... ym           (B, T)   what the decoder reads (shifted right)
    tgt_out = y1 ... ym </s>          (B, T)   what it must predict at each position
Batches are padded with <pad> to their own longest sequence; the model builds its masks from
the padding.
"""

import codecs
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from minitx import memory
from minitx.errors import UserError

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
SPECIAL_SET = frozenset(SPECIALS)


class Vocab:
    """A list of token strings; a token's id is its index. Ids 0-3 are the specials."""

    def __init__(self, tokens):
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, sequences):
        """The specials, then every token in order of first appearance (stable across runs)."""
        seen = dict.fromkeys(SPECIALS)
        for seq in sequences:
            seen.update(dict.fromkeys(seq))
        return cls(seen)

    def __len__(self):
        return len(self.itos)

    def encode(self, tokens):
        return [self.stoi.get(t, UNK) for t in tokens]

    def unknown(self, tokens):
        return [t for t in tokens if t not in self.stoi]

    def decode(self, ids):
        """Ids up to the first </s>, as tokens, skipping <s> and <pad>."""
        out = []
        for i in ids:
            if i == EOS:
                break
            if i not in (PAD, BOS):
                out.append(self.itos[i])
        return out


def tokenize(text, split_hyphens=False, split_apostrophes=False):
    """Whitespace split; with split_hyphens, "vingt-deux" becomes "vingt", "-", "deux", so the
    hyphenated French forms share their words with the unhyphenated ones. With
    split_apostrophes, "l'homme" becomes "l'", "homme": the elided article is a token of its
    own, which the model chooses like any other word, and "homme" is the same token as in
    "les hommes"."""
    tokens = text.split()
    if split_apostrophes:
        # Cut just after every apostrophe; a trailing one ("l'") leaves an empty part to drop.
        tokens = [part for tok in tokens for part in re.split(r"(?<=')", tok) if part]
    if not split_hyphens:
        return tokens
    out = []
    for tok in tokens:
        parts = tok.split("-")
        for i, part in enumerate(parts):
            if i:
                out.append("-")
            if part:
                out.append(part)
    return out


def detokenize(tokens, split_apostrophes=False):
    """The inverse of tokenize: "vingt - deux" is written back as "vingt-deux", and with
    split_apostrophes, "l' homme" as "l'homme"."""
    text = " ".join(tokens).replace(" - ", "-")
    if split_apostrophes:
        text = text.replace("' ", "'")
    return text


@dataclass
class Batch:
    src: np.ndarray  # (B, S) int
    tgt_in: np.ndarray  # (B, T) int
    tgt_out: np.ndarray  # (B, T) int

    @property
    def n_tokens(self):
        return int((self.src != PAD).sum() + (self.tgt_out != PAD).sum())


def pad_sources(src_ids):
    """Lists of ids -> (B, S) array with </s> appended and <pad> after it."""
    S = max(len(s) for s in src_ids) + 1
    src = np.full((len(src_ids), S), PAD, dtype=np.int64)
    for i, s in enumerate(src_ids):
        src[i, : len(s) + 1] = s + [EOS]
    return src


def make_batch(src_ids, tgt_ids):
    """Lists of id lists -> a padded Batch."""
    T = max(len(t) for t in tgt_ids) + 1
    tgt_in = np.full((len(tgt_ids), T), PAD, dtype=np.int64)
    tgt_out = np.full((len(tgt_ids), T), PAD, dtype=np.int64)
    for i, t in enumerate(tgt_ids):
        tgt_in[i, : len(t) + 1] = [BOS] + t
        tgt_out[i, : len(t) + 1] = t + [EOS]
    return Batch(pad_sources(src_ids), tgt_in, tgt_out)


class Task:
    """Pairs of token lists: a training sampler plus fixed validation and test sets."""

    # Tokens in the longest training target (without </s>), from which decoding's length limit
    # is worked out, and in the longest source; None when the training data is not at hand.
    longest_target = longest_source = None

    def __init__(self, src_vocab, tgt_vocab, splits, split_hyphens=False):
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.splits = splits  # name -> list of (src tokens, tgt tokens)
        self.split_hyphens = split_hyphens

    def to_text(self, tokens):
        """Tokens back to text as a user writes it: words joined by spaces, and hyphens joined
        back ("vingt - deux" -> "vingt-deux") when tokenize split them."""
        return detokenize(tokens) if self.split_hyphens else " ".join(tokens)

    def encode_pairs(self, pairs):
        return [self.src_vocab.encode(s) for s, _ in pairs], [self.tgt_vocab.encode(t) for _, t in pairs]

    def eval_batches(self, split, batch_size):
        """Yield (Batch, target id lists) over a held-out split, in order."""
        pairs = self.splits[split]
        for i in range(0, len(pairs), batch_size):
            src, tgt = self.encode_pairs(pairs[i : i + batch_size])
            yield make_batch(src, tgt), tgt


# Drawing a held-out pair takes about 16 microseconds: from 100,000 pairs on, long enough (over
# a second) to show progress rather than seem to hang.
SHOW_PROGRESS_FROM = 100_000


def lengths_of_test_split(d):
    """(shortest, longest) sequence of the test split: data.test_min_len and data.test_max_len,
    each 0 meaning the training split's own data.min_len or data.max_len."""
    return d.test_min_len or d.min_len, d.test_max_len or d.max_len


class AlgorithmicTask(Task):
    """Random sources over cfg.n_symbols symbols; each target is rule(source), computed on the
    symbol ids: copy, reverse and sort in TASKS below."""

    def __init__(self, cfg, seed, rule):
        self.rule, self.n_symbols = rule, cfg.n_symbols
        self.min_len, self.max_len = cfg.min_len, cfg.max_len
        self.longest_target = self.longest_source = cfg.max_len  # copy, reverse and sort keep the length
        symbols = [str(i) for i in range(cfg.n_symbols)]
        vocab = Vocab(SPECIALS + symbols)
        # Held-out sets come from their own seeds, so they do not shift with the training stream.
        # The test split may have lengths of its own (data.test_min_len, data.test_max_len).
        held = {}
        lengths = {"valid": (cfg.min_len, cfg.max_len), "test": lengths_of_test_split(cfg)}
        for name, n, stream in (("valid", cfg.n_valid, 1), ("test", cfg.n_test, 2)):
            rng = np.random.default_rng([seed, stream])
            draws = tqdm(range(n), desc=f"drawing the {name} set", disable=n < SHOW_PROGRESS_FROM, leave=False)
            held[name] = [self._pair(self._draw(rng, *lengths[name])) for _ in draws]
        self.held_out = {tuple(s) for pairs in held.values() for s, _ in pairs}
        # The training sampler rejects held-out sequences; it needs some left to draw.
        possible = sum(cfg.n_symbols**n for n in range(cfg.min_len, cfg.max_len + 1))
        trainable = [s for s in self.held_out if cfg.min_len <= len(s) <= cfg.max_len]
        if len(trainable) >= possible:
            raise UserError(
                f"data: the validation and test sets hold all {possible} possible sequences, leaving none "
                f"to train on; raise data.n_symbols or data.max_len, or lower data.n_valid and data.n_test"
            )
        super().__init__(vocab, vocab, held)

    def _draw(self, rng, min_len=None, max_len=None):
        """One random source sequence of symbol ids (offset past the specials), of a length
        from min_len to max_len (default: the training lengths)."""
        n = int(rng.integers(min_len or self.min_len, (max_len or self.max_len) + 1))
        return rng.integers(len(SPECIALS), len(SPECIALS) + self.n_symbols, size=n).tolist()

    def _pair(self, ids):
        src = [str(i - len(SPECIALS)) for i in ids]
        # Sorting compares symbol ids, so "10" comes after "9".
        tgt = [str(i - len(SPECIALS)) for i in self.rule(ids)]
        return src, tgt

    def train_batch(self, rng, batch_size):
        src_ids, tgt_ids = [], []
        while len(src_ids) < batch_size:
            ids = self._draw(rng)
            src, _ = self._pair(ids)
            if tuple(src) in self.held_out:
                continue  # never train on a held-out sequence
            src_ids.append(ids)
            tgt_ids.append(self.rule(ids))
        return make_batch(src_ids, tgt_ids)


def read_tsv(path, split_hyphens=False, max_tokens=None, truncate=False, split_apostrophes=False):
    """Read `source<TAB>target` lines; every problem names the file and line. A side longer
    than max_tokens is an error, or is cut to max_tokens when truncate is set."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    if raw.startswith(codecs.BOM_UTF8):
        # Some editors write this mark first; read as text it would become part of the first
        # source word, unseen. We refuse rather than strip it, so the file is fixed once.
        raise UserError(f"{path}: starts with a UTF-8 byte-order mark (BOM), which would become part of the first word; "
                        f"save the file as UTF-8 without a BOM (e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' {path})")
    pairs = []
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as e:
            raise UserError(f"{path}: line {lineno}: not valid UTF-8 (byte {e.start + 1})") from None
        if "\t" not in text:
            raise UserError(f"{path}: line {lineno}: no tab between source and target")
        src, tgt = text.split("\t", 1)
        if "\t" in tgt:
            raise UserError(f"{path}: line {lineno}: more than one tab (expected source<TAB>target)")
        src, tgt = tokenize(src, split_hyphens, split_apostrophes), tokenize(tgt, split_hyphens, split_apostrophes)
        if not src:
            raise UserError(f"{path}: line {lineno}: empty source")
        if not tgt:
            raise UserError(f"{path}: line {lineno}: empty target")
        for side, toks in (("source", src), ("target", tgt)):
            check_no_specials(toks, f"{path}: line {lineno}: the {side}")
        if max_tokens is not None:
            for side, toks in (("source", src), ("target", tgt)):
                if len(toks) > max_tokens and not truncate:
                    raise UserError(
                        f"{path}: line {lineno}: {side} has {len(toks)} tokens, more than model.max_len - 1 = "
                        f"{max_tokens} (raise model.max_len or set data.truncate: true)"
                    )
            src, tgt = src[:max_tokens], tgt[:max_tokens]
        pairs.append((src, tgt))
    if not pairs:
        if not raw:
            raise UserError(f"{path}: no sentence pairs (the file is empty)")
        lines = raw.split(b"\n")[: raw.count(b"\n") + (not raw.endswith(b"\n"))]  # a last newline ends a line
        spaced = [line for line in lines if line]  # lines of only tabs and spaces; the rest are empty
        what = "hold only tabs and spaces" if spaced else "are empty"
        raise UserError(f"{path}: no sentence pairs: its {len(lines)} line(s) {what} "
                        f"(expected source<TAB>target on each line)")
    return pairs


def check_no_specials(tokens, where, remedy="rename it in the data"):
    """Refuse a word spelt like one of minitx's special tokens: "</s>" in the data would be
    read as the end of the sequence, "<pad>" as padding the model never sees."""
    special = next((t for t in tokens if t in SPECIAL_SET), None)
    if special is not None:
        raise UserError(f"{where} holds the word {special}, which minitx keeps for its own special token "
                        f"({', '.join(SPECIALS)}) and would read as that token; {remedy}")


def warn_unseen(task, names):
    """Warn, naming them, about words in the held-out files that training never saw: they are
    read as <unk>. An unseen target word cannot be written at all, so a pair that needs one
    can never be exactly right."""
    for name in names:
        for side, vocab, index in (("source", task.src_vocab, 0), ("target", task.tgt_vocab, 1)):
            unseen = list(dict.fromkeys(w for pair in task.splits[name] for w in vocab.unknown(pair[index])))
            if unseen:
                listed = " ".join(unseen[:10]) + (f" and {len(unseen) - 10} more" if len(unseen) > 10 else "")
                consequence = "; no output can contain them" if side == "target" else ""
                print(f"warning: {task.paths[name]}: {len(unseen)} {side} word(s) never seen in training, read as <unk>"
                      f"{consequence}: {listed}", file=sys.stderr)


class TsvTask(Task):
    """The user's parallel data. Training pairs are sampled with replacement from the seeded
    generator, so a run's position in the data is just the generator's state."""

    def __init__(self, cfg, max_tokens):
        files = {"train": cfg.train, "valid": cfg.valid, "test": cfg.test}
        splits = {name: read_tsv(path, cfg.split_hyphens, max_tokens, cfg.truncate, cfg.split_apostrophes)
                  for name, path in files.items()}
        src_vocab = Vocab.build(s for s, _ in splits["train"])
        tgt_vocab = Vocab.build(t for _, t in splits["train"])
        self.train_ids = [(src_vocab.encode(s), tgt_vocab.encode(t)) for s, t in splits["train"]]
        self.longest_target = max(len(t) for _, t in splits["train"])
        self.longest_source = max(len(s) for s, _ in splits["train"])
        self.paths = files
        super().__init__(src_vocab, tgt_vocab, splits, cfg.split_hyphens)
        warn_unseen(self, ("valid", "test"))

    def train_batch(self, rng, batch_size):
        idx = rng.integers(0, len(self.train_ids), size=batch_size)
        return make_batch([self.train_ids[i][0] for i in idx], [self.train_ids[i][1] for i in idx])


# Every task data.task may name, each a function from the whole Config to its Task. The config
# accepts exactly these names: minitx.config reads this dict.
TASKS = {
    "copy": lambda cfg: AlgorithmicTask(cfg.data, cfg.train.seed, rule=list),
    "reverse": lambda cfg: AlgorithmicTask(cfg.data, cfg.train.seed, rule=lambda ids: ids[::-1]),
    "sort": lambda cfg: AlgorithmicTask(cfg.data, cfg.train.seed, rule=sorted),
    "tsv": lambda cfg: TsvTask(cfg.data, cfg.model.max_len - 1),
}


def load_task(cfg):
    """cfg: the whole Config. Returns a Task with train_batch(rng, B) and eval_batches().

    For copy, reverse and sort the config alone sizes the vocabulary, the held-out sets and
    the evaluation batches, so we refuse sizes this machine cannot hold before building them
    (minitx.memory); training's batches are checked with the model. A TSV task's sizes are
    those of its files."""
    d = cfg.data
    if d.task != "tsv":
        V, L = d.n_symbols + len(SPECIALS), max(d.max_len, d.test_max_len) + 1
        memory.check_model(cfg, V, V, np.float32, training=False)
        memory.check_batches(cfg, L, L, V, max(d.n_valid, d.n_test), training=False)
        memory.check_held_out(d)
    return TASKS[cfg.data.task](cfg)


def encode_input(text, cfg, task):
    """One user sentence -> (1, S) source ids, warning about words the model never saw."""
    tokens = tokenize(text, cfg.data.split_hyphens, cfg.data.split_apostrophes)
    if not tokens:
        raise UserError("the input is empty")
    check_no_specials(tokens, "the input", "leave it out")
    max_tokens = cfg.model.max_len - 1
    if len(tokens) > max_tokens:
        if not cfg.data.truncate:
            raise UserError(f"the input has {len(tokens)} tokens, more than model.max_len - 1 = {max_tokens} this model accepts")
        tokens = tokens[:max_tokens]
    unknown = task.src_vocab.unknown(tokens)
    if unknown:
        print(f"warning: not in the training vocabulary, read as <unk>: {' '.join(dict.fromkeys(unknown))}", file=sys.stderr)
    return pad_sources([task.src_vocab.encode(tokens)])
