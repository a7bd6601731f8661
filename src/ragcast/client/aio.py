"""The asynchronous SDK: :class:`AsyncClient`, the same methods as :class:`Client`, awaited."""

from __future__ import annotations

import asyncio
import mimetypes
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from datetime import date
from pathlib import Path
from typing import Any, Literal, overload

import httpx

from ragcast.client._base import (
    IN_PROCESS_TRANSPORTS,
    ITEMS_PAGE,
    ITEMS_PAGE_MAX,
    TERMINAL_STATUSES,
    BaseClient,
    Call,
    CountingReader,
    Progress,
    SseReader,
    TextFormat,
    filename_from,
)
from ragcast.client.errors import ApiError, error_from_response
from ragcast.client.events import Event, is_terminal, parse_event

__all__ = ["AsyncClient"]


async def _sleep(seconds: float) -> None:
    """Wait between retries and polls (one place, so tests can count the waits)."""
    await asyncio.sleep(seconds)


class AsyncClient(BaseClient):
    """An asyncio client of one ragcast server; see :class:`ragcast.client.Client`.

    ``transport`` replaces the network: ``httpx.ASGITransport(app=create_app())`` drives
    the app in-process (HTTP only: :meth:`monitor` needs a real server's WebSocket).

    >>> async with AsyncClient("http://localhost:8000", "rc_...") as client:  # doctest: +SKIP
    ...     job = await client.process({...})
    ...     async for event in client.monitor(job["job_id"], job["websocket_url"]):
    ...         print(event["type"])
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        max_retry_wait: float = 60.0,
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            max_backoff=max_backoff,
            max_retry_wait=max_retry_wait,
        )
        self._http = httpx.AsyncClient(transport=transport, **self._http_options())
        self._follows_socket = not isinstance(transport, IN_PROCESS_TRANSPORTS)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # -- transport ---------------------------------------------------------------------

    async def _send(self, call: Call, *, stream: bool = False, **kw: Any) -> httpx.Response:
        """Send with retries; the response is successful (and open when ``stream``)."""
        attempt = 0
        while True:
            cause: Exception | None = None
            try:
                request = self._http.build_request(call.method, call.path, **call.kwargs(), **kw)
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                cause = exc
                error, retryable = self._transport_error(exc, self.base_url)
                if not retryable:
                    raise error from exc
            else:
                if response.is_success:
                    return response
                await response.aread()
                await response.aclose()
                error = error_from_response(response)
            delay = self.retry.delay(attempt, error)
            if delay is None:
                raise error from cause
            await _sleep(delay)
            attempt += 1

    async def _json(self, call: Call, **kw: Any) -> dict[str, Any]:
        return self._object((await self._send(call, **kw)).json())

    # -- jobs --------------------------------------------------------------------------

    async def process(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Start a job (``POST /process``); a ``job_id`` is made up when absent."""
        return await self._json(self._process(config))

    async def status(self, job_id: str) -> dict[str, Any]:
        """Status and progress of a job."""
        return await self._json(self._status(job_id))

    async def items_page(
        self,
        job_id: str,
        *,
        limit: int = ITEMS_PAGE,
        after: int | None = None,
        offset: int | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """One page of a job's items in index order; see :meth:`Client.items_page`."""
        return await self._json(self._items(job_id, limit, after, offset, status))

    async def iter_items(
        self, job_id: str, *, status: str | None = None, page_size: int = ITEMS_PAGE_MAX
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a job (those in ``status``, when given) in index order, fetched a
        page of ``page_size`` at a time as the iteration goes."""
        after: int | None = None
        while True:
            page = await self.items_page(job_id, limit=page_size, after=after, status=status)
            for item in page["items"]:
                yield item
            after = page.get("next_after")
            if after is None:
                return

    async def items(
        self, job_id: str, *, status: str | None = None, page_size: int = ITEMS_PAGE_MAX
    ) -> dict[str, Any]:
        """All the items of a job as ``{"job_id", "items", "total"}``: every page fetched
        (:meth:`iter_items`); one page is :meth:`items_page`."""
        items = [i async for i in self.iter_items(job_id, status=status, page_size=page_size)]
        return self._all_items(job_id, len(items), items)

    @overload
    async def transcript(
        self, job_id: str, index: int, format: Literal["json"] = "json"
    ) -> dict[str, Any]: ...

    @overload
    async def transcript(self, job_id: str, index: int, format: TextFormat) -> str: ...

    @overload
    async def transcript(self, job_id: str, index: int, format: str) -> dict[str, Any] | str: ...

    async def transcript(
        self, job_id: str, index: int, format: str = "json"
    ) -> dict[str, Any] | str:
        """The whole transcript of a job's item ``index``: the JSON body (``json``, with
        speakers and segments) as a dict, or the text of ``srt``, ``vtt`` or ``txt``.
        ``ConflictError`` while the item has no transcript yet; ``ValidationError`` (400)
        for another format."""
        response = await self._send(self._transcript(job_id, index, format))
        return self._transcript_body(response, format)

    async def name_speakers(
        self, job_id: str, index: int, names: Mapping[str, str | None]
    ) -> dict[str, Any]:
        """Name the speakers of a diarized item (``{"SPEAKER_00": "Host"}``; None forgets a
        name); transcripts, exports and search hits then show the names. Answers each
        label with its name and how many chunks were updated."""
        return await self._json(self._name_speakers(job_id, index, names))

    async def speakers(self) -> dict[str, Any]:
        """The speaker library: the voices named so far (``{"speakers": [...]}``), which
        name matching speakers of later diarized items."""
        return await self._json(self._speakers())

    async def forget_speaker(self, name: str) -> dict[str, Any]:
        """Forget a voice of the speaker library (names already given to items stay)."""
        return await self._json(self._forget_speaker(name))

    async def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job."""
        return await self._json(self._cancel(job_id))

    async def delete_job(self, job_id: str) -> dict[str, Any]:
        """Delete a finished job with its chunks, vectors, exports and the files only it used."""
        return await self._json(self._delete_job(job_id))

    async def delete_upload(self, document_id: str) -> dict[str, Any]:
        """Delete an upload no job uses."""
        return await self._json(self._delete_upload(document_id))

    async def ticket(self, job_id: str) -> dict[str, Any]:
        """A fresh ticketed ``websocket_url`` for a job."""
        return await self._json(self._ticket(job_id))

    async def jobs(
        self, limit: int = 50, offset: int = 0, status: str | None = None
    ) -> dict[str, Any]:
        """One page of this user's jobs, newest first."""
        return await self._json(self._jobs(limit, offset, status))

    async def preview(self, url: str, page: int = 1, page_size: int = 50) -> dict[str, Any]:
        """One page of a channel's items, whose ids go into ``selected_content``."""
        return await self._json(self._preview(url, page, page_size))

    async def wait(
        self, job_id: str, poll_s: float = 4.0, timeout: float | None = None
    ) -> dict[str, Any]:
        """Wait until a job is completed, failed or cancelled; answers its final status.

        The job is followed over its WebSocket (a fresh ticket), then its status is read
        once. Where the socket cannot be opened or drops before the job's end (a server
        restart, a proxy without WebSockets), the status is polled every ``poll_s``
        seconds instead. ``TimeoutError`` when the job has not ended after ``timeout``
        seconds, on either path. A client whose ``transport`` answers in-process polls.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        status = await self.status(job_id)
        if status["status"] not in TERMINAL_STATUSES and self._follows_socket:
            await self._follow(job_id, deadline)
            status = await self.status(job_id)
        while status["status"] not in TERMINAL_STATUSES:
            if self._overdue(deadline, poll_s):
                raise self._still(job_id, status, timeout)
            await _sleep(poll_s)
            status = await self.status(job_id)
        return status

    async def _follow(self, job_id: str, deadline: float | None) -> None:
        """Follow a job's socket up to its terminal message, the socket's end or
        ``deadline``, whichever comes first; a failure only ends it (``wait`` polls)."""
        from websockets.exceptions import WebSocketException

        try:
            url = (await self.ticket(job_id)).get("websocket_url")
            if isinstance(url, str):
                async with aclosing(self._events(job_id, url, deadline)) as events:
                    async for _ in events:
                        pass  # the events stop after the terminal one
        except (ApiError, OSError, TimeoutError, WebSocketException):
            return

    async def monitor(self, job_id: str, websocket_url: str | None = None) -> AsyncIterator[Event]:
        """Follow a job over its WebSocket: every message, up to the terminal one.

        ``websocket_url`` is the ticketed URL ``process`` answered with; without it the
        socket is opened with this client's API key.
        """
        async with aclosing(self._events(job_id, websocket_url, None)) as events:
            async for event in events:
                yield event

    async def _events(
        self, job_id: str, websocket_url: str | None, deadline: float | None
    ) -> AsyncGenerator[Event, None]:
        """The messages of :meth:`monitor`; ``TimeoutError`` once ``deadline`` has passed."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake

        url, headers = self._socket_target(job_id, websocket_url)
        try:
            opening = self._open_timeout(deadline)
            socket = await connect(url, additional_headers=headers, open_timeout=opening)
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            raise self._socket_refused(job_id, exc) from exc
        async with socket:
            while True:
                try:
                    raw = await asyncio.wait_for(socket.recv(), self._left(deadline))
                    event = parse_event(raw)
                except ConnectionClosedOK:
                    return
                except ConnectionClosed as exc:
                    raise self._socket_broken(exc) from exc
                yield event
                if is_terminal(event):
                    return

    # -- files, exports, search --------------------------------------------------------

    async def upload(self, path: Path, on_progress: Progress | None = None) -> dict[str, Any]:
        """Upload a recording or document (streamed); returns its ``document_id``."""
        path = Path(path)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        with path.open("rb") as file:
            reader = CountingReader(file, path.stat().st_size, on_progress)
            files = {"file": (path.name, reader, content_type)}
            return await self._json(Call("POST", "/uploads"), files=files)

    async def export(self, job_id: str, fmt: str, export_id: str | None = None) -> dict[str, Any]:
        """Start an export of a finished job in ``fmt`` (json, csv, parquet, vector)."""
        return await self._json(self._export(job_id, fmt, export_id))

    async def export_status(self, export_id: str) -> dict[str, Any]:
        """Status of an export; ``download_url`` once it is completed."""
        return await self._json(self._export_status(export_id))

    async def download(
        self, export_id: str, dest: Path, on_progress: Progress | None = None
    ) -> Path:
        """Stream an export's file to ``dest`` (a file, or a folder for the server's name).

        The file appears complete or not at all: it is written beside ``dest`` first.
        """
        dest = Path(dest)
        response = await self._send(self._download(export_id), stream=True)
        try:
            target = dest / filename_from(response.headers, export_id) if dest.is_dir() else dest
            part = target.with_name(target.name + ".part")
            total = int(response.headers.get("content-length") or 0)
            received = 0
            try:
                with part.open("wb") as out:
                    async for block in response.aiter_bytes():
                        out.write(block)
                        received += len(block)
                        if on_progress is not None:
                            on_progress(received, total)
                part.replace(target)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
        finally:
            await response.aclose()
        return target

    async def search(
        self,
        query: str,
        job_id: str | None = None,
        top_k: int = 10,
        *,
        mode: str | None = None,
        content_id: str | None = None,
        platform: str | None = None,
        language: str | None = None,
        channel: str | None = None,
        speaker: str | None = None,
        uploaded_after: str | date | None = None,
        uploaded_before: str | date | None = None,
        context: int | None = None,
        rerank: bool | None = None,
        min_score: float | None = None,
        min_confidence: float | None = None,
    ) -> dict[str, Any]:
        """The user's best chunks for ``query``: hybrid (lexical and dense) unless ``mode``
        is ``dense`` or ``lexical``. Filters narrow it (one job, content, platform, spoken
        language, channel, main speaker by name or label, upload dates, the recogniser's
        ``min_confidence``); ``min_score`` (0-1, a fixed scale) drops weaker hits;
        ``context`` adds each hit's neighbouring chunks; ``rerank`` reorders the best
        candidates with the server's reranker."""
        call = self._search(
            query,
            job_id,
            top_k,
            mode=mode,
            content_id=content_id,
            platform=platform,
            language=language,
            channel=channel,
            speaker=speaker,
            uploaded_after=uploaded_after,
            uploaded_before=uploaded_before,
            context=context,
            rerank=rerank,
            min_score=min_score,
            min_confidence=min_confidence,
        )
        return await self._json(call)

    async def ask(
        self,
        query: str,
        *,
        top_k: int | None = None,
        job_id: str | None = None,
        mode: str | None = None,
        language: str | None = None,
        context: int | None = None,
        fallback: bool | None = None,
        min_score: float | None = None,
        **filters: Any,
    ) -> dict[str, Any]:
        """An answer from the user's recordings citing its passages as ``[n]``:
        ``{"answered", "answer", "mode", "model", "citations": [{"n", "text", "title",
        "start_s", "end_s", "deep_link", "media_url", ...}]}``. ``mode`` is
        ``extractive`` (quoted sentences) or ``generative`` (the server's LLM; its
        default when one is configured); ``language`` is the answer's (default: the
        question's); ``fallback`` answers extractively when the LLM is down; ``filters``
        are those of :meth:`search` (``recording_language`` for its ``language``).
        ``answered`` is false, with no citations, when nothing in the recordings answers."""
        return await self._json(
            self._ask(
                query,
                False,
                top_k=top_k,
                job_id=job_id,
                mode=mode,
                language=language,
                context=context,
                fallback=fallback,
                min_score=min_score,
                **filters,
            )
        )

    async def ask_stream(
        self,
        query: str,
        *,
        top_k: int | None = None,
        job_id: str | None = None,
        mode: str | None = None,
        language: str | None = None,
        context: int | None = None,
        fallback: bool | None = None,
        min_score: float | None = None,
        **filters: Any,
    ) -> AsyncIterator[dict[str, Any]]:
        """:meth:`ask` streamed: events ``{"event", "data"}`` as they come, ``citations``
        (the passages), ``delta`` (``{"text"}`` pieces of the answer), then ``done`` (the
        whole answer, as :meth:`ask` returns it) or ``error`` (the contract's error body)."""
        response = await self._send(
            self._ask(
                query,
                True,
                top_k=top_k,
                job_id=job_id,
                mode=mode,
                language=language,
                context=context,
                fallback=fallback,
                min_score=min_score,
                **filters,
            ),
            stream=True,
        )
        reader = SseReader()
        try:
            async for line in response.aiter_lines():
                event = reader.feed(line)
                if event is not None:
                    yield event
        finally:
            await response.aclose()

    async def cleanup(self, older_than_hours: float | None = None) -> dict[str, Any]:
        """Delete finished jobs older than ``older_than_hours`` (admin keys only)."""
        return await self._json(self._cleanup(older_than_hours))
