"""Hostile input against a live server: document bombs, ids that climb out of the data
dir, addresses that are not publicly routable, and reasons that would show server paths."""

from __future__ import annotations

import io
import shutil
import socket
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import docx
import httpx
import pytest

from ragcast.errors import MediaError, ValidationError, internal_reason, redact_paths
from ragcast.pipeline.archive import DocumentLimits, check_docx
from ragcast.pipeline.documents import DOCX_TYPE, parse_document
from ragcast.settings import Settings
from ragcast.sources.platforms import content_id, video_id
from ragcast.sources.safety import UnsafeAddressError, address_problem, check_url, guarded
from tests.api.test_security import Service, upload_text, wait_done
from tests.conftest import job_body

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("hostile")
    srv = Service(
        root / "deep" / "data",
        RAGCAST_MAX_UPLOAD_BYTES=str(8 * 1024 * 1024),
        RAGCAST_FETCH_RETRIES="0",
    )
    yield srv
    srv.stop()


def docx_with_body(tmp_path: Path, body: bytes, name: str = "bomb.docx") -> Path:
    """A real DOCX (python-docx's own parts) whose document.xml body is ``body``."""
    plain = tmp_path / "plain.docx"
    docx.Document().save(str(plain))
    out = tmp_path / name
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "word/document.xml":
                data = (
                    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                    b'<w:document xmlns:w="'
                    + W_NS.encode()
                    + b'"><w:body>'
                    + body
                    + b"</w:body></w:document>"
                )
            dst.writestr(info.filename, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


# --- 1. document bombs -----------------------------------------------------------------


def test_a_docx_bomb_is_refused_at_upload_in_seconds_and_flat_memory(
    service: Service, tmp_path: Path
) -> None:
    bomb = docx_with_body(tmp_path, b"<w:p/>" * 5_000_000)  # 30 MB of XML in ~44 KB
    assert bomb.stat().st_size < 200_000
    before = rss_mb(service.proc.pid)
    started = time.monotonic()
    with service.client() as c:
        r = c.post("/uploads", files={"file": ("report.docx", bomb.read_bytes())})
    took = time.monotonic() - started
    growth = rss_mb(service.proc.pid) - before
    print(
        f"DOCX bomb ({bomb.stat().st_size} bytes): {r.status_code} in {took:.2f} s, "
        f"server memory {growth:+.1f} MB"
    )
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "validation_error"
    assert body["details"]["field"] == "file"
    assert "decompression" in body["details"]["issue"] or "element" in body["details"]["issue"]
    assert growth < 100
    assert took < 30  # refused in seconds, not minutes (a generous bound on a shared box)


def test_a_docx_that_declares_a_dtd_is_refused(service: Service, tmp_path: Path) -> None:
    path = docx_with_body(tmp_path, b"<w:p/>", name="dtd.docx")
    data = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(data, "w") as dst:
        for info in src.infolist():
            part = src.read(info)
            if info.filename == "word/document.xml":
                part = part.replace(
                    b"?><w:document", b'?><!DOCTYPE d [<!ENTITY a "aaaa">]><w:document'
                )
            dst.writestr(info, part)
    with service.client() as c:
        r = c.post("/uploads", files={"file": ("dtd.docx", data.getvalue())})
    assert r.status_code == 400, r.text
    assert "DTD" in r.json()["details"]["issue"]


def test_every_docx_limit_refuses_before_parsing(tmp_path: Path) -> None:
    ok = docx_with_body(tmp_path, b"<w:p><w:r><w:t>hello there</w:t></w:r></w:p>" * 50, "ok.docx")
    check_docx(ok, DocumentLimits())
    assert [s.text for s in parse_document(ok, DOCX_TYPE).segments][:1] == ["hello there"]
    cases = {
        "elements": DocumentLimits(max_xml_elements=100),
        "files": DocumentLimits(max_members=3),
        "decompression limit": DocumentLimits(max_inflated_bytes=1000),
    }
    for needle, limits in cases.items():
        with pytest.raises(MediaError, match=needle):
            parse_document(ok, DOCX_TYPE, limits)
    ratio = docx_with_body(tmp_path, b"<w:p/>" * 400_000, "ratio.docx")  # 2.4 MB, ~500x
    with pytest.raises(MediaError, match="compression ratio"):
        check_docx(ratio, DocumentLimits(max_xml_elements=10**7))


def test_the_docx_parse_has_a_deadline(tmp_path: Path) -> None:
    path = docx_with_body(tmp_path, b"<w:p><w:r><w:t>x</w:t></w:r></w:p>" * 20, "slow.docx")
    with pytest.raises(MediaError, match="parse limit"):
        parse_document(path, DOCX_TYPE, DocumentLimits(max_parse_s=-1))


# --- 2. ids that would leave the data dir ------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://www.youtube.com/watch?v=/../../../x/sub",
        "https://www.youtube.com/watch?v=%2F..%2F..%2F..%2Fx%2Fsub",
        "https://youtu.be/..%2F..%2F..%2Fx",
        "https://www.tiktok.com/@a/video/..",
        "https://clips.twitch.tv/a%2F..%2F..",
    ],
)
def test_only_platform_shaped_ids_become_content_ids(url: str) -> None:
    assert video_id(url) is None
    cid = content_id("youtube", video_id(url), url)
    assert cid.startswith("youtube-url-") and "/" not in cid and ".." not in cid


def test_real_platform_ids_are_kept() -> None:
    assert video_id("https://www.youtube.com/watch?v=dQw4w9WgXcQ") == "dQw4w9WgXcQ"
    assert video_id("https://www.tiktok.com/@a/video/7301234567890123456") == "7301234567890123456"
    assert video_id("https://www.twitch.tv/videos/123456") == "v123456"
    assert content_id("youtube", "../../etc", "u").startswith("youtube-url-")  # channel entries


def test_data_paths_never_leave_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.data_path("media", "youtube-abc") == (tmp_path / "data/media/youtube-abc")
    for parts in (("media", "../../x"), ("media", "/etc"), ("..",), ("media", "..", "..")):
        with pytest.raises(ValueError, match="not a name inside the data dir"):
            settings.data_path(*parts)


def test_a_traversal_url_makes_no_directory_outside_the_data_dir(service: Service) -> None:
    root = service.data_dir.parent.parent  # …/hostile0/deep/data → …/hostile0
    before = {p for p in root.rglob("*") if not p.is_relative_to(service.data_dir)}
    urls = [
        "https://www.youtube.com/watch?v=/../../../x/sub",
        "https://www.youtube.com/watch?v=%2F..%2F..%2F..%2Fx%2Fsub",
    ]
    body = job_body("traversal", [], platform="youtube", input_method="urls", pasted_urls=urls)
    with service.client() as c:
        r = c.post("/process", json=body)
        assert r.status_code == 200, r.text
        status = wait_done(c, "traversal")
        items = c.get("/job/traversal/items").json()["items"]
    assert status["status"] in ("completed", "failed")
    for item in items:
        assert item["content_id"].startswith("youtube-url-"), item
    after = {p for p in root.rglob("*") if not p.is_relative_to(service.data_dir)}
    assert after == before
    assert not (root / "x").exists() and not (root / "deep" / "x").exists()
    assert not any("/" in p.name for p in (service.data_dir / "media").iterdir())


# --- 3. addresses that are not publicly routable -----------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://100.100.100.200/latest/meta-data/",  # Alibaba Cloud, inside 100.64.0.0/10
        "http://100.64.0.1/",
        "http://[2002:7f00:1::1]/",  # 6to4 form of 127.0.0.1
        "http://[2002:a9fe:a9fe::]/",  # 6to4 form of 169.254.169.254
        "http://[64:ff9b::7f00:1]/",  # NAT64 form of 127.0.0.1
        "http://[::127.0.0.1]/",  # IPv4-compatible form
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
        "http://198.18.0.1/",
        "http://192.0.0.8/",
        "http://240.0.0.1/",
        "http://metadata.google.internal./computeMetadata/v1/",  # trailing dot
    ],
)
def test_non_public_addresses_are_refused_at_creation(service: Service, url: str) -> None:
    with service.client() as c:
        r = c.post("/webhooks", json={"url": url, "events": ["job.completed"]})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "validation_error"
    assert r.json()["details"]["field"] == "url"


@pytest.mark.parametrize(
    ("url", "issue"),
    [
        ("http://example.com:99999/hook", "port"),
        ("http://example.com:0/hook", "port"),
        ("http://example.com/ho\r\nX-Injected: 1", "control characters"),
        ("http://exa mple.com/", "spaces"),
    ],
)
def test_malformed_webhook_urls_are_refused(service: Service, url: str, issue: str) -> None:
    with service.client() as c:
        r = c.post("/webhooks", json={"url": url, "events": ["job.completed"]})
    assert r.status_code == 400, r.text
    assert issue in r.json()["details"]["issue"]


def test_the_refusal_does_not_say_what_an_internal_name_resolves_to(service: Service) -> None:
    with service.client() as c:
        r = c.post("/webhooks", json={"url": "http://localhost:9/h", "events": ["job.failed"]})
    assert r.status_code == 400
    issue = r.json()["details"]["issue"]
    assert "loopback" in issue and "127.0.0.1" not in issue and "::1" not in issue


@pytest.mark.parametrize(
    "address", ["100.100.100.200", "100.64.0.1", "2002:7f00:1::1", "64:ff9b::a9fe:a9fe"]
)
def test_the_connection_guard_refuses_them_at_send_time(address: str) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        with guarded(allow_loopback=True), pytest.raises(UnsafeAddressError):
            sock.connect((address, 80))
    finally:
        sock.close()


def test_public_addresses_still_pass() -> None:
    import ipaddress

    for address in ("8.8.8.8", "2606:4700::1111", "64:ff9b::808:808", "2002:808:808::1"):
        assert address_problem(ipaddress.ip_address(address), allow_loopback=False) is None
    check_url("http://[2606:4700::1111]/", field="url", allow_loopback=False)
    with pytest.raises(ValidationError):
        check_url("http://[2002:7f00:1::1]/", field="url", allow_loopback=True)


# --- 4. reasons without server paths -----------------------------------------------------


def test_reasons_never_show_server_paths() -> None:
    exc = FileNotFoundError(2, "No such file or directory", "/srv/ragcast/.ragcast/media/x/a.m4a")
    assert internal_reason(exc) == "internal error: FileNotFoundError: No such file or directory"
    text = "ffmpeg: /srv/ragcast/.ragcast/media/youtube-x/a.webm: Invalid data (https://e.com/a/b)"
    assert redact_paths(text) == "ffmpeg: …/a.webm: Invalid data (https://e.com/a/b)"


def test_a_failed_exports_reason_over_http_names_no_server_path(service: Service) -> None:
    with service.client() as c:
        doc = upload_text(c, "notes.txt", "the tides turn twice a day along this coast")
        assert c.post("/process", json=job_body("pathless", [doc])).status_code == 200
        assert wait_done(c, "pathless")["status"] == "completed"
        exports = service.data_dir / "exports"
        shutil.rmtree(exports)
        exports.write_text("not a folder")  # writing the export fails with an OSError
        try:
            export_id = c.post("/export", json={"job_id": "pathless", "format": "json"}).json()[
                "export_id"
            ]
            for _ in range(300):
                status = c.get(f"/export/{export_id}/status").json()
                if status["status"] == "failed":
                    break
                time.sleep(0.1)
        finally:
            exports.unlink()
            exports.mkdir()
    assert status["status"] == "failed", status
    print("export failure reads:", status["error"])
    assert "Not a directory" in status["error"]
    assert str(service.data_dir) not in status["error"] and "/exports/" not in status["error"]


def test_the_server_kept_answering(service: Service) -> None:
    assert httpx.get(service.url + "/healthz", timeout=10).status_code == 200
