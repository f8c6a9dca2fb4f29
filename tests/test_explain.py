"""`minitx explain`: every step is checked against the model's own forward, the printed numbers
are the model's, and it works for all three kinds, post-norm, no causal mask and wide models."""

import re

import numpy as np
import pytest

from minitx.cli import main
from minitx.config import resolve_config_path
from minitx.inference import load_run
from minitx.tools.explain import agree, explain
from minitx.tools.show import look
from minitx.train import train

FAST = ["train.steps=40", "train.warmup=5", "train.eval_every=40", "data.n_valid=20", "data.n_test=20"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """configs/explain.yaml trained briefly, as it ships and in three variants."""
    root = tmp_path_factory.mktemp("explain")
    variants = {"plain": [], "post": ["model.norm=post"], "nocausal": ["model.causal=false"],
                "wide": ["model.d_model=16", "model.n_enc_layers=2", "model.n_dec_layers=2"]}
    for name, extra in variants.items():
        train(resolve_config_path("explain"), FAST + extra, out=root / name, quiet=True)
    return root


def checks(lines):
    return [line for line in lines if line.strip().startswith("check: equals")]


@pytest.mark.parametrize("kind, n_checks", [("encoder", 9), ("decoder", 9), ("cross", 8)])
def test_every_step_is_checked_against_the_forward(runs, kind, n_checks):
    cfg, model, task = load_run(runs / "plain", need_data=False, fused=False)
    lines = explain(model, task, cfg, "3 1 4 1 5", kind, 0, 1)
    text = "\n".join(lines)
    print(text)
    # h, q, k, v, P, head_out, concat, y and the residual (cross-attention's keys read memory,
    # which is not a layer norm of its own queries' stream: one check fewer).
    assert len(checks(lines)) == n_checks + (kind == "cross"), checks(lines)
    for step in range(1, 12):
        assert any(line.startswith(f"{step}. ") for line in lines), f"step {step} missing"
    assert "columns 4:8 of W_Q, W_K and W_V" in text and "W_O[4:8, :]" in text
    # Every check agreed to well within float32 rounding of the model's numbers.
    assert all(float(line.rsplit(" ", 1)[1]) < 1e-5 for line in checks(lines)), checks(lines)


def test_the_printed_weights_are_the_models_attention(runs):
    cfg, model, task = load_run(runs / "plain", need_data=False, fused=False)
    lines = explain(model, task, cfg, "3 1 4 1 5", "cross", 0, 0)
    _, _, maps = look(model, task, cfg, "3 1 4 1 5")
    P = maps["cross"].weights[0, 0]  # (T, S)
    start = next(i for i, line in enumerate(lines) if line.startswith("6. "))
    first_row = lines[start + 2]  # after the column labels
    printed = [float(x) for x in re.findall(r"-?\d+\.\d+", first_row.split(maxsplit=1)[1])]
    assert np.allclose(printed, P[0], atol=6e-4), (printed, P[0])


def test_the_causal_mask_and_its_absence(runs):
    cfg, model, task = load_run(runs / "plain", need_data=False, fused=False)
    text = "\n".join(explain(model, task, cfg, "3 1 4", "decoder", 0, 0))
    T = len(look(model, task, cfg, "3 1 4")[1])  # what this briefly trained model wrote, </s> included
    # Everything above the diagonal: T (T - 1) / 2 of the T x T scores.
    assert "the causal mask" in text and f"{T * (T - 1) // 2} of {T * T} scores are set to -1e9" in text, text
    assert "    -1e9" in text
    cfg, model, task = load_run(runs / "nocausal", need_data=False, fused=False)
    text = "\n".join(explain(model, task, cfg, "3 1 4", "decoder", 0, 0))
    T = len(look(model, task, cfg, "3 1 4")[1])
    assert "model.causal is false" in text and f"0 of {T * T} scores" in text, text


def test_post_norm_and_a_wide_model(runs):
    cfg, model, task = load_run(runs / "post", need_data=False, fused=False)
    text = "\n".join(explain(model, task, cfg, "3 1 4 1 5", "cross", 0, 0))
    assert "post-norm" in text and "x_new = norm(x + y)" in text
    cfg, model, task = load_run(runs / "wide", need_data=False, fused=False)
    lines = explain(model, task, cfg, "3 1 4 1 5 2", "encoder", 1, 1)
    assert any("wider than a screen" in line for line in lines)
    assert "    (showing 7 of 7 rows and 8 of 16 columns)" in lines
    assert "columns 8:16 of W_Q" in "\n".join(lines)


def test_a_disagreement_stops_the_printout():
    assert "largest difference" in agree("x", np.ones(3), np.ones(3, dtype=np.float32)).text
    with pytest.raises(AssertionError, match="recomputed differs from the model's"):
        agree("x", np.ones(3), np.array([1.0, 1.0, 1.01]))


def test_the_command_line_and_its_errors(runs, capsys):
    assert main(["explain", str(runs / "plain"), "3 1 4", "--kind", "encoder"]) == 0
    assert "encoder self-attention, encoder layer 0, head 0" in capsys.readouterr().out
    assert main(["explain", str(runs / "plain"), "3 1 4", "--layer", "1"]) == 2
    assert "--layer 1: this model's decoder has layers 0 to 0" in capsys.readouterr().err
    assert main(["explain", str(runs / "plain"), "3 1 4", "--head", "2"]) == 2
    assert "--head 2: this model has heads 0 to 1" in capsys.readouterr().err


def test_a_decoder_that_writes_end_of_sequence_at_once(runs, monkeypatch):
    """T = 1: decoder self-attention has one key, and step 7 says so instead of naming two."""
    import minitx.tools.show as show

    monkeypatch.setattr(show, "greedy", lambda model, src, max_len: np.array([[2]]))  # </s>, id 2
    cfg, model, task = load_run(runs / "plain", need_data=False, fused=False)
    text = "\n".join(explain(model, task, cfg, "3 1 4", "decoder", 0, 0))
    assert "e.g. row <s>→</s> = 1.000 x v[0]: its only key, <s>" in text, text
