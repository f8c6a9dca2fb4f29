"""The embeddings view: PCA finds planted directions, cosine neighbours, the text scatter, and
--change subtracts exactly the run's initial table."""

import numpy as np

from minitx.cli import main
from minitx.config import resolve_config_path
from minitx.build import build_model
from minitx.inference import load_run
from minitx.tools.embeddings import cosine, pca, scatter, table
from minitx.train import train


def test_pca_keeps_the_two_directions_of_largest_variance():
    rng = np.random.default_rng(0)
    directions, _ = np.linalg.qr(rng.standard_normal((16, 2)))  # (D, 2) orthonormal
    coords = rng.standard_normal((40, 2)) * [5.0, 2.0]  # (V, 2), variance 25 and 4
    W = coords @ directions.T + 0.01 * rng.standard_normal((40, 16)) + 3.0  # offset: PCA centres
    xy, share = pca(W)
    assert share.sum() > 0.999 and share[0] > share[1], share
    # The same points up to a sign per axis.
    for i in range(2):
        c = np.corrcoef(xy[:, i], coords[:, i])[0, 1]
        assert abs(c) > 0.999, (i, c)


def test_cosine_and_the_scatter():
    W = np.array([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0]])
    sim = cosine(W)
    assert np.allclose(np.diag(sim), 1) and sim[0, 1] > 0.99 and abs(sim[0, 2]) < 1e-12
    lines = scatter(["left", "right", "up"], np.array([[0.0, 0.0], [1.0, 0.0], [0.5, 1.0]]), width=30, height=5)
    assert lines[0].strip() == "up" and lines[-1].startswith("left") and lines[-1].endswith("right"), lines


def test_the_command_and_the_change_from_the_initial_table(tmp_path, capsys):
    overrides = ["train.steps=5", "train.warmup=0", "train.eval_every=5", "data.n_valid=10", "data.n_test=10",
                 "model.d_model=16", "model.d_ff=32"]
    run = train(resolve_config_path("tiny"), overrides, out=tmp_path / "run", quiet=True)
    capsys.readouterr()
    cfg, model, task = load_run(run, need_data=False)
    tokens, W = table(model, task, "source")
    _, W0 = table(build_model(cfg, task), task, "source")
    assert tokens == [str(i) for i in range(10)]  # the specials are left out
    assert 0 < np.abs(W - W0).max() < 0.1  # five steps moved the rows a little
    assert main(["embeddings", str(run), "--change", "--neighbours", "2", "--png", str(tmp_path / "e.png")]) == 0
    out = capsys.readouterr().out
    assert "what training added to the source embedding table, W - W_0, 10 tokens" in out, out
    assert "PCA: the two directions of largest variance keep" in out
    assert main(["embeddings", str(run), "--side", "target"]) == 0
    assert "the target embedding table W, 10 tokens" in capsys.readouterr().out
