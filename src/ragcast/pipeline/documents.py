"""Turn a document (text, Markdown, PDF, DOCX, SRT, WebVTT) into a :class:`Transcript`.

Text formats become one segment per paragraph with untimed words; subtitles become one
segment per cue whose words carry the cue's times. Every failure to read the file is a
:class:`MediaError` with a readable reason, so the item fails alone.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ragcast.errors import MediaError
from ragcast.pipeline.archive import Deadline, DocumentLimits, check_docx
from ragcast.pipeline.types import Segment, Transcript, Word

if TYPE_CHECKING:
    from docx.table import Table
    from docx.text.paragraph import Paragraph

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

# More than this share of undecodable characters means binary data, not a stray bad byte.
_MAX_BAD_SHARE = 0.02

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # HTML-like and VTT tags, ASS overrides {\an8}
_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})(?:[,.](\d{1,3}))?"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")
# Blocks without cues; the WEBVTT header needs no entry, lines before a timing are skipped.
_VTT_SKIPPED_BLOCKS = ("NOTE", "STYLE", "REGION")


def parse_document(
    path: Path, content_type: str, limits: DocumentLimits | None = None
) -> Transcript:
    """Read the document at ``path`` as ``content_type`` (a MIME type, parameters allowed).

    Raises :class:`MediaError` for an unsupported type, an unreadable or corrupt file, a
    document beyond ``limits`` (a DOCX bomb) and a document without any text.
    """
    limits = limits or DocumentLimits()
    mime = content_type.split(";", 1)[0].strip().lower()
    parser = _PARSERS.get(mime)
    if parser is None:
        raise MediaError(f"unsupported document type: {content_type}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MediaError(f"could not read file: {exc.strerror or exc}") from exc
    if parser is _parse_docx:
        check_docx(io.BytesIO(data), limits)  # before any XML becomes objects
        deadline = Deadline(limits.max_parse_s, "reading the DOCX")
        segments = [s for s in _parse_docx(data, deadline) if s.words]
    else:
        segments = [s for s in parser(data) if s.words]
    if not segments:
        raise MediaError("document contains no text")
    return Transcript(source="document", language=None, duration_s=None, segments=segments)


def _text_segment(text: str, start: float | None = None, end: float | None = None) -> Segment:
    """A segment of ``text`` with whitespace collapsed and one word per token."""
    parts = text.split()
    words = [Word(w, start, end) for w in parts]
    return Segment(text=" ".join(parts), start=start, end=end, words=words)


def _decode(data: bytes, label: str) -> str:
    """UTF-8 (a BOM allowed); a few bad bytes are replaced, binary data is refused."""
    text = data.decode("utf-8-sig", errors="replace")
    bad = text.count("\ufffd") + text.count("\x00")
    if text and bad > _MAX_BAD_SHARE * len(text):
        raise MediaError(f"{label} file is not UTF-8 text (binary data or another encoding)")
    # NUL cannot be stored in a text column and never carries meaning in text.
    return text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")


def _paragraphs(text: str) -> Iterator[Segment]:
    for block in _PARAGRAPH_BREAK.split(text):
        yield _text_segment(block)


def _parse_plain(data: bytes) -> Iterable[Segment]:
    return _paragraphs(_decode(data, "text"))


def _parse_pdf(data: bytes) -> Iterable[Segment]:
    from pypdf import PdfReader  # imported when needed: it is slow to import

    segments: list[Segment] = []
    failures: list[Exception] = []
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise MediaError("could not read PDF: it is password-protected")
        for page in reader.pages:
            try:
                segments.extend(_paragraphs(page.extract_text() or ""))
            except Exception as exc:  # one broken page should not lose the others
                failures.append(exc)
    except MediaError:
        raise
    except Exception as exc:  # pypdf raises many kinds on corrupt input
        raise MediaError(f"could not read PDF: {_reason(exc)}") from exc
    if not any(s.words for s in segments):
        if failures:
            raise MediaError(f"could not read PDF: {_reason(failures[0])}") from failures[0]
        raise MediaError("PDF has no extractable text (scanned images are not supported)")
    return segments


def _parse_docx(data: bytes, deadline: Deadline | None = None) -> Iterable[Segment]:
    import docx

    deadline = deadline or Deadline(DocumentLimits().max_parse_s, "reading the DOCX")
    try:
        document = docx.Document(io.BytesIO(data))
        segments = []
        for text in _docx_blocks(document.iter_inner_content()):
            deadline.check()
            segments.append(_text_segment(text))
        return segments
    except MediaError:
        raise
    except Exception as exc:  # zip, XML and package errors alike
        raise MediaError(f"could not read DOCX: {_reason(exc)}") from exc


def _docx_blocks(items: Iterable[Paragraph | Table]) -> Iterator[str]:
    """Paragraph texts in document order; a table row is one block, cells joined."""
    from docx.table import Table

    for item in items:
        if isinstance(item, Table):
            for row in item.rows:
                seen: set[int] = set()
                cells: list[str] = []
                for cell in row.cells:
                    # A merged cell is repeated once per grid column it spans.
                    if id(cell._tc) not in seen:
                        seen.add(id(cell._tc))
                        cells.append(" ".join(_docx_blocks(cell.iter_inner_content())))
                yield " | ".join(c for c in cells if c.strip())
        else:
            yield item.text


def _parse_srt(data: bytes) -> Iterable[Segment]:
    return _cues(_decode(data, "SRT").split("\n"), vtt=False)


def _parse_vtt(data: bytes) -> Iterable[Segment]:
    return _cues(_decode(data, "WebVTT").split("\n"), vtt=True)


def _cues(lines: list[str], vtt: bool) -> Iterator[Segment]:
    """One segment per cue; lines repeated from the previous cue are dropped.

    Rolling captions (YouTube's among them) repeat the previous cue's last line at the
    top of the next one; without dropping them every sentence would be indexed twice.
    """
    previous: list[str] = []
    for start, end, raw in _cue_blocks(lines, vtt):
        text_lines = [_clean_cue_line(line) for line in raw]
        text_lines = [line for line in text_lines if line]
        repeated = _repeated_prefix(previous, text_lines)
        previous = text_lines
        if text_lines[repeated:]:
            yield _text_segment(" ".join(text_lines[repeated:]), start, end)


def _cue_blocks(lines: list[str], vtt: bool) -> Iterator[tuple[float, float, list[str]]]:
    """``(start, end, text lines)`` per cue, skipping VTT header, NOTE and STYLE blocks."""
    block: list[str] = []
    for line in [*lines, ""]:
        if line.strip():
            block.append(line)
            continue
        if block and not (vtt and block[0].split(maxsplit=1)[0] in _VTT_SKIPPED_BLOCKS):
            yield from _timed_block(block)
        block = []


def _timed_block(block: list[str]) -> Iterator[tuple[float, float, list[str]]]:
    """Split a block at its timing lines (the index/identifier line before one is dropped)."""
    current: tuple[float, float, list[str]] | None = None
    for line in block:
        match = _TIMING.match(line)
        if match is None:
            if current is not None:
                current[2].append(line)
            continue
        if current is not None:
            if current[2]:  # the line before a timing line is the next cue's identifier
                current[2].pop()
            yield current
        groups = match.groups()
        current = (_seconds(groups[:4]), _seconds(groups[4:]), [])
    if current is not None:
        yield current


def _seconds(parts: tuple[str | None, ...]) -> float:
    hours, minutes, seconds, fraction = parts
    whole = int(hours or 0) * 3600 + int(minutes or 0) * 60 + int(seconds or 0)
    return whole + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def _clean_cue_line(line: str) -> str:
    """Cue text without tags, inline timestamps and entities, whitespace collapsed."""
    return " ".join(html.unescape(_TAG.sub("", line)).split())


def _repeated_prefix(previous: list[str], current: list[str]) -> int:
    """Length of the longest head of ``current`` that is the tail of ``previous``."""
    for size in range(min(len(previous), len(current)), 0, -1):
        if previous[-size:] == current[:size]:
            return size
    return 0


def _reason(exc: Exception) -> str:
    message = str(exc).strip()
    return message or type(exc).__name__


_PARSERS: dict[str, Callable[[bytes], Iterable[Segment]]] = {
    "text/plain": _parse_plain,
    "text/markdown": _parse_plain,
    "text/x-markdown": _parse_plain,
    "application/pdf": _parse_pdf,
    DOCX_TYPE: _parse_docx,
    "application/x-subrip": _parse_srt,
    "text/srt": _parse_srt,
    "text/vtt": _parse_vtt,
}
