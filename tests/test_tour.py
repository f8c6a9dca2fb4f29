"""Every command of the tour (scripts/tour.py's COMMANDS, the ones docs/tour.md shows) exists and
runs, on tiny versions of the tour's runs trained here in a few steps."""

import subprocess
import sys
from pathlib import Path

import pytest

from minitx.cli import COMMANDS as CLI_COMMANDS
from minitx.config import resolve_config_path
from minitx.train import train

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from tour import COMMANDS, RUNS, command_line, run_command  # noqa: E402

TINY = ["train.steps=20", "train.warmup=5", "train.eval_every=20", "data.n_valid=20", "data.n_test=20"]
SMALL_MODEL = ["model.d_model=16", "model.d_ff=32"]  # H stays 4: the commands name head 3


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The tour's four runs from their own configs and overrides, cut down: few steps, a small
    model, and for the numbers run a slice of its data."""
    root = tmp_path_factory.mktemp("tour")
    lines = (REPO / "data" / "numbers" / "train.tsv").read_text().splitlines()
    for split, part in (("train", lines[:60]), ("valid", lines[60:70]), ("test", lines[70:80])):
        (root / f"{split}.tsv").write_text("\n".join(part) + "\n")
    data = [f"data.{split}={root / split}.tsv" for split in ("train", "valid", "test")]
    dirs = {}
    for name, (_, config, overrides) in RUNS.items():
        extra = TINY + (SMALL_MODEL if name != "explain" else []) + (data if name == "numbers" else [])
        dirs[name] = str(train(resolve_config_path(config), overrides + extra, out=root / name, quiet=True))
    return dirs


def test_the_runs_come_from_shipped_configs():
    for name, (run_dir, config, overrides) in RUNS.items():
        assert resolve_config_path(config).parent == REPO / "configs", config
        assert run_dir.startswith("runs/tour/"), run_dir
    assert RUNS["nocausal"][2] == ["model.causal=false"]


def test_make_tour_trains_them_and_every_command_names_a_real_subcommand():
    makefile = (REPO / "Makefile").read_text()
    assert "\ntour: $(STAMP)\n\t$(BIN)/python scripts/tour.py\n" in makefile
    for name, args in COMMANDS:
        if args[:2] == ["-m", "minitx"]:
            assert args[2] in CLI_COMMANDS, f"{name}: no command {args[2]}"
        else:
            assert (REPO / args[0]).is_file(), f"{name}: no script {args[0]}"


@pytest.mark.parametrize("name, args", COMMANDS, ids=[name for name, _ in COMMANDS])
def test_each_tour_command_runs(runs, name, args):
    try:
        shown, text = run_command(args, runs)
    except subprocess.CalledProcessError as e:
        pytest.fail(f"{e.cmd} exited {e.returncode}:\n{e.stdout}\n{e.stderr}")
    print(f"$ {shown}\n{text}")
    assert text.strip(), f"{shown} printed nothing"
    assert "Traceback" not in text


def test_every_command_has_its_output_file_with_todays_command_line():
    runs = {name: run_dir for name, (run_dir, _, _) in RUNS.items()}
    for name, args in COMMANDS:
        path = REPO / "docs" / "tour" / "outputs" / f"{name}.txt"
        assert path.is_file(), f"{path} missing: run `make tour` and scripts/make_tour_outputs.py"
        first = path.read_text().splitlines()[0]
        assert first == "$ " + command_line(args, runs), f"{path.name} was written by another command: {first}"


def test_the_tour_page_shows_exactly_the_output_files():
    import make_tour_outputs

    text = make_tour_outputs.PAGE.read_text()
    blocks = list(make_tour_outputs.BLOCK.finditer(text))
    assert len(blocks) >= 10, f"docs/tour.md has only {len(blocks)} output blocks"
    for block in blocks:
        name, lines = block.group("name"), block.group("lines")
        assert block.group("body") == make_tour_outputs.render_block(name, lines), (
            f"docs/tour.md's block of {name} ({lines or 'all lines'}) differs from docs/tour/outputs/{name}.txt: "
            "run scripts/make_tour_outputs.py")


def test_every_command_the_tour_page_names_exists():
    import re

    text = (REPO / "docs" / "tour.md").read_text()
    subcommands = set(re.findall(r"python -m minitx (\w+)", text))
    scripts = set(re.findall(r"python (scripts/\w+\.py)", text))
    assert subcommands and scripts, "the tour names no command: has its syntax changed?"
    assert subcommands <= set(CLI_COMMANDS), f"no such minitx command: {sorted(subcommands - set(CLI_COMMANDS))}"
    missing = [s for s in scripts if not (REPO / s).is_file()]
    assert not missing, f"the tour names scripts that do not exist: {missing}"
