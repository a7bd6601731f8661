"""``WS /ws/bulk-processing/{job_id}``: the current state, then every event, then close."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from ragcast.api.errors import error_body
from ragcast.auth import authenticate
from ragcast.context import Context
from ragcast.errors import AuthError, NotFoundError, RagcastError
from ragcast.pipeline.progress import progress_event, terminal_event
from ragcast.store.models import Job
from ragcast.tickets import TicketSigner, redeem_ticket

router = APIRouter()

POLICY_VIOLATION = 1008
SAFETY_POLL_S = 10.0


def _user_id(ctx: Context, signer: TicketSigner, ws: WebSocket, job_id: str) -> int:
    token = ws.query_params.get("token")
    with ctx.db.session() as s:
        if token:
            return redeem_ticket(s, signer, token, job_id)
        header = ws.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        return authenticate(s, key.strip() if scheme.lower() == "bearer" else None).user_id


def _snapshot(ctx: Context, user_id: int, job_id: str) -> tuple[int, dict[str, Any], bool] | None:
    """The job's id, its current-state message, and whether it is finished."""
    with ctx.db.session() as s:
        job = s.scalar(select(Job).where(Job.user_id == user_id, Job.job_id == job_id))
        if job is None:
            return None
        if job.finished_at is not None or job.status == "cancelled":
            return job.id, terminal_event(job), True
        return job.id, progress_event(job), False


@router.websocket("/ws/bulk-processing/{job_id}")
async def progress_socket(websocket: WebSocket, job_id: str) -> None:
    """Follow a job: authenticated by ``?token=`` ticket or a bearer API key."""
    ctx: Context = websocket.app.state.ctx
    signer: TicketSigner = websocket.app.state.signer
    try:
        user_id = await run_in_threadpool(_user_id, ctx, signer, websocket, job_id)
    except AuthError as exc:
        await _deny(websocket, exc)
        return
    first = await run_in_threadpool(_snapshot, ctx, user_id, job_id)
    if first is None:
        await _deny(websocket, NotFoundError(f"Job {job_id!r} not found"))
        return
    job_pk = first[0]
    await websocket.accept()
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        async with ctx.bus.subscribe(job_pk) as queue:
            # Subscribed before reading the state again, so no event falls in between.
            snap = await run_in_threadpool(_snapshot, ctx, user_id, job_id)
            assert snap is not None
            _, message, finished = snap
            await websocket.send_json(message)
            if not finished:
                await _forward(websocket, queue, message, lambda: _snapshot(ctx, user_id, job_id))
        await websocket.close()


async def _deny(websocket: WebSocket, exc: RagcastError) -> None:
    """Refuse the handshake with the contract's error body (401/404) where the server can.

    Servers without the denial-response extension get a close with code 1008 instead.
    """
    body = error_body(exc.code, exc.message)
    try:
        await websocket.send_denial_response(JSONResponse(body, status_code=exc.status_code))
    except RuntimeError:
        await websocket.close(code=POLICY_VIOLATION, reason=exc.message[:120])


async def _forward(
    websocket: WebSocket,
    queue: asyncio.Queue[dict[str, Any]],
    last: dict[str, Any],
    snapshot: Any,
) -> None:
    """Send events until the terminal one; ``progress`` never goes backwards."""
    best = float(last.get("progress") or 0)
    while True:
        try:
            event = await asyncio.wait_for(queue.get(), timeout=SAFETY_POLL_S)
        except TimeoutError:
            # A quiet job: make sure its end was not missed.
            snap = await run_in_threadpool(snapshot)
            if snap is None or snap[1]["type"] == "progress":
                continue
            event = snap[1]
        if event["type"] == "progress":
            best = max(best, float(event.get("progress") or 0))
            event = {**event, "progress": best}
        await websocket.send_json(event)
        if event["type"] in ("completed", "error"):
            return
