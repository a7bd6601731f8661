"""Decide what an uploaded file is from its first bytes.

The content decides, not the name: a ``.wav`` that is really a PDF is a PDF. The name
only settles what the bytes cannot (Markdown versus plain text, a bare zip as DOCX, an
M4A stored under a generic MP4 brand).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Literal

from ragcast.errors import ValidationError

Kind = Literal["audio", "video", "document"]

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

SUPPORTED = (
    "audio (WAV, FLAC, MP3, OGG/Opus, M4A, AAC, AMR), video (MP4, MOV, WebM, MKV), "
    "documents (PDF, DOCX, TXT, Markdown, SRT, WebVTT)"
)

_SRT_FIRST_CUE = re.compile(r"\A\d+[ \t]*\r?\n[ \t]*\d{1,2}:\d\d:\d\d[,.]\d{3}[ \t]*-->")
_SRT_TIMING = re.compile(r"^[ \t]*\d{1,2}:\d\d:\d\d[,.]\d{3}[ \t]*-->", re.MULTILINE)
_VTT_HEADER = re.compile(r"\AWEBVTT(?:[ \t\r\n]|\Z)")

# ISO base media brands that are images, not audio or video (HEIC, AVIF, ...).
_IMAGE_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P "}
_GENERIC_BRANDS = {b"isom", b"iso2", b"mp41", b"mp42", b"dash"}


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What a file is: its kind, MIME type and canonical extension (without the dot)."""

    kind: Kind
    content_type: str
    extension: str


def sniff(head: bytes, filename: str) -> Sniffed:
    """Identify a file from its first bytes (8192 are plenty) and its name.

    Raises :class:`ValidationError` on field ``file`` for an empty or unsupported file.
    """
    if not head:
        raise ValidationError("file", "file is empty", message="The file is empty.")
    name = filename.lower()
    found = _sniff_binary(head, name) or _sniff_text(head, name)
    if found is None:
        raise _unsupported(f"{filename or 'the file'} is not a recognised format")
    return found


def _unsupported(what: str) -> ValidationError:
    return ValidationError(
        "file",
        f"unsupported file type: {what}",
        message=f"Unsupported file type: {what}. Supported: {SUPPORTED}.",
    )


def _sniff_binary(head: bytes, name: str) -> Sniffed | None:
    """Magic-byte formats; ``None`` when none matches."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        # Checked first: the UTF-16LE mark also looks like an MPEG audio frame sync.
        raise _unsupported("UTF-16 text (save it as UTF-8)")
    for check in (_riff_flac_amr, _mpeg, _container, _document):
        found = check(head, name)
        if found is not None:
            return found
    return None


def _riff_flac_amr(head: bytes, name: str) -> Sniffed | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return Sniffed("audio", "audio/wav", "wav")
    if head[:4] == b"fLaC":
        return Sniffed("audio", "audio/flac", "flac")
    if head.startswith(b"#!AMR-WB\n"):
        return Sniffed("audio", "audio/amr-wb", "awb")
    if head.startswith(b"#!AMR\n"):
        return Sniffed("audio", "audio/amr", "amr")
    return None


def _mpeg(head: bytes, name: str) -> Sniffed | None:
    if _is_id3(head):
        # An ID3 tag may front FLAC too; look past it when it ends inside the head.
        size = 10 + _syncsafe(head[6:10])
        if head[size : size + 4] == b"fLaC":
            return Sniffed("audio", "audio/flac", "flac")
        return Sniffed("audio", "audio/mpeg", "mp3")
    if len(head) < 2 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    if head[1] & 0xF6 == 0xF0:  # layer bits 00: ADTS, not MPEG audio
        return Sniffed("audio", "audio/aac", "aac")
    if head[1] & 0x06 and head[1] & 0x18 != 0x08:  # a layer set, version not reserved
        return Sniffed("audio", "audio/mpeg", "mp3")
    return None


def _is_id3(head: bytes) -> bool:
    """An ID3v2 header: version 2-4 and a syncsafe size, so text saying "ID3" is not one."""
    return (
        head[:3] == b"ID3"
        and len(head) >= 10
        and head[3] in (2, 3, 4)
        and all(b < 0x80 for b in head[6:10])
    )


def _syncsafe(data: bytes) -> int:
    """Decode an ID3 syncsafe integer (7 bits per byte)."""
    value = 0
    for byte in data:
        value = (value << 7) | (byte & 0x7F)
    return value


def _container(head: bytes, name: str) -> Sniffed | None:
    if head[:5] == b"OggS\x00":  # capture pattern and stream structure version 0
        if b"\x80theora" in head[:512]:
            return Sniffed("video", "video/ogg", "ogv")
        return Sniffed("audio", "audio/ogg", "opus" if b"OpusHead" in head[:512] else "ogg")
    if head[4:8] == b"ftyp" and 8 <= int.from_bytes(head[:4], "big") <= 4096:
        return _iso_media(head, name)
    if head[:4] == b"\x1a\x45\xdf\xa3":
        if b"webm" in head[:64]:
            return Sniffed("video", "video/webm", "webm")
        return Sniffed("video", "video/x-matroska", "mkv")
    return None


def _iso_media(head: bytes, name: str) -> Sniffed | None:
    """MP4 family: the major brand tells audio (M4A), QuickTime and images apart."""
    brand = head[8:12]
    box_end = min(int.from_bytes(head[:4], "big"), len(head))
    brands = {brand, *(head[i : i + 4] for i in range(16, box_end - 3, 4))}
    if brands & _IMAGE_BRANDS and not brands & (_AUDIO_BRANDS | _GENERIC_BRANDS):
        raise _unsupported("an image (HEIF/AVIF)")
    if brand in _AUDIO_BRANDS:
        return Sniffed("audio", "audio/mp4", "m4a")
    if brand == b"qt  ":
        return Sniffed("video", "video/quicktime", "mov")
    if brand in _GENERIC_BRANDS and name.endswith((".m4a", ".m4b")):
        # A generic brand says nothing about tracks; trust the name this once.
        return Sniffed("audio", "audio/mp4", "m4a")
    return Sniffed("video", "video/mp4", "mp4")


def _document(head: bytes, name: str) -> Sniffed | None:
    if head.lstrip(b" \t\r\n")[:5] == b"%PDF-":
        return Sniffed("document", "application/pdf", "pdf")
    if head[:4] == b"PK\x03\x04":
        if b"word/" in head or (name.endswith(".docx") and not _other_office(head)):
            return Sniffed("document", DOCX_TYPE, "docx")
        raise _unsupported("a zip archive that is not a DOCX document")
    return None


def _other_office(head: bytes) -> bool:
    """Whether a zip is a spreadsheet, presentation or OpenDocument file."""
    return b"xl/" in head or b"ppt/" in head or b"application/vnd.oasis" in head


def _sniff_text(head: bytes, name: str) -> Sniffed | None:
    """Text formats; ``None`` unless the head is clearly UTF-8 text."""
    text = _decode_head(head)
    if text is None:
        return None
    text = text.removeprefix("\ufeff")
    if _VTT_HEADER.match(text):
        return Sniffed("document", "text/vtt", "vtt")
    body = text.lstrip()
    if _SRT_FIRST_CUE.match(body) or (name.endswith(".srt") and _SRT_TIMING.search(body)):
        return Sniffed("document", "application/x-subrip", "srt")
    if name.endswith((".md", ".markdown")):
        return Sniffed("document", "text/markdown", "md")
    return Sniffed("document", "text/plain", "txt")


def _decode_head(head: bytes) -> str | None:
    """The head as text, or ``None`` if it is not clearly UTF-8 text.

    Decoded incrementally so a multibyte character cut by the end of the head is left
    pending instead of failing.
    """
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    if "\x00" in text:
        return None
    # Control characters other than whitespace betray binary data that happens to be
    # valid UTF-8; allow a stray few (form feeds, a DOS end-of-file mark).
    controls = sum(1 for c in text if c < " " and c not in "\t\n\r\f\v")
    return text if controls * 100 <= len(text) else None
