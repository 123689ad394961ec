"""Scoring a vocoder on clips: the model and Griffin-Lim from the same mel, and the few-step schedule search.

Every clip is scored on its own (the vocoder runs on the whole clip, any length; the output is cut to the clip's
length), then the per-clip metrics are averaged (`PROTOCOL_METRICS`): log-mel distance (metrics.log_mel_distance,
at 22,050 Hz), WaveGrad's objective metrics LS-MSE, MCD and FFE (Chen et al. 2021, sec. 5), the multi-resolution
STFT distance, and the real-time factor (compute seconds / audio seconds, this process's threads). Sampling
seeds are fixed per clip (seed + clip index).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import torch
from torch import Tensor

from omnidiffusion.core.checks import positive_int, real_number

from .mel import check_waveform
from .metrics import (
    griffin_lim,
    log_mel_distance,
    ls_mse,
    mel_cepstral_distortion,
    mr_stft_distance,
    real_time_factor,
    to_metric_rate,
)
from .noise import search_schedule
from .pipeline import WaveGrad
from .pitch import f0_frame_error


def _mean(rows: list[dict], key: str) -> float:
    return float(statistics.fmean(r[key] for r in rows))


PROTOCOL_METRICS = {
    "log_mel_distance": "mean |log-mel difference|, MelSpectrogram(22050, 1024, 1024, 256, 80 mels, 0-8 kHz, power 1)",
    "ls_mse": "mean squared log-mel difference, same mel (WaveGrad's LS-MSE)",
    "mcd": "mel cepstral distortion in dB, DCT-II cepstra 1-13 of the same log-mel",
    "ffe": "F0 frame error (YIN f0, 50-550 Hz, hop 256 at 22,050 Hz; voicing or > 20 % pitch errors)",
    "mr_stft": "multi-resolution STFT distance (spectral convergence + log-magnitude L1)",
    "rtf": "compute seconds per second of audio",
}


def _score(ref: Tensor, est: Tensor, sample_rate: int) -> dict:
    ref, est = ref[None], est[None]
    return {
        "log_mel_distance": float(log_mel_distance(ref, est, sample_rate)[0]),
        "ls_mse": float(ls_mse(ref, est, sample_rate)[0]),
        "mcd": float(mel_cepstral_distortion(ref, est, sample_rate)[0]),
        "ffe": float(f0_frame_error(to_metric_rate(ref, sample_rate), to_metric_rate(est, sample_rate))[0]),
        "mr_stft": float(mr_stft_distance(ref, est)[0]),
    }


def _check_clips(clips: Sequence[Tensor], what: str = "waveform") -> None:
    """Each clip a finite mono float waveform (N,) of at least 2 samples; at least one clip."""
    if len(clips) == 0:
        raise ValueError(f"clips: expected at least one {what}, got none")
    for i, clip in enumerate(clips):
        if isinstance(clip, Tensor) and clip.ndim != 1:
            raise ValueError(f"clips[{i}]: expected a mono waveform (N,), got shape {tuple(clip.shape)}")
        check_waveform(clip, f"clips[{i}]")


def evaluate_model(
    model: WaveGrad,
    clips: Sequence[Tensor],
    *,
    method: str = "ddpm",
    iterations: int = 6,
    betas: Sequence[float] | Tensor | None = None,
    steps: int | None = None,
    seed: int = 0,
    return_audio: bool = False,
) -> dict:
    """Mean (and per-clip) log-mel distance, MR-STFT distance and RTF of the model on `clips` (each (N,))."""
    _check_clips(clips)
    rows, outputs = [], []
    sr = model.sample_rate
    for i, clip in enumerate(clips):
        mel = model.mel(clip, cover=True)[0]
        rtf, out = real_time_factor(
            lambda mel=mel, clip=clip, i=i: model.vocode(
                mel, iterations=iterations, betas=betas, method=method, steps=steps, seed=seed + i, length=clip.numel()
            ),
            clip.numel() / sr,
        )
        rows.append({**_score(clip, out, sr), "rtf": rtf, "seconds": clip.numel() / sr})
        outputs.append(out)
    result = {
        **{k: _mean(rows, k) for k in PROTOCOL_METRICS if k != "rtf"},
        "rtf": sum(r["rtf"] * r["seconds"] for r in rows) / sum(r["seconds"] for r in rows),
        "clips": rows,
    }
    if return_audio:
        result["audio"] = outputs
    return result


def evaluate_griffin_lim(
    model_or_mel, clips: Sequence[Tensor], *, n_iter: int = 32, return_audio: bool = False
) -> dict:
    """Griffin-Lim (32 iterations) from the same log-mel the vocoder gets, scored like the model."""
    config = model_or_mel.mel_config if isinstance(model_or_mel, WaveGrad) else model_or_mel
    _check_clips(clips)
    rows, outputs = [], []
    from .mel import covering_log_mel

    for i, clip in enumerate(clips):
        mel = covering_log_mel(clip, config)
        rtf, out = real_time_factor(
            lambda mel=mel, clip=clip, i=i: griffin_lim(mel, config, n_iter=n_iter, length=clip.numel(), seed=i)[0],
            clip.numel() / config.sample_rate,
        )
        rows.append({**_score(clip, out, config.sample_rate), "rtf": rtf, "seconds": clip.numel() / config.sample_rate})
        outputs.append(out)
    result = {
        **{k: _mean(rows, k) for k in PROTOCOL_METRICS if k != "rtf"},
        "rtf": sum(r["rtf"] * r["seconds"] for r in rows) / sum(r["seconds"] for r in rows),
        "clips": rows,
    }
    if return_audio:
        result["audio"] = outputs
    return result


def search_model_schedule(
    model: WaveGrad,
    clips: Sequence[Tensor],
    *,
    steps: int = 6,
    sweeps: int = 1,
    max_seconds: float | None = 1.5,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Search a `steps`-iteration schedule on validation clips (cut to max_seconds) by log-mel distance.

    Stores the result in model.schedules[steps] and returns {"betas", "score", "trials", "default_score"}.
    """
    steps, sweeps = positive_int(steps, "steps"), positive_int(sweeps, "sweeps")
    _check_clips(clips, "validation waveform")
    sr = model.sample_rate
    cut = list(clips)
    if max_seconds is not None:
        max_seconds = real_number(max_seconds, "max_seconds", low=0, low_open=True)
        n = int(max_seconds * sr)
        if n < 2:
            raise ValueError(
                f"max_seconds: expected at least 2 samples' worth ({2 / sr:.2g} s at {sr} Hz), got {max_seconds:g}"
            )
        cut = [c[:n] for c in clips]
    mels = [model.mel(c, cover=True)[0] for c in cut]

    def score(betas: Tensor) -> float:
        total = 0.0
        for i, (clip, mel) in enumerate(zip(cut, mels, strict=True)):
            out = model.vocode(mel, betas=betas, seed=seed + i, length=clip.numel())
            total += float(log_mel_distance(clip[None], out[None], sr)[0])
        return total / len(cut)

    with torch.no_grad():
        betas, best, trials = search_schedule(score, steps, sweeps=sweeps, progress=progress)
    model.schedules[steps] = betas.tolist()
    return {"betas": betas.tolist(), "score": best, "trials": trials, "default_score": trials[0]["score"]}
