"""The training loop: batches in, hand-written gradients, Adam, evaluation, checkpoints.

One step is the whole story of the package in five lines:
    logits = model.forward(src, tgt_in)          # (B, T, V)
    loss   = ce.forward(logits, tgt_out)         # scalar
    model.backward(ce.backward())                # every grads[...] filled
    clip_grad_norm(model.grads, clip_norm)
    optimizer.step(model.grads, lr)

A run directory holds config.yaml (the resolved config), metrics.jsonl (one JSON object per
evaluation) and checkpoint.npz (everything needed to continue exactly where we stopped).

Fine-tuning (the config's lora section) starts from another run's checkpoint, lora.base_run.
With lora.enabled false every weight trains (full fine-tuning); with it true only low-rank
adapters do (minitx.lora): the step gains two calls (adapters.backward() after the model's
backward, adapters.forward() after the update), and the checkpoint holds only the adapters plus
the base run's path and fingerprint.
"""

import json
import math
import signal
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from minitx import checkpoint, lora
from minitx.config import LoRAConfig, config_to_dict, load_config, resolve_config_path, save_config
from minitx.data import EOS, PAD, Task, Vocab, load_task
from minitx.decode import length_limit
from minitx.errors import Interrupted, UserError
from minitx.loss import CrossEntropy
from minitx.model import Transformer
from minitx.optim import Adam, AdamW, clip_grad_norm, make_schedule


def build_model(cfg, task, dtype=np.float32):
    rng = np.random.default_rng([cfg.train.seed, 0])
    return Transformer(cfg.model, len(task.src_vocab), len(task.tgt_vocab), PAD, rng, dtype)


def build_optimizer(cfg, params, names=None):
    t = cfg.train
    cls = AdamW if t.optimizer == "adamw" else Adam
    return cls(params, lr=t.lr, beta1=t.beta1, beta2=t.beta2, eps=t.eps, weight_decay=t.weight_decay, names=names)


def train_step(model, ce, optimizer, batch, lr, clip_norm, adapters=None):
    """One optimisation step; returns (loss, gradient norm before clipping).

    With LoRA adapters the model's adapted weights already hold W0 + s * A @ B; its backward
    leaves dL/dW_eff, which the adapters turn into dA and dB, and only those are clipped and
    stepped. The updated A and B are then written back into the model for the next forward."""
    model.zero_grad()
    logits = model.forward(batch.src, batch.tgt_in)  # (B, T, V)
    loss = ce.forward(logits, batch.tgt_out)
    model.backward(ce.backward())
    trained = model
    if adapters is not None:
        adapters.zero_grad()
        adapters.backward()  # model.grads[W] -> adapters.grads[lora.W.A], [lora.W.B]
        trained = adapters
    grad_norm = clip_grad_norm(trained.grads, clip_norm)
    if math.isfinite(loss) and math.isfinite(grad_norm):
        optimizer.step(trained.grads, lr)
        if adapters is not None:
            adapters.forward()  # W_eff = W0 + s * A @ B with the new A, B
    return loss, grad_norm


def greedy_would_match(logits, batch, max_len):
    """(B,) bool: whether greedy decoding would reproduce each target exactly, read off the
    teacher-forced logits (B, T, V) without decoding.

    Greedy decoding feeds back its own argmax. As long as its prefix equals the target's, the
    decoder sees exactly what teacher forcing gives it (the decoder is causal), so its next
    token is the teacher-forced argmax at that position. By induction, greedy reproduces the
    target, </s> included, if and only if the teacher-forced argmax is right at every position
    and the target fits in the decoding length limit. At the first wrong argmax, greedy emits
    that same wrong token. (tests/test_train.py checks this against real decoding.)"""
    valid = batch.tgt_out != PAD  # (B, T)
    right = (logits.argmax(axis=-1) == batch.tgt_out) | ~valid  # (B, T)
    return right.all(axis=1) & (valid.sum(axis=1) <= max_len)


def evaluate(model, task, split, cfg, decode=None):
    """Teacher-forced loss and token accuracy, plus exact match of decoded outputs.

    token_acc: fraction of target tokens (</s> included) whose argmax prediction is right when
    the decoder is given the true prefix. exact_match: fraction of sequences whose decoded
    output, up to and including its first </s>, equals the target and </s>. decode(model, src,
    max_len) is the decoding function; None means greedy, whose exact match we read off the
    teacher-forced pass (greedy_would_match) instead of decoding: the same number, far faster.
    """
    model.train(False)
    # Plain cross-entropy, without label smoothing: the validation loss then measures the model
    # alone, comparable across configs (train_loss is what training minimises, smoothing and all).
    ce = CrossEntropy(PAD)
    loss_sum = correct = tokens = exact = n = 0
    for batch, targets in task.eval_batches(split, cfg.eval.batch_size):
        logits = model.forward(batch.src, batch.tgt_in)  # (B, T, V)
        valid = batch.tgt_out != PAD
        loss_sum += ce.forward(logits, batch.tgt_out) * valid.sum()
        correct += int(((logits.argmax(-1) == batch.tgt_out) & valid).sum())
        tokens += int(valid.sum())
        max_len = length_limit(model, batch.src.shape[1] + cfg.eval.max_decode_extra)
        if decode is None:
            exact += int(greedy_would_match(logits, batch, max_len).sum())
        else:
            out = decode(model, batch.src, max_len).tolist()
            exact += sum(row[: len(t) + 1] == t + [EOS] for row, t in zip(out, targets))
        n += len(targets)
    return {"val_loss": loss_sum / max(tokens, 1), "token_acc": correct / max(tokens, 1), "exact_match": exact / max(n, 1), "n": n}


def choose_run_dir(config_path, out, resume):
    """Never overwrite a run: without --resume an occupied directory gets a numbered sibling."""
    run_dir = Path(out) if out else Path("runs") / Path(config_path).stem
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir}: exists and is not a directory (choose another --out)")
    if resume:
        if not (run_dir / checkpoint.CHECKPOINT).exists():
            raise UserError(f"{run_dir}: nothing to resume (no {checkpoint.CHECKPOINT}); drop --resume to start a new run")
        return run_dir
    if run_dir.exists() and any(run_dir.iterdir()):
        i = 2
        while Path(f"{run_dir}-{i}").exists():
            i += 1
        print(f"{run_dir} already holds a run; writing this one to {run_dir}-{i} (use --resume to continue {run_dir})")
        run_dir = Path(f"{run_dir}-{i}")
    return run_dir


class Run:
    """Everything a training run owns, and how it is saved and restored."""

    def __init__(self, cfg, run_dir, cfg_path="the config"):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.task = load_task(cfg)
        self.model = build_model(cfg, self.task)
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
        self.loss_sum, self.loss_count = 0.0, 0

    def state(self):
        arrays = {f"param/{k}": v for k, v in self.trained.params.items()}
        arrays.update({f"optim/{k}": v for k, v in self.optimizer.state_dict().items()})
        arrays.update({
            "step": np.array(self.step),
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

    def save(self):
        checkpoint.save(self.run_dir / checkpoint.CHECKPOINT, self.state())

    def restore(self, arrays, path):
        if self.adapters is not None:
            lora.check_base(arrays, self.cfg.lora.base_run, self.base_fingerprint, path)
        load_params(self.trained, arrays, path)
        if self.adapters is not None:
            self.adapters.forward()  # the restored A, B into the model's weights
        self.optimizer.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("optim/")})
        self.step = int(arrays["step"])
        checkpoint.set_rng_state(self.model.rng, arrays["rng/model"])
        checkpoint.set_rng_state(self.data_rng, arrays["rng/data"])
        self.loss_sum, self.loss_count = float(arrays["loss_sum"]), int(arrays["loss_count"])


def load_base(cfg, model, task, cfg_path="the config"):
    """Copy the weights of cfg.lora.base_run into `model`, after checking the base was trained
    with the same model section and vocabularies. Returns the base checkpoint's fingerprint."""
    base_dir = Path(cfg.lora.base_run)
    ckpt_path, base_cfg_path = base_dir / checkpoint.CHECKPOINT, base_dir / "config.yaml"
    if not (ckpt_path.exists() and base_cfg_path.exists()):
        raise UserError(f"{cfg_path}: lora.base_run: {base_dir} holds no trained run "
                        f"(train the base first, e.g. python -m minitx train tiny --out {base_dir})")
    base_cfg = load_config(base_cfg_path)
    if base_cfg.lora.enabled:
        raise UserError(f"{cfg_path}: lora.base_run: {base_dir} is itself an adapter run; fine-tune its base instead")
    for key, value in config_to_dict(cfg)["model"].items():
        if getattr(base_cfg.model, key) != value:
            raise UserError(f"{cfg_path}: model.{key} is {value!r}, but the base run {base_dir} was trained "
                            f"with {getattr(base_cfg.model, key)!r}; they must match to fine-tune it")
    arrays = checkpoint.load(ckpt_path)
    check_vocab(arrays, task, ckpt_path, cfg_path)
    load_params(model, arrays, ckpt_path, base_cfg_path)
    return lora.fingerprint(arrays)


def check_vocab(arrays, task, ckpt_path, cfg_path):
    for side, vocab in (("src", task.src_vocab), ("tgt", task.tgt_vocab)):
        if list(arrays[f"vocab/{side}"]) != vocab.itos:
            raise UserError(f"{ckpt_path}: its {side} vocabulary differs from the one {cfg_path} builds (did the data change?)")


def load_params(model, arrays, path, cfg_path="the config"):
    """Copy checkpoint parameters into the model in place, checking names and shapes."""
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


# What a resumed run may change: how long it trains and how often it reports. Everything else
# (model, data, optimizer, schedule, seed, ...) must match, or the run would silently become a
# different one. Note that the cosine schedule depends on train.steps, so extending a cosine run
# changes its learning rates from the resume point on.
RESUMABLE_CHANGES = {"train.steps", "train.eval_every", "train.checkpoint_every", "train.target_exact_match"}


def check_compatible(cfg, saved_json, where):
    """A resumed run may change how long it trains, not what it trains."""
    saved = json.loads(str(saved_json))
    saved.setdefault("lora", asdict(LoRAConfig()))  # a run that fine-tunes nothing saves none
    now = asdict(cfg)
    for section in ("model", "data", "train", "lora"):
        for key, value in now[section].items():
            if f"{section}.{key}" not in RESUMABLE_CHANGES and saved[section].get(key) != value:
                raise UserError(
                    f"{where}: the checkpoint was trained with {section}.{key} = {saved[section].get(key)!r}, "
                    f"the config says {value!r}; they must match to resume"
                )


def train(config_path, overrides=(), out=None, resume=False, quiet=False):
    """Train from a config (a name in configs/ or a path); returns the run directory."""
    config_path = resolve_config_path(config_path)
    cfg = load_config(config_path, overrides)
    run_dir = choose_run_dir(config_path, out, resume)
    run = Run(cfg, run_dir, config_path)
    ckpt_path = run_dir / checkpoint.CHECKPOINT
    if resume:
        arrays = checkpoint.load(ckpt_path)
        check_compatible(cfg, arrays["config"], ckpt_path)
        run.restore(arrays, ckpt_path)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    if cfg.lora.base_run:
        what = (f"LoRA rank {cfg.lora.rank} adapters on {', '.join(cfg.lora.targets)}: {run.adapters.n_params():,} "
                f"trained parameters, {run.model.n_params():,} frozen" if run.adapters is not None
                else f"every weight: {run.model.n_params():,} trained parameters")
        print(f"fine-tuning {cfg.lora.base_run} (fingerprint {run.base_fingerprint}); {what}")
    t = cfg.train
    schedule = make_schedule(t.schedule, t.lr, t.warmup, t.steps, d_model=cfg.model.d_model)
    ce = CrossEntropy(PAD, t.label_smoothing)
    ckpt_every = t.checkpoint_every or t.eval_every
    start = time.perf_counter()
    last_saved = run.step
    bar = tqdm(total=t.steps, initial=run.step, desc=run_dir.name, disable=quiet, dynamic_ncols=True)
    tokens_since, tick = 0, time.perf_counter()
    # Ctrl-C only raises a flag: we finish the step in hand, so the checkpoint never holds a
    # half-applied update. A second Ctrl-C stops at once, keeping the last saved checkpoint.
    stop = {"requested": False}

    def on_sigint(signum, frame):
        if stop["requested"]:
            raise KeyboardInterrupt
        stop["requested"] = True
        bar.write("Ctrl-C: finishing this step and saving a checkpoint (press again to quit at once)")

    previous_handler = signal.signal(signal.SIGINT, on_sigint)
    try:
        while run.step < t.steps:
            if stop["requested"]:
                run.save()
                bar.close()
                raise Interrupted(
                    f"interrupted at step {run.step}; checkpoint saved to {ckpt_path}. "
                    f"Continue with: python -m minitx train {config_path} --resume --out {run_dir}"
                    + "".join(f" --set {o}" for o in overrides)
                )
            run.model.train(True)
            batch = run.task.train_batch(run.data_rng, t.batch_size)
            lr = schedule(run.step + 1)
            loss, grad_norm = train_step(run.model, ce, run.optimizer, batch, lr, t.clip_norm, run.adapters)
            if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                what = "loss" if not math.isfinite(loss) else "gradient norm"
                kept = (f"the last good checkpoint (step {last_saved}) is kept in {ckpt_path}"
                        if ckpt_path.exists() else "no checkpoint had been saved yet")
                raise UserError(f"step {run.step + 1}: {what} is {loss if what == 'loss' else grad_norm}; stopped, and "
                                f"{kept}. Try a lower train.lr, or check the data")
            run.step += 1
            run.loss_sum += loss
            run.loss_count += 1
            tokens_since += batch.n_tokens
            bar.update(1)
            if run.step % 10 == 0:
                now = time.perf_counter()
                bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}", tok_s=f"{tokens_since / (now - tick):.0f}")
                tokens_since, tick = 0, now
            finished = run.step == t.steps
            if run.step % t.eval_every == 0 or finished:
                metrics = {"step": run.step, "train_loss": run.loss_sum / max(run.loss_count, 1)}
                metrics.update(evaluate(run.model, run.task, "valid", cfg))
                metrics["elapsed_s"] = round(time.perf_counter() - start, 3)
                run.loss_sum, run.loss_count = 0.0, 0
                with open(run_dir / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(metrics) + "\n")
                bar.write(
                    f"step {run.step}: train_loss {metrics['train_loss']:.4f}  val_loss {metrics['val_loss']:.4f}  "
                    f"token_acc {metrics['token_acc']:.4f}  exact_match {metrics['exact_match']:.4f}  ({metrics['elapsed_s']:.1f} s)"
                )
                if t.target_exact_match and metrics["exact_match"] >= t.target_exact_match:
                    run.save()
                    bar.write(f"reached exact_match {metrics['exact_match']:.4f} >= {t.target_exact_match} at step {run.step}; stopping")
                    break
            if run.step % ckpt_every == 0 or finished:
                run.save()
                last_saved = run.step
    finally:
        signal.signal(signal.SIGINT, previous_handler)
    bar.close()
    print(f"run saved in {run_dir}")
    return run_dir


def load_run(run_dir, need_data=True):
    """A trained run for inference: (cfg, model, task), from config.yaml and checkpoint.npz.

    need_data=False (translating, looking at attention) takes the vocabularies saved in the
    checkpoint, so a run works from any directory and without its training files; the task
    then has vocabularies but no held-out splits."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: not a run directory")
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.exists():
        raise UserError(f"{run_dir}: no config.yaml (is this a minitx run directory?)")
    cfg = load_config(cfg_path, check_files=False)  # load_task below names a missing file
    ckpt_path = run_dir / checkpoint.CHECKPOINT
    arrays = checkpoint.load(ckpt_path)
    if need_data or cfg.lora.enabled:
        task = load_task(cfg)
        check_vocab(arrays, task, ckpt_path, cfg_path)
    else:
        task = Task(Vocab(arrays["vocab/src"].tolist()), Vocab(arrays["vocab/tgt"].tolist()), splits={}, split_hyphens=cfg.data.split_hyphens)
    if cfg.lora.enabled:
        # An adapter checkpoint holds only A and B: rebuild the run on its base weights, load
        # the adapters, and merge W0 + s * A @ B into a plain model.
        run = Run(cfg, run_dir, cfg_path)
        run.restore(arrays, ckpt_path)
        model = run.adapters.merge()
    else:
        model = build_model(cfg, task)
        load_params(model, arrays, ckpt_path, cfg_path)
    model.train(False)
    return cfg, model, task
