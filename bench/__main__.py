"""Run the benchmarks: ``python -m bench`` runs all, ``python -m bench NAME [ARGS]`` one.

Names: ``pipeline`` (ragcast end to end against a bare script) and ``embedders``
(ragcast's local embedder against a bare sentence-transformers ``encode``).
"""

from __future__ import annotations

import sys

from bench import embedders, pipeline

BENCHES = {"pipeline": pipeline.main, "embedders": embedders.main}


def run(argv: list[str]) -> None:
    """Run the bench named by ``argv[0]`` with the rest as its arguments, or all of them."""
    if argv and argv[0] in BENCHES:
        name, rest = argv[0], argv[1:]
        sys.argv = [f"bench {name}", *rest]  # benches parse sys.argv themselves
        BENCHES[name]()
        return
    if argv:
        sys.exit(f"unknown bench {argv[0]!r}; expected one of {', '.join(BENCHES)}")
    for name, bench in BENCHES.items():
        print(f"== {name} ==")
        sys.argv = [f"bench {name}"]
        bench()


if __name__ == "__main__":
    run(sys.argv[1:])
