"""Imports point down (STYLE.md point 11, issue 17 item 4).

Every module's imports are read with `ast`, including imports inside functions, under `if TYPE_CHECKING:`
and `importlib.import_module("keypaint....")` with a literal name, and folded into a graph between the
top-level packages of `keypaint`. The layers, lowest first:

    errors, versions -> keywords, models, prompts -> core -> features -> front ends (cli, server)
    -> the package facade

A package may import its own layer or any lower one; the package graph has no cycle. The edges that still
break this are listed in `KNOWN`, each with the work that removes it; a new one fails, and so does an entry
that no longer occurs (delete it then, so the list only shrinks).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import keypaint

SRC = Path(keypaint.__file__).parent

LAYER = {
    "errors": 0,
    "versions": 0,
    "keywords": 1,  # syntax, vocabulary, meaning: imported by models (a model has its vocabulary) and prompts
    "models": 1,
    "prompts": 1,
    "core": 2,
    "provenance": 2,  # the content policy and the AI marks that core applies to every picture
    **dict.fromkeys(["bench", "builtin", "data", "explain", "finetune", "outputs", "scorer", "training"], 3),
    "cli": 4,
    "server": 4,
    "cluster": 4,  # keypaint serve --ray and generate --ray: the server and the CLI's work on Ray
    "api": 5,  # keypaint.Painter: the core Painter handed the built-in model, scorer and writer
    "__init__": 5,  # keypaint/__init__.py: the public names, imported on first use
    "__main__": 5,
}

# core never imports these, whatever the layers say.
CORE_NEVER = {"scorer", "finetune", "builtin", "outputs", "server", "cli"}

# (importing file, imported package): the known edges that break the rule, and the work that removes each.
KNOWN: dict[tuple[str, str], str] = {}  # none left: every edge points down


def _module_name(path: Path) -> list[str]:
    parts = ["keypaint", *path.relative_to(SRC).with_suffix("").parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imported(path: Path) -> set[str]:
    """The absolute names of the keypaint modules that `path` imports, anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names.add(".".join([*base, node.module] if node.module else base))
            else:
                names.add(node.module or "")
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return {name for name in names if name.startswith("keypaint.")}


def _package(path: Path) -> str:
    first = path.relative_to(SRC).parts[0]
    return first.removesuffix(".py")


def package_edges() -> dict[tuple[str, str], str]:
    """(importing file, imported package) for every import that leaves its own package."""
    edges: dict[tuple[str, str], str] = {}
    for path in sorted(SRC.rglob("*.py")):
        source = _package(path)
        for name in _imported(path):
            target = name.split(".")[1]
            if target != source:
                edges[(path.relative_to(SRC).as_posix(), target)] = source
    return edges


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle in `graph`, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_every_package_has_a_layer() -> None:
    packages = {_package(path) for path in SRC.rglob("*.py")}
    assert packages <= set(LAYER), f"give these a layer in tests/test_layers.py: {packages - set(LAYER)}"


def test_imports_point_down() -> None:
    upward = {
        (file, target): source
        for (file, target), source in package_edges().items()
        if LAYER[target] > LAYER[source] or (source == "core" and target in CORE_NEVER)
    }
    new = sorted(set(upward) - set(KNOWN))
    assert not new, f"imports that point up (hand the lower layer what it needs instead): {new}"


def test_no_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for (file, target), source in package_edges().items():
        if (file, target) not in KNOWN:
            graph[source].add(target)
    assert _cycle(graph) is None, f"a cycle between packages: {' -> '.join(_cycle(graph) or [])}"


def test_known_edges_still_exist() -> None:
    gone = sorted(set(KNOWN) - set(package_edges()))
    assert not gone, f"these known edges are gone: delete them from KNOWN in tests/test_layers.py: {gone}"
