"""Training runs end to end: loss falls, runs repeat exactly, checkpoints round-trip, resume
is exact, and no interruption loses work."""

import itertools
import json
import os
import random
import re
import signal
from dataclasses import asdict
from types import SimpleNamespace

import numpy as np
import pytest

from minitx import checkpoint
from minitx import train as train_module
from minitx.build import build_model
from minitx.memory import count_params
from minitx.cli import main
from minitx.config import load_config, resolve_config_path
from minitx.data import load_task
from minitx.errors import Interrupted, UserError
from minitx.inference import load_run
from minitx.rundir import Run
from minitx.train import train

# A few fast steps of the tiny copy config, with small held-out sets.
FAST = ["data.n_valid=40", "data.n_test=40", "train.warmup=10"]


def run(tmp_path, name, steps, every=10, extra=(), **kw):
    return train("tiny", FAST + [f"train.steps={steps}", f"train.eval_every={every}"] + list(extra), out=tmp_path / name, quiet=True, **kw)


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def params(run_dir):
    arrays = checkpoint.load(run_dir / checkpoint.CHECKPOINT)
    return {k: v for k, v in arrays.items() if k.startswith(("param/", "optim/"))}


def assert_same_arrays(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{k}: max difference {np.abs(a[k] - b[k]).max()}"


def test_a_short_copy_run_lowers_the_loss(tmp_path):
    run_dir = run(tmp_path, "r", steps=80, every=40, extra=["train.lr=3e-3"])
    m = metrics(run_dir)
    assert [r["step"] for r in m] == [40, 80]
    for key in ("step", "train_loss", "val_loss", "token_acc", "exact_match", "elapsed_s"):
        assert key in m[0], key
    # A uniform guess over 14 tokens costs log(14) = 2.64 nats.
    assert m[-1]["val_loss"] < m[0]["val_loss"] < np.log(14), m
    assert (run_dir / "config.yaml").exists() and (run_dir / "checkpoint.npz").exists()


def test_same_config_and_seed_give_identical_numbers(tmp_path):
    a, b = run(tmp_path, "a", steps=20, extra=["model.dropout=0.1"]), run(tmp_path, "b", steps=20, extra=["model.dropout=0.1"])
    strip = lambda rows: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]
    assert strip(metrics(a)) == strip(metrics(b))
    assert_same_arrays(params(a), params(b))


def test_resume_is_exact(tmp_path):
    # inverse_sqrt's learning rate at a step does not depend on train.steps; tiny's cosine
    # does, so with it 10 + 10 steps equal 20 only if the first run was configured for 20.
    extra = ["model.dropout=0.1", "train.schedule=inverse_sqrt"]
    straight = run(tmp_path, "straight", steps=20, extra=extra)
    half = run(tmp_path, "half", steps=10, extra=extra)
    run(tmp_path, "half", steps=20, extra=extra, resume=True)
    assert_same_arrays(params(straight), params(half))
    assert [r["step"] for r in metrics(half)] == [10, 20]


def test_a_checkpoint_that_names_its_norms_the_old_way_still_resumes_exactly(tmp_path):
    # Before each layer named its norms norm1, norm2 (, norm3), a checkpoint kept them under the
    # residual blocks that owned them: encoder.layers.0.res_ff.norm.gamma for norm2, and so on.
    old_names = {"encoder": {"norm1": "res_self", "norm2": "res_ff"},
                 "decoder": {"norm1": "res_self", "norm2": "res_cross", "norm3": "res_ff"}}

    def the_old_way(key):
        return re.sub(r"(encoder|decoder)(\.layers\.\d+\.)(norm\d)\.", lambda m: f"{m[1]}{m[2]}{old_names[m[1]][m[3]]}.norm.", key)

    extra = ["train.schedule=inverse_sqrt"]
    straight = run(tmp_path, "straight", steps=20, extra=extra)
    half = run(tmp_path, "half", steps=10, extra=extra)
    path = half / checkpoint.CHECKPOINT
    arrays = {the_old_way(k): v for k, v in checkpoint.load(path).items()}
    assert "param/decoder.layers.0.res_cross.norm.gamma" in arrays and "optim/m.encoder.layers.1.res_ff.norm.beta" in arrays
    checkpoint.save(path, arrays)
    run(tmp_path, "half", steps=20, extra=extra, resume=True)
    assert_same_arrays(params(straight), params(half))


def test_checkpoint_round_trip(tmp_path):
    run_dir = run(tmp_path, "r", steps=10)
    cfg = load_config(run_dir / "config.yaml")
    original = Run(cfg, run_dir)
    original.restore(checkpoint.load(run_dir / checkpoint.CHECKPOINT), "x")
    copy = Run(cfg, tmp_path / "elsewhere")
    copy.restore(original.state(), "x")
    a, b = original.state(), copy.state()
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert int(a["step"]) == 10


def test_a_config_handed_to_a_run_is_left_as_it_was(tmp_path):
    # tiny leaves eval.max_output_len at 0, "work it out from the data": the run fills in the
    # number on a config of its own and records it, and the config it was handed keeps its 0.
    cfg = load_config(resolve_config_path("tiny"), FAST)
    before = asdict(cfg)
    run = Run(cfg, tmp_path / "r")
    after = asdict(cfg)
    changed = {f"{s}.{k}": (before[s][k], after[s][k]) for s in before for k in before[s] if before[s][k] != after[s][k]}
    assert not changed, f"Run changed the config it was handed (before, after): {changed}"
    assert run.cfg.eval.max_output_len == 17 and cfg.eval.max_output_len == 0, run.cfg.eval  # 1.5 x (10 + </s>)
    assert json.loads(str(run.state()["config"]))["eval"]["max_output_len"] == 17


def press_ctrl_c_during_step(monkeypatch, n):
    """Send a real SIGINT to ourselves in the middle of the n-th training step."""
    real_step = train_module.train_step
    calls = {"n": 0}

    def step(*args):
        calls["n"] += 1
        if calls["n"] == n:
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(*args)

    monkeypatch.setattr(train_module, "train_step", step)
    return real_step


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(tmp_path, monkeypatch):
    real_step = press_ctrl_c_during_step(monkeypatch, 7)
    with pytest.raises(Interrupted, match="interrupted at step 7.*--resume"):
        run(tmp_path, "r", steps=20)
    assert int(checkpoint.load(tmp_path / "r" / checkpoint.CHECKPOINT)["step"]) == 7
    monkeypatch.setattr(train_module, "train_step", real_step)
    run(tmp_path, "r", steps=20, resume=True)
    straight = run(tmp_path, "straight", steps=20)
    assert_same_arrays(params(straight), params(tmp_path / "r"))


def test_an_interrupted_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    run_dir = run(tmp_path, "r", steps=10)
    path = run_dir / checkpoint.CHECKPOINT
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # as if the process died between writing and renaming

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, {"x": np.zeros(3)})
    assert path.read_bytes() == before
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "checkpoint.npz", "config.yaml", "metrics.jsonl"]


def test_a_non_finite_loss_stops_with_the_step_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    real_step = train_module.train_step
    calls = {"n": 0}

    def nan_on_fifteenth(*args):
        calls["n"] += 1
        loss, norm = real_step(*args)
        return (float("nan"), norm) if calls["n"] == 15 else (loss, norm)

    monkeypatch.setattr(train_module, "train_step", nan_on_fifteenth)
    with pytest.raises(UserError, match=r"step 15: loss is nan.*step 10.*lower train.lr"):
        run(tmp_path, "r", steps=20)
    assert int(checkpoint.load(tmp_path / "r" / checkpoint.CHECKPOINT)["step"]) == 10


def test_an_existing_run_is_never_overwritten(tmp_path, capsys):
    first = run(tmp_path, "r", steps=10)
    before = (first / checkpoint.CHECKPOINT).read_bytes()
    second = run(tmp_path, "r", steps=10)
    assert second == tmp_path / "r-2", second
    assert (first / checkpoint.CHECKPOINT).read_bytes() == before
    assert "already holds a run" in capsys.readouterr().out


def test_resume_refuses_a_different_model(tmp_path):
    run(tmp_path, "r", steps=10)
    with pytest.raises(UserError, match=r"model.d_ff = 256.*512"):
        run(tmp_path, "r", steps=20, extra=["model.d_ff=512"], resume=True)


def test_eval_and_translate_commands(tmp_path, capsys):
    run_dir = run(tmp_path, "r", steps=10)
    capsys.readouterr()  # drop the training log
    assert main(["eval", str(run_dir), "--split", "valid"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 40 and 0 <= out["exact_match"] <= 1 and 0 <= out["token_acc"] <= 1, out
    assert out["max_output_len"] == 17 and 0 <= out["cut"] <= 40, out  # 1.5 x (10 + </s>), rounded up
    assert main(["translate", str(run_dir), "3 1 4 1 5"]) == 0
    words = capsys.readouterr().out.split()
    assert all(w in [str(i) for i in range(10)] for w in words), words


def test_resume_refuses_a_different_optimizer_setting(tmp_path):
    run(tmp_path, "r", steps=10)
    with pytest.raises(UserError, match=r"train.lr = 0.003.*0.001"):
        run(tmp_path, "r", steps=20, extra=["train.lr=1e-3"], resume=True)


def test_the_printed_resume_command_repeats_the_overrides(tmp_path, monkeypatch):
    press_ctrl_c_during_step(monkeypatch, 3)
    with pytest.raises(Interrupted) as caught:
        run(tmp_path, "r", steps=20, extra=["model.d_ff=128"])
    assert "--set model.d_ff=128" in str(caught.value), caught.value


def test_a_tsv_run_translates_without_its_data_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.tsv").write_text("one\tun\ntwo\tdeux\n")
    (tmp_path / "my.yaml").write_text("data:\n  task: tsv\n  train: train.tsv\n  valid: valid.tsv\n  test: test.tsv\n")
    run_dir = train(str(tmp_path / "my.yaml"), ["train.steps=4", "train.eval_every=4"], out=tmp_path / "r", quiet=True)
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.tsv").unlink()  # the vocabularies come from the checkpoint
    capsys.readouterr()
    assert main(["translate", str(run_dir), "two"]) == 0
    assert capsys.readouterr().out.strip() in {"un", "deux", "un deux", "deux un", "un un", "deux deux", ""}
    assert main(["eval", str(run_dir)]) == 2  # evaluation needs the test file, and says so
    assert ".tsv: cannot read" in capsys.readouterr().err


def test_greedy_exact_match_read_off_teacher_forcing_equals_real_decoding(tmp_path):
    # A half-trained model, so that some sequences are right and some wrong.
    run_dir = run(tmp_path, "r", steps=120, every=120, extra=["data.n_valid=300", "train.lr=3e-3"])
    cfg, model, task = load_run(run_dir)
    from minitx.decode import greedy

    shortcut = train_module.evaluate(model, task, "valid", cfg)
    decoded = train_module.evaluate(model, task, "valid", cfg, decode=greedy)
    assert 0 < decoded["exact_match"] < 1, decoded
    assert shortcut == decoded, (shortcut, decoded)


def test_a_checkpoint_from_before_a_config_key_existed_resumes_as_its_default():
    from minitx.config import Config, config_to_dict
    from minitx.rundir import check_compatible

    saved = config_to_dict(Config())
    del saved["data"]["test_min_len"], saved["data"]["test_max_len"]
    check_compatible(Config(), json.dumps(saved), "old/checkpoint.npz")  # no error
    changed = Config()
    changed.data.test_max_len = 12
    with pytest.raises(UserError, match="data.test_max_len = 0, the config says 12"):
        check_compatible(changed, json.dumps(saved), "old/checkpoint.npz")


def test_elapsed_s_continues_across_a_resume(tmp_path, monkeypatch):
    # A fake clock that advances one second per training step makes the times exact: without
    # the saved elapsed_s, the resumed session would start again from 0 s.
    clock = {"now": 0.0}
    real_step = train_module.train_step

    def step_taking_one_second(*args):
        clock["now"] += 1.0
        return real_step(*args)

    monkeypatch.setattr(train_module, "time", SimpleNamespace(perf_counter=lambda: clock["now"]))
    monkeypatch.setattr(train_module, "train_step", step_taking_one_second)
    press_ctrl_c_during_step(monkeypatch, 15)  # wraps the one-second step
    with pytest.raises(Interrupted):
        run(tmp_path, "r", steps=20, every=10)
    saved = float(checkpoint.load(tmp_path / "r" / checkpoint.CHECKPOINT)["elapsed_s"])
    assert saved == 15.0, saved

    monkeypatch.setattr(train_module, "train_step", step_taking_one_second)
    run(tmp_path, "r", steps=20, every=10, resume=True)
    times = [(r["step"], r["elapsed_s"]) for r in metrics(tmp_path / "r")]
    assert times == [(10, 10.0), (20, 20.0)], times


def test_an_evaluation_logged_after_the_last_checkpoint_is_not_duplicated_on_resume(tmp_path, monkeypatch, capsys):
    # Evaluate every 5 steps but checkpoint every 10, and crash hard (no Ctrl-C, no last save)
    # during step 17: metrics.jsonl then holds the evaluation of step 15, the checkpoint step 10.
    extra = ["train.checkpoint_every=10"]
    real_step = train_module.train_step
    calls = {"n": 0}

    def crash_at_17(*args):
        calls["n"] += 1
        if calls["n"] == 17:
            raise RuntimeError("simulated crash")
        return real_step(*args)

    monkeypatch.setattr(train_module, "train_step", crash_at_17)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path, "r", steps=20, every=5, extra=extra)
    assert [r["step"] for r in metrics(tmp_path / "r")] == [5, 10, 15]
    assert int(checkpoint.load(tmp_path / "r" / checkpoint.CHECKPOINT)["step"]) == 10

    monkeypatch.setattr(train_module, "train_step", real_step)
    capsys.readouterr()
    run(tmp_path, "r", steps=20, every=5, extra=extra, resume=True)
    assert "dropped 1 evaluation(s) logged after the checkpoint's step 10" in capsys.readouterr().out
    resumed = metrics(tmp_path / "r")
    assert [r["step"] for r in resumed] == [5, 10, 15, 20], resumed
    # And the rows are those of a run that never crashed.
    straight = metrics(run(tmp_path, "straight", steps=20, every=5, extra=extra))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]
    assert strip(resumed) == strip(straight)


def test_the_teacher_forced_shortcut_skips_pad_and_bos_as_greedy_does():
    # Target "5 6 </s>". At position 1 the model rates <pad> highest and 6 second: greedy never
    # chooses <pad>, so it still writes 6, and the shortcut must agree.
    from minitx.data import make_batch

    batch = make_batch([[4]], [[5, 6]])  # tgt_out (1, 3) = 5 6 </s>
    logits = np.zeros((1, 3, 8))
    logits[0, 0, 5] = logits[0, 1, 6] = logits[0, 2, 2] = 1.0
    logits[0, 1, 0] = 3.0  # <pad>
    assert train_module.greedy_would_match(logits, batch, max_len=3).tolist() == [True]
    logits[0, 1, 7] = 2.0  # a real token above 6: now greedy goes wrong, and so does the shortcut
    assert train_module.greedy_would_match(logits, batch, max_len=3).tolist() == [False]


def test_outputs_five_times_longer_than_their_inputs_are_decoded_in_full(tmp_path, monkeypatch, capsys):
    # Each source token repeated five times: sources of 1 to 4 tokens over a, b, c, d, targets
    # of 5 to 20. The old limit, source length + </s> + 10 extra tokens, cut every target of
    # 15 tokens or more, so exact match stayed low while token accuracy was near 1.
    monkeypatch.chdir(tmp_path)
    pairs = [(" ".join(s), " ".join(x for x in s for _ in range(5)))
             for n in range(1, 5) for s in itertools.product("abcd", repeat=n)]
    random.Random(0).shuffle(pairs)
    write = lambda name, rows: (tmp_path / name).write_text("".join(f"{s}\t{t}\n" for s, t in rows))
    write("train.tsv", pairs[40:])
    write("valid.tsv", pairs[:40])
    (tmp_path / "rep.yaml").write_text(
        "model:\n  d_model: 32\n  d_ff: 64\n"
        "data:\n  task: tsv\n  train: train.tsv\n  valid: valid.tsv\n  test: valid.tsv\n"
        "train:\n  lr: 1.0e-2\n  warmup: 30\n  steps: 300\n  eval_every: 300\n  batch_size: 32\n")
    run_dir = train(str(tmp_path / "rep.yaml"), out=tmp_path / "r", quiet=True)
    cfg, model, task = load_run(run_dir)
    assert cfg.eval.max_output_len == 32  # 1.5 x (20 + </s>), rounded up, recorded in config.yaml
    from minitx.decode import greedy

    forced = train_module.evaluate(model, task, "valid", cfg)  # read off the teacher-forced pass
    decoded = train_module.evaluate(model, task, "valid", cfg, greedy)
    print(f"teacher-forced {forced}\ndecoded        {decoded}")
    assert decoded["exact_match"] >= 0.9 and decoded["cut"] == forced["cut"] == 0, decoded
    assert decoded["exact_match"] == forced["exact_match"], (forced, decoded)
    # Decoded text is also scored with BLEU and chrF; training's evaluations decode TSV tasks.
    assert decoded["bleu"] > 90 and decoded["chrf"] > 90 and "bleu" not in forced, decoded
    logged = metrics(run_dir)[-1]
    assert logged["bleu"] == decoded["bleu"] and logged["bleu_signature"].startswith("nrefs:1|"), logged

    cfg.eval.max_output_len = 15  # the old limit for a batch with a 4-token source
    forced_old = train_module.evaluate(model, task, "valid", cfg)
    decoded_old = train_module.evaluate(model, task, "valid", cfg, greedy)
    print(f"limit 15: teacher-forced {forced_old}\n          decoded        {decoded_old}")
    assert decoded_old["exact_match"] == forced_old["exact_match"] < decoded["exact_match"] - 0.5, decoded_old
    assert decoded_old["cut"] > 0 and forced_old["cut"] > 0, (forced_old, decoded_old)

    # The eval command says so too, and --max-len lets the user choose the limit.
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--split", "valid", "--max-len", "15"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["cut"] == decoded_old["cut"], out
    assert f"note: {decoded_old['cut']} of 40 outputs reached the length limit of 15 tokens without </s>" in err, err
    assert main(["eval", str(run_dir), "--max-len", "65"]) == 2
    assert "--max-len 65: more than this run's model.max_len (64)" in capsys.readouterr().err


def test_train_and_eval_set_the_blas_threads_themselves(tmp_path, capsys):
    # As if OPENBLAS_NUM_THREADS had said 2: train and eval still use the config's one thread.
    from minitx.threads import blas_threads, use_blas_threads

    use_blas_threads(2)
    run_dir = run(tmp_path, "r", steps=10, every=10)
    assert blas_threads() == 1 and "threads: 1" in (run_dir / "config.yaml").read_text()
    use_blas_threads(2)
    assert main(["eval", str(run_dir), "--split", "valid"]) == 0
    assert blas_threads() == 1
    assert main(["translate", str(run_dir), "3 1 4", "--threads", "1"]) == 0
    assert blas_threads() == 1


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("tie_output", [True, False])
def test_the_memory_check_counts_exactly_the_parameters_the_model_allocates(norm, tie_output):
    cfg = load_config(resolve_config_path("tiny"), [f"model.norm={norm}", f"model.tie_output={tie_output}",
                                                    "model.n_enc_layers=3", "model.d_ff=96"])
    task = load_task(cfg)
    model = build_model(cfg, task)
    counted = count_params(cfg.model, len(task.src_vocab), len(task.tgt_vocab))
    assert counted == model.n_params(), f"counted {counted}, the model has {model.n_params()}"
