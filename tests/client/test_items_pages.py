"""The SDKs page through a job's items: every item once, in order, a page at a time."""

from __future__ import annotations

import asyncio

import pytest

from ragcast.client import AsyncClient, NotFoundError, ValidationError
from tests.api.seed import ITEM_STATUSES, seed_job
from tests.client.conftest import LiveServer

ITEMS = 2345


def test_items_are_fetched_page_by_page(live_server: LiveServer) -> None:
    seed_job(live_server.app.state.ctx, "alice", "paged", ITEMS)
    failed = [n for n in range(ITEMS) if ITEM_STATUSES[n % len(ITEM_STATUSES)] == "failed"]
    with live_server.client() as client:
        first = client.items_page("paged")
        assert first["total"] == ITEMS and len(first["items"]) == 100
        assert first["next_after"] == 99 and first["offset"] == 0
        page = client.items_page("paged", limit=10, offset=2340)
        assert [i["index"] for i in page["items"]] == list(range(2340, ITEMS))
        assert page["next_after"] is None
        after = client.items_page("paged", limit=5, after=9)
        assert [i["index"] for i in after["items"]] == [10, 11, 12, 13, 14]

        everything = client.items("paged")
        assert everything["job_id"] == "paged" and everything["total"] == ITEMS
        assert [i["index"] for i in everything["items"]] == list(range(ITEMS))
        small = [i["index"] for i in client.iter_items("paged", page_size=300)]
        assert small == list(range(ITEMS))
        assert [i["index"] for i in client.iter_items("paged", status="failed")] == failed
        with pytest.raises(ValidationError) as too_big:
            client.items_page("paged", limit=1001)
        assert too_big.value.details is not None
        with pytest.raises(NotFoundError):
            client.items("nope")


def test_the_async_client_pages_the_same_way(live_server: LiveServer) -> None:
    seed_job(live_server.app.state.ctx, "alice", "apaged", 1500)

    async def run() -> None:
        async with AsyncClient(live_server.url, live_server.key) as client:
            page = await client.items_page("apaged", limit=7, status="pending")
            assert page["total"] == 300 and len(page["items"]) == 7
            indexes = [i["index"] async for i in client.iter_items("apaged", page_size=400)]
            assert indexes == list(range(1500))
            everything = await client.items("apaged", status="completed")
            assert everything["total"] == 600
            assert all(i["status"] == "completed" for i in everything["items"])

    asyncio.run(run())
