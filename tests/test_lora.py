"""LoRA adapters: their hand-written backward, a planted bug the check must catch, merge and
unmerge, the adapter-only checkpoint tied to its base, and the config section."""

import numpy as np
import pytest

from helpers import assert_gradients_match, padded_batch, small_model_config
from minitx import checkpoint, gradcheck, lora
from minitx.cli import main
from minitx.config import load_config, resolve_config_path
from minitx.errors import UserError
from minitx.nn.layers import Linear
from minitx.nn.loss import CrossEntropy
from minitx.tools.lowrank import effective_rank, run_matrices, singular_values
from minitx.model import Transformer
from minitx.inference import load_run
from minitx.rundir import load_params
from minitx.train import train

ALL_TARGETS = ["W_q", "W_k", "W_v", "W_o", "ff"]


def adapted_model(rank=2, alpha=3.0, targets=ALL_TARGETS):
    """A float64 model with adapters whose B is random, so that dA is not trivially zero.
    alpha / rank = 1.5, so a forgotten scale changes every gradient."""
    cfg = small_model_config(n_enc_layers=1, n_dec_layers=1)
    model = Transformer(cfg, 7, 9, 0, np.random.default_rng(1), np.float64)
    adapters = lora.LoRA(model, targets, rank, alpha, np.random.default_rng(2))
    rng = np.random.default_rng(3)
    for name, B in adapters.params.items():
        if name.endswith(".B"):
            B[...] = rng.standard_normal(B.shape)
    return cfg, model, adapters


def batch():
    rng = np.random.default_rng(0)
    src = padded_batch(rng, 2, 6, 7, [6, 4])  # padding in the source
    tgt = padded_batch(rng, 2, 5, 9, [3, 5])  # and in the target; T = 4 != S = 6
    return src, tgt[:, :-1], tgt[:, 1:]


def test_adapters_cover_the_targets_with_dotted_names():
    _, model, adapters = adapted_model(targets=["W_q", "ff"])
    names = sorted(adapters.params)
    assert "lora.decoder.layers.0.self_attn.query.W.A" in names, names
    assert "lora.decoder.layers.0.cross_attn.query.W.B" in names, names
    assert "lora.encoder.layers.0.ff.lin2.W.A" in names, names
    # W_q in 3 attentions (encoder self, decoder self, cross) + 2 ff weights in 2 layers = 7.
    assert len(names) == 2 * 7, names
    assert adapters.params["lora.encoder.layers.0.ff.lin1.W.A"].shape == (8, 2)  # (D, r)
    assert adapters.params["lora.encoder.layers.0.ff.lin1.W.B"].shape == (2, 16)  # (r, F)


def test_adapter_gradients_match_finite_differences():
    _, model, adapters = adapted_model()
    rows = gradcheck.check_lora(model, adapters, CrossEntropy(0, 0.1), *batch())
    assert len(rows) == 2 * (6 + 10), len(rows)  # encoder layer: 4 + 2 weights; decoder: 8 + 2
    assert_gradients_match(rows)


def test_a_forgotten_scale_in_the_adapter_backward_is_caught(monkeypatch):
    def backward_without_scale(self, dW):
        A, B = self.params["A"], self.params["B"]
        self.grads["A"] += dW @ B.T  # should be scale * dW @ B^T
        self.grads["B"] += A.T @ dW

    monkeypatch.setattr(lora.Adapter, "backward", backward_without_scale)
    _, model, adapters = adapted_model()
    rows = gradcheck.check_lora(model, adapters, CrossEntropy(0, 0.1), *batch())
    # Every analytic gradient is the true one divided by s = 1.5, so the norm-based relative
    # error is |1 - 1/1.5| / (1 + 1/1.5) = 0.2 for every tensor.
    errors = np.array([r.rel_error for r in rows])
    assert not any(r.ok for r in rows), "\n" + gradcheck.format_table(rows)
    assert np.allclose(errors, 0.2, atol=1e-4), f"expected 0.2 everywhere, got {errors.min()} to {errors.max()}"


def test_the_backward_equals_the_factored_form_large_models_use():
    # Large models never form dW: they compute y = x @ W0 + s * (x @ A) @ B and get
    # dA = s * x^T @ (dy @ B^T), dB = s * (x @ A)^T @ dy. Ours goes through dW = x^T @ dy.
    rng = np.random.default_rng(0)
    layer = Linear(6, 5, rng, np.float64)
    adapter = lora.Adapter(layer.params["W"], 3, 4.0, rng)
    adapter.params["B"][...] = rng.standard_normal((3, 5))
    adapter.forward()
    x, dy = rng.standard_normal((7, 6)), rng.standard_normal((7, 5))
    A, B, s = adapter.params["A"], adapter.params["B"], adapter.scale
    y_factored = x @ adapter.W0 + s * (x @ A) @ B + layer.params["b"]
    assert np.allclose(layer.forward(x), y_factored, rtol=0, atol=1e-12)
    layer.backward(dy)
    adapter.backward(layer.grads["W"])
    dA, dB = s * x.T @ (dy @ B.T), s * (x @ A).T @ dy
    for name, want in (("A", dA), ("B", dB)):
        worst = np.abs(adapter.grads[name] - want).max()
        assert worst < 1e-12, f"d{name}: worst difference {worst}"


def test_fresh_adapters_leave_the_model_unchanged():
    cfg = small_model_config()
    model = Transformer(cfg, 7, 9, 0, np.random.default_rng(1), np.float64)
    src, tgt_in, _ = batch()
    before = model.forward(src, tgt_in)
    lora.LoRA(model, ALL_TARGETS, 2, 3.0, np.random.default_rng(2)).forward()  # B = 0
    assert np.array_equal(model.forward(src, tgt_in), before)


def test_merge_gives_the_adapted_logits_and_unmerge_the_base_exactly():
    cfg, model, adapters = adapted_model()
    base = {k: v.copy() for k, v in model.params.items()}  # B was set after W0 was copied
    src, tgt_in, _ = batch()
    base_logits = model.forward(src, tgt_in)
    adapters.forward()
    adapted_logits = model.forward(src, tgt_in)

    merged = {k: v.copy() for k, v in adapters.merge().params.items()}
    for name, adapter in adapters.adapters.items():
        A, B = adapter.params["A"], adapter.params["B"]
        expected = base[name] + 1.5 * A @ B
        assert np.abs(merged[name] - expected).max() < 1e-12, name
    # A plain model, built afresh and given the merged weights: no adapter code involved.
    plain = Transformer(cfg, 7, 9, 0, np.random.default_rng(99), np.float64)
    load_params(plain, {f"param/{k}": v for k, v in merged.items()}, "merged")
    merged_logits = plain.forward(src, tgt_in)
    worst = np.abs(merged_logits - adapted_logits).max()
    assert worst < 1e-6, f"merged vs adapted logits: worst difference {worst}"
    assert np.abs(adapted_logits - base_logits).max() > 1e-2, "the adapters changed nothing; test is vacuous"

    adapters.unmerge()
    for k, v in model.params.items():
        assert np.array_equal(v, base[k]), f"{k}: max difference {np.abs(v - base[k]).max()}"
    assert np.array_equal(model.forward(src, tgt_in), base_logits)


# A model small enough that a few training steps take a fraction of a second.
SMALL = ["model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.n_enc_layers=1",
         "model.n_dec_layers=1", "data.n_valid=40", "data.n_test=40", "train.warmup=5", "train.eval_every=5"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A copy base run, then rank-2 adapters fine-tuned on reverse from it."""
    root = tmp_path_factory.mktemp("lora")
    base = train("tiny", SMALL + ["train.steps=10"], out=root / "base", quiet=True)
    adapted = train("lora_reverse", SMALL + [f"lora.base_run={base}", "lora.rank=2", "train.steps=10"],
                    out=root / "adapted", quiet=True)
    return root, base, adapted


def lora_args(base, steps):
    return SMALL + [f"lora.base_run={base}", "lora.rank=2", f"train.steps={steps}"]


def test_the_checkpoint_holds_only_adapters_and_names_its_base(runs):
    _, base, adapted = runs
    arrays = checkpoint.load(adapted / checkpoint.CHECKPOINT)
    params = [k for k in arrays if k.startswith("param/")]
    assert params and all(k.startswith("param/lora.") and k.endswith((".A", ".B")) for k in params), params
    optim = [k for k in arrays if k.startswith("optim/")]
    assert all(k == "optim/t" or k.startswith(("optim/m.lora.", "optim/v.lora.")) for k in optim), optim
    assert str(arrays["base/run"]) == str(base)
    base_arrays = checkpoint.load(base / checkpoint.CHECKPOINT)
    assert str(arrays["base/fingerprint"]) == lora.fingerprint(base_arrays)


def test_the_base_weights_stay_frozen_and_eval_merges(runs, capsys):
    _, base, adapted = runs
    _, base_model, _ = load_run(base)
    _, merged, _ = load_run(adapted)
    for name, W in merged.params.items():
        changed = not np.array_equal(W, base_model.params[name])
        is_target = name in lora.target_names(merged, ALL_TARGETS)
        assert changed == is_target, f"{name}: changed {changed}, adapted {is_target}"
    assert main(["eval", str(adapted), "--split", "valid"]) == 0
    assert '"exact_match"' in capsys.readouterr().out


def test_an_adapter_update_has_rank_at_most_r(runs):
    _, base, adapted = runs
    updates = run_matrices(adapted, base)
    name = "decoder.layers.0.cross_attn.query.W"
    s = singular_values(updates[name])
    # Rank 2 exactly, up to the float32 rounding of W0 + s * A @ B: 1e-9 of the energy at most.
    assert effective_rank(s, 1 - 1e-9) <= 2, f"{name}: singular values {s[:4]}"


def test_resuming_an_adapter_run_is_exact(runs):
    root, base, _ = runs
    straight = train("lora_reverse", lora_args(base, 10), out=root / "straight", quiet=True)
    half = train("lora_reverse", lora_args(base, 5), out=root / "half", quiet=True)
    train("lora_reverse", lora_args(base, 10), out=half, resume=True, quiet=True)
    a = checkpoint.load(straight / checkpoint.CHECKPOINT)
    b = checkpoint.load(half / checkpoint.CHECKPOINT)
    for k in a:
        if k.startswith(("param/", "optim/")):
            assert np.array_equal(a[k], b[k]), f"{k}: max difference {np.abs(a[k] - b[k]).max()}"


def test_a_changed_base_is_refused_naming_both(runs, tmp_path):
    root, base, adapted = runs
    import shutil

    moved = tmp_path / "adapted"
    shutil.copytree(adapted, moved)
    other = tmp_path / "base"
    shutil.copytree(base, other)
    arrays = checkpoint.load(other / checkpoint.CHECKPOINT)
    arrays["param/decoder.layers.0.ff.lin1.W"][0, 0] += 1.0  # the base is retrained, say
    checkpoint.save(other / checkpoint.CHECKPOINT, arrays)
    config = (moved / "config.yaml").read_text().replace(f"base_run: {base}", f"base_run: {other}")
    (moved / "config.yaml").write_text(config)
    with pytest.raises(UserError) as info:
        load_run(moved)
    message = str(info.value)
    assert "\n" not in message and str(base) in message and str(other) in message, message
    assert "fingerprint" in message, message


def test_a_base_of_another_shape_or_missing_is_a_clear_error(runs, tmp_path):
    _, base, _ = runs
    with pytest.raises(UserError, match=r"model\.d_model is 32, but the base run .* was trained with 16"):
        train("lora_reverse", lora_args(base, 2) + ["model.d_model=32"], out=tmp_path / "x", quiet=True)
    with pytest.raises(UserError, match=r"lora\.base_run: .*nowhere holds no trained run .*train the base first"):
        train("lora_reverse", lora_args(tmp_path / "nowhere", 2), out=tmp_path / "y", quiet=True)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("lora:\n  targets: [W_q, W_x]\n", "lora.targets: unknown target 'W_x'"),
        ("lora:\n  targets: W_q\n", "lora.targets: expected a list of strings"),
        ("lora:\n  targets: []\n", "lora.targets: name at least one"),
        ("lora:\n  targets: [ff, ff]\n", "lora.targets: a target is named twice"),
        ("lora:\n  rank: 65\n", "lora.rank: 65 exceeds model.d_model (64)"),
        ("lora:\n  rank: 0\n", "lora.rank: must be a positive integer"),
        ("lora:\n  alpha: 0\n", "lora.alpha: must be positive"),
        ("lora:\n  enabled: true\n", "lora.base_run: required when lora.enabled is true"),
    ],
)
def test_lora_config_errors_name_file_and_key(tmp_path, text, fragment):
    path = tmp_path / "l.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and fragment in message and "\n" not in message, message


@pytest.mark.parametrize("name, enabled", [("lora_reverse", True), ("lora_reverse_full", False)])
def test_shipped_lora_configs_load(name, enabled):
    cfg = load_config(resolve_config_path(name))
    assert (cfg.lora.enabled, cfg.lora.base_run, cfg.data.task) == (enabled, "runs/tiny", "reverse")
    tiny = load_config(resolve_config_path("tiny"))
    assert cfg.model == tiny.model, "the fine-tuning configs must describe the base's model"
