"""One contract, every backend: the same cases run unchanged against each store."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from ragcast.errors import ValidationError
from ragcast.providers.vectorstores.base import VectorRecord, VectorStore
from tests.providers.vectorstores.conftest import DIMS


def unit(seed: int) -> np.ndarray:
    """A reproducible unit vector of ``DIMS`` floats."""
    v = np.random.default_rng(seed).standard_normal(DIMS).astype(np.float32)
    return v / np.linalg.norm(v)


def records(content_id: str, n: int, *, seed: int = 0, text: str = "chunk") -> list[VectorRecord]:
    """``n`` chunks of ``content_id`` with ragcast's metadata."""
    return [
        VectorRecord(
            id=f"{content_id}:{i}",
            vector=unit(seed * 1000 + i),
            text=f"{text} {i} of {content_id}",
            metadata={
                "job_id": "job-1",
                "content_id": content_id,
                "chunk_index": i,
                "start_s": float(i * 10),
                "end_s": float(i * 10 + 9),
                "token_count": 12,
                "title": f"Title of {content_id}",
                "url": None,
                "platform": "youtube" if content_id.startswith("yt") else "documents",
            },
        )
        for i in range(n)
    ]


@pytest.fixture
def name() -> str:
    """A fresh collection name in ragcast's form."""
    return f"ragcast-u{uuid.uuid4().hex[:6]}-local-{DIMS}"


def test_ensure_collection_creates_then_checks(store: VectorStore, name: str) -> None:
    store.ensure_collection(name, DIMS)
    store.ensure_collection(name, DIMS)  # idempotent
    assert store.count(name) == 0


def test_dimension_mismatch_is_a_validation_error(store: VectorStore, name: str) -> None:
    store.ensure_collection(name, DIMS)
    with pytest.raises(ValidationError) as err:
        store.ensure_collection(name, DIMS * 2)
    assert err.value.field == "embedding_model.dimensions"


def test_upsert_and_count(store: VectorStore, name: str) -> None:
    store.ensure_collection(name, DIMS)
    store.upsert(name, records("doc-a", 25))
    assert store.count(name) == 25


def test_rerun_overwrites_and_count_stays(store: VectorStore, name: str) -> None:
    store.ensure_collection(name, DIMS)
    store.upsert(name, records("doc-a", 25))
    store.upsert(name, records("doc-a", 25, text="rewritten"))
    assert store.count(name) == 25
    hit = store.query(name, unit(3).tolist(), 1)[0]
    assert hit.id == "doc-a:3" and hit.text == "rewritten 3 of doc-a"


def test_delete_stale_shrinks_one_content_only(store: VectorStore, name: str) -> None:
    store.ensure_collection(name, DIMS)
    store.upsert(name, records("doc-a", 10) + records("doc-b", 5, seed=1))
    store.delete_stale(name, "doc-a", keep=4)
    assert store.count(name) == 9
    left = store.query(name, unit(0).tolist(), 20)
    assert sorted(h.id for h in left if h.metadata["content_id"] == "doc-a") == [
        f"doc-a:{i}" for i in range(4)
    ]
    store.delete_stale(name, "doc-a", keep=4)  # nothing more to delete
    assert store.count(name) == 9


def test_query_order_and_scores(store: VectorStore, name: str) -> None:
    store.ensure_collection(name, DIMS)
    store.upsert(name, records("doc-a", 20))
    hits = store.query(name, unit(7).tolist(), 5)
    assert len(hits) == 5
    assert hits[0].id == "doc-a:7"
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    expected = sorted((float(unit(i) @ unit(7)) for i in range(20)), reverse=True)[:5]
    assert scores == pytest.approx(expected, abs=1e-3)
    meta = hits[0].metadata
    assert meta["chunk_index"] == 7 and meta["content_id"] == "doc-a"
    assert meta["start_s"] == 70.0 and meta["title"] == "Title of doc-a"
    assert hits[0].text == "chunk 7 of doc-a"


def test_where_equality_and_in_filters(store: VectorStore, name: str) -> None:
    store.ensure_collection(name, DIMS)
    store.upsert(
        name, records("doc-a", 6) + records("doc-b", 6, seed=1) + records("yt-c", 6, seed=2)
    )
    q = unit(0).tolist()
    only_b = store.query(name, q, 20, {"content_id": "doc-b"})
    assert {h.metadata["content_id"] for h in only_b} == {"doc-b"} and len(only_b) == 6
    a_or_c = store.query(name, q, 20, {"content_id": {"$in": ["doc-a", "yt-c"]}})
    assert {h.metadata["content_id"] for h in a_or_c} == {"doc-a", "yt-c"} and len(a_or_c) == 12
    youtube = store.query(name, q, 20, {"platform": "youtube"})
    assert {h.metadata["content_id"] for h in youtube} == {"yt-c"}
    both = store.query(
        name, q, 20, {"content_id": {"$in": ["doc-a", "doc-b"]}, "platform": "youtube"}
    )
    assert both == []
    assert store.query(name, q, 20, {"content_id": "nothing"}) == []


def test_a_selective_filter_finds_every_match(store: VectorStore, name: str) -> None:
    # An approximate index that filters after the search must not hide rare matches.
    store.ensure_collection(name, DIMS)
    store.upsert(name, records("doc-big", 400) + records("doc-rare", 3, seed=9))
    hits = store.query(name, unit(5).tolist(), 10, {"content_id": "doc-rare"})
    assert sorted(h.id for h in hits) == ["doc-rare:0", "doc-rare:1", "doc-rare:2"]


def test_collections_are_isolated(store: VectorStore, name: str) -> None:
    other = name.replace("-local-", "-other-")
    store.ensure_collection(name, DIMS)
    store.ensure_collection(other, DIMS)
    store.upsert(name, records("doc-a", 5))
    store.upsert(other, records("doc-b", 3, seed=1))
    assert store.count(name) == 5 and store.count(other) == 3
    assert {h.metadata["content_id"] for h in store.query(name, unit(1).tolist(), 50)} == {"doc-a"}
    assert {h.metadata["content_id"] for h in store.query(other, unit(1).tolist(), 50)} == {"doc-b"}
    store.delete_stale(other, "doc-a", keep=0)  # another collection's content: no effect
    assert store.count(name) == 5


def test_missing_collection_reads_as_empty(store: VectorStore, name: str) -> None:
    assert store.count(name) == 0
    assert store.query(name, unit(0).tolist(), 3) == []


def test_long_text_survives(store: VectorStore, name: str) -> None:
    text = ('Grüße aus Köln — 東京 🚀 "quoted" \\ back\n' * 2600)[:100_000]
    assert len(text.encode()) > 100_000
    store.ensure_collection(name, DIMS)
    record = records("doc-long", 1)[0]
    record.text = text
    store.upsert(name, [record])
    hit = store.query(name, unit(0).tolist(), 1)[0]
    if hit.metadata.get("text_truncated"):
        # Pinecone: the metadata keeps a UTF-8-safe prefix; search fills in the rest.
        assert store.id == "pinecone"
        assert text.startswith(hit.text) and 30_000 < len(hit.text.encode()) < 40_000
    else:
        assert hit.text == text
