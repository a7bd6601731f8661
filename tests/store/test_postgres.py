"""The same models and migrations on a real PostgreSQL, with a whole job through them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Api, fresh_postgres

pytestmark = pytest.mark.service


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_postgres() as url:
        yield url


def test_a_job_runs_on_postgresql(
    api_factory: Callable[..., Api], pg_url: str, tmp_path: Path
) -> None:
    api = api_factory(database_url=pg_url)
    path = tmp_path / "notes.md"
    path.write_text("# Harbour\n\nThe ferry leaves at nine. It returns at six.")
    first = api.submit("pg-job", [api.upload(path)])
    assert first.status_code == 200
    assert api.submit("pg-job", [api.upload(path)]).status_code == 409
    status = api.wait("pg-job")
    assert status["status"] == "completed" and status["embeddings"] >= 1
    hits = api.client.post(
        "/api/public/bulk/search", json={"query": "when does the ferry leave"}, headers=api.h()
    ).json()["results"]
    assert "ferry" in hits[0]["text"]


def test_lexical_search_runs_on_postgresql_full_text(
    api_factory: Callable[..., Api], pg_url: str, tmp_path: Path
) -> None:
    api = api_factory(database_url=pg_url)
    texts = {
        "roast.txt": "Our head roaster, Ingrid Aamodt, drops the beans after the first crack.",
        "dark.txt": "A dark roast keeps the beans in the drum past the second crack.",
        "ash.txt": "桜島では毎日のように火山灰が降ります。住民は克灰袋に灰を集めます。",
    }
    docs = []
    for name, body in texts.items():
        (tmp_path / name).write_text(body, encoding="utf-8")
        docs.append(api.upload(tmp_path / name))
    assert api.submit("pg-lex", docs).status_code == 200
    assert api.wait("pg-lex")["status"] == "completed"

    def found(query: str, **extra: object) -> list[str]:
        body = {"query": query, "mode": "lexical", **extra}
        r = api.client.post("/api/public/bulk/search", json=body, headers=api.h())
        assert r.status_code == 200, r.text
        return [h["title"] for h in r.json()["results"]]

    assert found("Aamodt") == ["roast.txt"]
    assert found("beans crack")[0] in ("roast.txt", "dark.txt") and len(found("beans")) == 2
    assert found("火山灰") == ["ash.txt"]
    assert found("Aamodt", content_id="nope") == []
    r = api.client.post(
        "/api/public/bulk/search", json={"query": "Aamodt", "mode": "lexical"}, headers=api.h("bob")
    )
    assert r.json()["results"] == []
    hybrid = api.client.post(
        "/api/public/bulk/search", json={"query": "who is Aamodt"}, headers=api.h()
    ).json()["results"]
    assert hybrid[0]["title"] == "roast.txt"
    assert api.client.delete("/api/public/bulk/job/pg-lex", headers=api.h()).status_code == 200
    assert found("Aamodt") == []
