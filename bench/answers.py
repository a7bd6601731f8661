"""Answer quality of ``POST /ask`` on the shared recordings, per answer mode.

``python -m bench answers`` indexes the ten recordings of ``../shared/data`` (English,
German, Chinese, Japanese, Swedish) through a real ragcast server and asks the questions
of ``bench/data/answers.jsonl``: each names the recording that answers it and words a
right answer contains (several are asked in another language than the recording's), and
some ask what no recording says. It prints, per mode:

- right recording first: the first citation is the recording that answers;
- fact in answer: the answer holds every expected word (case-folded);
- declined: an unanswerable question is answered ``answered: false``, citing nothing;
- latency p50 of one answer over HTTP.

It then prints each question's best search score, answerable and not, the figures the
relevance floor (``ragcast.retrieval.answers.RELEVANT``) was set from. Extractive mode
always runs; generative runs too when ``RAGCAST_LLM_BASE_URL`` names an OpenAI-compatible
server (the server started here inherits the environment).

Options: ``--keep DIR`` keeps the indexed data dir (and reuses it when it exists).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.pipeline import Ragcast
from bench.retrieval import RECORDINGS, languages
from ragcast.retrieval.answers import RELEVANT
from ragcast.text import fold_chinese

HERE = Path(__file__).parent
QUESTIONS = HERE / "data" / "answers.jsonl"
JOB = "answers"


def questions() -> list[dict[str, Any]]:
    """The bench's questions."""
    lines = QUESTIONS.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def ask(server: Ragcast, q: dict[str, Any], mode: str) -> tuple[dict[str, Any], float]:
    """One answer and the seconds it took."""
    started = time.perf_counter()
    r = server.http.post("/ask", json={"query": q["query"], "mode": mode, "job_id": JOB})
    took = time.perf_counter() - started
    return r.raise_for_status().json(), took


def grade(server: Ragcast, qs: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    """The mode's figures over every question; prints the misses."""
    first = facts = declined = 0
    answerable = [q for q in qs if q["expect"]]
    unanswerable = [q for q in qs if not q["expect"]]
    took: list[float] = []
    for q in qs:
        body, seconds = ask(server, q, mode)
        took.append(seconds)
        cited = [c["title"] for c in body["citations"]]
        if not q["expect"]:
            ok = not body["answered"] and not cited
            declined += ok
            if not ok:
                print(f"  {mode} {q['id']} not declined: {body['answer'][:100]!r} {cited}")
            continue
        right = bool(cited) and cited[0] == q["expect"]
        said = fold_chinese(body["answer"]).casefold()
        holds = all(fold_chinese(f).casefold() in said for f in q["facts"])
        first += right
        facts += holds
        if not (right and holds):
            print(f"  {mode} {q['id']} {q['expect']}: {body['answer'][:100]!r} {cited[:3]}")
    return {
        "first": first / len(answerable),
        "facts": facts / len(answerable),
        "declined": declined / len(unanswerable),
        "n": (len(answerable), len(unanswerable)),
        "p50_ms": statistics.median(took) * 1000,
    }


def best_scores(server: Ragcast, qs: list[dict[str, Any]]) -> None:
    """Each question's best search score: the evidence the relevance floor rests on."""
    tops: dict[bool, list[tuple[float, str]]] = {True: [], False: []}
    for q in qs:
        r = server.http.post("/search", json={"query": q["query"], "top_k": 1, "job_id": JOB})
        hits = r.raise_for_status().json()["results"]
        tops[bool(q["expect"])].append((hits[0]["score"] if hits else 0.0, q["id"]))
    for answerable, label in ((True, "answerable"), (False, "unanswerable")):
        scores = sorted(tops[answerable])
        shown = ", ".join(f"{qid} {s:.3f}" for s, qid in scores)
        print(f"best search score, {label}: {shown}")
    low = min(s for s, _ in tops[True])
    high = max((s for s, _ in tops[False]), default=0.0)
    print(f"lowest answerable {low:.3f}, highest unanswerable {high:.3f}; floor {RELEVANT}")


def main(argv: list[str] | None = None) -> None:
    """Index the recordings, ask every question in every mode, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench answers")
    parser.add_argument("--keep", type=Path, help="data dir to keep (reused when present)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ragcast-answers-"))
    data = args.keep or work / "data"
    fresh = not (data / "ragcast.db").exists()
    os.environ.setdefault("RAGCAST_RATE_LIMIT_ASK", "100000/hour")
    server = Ragcast(work, "base", data_dir=data)
    try:
        if fresh:
            clips = sorted(RECORDINGS / name for name in languages())
            server.process(JOB, server.upload(clips), chunk_size=128, overlap=16)
        qs = questions()
        modes = ["extractive"]
        if os.environ.get("RAGCAST_LLM_BASE_URL"):
            modes.append("generative")
        rows = {mode: grade(server, qs, mode) for mode in modes}
        best_scores(server, qs)
        n_yes, n_no = rows["extractive"]["n"]
        print(f"\n{n_yes} answerable and {n_no} unanswerable questions, floor {RELEVANT}")
        print(f"{'mode':<11} {'right first':>11} {'fact':>6} {'declined':>9} {'p50 ms':>7}")
        for mode, row in rows.items():
            print(
                f"{mode:<11} {row['first']:>11.0%} {row['facts']:>6.0%} "
                f"{row['declined']:>9.0%} {row['p50_ms']:>7.0f}"
            )
        if "generative" not in rows:
            print("generative: skipped (set RAGCAST_LLM_BASE_URL to an OpenAI-compatible server)")
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)
