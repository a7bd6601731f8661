"""An OpenAI-compatible chat-completions client (OpenAI, vLLM, llama.cpp's server, Ollama).

``POST {base_url}/chat/completions`` with ``model``, ``messages`` and ``max_tokens``;
streamed answers are read from the server-sent ``data:`` lines (``choices[0].delta``)
up to ``data: [DONE]``. The retry rules are the embedders' (``providers/embedders/http``):
429, 408, 5xx and connection errors are tried again, waiting ``Retry-After`` when the
server sent one, else an exponential backoff; a ``Retry-After`` longer than the policy's
longest backoff is not waited for (a person is waiting for the answer). What still fails
is :class:`~ragcast.providers.llms.base.LlmUnavailable`. A stream is retried only before
its first piece: a reply half shown is never started again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from ragcast.providers.embedders.http import RetryPolicy, check_reachable, provider_message
from ragcast.providers.llms.base import Llm, LlmUnavailable, Message
from ragcast.retry_after import parse_retry_after

log = logging.getLogger(__name__)

RETRYABLE = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class OpenAiConfig:
    """Where the server lives, which model to ask, and how patiently."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    context_tokens: int = 8192


class OpenAiLlm(Llm):
    """A chat model served over the OpenAI chat-completions API."""

    def __init__(
        self,
        config: OpenAiConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.name = config.model
        self.context_tokens = config.context_tokens
        self._sleep = sleep
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._http = httpx.Client(
            base_url=config.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s, connect=min(10.0, config.timeout_s)),
            transport=transport,
        )

    def _body(self, messages: list[Message], max_tokens: int, stream: bool) -> dict[str, Any]:
        return {
            "model": self.config.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": stream,
        }

    def complete(self, messages: list[Message], *, max_tokens: int = 512) -> str:
        """The model's whole reply (``choices[0].message.content``)."""
        body = self._body(messages, max_tokens, stream=False)
        for attempt in self._attempts():
            try:
                response = self._http.post("/chat/completions", json=body)
            except httpx.TransportError as exc:
                self._failed(f"unreachable: {type(exc).__name__}: {exc}", None, attempt)
                continue
            if not response.is_success:
                self._refused(response, attempt)
                continue
            try:
                return str(response.json()["choices"][0]["message"]["content"] or "")
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise LlmUnavailable(f"the LLM sent an unreadable answer: {exc!r}") from exc
        raise AssertionError("unreachable")  # pragma: no cover - the loop raises or returns

    def stream(self, messages: list[Message], *, max_tokens: int = 512) -> Iterator[str]:
        """The model's reply in pieces (``choices[0].delta.content`` of each event)."""
        body = self._body(messages, max_tokens, stream=True)
        for attempt in self._attempts():
            started = False
            try:
                with self._http.stream("POST", "/chat/completions", json=body) as response:
                    if not response.is_success:
                        response.read()
                        self._refused(response, attempt)
                        continue
                    for piece in _pieces(response.iter_lines()):
                        started = True
                        yield piece
                    return
            except httpx.TransportError as exc:
                if started:
                    raise LlmUnavailable(f"the LLM stopped mid-answer: {exc!r}") from exc
                self._failed(f"unreachable: {type(exc).__name__}: {exc}", None, attempt)

    def _attempts(self) -> Iterator[int]:
        yield from range(max(1, self.config.retry.attempts))

    def _refused(self, response: httpx.Response, attempt: int) -> None:
        status = response.status_code
        message = provider_message(response)
        if status in RETRYABLE or status >= 500:
            delay = parse_retry_after(response.headers.get("Retry-After"))
            self._failed(f"answered HTTP {status}: {message}", delay, attempt)
            return
        raise LlmUnavailable(f"the LLM refused the request (HTTP {status}): {message}"[:500])

    def _failed(self, reason: str, delay: float | None, attempt: int) -> None:
        """Wait before the next try, or raise when this was the last (or the wait is long)."""
        policy = self.config.retry
        if attempt >= policy.attempts - 1:
            raise LlmUnavailable(f"the LLM is unavailable: {reason} (after {attempt + 1} tries)")
        if delay is not None and delay > policy.max_backoff_s:
            raise LlmUnavailable(f"the LLM is unavailable: {reason} (retry after {delay:.0f}s)")
        wait = delay if delay is not None else policy.backoff(attempt)
        log.warning("LLM %s; retrying in %.2fs", reason, wait)
        self._sleep(wait)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


def _pieces(lines: Iterator[str]) -> Iterator[str]:
    """The content pieces of a chat-completions event stream."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # comments, event names, keep-alives
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
            piece = event["choices"][0].get("delta", {}).get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            continue  # an event without content (role, usage, finish_reason)
        if piece:
            yield str(piece)


def unreachable(config: OpenAiConfig) -> str | None:
    """None when the configured server accepts a connection, else why it cannot be reached."""
    return check_reachable(config.base_url)
