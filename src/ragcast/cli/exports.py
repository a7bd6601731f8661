"""Commands that take results out: a job's export file, an item's transcript."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ragcast.cli.common import ApiKey, Server, User, err, out, service
from ragcast.cli.progress import fetch_export


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


def export(
    job_id: Annotated[str, typer.Argument(help="The finished job to export.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="File format.")] = (
        ExportFormat.parquet
    ),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File or folder to save to.")
    ] = None,
    wait: Annotated[
        bool,
        typer.Option("--wait/--no-wait", help="Wait for the export and download it.", metavar=""),
    ] = True,
    server: Server = None,
    api_key: ApiKey = None,
    user: User = None,
) -> None:
    """Export a job's chunks and embeddings to a file."""
    with service(server, api_key, workers=True, user=user) as client:
        export_id = client.export(job_id, fmt.value)["export_id"]
        if not wait:
            out.print(f"Export {escape(export_id)} started.")
            return
        path = fetch_export(client, export_id, output or Path.cwd(), err)
    out.print(f"Saved {escape(str(path))} ({path.stat().st_size} bytes)")


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
    user: User = None,
) -> None:
    """Print an item's transcript (json, srt, vtt or txt) with its speakers, or save it."""
    with service(server, api_key, user=user) as client:
        body = client.transcript(job_id, index, fmt.value)
    text = body if isinstance(body, str) else json.dumps(body, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    target = output / f"{job_id}-{index}.{fmt.value}" if output.is_dir() else output
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    out.print(f"Saved {escape(str(target))} ({target.stat().st_size} bytes)")
