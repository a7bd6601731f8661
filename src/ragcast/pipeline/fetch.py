"""The fetch stage for platform content: a stored transcript, captions, or the audio."""

from __future__ import annotations

import mimetypes
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ragcast.context import Context
from ragcast.pipeline.script import in_script
from ragcast.pipeline.types import Transcript as TranscriptData
from ragcast.sources.ytdlp import FetchConfig, fetch
from ragcast.spec import caption_language, job_chinese_script, job_diarize, job_language
from ragcast.store.models import Item, Job, Transcript
from ragcast.text import CHINESE_LANGUAGES


def job_option(ctx: Context, job: Job, key: str, default: Any) -> Any:
    """A per-request option from ``settings`` (extra keys the contract allows)."""
    value = (job.request.get("settings") or {}).get(key)
    return default if value is None else value


def reuse_transcript(s: Session, item: Item, job: Job) -> bool:
    """Copy this user's stored transcript of the same content; True when there was one.

    The same video in two jobs (or a channel processed again with ``force``) is then
    neither downloaded nor transcribed again. A job that asks for speakers takes only a
    transcript that has them: diarizing needs the recording.
    """
    earlier = s.execute(
        select(Transcript, Item, Job.request)
        .join(Item, Item.id == Transcript.item_id)
        .join(Job, Job.id == Item.job_pk)
        .where(Job.user_id == job.user_id, Item.content_id == item.content_id, Item.id != item.id)
        .order_by(Transcript.created_at.desc())
        .limit(1)
    ).first()
    if earlier is None:
        return False
    transcript, source_item, earlier_request = earlier
    if job_diarize(job.request) is not None and (transcript.data or {}).get("speakers") is None:
        return False
    data, text = transcript.data, transcript.text
    script, written = job_chinese_script(job.request), job_chinese_script(earlier_request)
    if script != written and (transcript.language or "") in CHINESE_LANGUAGES:
        if written != "as_spoken":
            return False  # converted for the earlier job: the text as spoken is not kept
        converted = in_script(TranscriptData.from_dict(data), script)
        data, text = converted.to_dict(), converted.text
    s.add(
        Transcript(
            item_id=item.id,
            source=transcript.source,
            language=transcript.language,
            duration_s=transcript.duration_s,
            data=data,
            text=text,
        )
    )
    item.language = transcript.language
    item.language_probability = (transcript.data or {}).get("language_probability")
    item.warnings = (transcript.data or {}).get("warnings") or None
    for name in ("title", "url", "channel", "upload_date", "duration_s", "content_type"):
        if getattr(item, name) is None:
            setattr(item, name, getattr(source_item, name))
    item.transcript_source = transcript.source
    return True


def fetch_platform_item(ctx: Context, s: Session, item: Item, job: Job) -> None:
    """Fetch captions (when present and allowed) or audio, and the item's metadata."""
    if reuse_transcript(s, item, job):
        return
    settings = ctx.settings
    got = fetch(
        item.source_ref,
        settings.data_path("media", item.content_id),
        FetchConfig.from_settings(settings),
        job.platform,
        # speakers are found in the audio: a job that wants them does not take captions
        captions=bool(job_option(ctx, job, "useCaptions", settings.use_captions))
        and job_diarize(job.request) is None,
        automatic=bool(job_option(ctx, job, "allowAutoCaptions", settings.allow_auto_captions)),
        language=job_language(job.request),
    )
    info = got.info
    item.media_path = str(got.path)
    if got.kind == "captions":
        item.content_type = "text/vtt"
        item.transcript_source = "captions"
        item.language = caption_language(str(info.get("_ragcast_caption_lang") or ""))
    else:
        guessed = mimetypes.guess_type(got.path.name)[0] or ""
        item.content_type = guessed if guessed.startswith(("audio/", "video/")) else "audio/*"
    item.title = info.get("title") or item.title
    item.url = info.get("webpage_url") or item.url
    item.channel = info.get("channel") or info.get("uploader") or item.channel
    item.upload_date = info.get("upload_date") or item.upload_date
    if info.get("duration"):
        item.duration_s = float(info["duration"])
