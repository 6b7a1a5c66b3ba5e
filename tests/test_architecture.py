"""The packages form a pipeline: every import between two packages points down it.

data -> features -> pseudo -> model -> train -> predict -> track -> evaluation -> export -> report -> pipeline
-> cli. ``errors`` is below everything; ``distributed`` and ``jobs`` (process groups, the per-video job runner)
sit just above ``features``. An import back up the pipeline, or a cycle between two packages, fails here with
the importing module and what it imports, so the joint gets a home of its own instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS = [
    ["errors"],
    ["data"],
    ["features"],
    ["distributed", "jobs"],
    ["pseudo"],
    ["model"],
    ["train"],
    ["predict"],
    ["track"],
    ["evaluation"],
    ["export"],
    ["report"],
    ["pipeline"],
    ["cli", "__main__"],
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}

# Imports that still point up the pipeline (each to be given a home of its own; the list only shrinks).
KNOWN: set[tuple[str, str]] = set()


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports() -> list[tuple[str, str]]:
    """(importing module, imported uvis module) for every import in src/uvis, lazy ones included."""
    found = []
    for path in sorted((SRC / "uvis").rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        package_parts = rel.parts[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = list(package_parts[: len(package_parts) - node.level + 1])
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                targets = [target]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            found += [(module, t) for t in targets if t == "uvis" or t.startswith("uvis.")]
    return found


def test_every_package_has_a_layer():
    packages = {_package(m) for m, _ in _imports()} | {_package(t) for _, t in _imports()}
    packages.discard("")
    assert packages <= set(RANK), f"give these packages a place in LAYERS: {sorted(packages - set(RANK))}"


def test_imports_point_down_the_pipeline():
    upward = []
    for module, target in _imports():
        src, dst = _package(module), _package(target)
        if not src or not dst or src == dst:
            continue  # the root package (lazy exports, __version__) and imports inside a package
        if RANK[dst] > RANK[src] and (module, target) not in KNOWN:
            upward.append(f"{module} imports {target} ({dst} comes after {src} in the pipeline)")
    assert not upward, "imports back up the pipeline:\n" + "\n".join(upward)


def test_no_cycles_between_packages():
    edges: dict[str, set[str]] = {}
    for module, target in _imports():
        src, dst = _package(module), _package(target)
        if src and dst and src != dst and (module, target) not in KNOWN:
            edges.setdefault(src, set()).add(dst)
    cycles = sorted(f"{a} <-> {b}" for a in edges for b in edges[a] if a < b and a in edges.get(b, ()))
    assert not cycles, f"packages importing each other: {cycles}"


def test_known_exceptions_are_still_real():
    """An entry of KNOWN that no longer occurs is removed, so the list only shrinks."""
    stale = KNOWN - set(_imports())
    assert not stale, f"remove from KNOWN: {sorted(stale)}"
