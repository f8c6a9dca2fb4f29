"""The training loop: batches in, hand-written gradients, Adam, evaluation, checkpoints.

One step is the whole story of the package in five lines (train_step below):
    logits = model.forward(src, tgt_in)          # (B, T, V)
    loss   = ce.forward(logits, tgt_out)         # scalar
    model.backward(ce.backward())                # every grads[...] filled
    clip_grad_norm(model.grads, clip_norm)
    optimizer.step(model.grads, lr)

`train` repeats it, evaluating and saving a checkpoint every so often, while minitx.rundir
starts, saves and resumes the run and minitx.build makes its model and optimizer. With LoRA
adapters (minitx.lora) the step gains two calls: adapters.backward() after the model's
backward, and adapters.forward() after the update.
"""

import math
import signal
import time
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
from tqdm import tqdm

from minitx.data import EOS, PAD, TsvTask
from minitx.decode import emittable, greedy, length_limit, output_limit
from minitx.errors import Interrupted
from minitx.nn import CrossEntropy
from minitx.optim import clip_grad_norm, make_schedule
from minitx.rundir import check_evaluation, check_finite, resume_command, start_run
from minitx.scores import corpus_scores


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
    that same wrong token. The argmax is greedy's own: never <pad> or <s> (decode.emittable).
    (tests/test_train.py checks this against real decoding.)"""
    valid = batch.tgt_out != PAD  # (B, T)
    right = (emittable(logits).argmax(axis=-1) == batch.tgt_out) | ~valid  # (B, T)
    return right.all(axis=1) & (valid.sum(axis=1) <= max_len)


def greedy_would_be_cut(logits, batch, max_len):
    """(B,) bool: whether greedy decoding would write the first max_len tokens of a target that
    is longer than that, and so be cut at the limit before its </s>. By the same induction as
    greedy_would_match, these are exactly the outputs the limit turns from right to wrong. An
    output that goes wrong before the limit may reach it too, unseen here: it is wrong anyway."""
    valid = batch.tgt_out != PAD  # (B, T)
    right = (emittable(logits).argmax(axis=-1) == batch.tgt_out) | ~valid  # (B, T)
    return right[:, :max_len].all(axis=1) & (valid.sum(axis=1) > max_len)


def evaluate(model, task, split, cfg, decode=None):
    """Teacher-forced loss and token accuracy, plus exact match of decoded outputs.

    token_acc: fraction of target tokens (</s> included) whose argmax prediction (never <pad> or
    <s>, as in decoding) is right when the decoder is given the true prefix. exact_match:
    fraction of sequences whose decoded output, up to and including its first </s>, equals the
    target and </s>. cut: how many outputs reached the length limit, max_output_len
    (decode.output_limit), without </s>; each counts as wrong, and a count above 0 says the
    limit may be too short for this data. decode(model, src, max_len) is the decoding function;
    None means greedy, whose exact match we read off the teacher-forced pass (greedy_would_match)
    instead of decoding: the same number, far faster. That pass sees greedy's output only up to
    its first mistake, so there `cut` counts the outputs the limit turns from right to wrong.
    On the user's text (a TsvTask) decoded outputs are also scored with corpus BLEU and chrF
    (minitx.scores), with sacrebleu's signatures.
    """
    model.train(False)
    if decode is None and not model.causal:
        decode = greedy  # the shortcut below holds only for a causal decoder
    max_len = length_limit(model, output_limit(cfg, task)[0])
    # Plain cross-entropy, without label smoothing: the validation loss then measures the model
    # alone, comparable across configs (train_loss is what training minimises, smoothing and all).
    ce = CrossEntropy(PAD)
    loss_sum = correct = tokens = exact = cut = n = 0
    outputs = []  # decoded token ids, in the split's order
    n_batches = math.ceil(len(task.splits[split]) / cfg.eval.batch_size)  # from 10 on, we show progress
    batches = tqdm(task.eval_batches(split, cfg.eval.batch_size), f"evaluating on {split}", n_batches,
                   leave=False, disable=n_batches < 10)
    for batch, targets in batches:
        logits = model.forward(batch.src, batch.tgt_in)  # (B, T, V)
        valid = batch.tgt_out != PAD
        loss_sum += ce.forward(logits, batch.tgt_out) * valid.sum()
        correct += int(((emittable(logits).argmax(-1) == batch.tgt_out) & valid).sum())
        tokens += int(valid.sum())
        if decode is None:
            exact += int(greedy_would_match(logits, batch, max_len).sum())
            cut += int(greedy_would_be_cut(logits, batch, max_len).sum())
        else:
            out = decode(model, batch.src, max_len).tolist()
            exact += sum(row[: len(t) + 1] == t + [EOS] for row, t in zip(out, targets))
            cut += sum(EOS not in row for row in out)
            outputs += out
        n += len(targets)
    metrics = {"val_loss": loss_sum / max(tokens, 1), "token_acc": correct / max(tokens, 1), "exact_match": exact / max(n, 1),
               "cut": cut, "max_output_len": max_len, "n": n}
    if outputs and isinstance(task, TsvTask):
        hypotheses = [task.to_text(task.tgt_vocab.decode(ids)) for ids in outputs]
        references = [task.to_text(tgt) for _, tgt in task.splits[split]]
        metrics.update(corpus_scores(hypotheses, references))
    return metrics


def cut_note(metrics, remedy="raise eval.max_output_len"):
    """The warning an evaluation with cut outputs prints, or None."""
    if metrics["cut"]:
        return (f"note: {metrics['cut']} of {metrics['n']} outputs reached the length limit of {metrics['max_output_len']} "
                f"tokens without </s> and count as wrong; if targets can be that long, {remedy}")
    return None


def train(config_path, overrides=(), out=None, resume=False, quiet=False):
    """Train from a config (a name in configs/ or a path); returns the run directory."""
    run = start_run(config_path, overrides, out, resume)
    try:
        train_run(run, quiet)
    finally:
        run.lock.release()
    return run.run_dir


def train_run(run, quiet):
    """The training loop of a started run (rundir.start_run), to its last step and save."""
    t = run.cfg.train
    schedule = make_schedule(t.schedule, t.lr, t.warmup, t.steps, d_model=run.cfg.model.d_model)
    progress = Progress(run, quiet)
    # BLEU and chrF of the user's text need the decoded words; exact match alone we read off the
    # teacher-forced pass without decoding (evaluate says why that is the same number).
    decode = greedy if isinstance(run.task, TsvTask) else None
    # A diverging run overflows to inf and nan; we check every step's loss and gradient norm
    # and every evaluation ourselves and stop with one line, so NumPy's warnings would only
    # bury that line.
    with stop_on_signals(progress) as stop, np.errstate(over="ignore", invalid="ignore"):
        while run.step < t.steps and not stop.requested:
            run.model.train(True)
            batch = run.task.train_batch(run.data_rng, t.batch_size)
            lr = schedule(run.step + 1)
            loss, grad_norm = train_step(run.model, run.loss, run.optimizer, batch, lr, t.clip_norm, run.adapters)
            check_finite(run, loss, grad_norm)
            run.step += 1
            run.loss_sum, run.loss_count = run.loss_sum + loss, run.loss_count + 1
            progress.step(loss, lr, batch.n_tokens)
            finished = run.step == t.steps
            if run.step % t.eval_every == 0 or finished:
                metrics = progress.report(evaluate(run.model, run.task, "valid", run.cfg, decode))
                check_evaluation(run, metrics)
                if t.target_exact_match and metrics["exact_match"] >= t.target_exact_match:
                    progress.write(f"reached exact_match {metrics['exact_match']:.4f} >= {t.target_exact_match} at step {run.step}; stopping")
                    break
            if run.step % (t.checkpoint_every or t.eval_every) == 0 or finished:
                run.save(progress.elapsed())
    if run.saved_step != run.step:  # stopped early: by the target, or by Ctrl-C or SIGTERM
        run.save(progress.elapsed())
    progress.close()
    if stop.requested:
        raise Interrupted(f"interrupted at step {run.step} ({stop.requested}); checkpoint saved to {run.ckpt_path}. "
                          f"Continue with: {resume_command(run)}", exit_code=128 + stop.signum)
    print(f"run saved in {run.run_dir}")


class Progress:
    """The progress bar, the training loss since the last evaluation, and the clock, which
    continues from where an earlier session of the run stopped."""

    def __init__(self, run, quiet):
        self.run = run
        self.bar = tqdm(total=run.cfg.train.steps, initial=run.step, desc=run.run_dir.name, disable=quiet, dynamic_ncols=True)
        self.base, self.start = run.elapsed, time.perf_counter()  # seconds of earlier sessions
        self.tokens, self.tick = 0, self.start

    def elapsed(self):
        return self.base + time.perf_counter() - self.start

    def write(self, text):
        self.bar.write(text)

    def step(self, loss, lr, n_tokens):
        self.bar.update(1)
        self.tokens += n_tokens
        if self.run.step % 10 == 0:
            now = time.perf_counter()
            self.bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}", tok_s=f"{self.tokens / (now - self.tick):.0f}")
            self.tokens, self.tick = 0, now

    def report(self, evaluation):
        """Log one evaluation (with the training loss since the last one) and print it."""
        run = self.run
        metrics = {"step": run.step, "train_loss": run.loss_sum / max(run.loss_count, 1), **evaluation}
        metrics["elapsed_s"] = round(self.elapsed(), 3)
        run.loss_sum, run.loss_count = 0.0, 0
        run.log_metrics(metrics)
        text_scores = f"  bleu {metrics['bleu']:.2f}  chrf {metrics['chrf']:.2f}" if "bleu" in metrics else ""
        self.write(f"step {run.step}: train_loss {metrics['train_loss']:.4f}  val_loss {metrics['val_loss']:.4f}  "
                   f"token_acc {metrics['token_acc']:.4f}  exact_match {metrics['exact_match']:.4f}{text_scores}  ({metrics['elapsed_s']:.1f} s)")
        note = cut_note(metrics)
        if note:
            self.write(f"  {note}")
        return metrics

    def close(self):
        self.bar.close()


@contextmanager
def stop_on_signals(progress):
    """Ctrl-C (SIGINT) and SIGTERM (what `kill` and most job schedulers send) only raise a
    flag: the loop finishes the step in hand, saves and stops, so the checkpoint never holds a
    half-applied update. A second one stops at once, keeping the last saved checkpoint."""
    stop = SimpleNamespace(requested=None, signum=None)
    names = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}

    def on_signal(signum, frame):
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested, stop.signum = names[signum], signum
        progress.write(f"{names[signum]}: finishing this step and saving a checkpoint ({names[signum]} again quits at once)")

    previous = {signum: signal.signal(signum, on_signal) for signum in names}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
