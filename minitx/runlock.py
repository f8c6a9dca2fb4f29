"""One training process per run directory, and nothing written that cannot be.

Two processes training into one run directory (the same command typed twice, or two
`--resume`) would each log every step and overwrite each other's checkpoint. RunLock makes a
directory one process's for a whole session; a second one is refused with the first one's pid.
open_run_dir takes the lock and checks, before the first step, that everything the session
will write can be written, so that no training is lost to a failure at its first save.
"""

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from minitx import checkpoint
from minitx.errors import UserError

LOCK = ".lock"  # held by the process training in the directory; it holds that process's pid


def check_not_locked(run_dir):
    """Refuse, naming its pid, a run directory a process is training in now."""
    path = Path(run_dir) / LOCK
    if path.is_file() and not path.is_symlink():
        RunLock(run_dir).release()


def holds_a_run(run_dir):
    """Whether run_dir holds anything but a lock file (which a session that stopped before
    writing anything may leave behind)."""
    return run_dir.is_dir() and any(p.name != LOCK for p in run_dir.iterdir())


class RunLock:
    """The lock that makes a run directory one process's at a time, held from before the
    checkpoint is read until training ends, and released by release() (or by the process
    ending, however it ends: the operating system drops an flock with its last descriptor).

    We use fcntl.flock on RUN_DIR/.lock and write our pid into the file, so that a second
    process, refused the lock, can name the one that holds it. The file stays when we are done:
    were it deleted, a process that had opened it just before could still lock it, while a
    third locked a new file of the same name, and both would train. flock works on local file
    systems; on some network file systems it locks nothing."""

    def __init__(self, run_dir):
        path = Path(run_dir) / LOCK
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except OSError as e:
            raise UserError(f"{path}: cannot open the run's lock file ({e.strerror})") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self.fd, 64).decode(errors="replace").strip()
            os.close(self.fd)
            who = f"process {holder}" if holder.isdigit() else "another process"
            raise UserError(f"{run_dir}: {who} is training in this run directory (it holds {path}); wait for it "
                            f"to finish, or stop it, or train into another --out") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())

    def release(self):
        if self.fd is not None:
            os.ftruncate(self.fd, 0)  # no stale pid for the next reader
            os.close(self.fd)
            self.fd = None


def open_run_dir(run_dir, resume, files, appended, checkpoint_bytes):
    """Make run_dir ready for a training session and lock it (a RunLock, which the caller
    releases). Everything a session writes is checked here, before the first step: the
    directory can be created and written to, none of `files` (the names the session writes)
    is a symbolic link, `appended` (the one it appends to) is writable, and the disk has room
    for a checkpoint of checkpoint_bytes beside the one already there. Temporary files that a
    save killed outright left behind are removed."""
    files = (*files, LOCK)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        blocker = next((p for p in [run_dir, *run_dir.parents] if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is a file, not a directory" if blocker else e.strerror
        raise UserError(f"{run_dir}: cannot create the run directory ({why}); choose another --out") from None
    for name in files:
        path = run_dir / name
        if path.is_symlink():
            raise UserError(f"{path} is a symbolic link (to {os.readlink(path)}); minitx writes only inside the run "
                            f"directory, so replace the link with a copy of its file, or choose another --out")
    try:
        fd, probe = tempfile.mkstemp(dir=run_dir, prefix=LOCK, suffix=checkpoint.TEMP_SUFFIX)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"{run_dir}: cannot write files here ({e.strerror}); choose another --out") from None
    lock = RunLock(run_dir)
    try:
        if not resume and holds_a_run(run_dir):
            # Another process wrote a run here between our choosing the directory and locking it.
            raise UserError(f"{run_dir}: another run was just written here; start again, and this one will go to a numbered sibling")
        stale = checkpoint.stale_temporaries(run_dir, files)
        for path in stale:
            path.unlink()
        if stale:
            print(f"{run_dir}: removed {len(stale)} temporary file(s) left by a session killed during a save")
        check_room(run_dir, appended, checkpoint_bytes)
    except BaseException:
        lock.release()
        raise
    return lock


def check_room(run_dir, appended, checkpoint_bytes):
    """Refuse, before training, a run directory where a save would fail: a file `appended` we
    cannot append to, or a disk without room for the checkpoint. A save writes the new
    checkpoint beside the old one before replacing it, so it needs room for a whole checkpoint
    even when one is already there."""
    path = run_dir / appended
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{path}: not writable, and training appends to it; make it writable (chmod u+w {path})")
    free = shutil.disk_usage(run_dir).free
    if free < checkpoint_bytes:
        raise UserError(f"{run_dir}: the disk has {free / 1e6:.3g} MB free and a checkpoint of this run takes about "
                        f"{checkpoint_bytes / 1e6:.3g} MB; free some space or choose another --out")
