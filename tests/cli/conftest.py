"""Fixtures of the CLI tests: the real server of the SDK tests, and a clean environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.client.conftest import live_server, subtitles

__all__ = ["cli_env", "live_server", "subtitles"]


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment of a CLI run: its own data dir, no models preloaded, no server set."""
    for name in ("RAGCAST_SERVER", "RAGCAST_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return {"RAGCAST_DATA_DIR": str(tmp_path / "cli"), "RAGCAST_PRELOAD_MODELS": "false"}
