"""minitx's modules import each other in one direction only: no module reaches, directly or
through others, back to itself. A loop works until someone moves an import to the top of a
file, and it hides which module builds on which.

We read every `import` and `from ... import` in minitx's files, including those inside
functions (a lazy import is still a dependency), and look for a cycle in that graph."""

import ast
from pathlib import Path

import minitx

PACKAGE_DIR = Path(minitx.__file__).parent


def module_name(path, package_dir, package):
    """minitx/nn/attention.py -> "minitx.nn.attention"; minitx/nn/__init__.py -> "minitx.nn"."""
    parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package_dir, package):
    """{module: set of the package's modules it imports}, read from the source of every file."""
    files = {module_name(p, package_dir, package): p for p in sorted(package_dir.rglob("*.py"))}
    graph = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # from . import x, from .y import z
                    anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets.add(base)
                # `from minitx import checkpoint` imports the module minitx.checkpoint.
                targets.update(f"{base}.{alias.name}" for alias in node.names)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def find_cycle(graph):
    """One cycle as a list of modules [a, b, ..., a], or None if the graph has none."""
    done, path = set(), []

    def visit(node):
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(graph[node]):
            cycle = visit(target)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_no_module_of_minitx_imports_itself_through_others():
    graph = import_graph(PACKAGE_DIR, "minitx")
    assert "minitx.train" in graph and "minitx.data" in graph["minitx.train"], sorted(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_check_finds_a_cycle_planted_in_files(tmp_path):
    # A top-level import one way and a lazy one, inside a function, back.
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("def f():\n    from pkg.a import g\n    return g\n")
    (package / "c.py").write_text("from . import a\n")
    graph = import_graph(package, "pkg")
    assert graph == {"pkg": set(), "pkg.a": {"pkg", "pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": {"pkg", "pkg.a"}}, graph
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]


def test_the_check_finds_a_cycle_planted_in_minitx():
    # As if the run directory's module imported the training loop, which builds on it.
    graph = import_graph(PACKAGE_DIR, "minitx")
    graph["minitx.rundir"].add("minitx.train")
    cycle = find_cycle(graph)
    assert cycle is not None and "minitx.train" in cycle and "minitx.rundir" in cycle, cycle
