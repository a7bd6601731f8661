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
    args: Annotated[
        list[str],
        typer.Argument(
            help="JOB INDEX LABEL=NAME... names an item's speakers (LABEL= forgets a name); "
            "'list' shows the speaker library; 'forget NAME' forgets a voice.",
            metavar="JOB INDEX LABEL=NAME... | list | forget NAME",
        ),
    ],
    server: Server = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Name a diarized item's speakers, or manage the speaker library.

    Naming a speaker keeps their voice in your speaker library: later diarized items
    name a speaker whose voice matches. Transcripts, exports and search show the names.

      ragcast speakers bulk-1 0 SPEAKER_00=Host SPEAKER_01=Guest
      ragcast speakers list
      ragcast speakers forget Host
    """
    if args[0] == "list" and len(args) == 1:
        _library(server, api_key, as_json)
    elif args[0] == "forget" and len(args) == 2:
        with service(server, api_key) as client:
            body = client.forget_speaker(args[1])
        show(body, as_json, f"Forgot the voice of {escape(body['name'])}.")
    elif len(args) >= 3 and args[1].isdigit():
        _name(args[0], int(args[1]), _speaker_names(args[2:]), server, api_key, as_json)
    else:
        err.print(
            "[red]Error: expected JOB INDEX LABEL=NAME..., 'list' or 'forget NAME' "
            "(ragcast speakers --help)[/]"
        )
        raise typer.Exit(2)


def _name(
    job_id: str,
    index: int,
    mapping: dict[str, str | None],
    server: str | None,
    api_key: str | None,
    as_json: bool,
) -> None:
    with service(server, api_key) as client:
        body = client.name_speakers(job_id, index, mapping)
    table = Table("Label", "Name", title=f"{escape(job_id)} item {index}")
    for row in body["speakers"]:
        named = row["name"] != row["label"]
        table.add_row(escape(row["label"]), escape(row["name"]) if named else "[dim]unnamed[/]")
    count = body["updated_chunks"]
    show(body, as_json, Group(table, f"{count} chunk{'' if count == 1 else 's'} updated."))


def _library(server: str | None, api_key: str | None, as_json: bool) -> None:
    with service(server, api_key) as client:
        body = client.speakers()
    if not body["speakers"]:
        show(body, as_json, "The speaker library is empty: name a diarized speaker to add one.")
        return
    table = Table("Name", "Samples", "Speech", "Updated", title="Speaker library")
    for v in body["speakers"]:
        table.add_row(
            escape(v["name"]), str(v["samples"]), f"{v['speech_s']:.0f} s", v["updated_at"][:19]
        )
    show(body, as_json, Group(table, f"A voice names a speaker at similarity {body['threshold']}."))
