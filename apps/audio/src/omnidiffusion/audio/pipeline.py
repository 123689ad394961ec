"""What downstream code calls: `WaveGrad.from_pretrained(dir).vocode(mel)` and `.resynthesize(path)`.

A pretrained directory is what `omnidiffusion-audio train` writes (core's save_pretrained: config.json with the
WaveGradNet kwargs and the mel config as metadata, model.safetensors; run_config.json, the whole AudioConfig),
plus, after `search-schedule`, schedules.json holding searched beta schedules by number of iterations.
`vocode` samples with the run config's [sampler] unless a call says otherwise, and "dpm++2m" runs on its
[schedule] (the training table); a directory without run_config.json (written before it existed, or by
`WaveGrad.save_pretrained` without a config) uses the defaults of both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from omnidiffusion.core.checks import non_negative_int, positive_int
from omnidiffusion.core.io import has_run_config, open_pretrained, save_pretrained, save_run_config, write_json

from .data import read_audio
from .mel import MelConfig, check_mel, check_waveform, covering_log_mel, log_mel
from .noise import NAMED_ITERATIONS, check_betas, inference_betas
from .settings import MAX_SEED, SAMPLER_GRIDS, AudioConfig, WaveGradSamplerConfig, WaveGradScheduleConfig
from .task import METHODS, vocode_mel
from .wavegrad import WaveGradNet

SCHEDULES_NAME = "schedules.json"


class WaveGrad:
    """A trained WaveGrad vocoder with its mel config, (optionally) searched few-step schedules and run config.

    config: the run config it was trained with (its [sampler] gives vocode's defaults, its [schedule] the table
    "dpm++2m" samples on); None: the defaults of both.
    """

    def __init__(
        self,
        net: WaveGradNet,
        mel: MelConfig,
        schedules: dict[int, list[float]] | None = None,
        *,
        config: AudioConfig | None = None,
    ) -> None:
        if net.hop_length != mel.hop_length or net.n_mels != mel.n_mels:
            raise ValueError(
                f"mel: the network expects hop {net.hop_length} and {net.n_mels} mels, got hop "
                f"{mel.hop_length} and {mel.n_mels}"
            )
        self.net = net.eval()
        self.mel_config = mel
        self.schedules = {int(k): list(v) for k, v in (schedules or {}).items()}
        self.config = config

    @property
    def sampler(self) -> WaveGradSamplerConfig:
        """The [sampler] that vocode's unset arguments come from."""
        return self.config.sampler if self.config is not None else WaveGradSamplerConfig()

    @property
    def schedule(self) -> WaveGradScheduleConfig:
        """The training table ([schedule]): what the network was trained on and "dpm++2m" samples on."""
        return self.config.schedule if self.config is not None else WaveGradScheduleConfig()

    @property
    def sample_rate(self) -> int:
        return self.mel_config.sample_rate

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, device: str | torch.device = "cpu", config: AudioConfig | None = None
    ) -> WaveGrad:
        """Load a directory written by `train` (and optionally `search-schedule`) onto `device` (or "auto").

        config: its [sampler] replaces the stored one (the CLI passes the stored config with --set applied); the
        network, its mel and its training table come from the directory. A directory without run_config.json
        takes `config` whole as its run config (or the defaults when None), as the command line does.
        """
        what = "an audio checkpoint written by `train`"
        config_cls = AudioConfig if has_run_config(directory) else None  # older checkpoints: none stored
        pre = open_pretrained(directory, WaveGradNet, config_cls=config_cls, device=device, what=what)
        if "mel" not in pre.metadata:
            raise ValueError(f"{pre.directory}/config.json: metadata has no 'mel' entry (not an audio checkpoint)")
        run = pre.config
        if config is not None:
            run = config if run is None else replace(run, sampler=config.sampler)
        schedules = {}
        path = pre.directory / SCHEDULES_NAME
        if path.is_file():
            schedules = {int(k): v["betas"] for k, v in json.loads(path.read_text()).items()}
        return cls(pre.model, MelConfig(**pre.metadata["mel"]), schedules, config=run)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the network, its mel, the searched schedules and (when there is one) the run config."""
        directory = Path(directory)
        save_pretrained(self.net, directory, metadata={"mel": self.mel_config.__dict__})
        if self.config is not None:
            save_run_config(directory, self.config)
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

    def sampling(
        self,
        *,
        iterations: int | None = None,
        betas: Sequence[float] | Tensor | None = None,
        method: str | None = None,
        steps: int | None = None,
        grid: str | None = None,
    ) -> dict:
        """The checked plan of a vocode call: {"method", "iterations" (network calls), "betas" (ddpm: the (N,)
        float64 table walked; else None), "steps" (dpm++2m; else None), "grid"}.

        An unset argument takes its [sampler] value (iterations: sampler.steps; betas: sampler.betas, used when
        neither iterations nor betas is given), and an error then names that key (`sampler.steps: ...`).
        """
        s = self.sampler
        if method is None:
            method = s.method
        elif method not in METHODS:
            raise ValueError(f"method: expected one of {list(METHODS)}, got {method!r}")
        betas_name = "betas"
        if iterations is None:
            n, n_name = s.steps, "sampler.steps"
            if betas is None and method == "ddpm" and s.betas is not None:
                betas, betas_name = s.betas, "sampler.betas"
        else:
            n, n_name = positive_int(iterations, "iterations"), "iterations"
        grid_name = "grid" if grid is not None else "sampler.grid"
        grid = s.grid if grid is None else grid
        if method == "ddpm":
            if steps is not None:
                raise ValueError(f"steps: only method 'dpm++2m' takes steps ('ddpm' walks betas), got {steps!r}")
            if grid not in ("auto", "trailing"):
                raise ValueError(
                    f"{grid_name}: method 'ddpm' walks every beta (grid 'auto' or 'trailing'), got {grid!r}"
                )
            table = self.betas(n, name=n_name) if betas is None else check_betas(betas, betas_name)
            return {"method": method, "iterations": table.numel(), "betas": table, "steps": None, "grid": "trailing"}
        if betas is not None:
            raise ValueError("betas: only method 'ddpm' walks a beta table ('dpm++2m' takes steps)")
        steps = n if steps is None else positive_int(steps, "steps")
        if grid not in SAMPLER_GRIDS:
            raise ValueError(f"{grid_name}: expected one of {list(SAMPLER_GRIDS)}, got {grid!r}")
        return {"method": method, "iterations": steps, "betas": None, "steps": steps, "grid": grid}

    def vocode(
        self,
        mel: Tensor,
        *,
        iterations: int | None = None,
        betas: Sequence[float] | Tensor | None = None,
        method: str | None = None,
        steps: int | None = None,
        grid: str | None = None,
        seed: int | None = None,
        length: int | None = None,
        clip: bool | None = None,
    ) -> Tensor:
        """Waveform(s) from log-mel (n_mels, F) -> (N,) or (B, n_mels, F) -> (B, N), N = length or F * hop.

        method "ddpm": WaveGrad's Algorithm 2 over `betas` (default: the schedule for `iterations`);
        "dpm++2m": DPM-Solver++(2M) with `steps` (default `iterations`) on the training table.
        Unset arguments come from the run config's [sampler] (see `sampling`; defaults: ddpm, 6 iterations,
        seed 0, clip on). The noise comes from a CPU generator seeded with `seed`: the same on every device.
        """
        single = isinstance(mel, Tensor) and mel.ndim == 2
        mel = check_mel(mel, self.mel_config)
        plan = self.sampling(iterations=iterations, betas=betas, method=method, steps=steps, grid=grid)
        seed = self.sampler.seed if seed is None else non_negative_int(seed, "seed", maximum=MAX_SEED)
        max_length = mel.shape[-1] * self.net.hop_length
        if length is not None:
            length = positive_int(length, "length", maximum=max_length)
        clip = self.sampler.clip if clip is None else clip
        if not isinstance(clip, bool):
            raise ValueError(f"clip: expected True or False, got {clip!r}")
        table = self.schedule.build() if plan["method"] == "dpm++2m" else None
        wav = vocode_mel(
            self.net,
            mel,
            method=plan["method"],
            betas=plan["betas"],
            steps=plan["steps"],
            grid=plan["grid"],
            table=table,
            generator=torch.Generator().manual_seed(seed),
            clip=clip,
        )[:, 0]
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
