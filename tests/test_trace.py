"""The shape trace: every call recorded with its shapes, attention as (B, H, T, S), and a
parameter count that equals model.n_params() and does not change with the lengths."""

import numpy as np

from helpers import small_model_config
from minitx.cli import main
from minitx.config import load_config, resolve_config_path
from minitx.data import load_task
from minitx.model import Transformer
from minitx.tools.trace import Tracer
from minitx.build import build_model


def test_tracer_records_shapes_with_source_and_target_of_different_lengths():
    model = Transformer(small_model_config(), 7, 9, 0, np.random.default_rng(0), np.float32)
    B, S, T = 2, 5, 3
    src = np.arange(1, 1 + B * S).reshape(B, S) % 6 + 1  # (B, S)
    tgt = np.arange(1, 1 + B * T).reshape(B, T) % 8 + 1  # (B, T)
    tracer = Tracer(model)
    logits = model.forward(src, tgt)
    model.backward(np.ones_like(logits))
    tracer.detach()
    by_name = {}
    for call in tracer.calls:
        by_name.setdefault(call.name, []).append(call)
    cross = by_name["cross_attn"][0]  # the first decoder layer's, in forward order
    assert cross.inputs == "x_q (2, 3, 8), x_kv (2, 5, 8), mask (2, 1, 1, 5)", cross.inputs
    assert cross.output == "(2, 3, 8)"
    assert cross.notes == ["attention weights .attn (2, 2, 3, 5)"], cross.notes  # (B, H, T, S)
    backward_cross = by_name["cross_attn"][-1]
    assert backward_cross.output == "(2, 3, 8), (2, 5, 8)", backward_cross.output  # dx_q, dx_kv
    # Its four Linear projections fill their own gradients, called from inside it.
    inner = tracer.calls[tracer.calls.index(backward_cross) + 1:][:5]
    assert [c.name for c in inner] == ["output", "attention", "value", "key", "query"], [c.name for c in inner]
    assert all(c.notes == ["fills dW (8, 8); db (8,)"] for c in inner if c.name != "attention"), inner
    # Tracing left nothing behind: the class's own methods are used again.
    assert all("forward" not in vars(m) and "backward" not in vars(m) for _, m in model.named_modules())


def test_trace_command_prints_attention_shapes_and_the_parameter_total(capsys):
    assert main(["trace", "tiny"]) == 0
    text = capsys.readouterr().out
    print("\n".join(text.splitlines()[:30]))
    cfg = load_config(resolve_config_path("tiny"))
    n = build_model(cfg, load_task(cfg)).n_params()
    assert f"parameters: {n:,} in total (model.n_params())" in text
    assert text.splitlines()[0].startswith("config tiny: B=2 S=11 T=11 D=64 H=4 K=16")
    # Six attention modules (2 encoder self, 2 decoder self, 2 cross), each (B, H, T, S).
    assert text.count("attention weights .attn (2, 4, 11, 11)") == 6
    # On the longer inputs S=16 and T=20 differ, so every axis is where it should be.
    assert "encoder self-attention (B, H, S, S) (2, 4, 11, 11)              (2, 4, 16, 16)" in text
    assert "decoder self-attention (B, H, T, T) (2, 4, 11, 11)              (2, 4, 20, 20)" in text
    assert "cross-attention        (B, H, T, S) (2, 4, 11, 11)              (2, 4, 20, 16)" in text
    assert f"{n:,} (the same arrays)" in text
    assert "largest parameter shape (64, 256) is independent of S and T" in text
    # Gradients have their parameters' shapes.
    assert "fills dW (64, 256); db (256,)" in text


def test_trace_command_takes_overrides_and_batch_size(capsys):
    assert main(["trace", "tiny", "--set", "model.n_heads=2", "--batch", "3", "--depth", "3"]) == 0
    text = capsys.readouterr().out
    assert "attention weights .attn (3, 2, 11, 11)" in text
    assert "  layers.0  " in text and " attention  " not in text  # the attention core is four deep
