"""Data facts: held-out sets are never trained on, targets are right, batches are framed and
padded as the model expects, and every bad data file gets a one-line error naming the line."""

from types import SimpleNamespace

import numpy as np
import pytest

from minitx.config import Config, DataConfig, load_config, resolve_config_path
from minitx.data import BOS, EOS, PAD, UNK, Vocab, detokenize, encode_input, load_task, make_batch, read_tsv, tokenize
from minitx.errors import UserError


def task_from(data):
    """The task a config with this data section builds (train.seed 0)."""
    return load_task(Config(data=data))


def algorithmic(task, n_symbols=10, min_len=3, max_len=6, n_held=200):
    return task_from(DataConfig(task=task, n_symbols=n_symbols, min_len=min_len, max_len=max_len, n_valid=n_held, n_test=n_held))


def test_no_held_out_sequence_is_ever_trained_on():
    # Length 2 over 3 symbols has only 9 sequences, so collisions are certain if we don't reject.
    task = algorithmic("copy", n_symbols=3, min_len=2, max_len=3, n_held=8)
    held = {tuple(s) for s, _ in task.splits["valid"] + task.splits["test"]}
    assert any(len(s) == 2 for s in held)
    rng = np.random.default_rng(0)
    for _ in range(50):
        batch = task.train_batch(rng, 32)
        for row in batch.src:
            tokens = tuple(task.src_vocab.decode(row.tolist()))
            assert tokens not in held, tokens


def test_holding_out_every_possible_sequence_is_an_error():
    with pytest.raises(UserError, match="hold all 36 possible sequences"):
        algorithmic("copy", n_symbols=3, min_len=2, max_len=3, n_held=200)


def test_targets_are_copied_reversed_and_sorted():
    for kind, rule in (("copy", list), ("reverse", lambda s: s[::-1]), ("sort", lambda s: sorted(s, key=int))):
        task = algorithmic(kind, n_symbols=12)
        for src, tgt in task.splits["valid"][:50]:
            assert tgt == rule(src), (kind, src, tgt)


def test_valid_and_test_sets_repeat_with_the_seed_and_differ_from_each_other():
    a, b = algorithmic("copy"), algorithmic("copy")
    assert a.splits == b.splits
    assert a.splits["valid"] != a.splits["test"]


def test_the_test_split_can_have_lengths_of_its_own():
    base = algorithmic("copy")
    cfg = DataConfig(task="copy", min_len=3, max_len=6, n_valid=200, n_test=200, test_min_len=8, test_max_len=9)
    longer = task_from(cfg)
    assert {len(s) for s, _ in longer.splits["test"]} == {8, 9}
    assert all(t == s for s, t in longer.splits["test"])
    # The validation split keeps the training lengths, and is the same as without the keys.
    assert longer.splits["valid"] == base.splits["valid"]
    # 0 means "as in training": the same test split as before the keys existed.
    same = task_from(DataConfig(task="copy", min_len=3, max_len=6, n_valid=200, n_test=200, test_min_len=0, test_max_len=6))
    assert same.splits == base.splits
    # Test sequences longer than any training one cannot use up the training space: 3 symbols
    # of length 2 give 9 sequences, and all 9 test draws are of length 5.
    task_from(DataConfig(task="copy", n_symbols=3, min_len=2, max_len=2, n_valid=4, n_test=9, test_min_len=5, test_max_len=5))


def test_batches_are_framed_and_padded_to_the_longest():
    batch = make_batch([[4, 5, 6], [7]], [[8, 9], [10, 11, 12]])
    assert batch.src.tolist() == [[4, 5, 6, EOS], [7, EOS, PAD, PAD]]
    assert batch.tgt_in.tolist() == [[BOS, 8, 9, PAD], [BOS, 10, 11, 12]]
    assert batch.tgt_out.tolist() == [[8, 9, EOS, PAD], [10, 11, 12, EOS]]


def test_hyphens_split_into_their_own_tokens_and_join_back():
    text = "quatre-vingt-dix-neuf mille"
    tokens = tokenize(text, split_hyphens=True)
    assert tokens == ["quatre", "-", "vingt", "-", "dix", "-", "neuf", "mille"]
    assert detokenize(tokens) == text
    assert tokenize(text) == ["quatre-vingt-dix-neuf", "mille"]


def test_apostrophes_split_after_themselves_and_join_back():
    text = "l'homme n'aime pas l'école"
    tokens = tokenize(text, split_apostrophes=True)
    assert tokens == ["l'", "homme", "n'", "aime", "pas", "l'", "école"], tokens
    assert detokenize(tokens, split_apostrophes=True) == text
    # Off by default: the same line reads as four tokens, and nothing is joined on the way out.
    assert tokenize(text) == ["l'homme", "n'aime", "pas", "l'école"]
    assert detokenize(["the", "dogs'", "bone"]) == "the dogs' bone"


def test_apostrophes_and_hyphens_split_together():
    tokens = tokenize("l'arc-en-ciel", split_hyphens=True, split_apostrophes=True)
    assert tokens == ["l'", "arc", "-", "en", "-", "ciel"], tokens
    assert detokenize(tokens, split_apostrophes=True) == "l'arc-en-ciel"


def test_read_tsv_splits_apostrophes_when_asked(tmp_path):
    path = write(tmp_path, "elided.tsv", "the man\tl'homme\n".encode("utf-8"))
    assert read_tsv(path, split_apostrophes=True) == [(["the", "man"], ["l'", "homme"])]
    assert read_tsv(path) == [(["the", "man"], ["l'homme"])]


def test_vocab_starts_with_the_specials_and_maps_unknown_words_to_unk():
    vocab = Vocab.build([["b", "a"], ["a", "c"]])
    assert vocab.itos[:4] == ["<pad>", "<s>", "</s>", "<unk>"] and vocab.itos[4:] == ["b", "a", "c"]
    assert vocab.encode(["a", "zzz"]) == [5, UNK]
    assert vocab.decode([5, 4, EOS, 6]) == ["a", "b"]


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "content, message",
    [
        (b"one\tun\ntwo deux\n", r"bad\.tsv: line 2: no tab"),
        (b"one\tun\n\tdeux\n", r"bad\.tsv: line 2: empty source"),
        (b"one\tun\ntwo\t  \n", r"bad\.tsv: line 2: empty target"),
        (b"", r"bad\.tsv: no sentence pairs"),
        (b"one\tun\ntr\xe8s\tvery\n", r"bad\.tsv: line 2: not valid UTF-8"),
        (b"a b c d e\tx\n", r"bad\.tsv: line 1: source has 5 tokens, more than model.max_len - 1 = 4"),
    ],
)
def test_bad_data_files_name_the_file_and_line(tmp_path, content, message):
    path = write(tmp_path, "bad.tsv", content)
    with pytest.raises(UserError, match=message):
        read_tsv(path, max_tokens=4)


def test_truncate_cuts_long_lines_instead(tmp_path):
    path = write(tmp_path, "long.tsv", b"a b c d e\tx\n")
    assert read_tsv(path, max_tokens=4, truncate=True) == [(["a", "b", "c", "d"], ["x"])]


def test_unseen_input_words_are_read_as_unk_with_a_warning(capsys):
    cfg = load_config(resolve_config_path("tiny"))
    task = SimpleNamespace(src_vocab=Vocab.build([["forty", "two"]]))
    src = encode_input("forty three two", cfg, task)
    assert src.tolist() == [[4, UNK, 5, EOS]]
    assert "not in the training vocabulary, read as <unk>: three" in capsys.readouterr().err


def test_an_input_longer_than_the_model_accepts_is_an_error():
    cfg = load_config(resolve_config_path("tiny"))
    task = SimpleNamespace(src_vocab=Vocab.build([["1"]]))
    with pytest.raises(UserError, match="more than model.max_len - 1"):
        encode_input(" ".join(["1"] * cfg.model.max_len), cfg, task)
