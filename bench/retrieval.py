"""Retrieval quality on ragcast's evaluation set: recall@1 and MRR@5 per query group.

``python -m bench retrieval`` indexes the set in ``bench/data/retrieval`` (24 written texts
in ten languages and the ten shared recordings in five, transcribed) through a real ragcast
server, once per ``local`` model: multilingual-e5-small, USE multilingual v3 and
all-MiniLM-L6-v2. It then searches every query in each mode and prints, per group (exact
terms, English paraphrases, same-language and cross-language queries), the share of
queries whose document comes first (recall@1) and the mean reciprocal rank of the document
within the first five distinct documents (MRR@5), then the same per language of the
recordings (``../shared/data``).

Rows: dense and hybrid (convex fusion, the default) for each model, lexical, and for the
server's default model other fusion weights, convex fusion normalised by the best BM25
(TM2C2), reciprocal rank fusion and, when ``RAGCAST_RERANKER`` names a cross-encoder,
hybrid reranked. Ranks are by document: chunks of a document after its first are skipped.

Options: ``--keep DIR`` keeps the indexed data dir (and reuses it when it exists; a model
whose job is missing there is indexed then).
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
JOBS = {
    "e5": {"id": "local", "model": "multilingual-e5-small"},
    "use": {"id": "local", "model": "use-multilingual-v3"},
    "minilm": {"id": "local", "model": "all-MiniLM-L6-v2"},
}
#: the job of each model and how its rows are labelled
LABELS = {"eval-e5": "e5-small", "eval-use": "USE", "eval-minilm": "MiniLM"}


def corpus() -> list[Path]:
    """The written texts and the recordings."""
    with (RECORDINGS / "manifest.csv").open(newline="") as f:
        clips = [RECORDINGS / row["file"] for row in csv.DictReader(f)]
    return sorted((SET / "docs").glob("*.txt")) + clips


def languages() -> dict[str, str]:
    """Recording file -> its language (the manifest's)."""
    with (RECORDINGS / "manifest.csv").open(newline="") as f:
        return {row["file"]: row["language"] for row in csv.DictReader(f)}


def queries() -> list[dict[str, str]]:
    """The evaluation's queries."""
    lines = (SET / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def index(data: Path, names: list[str]) -> None:
    """Index the corpus through a ragcast server: one job per embedding model."""
    server = Ragcast(data.parent, "base", data_dir=data)
    try:
        docs = server.upload(corpus())
        for name in names:
            server.process(f"eval-{name}", docs, JOBS[name], chunk_size=128, overlap=16)
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
    run: Callable[[str], list[Hit]],
    docs: dict[str, str],
    qs: list[dict[str, str]],
    key: Callable[[dict[str, str]], str | None] = lambda q: q["group"],
) -> dict[str, tuple[float, float]]:
    """Per group (or other ``key``; queries it maps to None are skipped): (recall@1, MRR@5)."""
    ranks: dict[str, list[int | None]] = defaultdict(list)
    for q in qs:
        group = key(q)
        if group is not None:
            ranks[group].append(rank_of(run(q["query"]), docs, q["expect"]))
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
        have = documents(data) if (data / "ragcast.db").exists() else {}
        missing = [name for name in JOBS if f"eval-{name}" not in have]
        if missing:
            index(data, missing)
        docs = documents(data)
        report(data, docs, queries())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(data: Path, docs: dict[str, dict[str, str]], qs: list[dict[str, str]]) -> None:
    """Print recall@1 / MRR@5 per group for each way of searching, then per recording language."""
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

    default = "eval-e5" if "e5" in ctx.settings.local_embedding_model else "eval-use"
    name = LABELS[default]
    rows: list[tuple[str, str, dict[str, object]]] = [
        *((f"{LABELS[j]} dense", j, {"mode": "dense"}) for j in LABELS),
        ("lexical (BM25)", default, {"mode": "lexical"}),
        *((f"{LABELS[j]} hybrid (a={ALPHA})", j, {"mode": "hybrid"}) for j in LABELS),
    ]
    rows += [
        (f"{name} hybrid convex a={a}", default, {"mode": "hybrid", "alpha": a})
        for a in (0.3, 0.4, 0.6, 0.7)
        if a != ALPHA
    ]
    rows += [
        (f"{name} hybrid TM2C2", default, {"mode": "hybrid", "fusion": "convex-max"}),
        (f"{name} hybrid RRF k=60", default, {"mode": "hybrid", "fusion": "rrf"}),
    ]
    if ctx.settings.reranker:
        rows.append((f"{name} hybrid + rerank", default, {"mode": "hybrid", "rerank": True}))
    print(
        f"{len(qs)} queries over {len(docs[default])} documents; default model {name}, "
        f"alpha={ALPHA}, lexical floor={FLOOR}"
    )
    table(rows, runner, docs, qs, GROUPS, lambda q: q["group"])

    langs = languages()
    spoken = sorted(set(langs.values()), key=lambda lang: (lang != "en", lang))
    per_lang = [r for r in rows if "dense" in r[0] or "(a=" in r[0]]
    n = defaultdict(int, {lang: sum(langs.get(q["expect"]) == lang for q in qs) for lang in spoken})
    print(
        "\nby the language of the recording (queries: "
        + ", ".join(f"{lang} {n[lang]}" for lang in spoken)
        + ")"
    )
    table(per_lang, runner, docs, qs, tuple(spoken), lambda q: langs.get(q["expect"]))
    ctx.db.dispose()


def table(
    rows: list[tuple[str, str, dict[str, object]]],
    runner: Callable[..., Callable[[str], list[Hit]]],
    docs: dict[str, dict[str, str]],
    qs: list[dict[str, str]],
    columns: tuple[str, ...],
    key: Callable[[dict[str, str]], str | None],
) -> None:
    """One line per row: recall@1 and MRR@5 in each column."""
    width = 22 if len(columns) <= 4 else 14
    print(f"{'':30}" + "".join(f"{c:>{width}}" for c in columns))
    print(f"{'':30}" + "".join(f"{'R@1  MRR@5':>{width}}" for _ in columns))
    for label, job, kw in rows:
        scores = evaluate(runner(job, **kw), docs[job], qs, key)
        cells = "".join(
            f"{scores[c][0]:>{width - 6}.2f}{scores[c][1]:>6.2f}" if c in scores else " " * width
            for c in columns
        )
        print(f"{label:30}{cells}", flush=True)


if __name__ == "__main__":
    main()
