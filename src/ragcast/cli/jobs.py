"""Commands that start and follow jobs: process, watch, status, items, jobs, cancel, delete."""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.markup import escape

from ragcast.cli.common import (
    ApiKey,
    AsJson,
    Server,
    User,
    acting_user,
    err,
    for_whom,
    out,
    service,
    show,
)
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


class LocalModel(StrEnum):
    """The ``local`` embedder's models (``embedding_model.model``)."""

    use = "use-multilingual-v3"
    e5 = "multilingual-e5-small"
    minilm = "all-MiniLM-L6-v2"


class Embedder(StrEnum):
    """``embedding_model.id``."""

    local = "local"
    jina = "jina-v4"
    gemini = "gemini-exp"


class VectorDb(StrEnum):
    """``vector_db.id``."""

    chroma = "chroma"
    pinecone = "pinecone"
    qdrant = "qdrant"
    pgvector = "pgvector"


class KeepMedia(StrEnum):
    """``settings.keepMedia``: what is kept of a recording once its jobs are done."""

    original = "original"
    audio = "audio"
    none = "none"


def _job_settings(
    chunk_size: int,
    chunk_overlap: int,
    language: str,
    diarize: bool,
    min_speakers: int | None,
    max_speakers: int | None,
    captions: bool | None,
    keep_media: KeepMedia | None,
) -> dict[str, Any]:
    """The request's ``settings`` block; options left out are left to the server."""
    job: dict[str, Any] = {
        "chunkSize": chunk_size,
        "chunkOverlap": chunk_overlap,
        "maxTokens": 8192,
        "language": language,
    }
    if diarize or min_speakers is not None or max_speakers is not None:
        job["diarize"] = True
    if min_speakers is not None:
        job["min_speakers"] = min_speakers
    if max_speakers is not None:
        job["max_speakers"] = max_speakers
    if captions is not None:
        job["useCaptions"] = captions
    if keep_media is not None:
        job["keepMedia"] = keep_media.value
    return job


def process(  # noqa: C901 - one option per job setting, each a line or two
    files: Annotated[list[Path], typer.Argument(help="Recordings or documents to process.")],
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Follow the job until it ends.", metavar="")
    ] = True,
    job_id: Annotated[str | None, typer.Option("--job-id", help="Idempotency key.")] = None,
    chunk_size: Annotated[
        int, typer.Option(help="Chunk size in tokens (the API's default; 256 suits search).")
    ] = 1024,
    chunk_overlap: Annotated[int, typer.Option(help="Chunk overlap in tokens.")] = 100,
    language: Annotated[
        str,
        typer.Option(help="Spoken language (ISO 639-1, e.g. de), or auto to detect per item."),
    ] = "auto",
    diarize: Annotated[
        bool, typer.Option("--diarize", help="Find who speaks when (speaker labels).", metavar="")
    ] = False,
    min_speakers: Annotated[
        int | None,
        typer.Option(
            "--min-speakers", min=1, help="At least this many speakers (implies --diarize)."
        ),
    ] = None,
    max_speakers: Annotated[
        int | None,
        typer.Option(
            "--max-speakers", min=1, help="At most this many speakers (implies --diarize)."
        ),
    ] = None,
    embedding_model: Annotated[
        Embedder, typer.Option("--embedding-model", help="The embedding backend.")
    ] = Embedder.local,
    model: Annotated[
        LocalModel | None,
        typer.Option(
            "--model", help="The local model (default: the server's RAGCAST_LOCAL_EMBEDDING_MODEL)."
        ),
    ] = None,
    vector_db: Annotated[
        VectorDb, typer.Option("--vector-db", help="Where the vectors are indexed.")
    ] = VectorDb.chroma,
    captions: Annotated[
        bool | None,
        typer.Option(
            "--captions/--no-captions",
            help="Use a platform's captions instead of transcribing (default: the server's).",
            show_default=False,
            metavar="",
        ),
    ] = None,
    keep_media: Annotated[
        KeepMedia | None,
        typer.Option(
            "--keep-media", help="What to keep of a recording once done (default: the server's)."
        ),
    ] = None,
    server: Server = None,
    api_key: ApiKey = None,
    user: User = None,
    as_json: AsJson = False,
) -> None:
    """Upload FILE... and run them through the pipeline (transcribe, chunk, embed, index).

    A file the server does not recognise is skipped with a warning; the command fails
    only when none is left.
    """
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        err.print(f"[red]Error: no such file: {escape(', '.join(missing))}[/]")
        raise typer.Exit(2)
    if model is not None and embedding_model is not Embedder.local:
        err.print("[red]Error: --model names a model of --embedding-model local[/]")
        raise typer.Exit(2)
    job_id = job_id or f"bulk-{time.time_ns() // 1_000_000}"
    embedder: dict[str, Any] = {"id": embedding_model.value}
    if model is not None:
        embedder["model"] = model.value
    code = 0
    # Without --wait the embedded service only queues the job: its workers would be
    # stopped mid-item when the command ends.
    with service(server, api_key, workers=wait, user=user) as client:
        documents = upload_files(client, files, err, enabled=not as_json)
        if not documents:
            err.print("[red]Error: no file left to process[/]")
            raise typer.Exit(1)
        accepted = client.process(
            {
                "job_id": job_id,
                "platform": "documents",
                "input_method": "upload",
                "uploaded_documents": documents,
                "embedding_model": embedder,
                "vector_db": {"id": vector_db.value},
                "settings": _job_settings(
                    chunk_size,
                    chunk_overlap,
                    language,
                    diarize,
                    min_speakers,
                    max_speakers,
                    captions,
                    keep_media,
                ),
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
    user: User = None,
    as_json: AsJson = False,
) -> None:
    """Follow a job live until it ends, then show its items."""
    with service(server, api_key, workers=True, user=user) as client:
        status = follow(client, job_id, None, err, enabled=not as_json)
        code = _finish(client, job_id, status, as_json)
    raise typer.Exit(code)


def status(
    job_id: Annotated[str, typer.Argument(help="The job to show.")],
    server: Server = None,
    api_key: ApiKey = None,
    user: User = None,
    as_json: AsJson = False,
) -> None:
    """Show a job's status and progress."""
    with service(server, api_key, user=user) as client:
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
    user: User = None,
    as_json: AsJson = False,
) -> None:
    """List a job's items in order, one page at a time, with each one's stage and error."""
    with service(server, api_key, user=user) as client:
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
    user: User = None,
    as_json: AsJson = False,
) -> None:
    """List your jobs, newest first."""
    with service(server, api_key, user=user) as client:
        page = client.jobs(limit=limit, offset=offset)
        whom = acting_user()
    empty = f"[yellow]{for_whom('No jobs', whom)}[/]" if not page["jobs"] and not offset else None
    show(page, as_json, empty or jobs_table(page))


def cancel(
    job_id: Annotated[str, typer.Argument(help="The job to cancel.")],
    server: Server = None,
    api_key: ApiKey = None,
    user: User = None,
) -> None:
    """Cancel a job: no new stage of its items starts after this."""
    with service(server, api_key, user=user) as client:
        client.cancel(job_id)
    out.print(f"Job {escape(job_id)} cancelled.")


def delete(
    job_id: Annotated[str, typer.Argument(help="The job to delete.")],
    server: Server = None,
    api_key: ApiKey = None,
    user: User = None,
    as_json: AsJson = False,
) -> None:
    """Delete a finished job with its chunks, vectors, exports and the files only it used."""
    with service(server, api_key, user=user) as client:
        body = client.delete_job(job_id)
    show(body, as_json, f"Job {escape(job_id)} deleted.")
