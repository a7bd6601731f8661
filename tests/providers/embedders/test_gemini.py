"""The production Gemini client against a local server speaking the Gemini API."""

from __future__ import annotations

import numpy as np
import pytest

from ragcast.errors import ItemError, ValidationError
from ragcast.providers.embedders.base import EmbeddingSpec
from ragcast.providers.embedders.gemini import GeminiEmbedder
from ragcast.settings import Settings
from ragcast.spec import EmbeddingModelConfig
from tests.providers.embedders.conftest import Sleeps, config
from tests.providers.embedders.fake_gemini import FakeGemini


def gemini(
    fake: FakeGemini, sleeps: Sleeps, dims: int = 768, model: str = "gemini-embedding-001"
) -> GeminiEmbedder:
    return GeminiEmbedder(config(fake.url, fake.api_key), model, dims, sleep=sleeps)


def test_request_shape_and_normalised_vectors(fake_gemini: FakeGemini, sleeps: Sleeps) -> None:
    vectors = gemini(fake_gemini, sleeps).embed_batch(["first text", "second text"])
    assert vectors.shape == (2, 768) and vectors.dtype == np.float32
    # The server cut 3072 floats to 768 without renormalising; the client normalises.
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    (call,) = fake_gemini.calls
    assert call.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert call.headers["x-goog-api-key"] == "gemini-test-key"
    assert call.query == {}  # the key never travels in the URL
    assert call.body == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": text}]},
                "taskType": "RETRIEVAL_DOCUMENT",
                "outputDimensionality": 768,
            }
            for text in ("first text", "second text")
        ]
    }


def test_batches_hold_at_most_100_texts(fake_gemini: FakeGemini, sleeps: Sleeps) -> None:
    vectors = gemini(fake_gemini, sleeps, dims=128).embed_batch([f"t{n}" for n in range(250)])
    assert vectors.shape == (250, 128)
    assert [len(c.body["requests"]) for c in fake_gemini.calls] == [100, 100, 50]


def test_query_task_and_the_jobs_task_type(fake_gemini: FakeGemini, sleeps: Sleeps) -> None:
    emb = gemini(fake_gemini, sleeps)
    emb.embed_query("where is the reef?")
    similar = emb.bind(
        EmbeddingSpec("gemini-exp", 768, {"gemini_task_type": "SEMANTIC_SIMILARITY"})
    )
    similar.embed_batch(["a"])
    similar.embed_query("b")
    tasks = [c.body["requests"][0]["taskType"] for c in fake_gemini.calls]
    assert tasks == ["RETRIEVAL_QUERY", "SEMANTIC_SIMILARITY", "SEMANTIC_SIMILARITY"]


def test_the_model_setting_selects_the_model(fake_gemini: FakeGemini) -> None:
    settings = Settings(
        gemini_api_key=fake_gemini.api_key,
        gemini_base_url=fake_gemini.url,
        gemini_model="gemini-embedding-exp-03-07",
    )
    emb = GeminiEmbedder.from_settings(settings, EmbeddingSpec("gemini-exp", 1024))
    assert emb.embed_batch(["x"]).shape == (1, 1024)
    assert (
        fake_gemini.calls[0].path == "/v1beta/models/gemini-embedding-exp-03-07:batchEmbedContents"
    )


def test_retries_then_success(fake_gemini: FakeGemini, sleeps: Sleeps) -> None:
    fake_gemini.fail(429, retry_after="1")
    fake_gemini.fail(503)
    assert gemini(fake_gemini, sleeps).embed_batch(["x"]).shape == (1, 768)
    assert len(fake_gemini.calls) == 3 and sleeps[0] == 1.0


def test_googles_refusals_fail_the_item(fake_gemini: FakeGemini, sleeps: Sleeps) -> None:
    bad_key = GeminiEmbedder(config(fake_gemini.url, "wrong"), sleep=sleeps)
    with pytest.raises(ItemError, match="HTTP 400.*API key not valid"):
        bad_key.embed_batch(["x"])
    with pytest.raises(ItemError, match="outputDimensionality must be between 1 and 3072"):
        gemini(fake_gemini, sleeps, dims=4096).embed_batch(["x"])
    with pytest.raises(ItemError, match="HTTP 404.*not found"):
        gemini(fake_gemini, sleeps, model="text-embedding-999").embed_batch(["x"])
    assert sleeps == []


def test_resolve() -> None:
    settings = Settings(gemini_api_key="k")
    assert GeminiEmbedder.resolve(EmbeddingModelConfig(id="gemini-exp"), settings).dimensions == 768
    spec = GeminiEmbedder.resolve(EmbeddingModelConfig(id="gemini-exp", dimensions=1536), settings)
    assert spec.dimensions == 1536
    cfg = EmbeddingModelConfig.model_validate({"id": "gemini-exp", "gemini_task_type": "POETRY"})
    with pytest.raises(ValidationError) as caught:
        GeminiEmbedder.resolve(cfg, settings)
    assert caught.value.field == "embedding_model.gemini_task_type"
