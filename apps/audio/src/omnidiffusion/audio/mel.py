"""The one log-mel function: training targets, vocoder conditioning, Griffin-Lim input and every score use it.

    log_mel(wav) = log(max(MelSpectrogram(power=1)(wav), 1e-5))        (natural log of a magnitude mel)

One definition avoids the mismatch that made WaveGrad reimplementations crackle when the vocoder was fed
mels computed another way. Built on torchaudio's MelSpectrogram (centre-padded frames, HTK mel scale, Hann
window, no filterbank normalisation). A clip of N samples gives N // hop + 1 frames; frame k is centred on
sample k * hop, so the vocoder makes hop samples per frame and the output is cut back to N.

The default `MelConfig()` (22,050 Hz, FFT and window 1024, hop 256, 80 mels, 0-8,000 Hz) is also the metric's
mel (log-mel distance of the WaveGrad reference measurement, see metrics.py); `MelConfig.paper()` is WaveGrad's
24 kHz / hop 300 (12.5 ms) / window 1200 (50 ms) / FFT 2048 / 128 mels / 20 Hz-12 kHz (Chen et al. 2021, sec. 4).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

try:  # torchaudio's transform is the definition; the torch-only copy below serves where torchaudio cannot load
    from torchaudio.transforms import MelSpectrogram
except (ImportError, OSError):  # e.g. a torchaudio wheel built for another torch/CUDA pair
    MelSpectrogram = None

LOG_FLOOR = 1e-5


@dataclass(frozen=True)
class MelConfig:
    """Mel-spectrogram parameters; f_max None means sample_rate / 2."""

    sample_rate: int = 22050
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = 8000.0

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MelConfig.{name}: expected a positive int, got {value!r}")
        if self.win_length > self.n_fft:
            raise ValueError(f"MelConfig.win_length: expected <= n_fft = {self.n_fft}, got {self.win_length}")
        top = self.sample_rate / 2 if self.f_max is None else self.f_max
        if not 0 <= self.f_min < top <= self.sample_rate / 2:
            raise ValueError(
                f"MelConfig.f_min/f_max: expected 0 <= f_min < f_max <= sample_rate/2 = {self.sample_rate / 2}, "
                f"got f_min={self.f_min}, f_max={self.f_max}"
            )

    @classmethod
    def paper(cls) -> MelConfig:
        """WaveGrad's features: 24 kHz, 128 mels, 50 ms window, 12.5 ms hop, 20 Hz-12 kHz (Chen et al. 2021)."""
        return cls(
            sample_rate=24000, n_fft=2048, win_length=1200, hop_length=300, n_mels=128, f_min=20.0, f_max=12000.0
        )

    @property
    def top(self) -> float:
        return self.sample_rate / 2 if self.f_max is None else float(self.f_max)


def _hz_to_mel(f: float) -> float:
    return 2595.0 * math.log10(1.0 + f / 700.0)


class _TorchMel(nn.Module):
    """torchaudio's MelSpectrogram(power=1, centre, reflect, HTK, norm None) in plain torch (fallback only)."""

    def __init__(self, config: MelConfig) -> None:
        super().__init__()
        self.config = config
        n_freqs = config.n_fft // 2 + 1
        freqs = torch.linspace(0, config.sample_rate // 2, n_freqs, dtype=torch.float64)
        m = torch.linspace(_hz_to_mel(config.f_min), _hz_to_mel(config.top), config.n_mels + 2, dtype=torch.float64)
        f_pts = 700.0 * (10 ** (m / 2595.0) - 1.0)
        slopes = f_pts[None, :] - freqs[:, None]  # (n_freqs, n_mels + 2)
        diff = f_pts[1:] - f_pts[:-1]
        down = -slopes[:, :-2] / diff[:-1]
        up = slopes[:, 2:] / diff[1:]
        self.register_buffer("fb", torch.clamp(torch.minimum(down, up), min=0).float())  # (n_freqs, n_mels)
        self.register_buffer("window", torch.hann_window(config.win_length))

    def forward(self, wav: Tensor) -> Tensor:
        c = self.config
        spec = torch.stft(
            wav,
            c.n_fft,
            hop_length=c.hop_length,
            win_length=c.win_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        ).abs()  # (B, n_freqs, F)
        return torch.matmul(spec.transpose(-1, -2), self.fb).transpose(-1, -2)  # (B, n_mels, F)


@functools.lru_cache(maxsize=16)
def _transform(config: MelConfig) -> nn.Module:
    if MelSpectrogram is None:
        return _TorchMel(config)
    return MelSpectrogram(
        sample_rate=config.sample_rate,
        n_fft=config.n_fft,
        win_length=config.win_length,
        hop_length=config.hop_length,
        f_min=config.f_min,
        f_max=config.top,
        n_mels=config.n_mels,
        power=1.0,
        center=True,
        pad_mode="reflect",
        norm=None,
        mel_scale="htk",
    )


def num_frames(num_samples: int, config: MelConfig) -> int:
    """Mel frames of a clip of `num_samples` samples: num_samples // hop + 1 (centred frames)."""
    return num_samples // config.hop_length + 1


def check_waveform(wav: Tensor, name: str = "wav") -> Tensor:
    """Accept (N,), (1, N) or (B, 1, N) / (B, N) float waveforms; returns (B, N). Raises ValueError otherwise."""
    if not isinstance(wav, Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor waveform, got {type(wav).__name__}")
    if not wav.is_floating_point():
        raise ValueError(f"{name}: expected a float waveform in [-1, 1], got dtype {wav.dtype}")
    if wav.ndim == 3:
        if wav.shape[1] != 1:
            raise ValueError(
                f"{name}: expected mono audio (B, 1, N), got shape {tuple(wav.shape)} ({wav.shape[1]} channels)"
            )
        wav = wav[:, 0]
    elif wav.ndim == 1:
        wav = wav[None]
    elif wav.ndim != 2:
        raise ValueError(f"{name}: expected shape (N,), (B, N) or (B, 1, N), got {tuple(wav.shape)}")
    if wav.shape[-1] < 2:
        raise ValueError(f"{name}: expected at least 2 samples, got {wav.shape[-1]}")
    if not torch.isfinite(wav).all():
        raise ValueError(f"{name}: expected finite samples, got NaN or inf")
    return wav


def mel_magnitude(wav: Tensor, config: MelConfig = MelConfig()) -> Tensor:
    """Magnitude mel spectrogram (power 1) of `wav` (N,) or (B, N) or (B, 1, N) -> (B, n_mels, frames)."""
    wav = check_waveform(wav)
    transform = _transform(config).to(wav.device)
    # Reflect padding needs more samples than half the FFT; shorter clips are zero-padded on the right first.
    half = config.n_fft // 2
    if wav.shape[-1] <= half:
        n = wav.shape[-1]
        wav = torch.nn.functional.pad(wav, (0, half + 1 - n))
        return transform(wav.float())[..., : num_frames(n, config)]
    return transform(wav.float())


def log_mel(wav: Tensor, config: MelConfig = MelConfig()) -> Tensor:
    """log(max(mel, 1e-5)) of a waveform: (N,) / (B, N) / (B, 1, N) -> (B, n_mels, N // hop + 1)."""
    return torch.log(mel_magnitude(wav, config).clamp_min(LOG_FLOOR))


def check_mel(mel: Tensor, config: MelConfig, name: str = "mel") -> Tensor:
    """Accept a log-mel (n_mels, F) or (B, n_mels, F) with the config's number of bands; returns (B, n_mels, F)."""
    if not isinstance(mel, Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor log-mel spectrogram, got {type(mel).__name__}")
    if not mel.is_floating_point():
        raise ValueError(f"{name}: expected a float log-mel spectrogram, got dtype {mel.dtype}")
    if mel.ndim == 2:
        mel = mel[None]
    if mel.ndim != 3:
        raise ValueError(f"{name}: expected shape (n_mels, frames) or (B, n_mels, frames), got {tuple(mel.shape)}")
    if mel.shape[1] != config.n_mels:
        raise ValueError(
            f"{name}: expected {config.n_mels} mel bands (the model's config), got {mel.shape[1]} "
            f"(shape {tuple(mel.shape)})"
        )
    if mel.shape[2] < 1:
        raise ValueError(f"{name}: expected at least one frame, got shape {tuple(mel.shape)}")
    if not torch.isfinite(mel).all():
        raise ValueError(f"{name}: expected finite values, got NaN or inf")
    return mel
