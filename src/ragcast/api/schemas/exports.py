"""Bodies of exports, uploads and the admin cleanup."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ragcast.api.schemas.common import (
    ExportFormat,
)
from ragcast.spec import (
    ID_PATTERN,
)


class ExportCreate(BaseModel):
    """Body of ``POST /export``."""

    job_id: str = Field(pattern=ID_PATTERN)
    format: ExportFormat
    export_id: str | None = Field(default=None, pattern=ID_PATTERN)


class ExportAccepted(BaseModel):
    """Answer of ``POST /export``."""

    success: bool = True
    export_id: str
    message: str
    status_url: str


class ExportStatus(BaseModel):
    """Answer of ``GET /export/{export_id}/status``."""

    export_id: str
    status: Literal["pending", "processing", "completed", "failed"]
    progress: float
    download_url: str | None = None
    filename: str | None = None
    file_size: int | None = None
    error: str | None = None
    warnings: list[str] = Field(
        default_factory=list,
        description="What a completed export should be read with, e.g. that the job has no "
        "chunks (a ragcast extension)",
    )


class UploadPublic(BaseModel):
    """Answer of ``POST /uploads``."""

    document_id: str
    filename: str
    size: int
    sha256: str
    content_type: str


class CleanupResult(BaseModel):
    """Answer of ``DELETE /cleanup``."""

    success: bool = True
    deleted_count: int


class UploadDeleted(BaseModel):
    """Answer of ``DELETE /uploads/{document_id}``."""

    success: bool = True
    document_id: str
