"""Commands that find things: search the indexed chunks, preview a channel's items."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Group
from rich.markup import escape
from rich.table import Table

from ragcast.cli.common import (
    ApiKey,
    AsJson,
    Server,
    User,
    acting_user,
    for_whom,
    service,
    show,
)
from ragcast.cli.progress import hits_table


class Mode(StrEnum):
    """How ``search`` ranks: the API's ``mode``."""

    hybrid = "hybrid"
    dense = "dense"
    lexical = "lexical"


def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    job_id: Annotated[str | None, typer.Option("--job-id", help="Search one job only.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="How many chunks to return.")] = 5,
    mode: Annotated[
        Mode,
        typer.Option(help="hybrid (terms and meaning, fused), dense (meaning) or lexical (terms)."),
    ] = Mode.hybrid,
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
        bool, typer.Option("--rerank", help="Reorder the best hits with the reranker.", metavar="")
    ] = False,
    min_score: Annotated[
        float | None,
        typer.Option(
            "--min-score",
            help="Only hits scoring at least this (0-1, the same scale for any query).",
        ),
    ] = None,
    min_confidence: Annotated[
        float | None,
        typer.Option(
            "--min-confidence",
            help="Only recognised speech the recogniser was at least this sure of (0-1).",
        ),
    ] = None,
    server: Server = None,
    api_key: ApiKey = None,
    user: User = None,
    as_json: AsJson = False,
) -> None:
    """Search your indexed chunks; shows each hit's time span in its recording."""
    with service(server, api_key, user=user) as client:
        hits = client.search(
            query,
            job_id=job_id,
            top_k=top_k,
            mode=mode.value,
            content_id=content_id,
            platform=platform,
            language=language,
            channel=channel,
            speaker=speaker,
            uploaded_after=after,
            uploaded_before=before,
            context=context or None,
            rerank=rerank or None,
            min_score=min_score,
            min_confidence=min_confidence,
        )["results"]
        whom = acting_user()
    show(hits, as_json, hits_table(hits) if hits else f"[yellow]{for_whom('No results', whom)}[/]")


def preview(
    url: Annotated[str, typer.Argument(help="A YouTube, TikTok or Twitch channel or playlist.")],
    page: Annotated[int, typer.Option(help="Page number, from 1.")] = 1,
    page_size: Annotated[int, typer.Option("--page-size", help="Items per page.")] = 50,
    server: Server = None,
    api_key: ApiKey = None,
    user: User = None,
    as_json: AsJson = False,
) -> None:
    """List a channel's items (ids for selected_content), one page at a time."""
    with service(server, api_key, user=user) as client:
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
    show(listing, as_json, Group(table, more) if more else table)
