"""Scores users can threshold and the recogniser's confidence, against one real server:
a job of written documents and one real recording, read through the API, both SDKs, the
CLI, LangChain, LlamaIndex and MCP."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ragcast.cli import app as cli_app
from ragcast.client import AsyncClient, ValidationError
from ragcast.retrieval.scores import NOTHING, CosineScale, cosine_scale, lexical_share
from tests.client.conftest import LiveServer, serve_in_thread
from tests.conftest import DATA, PREFIX, make_settings

JOB = "scores"
DOCS = {
    "roast.txt": (
        "Light roasts keep the acidity of the bean. Our head roaster, Ingrid Aamodt, drops "
        "the beans just after the first crack so that the floral notes survive the drum."
    ),
    "harbour.txt": (
        "The harbour ferry leaves at nine in the morning and returns at six in the evening. "
        "Tickets are sold on board."
    ),
    "olivas.txt": (
        "La cosecha de la aceituna empieza en noviembre. Las familias varean los olivos y "
        "llevan el fruto a la almazara el mismo día para que el aceite no se oxide."
    ),
}
#: a real recording: "Mr. Quilter is the apostle of the middle classes and we are glad to
#: welcome his gospel."
RECORDING = DATA / "clip02.wav"
SPOKEN = "the apostle of the middle classes"
UNRELATED = "quantum chromodynamics on a lattice"
#: a query that finds every document a little and the recording best
BROAD = "the apostle of the middle classes drinks coffee on the ferry"
MODES = ("hybrid", "dense", "lexical")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real server where alice indexed three documents and the recording in one job."""
    tmp = tmp_path_factory.mktemp("scores")
    with serve_in_thread(make_settings(tmp / "server")) as server, server.client() as client:
        docs = []
        for name, body in DOCS.items():
            path = tmp / name
            path.write_text(body, encoding="utf-8")
            docs.append(client.upload(path)["document_id"])
        docs.append(client.upload(RECORDING)["document_id"])
        client.process(
            {
                "job_id": JOB,
                "platform": "documents",
                "input_method": "upload",
                "uploaded_documents": docs,
                "embedding_model": {"id": "local", "model": "use-multilingual-v3"},
                "vector_db": {"id": "chroma"},
                "settings": {"chunkSize": 64, "chunkOverlap": 0, "language": "en"},
            }
        )
        status = client.wait(JOB, poll_s=0.2, timeout=240)
        assert status["status"] == "completed", status
        yield server


def search(live: LiveServer, **body: Any) -> httpx.Response:
    """``POST /search`` as alice."""
    headers = {"Authorization": f"Bearer {live.key}"}
    return httpx.post(f"{live.url}{PREFIX}/search", json=body, headers=headers, timeout=60)


def hits(live: LiveServer, **body: Any) -> list[dict[str, Any]]:
    """The results of a search that must succeed."""
    answer = search(live, **body)
    assert answer.status_code == 200, answer.text
    results: list[dict[str, Any]] = answer.json()["results"]
    return results


def recorded(hit: dict[str, Any]) -> bool:
    """Whether the hit is a chunk of the recording."""
    return hit["source"] == RECORDING.name


# -- the scale ---------------------------------------------------------------------------


def test_the_scale_maps_each_models_cosine_and_bm25_share_into_0_1() -> None:
    use = cosine_scale("use-multilingual-v3")
    assert use.score(use.unrelated) == 0 and use.score(-0.5) == 0
    assert use.score(use.strong) == 1 and use.score(0.99) == 1
    assert 0 < use.score((use.unrelated + use.strong) / 2) < 1
    assert cosine_scale("multilingual-e5-small").unrelated > 0.5  # e5's cosines run high
    assert cosine_scale("some-cloud-model") == CosineScale(0.0, 1.0)
    assert lexical_share(3.0, 6.0) == 0.5 and lexical_share(9.0, 6.0) == 1
    assert lexical_share(1.0, 0.0) == 0


@pytest.mark.parametrize("mode", MODES)
def test_scores_lie_in_0_1_in_every_mode(live: LiveServer, mode: str) -> None:
    for query in ("What does Aamodt do with the beans?", "ferry tickets", SPOKEN):
        found = hits(live, query=query, mode=mode)
        assert found, (query, mode)
        scores = [h["score"] for h in found]
        assert all(NOTHING <= s <= 1 for s in scores), (query, mode, scores)
        assert scores == sorted(scores, reverse=True)


def test_scores_are_absolute_not_relative_to_the_best_candidate(live: LiveServer) -> None:
    # before, the best hit of a meaning-only hybrid search always scored 0.5 and the best
    # lexical hit its raw BM25: now a loosely related best hit scores low, a close one high
    close = hits(live, query="When does the harbour ferry leave and return?")[0]
    loose = hits(live, query="a boat trip", mode="hybrid")
    assert close["source"] == "harbour.txt" and close["score"] > 0.25
    assert loose and loose[0]["source"] == "harbour.txt"
    assert loose[0]["score"] < close["score"] and loose[0]["score"] != 0.5
    exact = hits(live, query="Aamodt", mode="lexical")
    assert exact[0]["source"] == "roast.txt" and 0.5 < exact[0]["score"] <= 1


def test_an_unrelated_query_is_not_padded_with_zero_hits(live: LiveServer) -> None:
    assert hits(live, query=UNRELATED, mode="dense") == []
    assert hits(live, query=UNRELATED, mode="hybrid") == []
    lexical = hits(live, query=UNRELATED, mode="lexical", top_k=10)
    assert len(lexical) < 4 and all(h["score"] >= NOTHING for h in lexical)


@pytest.mark.parametrize("mode", MODES)
def test_min_score_drops_weaker_hits(live: LiveServer, mode: str) -> None:
    query = "What does Aamodt do with the beans?"
    every = hits(live, query=query, mode=mode)
    cut = every[0]["score"] - 1e-6
    kept = hits(live, query=query, mode=mode, min_score=cut)
    assert kept and [h["text"] for h in kept] == [h["text"] for h in every if h["score"] >= cut]
    assert hits(live, query=query, mode=mode, min_score=1) == [h for h in every if h["score"] >= 1]
    assert hits(live, query=query, mode=mode, min_score=0) == every


# -- confidence ----------------------------------------------------------------------------


def test_recognised_chunks_carry_a_confidence_and_documents_none(live: LiveServer) -> None:
    found = hits(live, query=SPOKEN, top_k=10)
    spoken = [h for h in found if recorded(h)]
    assert spoken and found[0] is spoken[0]
    assert all(0 < h["confidence"] <= 1 for h in spoken)
    written = hits(live, query="ferry tickets")
    assert written[0]["source"] == "harbour.txt" and written[0]["confidence"] is None


@pytest.mark.parametrize("mode", MODES)
def test_min_confidence_keeps_sure_speech_and_leaves_documents_out(
    live: LiveServer, mode: str
) -> None:
    spoken = next(h for h in hits(live, query=SPOKEN, mode=mode) if recorded(h))
    kept = hits(live, query=SPOKEN, mode=mode, min_confidence=0)
    assert kept and all(recorded(h) for h in kept)
    assert hits(live, query="ferry tickets", mode=mode)
    assert hits(live, query="ferry tickets", mode=mode, min_confidence=0) == []  # no confidence
    sure = spoken["confidence"]
    assert [h["text"] for h in hits(live, query=SPOKEN, mode=mode, min_confidence=sure)] == [
        spoken["text"]
    ]
    assert hits(live, query=SPOKEN, mode=mode, min_confidence=min(1.0, sure + 1e-3)) == []


def test_exports_carry_the_confidence_in_every_format(live: LiveServer, tmp_path: Path) -> None:
    rows: dict[str, list[Any]] = {}
    with live.client() as client:
        for fmt in ("json", "csv", "parquet", "vector"):
            export_id = client.export(JOB, fmt)["export_id"]
            deadline = time.monotonic() + 60
            while client.export_status(export_id)["status"] != "completed":
                assert time.monotonic() < deadline, client.export_status(export_id)
                time.sleep(0.1)
            target = client.download(export_id, tmp_path / f"x.{fmt}")
            if fmt == "json":
                rows[fmt] = [c.get("confidence") for c in json.loads(target.read_text())["chunks"]]
            elif fmt == "csv":
                reader = csv.DictReader(io.StringIO(target.read_text()))
                rows[fmt] = [float(r["confidence"]) if r["confidence"] else None for r in reader]
            elif fmt == "parquet":
                rows[fmt] = pq.read_table(target).column("confidence").to_pylist()
            else:
                lines = target.read_text().splitlines()
                rows[fmt] = [json.loads(line)["metadata"].get("confidence") for line in lines]
    for fmt, values in rows.items():
        known = [v for v in values if v is not None]
        assert known and all(0 < v <= 1 for v in known), fmt  # the recording's chunks
        assert len(known) < len(values), fmt  # the documents': null (left out in vector)
    assert rows["json"] == rows["csv"] == rows["parquet"] == rows["vector"]


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["min_score", "min_confidence"])
@pytest.mark.parametrize("value", [-0.1, 1.5, "high", True, None])
def test_a_bad_threshold_is_a_400_naming_the_field(
    live: LiveServer, field: str, value: object
) -> None:
    body: dict[str, Any] = {"query": "anything", field: value}
    answer = search(live, **body)
    if value is None:  # null is the default: no threshold
        assert answer.status_code == 200
        return
    assert answer.status_code == 400, answer.text
    assert answer.json()["details"]["field"] == field
    assert field in answer.json()["message"]


# -- clients ---------------------------------------------------------------------------


def test_the_sdk_sends_both_thresholds(live: LiveServer) -> None:
    with live.client() as client:
        every = client.search(BROAD, JOB, 10)["results"]
        high = client.search(BROAD, JOB, 10, min_score=every[0]["score"])["results"]
        assert [h["text"] for h in high] == [
            h["text"] for h in every if h["score"] >= high[-1]["score"]
        ]
        assert all(h["score"] >= every[0]["score"] for h in high)
        sure = client.search(BROAD, JOB, 10, min_confidence=0.01)["results"]
        assert sure and all(recorded(h) for h in sure)
        with pytest.raises(ValidationError) as refused:
            client.search(BROAD, min_score=2)
        assert refused.value.details and refused.value.details["field"] == "min_score"


async def test_the_async_sdk_sends_both_thresholds(live: LiveServer) -> None:
    async with AsyncClient(live.url, live.key) as client:
        every = (await client.search(BROAD, top_k=10))["results"]
        top = every[0]["score"]
        high = (await client.search(BROAD, top_k=10, min_score=top))["results"]
        assert high and all(h["score"] >= top for h in high)
        sure = (await client.search(BROAD, top_k=10, min_confidence=0.01))["results"]
        assert sure and all(recorded(h) for h in sure)
        with pytest.raises(ValidationError) as refused:
            await client.search(BROAD, min_confidence=-1)
        assert refused.value.details and refused.value.details["field"] == "min_confidence"


def test_the_cli_takes_min_score_and_min_confidence(
    live: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("RAGCAST_SERVER", "RAGCAST_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    env = {"RAGCAST_DATA_DIR": str(tmp_path / "cli"), "RAGCAST_PRELOAD_MODELS": "false"}
    remote = ["--server", live.url, "--api-key", live.key, "--json"]

    def run(*args: str) -> Any:
        result = CliRunner().invoke(cli_app, ["search", *args, *remote], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    every = run(BROAD, "--top-k", "10")
    top = every[0]["score"]
    assert all(h["score"] >= top for h in run(BROAD, "--top-k", "10", "--min-score", str(top)))
    sure = run(BROAD, "--top-k", "10", "--min-confidence", "0.01")
    assert sure and all(recorded(h) for h in sure)
    bad = CliRunner().invoke(cli_app, ["search", BROAD, "--min-score", "7", *remote], env=env)
    assert bad.exit_code != 0 and "min_score" in bad.output


def test_langchain_score_threshold(live: LiveServer) -> None:
    lc = pytest.importorskip("ragcast.integrations.langchain")
    base = {"base_url": live.url, "api_key": live.key, "top_k": 10}
    every = lc.RagcastRetriever.model_validate(base).invoke(BROAD)
    top = every[0].metadata["score"]
    high = lc.RagcastRetriever.model_validate({**base, "score_threshold": top}).invoke(BROAD)
    assert high and all(d.metadata["score"] >= top for d in high) and len(high) < len(every)
    sure = lc.RagcastRetriever.model_validate({**base, "min_confidence": 0.01}).invoke(BROAD)
    assert sure and all(0 < d.metadata["confidence"] <= 1 for d in sure)
    with pytest.raises(ValueError, match="score_threshold"):
        lc.RagcastRetriever.model_validate({**base, "score_threshold": 1.5})


async def test_llamaindex_min_score(live: LiveServer) -> None:
    li = pytest.importorskip("ragcast.integrations.llamaindex")
    every = li.RagcastRetriever(live.url, live.key, top_k=10).retrieve(BROAD)
    top = every[0].score
    high = await li.RagcastRetriever(live.url, live.key, top_k=10, min_score=top).aretrieve(BROAD)
    assert high and all((n.score or 0) >= top for n in high) and len(high) < len(every)
    sure = li.RagcastRetriever(live.url, live.key, top_k=10, min_confidence=0.01).retrieve(BROAD)
    assert sure and all(0 < n.node.metadata["confidence"] <= 1 for n in sure)
    with pytest.raises(ValueError, match="min_score"):
        li.RagcastRetriever(live.url, live.key, min_score=-0.5)


async def test_mcp_search_takes_min_score_and_min_confidence(live: LiveServer) -> None:
    pytest.importorskip("mcp.server.mcpserver", reason="needs the integrations extra (mcp 2.x)")
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {live.key}"}
    timeout = httpx2.Timeout(30.0, read=300.0)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        transport = streamable_http_client(f"{live.url}/mcp", http_client=http)
        async with Client(transport) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert {"min_score", "min_confidence"} <= set(
                tools["search"].input_schema["properties"]
            )

            async def call(**args: Any) -> list[dict[str, Any]]:
                result = await client.call_tool("search", {"query": BROAD, "top_k": 10, **args})
                assert not result.is_error, result.content
                assert isinstance(result.structured_content, dict)
                found: list[dict[str, Any]] = result.structured_content["results"]
                return found

            every = await call()
            top = every[0]["score"]
            high = await call(min_score=top)
            assert high and all(h["score"] >= top for h in high) and len(high) < len(every)
            sure = await call(min_confidence=0.01)
            assert sure and all(0 < h["confidence"] <= 1 for h in sure)
            refused = await client.call_tool("search", {"query": BROAD, "min_score": 3})
            assert refused.is_error
