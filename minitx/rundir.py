"""A training run in its directory: starting it, saving it, resuming it, and the checks that
keep a resumed run the same run. minitx.train holds the loop itself.

A run directory holds config.yaml (the resolved config), metrics.jsonl (one JSON object per
evaluation) and checkpoint.npz (everything needed to continue exactly where we stopped).
start_run does everything before the first step: it reads the config, sets the BLAS threads,
chooses the directory (choose_run_dir, which never overwrites a run) and builds a Run, which
holds everything a training run owns (model, optimizer, data stream, step count) and saves and
restores it. On resume, check_compatible refuses a config that would make it another run.

A run directory belongs to one training process at a time: start_run opens it with
minitx.runlock, which locks it for the whole session and checks, before the first step, that
everything the session will write can be written. Files are written only inside the
directory, never through a symbolic link out of it.

Fine-tuning (the config's lora section) starts from another run's checkpoint, lora.base_run.
With lora.enabled false every weight trains (full fine-tuning); with it true only low-rank
adapters do (minitx.lora), and the checkpoint holds only the adapters plus the base run's path
and fingerprint. load_base checks that the base fits before copying its weights in.
"""

import errno
import json
import math
import os
import shlex
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from minitx import checkpoint, lora
from minitx.build import build_model, build_optimizer
from minitx.config import Config, LoRAConfig, config_to_dict, load_config, resolve_config_path, save_config
from minitx.data import PAD, load_task
from minitx.decode import output_limit
from minitx.errors import UserError
from minitx.model import current_name, layer_set
from minitx.runlock import check_not_locked, holds_a_run, open_run_dir
from minitx.shell import minitx_command, shown
from minitx.threads import use_blas_threads

METRICS = "metrics.jsonl"
CONFIG = "config.yaml"


def choose_run_dir(config_path, out, resume):
    """Never overwrite a run: without --resume an occupied directory gets a numbered sibling."""
    run_dir = Path(out) if out else Path("runs") / Path(config_path).stem
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir}: exists and is not a directory (choose another --out)")
    check_not_locked(run_dir)
    if resume:
        if not (run_dir / checkpoint.CHECKPOINT).exists():
            raise UserError(f"{run_dir}: nothing to resume (no {checkpoint.CHECKPOINT}); drop --resume to start a new run")
        return run_dir
    if holds_a_run(run_dir):
        i = 2
        while Path(f"{run_dir}-{i}").exists():
            i += 1
        print(f"{run_dir} already holds a run; writing this one to {run_dir}-{i} (use --resume to continue {run_dir})")
        run_dir = Path(f"{run_dir}-{i}")
    return run_dir


class Run:
    """Everything a training run owns, and how it is saved and restored."""

    def __init__(self, cfg, run_dir, cfg_path="the config"):
        self.run_dir = Path(run_dir)
        self.ckpt_path = self.run_dir / checkpoint.CHECKPOINT
        self.task = load_task(cfg)
        # How long an output may be comes from the data unless the config says; the run's
        # config.yaml records the number. The run keeps a new Config with the number filled in
        # (dataclasses.replace), so the config we were handed stays as it was.
        limit, self.output_limit_why = output_limit(cfg, self.task)
        self.cfg = cfg = with_absolute_paths(replace(cfg, eval=replace(cfg.eval, max_output_len=limit)))
        self.model = build_model(cfg, self.task)
        self.loss = layer_set(cfg.model.fused).cross_entropy(PAD, cfg.train.label_smoothing)
        self.base_fingerprint = None
        if cfg.lora.base_run:
            self.base_fingerprint = load_base(cfg, self.model, self.task, cfg_path)
        # `trained` is the module whose parameters the optimizer updates and the checkpoint
        # saves: the whole model, or only the adapters while the base weights stay frozen.
        self.adapters, self.trained = None, self.model
        params, names = self.model.params, None
        if cfg.lora.enabled:
            rng = np.random.default_rng([cfg.train.seed, 4])
            self.adapters = lora.LoRA(self.model, cfg.lora.targets, cfg.lora.rank, cfg.lora.alpha, rng)
            self.trained = self.adapters
            params = {**self.model.params, **self.adapters.params}
            names = list(self.adapters.params)  # Adam updates (and keeps m, v for) these only
        self.optimizer = build_optimizer(cfg, params, names)
        self.data_rng = np.random.default_rng([cfg.train.seed, 3])
        self.step = 0
        self.saved_step = None  # the step of the checkpoint on disk, if any
        self.elapsed = 0.0  # training seconds at the last save, over every session of this run
        self.loss_sum, self.loss_count = 0.0, 0
        self.lock = None  # the run directory's RunLock while a training session holds it

    def state(self):
        arrays = {f"param/{k}": v for k, v in self.trained.params.items()}
        arrays.update({f"optim/{k}": v for k, v in self.optimizer.state_dict().items()})
        arrays.update({
            "step": np.array(self.step),
            "elapsed_s": np.array(self.elapsed),
            "rng/model": checkpoint.rng_state(self.model.rng),
            "rng/data": checkpoint.rng_state(self.data_rng),
            "vocab/src": np.array(self.task.src_vocab.itos),
            "vocab/tgt": np.array(self.task.tgt_vocab.itos),
            "config": np.array(json.dumps(config_to_dict(self.cfg))),
            "loss_sum": np.array(self.loss_sum),
            "loss_count": np.array(self.loss_count),
        })
        if self.base_fingerprint:
            arrays["base/run"] = np.array(self.cfg.lora.base_run)
            arrays["base/fingerprint"] = np.array(self.base_fingerprint)
        return arrays

    def save(self, elapsed):
        """elapsed: training seconds so far, this session's and the earlier ones'. Weights that
        are not finite are never saved: the checkpoint on disk stays the last good one."""
        for name, p in self.trained.params.items():
            if not np.isfinite(p).all():
                raise UserError(f"step {self.step}: the weights are no longer finite ({name} holds {_worst(p)}); "
                                f"stopped without saving, and {self.kept()}. Try a lower train.lr, or check the data")
        self.elapsed = elapsed
        try:
            checkpoint.save(self.ckpt_path, self.state())
        except checkpoint.WriteFailed as e:
            then = (f"when there is room, continue with: {resume_command(self)}" if self.saved_step is not None
                    else "start again when there is room")
            raise UserError(f"step {self.step}: could not save {self.ckpt_path} ({e.reason}); {self.kept()}; {then}") from None
        self.saved_step = self.step

    def kept(self):
        """What is on disk now, for a message about a stop."""
        if self.saved_step is None:
            return "no checkpoint had been saved yet"
        return f"the last good checkpoint (step {self.saved_step}) is kept in {self.ckpt_path}"

    def restore(self, arrays, path):
        if self.adapters is not None:
            lora.check_base(arrays, self.cfg.lora.base_run, self.base_fingerprint, path)
        load_params(self.trained, arrays, path)
        if self.adapters is not None:
            self.adapters.forward()  # the restored A, B into the model's weights
        self.optimizer.load_state_dict({current_name(k[6:]): v for k, v in arrays.items() if k.startswith("optim/")})
        self.step = self.saved_step = int(arrays["step"])
        # Checkpoints written before elapsed_s was saved continue from 0.
        self.elapsed = float(arrays["elapsed_s"]) if "elapsed_s" in arrays else 0.0
        checkpoint.set_rng_state(self.model.rng, arrays["rng/model"])
        checkpoint.set_rng_state(self.data_rng, arrays["rng/data"])
        self.loss_sum, self.loss_count = float(arrays["loss_sum"]), int(arrays["loss_count"])

    def log_metrics(self, metrics):
        path = self.run_dir / METRICS
        try:
            # O_NOFOLLOW: a link put in place of the file is an error, never written through.
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
            with os.fdopen(fd, "a") as f:
                f.write(json.dumps(metrics) + "\n")
        except OSError as e:
            why = "it is a symbolic link" if e.errno == errno.ELOOP else e.strerror
            raise UserError(f"step {self.step}: could not append to {path} ({why}); {self.kept()}") from None

    def drop_metrics_after_checkpoint(self):
        """On resume: forget evaluations logged after the checkpoint we continue from. A crash
        between an evaluation and the next checkpoint leaves such rows, and the resumed run will
        log those steps again; keeping both would show two rows for one step."""
        path = self.run_dir / METRICS
        if not path.exists():
            return
        lines = path.read_text().splitlines(keepends=True)
        kept = [line for line in lines if not line.strip() or _step_of(line, path) <= self.step]
        if len(kept) != len(lines):
            checkpoint.write_atomically(path, lambda f: f.write("".join(kept).encode()))
            print(f"{path}: dropped {len(lines) - len(kept)} evaluation(s) logged after the checkpoint's step {self.step}")


def _step_of(line, path):
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path}: a line is not a minitx metrics record: {line.strip()[:60]!r}") from None


def start_run(config_path, overrides=(), out=None, resume=False):
    """Everything before the first step of `minitx train`: read the config, choose the run
    directory, build the run, lock the directory, and restore its checkpoint when resuming.
    The returned run holds the directory's lock (run.lock); the caller releases it."""
    config_path = resolve_config_path(config_path)
    cfg = load_config(config_path, overrides)
    use_blas_threads(cfg.train.threads)
    run_dir = choose_run_dir(config_path, out, resume)
    run = Run(cfg, run_dir, config_path)
    run.config_path, run.overrides = config_path, list(overrides)
    cfg = run.cfg  # the config with the output length limit worked out, which config.yaml records
    # A checkpoint holds the trained weights and, for Adam, their two moments.
    trained_bytes = sum(p.nbytes for p in run.trained.params.values())
    run.lock = open_run_dir(run_dir, resume, (CONFIG, METRICS, checkpoint.CHECKPOINT), METRICS, checkpoint_bytes=3 * trained_bytes)
    try:
        if resume:
            arrays = checkpoint.load(run.ckpt_path)
            check_compatible(cfg, arrays["config"], run.ckpt_path)
            check_vocab(arrays, run.task, run.ckpt_path, config_path)
            if int(arrays["step"]) >= cfg.train.steps:
                raise UserError(f"{run.ckpt_path}: the checkpoint is at step {int(arrays['step'])} and train.steps is "
                                f"{cfg.train.steps}, so there is nothing to train; nothing was changed. To train longer, "
                                f"add --set train.steps=N with N above {int(arrays['step'])}")
            run.restore(arrays, run.ckpt_path)
            run.drop_metrics_after_checkpoint()
        save_config(cfg, run_dir / CONFIG)
    except BaseException:
        run.lock.release()
        raise
    print(f"outputs are decoded up to {cfg.eval.max_output_len} tokens, </s> included ({run.output_limit_why})")
    if cfg.lora.base_run:
        what = (f"LoRA rank {cfg.lora.rank} adapters on {', '.join(cfg.lora.targets)}: {run.adapters.n_params():,} "
                f"trained parameters, {run.model.n_params():,} frozen" if run.adapters is not None
                else f"every weight: {run.model.n_params():,} trained parameters")
        print(f"fine-tuning {cfg.lora.base_run} (fingerprint {run.base_fingerprint}); {what}")
    return run


def with_absolute_paths(cfg):
    """The config with its data files and base run as absolute paths. A config names them
    relative to the directory training starts from; the run records where they are, so that
    `eval RUN_DIR` finds them from any directory."""
    paths = {key: os.path.abspath(getattr(cfg.data, key)) for key in PATH_KEYS if getattr(cfg.data, key)}
    lora = replace(cfg.lora, base_run=os.path.abspath(cfg.lora.base_run)) if cfg.lora.base_run else cfg.lora
    return replace(cfg, data=replace(cfg.data, **paths), lora=lora)


def resume_command(run):
    """The command that continues `run`, with the overrides it was started with."""
    words = ["train", shown(run.config_path), "--resume", "--out", str(run.run_dir)]
    for override in run.overrides:
        words += ["--set", override]
    return f"{minitx_command()} {shlex.join(words)}"


def check_finite(run, loss, grad_norm):
    """Stop at the first step whose loss or gradient norm is not a finite number."""
    if math.isfinite(loss) and math.isfinite(grad_norm):
        return
    what, value = ("loss", loss) if not math.isfinite(loss) else ("gradient norm", grad_norm)
    raise UserError(f"step {run.step + 1}: {what} is {value}; stopped, and {run.kept()}. Try a lower train.lr, or check the data")


def check_evaluation(run, metrics):
    """Stop at an evaluation whose validation loss is not finite: the weights it measured are
    not worth a checkpoint (the row stays in metrics.jsonl, so the curves show where it went)."""
    if not math.isfinite(metrics["val_loss"]):
        raise UserError(f"step {run.step}: the validation loss is {metrics['val_loss']}; stopped without saving, and "
                        f"{run.kept()}. Try a lower train.lr, or check the data")


def _worst(p):
    return "nan" if np.isnan(p).any() else "inf"


def check_same_run(cfg, saved_json, cfg_path, ckpt_path):
    """Refuse a run whose config.yaml no longer describes its checkpoint (an edited file): the
    model, the data it was trained and held out on, and the adapters. The paths of the data
    files and of a base run may change (the files moved); the vocabularies and the base's
    fingerprint are checked on their own."""
    saved = _with_defaults(json.loads(str(saved_json)))
    now = asdict(cfg)
    keys = ([("model", k) for k in now["model"] if k not in IMPLEMENTATION_ONLY]
            + [("data", k) for k in now["data"] if k not in PATH_KEYS] + [("train", "seed")]
            + [("lora", k) for k in now["lora"] if k != "base_run"])
    for section, key in keys:
        if saved[section].get(key) != now[section][key]:
            raise UserError(f"{cfg_path} says {section}.{key} = {now[section][key]!r}, but {ckpt_path} was trained with "
                            f"{saved[section].get(key)!r}; put config.yaml back as training wrote it")


def load_base(cfg, model, task, cfg_path="the config"):
    """Copy the weights of cfg.lora.base_run into `model`, after checking the base was trained
    with the same model section and vocabularies. Returns the base checkpoint's fingerprint."""
    base_dir = Path(cfg.lora.base_run)
    ckpt_path, base_cfg_path = base_dir / checkpoint.CHECKPOINT, base_dir / "config.yaml"
    if not (ckpt_path.exists() and base_cfg_path.exists()):
        raise UserError(f"{cfg_path}: lora.base_run: {base_dir} holds no trained run "
                        f"(train the base first, e.g. {minitx_command()} train tiny --out {base_dir})")
    base_cfg = load_config(base_cfg_path, run_config=True)
    if base_cfg.lora.enabled:
        raise UserError(f"{cfg_path}: lora.base_run: {base_dir} is itself an adapter run; fine-tune its base instead")
    for key, value in config_to_dict(cfg)["model"].items():
        if key not in IMPLEMENTATION_ONLY and getattr(base_cfg.model, key) != value:
            raise UserError(f"{cfg_path}: model.{key} is {value!r}, but the base run {base_dir} was trained "
                            f"with {getattr(base_cfg.model, key)!r}; they must match to fine-tune it")
    arrays = checkpoint.load(ckpt_path)
    check_vocab(arrays, task, ckpt_path, cfg_path)
    load_params(model, arrays, ckpt_path, base_cfg_path)
    return lora.fingerprint(arrays)


def check_vocab(arrays, task, ckpt_path, cfg_path):
    """Refuse data whose vocabulary is not the checkpoint's: the same words in another order
    (a training file shuffled in place) give them other ids, which the weights do not know."""
    for side, vocab in (("src", task.src_vocab), ("tgt", task.tgt_vocab)):
        saved = [str(t) for t in arrays[f"vocab/{side}"]]
        if saved != vocab.itos:
            i = next((i for i, (a, b) in enumerate(zip(saved, vocab.itos)) if a != b), min(len(saved), len(vocab.itos)))
            at = lambda tokens: repr(tokens[i]) if i < len(tokens) else "nothing"
            raise UserError(f"{ckpt_path}: its {side} vocabulary differs from the one {cfg_path} builds from the data: id {i} is "
                            f"{at(saved)} in the checkpoint and {at(vocab.itos)} in the data (did the data change?)")


def load_params(model, arrays, path, cfg_path="the config"):
    """Copy checkpoint parameters into the model in place, checking names and shapes."""
    arrays = {current_name(k): v for k, v in arrays.items()}
    names = {k[6:] for k in arrays if k.startswith("param/")}
    if names != set(model.params):
        missing = sorted(set(model.params) - names)[:3]
        extra = sorted(names - set(model.params))[:3]
        raise UserError(f"{path} does not fit the model {cfg_path} describes (missing {missing}, unexpected {extra})")
    for k, p in model.params.items():
        saved = arrays[f"param/{k}"]
        if saved.shape != p.shape:
            raise UserError(f"{path} does not fit the model {cfg_path} describes: {k} is {saved.shape} in the checkpoint, {p.shape} in the model")
        p[...] = saved


# What a resumed run may change: how long it trains and how often it reports, and which
# implementation computes it (plain and fused layers hold the same parameters and compute the
# same numbers), and the BLAS thread count, a property of the machine. Another count adds a
# product's terms in another order; those last-bit differences grow over training (100 tiny
# steps with 1 and with 2 threads end at exact match 0.306 and 0.302), so a run resumed with
# another count is no longer bit for bit the run that kept one. Everything else (model, data,
# optimizer, schedule, seed, ...) must match, or the run would silently become a different one.
# Note that the cosine schedule depends on train.steps, so extending a cosine run changes its
# learning rates from the resume point on.
IMPLEMENTATION_ONLY = {"fused"}
PATH_KEYS = ("train", "valid", "test")  # the data section's file paths
RESUMABLE_CHANGES = {"train.steps", "train.eval_every", "train.checkpoint_every", "train.target_exact_match",
                     "train.threads"} | {f"model.{key}" for key in IMPLEMENTATION_ONLY}


def _with_defaults(saved):
    """A checkpoint's config with every key minitx now has. A key added to minitx after the
    checkpoint was written (data.test_min_len, ...) had its default's behaviour then, so a
    missing key counts as its default."""
    saved.setdefault("lora", asdict(LoRAConfig()))  # a run that fine-tunes nothing saves none
    for section, defaults in asdict(Config()).items():
        for key, default in defaults.items():
            saved.setdefault(section, {}).setdefault(key, default)
    return saved


def _absolute_paths(saved):
    """Paths as with_absolute_paths records them. A checkpoint written before runs recorded
    absolute paths named them relative to the directory training started from, which resuming
    must start from too."""
    for key in PATH_KEYS:
        if saved["data"][key]:
            saved["data"][key] = os.path.abspath(saved["data"][key])
    if saved["lora"]["base_run"]:
        saved["lora"]["base_run"] = os.path.abspath(saved["lora"]["base_run"])


def check_compatible(cfg, saved_json, where):
    """A resumed run may change how long it trains, not what it trains."""
    saved = _with_defaults(json.loads(str(saved_json)))
    _absolute_paths(saved)
    now = asdict(cfg)
    for section in ("model", "data", "train", "lora"):
        for key, value in now[section].items():
            if f"{section}.{key}" not in RESUMABLE_CHANGES and saved[section].get(key) != value:
                raise UserError(
                    f"{where}: the checkpoint was trained with {section}.{key} = {saved[section].get(key)!r}, "
                    f"the config says {value!r}; they must match to resume"
                )
