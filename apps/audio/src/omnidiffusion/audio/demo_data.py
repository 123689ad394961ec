"""Bundled demo data: English sentences spoken by espeak-ng, or synthetic harmonic signals where it is missing.

espeak-ng (Debian/Ubuntu package `espeak-ng`) writes deterministic 22,050 Hz mono 16-bit wavs, so the spoken
corpus is generated on demand (nothing is downloaded, no wav is shipped):
  train:       the 60 sentences of `TRAIN_SENTENCES`, voice "en", 160 words/min (the WaveGrad reference protocol)
  validation:  `VALIDATION_SENTENCES`, voice "en", 160 words/min (for the schedule search)
  test:        `TEST_SENTENCES`, another voice "en-us+f3", 150 words/min (held-out voice and sentences)
Synthetic clips: sums of harmonics (amplitude 1/k) of an f0 in 90-300 Hz gliding and with 5-6 Hz vibrato,
shaped by three formant-like resonances and an attack/decay envelope, plus a little noise.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

import torch
from torch import Tensor

from omnidiffusion.core.checks import positive_int

from .data import read_audio

ESPEAK_RATE = 22050
SPLITS = {"train": ("en", 160), "validation": ("en", 160), "test": ("en-us+f3", 150)}


def _sentences(name: str) -> list[str]:
    text = files("omnidiffusion.audio").joinpath("sentences", f"{name}.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


TRAIN_SENTENCES = _sentences("train")
VALIDATION_SENTENCES = _sentences("validation")
TEST_SENTENCES = _sentences("test")


def espeak_available() -> bool:
    """Whether the espeak-ng program is on PATH."""
    return shutil.which("espeak-ng") is not None


def speak(text: str, path: str | Path, *, voice: str = "en", speed: int = 160) -> Path:
    """Write `text` spoken by espeak-ng to `path` (22,050 Hz mono wav). Raises FileNotFoundError without it."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FileNotFoundError("espeak-ng: not installed (Debian/Ubuntu: apt-get install espeak-ng)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", str(path), text], check=True, capture_output=True)
    return path


def espeak_corpus(split: str, out_dir: str | Path, *, limit: int | None = None) -> list[Path]:
    """Speak the sentences of `split` (train | validation | test) into out_dir/<split>/sNN.wav (cached)."""
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {sorted(SPLITS)}, got {split!r}")
    voice, speed = SPLITS[split]
    sentences = {"train": TRAIN_SENTENCES, "validation": VALIDATION_SENTENCES, "test": TEST_SENTENCES}[split]
    paths = []
    for i, text in enumerate(sentences[:limit], start=1):
        path = Path(out_dir) / split / f"s{i:02d}.wav"
        if not path.is_file():
            speak(text, path, voice=voice, speed=speed)
        paths.append(path)
    return paths


def synthetic_clip(sample_rate: int, seconds: float, f0: float, *, generator: torch.Generator | None = None) -> Tensor:
    """One harmonic 'voiced' clip (N,): glide + vibrato, 1/k harmonics, formant-like resonances, envelope, noise."""
    from torchaudio.functional import lfilter

    n = int(round(seconds * sample_rate))
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    r = torch.rand(6, generator=generator, dtype=torch.float64)
    glide = 1.0 + (r[0] - 0.5) * 0.3 * t / max(seconds, 1e-9)  # up to +-15 % pitch drift over the clip
    vibrato = 1.0 + 0.02 * torch.sin(2 * math.pi * (5.0 + r[1]) * t)
    phase = 2 * math.pi * torch.cumsum(f0 * glide * vibrato, 0) / sample_rate
    wav = torch.zeros(n, dtype=torch.float64)
    for k in range(1, int(0.45 * sample_rate / (f0 * 1.2)) + 1):
        wav += torch.sin(k * phase) / k
    # Formant-like two-pole resonances (centre frequencies of an open vowel, jittered per clip).
    for centre, bw in ((700.0 + 200 * r[2].item(), 130.0), (1200.0 + 400 * r[3].item(), 150.0), (2600.0, 250.0)):
        rad = math.exp(-math.pi * bw / sample_rate)
        theta = 2 * math.pi * centre / sample_rate
        a = torch.tensor([1.0, -2 * rad * math.cos(theta), rad * rad], dtype=torch.float64)
        b = torch.tensor([1.0 - rad, 0.0, 0.0], dtype=torch.float64)
        wav = wav + 0.5 * lfilter(wav, a, b, clamp=False)
    attack = (t / 0.05).clamp(max=1.0)
    decay = ((seconds - t) / 0.1).clamp(0.0, 1.0)
    wav = wav * attack * decay
    wav = wav + 0.003 * torch.randn(n, generator=generator, dtype=torch.float64)
    return (0.5 * wav / wav.abs().max().clamp_min(1e-9)).float()


def synthetic_corpus(split: str, sample_rate: int, *, count: int | None = None, seconds: float = 1.0) -> list[Tensor]:
    """Deterministic synthetic clips per split; the test split uses f0 values between the training ones."""
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {sorted(SPLITS)}, got {split!r}")
    count = {"train": 24, "validation": 2, "test": 5}[split] if count is None else count
    seed = {"train": 0, "validation": 1, "test": 2}[split]
    gen = torch.Generator().manual_seed(seed)
    offset = 0.5 if split != "train" else 0.0
    return [
        synthetic_clip(sample_rate, seconds, 90.0 + 210.0 * ((i + offset) % count) / count, generator=gen)
        for i in range(count)
    ]


def _cached(split: str, cache_dir: str | Path) -> bool:
    count = {"train": len(TRAIN_SENTENCES), "validation": len(VALIDATION_SENTENCES), "test": len(TEST_SENTENCES)}
    return all((Path(cache_dir) / split / f"s{i:02d}.wav").is_file() for i in range(1, count[split] + 1))


def demo_clips(
    split: str, sample_rate: int, cache_dir: str | Path, *, limit: int | None = None, source: str = "auto"
) -> tuple[list[Tensor], str]:
    """Bundled clips of `split` at `sample_rate`: espeak-ng speech when installed (source 'auto' or 'espeak'),
    else synthetic harmonic signals. Returns (clips, source used)."""
    if source not in ("auto", "espeak", "synthetic"):
        raise ValueError(f"source: expected 'auto', 'espeak' or 'synthetic', got {source!r}")
    if limit is not None:
        positive_int(limit, "limit")
    if source == "espeak" or (source == "auto" and (espeak_available() or _cached(split, cache_dir))):
        paths = espeak_corpus(split, cache_dir, limit=limit)
        return [read_audio(p, sample_rate) for p in paths], "espeak-ng"
    return synthetic_corpus(split, sample_rate, count=limit), "synthetic"
