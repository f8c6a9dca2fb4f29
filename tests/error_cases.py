"""Every bad input a user can give minitx, with the one-line error it must get.

Each case is (what the user did, a setup function that prepares files in the current directory
and returns the command-line arguments, a regular expression the message must match). The tests
in test_errors.py run each case through the real command line; scripts/make_errors_doc.py runs
the same cases to write the table in docs/errors.md, so the documented messages are real.
"""

import re
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "configs" / "tiny.yaml"
FAST = ["--set", "train.steps=2", "--set", "train.eval_every=2", "--set", "data.n_valid=4", "--set", "data.n_test=4", "--quiet"]


def as_documented(message):
    """A message as docs/errors.md shows it: the same on every machine (the repository path and
    the machine's memory size stand as <repo> and <N>), with no "|" to break the table."""
    message = message.replace(str(ROOT), "<repo>").replace("|", "/")
    return re.sub(r"it has [0-9.e+]+ GB of memory", "it has <N> GB of memory", message)


def config(text, name="my.yaml"):
    Path(name).write_text(text)
    return name


def tsv_config(train=b"one\tun\ntwo\tdeux\n"):
    Path("train.tsv").write_bytes(train)
    Path("valid.tsv").write_bytes(b"one\tun\n")
    Path("test.tsv").write_bytes(b"two\tdeux\n")
    return config("data:\n  task: tsv\n  train: train.tsv\n  valid: valid.tsv\n  test: test.tsv\n")


def trained_run():
    from minitx.cli import main

    # tiny's cosine schedule warms up for 50 steps, more than these 2
    assert main(["train", str(TINY), "--out", "run", "--set", "train.warmup=0"] + FAST) == 0
    return "run"


def train(cfg, *extra):
    return ["train", cfg, "--out", "out"] + FAST + list(extra)


def corrupt(data):
    def setup():
        run = trained_run()
        path = Path(run) / "checkpoint.npz"
        path.write_bytes(data(path.read_bytes()))
        return ["eval", run]
    return setup


def incompatible():
    run = trained_run()
    text = (Path(run) / "config.yaml").read_text().replace("d_ff: 256", "d_ff: 128")
    (Path(run) / "config.yaml").write_text(text)
    return ["eval", run]


CASES = [
    ("config file not found", lambda: train("nope.yaml"), r"config 'nope.yaml' not found"),
    ("invalid YAML", lambda: train(config("model:\n  d_model: 64\n  n_heads: [4\n")), r"my.yaml: line \d+: invalid YAML"),
    ("unknown key (with a suggestion)", lambda: train(config("model:\n  d_modle: 64\n")), r"my.yaml: model.d_modle: unknown key \(did you mean 'd_model'\?\)"),
    ("unknown section", lambda: train(config("modle:\n  d_model: 64\n")), r"my.yaml: modle: unknown section"),
    ("wrong type", lambda: train(config("train:\n  steps: ten\n")), r"my.yaml: train.steps: expected an integer, got 'ten'"),
    ("D not divisible by H", lambda: train(config("model:\n  d_model: 64\n  n_heads: 5\n")), r"my.yaml: model.d_model: .*divisible"),
    ("zero or negative size", lambda: train(config("model:\n  d_ff: 0\n")), r"my.yaml: model.d_ff: .*"),
    ("dropout outside [0, 1)", lambda: train(config("model:\n  dropout: 1.0\n")), r"my.yaml: model.dropout: "),
    ("warmup longer than a cosine schedule", lambda: train(config("train:\n  schedule: cosine\n  steps: 10\n  warmup: 20\n")), r"my.yaml: train.warmup: "),
    ("missing data file", lambda: train(config("data:\n  task: tsv\n  train: no.tsv\n  valid: no.tsv\n  test: no.tsv\n")), r"my.yaml: data.train: file 'no.tsv' does not exist"),
    ("--set with a bad path", lambda: ["train", str(TINY), "--set", "model.width=3"], r"--set model.width: unknown key"),
    ("--set with a bad value", lambda: ["train", str(TINY), "--set", "train.lr=fast"], r"--set train.lr: expected a number"),
    ("--set without '='", lambda: ["train", str(TINY), "--set", "train.lr"], r"--set train.lr"),
    ("data line without a tab", lambda: train(tsv_config(b"one\tun\ntwo deux\n")), r"train.tsv: line 2: no tab"),
    ("empty source", lambda: train(tsv_config(b"one\tun\n\tdeux\n")), r"train.tsv: line 2: empty source"),
    ("empty target", lambda: train(tsv_config(b"one\tun\ntwo\t\n")), r"train.tsv: line 2: empty target"),
    ("empty data file", lambda: train(tsv_config(b"")), r"train.tsv: no sentence pairs"),
    ("bytes that are not UTF-8", lambda: train(tsv_config(b"one\tun\ntr\xe8s\tvery\n")), r"train.tsv: line 2: not valid UTF-8"),
    ("a data line longer than the model accepts", lambda: train(tsv_config(b"one\tun\n" + b"x " * 80 + b"\tdeux\n")), r"train.tsv: line 2: source has 80 tokens"),
    ("held-out sets leave nothing to train on", lambda: train(str(TINY), "--set", "train.warmup=0", "--set", "data.n_symbols=2", "--set", "data.min_len=2", "--set", "data.max_len=2"), r"hold all 4 possible sequences"),
    ("--resume with nothing to resume", lambda: ["train", str(TINY), "--out", "empty", "--resume"], r"empty: nothing to resume"),
    ("resume with a different model", lambda: (trained_run(), ["train", str(TINY), "--out", "run", "--resume", "--set", "train.warmup=0", "--set", "model.d_ff=128"])[1], r"trained with model.d_ff = 256, the config says 128"),
    ("a run directory that does not exist", lambda: ["eval", "no_such_run"], r"no_such_run: not a run directory"),
    ("a run directory without a checkpoint", lambda: (Path("r").mkdir(), Path("r/config.yaml").write_text(TINY.read_text()), ["eval", "r"])[2], r"r/checkpoint.npz: no checkpoint here"),
    ("a truncated checkpoint", corrupt(lambda b: b[: len(b) // 2]), r"checkpoint.npz: not a readable minitx checkpoint"),
    ("a corrupted checkpoint", corrupt(lambda b: b"garbage" + b[7:]), r"checkpoint.npz: not a readable minitx checkpoint"),
    ("a checkpoint from an incompatible config", incompatible, r"run/checkpoint.npz does not fit the model run/config.yaml describes"),
    ("an input longer than the model accepts", lambda: ["translate", trained_run(), " ".join(["1"] * 70)], r"the input has 70 tokens, more than model.max_len - 1 = 63"),
    ("an unknown evaluation split", lambda: ["eval", trained_run(), "--split", "dev"], r"--split dev: no such split"),
]

CASES += [
    ("a malformed metrics.jsonl", lambda: (trained_run(), Path("run/metrics.jsonl").write_text('{"step": 2}\n{oops\n'), ["plot", "run"])[2], r"run/metrics.jsonl: line 2: not a JSON object"),
    ("an attention layer the model does not have", lambda: ["attention", trained_run(), "1 2 3", "--layer", "5", "--no-png"], r"--layer 5: this model has layers 0 to 1"),
    ("--out naming a file", lambda: (Path("afile").write_text("x"), ["train", str(TINY), "--out", "afile"])[1], r"afile: exists and is not a directory"),
    ("a negative beam size", lambda: ["eval", "run", "--beam", "-3"], r"must be at least 0"),
]

CASES += [
    ("an ablation that names no attention", lambda: ["eval", trained_run(), "--ablate", "decoder.layers.9.cross_attn"], r"--ablate decoder.layers.9.cross_attn: no such attention \(valid: encoder.layers.0.self_attn, "),
    ("an ablated head the attention does not have", lambda: ["eval", trained_run(), "--ablate", "decoder.layers.0.cross_attn.head7"], r"decoder.layers.0.cross_attn has heads head0 to head3"),
    ("an explained head the model does not have", lambda: ["explain", trained_run(), "1 2 3", "--head", "9"], r"--head 9: this model has heads 0 to 3"),
    ("lowrank --heads with --base", lambda: ["lowrank", trained_run(), "--heads", "--base", "run"], r"--heads and --base: choose one"),
    ("a test length that does not fit the model", lambda: train(config("data:\n  test_max_len: 70\n")), r"my.yaml: data.test_max_len: 70 plus </s> does not fit"),
    ("a data file that starts with a byte-order mark", lambda: train(tsv_config(b"\xef\xbb\xbfone\tun\ntwo\tdeux\n")),
     r"train.tsv: starts with a UTF-8 byte-order mark \(BOM\), which would become part of the first word"),
    ("a data file whose lines are all empty on both sides", lambda: train(tsv_config(b"\t\n \t \n\t\n")),
     r"train.tsv: no sentence pairs: its 3 line\(s\) hold only tabs and spaces"),
    ("a data file of empty lines", lambda: train(tsv_config(b"\n\n\n")),
     r"train.tsv: no sentence pairs: its 3 line\(s\) are empty"),
    ("a model too large for memory", lambda: train(str(TINY), "--set", "train.warmup=0", "--set", "model.d_model=1000000000"),
     r"model too large for this machine: about 2.4e\+19 parameters need 3.84e\+11 GB .* GB of memory; make model.d_model \(now 1000000000\)"),
    ("a retired config key", lambda: train(config("eval:\n  max_decode_extra: 10\n")),
     r"my.yaml: eval.max_decode_extra: no longer used, remove it"),
    ("a decoding limit longer than the positional table", lambda: train(config("eval:\n  max_output_len: 100\n")),
     r"my.yaml: eval.max_output_len: 100 is more than model.max_len \(64\)"),
    ("--max-len longer than the positional table", lambda: ["eval", trained_run(), "--max-len", "65"],
     r"--max-len 65: more than this run's model.max_len \(64\)"),
]
