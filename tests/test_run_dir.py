"""A run directory belongs to one process, is written only inside, loses nothing to a stop or a
full disk, keeps only good checkpoints, and its next command works as it is printed.

The one-line messages of these situations are cases in error_cases.py; here we check what
those lines cannot show: the second of two real processes, what is on disk afterwards, and
the commands minitx prints or the README gives."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from error_cases import FAST, TINY, full_disk_at_second_save, tsv_config, with_setup
from minitx import checkpoint, data
from minitx import train as train_module
from minitx.cli import main

ROOT = Path(__file__).resolve().parent.parent


def steps_logged(run_dir):
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def temporaries(run_dir):
    return sorted(p.name for p in run_dir.iterdir() if p.name.endswith(".tmp"))


def test_a_second_process_is_refused_and_sigterm_saves_a_run_the_printed_command_resumes(tmp_path, capsys):
    # The first process trains until we stop it; the second (this one) tries the same run.
    args = ["train", "tiny", "--out", "r", "--quiet", "--set", "train.steps=100000", "--set", "train.eval_every=5",
            "--set", "data.n_valid=8", "--set", "data.n_test=8", "--set", "train.warmup=0", "--set", "train.target_exact_match=0"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    first = subprocess.Popen([sys.executable, "-m", "minitx"] + args, cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "r" / "checkpoint.npz").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        os.chdir(tmp_path)
        for second in (args + ["--resume"], args):
            capsys.readouterr()
            assert main(second) == 2
            err = capsys.readouterr().err
            assert f"process {first.pid} is training in this run directory" in err, err
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=120)
    finally:
        os.chdir(ROOT)
        if first.poll() is None:
            first.kill()
    # SIGTERM, like Ctrl-C: the step is finished, the run saved, the resume command printed.
    assert first.returncode == 128 + signal.SIGTERM, (first.returncode, err)
    stopped = re.search(r"interrupted at step (\d+) \(SIGTERM\); checkpoint saved to r/checkpoint.npz. Continue with: (.*)$", err.strip())
    assert stopped and "Traceback" not in err, err
    step, command = int(stopped[1]), shlex.split(stopped[2])
    assert int(checkpoint.load(tmp_path / "r" / "checkpoint.npz")["step"]) == step
    assert temporaries(tmp_path / "r") == []
    # The command names the Python that ran minitx, not a bare `python`, which in a shell
    # without the virtual environment is another one, without minitx.
    assert command[0] == sys.executable and command[1:5] == ["-m", "minitx", "train", str(ROOT / "configs" / "tiny.yaml")], command
    resumed = subprocess.run(command + ["--set", f"train.steps={step + 5}"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    logged = steps_logged(tmp_path / "r")
    assert logged == sorted(set(logged)) and logged[-1] == step + 5, logged


def test_refused_resumes_change_nothing(tmp_path, monkeypatch, capsys):
    # Each refusal comes before anything is written: the run's files keep every byte.
    monkeypatch.chdir(tmp_path)
    run = ["train", str(TINY), "--out", "r", "--set", "train.warmup=0"] + FAST
    assert main(run) == 0
    files = {p: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    for extra in (["--set", "train.steps=1"], ["--set", "train.steps=2"], ["--set", "model.d_ff=32"]):
        assert main(run + ["--resume"] + extra) == 2
    assert {p: p.read_bytes() for p in (tmp_path / "r").iterdir()} == files
    assert "nothing to train; nothing was changed" in capsys.readouterr().err


def test_a_full_disk_at_a_save_keeps_the_last_checkpoint_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with with_setup(full_disk_at_second_save) as argv:
        assert main(argv) == 2
    assert int(checkpoint.load(tmp_path / "out" / "checkpoint.npz")["step"]) == 2
    assert temporaries(tmp_path / "out") == []


def test_a_second_signal_during_a_save_quits_at_once_leaving_the_last_checkpoint_and_no_temporary_file(tmp_path, monkeypatch, capsys):
    real_savez, calls = np.savez, []

    def savez_signalled_twice(f, **arrays):
        calls.append(1)
        if len(calls) == 2:
            f.write(b"PK\x03\x04 the first bytes of a checkpoint")
            os.kill(os.getpid(), signal.SIGTERM)  # finish the step and save...
            os.kill(os.getpid(), signal.SIGTERM)  # ...no: quit now
        return real_savez(f, **arrays)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(np, "savez", savez_signalled_twice)
    assert main(["train", str(TINY), "--out", "r", "--set", "train.warmup=0"] + FAST + ["--set", "train.steps=4"]) == 130
    assert "minitx: interrupted" in capsys.readouterr().err
    assert int(checkpoint.load(tmp_path / "r" / "checkpoint.npz")["step"]) == 2
    assert temporaries(tmp_path / "r") == []


def test_a_file_left_by_a_killed_save_is_removed_by_the_next_session(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = ["train", str(TINY), "--out", "r", "--set", "train.warmup=0"] + FAST
    assert main(run) == 0
    (tmp_path / "r" / "checkpoint.npzk1ll3d.tmp").write_bytes(b"half a checkpoint")  # as SIGKILL mid-save leaves
    (tmp_path / "r" / "notes.tmp").write_text("the user's own")
    assert main(run + ["--resume", "--set", "train.steps=4"]) == 0
    assert temporaries(tmp_path / "r") == ["notes.tmp"]
    assert "removed 1 temporary file(s) left by a session killed during a save" in capsys.readouterr().out


def test_a_checkpoint_gets_the_mode_config_yaml_gets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    previous = os.umask(0o027)
    try:
        assert main(["train", str(TINY), "--out", "r", "--set", "train.warmup=0"] + FAST) == 0
    finally:
        os.umask(previous)
    modes = {name: oct((tmp_path / "r" / name).stat().st_mode & 0o777) for name in ("config.yaml", "checkpoint.npz", "metrics.jsonl")}
    assert set(modes.values()) == {"0o640"}, modes


def test_a_symbolic_link_in_the_run_directory_is_never_written_through(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = ["train", str(TINY), "--out", "r", "--set", "train.warmup=0"] + FAST
    assert main(run) == 0
    (tmp_path / "precious.yaml").write_text("mine\n")
    (tmp_path / "r" / "config.yaml").unlink()
    (tmp_path / "r" / "config.yaml").symlink_to(tmp_path / "precious.yaml")
    assert main(run + ["--resume", "--set", "train.steps=4"]) == 2
    assert (tmp_path / "precious.yaml").read_text() == "mine\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in a read-only directory")
def test_a_read_only_run_directory_is_refused_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r").mkdir(mode=0o555)
    assert main(["train", str(TINY), "--out", "r", "--set", "train.warmup=0"] + FAST) == 2
    assert "r: cannot write files here" in capsys.readouterr().err


def test_a_diverged_run_keeps_no_bad_checkpoint_and_plot_shows_where_it_diverged(tmp_path, monkeypatch, capsys):
    # The weights blow up in the last step, whose evaluation and save come together: its
    # validation loss is nan, and that checkpoint must not replace the good one of step 4.
    real_step = train_module.train_step
    calls = []

    def blowing_up_at_step_6(model, *args):
        calls.append(1)
        result = real_step(model, *args)
        if len(calls) == 6:
            for p in model.params.values():
                p *= np.float32(1e30)
        return result

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(train_module, "train_step", blowing_up_at_step_6)
    assert main(["train", str(TINY), "--out", "r", "--set", "train.warmup=0"] + FAST + ["--set", "train.steps=6"]) == 2
    assert "step 6: the validation loss is nan; stopped without saving, and the last good checkpoint (step 4) is kept" in capsys.readouterr().err
    assert int(checkpoint.load(tmp_path / "r" / "checkpoint.npz")["step"]) == 4
    assert steps_logged(tmp_path / "r") == [2, 4, 6]
    # plot draws the file minitx wrote for the diverged run, and says where it diverged.
    assert main(["plot", "r"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"val_loss +[▁-█]{2}! .* not finite at step 6", out), out


def test_words_held_out_data_has_and_training_never_saw_are_named(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cfg = tsv_config()
    (tmp_path / "valid.tsv").write_text("one zebra\tun zèbre\n")
    assert main(["train", cfg, "--out", "r"] + FAST) == 0
    err = capsys.readouterr().err
    assert "valid.tsv: 1 source word(s) never seen in training, read as <unk>: zebra" in err, err
    assert "valid.tsv: 1 target word(s) never seen in training, read as <unk>; no output can contain them: zèbre" in err, err


def test_long_draws_of_held_out_sets_show_their_progress(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "SHOW_PROGRESS_FROM", 4)
    assert main(["train", str(TINY), "--out", "r", "--set", "train.warmup=0"] + FAST) == 0
    assert "drawing the valid set" in capsys.readouterr().err


def test_a_run_with_relative_data_paths_evaluates_from_any_directory(tmp_path, monkeypatch, capsys):
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    assert main(["train", tsv_config(), "--out", "r"] + FAST) == 0
    assert f"train: {tmp_path / 'project' / 'train.tsv'}" in (tmp_path / "project" / "r" / "config.yaml").read_text()
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["eval", "project/r"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["n"] == 1


def test_the_readme_runs_minitx_with_the_python_make_installs_it_in():
    # After `make train`, minitx is installed in .venv only: a bare `python -m minitx` works
    # only in a shell where .venv is activated, which the README must then show first.
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```[a-z]*\n(.*?)```", readme, flags=re.S)
    bare = [line for block in blocks if "source .venv/bin/activate" not in block
            for line in block.splitlines() if re.match(r"\s*(python|minitx) ", line)]
    assert not bare, f"README commands that need .venv activated: {bare}"
    assert ".venv/bin/python -m minitx eval runs/tiny" in readme


def test_a_printed_command_names_the_python_that_ran_us_unless_the_shell_has_it_first(monkeypatch, tmp_path):
    import sys

    from minitx.shell import minitx_command

    # A shell without the virtual environment activated: its `python` is another one.
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "python").write_text("#!/bin/sh\n")
    (other / "python").chmod(0o755)
    monkeypatch.setenv("PATH", str(other))
    assert minitx_command() != "python -m minitx" and minitx_command().endswith(" -m minitx"), minitx_command()
    assert sys.executable.endswith(minitx_command().split(" ")[0].strip("'")), minitx_command()
    # The same shell with it activated: its bin folder first on PATH.
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + str(other))
    assert minitx_command() == "python -m minitx"
