"""Commands that start and follow jobs: process, watch, status, items, jobs, cancel."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.markup import escape

from ragcast.cli.common import ApiKey, AsJson, Server, err, out, service, show
from ragcast.cli.progress import (
    follow,
    items_table,
    job_summary,
    jobs_table,
    status_table,
    upload_files,
)
from ragcast.client import Client

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
    with service(server, api_key, workers=wait) as client:
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
            show(accepted, as_json, f"Job {escape(job_id)} accepted.")
            return
        if not as_json:
            estimate = accepted["estimated_time"]
            err.print(f"Job [bold]{escape(job_id)}[/] accepted (estimated: {estimate}).")
        status = follow(client, job_id, accepted["websocket_url"], err, enabled=not as_json)
        code = _finish(client, job_id, status, as_json)
    raise typer.Exit(code)


def watch(
    job_id: Annotated[str, typer.Argument(help="The job to follow.")],
    server: Server = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Follow a job live until it ends, then show its items."""
    with service(server, api_key, workers=True) as client:
        status = follow(client, job_id, None, err, enabled=not as_json)
        code = _finish(client, job_id, status, as_json)
    raise typer.Exit(code)


def status(
    job_id: Annotated[str, typer.Argument(help="The job to show.")],
    server: Server = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Show a job's status and progress."""
    with service(server, api_key) as client:
        body = client.status(job_id)
    show(body, as_json, status_table(body))


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
    with service(server, api_key) as client:
        page = client.items_page(job_id, limit=limit, offset=offset, status=item_status)
    shown = len(page["items"])
    summary = (
        f"[dim]items {offset + 1}-{offset + shown} of {page['total']}[/]"
        if shown
        else f"[dim]no items at offset {offset} of {page['total']}[/]"
    )
    show(page, as_json, Group(items_table(page["items"]), summary))


def jobs(
    limit: Annotated[int, typer.Option(help="How many jobs to list.")] = 50,
    offset: Annotated[int, typer.Option(help="How many of the newest to skip.")] = 0,
    server: Server = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """List your jobs, newest first."""
    with service(server, api_key) as client:
        page = client.jobs(limit=limit, offset=offset)
    show(page, as_json, jobs_table(page))


def cancel(
    job_id: Annotated[str, typer.Argument(help="The job to cancel.")],
    server: Server = None,
    api_key: ApiKey = None,
) -> None:
    """Cancel a job: no new stage of its items starts after this."""
    with service(server, api_key) as client:
        client.cancel(job_id)
    out.print(f"Job {escape(job_id)} cancelled.")
