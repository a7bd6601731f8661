"""A small but real OpenAI-compatible chat-completions server for tests.

It answers deterministically from the prompt it is sent: the first sentence of passage
``[1]``, cited ``[1]``, plus an invented ``[9]`` (no such passage) that ragcast must drop;
a question containing "unknowable" is answered "It is not in your recordings." Streamed
answers come as ``data:`` events in small pieces, so a citation is split over several.
``unavailable`` makes the next N requests answer 503 with ``Retry-After``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL = "fake-chat-1"


@dataclass
class FakeOpenAi:
    """The server's state: requests seen and failures to come."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    #: requests still to answer 503 (-1: every one)
    unavailable: int = 0
    retry_after: str = "0"

    def reply(self, messages: list[dict[str, str]]) -> str:
        """The deterministic answer to a prompt."""
        user = messages[-1]["content"]
        question = user.rsplit("Question:", 1)[-1]
        if "unknowable" in question:
            return "It is not in your recordings."
        first = re.search(r"^\[1\] .*\n(.+)$", user, re.MULTILINE)
        said = first.group(1).strip() if first else "nothing"
        sentence = re.split(r"(?<=[.!?。！？])\s*", said)[0]
        return f"The recording says: {sentence} [1] and more [9]."

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        if self.unavailable:
            self.unavailable -= 1 if self.unavailable > 0 else 0
            return JSONResponse(
                {"error": {"message": "overloaded", "type": "server_error"}},
                status_code=503,
                headers={"Retry-After": self.retry_after},
            )
        text = self.reply(body["messages"])
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "model": body.get("model", MODEL),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                }
            )

        async def events() -> AsyncIterator[str]:
            def chunk(delta: dict[str, str], finish: str | None = None) -> str:
                event = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
                return f"data: {json.dumps(event)}\n\n"

            yield chunk({"role": "assistant"})
            for n in range(0, len(text), 3):
                yield chunk({"content": text[n : n + 3]})
            yield chunk({}, "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    def app(self) -> Starlette:
        """The ASGI app: ``POST /v1/chat/completions``."""
        return Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])
