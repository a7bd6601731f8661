"""Resolve a channel job into items: list the channel, pick, skip what was done before."""

from __future__ import annotations

from sqlalchemy import select

from ragcast.context import Context
from ragcast.sources.platforms import content_id
from ragcast.sources.ytdlp import FetchConfig, Listed, list_channel
from ragcast.store.models import Item, Job

PAGE = 100


def _listing(ctx: Context, job: Job) -> tuple[list[Listed], str | None]:
    """The channel's entries: until every selected id is seen, or up to the item cap."""
    url = str(job.request.get("channel_url") or "")
    wanted = set(job.request.get("selected_content") or [])
    cap = ctx.settings.max_channel_items
    cfg = FetchConfig.from_settings(ctx.settings)
    listed: list[Listed] = []
    channel = None
    start = 0
    while True:
        page = list_channel(url, cfg, job.platform, start=start, count=PAGE)
        channel = channel or page.channel
        listed += page.items
        seen = {entry.id for entry in listed}
        if not page.has_more or (wanted and wanted <= seen) or (not wanted and len(listed) >= cap):
            return listed, channel
        start += PAGE


def resolve_channel(ctx: Context, job_pk: int) -> None:
    """Create the items of a channel job (network first, then one short transaction)."""
    with ctx.db.session() as s:
        job = s.get(Job, job_pk)
        if job is None or job.items:
            return
        listed, channel = _listing(ctx, job)
        selected = list(job.request.get("selected_content") or [])
        force = bool((job.request.get("settings") or {}).get("force"))
        done = set()
        if not force:
            done = set(
                s.scalars(
                    select(Item.content_id)
                    .join(Job, Job.id == Item.job_pk)
                    .where(Job.user_id == job.user_id, Item.status == "completed")
                )
            )
        by_id = {entry.id: entry for entry in listed}
        picks = (
            [(sid, by_id.get(sid)) for sid in selected]
            if selected
            else [(entry.id, entry) for entry in listed[: ctx.settings.max_channel_items]]
        )
        items: list[Item] = []
        for sid, entry in picks:
            cid = content_id(job.platform, sid, entry.url if entry else sid)
            if cid in done:
                continue  # processed before: a rerun fetches only what is new
            item = Item(index=len(items), content_id=cid, source_type=job.platform, source_ref="")
            if entry is None:
                item.source_ref = sid
                item.status = "failed"
                item.error = f"{sid} is not in the channel {job.request.get('channel_url')}"
            else:
                item.source_ref = entry.url
                item.url = entry.url
                item.title = entry.title
                item.channel = channel
                item.upload_date = entry.upload_date
                item.duration_s = entry.duration
            items.append(item)
        job.items = items
        job.total_content = len(items)
