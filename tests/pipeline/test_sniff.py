"""Tests for :mod:`ragcast.pipeline.sniff`."""

from __future__ import annotations

import io
from pathlib import Path

import docx
import pytest

from ragcast.errors import ValidationError
from ragcast.pipeline.sniff import DOCX_TYPE, Sniffed, sniff

DATA = Path("/work/shared/data")
HEAD = 8192


def head_of(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(HEAD)


def docx_bytes() -> bytes:
    document = docx.Document()
    document.add_paragraph("Hello")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


@pytest.mark.skipif(not DATA.is_dir(), reason="shared test audio not available")
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("clip01.flac", Sniffed("audio", "audio/flac", "flac")),
        ("clip02.wav", Sniffed("audio", "audio/wav", "wav")),
    ],
)
def test_real_audio(name: str, expected: Sniffed) -> None:
    assert sniff(head_of(DATA / name), name) == expected
    # The content decides, not the name.
    assert sniff(head_of(DATA / name), "upload.pdf") == expected


ID3 = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + b"\x00" * 10


@pytest.mark.parametrize(
    ("head", "content_type", "kind", "extension"),
    [
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio/wav", "audio", "wav"),
        (b"fLaC\x00\x00\x00\x22", "audio/flac", "audio", "flac"),
        (ID3 + b"\xff\xfb\x90\x00", "audio/mpeg", "audio", "mp3"),
        (ID3 + b"fLaC\x00\x00", "audio/flac", "audio", "flac"),
        (b"\xff\xfb\x90\x64" + b"\x00" * 100, "audio/mpeg", "audio", "mp3"),
        (b"\xff\xf3\x40\xc4" + b"\x00" * 100, "audio/mpeg", "audio", "mp3"),
        (b"\xff\xf1\x50\x80\x02\x1f\xfc", "audio/aac", "audio", "aac"),
        (b"\xff\xf9\x50\x80\x02\x1f\xfc", "audio/aac", "audio", "aac"),
        (b"OggS\x00\x02" + b"\x00" * 22 + b"OpusHead", "audio/ogg", "audio", "opus"),
        (b"OggS\x00\x02" + b"\x00" * 22 + b"\x01vorbis", "audio/ogg", "audio", "ogg"),
        (b"OggS\x00\x02" + b"\x00" * 22 + b"\x80theora", "video/ogg", "video", "ogv"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A isomiso2", "audio/mp4", "audio", "m4a"),
        (b"\x00\x00\x00\x18ftypM4B \x00\x00\x02\x00M4B ", "audio/mp4", "audio", "m4a"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", "video/mp4", "video", "mp4"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video/mp4", "video", "mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ", "video/quicktime", "video", "mov"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video/webm", "video", "webm"),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x82\x88matroska", "video/x-matroska", "video", "mkv"),
        (b"#!AMR\n\x3c", "audio/amr", "audio", "amr"),
        (b"#!AMR-WB\n\x04", "audio/amr-wb", "audio", "awb"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "application/pdf", "document", "pdf"),
        (b"\n\n%PDF-1.4\n", "application/pdf", "document", "pdf"),
    ],
)
def test_magic_bytes(head: bytes, content_type: str, kind: str, extension: str) -> None:
    assert sniff(head, "whatever.txt") == Sniffed(kind, content_type, extension)  # type: ignore[arg-type]


def test_generic_mp4_brand_named_m4a_is_audio() -> None:
    head = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    assert sniff(head, "song.M4A").content_type == "audio/mp4"
    assert sniff(head, "song.mp4").content_type == "video/mp4"


def test_heif_image_is_refused() -> None:
    with pytest.raises(ValidationError, match="image"):
        sniff(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "photo.mp4")


def test_docx() -> None:
    data = docx_bytes()
    assert b"word/" in data[:HEAD]
    assert sniff(data[:HEAD], "a.docx") == Sniffed("document", DOCX_TYPE, "docx")
    assert sniff(data[:HEAD], "a.bin").content_type == DOCX_TYPE
    # A zip named .docx without Word parts in its head still counts on the name.
    assert sniff(b"PK\x03\x04\x14\x00\x00\x00", "report.docx").content_type == DOCX_TYPE


@pytest.mark.parametrize(
    ("head", "name"),
    [
        (b"PK\x03\x04\x14\x00\x00\x00data.csv", "a.zip"),
        (b"PK\x03\x04\x14\x00\x00\x00xl/workbook.xml", "a.docx"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a.png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "a.wav"),
        (bytes(range(256)) * 4, "a.txt"),
        (b"MZ\x90\x00\x03\x00\x00\x00", "a.exe"),
        (b"\x00\x00\x00\x00text", "a.txt"),
        (b"\xff\xfeh\x00i\x00", "a.txt"),
        ("é".encode("latin-1") * 20, "a.txt"),
        (b"\x01\x02\x03\x04\x05 mostly controls \x06\x07\x08", "a.txt"),
    ],
)
def test_unsupported(head: bytes, name: str) -> None:
    with pytest.raises(ValidationError) as info:
        sniff(head, name)
    assert info.value.field == "file"
    assert info.value.issue.startswith("unsupported file type: ")
    assert "Supported: audio" in info.value.message
    assert "PDF" in info.value.message


def test_empty() -> None:
    with pytest.raises(ValidationError) as info:
        sniff(b"", "a.wav")
    assert (info.value.field, info.value.issue) == ("file", "file is empty")


SRT = b"1\n00:00:01,000 --> 00:00:02,000\nHello\n"


@pytest.mark.parametrize(
    ("head", "name", "content_type", "extension"),
    [
        (SRT, "a.txt", "application/x-subrip", "srt"),
        (b"\xef\xbb\xbf" + SRT.replace(b"\n", b"\r\n"), "x", "application/x-subrip", "srt"),
        (b"\n\n" + SRT, "captions", "application/x-subrip", "srt"),
        (b"\n00:00:01,000 --> 00:00:02,000\nHi\n", "a.srt", "application/x-subrip", "srt"),
        (b"WEBVTT\n\n00:01.000 --> 00:02.000\nHi\n", "a.txt", "text/vtt", "vtt"),
        (b"\xef\xbb\xbfWEBVTT - title\n", "a", "text/vtt", "vtt"),
        (b"WEBVTT", "a.vtt", "text/vtt", "vtt"),
        (b"# Title\n\nText", "notes.md", "text/markdown", "md"),
        (b"# Title\n\nText", "notes.MARKDOWN", "text/markdown", "md"),
        (b"# Title\n\nText", "notes.txt", "text/plain", "txt"),
        (b"Just some words.\n", "readme", "text/plain", "txt"),
        ("Grüße, 你好\n".encode(), "a.log", "text/plain", "txt"),
        (b"WEBVTTX is not a header", "a.vtt", "text/plain", "txt"),
        (b"12\nnot a cue", "a.txt", "text/plain", "txt"),
        (b"ID3 tags hold the title", "a.txt", "text/plain", "txt"),
        (b"lastftyp looks like a box", "a.txt", "text/plain", "txt"),
        (b"OggS is a capture pattern", "a.txt", "text/plain", "txt"),
    ],
)
def test_text_formats(head: bytes, name: str, content_type: str, extension: str) -> None:
    assert sniff(head, name) == Sniffed("document", content_type, extension)


def test_text_cut_inside_a_multibyte_character() -> None:
    data = ("ü" * 5000).encode()  # two bytes each: the head ends inside a character
    head = ("a" + "ü" * 5000).encode()[:HEAD]
    assert len(head) == HEAD
    assert sniff(head, "a.txt").content_type == "text/plain"
    assert sniff(data[: HEAD - 1], "a.txt").content_type == "text/plain"
    # Invalid bytes elsewhere still refuse the file.
    with pytest.raises(ValidationError):
        sniff(b"ok \xc3\x28 then text", "a.txt")


def test_pdf_named_wav_is_pdf() -> None:
    assert sniff(b"%PDF-1.5\n", "song.wav").kind == "document"
