"""Tests for :mod:`ragcast.pipeline.documents` on real files built in ``tmp_path``."""

from __future__ import annotations

from pathlib import Path

import docx
import pytest

from ragcast.errors import MediaError
from ragcast.pipeline.documents import DOCX_TYPE, parse_document


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF: one Helvetica text line per string, correct xref table."""
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids: list[int] = []
    for lines in pages:
        ops = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({s}) Tj T*" for s in lines) + " ET"
        objects.append(f"<< /Length {len(ops)} >>\nstream\n{ops}\nendstream")
        content = len(objects)
        objects.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content} 0 R >>"
        )
        kids.append(len(objects))
    refs = " ".join(f"{k} 0 R" for k in kids)
    objects[1] = f"<< /Type /Pages /Kids [{refs}] /Count {len(kids)} >>"
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


# --- plain text and Markdown ---------------------------------------------------------


def test_plain_text_paragraphs_become_segments(tmp_path: Path) -> None:
    path = write(tmp_path, "a.txt", "First  paragraph\nstill first.\n\n \nSecond one.\r\n\r\nThird")
    transcript = parse_document(path, "text/plain; charset=utf-8")
    assert transcript.source == "document"
    assert transcript.language is None and transcript.duration_s is None
    assert [s.text for s in transcript.segments] == [
        "First paragraph still first.",
        "Second one.",
        "Third",
    ]
    first = transcript.segments[0]
    assert [w.text for w in first.words] == ["First", "paragraph", "still", "first."]
    assert all(w.start is None and w.end is None for w in first.words)
    assert first.start is None and first.end is None


def test_markdown_and_bom(tmp_path: Path) -> None:
    path = write(tmp_path, "a.md", "\ufeff# Title\n\nSome *text*.")
    transcript = parse_document(path, "text/markdown")
    assert [s.text for s in transcript.segments] == ["# Title", "Some *text*."]


def test_text_with_a_few_bad_bytes_is_accepted(tmp_path: Path) -> None:
    data = ("word " * 200).encode() + b"caf\xe9 " + b"\x00"
    transcript = parse_document(write(tmp_path, "a.txt", data), "text/plain")
    assert "\x00" not in transcript.text
    assert transcript.text.startswith("word word")


@pytest.mark.parametrize(
    "data", [bytes(range(256)) * 40, b"\x00" * 1000 + b"text", "é".encode("latin-1") * 500]
)
def test_binary_garbage_is_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(MediaError, match="not UTF-8 text"):
        parse_document(write(tmp_path, "a.txt", data), "text/plain")


@pytest.mark.parametrize("data", [b"", b"   \n\n\t ", b"\xef\xbb\xbf"])
def test_empty_text_is_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(MediaError, match="document contains no text"):
        parse_document(write(tmp_path, "a.txt", data), "text/plain")


def test_missing_file_and_unknown_type(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="could not read file"):
        parse_document(tmp_path / "nope.txt", "text/plain")
    with pytest.raises(MediaError, match="unsupported document type: image/png"):
        parse_document(write(tmp_path, "a.png", b"x"), "image/png")


# --- PDF ---------------------------------------------------------------------------------


def test_pdf_pages_become_segments(tmp_path: Path) -> None:
    path = write(tmp_path, "a.pdf", make_pdf([["Hello world.", "Second line"], ["Page two"]]))
    transcript = parse_document(path, "application/pdf")
    assert [s.text for s in transcript.segments] == ["Hello world. Second line", "Page two"]
    assert transcript.segments[0].words[0].text == "Hello"


def test_pdf_without_text_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "a.pdf", make_pdf([[], []]))
    with pytest.raises(MediaError, match=r"PDF has no extractable text \(scanned images"):
        parse_document(path, "application/pdf")


@pytest.mark.parametrize("cut", [40, 200, 0.5])
def test_truncated_pdf_is_refused(tmp_path: Path, cut: float) -> None:
    data = make_pdf([["Hello world."]])
    size = int(len(data) * cut) if isinstance(cut, float) else int(cut)
    with pytest.raises(MediaError, match="PDF"):
        parse_document(write(tmp_path, "a.pdf", data[:size]), "application/pdf")


def test_random_bytes_as_pdf_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="could not read PDF"):
        parse_document(write(tmp_path, "a.pdf", bytes(range(256)) * 8), "application/pdf")


# --- DOCX --------------------------------------------------------------------------------


def make_docx(tmp_path: Path) -> Path:
    document = docx.Document()
    document.add_heading("Report title", level=1)
    document.add_paragraph("First paragraph here.")
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 0).text = "Name"
    table.cell(0, 1).text = "Value"
    table.cell(0, 2).text = "Unit"
    table.cell(1, 0).text = "Speed"
    merged = table.cell(1, 1).merge(table.cell(1, 2))
    merged.text = "42 km/h"
    document.add_paragraph("")
    document.add_paragraph("After the table.")
    path = tmp_path / "a.docx"
    document.save(str(path))
    return path


def test_docx_paragraphs_and_tables_in_order(tmp_path: Path) -> None:
    transcript = parse_document(make_docx(tmp_path), DOCX_TYPE)
    assert [s.text for s in transcript.segments] == [
        "Report title",
        "First paragraph here.",
        "Name | Value | Unit",
        "Speed | 42 km/h",
        "After the table.",
    ]


def test_truncated_docx_is_refused(tmp_path: Path) -> None:
    data = make_docx(tmp_path).read_bytes()
    path = write(tmp_path, "cut.docx", data[: len(data) // 2])
    with pytest.raises(MediaError, match="could not read DOCX: "):
        parse_document(path, DOCX_TYPE)


def test_random_bytes_as_docx_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "a.docx", b"PK\x03\x04" + bytes(range(256)) * 4)
    with pytest.raises(MediaError, match="could not read DOCX: "):
        parse_document(path, DOCX_TYPE)


def test_empty_docx_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.docx"
    docx.Document().save(str(path))
    with pytest.raises(MediaError, match="document contains no text"):
        parse_document(path, DOCX_TYPE)


# --- SRT ---------------------------------------------------------------------------------

SRT = """\ufeff1
00:00:01,000 --> 00:00:03,500
<i>Hello</i> there,
{\\an8}general Kenobi.

2
00:00:04,000 --> 00:00:05,250
<font color="#ff0000">Second</font> cue &amp; more

3
00:01:00,000 --> 01:00:00,001

4
01:02:03,4 --> 01:02:04,500
Last
"""


def test_srt_cues_with_times(tmp_path: Path) -> None:
    transcript = parse_document(write(tmp_path, "a.srt", SRT), "application/x-subrip")
    segments = transcript.segments
    assert [s.text for s in segments] == [
        "Hello there, general Kenobi.",
        "Second cue & more",
        "Last",
    ]
    assert (segments[0].start, segments[0].end) == (1.0, 3.5)
    assert all(w.start == 1.0 and w.end == 3.5 for w in segments[0].words)
    assert segments[2].start == pytest.approx(3723.4)
    assert segments[2].end == pytest.approx(3724.5)


def test_srt_crlf_and_missing_blank_line(tmp_path: Path) -> None:
    data = (
        "1\r\n00:00:01,000 --> 00:00:02,000\r\nOne\r\n2\r\n00:00:02,000 --> 00:00:03,000\r\nTwo\r\n"
    )
    transcript = parse_document(write(tmp_path, "a.srt", data), "application/x-subrip")
    assert [(s.text, s.start) for s in transcript.segments] == [("One", 1.0), ("Two", 2.0)]


def test_srt_without_cues_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="document contains no text"):
        parse_document(write(tmp_path, "a.srt", "just words\n"), "application/x-subrip")


# --- WebVTT ------------------------------------------------------------------------------

VTT = """\ufeffWEBVTT - a title
Kind: captions

STYLE
::cue { color: yellow }

NOTE this is a comment
that spans lines

intro
00:00.500 --> 00:02.000 align:start position:10% line:0
<v Roger>Hi <c.yellow>there</c>,</v> <00:00:01.000><c>friend</c>

00:00:02.000 --> 00:00:04.000
<b>Bold</b> &lt;move&gt;
"""


def test_vtt_cues_strip_tags_settings_and_blocks(tmp_path: Path) -> None:
    transcript = parse_document(write(tmp_path, "a.vtt", VTT), "text/vtt")
    segments = transcript.segments
    assert [s.text for s in segments] == ["Hi there, friend", "Bold <move>"]
    assert (segments[0].start, segments[0].end) == (0.5, 2.0)
    assert [(w.text, w.start, w.end) for w in segments[1].words] == [
        ("Bold", 2.0, 4.0),
        ("<move>", 2.0, 4.0),
    ]


def test_vtt_rolling_captions_are_not_duplicated(tmp_path: Path) -> None:
    data = (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:02.000\nhello world<00:00:00.500><c> this</c>\n\n"
        "00:00:02.000 --> 00:00:02.010\nhello world this\n\n"
        "00:00:02.010 --> 00:00:04.000\nhello world this\nnext line\n\n"
        "00:00:04.000 --> 00:00:06.000\nnext line\nand more\n"
    )
    transcript = parse_document(write(tmp_path, "a.vtt", data), "text/vtt")
    assert [(s.text, s.start) for s in transcript.segments] == [
        ("hello world this", 0.0),
        ("next line", 2.01),
        ("and more", 4.0),
    ]


def test_vtt_binary_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="WebVTT file is not UTF-8 text"):
        parse_document(write(tmp_path, "a.vtt", bytes(range(256)) * 4), "text/vtt")
