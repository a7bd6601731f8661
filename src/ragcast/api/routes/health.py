"""``/healthz``, ``/readyz`` and Prometheus ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import func, select, text

from ragcast.context import Context
from ragcast.store.models import Item, Job

router = APIRouter(tags=["health"])


@router.get("/healthz", operation_id="healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", operation_id="readyz", responses={503: {"description": "Not ready"}})
def readyz(request: Request) -> JSONResponse:
    """The store answers and the workers run."""
    ctx: Context = request.app.state.ctx
    checks: dict[str, str] = {}
    try:
        with ctx.db.session() as s:
            s.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    runner = request.app.state.runner
    if not runner.embedded:
        checks["broker"] = "ok" if runner.broker_ok() else "unreachable"
    if request.app.state.run_workers:
        checks["workers"] = "ok" if request.app.state.runner_started else "stopped"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, 200 if ok else 503
    )


@router.get("/metrics", operation_id="metrics", response_class=PlainTextResponse)
def metrics(request: Request) -> PlainTextResponse:
    """Jobs by status and items by status and stage, in Prometheus text format."""
    ctx: Context = request.app.state.ctx
    lines = [
        "# HELP ragcast_jobs Jobs by status.",
        "# TYPE ragcast_jobs gauge",
    ]
    with ctx.db.session() as s:
        for status, n in s.execute(select(Job.status, func.count()).group_by(Job.status)):
            lines.append(f'ragcast_jobs{{status="{status}"}} {n}')
        lines += ["# HELP ragcast_items Items by status and stage.", "# TYPE ragcast_items gauge"]
        rows = s.execute(
            select(Item.status, Item.stage, func.count()).group_by(Item.status, Item.stage)
        )
        for status, stage, n in rows:
            lines.append(f'ragcast_items{{status="{status}",stage="{stage}"}} {n}')
    lines += [
        "# HELP ragcast_queue_depth Messages waiting per queue.",
        "# TYPE ragcast_queue_depth gauge",
    ]
    for queue, depth in request.app.state.runner.queue_depths().items():
        lines.append(f'ragcast_queue_depth{{queue="{queue}"}} {depth}')
    totals = ctx.metrics.stage_totals()
    for name, kind, help_text in (
        ("count", "counter", "Stage runs."),
        ("failed", "counter", "Stage runs that failed their item."),
        ("seconds", "counter", "Seconds spent in each stage (sum)."),
    ):
        metric = f"ragcast_stage_{name}_total" if name != "seconds" else "ragcast_stage_seconds_sum"
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {kind}"]
        for stage, row in sorted(totals.items()):
            lines.append(f'{metric}{{stage="{stage}"}} {row.get(name, 0.0)}')
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
