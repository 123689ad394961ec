"""Scoring a vocoder on clips: the model and Griffin-Lim from the same mel, and the few-step schedule search.

Every clip is scored on its own (the vocoder runs on the whole clip, any length; the output is cut to the clip's
length), then the per-clip metrics are averaged (`PROTOCOL_METRICS`): log-mel distance (metrics.log_mel_distance,
at 22,050 Hz), WaveGrad's objective metrics LS-MSE, MCD and FFE (Chen et al. 2021, sec. 5), the multi-resolution
STFT distance, and the real-time factor (compute seconds / audio seconds, this process's threads). Sampling
seeds are fixed per clip (seed + clip index, seed = sampler.seed by default). `evaluation_clips` picks the clips a
command scores, `evaluate` builds the {"model", "baselines", "protocol"} report of `omnidiffusion-audio evaluate`.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from omnidiffusion.core.checks import positive_int, real_number

from .data import data_files, load_folder, named_errors, read_audio
from .demo_data import demo_clips
from .mel import check_waveform, covering_log_mel
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
from .settings import AudioConfig

SEARCH_CLIPS = 8  # LJSpeech: the default number of training-split clips the schedule search scores


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
    method: str | None = None,
    iterations: int | None = None,
    betas: Sequence[float] | Tensor | None = None,
    steps: int | None = None,
    grid: str | None = None,
    seed: int | None = None,
    return_audio: bool = False,
) -> dict:
    """Mean (and per-clip) log-mel distance, MR-STFT distance and RTF of the model on `clips` (each (N,)).

    The sampling arguments are WaveGrad.vocode's (unset: the model's [sampler]); clip i is seeded seed + i.
    """
    _check_clips(clips)
    model.sampling(iterations=iterations, betas=betas, method=method, steps=steps, grid=grid)  # checked once
    seed = model.sampler.seed if seed is None else seed
    rows, outputs = [], []
    sr = model.sample_rate
    for i, clip in enumerate(clips):
        mel = model.mel(clip, cover=True)[0]
        rtf, out = real_time_factor(
            lambda mel=mel, clip=clip, i=i: model.vocode(
                mel,
                iterations=iterations,
                betas=betas,
                method=method,
                steps=steps,
                grid=grid,
                seed=seed + i,
                length=clip.numel(),
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
    seed: int | None = None,
    progress: bool = True,
) -> dict:
    """Search a `steps`-iteration schedule on validation clips (cut to max_seconds) by log-mel distance
    (method "ddpm"; clip i seeded seed + i, seed = sampler.seed by default).

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
    seed = model.sampler.seed if seed is None else seed

    def score(betas: Tensor) -> float:
        total = 0.0
        for i, (clip, mel) in enumerate(zip(cut, mels, strict=True)):
            out = model.vocode(mel, betas=betas, method="ddpm", grid="trailing", seed=seed + i, length=clip.numel())
            total += float(log_mel_distance(clip[None], out[None], sr)[0])
        return total / len(cut)

    with torch.no_grad():
        betas, best, trials = search_schedule(score, steps, sweeps=sweeps, progress=progress)
    model.schedules[steps] = betas.tolist()
    return {"betas": betas.tolist(), "score": best, "trials": trials, "default_score": trials[0]["score"]}


# ----------------------------------------------------------------------------------------------------------------
# What the commands score


def evaluation_clips(
    config: AudioConfig,
    sample_rate: int,
    split: str,
    *,
    wav_dir: str | Path | None = None,
    limit: int | None = None,
) -> tuple[list[Tensor], str]:
    """(clips, description) scored by `evaluate` (split "test") or searched on (split "validation"): the folder
    `wav_dir` (errors name --wav-dir), else the dataset split of [data] (LJSpeech: data.eval_split for "test",
    data.split for "validation", the first SEARCH_CLIPS of it unless `limit`), else the bundled split."""
    if wav_dir:
        with named_errors("--wav-dir"):
            return load_folder(wav_dir, sample_rate, limit=limit, note=True), str(wav_dir)
    if config.data.format == "ljspeech":
        data_split = {"test": config.data.eval_split, "validation": config.data.split}[split]
        paths, source = data_files(config, data_split)
        if limit is None and split == "validation":
            limit = SEARCH_CLIPS
        with named_errors("data.root"):
            return [read_audio(p, sample_rate, note=True) for p in paths[:limit]], source
    return demo_clips(split, sample_rate, config.data.cache_dir, limit=limit)


def evaluate(model: WaveGrad, clips: Sequence[Tensor], source: str) -> dict:
    """The report of `omnidiffusion-audio evaluate`: the model (its [sampler]) and Griffin-Lim (32 iterations)
    from the same mels, scored on `clips` (PROTOCOL_METRICS), with the protocol that produced the numbers."""
    plan = model.sampling()
    ours = evaluate_model(model, clips)
    gl = evaluate_griffin_lim(model, clips)
    pick = tuple(PROTOCOL_METRICS)
    return {
        "model": {k: ours[k] for k in pick},
        "baselines": {"griffin_lim_32": {k: gl[k] for k in pick}},
        "protocol": {
            "data": source,
            "clips": len(clips),
            "seconds": sum(c.numel() for c in clips) / model.sample_rate,
            "sampler": plan["method"],
            "iterations": plan["iterations"],
            "betas": None if plan["betas"] is None else plan["betas"].tolist(),
            "grid": plan["grid"],
            "seed": model.sampler.seed,
            "threads": torch.get_num_threads(),
            "metric": "log-mel L1, MelSpectrogram(22050, 1024, 1024, 256, 80 mels, 0-8000 Hz, power 1)",
            "metrics": PROTOCOL_METRICS,
        },
    }
