"""Layering rules, checked on the source with ``ast`` (never by importing or grepping).

1. ``actors/`` never imports ``trio_quorum``: the supervision library is generic.
2. A module that declares ``__sans_io__ = True`` at top level imports none of the
   IO modules (trio, socket, os, time, threading, trio_websocket), and every
   ``trio_quorum`` module it imports is itself sans-IO.  Imports guarded by
   ``if TYPE_CHECKING:`` are exempt (they never run).
3. The foundation cores are sans-IO, so rule 2 cannot pass vacuously; every
   module under ``protocol/``, ``core/`` and ``quorum/`` is sans-IO (the folder
   names the layer).
4. No import cycle anywhere in ``trio_quorum/`` or ``actors/``: every import
   counts, function-level and ``TYPE_CHECKING`` ones included (a cycle hidden
   from the interpreter is still two modules that cannot be understood apart).
5. No module over ``MAX_MODULE_LINES`` lines.

``discover_sans_io`` is shared with ``noxfile.py``'s typecheck session (which
re-implements the same few lines, since nox must not import the tests).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "trio_quorum"
FORBIDDEN = frozenset({"trio", "socket", "os", "time", "threading", "trio_websocket"})
FOUNDATION = frozenset({"protocol.jute", "protocol.consts", "protocol.data", "protocol.txn", "core.acl"})
#: Folders whose every module is a sans-IO core (the architecture's layers, docs/architecture.md).
SANS_IO_FOLDERS = ("protocol", "core", "quorum")
#: No module grows past this many lines (split it by reason to change).
MAX_MODULE_LINES = 800


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def declares_sans_io(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "__sans_io__" for t in targets):
            return isinstance(node.value, ast.Constant) and node.value.value is True
    return False


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(
    tree: ast.Module, this_module: str, is_package: bool, known: frozenset[str] = frozenset(),
    *, type_checking: bool = False,
) -> list[tuple[int, str]]:
    """(line, absolute dotted module) of every import that can run.

    ``from pkg import name`` resolves to ``pkg.name`` when that is a module in
    ``known`` (a submodule), else to ``pkg`` (the name is defined there).
    Relative imports are made absolute against ``this_module``.
    """
    found: list[tuple[int, str]] = []
    package = this_module if is_package else this_module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test) and not type_checking:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if sub in known else base))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def parse_package() -> dict[str, tuple[pathlib.Path, ast.Module]]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        modules[module_name(path)] = (path, ast.parse(path.read_text(), str(path)))
    return modules


def discover_sans_io() -> set[str]:
    """Dotted names of the trio_quorum modules that declare ``__sans_io__ = True``."""
    return {name for name, (_, tree) in parse_package().items() if declares_sans_io(tree)}


def test_actors_never_imports_trio_quorum():
    paths = sorted((ROOT / "actors").rglob("*.py"))
    assert len(paths) >= 5
    offenders = []
    for path in paths:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [
                f"{path}:{node.lineno} {n}" for n in names if n.split(".")[0] == "trio_quorum"
            ]
    assert offenders == []


def test_the_foundation_is_sans_io():
    found = {name.partition(".")[2] for name in discover_sans_io()}
    assert FOUNDATION <= found, f"missing sans-IO declarations: {sorted(FOUNDATION - found)}"


def find_problems(modules: dict[str, tuple[pathlib.Path, ast.Module]]) -> list[str]:
    """Every rule-2 violation among ``modules`` (name -> (path, parsed source))."""
    known = frozenset(modules)
    sans_io = {name for name, (_, tree) in modules.items() if declares_sans_io(tree)}
    problems = []
    for name in sorted(sans_io):
        path, tree = modules[name]
        for line, target in runtime_imports(tree, name, path.name == "__init__.py", known):
            where = f"{name}:{line}"
            if target.split(".")[0] in FORBIDDEN:
                problems.append(f"{where} imports {target} (IO)")
            elif target in known and target not in sans_io:
                problems.append(f"{where} imports {target}, which is not sans-IO")
    return problems


def test_sans_io_modules_do_no_io():
    modules = parse_package()
    assert len([n for n, (_, t) in modules.items() if declares_sans_io(t)]) >= len(FOUNDATION)
    problems = find_problems(modules)
    assert problems == [], "\n".join(problems)


def test_find_problems_reports_violations():
    def mod(name, source):
        return name, (pathlib.Path(name.replace(".", "/") + ".py"), ast.parse(source))

    modules = dict(
        [
            mod("trio_quorum.core", "from . import driver, pure\nimport time\n__sans_io__ = True"),
            mod("trio_quorum.pure", "__sans_io__ = True\nfrom .core import x"),
            mod("trio_quorum.driver", "import trio"),
        ]
    )
    assert find_problems(modules) == [
        "trio_quorum.core:1 imports trio_quorum.driver, which is not sans-IO",
        "trio_quorum.core:2 imports time (IO)",
    ]


@pytest.mark.parametrize(
    "source, bad",
    [
        ("import os", True),
        ("import os.path", True),
        ("from time import monotonic", True),
        ("def f():\n    import trio", True),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import trio", False),
        (
            "import typing\nif typing.TYPE_CHECKING:\n    import trio\nelse:\n    import socket",
            True,
        ),
        ("import struct\nfrom collections import deque", False),
    ],
)
def test_the_checker_itself(source, bad):
    imported = {
        t.split(".")[0] for _, t in runtime_imports(ast.parse(source), "trio_quorum.x", False)
    }
    assert bool(imported & FORBIDDEN) is bad
    assert declares_sans_io(ast.parse("__sans_io__ = True"))
    assert not declares_sans_io(ast.parse("__sans_io__ = False"))
    assert not declares_sans_io(ast.parse('"""__sans_io__ = True"""'))


def test_relative_imports_resolve_to_siblings():
    tree = ast.parse(
        "from . import api\nfrom ..data import Id\nfrom .. import jute\nimport trio.abc"
    )
    known = frozenset({"trio_quorum.persistence.api", "trio_quorum.jute", "trio_quorum.data"})
    got = {t for _, t in runtime_imports(tree, "trio_quorum.persistence.snapshot", False, known)}
    assert got == {
        "trio_quorum.persistence.api",
        "trio_quorum.data",
        "trio_quorum.jute",
        "trio.abc",
    }


def test_layer_folders_hold_only_sans_io_cores():
    modules = parse_package()
    missing = [
        name for name, (path, tree) in modules.items()
        if name.split(".")[1:2] and name.split(".")[1] in SANS_IO_FOLDERS
        and path.name != "__init__.py" and not declares_sans_io(tree)
    ]
    assert missing == [], f"modules in a sans-IO folder without __sans_io__ = True: {missing}"


def import_graph(top: str) -> dict[str, set[str]]:
    """Module -> the modules of package ``top`` it imports (``TYPE_CHECKING`` imports too)."""
    base = ROOT / top
    modules = {}
    for path in sorted(base.rglob("*.py")):
        modules[module_name(path)] = (path, ast.parse(path.read_text(), str(path)))
    known = frozenset(modules)
    graph: dict[str, set[str]] = {}
    for name, (path, tree) in modules.items():
        edges = set()
        for _, target in runtime_imports(tree, name, path.name == "__init__.py", known,
                                         type_checking=True):
            # importing a.b.c runs a and a.b first: the nearest known module is the edge
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.add(target)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted.

    A package importing its own submodules (``__init__`` re-exports) and a
    submodule importing its package are one cycle Python resolves by order;
    those edges (parent package <-> child) are not counted.
    """
    def related(a: str, b: str) -> bool:
        return a.startswith(b + ".") or b.startswith(a + ".")

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if related(v, w):
                continue
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


@pytest.mark.parametrize("top", ["trio_quorum", "actors"])
def test_no_import_cycles(top):
    graph = import_graph(top)
    assert len(graph) >= 5
    assert find_cycles(graph) == []


def test_find_cycles_reports_a_cycle():
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}, "p": {"p.a"}, "p.e": {"p"}}
    assert find_cycles(graph) == [["p.a", "p.b", "p.c"]]


@pytest.mark.parametrize("top", ["trio_quorum", "actors"])
def test_no_module_is_too_long(top):
    long = {
        str(p.relative_to(ROOT)): n
        for p in sorted((ROOT / top).rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"split these by reason to change: {long}"
