"""The ``ragcast`` command: serve the API, manage keys, and drive jobs from a terminal.

Client commands talk to ``--server`` when given; without it they start the service
embedded in this process (data in ``RAGCAST_DATA_DIR``), which stops with the command.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table

from ragcast.cli_progress import (
    fetch_export,
    follow,
    hits_table,
    items_table,
    job_summary,
    jobs_table,
    status_table,
    upload_files,
)
from ragcast.client import ApiError, Client, ValidationError

if TYPE_CHECKING:
    from ragcast.context import Context

app = typer.Typer(help="ragcast: audio and video to a searchable RAG index.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys (acts on the local store).")
app.add_typer(keys_app, name="keys")

out = Console()
err = Console(stderr=True)

Server = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="RAGCAST_SERVER",
        help="Base URL of a ragcast server; without it the service runs embedded.",
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option("--api-key", envvar="RAGCAST_API_KEY", help="API key for --server."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
STARTUP_TIMEOUT_S = 60.0


class ExportFormat(StrEnum):
    """The export formats of the contract."""

    json = "json"
    csv = "csv"
    parquet = "parquet"
    vector = "vector"


class TranscriptFormat(StrEnum):
    """The formats of an item's transcript."""

    json = "json"
    srt = "srt"
    vtt = "vtt"
    txt = "txt"


def _print_error(exc: ApiError) -> None:
    err.print(f"[red]Error: {escape(exc.message)}[/]")
    if isinstance(exc, ValidationError) and exc.details:
        field, issue = exc.details.get("field"), exc.details.get("issue")
        err.print(f"[red]  {escape(str(field))}: {escape(str(issue))}[/]")
    if exc.request_id:
        err.print(f"[dim]  request id: {escape(exc.request_id)}[/]")


@contextmanager
def _store() -> Iterator[Context]:
    """The local store, for commands that act on it directly."""
    from ragcast.context import build_context
    from ragcast.settings import Settings

    ctx = build_context(Settings())
    try:
        yield ctx
    finally:
        ctx.db.dispose()


@contextmanager
def _embedded(*, workers: bool) -> Iterator[Client]:
    """The API on a free local port in a background thread, with the data dir's own reusable key."""
    # Model loaders draw their own progress bars, which would tear the rich display.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import uvicorn

    from ragcast.api.app import create_app
    from ragcast.auth import local_key
    from ragcast.errors import ConfigurationError
    from ragcast.settings import Settings

    # No preloading: a command that ends while the loader thread is still inside native
    # model code aborts the interpreter at exit; the workers load models on first use.
    try:
        fastapi_app = create_app(Settings(preload_models=False), run_workers=workers)
    except ConfigurationError as exc:
        err.print(f"[red]Error: {escape(exc.message)}[/]")
        raise typer.Exit(2) from exc
    ctx: Context = fastapi_app.state.ctx
    # Bound here and handed over, so no other process can take the port in between.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(fastapi_app, log_config=None, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="ragcast-embedded", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                err.print("[red]Error: the embedded service did not start[/]")
                raise typer.Exit(1)
            time.sleep(0.02)
        with ctx.db.session() as s:
            key = local_key(s, ctx.settings.data_dir)
        with Client(f"http://127.0.0.1:{port}", key) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


@contextmanager
def _service(server: str | None, api_key: str | None, *, workers: bool = False) -> Iterator[Client]:
    """A client of ``server``, or of the embedded service; API errors end the command."""
    try:
        if server:
            if not api_key:
                err.print("[red]Error: --server needs --api-key (or RAGCAST_API_KEY)[/]")
                raise typer.Exit(2)
            try:
                remote = Client(server, api_key)
            except ValueError as exc:
                err.print(f"[red]Error: --server: {escape(str(exc))}[/]")
                raise typer.Exit(2) from None
            with remote as client:
                yield client
        else:
            with _embedded(workers=workers) as client:
                yield client
    except ApiError as exc:
        _print_error(exc)
        raise typer.Exit(1) from None


def _show(data: Any, as_json: bool, render: RenderableType) -> None:
    """Print ``data`` as JSON, or its rich rendering."""
    if as_json:
        # Plain echo: rich would wrap long lines and break the JSON for other programs.
        typer.echo(json.dumps(data, indent=2))
    else:
        out.print(render)


#: items a finished job's table shows (``ragcast items`` pages through the rest)
SHOWN_ITEMS = 100


def _finish(client: Client, job_id: str, status: dict[str, Any], as_json: bool) -> int:
    """Print a finished job's items and result; the exit code it deserves.

    ``--json`` prints every item (fetched page by page); the table shows the first
    :data:`SHOWN_ITEMS` and says how to see the others.
    """
    if as_json:
        typer.echo(json.dumps({"job": status, "items": list(client.iter_items(job_id))}, indent=2))
    else:
        page = client.items_page(job_id, limit=SHOWN_ITEMS)
        parts: list[RenderableType] = [items_table(page["items"])]
        if page["next_after"] is not None:
            parts.append(
                f"[dim]{len(page['items'])} of {page['total']} items shown: "
                f"ragcast items {escape(job_id)} --offset {len(page['items'])}[/]"
            )
        out.print(Group(*parts, job_summary(status)))
    return 0 if status["status"] == "completed" else 1


# -- server and keys -------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        bool | None,
        typer.Option(
            "--workers/--no-workers",
            help="Run the pipeline workers in-process (default: yes, unless "
            "RAGCAST_BROKER_URL names a shared broker).",
        ),
    ] = None,
) -> None:
    """Run the API server."""
    import uvicorn

    from ragcast.api.app import create_app
    from ragcast.errors import ConfigurationError
    from ragcast.settings import Settings

    try:
        fastapi_app = create_app(Settings(), run_workers=workers)
    except ConfigurationError as exc:
        err.print(f"[red]Error: {escape(exc.message)}[/]")
        raise typer.Exit(2) from exc
    uvicorn.run(fastapi_app, host=host, port=port)


@app.command()
def worker(
    queues: Annotated[
        list[str] | None,
        typer.Option(
            "--queues",
            "-q",
            help="Queues to consume (repeatable): ragcast.jobs, ragcast.fetch, "
            "ragcast.transcribe, ragcast.diarize, ragcast.embed, ragcast.index, "
            "ragcast.exports. Default: all.",
        ),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="Worker threads (default RAGCAST_WORKERS).")
    ] = None,
) -> None:
    """Run pipeline workers against RAGCAST_BROKER_URL until interrupted."""
    from ragcast.runner.worker import run_worker
    from ragcast.settings import Settings

    settings = Settings()
    if not settings.broker_url:
        err.print("[red]Error: ragcast worker needs RAGCAST_BROKER_URL (redis:// or amqp://)[/]")
        raise typer.Exit(2)
    from ragcast.errors import ConfigurationError

    try:
        run_worker(settings, queues=queues or None, threads=threads)
    except ConfigurationError as exc:
        err.print(f"[red]Error: {escape(exc.message)}[/]")
        raise typer.Exit(2) from exc


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option("--user", help="User the key acts for (created if new).")],
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin.")] = False,
    expires_in: Annotated[
        str | None,
        typer.Option("--expires-in", help="Lifetime: 90d, 24h, 30m or 45s (default: none)."),
    ] = None,
) -> None:
    """Create an API key; it is printed once and cannot be shown again."""
    from ragcast.auth import create_key

    lifetime = _duration(expires_in) if expires_in else None
    with _store() as ctx, ctx.db.session() as s:
        key, row = create_key(s, user, admin=admin, expires_in=lifetime)
        prefix, expires = row.prefix, row.expires_at
    typer.echo(key)
    role = "admin " if admin else ""
    until = f", valid until {expires:%Y-%m-%d %H:%M} UTC" if expires else ""
    err.print(f"Created {role}key {prefix}… for user {escape(user)}{until}; it is shown only once.")


def _duration(text: str) -> timedelta:
    """A ``90d``-style duration, or a clear error and exit 2."""
    from ragcast.auth import parse_duration
    from ragcast.errors import ValidationError

    try:
        return parse_duration(text)
    except ValidationError as exc:
        err.print(f"[red]Error: {escape(exc.issue)}[/]")
        raise typer.Exit(2) from exc


@keys_app.command("rotate")
def keys_rotate(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (rc_ + 8 characters) or key.")],
    grace: Annotated[
        str, typer.Option("--grace", help="How long the old key keeps working: 24h, 7d, 0s…")
    ] = "24h",
) -> None:
    """Issue a new key for the same user; the old one stops working after --grace."""
    from ragcast.auth import rotate_key
    from ragcast.errors import NotFoundError

    period = timedelta(0) if grace.strip() in ("0", "0s") else _duration(grace)
    try:
        with _store() as ctx:
            with ctx.db.session() as s:
                key, row, old = rotate_key(s, prefix, grace=period)
                new_prefix, old_prefix, until = row.prefix, old.prefix, old.expires_at
            _announce_key_change(ctx)
    except NotFoundError as exc:
        err.print(f"[red]Error: {escape(exc.message)}[/]")
        raise typer.Exit(1) from None
    typer.echo(key)
    err.print(
        f"New key {new_prefix}… (shown only once); {old_prefix}… stops working at "
        f"{until:%Y-%m-%d %H:%M:%S} UTC."
    )


def _announce_key_change(ctx: Context) -> None:
    """Tell running API processes that share Redis to forget the keys they remember."""
    from ragcast.auth import announce_key_change

    announce_key_change(ctx.settings.redis_url, ctx.settings.redis_key_prefix)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (their prefixes; keys themselves are not stored)."""
    from sqlalchemy import select

    from ragcast.auth import aware
    from ragcast.store.models import ApiKey as ApiKeyRow
    from ragcast.store.models import User

    table = Table("Prefix", "User", "Admin", "Created", "Expires", "Last used", "Revoked")
    now = datetime.now(UTC)
    with _store() as ctx, ctx.db.session() as s:
        rows = s.execute(
            select(ApiKeyRow, User)
            .join(User, User.id == ApiKeyRow.user_id)
            .order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        ).all()
        for key, user in rows:
            revoked = f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else ""
            expires = aware(key.expires_at)
            expired = expires is not None and expires <= now
            table.add_row(
                key.prefix,
                escape(user.name),
                "yes" if user.is_admin else "",
                f"{key.created_at:%Y-%m-%d %H:%M}",
                (f"{expires:%Y-%m-%d %H:%M}" + (" (expired)" if expired else ""))
                if expires
                else "",
                f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never",
                revoked,
                style="dim" if revoked or expired else None,
            )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (rc_ + 8 characters) or key.")],
) -> None:
    """Revoke the active keys matching PREFIX."""
    from ragcast.auth import revoke_key
    from ragcast.errors import NotFoundError

    try:
        with _store() as ctx:
            with ctx.db.session() as s:
                count = revoke_key(s, prefix)
            if count:
                _announce_key_change(ctx)
    except NotFoundError as exc:
        err.print(f"[red]Error: {escape(exc.message)}[/]")
        raise typer.Exit(1) from None
    if not count:
        err.print(f"[red]Error: no active key matches {escape(prefix)}[/]")
        raise typer.Exit(1)
    out.print(f"Revoked {count} key{'s' if count > 1 else ''}.")


# -- jobs ------------------------------------------------------------------------------


@app.command()
def process(
    files: Annotated[list[Path], typer.Argument(help="Recordings or documents to process.")],
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Follow the job until it ends.")
    ] = True,
    job_id: Annotated[str | None, typer.Option("--job-id", help="Idempotency key.")] = None,
    chunk_size: Annotated[int, typer.Option(help="Chunk size in tokens.")] = 1024,
    chunk_overlap: Annotated[int, typer.Option(help="Chunk overlap in tokens.")] = 100,
    language: Annotated[
        str,
        typer.Option(help="Spoken language (ISO 639-1, e.g. de), or auto to detect per item."),
    ] = "auto",
    server: Server = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Upload FILE... and run them through the pipeline (transcribe, chunk, embed, index)."""
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        err.print(f"[red]Error: no such file: {escape(', '.join(missing))}[/]")
        raise typer.Exit(2)
    job_id = job_id or f"bulk-{time.time_ns() // 1_000_000}"
    code = 0
    # Without --wait the embedded service only queues the job: its workers would be
    # stopped mid-item when the command ends.
    with _service(server, api_key, workers=wait) as client:
        documents = upload_files(client, files, err, enabled=not as_json)
        accepted = client.process(
            {
                "job_id": job_id,
                "platform": "documents",
                "input_method": "upload",
                "uploaded_documents": documents,
                "embedding_model": {"id": "local"},
                "vector_db": {"id": "chroma"},
                "settings": {
                    "chunkSize": chunk_size,
                    "chunkOverlap": chunk_overlap,
                    "maxTokens": 8192,
                    "language": language,
                },
            }
        )
        if not wait:
            if not server:
                err.print(
                    "[yellow]Queued only: the embedded service stops with this command. The "
                    f"job runs with `ragcast watch {escape(job_id)}` or `ragcast serve`.[/]"
                )
            _show(accepted, as_json, f"Job {escape(job_id)} accepted.")
            return
        if not as_json:
            estimate = accepted["estimated_time"]
            err.print(f"Job [bold]{escape(job_id)}[/] accepted (estimated: {estimate}).")
        status = follow(client, job_id, accepted["websocket_url"], err, enabled=not as_json)
        code = _finish(client, job_id, status, as_json)
    raise typer.Exit(code)


@app.command()
def watch(
    job_id: Annotated[str, typer.Argument(help="The job to follow.")],
    server: Server = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Follow a job live until it ends, then show its items."""
    with _service(server, api_key, workers=True) as client:
        status = follow(client, job_id, None, err, enabled=not as_json)
        code = _finish(client, job_id, status, as_json)
    raise typer.Exit(code)


@app.command()
def status(
    job_id: Annotated[str, typer.Argument(help="The job to show.")],
    server: Server = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Show a job's status and progress."""
    with _service(server, api_key) as client:
        body = client.status(job_id)
    _show(body, as_json, status_table(body))


@app.command()
def items(
    job_id: Annotated[str, typer.Argument(help="The job whose items to list.")],
    limit: Annotated[int, typer.Option(help="How many items to list (at most 1000).")] = 100,
    offset: Annotated[int, typer.Option(help="How many items to skip.")] = 0,
    item_status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="Only items in this status: pending, processing, completed, failed, cancelled.",
        ),
    ] = None,
    server: Server = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """List a job's items in order, one page at a time, with each one's stage and error."""
    with _service(server, api_key) as client:
        page = client.items_page(job_id, limit=limit, offset=offset, status=item_status)
    shown = len(page["items"])
    summary = (
        f"[dim]items {offset + 1}-{offset + shown} of {page['total']}[/]"
        if shown
        else f"[dim]no items at offset {offset} of {page['total']}[/]"
    )
    _show(page, as_json, Group(items_table(page["items"]), summary))


@app.command()
def jobs(
    limit: Annotated[int, typer.Option(help="How many jobs to list.")] = 50,
    offset: Annotated[int, typer.Option(help="How many of the newest to skip.")] = 0,
    server: Server = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """List your jobs, newest first."""
    with _service(server, api_key) as client:
        page = client.jobs(limit=limit, offset=offset)
    _show(page, as_json, jobs_table(page))


@app.command()
def cancel(
    job_id: Annotated[str, typer.Argument(help="The job to cancel.")],
    server: Server = None,
    api_key: ApiKey = None,
) -> None:
    """Cancel a job: no new stage of its items starts after this."""
    with _service(server, api_key) as client:
        client.cancel(job_id)
    out.print(f"Job {escape(job_id)} cancelled.")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    job_id: Annotated[str | None, typer.Option("--job-id", help="Search one job only.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="How many chunks to return.")] = 5,
    mode: Annotated[
        str,
        typer.Option(help="hybrid (terms and meaning, fused), dense (meaning) or lexical (terms)."),
    ] = "hybrid",
    content_id: Annotated[
        str | None, typer.Option("--content-id", help="Search one content item only.")
    ] = None,
    platform: Annotated[
        str | None, typer.Option("--platform", help="Search jobs of one platform only.")
    ] = None,
    language: Annotated[
        str | None,
        typer.Option("--language", help="Only items in this language (ISO 639-1, e.g. de)."),
    ] = None,
    channel: Annotated[
        str | None, typer.Option("--channel", help="Only items of this channel.")
    ] = None,
    speaker: Annotated[
        str | None,
        typer.Option("--speaker", help="Only chunks whose main speaker has this name or label."),
    ] = None,
    after: Annotated[
        str | None,
        typer.Option("--after", help="Only items uploaded on or after this date (YYYY-MM-DD)."),
    ] = None,
    before: Annotated[
        str | None,
        typer.Option("--before", help="Only items uploaded on or before this date (YYYY-MM-DD)."),
    ] = None,
    context: Annotated[
        int, typer.Option("--context", help="Neighbouring chunks to show with each hit.")
    ] = 0,
    rerank: Annotated[
        bool, typer.Option("--rerank", help="Reorder the best hits with the reranker.")
    ] = False,
    server: Server = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Search your indexed chunks; shows each hit's time span in its recording."""
    with _service(server, api_key) as client:
        hits = client.search(
            query,
            job_id=job_id,
            top_k=top_k,
            mode=mode,
            content_id=content_id,
            platform=platform,
            language=language,
            channel=channel,
            speaker=speaker,
            uploaded_after=after,
            uploaded_before=before,
            context=context or None,
            rerank=rerank or None,
        )["results"]
    _show(hits, as_json, hits_table(hits) if hits else "[yellow]No results.[/]")


@app.command()
def preview(
    url: Annotated[str, typer.Argument(help="A YouTube, TikTok or Twitch channel or playlist.")],
    page: Annotated[int, typer.Option(help="Page number, from 1.")] = 1,
    page_size: Annotated[int, typer.Option("--page-size", help="Items per page.")] = 50,
    server: Server = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """List a channel's items (ids for selected_content), one page at a time."""
    with _service(server, api_key) as client:
        listing = client.preview(url, page=page, page_size=page_size)
    table = Table(title=f"{listing.get('channel') or listing.get('title') or url} — page {page}")
    for column in ("id", "title", "duration", "uploaded", "url"):
        table.add_column(column, overflow="fold")
    for item in listing["items"]:
        duration = item.get("duration")
        table.add_row(
            escape(item["id"]),
            escape(item.get("title") or ""),
            f"{int(duration) // 60}:{int(duration) % 60:02d}" if duration else "",
            item.get("upload_date") or "",
            escape(item["url"]),
        )
    more = f"[dim]more: --page {page + 1}[/]" if listing.get("has_more") else ""
    _show(listing, as_json, Group(table, more) if more else table)


@app.command()
def export(
    job_id: Annotated[str, typer.Argument(help="The finished job to export.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="File format.")] = (
        ExportFormat.parquet
    ),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File or folder to save to.")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for the export and download it.")
    ] = True,
    server: Server = None,
    api_key: ApiKey = None,
) -> None:
    """Export a job's chunks and embeddings to a file."""
    with _service(server, api_key, workers=True) as client:
        export_id = client.export(job_id, fmt.value)["export_id"]
        if not wait:
            out.print(f"Export {escape(export_id)} started.")
            return
        path = fetch_export(client, export_id, output or Path.cwd(), err)
    out.print(f"Saved {escape(str(path))} ({path.stat().st_size} bytes)")


@app.command()
def transcript(
    job_id: Annotated[str, typer.Argument(help="The job.")],
    index: Annotated[int, typer.Argument(help="The item's index in the job (from 0).", min=0)],
    fmt: Annotated[TranscriptFormat, typer.Option("--format", "-f", help="Output format.")] = (
        TranscriptFormat.json
    ),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File or folder to save to.")
    ] = None,
    server: Server = None,
    api_key: ApiKey = None,
) -> None:
    """Print an item's transcript (json, srt, vtt or txt) with its speakers, or save it."""
    with _service(server, api_key) as client:
        body = client.transcript(job_id, index, fmt.value)
    text = body if isinstance(body, str) else json.dumps(body, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    target = output / f"{job_id}-{index}.{fmt.value}" if output.is_dir() else output
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    out.print(f"Saved {escape(str(target))} ({target.stat().st_size} bytes)")


def _speaker_names(pairs: list[str]) -> dict[str, str | None]:
    """``LABEL=NAME`` arguments as a mapping (``LABEL=`` forgets), or an error and exit 2."""
    names: dict[str, str | None] = {}
    for pair in pairs:
        label, sep, name = pair.partition("=")
        if not sep or not label.strip():
            err.print(
                f"[red]Error: {escape(pair)}: name a speaker as LABEL=NAME (SPEAKER_00=Host)[/]"
            )
            raise typer.Exit(2)
        names[label.strip()] = name.strip() or None
    return names


@app.command()
def speakers(
    job_id: Annotated[str, typer.Argument(help="The job.")],
    index: Annotated[int, typer.Argument(help="The item's index in the job (from 0).", min=0)],
    names: Annotated[
        list[str],
        typer.Argument(help="LABEL=NAME pairs (SPEAKER_00=Host); LABEL= forgets a name."),
    ],
    server: Server = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Name a diarized item's speakers; transcripts, exports and search then show the names."""
    mapping = _speaker_names(names)
    with _service(server, api_key) as client:
        body = client.name_speakers(job_id, index, mapping)
    table = Table("Label", "Name", title=f"{escape(job_id)} item {index}")
    for row in body["speakers"]:
        named = row["name"] != row["label"]
        table.add_row(escape(row["label"]), escape(row["name"]) if named else "[dim]unnamed[/]")
    count = body["updated_chunks"]
    _show(body, as_json, Group(table, f"{count} chunk{'' if count == 1 else 's'} updated."))


@app.command("mcp")
def mcp_server(server: Server = None, api_key: ApiKey = None) -> None:
    """Serve search and jobs to a local agent over MCP (stdio) until it disconnects."""
    from ragcast.integrations.mcp import INSTALL_HINT, sdk_available, serve_stdio

    if not sdk_available():
        err.print(f"[red]Error: {escape(INSTALL_HINT)}[/]")
        raise typer.Exit(2)
    with _service(server, api_key, workers=True) as client:
        serve_stdio(client.base_url, client.api_key)
