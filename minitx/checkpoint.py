"""Saving and loading a run's state as one NumPy .npz file, without pickle.

The file holds plain arrays only, so `np.load(..., allow_pickle=False)` can read it and a
checkpoint can never run code when loaded:
    param/<name>    every model parameter
    optim/<key>     the optimizer's step count and moments
    step            training steps done
    rng/model, rng/data   the random generators' states, as JSON text
    vocab/src, vocab/tgt  the vocabularies, as arrays of strings
    config          the resolved config, as JSON text (to check compatibility on resume)
    loss_sum, loss_count  the running training loss since the last evaluation

We write to a temporary file in the same directory, flush and fsync it, then rename it over the
old checkpoint. A rename within a directory is atomic, so a crash or Ctrl-C during a save leaves
either the old checkpoint or the new one, never half of one.
"""

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from minitx.errors import UserError

CHECKPOINT = "checkpoint.npz"


def rng_state(rng):
    return np.array(json.dumps(rng.bit_generator.state))


def set_rng_state(rng, text):
    rng.bit_generator.state = json.loads(str(text))


def save(path, arrays):
    """Write arrays (name -> np.ndarray) to path atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path):
    """Read every array of a checkpoint into memory, or raise a one-line UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no checkpoint here (train first, or check the run directory)")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError):
        # NumPy reads a file that is not a zip archive as a pickle, which we refuse.
        reason = "truncated or corrupted: not a valid .npz archive"
    except (OSError, EOFError, KeyError, zipfile.LargeZipFile) as e:
        reason = f"corrupted: {e}"
    raise UserError(f"{path}: not a readable minitx checkpoint ({reason}); retrain, or restore it from a copy")
