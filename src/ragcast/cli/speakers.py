"""``ragcast speakers``: name the speakers diarization found in an item."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Group
from rich.markup import escape
from rich.table import Table

from ragcast.cli.common import ApiKey, AsJson, Server, err, service, show


def _speaker_names(pairs: list[str]) -> dict[str, str | None]:
    """``LABEL=NAME`` arguments as a mapping (``LABEL=`` forgets), or an error and exit 2."""
    names: dict[str, str | None] = {}
    for pair in pairs:
        label, sep, name = pair.partition("=")
        if not sep or not label.strip():
            err.print(
                f"[red]Error: {escape(pair)}: name a speaker as LABEL=NAME (SPEAKER_00=Host)[/]"
            )
            raise typer.Exit(2)
        names[label.strip()] = name.strip() or None
    return names


def speakers(
    job_id: Annotated[str, typer.Argument(help="The job.")],
    index: Annotated[int, typer.Argument(help="The item's index in the job (from 0).", min=0)],
    names: Annotated[
        list[str],
        typer.Argument(help="LABEL=NAME pairs (SPEAKER_00=Host); LABEL= forgets a name."),
    ],
    server: Server = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Name a diarized item's speakers; transcripts, exports and search then show the names."""
    mapping = _speaker_names(names)
    with service(server, api_key) as client:
        body = client.name_speakers(job_id, index, mapping)
    table = Table("Label", "Name", title=f"{escape(job_id)} item {index}")
    for row in body["speakers"]:
        named = row["name"] != row["label"]
        table.add_row(escape(row["label"]), escape(row["name"]) if named else "[dim]unnamed[/]")
    count = body["updated_chunks"]
    show(body, as_json, Group(table, f"{count} chunk{'' if count == 1 else 's'} updated."))
