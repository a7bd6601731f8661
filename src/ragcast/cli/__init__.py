"""The ``ragcast`` command: serve the API, manage keys, and drive jobs from a terminal.

Client commands talk to ``--server`` when given; without it they start the service
embedded in this process (data in ``RAGCAST_DATA_DIR``), which stops with the command.
Each module holds one group of commands; they are registered here, in the order that
``ragcast --help`` lists them.
"""

from __future__ import annotations

import typer

from ragcast.cli.answers import ask
from ragcast.cli.exports import export, transcript
from ragcast.cli.jobs import SHOWN_ITEMS as SHOWN_ITEMS  # re-exported: tests page with it
from ragcast.cli.jobs import _finish as _finish  # re-exported: tests drive it directly
from ragcast.cli.jobs import cancel, delete, items, jobs, process, status, watch
from ragcast.cli.keys import keys_app
from ragcast.cli.search import preview, search
from ragcast.cli.serve import mcp_server, serve, worker
from ragcast.cli.speakers import speakers

__all__ = ["app"]

app = typer.Typer(help="ragcast: audio and video to a searchable RAG index.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

for _command in (
    serve,
    worker,
    process,
    watch,
    status,
    items,
    jobs,
    cancel,
    delete,
    search,
    ask,
    preview,
    export,
    transcript,
    speakers,
):
    app.command()(_command)
app.command("mcp")(mcp_server)
