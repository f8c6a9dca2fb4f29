"""Break-it mode: plant one well-known mistake in a plain minitx layer, in memory.

We take the source of the method the mistake lives in (inspect.getsource), replace the exact
line or lines the bug changes, compile the result with the method's own module globals, and bind
it to one layer object only. No file changes, no class changes: every other layer keeps the
right method. If minitx's source ever stops containing a line a bug replaces, planting fails
loudly rather than planting nothing.
"""

import inspect
import textwrap
import types
from dataclasses import dataclass
from pathlib import Path

import minitx

PACKAGE_ROOT = Path(minitx.__file__).resolve().parent.parent


def relative_source_file(func):
    """The file defining func, relative to the directory holding the minitx package."""
    path = Path(inspect.getsourcefile(func)).resolve()
    try:
        return str(path.relative_to(PACKAGE_ROOT))
    except ValueError:
        return str(path)


@dataclass
class Change:
    file: str
    line: int
    before: str
    after: str


def planted(func, edits, label):
    """func with each (old, new) of edits applied to its source; returns (function, [Change])."""
    lines, start = inspect.getsourcelines(func)
    source = textwrap.dedent("".join(lines))
    changes = []
    for old, new in edits:
        found = source.count(old)
        if found != 1:
            raise RuntimeError(f"{label}: expected {old!r} once in {func.__qualname__}, found it {found} times")
        index = next(i for i, line in enumerate(lines) if old in line)
        changes.append(Change(relative_source_file(func), start + index, lines[index].strip(), lines[index].replace(old, new).strip()))
        source = source.replace(old, new)
    namespace = dict(func.__globals__)
    exec(compile(source, f"<{label}: {func.__qualname__} with a planted mistake>", "exec"), namespace)
    return namespace[func.__name__], changes


def plant(layer, bug):
    """Replace bug.method on the object bug.target of `layer` (that object only); return the
    changes made, for display."""
    target = layer
    for attribute in filter(None, bug.target.split(".")):
        target = getattr(target, attribute)
    original = getattr(type(target), bug.method)
    function, changes = planted(original, bug.edits, bug.name)
    setattr(target, bug.method, types.MethodType(function, target))
    return changes
