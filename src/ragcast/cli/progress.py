"""Rich displays of the CLI: live job progress (a bar per item), transfers and tables."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Column, Table

from ragcast.client import TERMINAL_STATUSES, ApiError, Client, ValidationError
from ragcast.client.sync import Progress as OnProgress

TERMINAL_ITEM = ("completed", "failed", "cancelled")
NAME_WIDTH = 24
STAGE_WIDTH = 40
STATUS_STYLE = {"completed": "green", "failed": "red", "cancelled": "yellow"}


def _item_share(status: str, stage: str) -> float:
    """How much of an item is done: the share of its last finished stage."""
    # Imported here so that `ragcast --help` does not pay for the pipeline's imports.
    from ragcast.pipeline.stages import ACTIVE, ORDER, STAGES

    if status in TERMINAL_ITEM:
        return 1.0
    if stage in STAGES:
        return STAGES[stage]
    # An active stage ("transcribing") means the stage before it is the last one finished.
    finished = next((f for f, active in ACTIVE.items() if active == stage), None)
    return STAGES[ORDER[ORDER.index(finished) - 1]] if finished else 0.0


def _transfers(console: Console, *, enabled: bool = True) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        disable=not enabled,
    )


def _bar(progress: Progress, task: TaskID) -> OnProgress:
    def update(done: int, _total: int) -> None:
        progress.update(task, completed=done)

    return update


def upload_files(
    client: Client, paths: list[Path], console: Console, *, enabled: bool = True
) -> list[str]:
    """Upload each file with a progress bar; returns their document ids.

    A file the server refuses as unrecognised is skipped with a warning line.
    """
    ids: list[str] = []
    with _transfers(console, enabled=enabled) as bars:
        for path in paths:
            task = bars.add_task(f"Uploading {escape(path.name)}", total=path.stat().st_size)
            try:
                ids.append(client.upload(path, on_progress=_bar(bars, task))["document_id"])
            except ValidationError as exc:
                if not exc.details or exc.details.get("field") != "file":
                    raise
                bars.remove_task(task)
                issue = exc.details.get("issue") or exc.message
                console.print(f"[yellow]Skipped {escape(str(path))}: {escape(str(issue))}[/]")
    return ids


def fetch_export(client: Client, export_id: str, dest: Path, console: Console) -> Path:
    """Wait for an export to finish, then download it with a progress bar."""
    with console.status(f"Exporting ({escape(export_id)})…"):
        while (state := client.export_status(export_id))["status"] not in ("completed", "failed"):
            time.sleep(0.5)
    if state["status"] == "failed":
        raise ApiError(
            500, {"error": "export_failed", "message": f"Export failed: {state['error']}"}
        )
    if not dest.is_dir():
        dest.parent.mkdir(parents=True, exist_ok=True)
    with _transfers(console) as bars:
        name = escape(str(state["filename"]))
        task = bars.add_task(f"Downloading {name}", total=state["file_size"])
        return client.download(export_id, dest, on_progress=_bar(bars, task))


class JobProgress:
    """Live bars of one job: the overall progress and one bar per item."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not enabled,
        )
        self._overall = self._progress.add_task("[bold]Job[/]", total=100.0)
        self._items: dict[int, TaskID] = {}
        self._done: dict[int, float] = {}
        self._states: dict[int, str] = {}
        self._shown = 0.0

    def __enter__(self) -> JobProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def item(self, item: dict[str, Any]) -> None:
        """Show an item's state (from a WebSocket ``item`` or the items list)."""
        index = int(item["index"])
        status, stage = str(item.get("status") or ""), str(item.get("stage") or "")
        self._states[index] = status
        name = str(item.get("title") or item.get("source") or item.get("content_id") or index)
        if len(name) > NAME_WIDTH:
            name = name[: NAME_WIDTH - 1] + "…"
        # The state only: a failed item's reason goes to the items table, where it fits.
        state = stage if status not in TERMINAL_ITEM else status
        style = STATUS_STYLE.get(status, "cyan")
        text = f"  {escape(name):<{NAME_WIDTH}} [{style}]{escape(state):<12}[/]"
        if index not in self._items:
            self._items[index] = self._progress.add_task(text, total=1.0)
        # A retried stage must not make the bar jump back.
        self._done[index] = max(_item_share(status, stage), self._done.get(index, 0.0))
        self._progress.update(self._items[index], description=text, completed=self._done[index])

    def message(self, message: Mapping[str, Any]) -> None:
        """Apply one WebSocket message (or a status body) to the bars."""
        kind = message.get("type")
        if isinstance(message.get("item"), dict):
            self.item(message["item"])
        if kind == "error" or message.get("status") in ("failed", "cancelled"):
            text = message.get("message") or message.get("error") or message.get("status")
            text = escape(str(text)[:STAGE_WIDTH])
            # A job that stopped early shows how far it got, not a full bar.
            if message.get("progress") is not None:
                self._shown = float(message["progress"])
            self._progress.update(
                self._overall, completed=self._shown, description=f"[bold red]Job[/] {text}"
            )
            return
        done = kind == "completed" or message.get("status") == "completed"
        self._shown = float(message.get("progress") or 0.0)
        stage = str(message.get("stage") or "")
        if not done and stage.startswith("Processing item") and self._states:
            stage = self.counts(int(message.get("total_content") or 0))
        style = "green" if done else "bold"
        self._progress.update(
            self._overall,
            completed=self._shown,
            description=f"[{style}]Job[/] {escape(stage[:STAGE_WIDTH])}",
        )

    def counts(self, total: int = 0) -> str:
        """What the items are doing: ``3 items running, 1 done of 4``."""
        total = max(total, len(self._states))
        done = sum(1 for status in self._states.values() if status in TERMINAL_ITEM)
        running = sum(1 for status in self._states.values() if status == "processing")
        word = "item" if running == 1 else "items"
        return f"{running} {word} running, {done} done of {total}"


def follow(
    client: Client,
    job_id: str,
    websocket_url: str | None,
    console: Console,
    *,
    enabled: bool = True,
    poll_s: float = 4.0,
) -> dict[str, Any]:
    """Show a job's progress until it ends; returns its final status body.

    Follows the WebSocket; when the socket cannot be opened or breaks (a proxy that
    drops upgrades, an expired ticket), it falls back to polling the status, every
    ``poll_s`` seconds: the default stays under the contract's 1000 reads an hour.
    """
    with JobProgress(console, enabled=enabled) as display:
        for item in client.items(job_id)["items"]:
            display.item(item)
        try:
            for message in client.monitor(job_id, websocket_url):
                display.message(message)
        except ApiError as exc:
            if enabled:
                console.print(f"[yellow]Live updates unavailable ({exc.message}); polling.[/]")
        while (status := client.status(job_id))["status"] not in TERMINAL_STATUSES:
            display.message(status)
            time.sleep(poll_s)
        for item in client.items(job_id)["items"]:
            display.item(item)
        display.message(status)
    return status


def items_table(items: list[dict[str, Any]]) -> Table:
    """The items of a job: status, transcript source, language, chunks and error or warnings."""
    table = Table(title="Items", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("Item")
    table.add_column("Status")
    table.add_column("Transcript")
    table.add_column("Chunks", justify="right")
    table.add_column("Error / warnings", overflow="fold")
    for item in items:
        status = str(item["status"])
        table.add_row(
            str(item["index"]),
            escape(str(item.get("source") or item.get("content_id"))),
            status,
            _transcript(item),
            str(item.get("chunks", 0)),
            escape(str(item.get("error") or "; ".join(item.get("warnings") or []))),
            style=STATUS_STYLE.get(status) if status != "completed" else None,
        )
    return table


def _transcript(item: dict[str, Any]) -> str:
    """``asr``, with the language: ``asr de``, or ``asr de 0.97`` when it was detected."""
    parts = [str(item.get("transcript_source") or "-")]
    if item.get("language"):
        parts.append(str(item["language"]))
        if item.get("language_probability") is not None:
            parts.append(f"{item['language_probability']:.2f}")
    return " ".join(parts)


def job_summary(status: dict[str, Any]) -> str:
    """One line of rich markup saying how a job ended."""
    state = str(status["status"])
    style = STATUS_STYLE.get(state, "bold")
    line = f"[{style}]Job {escape(status['job_id'])} {state}[/]"
    result = status.get("result") or {}
    if result:
        line += (
            f": {result['completed_items']}/{result['total_items']} items completed, "
            f"{result['failed_items']} failed, {status.get('embeddings', 0)} embeddings, "
            f"{float(result['processing_time']):.1f} s"
        )
    if status.get("error"):
        line += f"\n[red]{escape(str(status['error']))}[/]"
    return line


def clock(seconds: float | None) -> str:
    """``mm:ss`` (``h:mm:ss`` past an hour) of a time offset."""
    if seconds is None:
        return "--:--"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def status_table(body: dict[str, Any]) -> Table:
    """A job's status body as a two-column grid."""
    table = Table.grid(padding=(0, 2))
    for key in ("job_id", "status", "progress", "stage", "content_processed", "total_content"):
        table.add_row(key, escape(str(body[key])))
    table.add_row("embeddings", str(body["embeddings"]))
    if body.get("error"):
        table.add_row("error", f"[red]{escape(str(body['error']))}[/]")
    return table


def jobs_table(page: dict[str, Any]) -> Table:
    """One page of the job list."""
    table = Table("Status", "Progress", "Items", "Embeddings", "Created")
    # An id is what the other commands take: it is never cut, whatever the terminal's width.
    widest = max((len(job["job_id"]) for job in page["jobs"]), default=3)
    table.columns.insert(0, Column("Job", no_wrap=True, min_width=widest))
    table.caption = f"{len(page['jobs'])} of {page['total']} jobs"
    for job in page["jobs"]:
        table.add_row(
            escape(job["job_id"]),
            job["status"],
            f"{job['progress']:.0f}%",
            f"{job['content_processed']}/{job['total_content']}",
            str(job["embeddings"]),
            job["created_at"][:19].replace("T", " "),
        )
    return table


def hits_table(hits: list[dict[str, Any]]) -> Table:
    """Search hits: score, source, time span, speaker and language (when any hit has
    them) and the chunk's text."""
    speakers = any(hit.get("speaker") for hit in hits)
    languages = any(hit.get("language") for hit in hits)
    table = Table("Score", "Source", "Span")
    if speakers:
        table.add_column("Speaker")
    if languages:
        table.add_column("Language")
    table.add_column("Text")
    for hit in hits:
        shown = hit.get("context") or hit  # with --context: the passage and its span
        span = (
            "" if shown["start_s"] is None else f"{clock(shown['start_s'])}-{clock(shown['end_s'])}"
        )
        source = escape(str(hit.get("title") or hit["source"]))
        if hit.get("deep_link"):  # opens the source at the moment, in terminals that can
            source = f"[link={hit['deep_link']}]{source}[/link]"
        row = [f"{hit['score']:.3f}", source, span]
        if speakers:
            row.append(escape(str(hit.get("speaker") or "")))
        if languages:
            row.append(escape(str(hit.get("language") or "")))
        table.add_row(*row, escape(shown["text"]))
    return table
