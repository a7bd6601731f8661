"""The dashboard plays what it found: a real upload, transcribed and indexed, is listed in
the library by its file's name, and its search hits and transcript segments play the
recording from their moment in headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from tests.client.conftest import LiveServer
from tests.conftest import DATA
from tests.web.test_dashboard import shoot

CLIP = "clip09.wav"  # 26.7 s: "... here's some more words words words ..." late in it
PLAYING = "a => !a.paused && a.readyState >= 2 && a.currentTime > 0"


def playing_at(page: Page, selector: str) -> float:
    """The audio element's position once it plays (it must start without a second click)."""
    audio = page.locator(selector)
    audio.evaluate(
        f"""a => new Promise((resolve, reject) => {{
            const ok = {PLAYING};
            if (ok(a)) return resolve();
            const check = () => ok(a) && resolve();
            a.addEventListener('timeupdate', check);
            a.addEventListener('playing', check);
            setTimeout(() => reject(new Error('not playing: paused=' + a.paused +
                ' readyState=' + a.readyState + ' t=' + a.currentTime +
                ' error=' + (a.error && a.error.message))), 20000);
        }})"""
    )
    return float(audio.evaluate("a => a.currentTime"))


@pytest.mark.slow
def test_hits_and_transcript_segments_play_from_their_moment(
    page: Page, web_server: LiveServer, tmp_path: Path
) -> None:
    page.goto(web_server.url + "/")
    page.fill("#key-input", web_server.key)
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#workspace")).to_be_visible()

    page.set_input_files("#file-input", str(DATA / CLIP))
    upload = page.locator(".upload").filter(has_text=CLIP)
    expect(upload.locator(".upload-state")).to_have_text("Uploaded", timeout=60_000)
    page.fill("input[name=chunkSize]", "32")  # several chunks: later ones start past 0 s
    page.fill("input[name=chunkOverlap]", "0")
    page.fill("#job-id", "web-play")
    page.get_by_role("button", name="Start processing").click()
    job = page.locator('.job[data-job-id="web-play"]')
    expect(job.locator(".pct")).to_have_text("100%", timeout=240_000)
    expect(job.locator(".badge")).to_have_text("completed")
    expect(job.locator(".job-title")).to_have_text(CLIP)  # named by its file, not its id

    # The library lists the item by its file's name, with its duration, language and job.
    page.get_by_role("tab", name="Library").click()
    expect(page.locator("#library")).to_be_visible()
    expect(page.locator("#jobs")).to_be_hidden()
    row = page.locator("tr.library-item").filter(has_text=CLIP)
    expect(row).to_have_count(1, timeout=30_000)
    expect(row.locator(".library-name")).to_have_text(CLIP)
    expect(row.locator(".library-job")).to_have_text(CLIP)
    expect(row.locator(".library-language")).to_have_text("en")
    expect(row.locator("td.num")).to_have_text("00:26")
    expect(row.locator(".library-speakers")).to_have_text("–", timeout=30_000)  # not diarized
    page.fill("#library-filter", "no such title")
    expect(row).to_be_hidden()
    expect(page.locator("#library-empty")).to_have_text("No item matches the filter.")
    page.fill("#library-filter", "clip09")
    expect(row).to_be_visible()

    # A click on a transcript segment seeks there and plays; that segment is highlighted.
    row.get_by_role("button", name=CLIP).click()
    view = page.locator("#library .transcript")
    segments = view.locator(".segment.seekable")
    expect(segments.first).to_be_visible(timeout=30_000)
    assert segments.count() >= 2
    starts = [float(s) for s in segments.evaluate_all("els => els.map(e => e.dataset.start)")]
    target = max(range(len(starts)), key=lambda i: (starts[i] < 20, starts[i]))
    assert starts[target] > 0, starts
    segments.nth(target).click(position={"x": 120, "y": 6})
    at = playing_at(page, "#library .transcript audio")
    assert abs(at - starts[target]) < 1, (at, starts[target])
    expect(segments.nth(target)).to_have_class("segment seekable current")
    shoot(page, tmp_path, "library-transcript")
    # a timestamp seeks too
    segments.first.locator("button.time").click()
    page.wait_for_function(
        "() => document.querySelector('#library .transcript audio').currentTime < "
        f"{starts[target] - 0.5}"
    )
    expect(segments.first).to_have_class("segment seekable current")
    page.locator("#library .transcript audio").evaluate("a => a.pause()")

    # Where the recording is not kept, the transcript says so and its times do not seek.
    page.route(
        "**/items/0/transcript?format=json",
        lambda route: _rewrite(route, lambda body: body.update(media_url=None)),
    )
    row.get_by_role("button", name=CLIP).click()  # close
    row.get_by_role("button", name=CLIP).click()  # open again: loaded afresh
    expect(view.locator(".player-missing")).to_have_text("Recording not kept")
    expect(view.locator("audio")).to_be_hidden()
    expect(view.locator(".segment").first).to_be_visible()
    expect(view.locator(".segment.seekable")).to_have_count(0)
    expect(view.locator("button.time")).to_have_count(0)
    page.unroute("**/items/0/transcript?format=json")

    # A click on a search hit plays its recording from the hit's start_s.
    page.get_by_role("tab", name="Search").click()
    page.fill("#search-query", "here's some more words")
    page.select_option("#search-mode", "lexical")
    with page.expect_response("**/api/public/bulk/search") as answer:
        page.get_by_role("button", name="Search", exact=True).click()
    results = answer.value.json()["results"]
    assert results and all(hit["media_url"] for hit in results), results
    hits = page.locator(".hit")
    expect(hits).to_have_count(len(results), timeout=30_000)
    late = max(range(len(results)), key=lambda i: results[i]["start_s"] or 0)
    start = results[late]["start_s"]
    assert start > 0, [hit["start_s"] for hit in results]
    hit = hits.nth(late)
    expect(hit.locator(".hit-source")).to_have_text(CLIP)
    expect(hit.locator(".hit-meta")).to_contain_text(CLIP)  # the job, by its file
    hit.locator(".hit-text").click()
    at = playing_at(page, f".hit:nth-child({late + 1}) audio")
    assert abs(at - start) < 1, (at, start)
    shoot(page, tmp_path, "search-player")
    # only one recording plays at a time
    playing = "[...document.querySelectorAll('audio')].filter(a => !a.paused).length"
    assert page.evaluate(playing) == 1

    # and its "Play from" button plays from there again
    audio = f".hit:nth-child({late + 1}) audio"
    page.locator(audio).evaluate("a => { a.pause(); a.currentTime = 0; }")
    hit.locator(".play-hit").click()
    at = playing_at(page, audio)
    assert abs(at - start) < 1, (at, start)


def _rewrite(route: Route, change: Any) -> None:
    response = route.fetch()
    body = response.json()
    change(body)
    route.fulfill(response=response, body=json.dumps(body))


@pytest.mark.slow
def test_hits_without_a_recording_link_to_their_platform_or_say_so(
    page: Page, web_server: LiveServer
) -> None:
    """A platform item's hit without media opens its deep_link in a new tab; an upload
    whose recording was not kept says so rather than showing a player that cannot play."""
    results = [
        {
            "score": 0.9,
            "text": "the tides and the moon",
            "start_s": 93.0,
            "end_s": 101.0,
            "job_id": "web-platform",
            "content_id": "yt-1",
            "chunk_index": 3,
            "source_type": "youtube",
            "source": "https://www.youtube.com/watch?v=vid1",
            "title": "Tides, moons and the long shore",
            "url": "https://www.youtube.com/watch?v=vid1",
            "platform": "youtube",
            "deep_link": "https://www.youtube.com/watch?v=vid1&t=93s",
            "media_url": None,
            "speakers": [],
        },
        {
            "score": 0.8,
            "text": "the tides again",
            "start_s": 12.0,
            "end_s": 20.0,
            "job_id": "web-upload",
            "content_id": "up-1",
            "chunk_index": 1,
            "source_type": "upload",
            "source": "talk.wav",
            "title": "talk.wav",
            "url": None,
            "deep_link": None,
            "media_url": None,
            "speakers": [],
        },
    ]
    page.route(
        "**/api/public/bulk/search",
        lambda route: route.fulfill(json={"results": results, "query": "tides", "total": 2}),
    )
    page.goto(web_server.url + "/")
    page.fill("#key-input", web_server.key)
    page.get_by_role("button", name="Connect").click()
    page.get_by_role("tab", name="Search").click()
    page.fill("#search-query", "tides")
    page.get_by_role("button", name="Search", exact=True).click()
    hits = page.locator(".hit")
    expect(hits).to_have_count(2)
    platform, upload = hits.nth(0), hits.nth(1)
    expect(platform.locator("audio")).to_have_count(0)
    link = platform.locator("a.moment")
    expect(link).to_have_text("▶ Open at 01:33 ↗")
    expect(link).to_have_attribute("href", "https://www.youtube.com/watch?v=vid1&t=93s")
    expect(link).to_have_attribute("target", "_blank")
    # a click on the hit itself opens that moment in a new tab, not here
    page.evaluate("window.open = (url, target) => { window.opened = [url, target]; return null; }")
    platform.locator(".hit-text").click()
    assert page.evaluate("window.opened") == [results[0]["deep_link"], "_blank"]
    expect(upload.locator("audio")).to_have_count(0)
    expect(upload.locator(".player-missing")).to_have_text("recording not kept")
    assert page.url.startswith(web_server.url)
