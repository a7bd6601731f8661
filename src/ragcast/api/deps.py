"""Dependencies of the routes, as ``Annotated`` aliases (``CurrentUser``, ``Ctx``...).

They run on the event loop: a key checked a moment ago is found in the process's
:class:`~ragcast.auth.KeyCache` and an in-memory rate limit is counted at once; only
a key not seen lately is read from the store, in a worker thread.

Buckets (``RAGCAST_RATE_LIMIT_<BUCKET>``, see :mod:`ragcast.api.ratelimit`):
``process`` (``POST /process``, ``POST /subscriptions``, running a subscription),
``export`` (``POST /export``), ``write`` (``PATCH .../speakers``), ``ask`` (``POST /ask``),
``mcp`` (every request to ``/mcp``; its tool calls count in their routes' buckets too)
and ``read`` (every other route). A request refused as invalid (``400
validation_error``) is counted in ``read`` instead of its route's bucket
(:func:`forgive_invalid`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from ragcast.api.ratelimit import Counted, RateLimiter
from ragcast.auth import KeyCache, Principal
from ragcast.context import Context
from ragcast.errors import ForbiddenError, RateLimitError

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer rc_...`")


async def get_ctx(request: Request) -> Context:
    """The process's shared services."""
    ctx: Context = request.app.state.ctx
    return ctx


Ctx = Annotated[Context, Depends(get_ctx)]


async def principal_of(request: Request, key: str | None) -> Principal:
    """The principal of ``key``: remembered, or read from the store off the event loop."""
    keys: KeyCache = request.app.state.keys
    found = keys.lookup(key)
    if found is not None:
        return found
    ctx: Context = request.app.state.ctx

    def check() -> Principal:
        with ctx.db.session() as s:
            return keys.authenticate(s, key)

    return await run_in_threadpool(check)


def limited(bucket: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates, then counts the request in ``bucket``."""

    async def dependency(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        state = request.scope.setdefault("state", {})
        principal = state.get("principal")
        if not isinstance(principal, Principal):  # else checked by the body guard already
            principal = await principal_of(request, creds.credentials if creds else None)
        limiter: RateLimiter = request.app.state.limiter
        try:
            counted = await limiter.acount(bucket, principal.user_id, admin=principal.is_admin)
        except RateLimitError as exc:
            state["rate_headers"] = exc.headers
            raise
        state["rate_headers"] = counted.state.headers()
        state["rate_hit"] = counted
        return principal

    return dependency


#: the bucket an invalid request is counted in instead of its route's
INVALID_BUCKET = "read"


async def forgive_invalid(request: Request) -> None:
    """Move the hit of a request refused as invalid from its route's bucket to ``read``.

    FastAPI solves a route's dependencies (so counts the request) before it validates the
    body, query and path; a request that fails there, or whose handler refuses it with a
    ``ValidationError`` before doing anything, did no work of its bucket. It is counted
    in ``read`` instead (still limited, by the larger window), and its bucket's hit is
    given back; the headers then report the route's bucket after the refund. When
    ``read`` is full too, the route's hit stands.
    """
    state = request.scope.get("state")
    if not isinstance(state, dict):
        return
    counted = state.pop("rate_hit", None)
    if not isinstance(counted, Counted) or counted.bucket == INVALID_BUCKET or not counted.token:
        return
    limiter: RateLimiter = request.app.state.limiter
    try:
        await limiter.ahit(INVALID_BUCKET, counted.user_id)
    except RateLimitError:
        return
    state["rate_headers"] = (await limiter.arefund(counted)).headers()


async def _admin(principal: Annotated[Principal, Depends(limited("read"))]) -> Principal:
    if not principal.is_admin:
        raise ForbiddenError("This endpoint needs an admin API key")
    return principal


CurrentUser = Annotated[Principal, Depends(limited("read"))]
ProcessUser = Annotated[Principal, Depends(limited("process"))]
ExportUser = Annotated[Principal, Depends(limited("export"))]
WriteUser = Annotated[Principal, Depends(limited("write"))]
AskUser = Annotated[Principal, Depends(limited("ask"))]
AdminUser = Annotated[Principal, Depends(_admin)]
