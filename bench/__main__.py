"""Run the benchmarks: ``python -m bench`` runs all, ``python -m bench NAME [ARGS]`` one.

Each module of this package with a ``main(argv)`` is a bench named after the module:
``pipeline`` (ragcast end to end against a bare script), ``embedders`` (the local embedder
against a bare sentence-transformers ``encode``), ``diarization`` (speaker diarization's time
as a share of transcription's), ``vectorstores``, ``distributed``, ``scale`` (many small
items against bare sentence-transformers + Chroma, and a 10,000-item job), ``reads``
(status reads against a bare FastAPI app; an API-only process's memory) and ``exports``
(a 1,000,000-chunk export against pyarrow/csv/json written directly).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable
from pathlib import Path

#: run first when running all (the rest follow in name order)
FIRST = ("pipeline", "embedders")


def benches() -> dict[str, Callable[[list[str] | None], None]]:
    """Every bench of the package, by name."""
    names = sorted(
        m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name != "__main__"
    )
    names = [n for n in FIRST if n in names] + [n for n in names if n not in FIRST]
    found = {}
    for name in names:
        main = getattr(importlib.import_module(f"bench.{name}"), "main", None)
        if callable(main):
            found[name] = main
    return found


def run(argv: list[str]) -> None:
    """Run the bench named by ``argv[0]`` with the rest as its arguments, or all of them."""
    found = benches()
    if argv and not argv[0].startswith("-"):
        if argv[0] not in found:
            sys.exit(f"unknown bench {argv[0]!r}; expected one of {', '.join(found)}")
        found[argv[0]](argv[1:])
        return
    for name, main in found.items():
        print(f"== {name} ==", flush=True)
        main(argv)


if __name__ == "__main__":
    run(sys.argv[1:])
