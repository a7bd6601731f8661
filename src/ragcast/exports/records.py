"""What an export holds: :class:`ExportRecord` (one chunk), its columns and Arrow schema, and
:class:`ExportBatch` (consecutive records as columns), with the JSON text of their values.

Embeddings are written as ``json.dumps`` writes floats (the shortest text that reads back
as the same double); NaN and infinity are not JSON and raise ``ValueError``. ``speakers``
is a list of names (a JSON array, a parquet ``list<string>``); csv joins it with
``"; "`` (a speaker name may not hold ``;``).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa

#: An embedding: a sequence of floats or a numpy vector (usually float32).
Embedding: TypeAlias = Sequence[float] | npt.NDArray[np.floating[Any]]

#: A scalar that a JSON export or a vector-store metadata value can hold.
Scalar: TypeAlias = str | int | float | None
#: A value of an exported field other than the embedding: a scalar or a list of names.
Value: TypeAlias = Scalar | list[str]


@dataclass(slots=True)
class ExportRecord:
    """One chunk as exported: its text, timing, source, speakers and embedding."""

    id: str
    job_id: str
    content_id: str
    chunk_index: int
    text: str
    start_s: float | None
    end_s: float | None
    token_count: int
    source_type: str
    source: str
    title: str | None
    url: str | None
    #: ``url`` opened at ``start_s`` where the player supports it (search hits' deep_link)
    deep_link: str | None
    #: the job's platform (``youtube``, ``tiktok``, ``twitch``, ``documents``)
    platform: str
    channel: str | None
    #: as the platform gives it (``YYYYMMDD`` from yt-dlp); None for uploads
    upload_date: str | None
    #: the whole item's duration in seconds
    duration_s: float | None
    language: str | None
    #: how sure language detection was; None when the job named the language
    language_probability: float | None
    #: the chunk's main speaker and everyone in it (most words first), when diarized
    speaker: str | None
    speakers: list[str] | None
    #: the recogniser's mean word probability over the chunk; None for documents, captions
    confidence: float | None
    #: the model's own name (``use-multilingual-v3``, ``jina-embeddings-v4``…)
    embedding_model: str
    dimensions: int
    embedding: Embedding

    def metadata(self) -> dict[str, Value]:
        """Every field except ``id`` and ``embedding`` (the vector format's metadata)."""
        return {name: getattr(self, name) for name in COLUMN_NAMES[1:]}

    def embedding_list(self) -> list[float]:
        """The embedding as Python floats; float32 values convert exactly."""
        return embedding_to_list(self.embedding)


#: Column order of the csv and parquet formats and key order of a json record.
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(ExportRecord))

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("job_id", pa.string(), nullable=False),
        pa.field("content_id", pa.string(), nullable=False),
        pa.field("chunk_index", pa.int32(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("token_count", pa.int32(), nullable=False),
        pa.field("source_type", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("title", pa.string()),
        pa.field("url", pa.string()),
        pa.field("deep_link", pa.string()),
        pa.field("platform", pa.string(), nullable=False),
        pa.field("channel", pa.string()),
        pa.field("upload_date", pa.string()),
        pa.field("duration_s", pa.float64()),
        pa.field("language", pa.string()),
        pa.field("language_probability", pa.float64()),
        pa.field("speaker", pa.string()),
        pa.field("speakers", pa.list_(pa.string())),
        pa.field("confidence", pa.float64()),
        pa.field("embedding_model", pa.string(), nullable=False),
        pa.field("dimensions", pa.int32(), nullable=False),
        pa.field("embedding", pa.list_(pa.float32()), nullable=False),
    ]
)


#: the columns of an :class:`ExportBatch`: every field but ``embedding``, in field order
COLUMN_NAMES: tuple[str, ...] = FIELD_NAMES[:-1]
#: the columns whose values are lists of strings
LIST_COLUMNS: tuple[str, ...] = ("speakers",)


def embedding_to_list(embedding: Embedding) -> list[float]:
    """Convert an embedding to a list of Python floats (numpy values via ``tolist``)."""
    if isinstance(embedding, np.ndarray):
        values: list[float] = embedding.tolist()
        return values
    return [float(v) for v in embedding]


# Characters that str.splitlines() and some JSON Lines readers treat as line breaks but
# json.dumps(ensure_ascii=False) leaves raw; escaped, one record stays one line.
_LINE_BREAKS = (("\x85", "\\u0085"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def json_text(value: object) -> str:
    """``value`` as one line of JSON, non-ASCII kept; ValueError for NaN or infinity."""
    # allow_nan=False: NaN/Infinity are not JSON, and a file other tools reject is worse
    # than a failed export.
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    # str.replace, not str.translate: translate is ~100x slower on these long strings.
    for char, escape in _LINE_BREAKS:
        text = text.replace(char, escape)
    return text


def _not_json(values: object) -> ValueError:
    return ValueError(f"Out of range float values are not JSON compliant: {values!r:.80}")


def _floats_json(values: list[float]) -> str:
    """A list of finite floats as a JSON array, exactly as :func:`json_text` writes it.

    ``repr`` of a float list is the same text (both write each float with ``float.__repr__``
    and separate with ``", "``), a little faster: embeddings are most of an export's text.
    """
    # A finite sum means every value is finite; an infinite one may be overflow, so look.
    if not math.isfinite(sum(values)) and not all(map(math.isfinite, values)):
        raise _not_json(values)
    return repr(values)


def _embedding_json(embedding: Embedding) -> str:
    values = embedding_to_list(embedding)
    if isinstance(embedding, np.ndarray) and embedding.dtype.kind not in "fiu":
        return json_text(values)  # e.g. booleans: their JSON is not their repr
    return _floats_json(values)


class ExportBatch:
    """Consecutive export records as columns.

    ``columns`` maps every name of :data:`COLUMN_NAMES` to one value per record. The
    embeddings are either one flat float32 buffer with ``offsets`` (record ``i`` owns
    ``values[offsets[i]:offsets[i + 1]]``), as read from the store, or the records' own
    embeddings, kept as given (see :meth:`from_records`).
    """

    __slots__ = ("columns", "_embeddings", "_offsets", "_size", "_values")

    def __init__(
        self,
        columns: Mapping[str, Sequence[Any]],
        values: npt.NDArray[np.float32],
        offsets: npt.NDArray[np.int64],
    ) -> None:
        self.columns = columns
        self._size = len(offsets) - 1
        self._values: npt.NDArray[np.float32] | None = values
        self._offsets = offsets
        self._embeddings: Sequence[Embedding] | None = None
        self._check()

    @classmethod
    def from_records(cls, records: Sequence[ExportRecord]) -> ExportBatch:
        """The records as a batch; their embeddings are written exactly as they are."""
        batch = cls.__new__(cls)
        batch.columns = {name: [getattr(r, name) for r in records] for name in COLUMN_NAMES}
        batch._size = len(records)
        batch._values = None
        batch._offsets = np.zeros(0, dtype=np.int64)
        batch._embeddings = [r.embedding for r in records]
        batch._check()
        return batch

    def _check(self) -> None:
        for name in COLUMN_NAMES:
            if len(self.columns[name]) != self._size:
                raise ValueError(f"column {name!r} has {len(self.columns[name])} values")

    def __len__(self) -> int:
        return self._size

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """Each record's column values, in :data:`COLUMN_NAMES` order."""
        return zip(*(self.columns[name] for name in COLUMN_NAMES), strict=True)

    def embedding_lists(self) -> Iterator[list[float]]:
        """Each record's embedding as Python floats."""
        if self._embeddings is not None:
            for embedding in self._embeddings:
                yield embedding_to_list(embedding)
            return
        assert self._values is not None
        values, offsets = self._values, self._offsets.tolist()
        for start, end in itertools.pairwise(offsets):
            yield values[start:end].tolist()

    def embedding_json(self) -> Iterator[str]:
        """Each record's embedding as a JSON array; ValueError for NaN or infinity."""
        if self._embeddings is not None:
            for embedding in self._embeddings:
                yield _embedding_json(embedding)
            return
        assert self._values is not None
        if not np.isfinite(self._values).all():
            raise _not_json(self._values[~np.isfinite(self._values)][:4].tolist())
        for values in self.embedding_lists():
            yield repr(values)  # finite floats: exactly json.dumps's text (_floats_json)

    def records(self) -> Iterator[ExportRecord]:
        """The batch as :class:`ExportRecord` objects."""
        if self._embeddings is not None:
            embeddings: Iterable[Embedding] = self._embeddings
        else:
            assert self._values is not None
            values, offsets = self._values, self._offsets.tolist()
            embeddings = (values[a:b] for a, b in itertools.pairwise(offsets))
        for row, embedding in zip(self.rows(), embeddings, strict=True):
            yield ExportRecord(**dict(zip(COLUMN_NAMES, row, strict=True)), embedding=embedding)

    def embedding_array(self) -> Any:
        """The embeddings as an Arrow ``list<float32>`` array."""
        if self._embeddings is not None:
            vectors = [np.asarray(e, dtype=np.float32).reshape(-1) for e in self._embeddings]
            offsets = np.zeros(len(vectors) + 1, dtype=np.int64)
            np.cumsum([len(v) for v in vectors], out=offsets[1:])
            values = np.concatenate(vectors) if vectors else np.empty(0, dtype=np.float32)
        else:
            assert self._values is not None
            values, offsets = self._values, self._offsets
        if offsets[-1] > np.iinfo(np.int32).max:
            raise ValueError("embedding batch too large for list<float32>; lower batch_size")
        return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))

    def record_batch(self) -> Any:
        """The batch as an Arrow record batch of :data:`SCHEMA`."""
        columns: list[Any] = [
            pa.array(self.columns[f.name], type=f.type) for f in SCHEMA if f.name != "embedding"
        ]
        columns.append(self.embedding_array())
        return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)
