"""F0 tracking and the F0 frame error (FFE), one of WaveGrad's objective metrics.

- `track_f0(wav, sample_rate)`: per-frame f0 and voicing with YIN (de Cheveigne & Kawahara 2002): the cumulative
  mean normalised difference d'(tau) of each frame, the first lag where d' dips under `threshold` (then the
  bottom of that dip, refined by a parabola), f0 = sample_rate / lag. A frame is voiced when such a dip exists
  in the lag range of [f_min, f_max] and its RMS is at least `silence` (absolute, samples in [-1, 1]).
  Frames are centred on k * hop (zero padding at both ends), N // hop + 1 of them.
- `f0_frame_error(ref, est)` (Chu & Alwan 2009): the fraction of frames with a voicing decision error (voiced in
  one signal, unvoiced in the other) or a gross pitch error (voiced in both, |f0_est / f0_ref - 1| > 20 %).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from omnidiffusion.core.checks import positive_int, real_number

from .mel import check_waveform

F0_MIN, F0_MAX = 50.0, 550.0  # Hz; covers low male to high female speaking voices
YIN_THRESHOLD = 0.15
SILENCE_RMS = 1e-3  # -60 dBFS
GROSS_ERROR = 0.2


def _frames(wav: Tensor, length: int, hop: int) -> Tensor:
    """(B, N) -> (B, F, length) windows starting at k * hop - length // 2, F = N // hop + 1 (zero padded)."""
    n = wav.shape[-1]
    count = n // hop + 1
    padded = F.pad(wav, (length // 2, length + count * hop))
    return padded.unfold(-1, length, hop)[:, :count]


def track_f0(
    wav: Tensor,
    sample_rate: int,
    *,
    hop_length: int = 256,
    f_min: float = F0_MIN,
    f_max: float = F0_MAX,
    threshold: float = YIN_THRESHOLD,
    silence: float = SILENCE_RMS,
) -> tuple[Tensor, Tensor]:
    """(f0 in Hz, voiced) per frame of `wav` (N,) / (B, N) / (B, 1, N) -> two (B, N // hop + 1) tensors (YIN).

    f0 is 0 where a frame is unvoiced.
    """
    wav = check_waveform(wav).double()
    sample_rate = positive_int(sample_rate, "sample_rate")
    hop = positive_int(hop_length, "hop_length")
    f_max = real_number(f_max, "f_max", low=0, low_open=True, high=sample_rate / 2)
    f_min = real_number(f_min, "f_min", low=0, low_open=True, high=f_max, high_open=True)
    threshold = real_number(threshold, "threshold", low=0, low_open=True)
    silence = real_number(silence, "silence", low=0)
    tau_min = max(2, int(sample_rate / f_max))
    tau_max = int(sample_rate / f_min) + 1
    width = tau_max + 1  # integration window of the difference function
    x = _frames(wav, width + tau_max, hop)  # (B, F, width + tau_max)
    # d(tau) = sum_{j < width} (x_j - x_{j + tau})^2 = e_0 + e_tau - 2 r(tau), r by FFT, energies by cumsum
    n_fft = 2 * x.shape[-1]
    head = F.pad(x[..., :width], (0, x.shape[-1] - width))
    r = torch.fft.irfft(torch.fft.rfft(head, n_fft).conj() * torch.fft.rfft(x, n_fft), n_fft)[..., : tau_max + 1]
    sq = F.pad(x.pow(2).cumsum(-1), (1, 0))  # sq[i] = sum_{j < i} x_j^2
    taus = torch.arange(tau_max + 1)
    energy = sq[..., taus + width] - sq[..., taus]  # (B, F, tau_max + 1): e_tau
    d = (energy[..., :1] + energy - 2.0 * r).clamp_min(0.0)
    d[..., 0] = 0.0
    # cumulative mean normalised difference: d'(tau) = d(tau) * tau / sum_{k=1..tau} d(k), d'(0) = 1
    running = d[..., 1:].cumsum(-1)
    cmnd = torch.ones_like(d)
    cmnd[..., 1:] = torch.where(running > 0, d[..., 1:] * taus[1:] / running.clamp_min(1e-300), 1.0)
    lags = taus[tau_min : tau_max + 1]
    cm = cmnd[..., tau_min : tau_max + 1]  # (B, F, L)
    below = cm < threshold
    first = below.double().argmax(-1, keepdim=True)  # first dip under the threshold (0 when none)
    after = torch.arange(cm.shape[-1]) >= first
    left_dip = torch.cumsum((~below) & after, -1) > 0
    in_dip = after & ~left_dip
    best = torch.where(in_dip, cm, torch.inf).argmin(-1)  # bottom of the first dip, (B, F)
    # parabolic refinement on d' around the bottom
    i = best.clamp(1, cm.shape[-1] - 2)
    y0, y1, y2 = (cm.gather(-1, (i + o)[..., None])[..., 0] for o in (-1, 0, 1))
    denom = y0 - 2 * y1 + y2
    shift = torch.where(denom.abs() > 1e-12, 0.5 * (y0 - y2) / denom, torch.zeros_like(denom)).clamp(-1, 1)
    lag = lags[i].double() + torch.where(best == i, shift, torch.zeros_like(shift))
    rms = x[..., tau_max // 2 : tau_max // 2 + width].pow(2).mean(-1).sqrt()
    voiced = below.any(-1) & (rms >= silence)
    f0 = torch.where(voiced, sample_rate / lag, torch.zeros_like(lag))
    return f0.float(), voiced


def f0_frame_error(
    ref: Tensor, est: Tensor, sample_rate: int = 22050, *, hop_length: int = 256, **track_kwargs
) -> Tensor:
    """Per-clip FFE in [0, 1] between `ref` and `est` (signals trimmed to equal length): (B, N) pairs -> (B,)."""
    ref, est = check_waveform(ref, "ref"), check_waveform(est, "est")
    if ref.shape[0] != est.shape[0]:
        raise ValueError(f"ref, est: expected the same batch size, got {ref.shape[0]} and {est.shape[0]}")
    n = min(ref.shape[-1], est.shape[-1])
    f_ref, v_ref = track_f0(ref[..., :n], sample_rate, hop_length=hop_length, **track_kwargs)
    f_est, v_est = track_f0(est[..., :n], sample_rate, hop_length=hop_length, **track_kwargs)
    voicing = v_ref != v_est
    both = v_ref & v_est
    gross = both & ((f_est / f_ref.clamp_min(1e-9) - 1.0).abs() > GROSS_ERROR)
    return (voicing | gross).float().mean(-1)
