"""Loading a finished run to use it: evaluate it, translate with it, look inside it.

load_run reads a run directory's config.yaml and checkpoint.npz and returns (cfg, model, task)
with the model in inference mode. Every command that works on a trained run (eval, translate,
attention, explain, ablate, lowrank, embeddings) starts here; training and resuming start in
minitx.train.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np

from minitx import checkpoint
from minitx.build import build_model
from minitx.config import load_config
from minitx.data import Task, Vocab, load_task
from minitx.decode import output_limit
from minitx.errors import UserError
from minitx.rundir import Run, check_same_run, check_vocab, load_params
from minitx.shell import minitx_command
from minitx.threads import use_blas_threads


def load_run(run_dir, need_data=True, fused=None, max_output_len=0, threads=0):
    """A trained run for inference: (cfg, model, task), from config.yaml and checkpoint.npz.

    need_data=False (translating, looking at attention) takes the vocabularies saved in the
    checkpoint, so a run works from any directory and without its training files; the task
    then has vocabularies but no held-out splits. fused: build the model plain (False) or fused
    (True) whatever the run was trained with; None keeps the run's own model.fused.
    max_output_len: decode up to this many tokens instead of the run's eval.max_output_len.
    threads: BLAS threads to use instead of the run's train.threads.
    The returned cfg is the run's config.yaml with these choices applied; the file is not
    changed."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "not a directory" if run_dir.exists() else "no such directory"
        raise UserError(f"{run_dir}: {what}, so not a run directory; `{minitx_command()} train CONFIG --out {run_dir}` "
                        f"trains one there (the tour's runs in runs/tour/ come from `make tour`, run from the repository root)")
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.exists():
        raise UserError(f"{run_dir}: no config.yaml (is this a minitx run directory?)")
    cfg = load_config(cfg_path, check_files=False, run_config=True)  # load_task below names a missing file
    if fused is not None:
        cfg = replace(cfg, model=replace(cfg.model, fused=fused))
    use_blas_threads(threads or cfg.train.threads)
    if max_output_len > cfg.model.max_len:
        raise UserError(f"--max-len {max_output_len}: more than this run's model.max_len ({cfg.model.max_len}), "
                        f"the longest output its positional table covers")
    if max_output_len:
        cfg = replace(cfg, eval=replace(cfg.eval, max_output_len=max_output_len))
    ckpt_path = run_dir / checkpoint.CHECKPOINT
    arrays = checkpoint.load(ckpt_path)
    if "config" in arrays:
        check_same_run(cfg, arrays["config"], cfg_path, ckpt_path)
    check_finite_weights(arrays, ckpt_path)
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
        model = build_model(cfg, task, training=False)
        load_params(model, arrays, ckpt_path, cfg_path)
    model.train(False)
    # A config.yaml that says 0 still gets a number.
    cfg = replace(cfg, eval=replace(cfg.eval, max_output_len=output_limit(cfg, task)[0]))
    return cfg, model, task


def check_finite_weights(arrays, ckpt_path):
    """Refuse weights that are not all finite numbers: every output of such a model is
    meaningless. minitx never saves them; an older minitx or a hand-made file might have."""
    for key, value in arrays.items():
        if key.startswith("param/") and not np.isfinite(value).all():
            what = "nan" if np.isnan(value).any() else "inf"
            raise UserError(f"{ckpt_path}: the weights are not finite ({key[6:]} holds {what}), so every output would be "
                            f"meaningless: the run diverged, or the file was damaged; retrain (with a lower train.lr if it diverged)")
