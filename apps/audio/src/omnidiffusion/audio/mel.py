"""The one log-mel function: training targets, vocoder conditioning, Griffin-Lim input and every score use it.

    log_mel(wav) = log(max(MelSpectrogram(power=1)(wav), 1e-5))        (natural log of a magnitude mel)

One definition avoids the mismatch that made WaveGrad reimplementations crackle when the vocoder was fed
mels computed another way. Built on torchaudio's MelSpectrogram (centre-padded frames, HTK mel scale, Hann
window, no filterbank normalisation). A clip of N samples gives N // hop + 1 frames; frame k is centred on
sample k * hop, so the vocoder makes hop samples per frame and the output is cut back to N.

The default `MelConfig()` (22,050 Hz, FFT and window 1024, hop 256, 80 mels, 0-8,000 Hz) is also the metric's
mel (log-mel distance of the WaveGrad reference measurement, see metrics.py); `MelConfig.paper()` is WaveGrad's
24 kHz / hop 300 (12.5 ms) / window 1200 (50 ms) / FFT 2048 / 128 mels / 20 Hz-12 kHz (Chen et al. 2021, sec. 4).

`MelConfig.hifigan()` (style "hifigan") is the mel of HiFi-GAN (Kong et al. 2020) and of the TTS models trained
to feed it (22,050 Hz, FFT and window 1024, hop 256, 80 mels, 0-8,000 Hz): Slaney mel scale with Slaney
(area) normalisation, reflect padding of (n_fft - hop) / 2 on each side and uncentred frames, magnitude
sqrt(|X|^2 + 1e-9), then log(max(mel, 1e-5)). A clip of N samples gives N // hop frames; frame k covers samples
k * hop ... (k + 1) * hop - 1, so mels a TTS model predicts for HiFi-GAN vocode here unchanged.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

try:  # torchaudio's transform is the definition; the torch-only copy below serves where torchaudio cannot load
    from torchaudio.transforms import MelSpectrogram
except (ImportError, OSError):  # e.g. a torchaudio wheel built for another torch/CUDA pair
    MelSpectrogram = None

LOG_FLOOR = 1e-5
STYLES = ("torchaudio", "hifigan")
HIFIGAN_MAGNITUDE_EPS = 1e-9  # added to |X|^2 before the square root, as HiFi-GAN's mel_spectrogram does


@dataclass(frozen=True)
class MelConfig:
    """Mel-spectrogram parameters; f_max None means sample_rate / 2.

    style "torchaudio": HTK mel scale, no filterbank normalisation, centred frames (N // hop + 1 frames);
    style "hifigan": Slaney scale and normalisation, (n_fft - hop) / 2 reflect padding, N // hop frames.
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = 8000.0
    style: Literal["torchaudio", "hifigan"] = "torchaudio"

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"MelConfig.style: expected one of {list(STYLES)}, got {self.style!r}")
        for name in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MelConfig.{name}: expected a positive int, got {value!r}")
        if self.win_length > self.n_fft:
            raise ValueError(f"MelConfig.win_length: expected <= n_fft = {self.n_fft}, got {self.win_length}")
        if self.style == "hifigan" and self.hop_length > self.n_fft:
            raise ValueError(
                f"MelConfig.hop_length: style 'hifigan' expects hop_length <= n_fft = {self.n_fft}, "
                f"got {self.hop_length}"
            )
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

    @classmethod
    def hifigan(cls) -> MelConfig:
        """HiFi-GAN's LJSpeech mel (Kong et al. 2020, config_v1): 22,050 Hz, FFT/window 1024, hop 256, 80 mels,
        0-8,000 Hz, Slaney filterbank, log of max(mel, 1e-5); what common TTS acoustic models predict."""
        return cls(
            sample_rate=22050,
            n_fft=1024,
            win_length=1024,
            hop_length=256,
            n_mels=80,
            f_min=0.0,
            f_max=8000.0,
            style="hifigan",
        )

    @property
    def side_pad(self) -> int:
        """Reflect padding on each side for style 'hifigan': (n_fft - hop) // 2 (0 for 'torchaudio')."""
        return (self.n_fft - self.hop_length) // 2 if self.style == "hifigan" else 0

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


def _slaney_mel(f: Tensor) -> Tensor:
    """Slaney's mel scale (Auditory Toolbox): linear 3 f / 200 below 1 kHz, logarithmic above (27 / ln 6.4 per e)."""
    lin = f * 3.0 / 200.0
    log = 15.0 + torch.log(f.clamp_min(1e-10) / 1000.0) * (27.0 / math.log(6.4))
    return torch.where(f >= 1000.0, log, lin)


def _slaney_hz(m: Tensor) -> Tensor:
    """Inverse of _slaney_mel."""
    lin = m * 200.0 / 3.0
    log = 1000.0 * torch.exp((m - 15.0) * (math.log(6.4) / 27.0))
    return torch.where(m >= 15.0, log, lin)


def slaney_filterbank(config: MelConfig) -> Tensor:
    """(n_mels, n_fft // 2 + 1) triangles equally spaced on the Slaney mel scale, each scaled to unit area
    2 / (f_{i+2} - f_i) (Slaney normalisation); the filterbank of HiFi-GAN's and Tacotron 2's mels."""
    freqs = torch.linspace(0, config.sample_rate / 2, config.n_fft // 2 + 1, dtype=torch.float64)
    lo, hi = _slaney_mel(torch.tensor([config.f_min, config.top], dtype=torch.float64))
    edges = _slaney_hz(torch.linspace(float(lo), float(hi), config.n_mels + 2, dtype=torch.float64))
    width = edges[1:] - edges[:-1]  # (n_mels + 1,)
    rise = (freqs[None, :] - edges[:-2, None]) / width[:-1, None]  # (n_mels, n_freqs)
    fall = (edges[2:, None] - freqs[None, :]) / width[1:, None]
    triangles = torch.clamp(torch.minimum(rise, fall), min=0.0)
    return triangles * (2.0 / (edges[2:] - edges[:-2]))[:, None]


class _HifiganMel(nn.Module):
    """HiFi-GAN's magnitude mel: reflect pad (n_fft - hop) / 2, uncentred STFT, sqrt(|X|^2 + 1e-9), Slaney fb."""

    def __init__(self, config: MelConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("fb", slaney_filterbank(config).float())  # (n_mels, n_freqs)
        self.register_buffer("window", torch.hann_window(config.win_length))

    def forward(self, wav: Tensor) -> Tensor:
        c = self.config
        pad = c.side_pad
        x = torch.nn.functional.pad(wav[:, None], (pad, pad), mode="reflect")[:, 0]  # (B, N + 2 pad)
        spec = torch.stft(
            x,
            c.n_fft,
            hop_length=c.hop_length,
            win_length=c.win_length,
            window=self.window,
            center=False,
            return_complex=True,
        )  # (B, n_freqs, F)
        mag = torch.sqrt(spec.real**2 + spec.imag**2 + HIFIGAN_MAGNITUDE_EPS)
        return torch.matmul(self.fb, mag)  # (B, n_mels, F)


@functools.lru_cache(maxsize=16)
def _transform(config: MelConfig) -> nn.Module:
    if config.style == "hifigan":
        return _HifiganMel(config)
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
    """Mel frames of a clip of `num_samples` samples: N // hop + 1 (centred frames), N // hop for style
    'hifigan' (at least `hop` samples)."""
    if config.style == "hifigan":
        return (num_samples + 2 * config.side_pad - config.n_fft) // config.hop_length + 1
    return num_samples // config.hop_length + 1


def covering_length(num_samples: int, config: MelConfig) -> int:
    """Samples to zero-pad a clip to so that frames * hop >= num_samples (a multiple of hop for 'hifigan')."""
    if config.style == "hifigan":
        return -(-num_samples // config.hop_length) * config.hop_length
    return num_samples


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
    if config.style == "hifigan":
        n = wav.shape[-1]
        if n < config.hop_length:
            raise ValueError(
                f"wav: expected at least hop_length = {config.hop_length} samples for a 'hifigan' mel, got {n}"
            )
        need = max(config.side_pad + 1, config.n_fft - 2 * config.side_pad)
        if n < need:  # reflect padding needs more samples than the pad; zero-pad short clips first
            return transform(torch.nn.functional.pad(wav.float(), (0, need - n)))[..., : num_frames(n, config)]
        return transform(wav.float())
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


def covering_log_mel(wav: Tensor, config: MelConfig = MelConfig()) -> Tensor:
    """log_mel of `wav` zero-padded to covering_length, so that vocoding its frames gives >= N samples."""
    wav = check_waveform(wav)
    n = wav.shape[-1]
    return log_mel(torch.nn.functional.pad(wav, (0, covering_length(n, config) - n)), config)


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
