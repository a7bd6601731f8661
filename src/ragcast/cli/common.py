"""What the commands share: consoles, common options, and the service a command talks to.

A client command runs against ``--server`` when given; without it :func:`service` starts
the API embedded in this process (data in ``RAGCAST_DATA_DIR``), which stops with the
command. Key commands act on the local store directly (:func:`local_store`).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, RenderableType
from rich.markup import escape

from ragcast.client import ApiError, Client, ValidationError

if TYPE_CHECKING:
    from ragcast.context import Context

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


def print_error(exc: ApiError) -> None:
    """Print an API error, with the field at fault and the request id when it has them."""
    err.print(f"[red]Error: {escape(exc.message)}[/]")
    if isinstance(exc, ValidationError) and exc.details:
        field, issue = exc.details.get("field"), exc.details.get("issue")
        err.print(f"[red]  {escape(str(field))}: {escape(str(issue))}[/]")
    if exc.request_id:
        err.print(f"[dim]  request id: {escape(exc.request_id)}[/]")


@contextmanager
def local_store() -> Iterator[Context]:
    """The local store, for commands that act on it directly."""
    from ragcast.runner.boot import build_context
    from ragcast.settings import Settings

    ctx = build_context(Settings())
    try:
        yield ctx
    finally:
        ctx.db.dispose()


@contextmanager
def embedded(*, workers: bool) -> Iterator[Client]:
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
def service(server: str | None, api_key: str | None, *, workers: bool = False) -> Iterator[Client]:
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
            with embedded(workers=workers) as client:
                yield client
    except ApiError as exc:
        print_error(exc)
        raise typer.Exit(1) from None


def show(data: Any, as_json: bool, render: RenderableType) -> None:
    """Print ``data`` as JSON, or its rich rendering."""
    if as_json:
        # Plain echo: rich would wrap long lines and break the JSON for other programs.
        typer.echo(json.dumps(data, indent=2))
    else:
        out.print(render)
