"""A Model Context Protocol server of ragcast: search and jobs as tools for an agent.

Two ways to reach it, both on the official ``mcp`` SDK (2.x, the ``integrations`` extra):

- mounted on the API at ``/mcp`` (streamable HTTP), for clients that send the same
  ``Authorization: Bearer rc_...`` key as the REST API (a ``401`` without a valid one);
- ``ragcast mcp``, over stdio, for a local agent: a client of ``--server`` or of the
  embedded service.

Every tool is a call of the public REST API through :class:`ragcast.client.AsyncClient`
with the caller's key (in-process through ``httpx.ASGITransport`` when mounted), so
authentication, validation, rate limits and ownership are the REST API's own; an API
error becomes a tool error carrying the API's message. Mounted, each request to
``/mcp`` also counts in the caller's ``mcp`` rate-limit bucket (``RAGCAST_RATE_LIMIT_MCP``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    asynccontextmanager,
    contextmanager,
    nullcontext,
)
from contextvars import ContextVar
from typing import TYPE_CHECKING, Annotated, Any, Literal

import httpx
from pydantic import BaseModel, Field

from ragcast.api.schemas import JobList, JobState, JobStatus, Platform
from ragcast.client import ApiError, AsyncClient

if TYPE_CHECKING:
    from fastapi import FastAPI
    from mcp.server.mcpserver import MCPServer
    from starlette.types import Receive, Scope, Send

log = logging.getLogger(__name__)

INSTALL_HINT = "the MCP server needs the mcp SDK 2.x: pip install 'ragcast[integrations]'"
#: the base URL of the in-process client of the mounted server (never on a network)
INTERNAL_URL = "http://ragcast.internal"
#: the scheme and host the caller of the mounted server reached it at: its in-process
#: client calls with them, so the links the API makes (``media_url``) are the caller's
_CALLER_ORIGIN: ContextVar[str | None] = ContextVar("ragcast_mcp_origin", default=None)
#: how long a tool waits for the API of ``--server`` (a first search may load a model)
REMOTE_TIMEOUT_S = 300.0

ClientFactory = Callable[[], AsyncClient]
"""Makes the API client a tool call uses: the caller's key, this process's transport."""
Sessions = Callable[[], AbstractAsyncContextManager[None]]
"""Runs the mounted server's sessions for the app's lifespan."""


def sdk_available() -> bool:
    """Whether the ``mcp`` SDK (2.x) is installed."""
    try:
        import mcp.server.mcpserver  # noqa: F401
    except ImportError:
        return False
    return True


# -- what the tools answer -------------------------------------------------------------


class Hit(BaseModel):
    """One chunk found by ``search``, with its time span and where to open it."""

    text: str
    start_s: float | None = Field(description="Start of the chunk in the recording, seconds")
    end_s: float | None
    deep_link: str | None = Field(description="The URL opened at start_s, where known")
    media_url: str | None = Field(
        default=None,
        description="A signed, expiring link to the recording a browser can play, where "
        "ragcast keeps one",
    )
    title: str | None
    source: str = Field(description="File name or URL of the item")
    url: str | None = None
    job_id: str
    content_id: str
    score: float = Field(description="Relevance, 0-1 on a scale that is the same for any query")
    confidence: float | None = Field(
        default=None, description="How sure the recogniser was of the words (0-1); null for text"
    )
    speaker: str | None = Field(default=None, description="Main speaker, when diarized")
    language: str | None = None
    platform: str | None = None


class SearchAnswer(BaseModel):
    """The best chunks for a query, best first."""

    query: str
    mode: str
    results: list[Hit]


class Cited(BaseModel):
    """A passage an answer cites as ``[n]``, with its moment in the recording."""

    n: int = Field(description="The number the answer cites it by: [n]")
    text: str
    title: str | None
    start_s: float | None
    end_s: float | None
    deep_link: str | None = Field(description="The source opened at the passage's moment")
    media_url: str | None = None
    job_id: str
    content_id: str
    speaker: str | None = None
    language: str | None = None
    score: float


class AskAnswer(BaseModel):
    """An answer from the recordings: ``answered`` is false when none answers."""

    answered: bool
    answer: str = Field(description="The answer, citing its passages as [n]")
    mode: str
    model: str | None
    citations: list[Cited]


class JobStarted(BaseModel):
    """A job that ``process_urls`` started; follow it with ``job_status``."""

    job_id: str
    status: str
    message: str
    estimated_time: str | None = None


# -- the server ------------------------------------------------------------------------


@asynccontextmanager
async def _calling(connect: ClientFactory) -> AsyncIterator[AsyncClient]:
    """An API client for one tool call; an API error becomes the tool's error."""
    from mcp.server.mcpserver.exceptions import ToolError

    client = connect()
    try:
        yield client
    except ApiError as exc:
        raise ToolError(exc.message) from exc
    finally:
        await client.aclose()


def _hit(data: dict[str, Any]) -> Hit:
    return Hit.model_validate({k: v for k, v in data.items() if k in Hit.model_fields})


@contextmanager
def _host_logging() -> Iterator[None]:
    """Keep the process's logging as it is: ``MCPServer()`` calls ``logging.basicConfig``
    (INFO, to stderr), which would make every embedded CLI command chatty."""
    root = logging.getLogger()
    placeholder = None if root.handlers else logging.NullHandler()
    if placeholder is not None:
        root.addHandler(placeholder)  # basicConfig leaves a configured root alone
    try:
        yield
    finally:
        if placeholder is not None:
            root.removeHandler(placeholder)


Text = Annotated[str | None, Field(max_length=512)]


def build_server(connect: ClientFactory) -> MCPServer[Any]:
    """The MCP server whose tools call the API with the clients ``connect`` makes."""
    from mcp.server.mcpserver import MCPServer
    from mcp_types import ToolAnnotations

    from ragcast import __version__

    with _host_logging():
        server: MCPServer[Any] = MCPServer(
            "ragcast",
            version=__version__,
            instructions="Search the caller's transcribed recordings and documents (each hit "
            "with its time span and a deep link), ask them questions (answers cite the "
            "moments), list and follow jobs, and start new ones.",
        )
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(annotations=read_only)
    async def search(
        query: Annotated[str, Field(min_length=1, max_length=4096)],
        top_k: Annotated[int, Field(ge=1, le=100)] = 10,
        mode: Literal["hybrid", "dense", "lexical"] = "hybrid",
        job_id: Text = None,
        content_id: Text = None,
        platform: Platform | None = None,
        language: Annotated[str | None, Field(description="ISO 639-1, e.g. en")] = None,
        channel: Text = None,
        speaker: Annotated[str | None, Field(description="Name or label SPEAKER_00")] = None,
        uploaded_after: Annotated[str | None, Field(description="YYYY-MM-DD")] = None,
        uploaded_before: Annotated[str | None, Field(description="YYYY-MM-DD")] = None,
        min_score: Annotated[
            float | None, Field(ge=0, le=1, description="Least score (0-1) a hit may have")
        ] = None,
        min_confidence: Annotated[
            float | None,
            Field(ge=0, le=1, description="Least recogniser confidence (0-1); drops documents"),
        ] = None,
    ) -> SearchAnswer:
        """Search the indexed transcripts and documents: the best chunks with their text,
        time span (start_s, end_s), deep link, title, job and content. Hybrid (lexical and
        dense) unless mode says otherwise; every filter given must hold. Scores are 0-1 on
        a scale that is the same for any query (0.3: somewhat related, 0.5: clearly)."""
        async with _calling(connect) as client:
            data = await client.search(
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
                min_score=min_score,
                min_confidence=min_confidence,
            )
        hits = [_hit(h) for h in data.get("results", [])]
        return SearchAnswer(query=query, mode=str(data.get("mode", mode)), results=hits)

    @server.tool(annotations=read_only)
    async def ask(
        query: Annotated[str, Field(min_length=1, max_length=4096)],
        top_k: Annotated[int, Field(ge=1, le=20)] = 6,
        mode: Literal["extractive", "generative"] | None = None,
        language: Annotated[str | None, Field(description="Answer language, ISO 639-1")] = None,
        job_id: Text = None,
        content_id: Text = None,
        fallback: bool = True,
    ) -> AskAnswer:
        """Answer a question from the caller's recordings, citing the passages it comes
        from as [n], each with its time span and deep link. answered is false (and nothing
        is cited) when no recording answers it: say so rather than guess. extractive
        quotes the best sentences; generative (the server's LLM, its default when it has
        one) writes the answer; fallback answers extractively when the LLM is down."""
        async with _calling(connect) as client:
            data = await client.ask(
                query,
                top_k=top_k,
                mode=mode,
                language=language,
                job_id=job_id,
                content_id=content_id,
                fallback=fallback,
            )
        cited = [
            Cited.model_validate({k: v for k, v in c.items() if k in Cited.model_fields})
            for c in data.get("citations", [])
        ]
        return AskAnswer(
            answered=bool(data.get("answered")),
            answer=str(data.get("answer", "")),
            mode=str(data.get("mode", "")),
            model=data.get("model"),
            citations=cited,
        )

    @server.tool(annotations=read_only)
    async def list_jobs(
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
        status: JobState | None = None,
        offset: Annotated[int, Field(ge=0)] = 0,
    ) -> JobList:
        """The caller's jobs, newest first, optionally only those in one status."""
        async with _calling(connect) as client:
            return JobList.model_validate(await client.jobs(limit, offset, status))

    @server.tool(annotations=read_only)
    async def job_status(job_id: Annotated[str, Field(min_length=1, max_length=128)]) -> JobStatus:
        """Status, stage and progress of one job; its totals once it has finished."""
        async with _calling(connect) as client:
            return JobStatus.model_validate(await client.status(job_id))

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, open_world_hint=True))
    async def process_urls(
        platform: Platform,
        urls: Annotated[list[str], Field(min_length=1, max_length=1000)],
        job_id: Annotated[
            str | None, Field(description="Idempotency key; made up if absent")
        ] = None,
        embedding_model: Annotated[
            dict[str, Any] | None, Field(description='Default {"id": "local"}')
        ] = None,
        vector_db: Annotated[
            dict[str, Any] | None, Field(description='Default {"id": "chroma"}')
        ] = None,
        language: Annotated[
            str | None, Field(description="Spoken language (ISO 639-1) or auto")
        ] = None,
        settings: Annotated[
            dict[str, Any] | None,
            Field(description="More settings of POST /process: chunkSize, diarize, ..."),
        ] = None,
    ) -> JobStarted:
        """Start a job that fetches, transcribes and indexes the given URLs (videos of
        YouTube, TikTok or Twitch); answers at once with its job_id and status."""
        config: dict[str, Any] = {
            "platform": platform,
            "input_method": "urls",
            "pasted_urls": urls,
            "embedding_model": embedding_model or {"id": "local"},
            "vector_db": vector_db or {"id": "chroma"},
            "settings": {**(settings or {}), **({"language": language} if language else {})},
        }
        if job_id is not None:
            config["job_id"] = job_id
        async with _calling(connect) as client:
            accepted = await client.process(config)
            status = await client.status(str(accepted["job_id"]))
        return JobStarted(
            job_id=str(accepted["job_id"]),
            status=str(status["status"]),
            message=str(accepted.get("message", "")),
            estimated_time=accepted.get("estimated_time"),
        )

    return server


# -- mounted on the API ----------------------------------------------------------------


#: the rate-limit bucket every request to the mounted server counts in
BUCKET = "mcp"


class _KeyRequired:
    """Answers a request without a valid API key with the API's own ``401``; else counts
    it in the caller's ``mcp`` bucket (the contract's ``429`` and ``X-RateLimit-*``
    headers, as every route) and hands the caller to the SDK (``scope["user"]``), whose
    tools find the key with ``get_access_token()`` and whose sessions stay with the key
    that opened them.

    Every request counts (``initialize``, ``tools/list``, a ``GET`` stream, a malformed
    message); a tool call counts again in the bucket of each API route it calls. The key
    is checked as the routes check it: a key checked a moment ago is found in the
    process's :class:`~ragcast.auth.KeyCache`.
    """

    def __init__(self, app: FastAPI, server: MCPServer[Any]) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from fastapi.responses import JSONResponse
        from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
        from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
        from mcp.server.auth.provider import AccessToken
        from starlette.authentication import AuthCredentials
        from starlette.requests import Request

        from ragcast.api.deps import principal_of
        from ragcast.api.errors import error_body, rate_limited
        from ragcast.errors import AuthError, RateLimitError

        headers = dict(scope.get("headers") or [])
        scheme, _, key = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        key = key.strip() if scheme.lower() == "bearer" else ""
        try:
            principal = await principal_of(Request(scope), key or None)
        except AuthError as exc:
            body = error_body("unauthorized", exc.message)
            answer = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})
            await answer(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        try:
            counted = await self.app.state.limiter.ahit(
                BUCKET, principal.user_id, admin=principal.is_admin
            )
        except RateLimitError as exc:
            state["rate_headers"] = exc.headers
            await rate_limited(exc)(scope, receive, send)
            return
        state["rate_headers"] = counted.headers()  # RequestContextMiddleware sends them
        token = AccessToken(
            token=key, client_id="ragcast", scopes=[], subject=str(principal.user_id)
        )
        scope["user"] = AuthenticatedUser(token)
        scope["auth"] = AuthCredentials([])
        handler = AuthContextMiddleware(self.server.session_manager.handle_request)
        url = Request(scope).url
        origin = _CALLER_ORIGIN.set(f"{url.scheme}://{url.netloc}")
        try:
            await handler(scope, receive, send)
        finally:
            _CALLER_ORIGIN.reset(origin)


def _in_process(app: FastAPI) -> ClientFactory:
    """Clients of ``app`` itself, with the key of the request being served."""

    def connect() -> AsyncClient:
        from mcp.server.auth.middleware.auth_context import get_access_token
        from mcp.server.mcpserver.exceptions import ToolError

        token = get_access_token()
        if token is None:
            raise ToolError("not authenticated: send 'Authorization: Bearer <key>'")
        transport = httpx.ASGITransport(app=app)
        # No retries: a 429 reaches the agent at once, with the API's retry hint.
        base = _CALLER_ORIGIN.get() or INTERNAL_URL
        return AsyncClient(base, token.token, transport=transport, max_retries=0)

    return connect


def mount(app: FastAPI, path: str = "/mcp") -> Sessions:
    """Serve MCP at ``path`` of ``app``; returns what runs its sessions in the lifespan.

    Without the SDK nothing is mounted and the sessions are a no-op.
    """
    if not sdk_available():
        log.info("no MCP server at %s: %s", path, INSTALL_HINT)
        return nullcontext
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.routing import Route

    server = build_server(_in_process(app))
    options: dict[str, Any] = {
        # Stateless with JSON answers: any API process can serve any request.
        "stateless_http": True,
        "json_response": True,
        "max_request_body_size": int(app.state.ctx.settings.max_json_bytes),
        # A bearer key, never a cookie, authenticates: a rebound DNS name gains nothing.
        "transport_security": TransportSecuritySettings(enable_dns_rebinding_protection=False),
    }
    # A plain route (not a mount): ``/mcp`` itself answers, with no redirect to ``/mcp/``.
    app.router.routes.append(Route(path, _KeyRequired(app, server), include_in_schema=False))

    @asynccontextmanager
    async def sessions() -> AsyncIterator[None]:
        server.streamable_http_app(**options)  # a fresh session manager for each run
        async with _in_own_task(server.session_manager.run()):
            yield

    return sessions


@asynccontextmanager
async def _in_own_task(manager: AbstractAsyncContextManager[None]) -> AsyncIterator[None]:
    """Hold ``manager`` open in a task of its own while the block runs.

    The session manager's task group must be left by the task that entered it; a
    lifespan may end in another task than it began (an async fixture does), so neither
    is the lifespan's. A failure to start is raised here.
    """
    started, stop = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with manager:
            started.set()
            await stop.wait()

    task = asyncio.create_task(hold(), name="ragcast-mcp-sessions")
    ready = asyncio.create_task(started.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not started.is_set():
        ready.cancel()
        await task  # raises what stopped it
    try:
        yield
    finally:
        stop.set()
        await task


# -- stdio -----------------------------------------------------------------------------


def serve_stdio(base_url: str, api_key: str) -> None:
    """Serve MCP on stdin/stdout until the agent closes it; tools call ``base_url``."""

    def connect() -> AsyncClient:
        return AsyncClient(base_url, api_key, timeout=REMOTE_TIMEOUT_S)

    build_server(connect).run("stdio")
