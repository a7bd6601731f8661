"""Run every benchmark: ``python -m bench``."""

from __future__ import annotations

from bench import pipeline

if __name__ == "__main__":
    pipeline.main()
