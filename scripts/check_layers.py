"""The import-layer check (``make lint``): arrows point down, no module imports in a circle.

Every import of a ``ragcast`` module counts, at module level, inside functions and under
``TYPE_CHECKING`` alike: a function-level import hides a circle from Python, not from a
reader. A room is a top-level package or module of ``ragcast``; each room stands on a
floor (the map below and in ``docs/architecture.md``). An import from a lower floor to a
higher one is an arrow back up, allowed only when :data:`ALLOWED_UP` names it with its
reason. A circle between modules is always an error.

    python scripts/check_layers.py [SRC_DIR]     # exit 1 with the offending imports named
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: floor of every room, top (faces) to bottom (plain values and types)
FLOORS: dict[str, int] = {
    **dict.fromkeys(("api", "cli", "cli_progress", "integrations", "web", "client"), 7),
    "runner": 6,
    **dict.fromkeys(("pipeline", "sources", "exports", "notify"), 5),
    "retrieval": 4,
    "context": 3,
    "providers": 2,
    **dict.fromkeys(
        (
            "store",
            "settings",
            "spec",
            "errors",
            "types",
            "tokens",
            "text",
            "retry_after",
            "auth",
            "tickets",
        ),
        1,
    ),
    "__init__": 1,
}
FLOOR_NAMES = {7: "faces", 6: "runner", 5: "work", 4: "retrieval", 3: "context", 2: "providers"}

#: (importing room, imported room) → why the arrow may run back up
ALLOWED_UP: dict[tuple[str, str], str] = {}

#: the most arrows back up the map may ever hold
MAX_UP = 6


@dataclass(frozen=True)
class Import:
    """One import: the importing module, the imported module and where."""

    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


def modules(src: Path) -> dict[str, Path]:
    """Every module of the ``ragcast`` package under ``src`` by dotted name."""
    found: dict[str, Path] = {}
    for path in sorted((src / "ragcast").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(src: Path) -> Iterator[Import]:
    """Every import of a ragcast module by a ragcast module, resolved to a module."""
    known = modules(src)

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    for module, path in known.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        seen: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                # ``from ragcast.api import schemas`` imports the module ragcast.api.schemas
                targets = [f"{base}.{a.name}" for a in node.names] or [base]
            for name in targets:
                if not name.startswith("ragcast"):
                    continue
                target = resolve(name)
                if target is not None and target != module and target not in seen:
                    seen.add(target)
                    yield Import(module, target, node.lineno)


def room(module: str) -> str:
    """The top-level package or module of ``ragcast`` a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def circles(edges: list[Import]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iteratively)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in edges:
        graph[edge.source].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def problems(src: Path) -> list[str]:
    """Every breach of the map under ``src``, readable; empty when the layers hold."""
    edges = list(imports(src))
    out: list[str] = []
    unknown = sorted({room(e.source) for e in edges} - FLOORS.keys())
    out += [f"room {name!r} stands on no floor: add it to FLOORS" for name in unknown]
    up: dict[tuple[str, str], list[Import]] = defaultdict(list)
    for edge in edges:
        a, b = room(edge.source), room(edge.target)
        if a != b and FLOORS.get(b, 0) > FLOORS.get(a, 0):
            up[(a, b)].append(edge)
    for (a, b), found in sorted(up.items()):
        if (a, b) not in ALLOWED_UP:
            where = "; ".join(str(e) for e in found[:3])
            out.append(f"{a} (floor {FLOORS.get(a)}) imports {b} (floor {FLOORS[b]}): {where}")
    if len(up) > MAX_UP:
        out.append(f"{len(up)} arrows run back up; at most {MAX_UP} may")
    out += [f"import circle: {' -> '.join(group)}" for group in circles(edges)]
    return out


def main(argv: list[str]) -> int:
    src = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "src"
    found = problems(src)
    for line in found:
        print(line, file=sys.stderr)
    edges = list(imports(src))
    arrows = {(room(e.source), room(e.target)) for e in edges if room(e.source) != room(e.target)}
    rooms = {room(e.source) for e in edges} | {room(e.target) for e in edges}
    print(f"layers: {len(rooms)} rooms, {len(arrows)} arrows, {len(found)} problems")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
