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
