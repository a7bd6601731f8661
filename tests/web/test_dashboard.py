"""The web dashboard: its assets, then a user in headless Chromium against a live server."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import quote

import httpx
import pyarrow.parquet as pq
import pytest
from playwright.sync_api import Page, expect

from ragcast.web.routes import STATIC
from tests.client.conftest import LiveServer
from tests.conftest import DATA
from tests.providers.diarizers.mixtures import conversation, write_wav

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHRASE = "apostle of the middle classes"  # said in clip02.wav


def test_the_page_and_its_assets_are_served_from_the_package(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from ragcast.api.app import create_app
    from tests.conftest import make_settings

    with TestClient(create_app(make_settings(tmp_path))) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert '<script type="module" src="/static/app.js">' in page.text
        for name in (
            "app.js",
            "api.js",
            "jobs.js",
            "jobcard.js",
            "newjob.js",
            "library.js",
            "player.js",
            "search.js",
            "transcript.js",
        ):
            asset = client.get(f"/static/{name}")
            assert asset.status_code == 200, name
            assert "javascript" in asset.headers["content-type"]
        assert client.get("/static/style.css").headers["content-type"].startswith("text/css")
        assert "/" not in client.get("/openapi.json").json()["paths"]


def test_no_asset_is_loaded_from_another_origin() -> None:
    for path in STATIC.iterdir():
        text = path.read_text()
        # Example URLs in placeholders are fine; loading anything remote is not.
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), path.name
        assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", text), path.name
        assert "fonts.googleapis" not in text and "cdn" not in text.lower(), path.name


def shoot(page: Page, tmp_path: Path, name: str, *, keep: bool = False) -> None:
    """A screenshot in the test's folder; ``keep`` also copies it to docs/screenshots
    when it is not there yet or ``RAGCAST_UPDATE_SCREENSHOTS=1`` (a test run must not
    rewrite committed pictures that only differ by a timestamp)."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), animations="disabled")
    target = SCREENSHOTS / f"{name}.png"
    if keep and (not target.exists() or os.environ.get("RAGCAST_UPDATE_SCREENSHOTS") == "1"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


@pytest.mark.slow
def test_a_user_uploads_watches_exports_and_searches(
    page: Page, web_server: LiveServer, tmp_path: Path
) -> None:
    page.goto(web_server.url + "/")
    expect(page.get_by_role("heading", name="Connect to this ragcast server")).to_be_visible()
    shoot(page, tmp_path, "connect", keep=True)

    page.fill("#key-input", web_server.key)
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#workspace")).to_be_visible()
    expect(page.locator("#key-label")).to_have_text(web_server.key[:11] + "…")

    # Every percentage the job shows, in order: proof that it moved live.
    page.evaluate(
        """() => {
            window.seen = [];
            new MutationObserver(() => {
                const pct = document.querySelector('.job .pct');
                const text = pct && pct.textContent;
                if (text && window.seen.at(-1) !== text) window.seen.push(text);
            }).observe(document.querySelector('#job-list'),
                       {subtree: true, childList: true, characterData: true});
        }"""
    )
    page.set_input_files("#file-input", str(DATA / "clip02.wav"))
    upload = page.locator(".upload").filter(has_text="clip02.wav")
    expect(upload.locator(".upload-state")).to_have_text("Uploaded", timeout=60_000)
    page.fill("input[name=chunkSize]", "256")
    page.fill("input[name=chunkOverlap]", "32")
    page.fill("#job-id", "web-1")
    page.get_by_role("button", name="Start processing").click()

    job = page.locator('.job[data-job-id="web-1"]')
    expect(job).to_be_visible(timeout=60_000)
    try:
        expect(job.locator(".step.active")).to_be_visible(timeout=30_000)
        shoot(page, tmp_path, "dashboard-running", keep=True)
    except AssertionError:  # a fast machine may finish before the screenshot
        pass
    expect(job.locator(".pct")).to_have_text("100%", timeout=240_000)
    expect(job.locator(".badge")).to_have_text("completed")
    expect(job.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(job.locator("tr[data-status=completed] .step.done")).to_have_count(5)
    seen = page.evaluate("window.seen")
    assert seen[-1] == "100%" and len(seen) >= 2, seen

    with page.expect_download(timeout=60_000) as download_info:
        job.get_by_role("button", name="Parquet").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".parquet")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    table = pq.read_table(saved)
    assert table.num_rows >= 1
    assert "clip02.wav" in str(table.to_pylist()[0])
    expect(job.locator(".download-link")).to_contain_text(".parquet")

    page.get_by_role("tab", name="Search").click()
    page.fill("#search-query", PHRASE)
    page.get_by_role("button", name="Search", exact=True).click()
    first = page.locator(".hit").first
    expect(first.locator(".hit-source")).to_have_text("clip02.wav", timeout=30_000)
    expect(first.locator(".hit-text")).to_contain_text("middle classes")
    expect(first.locator(".time")).to_have_text(re.compile(r"\d\d:\d\d – \d\d:\d\d"))
    shoot(page, tmp_path, "dashboard", keep=True)
    # exact words only, with a neighbouring chunk either side
    page.fill("#search-query", "apostle")
    page.select_option("#search-mode", "lexical")
    page.select_option("#search-context", "1")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator(".hit").first.locator(".hit-text")).to_contain_text(
        "apostle", timeout=30_000
    )

    page.get_by_role("button", name="Forget key").click()
    expect(page.locator("#connect")).to_be_visible()
    assert page.evaluate("localStorage.getItem('ragcast.apiKey')") is None


@pytest.mark.slow
def test_errors_are_shown_with_the_servers_message(
    page: Page, web_server: LiveServer, tmp_path: Path
) -> None:
    page.goto(web_server.url + "/")
    page.fill("#key-input", "rc_not-a-real-key")
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#key-error")).to_contain_text("This key was not accepted")

    page.fill("#key-input", web_server.key)
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#workspace")).to_be_visible()
    page.reload()  # the key was kept
    expect(page.locator("#workspace")).to_be_visible()

    page.get_by_role("button", name="Start processing").click()
    expect(page.locator("#job-error")).to_contain_text("Add at least one file")

    # A request the server refuses: its message and the field at fault are shown.
    page.select_option("#platform", "youtube")
    page.get_by_text("URLs", exact=True).click()
    page.fill("#pasted-urls", "ftp://example.com/video")
    page.get_by_role("button", name="Start processing").click()
    expect(page.locator("#job-error")).to_contain_text("pasted_urls[0]")

    page.select_option("#embedding", "jina-v4")
    expect(page.locator("#jina-options")).to_be_visible()
    page.fill("input[name=jina_v4_dimensions]", "64")
    page.get_by_text("Channel", exact=True).click()
    page.fill("#channel-url", "http://127.0.0.1:9/@nobody")  # refused, never fetched
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-error")).to_contain_text("Error")
    shoot(page, tmp_path, "errors")

    status = httpx.get(web_server.url + "/api/public/bulk/jobs", headers=auth(web_server))
    assert status.json()["total"] == 0


def thumbnail(color: str) -> str:
    """A tiny inline image: nothing is fetched from the network."""
    svg = (
        "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 9'>"
        f"<rect width='16' height='9' fill='{color}'/></svg>"
    )
    return "data:image/svg+xml," + quote(svg)


PREVIEW = {
    "url": "https://www.youtube.com/@ragcast-demo",
    "platform": "youtube",
    "title": "ragcast demo channel",
    "items": [
        {
            "id": f"vid{n}",
            "title": title,
            "duration": duration,
            "upload_date": f"2025-0{n}-1{n}",
            "url": f"https://www.youtube.com/watch?v=vid{n}",
            "thumbnail": thumbnail(color),
        }
        for n, (title, duration, color) in enumerate(
            [
                ("Tides, moons and the long shore", 754, "#6366f1"),
                ("Lighthouse keepers of the north", 1312, "#06b6d4"),
                ("Why the sea is salty", 402, "#f59e0b"),
            ],
            start=1,
        )
    ],
    "page": 1,
    "page_size": 50,
    "has_more": False,
}


@pytest.mark.slow
def test_a_channel_preview_fills_selected_content(
    page: Page, web_server: LiveServer, tmp_path: Path
) -> None:
    # The preview endpoint answers in its agreed shape; /process is answered here too,
    # so the test does not depend on the platform sources being enabled.
    page.route("**/api/public/bulk/preview?*", lambda route: route.fulfill(json=PREVIEW))
    refusal = {
        "success": False,
        "error": "validation_error",
        "message": "Invalid request",
        "details": {"field": "embedding_model.dimensions", "issue": "Must be between 128 and 2048"},
    }
    page.route("**/api/public/bulk/process", lambda route: route.fulfill(status=400, json=refusal))
    page.goto(web_server.url + "/")
    page.fill("#key-input", web_server.key)
    page.get_by_role("button", name="Connect").click()

    page.select_option("#platform", "youtube")
    page.get_by_text("Channel", exact=True).click()
    page.fill("#channel-url", PREVIEW["url"])
    with page.expect_request("**/preview?*") as preview_request:
        page.get_by_role("button", name="Preview").click()
    assert "page_size=50" in preview_request.value.url
    expect(page.locator("#preview-list li")).to_have_count(3)
    expect(page.locator("#preview-count")).to_have_text("3 of 3 selected")
    page.get_by_text("Why the sea is salty").click()
    expect(page.locator("#preview-count")).to_have_text("2 of 3 selected")
    page.select_option("#embedding", "jina-v4")
    page.fill("input[name=jina_v4_dimensions]", "64")
    shoot(page, tmp_path, "new-job-channel", keep=True)

    with page.expect_request("**/api/public/bulk/process") as process_request:
        page.get_by_role("button", name="Start processing").click()
    body = process_request.value.post_data_json
    assert body["input_method"] == "channel" and body["channel_url"] == PREVIEW["url"]
    assert body["selected_content"] == ["vid1", "vid2"]
    assert body["embedding_model"]["id"] == "jina-v4"
    assert body["embedding_model"]["jina_v4_dimensions"] == 64
    assert body["embedding_model"]["jina_v4_late_chunking"] is True
    expect(page.locator("#job-error")).to_contain_text(
        "embedding_model.dimensions: Must be between 128 and 2048"
    )


@pytest.mark.slow
def test_a_diarized_recording_shows_speaker_turns_that_take_names(
    page: Page, web_server: LiveServer, tmp_path: Path
) -> None:
    recording = write_wav(conversation(DATA).audio, tmp_path / "conversation.wav")
    page.goto(web_server.url + "/")
    page.fill("#key-input", web_server.key)
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#workspace")).to_be_visible()

    page.set_input_files("#file-input", str(recording))
    upload = page.locator(".upload").filter(has_text="conversation.wav")
    expect(upload.locator(".upload-state")).to_have_text("Uploaded", timeout=60_000)
    expect(page.locator("#speaker-counts")).to_be_hidden()
    page.get_by_label("Label speakers (diarize)").check()
    page.fill("#max-speakers", "4")
    page.fill("input[name=chunkSize]", "16")  # about a turn a chunk
    page.fill("input[name=chunkOverlap]", "0")
    page.fill("#job-id", "web-speakers")
    with page.expect_request("**/api/public/bulk/process") as process_request:
        page.get_by_role("button", name="Start processing").click()
    settings = process_request.value.post_data_json["settings"]
    assert settings["diarize"] is True and settings["max_speakers"] == 4
    assert "min_speakers" not in settings

    job = page.locator('.job[data-job-id="web-speakers"]')
    expect(job.locator(".pct")).to_have_text("100%", timeout=240_000)
    expect(job.locator(".badge")).to_have_text("completed")
    job.get_by_role("button", name="Transcript").click()
    view = job.locator(".transcript")
    turns = view.locator(".turn")
    expect(turns.first).to_be_visible(timeout=30_000)
    expect(turns.first.locator(".turn-time")).to_have_text(re.compile(r"^\d\d:\d\d$"))
    speakers = turns.locator(".turn-speaker").all_text_contents()
    assert set(speakers) == {"SPEAKER_00", "SPEAKER_01"}, speakers
    # consecutive segments of one speaker make one turn, and each speaker has a colour
    assert all(a != b for a, b in zip(speakers, speakers[1:], strict=False)), speakers
    colors = {t.get_attribute("data-speaker"): t.get_attribute("data-color") for t in turns.all()}
    assert len(set(colors.values())) == 2, colors
    # each turn's segments and time seek the recording's player
    expect(view.locator("audio")).to_have_count(1)
    expect(turns.first.locator(".seg.seekable").first).to_be_visible()
    expect(turns.first.locator("button.turn-time")).to_be_visible()
    shoot(page, tmp_path, "transcript")

    view.get_by_label("SPEAKER_00").fill("Host")
    view.get_by_role("button", name="Save names").click()
    host = turns.filter(has=page.locator(".turn-speaker", has_text="Host"))
    expect(host.first).to_be_visible(timeout=30_000)
    named = turns.locator(".turn-speaker").all_text_contents()
    assert set(named) == {"Host", "SPEAKER_01"}, named
    assert host.first.get_attribute("data-color") == colors["SPEAKER_00"]
    expect(view.get_by_label("SPEAKER_00")).to_have_value("Host")
    answer = httpx.get(
        web_server.url + "/api/public/bulk/job/web-speakers/items/0/transcript",
        headers=auth(web_server),
    )
    named_in_api = {s["label"]: s["name"] for s in answer.json()["speakers"]}
    assert named_in_api["SPEAKER_00"] == "Host", named_in_api

    # the subtitles come through the API key, with the new name
    with page.expect_download(timeout=30_000) as download_info:
        view.get_by_role("button", name="SRT").click()
    download = download_info.value
    assert download.suggested_filename == "web-speakers-0.srt"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert "Host: " in saved.read_text() and " --> " in saved.read_text()

    # search shows each hit's speaker, and finds by the new name
    page.get_by_role("tab", name="Search").click()
    page.fill("#search-query", "what you can do for your country")
    page.fill("#search-speaker", "Host")
    with page.expect_request("**/api/public/bulk/search") as search_request:
        page.get_by_role("button", name="Search", exact=True).click()
    assert search_request.value.post_data_json["speaker"] == "Host"
    hits = page.locator(".hit")
    expect(hits.first.locator(".hit-speaker")).to_have_text("Host", timeout=30_000)
    assert set(hits.locator(".hit-speaker").all_text_contents()) == {"Host"}
    shoot(page, tmp_path, "search-speaker")


def auth(live: LiveServer) -> dict[str, str]:
    """The bearer header of the live server's user."""
    return {"Authorization": f"Bearer {live.key}"}
