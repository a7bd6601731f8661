"""What only Chroma does: tenant-prefixed ids, and a query planned around its filters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragcast.providers.vectorstores import chroma
from ragcast.providers.vectorstores.base import VectorRecord
from ragcast.providers.vectorstores.chroma import ChromaStore

DIMS = 8
NAME = "ragcast-local-8"


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIMS).astype(np.float32)
    return v / np.linalg.norm(v)


def recs(content_id: str, n: int, seed: int) -> list[VectorRecord]:
    return [
        VectorRecord(
            id=f"{content_id}:{i}",
            vector=unit(seed + i),
            text=f"{content_id} {i}",
            metadata={"content_id": content_id, "chunk_index": i},
        )
        for i in range(n)
    ]


class Spy:
    """A Chroma collection that notes which calls the store makes."""

    def __init__(self, col: Any) -> None:
        self.col = col
        self.calls: list[tuple[str, bool]] = []

    def query(self, **kw: Any) -> Any:
        self.calls.append(("query", kw.get("where") is not None))
        return self.col.query(**kw)

    def get(self, **kw: Any) -> Any:
        self.calls.append(("get", kw.get("where") is not None))
        return self.col.get(**kw)


@pytest.fixture
def store(tmp_path: Path) -> ChromaStore:
    s = ChromaStore(path=tmp_path / "chroma")
    s.ensure_collection(NAME, DIMS)
    return s


def spy(store: ChromaStore) -> Spy:
    watched = Spy(store._get(NAME))
    store._collections[NAME] = watched
    return watched


def exact(q: np.ndarray, seeds: range, k: int) -> list[int]:
    return sorted(seeds, key=lambda s: -float(unit(s) @ q))[:k]


def test_ids_carry_the_tenant_and_metadata_names_it(store: ChromaStore) -> None:
    store.upsert(NAME, recs("doc", 2, 0), tenant="u1")
    store.upsert(NAME, recs("doc", 1, 0))
    got = store._get(NAME).get(include=["metadatas"])
    tenants = {i: m.get("tenant") for i, m in zip(got["ids"], got["metadatas"], strict=True)}
    assert tenants == {"u1/doc:0": "u1", "u1/doc:1": "u1", "doc:0": None}
    hit = store.query(NAME, unit(1).tolist(), 1, tenant="u1")[0]
    assert hit.id == "doc:1" and hit.metadata == {"content_id": "doc", "chunk_index": 1}


def test_a_big_tenant_is_answered_without_chromas_filter(store: ChromaStore) -> None:
    store.upsert(NAME, recs("big", 400, 0), tenant="big")
    store.upsert(NAME, recs("small", 20, 5000), tenant="small")
    watched = spy(store)
    q = unit(77)
    hits = store.query(NAME, q.tolist(), 5, tenant="big")
    assert watched.calls == [("query", False)]  # one unfiltered search, filtered here
    assert [h.id for h in hits][:2] == [f"big:{i}" for i in exact(q, range(400), 2)]


def test_a_small_tenant_is_searched_exactly(store: ChromaStore) -> None:
    store.upsert(NAME, recs("big", 400, 0), tenant="big")
    store.upsert(NAME, recs("small", 3, 5000), tenant="small")
    watched = spy(store)
    q = unit(77)
    hits = store.query(NAME, q.tolist(), 5, tenant="small")
    assert ("get", True) in watched.calls and ("query", True) not in watched.calls
    assert [h.id for h in hits] == [f"small:{s - 5000}" for s in exact(q, range(5000, 5003), 3)]
    assert hits[0].score == pytest.approx(float(unit(exact(q, range(5000, 5003), 1)[0]) @ q))


def test_a_narrow_filter_is_listed_without_the_tenant(store: ChromaStore) -> None:
    store.upsert(NAME, recs("big", 400, 0) + recs("rare", 3, 9000), tenant="big")
    store.upsert(NAME, recs("rare", 3, 9100), tenant="other")
    watched = spy(store)
    hits = store.query(NAME, unit(1).tolist(), 5, {"content_id": "rare"}, tenant="big")
    assert sorted(h.id for h in hits) == ["rare:0", "rare:1", "rare:2"]
    assert {h.text for h in hits} == {"rare 0", "rare 1", "rare 2"}
    assert watched.calls[1:] == [("get", True)]  # listed once, by content id alone


def test_otherwise_chromas_filtered_search(
    store: ChromaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chroma, "BRUTE_MAX", 5)
    monkeypatch.setattr(chroma, "FETCH_MAX", 40)
    store.upsert(NAME, recs("a", 600, 0), tenant="a")
    store.upsert(NAME, recs("b", 30, 7000), tenant="b")
    watched = spy(store)
    q = unit(3)
    hits = store.query(NAME, q.tolist(), 5, tenant="b")
    assert watched.calls[-1] == ("query", True)
    assert [h.id for h in hits] == [f"b:{s - 7000}" for s in exact(q, range(7000, 7030), 5)]


def test_an_empty_collection_answers_nothing(store: ChromaStore) -> None:
    assert store.query(NAME, unit(0).tolist(), 5, tenant="u1") == []
    assert store.query(NAME, unit(0).tolist(), 5, {"content_id": "x"}, tenant="u1") == []
    assert store.count(NAME, tenant="u1") == 0


def legacy(store: ChromaStore, n: int, seed: int) -> None:
    """Records as releases before tenants wrote them: bare ids, no tenant key."""
    batch = recs("old", n, seed)
    store._get(NAME).add(
        ids=[r.id for r in batch],
        embeddings=np.stack([np.asarray(r.vector) for r in batch]),
        documents=[r.text for r in batch],
        metadatas=[r.metadata for r in batch],
    )


def test_records_of_earlier_releases_are_the_space_without_a_tenant(
    store: ChromaStore,
) -> None:
    legacy(store, 4, 100)
    store.upsert(NAME, recs("new", 2, 200))
    store.upsert(NAME, recs("old", 4, 300), tenant="u1")
    q = unit(102)
    hits = store.query(NAME, q.tolist(), 10)
    assert sorted(h.id for h in hits) == ["new:0", "new:1", "old:0", "old:1", "old:2", "old:3"]
    assert hits[0].id == "old:2" and hits[0].text == "old 2"
    assert {h.metadata["content_id"] for h in store.query(NAME, q.tolist(), 10, tenant="u1")} == {
        "old"
    }
    store.delete_stale(NAME, "old", keep=1)
    assert store.count(NAME) == 7 and store.count(NAME, tenant="u1") == 4
    assert sorted(h.id for h in store.query(NAME, q.tolist(), 10, {"content_id": "old"})) == [
        "old:0"
    ]


def test_the_space_without_a_tenant_among_many_tenants(
    store: ChromaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chroma, "BRUTE_MAX", 5)
    monkeypatch.setattr(chroma, "FETCH_MAX", 40)
    store.upsert(NAME, recs("old", 600, 0), tenant="a")
    legacy(store, 30, 8000)
    q = unit(8)
    want = [f"old:{s - 8000}" for s in exact(q, range(8000, 8030), 5)]
    watched = spy(store)
    assert [h.id for h in store.query(NAME, q.tolist(), 5)] == want
    assert watched.calls[-1] == ("query", False)  # searched wider, unfiltered
    got = store.query(NAME, q.tolist(), 5, {"chunk_index": {"$lte": 29}})
    assert [h.id for h in got] == want
    assert watched.calls[-1] == ("query", True)  # filtered on the other conditions
