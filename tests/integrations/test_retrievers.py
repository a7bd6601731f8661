"""Tests for :mod:`ragcast.integrations`: the LangChain and LlamaIndex retrievers against
a real server with one real, finished job."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator

import pytest

pytest.importorskip("langchain_core", reason="needs the integrations extra (langchain-core)")
pytest.importorskip("llama_index.core", reason="needs the integrations extra (llama-index-core)")

from langchain_core.documents import Document  # noqa: E402 - after the skip
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from ragcast.client import AuthError, NotFoundError  # noqa: E402
from ragcast.integrations import langchain as lc  # noqa: E402
from ragcast.integrations import llamaindex as li  # noqa: E402
from tests.client.conftest import LiveServer, serve_in_thread  # noqa: E402
from tests.conftest import make_settings  # noqa: E402

JOB = "retrievers-1"

# Three cues far apart in time and topic; small chunks keep each cue its own chunk.
SRT = """1
00:00:02,000 --> 00:00:07,000
The beekeeper lifted the frame and the honeybees hummed around the smoker.

2
00:02:10,000 --> 00:02:16,000
A glacier carved the valley floor over ten thousand years of slow grinding ice.

3
00:05:30,000 --> 00:05:36,500
The violinist tuned her instrument before the orchestra began the symphony.
"""

BEES = "beekeeper honeybees smoker frame"
GLACIER = "glacier carved the valley"
PLACE_KEYS = {"deep_link", "media_url", "start_s", "end_s", "job_id", "content_id", "chunk_index"}
ALL_KEYS = PLACE_KEYS | {"title", "url", "source", "speaker", "language", "score"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real server with one finished English job ``JOB`` made of the three cues."""
    tmp = tmp_path_factory.mktemp("retrievers")
    subtitles = tmp / "nature.srt"
    subtitles.write_text(SRT)
    with serve_in_thread(make_settings(tmp / "server")) as server, server.client() as client:
        doc = client.upload(subtitles)["document_id"]
        client.process(
            {
                "job_id": JOB,
                "platform": "documents",
                "input_method": "upload",
                "uploaded_documents": [doc],
                "embedding_model": {"id": "local"},
                "vector_db": {"id": "chroma"},
                "settings": {"chunkSize": 24, "chunkOverlap": 0, "language": "en"},
            }
        )
        status = client.wait(JOB, poll_s=0.2, timeout=240)
        assert status["status"] == "completed", status
        yield server


def lc_retriever(live: LiveServer, **options: object) -> lc.RagcastRetriever:
    """A LangChain retriever of the live server (alice's key unless ``api_key`` is given)."""
    values: dict[str, object] = {"base_url": live.url, "api_key": live.key, "top_k": 3}
    values.update(options)
    return lc.RagcastRetriever.model_validate(values)


def assert_bees_first(docs: list[Document]) -> None:
    """The beekeeping cue comes first, with where it was said."""
    assert docs and all(isinstance(d, Document) for d in docs)
    first = docs[0]
    assert "beekeeper" in first.page_content
    assert ALL_KEYS <= set(first.metadata)
    meta = first.metadata
    assert meta["job_id"] == JOB and meta["content_id"] and meta["chunk_index"] == 0
    assert meta["start_s"] == pytest.approx(2.0) and meta["end_s"] == pytest.approx(7.0)
    assert meta["deep_link"] is None  # an upload has no URL to open at start_s
    assert meta["media_url"] is None  # and a subtitle file no recording to play
    assert meta["language"] == "en" and meta["title"] and meta["source"]
    assert isinstance(meta["score"], float)


def test_langchain_invoke_returns_the_chunk_with_its_place(live: LiveServer) -> None:
    docs = lc_retriever(live).invoke(BEES)
    assert_bees_first(docs)
    assert len(docs) <= 3
    glacier = lc_retriever(live, top_k=1).invoke(GLACIER)
    assert len(glacier) == 1 and "glacier" in glacier[0].page_content
    assert glacier[0].metadata["start_s"] == pytest.approx(130.0)


async def test_langchain_ainvoke(live: LiveServer) -> None:
    assert_bees_first(await lc_retriever(live).ainvoke(BEES))


def test_langchain_filters_pass_through(live: LiveServer) -> None:
    assert_bees_first(lc_retriever(live, job_id=JOB, language="en").invoke(BEES))
    assert lc_retriever(live, content_id="another-content").invoke(BEES) == []
    assert lc_retriever(live, language="fr").invoke(BEES) == []
    with pytest.raises(NotFoundError):  # the server answers 404 for a job not the user's
        lc_retriever(live, job_id="another-job").invoke(BEES)
    lexical = lc_retriever(live, mode="lexical", top_k=5).invoke("violinist symphony")
    assert [d.metadata["chunk_index"] for d in lexical] == [2]


async def test_langchain_async_filters_pass_through(live: LiveServer) -> None:
    assert await lc_retriever(live, language="fr").ainvoke(BEES) == []
    with pytest.raises(NotFoundError):
        await lc_retriever(live, job_id="another-job").ainvoke(BEES)


def test_langchain_retriever_is_a_pydantic_model_without_the_key_in_its_repr(
    live: LiveServer,
) -> None:
    retriever = lc_retriever(live, speaker="Host")
    assert retriever.speaker == "Host" and retriever.top_k == 3
    assert live.key not in repr(retriever)
    assert retriever.api_key.get_secret_value() == live.key
    with pytest.raises(ValueError, match="http"):
        lc.RagcastRetriever(base_url="localhost:8000", api_key=SecretStr(live.key))
    with pytest.raises(ValueError):
        lc_retriever(live, top_k=0)


def assert_bees_node_first(nodes: list[NodeWithScore]) -> None:
    """The beekeeping cue comes first as a scored text node with its metadata."""
    assert nodes and all(isinstance(n, NodeWithScore) for n in nodes)
    first = nodes[0]
    assert isinstance(first.node, TextNode) and "beekeeper" in first.node.text
    assert ALL_KEYS <= set(first.node.metadata)
    meta = first.node.metadata
    assert meta["job_id"] == JOB and meta["start_s"] == pytest.approx(2.0)
    assert meta["end_s"] == pytest.approx(7.0) and meta["language"] == "en"
    assert first.score is not None and first.score == pytest.approx(meta["score"])
    assert [n.score or 0.0 for n in nodes] == sorted((n.score or 0.0 for n in nodes), reverse=True)
    assert "job_id" not in first.node.get_content(metadata_mode=MetadataMode.LLM)


def test_a_hits_media_url_reaches_the_metadata_but_not_the_prompt() -> None:
    link = "http://ragcast.example/api/public/bulk/media/upload-1?token=1.2.3.mac"
    hit = {
        "text": "ask not what your country can do for you",
        "job_id": JOB,
        "content_id": "upload-1",
        "chunk_index": 0,
        "start_s": 3.2,
        "media_url": link,
        "deep_link": f"{link}#t=3",
        "score": 0.8,
    }
    assert lc.hit_document(hit).metadata["media_url"] == link
    node = li.hit_node(hit).node
    assert node.metadata["media_url"] == link
    prompt = node.get_content(metadata_mode=MetadataMode.LLM)
    assert "media_url" not in prompt and f"{link}#t=3" in prompt  # the moment stays


def test_llamaindex_retrieve(live: LiveServer) -> None:
    nodes = li.RagcastRetriever(live.url, live.key, top_k=3).retrieve(BEES)
    assert_bees_node_first(nodes)
    assert len({n.node.node_id for n in nodes}) == len(nodes)


async def test_llamaindex_aretrieve_and_filters(live: LiveServer) -> None:
    retriever = li.RagcastRetriever(live.url, live.key, top_k=3, job_id=JOB, language="en")
    assert_bees_node_first(await retriever.aretrieve(BEES))
    other = li.RagcastRetriever(live.url, live.key, content_id="another-content")
    assert await other.aretrieve(BEES) == []
    assert li.RagcastRetriever(live.url, live.key, language="fr").retrieve(BEES) == []
    with pytest.raises(NotFoundError):
        await li.RagcastRetriever(live.url, live.key, job_id="another-job").aretrieve(BEES)
    assert live.key not in repr(retriever)


def test_a_bad_key_raises_the_sdks_auth_error(live: LiveServer) -> None:
    with pytest.raises(AuthError):
        lc_retriever(live, api_key="rc_not_a_key").invoke(BEES)
    with pytest.raises(AuthError):
        li.RagcastRetriever(live.url, "rc_not_a_key").retrieve(BEES)


async def test_a_bad_key_raises_auth_error_on_the_async_paths(live: LiveServer) -> None:
    with pytest.raises(AuthError):
        await lc_retriever(live, api_key="rc_not_a_key").ainvoke(BEES)
    with pytest.raises(AuthError):
        await li.RagcastRetriever(live.url, "rc_not_a_key").aretrieve(BEES)


@pytest.mark.parametrize(
    ("module", "hidden"),
    [
        (
            "ragcast.integrations.langchain",
            ["langchain_core.callbacks", "langchain_core.documents", "langchain_core.retrievers"],
        ),
        (
            "ragcast.integrations.llamaindex",
            [
                "llama_index.core.base.base_retriever",
                "llama_index.core.callbacks",
                "llama_index.core.schema",
            ],
        ),
    ],
)
def test_without_the_framework_the_import_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, module: str, hidden: list[str]
) -> None:
    for name in hidden:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, module)
    with pytest.raises(ImportError, match=r"ragcast\[integrations\]"):
        importlib.import_module(module)


def test_a_url_without_scheme_or_a_bad_top_k_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        li.RagcastRetriever("localhost:8000", "rc_x")
    with pytest.raises(ValueError, match="top_k"):
        li.RagcastRetriever("http://localhost:8000", "rc_x", top_k=0)
