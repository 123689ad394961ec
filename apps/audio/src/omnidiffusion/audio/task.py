"""WaveGrad as a diffusion task: the training loss and vocoding through `omnidiffusion.core.sample`.

Training (Chen et al. 2021, Algorithm 1): y_noisy = l y0 + sqrt(1 - l^2) eps with the continuous level l drawn
between adjacent levels of the training table (noise.draw_noise_levels; the [schedule] of the config, WaveGrad's
1000-step Linear(1e-6, 0.01) by default); loss = L1(eps_hat, eps).

Sampling: the network is wrapped so that core sees `net(x_t, t, mel)` with t in [0, 1]; the wrapper converts t to
the noise level alpha(t) = sqrt(alpha_bar(t)) of the schedule being sampled. WaveGrad's Algorithm 2 over a beta
table is then core's ancestral "ddpm" (fixed-small variance) on `DiscreteVP.from_betas(betas)` with the
"trailing" grid of N = len(betas) steps, which visits every table step; its last step returns x0_hat, which is
Algorithm 2's noise-free final update. The few-step DPM-Solver++ option ("dpm++2m") runs on the training table
([schedule] of the run config).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnidiffusion.core import GRIDS, Denoiser, DiscreteVP, sample
from omnidiffusion.core.checks import positive_int
from omnidiffusion.core.denoiser import clip_x0
from omnidiffusion.core.tensors import randn

from .noise import check_betas, draw_noise_levels, training_betas, training_levels
from .wavegrad import WaveGradNet

METHODS = ("ddpm", "dpm++2m")


def wavegrad_loss(model: nn.Module, batch: dict[str, Tensor], levels: Tensor | None = None) -> Tensor:
    """L1 between the drawn noise and the network's estimate (Chen et al. 2021, Algorithm 1, eq. 6).

    batch: {"audio": (B, 1, L), "mel": (B, n_mels, F)} with L = F * hop. `model` is called as
    model(y_noisy, noise_level, mel) (through the DDP wrapper when training runs under torchrun). `levels`: the
    (S + 1,) levels of the training table (noise.levels_from_betas); default WaveGrad's (noise.training_levels).
    """
    y0, mel = batch["audio"], batch["mel"]
    levels = training_levels() if levels is None else levels
    level, _ = draw_noise_levels(y0.shape[0], levels, device=y0.device)  # (B,), uses torch's global RNG
    eps = torch.randn_like(y0)
    a = level[:, None, None].to(y0.dtype)
    y_noisy = a * y0 + (1.0 - a**2).sqrt() * eps
    return F.l1_loss(model(y_noisy, level, mel), eps)


class LevelConditioned(nn.Module):
    """core-facing network: forward(x_t, t, mel) = net(x_t, alpha(t), mel), alpha = sqrt(alpha_bar) of `schedule`."""

    def __init__(self, net: WaveGradNet, schedule: DiscreteVP) -> None:
        super().__init__()
        self.net = net
        self.schedule = schedule

    def forward(self, x: Tensor, t: Tensor, mel: Tensor) -> Tensor:
        level = self.schedule.alpha(t.double()).to(device=x.device, dtype=x.dtype)  # (B,)
        return self.net(x, level, mel)


def sampling_plan(
    method: str = "ddpm",
    *,
    betas: Sequence[float] | Tensor | None = None,
    steps: int | None = None,
    grid: str = "auto",
    table: DiscreteVP | None = None,
) -> tuple[DiscreteVP, int, str]:
    """(schedule, steps, grid) for core.sample: "ddpm" walks every beta of `betas` ("trailing" grid); "dpm++2m"
    takes `steps` steps on the training `table` (default: WaveGrad's Linear(1e-6, 0.01, 1000)), on the
    log-SNR-uniform grid for grid "auto" (Lu et al. 2022) or on the core grid named."""
    if method == "ddpm":
        if betas is None:
            raise ValueError("betas: the 'ddpm' method (WaveGrad Algorithm 2) needs a beta schedule")
        if grid not in ("auto", "trailing"):
            raise ValueError(f"grid: method 'ddpm' walks every beta (grid 'auto' or 'trailing'), got {grid!r}")
        b = check_betas(betas)
        return DiscreteVP.from_betas(b, name=f"wavegrad-{b.numel()}"), int(b.numel()), "trailing"
    if method == "dpm++2m":
        if steps is None:
            raise ValueError("steps: the 'dpm++2m' method needs a number of steps >= 1, got None")
        steps = positive_int(steps, "steps")
        if grid != "auto" and grid not in GRIDS:
            raise ValueError(f"grid: expected 'auto' or one of {list(GRIDS)}, got {grid!r}")
        if table is None:
            table = DiscreteVP.from_betas(training_betas(), name="wavegrad-train")
        return table, steps, "logsnr" if grid == "auto" else grid
    raise ValueError(f"method: expected one of {METHODS}, got {method!r}")


@torch.no_grad()
def vocode_mel(
    net: WaveGradNet,
    mel: Tensor,
    *,
    method: str = "ddpm",
    betas: Sequence[float] | Tensor | None = None,
    steps: int | None = None,
    grid: str = "auto",
    table: DiscreteVP | None = None,
    generator: torch.Generator | None = None,
    clip: bool = True,
    progress: bool = False,
) -> Tensor:
    """Waveforms (B, 1, F * hop) from log-mels (B, n_mels, F), sampled from N(0, I) through core.sample.

    clip: clamp x0_hat to [-1, 1] at every step (DDPM's clipped sampling; keeps few-step chains in range).
    The prior and the in-chain noise are drawn on the generator's own device and moved to the network's (core's
    rule), so one CPU generator gives the same draws on every device.
    """
    schedule, n, grid = sampling_plan(method, betas=betas, steps=steps, grid=grid, table=table)
    param = next(net.parameters())
    mel = mel.to(device=param.device, dtype=param.dtype)
    denoiser = Denoiser(
        LevelConditioned(net, schedule), schedule, prediction="eps", x0_hooks=[clip_x0()] if clip else ()
    )
    shape = (mel.shape[0], 1, mel.shape[-1] * net.hop_length)
    x_T = randn(shape, generator, device=param.device, dtype=torch.float32).to(dtype=param.dtype)
    kwargs = {"variance": "fixed-small"} if method == "ddpm" else {}
    return sample(
        denoiser, x_T, method=method, steps=n, grid=grid, generator=generator, progress=progress, mel=mel, **kwargs
    )
