"""What a hostile tester found, each reproduced against a real server over a real socket.

The server is uvicorn in a child process with its access log on, so what a ticket leaves
in the log is checked too; uploads go over raw sockets, so a refusal is seen to arrive
before the body is sent.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from typer.testing import CliRunner

from ragcast.auth import create_key
from ragcast.cli import app as cli_app
from ragcast.client import ApiError, Client
from ragcast.runner.boot import build_context
from ragcast.settings import Settings
from ragcast.store.models import ApiKey
from tests.conftest import PREFIX, job_body
from tests.distributed.cluster import free_port, wait_http


class Service:
    """``ragcast`` served by uvicorn in a child process, logging to a file."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.log_path = data_dir.parent / "server.log"
        self.env = {
            **os.environ,
            "RAGCAST_DATA_DIR": str(data_dir),
            "RAGCAST_WORKERS": "1",
            "RAGCAST_PRELOAD_MODELS": "false",
            "RAGCAST_MAX_UPLOAD_BYTES": str(1024 * 1024),
            **env,
        }
        ctx = build_context(Settings(data_dir=data_dir))
        self.keys: dict[str, str] = {}
        with ctx.db.session() as s:
            for name, admin in (("alice", False), ("bob", False), ("root", True)):
                self.keys[name], _ = create_key(s, name, admin=admin)
        ctx.db.dispose()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "ragcast.api.app:create_app",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "info",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_http(f"{self.url}/readyz", timeout=60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def h(self, user: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[user]}"}

    def client(self, user: str = "alice") -> httpx.Client:
        return httpx.Client(base_url=self.url + PREFIX, headers=self.h(user), timeout=60)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    srv = Service(tmp_path_factory.mktemp("security") / "data")
    yield srv
    srv.stop()


def raw_request(port: int, head: str, body_chunks: list[bytes] | None = None) -> tuple[int, bytes]:
    """Send ``head`` (and maybe some body) over a plain socket; the status and the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode("latin-1"))
        for chunk in body_chunks or []:
            try:
                sock.sendall(chunk)
            except OSError:
                break  # the server answered and closed: it read no further
        data = b""
        sock.settimeout(30)
        while b"\r\n\r\n" not in data:
            part = sock.recv(65536)
            if not part:
                break
            data += part
        head_end = data.index(b"\r\n\r\n")
        status = int(data.split(b" ", 2)[1])
        length = 0
        for line in data[:head_end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        rest = data[head_end + 4 :]
        while len(rest) < length:
            part = sock.recv(65536)
            if not part:
                break
            rest += part
        return status, rest


def upload_text(c: httpx.Client, name: str, text: str) -> str:
    r = c.post("/uploads", files={"file": (name, text.encode())})
    assert r.status_code == 200, r.text
    return str(r.json()["document_id"])


def wait_done(c: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body: dict[str, Any] = c.get(f"/job/{job_id}/status").json()
        if body.get("result") is not None:
            return body
        time.sleep(0.1)
    raise AssertionError(f"{job_id} did not finish")


def export(c: httpx.Client, job_id: str, fmt: str) -> bytes:
    export_id = c.post("/export", json={"job_id": job_id, "format": fmt}).json()["export_id"]
    for _ in range(300):
        if c.get(f"/export/{export_id}/status").json()["status"] == "completed":
            return c.get(f"/download/{export_id}").content
        time.sleep(0.1)
    raise AssertionError("export did not finish")


def test_csv_exports_defuse_formulas_in_text_and_file_names(service: Service) -> None:
    with service.client() as c:
        doc = upload_text(c, "=cmd|' calc'!A0.txt", '=HYPERLINK("http://x.example","hi")')
        assert c.post("/process", json=job_body("csv-1", [doc])).status_code == 200
        assert wait_done(c, "csv-1")["status"] == "completed"
        rows = list(csv.DictReader(io.StringIO(export(c, "csv-1", "csv").decode())))
    assert rows and rows[0]["text"].startswith("'=HYPERLINK")
    assert rows[0]["source"].startswith("'=cmd")


def test_an_unauthenticated_upload_is_refused_before_its_body(service: Service) -> None:
    uploads = service.data_dir / "uploads"
    before = set(uploads.iterdir())
    head = (
        f"POST {PREFIX}/uploads HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {2 * 1024**3}\r\n\r\n"
    )
    t0 = time.monotonic()
    status, body = raw_request(service.port, head)  # not one body byte is sent
    assert status == 401 and json.loads(body)["error"] == "unauthorized"
    assert time.monotonic() - t0 < 10
    assert set(uploads.iterdir()) == before


def test_an_upload_over_the_limit_is_refused_by_its_length_and_while_streaming(
    service: Service,
) -> None:
    uploads = service.data_dir / "uploads"
    before = set(uploads.iterdir())
    key = service.keys["alice"]
    head = (
        f"POST {PREFIX}/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {5 * 1024 * 1024}\r\n\r\n"
    )
    status, body = raw_request(service.port, head)
    assert status == 413 and json.loads(body)["error"] == "payload_too_large"
    # No length declared: chunked, and cut off at the limit while it streams.
    head = (
        f"POST {PREFIX}/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    part = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
    )
    block = b"word " * 20_000
    chunks = [b"%x\r\n%s\r\n" % (len(part), part)]
    chunks += [b"%x\r\n%s\r\n" % (len(block), block)] * 40  # 4 MB, over the 1 MB limit
    status, body = raw_request(service.port, head, chunks)
    assert status == 413 and json.loads(body)["error"] == "payload_too_large"
    time.sleep(0.5)
    assert set(uploads.iterdir()) == before  # no partial file left behind


def test_json_bodies_are_capped(service: Service) -> None:
    with service.client() as c:
        big = job_body("big", ["doc_x"])
        big["selected_content"] = ["x" * 100] * 50_000  # 5 MB
        r = c.post("/process", json=big)
        assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
        r = c.post("/search", content=b'{"query": "' + b"a" * (2 * 1024 * 1024) + b'"}')
        assert r.status_code == 413


def test_error_bodies_do_not_echo_large_input(service: Service) -> None:
    with service.client() as c:
        body = job_body("echo", ["d" * 100_000])
        r = c.post("/process", json=body)
    assert r.status_code == 400
    assert len(r.content) < 2000


def test_every_answer_says_nosniff(service: Service) -> None:
    for r in (
        httpx.get(f"{service.url}/healthz"),
        httpx.get(f"{service.url}{PREFIX}/jobs"),
        httpx.get(f"{service.url}{PREFIX}/jobs", headers=service.h()),
    ):
        assert r.headers["x-content-type-options"] == "nosniff"


async def _socket_messages(url: str) -> list[dict[str, Any]]:
    out = []
    async with websockets.connect(url) as ws:
        async for raw in ws:
            out.append(json.loads(raw))
    return out


def test_tickets_open_one_socket_die_with_their_key_and_stay_out_of_the_log(
    service: Service,
) -> None:
    ctx = build_context(Settings(data_dir=service.data_dir))
    with ctx.db.session() as s:
        temp_key, _ = create_key(s, "alice")
    headers = {"Authorization": f"Bearer {temp_key}"}
    with httpx.Client(base_url=service.url + PREFIX, headers=headers, timeout=60) as c:
        doc = upload_text(c, "note.txt", "The tide tables were printed on blue paper.")
        accepted = c.post("/process", json=job_body("tick-1", [doc])).json()
        wait_done(c, "tick-1")
        url = accepted["websocket_url"]
        token = url.split("token=")[1]
        assert asyncio.run(_socket_messages(url))[-1]["type"] == "completed"
        with pytest.raises(websockets.exceptions.InvalidStatus) as again:
            asyncio.run(_socket_messages(url))
        assert again.value.response.status_code == 401
        assert b"already used" in again.value.response.body
        fresh = c.get("/job/tick-1/ticket").json()["websocket_url"]
    with ctx.db.session() as s:
        from ragcast.auth import revoke_key

        revoke_key(s, temp_key)
    ctx.db.dispose()
    with pytest.raises(websockets.exceptions.InvalidStatus) as revoked:
        asyncio.run(_socket_messages(fresh))
    assert b"revoked or expired" in revoked.value.response.body
    log = service.log()
    assert "WebSocket" in log and token not in log and "token=[redacted]" in log
    assert "ERROR" not in log


def test_the_owner_deletes_a_job_with_its_vectors_exports_and_files(service: Service) -> None:
    with service.client() as c, service.client("bob") as bob:
        doc = upload_text(c, "cargo.txt", "Quinces and saffron came in by the morning boat.")
        assert c.post("/process", json=job_body("del-1", [doc])).status_code == 200
        wait_done(c, "del-1")
        earlier = set((service.data_dir / "exports").iterdir())
        export(c, "del-1", "json")
        exports = set((service.data_dir / "exports").iterdir()) - earlier
        assert exports
        hit = c.post("/search", json={"query": "saffron boat", "job_id": "del-1"}).json()
        assert hit["results"]
        assert bob.delete("/job/del-1").status_code == 404  # not bob's
        r = c.delete("/job/del-1")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["deleted_items"] == 1 and body["deleted_uploads"] == 1
        assert body["deleted_vector_contents"] == 1 and body["deleted_exports"] == 1
        assert c.get("/job/del-1/status").status_code == 404
        assert not [p for p in exports if p.exists()]
        hits = c.post("/search", json={"query": "saffron boat"}).json()["results"]
        assert all("saffron" not in h["text"] for h in hits)
        assert not list((service.data_dir / "uploads").glob(f"{doc}*"))


def test_unused_uploads_can_be_deleted_and_are_cleaned_up(service: Service) -> None:
    with service.client() as c, service.client("root") as root:
        used = upload_text(c, "used.txt", "A note that a job uses.")
        assert c.post("/process", json=job_body("keep-1", [used])).status_code == 200
        r = c.delete(f"/uploads/{used}")
        assert r.status_code == 409 and "keep-1" in r.json()["message"]
        spare = upload_text(c, "spare.txt", "A note nobody processes.")
        assert (
            service.h("bob")
            and httpx.delete(
                f"{service.url}{PREFIX}/uploads/{spare}", headers=service.h("bob")
            ).status_code
            == 404
        )
        with Client(service.url, service.keys["alice"]) as sdk:
            assert sdk.delete_upload(spare) == {"success": True, "document_id": spare}
            with pytest.raises(ApiError) as gone:
                sdk.delete_upload(spare)
            assert gone.value.status_code == 404
        orphan = upload_text(c, "orphan.txt", "Uploaded and forgotten.")
        wait_done(c, "keep-1")
        assert root.delete("/cleanup", params={"older_than_hours": 0}).status_code == 200
        files = {p.name.split(".")[0] for p in (service.data_dir / "uploads").iterdir()}
        assert orphan not in files


def test_expired_and_rotated_keys(service: Service, tmp_path: Path) -> None:
    ctx = build_context(Settings(data_dir=service.data_dir))
    with ctx.db.session() as s:
        short, row = create_key(s, "dave", expires_in=timedelta(seconds=1))
        short_id = row.id
    time.sleep(1.5)
    r = httpx.get(f"{service.url}{PREFIX}/jobs", headers={"Authorization": f"Bearer {short}"})
    assert r.status_code == 401 and "expired" in r.json()["message"]

    env = {"RAGCAST_DATA_DIR": str(service.data_dir)}
    made = CliRunner().invoke(
        cli_app, ["keys", "create", "--user", "erin", "--expires-in", "90d"], env=env
    )
    assert made.exit_code == 0, made.output
    old = made.stdout.strip().splitlines()[0]
    assert (
        httpx.get(
            f"{service.url}{PREFIX}/jobs", headers={"Authorization": f"Bearer {old}"}
        ).status_code
        == 200
    )
    rotated = CliRunner().invoke(cli_app, ["keys", "rotate", old[:11], "--grace", "0s"], env=env)
    assert rotated.exit_code == 0, rotated.output
    new = rotated.stdout.strip().splitlines()[0]
    assert new != old and new.startswith("rc_")
    assert (
        httpx.get(
            f"{service.url}{PREFIX}/jobs", headers={"Authorization": f"Bearer {new}"}
        ).status_code
        == 200
    )
    refused = httpx.get(f"{service.url}{PREFIX}/jobs", headers={"Authorization": f"Bearer {old}"})
    assert refused.status_code == 401 and "expired" in refused.json()["message"]
    bad = CliRunner().invoke(
        cli_app, ["keys", "create", "--user", "x", "--expires-in", "soon"], env=env
    )
    assert bad.exit_code == 2 and "duration" in bad.output

    # last_used_at is kept (written off the request's path, once a minute at most).
    deadline = time.monotonic() + 10
    used = None
    while time.monotonic() < deadline and used is None:
        with ctx.db.session() as s:
            used = s.get(
                ApiKey, s.query(ApiKey.id).filter(ApiKey.prefix == new[:11]).scalar()
            ).last_used_at
        time.sleep(0.2)
    assert used is not None
    listed = CliRunner().invoke(cli_app, ["keys", "list"], env=env)
    assert "Last used" in listed.output and "(expired)" in listed.output
    with ctx.db.session() as s:
        assert s.get(ApiKey, short_id).last_used_at is None  # never got in
    ctx.db.dispose()


def test_embedded_commands_reuse_one_local_key(tmp_path: Path) -> None:
    env = {"RAGCAST_DATA_DIR": str(tmp_path / "cli"), "RAGCAST_PRELOAD_MODELS": "false"}
    for _ in range(2):
        result = CliRunner().invoke(cli_app, ["search", "anything", "--json"], env=env)
        assert result.exit_code == 0, result.output
    ctx = build_context(Settings(data_dir=tmp_path / "cli"))
    with ctx.db.session() as s:
        assert s.query(ApiKey).count() == 1
    ctx.db.dispose()


def test_an_unreachable_embedding_provider_is_refused_at_submission(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from ragcast.api.app import create_app
    from tests.conftest import make_settings

    settings = make_settings(
        tmp_path, jina_api_key="jina_x", jina_base_url=f"http://127.0.0.1:{free_port()}"
    )
    app = create_app(settings)
    with app.state.ctx.db.session() as s:
        key, _ = create_key(s, "alice")
    with TestClient(app) as client:
        h = {"Authorization": f"Bearer {key}"}
        doc = client.post(
            f"{PREFIX}/uploads", files={"file": ("n.txt", b"hello there")}, headers=h
        ).json()["document_id"]
        r = client.post(
            f"{PREFIX}/process",
            json=job_body("far", [doc], embedding_model={"id": "jina-v4"}),
            headers=h,
        )
    assert r.status_code == 400
    assert r.json()["details"]["field"] == "embedding_model.id"
    assert "cannot be reached" in r.json()["details"]["issue"]
