"""The dashboard shows a large job's items a page at a time, with a button for more."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.api.seed import seed_job
from tests.client.conftest import LiveServer


def test_a_large_jobs_items_load_a_page_at_a_time(page: Page, web_server: LiveServer) -> None:
    seed_job(web_server.app.state.ctx, "alice", "web-many", 230)
    page.goto(web_server.url + "/")
    page.fill("#key-input", web_server.key)
    page.get_by_role("button", name="Connect").click()
    card = page.locator('li.job[data-job-id="web-many"]')
    expect(card).to_be_visible()
    card.locator(".job-toggle").click()
    rows = card.locator("table.items tbody tr")
    expect(rows).to_have_count(100)
    more = card.get_by_role("button", name="More items (130 left)")
    expect(more).to_be_visible()
    more.click()
    expect(rows).to_have_count(200)
    card.get_by_role("button", name="More items (30 left)").click()
    expect(rows).to_have_count(230)
    expect(card.locator(".more-items")).to_be_hidden()
    expect(rows.last).to_contain_text("Document 229")
