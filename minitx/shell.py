"""Commands we print for the user to paste into the shell they ran minitx from.

A bare `python -m minitx ...` works only where the virtual environment minitx is installed in
is activated; after `make train` in a fresh shell it is not, and `python` is another Python,
without minitx. So every command we print names the Python that is running us.
"""

import shlex
import shutil
import sys
from pathlib import Path


def shown(path):
    """A path as short as it can be and still work from the current directory."""
    path = Path(path).absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def minitx_command():
    """How to run minitx from the user's shell: `python -m minitx` where that shell's `python`
    comes from the folder of the Python running us (its virtual environment is activated), else
    this Python named by its path (`.venv/bin/python -m minitx` after `make train`). We compare
    folders as they are, without following links: a virtual environment's python is a link to
    the system's, which does not have minitx."""
    on_path = shutil.which("python")
    if on_path and Path(on_path).absolute().parent == Path(sys.executable).absolute().parent:
        return "python -m minitx"
    return f"{shlex.quote(shown(sys.executable))} -m minitx"
