"""The two networks, defined here so their weights load without their home packages.

``PyanNet`` is pyannote.audio 3.0's segmentation model (MIT, CNRS): a SincNet front end
(asteroid-filterbanks' parametrised sinc filterbank, ported: its 80 filters are computed
once from the 40 learnt cut-off pairs), four bidirectional LSTM layers and two linear
layers giving, every 16.875 ms, log-probabilities of 7 powerset classes. ``CAMPPlus`` is
3D-Speaker's CAM++ speaker encoder (Apache-2.0, Alibaba DAMO), as in
``speakerlab/models/campplus``: 80 fbank bands in, a 192-dimensional embedding out. The
module and parameter names follow the originals, so their state dicts load strictly.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: samples of one SincNet filter and the stride of the first convolution
SINC_KERNEL = 251
SINC_STRIDE = 10
#: the segmentation model's output classes: no one, each of 3 local speakers, each pair
POWERSET = ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2))


class _ParamSincFB(nn.Module):
    """The learnt band edges of 40 sinc band-pass filters (a cosine and a sine each)."""

    def __init__(self, n_filters: int = 80, sample_rate: int = 16_000) -> None:
        super().__init__()
        half = SINC_KERNEL // 2
        self.sample_rate = sample_rate
        self.n_filters = n_filters
        self.low_hz_ = nn.Parameter(torch.zeros(n_filters // 2, 1))
        self.band_hz_ = nn.Parameter(torch.zeros(n_filters // 2, 1))
        hamming = 0.54 - 0.46 * torch.cos(
            2 * math.pi * torch.arange(SINC_KERNEL) / (SINC_KERNEL - 1)
        )
        self.register_buffer("window_", hamming[:half].float())
        self.register_buffer("n_", 2 * math.pi * torch.arange(-half, 0.0).view(1, -1) / sample_rate)

    def filters(self, min_low_hz: float = 50.0, min_band_hz: float = 50.0) -> Tensor:
        """The ``(80, 1, 251)`` filters: cosine (even) ones, then sine (odd) ones."""
        n, window = self.get_buffer("n_"), self.get_buffer("window_")
        low = min_low_hz + torch.abs(self.low_hz_)
        high = torch.clamp(
            low + min_band_hz + torch.abs(self.band_hz_), min_low_hz, self.sample_rate / 2
        )
        band = (high - low)[:, 0]
        ft_low, ft_high = low @ n, high @ n
        cos_left = (torch.sin(ft_high) - torch.sin(ft_low)) / (n / 2) * window
        cos = torch.cat([cos_left, 2 * band.view(-1, 1), torch.flip(cos_left, dims=[1])], dim=1)
        sin_left = (torch.cos(ft_low) - torch.cos(ft_high)) / (n / 2) * window
        zeros = torch.zeros_like(band.view(-1, 1))
        sin = torch.cat([sin_left, zeros, -torch.flip(sin_left, dims=[1])], dim=1)
        out = torch.cat([cos / (2 * band[:, None]), sin / (2 * band[:, None])], dim=0)
        return out.view(self.n_filters, 1, SINC_KERNEL)


class _SincConv(nn.Module):
    """asteroid's ``Encoder(ParamSincFB(...))``: the filterbank as a strided convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.filterbank = _ParamSincFB()
        self._fixed: Tensor | None = None

    def forward(self, waveforms: Tensor) -> Tensor:
        if self._fixed is None or self.training:
            self._fixed = self.filterbank.filters().detach()  # fixed once trained: cache
        return F.conv1d(waveforms, self._fixed, stride=SINC_STRIDE)


class _SincNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.wav_norm1d = nn.InstanceNorm1d(1, affine=True)
        self.conv1d = nn.ModuleList([_SincConv(), nn.Conv1d(80, 60, 5), nn.Conv1d(60, 60, 5)])
        self.pool1d = nn.ModuleList([nn.MaxPool1d(3, stride=3) for _ in range(3)])
        self.norm1d = nn.ModuleList(
            [nn.InstanceNorm1d(80, affine=True)]
            + [nn.InstanceNorm1d(60, affine=True) for _ in range(2)]
        )

    def forward(self, waveforms: Tensor) -> Tensor:
        out: Tensor = self.wav_norm1d(waveforms)
        for n, (conv, pool, norm) in enumerate(
            zip(self.conv1d, self.pool1d, self.norm1d, strict=True)
        ):
            out = conv(out)
            if n == 0:
                out = torch.abs(out)
            out = F.leaky_relu(norm(pool(out)))
        return out


class PyanNet(nn.Module):
    """pyannote segmentation-3.0: ``(batch, 1, samples)`` -> ``(batch, frames, 7)`` log-probs."""

    def __init__(self) -> None:
        super().__init__()
        self.sincnet = _SincNet()
        self.lstm = nn.LSTM(60, 128, num_layers=4, bidirectional=True, batch_first=True)
        self.linear = nn.ModuleList([nn.Linear(256, 128), nn.Linear(128, 128)])
        self.classifier = nn.Linear(128, len(POWERSET))

    def forward(self, waveforms: Tensor, front_batch: int = 8) -> Tensor:
        """The SincNet front end runs ``front_batch`` windows at a time (its activations
        are large); the LSTM takes them all at once (fewer of its sequential steps)."""
        front = [self.sincnet(part) for part in torch.split(waveforms, front_batch)]
        out, _ = self.lstm(torch.cat(front).transpose(1, 2))
        for linear in self.linear:
            out = F.leaky_relu(linear(out))
        logp: Tensor = F.log_softmax(self.classifier(out), dim=-1)
        return logp


def _bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict([("batchnorm", nn.BatchNorm1d(channels)), ("relu", nn.ReLU(inplace=True))])
    )


class _BasicResBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=(stride, 1), bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class _FCM(nn.Module):
    """The 2-D convolutional front of CAM++ over (bands, frames)."""

    def __init__(self, channels: int = 32, feat_dim: int = 80) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(
            _BasicResBlock(channels, channels, 2), _BasicResBlock(channels, channels)
        )
        self.layer2 = nn.Sequential(
            _BasicResBlock(channels, channels, 2), _BasicResBlock(channels, channels)
        )
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_channels = channels * (feat_dim // 8)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        out = F.relu(self.bn2(self.conv2(self.layer2(self.layer1(out)))))
        return out.reshape(out.shape[0], out.shape[1] * out.shape[2], out.shape[3])


class _TDNNLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 5, stride=2, padding=2, bias=False)
        self.nonlinear = _bn_relu(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.nonlinear(self.linear(x))  # type: ignore[no-any-return]


class _CAMLayer(nn.Module):
    """Context-aware masking: a local convolution gated by utterance and segment means."""

    def __init__(self, bn_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__()
        self.linear_local = nn.Conv1d(
            bn_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False
        )
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // 2, 1)
        self.relu = nn.ReLU(inplace=True)
        self.linear2 = nn.Conv1d(bn_channels // 2, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = self.linear_local(x)
        context = x.mean(-1, keepdim=True) + self._segment_means(x)
        return y * torch.sigmoid(self.linear2(self.relu(self.linear1(context))))

    @staticmethod
    def _segment_means(x: Tensor, seg_len: int = 100) -> Tensor:
        seg = F.avg_pool1d(x, kernel_size=seg_len, stride=seg_len, ceil_mode=True)
        expanded = seg.unsqueeze(-1).expand(*seg.shape, seg_len)
        return expanded.reshape(*seg.shape[:-1], -1)[..., : x.shape[-1]]


class _CAMDenseTDNNLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, bn_channels: int, dilation: int):
        super().__init__()
        self.nonlinear1 = _bn_relu(in_channels)
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1, bias=False)
        self.nonlinear2 = _bn_relu(bn_channels)
        self.cam_layer = _CAMLayer(bn_channels, out_channels, dilation)

    def forward(self, x: Tensor) -> Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))  # type: ignore[no-any-return]


class _CAMDenseTDNNBlock(nn.ModuleList):
    def __init__(self, layers: int, in_channels: int, growth: int, dilation: int) -> None:
        super().__init__()
        for i in range(layers):
            layer = _CAMDenseTDNNLayer(in_channels + i * growth, growth, 4 * growth, dilation)
            self.add_module(f"tdnnd{i + 1}", layer)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class _TransitLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.nonlinear = _bn_relu(in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.nonlinear(x))  # type: ignore[no-any-return]


class _StatsPool(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=True)], dim=-1)


class _DenseLayer(nn.Module):
    """The embedding layer: a 1x1 convolution and a batch norm without affine terms."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.nonlinear = nn.Sequential(
            OrderedDict([("batchnorm", nn.BatchNorm1d(out_channels, affine=False))])
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))  # type: ignore[no-any-return]


class CAMPPlus(nn.Module):
    """CAM++: ``(batch, frames, 80)`` mean-normalised log fbank -> ``(batch, 192)``."""

    def __init__(self, feat_dim: int = 80, embedding_size: int = 192) -> None:
        super().__init__()
        self.head = _FCM(feat_dim=feat_dim)
        channels = self.head.out_channels
        self.xvector = nn.Sequential(OrderedDict([("tdnn", _TDNNLayer(channels, 128))]))
        channels = 128
        for i, (layers, dilation) in enumerate(((12, 1), (24, 2), (16, 2))):
            self.xvector.add_module(
                f"block{i + 1}", _CAMDenseTDNNBlock(layers, channels, 32, dilation)
            )
            channels += layers * 32
            self.xvector.add_module(f"transit{i + 1}", _TransitLayer(channels, channels // 2))
            channels //= 2
        self.xvector.add_module("out_nonlinear", _bn_relu(channels))
        self.xvector.add_module("stats", _StatsPool())
        self.xvector.add_module("dense", _DenseLayer(channels * 2, embedding_size))

    def forward(self, features: Tensor) -> Tensor:
        return self.xvector(self.head(features.permute(0, 2, 1)))  # type: ignore[no-any-return]

    def frames(self, features: Tensor) -> Tensor:
        """The frame-level features the embedding pools: ``(batch, 512, ceil(frames / 2))``."""
        out: Tensor = self.head(features.permute(0, 2, 1))
        for name, layer in self.xvector.named_children():
            if name == "stats":
                break
            out = layer(out)
        return out
