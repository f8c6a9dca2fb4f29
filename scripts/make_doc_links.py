"""Point every link from the docs into minitx's code at the lines it names.

A link into the code says in its text what it points at, and this script finds that by name and
writes the line numbers into the link's #L anchor, so moving code never leaves a link stale:

    [`Class.method`](../minitx/nn/x.py#L40)        the line of `def method` inside `class Class`
    [`function`], [`Class`], [`CONSTANT`]          the line of its def, class or assignment
    [`gradcheck.rel_error`](../minitx/gradcheck.py#L48)   a module-level name, named with its module
    [`dq = dscores @ k / math.sqrt(K)`](...#L90)   the one line of code (not a comment) that
                                                   starts with that text
    ...#L54-L68                                    a link written as a range gets the whole
                                                   definition's range

A link whose name is gone, or whose quoted line is no longer in its file exactly once, is an
error naming the doc's line. Links to a whole file (no anchor) are left alone.

    python scripts/make_doc_links.py           rewrite the anchors in README.md and docs/*.md
    python scripts/make_doc_links.py --check   change nothing; exit 1 if any anchor is stale

tests/test_doc_links.py checks that the docs are as this script leaves them, and that moving a
line of code and rerunning it moves the links with it.
"""

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE_LINK = re.compile(r"\[([^\]]+)\]\(((?:\.\./)*)(minitx/[^)#\s]+\.py)#L(\d+)(?:-L(\d+))?\)")
IDENTIFIER = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)?$")


def definitions(path):
    """{name: (first line, last line)} for every top-level function, class and assignment of a
    Python file, and every method as "Class.method"."""
    tree = ast.parse(path.read_text())
    spans = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            spans[node.name] = (node.lineno, node.end_lineno)
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef):
                        spans[f"{node.name}.{item.name}"] = (item.lineno, item.end_lineno)
                    elif isinstance(item, ast.Assign):
                        for target in item.targets:
                            if isinstance(target, ast.Name):
                                spans[f"{node.name}.{target.id}"] = (item.lineno, item.end_lineno)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    spans[target.id] = (node.lineno, node.end_lineno)
    return spans


def code_line(path, text, shown):
    """The line number of the one line of code in `path` (`shown` in messages) that starts
    with `text`, or an error."""
    hits = [n for n, line in enumerate(path.read_text().splitlines(), start=1)
            if line.strip().startswith(text) and not line.strip().startswith("#")]
    if len(hits) != 1:
        raise LookupError(f"`{text}` starts {len(hits)} lines of code in {shown}, not 1")
    return hits[0], hits[0]


def locate(path, name, shown):
    """(first, last) line of what `name` names in `path`: a definition or a quoted line."""
    if not IDENTIFIER.match(name):
        return code_line(path, name, shown)
    spans = definitions(path)
    owner, _, leaf = name.rpartition(".")
    for key in (name, leaf if owner == path.stem else None):
        if key in spans:
            return spans[key]
    raise LookupError(f"no `{name}` defined in {shown}")


def relink(doc_text, doc_path):
    """doc_text with every code link's anchor pointing at what its text names. Raises
    LookupError naming the doc's line for a link whose target is gone."""
    out = []
    for number, line in enumerate(doc_text.splitlines(keepends=True), start=1):

        def anchor(match):
            text, up, target, _, last = match.groups()  # up: the "../" that lead to the root
            names = re.findall(r"`([^`]+)`", text)
            if not names:
                raise LookupError(f"{doc_path.name}:{number}: [{text}] names nothing in backquotes to point at")
            path = (doc_path.parent / up / target).resolve()
            try:
                first, end = locate(path, names[0], target)
            except LookupError as e:
                raise LookupError(f"{doc_path.name}:{number}: {e}") from None
            span = f"#L{first}-L{end}" if last else f"#L{first}"
            return f"[{text}]({up}{target}{span})"

        out.append(CODE_LINK.sub(anchor, line))
    return "".join(out)


def docs():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if an anchor is stale")
    args = parser.parse_args(argv)
    relinked = {}
    for doc in docs():
        try:
            relinked[doc] = relink(doc.read_text(), doc)
        except LookupError as e:
            print(f"make_doc_links: {e}", file=sys.stderr)
            return 2  # nothing written: every doc is fixed or none
    stale = [doc.relative_to(ROOT) for doc, text in relinked.items() if text != doc.read_text()]
    if not args.check:
        for doc in stale:
            (ROOT / doc).write_text(relinked[ROOT / doc])
    verb = "stale links in" if args.check else "updated"
    print(f"{verb}: {', '.join(map(str, stale))}" if stale else "every code link points at what it names")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
