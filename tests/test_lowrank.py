"""Singular-value tools on matrices whose answers we know: planted ranks and spectra,
Eckart-Young's error formula and optimality, and the command on a real run."""

import numpy as np

from helpers import small_model_config
from minitx.cli import main
from minitx.model import Transformer
from minitx.tools.lowrank import eckart_young, effective_rank, energy, head_maps, heads_table, singular_values, truncate
from minitx.train import train


def with_singular_values(s, m, n, seed=0):
    """A random (m, n) matrix whose singular values are exactly s: U diag(s) V^T with random
    orthonormal U (m, p) and V (n, p) from QR decompositions."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((m, len(s))))  # (m, p)
    V, _ = np.linalg.qr(rng.standard_normal((n, len(s))))  # (n, p)
    return (U * s) @ V.T  # (m, n)


def test_a_product_of_thin_factors_has_exactly_that_rank():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((20, 3)) @ rng.standard_normal((3, 15))  # rank 3
    s = singular_values(W)
    assert s.shape == (15,)
    assert s[2] > 1e-3 * s[0] and s[3] < 1e-12 * s[0], f"singular values {s[:5]}"
    assert effective_rank(s, 0.999999) == 3, s[:5]
    assert abs(energy(s, 3) - 1.0) < 1e-12, energy(s, 3)


def test_energy_and_effective_rank_on_a_planted_spectrum():
    planted = np.array([3.0, 2.0, 1.0, 0.5, 0.1])  # squares 9, 4, 1, 0.25, 0.01: total 14.26
    s = singular_values(with_singular_values(planted, 12, 7))
    assert np.allclose(s[:5], planted, atol=1e-12) and np.all(s[5:] < 1e-12), s
    expected = {1: 9 / 14.26, 2: 13 / 14.26, 3: 14 / 14.26, 4: 14.25 / 14.26}
    for k, want in expected.items():
        assert abs(energy(s, k) - want) < 1e-12, f"energy({k}) = {energy(s, k)}, expected {want}"
    # energy: 0.631, 0.912, 0.982, 0.9993: 90% needs 2 values, 99% needs 4.
    assert (effective_rank(s, 0.9), effective_rank(s, 0.99)) == (2, 4)
    assert effective_rank(np.zeros(3), 0.9) == 0


def test_eckart_young_error_is_the_dropped_energy():
    W = np.random.default_rng(1).standard_normal((30, 20))
    s = singular_values(W)
    for k in (1, 5, 19):
        error, dropped, rel = eckart_young(W, k)
        assert abs(dropped - np.sum(s[k:] ** 2)) < 1e-12 * dropped
        assert rel < 1e-10, f"k={k}: |W - W_k|^2 = {error}, dropped = {dropped}, relative difference {rel}"
        assert np.linalg.matrix_rank(truncate(W, k)) == k


def test_no_other_rank_k_matrix_is_closer():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((15, 10))
    k = 3
    best = np.sum((W - truncate(W, k)) ** 2)
    for _ in range(20):
        # Another rank-k matrix: the truncation's factors, nudged.
        U, s, Vt = np.linalg.svd(W, full_matrices=False)
        X = ((U[:, :k] + 0.05 * rng.standard_normal((15, k))) * s[:k]) @ Vt[:k]
        other = np.sum((W - X) ** 2)
        assert other > best, f"a rank-{k} matrix {other} beat the truncation {best}"


def test_the_command_on_a_run_and_on_a_zero_update(tmp_path, capsys):
    small = ["model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.n_enc_layers=1",
             "model.n_dec_layers=1", "data.n_valid=20", "data.n_test=20", "train.steps=3", "train.warmup=0", "train.eval_every=3"]
    run = train("tiny", small, out=tmp_path / "r", quiet=True)
    capsys.readouterr()
    assert main(["lowrank", str(run), "--k", "2"]) == 0
    out = capsys.readouterr().out
    assert "decoder.layers.0.cross_attn.query.W" in out and "Eckart-Young held for all" in out, out
    assert main(["lowrank", str(run), "--base", str(run)]) == 0
    out = capsys.readouterr().out
    assert "all zero (unchanged)" in out, out
    assert main(["lowrank", str(run), "--k", "0"]) == 2
    assert main(["lowrank", str(run), "--heads"]) == 0
    out = capsys.readouterr().out
    # D = 16, H = 2: K = 8; three attentions of two heads, two maps each.
    assert "Every one of the 12 maps has rank 8" in out, out
    assert "256 numbers if stored whole" in out and "2DK = 256 parameters" in out, out
    assert main(["lowrank", str(run), "--heads", "--base", str(run)]) == 2


def test_each_heads_maps_are_the_products_of_its_blocks_and_have_rank_K():
    model = Transformer(small_model_config(d_model=12, n_heads=3), 7, 9, 0, np.random.default_rng(0), np.float32)
    maps = head_maps(model)
    assert len(maps) == 6 * 3  # 2 encoder self, 2 decoder self, 2 cross; 3 heads each
    name, h, W_VO, W_QK = maps[-1]  # decoder.layers.1.cross_attn, head 2: columns 8 to 11
    p = {k: v.astype(np.float64) for k, v in model.params.items()}
    assert np.allclose(W_VO, p[f"{name}.value.W"][:, 8:12] @ p[f"{name}.output.W"][8:12, :], atol=1e-12)
    assert np.allclose(W_QK, p[f"{name}.query.W"][:, 8:12] @ p[f"{name}.key.W"][:, 8:12].T, atol=1e-12)
    for name, h, W_VO, W_QK in maps:
        for M in (W_VO, W_QK):
            s = singular_values(M)
            assert s[3] > 1e-3 * s[0] and s[4] < 1e-12 * s[0], f"{name} head {h}: {s}"
    lines, spectra, K = heads_table(model)
    assert K == 4 and len(spectra) == 18
    assert "144 numbers if stored whole" in lines[1] and "2DK = 96 parameters" in lines[1], lines[1]
    assert lines[-1].startswith("Every one of the 36 maps has rank 4 "), lines[-1]
