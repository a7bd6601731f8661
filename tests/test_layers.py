"""The import layers: the package passes the check, and a back-import or a circle fails it."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_layers.py"


def _checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_layers", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_layers"] = module
    spec.loader.exec_module(module)
    return module


def test_the_package_keeps_its_layers() -> None:
    assert _checker().problems(ROOT / "src") == []


def test_no_module_is_past_500_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / "src" / "ragcast").rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 500
    }
    assert long == {}


def _copy(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "ragcast", src / "ragcast", ignore=shutil.ignore_patterns("*.pyc", "static")
    )
    return src


def test_an_import_back_up_fails_with_its_names(tmp_path: Path) -> None:
    src = _copy(tmp_path)
    errors = src / "ragcast" / "errors.py"
    # Hidden inside a function, as Python would not notice it.
    errors.write_text(errors.read_text() + "\n\ndef _app():\n    from ragcast.api import app\n")
    found = _checker().problems(src)
    assert any(
        "errors (floor 1) imports api (floor 7)" in p and "ragcast.errors:" in p for p in found
    )
    run = subprocess.run([sys.executable, str(SCRIPT), str(src)], capture_output=True, text=True)
    assert run.returncode == 1 and "imports ragcast.api.app" in run.stderr


def test_a_circle_fails_with_its_members(tmp_path: Path) -> None:
    src = _copy(tmp_path)
    fusion = src / "ragcast" / "retrieval" / "fusion.py"
    fusion.write_text(
        fusion.read_text() + "\n\ndef _s():\n    from ragcast.retrieval import search\n"
    )
    found = _checker().problems(src)
    assert any(p.startswith("import circle:") and "ragcast.retrieval.fusion" in p for p in found)
