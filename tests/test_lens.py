"""`minitx lens`: the stream is read where the model reads it, its last reading is the model's
own output (and the check says so when it is not), pre- and post-norm, one input and a split."""

import numpy as np
import pytest

from minitx.cli import main
from minitx.config import resolve_config_path
from minitx.inference import load_run
from minitx.tools import lens
from minitx.train import evaluate, train


def test_one_input_position_by_position(explain_run, capsys):
    assert main(["lens", str(explain_run), "3 1 4 1 5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    print("\n".join(lines))
    header = next(line for line in lines if line.split()[:2] == ["embed", "0.self"])
    assert header.split() == ["embed", "0.self", "0.cross", "0.ff"]  # one decoder layer: 1 + 3 columns
    rows = lines[lines.index(header) + 1:][:6]
    assert [row.split()[0] for row in rows] == ["<s>→3", "3→1", "1→4", "4→1", "1→5", "5→</s>"], rows
    assert "check: the last column is the model's own output, bit for bit" in lines
    # The last column's top predictions are the model's own argmax with the true prefix.
    cfg, model, task = load_run(explain_run, need_data=False, fused=False)
    example, points, top, p_right = lens.lens_one(model, task, cfg, "3 1 4 1 5")
    logits = model.forward(example.src, example.tgt_in)[0]  # (T, V)
    logits[:, :2] = -np.inf  # never <pad> or <s>, as decoding
    assert list(top[:, -1]) == [task.tgt_vocab.itos[i] for i in logits.argmax(axis=-1)]
    assert [row.split()[-2] for row in rows] == list(top[:, -1])
    assert np.all((p_right >= 0) & (p_right <= 1))


def test_the_summary_ends_at_the_models_token_accuracy(explain_run, capsys):
    assert main(["lens", str(explain_run), "--split", "valid"]) == 0
    out = capsys.readouterr().out
    print(out)
    cfg, model, task = load_run(explain_run, fused=False)
    token_acc = evaluate(model, task, "valid", cfg)["token_acc"]
    last = next(line for line in out.splitlines() if line.startswith("layer 0 feed-forward"))
    assert float(last.split()[-2]) == pytest.approx(token_acc, abs=5e-5), (last, token_acc)
    assert "over the first 20 examples of the valid split" in out
    assert main(["lens", str(explain_run), "--split", "valid", "--limit", "3"]) == 0
    assert "over the first 3 examples of the valid split" in capsys.readouterr().out


def test_post_norm_reads_each_norms_output(tmp_path):
    run = train(resolve_config_path("explain"), ["train.steps=10", "train.warmup=5", "train.eval_every=10", "data.n_valid=20",
                                                  "data.n_test=20", "model.norm=post"], out=tmp_path / "post", quiet=True)
    cfg, model, task = load_run(run, need_data=False, fused=False)
    points = lens.stream_points(model)
    layer = model.decoder.layers[0]
    assert [(p.module, p.side) for p in points] == [(layer.self_attn, "input"), (layer.norm1, "output"),
                                                    (layer.norm2, "output"), (layer.norm3, "output")]
    assert "post-norm" in "\n".join(lens.lens_text(model, task, cfg, "3 1 4"))


def test_reading_the_wrong_place_is_caught(explain_run, monkeypatch):
    cfg, model, task = load_run(explain_run, need_data=False, fused=False)
    right = lens.stream_points(model)
    # A lens that read each pre-norm's output (h = norm(y)) instead of the stream y it normalises.
    monkeypatch.setattr(lens, "stream_points", lambda model: [lens.Point(p.label, p.short, p.module, "output") for p in right])
    with pytest.raises(AssertionError, match="not the model's own output"):
        lens.lens_text(model, task, cfg, "3 1 4")


def test_usage_errors(explain_run, capsys):
    assert main(["lens", str(explain_run)]) == 2
    assert "give an input TEXT, or --split NAME" in capsys.readouterr().err
    assert main(["lens", str(explain_run), "--split", "nope"]) == 2
    assert "--split nope: no such split (choose from valid, test)" in capsys.readouterr().err
