"""``GET /job/{job_id}/ticket``: a fresh ticketed socket URL for jobs started elsewhere."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from starlette.testclient import WebSocketDenialResponse

from tests.conftest import PREFIX, Api


def test_a_ticket_opens_the_jobs_socket_for_its_user_only(api: Api, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("The tide tables were printed on blue paper every spring.")
    assert api.submit("t-1", [api.upload(notes)]).status_code == 200
    api.wait("t-1")

    r = api.client.get(f"{PREFIX}/job/t-1/ticket", headers=api.h())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["job_id"] == "t-1" and body["expires_in"] == api.settings.ws_ticket_ttl_s
    url = urlsplit(body["websocket_url"])
    assert url.scheme == "ws" and url.path == f"{PREFIX}/ws/bulk-processing/t-1"
    assert url.query.startswith("token=")
    assert "X-RateLimit-Remaining" in r.headers

    with api.client.websocket_connect(f"{url.path}?{url.query}") as ws:
        assert ws.receive_json()["type"] == "completed"

    # The ticket names its job: it opens no other.
    assert api.submit("t-2", [api.upload(notes)]).status_code == 200
    with pytest.raises(WebSocketDenialResponse) as info:
        with api.client.websocket_connect(f"{PREFIX}/ws/bulk-processing/t-2?{url.query}"):
            pass
    assert info.value.status_code == 401

    # Another user's job is as absent as a missing one; no key, no ticket.
    assert api.client.get(f"{PREFIX}/job/t-1/ticket", headers=api.h("bob")).status_code == 404
    assert api.client.get(f"{PREFIX}/job/nope/ticket", headers=api.h()).status_code == 404
    missing = api.client.get(f"{PREFIX}/job/t-1/ticket")
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
