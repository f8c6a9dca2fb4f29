"""Tests for minitx/optim.py: Adam, AdamW, gradient clipping and the learning-rate schedules."""

import math

import numpy as np
import pytest

from minitx.optim import Adam, AdamW, clip_grad_norm, make_schedule


def assert_close(name, got, want, rtol=1e-7, atol=1e-12):
    """Assert two arrays agree, reporting the worst element, both values and the error."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    err = np.abs(got - want)
    i = tuple(int(k) for k in np.unravel_index(np.argmax(err - rtol * np.abs(want)), err.shape))
    assert np.allclose(got, want, rtol=rtol, atol=atol), (
        f"{name}: worst element {i}: got {got[i]!r}, want {want[i]!r}, abs error {err[i]:.3e}")


def test_adam_first_step_moves_each_parameter_by_lr_times_sign_of_gradient():
    # After bias correction m_hat = g and v_hat = g*g, so the step is lr * g / (|g| + eps).
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(3, 4))
    g = rng.normal(size=(3, 4)) * 10.0 ** rng.integers(-3, 3, size=(3, 4))  # very mixed scales
    params = {"w": p0.copy()}
    Adam(params, lr=0.01).step({"w": g})
    assert_close("first step", p0 - params["w"], 0.01 * np.sign(g), rtol=1e-5)


def test_adam_matches_hand_computed_scalar_over_three_steps():
    lr, b1, b2, eps = 0.1, 0.9, 0.98, 1e-9
    gradients = [0.5, -1.0, 2.0]
    params = {"x": np.array([1.0])}
    opt = Adam(params, lr=lr, beta1=b1, beta2=b2, eps=eps)

    x, m, v = 1.0, 0.0, 0.0
    for t, g in enumerate(gradients, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x = x - lr * (m / (1 - b1 ** t)) / (math.sqrt(v / (1 - b2 ** t)) + eps)
        opt.step({"x": np.array([g])})
        assert_close(f"x after step {t}", params["x"][0], x, rtol=1e-12)
    # The same numbers worked by hand, so a reader can follow them:
    # t=1: m= 0.05,   v=0.005,    m_hat= 0.5,      v_hat=0.25,     x = 1      - 0.1    = 0.9
    # t=2: m=-0.055,  v=0.0249,   m_hat=-0.289474, v_hat=0.628788, x = 0.9    + 0.0365 = 0.936505
    # t=3: m= 0.1505, v=0.104402, m_hat= 0.555351, v_hat=1.775303, x = 0.9365 - 0.0417 = 0.894825
    assert_close("x after 3 steps", params["x"][0], 0.894825, rtol=1e-6)


def test_bias_correction_counts_optimizer_steps_not_per_tensor_updates():
    # "b" gets a zero gradient for two steps, then a real one at step 3. Its m and v have been
    # decaying from zero all along, so its correction must use t=3: the step is then
    # lr * (0.1 g / (1 - 0.9**3)) / sqrt(0.02 g*g / (1 - 0.98**3)). A per-tensor count (t=1)
    # would instead give exactly lr * sign(g).
    lr, g = 0.01, 4.0
    params = {"a": np.array([0.0]), "b": np.array([0.0])}
    opt = Adam(params, lr=lr)
    for _ in range(2):
        opt.step({"a": np.array([1.0]), "b": np.array([0.0])})
    assert_close("b after zero-gradient steps", params["b"], [0.0])
    opt.step({"a": np.array([1.0]), "b": np.array([g])})
    m_hat = 0.1 * g / (1 - 0.9 ** 3)
    v_hat = 0.02 * g * g / (1 - 0.98 ** 3)
    want = -lr * m_hat / (math.sqrt(v_hat) + 1e-9)
    assert_close("b after its first nonzero step", params["b"], [want], rtol=1e-10)
    assert opt.t == 3, f"step counter is {opt.t}, expected 3"
    # With a constant gradient the corrected step stays lr (up to eps), at every t.
    assert_close("a after 3 steps", params["a"], [-3 * lr], rtol=1e-8)


def test_adamw_decays_decoupled_while_adam_l2_goes_through_the_adaptive_scaling():
    lr, wd = 0.1, 0.5
    p0 = np.array([2.0, -3.0])
    zero = {"w": np.zeros(2)}

    # Zero gradient: AdamW only shrinks p, by exactly (1 - lr*wd), and the caller's gradient
    # is left untouched.
    params = {"w": p0.copy()}
    AdamW(params, lr=lr, weight_decay=wd).step(zero)
    assert_close("AdamW with zero gradient", params["w"], p0 * (1 - lr * wd), rtol=1e-12)
    assert_close("gradient untouched", zero["w"], [0.0, 0.0])

    # Adam's L2 turns the decay into the gradient g = wd*p, so its first step is lr*sign(p).
    params = {"w": p0.copy()}
    Adam(params, lr=lr, weight_decay=wd).step(zero)
    assert_close("Adam L2 with zero gradient", params["w"], p0 - lr * np.sign(p0), rtol=1e-8)
    assert_close("gradient untouched", zero["w"], [0.0, 0.0])


def test_clip_grad_norm_scales_to_max_norm_and_returns_the_pre_clip_norm():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[0.0], [4.0]])}  # global norm 5
    norm = clip_grad_norm(grads, max_norm=1.0)
    assert_close("returned norm", norm, 5.0)
    assert_close("a clipped", grads["a"], [3.0 / 5.0, 0.0], rtol=1e-5)
    assert_close("b clipped", grads["b"], [[0.0], [4.0 / 5.0]], rtol=1e-5)
    assert_close("clipped norm", clip_grad_norm(grads, max_norm=0.0), 1.0, rtol=1e-5)

    # Below the threshold, or with clipping disabled, nothing changes.
    grads = {"a": np.array([3.0, 4.0], dtype=np.float32)}
    assert_close("norm below max", clip_grad_norm(grads, max_norm=10.0), 5.0)
    assert_close("norm with clipping off", clip_grad_norm(grads, max_norm=0.0), 5.0)
    assert_close("unclipped", grads["a"], [3.0, 4.0])


def test_schedules():
    lr, warmup, steps = 1e-3, 100, 1000
    for name in ["constant", "cosine", "inverse_sqrt"]:
        sched = make_schedule(name, lr, warmup, steps)
        assert_close(f"{name} at step 1", sched(1), lr / warmup)
        assert_close(f"{name} peak at warmup", sched(warmup), lr)
        assert_close(f"{name} halfway through warmup", sched(warmup // 2), lr / 2)

    sched = make_schedule("constant", lr, warmup, steps)
    assert_close("constant at the end", sched(steps), lr)

    sched = make_schedule("inverse_sqrt", lr, warmup, steps)
    assert_close("inverse_sqrt at 4*warmup", sched(4 * warmup), lr / 2)
    assert_close("inverse_sqrt at 100*warmup", sched(100 * warmup), lr / 10)

    sched = make_schedule("cosine", lr, warmup, steps)
    assert_close("cosine halfway through decay", sched((warmup + steps) // 2), lr / 2)
    assert_close("cosine at the end", sched(steps), 0.0, atol=1e-15)

    # warmup=0: no warmup at all.
    assert_close("constant, no warmup", make_schedule("constant", lr, 0, steps)(1), lr)
    assert_close("cosine, no warmup", make_schedule("cosine", lr, 0, steps)(1), lr, rtol=1e-5)
    assert_close("inverse_sqrt, no warmup", make_schedule("inverse_sqrt", lr, 0, steps)(9), lr / 3)

    # The paper's formula (Vaswani et al. 5.3) is inverse_sqrt with lr set to its peak.
    d_model, warmup = 512, 4000
    paper = make_schedule("inverse_sqrt", None, warmup, steps, d_model=d_model)
    for step in [1, 1000, 4000, 10000]:
        want = d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)
        assert_close(f"paper formula at step {step}", paper(step), want)

    with pytest.raises(ValueError, match="unknown schedule"):
        make_schedule("linear", lr, warmup, steps)


def test_state_dict_round_trip_gives_identical_next_steps(tmp_path):
    rng = np.random.default_rng(1)
    shapes = {"enc.W": (3, 4), "enc.b": (4,)}
    grads = [{n: rng.normal(size=s).astype(np.float32) for n, s in shapes.items()}
             for _ in range(5)]
    params = {n: rng.normal(size=s).astype(np.float32) for n, s in shapes.items()}
    opt = AdamW(params, lr=0.01, weight_decay=0.1)
    for g in grads[:3]:
        opt.step(g)

    # Save as a real checkpoint would: an .npz loaded without pickle.
    np.savez(tmp_path / "opt.npz", **opt.state_dict())
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as f:
        saved = dict(f)
    params_copy = {n: p.copy() for n, p in params.items()}
    restored = AdamW(params_copy, lr=0.01, weight_decay=0.1)
    restored.load_state_dict(saved)
    assert restored.t == 3, f"restored step counter is {restored.t}, expected 3"

    for g in grads[3:]:
        opt.step(g)
        restored.step(g)
    for n in shapes:
        assert params[n].dtype == np.float32, f"{n} became {params[n].dtype}"
        assert_close(f"{n} after resuming", params_copy[n], params[n], rtol=0, atol=0)

    with pytest.raises(ValueError, match="missing"):
        restored.load_state_dict({k: v for k, v in saved.items() if k != "v.enc.b"})
    with pytest.raises(ValueError, match="shape"):
        restored.load_state_dict({**saved, "m.enc.W": np.zeros((4, 3))})


def test_names_freezes_the_other_parameters():
    params = {"base.W": np.ones((2, 2)), "lora.A": np.ones((2, 1))}
    frozen_before = params["base.W"]
    grads = {"base.W": np.ones((2, 2)), "lora.A": np.ones((2, 1))}
    opt = Adam(params, lr=0.1, names=["lora.A"])
    opt.step(grads)
    assert_close("frozen base.W", params["base.W"], np.ones((2, 2)))
    assert_close("trained lora.A", params["lora.A"], np.full((2, 1), 0.9), rtol=1e-8)
    assert params["base.W"] is frozen_before, "parameter array was rebound, not updated in place"
    assert sorted(opt.state_dict()) == ["m.lora.A", "t", "v.lora.A"], sorted(opt.state_dict())

    with pytest.raises(ValueError, match="unknown parameter"):
        Adam(params, names=["lora.B"])


@pytest.mark.parametrize("optimizer", ["adamw", "adam"])
def test_weight_decay_shrinks_weight_matrices_only_never_gains_or_biases(optimizer):
    # A real model (tiny's, untied so it also has an output bias) and a zero gradient: Adam's
    # own step is then exactly zero, so any change is the decay alone.
    from minitx.config import CONFIG_DIR, load_config
    from minitx.data import load_task
    from minitx.build import build_model, build_optimizer

    cfg = load_config(CONFIG_DIR / "tiny.yaml", ["model.tie_output=false", f"train.optimizer={optimizer}", "train.weight_decay=0.1"])
    model = build_model(cfg, load_task(cfg), dtype=np.float64)
    before = {n: p.copy() for n, p in model.params.items()}
    build_optimizer(cfg, model.params).step({n: np.zeros_like(p) for n, p in model.params.items()}, lr=0.01)

    changed = sorted(n for n, p in model.params.items() if not np.array_equal(p, before[n]))
    kept = sorted(n for n in model.params if n not in changed)
    assert changed and all(model.params[n].ndim == 2 for n in changed), changed
    assert all(n.endswith((".gamma", ".beta", ".b")) for n in kept), kept
    assert "decoder.out.b" in kept and "encoder.layers.0.norm1.gamma" in kept, kept
    assert "decoder.out.W" in changed and "encoder.embedding.W" in changed, changed
    if optimizer == "adamw":  # decoupled: every matrix shrinks by exactly (1 - lr * weight_decay)
        for n in changed:
            assert_close(n, model.params[n], before[n] * (1 - 0.01 * 0.1), rtol=1e-12)
