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
either the old checkpoint or the new one, never half of one; a full disk leaves the old one and
says so in one line. A run's config.yaml and metrics.jsonl are rewritten the same way.
"""

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from minitx.errors import UserError

CHECKPOINT = "checkpoint.npz"
TEMP_SUFFIX = ".tmp"


class WriteFailed(UserError):
    """A file we could not write (a full disk, a read-only file system); what was there is
    unchanged. `reason` is the system's word for it, e.g. "No space left on device"."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: could not be written ({reason}); nothing there was changed")
        self.path, self.reason = path, reason


def rng_state(rng):
    return np.array(json.dumps(rng.bit_generator.state))


def set_rng_state(rng, text):
    rng.bit_generator.state = json.loads(str(text))


def save(path, arrays):
    """Write arrays (name -> np.ndarray) to path atomically (write_atomically)."""
    write_atomically(path, lambda f: np.savez(f, **arrays))


def write_atomically(path, write):
    """Call write(f) on a temporary file beside `path`, then rename it over `path`.

    The rename replaces a symbolic link at `path` instead of writing through it, so nothing
    outside the run directory is ever written. The file gets the mode a plain open() would give
    it (0666 less the umask), as config.yaml has, rather than mkstemp's private 0600. A failure
    (a full disk, a read-only file system) removes the temporary file, leaves whatever was at
    `path` as it was, and is a one-line UserError; any other stop (Ctrl-C, a second SIGTERM)
    also removes the temporary file before it goes on."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=TEMP_SUFFIX)
    except OSError as e:
        raise WriteFailed(path, e.strerror or str(e)) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise WriteFailed(path, e.strerror or str(e)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask():
    """The process's umask. Reading it means setting it, so we set it straight back."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def stale_temporaries(directory, names):
    """The temporary files write_atomically left in `directory` while writing one of `names`:
    only a process killed outright (SIGKILL, a power cut) in the middle of a save leaves one."""
    found = {p for name in names for p in Path(directory).glob(f"{name}*{TEMP_SUFFIX}")}
    return sorted(p for p in found if p.is_file() and not p.is_symlink())


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
