"""The benchmark: its JSON line has every promised key, and its FLOP count is the hand count of
the model's matrix products. Nothing here is timed: speed depends on the machine."""

import json
import os

import pytest

from minitx.tools import bench
from minitx.cli import main

KEYS = {"config", "ms_per_step", "tokens_per_s", "gflop_per_step", "gflops", "gemm_peak_gflops", "mfu", "peak_rss_mb"}

# The tiny config's copy task (10 symbols of length 10, so V = 14 and S = T = 11 with </s> or
# <s>, batch 64), with a model small enough that two steps take milliseconds.
SMALL = ["model.d_model=8", "model.n_heads=2", "model.d_ff=16", "model.n_enc_layers=1", "model.n_dec_layers=1"]
B, S, T, V, D, H, F = 64, 11, 11, 14, 8, 2, 16
K = D // H


def hand_count():
    """Every matrix product of one forward pass as (rows, inner, columns); each costs
    2 * rows * inner * columns FLOPs, and the backward pass twice the forward."""
    products = [
        # encoder layer: self-attention, then feed-forward
        (B * S, D, 3 * D),  # x @ [W_q | W_k | W_v]
        (B * H * S, K, S),  # q @ k^T for every (batch row, head)
        (B * H * S, S, K),  # P @ v
        (B * S, D, D),  # concat @ W_o
        (B * S, D, F),  # feed-forward in
        (B * S, F, D),  # feed-forward out
        # decoder layer: self-attention, cross-attention, feed-forward
        (B * T, D, 3 * D),
        (B * H * T, K, T),
        (B * H * T, T, K),
        (B * T, D, D),
        (B * T, D, D),  # cross: queries from the decoder
        (B * S, D, 2 * D),  # cross: keys and values from the encoder output
        (B * H * T, K, S),
        (B * H * T, S, K),
        (B * T, D, D),
        (B * T, D, F),
        (B * T, F, D),
        # tied output projection
        (B * T, D, V),
    ]
    forward = sum(2 * rows * inner * cols for rows, inner, cols in products)
    return 3 * forward


def fast_peak(monkeypatch):
    """A 128 x 128 product instead of 2048 x 2048: the test checks the plumbing, not the speed."""
    real = bench.gemm_peak_gflops
    monkeypatch.setattr(bench, "gemm_peak_gflops", lambda n=2048, repeats=5: real(128, 1))


def test_flop_count_matches_a_hand_count_of_the_products():
    b = bench.StepBench("tiny", SMALL)
    assert b.batches[0].src.shape == (B, S) and b.batches[0].tgt_in.shape == (B, T), b.batches[0].src.shape
    assert b.vocab_size == V
    want = hand_count()
    got = b.flops_per_step()
    assert got == want, f"bench counts {got} FLOPs per step, the hand count is {want}"


def test_bench_reports_every_key_with_consistent_numbers(monkeypatch):
    fast_peak(monkeypatch)
    result = bench.bench("tiny", steps=2, warmup=1, overrides=SMALL)
    missing = KEYS - set(result)
    assert not missing, f"missing keys {missing} in {result}"
    assert result["config"] == "tiny" and result["steps"] == 2
    assert result["gflop_per_step"] == pytest.approx(hand_count() / 1e9, rel=1e-5), result
    for key in KEYS - {"config"}:
        assert result[key] > 0, f"{key} = {result[key]}"
    assert result["gflops"] == pytest.approx(result["gflop_per_step"] / (result["ms_per_step"] / 1e3), rel=1e-2), result
    assert result["mfu"] == pytest.approx(result["gflops"] / result["gemm_peak_gflops"], rel=1e-2), result


def test_bench_command_prints_one_json_line_per_implementation(monkeypatch, capsys):
    fast_peak(monkeypatch)
    args = ["bench", "tiny", "--steps", "2", "--warmup", "1"]
    for override in SMALL:
        args += ["--set", override]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2, lines
    plain, fused = (json.loads(line) for line in lines)
    assert (plain["impl"], fused["impl"]) == ("plain", "fused"), lines
    for result in (plain, fused):
        assert KEYS <= set(result), result


def test_minitx_sets_its_own_blas_threads_and_bench_reports_them(monkeypatch, capsys):
    # Whatever OPENBLAS_NUM_THREADS said, minitx asks the BLAS library (through threadpoolctl)
    # for the config's train.threads, or --threads, and bench reports what the library says.
    from minitx.threads import blas_threads, use_blas_threads

    fast_peak(monkeypatch)
    counts = [1, 2] if (os.cpu_count() or 1) >= 2 else [1]
    try:
        for n in counts:
            args = ["bench", "tiny", "--steps", "1", "--warmup", "0", "--threads", str(n)]
            for override in SMALL:
                args += ["--set", override]
            assert main(args) == 0
            reported = [json.loads(line)["blas_threads"] for line in capsys.readouterr().out.splitlines()]
            assert reported == [n, n] and blas_threads() == n, (n, reported)
        # After the last count, a bench without --threads goes back to train.threads: 1.
        bench.StepBench("tiny", SMALL)
        assert blas_threads() == 1, blas_threads()
    finally:
        use_blas_threads(1)
