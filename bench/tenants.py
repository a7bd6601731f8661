"""Search cost as a user's history grows, among other users: it must stay flat.

``python -m bench tenants`` builds, in the embedded default (SQLite and Chroma on disk), a
store where 100 other users hold a job of 100 chunks each, and one user holds one job
of 100 chunks. It times that user's searches (p50 and p95 of each mode over the same
queries), then gives them 999 more jobs (1,000 x 100 chunks in all) and times the same
searches again. The ratio of the two p50s is the figure: 1.0 is flat.

Chunks are written as ragcast's index stage writes them (job store rows, vectors in the
model's shared collection under the user's tenant, lexical rows); texts are drawn from a
Zipf vocabulary so common and rare words occur as in speech, and queries are embedded by
the real model. Vectors have the default model's 512 dimensions and the structure of
embeddings: a recording's chunks lie near the recording's own point, and recordings near
one of a few hundred subjects. (Random unit vectors have no neighbours worth the name: in
512 dimensions all of them are about as far from a query, and HNSW at ``ef_search`` 1,000
found half of the true ten nearest among 110,000.)

After each round of timings the dense side's recall is checked: for a sample of query
vectors near the user's subjects, recall@10 of the vector store's answer (its index)
against an exact ranking of the user's vectors in numpy; beside it, the same for the
model's embeddings of the queries, which lie near no synthetic chunk.

Options: ``--jobs``, ``--chunks``, ``--others``, ``--other-jobs``, ``--queries``, and
``--backend postgres`` for the distributed stores (PostgreSQL job store and lexical
index, pgvector), on a private PostgreSQL from the ``pgserver`` package.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select

from ragcast.context import Context
from ragcast.providers.embedders.base import EmbeddingSpec
from ragcast.providers.vectorstores.base import VectorRecord
from ragcast.retrieval.filters import Filters
from ragcast.retrieval.layout import collection_name, tenant
from ragcast.retrieval.lexical import lexical_index
from ragcast.retrieval.search import DEPTH, Query, search
from ragcast.runner.boot import build_context
from ragcast.settings import Settings
from ragcast.store.models import Chunk, Item, Job, User

SPEC = EmbeddingSpec("local", 512, {"model": "use-multilingual-v3"})
WORDS_PER_CHUNK = 60
VOCABULARY = 20000
MODES = ("hybrid", "dense", "lexical")
FLUSH = 5000
SUBJECTS = 256
PROBES = 100  # query vectors for the recall check


class Corpus:
    """Synthetic speech-like text: pseudo-words with Zipf frequencies."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        syllables = ["ka", "to", "ri", "mu", "sen", "lo", "pa", "vi", "dor", "el", "na", "shi"]
        words: list[str] = []
        seen: set[str] = set()
        while len(words) < VOCABULARY:
            n = int(self.rng.integers(1, 5))
            w = "".join(syllables[int(i)] for i in self.rng.integers(0, len(syllables), n))
            if w not in seen:
                seen.add(w)
                words.append(w)
        self.words = words
        ranks = np.arange(1, VOCABULARY + 1, dtype=np.float64)
        self.p = (1 / ranks) / (1 / ranks).sum()
        self.subjects = unit(self.rng.standard_normal((SUBJECTS, SPEC.dimensions)))

    def text(self) -> str:
        """One chunk's text."""
        picks = self.rng.choice(VOCABULARY, size=WORDS_PER_CHUNK, p=self.p)
        return " ".join(self.words[int(i)] for i in picks)

    def query(self) -> str:
        """A query of five words: two common, three from the middle of the vocabulary."""
        common = self.rng.integers(0, 50, 2)
        middle = self.rng.integers(200, 5000, 3)
        return " ".join(self.words[int(i)] for i in [*common, *middle])

    def near_subject(self, n: int = 1) -> np.ndarray:
        """``n`` points near subjects: recordings' own points, or queries."""
        subjects = self.subjects[self.rng.integers(0, SUBJECTS, n)]
        return unit(subjects + 0.8 * unit(self.rng.standard_normal(subjects.shape)))

    def vectors(self, n: int) -> np.ndarray:
        """One recording's ``n`` chunk vectors, near its own point."""
        own = self.near_subject()
        noise = unit(self.rng.standard_normal((n, SPEC.dimensions)))
        return unit(own + 0.7 * noise).astype(np.float32)


def unit(v: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1."""
    scaled: np.ndarray = v / np.linalg.norm(v, axis=-1, keepdims=True)
    return scaled


def add_jobs(
    ctx: Context,
    corpus: Corpus,
    user_id: int,
    first: int,
    count: int,
    chunks: int,
    keep: dict[str, np.ndarray] | None = None,
) -> None:
    """``count`` completed jobs of ``chunks`` chunks each for ``user_id``, indexed; their
    vectors by record id in ``keep`` too, where given."""
    store_id = "chroma" if ctx.settings.database_url is None else "pgvector"
    store = ctx.providers.vector_store(store_id)
    collection = collection_name(SPEC)
    store.ensure_collection(collection, SPEC.dimensions)
    pending: list[VectorRecord] = []
    for n in range(first, first + count):
        with ctx.db.session() as s:
            job = Job(
                job_id=f"job-{n}",
                user_id=user_id,
                request_hash="bench",
                request={"embedding_model": {"id": "local", "model": "use-multilingual-v3"}},
                platform="documents",
                input_method="upload",
                embedding_model="local",
                dimensions=SPEC.dimensions,
                vector_db=store_id,
                collection=collection,
                status="completed",
                completed_items=1,
                total_content=1,
            )
            item = Item(
                index=0,
                content_id=f"upload-u{user_id}-{n}",
                source_type="upload",
                source_ref=f"doc-{n}",
                title=f"doc-{n}.txt",
                status="completed",
                stage="indexed",
                language="en",
            )
            job.items.append(item)
            s.add(job)
            s.flush()
            texts = [corpus.text() for _ in range(chunks)]
            rows = [
                {
                    "item_id": item.id,
                    "chunk_index": i,
                    "text": t,
                    "start_s": i * 30.0,
                    "end_s": i * 30.0 + 30,
                    "token_count": WORDS_PER_CHUNK,
                }
                for i, t in enumerate(texts)
            ]
            s.execute(insert(Chunk), rows)
            ids = list(
                s.scalars(
                    select(Chunk.id).where(Chunk.item_id == item.id).order_by(Chunk.chunk_index)
                )
            )
            lexical_index(s).add(s, user_id, list(zip(ids, texts, strict=True)))
            meta = {"job_id": job.job_id, "content_id": item.content_id, "platform": "documents"}
            records = [
                VectorRecord(
                    id=f"{item.content_id}:{i}",
                    vector=vec,
                    text=t,
                    metadata={**meta, "chunk_index": i, "language": "en"},
                )
                for i, (t, vec) in enumerate(zip(texts, corpus.vectors(chunks), strict=True))
            ]
            if keep is not None:
                keep.update((r.id, np.asarray(r.vector)) for r in records)
            pending.extend(records)
            s.commit()
        if len(pending) >= FLUSH or n == first + count - 1:
            # Chroma pays per call: several jobs' vectors go in one upsert.
            store.upsert(collection, pending, tenant=tenant(user_id))
            pending.clear()


def users(ctx: Context, n: int, prefix: str) -> list[int]:
    """``n`` new users' ids."""
    with ctx.db.session() as s:
        made = [User(name=f"{prefix}-{i}") for i in range(n)]
        s.add_all(made)
        s.commit()
        return [u.id for u in made]


def timed(ctx: Context, user_id: int, queries: list[str]) -> dict[str, list[float]]:
    """Milliseconds per search in each mode, after an unmeasured round; the modes take
    turns on each query, so that whatever else the machine does weighs on all alike."""
    for q in queries[:3]:
        for mode in MODES:
            search(ctx, user_id, Query(text=q, mode=mode))  # type: ignore[arg-type]
    out: dict[str, list[float]] = {m: [] for m in MODES}
    for q in queries:
        for mode in MODES:
            t0 = time.perf_counter()
            search(ctx, user_id, Query(text=q, mode=mode, filters=Filters()))  # type: ignore[arg-type]
            out[mode].append((time.perf_counter() - t0) * 1000)
    return out


def recall(ctx: Context, user_id: int, kept: dict[str, np.ndarray], probes: np.ndarray) -> float:
    """Mean recall@10 of the vector store's nearest records of the user (asked for
    ``DEPTH`` as the search asks) against the exact ten, over ``probes``."""
    store_id = "chroma" if ctx.settings.database_url is None else "pgvector"
    store = ctx.providers.vector_store(store_id)
    ids = list(kept)
    matrix = np.stack([kept[i] for i in ids])
    found = []
    for v in probes:
        hits = store.query(collection_name(SPEC), v.tolist(), DEPTH, tenant=tenant(user_id))
        exact = {ids[int(i)] for i in np.argsort(-(matrix @ v))[:10]}
        found.append(len({h.id for h in hits[:10]} & exact) / 10)
    return float(np.mean(found))


def progress(label: str, steps: Iterator[int]) -> None:
    """Print a running count on one line."""
    for n in steps:
        print(f"\r{label}: {n}", end="", flush=True)
    print()


def main(argv: list[str] | None = None) -> None:
    """Build the store, time the searches at one job and at many, print the ratios."""
    parser = argparse.ArgumentParser(prog="python -m bench tenants")
    parser.add_argument("--jobs", type=int, default=1000, help="the user's jobs in the end")
    parser.add_argument("--chunks", type=int, default=100, help="chunks per job")
    parser.add_argument("--others", type=int, default=100, help="other users")
    parser.add_argument("--other-jobs", type=int, default=1, help="jobs per other user")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument(
        "--backend",
        choices=("embedded", "postgres"),
        default="embedded",
        help="embedded: SQLite + Chroma; postgres: PostgreSQL (job store, lexical index) "
        "+ pgvector, on a private server from the pgserver package",
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ragcast-tenants-"))
    closers: list[Callable[[], object]] = []
    try:
        settings = Settings(data_dir=work / "data", preload_models=False)
        if args.backend == "postgres":
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
                import pgserver

            server = pgserver.get_server(work / "pg", cleanup_mode="stop")
            closers.append(server.cleanup)
            uri = server.get_uri()
            settings = Settings(
                data_dir=work / "data", preload_models=False, database_url=uri, pgvector_dsn=uri
            )
        ctx = build_context(settings)
        corpus = Corpus()
        ctx.providers.embedder(SPEC).embed_query("warm up")
        others = users(ctx, args.others, "other")
        t0 = time.perf_counter()
        for n, other in enumerate(others):
            add_jobs(ctx, corpus, other, 0, args.other_jobs, args.chunks)
            print(f"\rother users filled: {n + 1}/{len(others)}", end="", flush=True)
        (me,) = users(ctx, 1, "me")
        kept: dict[str, np.ndarray] = {}
        add_jobs(ctx, corpus, me, 0, 1, args.chunks, kept)
        print(f"\nbuilt in {time.perf_counter() - t0:.0f} s")
        queries = [corpus.query() for _ in range(args.queries)]
        probes = corpus.near_subject(PROBES)
        embedder = ctx.providers.embedder(SPEC)
        embedded = unit(np.stack([embedder.embed_query(q) for q in queries[:PROBES]]))
        before = timed(ctx, me, queries)
        recalls = [(recall(ctx, me, kept, probes), recall(ctx, me, kept, embedded))]
        t0 = time.perf_counter()
        for n in range(1, args.jobs, 100):
            add_jobs(ctx, corpus, me, n, min(100, args.jobs - n), args.chunks, kept)
            print(f"\rthe user's jobs: {min(n + 100, args.jobs)}/{args.jobs}", end="", flush=True)
        print(f"\ngrown in {time.perf_counter() - t0:.0f} s")
        after = timed(ctx, me, queries)
        recalls.append((recall(ctx, me, kept, probes), recall(ctx, me, kept, embedded)))
        others_chunks = args.others * args.other_jobs * args.chunks
        where = "SQLite + Chroma" if args.backend == "embedded" else "PostgreSQL + pgvector"
        print(
            f"search of one user among {args.others} others ({others_chunks} chunks), "
            f"{len(queries)} queries, {where}"
        )
        grown = f"{args.jobs} jobs p50"
        print(f"{'mode':10}{'1 job p50':>12}{'p95':>9}{grown:>16}{'p95':>9}{'ratio':>8}")
        for m in MODES:
            a, b = before[m], after[m]
            p50a, p50b = statistics.median(a), statistics.median(b)
            p95a, p95b = np.percentile(a, 95), np.percentile(b, 95)
            print(f"{m:10}{p50a:10.1f}ms{p95a:7.1f}ms{p50b:14.1f}ms{p95b:7.1f}ms{p50b / p50a:8.2f}")
        for label, n, (near, model) in zip(
            ("1 job", grown[:-4]), (1, args.jobs), recalls, strict=True
        ):
            print(
                f"dense recall@10 at {label} ({n * args.chunks} vectors), against an exact "
                f"ranking: {near:.3f} for {PROBES} queries near the user's subjects, "
                f"{model:.3f} for the model's embeddings of {len(embedded)} of the queries"
            )
        ctx.db.dispose()
    finally:
        for close in closers:
            close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
