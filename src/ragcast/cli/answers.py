"""``ragcast ask``: an answer from your recordings, streamed, with its cited moments."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from ragcast.cli.common import ApiKey, AsJson, Server, err, out, service, show


def clock(seconds: float | None) -> str:
    """``1:02:03`` or ``2:03``; empty where unknown."""
    if seconds is None:
        return ""
    s = int(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def citation_line(c: dict[str, Any]) -> str:
    """One cited passage: its number, recording, time span, and a link to the moment."""
    title = escape(str(c.get("title") or c.get("source") or c.get("content_id") or ""))
    span = f"{clock(c.get('start_s'))}-{clock(c.get('end_s'))}"
    link = c.get("deep_link") or c.get("media_url")
    shown = f" [link={link}]{escape(str(link))}[/link]" if link else ""
    return f"[bold][{c['n']}][/] {title} [dim]{span}[/]{shown}"


def ask(
    query: Annotated[str, typer.Argument(help="Your question.")],
    job_id: Annotated[str | None, typer.Option("--job-id", help="Ask one job only.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Passages to answer from (1-20).")] = 6,
    mode: Annotated[
        str | None,
        typer.Option(
            help="extractive (quoted sentences) or generative (the server's LLM); default: "
            "generative when the server has an LLM."
        ),
    ] = None,
    language: Annotated[
        str | None, typer.Option("--language", help="Language of the answer (default: yours).")
    ] = None,
    fallback: Annotated[
        bool, typer.Option("--fallback", help="Answer extractively when the LLM is down.")
    ] = False,
    server: Server = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Ask your recordings a question: an answer citing the moments it comes from."""
    options: dict[str, Any] = {
        "job_id": job_id,
        "top_k": top_k,
        "mode": mode,
        "language": language,
        "fallback": fallback or None,
    }
    with service(server, api_key) as client:
        if as_json:
            body = client.ask(query, **options)
            show(body, True, "")
            return
        done: dict[str, Any] | None = None
        for event in client.ask_stream(query, **options):
            if event["event"] == "delta":
                out.print(event["data"]["text"], end="", markup=False, highlight=False)
            elif event["event"] == "done":
                done = event["data"]
            elif event["event"] == "error":
                out.print()
                err.print(f"[red]Error: {escape(str(event['data'].get('message')))}[/]")
                raise typer.Exit(1)
    out.print()
    if done is None:
        raise typer.Exit(1)
    if not done["answered"]:
        out.print("[dim]No passage of your recordings answers this.[/]")
    for citation in done["citations"]:
        out.print(citation_line(citation))
