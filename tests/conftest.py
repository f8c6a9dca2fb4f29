import sys
from pathlib import Path

# Let tests import their shared helpers (tests/helpers.py) by name.
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def explain_run(tmp_path_factory):
    """configs/explain.yaml (D = 8, H = 2, one layer each side) trained for 40 steps: a real run,
    small and quick, for the tools that look inside one (explain --backward, lens, view)."""
    from minitx.config import resolve_config_path
    from minitx.train import train

    fast = ["train.steps=40", "train.warmup=5", "train.eval_every=40", "data.n_valid=20", "data.n_test=20"]
    return train(resolve_config_path("explain"), fast, out=tmp_path_factory.mktemp("explain-run") / "run", quiet=True)


@pytest.fixture(scope="session")
def catalogue():
    """The planted-slips catalogue, planted as `gradcheck --mutants --sample 8` plants it:
    (clean rows per variant, results, printed text, ok). Its clean rows are the whole-model
    check of every variant at trained-looking values, so the tests of that check read them here
    instead of computing them again."""
    from minitx import gradcheck, mutants

    arch, eps = gradcheck.config_architecture("tiny")
    clean, results = mutants.run(mutants.SLIPS + mutants.HARMLESS, arch, eps, gradcheck.SAMPLE, gradcheck.VARIANTS)
    text, ok = mutants.describe(clean, results, "tiny", gradcheck.SAMPLE, gradcheck.VARIANTS)
    return clean, results, text, ok
