"""Platform jobs through the API: channels, selection, captions first, reruns, safety."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import PREFIX, Api, job_body
from tests.sources.fixtures import MediaServer, channel_info, register, video_info

pytestmark = pytest.mark.slow

CHANNEL = "https://www.youtube.com/@creator/videos"
VIDEOS = [  # id, recording, title, has captions
    ("capt0000001", "clip01.flac", "Inaugural address", True),
    ("asr00000002", "clip02.wav", "Mister Quilter", False),
    ("asr00000003", "clip03.wav", "The cotton", False),
]


@pytest.fixture
def platform_api(api_factory: Callable[..., Api], media: MediaServer) -> Api:
    for vid, file, title, captions in VIDEOS:
        register(
            f"https://www.youtube.com/watch?v={vid}",
            video_info(media, "youtube", vid, file, title=title, captions=captions),
        )

    def entry(i: int) -> dict[str, Any]:
        vid, _, title, _ = VIDEOS[i]
        return {
            "_type": "url",
            "ie_key": "Youtube",
            "id": vid,
            "title": title,
            "url": f"https://www.youtube.com/watch?v={vid}",
            "duration": 10.0,
            "upload_date": "20250105",
        }

    register(CHANNEL, channel_info(media, "youtube", CHANNEL, len(VIDEOS), entry))
    return api_factory(allow_loopback_fetch=True, fetch_pause_s=0.0, fetch_backoff_s=0.1)


def _channel_job(job_id: str, selected: list[str], **settings: Any) -> dict[str, Any]:
    return job_body(
        job_id,
        [],
        platform="youtube",
        input_method="channel",
        channel_url=CHANNEL,
        selected_content=selected,
        uploaded_documents=[],
        settings={"chunkSize": 16, "chunkOverlap": 0, "maxTokens": 8192, **settings},
    )


def _items(api: Api, job_id: str) -> list[dict[str, Any]]:
    return list(api.client.get(f"{PREFIX}/job/{job_id}/items", headers=api.h()).json()["items"])


def test_preview_lists_a_channel_page_by_page(platform_api: Api) -> None:
    r = platform_api.client.get(
        f"{PREFIX}/preview", params={"url": CHANNEL, "page_size": 2}, headers=platform_api.h()
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["platform"] == "youtube" and body["has_more"] is True
    assert [i["id"] for i in body["items"]] == ["capt0000001", "asr00000002"]
    assert set(body["items"][0]) == {"id", "title", "duration", "upload_date", "url", "thumbnail"}
    page2 = platform_api.client.get(
        f"{PREFIX}/preview",
        params={"url": CHANNEL, "page_size": 2, "page": 2},
        headers=platform_api.h(),
    ).json()
    assert [i["id"] for i in page2["items"]] == ["asr00000003"] and not page2["has_more"]
    bad = platform_api.client.get(
        f"{PREFIX}/preview", params={"url": "http://169.254.169.254/x"}, headers=platform_api.h()
    )
    assert bad.status_code == 400 and bad.json()["details"]["field"] == "url"


def test_a_channel_job_uses_captions_first_and_deep_links(
    platform_api: Api, media: MediaServer
) -> None:
    api = platform_api
    body = _channel_job("chan-1", ["capt0000001", "asr00000002", "notinchan01"])
    assert api.client.post(f"{PREFIX}/process", json=body, headers=api.h()).status_code == 200
    status = api.wait("chan-1")
    assert status["status"] == "completed"
    assert status["result"] == {
        **status["result"],
        "total_items": 3,
        "completed_items": 2,
        "failed_items": 1,
    }
    items = {i["content_id"]: i for i in _items(api, "chan-1")}
    captioned, spoken = items["youtube-capt0000001"], items["youtube-asr00000002"]
    assert captioned["transcript_source"] == "captions" and spoken["transcript_source"] == "asr"
    assert captioned["title"] == "Inaugural address"
    assert items["youtube-notinchan01"]["status"] == "failed"
    assert "not in the channel" in items["youtube-notinchan01"]["error"]
    assert media.hits.get("/media/clip01.flac") is None  # captions: no audio download
    assert media.hits["/media/clip02.wav"] == 1
    # The caption cue at 1:33 gives its chunk that start time and deep link.
    r = api.client.post(
        f"{PREFIX}/search",
        json={"query": "ask what you can do for your country", "job_id": "chan-1", "top_k": 1},
        headers=api.h(),
    )
    hit = r.json()["results"][0]
    assert hit["start_s"] == 93.0 and hit["title"] == "Inaugural address"
    assert hit["url"] == "https://www.youtube.com/watch?v=capt0000001"
    if "deep_link" in hit:
        assert hit["deep_link"] == "https://www.youtube.com/watch?v=capt0000001&t=93s"


def test_a_second_run_of_a_channel_fetches_nothing_new(
    platform_api: Api, media: MediaServer
) -> None:
    api = platform_api
    assert (
        api.client.post(
            f"{PREFIX}/process", json=_channel_job("first", []), headers=api.h()
        ).status_code
        == 200
    )
    assert api.wait("first")["result"]["completed_items"] == 3
    hits = dict(media.hits)
    assert (
        api.client.post(
            f"{PREFIX}/process", json=_channel_job("again", []), headers=api.h()
        ).status_code
        == 200
    )
    again = api.wait("again")
    assert again["status"] == "completed" and again["result"]["total_items"] == 0
    assert media.hits == hits  # nothing downloaded again
    # Forced, the same videos are processed again from the stored transcripts.
    forced = _channel_job("forced", [], force=True)
    assert api.client.post(f"{PREFIX}/process", json=forced, headers=api.h()).status_code == 200
    status = api.wait("forced")
    assert status["result"]["completed_items"] == 3
    assert media.hits == hits


def test_pasted_urls_reuse_a_stored_transcript(platform_api: Api, media: MediaServer) -> None:
    api = platform_api
    url = "https://www.youtube.com/watch?v=asr00000003"
    one = job_body(
        "urls-1",
        [],
        platform="youtube",
        input_method="urls",
        pasted_urls=[url],
        uploaded_documents=[],
    )
    assert api.client.post(f"{PREFIX}/process", json=one, headers=api.h()).status_code == 200
    assert api.wait("urls-1")["status"] == "completed"
    two = {**one, "job_id": "urls-2"}
    assert api.client.post(f"{PREFIX}/process", json=two, headers=api.h()).status_code == 200
    assert api.wait("urls-2")["status"] == "completed"
    assert media.hits["/media/clip03.wav"] == 1
    assert _items(api, "urls-2")[0]["transcript_source"] == "asr"


@pytest.mark.parametrize(
    ("url", "platform"),
    [
        ("http://localhost:9/watch?v=x", "youtube"),
        ("http://127.0.0.1/video", "youtube"),
        ("http://169.254.169.254/latest/meta-data/", "youtube"),
        ("file:///etc/passwd", "youtube"),
        ("https://www.tiktok.com/@creator/video/1", "youtube"),
        ("https://example.com/video.mp4", "youtube"),
    ],
)
def test_unsafe_or_foreign_urls_are_refused_at_submission(
    api_factory: Callable[..., Api], url: str, platform: str
) -> None:
    api = api_factory()
    body = job_body(
        "unsafe",
        [],
        platform=platform,
        input_method="urls",
        pasted_urls=[url],
        uploaded_documents=[],
    )
    r = api.client.post(f"{PREFIX}/process", json=body, headers=api.h())
    assert r.status_code == 400, r.text
    assert r.json()["details"]["field"] == "pasted_urls[0]"


def test_an_item_over_the_size_cap_fails_alone(
    api_factory: Callable[..., Api], media: MediaServer
) -> None:
    register(
        "https://www.youtube.com/watch?v=big00000001",
        video_info(media, "youtube", "big00000001", "clip09.wav", title="Big"),
    )
    register(
        "https://www.youtube.com/watch?v=ok000000001",
        video_info(media, "youtube", "ok000000001", "clip16.wav", title="Small"),
    )
    api = api_factory(allow_loopback_fetch=True, fetch_pause_s=0.0, max_media_bytes=300_000)
    body = job_body(
        "caps",
        [],
        platform="youtube",
        input_method="urls",
        uploaded_documents=[],
        pasted_urls=[
            "https://www.youtube.com/watch?v=big00000001",
            "https://www.youtube.com/watch?v=ok000000001",
        ],
    )
    assert api.client.post(f"{PREFIX}/process", json=body, headers=api.h()).status_code == 200
    status = api.wait("caps")
    assert status["result"]["completed_items"] == 1 and status["result"]["failed_items"] == 1
    big = _items(api, "caps")[0]
    assert big["status"] == "failed" and "larger than" in big["error"]


def test_ragcast_preview_command(
    platform_api: Api, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """The CLI lists a channel through a live server."""
    import threading

    import uvicorn
    from typer.testing import CliRunner

    from ragcast.cli import app

    config = uvicorn.Config(platform_api.client.app, port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)  # the TestClient already runs the app's lifespan
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        result = CliRunner().invoke(
            app,
            [
                "preview",
                CHANNEL,
                "--page-size",
                "2",
                "--json",
                "--server",
                f"http://127.0.0.1:{port}",
                "--api-key",
                platform_api.keys["alice"],
            ],
        )
    finally:
        server.should_exit = True
        thread.join()
    assert result.exit_code == 0, result.output
    assert '"capt0000001"' in result.output and '"has_more": true' in result.output
