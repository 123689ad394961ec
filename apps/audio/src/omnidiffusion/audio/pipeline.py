"""What downstream code calls: `WaveGrad.from_pretrained(dir).vocode(mel)` and `.resynthesize(path)`.

A pretrained directory is what `omnidiffusion-audio train` writes (core's save_pretrained: config.json with the
WaveGradNet kwargs and the mel config as metadata, model.safetensors), plus, after `search-schedule`,
schedules.json holding searched beta schedules by number of iterations.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from omnidiffusion.core.checks import non_negative_int, positive_int, resolve_device
from omnidiffusion.core.io import load_pretrained, read_pretrained_config, save_pretrained, write_json

from .data import read_audio
from .mel import MelConfig, check_mel, check_waveform, covering_log_mel, log_mel
from .noise import NAMED_ITERATIONS, check_betas, inference_betas
from .settings import MAX_SEED
from .task import METHODS, vocode_mel
from .wavegrad import WaveGradNet

SCHEDULES_NAME = "schedules.json"


class WaveGrad:
    """A trained WaveGrad vocoder with its mel config and (optionally) searched few-step schedules."""

    def __init__(self, net: WaveGradNet, mel: MelConfig, schedules: dict[int, list[float]] | None = None) -> None:
        if net.hop_length != mel.hop_length or net.n_mels != mel.n_mels:
            raise ValueError(
                f"mel: the network expects hop {net.hop_length} and {net.n_mels} mels, got hop "
                f"{mel.hop_length} and {mel.n_mels}"
            )
        self.net = net.eval()
        self.mel_config = mel
        self.schedules = {int(k): list(v) for k, v in (schedules or {}).items()}

    @property
    def sample_rate(self) -> int:
        return self.mel_config.sample_rate

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device: str | torch.device = "cpu") -> WaveGrad:
        """Load a directory written by `train` (and optionally `search-schedule`) onto `device` (or "auto")."""
        device = resolve_device(device)
        directory = Path(directory)
        net = load_pretrained(directory, map_location=device)
        if not isinstance(net, WaveGradNet):
            raise ValueError(f"{directory}: holds a {type(net).__name__}, expected a WaveGradNet")
        meta = read_pretrained_config(directory).get("metadata") or {}
        if "mel" not in meta:
            raise ValueError(f"{directory}/config.json: metadata has no 'mel' entry (not an audio checkpoint)")
        schedules = {}
        path = directory / SCHEDULES_NAME
        if path.is_file():
            schedules = {int(k): v["betas"] for k, v in json.loads(path.read_text()).items()}
        return cls(net, MelConfig(**meta["mel"]), schedules)

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        save_pretrained(self.net, directory, metadata={"mel": self.mel_config.__dict__})
        if self.schedules:
            write_json(directory / SCHEDULES_NAME, {str(k): {"betas": v} for k, v in self.schedules.items()})
        return directory

    def iteration_counts(self) -> list[int]:
        """The iteration counts `betas` knows: the named schedules and the ones searched for this model."""
        return sorted(set(NAMED_ITERATIONS) | set(self.schedules))

    def betas(self, iterations: int, *, name: str = "iterations") -> Tensor:
        """The schedule for `iterations`: a searched one when this model has it, else the named default.

        `name` is the argument named in the error for a count with no schedule (e.g. a CLI flag).
        """
        n = positive_int(iterations, name)
        if n in self.schedules:
            return check_betas(self.schedules[n], f"{SCHEDULES_NAME}[{n}]")
        if n not in NAMED_ITERATIONS:
            known = f"named {list(NAMED_ITERATIONS)}, searched {sorted(self.schedules)}" if self.schedules else "named"
            raise ValueError(
                f"{name}: expected one of {self.iteration_counts()} for method 'ddpm' ({known}; search-schedule "
                f"adds others, or pass betas), got {n}"
            )
        return inference_betas(n, name)

    def mel(self, wav: Tensor, *, cover: bool = False) -> Tensor:
        """The model's log-mel of a waveform (N,) / (B, N) / (B, 1, N) -> (B, n_mels, frames).

        cover: zero-pad the waveform first so that the frames cover all N samples (for the 'hifigan' style,
        whose N // hop frames would drop the tail); vocode(..., length=N) then returns exactly N samples.
        """
        return covering_log_mel(wav, self.mel_config) if cover else log_mel(wav, self.mel_config)

    def vocode(
        self,
        mel: Tensor,
        *,
        iterations: int = 6,
        betas: Sequence[float] | Tensor | None = None,
        method: str = "ddpm",
        steps: int | None = None,
        seed: int | None = 0,
        length: int | None = None,
        clip: bool = True,
    ) -> Tensor:
        """Waveform(s) from log-mel (n_mels, F) -> (N,) or (B, n_mels, F) -> (B, N), N = length or F * hop.

        method "ddpm": WaveGrad's Algorithm 2 over `betas` (default: the schedule for `iterations`);
        "dpm++2m": DPM-Solver++(2M) with `steps` on the training table.
        """
        single = isinstance(mel, Tensor) and mel.ndim == 2
        mel = check_mel(mel, self.mel_config)
        if method not in METHODS:
            raise ValueError(f"method: expected one of {list(METHODS)}, got {method!r}")
        iterations = positive_int(iterations, "iterations")
        if method == "ddpm":
            if steps is not None:
                raise ValueError(f"steps: only method 'dpm++2m' takes steps ('ddpm' walks betas), got {steps!r}")
            betas = self.betas(iterations) if betas is None else check_betas(betas)
        else:
            if betas is not None:
                raise ValueError("betas: only method 'ddpm' walks a beta table ('dpm++2m' takes steps)")
            steps = iterations if steps is None else positive_int(steps, "steps")
        if seed is not None:
            seed = non_negative_int(seed, "seed", maximum=MAX_SEED)
        max_length = mel.shape[-1] * self.net.hop_length
        if length is not None:
            length = positive_int(length, "length", maximum=max_length)
        if not isinstance(clip, bool):
            raise ValueError(f"clip: expected True or False, got {clip!r}")
        gen = None if seed is None else torch.Generator().manual_seed(seed)
        wav = vocode_mel(self.net, mel, method=method, betas=betas, steps=steps, generator=gen, clip=clip)[:, 0]
        if length is not None:
            wav = wav[:, :length]
        wav = wav.float().cpu()
        return wav[0] if single else wav

    def resynthesize(self, audio: str | Path | Tensor, **kwargs) -> Tensor:
        """Vocode the model's mel of a wav/flac file or a waveform (N,); returns (N,) at the model's rate."""
        wav = read_audio(audio, self.sample_rate) if isinstance(audio, str | Path) else audio
        wav = check_waveform(wav, "audio")
        if wav.shape[0] != 1:
            raise ValueError(f"audio: expected one mono waveform, got shape {tuple(wav.shape)}")
        mel = self.mel(wav.to(self.device), cover=True)
        return self.vocode(mel[0], length=wav.shape[-1], **kwargs)
