"""The production Jina client against a local server speaking Jina's API."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ragcast.errors import ItemError
from ragcast.providers.embedders.base import EmbeddingSpec
from ragcast.providers.embedders.jina import JinaEmbedder, JinaOptions
from ragcast.settings import Settings
from ragcast.spec import EmbeddingModelConfig
from tests.providers.embedders.conftest import Sleeps, config
from tests.providers.embedders.fake_jina import FakeJina

SENTENCES = [f"Sentence number {n} talks about tides and the moon." for n in range(7)]


def jina(fake: FakeJina, sleeps: Sleeps, dims: int = 256, **kwargs: Any) -> JinaEmbedder:
    return JinaEmbedder(config(fake.url, fake.api_key), dims, sleep=sleeps, **kwargs)


def bound(emb: JinaEmbedder, **options: Any) -> JinaEmbedder:
    view = emb.bind(EmbeddingSpec("jina-v4", emb.dimensions, options))
    assert isinstance(view, JinaEmbedder)
    return view


def test_options_are_mapped_into_the_request(fake_jina: FakeJina, sleeps: Sleeps) -> None:
    emb = bound(
        jina(fake_jina, sleeps),
        jina_v4_task="text-matching",
        jina_v4_truncate_at_max=False,
        jina_v4_late_chunking=False,
    )
    vectors = emb.embed_batch(SENTENCES[:2])
    assert vectors.shape == (2, 256) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    (request,) = fake_jina.requests
    assert request.headers["authorization"] == "Bearer jina-test-key"
    assert request.body == {
        "model": "jina-embeddings-v4",
        "task": "text-matching",
        "dimensions": 256,
        "late_chunking": False,
        "truncate": False,
        "embedding_type": "float",
        "input": [{"text": SENTENCES[0]}, {"text": SENTENCES[1]}],
    }


def test_batches_respect_the_input_and_token_limits(sleeps: Sleeps) -> None:
    fake = FakeJina(max_inputs=3)
    try:
        vectors = jina(fake, sleeps, max_inputs=3).embed_batch(SENTENCES)
        assert vectors.shape == (7, 256)
        assert [len(b["input"]) for b in fake.bodies] == [3, 3, 1]
        fake.requests.clear()
        # 9 words -> 20 estimated tokens each; a 50-token cap holds two texts a request.
        jina(fake, sleeps, max_inputs=3, max_request_tokens=50).embed_batch(SENTENCES[:5])
        assert [len(b["input"]) for b in fake.bodies] == [2, 2, 1]
        with pytest.raises(ItemError, match="at most 3 items"):  # the fake is strict
            jina(fake, sleeps, max_inputs=10).embed_batch(SENTENCES)
    finally:
        fake.close()


@pytest.mark.parametrize(
    ("task", "optimize", "documents", "queries"),
    [
        ("retrieval.passage", True, "retrieval.passage", "retrieval.query"),
        ("code.passage", True, "code.passage", "code.query"),
        ("text-matching", True, "text-matching", "text-matching"),
        ("retrieval.query", True, "retrieval.passage", "retrieval.query"),
        ("retrieval.passage", False, "retrieval.passage", "retrieval.passage"),
        ("code.query", False, "code.query", "code.query"),
    ],
)
def test_query_side_task(
    fake_jina: FakeJina, sleeps: Sleeps, task: str, optimize: bool, documents: str, queries: str
) -> None:
    emb = bound(jina(fake_jina, sleeps), jina_v4_task=task, jina_v4_optimize_for_rag=optimize)
    emb.embed_batch(["a passage"])
    emb.embed_query("a question")
    assert [b["task"] for b in fake_jina.bodies] == [documents, queries]


def test_late_chunking_sends_the_document_in_order(fake_jina: FakeJina, sleeps: Sleeps) -> None:
    emb = bound(jina(fake_jina, sleeps), jina_v4_late_chunking=True)
    assert emb.late_chunking and emb.supports_late_chunking
    late = emb.embed_in_context(SENTENCES)
    (body,) = fake_jina.bodies
    assert body["late_chunking"] is True
    assert [i["text"] for i in body["input"]] == SENTENCES
    naive = emb.embed_batch(SENTENCES)
    assert late.shape == naive.shape == (7, 256)
    assert np.allclose(np.linalg.norm(late, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(late, naive)  # the context changed every vector


def test_documents_beyond_the_context_go_in_overlapping_windows(sleeps: Sleeps) -> None:
    fake = FakeJina(context=60)  # refuses a late-chunking request over 60 tokens
    try:
        emb = bound(
            jina(fake, sleeps, context_tokens=68),  # 60 usable after the 8 reserved
            jina_v4_truncate_at_max=False,
        )
        chunks = [f"Chunk {n} says something short." for n in range(12)]  # 12 estimated each
        vectors = emb.embed_in_context(chunks)
        windows = [[i["text"] for i in b["input"]] for b in fake.bodies]
        assert len(windows) > 1 and all(len(w) <= 5 for w in windows)
        assert all(b["late_chunking"] for b in fake.bodies)
        seen = [c for w in windows for c in w]
        assert set(seen) == set(chunks) and len(seen) > len(chunks)  # overlapping
        for a, b in zip(windows, windows[1:], strict=False):
            assert a[-1] in b  # consecutive windows share context
        assert vectors.shape == (12, 256) and np.all(np.linalg.norm(vectors, axis=1) > 0.99)
    finally:
        fake.close()


def test_multi_vector_output(fake_jina: FakeJina, sleeps: Sleeps) -> None:
    emb = bound(jina(fake_jina, sleeps), jina_v4_multi_vector=True)
    assert emb.multi_vector
    multi = emb.embed_multi_vector(["three words here", "two words"])
    assert [m.shape for m in multi] == [(3, 128), (2, 128)]
    (body,) = fake_jina.bodies
    assert body["return_multivector"] is True and "dimensions" not in body
    assert "late_chunking" not in body


def test_jinas_own_refusals_fail_the_item(fake_jina: FakeJina, sleeps: Sleeps) -> None:
    emb = bound(jina(fake_jina, sleeps), jina_v4_task="summarise", jina_v4_optimize_for_rag=False)
    with pytest.raises(ItemError, match="Invalid task 'summarise'"):
        emb.embed_batch(["x"])
    with pytest.raises(ItemError, match="dimensions must be between 128 and 2048"):
        jina(fake_jina, sleeps, dims=4096).embed_batch(["x"])
    wrong_key = JinaEmbedder(config(fake_jina.url, "nope"), 256, sleep=sleeps)
    with pytest.raises(ItemError, match="HTTP 401.*invalid API key"):
        wrong_key.embed_batch(["x"])


def test_rate_limits_and_outages_are_retried(fake_jina: FakeJina, sleeps: Sleeps) -> None:
    fake_jina.fail(429, retry_after="2")
    fake_jina.fail(500)
    vectors = jina(fake_jina, sleeps).embed_batch(["x"])
    assert vectors.shape == (1, 256)
    assert len(fake_jina.requests) == 3 and sleeps[0] == 2.0


def test_resolve_reads_the_contract_block() -> None:
    settings = Settings(jina_api_key="k")
    spec = JinaEmbedder.resolve(EmbeddingModelConfig(id="jina-v4"), settings)
    assert spec.dimensions == 1024 and spec.options["multi_vector"] is False
    cfg = EmbeddingModelConfig(
        id="jina-v4", dimensions=1024, jina_v4_dimensions=512, jina_v4_multi_vector=True
    )
    spec = JinaEmbedder.resolve(cfg, settings)
    assert spec.dimensions == 512 and spec.options["multi_vector"] is True
    assert JinaEmbedder.resolve(EmbeddingModelConfig(id="jina-v4", dimensions=768), settings) == (
        EmbeddingSpec("jina-v4", 768)
    )
    options = JinaOptions.parse(EmbeddingModelConfig(id="jina-v4").model_dump())
    assert options == JinaOptions()  # the contract's defaults
