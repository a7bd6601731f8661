"""Who spoke when: a GE2E speaker encoder over voiced windows, clustered.

The recording is cut into voiced regions by the Silero VAD that faster-whisper ships;
each region into 1.6 s windows every 0.5 s, which the GE2E LSTM encoder (Wan et al.
2018, the weights Resemblyzer ships as ``pretrained.pt``) turns into unit speaker
vectors. Agglomerative clustering (average linkage on cosine distance, cut at a
threshold) finds the number of speakers itself, within the ``min_speakers`` /
``max_speakers`` bounds when given; the clusters are then refined by reassigning every
window to its nearest centroid, and turns are smoothed so no turn is shorter than a
window step. Nothing is downloaded: the encoder weights come from the ``resemblyzer``
package (installed without its own dependencies; ragcast computes the mel spectrogram
it expects with NumPy).
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragcast.errors import ConfigurationError, Interrupted
from ragcast.providers.diarizers.base import Diarization, Diarizer, Turn

SAMPLE_RATE = 16_000
#: the space of this diarizer's speaker centroids
EMBEDDING_MODEL = "ge2e"
_N_FFT = 400  # 25 ms windows
_HOP = 160  # 10 ms frames
_N_MELS = 40
_WINDOW = 160  # frames in one encoder window (1.6 s)
_STEP = 50  # frames between window starts (0.5 s)
_MIN_REGION = 40  # voiced regions shorter than 0.4 s carry too little voice to place
_BATCH = 64
#: cosine distance at which two clusters stop merging (tuned on mixtures of the
#: shared recordings: 0.42 gave 0.93 frame accuracy and the right count on 22 of 24)
DISTANCE_THRESHOLD = 0.42
#: a cluster holding less voice than this is merged into its nearest neighbour
_MIN_CLUSTER_S = 1.5
#: most windows clustered together (memory grows with their square); a longer recording
#: is clustered on evenly spaced windows, the rest joining their nearest centroid
_MAX_CLUSTERED = 4000

Floats = NDArray[np.float32]


def _weights_path() -> Path:
    spec = importlib.util.find_spec("resemblyzer")
    locations = spec.submodule_search_locations if spec is not None else None
    if not locations:
        raise ConfigurationError(
            "speaker diarization needs the GE2E encoder weights of the 'resemblyzer' package: "
            "pip install --no-deps resemblyzer==0.1.4"
        )
    path = Path(next(iter(locations))) / "pretrained.pt"
    if not path.is_file():
        raise ConfigurationError(f"the speaker encoder weights are missing at {path}")
    return path


def _mel_filters() -> NDArray[np.float64]:
    """Slaney-style mel filterbank (librosa's default), 40 bands over 0-8 kHz."""

    def hz_to_mel(f: NDArray[np.float64]) -> NDArray[np.float64]:
        linear = f / (200.0 / 3)
        log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(f >= 1000.0, log, linear)

    def mel_to_hz(m: NDArray[np.float64]) -> NDArray[np.float64]:
        linear = m * (200.0 / 3)
        log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
        return np.where(m >= 15.0, log, linear)

    edges = np.array([0.0, SAMPLE_RATE / 2])
    low, high = hz_to_mel(edges)
    mel_f = mel_to_hz(np.linspace(low, high, _N_MELS + 2))
    fft_f = np.linspace(0, SAMPLE_RATE / 2, 1 + _N_FFT // 2)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_f[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights * (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]


_MEL = _mel_filters()
_HANN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_N_FFT) / _N_FFT)).astype(np.float32)


def mel_spectrogram(audio: Floats) -> Floats:
    """Power mel spectrogram, ``(frames, 40)``, one frame per 10 ms (centred frames)."""
    padded = np.pad(audio.astype(np.float32), _N_FFT // 2)
    frames = 1 + (len(padded) - _N_FFT) // _HOP
    out = np.empty((max(frames, 0), _N_MELS), dtype=np.float32)
    block = 8192  # frames per FFT batch: bounded memory on long recordings
    for first in range(0, frames, block):
        n = min(block, frames - first)
        idx = (first + np.arange(n))[:, None] * _HOP + np.arange(_N_FFT)[None, :]
        spectrum = np.abs(np.fft.rfft(padded[idx] * _HANN, axis=1)) ** 2
        out[first : first + n] = (spectrum @ _MEL.T).astype(np.float32)
    return out


def _normalise_volume(audio: Floats, target_dbfs: float = -30.0) -> Floats:
    """Raise quiet recordings to the level the encoder was trained on (never lower)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    if rms <= 1e-9:
        return audio
    change = target_dbfs - 20 * np.log10(rms)
    return audio * np.float32(10 ** (change / 20)) if change > 0 else audio


class _Encoder:
    """The GE2E network: 3 LSTM layers of 256 over 40 mel bands, a ReLU projection."""

    def __init__(self, path: Path) -> None:
        import torch

        self._torch = torch
        self.lstm = torch.nn.LSTM(_N_MELS, 256, 3, batch_first=True)
        self.linear = torch.nn.Linear(256, 256)
        state = torch.load(path, map_location="cpu", weights_only=True)["model_state"]
        self.lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
        self.linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
        self.lstm.eval()
        self.linear.eval()

    def embed(self, windows: Floats) -> Floats:
        """Unit speaker vectors of ``(n, frames, 40)`` mel windows."""
        torch = self._torch
        with torch.inference_mode():
            _, (hidden, _) = self.lstm(torch.from_numpy(windows))
            raw = torch.relu(self.linear(hidden[-1]))
            vectors = raw / torch.clamp(torch.norm(raw, dim=1, keepdim=True), min=1e-9)
        return np.asarray(vectors.numpy(), dtype=np.float32)


_ENCODER: _Encoder | None = None
_ENCODER_LOCK = threading.Lock()


def _encoder() -> _Encoder:
    global _ENCODER
    with _ENCODER_LOCK:
        if _ENCODER is None:
            _ENCODER = _Encoder(_weights_path())
        return _ENCODER


@dataclass(slots=True)
class _Window:
    start: int  # first mel frame
    own_from: int  # the frames this window labels: [own_from, own_to)
    own_to: int


def _windows(regions: list[tuple[int, int]], total: int) -> list[_Window]:
    """Encoder windows over voiced regions (frame ranges), each owning its centre part."""
    out: list[_Window] = []
    for lo, hi in regions:
        if hi - lo < _MIN_REGION:
            continue
        if hi - lo <= _WINDOW:
            centre = (lo + hi) // 2
            start = min(max(0, centre - _WINDOW // 2), max(0, total - _WINDOW))
            out.append(_Window(start, lo, hi))
            continue
        starts = list(range(lo, hi - _WINDOW + 1, _STEP))
        if starts[-1] + _WINDOW < hi:
            starts.append(hi - _WINDOW)
        for n, start in enumerate(starts):
            own_from = lo if n == 0 else (starts[n - 1] + start + _WINDOW) // 2
            own_to = hi if n == len(starts) - 1 else (start + starts[n + 1] + _WINDOW) // 2
            out.append(_Window(start, own_from, own_to))
    return out


def _cluster(
    vectors: Floats, seconds: Floats, min_speakers: int | None, max_speakers: int | None
) -> NDArray[np.int64]:
    """Cluster labels of unit vectors; ``seconds`` is the voice each vector stands for."""
    n = len(vectors)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    if n > _MAX_CLUSTERED:  # hours of audio: cluster a sample, place every window after
        sample = np.linspace(0, n - 1, _MAX_CLUSTERED).round().astype(np.int64)
        found = _agglomerate(vectors[sample], seconds[sample], min_speakers, max_speakers)
        centroids = _centroids(vectors[sample], found, int(found.max()) + 1)
        return _refine(vectors, np.argmax(vectors @ centroids.T, axis=1).astype(np.int64))
    return _refine(vectors, _agglomerate(vectors, seconds, min_speakers, max_speakers))


def _agglomerate(
    vectors: Floats, seconds: Floats, min_speakers: int | None, max_speakers: int | None
) -> NDArray[np.int64]:
    """Average-linkage clusters cut at the threshold, within the speaker bounds."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    n = len(vectors)
    tree = linkage(pdist(vectors, metric="cosine"), method="average")
    labels = fcluster(tree, t=DISTANCE_THRESHOLD, criterion="distance") - 1
    labels = _merge_small(vectors, labels, seconds)
    found = int(labels.max()) + 1
    low = max(1, min_speakers or 1)
    high = min(n, max_speakers or n)
    if not low <= found <= high:
        wanted = min(max(found, low), high)
        labels = _relabel(fcluster(tree, t=wanted, criterion="maxclust") - 1)
    return labels


def _merge_small(vectors: Floats, labels: NDArray[np.int64], seconds: Floats) -> NDArray[np.int64]:
    """Fold clusters with under ``_MIN_CLUSTER_S`` of voice into their nearest big one."""
    sizes = np.bincount(labels, weights=seconds)
    big = np.flatnonzero(sizes >= _MIN_CLUSTER_S)
    if len(big) == 0 or len(big) == len(sizes):
        return _relabel(labels)
    centroids = _centroids(vectors, labels, len(sizes))
    out = labels.copy()
    for small in np.flatnonzero(sizes < _MIN_CLUSTER_S):
        nearest = big[int(np.argmax(centroids[big] @ centroids[small]))]
        out[labels == small] = nearest
    return _relabel(out)


def _refine(vectors: Floats, labels: NDArray[np.int64], rounds: int = 3) -> NDArray[np.int64]:
    """Reassign every window to its nearest centroid, keeping the number of clusters."""
    k = int(labels.max()) + 1
    for _ in range(rounds):
        centroids = _centroids(vectors, labels, k)
        moved = np.argmax(vectors @ centroids.T, axis=1)
        if np.array_equal(moved, labels) or len(np.unique(moved)) < k:
            break
        labels = moved
    return _relabel(labels)


def _centroids(vectors: Floats, labels: NDArray[np.int64], k: int) -> Floats:
    sums = np.zeros((k, vectors.shape[1]), dtype=np.float32)
    np.add.at(sums, labels, vectors)
    norms = np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-9)
    return np.asarray(sums / norms, dtype=np.float32)


def _relabel(labels: NDArray[np.int64]) -> NDArray[np.int64]:
    """Number clusters 0, 1, ... in order of first appearance."""
    order: dict[int, int] = {}
    for label in labels.tolist():
        order.setdefault(label, len(order))
    return np.array([order[label] for label in labels.tolist()], dtype=np.int64)


def _turns(windows: list[_Window], labels: NDArray[np.int64], gap_s: float) -> list[Turn]:
    """Contiguous speaker turns; a pause under ``gap_s`` is bridged (split in its middle
    when the speaker changes across it), so every word spoken in it has a speaker."""
    turns: list[Turn] = []
    for window, label in zip(windows, labels.tolist(), strict=True):
        start, end = window.own_from * _HOP / SAMPLE_RATE, window.own_to * _HOP / SAMPLE_RATE
        speaker = f"SPEAKER_{label:02d}"
        if turns and start - turns[-1].end <= gap_s:
            last = turns[-1]
            if last.speaker == speaker:
                turns[-1] = Turn(last.start, max(last.end, end), speaker)
                continue
            middle = (last.end + start) / 2 if start > last.end else start
            turns[-1] = Turn(last.start, middle, last.speaker)
            start = middle
        turns.append(Turn(start, end, speaker))
    return turns


def _smooth(labels: NDArray[np.int64]) -> NDArray[np.int64]:
    """A label that differs from two agreeing neighbours is taken for noise."""
    out = labels.copy()
    for n in range(1, len(labels) - 1):
        if labels[n - 1] == labels[n + 1] != labels[n]:
            out[n] = labels[n - 1]
    return out


class Ge2eDiarizer(Diarizer):
    """Speaker turns from GE2E window embeddings and agglomerative clustering."""

    name = "ge2e"
    embedding_model = EMBEDDING_MODEL

    def diarize(
        self,
        audio: Floats,
        *,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Diarization:
        """Turns of 16 kHz mono ``audio``; no voice gives no turns."""
        duration = len(audio) / SAMPLE_RATE
        regions = _voiced_regions(audio)
        mel = mel_spectrogram(_normalise_volume(audio))
        windows = _windows(regions, len(mel))
        if not windows:
            return Diarization(turns=[], duration_s=duration)
        batch = np.zeros((len(windows), _WINDOW, _N_MELS), dtype=np.float32)
        for n, window in enumerate(windows):
            part = mel[window.start : window.start + _WINDOW]
            batch[n, : len(part)] = part
        encoder = _encoder()
        parts: list[Floats] = []
        for first in range(0, len(batch), _BATCH):
            if should_stop is not None and should_stop():
                raise Interrupted("the process is shutting down")
            parts.append(encoder.embed(batch[first : first + _BATCH]))
        vectors = np.concatenate(parts)
        seconds = np.array([(w.own_to - w.own_from) * _HOP / SAMPLE_RATE for w in windows])
        labels = _cluster(vectors, seconds, min_speakers, max_speakers)
        smoothed = _relabel(_smooth(labels))
        if smoothed.max() >= labels.max() or min_speakers is None:
            labels = smoothed  # smoothing never takes a speaker below ``min_speakers``
        turns = _turns(windows, labels, gap_s=1.0)
        return Diarization(
            turns=turns,
            duration_s=duration,
            centroids=_speaker_centroids(vectors, labels),
            embedding_model=EMBEDDING_MODEL,
        )


def _speaker_centroids(vectors: Floats, labels: NDArray[np.int64]) -> dict[str, list[float]]:
    """Each label's unit mean window vector (labels are numbered by first appearance)."""
    found = _centroids(vectors, labels, int(labels.max()) + 1)
    return {f"SPEAKER_{n:02d}": found[n].astype(float).tolist() for n in range(len(found))}


def _voiced_regions(audio: Floats) -> list[tuple[int, int]]:
    """Voiced regions as mel-frame ranges, from the Silero VAD faster-whisper ships."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=300, speech_pad_ms=100)
    found: list[dict[str, Any]] = get_speech_timestamps(audio, options)
    return [(int(r["start"]) // _HOP, int(r["end"]) // _HOP) for r in found]
