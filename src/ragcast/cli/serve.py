"""Commands that run until stopped: the API server, pipeline workers, and the MCP server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from ragcast.cli.common import ApiKey, Server, User, err, service

if TYPE_CHECKING:
    from ragcast.settings import Settings


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        bool | None,
        typer.Option(
            "--workers/--no-workers",
            help="Run the pipeline workers in-process (default: yes, unless "
            "RAGCAST_BROKER_URL names a shared broker).",
            metavar="",
        ),
    ] = None,
) -> None:
    """Run the API server; prints the dashboard's address, the data dir and the models."""
    import uvicorn

    from ragcast.api.app import create_app
    from ragcast.errors import ConfigurationError
    from ragcast.settings import Settings

    settings = Settings()
    try:
        fastapi_app = create_app(settings, run_workers=workers)
    except ConfigurationError as exc:
        err.print(f"[red]Error: {escape(exc.message)}[/]")
        raise typer.Exit(2) from exc
    err.print(banner(settings, host, port))
    uvicorn.run(fastapi_app, host=host, port=port)


def banner(settings: Settings, host: str, port: int) -> str:
    """What ``serve`` says before it listens: where to open the dashboard, where the data
    lives, which models it loads, and whether rate limits are off."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    whisper = settings.whisper_model
    if settings.whisper_english_model and not settings.whisper_english_only:
        whisper += f" (+ {settings.whisper_english_model} for short English items)"
    when = "loading in the background" if settings.preload_models else "loaded on first use"
    lines = [
        f"Dashboard:  http://{escape(shown)}:{port}/",
        f"Data dir:   {escape(str(settings.data_dir.resolve()))}",
        f"Models:     transcription {escape(whisper)}; embeddings (local) "
        f"{escape(settings.local_embedding_model)} [dim]({when})[/]",
    ]
    if settings.rate_limits == "off":
        lines.append(
            "[yellow]Rate limits are off (RAGCAST_RATE_LIMITS=off): any key may start "
            "jobs and exports without end.[/]"
        )
    return "\n".join(lines)


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


def mcp_server(server: Server = None, api_key: ApiKey = None, user: User = None) -> None:
    """Serve search and jobs to a local agent over MCP (stdio) until it disconnects."""
    from ragcast.integrations.mcp import INSTALL_HINT, sdk_available, serve_stdio

    if not sdk_available():
        err.print(f"[red]Error: {escape(INSTALL_HINT)}[/]")
        raise typer.Exit(2)
    with service(server, api_key, workers=True, user=user) as client:
        serve_stdio(client.base_url, client.api_key)
