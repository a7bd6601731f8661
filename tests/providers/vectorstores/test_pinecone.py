"""Pinecone: the local index enforces Pinecone's limits, and ragcast stays within them."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from pinecone.errors import ApiError, UnauthorizedError
from pinecone.index import Index

from ragcast.errors import ConfigurationError, TransientError
from ragcast.providers.vectorstores.base import VectorRecord
from ragcast.providers.vectorstores.pinecone import (
    METADATA_BUDGET,
    PineconeStore,
    _filter,
    fit_metadata,
    trim_utf8,
)
from ragcast.settings import Settings
from tests.providers.vectorstores.conftest import DIMS, pinecone_store
from tests.providers.vectorstores.fake_pinecone import FakePinecone, serve

NAME = "ragcast-u1-local-8"
Fake = tuple[FakePinecone, str]


def vec(i: int) -> list[float]:
    v = np.random.default_rng(i).standard_normal(DIMS)
    return [float(x) for x in v / np.linalg.norm(v)]


def recs(n: int, text: str = "t", content_id: str = "doc") -> list[VectorRecord]:
    return [
        VectorRecord(
            id=f"{content_id}:{i}",
            vector=vec(i),
            text=text,
            metadata={"content_id": content_id, "chunk_index": i, "url": None},
        )
        for i in range(n)
    ]


# -- the local index fails requests the way Pinecone does ------------------------------
def test_over_1000_vectors_in_one_request_fail(fake_pinecone: Fake) -> None:
    fake, host = fake_pinecone
    with Index(host=host, api_key=fake.api_key) as index, pytest.raises(ApiError) as err:
        index.upsert(vectors=[(f"v{i}", vec(i)) for i in range(1001)])
    assert err.value.status_code == 400 and "1000" in str(err.value)
    assert fake.count("") == 0


def test_metadata_over_40kb_fails(fake_pinecone: Fake) -> None:
    fake, host = fake_pinecone
    with Index(host=host, api_key=fake.api_key) as index, pytest.raises(ApiError) as err:
        index.upsert(vectors=[("big", vec(1), {"text": "x" * 41_000})])
    assert err.value.status_code == 400 and "Metadata size" in str(err.value)


def test_requests_over_2mb_fail(fake_pinecone: Fake) -> None:
    fake, host = fake_pinecone
    vectors = [(f"v{i}", vec(i), {"text": "y" * 30_000}) for i in range(80)]
    with Index(host=host, api_key=fake.api_key) as index, pytest.raises(ApiError) as err:
        index.upsert(vectors=vectors)
    assert err.value.status_code == 400 and "2MB" in str(err.value)


def test_other_rules_of_the_index(fake_pinecone: Fake) -> None:
    fake, host = fake_pinecone
    headers = {"Api-Key": fake.api_key}
    too_long = {"vectors": [{"id": "i" * 513, "values": vec(1)}]}
    r = httpx.post(f"{host}/vectors/upsert", json=too_long, headers=headers)
    assert r.status_code == 400 and r.json()["code"] == 3
    wrong_dims = {"vectors": [{"id": "a", "values": [1.0, 2.0]}]}
    r = httpx.post(f"{host}/vectors/upsert", json=wrong_dims, headers=headers)
    assert r.status_code == 400 and "dimension" in r.json()["message"]
    null_meta = {"vectors": [{"id": "a", "values": vec(1), "metadata": {"url": None}}]}
    assert httpx.post(f"{host}/vectors/upsert", json=null_meta, headers=headers).status_code == 400
    by_filter = {"filter": {"content_id": {"$eq": "doc"}}, "namespace": "n"}
    r = httpx.post(f"{host}/vectors/delete", json=by_filter, headers=headers)
    assert r.status_code == 400 and "metadata filtering" in r.json()["message"]
    with Index(host=host, api_key="wrong") as index, pytest.raises(UnauthorizedError):
        index.describe_index_stats()


# -- ragcast keeps within the limits ----------------------------------------------------
def test_batches_stay_within_count_and_size(fake_pinecone: Fake) -> None:
    fake, host = fake_pinecone
    store = pinecone_store(host, fake.api_key)
    store.ensure_collection(NAME, DIMS)
    store.upsert(NAME, recs(2500))
    store.upsert(NAME, recs(300, text="z" * 30_000, content_id="long"))
    assert store.count(NAME) == 2800
    assert sum(n for n, _ in fake.upserts) == 2800
    assert all(n <= 1000 and size <= 2_000_000 for n, size in fake.upserts)
    assert len(fake.upserts) >= 3 + 5
    store.close()


def test_long_text_is_trimmed_in_metadata_only(fake_pinecone: Fake) -> None:
    fake, host = fake_pinecone
    store = pinecone_store(host, fake.api_key)
    text = 'Grüße 🚀 "q" \\ \n' * 8000
    store.upsert(NAME, recs(1, text=text))
    stored = fake.namespaces[NAME]["doc:0"].metadata or {}
    size = len(json.dumps(stored, ensure_ascii=False, separators=(",", ":")).encode())
    assert 0.9 * METADATA_BUDGET <= size <= METADATA_BUDGET
    assert stored["text_truncated"] is True and text.startswith(stored["text"])
    assert "url" not in stored  # Pinecone refuses null values
    store.close()


def test_trim_rule_is_utf8_safe() -> None:
    assert trim_utf8("aé🚀", 3) == "aé"  # the rocket's four bytes do not fit
    assert trim_utf8('a"b', 2) == "a"  # an escaped quote takes two bytes
    assert trim_utf8('a"b', 3) == 'a"'
    assert trim_utf8("abc", -5) == ""
    meta = fit_metadata({"title": "T" * 60_000, "content_id": "c"}, "text " * 20_000)
    assert len(json.dumps(meta, ensure_ascii=False).encode()) <= METADATA_BUDGET + 64
    assert meta["text_truncated"] is True and len(meta["title"]) == 1000


def test_delete_stale_pages_through_listed_ids(fake_pinecone: Fake) -> None:
    fake, host = fake_pinecone
    store = pinecone_store(host, fake.api_key)
    store.upsert(NAME, recs(250) + recs(30, content_id="doc:7"))
    store.delete_stale(NAME, "doc", keep=10)
    assert sorted(fake.namespaces[NAME]) == sorted(
        [f"doc:{i}" for i in range(10)] + [f"doc:7:{i}" for i in range(30)]
    )
    assert any("/vectors/list" in path for path, _ in fake.requests)
    store.close()


def test_tenants_are_namespaces(fake_pinecone: Fake) -> None:
    fake, host = fake_pinecone
    settings = Settings(
        pinecone_api_key=fake.api_key, pinecone_host=host, pinecone_namespace_prefix="prod-"
    )
    store = PineconeStore.from_settings(settings)
    store.upsert("ragcast-u1-local-8", recs(2))
    store.upsert("ragcast-u2-local-8", recs(3))
    assert {n: len(v) for n, v in fake.namespaces.items()} == {
        "prod-ragcast-u1-local-8": 2,
        "prod-ragcast-u2-local-8": 3,
    }
    store.close()


def test_settings_and_outages() -> None:
    with pytest.raises(ConfigurationError):
        PineconeStore.from_settings(Settings(pinecone_api_key="k"))
    with serve(FakePinecone(dimension=DIMS)) as host:
        pass  # the port is free again: nothing listens there now
    store = pinecone_store(host, "k")
    with pytest.raises(TransientError):
        store.count(NAME)
    store.close()


def test_tenants_of_a_collection_are_namespaces_of_their_own(fake_pinecone: Fake) -> None:
    fake, host = fake_pinecone
    settings = Settings(
        pinecone_api_key=fake.api_key, pinecone_host=host, pinecone_namespace_prefix="prod-"
    )
    store = PineconeStore.from_settings(settings)
    shared, other = "ragcast-local-8", "ragcast-local-8-b"
    store.upsert(shared, recs(2), tenant="u1")
    store.upsert(shared, recs(3), tenant="u2")
    store.upsert(shared, recs(1))
    store.upsert(other, recs(4), tenant="u1")
    assert {n: len(v) for n, v in fake.namespaces.items()} == {
        "prod-ragcast-local-8/u1": 2,
        "prod-ragcast-local-8/u2": 3,
        "prod-ragcast-local-8": 1,
        "prod-ragcast-local-8-b/u1": 4,
    }
    assert sorted(fake.namespaces["prod-ragcast-local-8/u2"]) == ["doc:0", "doc:1", "doc:2"]
    assert store.count(shared) == 6 and store.count(shared, tenant="u2") == 3
    store.drop_collection(shared)
    assert {n: len(v) for n, v in fake.namespaces.items()} == {"prod-ragcast-local-8-b/u1": 4}
    store.close()


def test_range_filters_go_out_one_operator_a_clause(fake_pinecone: Fake) -> None:
    fake, host = fake_pinecone
    store = pinecone_store(host, fake.api_key)
    batch = recs(5)
    for i, r in enumerate(batch):
        r.metadata["upload_ts"] = 20240110 + i
    store.upsert(NAME, batch, tenant="u1")
    where = {"upload_ts": {"$gte": 20240111, "$lte": 20240113}, "content_id": "doc"}
    hits = store.query(NAME, vec(0), 10, where, tenant="u1")
    assert sorted(h.id for h in hits) == ["doc:1", "doc:2", "doc:3"]
    assert _filter(where) == {
        "$and": [
            {"upload_ts": {"$gte": 20240111}},
            {"upload_ts": {"$lte": 20240113}},
            {"content_id": {"$eq": "doc"}},
        ]
    }
    store.close()
