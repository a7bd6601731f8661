"""Kaldi log mel filterbank features, as CAM++ was trained on, computed with torch.

The same numbers as ``torchaudio.compliance.kaldi.fbank(wave, num_mel_bins=80,
dither=0)`` (Kaldi's defaults otherwise): 25 ms frames every 10 ms with no padding
("snip edges"), each frame's DC offset removed, pre-emphasis 0.97, a Povey window, a
512-point power spectrum, 80 triangular bands evenly spaced on Kaldi's mel scale from
20 Hz to 8 kHz, and the log of each band's energy (floored at float epsilon).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

SAMPLE_RATE = 16_000
FRAME = 400  # samples in one frame (25 ms)
HOP = 160  # samples between frames (10 ms)
N_FFT = 512
N_MELS = 80
_LOW_HZ = 20.0
_PREEMPH = 0.97


def _mel(hz: Tensor) -> Tensor:
    return 1127.0 * torch.log1p(hz / 700.0)


@functools.cache
def mel_banks() -> Tensor:
    """Kaldi's ``(80, 257)`` triangular filters (zero at the Nyquist bin, as in Kaldi)."""
    nyquist = SAMPLE_RATE / 2
    low, high = _mel(torch.tensor(_LOW_HZ)), _mel(torch.tensor(nyquist))
    delta = (high - low) / (N_MELS + 1)
    left = low + torch.arange(N_MELS) * delta
    centre, right = left + delta, left + 2 * delta
    bins = _mel(torch.arange(N_FFT // 2) * (SAMPLE_RATE / N_FFT)).unsqueeze(0)
    up = (bins - left.unsqueeze(1)) / (centre - left).unsqueeze(1)
    down = (right.unsqueeze(1) - bins) / (right - centre).unsqueeze(1)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1)).to(torch.float32)


@functools.cache
def _povey_window() -> Tensor:
    n = torch.arange(FRAME, dtype=torch.float64)
    return (0.5 - 0.5 * torch.cos(2 * math.pi * n / (FRAME - 1))).pow(0.85).to(torch.float32)


def num_frames(samples: int) -> int:
    """Frames of ``samples`` samples (no padding: a partial frame is dropped)."""
    return 0 if samples < FRAME else 1 + (samples - FRAME) // HOP


def fbank(waveforms: Tensor) -> Tensor:
    """``(batch, frames, 80)`` log mel energies of ``(batch, samples)`` float waveforms."""
    frames = waveforms.unfold(-1, FRAME, HOP)  # (batch, frames, 400)
    frames = frames - frames.mean(dim=-1, keepdim=True)
    previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
    frames = (frames - _PREEMPH * previous) * _povey_window()
    power = torch.fft.rfft(frames, n=N_FFT).abs().pow(2)
    energies = power @ mel_banks().T
    return torch.clamp(energies, min=torch.finfo(torch.float32).eps).log()
