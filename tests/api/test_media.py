"""Hearing the moment: an item's recording served with ranges, signed links a browser can
follow, audio renditions of videos, and what retention keeps (across a restart too)."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from ragcast.api.app import create_app
from ragcast.auth import create_key, revoke_key
from ragcast.pipeline import media as media_module
from ragcast.sources import ytdlp
from ragcast.store.models import Item, Job, Upload
from ragcast.tickets import MediaSigner
from tests.conftest import DATA, PREFIX, Api, job_body, make_settings
from tests.sources.fixtures import FIXTURES, FixtureIE, MediaServer, register, video_info

FLAC = DATA / "clip01.flac"  # "... ask not what your country can do for you ..."
HEAR = "hear"
GONE_A, GONE_B = "gone-a", "gone-b"
AUDIO_ONLY = "audio-only"
USERS = ("alice", "bob", "root")


def make_video(source: Path, out: Path) -> Path:
    """A short MP4 (a test pattern and ``source``'s sound), made with ffmpeg."""
    codec = "libx264" if "libx264" in _encoders() else "mpeg4"
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", "testsrc=size=64x64:rate=5", "-i", str(source)),
            *("-shortest", "-c:v", codec, "-pix_fmt", "yuv420p", "-c:a", "aac", str(out)),
        ],
        check=True,
        timeout=120,
    )
    return out


def _encoders() -> str:
    return subprocess.run(
        ["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, check=True
    ).stdout


def streams(data: bytes, tmp: Path) -> list[dict[str, Any]]:
    """The streams ffprobe reads in ``data``."""
    path = tmp / "probe.bin"
    path.write_bytes(data)
    run = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return list(json.loads(run.stdout)["streams"])


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One app; one active job per user, so a second job on an upload waits its turn."""
    settings = make_settings(tmp_path_factory.mktemp("media"), max_active_jobs_per_user=1)
    app = create_app(settings)
    with app.state.ctx.db.session() as s:
        keys = {name: create_key(s, name, admin=name == "root")[0] for name in USERS}
    with TestClient(app) as client:
        yield Api(client=client, settings=settings, keys=keys)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Mr. Quilter, the apostle of the middle classes, on a test pattern."""
    return make_video(DATA / "clip02.wav", tmp_path_factory.mktemp("video") / "talk.mp4")


@pytest.fixture(scope="module")
def other_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first great sorrow of his life, on a test pattern."""
    return make_video(DATA / "clip03.wav", tmp_path_factory.mktemp("video") / "sorrow.mp4")


def submit(api: Api, job_id: str, docs: list[str], **settings: Any) -> dict[str, Any]:
    body = {"chunkSize": 64, "chunkOverlap": 8, "language": "en", **settings}
    r = api.submit(job_id, docs, settings=body)
    assert r.status_code == 200, r.text
    return api.wait(job_id)


@pytest.fixture(scope="module")
def hear(api: Api, video: Path) -> dict[str, Any]:
    """Alice's job of a FLAC recording and a video, everything kept (the default)."""
    flac, mp4 = api.upload(FLAC), api.upload(video)
    status = submit(api, HEAR, [flac, mp4])
    assert status["status"] == "completed" and status["result"]["completed_items"] == 2, status
    items = api.client.get(f"{PREFIX}/job/{HEAR}/items", headers=api.h()).json()["items"]
    return {"flac": items[0]["content_id"], "video": items[1]["content_id"]}


def media(api: Api, content_id: str, user: str = "alice", **headers: str) -> Any:
    return api.client.get(f"{PREFIX}/media/{content_id}", headers={**api.h(user), **headers})


def search(api: Api, query: str, **body: Any) -> list[dict[str, Any]]:
    r = api.client.post(f"{PREFIX}/search", json={"query": query, **body}, headers=api.h())
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


def transcript(api: Api, job_id: str, index: int = 0) -> dict[str, Any]:
    r = api.client.get(f"{PREFIX}/job/{job_id}/items/{index}/transcript", headers=api.h())
    assert r.status_code == 200, r.text
    return dict(r.json())


def assert_error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.headers, r.content[:300])
    body = dict(r.json())
    assert body["success"] is False and body["error"] == code and body["message"], body
    return body


def without_key(api: Api, url: str, **headers: str) -> Any:
    """Follow a link as a browser's ``<audio>`` would: no Authorization header."""
    return api.client.get(url.split("#")[0], headers=headers)


# -- the recording, with ranges ---------------------------------------------------------


def test_the_whole_recording_is_served_with_its_type_and_ranges_offered(
    api: Api, hear: dict[str, Any]
) -> None:
    r = media(api, hear["flac"])
    assert r.status_code == 200
    assert r.content == FLAC.read_bytes()
    assert r.headers["content-type"] == "audio/flac"
    assert r.headers["accept-ranges"] == "bytes"
    assert int(r.headers["content-length"]) == FLAC.stat().st_size
    assert r.headers["etag"] and r.headers["last-modified"]


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-1999", 1000, 1999),
        ("bytes=100-", 100, None),
        ("bytes=-100", -100, None),
        ("bytes=1000000-99999999", 1000000, None),  # a last byte past the end is cut
    ],
)
def test_a_range_is_answered_206_with_exactly_its_bytes(
    api: Api, hear: dict[str, Any], header: str, first: int, last: int | None
) -> None:
    data = FLAC.read_bytes()
    size = len(data)
    start = first if first >= 0 else size + first
    end = (last if last is not None else size - 1) + 1
    r = media(api, hear["flac"], Range=header)
    assert r.status_code == 206, r.text
    assert r.content == data[start:end]
    assert r.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"
    assert int(r.headers["content-length"]) == end - start
    assert r.headers["content-type"] == "audio/flac"
    assert r.headers["accept-ranges"] == "bytes"


@pytest.mark.parametrize("header", ["bytes={size}-", "bytes={size}-{size}", "bytes=-0"])
def test_a_range_past_the_end_is_416_with_the_size(
    api: Api, hear: dict[str, Any], header: str
) -> None:
    size = FLAC.stat().st_size
    r = media(api, hear["flac"], Range=header.format(size=size))
    assert_error(r, 416, "range_not_satisfiable")
    assert r.headers["content-range"] == f"bytes */{size}"


@pytest.mark.parametrize(
    "header", ["bytes=abc", "items=0-10", "bytes=10-5", "bytes=0-1,5-6", "bytes=-", "bytes"]
)
def test_a_malformed_range_is_ignored_and_the_whole_file_sent(
    api: Api, hear: dict[str, Any], header: str
) -> None:
    r = media(api, hear["flac"], Range=header)
    assert r.status_code == 200
    assert r.content == FLAC.read_bytes()


def test_if_range_sends_the_range_only_for_the_same_version(api: Api, hear: dict[str, Any]) -> None:
    etag = media(api, hear["flac"]).headers["etag"]
    same = media(api, hear["flac"], Range="bytes=0-9", **{"If-Range": etag})
    assert same.status_code == 206 and len(same.content) == 10
    stale = media(api, hear["flac"], Range="bytes=0-9", **{"If-Range": '"0-0"'})
    assert stale.status_code == 200 and stale.content == FLAC.read_bytes()


def test_only_the_owner_gets_the_recording(api: Api, hear: dict[str, Any]) -> None:
    body = assert_error(media(api, hear["flac"], user="bob"), 404, "not_found")
    assert hear["flac"] in body["message"]
    assert_error(media(api, "upload-0000000000000000"), 404, "not_found")
    r = api.client.get(f"{PREFIX}/media/{hear['flac']}")
    assert_error(r, 401, "unauthorized")


# -- videos play as audio ---------------------------------------------------------------


def test_a_video_plays_as_audio_made_once_for_concurrent_requests(
    api: Api, hear: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    runs: list[Path] = []
    real = media_module._ffmpeg

    def counted(source: Path, out: Path) -> None:
        runs.append(source)
        time.sleep(0.3)  # the others arrive while this one works
        real(source, out)

    monkeypatch.setattr(media_module, "_ffmpeg", counted)
    answers: list[Any] = [None] * 4

    def fetch(n: int) -> None:
        answers[n] = media(api, hear["video"])

    threads = [threading.Thread(target=fetch, args=(n,)) for n in range(len(answers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(a is not None and a.status_code == 200 for a in answers), answers
    assert len(runs) == 1  # one ffmpeg for four requests
    assert {a.content for a in answers} == {answers[0].content}
    r = answers[0]
    assert r.headers["content-type"] == "audio/webm"
    found = streams(r.content, tmp_path)
    assert [s["codec_type"] for s in found] == ["audio"], found
    assert found[0]["codec_name"] == "opus"
    # the rendition lies beside the upload in the data dir, and is served with ranges
    uploads = api.settings.data_path("uploads")
    assert len(list(uploads.glob(f"*{media_module.RENDITION_SUFFIX}"))) == 1
    part = media(api, hear["video"], Range="bytes=0-1023")
    assert part.status_code == 206 and part.content == r.content[:1024]


def test_one_rendition_is_made_however_many_threads_ask(
    api: Api, video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = api.settings.data_path("uploads", "threads.mp4")
    shutil.copy(video, original)
    runs: list[Path] = []
    real = media_module._ffmpeg

    def counted(source: Path, out: Path) -> None:
        runs.append(source)
        time.sleep(0.3)
        real(source, out)

    monkeypatch.setattr(media_module, "_ffmpeg", counted)
    made: list[Path] = []
    threads = [
        threading.Thread(
            target=lambda: made.append(media_module.make_rendition(api.settings, original))
        )
        for _ in range(5)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(runs) == 1 and len(made) == 5 and len(set(made)) == 1
    assert made[0].is_file() and not list(original.parent.glob("*.part"))
    made[0].unlink()
    original.unlink()


# -- links a browser can follow ---------------------------------------------------------


def test_hits_carry_a_signed_media_url_and_a_deep_link_to_the_moment(
    api: Api, hear: dict[str, Any]
) -> None:
    hits = search(api, "ask not what your country can do for you", content_id=hear["flac"])
    assert hits
    for hit in hits:
        url = hit["media_url"]
        assert url and url.startswith(f"http://testserver{PREFIX}/media/{hear['flac']}?token=")
        assert hit["url"] is None
        assert hit["deep_link"] == f"{url}#t={int(hit['start_s'])}"
    r = without_key(api, hits[0]["deep_link"])
    assert r.status_code == 200 and r.content == FLAC.read_bytes()
    part = without_key(api, hits[0]["media_url"], Range="bytes=-100")
    assert part.status_code == 206 and part.content == FLAC.read_bytes()[-100:]
    video_hits = search(api, "apostle of the middle classes", content_id=hear["video"])
    assert video_hits and video_hits[0]["media_url"]
    assert without_key(api, video_hits[0]["media_url"]).headers["content-type"] == "audio/webm"


def test_the_transcript_carries_the_media_url(api: Api, hear: dict[str, Any]) -> None:
    body = transcript(api, HEAR)
    assert body["content_id"] == hear["flac"]
    r = without_key(api, body["media_url"])
    assert r.status_code == 200 and r.content == FLAC.read_bytes()
    srt = api.client.get(
        f"{PREFIX}/job/{HEAR}/items/0/transcript", params={"format": "srt"}, headers=api.h()
    )
    assert srt.status_code == 200 and "media_url" not in srt.text


def test_a_tampered_foreign_or_expired_link_is_refused(api: Api, hear: dict[str, Any]) -> None:
    url = search(api, "ask not what your country", content_id=hear["flac"])[0]["media_url"]
    token = parse_qs(urlsplit(url).query)["token"][0]
    base = f"{PREFIX}/media/{hear['flac']}"
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert_error(api.client.get(base, params={"token": tampered}), 401, "unauthorized")
    # a user or key swapped into a valid token breaks its signature
    user, key, expires, mac = token.split(".")
    other = f"{int(user) + 1}.{key}.{expires}.{mac}"
    assert_error(api.client.get(base, params={"token": other}), 401, "unauthorized")
    # a link to one content opens no other
    r = api.client.get(f"{PREFIX}/media/{hear['video']}", params={"token": token})
    assert_error(r, 401, "unauthorized")
    assert_error(api.client.get(base, params={"token": "not-a-token"}), 401, "unauthorized")
    signer: MediaSigner = api.client.app.state.media_signer  # type: ignore[attr-defined]
    past = signer.sign(int(user), int(key), hear["flac"], expires=int(time.time()) - 1)
    body = assert_error(api.client.get(base, params={"token": past}), 401, "unauthorized")
    assert "expired" in body["message"]
    # the same claims, unexpired, are accepted: it was the expiry that refused it
    fresh = signer.sign(int(user), int(key), hear["flac"])
    assert api.client.get(base, params={"token": fresh}).status_code == 200


def test_a_revoked_keys_links_die_with_it(api: Api, hear: dict[str, Any]) -> None:
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.session() as s:
        key, _ = create_key(s, "alice")
    r = api.client.post(
        f"{PREFIX}/search",
        json={"query": "ask not what your country", "content_id": hear["flac"]},
        headers={"Authorization": f"Bearer {key}"},
    )
    url = r.json()["results"][0]["media_url"]
    assert without_key(api, url).status_code == 200
    with ctx.db.session() as s:
        assert revoke_key(s, key) == 1
    body = assert_error(without_key(api, url), 401, "unauthorized")
    assert "revoked" in body["message"]
    # alice's other key, and its links, still work
    fresh = search(api, "ask not what your country", content_id=hear["flac"])[0]["media_url"]
    assert without_key(api, fresh).status_code == 200


# -- retention --------------------------------------------------------------------------


def test_keep_media_outside_its_values_is_a_400_naming_the_field(api: Api) -> None:
    r = api.submit("bad-keep", [], settings={"keepMedia": "forever"})
    body = assert_error(r, 400, "validation_error")
    assert body["details"]["field"] == "settings.keepMedia"
    assert "original" in body["details"]["issue"]


@pytest.fixture(scope="module")
def gone(api: Api) -> dict[str, Any]:
    """One upload in two jobs that keep nothing; the second waits while the first runs."""
    doc = api.upload(DATA / "clip05.wav")
    for job_id in (GONE_A, GONE_B):
        r = api.submit(
            job_id, [doc], settings={"chunkSize": 64, "chunkOverlap": 8, "keepMedia": "none"}
        )
        assert r.status_code == 200, r.text
    statuses = {job_id: api.wait(job_id) for job_id in (GONE_A, GONE_B)}
    items = api.client.get(f"{PREFIX}/job/{GONE_A}/items", headers=api.h()).json()["items"]
    return {"doc": doc, "statuses": statuses, "content": items[0]["content_id"]}


def upload_row(api: Api, doc: str) -> Upload:
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.session() as s:
        row = s.scalar(select(Upload).where(Upload.document_id == doc))
        assert row is not None
        s.expunge(row)
        return row


def test_keep_none_deletes_the_upload_only_after_the_last_job_using_it(
    api: Api, gone: dict[str, Any]
) -> None:
    for status in gone["statuses"].values():  # the second job still found the file
        assert status["status"] == "completed", status
        assert status["result"]["completed_items"] == 1, status
    row = upload_row(api, gone["doc"])
    assert row.media_kept == "none" and not Path(row.path).exists()
    body = assert_error(media(api, gone["content"]), 404, "not_found")
    assert "no longer kept" in body["message"]
    hits = search(api, "john dashwood", content_id=gone["content"])
    assert hits and all(h["media_url"] is None and h["deep_link"] is None for h in hits)
    assert transcript(api, GONE_B)["media_url"] is None
    # a job naming the upload now fails its item with the reason, not with a crash
    r = api.submit("gone-c", [gone["doc"]])
    assert r.status_code == 200, r.text
    status = api.wait("gone-c")
    assert status["status"] == "failed" and "no longer available" in status["error"]


@pytest.fixture(scope="module")
def audio_only(api: Api, other_video: Path) -> dict[str, Any]:
    """A video job that keeps its audio only."""
    doc = api.upload(other_video)
    status = submit(api, AUDIO_ONLY, [doc], keepMedia="audio")
    assert status["status"] == "completed", status
    items = api.client.get(f"{PREFIX}/job/{AUDIO_ONLY}/items", headers=api.h()).json()["items"]
    return {"doc": doc, "content": items[0]["content_id"]}


def test_keep_audio_keeps_a_rendition_only(
    api: Api, audio_only: dict[str, Any], tmp_path: Path
) -> None:
    row = upload_row(api, audio_only["doc"])
    rendition = media_module.rendition_path(api.settings, Path(row.path))
    assert row.media_kept == "audio" and not Path(row.path).exists() and rendition.is_file()
    r = media(api, audio_only["content"])
    assert r.status_code == 200 and r.headers["content-type"] == "audio/webm"
    assert [s["codec_type"] for s in streams(r.content, tmp_path)] == ["audio"]
    hits = search(api, "the first great sorrow of his life", content_id=audio_only["content"])
    assert hits and all(h["media_url"] for h in hits)
    assert transcript(api, AUDIO_ONLY)["media_url"]
    # another job of the same upload transcribes the rendition kept
    status = submit(api, "audio-again", [audio_only["doc"]])
    assert status["status"] == "completed", status


def test_deleting_jobs_removes_their_recordings_and_renditions(
    api: Api, hear: dict[str, Any], audio_only: dict[str, Any]
) -> None:
    assert media(api, hear["video"]).status_code == 200  # its rendition exists
    uploads = api.settings.data_path("uploads")
    renditions = set(uploads.glob(f"*{media_module.RENDITION_SUFFIX}"))
    assert len(renditions) == 2  # the video of `hear`, the audio kept of `audio-only`
    r = api.client.delete(f"{PREFIX}/job/{HEAR}", headers=api.h())
    assert r.status_code == 200, r.text
    assert r.json()["deleted_uploads"] == 2
    assert len(set(uploads.glob(f"*{media_module.RENDITION_SUFFIX}"))) == 1
    assert_error(media(api, hear["flac"]), 404, "not_found")
    cleaned = api.client.delete(
        f"{PREFIX}/cleanup", params={"older_than_hours": 0}, headers=api.h("root")
    )
    assert cleaned.status_code == 200, cleaned.text
    assert not list(uploads.glob(f"*{media_module.RENDITION_SUFFIX}"))
    assert not list(uploads.iterdir())


# -- retention holds across a restart ---------------------------------------------------


def _app(tmp: Path, **settings: Any) -> tuple[TestClient, Api]:
    app = create_app(make_settings(tmp, **settings))
    with app.state.ctx.db.session() as s:
        keys = {"alice": create_key(s, "alice")[0]}
    client = TestClient(app)
    client.__enter__()
    return client, Api(client=client, settings=app.state.ctx.settings, keys=keys)


def _eventually(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.1)


def test_retention_holds_and_is_finished_after_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    client, api = _app(data, keep_media="none")
    try:
        none_doc = api.upload(DATA / "clip11.wav")
        audio_doc = api.upload(DATA / "clip02.wav")
        assert submit(api, "by-setting", [none_doc])["status"] == "completed"
        assert submit(api, "by-job", [audio_doc], keepMedia="audio")["status"] == "completed"
        none_row, audio_row = upload_row(api, none_doc), upload_row(api, audio_doc)
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        with ctx.db.session() as s:
            none_content = s.scalar(
                select(Item.content_id).join(Job).where(Job.job_id == "by-setting")
            )
            audio_content = s.scalar(
                select(Item.content_id).join(Job).where(Job.job_id == "by-job")
            )
            # a crash after the decision of `by-job` but before it was recorded
            s.execute(update(Upload).where(Upload.id == audio_row.id).values(media_kept=None))
            s.execute(update(Item).where(Item.source_ref == audio_doc).values(media_kept=None))
    finally:
        client.__exit__(None, None, None)
    assert none_row.media_kept == "none" and audio_row.media_kept == "audio"
    # ... and a crash between the decision and the deletion of `by-setting`'s file
    shutil.copy(DATA / "clip11.wav", none_row.path)
    shutil.copy(DATA / "clip02.wav", audio_row.path)

    client, api = _app(data)  # the default keeps originals: earlier decisions hold
    try:
        _eventually(lambda: not Path(none_row.path).exists())
        _eventually(lambda: not Path(audio_row.path).exists())
        assert upload_row(api, audio_doc).media_kept == "audio"
        body = assert_error(media(api, str(none_content)), 404, "not_found")
        assert "no longer kept" in body["message"]
        r = media(api, str(audio_content))
        assert r.status_code == 200 and r.headers["content-type"] == "audio/webm"
        assert search(api, "system is established", content_id=none_content)[0]["media_url"] is None
        hits = search(api, "apostle of the middle classes", content_id=audio_content)
        assert hits and without_key(api, hits[0]["media_url"]).status_code == 200
    finally:
        client.__exit__(None, None, None)


# -- fetched platform media -------------------------------------------------------------


@pytest.fixture
def platform(api_factory: Callable[..., Api]) -> Iterator[tuple[Api, MediaServer]]:
    """An app fetching two YouTube videos (no captions) from a local media server."""
    server = MediaServer()
    ytdlp.EXTRA_EXTRACTORS.append(FixtureIE)
    try:
        for vid, file in (("asr00000002", "clip02.wav"), ("asr00000003", "clip03.wav")):
            url = f"https://www.youtube.com/watch?v={vid}"
            register(url, video_info(server, "youtube", vid, file, title=vid, duration=9.0))
        yield api_factory(allow_loopback_fetch=True, fetch_pause_s=0.0), server
    finally:
        ytdlp.EXTRA_EXTRACTORS.remove(FixtureIE)
        FIXTURES.clear()
        server.close()


def test_fetched_platform_media_plays_while_kept(platform: tuple[Api, MediaServer]) -> None:
    api = platform[0]
    for job_id, vid, keep in (("kept", "asr00000002", None), ("dropped", "asr00000003", "none")):
        settings = {"chunkSize": 64, "chunkOverlap": 8, "language": "en"}
        if keep is not None:
            settings["keepMedia"] = keep
        urls = [f"https://www.youtube.com/watch?v={vid}"]
        body = job_body(
            job_id, [], platform="youtube", input_method="urls", pasted_urls=urls, settings=settings
        )
        r = api.client.post(f"{PREFIX}/process", json=body, headers=api.h())
        assert r.status_code == 200, r.text
        assert api.wait(job_id)["status"] == "completed"
    r = media(api, "youtube-asr00000002")
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    assert r.content == (DATA / "clip02.wav").read_bytes()
    hit = search(api, "the apostle of the middle classes", job_id="kept")[0]
    assert hit["media_url"] and without_key(api, hit["media_url"]).status_code == 200
    assert hit["deep_link"].startswith("https://www.youtube.com/watch?v=asr00000002&t=")
    # the item that kept nothing: its fetched file is gone, its platform link stays
    assert not api.settings.data_path("media", "youtube-asr00000003").exists()
    body = assert_error(media(api, "youtube-asr00000003"), 404, "not_found")
    assert "no longer kept" in body["message"]
    hit = search(api, "the first great sorrow of his life", job_id="dropped")[0]
    assert hit["media_url"] is None
    assert hit["deep_link"].startswith("https://www.youtube.com/watch?v=asr00000003&t=")
