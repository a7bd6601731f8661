"""Commands that run until stopped: the API server, pipeline workers, and the MCP server."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from ragcast.cli.common import ApiKey, Server, err, service


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


def mcp_server(server: Server = None, api_key: ApiKey = None) -> None:
    """Serve search and jobs to a local agent over MCP (stdio) until it disconnects."""
    from ragcast.integrations.mcp import INSTALL_HINT, sdk_available, serve_stdio

    if not sdk_available():
        err.print(f"[red]Error: {escape(INSTALL_HINT)}[/]")
        raise typer.Exit(2)
    with service(server, api_key, workers=True) as client:
        serve_stdio(client.base_url, client.api_key)
