"""Every hyperparameter minitx uses, as typed dataclasses with a default and a reason for each.

A run's configuration is built in three layers: the defaults below, a YAML file that overrides
some of them, and `--set section.key=value` overrides from the command line. Nothing else in
minitx hard-codes a hyperparameter; the training code reads them all from a `Config`.

We are strict on purpose. A misspelt key (`d_modle`) or a value of the wrong type silently
falling back to a default is the kind of mistake that costs a learner an afternoon, so each one
is a `UserError` with a one-line message naming the file and the key:

    configs/tiny.yaml: model.d_modle: unknown key (did you mean 'd_model'?)

The resolved config is written to the run directory with `save_config`, and loading that file
gives back an equal `Config`.
"""

import difflib
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from minitx.checkpoint import write_atomically
from minitx.data import TASKS, lengths_of_test_split
from minitx.errors import UserError
from minitx.model import NORMS
from minitx.optim import OPTIMIZERS, SCHEDULES

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class ModelConfig:
    d_model: int = 64  # D: small enough to train on a laptop CPU in minutes
    n_heads: int = 4  # H: K = D/H = 16 per head, enough for the toy tasks
    d_ff: int = 256  # F = 4*D, the ratio used in "Attention Is All You Need"
    n_enc_layers: int = 2  # shallow, so a step is fast; the shipped configs deepen it where needed
    n_dec_layers: int = 2  # matches the encoder, as in the paper
    dropout: float = 0.0  # the synthetic tasks have unlimited data, so nothing to regularise
    norm: str = "pre"  # "pre" trains stably without a long warmup; "post" is the paper's layout
    tie_output: bool = True  # output projection shares the target embedding: fewer parameters
    max_len: int = 64  # longest token sequence, counting <s> or </s>, the positional table covers
    # The decoder's causal mask. Only a lab switches it off, to watch a model learn to peek at
    # the answer during teacher forcing and then fail when it really decodes.
    causal: bool = True
    # false: the plain layers of minitx.nn, one formula per line; true: minitx.nn.fused, the
    # same numbers computed faster. Checkpoints load either way.
    fused: bool = False


@dataclass
class DataConfig:
    task: str = "copy"  # the easiest task: if copy fails, something is broken
    n_symbols: int = 10  # ten distinct tokens, like the digits
    min_len: int = 10  # fixed length 10 keeps the first run simple
    max_len: int = 10  # sequence length before </s> is added
    # Lengths of the test split's sequences (copy, reverse, sort); 0 means the same as training.
    # Testing on lengths the model never trained on asks whether it learned the rule or only
    # the positions it saw (scripts/lab_lengths.py).
    test_min_len: int = 0
    test_max_len: int = 0
    n_valid: int = 500  # enough examples that exact match is measured to within a few percent
    n_test: int = 500  # same size as validation, drawn with a different seed
    train: str = ""  # TSV paths for task "tsv", relative to the current directory
    valid: str = ""
    test: str = ""
    split_hyphens: bool = False  # tokenise "twenty-one" as "twenty - one" so words are shared
    # Off by default, so existing data reads as before; the phrases task turns it on so that
    # "l'homme" is read as "l'" "homme" and elision is a choice of token, not a separate word.
    split_apostrophes: bool = False
    truncate: bool = False  # inputs longer than model.max_len are rejected unless this is set


@dataclass
class TrainConfig:
    seed: int = 0  # one seed drives initialisation, data and dropout, so runs repeat exactly
    steps: int = 2000  # a short run; each shipped config sets its own
    batch_size: int = 64  # small batches keep each NumPy step fast
    optimizer: str = "adam"  # "adamw" decouples weight decay from the gradient scale
    lr: float = 1e-3  # peak learning rate, reached at the end of warmup
    beta1: float = 0.9  # the paper's Adam settings
    beta2: float = 0.98  # lower than Adam's usual 0.999, so the second moment adapts faster
    eps: float = 1e-9  # the paper's value
    weight_decay: float = 0.0  # off by default: the toy tasks do not overfit
    schedule: str = "inverse_sqrt"  # linear warmup then 1/sqrt(step) decay, as in the paper
    warmup: int = 100  # steps of linear warmup; Adam's early moment estimates are noisy
    clip_norm: float = 1.0  # clip the global gradient norm to this; 0 disables clipping
    label_smoothing: float = 0.0  # off: on exact tasks we want confident predictions
    eval_every: int = 100  # steps between evaluations on the validation set
    target_exact_match: float = 0.0  # stop once validation exact match reaches this; 0 disables
    checkpoint_every: int = 0  # steps between checkpoints; 0 checkpoints at every evaluation
    # BLAS threads for NumPy's matrix products, set from inside minitx (threadpoolctl), so that
    # `python -m minitx` behaves like `make`. One, because minitx's matrices are small, and on a
    # shared two-core machine a second OpenBLAS thread waiting for a busy core makes every product
    # 10-20x slower. On a quiet machine the large base config is faster with two.
    threads: int = 1


@dataclass
class EvalConfig:
    batch_size: int = 500  # no gradients are kept, so evaluation batches can be large
    beam: int = 1  # greedy decoding: the fastest, and the toy tasks have one right answer
    length_penalty: float = 0.6  # GNMT's alpha, used only when beam > 1
    # The longest output decoding may write, </s> included. 0 works it out from the data when
    # training starts, output_margin times the longest training target, and the run's
    # config.yaml records the number. An output that reaches it without </s> is cut, counted
    # wrong, and reported (the "cut" count of an evaluation).
    max_output_len: int = 0
    # Room for an output a little longer than any seen in training, yet a bound on a model that
    # never writes </s>, which would otherwise decode up to model.max_len at every evaluation.
    output_margin: float = 1.5


@dataclass
class LoRAConfig:
    """Fine-tuning a trained run: every weight (enabled false) or low-rank adapters only."""

    enabled: bool = False  # true: train only adapters A, B; false with base_run: full fine-tuning
    base_run: str = ""  # run directory whose checkpoint we start from; "" trains from scratch
    rank: int = 4  # r: each adapted (D_in, D_out) weight gets an update of rank at most r
    alpha: float = 8.0  # the update is scaled by alpha / r, so changing r keeps its size comparable
    # Which weights get adapters, in every layer: all the square and feed-forward matrices,
    # so an adapted run can change everything full fine-tuning can except embeddings and norms.
    targets: list[str] = field(default_factory=lambda: ["W_q", "W_k", "W_v", "W_o", "ff"])


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)


SECTIONS = {f.name: f.default_factory for f in fields(Config)}  # section name -> dataclass
# The names a key may take. A task or a schedule is valid when the module that implements it
# registers it (minitx.data.TASKS, minitx.optim.SCHEDULES): we read those dicts themselves, so
# the list here and the list in the code cannot drift apart.
CHOICES = {
    "model.norm": NORMS,
    "data.task": TASKS,
    "train.optimizer": OPTIMIZERS,
    "train.schedule": SCHEDULES,
}
# Every integer field must be at least 1 except these, for which 0 means something.
NON_NEGATIVE = {"train.seed", "train.warmup", "train.checkpoint_every", "eval.max_output_len",
                "data.test_min_len", "data.test_max_len"}
# Keys minitx no longer reads, and what replaced them: an error that says so beats "unknown key".
RETIRED = {
    "eval.max_decode_extra": "no longer used, remove it: the decoding limit now comes from the data, "
                             "or from eval.max_output_len if you set it",
}
TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
              list[str]: "a list of strings"}
# What lora.targets may name: the attention projections (in every attention of every layer)
# and "ff", the feed-forward block's two weights lin1.W and lin2.W.
LORA_TARGETS = ("W_q", "W_k", "W_v", "W_o", "ff")


class _Loader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, which reads `lr: 1e-3` as the string "1e-3" because the number
    has no dot. That trap is too easy to fall into, so we also read exponent forms as floats.

    PyYAML also lets a key given twice quietly take its last value, so a config that sets
    model.d_model twice (or has two model: sections, the second replacing the first whole)
    would train something its reader does not expect; YAML itself says keys are unique, and
    we refuse a repeated one, naming both lines."""

    def construct_mapping(self, node, deep=False):
        first_line = {}
        for key_node, _ in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key in first_line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key '{key}' appears twice, first on line {first_line[key]}", key_node.start_mark)
            first_line.setdefault(key, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def resolve_config_path(name: str) -> Path:
    """Return `name` if it is an existing file, else look a bare name up in configs/."""
    path = Path(name)
    if path.is_file():
        return path
    candidate = CONFIG_DIR / (name if name.endswith((".yaml", ".yml")) else name + ".yaml")
    # Only a bare name is looked up; "my/dir/x.yaml" means exactly that path.
    if path.parent == Path(".") and candidate.is_file():
        return candidate
    available = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))) or "none"
    raise UserError(
        f"config '{name}' not found (looked in {path} and {candidate}; available: {available})"
    )


def load_config(path, overrides=(), check_files=True, run_config=False) -> Config:
    """Read a YAML config over the defaults, apply `section.key=value` overrides, validate.
    check_files=False skips checking that the data files exist (a trained run can translate
    without its training data). run_config=True reads a run directory's config.yaml, which an
    older minitx may have written with keys since retired: those are skipped, not errors."""
    try:
        raw_bytes = Path(path).read_bytes()
    except OSError as err:
        raise UserError(f"{path}: cannot read config ({err.strerror})") from None
    try:
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw_bytes[: err.start].count(b"\n") + 1
        raise UserError(f"{path}: line {line}: not valid UTF-8 (byte {err.start + 1} of the file); save it as UTF-8") from None
    try:
        raw = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{path}: {line}invalid YAML ({problem})") from None

    cfg = Config()
    raw = {} if raw is None else raw  # an empty file means all defaults
    if not isinstance(raw, dict):
        raise UserError(f"{path}: top level must be a mapping of sections ({', '.join(SECTIONS)})")
    for section, body in raw.items():
        _check_section(section, f"{path}: {section}")
        body = {} if body is None else body  # "model:" with nothing under it
        if not isinstance(body, dict):
            raise UserError(f"{path}: {section}: must be a mapping of key: value")
        for key, value in body.items():
            if run_config and f"{section}.{key}" in RETIRED:
                continue  # the key that replaced it keeps its default, which works for old runs
            _assign(cfg, section, key, value, f"{path}: {section}.{key}")

    overridden = {_apply_override(cfg, override) for override in overrides}
    validate(cfg, path, check_files, overridden)
    return cfg


def _apply_override(cfg: Config, override: str) -> str:
    """Apply one "section.key=value" string, parsing the value as YAML ("3" -> 3); returns the
    "section.key" it set."""
    dotted, equals, text = override.partition("=")
    section, dot, key = dotted.strip().partition(".")
    if not equals or not dot or not key or "." in key:
        raise UserError(f"--set {override}: expected the form section.key=value")
    where = f"--set {section}.{key}"
    _check_section(section, where)
    if _types(section).get(key) is str:
        value = text  # a string field takes the text as written, so a path like "007" stays text
    else:
        try:
            value = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError:
            raise UserError(f"{where}: cannot parse value '{text}'") from None
    _assign(cfg, section, key, value, where)
    return f"{section}.{key}"


def _types(section: str) -> dict:
    """Field name -> type for one section, e.g. {"d_model": int, ...}."""
    return {f.name: f.type for f in fields(SECTIONS[section])}


def _check_section(section, where: str) -> None:
    if section not in SECTIONS:
        raise UserError(f"{where}: unknown section{_suggest(str(section), list(SECTIONS))}")


def _assign(cfg: Config, section: str, key, value, where: str) -> None:
    """Set cfg.<section>.<key> = value after checking the key exists and the type is right."""
    types = _types(section)
    if f"{section}.{key}" in RETIRED:
        raise UserError(f"{where}: {RETIRED[f'{section}.{key}']}")
    if key not in types:
        # A key put in the wrong section ("model.lr") is a likelier mistake than a typo.
        elsewhere = [s for s in SECTIONS if s != section and key in _types(s)]
        if elsewhere:
            raise UserError(f"{where}: unknown key (did you mean '{elsewhere[0]}.{key}'?)")
        raise UserError(f"{where}: unknown key{_suggest(str(key), list(types))}")
    setattr(getattr(cfg, section), key, _coerce(value, types[key], where))


def _coerce(value, kind: type, where: str):
    """Return `value` as `kind`, or raise. bool is a subclass of int in Python, so we exclude
    it by hand: `steps: true` is a mistake, not 1."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is float and is_number and math.isfinite(value):
        return float(value)
    if kind is int and is_number and isinstance(value, int):
        return value
    if kind in (bool, str) and isinstance(value, kind):
        return value
    if kind == list[str] and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    if kind is float and is_number:
        raise UserError(f"{where}: expected a finite number, got {value}")
    raise UserError(f"{where}: expected {TYPE_NAMES[kind]}, got {value!r}")


def _suggest(word: str, known: list) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})"


def validate(cfg: Config, source, check_files=True, overridden=()) -> None:
    """Check ranges and cross-field rules; every failure names where the value came from (the
    file `source`, or --set for a key in `overridden`) and the key."""

    def check(ok: bool, key: str, problem: str) -> None:
        if not ok:
            where = f"--set {key}" if key in overridden else f"{source}: {key}"
            raise UserError(f"{where}: {problem}")

    m, d, t = cfg.model, cfg.data, cfg.train
    for section in SECTIONS:
        for f in fields(SECTIONS[section]):
            key, value = f"{section}.{f.name}", getattr(getattr(cfg, section), f.name)
            if f.type is int and key in NON_NEGATIVE:
                check(value >= 0, key, f"must be 0 or more, got {value}")
            elif f.type is int:
                check(value >= 1, key, f"must be a positive integer, got {value}")
            if key in CHOICES:
                choices = ", ".join(CHOICES[key])
                check(value in CHOICES[key], key, f"must be one of {choices}, got '{value}'")

    # Conditions are written as what must hold, so a NaN fails them too.
    check(m.d_model % m.n_heads == 0, "model.d_model",
          f"{m.d_model} is not divisible by model.n_heads ({m.n_heads})")
    check(0 <= m.dropout < 1, "model.dropout", f"must be in [0, 1), got {m.dropout}")
    check(d.min_len <= d.max_len, "data.min_len",
          f"{d.min_len} is greater than data.max_len ({d.max_len})")
    check(t.lr > 0, "train.lr", f"must be positive, got {t.lr}")
    check(0 <= t.beta1 < 1, "train.beta1", f"must be in [0, 1), got {t.beta1}")
    check(0 <= t.beta2 < 1, "train.beta2", f"must be in [0, 1), got {t.beta2}")
    check(t.eps > 0, "train.eps", f"must be positive (it guards a division), got {t.eps}")
    check(t.weight_decay >= 0, "train.weight_decay", f"must be 0 or more, got {t.weight_decay}")
    check(t.clip_norm >= 0, "train.clip_norm", f"must be 0 (off) or more, got {t.clip_norm}")
    check(0 <= t.label_smoothing < 1, "train.label_smoothing",
          f"must be in [0, 1), got {t.label_smoothing}")
    check(cfg.eval.max_output_len <= m.max_len, "eval.max_output_len",
          f"{cfg.eval.max_output_len} is more than model.max_len ({m.max_len}), the longest output the positional table covers")
    check(cfg.eval.output_margin >= 1, "eval.output_margin",
          f"must be at least 1 (a limit below the longest training target cuts outputs), got {cfg.eval.output_margin}")
    check(0 <= t.target_exact_match <= 1, "train.target_exact_match",
          f"must be in [0, 1], got {t.target_exact_match}")
    # Cosine decay reaches zero at train.steps, so a longer warmup never ends.
    check(t.schedule != "cosine" or t.warmup <= t.steps, "train.warmup",
          f"warmup longer than training ({t.warmup} > train.steps {t.steps})")

    lora = cfg.lora
    check(lora.alpha > 0, "lora.alpha", f"must be positive, got {lora.alpha}")
    check(lora.rank <= m.d_model, "lora.rank",
          f"{lora.rank} exceeds model.d_model ({m.d_model}); a (D, D) update has rank at most D")
    check(len(lora.targets) > 0, "lora.targets", f"name at least one of {', '.join(LORA_TARGETS)}")
    for target in lora.targets:
        check(target in LORA_TARGETS, "lora.targets", f"unknown target '{target}' (known: {', '.join(LORA_TARGETS)})")
    check(len(set(lora.targets)) == len(lora.targets), "lora.targets", "a target is named twice")
    check(not lora.enabled or lora.base_run != "", "lora.base_run",
          "required when lora.enabled is true (the run whose weights the adapters modify)")

    if d.task == "tsv":
        for key in ("test_min_len", "test_max_len"):
            check(getattr(d, key) == 0, f"data.{key}", "only for copy, reverse and sort (a tsv task has its own test file)")
        for split in ("train", "valid", "test"):
            name = getattr(d, split)
            check(name != "", f"data.{split}", "a TSV path is required when data.task is tsv")
            check(Path(name).is_file() or not check_files, f"data.{split}", f"file '{name}' does not exist")
    else:
        for split in ("train", "valid", "test"):
            check(getattr(d, split) == "", f"data.{split}",
                  f"a TSV path, but data.task is {d.task}, which makes its own data; set data.task: tsv to train on the file")
        check(d.max_len + 1 <= m.max_len, "data.max_len",
              f"{d.max_len} plus </s> does not fit in model.max_len ({m.max_len})")
        test_min, test_max = lengths_of_test_split(d)
        check(test_min <= test_max, "data.test_min_len",
              f"{test_min} is greater than the test split's longest length ({test_max})")
        check(test_max + 1 <= m.max_len, "data.test_max_len",
              f"{test_max} plus </s> does not fit in model.max_len ({m.max_len})")


def config_to_dict(cfg: Config) -> dict:
    """Nested plain dict, every section and key in declaration order, so a run's config.yaml
    shows every value the run used."""
    return asdict(cfg)


def save_config(cfg: Config, path) -> None:
    """Write the resolved config as YAML; load_config on the file gives back an equal Config.
    The file is replaced atomically (checkpoint.write_atomically), never written through a link."""
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False, allow_unicode=True)
    header = "# Resolved minitx config: defaults, then the config file, then --set overrides.\n"
    write_atomically(path, lambda f: f.write((header + text).encode("utf-8")))
