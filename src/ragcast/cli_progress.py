"""Rich displays of the CLI: a job's live progress (one bar per item) and its summary."""

from __future__ import annotations

import time
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
from rich.table import Table

from ragcast.client import TERMINAL_STATUSES, ApiError, Client

TERMINAL_ITEM = ("completed", "failed", "cancelled")
NAME_WIDTH = 32
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


def transfer_progress(console: Console, *, enabled: bool = True) -> Progress:
    """A progress display for uploads and downloads (bytes, speed)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        disable=not enabled,
    )


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
        name = str(item.get("title") or item.get("source") or item.get("content_id") or index)
        if len(name) > NAME_WIDTH:
            name = name[: NAME_WIDTH - 1] + "…"
        state = stage if status not in TERMINAL_ITEM else status
        if status == "failed" and item.get("error"):
            state = f"failed: {item['error']}"
        style = STATUS_STYLE.get(status, "cyan")
        text = f"  {escape(name):<{NAME_WIDTH}} [{style}]{escape(state[:60])}[/]"
        share = _item_share(status, stage)
        if index not in self._items:
            self._items[index] = self._progress.add_task(text, total=1.0, completed=share)
        else:
            task = self._items[index]
            # A retried stage must not make the bar jump back.
            done = max(share, self._progress.tasks[task].completed)
            self._progress.update(task, description=text, completed=done)

    def message(self, message: dict[str, Any]) -> None:
        """Apply one WebSocket message (or a status body) to the bars."""
        kind = message.get("type")
        if isinstance(message.get("item"), dict):
            self.item(message["item"])
        if kind == "error" or message.get("status") in ("failed", "cancelled"):
            text = message.get("message") or message.get("error") or message.get("status")
            self._progress.update(self._overall, description=f"[bold red]Job[/] {escape(str(text))}")
            return
        progress = float(message.get("progress") or 0.0)
        stage = escape(str(message.get("stage") or ""))
        style = "green" if kind == "completed" or message.get("status") == "completed" else "bold"
        self._progress.update(
            self._overall, completed=progress, description=f"[{style}]Job[/] {stage}"
        )


def follow(
    client: Client,
    job_id: str,
    websocket_url: str | None,
    console: Console,
    *,
    enabled: bool = True,
    poll_s: float = 1.0,
) -> dict[str, Any]:
    """Show a job's progress until it ends; returns its final status body.

    Follows the WebSocket; when the socket cannot be opened or breaks (a proxy that
    drops upgrades, an expired ticket), it falls back to polling the status.
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
    """The items of a job: status, transcript source, chunks and error (failed in red)."""
    table = Table(title="Items", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("Item")
    table.add_column("Status")
    table.add_column("Transcript")
    table.add_column("Chunks", justify="right")
    table.add_column("Error", overflow="fold")
    for item in items:
        status = str(item["status"])
        table.add_row(
            str(item["index"]),
            escape(str(item.get("source") or item.get("content_id"))),
            status,
            str(item.get("transcript_source") or "-"),
            str(item.get("chunks", 0)),
            escape(str(item.get("error") or "")),
            style=STATUS_STYLE.get(status) if status != "completed" else None,
        )
    return table


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
