"""The point-cloud DDPM: a permutation-equivariant denoiser over (B, N, 3) sets, its schedule, and its samplers.

- Generation (Luo & Hu 2021; Zhou et al. 2021): every point of a Gaussian cloud is denoised jointly by the set
  network; sampled with core `sample` (ancestral "ddpm" over the table, or "dpm++2m" in a few steps).
- Completion (PVD, Zhou et al. 2021 sec. 3.3): the observed points sit in the state, flagged "known", and stay clean
  at every step: `KnownPoints` puts their clean values back into x_t (core `replace_known` at t = 0) before each
  network call and returns them as part of x0_hat, so only the other points are denoised. The same wrapper is used
  in training (`PointsLoss`), where the loss on the known points is then exactly zero.
"""

from __future__ import annotations

import torch
from torch import Tensor

from omnidiffusion.core import Denoiser, ForwardProcess, clip_x0, replace_known, sample
from omnidiffusion.core.checks import positive_int, real_number
from omnidiffusion.core.denoiser import DenoiserBase, DenoiserOutput
from omnidiffusion.core.tensors import append_dims, per_sample

from ..models import PretrainedModule, make_schedule
from .network import PointDenoiserNet

PVD_SCHEDULE = {"name": "linear", "timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02}  # PVD (Ho et al. 2020)


def check_cloud(x: Tensor, name: str, n_points: int | None = None) -> None:
    """Raise ValueError unless x is a finite float (B, N, 3) tensor (with N = n_points when given)."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise ValueError(f"{name}: expected a float tensor of shape (B, N, 3), got {type(x).__name__}")
    if x.ndim != 3 or x.shape[-1] != 3 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name}: expected shape (B, N, 3), got {tuple(x.shape)}")
    if n_points is not None and x.shape[1] != n_points:
        raise ValueError(f"{name}: expected {n_points} points per cloud, got {x.shape[1]}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: expected finite coordinates, got NaN or inf")


def _check_clip(clip: float | None) -> float | None:
    return None if clip is None else real_number(clip, "clip", low=0.0, low_open=True)


class KnownPoints(DenoiserBase):
    """PVD-style completion around a point Denoiser: the points where `known` is True stay clean (x_known).

    x_known (B, N, 3) holds the observed points at the known positions (anything elsewhere); known (B, N) bool.
    """

    def __init__(self, inner: Denoiser, x_known: Tensor, known: Tensor) -> None:
        if known.shape != x_known.shape[:2]:
            raise ValueError(f"known: expected shape {tuple(x_known.shape[:2])}, got {tuple(known.shape)}")
        self.inner, self.schedule = inner, inner.schedule
        self.process = ForwardProcess(inner.schedule)
        self.x_known, self.known = x_known, known.bool()

    def predict(self, x_t: Tensor, t: float | Tensor, **cond) -> DenoiserOutput:
        mask = self.known.unsqueeze(-1)  # (B, N, 1)
        x_in = replace_known(x_t, self.x_known.to(x_t.dtype), mask, 0.0, self.process)  # clean observed points
        out = self.inner.predict(x_in, t, known=self.known, **cond)
        tt = per_sample(t, x_t)
        a = append_dims(self.schedule.alpha(tt), x_t.ndim).to(x_t.dtype)
        s = append_dims(self.schedule.sigma(tt), x_t.ndim).to(x_t.dtype).clamp_min(1e-12)
        x0 = torch.where(mask, self.x_known.to(x_t.dtype), out.x0)
        eps = torch.where(mask, (x_t - a * x0) / s, out.eps)  # the noise that is in the state's known entries
        return DenoiserOutput(x0, eps, out.variance)


class PointDiffusionModel(PretrainedModule):
    """DDPM over point clouds of `n_points` points: PointDenoiserNet + a DiscreteVP schedule.

    schedule: {"name", "timesteps", "beta_start", "beta_end"} (default PVD's linear 1e-4..0.02 over 1000 steps);
    prediction: "eps" | "x0" | "v". `n_points` is the training size; generate/complete accept any size.
    """

    def __init__(
        self,
        n_points: int = 256,
        width: int = 128,
        depth: int = 4,
        inducing: int = 16,
        heads: int = 4,
        schedule: dict | None = None,
        local: bool = True,
        prediction: str = "eps",
    ) -> None:
        super().__init__()
        if prediction not in ("eps", "x0", "v"):
            raise ValueError(f"prediction: expected 'eps', 'x0' or 'v', got {prediction!r}")
        if n_points < 2:
            raise ValueError(f"n_points: expected an integer >= 2, got {n_points}")
        self.n_points, self.prediction = int(n_points), prediction
        self.schedule_spec = dict(PVD_SCHEDULE if schedule is None else schedule)
        self.schedule = make_schedule(self.schedule_spec)
        self.net = PointDenoiserNet(width, depth, inducing, heads, local)

    def forward(self, x_t: Tensor, t: Tensor, known: Tensor | None = None) -> Tensor:
        """x_t (B, N, 3), t (B,) in [0, 1], known (B, N) bool or None -> the raw prediction (B, N, 3)."""
        return self.net(x_t, t, known)

    def denoiser(self, clip: float | None = None) -> Denoiser:
        """The core Denoiser of this model; `clip` clamps every coordinate of x0_hat to [-clip, clip] (None: off).

        Clipping matters for few-step solvers such as dpm++2m, which extrapolate x0_hat = (x_t - sigma eps) / alpha
        where alpha is tiny (about 0.006 at t = 1 on the linear table).
        """
        hooks = [] if clip is None else [clip_x0(-float(clip), float(clip))]
        return Denoiser(self, self.schedule, self.prediction, x0_hooks=hooks)

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def generate(
        self,
        n: int,
        n_points: int | None = None,
        *,
        method: str = "ddpm",
        steps: int | None = None,
        grid: str = "trailing",
        generator: torch.Generator | None = None,
        batch_size: int = 64,
        progress: bool = False,
        clip: float | None = None,
    ) -> Tensor:
        """Draw n clouds (n, n_points, 3) with core `sample` (default: the full ancestral chain, T steps).

        `clip` bounds x0_hat (see `denoiser`); use it with few-step solvers such as dpm++2m.
        """
        n = positive_int(n, "n")
        n_points = self.n_points if n_points is None else positive_int(n_points, "n_points", minimum=2)
        steps = self.schedule.T if steps is None else positive_int(steps, "steps")
        batch_size = positive_int(batch_size, "batch_size")
        clip = _check_clip(clip)
        device = self._device()
        outs = []
        for start in range(0, n, batch_size):
            b = min(batch_size, n - start)
            x = torch.randn((b, n_points, 3), generator=generator).to(device)
            y = sample(self.denoiser(clip), x, method, steps, grid, generator=generator, progress=progress)
            outs.append(y.cpu())
        return torch.cat(outs)

    @torch.no_grad()
    def complete(
        self,
        partial: Tensor,
        n_points: int | None = None,
        *,
        method: str = "ddpm",
        steps: int | None = None,
        grid: str = "trailing",
        generator: torch.Generator | None = None,
        batch_size: int = 64,
        progress: bool = False,
        clip: float | None = None,
    ) -> Tensor:
        """PVD-style completion: partial (B, K, 3) -> (B, n_points, 3) whose first K points are `partial` exactly.

        The K observed points stay clean at every step; the other n_points - K are denoised around them.
        """
        check_cloud(partial, "partial")
        n_points = self.n_points if n_points is None else positive_int(n_points, "n_points", minimum=2)
        steps = self.schedule.T if steps is None else positive_int(steps, "steps")
        batch_size = positive_int(batch_size, "batch_size")
        clip = _check_clip(clip)
        k = partial.shape[1]
        if not k < n_points:
            raise ValueError(
                f"n_points: expected more points than the {k} observed ones of `partial` (they stay fixed), "
                f"got {n_points}"
            )
        device = self._device()
        outs = []
        for start in range(0, partial.shape[0], batch_size):
            obs = partial[start : start + batch_size].float().to(device)  # (b, K, 3)
            b = obs.shape[0]
            known = torch.zeros(b, n_points, dtype=torch.bool, device=device)
            known[:, :k] = True
            x_known = torch.zeros(b, n_points, 3, device=device)
            x_known[:, :k] = obs
            x = torch.randn((b, n_points, 3), generator=generator).to(device)
            den = KnownPoints(self.denoiser(clip), x_known, known)
            out = sample(den, x, method, steps, grid, generator=generator, progress=progress)
            out[:, :k] = obs  # exact, whatever the sampler's arithmetic did to the known entries
            outs.append(out.cpu())
        return torch.cat(outs)
