"""Time minitx's training step, plain and fused, against the same model in PyTorch eager, in one
process.

    .venv/bin/pip install torch==2.13.0          # optional; minitx itself never imports torch
    .venv/bin/python scripts/bench_torch.py tiny base [--steps 5] [--rounds 8] [--threads N]

For each config we build the same network three times: minitx's plain layers (what trains by
default), minitx's fused layers (model.fused), and a PyTorch one with the same
architecture and sizes (pre- or post-norm as configured, sinusoidal positions, embeddings scaled
by sqrt(D), tied output, the same D, H, F, layer counts and vocabulary), then copy minitx's
initial weights into it (plain and fused start from the same weights). Before timing anything we check that the two compute the same function:
the same logits, loss and parameter gradients on one batch (minitx's hand-written backward
against autograd). Then both train on the same pre-drawn batches with the same step: forward,
cross-entropy with padding ignored (and the config's label smoothing), backward, global-norm
clipping, Adam (or AdamW) with the config's settings and schedule.

Machines are noisy, so we alternate in short blocks: `rounds` times, `steps` steps of each of
the three, so that all see the same changes in load; we compare the medians of all of them. We
print one JSON line per config, with the ratios plain / PyTorch and fused / PyTorch of the median
ms per step (below 1 means minitx is faster), and plain / fused.

--threads N sets both libraries' thread count (OPENBLAS_NUM_THREADS before NumPy is imported,
minitx's train.threads, and torch.set_num_threads); without it minitx uses its config's
train.threads (1) and PyTorch its own default.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("configs", nargs="*", default=["tiny", "base"], help="configs to time (default: tiny base)")
    p.add_argument("--steps", type=int, default=5, help="steps per round for each library (default 5)")
    p.add_argument("--rounds", type=int, default=8, help="alternating rounds (default 8)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps for each library first (default 3)")
    p.add_argument("--threads", type=int, default=0, help="threads for both libraries (default: their own defaults)")
    p.add_argument("--manual-attention", action="store_true",
                   help="PyTorch attention written out (q k^T, mask, softmax, P v) instead of F.scaled_dot_product_attention")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="config override (repeatable)")
    return p.parse_args()


ARGS = parse_args()
if ARGS.threads:
    os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)  # read once, when NumPy loads OpenBLAS

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from minitx.tools.bench import StepBench, gemm_peak_gflops, peak_rss_mb, product_gflops  # noqa: E402
from minitx.data import PAD  # noqa: E402
from minitx.nn.embedding import sinusoidal_table  # noqa: E402

if ARGS.threads:
    torch.set_num_threads(ARGS.threads)


class Attention(nn.Module):
    """Multi-head attention; self-attention projects q, k, v with one fused (D, 3D) linear."""

    def __init__(self, D, H, self_attention):
        super().__init__()
        self.H, self.self_attention = H, self_attention
        if self_attention:
            self.qkv = nn.Linear(D, 3 * D)
        else:
            self.q, self.kv = nn.Linear(D, D), nn.Linear(D, 2 * D)
        self.o = nn.Linear(D, D)

    def forward(self, x_q, x_kv, mask):
        B, T, D = x_q.shape
        S, H = x_kv.shape[1], self.H
        if self.self_attention:
            q, k, v = self.qkv(x_q).split(D, dim=-1)
        else:
            q, (k, v) = self.q(x_q), self.kv(x_kv).split(D, dim=-1)
        q = q.view(B, T, H, D // H).transpose(1, 2)  # (B, H, T, K)
        k = k.view(B, S, H, D // H).transpose(1, 2)  # (B, H, S, K)
        v = v.view(B, S, H, D // H).transpose(1, 2)  # (B, H, S, K)
        if ARGS.manual_attention:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(D // H)  # (B, H, T, S)
            out = scores.masked_fill(~mask, -1e9).softmax(dim=-1) @ v  # (B, H, T, K)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, T, K)
        return self.o(out.transpose(1, 2).reshape(B, T, D))


class Block(nn.Module):
    """An encoder layer (self-attention, feed-forward) or a decoder layer (with cross-attention)."""

    def __init__(self, m, decoder):
        super().__init__()
        D = m.d_model
        self.pre = m.norm == "pre"
        self.self_attn = Attention(D, m.n_heads, True)
        self.cross_attn = Attention(D, m.n_heads, False) if decoder else None
        self.ff = nn.Sequential(nn.Linear(D, m.d_ff), nn.ReLU(), nn.Linear(m.d_ff, D))
        self.norms = nn.ModuleList(nn.LayerNorm(D) for _ in range(3 if decoder else 2))
        self.drop = nn.Dropout(m.dropout)

    def residual(self, x, norm, f):
        if self.pre:
            return x + self.drop(f(norm(x)))
        return norm(x + self.drop(f(x)))

    def forward(self, x, self_mask, memory=None, src_mask=None):
        x = self.residual(x, self.norms[0], lambda h: self.self_attn(h, h, self_mask))
        if self.cross_attn is not None:
            x = self.residual(x, self.norms[1], lambda h: self.cross_attn(h, memory, src_mask))
        return self.residual(x, self.norms[-1], self.ff)


class Transformer(nn.Module):
    def __init__(self, m, src_vocab, tgt_vocab):
        super().__init__()
        D = m.d_model
        self.scale = math.sqrt(D)
        self.src_embed = nn.Embedding(src_vocab, D, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(tgt_vocab, D, padding_idx=PAD)
        self.register_buffer("pe", torch.from_numpy(sinusoidal_table(m.max_len, D)))
        self.drop = nn.Dropout(m.dropout)
        self.enc = nn.ModuleList(Block(m, False) for _ in range(m.n_enc_layers))
        self.dec = nn.ModuleList(Block(m, True) for _ in range(m.n_dec_layers))
        pre = m.norm == "pre"
        self.enc_norm = nn.LayerNorm(D) if pre else nn.Identity()
        self.dec_norm = nn.LayerNorm(D) if pre else nn.Identity()
        self.out = None if m.tie_output else nn.Linear(D, tgt_vocab)

    def embed(self, table, ids):
        return self.drop(table(ids) * self.scale + self.pe[: ids.shape[1]])

    def forward(self, src, tgt_in):
        T = tgt_in.shape[1]
        src_mask = (src != PAD)[:, None, None, :]  # (B, 1, 1, S)
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        tgt_mask = causal & (tgt_in != PAD)[:, None, None, :]  # (B, 1, T, T)
        x = self.embed(self.src_embed, src)
        for layer in self.enc:
            x = layer(x, src_mask)
        memory = self.enc_norm(x)
        y = self.embed(self.tgt_embed, tgt_in)
        for layer in self.dec:
            y = layer(y, tgt_mask, memory, src_mask)
        y = self.dec_norm(y)
        return y @ self.tgt_embed.weight.T if self.out is None else self.out(y)


def copy_weights(model, mx_params):
    """Load minitx's parameters (x @ W layout) into the PyTorch model (x @ W.T layout)."""
    p = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in mx_params.items()}

    def linear(lin, Ws, bs):
        lin.weight.copy_(torch.cat([p[w] for w in Ws], dim=1).T)
        lin.bias.copy_(torch.cat([p[b] for b in bs]))

    def attention(att, pre):
        def W(*names):
            return [f"{pre}.{n}.W" for n in names]

        def b(*names):
            return [f"{pre}.{n}.b" for n in names]

        if att.self_attention:
            linear(att.qkv, W("query", "key", "value"), b("query", "key", "value"))
        else:
            linear(att.q, W("query"), b("query"))
            linear(att.kv, W("key", "value"), b("key", "value"))
        linear(att.o, W("output"), b("output"))

    def norm(ln, pre):
        ln.weight.copy_(p[f"{pre}.gamma"])
        ln.bias.copy_(p[f"{pre}.beta"])

    with torch.no_grad():
        model.src_embed.weight.copy_(p["encoder.embedding.W"])
        model.tgt_embed.weight.copy_(p["decoder.embedding.W"])
        for side, layers in (("encoder", model.enc), ("decoder", model.dec)):
            for i, layer in enumerate(layers):
                pre = f"{side}.layers.{i}"
                attention(layer.self_attn, f"{pre}.self_attn")
                if layer.cross_attn is not None:
                    attention(layer.cross_attn, f"{pre}.cross_attn")
                linear(layer.ff[0], [f"{pre}.ff.lin1.W"], [f"{pre}.ff.lin1.b"])
                linear(layer.ff[2], [f"{pre}.ff.lin2.W"], [f"{pre}.ff.lin2.b"])
                for j, ln in enumerate(layer.norms, start=1):
                    norm(ln, f"{pre}.norm{j}")
        if isinstance(model.enc_norm, nn.LayerNorm):
            norm(model.enc_norm, "encoder.norm")
            norm(model.dec_norm, "decoder.norm")
        if model.out is not None:
            linear(model.out, ["decoder.out.W"], ["decoder.out.b"])


class TorchStep:
    """The PyTorch twin of a minitx StepBench: same config, batches, initial weights and step."""

    def __init__(self, mx):
        cfg, t = mx.cfg, mx.cfg.train
        self.mx, self.cfg = mx, cfg
        src_vocab = mx.model.params["encoder.embedding.W"].shape[0]
        self.model = Transformer(cfg.model, src_vocab, mx.vocab_size)
        copy_weights(self.model, mx.model.params)
        n_mx, n_torch = mx.model.n_params(), sum(q.numel() for q in self.model.parameters())
        assert n_mx == n_torch, f"parameter counts differ: minitx {n_mx}, PyTorch {n_torch}"
        opt = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = opt(self.model.parameters(), lr=t.lr, betas=(t.beta1, t.beta2), eps=t.eps, weight_decay=t.weight_decay)
        self.batches = [tuple(torch.from_numpy(a) for a in (b.src, b.tgt_in, b.tgt_out)) for b in mx.batches]
        self.steps_done = 0

    def loss(self, src, tgt_in, tgt_out):
        logits = self.model(src, tgt_in)  # (B, T, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), ignore_index=PAD,
                               label_smoothing=self.cfg.train.label_smoothing)

    def step(self, batch, lr):
        t = self.cfg.train
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad()
        loss = self.loss(*batch)
        loss.backward()
        if t.clip_norm > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), t.clip_norm)
        self.optimizer.step()
        return loss.item()

    def run(self, steps):
        self.model.train(True)
        times = []
        for _ in range(steps):
            batch = self.batches[self.steps_done % len(self.batches)]
            lr = self.mx.schedule(self.steps_done + 1)
            start = time.perf_counter()
            self.step(batch, lr)
            times.append(time.perf_counter() - start)
            self.steps_done += 1
        return times


def same_function(mx, tx):
    """Logits, loss and every gradient on the first batch, dropout off: the worst differences."""
    b = mx.batches[0]
    mx.model.train(False)
    mx.model.zero_grad()
    logits = mx.model.forward(b.src, b.tgt_in)
    loss = mx.ce.forward(logits, b.tgt_out)
    mx.model.backward(mx.ce.backward())
    mx.model.train(True)
    tx.model.train(False)
    tx.model.zero_grad()
    src, tgt_in, tgt_out = tx.batches[0]
    t_logits = tx.model(src, tgt_in)
    t_loss = F.cross_entropy(t_logits.reshape(-1, t_logits.shape[-1]), tgt_out.reshape(-1), ignore_index=PAD,
                             label_smoothing=mx.cfg.train.label_smoothing)
    t_loss.backward()
    t_grad = {name: q.grad for name, q in tx.model.named_parameters()}
    tx.model.zero_grad()
    # Compare three gradients, one from each kind of layer (embedding, feed-forward,
    # cross-attention), element by element.
    embed_mx = mx.model.grads["decoder.embedding.W"]
    embed_t = t_grad["tgt_embed.weight"].numpy()
    W1_mx = mx.model.grads["encoder.layers.0.ff.lin1.W"]
    W1_t = t_grad["enc.0.ff.0.weight"].numpy().T
    Wq_mx = mx.model.grads["decoder.layers.0.cross_attn.query.W"]
    Wq_t = t_grad["dec.0.cross_attn.q.weight"].numpy().T

    def rel(a, b):
        return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))

    return {
        "logits_max_abs_diff": float(np.abs(logits - t_logits.detach().numpy()).max()),
        "loss_minitx": round(loss, 6),
        "loss_torch": round(t_loss.item(), 6),
        "grad_rel_diff_tgt_embed": rel(embed_mx, embed_t),
        "grad_rel_diff_enc0_ff_W1": rel(W1_mx, W1_t),
        "grad_rel_diff_dec0_cross_W_q": rel(Wq_mx, Wq_t),
    }


def torch_gemm_peak_gflops(n=2048, repeats=5):
    return product_gflops(torch.matmul, torch.randn(n, n), torch.randn(n, n), torch.empty(n, n), repeats)


def main():
    for config in ARGS.configs:
        overrides = ARGS.set + ([f"train.threads={ARGS.threads}"] if ARGS.threads else [])
        plain, fused = StepBench(config, overrides, fused=False), StepBench(config, overrides, fused=True)
        tx = TorchStep(plain)
        # Timing different computations would mean nothing: stop unless both minitx models
        # compute PyTorch's loss and gradients (float32 rounding allows about 1e-5).
        checks = {"plain": same_function(plain, tx), "fused": same_function(fused, tx)}
        for impl, check in checks.items():
            worst = max(v for k, v in check.items() if k.startswith("grad_rel_diff"))
            if worst > 1e-4 or abs(check["loss_minitx"] - check["loss_torch"]) > 1e-4:
                raise SystemExit(f"{config}: minitx ({impl}) and PyTorch disagree ({check}); not timing them")
        runners = {"plain": plain, "fused": fused, "torch": tx}
        times = {name: [] for name in runners}
        for r in runners.values():
            r.run(ARGS.warmup)
        for _ in range(ARGS.rounds):
            for name, r in runners.items():
                times[name] += r.run(ARGS.steps)
        peak = gemm_peak_gflops()
        reports = {name: runners[name].report(times[name], peak) for name in ("plain", "fused")}
        ms = {name: reports[name]["ms_per_step"] for name in reports}
        ms["torch"] = round(statistics.median(times["torch"]) * 1e3, 3)
        gflop = reports["plain"]["gflop_per_step"]
        print(json.dumps({
            "config": config,
            "plain_ms_per_step": ms["plain"],
            "fused_ms_per_step": ms["fused"],
            "torch_ms_per_step": ms["torch"],
            "ratio_plain_over_fused": round(ms["plain"] / ms["fused"], 3),
            "ratio_plain_over_torch": round(ms["plain"] / ms["torch"], 3),
            "ratio_fused_over_torch": round(ms["fused"] / ms["torch"], 3),
            "plain_mfu": reports["plain"]["mfu"],
            "fused_mfu": reports["fused"]["mfu"],
            "torch_mfu": round(gflop / (ms["torch"] / 1e3) / peak, 4),
            "numpy_gemm_peak_gflops": round(peak, 2),
            "torch_gemm_peak_gflops": round(torch_gemm_peak_gflops(), 2),
            "threads": {"numpy": os.environ.get("OPENBLAS_NUM_THREADS", "default"), "torch": torch.get_num_threads()},
            "torch_attention": "manual" if ARGS.manual_attention else "scaled_dot_product_attention",
            "steps_each": len(times["torch"]),
            "same_function": checks,
            "process_peak_rss_mb": round(peak_rss_mb(), 1),
            "minitx": reports,
        }), flush=True)


if __name__ == "__main__":
    main()
