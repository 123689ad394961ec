"""Audio data as users have it: wav/flac files (soundfile), LJSpeech-style folders, and random training segments.

- `read_audio(path, sample_rate)`: mono float32 in [-1, 1]; resampled with torchaudio when `resample=True`,
  otherwise a clip at another rate is an error. Stereo files are refused unless `mix_to_mono=True`.
- `find_audio(folder)`: an LJSpeech-style folder (metadata.csv with `id|text|...` rows and wavs/<id>.wav) lists
  the metadata's clips in order (rows checked by ljspeech.read_ljspeech); any other folder lists its .wav/.flac
  files recursively, sorted.
- `SegmentDataset`: precomputes each clip's log-mel once, then `dataset[i]` cuts a random segment of
  `segment_frames` frames (and the matching frames * hop samples) from clip i; clips shorter than a segment are
  zero-padded. Offsets come from torch's global RNG, which core's `fit` checkpoints, so a resumed run sees the
  same segments.
- `FileSegmentDataset`: the same items read from disk on demand (for corpora such as LJSpeech, 24 h, that
  should not sit in memory): only the file headers are read up front; `dataset[i]` reads one random segment of
  file i (the whole file when it must be resampled) and computes the segment's mel, as HiFi-GAN's loader does.
- `data_files(config, split)`: the files of a config's dataset split ([data] format "ljspeech" or data.root).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from omnidiffusion.core.checks import positive_int

from .ljspeech import METADATA, WAVS, ljspeech_split, read_ljspeech
from .mel import MelConfig, covering_log_mel, log_mel

if TYPE_CHECKING:
    from .settings import AudioConfig

AUDIO_SUFFIXES = (".wav", ".flac")


def read_audio(
    path: str | Path,
    sample_rate: int,
    *,
    resample_to_rate: bool = True,
    mix_to_mono: bool = False,
    note: bool = False,
) -> Tensor:
    """Read a wav/flac file as a mono float32 waveform (N,) at `sample_rate`.

    Raises FileNotFoundError for a missing file, ValueError for an unreadable one, for more than one channel
    (unless mix_to_mono), for NaN/inf samples and for another sample rate when resample_to_rate is False.
    note: print one line to stderr when the file is resampled (the CLI's way of saying it converted).
    """
    path = Path(path)
    if path.is_dir():
        raise FileNotFoundError(f"{path}: is a folder, expected a wav/flac file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such audio file")
    data, rate = _read_samples(path)  # (N, channels) float32
    if data.shape[1] != 1:
        if not mix_to_mono:
            raise ValueError(
                f"{path}: expected mono audio, got {data.shape[1]} channels "
                "(mix it down first, or pass mix_to_mono=True)"
            )
        data = data.mean(axis=1, keepdims=True)
    if data.shape[0] < 2:
        raise ValueError(f"{path}: expected at least 2 samples, got {data.shape[0]}")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: expected finite samples, got NaN or inf")
    wav = torch.from_numpy(np.ascontiguousarray(data[:, 0]))
    if rate != sample_rate:
        if not resample_to_rate:
            raise ValueError(f"{path}: expected sample rate {sample_rate} Hz, got {rate} Hz")
        from torchaudio.functional import resample  # imported here: only needed at other rates

        wav = resample(wav, rate, sample_rate)
        if wav.numel() < 2:
            raise ValueError(f"{path}: expected at least 2 samples at {sample_rate} Hz, got {wav.numel()}")
        if note:
            print(f"note: {path}: resampled from {rate} Hz to {sample_rate} Hz (the model's rate)", file=sys.stderr)
    return wav


def _read_samples(path: Path) -> tuple[np.ndarray, int]:
    """(N, channels) float32 samples and the rate, with soundfile; stdlib `wave` for PCM wavs without it."""
    try:
        import soundfile as sf
    except ImportError:  # soundfile is a dependency; this keeps 16-bit wavs readable where it cannot load
        sf = None
    if sf is not None:
        try:
            return sf.read(str(path), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError) as e:
            raise ValueError(f"{path}: not a readable audio file (expected wav or flac): {e}") from None
    import wave

    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2:
                raise ValueError(f"{path}: only 16-bit PCM wavs are readable without soundfile")
            raw = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
            return raw.reshape(-1, w.getnchannels()), w.getframerate()
    except (wave.Error, EOFError) as e:
        raise ValueError(f"{path}: not a readable audio file (expected wav or flac): {e}") from None


def write_audio(path: str | Path, wav: Tensor, sample_rate: int) -> Path:
    """Write a mono waveform (N,) or (1, N) as 16-bit PCM wav (values clipped to [-1, 1])."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import soundfile as sf

    data = wav.detach().float().reshape(-1).clamp(-1, 1).cpu().numpy()
    sf.write(str(path), data, sample_rate, subtype="PCM_16")
    return path


def find_audio(folder: str | Path) -> list[Path]:
    """Audio files of an LJSpeech-style folder (metadata.csv + wavs/) or, otherwise, every wav/flac below it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (expected a folder of wav/flac files)")
    if (folder / METADATA).is_file() and (folder / WAVS).is_dir():
        files = [clip.path for clip in read_ljspeech(folder)]
    else:
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"{folder}: no .wav or .flac files found")
    return files


def load_folder(folder: str | Path, sample_rate: int, *, limit: int | None = None, note: bool = False) -> list[Tensor]:
    """Every clip of `folder` (see find_audio), or the first `limit`, as mono (N,) waveforms at `sample_rate`."""
    if limit is not None:
        positive_int(limit, "limit")
    files = find_audio(folder)
    return [read_audio(p, sample_rate, note=note) for p in files[:limit]]


class SegmentDataset(Dataset):
    """Random (audio, mel) training segments: item i = {"audio": (1, frames*hop), "mel": (n_mels, frames)}."""

    def __init__(self, clips: Sequence[Tensor], mel: MelConfig, segment_frames: int, *, repeats: int = 1) -> None:
        if not clips:
            raise ValueError("clips: expected at least one waveform, got none")
        self.config = mel
        self.frames = positive_int(segment_frames, "segment_frames")
        self.repeats = positive_int(repeats, "repeats")
        hop = mel.hop_length
        self.audio: list[Tensor] = []
        self.mels: list[Tensor] = []
        for i, clip in enumerate(clips):
            if clip.ndim != 1:
                raise ValueError(f"clips[{i}]: expected a mono waveform (N,), got shape {tuple(clip.shape)}")
            m = covering_log_mel(clip, mel)[0]  # (n_mels, N // hop + 1), or ceil(N / hop) for 'hifigan'
            # Pad both so that every clip holds at least one full segment: audio to frames * hop samples.
            frames = max(m.shape[-1], self.frames)
            need = frames * hop
            audio = F.pad(clip.float(), (0, max(0, need - clip.numel())))[:need]
            if m.shape[-1] < frames:
                m = F.pad(m, (0, frames - m.shape[-1]), value=float(np.log(1e-5)))
            self.audio.append(audio)
            self.mels.append(m)

    def __len__(self) -> int:
        return len(self.audio) * self.repeats

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        i = index % len(self.audio)
        mel = self.mels[i]
        start = int(torch.randint(0, mel.shape[-1] - self.frames + 1, ()).item())
        hop = self.config.hop_length
        audio = self.audio[i][start * hop : (start + self.frames) * hop]
        return {"audio": audio[None], "mel": mel[:, start : start + self.frames]}


def _header(path: Path) -> tuple[int, int]:
    """(samples, sample rate) of a mono wav/flac from its header; errors name the file."""
    import soundfile as sf

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such audio file")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise ValueError(f"{path}: not a readable audio file (expected wav or flac): {e}") from None
    if info.channels != 1:
        raise ValueError(f"{path}: expected mono audio, got {info.channels} channels (mix it down first)")
    if info.frames < 2:
        raise ValueError(f"{path}: expected at least 2 samples, got {info.frames}")
    return int(info.frames), int(info.samplerate)


class FileSegmentDataset(Dataset):
    """Random (audio, mel) segments read from `paths` on demand: item i = {"audio": (1, frames*hop),
    "mel": (n_mels, frames)}; files at another rate are read whole and resampled to mel.sample_rate."""

    def __init__(self, paths: Sequence[str | Path], mel: MelConfig, segment_frames: int, *, repeats: int = 1) -> None:
        if not paths:
            raise ValueError("paths: expected at least one audio file, got none")
        self.config = mel
        self.frames = positive_int(segment_frames, "segment_frames")
        self.repeats = positive_int(repeats, "repeats")
        self.paths = [Path(p) for p in paths]
        self.headers = [_header(p) for p in self.paths]  # (samples, rate) per file

    def __len__(self) -> int:
        return len(self.paths) * self.repeats

    def _segment(self, i: int, need: int) -> Tensor:
        path = self.paths[i]
        samples, rate = self.headers[i]
        if rate != self.config.sample_rate:
            wav = read_audio(path, self.config.sample_rate)
            start = int(torch.randint(0, max(wav.numel() - need, 0) + 1, ()).item())
            return wav[start : start + need]
        import soundfile as sf

        start = int(torch.randint(0, max(samples - need, 0) + 1, ()).item())
        try:
            data, _ = sf.read(str(path), start=start, stop=min(start + need, samples), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise ValueError(f"{path}: not a readable audio file (expected wav or flac): {e}") from None
        if not np.isfinite(data).all():
            raise ValueError(f"{path}: expected finite samples, got NaN or inf")
        return torch.from_numpy(np.ascontiguousarray(data[:, 0]))

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        i = index % len(self.paths)
        need = self.frames * self.config.hop_length
        audio = self._segment(i, need)
        audio = F.pad(audio, (0, need - audio.numel()))  # (frames * hop,), zero-padded when the file is shorter
        mel = log_mel(audio, self.config)[0, :, : self.frames]  # (n_mels, frames)
        return {"audio": audio[None], "mel": mel}


# ----------------------------------------------------------------------------------------------------------------
# The dataset a config names


@contextlib.contextmanager
def named_errors(name: str) -> Iterator[None]:
    """Prefix a bad-input error (ValueError, OSError) raised while using the value of `name` (a config key or a
    flag) with that name: "data.root: ...", "--input: ..."."""
    try:
        yield
    except (ValueError, OSError) as e:
        if isinstance(e, OSError) and e.filename is not None and e.strerror:
            raise ValueError(f"{name}: {e.filename}: {e.strerror}") from None
        raise ValueError(f"{name}: {e}") from None


def ljspeech_root(config: AudioConfig) -> str:
    """data.root of an LJSpeech config; refuses a missing one with the flag to pass."""
    if config.data.root is None:
        raise ValueError(
            "data.root: expected the LJSpeech-1.1 folder (metadata.csv and wavs/), got none (pass --set data.root=DIR)"
        )
    return config.data.root


def data_files(config: AudioConfig, split: str) -> tuple[list[Path], str] | None:
    """(files, description) of `split` for format 'ljspeech', or of the folder data.root; None for data.source."""
    d = config.data
    if d.format == "ljspeech":
        root = ljspeech_root(config)
        with named_errors("data.root"):
            clips = ljspeech_split(root, split, split_dir=d.split_dir)
        return [c.path for c in clips], f"{root} (LJSpeech, split {split})"
    if d.root is not None:
        with named_errors("data.root"):
            return find_audio(d.root), d.root
    return None
