"""The whole model: every parameter against the full loss, at trained-looking values, in every
architecture variant; the values themselves; and planted bugs the checker must catch (the full
catalogue of planted slips is tests/test_mutants.py)."""

import numpy as np
import pytest

from helpers import assert_gradients_match, padded_batch, small_model_config
from minitx import gradcheck
from minitx.nn import attention
from minitx.cli import main
from minitx.gradcheck import check_layer, check_model, compare, numerical_gradient, rel_error
from minitx.inference import load_run
from minitx.nn import PLAIN, Dropout
from minitx.nn.loss import CrossEntropy
from minitx.model import DecoderLayer, Transformer, causal_mask, padding_mask
from minitx.train import train


def make_batch(rng):
    """S = 5 source tokens and T = 4 target tokens, with padding in both."""
    src = padded_batch(rng, 2, 5, 7, [5, 3])
    tgt = padded_batch(rng, 2, 5, 9, [5, 4])
    return src, tgt[:, :-1], tgt[:, 1:]


@pytest.mark.parametrize("variant", gradcheck.VARIANTS, ids=str)
def test_every_parameter_of_the_model_at_trained_looking_values(variant, catalogue):
    arch, eps = gradcheck.config_architecture("tiny")
    check = gradcheck.Check(variant, arch, label_smoothing=eps)
    if not variant.lora:
        # Dropout really acts in this check: training-mode logits differ from evaluation-mode ones.
        dropped = check.model.train(True).forward(check.src, check.tgt_in)
        kept = check.model.train(False).forward(check.src, check.tgt_in)
        check.model.train(True)
        assert np.abs(dropped - kept).max() > 1e-3, "dropout changed nothing; the check would not cover it"
    # The rows of this very check, which the planted-slips catalogue computed unplanted.
    rows = catalogue[0][variant]
    assert {r.name for r in rows} == set(check.adapters.params if variant.lora else check.model.params)
    assert_gradients_match(rows)


@pytest.mark.parametrize("tie_output", [True, False], ids=["tied", "untied"])
def test_trained_looking_values_have_no_gain_of_one_and_no_bias_of_zero(tie_output):
    model = Transformer(small_model_config(tie_output=tie_output), 7, 9, 0, np.random.default_rng(1), np.float64)
    gradcheck.trained_looking(model, np.random.default_rng(2))
    gains = np.concatenate([p for name, p in model.params.items() if name.endswith("gamma")])
    biases = np.concatenate([p for name, p in model.params.items() if p.ndim == 1 and not name.endswith("gamma")])
    assert gains.min() >= 0.5 and gains.max() <= 1.5 and gains.std() > 0.2, (gains.min(), gains.max(), gains.std())
    assert np.abs(biases).mean() > 0.15 and np.abs(biases).min() > 0, np.abs(biases).mean()
    # The padding rows as training leaves them: only a tied output moves the target's away from 0.
    assert not model.params["encoder.embedding.W"][0].any()
    pad_row = model.params["decoder.embedding.W"][0]
    assert pad_row.any() if tie_output else not pad_row.any(), pad_row


def test_checker_catches_a_dropout_backward_that_ignores_the_mask(monkeypatch):
    monkeypatch.setattr(Dropout, "backward", lambda self, dout: dout)  # wrong: dx = dout * mask
    rng = np.random.default_rng(5)
    model = Transformer(small_model_config(dropout=0.3), 7, 9, 0, rng, np.float64)
    rows = check_model(model, CrossEntropy(0), *make_batch(rng), sample=gradcheck.SAMPLE)
    worst = max(rows, key=lambda r: r.rel_error)
    assert worst.rel_error > 1e-2, f"a dropout backward without its mask passed: worst {worst}"


def test_numerical_gradient_refuses_an_array_it_cannot_perturb_in_place():
    x = np.zeros((3, 4)).T  # a transposed view: x.reshape(-1) would be a copy
    with pytest.raises(ValueError, match="C-contiguous"):
        numerical_gradient(lambda: float(x.sum()), x)


def test_memory_gradient_is_summed_over_every_decoder_layer():
    rng = np.random.default_rng(1)
    layers = [DecoderLayer(8, 2, 16, 0.0, rng, PLAIN, np.float64) for _ in range(3)]
    y0 = rng.standard_normal((2, 4, 8))
    memory = rng.standard_normal((2, 6, 8))
    tgt_mask, src_mask = causal_mask(4), padding_mask(padded_batch(rng, 2, 6, 9, [6, 2]), 0)

    def forward(y, memory):
        for layer in layers:
            y = layer.forward(y, memory, tgt_mask, src_mask)
        return y

    G = rng.standard_normal((2, 4, 8))
    forward(y0, memory)
    dy, dmemory, per_layer = G, 0, []
    for layer in reversed(layers):
        dy, dmem = layer.backward(dy)
        per_layer.append(dmem)
        dmemory = dmemory + dmem
    rows = compare(lambda: float((forward(y0, memory) * G).sum()), {"memory": memory, "y": y0}, {"memory": dmemory, "y": dy})
    assert_gradients_match(rows)
    # Any single layer's contribution alone is far from the whole.
    assert min(rel_error(d, dmemory) for d in per_layer) > 1e-2


def test_tied_output_adds_both_uses_of_the_embedding():
    rng = np.random.default_rng(2)
    model = Transformer(small_model_config(tie_output=True), 7, 9, 0, rng, np.float64)
    assert "decoder.out.W" not in model.params
    src, tgt_in, tgt_out = make_batch(rng)
    ce = CrossEntropy(0)
    model.zero_grad()
    ce.forward(model.forward(src, tgt_in), tgt_out)
    model.decoder.out.backward(ce.backward())  # the output projection's share alone
    out_share = model.grads["decoder.embedding.W"].copy()
    model.zero_grad()
    ce.forward(model.forward(src, tgt_in), tgt_out)
    model.backward(ce.backward())
    total = model.grads["decoder.embedding.W"]
    assert np.abs(total - out_share).max() > 1e-6, "the input embedding's share is missing"


def broken_softmax_backward(self, dout):
    """The attention backward with the softmax's "- sum(dP * P)" term dropped."""
    q, k, v, mask, P = self.cache
    scale = 1 / np.sqrt(q.shape[-1])
    dP = dout @ v.transpose(0, 1, 3, 2)
    dv = P.transpose(0, 1, 3, 2) @ dout
    dscores = P * dP  # wrong: should be P * (dP - sum(dP * P, axis=-1))
    return dscores @ k * scale, dscores.transpose(0, 1, 3, 2) @ q * scale, dv


def test_checker_catches_a_planted_wrong_backward(monkeypatch):
    rng = np.random.default_rng(3)
    monkeypatch.setattr(attention.ScaledDotProductAttention, "backward", broken_softmax_backward)
    model = Transformer(small_model_config(), 7, 9, 0, rng, np.float64)
    rows = check_model(model, CrossEntropy(0), *make_batch(rng), sample=gradcheck.SAMPLE)
    failed = {r.name for r in rows if not r.ok}
    assert "encoder.layers.0.self_attn.query.W" in failed and "decoder.layers.0.cross_attn.key.W" in failed, failed
    worst = max(r.rel_error for r in rows)
    assert worst > 1e-2, f"worst relative error {worst:.2e} should be large for a wrong backward"


def mean_instead_of_weighted_sum_backward(self, dout):
    """A plausible slip: subtracting the plain row mean of dP instead of sum(dP * P)."""
    q, k, v, mask, P = self.cache
    scale = 1 / np.sqrt(q.shape[-1])
    dP = dout @ v.transpose(0, 1, 3, 2)
    dv = P.transpose(0, 1, 3, 2) @ dout
    dscores = P * (dP - dP.mean(axis=-1, keepdims=True))  # wrong
    return dscores @ k * scale, dscores.transpose(0, 1, 3, 2) @ q * scale, dv


def test_a_plain_sum_loss_would_hide_a_bug_that_random_weights_expose(monkeypatch):
    # With v = identity the attention output is P itself, and every row of P sums to 1, so
    # L = sum(out) is constant: its true gradient is 0, and the slip above also gives 0.
    rng = np.random.default_rng(4)
    monkeypatch.setattr(attention.ScaledDotProductAttention, "backward", mean_instead_of_weighted_sum_backward)
    layer = attention.ScaledDotProductAttention()
    q, k = rng.standard_normal((1, 1, 3, 4)), rng.standard_normal((1, 1, 4, 4))
    v = np.eye(4)[None, None]  # (1, 1, S, K) with S = K = 4
    layer.forward(q, k, v)
    dq, _, _ = layer.backward(np.ones((1, 1, 3, 4)))
    sum_rows = compare(lambda: float(layer.forward(q, k, v).sum()), {"q": q}, {"q": dq})
    assert sum_rows[0].max_abs_diff < 1e-9, f"a sum loss sees no difference: {sum_rows[0]}"
    rows = check_layer(layer, [q, k, v.copy()], rng)
    assert rows[0].rel_error > 1e-2, f"a random upstream gradient exposes it: {rows[0]}"


def test_a_trained_run_is_checked_at_its_own_weights(tmp_path, capsys):
    run_dir = train("tiny", ["model.d_model=16", "model.d_ff=32", "data.n_valid=20", "data.n_test=20", "train.steps=20",
                             "train.warmup=10", "train.eval_every=20"], out=tmp_path / "run", quiet=True)
    capsys.readouterr()
    checks = gradcheck.run_checks(run_dir)
    _, trained, _ = load_run(run_dir, need_data=False)
    assert [str(c.variant) for c in checks] == ["plain-pre-tied", "fused-pre-tied", "lora"]
    for name, p in trained.params.items():
        assert np.array_equal(checks[0].model.params[name], p.astype(np.float64)), name
    assert main(["gradcheck", str(run_dir), "--sample", "2"]) == 0
    out = capsys.readouterr().out
    assert f"Checking the trained weights of {run_dir}" in out and "entries probed (up to 2 per tensor)" in out, out
    assert out.rstrip().endswith("0 tensors failed"), out


def test_an_entry_whose_nudge_crosses_a_relu_kink_is_left_out_not_misread():
    # L(x) = relu(x0 - 3e-7) * 5 + x1^2: at x0 = 0 the kink lies 3e-7 away, inside a nudge of
    # 1e-5 and of 1e-6, so no central difference there is a derivative; the true one is 0.
    x = np.array([0.0, 0.5])
    loss = lambda: 5 * max(x[0] - 3e-7, 0.0) + x[1] ** 2
    naive = (5 * max(1e-5 - 3e-7, 0.0) - 0.0) / 2e-5  # what a plain central difference says
    assert naive > 1.0, naive
    numeric = gradcheck.probe(loss, x, [0, 1])
    assert np.isnan(numeric[0]) and abs(numeric[1] - 1.0) < 1e-9, numeric
    # A kink further than h / 10 away: the second, smaller nudge measures the derivative.
    x[0] = -2e-6
    assert abs(gradcheck.probe(loss, x, [0])[0]) < 1e-12
    # A smooth loss whose derivative is exactly 0 is measured, not mistaken for a kink.
    x[:] = 0.0
    assert abs(gradcheck.probe(lambda: np.cosh(x[0]) + x[1] ** 2, x, [0])[0]) < 1e-9

    probes = gradcheck.Probes({"w": (np.array([0, 1]), np.array([np.nan, 1.0])), "v": (np.array([0]), np.array([np.nan]))})
    rows = {r.name: r for r in gradcheck.rows_against(probes, {"w": np.array([123.0, 1.0]), "v": np.array([0.0])})}
    assert rows["w"].ok and (rows["w"].probed, rows["w"].kinks) == (1, 1), rows["w"]
    assert not rows["v"].ok, "a tensor with no measurable entry was not checked, so it must not pass"
    assert "1 of its entries at a ReLU kink left out" in gradcheck.format_table([rows["w"]])


def test_the_floor_grows_where_rounding_alone_could_reach_the_threshold():
    # The key bias's true gradient is exactly 0: both sides are noise. With a large loss and
    # every entry probed the noise alone would pass FLOOR * THRESHOLD; the floor keeps it a
    # quarter of the threshold.
    eps, h = np.finfo(np.float64).eps, gradcheck.STEP
    assert gradcheck.noise_floor(2.0, 8) == gradcheck.FLOOR
    n, loss = 256, 20.0
    noise = np.full(n, np.sqrt(1.0) * eps * loss / h)  # each central difference's rounding
    assert gradcheck.rel_error(np.zeros(n), noise) > gradcheck.THRESHOLD
    assert gradcheck.rel_error(np.zeros(n), noise, gradcheck.noise_floor(loss, n)) <= gradcheck.THRESHOLD / 4
    # A real slip is still far above it: one wrong term of 1e-4 in a tensor of size 1e-2.
    analytic = np.full(n, 1e-2 / np.sqrt(n))
    wrong = analytic.copy()
    wrong[0] += 1e-4
    assert gradcheck.rel_error(wrong, analytic, gradcheck.noise_floor(loss, n)) > 100 * gradcheck.THRESHOLD


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [[], ["model.norm=post", "model.tie_output=false", "model.dropout=0.1", "train.label_smoothing=0.1"]],
                         ids=["pre-tied", "post-untied-dropout"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradcheck_passes_a_right_backward_on_real_trained_runs(overrides, seed, tmp_path, capsys):
    # A trained run's full-size model: thousands of ReLU inputs (kinks), a large loss on random
    # tokens (rounding), LoRA adapters moving whole rows of W. None of these may read as a wrong
    # backward: the command as a learner runs it, on runs of three seeds.
    run_dir = train("tiny", ["train.steps=300", f"train.seed={seed}", *overrides], out=tmp_path / "run", quiet=True)
    capsys.readouterr()
    status = main(["gradcheck", str(run_dir)])
    out = capsys.readouterr().out
    assert status == 0 and out.rstrip().endswith("0 tensors failed"), out[-3000:]
