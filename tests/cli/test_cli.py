"""Tests for the ``ragcast`` command: keys on the local store, jobs on a real server,
and the embedded service end to end."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from ragcast.auth import authenticate
from ragcast.cli import app
from ragcast.cli_progress import follow
from ragcast.errors import AuthError
from ragcast.runner.boot import build_context
from ragcast.settings import Settings
from tests.client.conftest import LiveServer, diarized_server
from tests.conftest import DATA


def invoke(env: dict[str, str], *args: str) -> Result:
    """Run ``ragcast ARGS`` in-process with ``env``."""
    return CliRunner().invoke(app, list(args), env=env)


def user_of(env: dict[str, str], key: str) -> str:
    """The user ``key`` authenticates as in the CLI's store (AuthError if none)."""
    ctx = build_context(Settings(data_dir=Path(env["RAGCAST_DATA_DIR"])))
    try:
        with ctx.db.session() as s:
            return authenticate(s, key).name
    finally:
        ctx.db.dispose()


def test_keys_create_list_revoke_round_trip(cli_env: dict[str, str]) -> None:
    created = invoke(cli_env, "keys", "create", "--user", "carol", "--admin")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert re.fullmatch(r"rc_[A-Za-z0-9_-]{40,}", key), created.stdout
    assert "shown only once" in created.stderr
    assert user_of(cli_env, key) == "carol"

    listed = invoke(cli_env, "keys", "list")
    assert listed.exit_code == 0
    assert key[:11] in listed.stdout and "carol" in listed.stdout
    assert key not in listed.stdout

    revoked = invoke(cli_env, "keys", "revoke", key[:11])
    assert revoked.exit_code == 0, revoked.output
    with pytest.raises(AuthError):
        user_of(cli_env, key)

    again = invoke(cli_env, "keys", "revoke", key[:11])
    assert again.exit_code == 1 and "no active key" in again.stderr
    too_short = invoke(cli_env, "keys", "revoke", "rc_")
    assert too_short.exit_code == 1 and "Error" in too_short.stderr


def test_a_missing_file_exits_2(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = invoke(cli_env, "process", str(tmp_path / "nope.wav"))
    assert result.exit_code == 2
    assert "no such file" in result.stderr and "nope.wav" in result.stderr
    assert not Path(cli_env["RAGCAST_DATA_DIR"]).exists()


def test_process_search_export_on_a_server(
    cli_env: dict[str, str], live_server: LiveServer, subtitles: Path, tmp_path: Path
) -> None:
    remote = ["--server", live_server.url, "--api-key", live_server.key]
    done = invoke(cli_env, "process", str(subtitles), "--job-id", "cli-1", *remote)
    assert done.exit_code == 0, done.output
    assert "completed" in done.stdout and "lighthouse.srt" in done.stdout

    found = invoke(cli_env, "search", "who polished the lens", "--job-id", "cli-1", *remote)
    assert found.exit_code == 0, found.output
    assert "lighthouse.srt" in found.stdout
    assert re.search(r"\d\d:\d\d-\d\d:\d\d", found.stdout)
    hits = json.loads(invoke(cli_env, "search", "lens", "--json", *remote).stdout)
    assert hits[0]["job_id"] == "cli-1"

    target = tmp_path / "tmp" / "x.csv"
    exported = invoke(
        cli_env, "export", "cli-1", "--format", "csv", "--output", str(target), *remote
    )
    assert exported.exit_code == 0, exported.output
    with target.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["job_id"] == "cli-1" for r in rows)
    assert "lighthouse" in " ".join(r["text"] for r in rows).lower()

    status = invoke(cli_env, "status", "cli-1", "--json", *remote)
    assert json.loads(status.stdout)["status"] == "completed"
    assert "cli-1" in invoke(cli_env, "jobs", *remote).stdout
    watched = invoke(cli_env, "watch", "cli-1", *remote)
    assert watched.exit_code == 0 and "completed" in watched.stdout

    # Remote commands never touch the local store.
    assert not Path(cli_env["RAGCAST_DATA_DIR"]).exists()


def test_api_errors_are_printed_and_exit_1(
    cli_env: dict[str, str], live_server: LiveServer, subtitles: Path
) -> None:
    remote = ["--server", live_server.url, "--api-key", live_server.key]
    bad = invoke(cli_env, "process", str(subtitles), "--chunk-size", "8", *remote)
    assert bad.exit_code == 1
    assert "Error:" in bad.stderr and "settings.chunkSize" in bad.stderr

    unknown = invoke(cli_env, "cancel", "no-such-job", *remote)
    assert unknown.exit_code == 1 and "not found" in unknown.stderr

    wrong_key = ["--server", live_server.url, "--api-key", "rc_" + "x" * 43]
    denied = invoke(cli_env, "jobs", *wrong_key)
    assert denied.exit_code == 1 and "Invalid or revoked API key" in denied.stderr

    no_key = invoke(cli_env, "jobs", "--server", live_server.url)
    assert no_key.exit_code == 2 and "--api-key" in no_key.stderr
    no_scheme = invoke(cli_env, "jobs", "--server", "localhost:8000", "--api-key", "rc_x")
    assert no_scheme.exit_code == 2 and "http://" in no_scheme.stderr


@pytest.mark.slow
def test_process_a_recording_on_the_embedded_service(cli_env: dict[str, str]) -> None:
    done = invoke(cli_env, "process", str(DATA / "clip02.wav"), "--job-id", "local-1")
    assert done.exit_code == 0, done.output
    assert "completed" in done.stdout and "clip02.wav" in done.stdout

    # The data stays in RAGCAST_DATA_DIR: a later embedded command finds the job.
    found = invoke(cli_env, "search", "apostle of the middle classes", "--json")
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout)
    assert hits[0]["job_id"] == "local-1" and "quilter" in hits[0]["text"].lower()


def test_failed_items_are_listed_and_a_failed_job_exits_1(
    cli_env: dict[str, str], live_server: LiveServer, subtitles: Path, tmp_path: Path
) -> None:
    remote = ["--server", live_server.url, "--api-key", live_server.key]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")

    mixed = invoke(cli_env, "process", str(subtitles), str(bad), "--job-id", "mixed", *remote)
    assert mixed.exit_code == 0, mixed.output
    assert "1 failed" in mixed.stdout and "could not decode" in mixed.stdout

    failed = invoke(cli_env, "process", str(bad), "--job-id", "all-bad", "--json", *remote)
    assert failed.exit_code == 1
    body = json.loads(failed.stdout)
    assert body["job"]["status"] == "failed"
    assert body["items"][0]["status"] == "failed" and body["items"][0]["error"]


def test_progress_falls_back_to_polling_when_the_socket_is_refused(
    live_server: LiveServer, subtitles: Path
) -> None:
    screen = io.StringIO()
    with live_server.client() as client:
        doc = client.upload(subtitles)["document_id"]
        accepted = client.process(
            {
                "job_id": "poll-1",
                "platform": "documents",
                "input_method": "upload",
                "uploaded_documents": [doc],
                "embedding_model": {"id": "local"},
                "vector_db": {"id": "chroma"},
            }
        )
        bad_ticket = accepted["websocket_url"].split("?")[0] + "?token=1.2.forged"
        status = follow(client, "poll-1", bad_ticket, Console(file=screen), poll_s=0.1)
    assert status["status"] == "completed"
    assert "polling" in screen.getvalue() and "lighthouse.srt" in screen.getvalue()


DIARIZED = "cli-talk"


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real server with one finished two-speaker job (diarized, small chunks)."""
    with diarized_server(tmp_path_factory.mktemp("talk"), DIARIZED) as live:
        yield live


def test_transcript_in_every_format_and_speaker_names(
    cli_env: dict[str, str], talk: LiveServer, tmp_path: Path
) -> None:
    remote = ["--server", talk.url, "--api-key", talk.key]
    shown = invoke(cli_env, "transcript", DIARIZED, "0", *remote)
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.stdout)
    assert [s["label"] for s in body["speakers"]] == ["SPEAKER_00", "SPEAKER_01"]
    assert all(s["speaker"] in ("SPEAKER_00", "SPEAKER_01") for s in body["segments"])
    assert shown.stdout.startswith('{\n  "job_id"')  # pretty-printed

    srt = invoke(cli_env, "transcript", DIARIZED, "0", "--format", "srt", *remote).stdout
    cues = [block.splitlines() for block in srt.strip().split("\n\n")]
    assert cues and all(c[2].startswith(("SPEAKER_00: ", "SPEAKER_01: ")) for c in cues)
    vtt = invoke(cli_env, "transcript", DIARIZED, "0", "-f", "vtt", *remote).stdout
    assert vtt.startswith("WEBVTT") and "<v SPEAKER_0" in vtt
    target = tmp_path / "out" / "talk.txt"
    saved = invoke(cli_env, "transcript", DIARIZED, "0", "-f", "txt", "-o", str(target), *remote)
    assert saved.exit_code == 0, saved.output
    assert "Saved" in saved.stdout and "SPEAKER_00: " in target.read_text()

    named = invoke(cli_env, "speakers", DIARIZED, "0", "SPEAKER_00=Host", *remote)
    assert named.exit_code == 0, named.output
    assert "Host" in named.stdout and "SPEAKER_01" in named.stdout
    assert "chunks updated" in named.stdout
    srt = invoke(cli_env, "transcript", DIARIZED, "0", "--format", "srt", *remote).stdout
    assert "\nHost: " in srt
    found = invoke(cli_env, "search", "your country", "--speaker", "Host", "--json", *remote)
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout)
    assert hits and all(h["speaker"] == "Host" for h in hits)

    both = ["SPEAKER_00=", "SPEAKER_01=Guest", "--json"]
    renamed = invoke(cli_env, "speakers", DIARIZED, "0", *both, *remote)
    assert renamed.exit_code == 0, renamed.output
    assert json.loads(renamed.stdout)["speakers"] == [
        {"label": "SPEAKER_00", "name": "SPEAKER_00"},
        {"label": "SPEAKER_01", "name": "Guest"},
    ]
    assert not Path(cli_env["RAGCAST_DATA_DIR"]).exists()


def test_transcript_and_speaker_errors_exit_non_zero(
    cli_env: dict[str, str], talk: LiveServer
) -> None:
    remote = ["--server", talk.url, "--api-key", talk.key]
    unknown = invoke(cli_env, "speakers", DIARIZED, "0", "SPEAKER_09=Guest", *remote)
    assert unknown.exit_code == 1
    assert "Error:" in unknown.stderr and "SPEAKER_09" in unknown.stderr

    malformed = invoke(cli_env, "speakers", DIARIZED, "0", "Host", *remote)
    assert malformed.exit_code == 2 and "LABEL=NAME" in malformed.stderr
    no_item = invoke(cli_env, "transcript", DIARIZED, "7", *remote)
    assert no_item.exit_code == 1 and "has no item 7" in no_item.stderr
    bad_format = invoke(cli_env, "transcript", DIARIZED, "0", "--format", "xml", *remote)
    assert bad_format.exit_code == 2
