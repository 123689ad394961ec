"""Drawing conformers: the paper's Langevin-style sampler, or any core sampler through `core.sample`.

geodiff_ld follows the released GeoDiff sampler (`langevin_dynamics_sample_diffusion`, sampling_type "ld"):
in VE coordinates, from pos ~ sigma_T N(0, I), at each table step i (noise end first)
    step = step_lr (sigma_i / 0.01)^2
    pos <- pos - step g(pos, sigma_i) / sigma_i + sqrt(2 step) z,    then re-centre every molecule,
where g is the chain-rule eps-like vector (local + w_global * global below global_start_sigma, clipped); the
released code's eps_pos is -g. The grid is a core time grid on the DiscreteVP table (all T steps by default).

Core samplers ("ddpm" = the paper's `ddpm_noisy`, "dpm++2m" the few-step option, ...) see the network through
task.make_denoiser (least-squares eps and the centre-of-mass projection of x0_hat).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping

import torch
from torch import Tensor
from tqdm.auto import tqdm

from omnidiffusion.core import METHODS, sample
from omnidiffusion.core.checks import positive_int, real_number
from omnidiffusion.core.timesteps import GRIDS, make_grid

from .config import SamplerConfig
from .graph import center_pos
from .task import GeoDiffEps, make_denoiser, ve_scale

PAPER_METHOD = "geodiff-ld"
SAMPLER_METHODS = (PAPER_METHOD, *sorted(METHODS))

# (low, low_open) of each float setting of SamplerConfig; every one must be finite.
_SAMPLER_RANGES = {
    "w_global": (0.0, False),
    "global_start_sigma": (0.0, False),
    "clip": (0.0, True),
    "clip_local": (0.0, True),
    "step_lr": (0.0, True),
    "damping": (0.0, False),
    "eps_scale": (0.0, True),
}


def check_sampler(cfg: SamplerConfig, names: Mapping[str, str] | None = None) -> SamplerConfig:
    """Refuse a SamplerConfig that cannot sample (ValueError naming the setting); returns it unchanged.

    `names` maps a field to the name the user gave it (default `sampler.<field>`, as in `--set`).
    """
    names = names or {}

    def name(field: str) -> str:
        return names.get(field, f"sampler.{field}")

    if cfg.method not in SAMPLER_METHODS:
        raise ValueError(f"{name('method')}: expected one of {list(SAMPLER_METHODS)}, got {cfg.method!r}")
    positive_int(cfg.steps, name("steps"))
    if cfg.grid not in GRIDS:
        raise ValueError(f"{name('grid')}: expected one of {list(GRIDS)}, got {cfg.grid!r}")
    for field, (low, low_open) in _SAMPLER_RANGES.items():
        value = getattr(cfg, field)
        if not (field == "clip_local" and value is None):
            real_number(value, name(field), low=low, low_open=low_open)
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, numbers.Integral):
        raise ValueError(f"{name('seed')}: expected an integer, got {cfg.seed!r}")
    return cfg


def sampler_fields() -> list[str]:
    """The settings a SamplerConfig holds (the keys `sampler.<key>` of a config)."""
    return [f.name for f in dataclasses.fields(SamplerConfig)]


def geodiff_ld(
    model: GeoDiffEps,
    pos: Tensor,
    grid: Tensor,
    *,
    graph: dict[str, Tensor],
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> Tensor:
    """Annealed Langevin over the VE noise levels of `grid` (decreasing times, data end last); returns x0 (N, 3).

    `pos` is the VE-scale start (sigma_ve(grid[0]) times a CoM-free Gaussian); Xu et al. 2022 / released code.
    """
    cfg = model.cfg
    times = grid.to(torch.float64)
    if float(times[-1]) == 0.0:
        times = times[:-1]  # the table ends at its first step; sigma_ve(0) = 0 takes no Langevin step
    _, sig_table = ve_scale(model.schedule, times)
    batch = graph["batch"]
    steps = tqdm(sig_table.tolist(), desc="sampling (geodiff-ld)", leave=False, disable=not progress)
    with torch.no_grad():
        for sigma in steps:
            sig = torch.full((pos.shape[0],), sigma, dtype=pos.dtype, device=pos.device)
            g, *_ = model.chain_rule(pos, sig, graph["atom_type"], graph["edge_index"], graph["edge_type"], batch)
            step = cfg.step_lr * (sigma / 0.01) ** 2
            noise = torch.randn(pos.shape, generator=generator, dtype=pos.dtype, device=pos.device)
            pos = pos - (step / sigma) * g + math.sqrt(2.0 * step) * noise
            if not torch.isfinite(pos).all():
                raise FloatingPointError(
                    f"geodiff-ld: non-finite coordinates at sigma={sigma:.4g}; lower step_lr or set clip_local"
                )
            pos = center_pos(pos, batch)
    return pos


def sample_positions(
    net: torch.nn.Module,
    schedule,
    cfg: SamplerConfig,
    graph: dict[str, Tensor],
    *,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> Tensor:
    """Coordinates (N, 3) in Angstrom for a batch of molecular graphs, by cfg.method over cfg.steps."""
    check_sampler(cfg)
    batch = graph["batch"]
    param = next(net.parameters())
    shape = (batch.shape[0], 3)
    z = torch.randn(shape, generator=generator, dtype=param.dtype, device=param.device)
    z = center_pos(z, batch)  # CoM-free prior (Xu et al. 2022, Prop. 1)
    grid = make_grid(schedule, cfg.grid, cfg.steps)
    model = GeoDiffEps(net, schedule, cfg)
    if cfg.method == PAPER_METHOD:
        _, sig_start = ve_scale(schedule, grid[:1])
        return geodiff_ld(model, z * float(sig_start), grid, graph=graph, generator=generator, progress=progress)
    denoiser = make_denoiser(net, schedule, cfg, batch)
    cond = {k: graph[k] for k in ("atom_type", "edge_index", "edge_type", "batch")}
    return sample(
        denoiser, z, method=cfg.method, steps=cfg.steps, grid=grid, generator=generator, progress=progress, **cond
    )
