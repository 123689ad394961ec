"""Vocoder metrics and the classical baseline.

- Log-mel distance: mean |log max(M_ref, 1e-5) - log max(M_est, 1e-5)| with M = MelSpectrogram(22,050 Hz, FFT and
  window 1024, hop 256, 80 mels, 0-8,000 Hz, power 1), signals trimmed to equal length; the exact function of the
  measured WaveGrad reference, so figures compare with it. It is `log_mel` with the default MelConfig. A signal
  at half amplitude scores log 2 = 0.69 (the mel is linear in amplitude).
- Multi-resolution STFT distance: spectral convergence ||S_ref - S_est||_F / ||S_ref||_F plus mean
  |log S_ref - log S_est| at FFT/hop/window (1024,120,600), (2048,240,1200), (512,50,240), Hann, averaged over
  resolutions (Yamamoto et al. 2020, eqs. 1-3).
- LS-MSE: mean squared log-mel difference, same mel (WaveGrad's objective "log-mel spectrogram mean squared
  error", Chen et al. 2021, sec. 5).
- MCD: mel cepstral distortion (10 sqrt(2) / ln 10) * mean_frames ||c_ref - c_est||_2 over cepstral
  coefficients 1..13 (c0, the level, excluded), the cepstrum being the orthonormal DCT-II of the natural-log mel
  of the metric mel (Kubichek 1993's formula on MFCC-style cepstra; comparable between systems here, not with
  SPTK mel-cepstra). A gain change moves only c0, so it scores 0.
- FFE (F0 frame error, Chu & Alwan 2009): in pitch.py.
- Real-time factor: compute seconds per second of audio.
- Griffin-Lim from the same log-mel (torchaudio: least-squares InverseMelScale, then GriffinLim, 32 iterations).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .mel import LOG_FLOOR, MelConfig, check_waveform, log_mel

METRIC_MEL = MelConfig()  # 22,050 Hz / 1024 / 256 / 80 mels / 0-8 kHz, power 1
MR_STFT_RESOLUTIONS = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
MCD_COEFFS = 13
MCD_SCALE = 10.0 * math.sqrt(2.0) / math.log(10.0)  # dB, Kubichek 1993


def _pair(ref: Tensor, est: Tensor) -> tuple[Tensor, Tensor]:
    ref, est = check_waveform(ref, "ref"), check_waveform(est, "est")
    if ref.shape[0] != est.shape[0]:
        raise ValueError(f"ref, est: expected the same batch size, got {ref.shape[0]} and {est.shape[0]}")
    n = min(ref.shape[-1], est.shape[-1])
    return ref[..., :n].float(), est[..., :n].float()


def to_metric_rate(wav: Tensor, sample_rate: int) -> Tensor:
    """Resample a waveform to the metric's 22,050 Hz (no-op when already there)."""
    if sample_rate == METRIC_MEL.sample_rate:
        return wav
    from torchaudio.functional import resample  # imported here: only needed at other rates

    return resample(wav, sample_rate, METRIC_MEL.sample_rate)


def log_mel_distance(ref: Tensor, est: Tensor, sample_rate: int = 22050) -> Tensor:
    """Per-clip mean |log-mel(ref) - log-mel(est)| (metric mel, 22,050 Hz): (B, N) / (B, 1, N) pairs -> (B,)."""
    ref, est = _pair(ref, est)
    ref, est = to_metric_rate(ref, sample_rate), to_metric_rate(est, sample_rate)
    return (log_mel(ref, METRIC_MEL) - log_mel(est, METRIC_MEL)).abs().mean(dim=(1, 2))


def _metric_log_mels(ref: Tensor, est: Tensor, sample_rate: int) -> tuple[Tensor, Tensor]:
    ref, est = _pair(ref, est)
    ref, est = to_metric_rate(ref, sample_rate), to_metric_rate(est, sample_rate)
    return log_mel(ref, METRIC_MEL), log_mel(est, METRIC_MEL)  # 2 x (B, n_mels, F)


def ls_mse(ref: Tensor, est: Tensor, sample_rate: int = 22050) -> Tensor:
    """Per-clip mean (log-mel(ref) - log-mel(est))^2 on the metric mel: (B, N) / (B, 1, N) pairs -> (B,)."""
    a, b = _metric_log_mels(ref, est, sample_rate)
    return (a - b).pow(2).mean(dim=(1, 2))


def dct_ii(x: Tensor, dim: int = -1) -> Tensor:
    """Orthonormal DCT-II along `dim`: X_k = s_k sum_n x_n cos(pi k (2n + 1) / (2N)), s_0 = sqrt(1/N), else
    s_k = sqrt(2/N)."""
    n = x.shape[dim]
    k = torch.arange(n, dtype=torch.float64)
    basis = torch.cos(math.pi * k[:, None] * (2 * k[None, :] + 1) / (2 * n))  # (k, n)
    basis[0] *= math.sqrt(1.0 / n)
    basis[1:] *= math.sqrt(2.0 / n)
    out = torch.tensordot(x.movedim(dim, -1).double(), basis.T.to(x.device), dims=1)
    return out.movedim(-1, dim).to(x.dtype)


def mel_cepstral_distortion(
    ref: Tensor, est: Tensor, sample_rate: int = 22050, *, n_coeffs: int = MCD_COEFFS
) -> Tensor:
    """Per-clip MCD in dB from the metric log-mel's cepstra 1..n_coeffs: pairs (B, N) -> (B,)."""
    a, b = _metric_log_mels(ref, est, sample_rate)
    return mcd_from_log_mels(a, b, n_coeffs=n_coeffs)


def mcd_from_log_mels(a: Tensor, b: Tensor, *, n_coeffs: int = MCD_COEFFS) -> Tensor:
    """MCD (dB) of two natural-log mels (B, n_mels, F): K * mean_F ||DCT(a - b)[1 : n_coeffs + 1]||_2 -> (B,)."""
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(
            f"a, b: expected two log-mels of one shape (B, n_mels, F), got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    if not 1 <= n_coeffs < a.shape[1]:
        raise ValueError(f"n_coeffs: expected an integer in [1, {a.shape[1] - 1}], got {n_coeffs!r}")
    c = dct_ii((a - b).double(), dim=1)[:, 1 : n_coeffs + 1]  # (B, n_coeffs, F); the DCT is linear
    return (MCD_SCALE * torch.linalg.vector_norm(c, dim=1).mean(dim=-1)).to(a.dtype)  # (B,)


def _stft_mag(wav: Tensor, n_fft: int, hop: int, win: int) -> Tensor:
    window = torch.hann_window(win, device=wav.device)
    spec = torch.stft(wav, n_fft, hop_length=hop, win_length=win, window=window, center=True, return_complex=True)
    return spec.abs().clamp_min(LOG_FLOOR)  # (B, n_fft/2 + 1, frames)


def mr_stft_distance(ref: Tensor, est: Tensor) -> Tensor:
    """Multi-resolution STFT distance (spectral convergence + log-magnitude L1, averaged): pairs -> (B,)."""
    ref, est = _pair(ref, est)
    total = torch.zeros(ref.shape[0])
    for n_fft, hop, win in MR_STFT_RESOLUTIONS:
        if ref.shape[-1] <= n_fft // 2:
            continue
        s_ref, s_est = _stft_mag(ref, n_fft, hop, win), _stft_mag(est, n_fft, hop, win)
        sc = torch.linalg.vector_norm(s_ref - s_est, dim=(1, 2)) / torch.linalg.vector_norm(s_ref, dim=(1, 2))
        mag = (s_ref.log() - s_est.log()).abs().mean(dim=(1, 2))
        total += (sc + mag).cpu()
    return total / len(MR_STFT_RESOLUTIONS)


def real_time_factor(fn: Callable[[], Any], audio_seconds: float) -> tuple[float, Any]:
    """Run fn() once; returns (compute seconds / audio seconds, fn's result)."""
    if not audio_seconds > 0:
        raise ValueError(f"audio_seconds: expected > 0, got {audio_seconds}")
    start = time.perf_counter()
    out = fn()
    return (time.perf_counter() - start) / audio_seconds, out


def griffin_lim(
    mel: Tensor, config: MelConfig, *, n_iter: int = 32, length: int | None = None, seed: int = 0
) -> Tensor:
    """Griffin-Lim waveform (B, N) from a log-mel (B, n_mels, F) of `config` (Griffin & Lim 1984).

    exp(log-mel) -> linear magnitude by least squares (torchaudio InverseMelScale, with the Slaney filterbank for
    style 'hifigan') -> GriffinLim(power 1, momentum 0.99, 32 iterations). The random phase initialisation is
    seeded. GriffinLim's frames are centred on k * hop; a 'hifigan' frame is centred on (k + 1/2) * hop, so its
    output is delayed by hop / 2 samples.
    """
    from torchaudio.transforms import GriffinLim, InverseMelScale

    if mel.ndim == 2:
        mel = mel[None]
    inverse = InverseMelScale(
        n_stft=config.n_fft // 2 + 1,
        n_mels=config.n_mels,
        sample_rate=config.sample_rate,
        f_min=config.f_min,
        f_max=config.top,
        norm="slaney" if config.style == "hifigan" else None,
        mel_scale="slaney" if config.style == "hifigan" else "htk",
    )
    mag = inverse(mel.float().exp()).clamp_min(0.0)  # (B, n_fft/2 + 1, F)
    delay = config.hop_length // 2 if config.style == "hifigan" else 0
    gl = GriffinLim(
        n_fft=config.n_fft,
        n_iter=n_iter,
        win_length=config.win_length,
        hop_length=config.hop_length,
        power=1.0,
        length=None if delay else length,  # 'hifigan': the (F - 1) * hop samples GriffinLim's frames span
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        wav = gl(mag)
    finally:
        torch.random.set_rng_state(state)
    if delay:
        wav = torch.nn.functional.pad(wav, (delay, 0))
        if length is not None:
            wav = torch.nn.functional.pad(wav, (0, max(0, length - wav.shape[-1])))[..., :length]
    return wav
