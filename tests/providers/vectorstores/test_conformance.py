"""One contract, every backend: the same cases run unchanged against each store."""

from __future__ import annotations

import uuid
from typing import Any

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


# -- tenants sharing a collection ---------------------------------------------------------
def dated(content_id: str, days: list[int], *, seed: int = 0) -> list[VectorRecord]:
    """One chunk per day of January 2024, with ``upload_ts`` as search stores it."""
    out = records(content_id, len(days), seed=seed)
    for r, day in zip(out, days, strict=True):
        r.metadata["upload_ts"] = 20240100 + day
    return out


def test_tenants_are_isolated(store: VectorStore, name: str) -> None:
    store.ensure_collection(name, DIMS)
    store.upsert(name, records("doc-a", 6), tenant="u1")
    store.upsert(name, records("doc-a", 4, seed=5, text="other"), tenant="u2")
    assert store.count(name, tenant="u1") == 6 and store.count(name, tenant="u2") == 4
    assert store.count(name) == 10  # no tenant: the whole collection

    mine = store.query(name, unit(2).tolist(), 20, tenant="u1")
    assert sorted(h.id for h in mine) == [f"doc-a:{i}" for i in range(6)]  # the bare ids
    assert mine[0].id == "doc-a:2" and mine[0].text == "chunk 2 of doc-a"
    assert "tenant" not in mine[0].metadata
    theirs = store.query(name, unit(5000).tolist(), 20, tenant="u2")
    assert sorted(h.id for h in theirs) == [f"doc-a:{i}" for i in range(4)]
    assert theirs[0].id == "doc-a:0" and theirs[0].text == "other 0 of doc-a"
    assert store.query(name, unit(2).tolist(), 20, tenant="u3") == []
    assert store.count(name, tenant="u3") == 0

    store.delete_stale(name, "doc-a", keep=2, tenant="u2")
    assert store.count(name, tenant="u2") == 2 and store.count(name, tenant="u1") == 6
    store.delete_stale(name, "doc-a", keep=0, tenant="u1")
    assert store.count(name, tenant="u1") == 0 and store.count(name, tenant="u2") == 2


def test_a_tenant_rewrites_only_its_own_records(store: VectorStore, name: str) -> None:
    store.ensure_collection(name, DIMS)
    store.upsert(name, records("doc-a", 3), tenant="u1")
    store.upsert(name, records("doc-a", 3), tenant="u2")
    store.upsert(name, records("doc-a", 3, text="again"), tenant="u1")
    assert store.count(name) == 6
    assert {h.text for h in store.query(name, unit(0).tolist(), 10, tenant="u1")} == {
        f"again {i} of doc-a" for i in range(3)
    }
    assert {h.text for h in store.query(name, unit(0).tolist(), 10, tenant="u2")} == {
        f"chunk {i} of doc-a" for i in range(3)
    }


def test_no_tenant_is_a_space_of_its_own(store: VectorStore, name: str) -> None:
    store.ensure_collection(name, DIMS)
    store.upsert(name, records("doc-a", 5))
    store.upsert(name, records("doc-b", 3, seed=1), tenant="u1")
    assert {h.metadata["content_id"] for h in store.query(name, unit(1).tolist(), 20)} == {"doc-a"}
    assert {
        h.metadata["content_id"] for h in store.query(name, unit(1).tolist(), 20, tenant="u1")
    } == {"doc-b"}
    assert store.count(name, tenant="u1") == 3 and store.count(name) == 8
    store.delete_stale(name, "doc-b", keep=0)  # not the tenant's records
    assert store.count(name, tenant="u1") == 3
    store.delete_stale(name, "doc-a", keep=1)
    assert store.count(name) == 4


def test_range_filters(store: VectorStore, name: str) -> None:
    store.ensure_collection(name, DIMS)
    store.upsert(name, dated("doc-a", [5, 10, 15, 20, 25, 31]), tenant="u1")
    store.upsert(name, dated("doc-b", [10, 15, 20], seed=1), tenant="u2")
    q = unit(0).tolist()

    def days(where: dict[str, Any]) -> list[int]:
        hits = store.query(name, q, 20, where, tenant="u1")
        return sorted(int(h.metadata["upload_ts"]) - 20240100 for h in hits)

    assert days({"upload_ts": {"$gte": 20240115}}) == [15, 20, 25, 31]
    assert days({"upload_ts": {"$lte": 20240110}}) == [5, 10]
    assert days({"upload_ts": {"$gte": 20240110, "$lte": 20240125}}) == [10, 15, 20, 25]
    assert days({"upload_ts": {"$gte": 20240201}}) == []
    assert days({"chunk_index": {"$gte": 1, "$lte": 2}}) == [10, 15]
    both: dict[str, Any] = {
        "upload_ts": {"$gte": 20240110},
        "content_id": "doc-a",
        "chunk_index": {"$lte": 3},
    }
    assert days(both) == [10, 15, 20]


def test_a_float_range_leaves_records_without_the_key_out(store: VectorStore, name: str) -> None:
    # min_confidence: ASR chunks carry a confidence, documents none (stores keep no nulls)
    store.ensure_collection(name, DIMS)
    spoken = records("clip", 4)
    for r, confidence in zip(spoken, (0.42, 0.75, 0.9, 0.999), strict=True):
        r.metadata["confidence"] = confidence
    written = records("doc-a", 2, seed=1)
    for r in written:
        r.metadata["confidence"] = None
    store.upsert(name, spoken + written, tenant="u1")

    def sure(least: float) -> list[float]:
        where = {"confidence": {"$gte": least}}
        hits = store.query(name, unit(0).tolist(), 20, where, tenant="u1")
        return sorted(float(h.metadata["confidence"]) for h in hits)

    assert sure(0.0) == [0.42, 0.75, 0.9, 0.999]
    assert sure(0.75) == [0.75, 0.9, 0.999]
    assert sure(1.0) == []


def test_in_filter_within_a_tenant(store: VectorStore, name: str) -> None:
    store.ensure_collection(name, DIMS)
    store.upsert(name, records("doc-a", 3) + records("yt-b", 3, seed=1), tenant="u1")
    store.upsert(name, records("doc-a", 3, seed=2) + records("yt-c", 3, seed=3), tenant="u2")
    where: dict[str, Any] = {"content_id": {"$in": ["doc-a", "yt-c"]}}
    hits = store.query(name, unit(0).tolist(), 20, where, tenant="u1")
    assert sorted(h.id for h in hits) == ["doc-a:0", "doc-a:1", "doc-a:2"]
    where = {"content_id": {"$in": ["doc-a", "yt-b", "yt-c"]}, "platform": "youtube"}
    hits = store.query(name, unit(0).tolist(), 20, where, tenant="u2")
    assert sorted(h.id for h in hits) == ["yt-c:0", "yt-c:1", "yt-c:2"]


def test_a_big_tenant_beside_small_ones(store: VectorStore, name: str) -> None:
    # Each tenant gets its own nearest records whatever its share of the collection.
    store.ensure_collection(name, DIMS)
    store.upsert(name, records("doc-big", 300), tenant="big")
    for t in range(5):
        store.upsert(name, records("doc-small", 4, seed=10 + t), tenant=f"s{t}")
    q = unit(7)
    big = store.query(name, q.tolist(), 10, tenant="big")
    exact = sorted(range(300), key=lambda i: -float(unit(i) @ q))[:10]
    assert [h.id for h in big][:3] == [f"doc-big:{i}" for i in exact[:3]]
    assert len({h.id for h in big} & {f"doc-big:{i}" for i in exact}) >= 9
    small = store.query(name, q.tolist(), 10, tenant="s3")
    exact_small = sorted(range(4), key=lambda i: -float(unit(13000 + i) @ q))
    assert [h.id for h in small] == [f"doc-small:{i}" for i in exact_small]
    assert small[0].score == pytest.approx(float(unit(13000 + exact_small[0]) @ q), abs=1e-4)


def test_drop_collection(store: VectorStore, name: str) -> None:
    store.drop_collection(name)  # missing: nothing to do
    store.ensure_collection(name, DIMS)
    store.upsert(name, records("doc-a", 4), tenant="u1")
    store.upsert(name, records("doc-a", 2))
    other = name.replace("-local-", "-other-")
    store.ensure_collection(other, DIMS)
    store.upsert(other, records("doc-b", 3), tenant="u1")
    store.drop_collection(name)
    assert store.count(name) == 0 and store.count(name, tenant="u1") == 0
    assert store.query(name, unit(0).tolist(), 5, tenant="u1") == []
    assert store.query(name, unit(0).tolist(), 5) == []
    assert store.count(other, tenant="u1") == 3  # another collection stays
    store.drop_collection(name)
    store.ensure_collection(name, DIMS)  # and the name can be used again
    store.upsert(name, records("doc-c", 2), tenant="u1")
    assert store.count(name, tenant="u1") == 2


def test_bad_tenants_and_filters_are_refused(store: VectorStore, name: str) -> None:
    store.ensure_collection(name, DIMS)
    for bad in ("", "u1/x", "a b"):
        with pytest.raises(ValueError):
            store.upsert(name, records("doc-a", 1), tenant=bad)
        with pytest.raises(ValueError):
            store.query(name, unit(0).tolist(), 1, tenant=bad)
    with pytest.raises(ValueError):
        store.query(name, unit(0).tolist(), 1, {"upload_ts": {"$gt": 1}}, tenant="u1")
    assert store.count(name) == 0


def test_an_empty_in_matches_nothing(store: VectorStore, name: str) -> None:
    store.ensure_collection(name, DIMS)
    store.upsert(name, records("doc-a", 3), tenant="u1")
    assert store.query(name, unit(0).tolist(), 5, {"content_id": {"$in": []}}, tenant="u1") == []


# -- metadata updates ---------------------------------------------------------------------
SPEAKERS = {"speaker": "Host", "speakers": "Host, SPEAKER_01"}


def spoken(content_id: str, n: int, *, seed: int = 0, text: str = "chunk") -> list[VectorRecord]:
    """``records`` whose chunks all carry the speaker ``SPEAKER_00``."""
    out = records(content_id, n, seed=seed, text=text)
    for r in out:
        r.metadata["speaker"] = "SPEAKER_00"
    return out


def stored_metadata(record: VectorRecord, **merged: Any) -> dict[str, Any]:
    """The metadata a hit of ``record`` carries once ``merged`` is merged into it."""
    return {k: v for k, v in {**record.metadata, **merged}.items() if v is not None}


def test_update_metadata_merges_keys(store: VectorStore, name: str) -> None:
    store.ensure_collection(name, DIMS)
    originals = spoken("yt-a", 4)
    store.upsert(name, originals)
    store.update_metadata(name, {"yt-a:1": SPEAKERS, "yt-a:2": {"speaker": "Guest"}})
    q = unit(1).tolist()

    host = store.query(name, q, 10, {"speaker": "Host"})
    assert [h.id for h in host] == ["yt-a:1"]
    assert host[0].metadata == stored_metadata(originals[1], **SPEAKERS)
    assert host[0].text == "chunk 1 of yt-a"
    guest = store.query(name, q, 10, {"speaker": "Guest"})
    assert [h.id for h in guest] == ["yt-a:2"] and "speakers" not in guest[0].metadata
    assert guest[0].metadata == stored_metadata(originals[2], speaker="Guest")
    old = store.query(name, q, 10, {"speaker": "SPEAKER_00"})
    assert sorted(h.id for h in old) == ["yt-a:0", "yt-a:3"]
    assert old[0].metadata == stored_metadata(originals[int(old[0].id[-1])])
    assert store.query(name, q, 10, {"speakers": "Host, SPEAKER_01"})[0].id == "yt-a:1"
    assert store.count(name) == 4


def test_contains_finds_a_value_in_a_list_and_follows_updates(
    store: VectorStore, name: str
) -> None:
    store.ensure_collection(name, DIMS)
    rs = records("yt-a", 3)
    rs[0].metadata["speaker_names"] = ["Host", "Guest"]
    rs[1].metadata["speaker_names"] = ["Guest"]
    store.upsert(name, rs, tenant="u1")
    q = unit(0).tolist()

    def having(who: str) -> list[str]:
        hits = store.query(name, q, 5, {"speaker_names": {"$contains": who}}, tenant="u1")
        return sorted(h.id for h in hits)

    assert having("Guest") == ["yt-a:0", "yt-a:1"]
    assert having("Host") == ["yt-a:0"] and having("Nobody") == []
    assert store.query(name, q, 5, {"speaker_names": {"$contains": "Host"}}, tenant="u2") == []
    store.update_metadata(name, {"yt-a:1": {"speaker_names": ["Host"]}}, tenant="u1")
    assert having("Host") == ["yt-a:0", "yt-a:1"] and having("Guest") == ["yt-a:0"]
    hit = store.query(name, q, 5, {"content_id": "yt-a", "chunk_index": 0}, tenant="u1")[0]
    assert hit.metadata["speaker_names"] == ["Host", "Guest"]


def test_update_metadata_changes_only_the_named_tenant(store: VectorStore, name: str) -> None:
    store.ensure_collection(name, DIMS)
    store.upsert(name, spoken("yt-a", 3), tenant="u1")
    store.upsert(name, spoken("yt-a", 3), tenant="u2")
    store.upsert(name, spoken("yt-a", 3))  # the space without a tenant
    store.update_metadata(name, {"yt-a:0": SPEAKERS}, tenant="u1")
    q = unit(0).tolist()

    mine = store.query(name, q, 10, {"speaker": "Host"}, tenant="u1")
    assert [h.id for h in mine] == ["yt-a:0"] and mine[0].metadata["speakers"] == SPEAKERS[
        "speakers"
    ]
    assert "tenant" not in mine[0].metadata
    for other in ("u2", None):
        assert store.query(name, q, 10, {"speaker": "Host"}, tenant=other) == []
        theirs = store.query(name, q, 10, {"speaker": "SPEAKER_00"}, tenant=other)
        assert sorted(h.id for h in theirs) == ["yt-a:0", "yt-a:1", "yt-a:2"]
        assert all("speakers" not in h.metadata for h in theirs)

    store.update_metadata(name, {"yt-a:1": {"speaker": "Guest"}})  # no tenant: its own space
    assert [h.id for h in store.query(name, q, 10, {"speaker": "Guest"})] == ["yt-a:1"]
    for other in ("u1", "u2"):
        assert store.query(name, q, 10, {"speaker": "Guest"}, tenant=other) == []
    assert store.count(name, tenant="u1") == 3 and store.count(name, tenant="u2") == 3
    assert store.count(name) == 9
    with pytest.raises(ValueError):
        store.update_metadata(name, {"yt-a:0": SPEAKERS}, tenant="u1/x")


def test_update_metadata_skips_unknown_ids(store: VectorStore, name: str) -> None:
    store.update_metadata(name, {"yt-a:0": SPEAKERS})  # no collection: nothing to update
    store.ensure_collection(name, DIMS)
    store.update_metadata(name, {"yt-a:0": SPEAKERS})  # an empty collection
    assert store.count(name) == 0
    store.upsert(name, spoken("yt-a", 2), tenant="u1")
    store.update_metadata(name, {})
    store.update_metadata(
        name,
        {"yt-a:9": SPEAKERS, "yt-a:1": SPEAKERS, "other:0": {"speaker": "Guest"}},
        tenant="u1",
    )
    store.update_metadata(name, {"yt-a:0": SPEAKERS}, tenant="u9")  # a tenant without records
    assert store.count(name) == 2 and store.count(name, tenant="u9") == 0
    hits = store.query(name, unit(0).tolist(), 10, tenant="u1")
    assert sorted(h.id for h in hits) == ["yt-a:0", "yt-a:1"]
    assert {h.id: h.metadata["speaker"] for h in hits} == {"yt-a:0": "SPEAKER_00", "yt-a:1": "Host"}
    assert store.query(name, unit(0).tolist(), 10, tenant="u9") == []


def test_update_metadata_keeps_vectors_and_text(store: VectorStore, name: str) -> None:
    store.ensure_collection(name, DIMS)
    store.upsert(name, spoken("yt-a", 12), tenant="u1")
    store.update_metadata(
        name, {f"yt-a:{i}": {"speaker": f"SPEAKER_{i:02d}"} for i in range(12)}, tenant="u1"
    )
    for i in (0, 5, 11):
        hits = store.query(name, unit(i).tolist(), 3, tenant="u1")
        assert hits[0].id == f"yt-a:{i}"
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert hits[0].text == f"chunk {i} of yt-a"
        assert hits[0].metadata["speaker"] == f"SPEAKER_{i:02d}"
        assert hits[0].metadata["chunk_index"] == i
        filtered = store.query(name, unit(i).tolist(), 3, {"content_id": "yt-a"}, tenant="u1")
        assert [h.id for h in filtered] == [h.id for h in hits]
    assert store.count(name, tenant="u1") == 12
