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

from tour import COMMANDS, RUNS, choices, command_pattern, run_command  # noqa: E402

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


@pytest.fixture(scope="module")
def chosen(runs):
    """The heads the commands name, found in the tiny runs as make_tour_outputs.py finds them."""
    return choices(runs)


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
def test_each_tour_command_runs(runs, chosen, name, args):
    try:
        shown, text = run_command(args, runs, chosen=chosen)
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
        assert command_pattern(args, runs).match(first[2:]), f"{path.name} was written by another command: {first}"


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


def value_mismatches(text, output):
    """[(value name, the page's text, what VALUES reads from the outputs)] where they differ."""
    import make_tour_outputs
    from tour_values import VALUES

    found = []
    for m in make_tour_outputs.VALUE.finditer(text):
        expected = VALUES[m.group("name")](output)
        if m.group("text") != expected:
            found.append((m.group("name"), m.group("text"), expected))
    return found


def test_every_number_the_page_quotes_is_read_from_the_outputs():
    import make_tour_outputs
    from tour_values import VALUES

    text = make_tour_outputs.PAGE.read_text()
    used = [m.group("name") for m in make_tour_outputs.VALUE.finditer(text)]
    assert set(used) <= set(VALUES), f"the page names values tour_values.py does not define: {sorted(set(used) - set(VALUES))}"
    assert set(VALUES) <= set(used), f"values no sentence quotes: {sorted(set(VALUES) - set(used))}"
    mismatches = value_mismatches(text, make_tour_outputs.output)
    assert not mismatches, f"run scripts/make_tour_outputs.py; (value, page, outputs): {mismatches}"


def test_a_number_typed_by_hand_is_caught():
    import make_tour_outputs

    text = make_tour_outputs.PAGE.read_text()
    m = next(make_tour_outputs.VALUE.finditer(text))
    planted = text.replace(m.group(0), f"<!-- value {m.group('name')} -->{m.group('text')}9<!-- /value -->", 1)
    assert [name for name, _, _ in value_mismatches(planted, make_tour_outputs.output)] == [m.group("name")]
