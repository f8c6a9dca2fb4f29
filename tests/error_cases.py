"""Every bad input a user can give minitx, with the one-line error it must get.

Each case is (what the user did, a setup function that prepares files in the current directory
and returns the command-line arguments, a regular expression the message must match). A setup
that must also change something while the command runs (a full disk, a lock another process
holds) returns a context manager that yields the arguments instead (planted, held_lock). The
tests in test_errors.py run each case through the real command line (with_setup);
scripts/make_errors_doc.py runs the same cases to write the table in docs/errors.md, so the
documented messages are real.
"""

import atexit
import contextlib
import errno
import fcntl
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np


ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "configs" / "tiny.yaml"
FAST = ["--set", "train.steps=2", "--set", "train.eval_every=2", "--set", "data.n_valid=4", "--set", "data.n_test=4", "--quiet"]


def as_documented(message):
    """A message as docs/errors.md shows it: the same on every machine (the Python running
    minitx, the repository path and the machine's memory size stand as <python>, <repo> and
    <N>), with no "|" to break the table."""
    message = message.replace(sys.executable, "<python>").replace(str(ROOT), "<repo>").replace("|", "/")
    return re.sub(r"machine has [0-9.e+]+ GB of memory", "machine has <N> GB of memory", message)


def config(text, name="my.yaml"):
    Path(name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return name


@contextlib.contextmanager
def with_setup(setup):
    """The arguments a case's setup gives, inside whatever it plants while the command runs."""
    argv = setup()
    if hasattr(argv, "__enter__"):
        with argv as argv:
            yield argv
    else:
        yield argv


@contextlib.contextmanager
def planted(argv, *patches):
    """Yield argv with each (object, attribute, replacement) in place, restoring them after."""
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    for obj, name, new in patches:
        setattr(obj, name, new)
    try:
        yield argv
    finally:
        for obj, name, old in saved:
            setattr(obj, name, old)


@contextlib.contextmanager
def held_lock(run, argv, pid=4242):
    """Yield argv while run/.lock is locked as a training process with this pid locks it. An
    flock taken through another open file conflicts even within one process, so minitx sees
    exactly what it would see beside another process (tests/test_run_dir.py uses one)."""
    fd = os.open(Path(run) / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{pid}\n".encode())
    try:
        yield argv
    finally:
        os.close(fd)


def append(path, text):
    with open(path, "a") as f:
        f.write(text)


def tsv_config(train=b"one\tun\ntwo\tdeux\n"):
    Path("train.tsv").write_bytes(train)
    Path("valid.tsv").write_bytes(b"one\tun\n")
    Path("test.tsv").write_bytes(b"two\tdeux\n")
    return config("data:\n  task: tsv\n  train: train.tsv\n  valid: valid.tsv\n  test: test.tsv\n")


_TEMPLATE = {}


def trained_run():
    """A 2-step tiny run in ./run. We train it once per process and copy it after."""
    from minitx.cli import main

    if "run" not in _TEMPLATE:
        parent = Path(tempfile.mkdtemp(prefix="minitx-trained-run-"))
        atexit.register(shutil.rmtree, parent, True)
        # tiny's cosine schedule warms up for 50 steps, more than these 2
        assert main(["train", str(TINY), "--out", str(parent / "run"), "--set", "train.warmup=0"] + FAST) == 0
        _TEMPLATE["run"] = parent / "run"
    shutil.copytree(_TEMPLATE["run"], "run")
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
    ("a run directory that does not exist", lambda: ["eval", "no_such_run"], r"no_such_run: no such directory, so not a run directory; `.* -m minitx train CONFIG --out no_such_run` trains one there"),
    ("a run directory without a checkpoint", lambda: (Path("r").mkdir(), Path("r/config.yaml").write_text(TINY.read_text()), ["eval", "r"])[2], r"r/checkpoint.npz: no checkpoint here"),
    ("a truncated checkpoint", corrupt(lambda b: b[: len(b) // 2]), r"checkpoint.npz: not a readable minitx checkpoint"),
    ("a corrupted checkpoint", corrupt(lambda b: b"garbage" + b[7:]), r"checkpoint.npz: not a readable minitx checkpoint"),
    ("a run's config.yaml edited after training", incompatible, r"run/config.yaml says model.d_ff = 128, but run/checkpoint.npz was trained with 256"),
    ("an input longer than the model accepts", lambda: ["translate", trained_run(), " ".join(["1"] * 70)], r"the input has 70 tokens, more than model.max_len - 1 = 63"),
    ("an unknown evaluation split", lambda: ["eval", trained_run(), "--split", "dev"], r"--split dev: no such split"),
]

CASES += [
    ("a malformed metrics.jsonl", lambda: (trained_run(), append("run/metrics.jsonl", "{oops\n"), ["plot", "run"])[2], r"run/metrics.jsonl: line 2: not a JSON object"),
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
     r"model too large for this machine: about 2.4e\+19 parameters; .* need about 1.92e\+11 GB, .* make model.d_model \(now 1000000000\)"),
    ("a retired config key", lambda: train(config("eval:\n  max_decode_extra: 10\n")),
     r"my.yaml: eval.max_decode_extra: no longer used, remove it"),
    ("a decoding limit longer than the positional table", lambda: train(config("eval:\n  max_output_len: 100\n")),
     r"my.yaml: eval.max_output_len: 100 is more than model.max_len \(64\)"),
    ("--max-len longer than the positional table", lambda: ["eval", trained_run(), "--max-len", "65"],
     r"--max-len 65: more than this run's model.max_len \(64\)"),
]


def resume(*extra):
    """Arguments that resume trained_run()'s run, as the command it printed would."""
    return ["train", str(TINY), "--out", "run", "--resume", "--set", "train.warmup=0"] + FAST + list(extra)


def edited_config(old, new):
    def setup():
        run = trained_run()
        text = (Path(run) / "config.yaml").read_text()
        assert old in text, old
        (Path(run) / "config.yaml").write_text(text.replace(old, new))
        return ["eval", run]
    return setup


def shuffled_data():
    """A TSV run, then its training file with the same lines in another order."""
    cfg = tsv_config(b"one\tun\ntwo\tdeux\nthree\ttrois\n")
    from minitx.cli import main

    assert main(train(cfg)) == 0
    Path("train.tsv").write_bytes(b"three\ttrois\ntwo\tdeux\none\tun\n")
    return train(cfg, "--resume", "--set", "train.steps=4")


def metrics_symlink():
    run = trained_run()
    Path("outside.txt").write_text("not minitx's\n")
    (Path(run) / "metrics.jsonl").unlink()
    (Path(run) / "metrics.jsonl").symlink_to(Path("..") / "outside.txt")
    return resume("--set", "train.steps=4")


def full_disk_at_second_save():
    """np.savez writes part of the checkpoint, then the disk is full, on the second save."""
    real, calls = np.savez, []

    def savez(f, **arrays):
        calls.append(1)
        if len(calls) == 2:
            f.write(b"PK\x03\x04 the first bytes of a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(f, **arrays)

    return planted(train(str(TINY), "--set", "train.warmup=0", "--set", "train.steps=4"), (np, "savez", savez))


def no_permission(*args, **kwargs):
    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))


def non_finite_weights():
    from minitx import checkpoint

    run = trained_run()
    path = Path(run) / "checkpoint.npz"
    arrays = checkpoint.load(path)
    arrays["param/decoder.layers.0.ff.lin1.W"][0, 0] = np.nan
    checkpoint.save(path, arrays)
    return ["eval", run]


def metrics_line(**changes):
    """trained_run()'s metrics.jsonl with a second line: its first, with these changes."""
    import json

    run = trained_run()
    path = Path(run) / "metrics.jsonl"
    record = {**json.loads(path.read_text().splitlines()[0]), **changes}
    append(path, json.dumps({k: v for k, v in record.items() if v is not None}) + "\n")
    return ["plot", run]


# Each kind below: a run directory belongs to one process; resume and eval check what they
# can; only the run directory is written, and a full disk loses nothing; a diverged run keeps
# only good checkpoints; data and configs mean what they say; sizes are refused before they
# are allocated.
CASES += [
    ("training in a run directory another process is training in", lambda: held_lock(trained_run(), resume("--set", "train.steps=4")),
     r"run: process 4242 is training in this run directory \(it holds run/.lock\)"),

    ("resuming after the training file was shuffled", shuffled_data,
     r"out/checkpoint.npz: its src vocabulary differs from the one my.yaml builds from the data: id 4 is 'one' in the checkpoint and 'three' in the data"),
    ("resuming with fewer steps than the checkpoint holds", lambda: (trained_run(), resume("--set", "train.steps=1"))[1],
     r"run/checkpoint.npz: the checkpoint is at step 2 and train.steps is 1, so there is nothing to train; nothing was changed"),
    ("a run's config.yaml with the causal mask switched off after training", edited_config("causal: true", "causal: false"),
     r"run/config.yaml says model.causal = False, but run/checkpoint.npz was trained with True"),

    ("--out inside a file", lambda: (Path("afile").write_text("x"), ["train", str(TINY), "--out", "afile/run", "--set", "train.warmup=0"] + FAST)[1],
     r"afile/run: cannot create the run directory \(afile is a file, not a directory\)"),
    ("a run directory minitx may not write in", lambda: planted(train(str(TINY), "--set", "train.warmup=0"), (tempfile, "mkstemp", no_permission)),
     r"out: cannot write files here \(Permission denied\)"),
    ("a run's file replaced by a symbolic link", metrics_symlink,
     r"run/metrics.jsonl is a symbolic link \(to ../outside.txt\); minitx writes only inside the run directory"),
    ("a disk without room for a checkpoint",
     lambda: planted(train(str(TINY), "--set", "train.warmup=0"), (shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))),
     r"out: the disk has 0.001 MB free and a checkpoint of this run takes about 2.8\d MB"),
    ("a disk that fills up during a save", full_disk_at_second_save,
     r"step 4: could not save out/checkpoint.npz \(No space left on device\); the last good checkpoint \(step 2\) is kept in out/checkpoint.npz; "
     r"when there is room, continue with: \S+ -m minitx train \S+tiny.yaml --resume --out out"),

    ("a validation loss that is not finite (a diverged run)", lambda: train(str(TINY), "--set", "train.warmup=0", "--set", "train.lr=1e30", "--set", "train.eval_every=1"),
     r"step 1: the validation loss is nan; stopped without saving, and no checkpoint had been saved yet"),
    ("weights that are no longer finite at a save", lambda: train(str(TINY), "--set", "train.warmup=0", "--set", "train.lr=1e39", "--set", "train.checkpoint_every=1"),
     r"step 1: the weights are no longer finite \(encoder.embedding.W holds nan\); stopped without saving"),
    ("evaluating a checkpoint whose weights are not finite", non_finite_weights,
     r"run/checkpoint.npz: the weights are not finite \(decoder.layers.0.ff.lin1.W holds nan\)"),
    ("a metrics.jsonl record without a value plot draws", lambda: metrics_line(val_loss=None),
     r"run/metrics.jsonl: line 2: no \"val_loss\""),
    ("a metrics.jsonl value that is not a number", lambda: metrics_line(token_acc="high"),
     r"run/metrics.jsonl: line 2: \"token_acc\" is \"high\", not a number"),

    ("a special token in the data", lambda: train(tsv_config(b"one\tun\ntwo </s>\tdeux\n")),
     r"train.tsv: line 2: the source holds the word </s>, which minitx keeps for its own special token"),
    ("a special token in an input to translate", lambda: ["translate", trained_run(), "1 <pad> 2"],
     r"the input holds the word <pad>, which minitx keeps for its own special token"),
    ("a TSV path for a task that is not tsv", lambda: train(config("data:\n  task: copy\n  train: train.tsv\n")),
     r"my.yaml: data.train: a TSV path, but data.task is copy, which makes its own data"),
    ("a key given twice", lambda: train(config("model:\n  d_model: 64\n  d_model: 32\n")),
     r"my.yaml: line 3: invalid YAML \(the key 'd_model' appears twice, first on line 2\)"),
    ("a section given twice", lambda: train(config("model:\n  d_model: 32\ntrain:\n  steps: 4\nmodel:\n  n_heads: 2\n")),
     r"my.yaml: line 5: invalid YAML \(the key 'model' appears twice, first on line 1\)"),
    ("a config file that is not UTF-8", lambda: train(config(b"model:\n  d_model: 64  # caf\xe9\n")),
     r"my.yaml: line 2: not valid UTF-8 \(byte 28 of the file\)"),

    ("more symbols than memory holds embeddings for", lambda: train(str(TINY), "--set", "train.warmup=0", "--set", "data.n_symbols=1000000000000"),
     r"about 1.28e\+14 parameters, most of them the embeddings of 1000000000004 source and 1000000000004 target tokens; .* make data.n_symbols \(now 1000000000000\) smaller"),
    ("a positional table larger than memory", lambda: train(str(TINY), "--set", "train.warmup=0", "--set", "model.max_len=1000000000000"),
     r"model.max_len = 1000000000000: the positional tables, 2 x 1000000000000 x 64, .* make model.max_len smaller"),
    ("a training batch larger than memory", lambda: train(str(TINY), "--set", "train.warmup=0", "--set", "train.batch_size=1000000000000"),
     r"train.batch_size = 1000000000000: the activations of one pass over 1000000000000 sequences \(S = 11, T = 11\) need about 5.79e\+07 GB"),
    ("an evaluation batch larger than memory", lambda: train(str(TINY), "--set", "train.warmup=0", "--set", "eval.batch_size=1000000000000", "--set", "data.n_valid=1000000000000"),
     r"eval.batch_size = 1000000000000: the activations of one pass"),
    ("held-out sets larger than memory", lambda: train(str(TINY), "--set", "train.warmup=0", "--set", "data.n_test=1000000000000"),
     r"data.n_valid = 4 and data.n_test = 1000000000000: the held-out sequences need about 1.6e\+06 GB"),
    ("a beam larger than memory, in eval", lambda: ["eval", trained_run(), "--beam", "1000000000000"],
     r"a beam of 1000000000000 over 4 input\(s\): the caches of its 4000000000000 hypotheses need about"),
    ("a beam larger than memory, in translate", lambda: ["translate", trained_run(), "1 2 3", "--beam", "1000000000000"],
     r"a beam of 1000000000000 over 1 input\(s\): the caches of its 1000000000000 hypotheses need about"),
    ("a trace batch larger than memory", lambda: ["trace", str(TINY), "--batch", "1000000000000"],
     r"--batch 1000000000000: the activations of one pass over 1000000000000 sequences"),
]


def exercise_file(name, *changes):
    """A solved exercise file in my_exercises/ with the changes (old, new, old, new, ...) made
    in it; returns the command line that grades it."""
    from exercise_solutions import solved
    from minitx.exercises.catalog import BY_NAME
    from minitx.exercises.command import skeleton

    text = solved(name, skeleton(BY_NAME[name]))
    for old, new in zip(changes[::2], changes[1::2]):
        assert old in text, old
        text = text.replace(old, new, 1)
    Path("my_exercises").mkdir(exist_ok=True)
    Path("my_exercises", f"{name}.py").write_text(text)
    return ["exercise", name]


# A learner's exercise file is user input too. (A file that never returns is stopped after
# minitx.exercises.room's time limit with one line; tests/test_exercises.py checks it with a
# shorter limit, since here it would take the whole limit.)
CASES += [
    ("an exercise that does not exist", lambda: ["exercise", "layer_norm"], r"no exercise 'layer_norm' \(did you mean 'layernorm'\?"),
    ("an exercise file with a syntax error", lambda: exercise_file("linear", "dx_rows = dout_rows @ W.T", "dx_rows = dout_rows @ W.T +"),
     r"my_exercises/linear.py: line \d+: SyntaxError: invalid syntax"),
    ("an exercise whose backward raises", lambda: exercise_file("attention", "dq = dscores @ k / math.sqrt(K)", "dq = dscores @ q / math.sqrt(K)"),
     r"my_exercises/attention.py: line \d+, in backward: "),
    ("an exercise that returns a gradient of the wrong shape", lambda: exercise_file("linear", "return dx_rows.reshape(*dout.shape[:-1], W.shape[0])", "return dx_rows"),
     r"Linear.backward returned dx of shape 8x5, but x is 2x4x5"),
    ("an exercise that stores a parameter gradient of the wrong shape", lambda: exercise_file("heads", 'self.grads["W_O"] += dW_O', 'self.grads["W_O"] = dW_O[:, :3]'),
     r"after HeadsAndOutput.backward, grads\['W_O'\] is shape 6x3, but W_O is 6x6"),
    ("an exercise whose forward was changed", lambda: exercise_file("layernorm", "var + self.eps", "var + 1.0"), r"my_exercises/layernorm.py: .*forward"),
    ("an exercise whose forward writes into its input", lambda: exercise_file("softmax", "e = np.exp(x - x.max(axis=-1, keepdims=True))", "x -= x.max(axis=-1, keepdims=True)\n        e = np.exp(x)"),
     r"Softmax.forward writes into `x`; a forward must not change its inputs"),
    ("an exercise whose backward writes into dout", lambda: exercise_file("softmax", "dx = P * (dout - (dout * P).sum(axis=-1, keepdims=True))", "dout -= (dout * P).sum(axis=-1, keepdims=True)\n        dx = P * dout"),
     r"Softmax.backward writes into `dout`; a backward must not change what it was handed"),
    ("an exercise file that calls sys.exit", lambda: exercise_file("linear", "import numpy as np\n", "import numpy as np\nimport sys\nsys.exit(0)\n"), r"my_exercises/linear.py: "),
    ("an exercise file that calls os._exit", lambda: exercise_file("linear", "        x_rows = self.cache", "        import os\n        os._exit(3)\n        x_rows = self.cache"),
     r"the process running your file ended \(exit status 3\) in Linear.backward, without returning"),
    ("an exercise that raises KeyboardInterrupt", lambda: exercise_file("linear", "        x_rows = self.cache", "        raise KeyboardInterrupt('no')\n        x_rows = self.cache"),
     r"Linear.backward raised KeyboardInterrupt: no"),
    ("--reset without an exercise name", lambda: ["exercise", "--reset"], r"--reset needs an exercise name"),
    ("--dir naming a file", lambda: (Path("afile").write_text("x"), ["exercise", "linear", "--dir", "afile"])[1], r"afile: exists and is not a directory \(choose another --dir\)"),
    ("an unknown bug to --break", lambda: ["exercise", "--break", "softmax-no-rowsum"], r"--break softmax-no-rowsum: no such exercise or bug \(did you mean 'softmax-no-row-sum'\?"),
]
