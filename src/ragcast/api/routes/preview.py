"""``GET /preview``: one page of a channel's items, so clients can fill ``selected_content``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from ragcast.api.deps import Ctx, CurrentUser
from ragcast.api.schemas import ChannelPreview, PreviewItem, error_responses
from ragcast.errors import ItemError, TransientError, UpstreamUnavailableError, ValidationError
from ragcast.sources.platforms import platform_of
from ragcast.sources.safety import check_url
from ragcast.sources.ytdlp import FetchConfig, list_channel

router = APIRouter(tags=["sources"])


@router.get(
    "/preview",
    response_model=ChannelPreview,
    operation_id="previewChannel",
    responses=error_responses(400, 401, 429, 503),
)
async def preview_channel(
    user: CurrentUser,
    ctx: Ctx,
    url: Annotated[str, Query(min_length=8, max_length=2048, description="Channel URL")],
    page: Annotated[int, Query(ge=1, le=1000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ChannelPreview:
    """List a YouTube channel or playlist, a TikTok profile or a Twitch channel, lazily."""
    check_url(url, field="url", allow_loopback=ctx.settings.allow_loopback_fetch)
    platform = platform_of(url)
    if platform is None:
        raise ValidationError("url", "not a YouTube, TikTok or Twitch URL")
    try:
        listing = await run_in_threadpool(
            list_channel,
            url,
            FetchConfig.from_settings(ctx.settings),
            platform,
            start=(page - 1) * page_size,
            count=page_size,
        )
    except TransientError as exc:
        raise UpstreamUnavailableError(f"{platform} did not answer: {exc.message}") from exc
    except ItemError as exc:
        raise ValidationError("url", exc.message) from exc
    return ChannelPreview(
        url=url,
        platform=platform,
        title=listing.title,
        channel=listing.channel,
        items=[
            PreviewItem(
                id=i.id,
                title=i.title,
                duration=i.duration,
                upload_date=i.upload_date,
                url=i.url,
                thumbnail=i.thumbnail,
            )
            for i in listing.items
        ],
        page=page,
        page_size=page_size,
        has_more=listing.has_more,
    )
