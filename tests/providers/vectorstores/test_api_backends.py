"""Whole jobs through the API into Qdrant, pgvector and Pinecone, then searched.

Every job of one embedding model lands in the model's shared collection, each user's
vectors in their own tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from ragcast.providers.embedders.base import EmbeddingSpec
from ragcast.providers.vectorstores.base import VectorRecord, VectorStore
from ragcast.providers.vectorstores.pinecone import PineconeStore
from ragcast.retrieval.layout import collection_name, tenant
from ragcast.store.models import Chunk, Item, Job, User
from tests.conftest import PREFIX, Api
from tests.providers.vectorstores.fake_pinecone import FakePinecone, serve

LOCAL_DIMS = 512  # the default local model (USE multilingual v3)
#: the collection every job of the default local model goes to
SHARED = collection_name(EmbeddingSpec("local", LOCAL_DIMS, {"model": "use-multilingual-v3"}))

HARBOUR = " ".join(
    f"The ferry number {n} leaves the harbour at {n} o'clock and the timetable is posted "
    f"on the pier next to the lighthouse, where gulls wait for the fishing boats."
    for n in range(1, 13)
)
MOUNTAIN = " ".join(
    f"Mountain goat number {n} climbs the steep cliff above the glacier, eating moss and "
    f"lichen while the shepherd counts the herd before the snow storm."
    for n in range(1, 13)
)


@dataclass
class Backend:
    """An app whose jobs use ``vector_db.id = name``."""

    name: str
    api: Api
    pinecone: FakePinecone | None = None

    @property
    def store(self) -> VectorStore:
        return self.api.client.app.state.ctx.providers.vector_store(self.name)  # type: ignore[attr-defined,no-any-return]

    def user_id(self, name: str) -> int:
        with self.api.client.app.state.ctx.db.session() as s:  # type: ignore[attr-defined]
            return int(s.scalar(select(User.id).where(User.name == name)))

    def collection(self, job_id: str = "a1", user: str = "alice") -> str:
        """The shared collection a job's vectors went to."""
        uid = self.user_id(user)
        with self.api.client.app.state.ctx.db.session() as s:  # type: ignore[attr-defined]
            return str(
                s.scalar(select(Job.collection).where(Job.job_id == job_id, Job.user_id == uid))
            )

    def tenant(self, user: str = "alice") -> str:
        return tenant(self.user_id(user))

    def count(self, user: str = "alice", job_id: str = "a1") -> int:
        """Vectors of ``user`` in the collection of their job ``job_id``."""
        return self.store.count(self.collection(job_id, user), tenant=self.tenant(user))

    def run(self, job_id: str, doc: str, user: str = "alice", chunk_size: int = 64) -> None:
        settings = {"chunkSize": chunk_size, "chunkOverlap": 8, "maxTokens": 8192}
        vector_db = {"id": self.name, "label": self.name}
        r = self.api.submit(job_id, [doc], user=user, vector_db=vector_db, settings=settings)
        assert r.status_code == 200, r.text
        status = self.api.wait(job_id, user=user)
        assert status["status"] == "completed", status

    def chunks(self, job_id: str, user: str = "alice") -> int:
        r = self.api.client.get(f"{PREFIX}/job/{job_id}/items", headers=self.api.h(user))
        return int(r.json()["items"][0]["chunks"])

    def search(self, user: str = "alice", **body: Any) -> Any:
        return self.api.client.post(f"{PREFIX}/search", json=body, headers=self.api.h(user))


def make_backend(
    name: str, api_factory: Callable[..., Api], tmp_path: Path, stack: ExitStack, **kw: Any
) -> Backend:
    """An app configured for backend ``name`` (Pinecone: a local index of ``dims``)."""
    if name == "qdrant":
        return Backend(name, api_factory(qdrant_path=str(tmp_path / "qdrant")))
    if name == "pgvector":
        schema = f"e2e_{uuid.uuid4().hex[:10]}"
        return Backend(name, api_factory(pgvector_dsn=kw["dsn"](), pgvector_schema=schema))
    if name == "pinecone":
        fake = FakePinecone(dimension=kw.get("dims", LOCAL_DIMS))
        host = stack.enter_context(serve(fake))
        api = api_factory(pinecone_api_key=fake.api_key, pinecone_host=host)
        return Backend(name, api, fake)
    return Backend(name, api_factory())


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["qdrant", "pgvector", "pinecone"])
def test_jobs_search_tenancy_and_reruns(
    name: str,
    api_factory: Callable[..., Api],
    tmp_path: Path,
    stack: ExitStack,
    pg_dsn_lazy: Callable[[], str],
) -> None:
    b = make_backend(name, api_factory, tmp_path, stack, dsn=pg_dsn_lazy)
    alice_doc = b.api.upload(write(tmp_path, "harbour.txt", HARBOUR))
    b.run("a1", alice_doc)
    assert b.count() == b.chunks("a1") > 1

    hits = b.search(query="when does the ferry leave the harbour", top_k=5).json()["results"]
    assert hits and "ferry" in hits[0]["text"] and hits[0]["job_id"] == "a1"
    assert hits[0]["deep_link"] is None  # an upload has no URL to link to
    alice_content = hits[0]["content_id"]

    # Bob's search never reaches Alice's chunks, even with her words.
    bob_doc = b.api.upload(write(tmp_path, "goats.txt", MOUNTAIN), user="bob")
    b.run("b1", bob_doc, user="bob")
    assert b.collection("b1", "bob") == b.collection()  # one collection, two tenants
    assert b.store.count(b.collection()) == b.count() + b.count("bob", "b1")
    for query in ("ferry harbour timetable lighthouse", "mountain goat"):
        found = b.search("bob", query=query, top_k=50).json()["results"]
        # (her words find nothing of his: hits of no relevance are not returned)
        assert found or query != "mountain goat"
        assert all(h["content_id"] != alice_content for h in found)
        assert all("ferry" not in h["text"] for h in found)
    assert b.search("bob", query="ferry", job_id="a1").status_code == 404

    # The same content again, cut finer then coarser: the count follows the chunks.
    b.run("a2", alice_doc, chunk_size=32)
    finer = b.chunks("a2")
    assert finer > b.chunks("a1") and b.count() == finer
    b.run("a3", alice_doc, chunk_size=128)
    assert b.count() == b.chunks("a3") < finer
    assert b.count("bob", "b1") == b.chunks("b1", user="bob")


@pytest.mark.parametrize("name", ["qdrant", "pgvector", "pinecone"])
def test_a_dimension_clash_is_refused_at_submission(
    name: str,
    api_factory: Callable[..., Api],
    tmp_path: Path,
    stack: ExitStack,
    pg_dsn_lazy: Callable[[], str],
) -> None:
    b = make_backend(name, api_factory, tmp_path, stack, dsn=pg_dsn_lazy, dims=128)
    if name != "pinecone":  # Pinecone's index itself has 128 dimensions
        b.store.ensure_collection(SHARED, 128)
    doc = b.api.upload(write(tmp_path, "harbour.txt", HARBOUR))
    r = b.api.submit("clash", [doc], vector_db={"id": name})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "validation_error"
    assert body["details"]["field"] == "embedding_model.dimensions"
    assert "128" in body["details"]["issue"]


def test_pinecone_trimmed_text_is_answered_in_full(
    api_factory: Callable[..., Api], tmp_path: Path, stack: ExitStack
) -> None:
    b = make_backend("pinecone", api_factory, tmp_path, stack)
    b.run("p1", b.api.upload(write(tmp_path, "harbour.txt", HARBOUR)))
    assert b.pinecone is not None
    store = b.store
    assert isinstance(store, PineconeStore)
    namespace = b.pinecone.namespaces[store.namespace(b.collection("p1"), b.tenant())]
    for stored in namespace.values():  # as if every chunk had been over 40 KB
        assert stored.metadata is not None
        stored.metadata.update(text=stored.metadata["text"][:10], text_truncated=True)
    hits = b.search(query="ferry timetable", top_k=3).json()["results"]
    with b.api.client.app.state.ctx.db.session() as s:  # type: ignore[attr-defined]
        full = set(s.scalars(select(Chunk.text).join(Item)))
    assert hits and all(h["text"] in full and len(h["text"]) > 10 for h in hits)


def test_search_filters_and_deep_links(api_factory: Callable[..., Api], tmp_path: Path) -> None:
    b = make_backend("chroma", api_factory, tmp_path, ExitStack())
    b.run("c1", b.api.upload(write(tmp_path, "harbour.txt", HARBOUR)))
    b.run("c2", b.api.upload(write(tmp_path, "goats.txt", MOUNTAIN)))
    first = b.search(query="ferry", top_k=1).json()["results"][0]
    # Give that chunk a source on YouTube, as a platform job would have stored it.
    with b.api.client.app.state.ctx.db.session() as s:  # type: ignore[attr-defined]
        row = s.execute(
            select(Chunk.embedding, Chunk.text)
            .join(Item)
            .where(Item.content_id == first["content_id"], Chunk.chunk_index == 0)
        ).one()
    meta = {
        "job_id": "c1",
        "content_id": first["content_id"],
        "chunk_index": 0,
        "start_s": 93.6,
        "end_s": 120.0,
        "url": "https://www.youtube.com/watch?v=abc123",
        "platform": "youtube",
        "source": "harbour.txt",
        "source_type": "url",
    }
    vector = np.frombuffer(row.embedding, dtype=np.float32)
    record = VectorRecord(f"{first['content_id']}:0", vector, row.text, meta)
    b.store.upsert(b.collection("c1"), [record], tenant=b.tenant())
    hits = b.search(query=row.text, top_k=1).json()["results"]
    assert hits[0]["deep_link"] == "https://www.youtube.com/watch?v=abc123&t=93s"
    assert hits[0]["platform"] == "youtube"

    only = b.search(query="ferry", content_id=first["content_id"], top_k=50).json()["results"]
    assert only and {h["content_id"] for h in only} == {first["content_id"]}
    assert b.search(query="ferry", content_id="nothing-here").json()["results"] == []
    assert b.search(query="ferry", platform="youtube").json()["results"] == []
    assert b.search(query="goat", platform="documents", top_k=3).json()["results"]
    assert b.search(query="x", top_k=101).status_code == 400
    assert b.search(query="x", platform="myspace").status_code == 400


def test_pinecone_without_an_index_is_refused(
    api_factory: Callable[..., Api], tmp_path: Path
) -> None:
    api = api_factory(pinecone_api_key="some-key")  # neither a host nor an index name
    doc = api.upload(write(tmp_path, "harbour.txt", HARBOUR))
    r = api.submit("no-index", [doc], vector_db={"id": "pinecone"})
    assert r.status_code == 400
    assert r.json()["details"]["field"] == "vector_db.id"
    assert "RAGCAST_PINECONE_HOST" in r.json()["details"]["issue"]
