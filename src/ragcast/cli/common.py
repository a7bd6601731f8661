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
from pathlib import Path
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
User = Annotated[
    str | None,
    typer.Option(
        "--user",
        envvar="RAGCAST_USER",
        help="Embedded only: the data dir's user to act as (needed when it has several).",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON.", metavar="")]
STARTUP_TIMEOUT_S = 60.0
#: the user the embedded service acts as, while a command runs (None against --server)
_acting: list[str] = []


def acting_user() -> str | None:
    """The name of the user the running embedded command acts as; None against --server."""
    return _acting[-1] if _acting else None


def for_whom(text: str, user: str | None) -> str:
    """``text`` ("No results") followed by the user it is for when known: "No results for
    alice." (an empty answer may only mean that another user owns the data)."""
    return f"{text} for {escape(user)}." if user else f"{text}."


def print_error(exc: ApiError) -> None:
    """Print an API error, with the field at fault and the request id when it has them."""
    # Soft wrap: the terminal folds a long line, rich adds no newline to a copied one.
    err.print(f"[red]Error: {escape(exc.message)}[/]", soft_wrap=True)
    if isinstance(exc, ValidationError) and exc.details:
        field, issue = exc.details.get("field"), exc.details.get("issue")
        said = f"{field}: {issue}"
        if said not in exc.message:  # the API's message usually says it already
            err.print(f"[red]  {escape(said)}[/]")
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


def _identity(s: Any, data_dir: Path, user: str | None) -> tuple[str, str]:
    """The key and name the embedded service acts as: ``user`` when given, else the data
    dir's one user besides the embedded ``local`` one; ``local`` when it has none.

    A user's key is made once and kept in the data dir (``local-<id>.key``), as
    :func:`ragcast.auth.local_key` keeps its own, so ``keys list`` gains one key per user.
    """
    from sqlalchemy import select

    from ragcast.auth import LOCAL_USER, authenticate, create_key, local_key
    from ragcast.errors import AuthError
    from ragcast.store.models import User as UserRow

    names = [n for n in s.scalars(select(UserRow.name).order_by(UserRow.name)) if n != LOCAL_USER]
    if user is None:
        if len(names) > 1:
            err.print(
                f"[red]Error: this data dir has {len(names)} users ({escape(', '.join(names))}): "
                "say which with --user NAME (or RAGCAST_USER)[/]"
            )
            raise typer.Exit(2)
        user = names[0] if names else LOCAL_USER
    if user == LOCAL_USER:
        return local_key(s, data_dir), LOCAL_USER
    row = s.scalar(select(UserRow).where(UserRow.name == user))
    if row is None:
        known = escape(", ".join(names) or "none")
        err.print(f"[red]Error: --user: no user {escape(user)} here (users: {known})[/]")
        raise typer.Exit(2)
    path = data_dir / f"local-{row.id}.key"
    if path.is_file():
        key = path.read_text().strip()
        try:
            if authenticate(s, key).user_id == row.id:
                return key, user
        except AuthError:
            pass
    key, _ = create_key(s, user)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(key)
    tmp.chmod(0o600)
    tmp.replace(path)
    return key, user


@contextmanager
def embedded(*, workers: bool, user: str | None = None) -> Iterator[Client]:
    """The API on a free local port in a background thread, acting as the data dir's user
    (see :func:`_identity`) with a key kept in the data dir and reused run after run."""
    # Model loaders draw their own progress bars, which would tear the rich display.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import uvicorn

    from ragcast.api.app import create_app
    from ragcast.errors import ConfigurationError
    from ragcast.settings import Settings

    # No preloading: a command that ends while the loader thread is still inside native
    # model code aborts the interpreter at exit; the workers load models on first use.
    try:
        # One local user: the embedded service has no one to share its limits with.
        settings = Settings(preload_models=False, rate_limits="off")
        fastapi_app = create_app(settings, run_workers=workers)
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
            key, name = _identity(s, ctx.settings.data_dir, user)
        _acting.append(name)
        try:
            with Client(f"http://127.0.0.1:{port}", key) as client:
                yield client
        finally:
            _acting.pop()
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


@contextmanager
def service(
    server: str | None, api_key: str | None, *, workers: bool = False, user: str | None = None
) -> Iterator[Client]:
    """A client of ``server``, or of the embedded service (acting as ``user``, by default
    ``RAGCAST_USER`` or the data dir's one user); API errors end the command."""
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
            user = user or os.environ.get("RAGCAST_USER") or None
            with embedded(workers=workers, user=user) as client:
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
