"""Limits on archive-backed documents (DOCX), checked before anything is parsed.

A DOCX is a zip of XML parts. A few kilobytes can inflate to gigabytes (a zip bomb) or
to millions of XML elements that a document model turns into millions of objects (five
million empty paragraphs fit in 44 KB). :func:`check_docx` reads only the zip's
directory and then streams each XML part through expat, counting elements and keeping
nothing, so a hostile file is refused in a fraction of a second and in constant memory:

- at most ``max_members`` members and ``max_inflated_bytes`` uncompressed in all (as the
  zip declares them; Python's zip reader never yields more than a member declares);
- no member over 1 MiB that inflates more than ``max_ratio`` times;
- at most ``max_xml_elements`` elements over all XML parts, and no DTD (no entities).

The parse that follows is bounded by those counts, and :class:`Deadline` stops it after
``max_parse_s`` seconds.
"""

from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO
from xml.parsers import expat

from ragcast.errors import MediaError
from ragcast.settings import Settings

_RATIO_FLOOR = 1024 * 1024  # small members may compress very well without harm
_READ = 64 * 1024


@dataclass(frozen=True)
class DocumentLimits:
    """How far an archive-backed document may unfold (``RAGCAST_MAX_DOCUMENT_*``)."""

    max_inflated_bytes: int = 256 * 1024**2
    max_members: int = 5_000
    max_ratio: float = 100.0
    max_xml_elements: int = 500_000
    max_parse_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> DocumentLimits:
        """The limits the settings name."""
        return cls(
            max_inflated_bytes=settings.max_document_inflated_bytes,
            max_members=settings.max_document_members,
            max_ratio=settings.max_document_ratio,
            max_xml_elements=settings.max_document_elements,
            max_parse_s=settings.max_document_parse_s,
        )


class Deadline:
    """Raises :class:`MediaError` from :meth:`check` once ``seconds`` have passed."""

    def __init__(self, seconds: float, what: str) -> None:
        self.until = time.monotonic() + seconds
        self.seconds = seconds
        self.what = what

    def check(self) -> None:
        """Refuse the document when its time is up."""
        if time.monotonic() > self.until:
            raise MediaError(f"{self.what} took longer than the {self.seconds:g} s parse limit")


class _TooMany(Exception):
    pass


def check_docx(source: Path | BinaryIO, limits: DocumentLimits) -> None:
    """Refuse a DOCX (a path or a seekable file) that would unfold beyond ``limits``.

    Raises :class:`MediaError` with a readable reason; reads nothing into memory.
    """
    try:
        with zipfile.ZipFile(source) as zf:
            infos = zf.infolist()
            _check_directory(infos, limits)
            budget = limits.max_xml_elements
            for info in infos:
                if info.is_dir() or not info.filename.lower().endswith((".xml", ".rels")):
                    continue
                with zf.open(info) as member:
                    budget -= _count_elements(
                        member, budget, limits.max_xml_elements, info.filename
                    )
    except zipfile.BadZipFile as exc:
        raise MediaError("could not read DOCX: the file is not a valid zip archive") from exc
    except (zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError) as exc:
        raise MediaError(f"DOCX archive cannot be read: {exc}") from exc


def _check_directory(infos: list[zipfile.ZipInfo], limits: DocumentLimits) -> None:
    if len(infos) > limits.max_members:
        raise MediaError(
            f"DOCX archive holds {len(infos)} files, more than the limit of {limits.max_members}"
        )
    inflated = sum(i.file_size for i in infos)
    if inflated > limits.max_inflated_bytes:
        raise MediaError(
            f"DOCX archive inflates to {inflated} bytes, beyond the decompression limit "
            f"of {limits.max_inflated_bytes}"
        )
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_FLOOR and ratio > limits.max_ratio:
            raise MediaError(
                f"DOCX part {info.filename} inflates {ratio:.0f} times, beyond the "
                f"compression ratio limit of {limits.max_ratio:g} (a decompression bomb)"
            )


def _count_elements(stream: IO[bytes], budget: int, limit: int, name: str) -> int:
    """Elements in one XML part, streamed; MediaError past ``budget`` or on a DTD."""
    parser = expat.ParserCreate()
    seen = 0

    def start(_name: str, _attrs: object) -> None:
        nonlocal seen
        seen += 1
        if seen > budget:
            raise _TooMany

    def doctype(*_args: object) -> None:
        raise MediaError(f"DOCX part {name} declares a DTD, which documents never need")

    parser.StartElementHandler = start
    parser.StartDoctypeDeclHandler = doctype
    try:
        while block := stream.read(_READ):
            parser.Parse(block, False)
        parser.Parse(b"", True)
    except _TooMany:
        raise MediaError(
            f"DOCX document holds more than {limit} XML elements, beyond the element limit "
            "(a decompression bomb, or a document too large to index)"
        ) from None
    except expat.ExpatError as exc:
        raise MediaError(
            f"could not read DOCX: part {name} is not well-formed XML: {exc}"
        ) from None
    return seen
