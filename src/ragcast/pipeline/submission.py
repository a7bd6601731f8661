"""What a job submission must pass, whoever submits it (``POST /process``, a subscription).

Everything that can be known at submission is checked here, each failure a
:class:`~ragcast.errors.ValidationError` naming the request field: cross-field rules,
the language against the server's Whisper model, every URL safe and on its platform,
and the embedding model, vector database and collection known, installed and compatible.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from typing import Any

from ragcast.context import Context
from ragcast.errors import ConfigurationError, ValidationError
from ragcast.providers.embedders.base import EmbeddingSpec
from ragcast.retrieval.layout import collection_name
from ragcast.settings import Settings
from ragcast.sources.platforms import platform_of
from ragcast.sources.safety import check_url
from ragcast.spec import AUTO, JobCreate


def check_inputs(body: JobCreate) -> None:
    """Cross-field rules the schema alone cannot say."""
    if body.platform == "documents" and body.input_method != "upload":
        raise ValidationError("input_method", "platform 'documents' takes input_method 'upload'")
    if body.input_method == "upload" and not body.uploaded_documents:
        raise ValidationError(
            "uploaded_documents", "input_method 'upload' needs at least one document id"
        )
    if body.input_method == "channel" and not body.channel_url:
        raise ValidationError("channel_url", "input_method 'channel' needs channel_url")
    if body.input_method == "urls" and not body.pasted_urls:
        raise ValidationError("pasted_urls", "input_method 'urls' needs at least one URL")
    if body.settings.chunkOverlap >= body.settings.chunkSize:
        raise ValidationError("settings.chunkOverlap", "Must be smaller than settings.chunkSize")
    if len(set(body.uploaded_documents)) != len(body.uploaded_documents):
        raise ValidationError("uploaded_documents", "document ids must be unique")


def check_language(body: JobCreate, settings: Settings) -> None:
    """A named language the server's Whisper model cannot transcribe is refused now."""
    language = body.settings.language
    if language not in (AUTO, "en") and settings.whisper_english_only:
        raise ValidationError(
            "settings.language",
            f"this server's Whisper model ({settings.whisper_model}) transcribes English only",
        )


def check_sources(body: JobCreate, settings: Settings) -> list[tuple[str, str]]:
    """The (field, URL) pairs a platform job fetches, each checked safe and on-platform."""
    if body.input_method == "channel":
        urls = [("channel_url", body.channel_url or "")]
    elif body.input_method == "urls":
        urls = [(f"pasted_urls[{i}]", u) for i, u in enumerate(body.pasted_urls)]
    else:
        return []
    if importlib.util.find_spec("yt_dlp") is None:
        raise ValidationError(
            "input_method", "fetching from platforms needs the 'platforms' extra (yt-dlp)"
        )
    for field, url in urls:
        check_url(url, field=field, allow_loopback=settings.allow_loopback_fetch)
        found = platform_of(url)
        if found is None and not settings.allow_generic_extractor:
            raise ValidationError(field, f"not a {body.platform} URL")
        if found is not None and found != body.platform:
            raise ValidationError(field, f"a {found} URL, but platform is {body.platform!r}")
    return urls


def request_hash(body: JobCreate) -> str:
    """A digest of the request as the client meant it (``user_id`` left out)."""
    data = body.model_dump(mode="json", exclude={"user_id"})
    # defaults of settings added later are left out: bodies from before them hash the same
    for key, default in (("language", AUTO), ("diarize", False), ("chinese_script", "as_spoken")):
        if data["settings"].get(key) == default:
            data["settings"].pop(key)
    for key in ("min_speakers", "max_speakers", "keepMedia"):
        if data["settings"].get(key) is None:
            data["settings"].pop(key, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def stored_request(body: JobCreate, spec: EmbeddingSpec) -> dict[str, Any]:
    """The request as kept with the job, naming the ``local`` model it was embedded with
    (so the job's vectors and its searches stay with that model whatever the default)."""
    request: dict[str, Any] = body.model_dump(mode="json")
    if spec.id == "local":
        request["embedding_model"]["model"] = spec.options["model"]
    return request


def check_backends(ctx: Context, body: JobCreate) -> tuple[EmbeddingSpec, str, str]:
    """The embedding model, vector database and collection of a job, each checked
    (known, installed, configured, compatible); ValidationError names the field."""
    spec = ctx.providers.resolve_embedding(body.embedding_model)
    vector_db = ctx.providers.check_vector_db(body.vector_db)
    if spec.options.get("multi_vector"):
        try:
            multi_ok = ctx.providers.vector_store(vector_db).supports_multi_vector
        except ConfigurationError as exc:
            raise ValidationError("vector_db.id", exc.message) from exc
        if not multi_ok:
            raise ValidationError(
                "embedding_model.jina_v4_multi_vector",
                f"the {vector_db} vector database cannot store multi-vector embeddings; "
                "choose one that can (qdrant) or turn jina_v4_multi_vector off",
            )
    collection = collection_name(spec)
    ctx.providers.check_collection(vector_db, collection, spec.dimensions)
    return spec, vector_db, collection
