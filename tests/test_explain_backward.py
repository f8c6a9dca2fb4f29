"""`minitx explain --backward`: every step is checked against the model's own backward and the
parameter gradients against finite differences, for all three kinds, post-norm and label
smoothing; and each kind of check stops the walk when the mistake it exists for is planted."""

import importlib.util
import inspect
import re
import textwrap

import pytest

from minitx.cli import main
from minitx.config import resolve_config_path
from minitx.inference import load_run
from minitx.nn.attention import MultiHeadAttention, ScaledDotProductAttention
from minitx.tools.example import make_example
from minitx.tools.explain_backward import explain_backward, finite_difference_check
from minitx.tools.walk import code_block
from minitx.train import train

FAST = ["train.steps=40", "train.warmup=5", "train.eval_every=40", "data.n_valid=20", "data.n_test=20"]


def fd_differences(lines):
    """The difference each finite-difference check printed."""
    return [float(m.group(1)) for line in lines for m in [re.search(r"difference (\S+) \(in float32", line)] if m]


@pytest.mark.parametrize("kind", ["encoder", "decoder", "cross"])
def test_every_step_is_checked_against_the_backward(explain_run, kind):
    cfg, model, task = load_run(explain_run, need_data=False, fused=False)
    lines = explain_backward(model, task, cfg, "3 1 4 1 5 2", kind, 0, 1)
    print("\n".join(lines))
    for step in range(1, 13):
        assert any(line.startswith(f"{step}. ") for line in lines), f"step {step} missing"
    checks = [line for line in lines if line.strip().startswith("check:")]
    # 19 agreements with the model's arrays (loss, dconcat, dW_O, db_O, dheads, dP, dv, dscores
    # after the softmax and after the mask, dq, dk, dW and db of the three projections (db_K's is
    # its zero), dx_q, dx_kv) and 9 finite differences (dy, W_O, b_O, W_V, b_V, W_K, b_K, W_Q, b_Q).
    assert len(checks) == 28, "\n".join(checks)
    differences = fd_differences(lines)
    assert len(differences) == 9 and max(differences) < 1e-8, differences
    # Every quoted code line is a line of minitx/nn/attention.py as it is now.
    source = inspect.getsource(ScaledDotProductAttention.backward) + inspect.getsource(MultiHeadAttention.backward)
    quoted = [line.strip() for line in lines if line.startswith("    ") and ("= " in line or "# forward" in line)
              and not line.strip().startswith(("check:", "e.g."))]
    assert "dscores = P * (dP - (dP * P).sum(axis=-1, keepdims=True))  # (B, H, T, S)" in quoted
    assert all(line in source for line in quoted if line.startswith(("# forward", "d", "if "))), quoted


def test_the_key_bias_gradient_is_zero_and_the_loss_does_not_move(explain_run):
    cfg, model, task = load_run(explain_run, need_data=False, fused=False)
    lines = explain_backward(model, task, cfg, "3 1 4 1 5", "cross", 0, 0)
    text = "\n".join(lines)
    assert "db_K is exactly 0 in exact arithmetic" in text
    line = next(line for line in lines if "check: db_K[" in line and "finite difference" in line)
    numeric = float(re.search(r"in float64: (\S+);", line).group(1))
    assert abs(numeric) < 1e-9, line  # the loss did not move: 0, or a rounding step of it over 2h


def test_post_norm_and_label_smoothing(tmp_path):
    run = train(resolve_config_path("explain"), FAST + ["model.norm=post", "train.label_smoothing=0.1"],
                out=tmp_path / "post", quiet=True)
    cfg, model, task = load_run(run, need_data=False, fused=False)
    texts = {}
    for kind in ("encoder", "decoder", "cross"):
        lines = explain_backward(model, task, cfg, "3 1 4", kind, 0, 0)
        texts[kind] = "\n".join(lines)
        assert "train.label_smoothing = 0.1 in this run" in texts[kind], texts[kind]
        assert max(fd_differences(lines)) < 1e-8, fd_differences(lines)
    assert "the layer adds dx_q + dx_kv to the skip path's gradient" in texts["decoder"]


def test_where_the_target_comes_from(explain_run, capsys):
    cfg, model, task = load_run(explain_run, need_data=False, fused=False)
    example = make_example(model, task, cfg, "3 1 4")
    assert example.out_tokens == ["3", "1", "4", "</s>"] and "copy task's rule" in example.origin
    example = make_example(model, task, cfg, "3 1 4", target="4 1 3")
    assert example.out_tokens == ["4", "1", "3", "</s>"] and example.origin == "the target you gave with --target"
    # A symbol the task never uses: no rule applies, so the model's own output is the target.
    example = make_example(model, task, cfg, "3 1 9")
    assert example.origin.startswith("the model's own greedy output") and example.out_tokens == example.greedy_tokens
    assert main(["explain", str(explain_run), "3 1 4", "--backward", "--target", "3 x"]) == 2
    assert "--target: not in this run's target vocabulary: x" in capsys.readouterr().err
    assert main(["explain", str(explain_run), "3 1 4", "--target", "3 1 4"]) == 2
    assert "--target is for --backward" in capsys.readouterr().err
    assert main(["explain", str(explain_run), "3 1 4", "--backward", "--kind", "decoder"]) == 0
    assert "decoder self-attention, decoder layer 0, head 0" in capsys.readouterr().out


def plant(monkeypatch, tmp_path, cls, method, old, new):
    """Replace cls.method by its own source with `old` changed to `new`, loaded from a file so that
    the walk quotes the planted lines."""
    source = textwrap.dedent(inspect.getsource(getattr(cls, method)))
    assert old in source, f"{cls.__name__}.{method} no longer has {old!r}"
    path = tmp_path / f"planted_{method}.py"
    path.write_text("import math\nimport numpy as np\nfrom minitx.nn.attention import MASKED, merge_heads, "
                    "softmax, split_heads\n\n" + source.replace(old, new))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(cls, method, getattr(module, method))


@pytest.mark.parametrize("cls, method, old, new, message", [
    # The softmax's backward without its coupling term: the model's dscores differ from ours.
    (ScaledDotProductAttention, "backward", "P * (dP - (dP * P).sum(axis=-1, keepdims=True))", "P * dP", "dscores"),
    # The key path's gradient replacing the value path's instead of adding to it.
    (MultiHeadAttention, "backward", "dx_kv = dx_kv + self.key.backward", "dx_kv = self.key.backward", "dx_kv"),
    # A forward that scales its scores once more while its backward does not: ours and the model's
    # backward agree, and only the finite difference of the real loss can tell.
    (ScaledDotProductAttention, "forward", "P = softmax(scores)", "P = softmax(1.5 * scores)", "finite difference"),
])
def test_a_planted_mistake_stops_the_walk(explain_run, monkeypatch, tmp_path, cls, method, old, new, message):
    cfg, model, task = load_run(explain_run, need_data=False, fused=False)
    lines = explain_backward(model, task, cfg, "3 1 4 1 5", "cross", 0, 0)
    assert lines[-1].strip().startswith("check:")  # unplanted, the walk runs to its end
    plant(monkeypatch, tmp_path, cls, method, old, new)
    with pytest.raises(AssertionError, match=message):
        explain_backward(model, task, cfg, "3 1 4 1 5", "cross", 0, 0)


def test_a_finite_difference_check_that_disagrees_stops_the_walk():
    assert "difference 1.0e-12" in finite_difference_check("W_Q[0, 1]", 0.5, 0.25, 0.25 + 1e-12).text
    with pytest.raises(AssertionError, match=r"dW_Q\[0, 1\]: the backward gives 0.25, the finite difference 0.2501"):
        finite_difference_check("W_Q[0, 1]", 0.25, 0.25, 0.2501)


def test_quoted_code_is_found_by_its_comment():
    assert code_block("ScaledDotProductAttention.backward", "forward: out = P @ v") == [
        "# forward: out = P @ v", "dP = dout @ v.transpose(0, 1, 3, 2)  # (B, H, T, S)",
        "dv = P.transpose(0, 1, 3, 2) @ dout  # (B, H, S, K)"]
    assert code_block("ScaledDotProductAttention.backward", "np.where(mask, scores")[1:] == [
        "if mask is not None:", "    dscores = np.where(mask, dscores, 0.0)  # (B, H, T, S)"]
    with pytest.raises(AssertionError, match="has no comment containing 'forward: out = v @ P'"):
        code_block("ScaledDotProductAttention.backward", "forward: out = v @ P")


def test_backward_doc_shows_the_tours_explain_backward_output():
    """docs/backward.md's blocks are the lines scripts/make_tour_outputs.py writes from the
    tour's `explain --backward` run (docs/tour/outputs/explain-backward.txt)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import make_tour_outputs

    page = make_tour_outputs.REPO_ROOT / "docs" / "backward.md"
    assert page in make_tour_outputs.PAGES
    blocks = list(make_tour_outputs.BLOCK.finditer(page.read_text()))
    assert [b.group("name") for b in blocks] == ["explain-backward", "explain-backward"]
    for block in blocks:
        assert block.group("body") == make_tour_outputs.render_block(block.group("name"), block.group("lines")), (
            f"docs/backward.md's block of lines {block.group('lines')} differs from docs/tour/outputs/explain-backward.txt: "
            "run scripts/make_tour_outputs.py")
    shown = "\n".join(block.group("body") for block in blocks)
    assert "dscores = P * (dP - (dP * P).sum(axis=-1, keepdims=True))" in shown and "db_K is exactly 0" in shown
