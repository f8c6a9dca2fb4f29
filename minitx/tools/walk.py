"""A walk through one head, as data: steps of prose, quoted code, labelled arrays and checks.

`minitx explain` (forward, and backward with --backward) builds a Walk; text_lines renders it
for the terminal and as_json for the page `minitx view` writes, so both show the same numbers
(the very strings fmt makes) and the same code lines.

    Walk(header=[lines], steps=[Step(title, code, parts), ...])

A step's parts come in reading order, each one of:
    str     a line of prose, indented as the terminal shows it
    Table   an array with a label for every row and column
    Check   a line saying what we compared with the model, and how closely it agreed

Code is quoted from minitx's own source at run time (code_block), found by the text of the
comment above it, never by line number: the walk shows the lines the model runs, and a change
to them that leaves the walk behind stops it with an error naming the line it looked for.
"""

import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minitx.nn.attention import MASKED

MAX_COLS = 8  # columns shown per matrix: eight 8-character numbers fit a 100-column terminal
MAX_ROWS = 12  # tokens shown per matrix


@dataclass
class Table:
    """values (R, C), shown with row_labels down the left and col_labels across the top, in
    units of `unit` (a gradient of 3e-5 shows as 3.000 in units of 1e-05; the prose above the
    table says so)."""

    values: np.ndarray
    row_labels: list
    col_labels: list
    unit: float = 1.0

    def shown(self):
        """The part we print, at most MAX_ROWS x MAX_COLS: (rows, columns, note or None)."""
        R, C = self.values.shape
        r, c = min(R, MAX_ROWS), min(C, MAX_COLS)
        note = f"(showing {r} of {R} rows and {c} of {C} columns)" if r < R or c < C else None
        return r, c, note


@dataclass
class Check:
    text: str  # "check: ...", without indentation


@dataclass
class Step:
    title: str  # "3. scores = q @ k^T: ..."
    code: list = field(default_factory=list)  # quoted source lines, the "# forward: ..." comment first
    parts: list = field(default_factory=list)  # str, Table or Check, in reading order
    where: str = ""  # the function the code is quoted from, "ScaledDotProductAttention.backward"


@dataclass
class Walk:
    direction: str  # "forward" or "backward"
    header: list
    steps: list


def unit_of(a):
    """The power of ten to show array `a` in: 1 when its largest entry is 0.1 or more, else the
    power that brings that entry into [1, 10), so three decimals still show four digits."""
    largest = float(np.abs(a).max())
    if largest >= 0.1 or largest == 0:
        return 1.0
    return 10.0 ** math.floor(math.log10(largest))


def in_units(unit):
    """The words that go with unit_of's answer: "" or ", in units of 1e-05"."""
    return "" if unit == 1.0 else f", in units of {unit:.0e}"


def fmt(value, width=8):
    """One number, right-aligned in `width` characters; a masked score is shown as -1e9."""
    return f"{'-1e9':>{width}}" if value <= MASKED / 2 else f"{value:{width}.3f}"


def matrix(M, row_labels, col_labels, indent="    "):
    """M (R, C) -> text lines: column labels on top, row labels on the left, at most
    MAX_ROWS x MAX_COLS numbers, with a note when we cut."""
    r, c, note = Table(M, row_labels, col_labels).shown()
    left = max(len(label) for label in row_labels[:r]) + 1
    width = max(8, 1 + max(len(label) for label in col_labels[:c]))  # a space before every label
    lines = [indent + " " * left + "".join(f"{label:>{width}}" for label in col_labels[:c])]
    for label, row in zip(row_labels[:r], M[:r]):
        lines.append(indent + f"{label:>{left - 1}} " + "".join(fmt(x, width) for x in row[:c]))
    if note:
        lines.append(indent + note)
    return lines


def text_lines(walk):
    """The walk as the terminal shows it: the header, then each step after a blank line."""
    lines = list(walk.header)
    for step in walk.steps:
        lines += ["", step.title]
        if step.code:
            lines += [f"  {step.where} ({source_file(step.where)}):"] + ["    " + line for line in step.code]
        for part in step.parts:
            if isinstance(part, Table):
                lines += matrix(part.values / part.unit, part.row_labels, part.col_labels)
            elif isinstance(part, Check):
                lines.append("    " + part.text)
            else:
                lines.append(part)
    return lines


def as_json(walk):
    """The walk for the page: plain lists and strings, every number already formatted by fmt
    (with its float beside it, for the colour), cut as the terminal cuts it."""
    def part(p):
        if isinstance(p, Table):
            r, c, note = p.shown()
            values = np.asarray(p.values[:r, :c], dtype=np.float64) / p.unit
            return {"kind": "table", "rows": list(p.row_labels[:r]), "cols": list(p.col_labels[:c]),
                    "cells": [[fmt(x).strip() for x in row] for row in values],
                    "values": [[float(x) for x in row] for row in values], "note": note}
        if isinstance(p, Check):
            return {"kind": "check", "text": p.text}
        return {"kind": "text", "text": p.strip()}

    return {"direction": walk.direction, "header": list(walk.header),
            "steps": [{"title": s.title, "where": s.where, "file": source_file(s.where) if s.where else "",
                       "code": list(s.code), "parts": [part(p) for p in s.parts]} for s in walk.steps]}


# The functions a walk quotes, by the name it shows.
def _quoted_functions():
    from minitx.nn.attention import MultiHeadAttention, ScaledDotProductAttention

    return {"MultiHeadAttention.backward": MultiHeadAttention.backward,
            "ScaledDotProductAttention.backward": ScaledDotProductAttention.backward}


def source_file(where):
    """"ScaledDotProductAttention.backward" -> "minitx/nn/attention.py", the file it is in."""
    path = Path(inspect.getsourcefile(_quoted_functions()[where])).resolve()
    package = Path(__file__).resolve().parents[2]
    return str(path.relative_to(package)) if path.is_relative_to(package) else str(path)


def code_block(where, comment):
    """The lines of function `where` that undo one forward line: the comment line containing
    `comment` ("# forward: out = P @ v") and the code lines under it, up to the next comment
    or blank line or `return`, as they are in the source now (dedented)."""
    lines = inspect.getsource(_quoted_functions()[where]).splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("#") and comment in line:
            indent = len(line) - len(line.lstrip())  # the comment's; code under an `if` keeps its extra
            block = [line[indent:]]
            for code in lines[i + 1:]:
                if not code.strip() or code.strip().startswith(("#", "return")):
                    break
                block.append(code[indent:])
            return block
    raise AssertionError(f"{where} has no comment containing {comment!r} any more: "
                         f"minitx/tools/explain_backward.py must follow the code it quotes")
