"""How fast is a training step? `python -m minitx bench [CONFIG]` prints one JSON line for each
implementation: "impl": "plain" (the layers of minitx.nn, what a learner reads and what trains
by default) and "impl": "fused" (minitx.nn.fused, the same numbers computed faster).

We time whole training steps, `minitx.train.train_step` itself (forward, loss, backward,
gradient clipping, Adam), after a few warm-up steps, on batches drawn from the
config's task before the clock starts, and report the median. Alongside the time we report how
much of the machine that step used:

    gflop_per_step    floating-point operations in the model's matrix products (counted below)
    gflops            gflop_per_step / median seconds per step
    gemm_peak_gflops  what NumPy reaches on one large float32 matrix product (2048 x 2048 x 2048),
                      measured in the same run, so both numbers see the same machine and threads
    mfu               gflops / gemm_peak_gflops ("model FLOPs utilisation")
    peak_rss_mb       the process's peak resident memory (getrusage ru_maxrss)
    blas_threads      the threads the BLAS library reports using (threadpoolctl), set from the
                      config's train.threads or --threads

Counting the FLOPs. A product (M, K) @ (K, N) costs 2*M*K*N FLOPs: M*N dot products of length K,
one multiply and one add each. With B batch, S source and T target length (the padded arrays, as
computed), D model width, F feed-forward width, V target vocabulary, the forward pass costs

    encoder layer:   2*B*S*D*3D         q, k, v projections
                   + 2*B*S*S*D * 2      scores q k^T and the weighted sum P v, all heads together
                   + 2*B*S*D*D          output projection W_o
                   + 2*B*S*D*F * 2      feed-forward, D -> F -> D
    decoder layer:   2*B*T*D*3D + 2*B*T*T*D * 2 + 2*B*T*D*D     self-attention, as above
                   + 2*B*T*D*D + 2*B*S*D*2D                    cross-attention q (from T), k v (from S)
                   + 2*B*T*S*D * 2 + 2*B*T*D*D                 cross scores, P v, W_o
                   + 2*B*T*D*F * 2                             feed-forward
    output:          2*B*T*D*V                                   logits (tied or not)

and the backward pass costs exactly twice that: every product A @ W needs both dA = dY @ W^T and
dW = A^T @ dY, each as large as the product itself (even the first layer's dA is needed, because
the embeddings are learned). So gflop_per_step = 3 * forward. We count the full T x T causal
score matrix because we compute it in full and mask it afterwards. We leave out everything that
is not a matrix product (softmax, layer norm, the loss, Adam): those cost O(B*T*D) each, not
O(B*T*D*D), and they are what keeps a step from reaching the matrix-product peak.
"""

import json
import os
import resource
import statistics
import time

import numpy as np
from tqdm import tqdm

from minitx.config import load_config, resolve_config_path
from minitx.data import PAD, load_task
from minitx.model import layer_set
from minitx.optim import make_schedule
from minitx.build import build_model, build_optimizer
from minitx.threads import blas_kernels, blas_threads, use_blas_threads
from minitx.train import train_step

N_BATCHES = 8  # distinct batches we cycle through: real data, drawn before the clock starts


def step_flops(m, B, S, T, V):
    """FLOPs of one training step's matrix products (module docstring); m is a ModelConfig."""
    D, F = m.d_model, m.d_ff

    def attention(Lq, Lk):
        return 2 * B * Lq * Lk * D * 2  # scores q k^T and the weighted sum P v, every head

    encoder = 2 * B * S * D * 3 * D + attention(S, S) + 2 * B * S * D * D + 2 * B * S * D * F * 2
    decoder = (2 * B * T * D * 3 * D + attention(T, T) + 2 * B * T * D * D
               + 2 * B * T * D * D + 2 * B * S * D * 2 * D + attention(T, S) + 2 * B * T * D * D
               + 2 * B * T * D * F * 2)
    forward = m.n_enc_layers * encoder + m.n_dec_layers * decoder + 2 * B * T * D * V
    return 3 * forward


def gemm_peak_gflops(n=2048, repeats=5):
    """GFLOP/s of the fastest thing NumPy does: one float32 (n, n) @ (n, n), median of repeats."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    return product_gflops(np.matmul, a, b, np.empty((n, n), dtype=np.float32), repeats)


def product_gflops(matmul, a, b, out, repeats=5):
    """GFLOP/s of matmul(a, b, out=out) for square (n, n) operands, the median of `repeats`
    timed calls after one warm-up (threads started, pages touched). matmul may be NumPy's or
    another library's with the same signature (scripts/bench_torch.py passes torch.matmul)."""
    matmul(a, b, out=out)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b, out=out)
        times.append(time.perf_counter() - start)
    return 2 * a.shape[0] ** 3 / statistics.median(times) / 1e9


def significant(x, digits=4):
    """x rounded to a few significant digits: timings are not more precise than that."""
    return float(f"{x:.{digits}g}")


def peak_rss_mb():
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StepBench:
    """A model, its optimizer and a few batches of a config, ready to time training steps."""

    def __init__(self, config, overrides=(), fused=None):
        """fused: time the plain (False) or fused (True) layers; None keeps the config's."""
        self.name = str(config)
        self.cfg = cfg = load_config(resolve_config_path(str(config)), overrides)
        use_blas_threads(cfg.train.threads)
        if fused is not None:
            cfg.model.fused = fused
        task = load_task(cfg)
        self.model = build_model(cfg, task)
        self.optimizer = build_optimizer(cfg, self.model.params)
        data_rng = np.random.default_rng([cfg.train.seed, 3])  # the training run's data stream
        self.batches = [task.train_batch(data_rng, cfg.train.batch_size) for _ in range(N_BATCHES)]
        self.vocab_size = len(task.tgt_vocab)
        t = cfg.train
        self.schedule = make_schedule(t.schedule, t.lr, t.warmup, t.steps, d_model=cfg.model.d_model)
        self.ce = layer_set(cfg.model.fused).cross_entropy(PAD, t.label_smoothing)
        self.steps_done = 0
        self.model.train(True)

    def run(self, steps):
        """Time `steps` training steps; returns the seconds each took."""
        times = []
        for i in range(steps):
            batch = self.batches[self.steps_done % N_BATCHES]
            lr = self.schedule(self.steps_done + 1)
            start = time.perf_counter()
            train_step(self.model, self.ce, self.optimizer, batch, lr, self.cfg.train.clip_norm)
            times.append(time.perf_counter() - start)
            self.steps_done += 1
        return times

    def flops_per_step(self):
        """Mean over our batches (their padded lengths can differ for text data)."""
        return statistics.mean(
            step_flops(self.cfg.model, *b.src.shape, b.tgt_in.shape[1], self.vocab_size) for b in self.batches
        )

    def tokens_per_step(self):
        """Real (non-padding) source and target tokens per step, as `minitx train` counts them."""
        return statistics.mean(b.n_tokens for b in self.batches)

    def report(self, times, peak_gflops):
        """The JSON-ready summary of a list of step times."""
        seconds = statistics.median(times)
        gflop = self.flops_per_step() / 1e9
        B, S = self.batches[0].src.shape
        return {
            "config": self.name,
            "impl": "fused" if self.cfg.model.fused else "plain",
            "ms_per_step": significant(seconds * 1e3),
            "tokens_per_s": significant(self.tokens_per_step() / seconds),
            "gflop_per_step": significant(gflop, 6),
            "gflops": significant(gflop / seconds),
            "gemm_peak_gflops": significant(peak_gflops),
            "mfu": significant(gflop / seconds / peak_gflops),
            "peak_rss_mb": significant(peak_rss_mb()),
            "steps": len(times),
            "ms_per_step_min": significant(min(times) * 1e3),
            "batch": [B, S, self.batches[0].tgt_in.shape[1]],
            "n_params": self.model.n_params(),
            "blas_threads": blas_threads(),
            # OpenBLAS picks its kernels for the CPU it finds unless OPENBLAS_CORETYPE pins
            # them, and every time here depends on that choice: on an AVX-512 CPU, pinning the
            # AVX2 "Haswell" kernels roughly halves the matrix-product peak.
            "blas_kernels": blas_kernels(),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE") or "auto",
        }


def bench(config="tiny", steps=20, warmup=3, overrides=(), peak_size=2048, fused=False):
    """Time `steps` training steps of a config after `warmup` untimed ones; returns the summary
    dict (one JSON line of `minitx bench`). fused picks the implementation."""
    b = StepBench(config, overrides, fused)
    b.run(warmup)
    times = b.run(steps)
    return b.report(times, gemm_peak_gflops(peak_size))


def bench_both(config="tiny", steps=20, warmup=3, overrides=(), peak_size=2048):
    """The plain and the fused implementation of one config, timed in the same run, their
    steps interleaved in rounds so that both see the same machine: a busy moment on a shared
    machine then slows both, not one. Returns the two summaries, plain first."""
    benches = [StepBench(config, overrides, fused) for fused in (False, True)]
    for b in benches:
        b.run(warmup)
    times = [[], []]
    # A progress bar (on stderr, between the timed steps) for a count long enough to wonder about.
    for _ in tqdm(range(steps), desc="timing steps", leave=False, disable=steps < 100):
        for b, t in zip(benches, times):
            t += b.run(1)
    peak = gemm_peak_gflops(peak_size)
    return [b.report(t, peak) for b, t in zip(benches, times)]


def run_cli(args):
    threads = [f"train.threads={args.threads}"] if args.threads else []
    for report in bench_both(args.config, args.steps, args.warmup, args.set + threads):
        print(json.dumps(report))
