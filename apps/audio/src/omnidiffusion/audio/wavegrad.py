"""The WaveGrad network (Chen et al. 2021, sec. 3 and Fig. 3-6): eps_hat(y_noisy, mel, sqrt(alpha_bar)).

Upsampling path: a 3-tap conv lifts the log-mel (B, n_mels, F) to `mel_channels`, then one UBlock per
upsampling factor grows it to F * hop samples (the product of the factors is the hop length: 5,5,3,2,2 for
300; 4,4,4,2,2 for 256). Downsampling path: a 5-tap conv lifts the noisy waveform (B, 1, L) to
`down_channels[0]`, then DBlocks shrink it by the reversed factors; after the stem and every DBlock a FiLM module
turns the features plus a positional encoding of the noise level into (shift, scale), which modulate the UBlock
of the same resolution: h -> shift + scale * h. The net knows nothing of schedules: it takes the continuous
noise level sqrt(alpha_bar) in [0, 1] itself (task.py maps core's time t to it).

Execution: the layers are Conv1d modules (their weights are the saved ones), but forward runs every signal as a
(B, C, 1, L) tensor through conv2d with (1, k) kernels: the same maths. Under bf16 / fp16 the signals are kept in
channels-last memory, where oneDNN's CPU kernels are several times faster than for conv1d; fp32 keeps the usual
layout, which is faster there.

WaveGrad Base: mel 768 channels, UBlocks 512, 512, 256, 128, 128 with dilations (1,2,1,2) x2 then (1,2,4,8) x3,
DBlocks 32 -> 128, 128, 256, 512 with dilations 1, 2, 4; 15.8 M parameters at 128 mels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnidiffusion.core.io import ConfigurableModule

PE_SCALE = 5000.0  # the noise level is multiplied by this before the sinusoids (Chen et al. 2021, sec. 3.2)


def noise_level_encoding(noise_level: Tensor, channels: int, scale: float = PE_SCALE) -> Tensor:
    """Transformer-style positional encoding of scale * sqrt(alpha_bar): (B,) -> (B, channels).

    Chen et al. 2021, eq. (7) with Vaswani et al.'s sinusoids: [sin(s l 10^(-4k/h)), cos(s l 10^(-4k/h))], h = C/2.
    """
    half = channels // 2
    freq = torch.exp(-math.log(1e4) * torch.arange(half, device=noise_level.device, dtype=torch.float32) / half)
    arg = scale * noise_level.float()[:, None] * freq[None]  # (B, half)
    enc = torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)
    if channels % 2:
        enc = F.pad(enc, (0, 1))
    return enc


def _layout(x: Tensor) -> torch.memory_format:
    """The memory format a (B, C, 1, L) signal runs in: channels-last or the usual contiguous one."""
    last = x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if last else torch.contiguous_format


def _apply(conv: nn.Conv1d, x: Tensor) -> Tensor:
    """`conv` applied to x (B, C, 1, L) as a conv2d with a (1, k) kernel: (B, C_out, 1, L_out), x's layout."""
    fmt = _layout(x)
    w = conv.weight.unsqueeze(2).contiguous(memory_format=fmt)
    return F.conv2d(x.contiguous(memory_format=fmt), w, conv.bias, 1, (0, conv.padding[0]), (1, conv.dilation[0]))


def _resize(x: Tensor, size: int) -> Tensor:
    """Nearest-neighbour resampling of (B, C, 1, L) to length `size` (F.interpolate's "nearest" rule)."""
    return F.interpolate(x, size=(1, size))


def _to_2d(x: Tensor, fmt: torch.memory_format) -> Tensor:
    """(B, C, L) -> (B, C, 1, L) in memory format `fmt`."""
    x = x.unsqueeze(2)
    if fmt == torch.channels_last and x.shape[1] == 1:  # one channel: pad to 2 so the layout can be told apart
        return x.contiguous()
    return x.contiguous(memory_format=fmt)


def _reduced_precision(x: Tensor) -> bool:
    """True when convolutions on x run in bf16 / fp16 (the dtype itself or autocast on x's device)."""
    if x.dtype in (torch.bfloat16, torch.float16):
        return True
    device = x.device.type
    return torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) in (torch.bfloat16, torch.float16)


class FiLMBlock(nn.Module):
    """WaveGrad FiLM (Fig. 6): conv3 -> leaky ReLU -> + noise-level encoding -> conv3 giving (shift, scale)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_conv = nn.Conv1d(in_channels, in_channels, 3, padding=1)
        self.out_conv = nn.Conv1d(in_channels, 2 * out_channels, 3, padding=1)
        for conv in (self.in_conv, self.out_conv):
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, h: Tensor, noise_level: Tensor) -> tuple[Tensor, Tensor]:
        h = F.leaky_relu(_apply(self.in_conv, h), 0.2)  # (B, C_in, 1, L)
        h = h + noise_level_encoding(noise_level, h.shape[1]).to(h.dtype)[:, :, None, None]
        out = _apply(self.out_conv, h)
        fmt = _layout(out)
        shift, scale = out.chunk(2, dim=1)  # 2 x (B, C_out, 1, L), made dense again so elementwise ops keep the layout
        return shift.contiguous(memory_format=fmt), scale.contiguous(memory_format=fmt)


def _conv(cin: int, cout: int, dilation: int) -> nn.Conv1d:
    conv = nn.Conv1d(cin, cout, 3, padding=dilation, dilation=dilation)
    nn.init.orthogonal_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class UBlock(nn.Module):
    """Upsampling block (Fig. 3): residual = 1x1 conv of the upsampled input; two FiLM-modulated conv pairs."""

    def __init__(self, cin: int, cout: int, factor: int, dilations: Sequence[int]) -> None:
        super().__init__()
        if len(dilations) != 4:
            raise ValueError(f"dilations: expected 4 per UBlock, got {list(dilations)}")
        self.factor = factor
        self.skip = nn.Conv1d(cin, cout, 1)
        self.convs = nn.ModuleList([_conv(cin, cout, dilations[0])] + [_conv(cout, cout, d) for d in dilations[1:]])

    def forward(self, x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
        size = x.shape[-1] * self.factor
        # 1x1 conv, then nearest-neighbour upsampling: equal to the reverse order and `factor` times cheaper
        skip = _resize(_apply(self.skip, x), size)  # (B, C_out, 1, L * factor)
        h = _resize(F.leaky_relu(x, 0.2), size)
        h = _apply(self.convs[0], h)
        h = _apply(self.convs[1], F.leaky_relu(shift + scale * h, 0.2))
        x = h + skip
        h = _apply(self.convs[2], F.leaky_relu(shift + scale * x, 0.2))
        h = _apply(self.convs[3], F.leaky_relu(shift + scale * h, 0.2))
        return x + h


class DBlock(nn.Module):
    """Downsampling block (Fig. 4): interpolate down, three dilated convs (1, 2, 4) with a 1x1 residual."""

    def __init__(self, cin: int, cout: int, factor: int) -> None:
        super().__init__()
        self.factor = factor
        self.skip = nn.Conv1d(cin, cout, 1)
        self.convs = nn.ModuleList([_conv(cin, cout, 1), _conv(cout, cout, 2), _conv(cout, cout, 4)])

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-1] // self.factor
        h = _resize(x, size)  # (B, C_in, 1, L / factor)
        skip = _apply(self.skip, h)  # pick samples, then the 1x1 conv: equal to the reverse order, cheaper
        for conv in self.convs:
            h = _apply(conv, F.leaky_relu(h, 0.2))
        return h + skip


class WaveGradNet(ConfigurableModule):
    """eps_hat = net(y_noisy (B, 1, L), noise_level (B,), mel (B, n_mels, F)) with L = F * prod(factors)."""

    def __init__(
        self,
        n_mels: int = 128,
        factors: Sequence[int] = (5, 5, 3, 2, 2),
        mel_channels: int = 768,
        up_channels: Sequence[int] = (512, 512, 256, 128, 128),
        up_dilations: Sequence[Sequence[int]] = ((1, 2, 1, 2), (1, 2, 1, 2), (1, 2, 4, 8), (1, 2, 4, 8), (1, 2, 4, 8)),
        down_channels: Sequence[int] = (32, 128, 128, 256, 512),
        mel_offset: float = 5.0,
        mel_scale: float = 4.0,
    ) -> None:
        super().__init__()
        n = len(factors)
        if n < 1 or any(int(f) != f or f < 1 for f in factors):
            raise ValueError(f"factors: expected positive ints, got {list(factors)}")
        if len(up_channels) != n or len(up_dilations) != n or len(down_channels) != n:
            raise ValueError(
                f"up_channels, up_dilations, down_channels: expected {n} entries each (one per factor), got "
                f"{len(up_channels)}, {len(up_dilations)}, {len(down_channels)}"
            )
        self.n_mels = n_mels
        self.factors = tuple(int(f) for f in factors)
        self.hop_length = math.prod(self.factors)
        self.mel_offset, self.mel_scale = mel_offset, mel_scale
        self.mel_conv = nn.Conv1d(n_mels, mel_channels, 3, padding=1)
        ups, cin = [], mel_channels
        for f, c, d in zip(self.factors, up_channels, up_dilations, strict=True):
            ups.append(UBlock(cin, c, f, d))
            cin = c
        self.ups = nn.ModuleList(ups)
        self.out_conv = nn.Conv1d(cin, 1, 3, padding=1)
        # Down path from full resolution: factors reversed, the coarsest up factor is not undone.
        down_factors = list(reversed(self.factors))[: n - 1]
        self.stem = nn.Conv1d(1, down_channels[0], 5, padding=2)
        self.downs = nn.ModuleList(
            [DBlock(down_channels[i], down_channels[i + 1], down_factors[i]) for i in range(n - 1)]
        )
        # FiLM i reads down features at resolution i (0 = full) and modulates the UBlock of that resolution.
        ups_at_res = list(reversed(up_channels))
        self.films = nn.ModuleList([FiLMBlock(down_channels[i], ups_at_res[i]) for i in range(n)])

    def forward(self, y: Tensor, noise_level: Tensor, mel: Tensor) -> Tensor:
        if y.ndim != 3 or y.shape[1] != 1:
            raise ValueError(f"y: expected (B, 1, L), got {tuple(y.shape)}")
        if mel.ndim != 3 or mel.shape[1] != self.n_mels:
            raise ValueError(f"mel: expected (B, {self.n_mels}, F), got {tuple(mel.shape)}")
        if y.shape[-1] != mel.shape[-1] * self.hop_length:
            raise ValueError(
                f"y: expected {mel.shape[-1]} frames x hop {self.hop_length} = {mel.shape[-1] * self.hop_length} "
                f"samples, got {y.shape[-1]}"
            )
        noise_level = noise_level.reshape(-1).expand(y.shape[0]) if noise_level.numel() == 1 else noise_level
        # Channels-last runs much faster under bf16 on CPU (oneDNN); fp32 is faster in the usual layout.
        fmt = torch.channels_last if _reduced_precision(y) else torch.contiguous_format
        h = _apply(self.stem, _to_2d(y, fmt))  # (B, C0, 1, L)
        if fmt == torch.channels_last:
            h = h.contiguous(memory_format=fmt)
        conds = [self.films[0](h, noise_level)]
        for i, down in enumerate(self.downs):
            h = down(h)  # (B, C_{i+1}, 1, L / prod(down factors so far))
            conds.append(self.films[i + 1](h, noise_level))
        x = _apply(self.mel_conv, _to_2d((mel + self.mel_offset) / self.mel_scale, fmt))  # (B, mel_channels, 1, F)
        for up, (shift, scale) in zip(self.ups, reversed(conds), strict=True):
            x = up(x, shift, scale)  # (B, C, 1, F * factors so far)
        return _apply(self.out_conv, F.leaky_relu(x, 0.2))[:, :, 0].contiguous()  # (B, 1, L)


def small_config(n_mels: int = 80, factors: Sequence[int] = (4, 4, 4, 2, 2)) -> dict:
    """A CPU-sized WaveGrad: the Base layout with channels divided by about 6 (for tests and defaults)."""
    return {
        "n_mels": n_mels,
        "factors": list(factors),
        "mel_channels": 128,
        "up_channels": [96, 96, 48, 24, 24],
        "down_channels": [8, 24, 24, 48, 96],
    }
