"""Training the point-cloud DDPM with core's `fit` (EMA, atomic checkpoints, exact resume, progress bar).

One network learns both jobs. Each training cloud (B, N, 3) is, with probability `complete_frac`, split PVD-style:
a random plane keeps a fraction in [keep_min, keep_max] of the points on one side, `n_known` of those become the
clean, flagged observation, and only the other points are noised and scored (Zhou et al. 2021, sec. 3.3); the
remaining clouds are plain unconditional DDPM examples (Ho et al. 2020, L_simple). The loss is core's
`denoising_loss` on the `KnownPoints` wrapper, whose eps on the known points equals the drawn noise, so only the
unknown points contribute. Clouds are randomly rotated about z and permuted on the fly (the data are sets); all
randomness is torch's global RNG, which core's checkpoints save.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from omnidiffusion.core import Denoiser, denoising_loss
from omnidiffusion.core.tensors import rand, randn
from omnidiffusion.core.training import TrainResult, unwrap_model

from ..settings import VisionConfig
from ..training import final_model, fit_model
from .data import PointClouds, training_clouds
from .model import KnownPoints, PointDiffusionModel, check_cloud


def plane_cut_mask(
    x: Tensor, n_known: int, keep_min: float = 0.25, keep_max: float = 0.5, generator: torch.Generator | None = None
) -> Tensor:
    """(B, N) bool: `n_known` random points among the fraction U(keep_min, keep_max) lowest along a random direction.

    The batched, on-the-fly form of shapes.cut_partial (the observed side of a random cutting plane).
    """
    b, n, _ = x.shape
    if not 0 < n_known <= int(keep_min * n) or not 0 < keep_min <= keep_max <= 1:
        raise ValueError(
            f"n_known, keep_min, keep_max: expected 0 < n_known <= keep_min * N = {keep_min * n:g} and "
            f"0 < keep_min <= keep_max <= 1, got {n_known}, {keep_min}, {keep_max}"
        )
    u = randn((b, 3), generator, device=x.device, dtype=x.dtype)
    u = u / u.norm(dim=1, keepdim=True)
    proj = torch.einsum("bnd,bd->bn", x, u)  # (B, N)
    rank = proj.argsort(dim=1).argsort(dim=1)  # (B, N) rank of each point along u
    keep = keep_min + (keep_max - keep_min) * rand((b, 1), generator, device=x.device)
    side = rank < (keep * n).round().clamp_min(n_known)  # (B, N)
    score = rand((b, n), generator, device=x.device) + (~side).to(x.dtype) * 2  # side first
    idx = score.topk(n_known, dim=1, largest=False).indices  # (B, K)
    return torch.zeros(b, n, dtype=torch.bool, device=x.device).scatter_(1, idx, True)


def rotate_z(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Each cloud of (B, N, 3) rotated about the z axis by a uniform random angle."""
    a = 2 * torch.pi * rand(x.shape[0], generator, device=x.device, dtype=x.dtype)
    c, s = torch.cos(a), torch.sin(a)
    rot = torch.zeros(x.shape[0], 3, 3, dtype=x.dtype, device=x.device)
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1.0
    return x @ rot.transpose(1, 2)


class PointsLoss:
    """loss_fn(model, batch) for `fit`: augment, pick the PVD-style observed subset, core `denoising_loss`."""

    def __init__(
        self,
        complete_frac: float = 0.5,
        n_known: int = 64,
        keep_min: float = 0.25,
        keep_max: float = 0.5,
        augment_rotation: bool = True,
    ) -> None:
        if not 0 <= complete_frac <= 1:
            raise ValueError(f"complete_frac: expected a value in [0, 1], got {complete_frac}")
        self.complete_frac, self.n_known = complete_frac, n_known
        self.keep_min, self.keep_max, self.augment_rotation = keep_min, keep_max, augment_rotation

    def __call__(self, model: nn.Module, batch) -> Tensor:
        x0 = batch[0] if isinstance(batch, list | tuple) else batch  # (B, N, 3)
        if self.augment_rotation:
            x0 = rotate_z(x0)
        x0 = x0[:, torch.randperm(x0.shape[1], device=x0.device)]  # a set: the order carries nothing
        inner = unwrap_model(model)  # DDP wraps the model
        den = Denoiser(model, inner.schedule, inner.prediction)
        if self.complete_frac == 0:
            return denoising_loss(den, x0)
        known = plane_cut_mask(x0, self.n_known, self.keep_min, self.keep_max)
        known &= torch.rand(x0.shape[0], 1, device=x0.device) < self.complete_frac  # unconditional rows: none
        err = denoising_loss(KnownPoints(den, x0, known), x0, reduce=False)  # (B,) mean over all N points
        n_free = (~known).sum(dim=1).to(err.dtype)  # the known points contribute exactly zero
        return (err * x0.shape[1] / n_free).mean()


def build_model(config: VisionConfig) -> PointDiffusionModel:
    """A fresh PointDiffusionModel from config.points and config.schedule / config.prediction."""
    p = config.points
    return PointDiffusionModel(
        p.n_points, p.width, p.depth, p.inducing, p.heads, config.schedule.to_dict(), p.local, config.prediction
    )


def _run(config: VisionConfig, clouds, out_dir, resume: bool | None) -> TrainResult:
    p = config.points
    if config.task != "points":
        config = replace(config, task="points")
    if clouds is None:
        clouds = training_clouds(config)[0]
    clouds = torch.as_tensor(np.asarray(clouds), dtype=torch.float32)
    check_cloud(clouds, "clouds", p.n_points)
    model = build_model(config)
    loss = PointsLoss(p.complete_frac, p.n_known, p.keep_min, p.keep_max, p.augment_rotation)
    return fit_model(model, loss, PointClouds(clouds), config, out_dir, resume, "points")


def train(config: VisionConfig, out_dir: str | Path, *, resume: bool | None = None) -> TrainResult:
    """config.task "points" on config.points' training set into `out_dir`; returns core's TrainResult."""
    if config.task != "points":
        raise ValueError(f"task: expected 'points' (point clouds), got {config.task!r}")
    return _run(config, None, out_dir, resume)


def train_points(
    config: VisionConfig,
    clouds: Tensor | np.ndarray | None = None,
    out_dir: str | Path | None = None,
    resume: bool | None = None,
) -> PointDiffusionModel:
    """Train the point DDPM on `clouds` (M, N, 3) (default: config.points' training set); returns the EMA model."""
    return final_model(_run(config, clouds, out_dir, resume))
