"""Break-it mode: plant one well-known mistake in a plain minitx layer, in memory.

We take the source of the method the mistake lives in (inspect.getsource), replace the line or
lines the bug changes, found by what they say, compile the result with the method's own module
globals, and bind it to one layer object only. No file changes, no class changes: every other
layer keeps the right method. If minitx's source ever stops containing a line a bug replaces,
planting fails loudly, naming the plant to update, rather than planting nothing.
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


@dataclass(frozen=True)
class Edit:
    """One planted change: the text `old`, which must occur exactly once in `function`'s source
    (a line, or part of one), becomes `new`. We find lines by what they say, not by number, so
    a plant survives edits elsewhere in the file."""

    function: object
    old: str
    new: str

    def problem(self, label):
        """None while the plant still applies; else one line saying which plant to update."""
        found = inspect.getsource(self.function).count(self.old)
        if found == 1:
            return None
        return (f"{label}: the line it changes, `{self.old}`, is {'gone from' if not found else f'{found} times in'} "
                f"{self.function.__qualname__} ({relative_source_file(self.function)}); update the plant to today's code")


@dataclass
class Change:
    file: str
    line: int
    before: str
    after: str


def planted(func, edits, label):
    """func with each Edit applied to its source; returns (function, [Change])."""
    lines, start = inspect.getsourcelines(func)
    source = textwrap.dedent("".join(lines))
    changes = []
    for edit in edits:
        problem = edit.problem(label)
        if problem:
            raise RuntimeError(problem)
        index = next(i for i, line in enumerate(lines) if edit.old in line)
        changes.append(Change(relative_source_file(func), start + index, lines[index].strip(), lines[index].replace(edit.old, edit.new).strip()))
        source = source.replace(edit.old, edit.new)
    namespace = dict(func.__globals__)
    exec(compile(source, f"<{label}: {func.__qualname__} with a planted mistake>", "exec"), namespace)
    return namespace[func.__name__], changes


def plant(layer, edits, label, target=""):
    """Plant `edits` (Edit objects) on the object at the dotted attribute path `target` of
    `layer` (that object only): each method of its class that an edit names is replaced by a
    copy with the edits applied. Edits naming another class's method are skipped, so one plant
    can cover, say, a pre-norm and a post-norm layer. Returns the changes made, for display."""
    obj = layer
    for attribute in filter(None, target.split(".")):
        obj = getattr(obj, attribute)
    changes = []
    for name, original, mine in methods_to_plant(obj, edits):
        function, made = planted(original, mine, label)
        setattr(obj, name, types.MethodType(function, obj))
        changes += made
    if not changes:
        raise RuntimeError(f"{label}: none of its edits is in a method of {type(obj).__qualname__}")
    return changes


def methods_to_plant(obj, edits):
    """(method name, the class's function, its edits) for each method of obj's class that an
    edit names: the edits whose function is that very method, in their order."""
    for name in dict.fromkeys(e.function.__name__ for e in edits):
        original = getattr(type(obj), name, None)
        mine = tuple(e for e in edits if e.function is original)
        if mine:
            yield name, original, mine
