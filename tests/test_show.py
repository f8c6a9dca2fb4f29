"""The terminal heatmap, the attention command on a briefly trained run, and the curves."""

import json
import sys

import numpy as np
import pytest

from minitx.cli import main
from minitx.config import resolve_config_path
from minitx.tools.show import SHADES, heatmap, shade
from minitx.train import train


def test_heatmap_labels_rows_and_columns_and_puts_the_darkest_block_on_the_largest_weight():
    P = np.array([[0.05, 0.15, 0.80],
                  [0.30, 0.60, 0.10]])
    lines = heatmap(P, ["a", "bee"], ["x", "</s>", "yy"], title="head 0")
    print("\n".join(lines))
    assert lines[0] == "head 0"
    header, row_a, row_bee = lines[1:]
    # Each column is as wide as its label (at least 2), columns one space apart.
    assert header.split() == ["x", "</s>", "yy"]
    assert row_a.startswith("  a ") and row_bee.startswith("bee ")
    # Columns 2, 4 and 2 wide, after the 4-character row label column.
    cells_a, cells_bee = [[row[4:6], row[7:11], row[12:14]] for row in (row_a, row_bee)]
    assert cells_a == ["  ", "░░░░", "██"], cells_a
    assert cells_bee == ["▒▒", "▓▓▓▓", "░░"], cells_bee
    # Exactly one full block in the picture, where the weight 0.8 is.
    assert "".join(lines).count("█") == 2 and "█" in row_a[-2:]


def test_shades_rise_with_the_weight():
    weights = [0.0, 0.09, 0.1, 0.3, 0.6, 0.75, 1.0]
    got = "".join(shade(w) for w in weights)
    assert got == "  ░▒▓██", got
    assert [SHADES.index(c) for c in got] == sorted(SHADES.index(c) for c in got)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The copy task trained for 30 small steps: enough to have a checkpoint, not to be good."""
    out = tmp_path_factory.mktemp("show") / "run"
    overrides = ["train.steps=30", "train.warmup=10", "train.eval_every=30", "train.batch_size=16", "data.n_valid=20", "data.n_test=20",
                 "model.d_model=32", "model.d_ff=64"]
    train(resolve_config_path("tiny"), overrides=overrides, out=out, quiet=True)
    return out


def test_attention_command_shows_all_three_kinds_for_every_layer_and_head(tiny_run, capsys):
    assert main(["attention", str(tiny_run), "3 1 4 1 5 9 2 6 5 3", "--no-png"]) == 0
    text = capsys.readouterr().out
    print(text)
    assert "input:  3 1 4 1 5 9 2 6 5 3" in text
    for title in ("encoder self-attention", "decoder self-attention", "cross-attention"):
        assert f"== {title}" in text, title
    for side in ("encoder", "decoder"):
        for layer in (0, 1):
            for head in range(4):
                assert f"{side} layer {layer}, head {head}" in text
    # Cross-attention columns are the source tokens; decoder self-attention's start with <s>.
    assert " 3  1  4  1  5  9  2  6  5  3  </s>" in text
    assert "<s>" in text.split("== decoder self-attention")[1]


def test_attention_command_limits_kind_layer_and_head(tiny_run, capsys):
    assert main(["attention", str(tiny_run), "3 1 4", "--kind", "cross", "--layer", "1", "--head", "2", "--no-png"]) == 0
    text = capsys.readouterr().out
    assert "== cross-attention" in text and "== encoder" not in text and "== decoder" not in text
    assert "decoder layer 1, head 2" in text
    assert "head 0" not in text and "layer 0" not in text
    assert main(["attention", str(tiny_run), "3 1 4", "--head", "4", "--no-png"]) == 2
    assert "--head 4: this model has heads 0 to 3" in capsys.readouterr().err


def test_attention_command_writes_one_png_per_kind(tiny_run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["attention", str(tiny_run), "3 1 4", "--kind", "cross", "--png", str(tmp_path)]) == 0
    assert (tmp_path / "cross-attention.png").stat().st_size > 1000
    assert f"wrote {tmp_path / 'cross-attention.png'}" in capsys.readouterr().out


def write_metrics(run_dir):
    run_dir.mkdir()
    with open(run_dir / "metrics.jsonl", "w") as f:
        for i, step in enumerate((100, 200, 300, 400)):
            f.write(json.dumps({"step": step, "train_loss": 2.0 / (i + 1), "val_loss": 1.5 / (i + 1),
                                "token_acc": 0.5 + 0.1 * i, "exact_match": 0.2 * i}) + "\n")


def test_plot_without_matplotlib_prints_a_table_and_the_install_hint(tmp_path, monkeypatch, capsys):
    # A None in sys.modules makes `import matplotlib...` raise ImportError, as if not installed.
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)
    write_metrics(tmp_path / "run")
    assert main(["plot", str(tmp_path / "run")]) == 0
    text = capsys.readouterr().out
    print(text)
    assert "pip install 'minitx[plot]'" in text
    assert "train_loss   █▃▂▁" in text
    assert "exact_match  ▁▃▆█" in text
    assert "400      0.5000      0.3750      0.8000      0.6000" in text
    assert not (tmp_path / "run" / "curves.png").exists()


def test_plot_writes_curves_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    write_metrics(tmp_path / "run")
    assert main(["plot", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000
    assert "pip install" not in capsys.readouterr().out
