"""Retrieval quality on ragcast's evaluation set: recall@1 and MRR@5 per query group.

``python -m bench retrieval`` indexes the set in ``bench/data/retrieval`` (24 written texts
in ten languages and the ten shared recordings, transcribed) through a real ragcast
server, twice: with the default ``local`` model (USE multilingual v3) and with
all-MiniLM-L6-v2, the previous default. It then searches every query in each mode and
prints, per group (exact terms, English paraphrases, same-language and cross-language
queries), the share of queries whose document comes first (recall@1) and the mean
reciprocal rank of the document within the first five distinct documents (MRR@5).

Rows: MiniLM dense (the previous search), USE dense, lexical, hybrid by convex fusion (the
default, then other weights), by convex fusion normalised by the best BM25 (TM2C2), by
reciprocal rank fusion, MiniLM hybrid, and, when ``RAGCAST_RERANKER`` names a
cross-encoder, hybrid reranked. Ranks are by document: chunks of a document after its
first are skipped.

Options: ``--keep DIR`` keeps the indexed data dir (and reuses it when it exists).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from bench.pipeline import Ragcast
from ragcast.retrieval.fusion import ALPHA, FLOOR
from ragcast.retrieval.search import Hit, Query, search
from ragcast.runner.boot import build_context
from ragcast.settings import Settings
from ragcast.store.models import Item, Job

HERE = Path(__file__).parent
SET = HERE / "data" / "retrieval"
RECORDINGS = HERE.parent.parent / "shared" / "data"
GROUPS = ("exact", "paraphrase", "same_language", "cross_language")
JOBS = {"use": {"id": "local"}, "minilm": {"id": "local", "model": "all-MiniLM-L6-v2"}}


def corpus() -> list[Path]:
    """The written texts and the recordings."""
    with (RECORDINGS / "manifest.csv").open(newline="") as f:
        clips = [RECORDINGS / row["file"] for row in csv.DictReader(f)]
    return sorted((SET / "docs").glob("*.txt")) + clips


def queries() -> list[dict[str, str]]:
    """The evaluation's queries."""
    lines = (SET / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def index(data: Path) -> None:
    """Index the corpus through a ragcast server: one job per embedding model."""
    server = Ragcast(data.parent, "base", data_dir=data)
    try:
        docs = server.upload(corpus())
        for name, model in JOBS.items():
            server.process(f"eval-{name}", docs, model, chunk_size=128, overlap=16)
    finally:
        server.close()


def documents(data: Path) -> dict[str, dict[str, str]]:
    """Per job: content id -> document id (a text's name without ``.txt``, a clip's file)."""
    ctx = build_context(Settings(data_dir=data))
    out: dict[str, dict[str, str]] = {}
    with ctx.db.session() as s:
        for job in s.scalars(select(Job)):
            items = s.scalars(select(Item).where(Item.job_pk == job.id))
            out[job.job_id] = {
                i.content_id: (i.title or "").removesuffix(".txt")
                for i in items
                if i.status == "completed"
            }
    ctx.db.dispose()
    return out


def rank_of(hits: list[Hit], docs: dict[str, str], expect: str) -> int | None:
    """1-based rank of ``expect`` among the distinct documents of ``hits``."""
    seen: list[str] = []
    for hit in hits:
        doc = docs.get(str(hit.metadata.get("content_id")), "?")
        if doc not in seen:
            seen.append(doc)
        if doc == expect:
            return len(seen)
    return None


def evaluate(
    run: Callable[[str], list[Hit]], docs: dict[str, str], qs: list[dict[str, str]]
) -> dict[str, tuple[float, float]]:
    """Per group: (recall@1, MRR@5)."""
    ranks: dict[str, list[int | None]] = defaultdict(list)
    for q in qs:
        ranks[q["group"]].append(rank_of(run(q["query"]), docs, q["expect"]))
    out = {}
    for group, rs in ranks.items():
        r1 = sum(1 for r in rs if r == 1) / len(rs)
        mrr = sum(1 / r for r in rs if r is not None and r <= 5) / len(rs)
        out[group] = (r1, mrr)
    return out


def main(argv: list[str] | None = None) -> None:
    """Index the set, search every query in every mode, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench retrieval")
    parser.add_argument("--keep", type=Path, help="data dir to keep (reused when present)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ragcast-retrieval-"))
    data = args.keep or work / "data"
    try:
        if not (data / "ragcast.db").exists():
            index(data)
        docs = documents(data)
        report(data, docs, queries())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(data: Path, docs: dict[str, dict[str, str]], qs: list[dict[str, str]]) -> None:
    """Print recall@1 / MRR@5 per group for each way of searching."""
    ctx = build_context(Settings(data_dir=data))
    with ctx.db.session() as s:
        user = s.scalars(select(Job.user_id)).first()
    assert user is not None

    def runner(job: str, **kw: object) -> Callable[[str], list[Hit]]:
        fusion = kw.pop("fusion", "convex")
        alpha = float(kw.pop("alpha", ALPHA))  # type: ignore[arg-type]

        def run(text: str) -> list[Hit]:
            from ragcast.retrieval.filters import Filters

            q = Query(text=text, top_k=20, filters=Filters(job_id=job), **kw)  # type: ignore[arg-type]
            return search(ctx, user, q, fusion=fusion, alpha=alpha)  # type: ignore[arg-type]

        return run

    rows: list[tuple[str, str, dict[str, object]]] = [
        ("MiniLM dense (previous)", "eval-minilm", {"mode": "dense"}),
        ("USE dense", "eval-use", {"mode": "dense"}),
        ("lexical (BM25)", "eval-use", {"mode": "lexical"}),
        (f"hybrid (default: a={ALPHA})", "eval-use", {"mode": "hybrid"}),
    ]
    rows += [
        (f"hybrid convex a={a}", "eval-use", {"mode": "hybrid", "alpha": a})
        for a in (0.3, 0.4, 0.6, 0.7)
        if a != ALPHA
    ]
    rows += [
        ("hybrid convex-max (TM2C2)", "eval-use", {"mode": "hybrid", "fusion": "convex-max"}),
        ("hybrid RRF k=60", "eval-use", {"mode": "hybrid", "fusion": "rrf"}),
        ("MiniLM hybrid", "eval-minilm", {"mode": "hybrid"}),
    ]
    if ctx.settings.reranker:
        rows.append(("hybrid + rerank", "eval-use", {"mode": "hybrid", "rerank": True}))
    print(
        f"{len(qs)} queries over {len(docs['eval-use'])} documents; "
        f"default alpha={ALPHA}, lexical floor={FLOOR}"
    )
    head = "".join(f"{g:>22}" for g in GROUPS)
    print(f"{'':30}{head}")
    print(f"{'':30}" + "".join(f"{'R@1   MRR@5':>22}" for _ in GROUPS))
    for label, job, kw in rows:
        scores = evaluate(runner(job, **kw), docs[job], qs)
        cells = "".join(f"{scores[g][0]:>15.2f}{scores[g][1]:>7.2f}" for g in GROUPS)
        print(f"{label:30}{cells}", flush=True)
    ctx.db.dispose()


if __name__ == "__main__":
    main()
