"""A local server speaking the Gemini API's ``models/{model}:batchEmbedContents``, strictly.

Request: ``{"requests": [{"model": "models/{model}", "content": {"parts": [{"text"}]},
"taskType", "title"?, "outputDimensionality"?}]}`` (1–100 requests), the key in
``x-goog-api-key`` or ``?key=``. Answers ``{"embeddings": [{"values": […]}]}``; values
are a hash-seeded unit vector of 3072 floats cut to ``outputDimensionality`` and *not*
renormalised, as Google documents. Errors use Google's body
``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import re
from typing import Any

from tests.providers.embedders.fake_http import (
    Answer,
    FakeServer,
    Recorded,
    fake_tokens,
    seeded_unit,
)

MODELS = ("gemini-embedding-001", "gemini-embedding-exp-03-07")
TASK_TYPES = (
    "RETRIEVAL_DOCUMENT",
    "RETRIEVAL_QUERY",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
)
_PATH = re.compile(r"^/v1beta/models/([^/:]+):batchEmbedContents$")
_STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}


def google_error(code: int, message: str) -> dict[str, Any]:
    """Google's error body."""
    return {"error": {"code": code, "message": message, "status": _STATUS.get(code, "UNKNOWN")}}


class FakeGemini(FakeServer):
    """Gemini embeddings API on a loopback port."""

    def __init__(self, api_key: str = "gemini-test-key", *, input_tokens: int = 2048) -> None:
        self.api_key = api_key
        self.input_tokens = input_tokens
        super().__init__()

    def error_body(self, status: int, message: str = "scripted failure") -> dict[str, Any]:
        return google_error(status, message)

    @property
    def calls(self) -> list[Recorded]:
        """The batchEmbedContents requests received, in order."""
        return [r for r in self.requests if _PATH.match(r.path)]

    def answer(self, rec: Recorded) -> Answer:
        match = _PATH.match(rec.path)
        if match is None:
            return 404, google_error(404, f"Method not found: {rec.path}")
        key = rec.headers.get("x-goog-api-key") or (rec.query.get("key") or [None])[0]
        if key != self.api_key:
            return 400, google_error(400, "API key not valid. Please pass a valid API key.")
        model = match.group(1)
        if model not in MODELS:
            return 404, google_error(404, f"models/{model} is not found for API version v1beta")
        body = rec.body
        if not isinstance(body, dict) or set(body) != {"requests"}:
            return 400, google_error(400, "Invalid JSON payload: expected only 'requests'")
        requests = body["requests"]
        if not isinstance(requests, list) or not requests:
            return 400, google_error(400, "* BatchEmbedContentsRequest.requests: must not be empty")
        if len(requests) > 100:
            return 400, google_error(
                400,
                "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch",
            )
        out = []
        for i, request in enumerate(requests):
            problem = self._invalid(request, model)
            if problem is not None:
                return 400, google_error(
                    400, f"* BatchEmbedContentsRequest.requests[{i}]: {problem}"
                )
            text = request["content"]["parts"][0]["text"]
            dims = int(request.get("outputDimensionality", 3072))
            values = seeded_unit(f"{model}|{request.get('taskType')}|{text}", 3072)[:dims]
            out.append({"values": [float(x) for x in values]})
        return 200, {"embeddings": out}

    def _invalid(self, request: Any, model: str) -> str | None:
        allowed = {"model", "content", "taskType", "title", "outputDimensionality"}
        if not isinstance(request, dict):
            return "each request must be an object"
        if set(request) - allowed:
            return f"unknown fields {sorted(set(request) - allowed)}"
        if request.get("model") != f"models/{model}":
            return f"model {request.get('model')!r} does not match the URL's models/{model}"
        content = request.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or len(parts) != 1 or set(parts[0]) != {"text"}:
            return "content must hold exactly one text part"
        if "taskType" in request and request["taskType"] not in TASK_TYPES:
            return f"Invalid value at 'taskType' ({request['taskType']})"
        if "title" in request and request.get("taskType") != "RETRIEVAL_DOCUMENT":
            return "title is only allowed with taskType RETRIEVAL_DOCUMENT"
        dims = request.get("outputDimensionality")
        if dims is not None and (not isinstance(dims, int) or not 1 <= dims <= 3072):
            return f"outputDimensionality must be between 1 and 3072, got {dims}"
        if fake_tokens(parts[0]["text"]) > self.input_tokens:
            return f"input has more than {self.input_tokens} tokens"
        return None
