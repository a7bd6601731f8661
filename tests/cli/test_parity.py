"""The CLI's parity with the API (every job setting, choices, ``delete``), its 429 line,
the data dir's one identity, and progress text that is true."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from sqlalchemy import select
from typer.testing import CliRunner, Result

from ragcast.cli import app
from ragcast.cli.jobs import KeepMedia, _job_settings
from ragcast.cli.progress import JobProgress, hits_table, jobs_table
from ragcast.cli.serve import banner
from ragcast.settings import Settings
from ragcast.store.models import Job
from tests.client.conftest import LiveServer, serve_in_thread
from tests.conftest import make_settings

RAGCAST = Path(sys.executable).parent / "ragcast"


def invoke(env: dict[str, str], *args: str) -> Result:
    """Run ``ragcast ARGS`` in-process with ``env``."""
    return CliRunner().invoke(app, list(args), env=env)


def stored_request(live: LiveServer, job_id: str) -> dict[str, object]:
    """The request the server stored for ``job_id``."""
    with live.app.state.ctx.db.session() as s:
        request: dict[str, object] = s.scalar(select(Job.request).where(Job.job_id == job_id))
        return request


def test_a_real_ragcast_process_sends_every_option_and_skips_an_unknown_file(
    cli_env: dict[str, str], live_server: LiveServer, subtitles: Path, tmp_path: Path
) -> None:
    unknown = tmp_path / "notes.bin"
    unknown.write_bytes(b"\x00\x01\x02 not a format anyone knows \xff" * 8)
    args = [str(RAGCAST), "process", str(subtitles), str(unknown), "--job-id", "parity-1"]
    args += ["--chunk-size", "256", "--keep-media", "none", "--no-captions", "--json"]
    args += ["--embedding-model", "local", "--model", "all-MiniLM-L6-v2", "--vector-db", "chroma"]
    args += ["--server", live_server.url, "--api-key", live_server.key]
    env = {**os.environ, **cli_env}
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "Skipped" in done.stderr and "notes.bin" in done.stderr
    body = json.loads(done.stdout)
    assert body["job"]["status"] == "completed" and len(body["items"]) == 1
    request = stored_request(live_server, "parity-1")
    settings = request["settings"]
    assert isinstance(settings, dict)
    assert settings["chunkSize"] == 256 and settings["keepMedia"] == "none"
    assert settings["useCaptions"] is False and not settings.get("diarize")
    embedder = request["embedding_model"]
    assert isinstance(embedder, dict) and embedder["model"] == "all-MiniLM-L6-v2"

    deleted = invoke(
        cli_env, "delete", "parity-1", "--server", live_server.url, "--api-key", live_server.key
    )
    assert deleted.exit_code == 0, deleted.output
    assert "deleted" in deleted.stdout
    gone = invoke(
        cli_env, "status", "parity-1", "--server", live_server.url, "--api-key", live_server.key
    )
    assert gone.exit_code == 1 and "not found" in gone.stderr.lower()


def test_nothing_left_to_process_fails(
    cli_env: dict[str, str], live_server: LiveServer, tmp_path: Path
) -> None:
    unknown = tmp_path / "notes.bin"
    unknown.write_bytes(b"\x00\x01\x02\xff" * 64)
    remote = ["--server", live_server.url, "--api-key", live_server.key]
    result = invoke(cli_env, "process", str(unknown), *remote)
    assert result.exit_code == 1
    assert "Skipped" in result.stderr and "no file left" in result.stderr


def test_diarize_options_make_the_settings() -> None:
    plain = _job_settings(256, 32, "auto", False, None, None, None, None)
    assert plain == {"chunkSize": 256, "chunkOverlap": 32, "maxTokens": 8192, "language": "auto"}
    bounded = _job_settings(256, 32, "de", False, 2, 3, True, KeepMedia.audio)
    assert bounded["diarize"] is True and bounded["min_speakers"] == 2
    assert bounded["max_speakers"] == 3 and bounded["useCaptions"] is True
    assert bounded["keepMedia"] == "audio" and bounded["language"] == "de"


def test_choices_are_checked_before_any_request(cli_env: dict[str, str]) -> None:
    mode = invoke(cli_env, "search", "anything", "--mode", "fuzzy")
    assert mode.exit_code == 2
    assert "hybrid" in mode.output and "Input should be" not in mode.output
    keep = invoke(cli_env, "process", "x.wav", "--keep-media", "forever")
    assert keep.exit_code == 2 and "original" in keep.output
    model = invoke(cli_env, "process", "x.wav", "--vector-db", "milvus")
    assert model.exit_code == 2 and "pgvector" in model.output
    assert not Path(cli_env["RAGCAST_DATA_DIR"]).exists()


def test_flags_have_no_bool_metavar(cli_env: dict[str, str]) -> None:
    shown = CliRunner().invoke(app, ["process", "--help"], env={**cli_env, "COLUMNS": "200"})
    lines = [line for line in shown.stdout.splitlines() if "<bool>" in line]
    assert [line for line in lines if "--help" not in line] == [], lines
    assert "--diarize" in shown.stdout and "--keep-media" in shown.stdout


def test_a_429_is_one_line_naming_the_setting(cli_env: dict[str, str], tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "limited", rate_limit_read="1/hour")
    with serve_in_thread(settings) as live:
        remote = ["--server", live.url, "--api-key", live.key]
        assert invoke(cli_env, "jobs", *remote).exit_code == 0
        refused = invoke(cli_env, "jobs", *remote)
    assert refused.exit_code == 1
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: Too many requests: 1 reads per hour")
    assert "(RAGCAST_RATE_LIMIT_READ). Try again in 60 minutes." in lines[0]


def test_embedded_commands_are_not_limited_and_act_as_the_one_user(
    cli_env: dict[str, str],
) -> None:
    env = {**cli_env, "RAGCAST_RATE_LIMIT_READ": "1/hour"}
    first = invoke(env, "jobs")
    assert first.exit_code == 0, first.output
    assert "No jobs for local." in first.stdout
    assert invoke(env, "jobs").exit_code == 0  # no limit in embedded mode

    assert invoke(env, "keys", "create", "--user", "alice").exit_code == 0
    alone = invoke(env, "jobs")
    assert alone.exit_code == 0 and "No jobs for alice." in alone.stdout
    assert invoke(env, "jobs").exit_code == 0  # the same key, reused
    found = invoke(env, "search", "lighthouse", "--mode", "lexical")
    assert found.exit_code == 0, found.output
    assert "No results for alice." in found.stdout

    assert invoke(env, "keys", "create", "--user", "bob").exit_code == 0
    ambiguous = invoke(env, "jobs")
    assert ambiguous.exit_code == 2 and "--user" in ambiguous.stderr
    assert "alice, bob" in ambiguous.stderr
    chosen = invoke(env, "jobs", "--user", "bob")
    assert chosen.exit_code == 0 and "No jobs for bob." in chosen.stdout
    from_env = invoke({**env, "RAGCAST_USER": "alice"}, "jobs")
    assert from_env.exit_code == 0 and "No jobs for alice." in from_env.stdout
    stranger = invoke(env, "jobs", "--user", "carol")
    assert stranger.exit_code == 2 and "no user carol" in stranger.stderr


def test_ids_are_never_cut_in_the_jobs_table() -> None:
    job_id = "bulk-1641024000123-with-a-rather-long-suffix"
    page = {
        "total": 1,
        "jobs": [
            {
                "job_id": job_id,
                "status": "completed",
                "progress": 100.0,
                "content_processed": 3,
                "total_content": 3,
                "embeddings": 12,
                "created_at": "2026-12-04T19:00:00.000000",
            }
        ],
    }
    screen = io.StringIO()
    Console(file=screen, width=60).print(jobs_table(page))
    assert job_id in screen.getvalue()


def test_the_hits_table_shows_speaker_and_language_when_any_hit_has_them() -> None:
    hit = {"score": 0.9, "source": "talk.wav", "start_s": 1.0, "end_s": 4.0, "text": "hello"}
    plain = io.StringIO()
    Console(file=plain, width=120).print(hits_table([hit]))
    assert "Speaker" not in plain.getvalue() and "Language" not in plain.getvalue()
    rich = io.StringIO()
    Console(file=rich, width=120).print(
        hits_table([hit, {**hit, "speaker": "Alice", "language": "de"}])
    )
    assert "Speaker" in rich.getvalue() and "Alice" in rich.getvalue()
    assert "Language" in rich.getvalue() and " de " in rich.getvalue()


def test_the_header_counts_running_items_and_a_cancelled_job_keeps_its_progress() -> None:
    display = JobProgress(Console(file=io.StringIO()), enabled=False)
    for index in range(3):
        display.item({"index": index, "status": "processing", "stage": "transcribing"})
    display.item({"index": 0, "status": "completed", "stage": "completed"})
    display.message({"status": "processing", "progress": 40.0, "stage": "Processing item 2/3"})
    overall = display._progress.tasks[0]
    assert "2 items running, 1 done of 3" in overall.description
    display.message({"type": "error", "status": "cancelled", "message": "Processing cancelled"})
    assert display._progress.tasks[0].completed == 40.0
    display.message({"status": "cancelled", "progress": 45.5, "stage": "cancelled"})
    assert display._progress.tasks[0].completed == 45.5


def test_serve_names_the_dashboard_the_data_dir_and_the_models(tmp_path: Path) -> None:
    text = banner(Settings(data_dir=tmp_path, rate_limits="off"), "0.0.0.0", 8123)
    assert "http://127.0.0.1:8123/" in text and str(tmp_path) in text
    assert Settings().whisper_model in text and Settings().local_embedding_model in text
    assert "RAGCAST_RATE_LIMITS=off" in text
    assert "RATE_LIMITS" not in banner(Settings(data_dir=tmp_path), "127.0.0.1", 8000)
