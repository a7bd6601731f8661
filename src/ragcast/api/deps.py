"""Dependencies of the routes, as ``Annotated`` aliases (``CurrentUser``, ``Ctx``...)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ragcast.api.ratelimit import RateLimiter
from ragcast.auth import Principal, authenticate
from ragcast.context import Context
from ragcast.errors import ForbiddenError, RateLimitError

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer rc_...`")


def get_ctx(request: Request) -> Context:
    """The process's shared services."""
    ctx: Context = request.app.state.ctx
    return ctx


Ctx = Annotated[Context, Depends(get_ctx)]


def _principal(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    found = getattr(request.state, "principal", None)
    if isinstance(found, Principal):
        return found  # checked by the body guard before the body was read
    ctx: Context = request.app.state.ctx
    with ctx.db.session() as s:
        return authenticate(s, creds.credentials if creds else None)


def limited(bucket: str) -> Callable[..., Principal]:
    """A dependency that authenticates, then counts the request in ``bucket``."""

    def dependency(
        request: Request, principal: Annotated[Principal, Depends(_principal)]
    ) -> Principal:
        limiter: RateLimiter = request.app.state.limiter
        try:
            state = limiter.hit(bucket, principal.user_id)
        except RateLimitError as exc:
            request.state.rate_headers = exc.headers
            raise
        request.state.rate_headers = state.headers()
        return principal

    return dependency


def _admin(principal: Annotated[Principal, Depends(limited("read"))]) -> Principal:
    if not principal.is_admin:
        raise ForbiddenError("This endpoint needs an admin API key")
    return principal


CurrentUser = Annotated[Principal, Depends(limited("read"))]
ProcessUser = Annotated[Principal, Depends(limited("process"))]
ExportUser = Annotated[Principal, Depends(limited("export"))]
AdminUser = Annotated[Principal, Depends(_admin)]
