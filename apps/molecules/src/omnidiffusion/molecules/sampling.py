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

import math

import torch
from torch import Tensor
from tqdm.auto import tqdm

from omnidiffusion.core import make_grid, sample
from omnidiffusion.core.tensors import randn

from .graph import center_pos
from .settings import PAPER_METHOD, GeoDiffSamplerConfig
from .task import GeoDiffEps, make_denoiser, ve_scale


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
            noise = randn(pos.shape, generator, dtype=pos.dtype, device=pos.device)
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
    cfg: GeoDiffSamplerConfig,
    graph: dict[str, Tensor],
    *,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> Tensor:
    """Coordinates (N, 3) in Angstrom for a batch of molecular graphs, by cfg.method over cfg.steps."""
    batch = graph["batch"]
    param = next(net.parameters())
    shape = (batch.shape[0], 3)
    z = randn(shape, generator, dtype=param.dtype, device=param.device)
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
