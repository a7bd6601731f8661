"""A local server speaking Jina's ``POST /v1/embeddings`` for jina-embeddings-v4, strictly.

Request: ``{"model": "jina-embeddings-v4", "task", "dimensions" (128–2048),
"late_chunking", "truncate", "return_multivector", "embedding_type": "float",
"normalized", "input": [{"text": …}] (1–2048 items)}`` with ``Authorization: Bearer``.
Anything else is refused as Jina does (``422``/``400`` with a ``detail``). Answers
``{"model", "object": "list", "usage": {"total_tokens", "prompt_tokens"}, "data":
[{"object": "embedding", "index", "embedding": […]}]}``, or ``"embeddings": [[…], …]``
(128 floats per token) with ``return_multivector``. Vectors are hash-seeded; with late
chunking each input's vector also carries the whole request's text, so it depends on
its context.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.providers.embedders.fake_http import (
    Answer,
    FakeServer,
    Recorded,
    fake_tokens,
    seeded_unit,
)

TASKS = ("retrieval.passage", "retrieval.query", "text-matching", "code.passage", "code.query")
FIELDS = {
    "model",
    "input",
    "task",
    "dimensions",
    "late_chunking",
    "truncate",
    "return_multivector",
    "embedding_type",
    "normalized",
}


class FakeJina(FakeServer):
    """Jina v4 embeddings API on a loopback port."""

    def __init__(
        self, api_key: str = "jina-test-key", *, max_inputs: int = 2048, context: int = 8192
    ):
        self.api_key = api_key
        self.max_inputs = max_inputs
        self.context = context
        super().__init__()

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the embedding requests received, in order."""
        return [r.body for r in self.requests if r.path == "/v1/embeddings"]

    def answer(self, rec: Recorded) -> Answer:
        if rec.path != "/v1/embeddings":
            return 404, {"detail": "Not Found"}
        if rec.headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"detail": "Unauthorized: invalid API key"}
        error = self._invalid(rec.body)
        if error is not None:
            return error
        body: dict[str, Any] = rec.body
        texts = [item["text"] for item in body["input"]]
        counts = [fake_tokens(t) for t in texts]
        too_long = (
            sum(counts) > self.context if body.get("late_chunking") else max(counts) > self.context
        )
        if too_long and not body.get("truncate", False):
            return 400, {
                "detail": f"Input exceeds the maximum context length of {self.context} tokens; "
                "set truncate to true to cut it"
            }
        task = body.get("task", "text-matching")
        if body.get("return_multivector"):
            data = [
                {"object": "embedding", "index": i, "embeddings": _tokens(t, task)}
                for i, t in enumerate(texts)
            ]
        else:
            dims = int(body.get("dimensions", 2048))
            whole = " ".join(texts)
            data = []
            for i, text in enumerate(texts):
                v = seeded_unit(f"{task}|{text}", 2048)[:dims]
                if body.get("late_chunking"):
                    v = v + seeded_unit(f"{task}|{whole}", 2048)[:dims]
                data.append({"object": "embedding", "index": i, "embedding": _unit(v)})
        usage = {"total_tokens": sum(counts), "prompt_tokens": sum(counts)}
        return 200, {"model": body["model"], "object": "list", "usage": usage, "data": data}

    def _invalid(self, body: Any) -> Answer | None:
        if not isinstance(body, dict):
            return 422, {"detail": "Request body must be a JSON object"}
        extra = sorted(set(body) - FIELDS)
        if extra:
            return 422, {
                "detail": [
                    {
                        "loc": ["body", k],
                        "msg": f"Extra inputs are not permitted: {k}",
                        "type": "extra_forbidden",
                    }
                    for k in extra
                ]
            }
        if body.get("model") != "jina-embeddings-v4":
            return 422, {"detail": f"Model '{body.get('model')}' not found"}
        if "task" in body and body["task"] not in TASKS:
            return 422, {
                "detail": f"Invalid task '{body['task']}' for jina-embeddings-v4; "
                f"expected one of: {', '.join(TASKS)}"
            }
        dims = body.get("dimensions")
        if dims is not None and (not isinstance(dims, int) or not 128 <= dims <= 2048):
            return 422, {"detail": f"dimensions must be between 128 and 2048, got {dims}"}
        if body.get("embedding_type", "float") != "float":
            return 422, {"detail": "embedding_type must be 'float' in this fake"}
        if body.get("late_chunking") and body.get("return_multivector"):
            return 422, {"detail": "late_chunking cannot be combined with return_multivector"}
        return self._invalid_input(body.get("input"))

    def _invalid_input(self, items: Any) -> Answer | None:
        if not isinstance(items, list) or not items:
            return 422, {"detail": "input must be a non-empty list"}
        if len(items) > self.max_inputs:
            return 422, {
                "detail": f"input must have at most {self.max_inputs} items, got {len(items)}"
            }
        for i, item in enumerate(items):
            if (
                not isinstance(item, dict)
                or set(item) != {"text"}
                or not isinstance(item["text"], str)
            ):
                return 422, {"detail": f'input[{i}] must be an object {{"text": string}}'}
        return None


def _unit(v: np.ndarray[Any, Any]) -> list[float]:
    return [float(x) for x in v / np.linalg.norm(v)]


def _tokens(text: str, task: str) -> list[list[float]]:
    return [_unit(seeded_unit(f"{task}|tok|{w}", 128)) for w in text.split() or [""]]
