"""Config loading: shipped configs, defaults, every kind of user error, overrides, round trip."""

from pathlib import Path

import pytest

from minitx.config import (
    CONFIG_DIR,
    Config,
    config_to_dict,
    load_config,
    resolve_config_path,
    save_config,
)
from minitx import data, model, optim
from minitx.build import build_model
from minitx.errors import UserError

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path, text, name="run.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path, overrides=()):
    """Load a config that must fail and return its message, checked to be a single line."""
    with pytest.raises(UserError) as info:
        load_config(path, overrides)
    message = str(info.value)
    assert "\n" not in message, f"message spans lines: {message!r}"
    return message


@pytest.mark.parametrize("name", ["tiny", "reverse", "sort", "base", "explain", "tour_copy"])
def test_shipped_algorithmic_configs_load(name):
    cfg = load_config(resolve_config_path(name))
    assert cfg.data.task in ("copy", "reverse", "sort")


def test_shipped_tiny_and_base_values():
    tiny = load_config(CONFIG_DIR / "tiny.yaml")
    assert (tiny.model.d_model, tiny.model.n_heads, tiny.model.d_ff) == (64, 4, 256)
    assert (tiny.train.steps, tiny.train.lr, tiny.train.target_exact_match) == (600, 3e-3, 1.0)
    base = load_config(CONFIG_DIR / "base.yaml")
    assert (base.model.d_model, base.model.n_heads, base.model.n_enc_layers) == (256, 8, 3)
    assert base.data.n_symbols + 4 == 1000 and base.data.max_len + 1 == 32


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == Config()
    assert load_config(write(tmp_path, "# only a comment\n")) == Config()
    assert load_config(write(tmp_path, "model:\n")) == Config()


def test_file_values_override_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "model:\n  d_model: 32\ntrain:\n  lr: 2\n  warmup: 0\n"))
    assert cfg.model.d_model == 32 and cfg.model.n_heads == 4
    assert cfg.train.lr == 2.0 and isinstance(cfg.train.lr, float)
    assert cfg.train.warmup == 0


def test_exponent_without_dot_is_a_float(tmp_path):
    # Plain PyYAML reads 1e-3 as a string; we read it as a number.
    cfg = load_config(write(tmp_path, "train:\n  lr: 1e-3\n  eps: 1E-8\n"))
    assert (cfg.train.lr, cfg.train.eps) == (1e-3, 1e-8)


def test_invalid_yaml_names_file_and_line(tmp_path):
    message = error_of(write(tmp_path, "model:\n  d_model: 64\n  n_heads: [4\n", "bad.yaml"))
    assert "bad.yaml" in message and "line 4" in message, message


def test_top_level_and_sections_must_be_mappings(tmp_path):
    assert "top.yaml" in error_of(write(tmp_path, "- model\n", "top.yaml"))
    message = error_of(write(tmp_path, "model: 64\n", "sec.yaml"))
    assert "sec.yaml" in message and "model" in message, message


def test_unknown_key_suggests_nearest(tmp_path):
    message = error_of(write(tmp_path, "model:\n  d_modle: 64\n", "typo.yaml"))
    expected = f"{tmp_path / 'typo.yaml'}: model.d_modle: unknown key (did you mean 'd_model'?)"
    assert message == expected, message


def test_key_in_wrong_section_suggests_right_one(tmp_path):
    message = error_of(write(tmp_path, "model:\n  lr: 0.1\n", "where.yaml"))
    assert "where.yaml" in message and "model.lr" in message and "'train.lr'" in message, message


def test_unknown_section_suggests_nearest(tmp_path):
    message = error_of(write(tmp_path, "modle:\n  d_model: 64\n", "sect.yaml"))
    assert "sect.yaml" in message and "modle" in message and "'model'" in message, message


@pytest.mark.parametrize(
    "text, key",
    [
        ("model:\n  d_model: 64.5\n", "model.d_model"),  # float for int
        ("model:\n  d_model: '64'\n", "model.d_model"),  # string for int
        ("train:\n  steps: true\n", "train.steps"),  # bool for int
        ("train:\n  lr: true\n", "train.lr"),  # bool for float
        ("train:\n  lr: fast\n", "train.lr"),  # string for float
        ("train:\n  lr: .nan\n", "train.lr"),  # not finite
        ("model:\n  tie_output: 1\n", "model.tie_output"),  # int for bool
        ("data:\n  split_hyphens: 0.0\n", "data.split_hyphens"),  # float for bool
        ("model:\n  norm: 1\n", "model.norm"),  # int for str
    ],
)
def test_wrong_type_names_file_and_key(tmp_path, text, key):
    message = error_of(write(tmp_path, text, "types.yaml"))
    assert "types.yaml" in message and key in message and "expected" in message, message


def test_int_accepted_for_float(tmp_path):
    cfg = load_config(write(tmp_path, "train:\n  clip_norm: 2\n"))
    assert cfg.train.clip_norm == 2.0 and isinstance(cfg.train.clip_norm, float)


@pytest.mark.parametrize(
    "text, key",
    [
        ("model:\n  n_heads: 5\n", "model.d_model"),  # 64 % 5 != 0
        ("model:\n  d_model: 0\n", "model.d_model"),
        ("model:\n  n_heads: -4\n", "model.n_heads"),
        ("model:\n  d_ff: 0\n", "model.d_ff"),
        ("model:\n  n_enc_layers: 0\n", "model.n_enc_layers"),
        ("model:\n  n_dec_layers: 0\n", "model.n_dec_layers"),
        ("model:\n  max_len: 0\n", "model.max_len"),
        ("model:\n  dropout: 1.0\n", "model.dropout"),
        ("model:\n  dropout: -0.1\n", "model.dropout"),
        ("model:\n  norm: middle\n", "model.norm"),
        ("data:\n  n_symbols: 0\n", "data.n_symbols"),
        ("data:\n  min_len: 0\n", "data.min_len"),
        ("data:\n  min_len: 5\n  max_len: 4\n", "data.min_len"),
        ("data:\n  n_valid: 0\n", "data.n_valid"),
        ("data:\n  n_test: 0\n", "data.n_test"),
        ("data:\n  task: translate\n", "data.task"),
        ("data:\n  max_len: 64\n", "data.max_len"),  # 64 + </s> does not fit model.max_len 64
        ("data:\n  test_min_len: -1\n", "data.test_min_len"),
        ("data:\n  test_min_len: 12\n  test_max_len: 11\n", "data.test_min_len"),
        ("data:\n  test_min_len: 12\n", "data.test_min_len"),  # longer than the training max_len 10
        ("data:\n  test_max_len: 64\n", "data.test_max_len"),  # 64 + </s> does not fit model.max_len 64
        ("train:\n  steps: 0\n", "train.steps"),
        ("train:\n  batch_size: 0\n", "train.batch_size"),
        ("train:\n  eval_every: 0\n", "train.eval_every"),
        ("train:\n  warmup: -1\n", "train.warmup"),
        ("train:\n  checkpoint_every: -1\n", "train.checkpoint_every"),
        ("train:\n  lr: 0\n", "train.lr"),
        ("train:\n  beta1: 1.0\n", "train.beta1"),
        ("train:\n  beta2: -0.5\n", "train.beta2"),
        ("train:\n  weight_decay: -0.01\n", "train.weight_decay"),
        ("train:\n  clip_norm: -1\n", "train.clip_norm"),
        ("train:\n  label_smoothing: 1.0\n", "train.label_smoothing"),
        ("train:\n  target_exact_match: 1.5\n", "train.target_exact_match"),
        ("train:\n  optimizer: sgd\n", "train.optimizer"),
        ("train:\n  schedule: linear\n", "train.schedule"),
        ("train:\n  schedule: cosine\n  warmup: 500\n  steps: 400\n", "train.warmup"),
        ("eval:\n  batch_size: 0\n", "eval.batch_size"),
        ("eval:\n  beam: 0\n", "eval.beam"),
        ("eval:\n  max_output_len: -1\n", "eval.max_output_len"),
        ("eval:\n  max_output_len: 65\n", "eval.max_output_len"),
        ("eval:\n  output_margin: 0.5\n", "eval.output_margin"),
    ],
)
def test_invalid_values_name_file_and_key(tmp_path, text, key):
    message = error_of(write(tmp_path, text, "values.yaml"))
    assert "values.yaml" in message and key in message, message


def test_task_and_schedule_names_come_from_their_registries(tmp_path, monkeypatch):
    # An unknown name is one line that lists the names the registries hold.
    task = error_of(write(tmp_path, "data:\n  task: shuffle\n", "t.yaml"))
    assert task == f"{tmp_path / 't.yaml'}: data.task: must be one of copy, reverse, sort, tsv, got 'shuffle'", task
    schedule = error_of(write(tmp_path, "train:\n  schedule: step_decay\n", "s.yaml"))
    assert schedule == f"{tmp_path / 's.yaml'}: train.schedule: must be one of inverse_sqrt, cosine, constant, got 'step_decay'", schedule

    # Registering a task in minitx.data and a schedule in minitx.optim is all it takes for the
    # config to accept them; config.py keeps no list of its own.
    monkeypatch.setitem(data.TASKS, "shuffle", data.TASKS["reverse"])
    monkeypatch.setitem(optim.SCHEDULES, "step_decay", optim.SCHEDULES["constant"])
    cfg = load_config(write(tmp_path, "data:\n  task: shuffle\ntrain:\n  schedule: step_decay\n"))
    assert (cfg.data.task, cfg.train.schedule) == ("shuffle", "step_decay")
    src, tgt = data.load_task(cfg).splits["valid"][0]
    assert tgt == src[::-1], (src, tgt)
    message = error_of(write(tmp_path, "data:\n  task: translate\n"))
    assert message.endswith("must be one of copy, reverse, sort, tsv, shuffle, got 'translate'"), message


def test_norm_and_optimizer_names_come_from_their_registries(tmp_path, monkeypatch):
    message = error_of(write(tmp_path, "model:\n  norm: sandwich\ntrain:\n  optimizer: sgd\n"))
    assert message.endswith("model.norm: must be one of pre, post, got 'sandwich'"), message
    monkeypatch.setitem(model.NORMS, "sandwich", model.NORMS["post"])
    monkeypatch.setitem(optim.OPTIMIZERS, "sgd", optim.OPTIMIZERS["adam"])
    cfg = load_config(write(tmp_path, "model:\n  norm: sandwich\ntrain:\n  optimizer: sgd\n"))
    assert (cfg.model.norm, cfg.train.optimizer) == ("sandwich", "sgd")
    assert isinstance(build_model(cfg, data.load_task(cfg)).encoder.layers[0], model.PostNormEncoderLayer)


def test_test_lengths_belong_to_algorithmic_tasks(tmp_path):
    message = error_of(write(tmp_path, "data:\n  task: tsv\n  train: a\n  valid: a\n  test: a\n  test_max_len: 5\n"))
    assert "data.test_max_len: only for copy, reverse and sort" in message, message


def test_cosine_warmup_message(tmp_path):
    message = error_of(write(tmp_path, "train:\n  schedule: cosine\n  warmup: 10\n  steps: 5\n"))
    assert "warmup longer than training" in message, message


def test_tsv_paths_required_and_must_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.tsv").write_text("a\tb\n")
    write(tmp_path, "data:\n  task: tsv\n  train: t.tsv\n  test: t.tsv\n", "m.yaml")
    missing = error_of("m.yaml")
    assert missing == "m.yaml: data.valid: a TSV path is required when data.task is tsv", missing
    write(tmp_path, "data:\n  task: tsv\n  train: x.tsv\n  valid: t.tsv\n  test: t.tsv\n", "a.yaml")
    absent = error_of("a.yaml")
    assert absent == "a.yaml: data.train: file 'x.tsv' does not exist", absent
    all_three = "data:\n  task: tsv\n  train: t.tsv\n  valid: t.tsv\n  test: t.tsv\n"
    assert load_config(write(tmp_path, all_three)).data.train == "t.tsv"


def test_overrides_apply_with_yaml_parsing(tmp_path):
    sets = ["model.d_model=32", "model.tie_output=false", "train.lr=0.5", "train.lr=1e-4"]
    cfg = load_config(write(tmp_path, ""), sets + ["data.task=reverse"])
    assert cfg.model.d_model == 32 and cfg.model.tie_output is False
    assert cfg.train.lr == 1e-4 and cfg.data.task == "reverse"


def test_override_of_string_field_keeps_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "007").write_text("a\tb\n")
    sets = ["data.task=tsv", "data.train=007", "data.valid=007", "data.test=007"]
    assert load_config(write(tmp_path, ""), sets).data.train == "007"


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("model.d_model", "--set model.d_model"),  # no "="
        ("d_model=64", "--set d_model=64"),  # no section
        ("model.d_modle=64", "--set model.d_modle: unknown key (did you mean 'd_model'?)"),
        ("modle.d_model=64", "--set modle.d_model: unknown section (did you mean 'model'?)"),
        ("model.d_model=big", "--set model.d_model"),
        ("train.steps=true", "--set train.steps"),
        ("model.d_model=[1", "--set model.d_model"),
    ],
)
def test_bad_overrides_fail(tmp_path, override, fragment):
    message = error_of(write(tmp_path, ""), [override])
    assert fragment in message, message


def test_override_checked_by_validation(tmp_path):
    message = error_of(write(tmp_path, "", "v.yaml"), ["model.n_heads=3"])
    assert "v.yaml" in message and "model.d_model" in message, message


def test_save_load_round_trip(tmp_path):
    sets = ["train.lr=1e-9", "model.norm=post", "eval.beam=4"]
    cfg = load_config(resolve_config_path("base"), sets)
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg
    assert list(config_to_dict(cfg)) == ["model", "data", "train", "eval", "lora"]


def test_resolve_config_path(tmp_path):
    assert resolve_config_path("tiny") == CONFIG_DIR / "tiny.yaml"
    assert resolve_config_path("tiny.yaml") == CONFIG_DIR / "tiny.yaml"
    own = write(tmp_path, "", "mine.yaml")
    assert resolve_config_path(str(own)) == own
    with pytest.raises(UserError) as info:
        resolve_config_path("no_such_config")
    message = str(info.value)
    assert "'no_such_config' not found" in message and "tiny" in message, message


def test_missing_config_file(tmp_path):
    assert "nowhere.yaml" in error_of(tmp_path / "nowhere.yaml")


# Last, because data/numbers/ is written by scripts/make_numbers.py; its paths are relative to
# the repository root, as they are when training is run from there.
def test_shipped_numbers_config_loads(monkeypatch):
    monkeypatch.chdir(REPO)
    cfg = load_config(resolve_config_path("numbers"))
    assert cfg.data.task == "tsv" and cfg.data.split_hyphens is True
    assert (cfg.model.d_model, cfg.train.steps, cfg.train.target_exact_match) == (128, 6000, 0.99)
    tour = load_config(resolve_config_path("tour_numbers"))
    assert tour.data.train == cfg.data.train and tour.model.d_model == 64


def test_the_decoding_limit_comes_from_the_data_unless_the_config_sets_it(tmp_path):
    from minitx.data import load_task
    from minitx.decode import output_limit

    def limit(*sets):
        cfg = load_config(CONFIG_DIR / "tiny.yaml", sets)
        return output_limit(cfg, load_task(cfg))

    # tiny copies 10 symbols: the longest target is 10 tokens + </s>, times 1.5, rounded up.
    assert limit() == (17, "eval.output_margin 1.5 x the longest training target, 10 tokens + </s>"), limit()
    assert limit("eval.output_margin=2")[0] == 22
    assert limit("model.max_len=12") == (12, "model.max_len; eval.output_margin 1.5 x the longest training target, 10 tokens + </s>, would be 17")
    assert limit("eval.max_output_len=40") == (40, "eval.max_output_len")


def test_the_retired_max_decode_extra_says_what_replaced_it(tmp_path):
    message = error_of(write(tmp_path, "eval:\n  max_decode_extra: 10\n", "old.yaml"))
    assert "old.yaml: eval.max_decode_extra: no longer used, remove it: the decoding limit now comes from the data" in message, message
    # A run directory's config.yaml written before the key was retired still loads.
    old_run = write(tmp_path, "eval:\n  max_decode_extra: 10\n", "config.yaml")
    assert load_config(old_run, run_config=True).eval.max_output_len == 0


def test_a_yaml_config_with_a_byte_order_mark_reads_as_without(tmp_path):
    # The YAML spec allows a byte-order mark at the start of a stream and PyYAML skips it, so
    # unlike a TSV file (where it would join the first word, and is an error) nothing is lost.
    text = "model:\n  d_model: 32\ntrain:\n  steps: 5\n"
    with_bom = tmp_path / "bom.yaml"
    with_bom.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert load_config(with_bom) == load_config(write(tmp_path, text, "plain.yaml"))


def test_an_out_of_range_value_from_set_names_the_option_not_the_file(tmp_path):
    path = write(tmp_path, "train:\n  steps: 10\n")
    assert error_of(path, ["train.target_exact_match=2"]) == "--set train.target_exact_match: must be in [0, 1], got 2.0"
    # The same value written in the file names the file.
    path = write(tmp_path, "train:\n  target_exact_match: 2\n")
    assert error_of(path) == f"{path}: train.target_exact_match: must be in [0, 1], got 2.0"
