"""``ragcast items``: a job's items a page at a time; a finished job's table shows a page."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ragcast.cli import SHOWN_ITEMS, _finish
from ragcast.cli import app as cli_app
from tests.api.seed import seed_job
from tests.client.conftest import LiveServer


def test_items_lists_one_page_and_filters(cli_env: dict[str, str], live_server: LiveServer) -> None:
    seed_job(live_server.app.state.ctx, "alice", "cli-many", 230)
    remote = ["--server", live_server.url, "--api-key", live_server.key]
    run = CliRunner().invoke
    page = run(cli_app, ["items", "cli-many", "--limit", "5", "--offset", "10", "--json", *remote])
    assert page.exit_code == 0, page.output
    body = json.loads(page.stdout)
    assert [i["index"] for i in body["items"]] == [10, 11, 12, 13, 14] and body["total"] == 230
    table = run(cli_app, ["items", "cli-many", "--status", "failed", *remote], env=cli_env)
    assert table.exit_code == 0, table.output
    assert "items 1-46 of 46" in table.stdout and "unreadable" in table.stdout
    bad = run(cli_app, ["items", "cli-many", "--limit", "0", *remote], env=cli_env)
    assert bad.exit_code == 1 and "limit" in bad.stderr


def test_a_finished_jobs_table_shows_a_page_and_json_every_item(
    live_server: LiveServer, capsys: object
) -> None:
    seed_job(live_server.app.state.ctx, "alice", "cli-done", SHOWN_ITEMS + 30)
    with live_server.client() as client:
        status = client.status("cli-done")
        assert _finish(client, "cli-done", status, as_json=True) == 0
        out = capsys.readouterr().out  # type: ignore[attr-defined]
        assert len(json.loads(out)["items"]) == SHOWN_ITEMS + 30
        assert _finish(client, "cli-done", status, as_json=False) == 0
        out = capsys.readouterr().out  # type: ignore[attr-defined]
        assert f"{SHOWN_ITEMS} of {SHOWN_ITEMS + 30} items shown" in out
        assert f"ragcast items cli-done --offset {SHOWN_ITEMS}" in out
