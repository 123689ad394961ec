"""CSDI as a diffusion task: conditioning, the masked training loss and conditional sampling through core.

The diffusion runs on the residual of the hidden entries around the linear interpolation of the conditioning
values (the interpolated conditional information of PriSTI, Liu et al. 2023), in z-units of the training data:

    x0 = (x - interp(x, cond)) * observed        interp: along time, per feature, flat beyond the ends

The network sees the interpolation (centred on the feature's mean observed value in the window, so it is blind
to the level and works on series that leave the training range), the conditioning mask and the noisy residual.
Loss (Tashiro et al. 2021, eq. 4 restricted to targets): eps-MSE over the hidden observed entries only,
divided by their number. Sampling: n samples per window through `omnidiffusion.core.sample`; the paper's chain
is ancestral DDPM over all T = 50 steps of the quadratic schedule; "dpm++2m" is the few-step option. The
observed values are put back exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from omnidiffusion.core import Denoiser, DiscreteVP, sample
from omnidiffusion.core.checks import positive_int
from omnidiffusion.core.consistency import ConsistencyDenoiser
from omnidiffusion.core.denoiser import DenoiserBase
from omnidiffusion.core.losses import sample_t
from omnidiffusion.core.tensors import append_dims

from .masks import training_mask

PREDICTIONS = ("eps", "x0", "v")  # what the network outputs (the residual's noise, the residual itself, or v)


def linear_interpolation(values: Tensor, mask: Tensor, fill: float = 0.0) -> Tensor:
    """Interpolate `values` (B, K, L) linearly along L between the entries where `mask` is True.

    Before the first and after the last known entry the nearest known value is held; a row with no known
    entry gets `fill` (the training mean, 0 in z-units). Known entries are returned unchanged.
    """
    if values.shape != mask.shape or values.ndim != 3:
        raise ValueError(
            f"values, mask: expected equal shapes (B, K, L), got {tuple(values.shape)}, {tuple(mask.shape)}"
        )
    mask = mask.bool()
    L = values.shape[-1]
    idx = torch.arange(L, device=values.device).expand_as(values)
    prev = torch.where(mask, idx, -1).cummax(dim=-1).values  # last known index at or before each point
    nxt = torch.where(mask, idx, L).flip(-1).cummin(dim=-1).values.flip(-1)  # first known at or after
    has_prev, has_next = prev >= 0, nxt < L
    v_prev = values.gather(-1, prev.clamp(min=0))
    v_next = values.gather(-1, nxt.clamp(max=L - 1))
    span = (nxt - prev).clamp(min=1).to(values.dtype)
    w = ((idx - prev).to(values.dtype) / span).clamp(0.0, 1.0)
    inner = v_prev + w * (v_next - v_prev)
    out = torch.where(has_prev & has_next, inner, torch.where(has_prev, v_prev, v_next))
    out = torch.where(has_prev | has_next, out, torch.full_like(values, fill))
    return torch.where(mask, values, out)


def conditioning(
    values: Tensor, cond: Tensor, window_scale: float | None = None, min_known: int = 2
) -> tuple[Tensor, Tensor, Tensor]:
    """(interp (B, K, L), centred interp (B, K, L), scale (B, K, 1)) of the conditioning values.

    The centred copy subtracts each feature's mean conditioning value in the window (0 when there is none).
    With `window_scale` = f, each feature with `min_known` or more known entries is measured in units of its own
    spread in the window, max(std over time of interp, f) (instance normalisation: a series that grows keeps
    the same shape in these units); otherwise, and for features with fewer known entries, the scale is 1.
    """
    cond = cond.bool()
    clean = torch.where(cond, values, torch.zeros_like(values))
    interp = linear_interpolation(clean, cond)
    count = cond.sum(-1, keepdim=True)
    level = clean.sum(-1, keepdim=True) / count.clamp(min=1)
    scale = torch.ones_like(level)
    if window_scale is not None:
        spread = interp.std(-1, keepdim=True).clamp(min=window_scale)
        scale = torch.where(count >= max(min_known, 2), spread, scale)
    return interp, (interp - level) / scale, scale


def calibrate(residual: Tensor, median_share: float = 1.0, spread: float = 1.0) -> Tensor:
    """Residual samples (S, ...) around the interpolation -> median_share * median + spread * (r - median).

    median_share = 0 puts the sample median of every entry on the linear interpolation (the model then only
    adds uncertainty); spread scales the deviations of the samples from their median. `train` chooses both
    on the validation part (a post-hoc recalibration of location and scale, like temperature scaling).
    """
    if median_share == 1.0 and spread == 1.0:
        return residual
    S = residual.shape[0]
    ordered = residual.sort(dim=0).values
    median = 0.5 * (ordered[(S - 1) // 2] + ordered[S // 2]).unsqueeze(0)  # numpy's median for even S too
    return median_share * median + spread * (residual - median)


INTERP_INPUTS = ("interpolation", "observed")


@dataclass
class CSDITask:
    """The schedule (CSDI's: quadratic, T = 50, beta 1e-4 to 0.5; `[schedule]` builds it) and the training masks."""

    schedule: DiscreteVP = field(default_factory=DiscreteVP.quadratic)
    strategy: str = "random"
    horizon: int = 0
    forecast_share: float = 1.0
    window_scale: float | None = None
    scale_min_known: int = 2
    prediction: str = "eps"
    interp_input: str = "interpolation"
    consistency: dict | None = None  # a distilled imputer: core ConsistencyDenoiser kwargs (pipeline.distil_imputer)

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"task.prediction: expected one of {', '.join(PREDICTIONS)}, got {self.prediction!r}")
        if self.interp_input not in INTERP_INPUTS:
            expected = ", ".join(INTERP_INPUTS)
            raise ValueError(f"task.interp_input: expected one of {expected}, got {self.interp_input!r}")

    def net_input(self, centred: Tensor, cond: Tensor) -> Tensor:
        """The conditioning channel the network sees: the centred interpolation everywhere ("interpolation",
        PriSTI's), or only at the known entries and 0 elsewhere ("observed", CSDI's cond_obs)."""
        return centred if self.interp_input == "interpolation" else centred * cond

    def denoiser(self, net: nn.Module) -> DenoiserBase:
        """The core Denoiser of `net` (its `prediction`), or the ConsistencyDenoiser of a distilled imputer."""
        if self.consistency is not None:
            return ConsistencyDenoiser(net, self.schedule, **self.consistency)
        return Denoiser(net, self.schedule, prediction=self.prediction)

    def training_example(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """(x0, cond kwargs, target mask) of a batch of windows (values, observed (B, K, L)): a training mask
        hides part of the observed entries (`strategy`), x0 is their residual around the interpolation of the
        rest, and the targets are the hidden observed entries (what the losses score). An optional "pattern"
        (B, K, L) gives each window's historical missing pattern (PM2.5's)."""
        values, observed = batch["values"], batch["observed"].bool()
        cond = training_mask(
            observed,
            self.strategy,
            horizon=self.horizon,
            forecast_share=self.forecast_share,
            patterns=batch.get("pattern"),
        )
        interp, centred, scale = conditioning(values, cond, self.window_scale, self.scale_min_known)
        x0 = torch.where(observed, (values - interp) / scale, torch.zeros_like(values))
        return x0, {"cond_mask": cond, "interp": self.net_input(centred, cond)}, observed & ~cond

    def loss(self, net: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """Masked eps-MSE on the hidden targets (CSDI `calc_loss`); batch: values, observed (B, K, L)."""
        x0, cond, target = self.training_example(batch)
        t = sample_t(self.schedule, x0.shape[0], device=x0.device)
        noise = torch.randn_like(x0)
        a = append_dims(self.schedule.alpha(t), 3).to(x0)
        s = append_dims(self.schedule.sigma(t), 3).to(x0)
        x_t = a * x0 + s * noise
        out = self.denoiser(net).predict(x_t, t, **cond)
        # Each parameterisation regresses its own target (CSDI: eps; x0 weights the loss by SNR in eps terms).
        if self.prediction == "eps":
            err = (out.eps - noise) ** 2
        elif self.prediction == "x0":
            err = (out.x0 - x0) ** 2
        else:  # v = alpha eps - sigma x0 (Salimans & Ho 2022)
            err = ((a * out.eps - s * out.x0) - (a * noise - s * x0)) ** 2
        err = err * target
        return err.sum() / target.sum().clamp(min=1)

    @torch.no_grad()
    def impute(
        self,
        net: nn.Module,
        values: Tensor,
        cond: Tensor,
        *,
        n_samples: int = 100,
        method: str = "ddpm",
        steps: int = 50,
        grid: str = "auto",
        generator: torch.Generator | None = None,
        batch_size: int = 4096,
        median_share: float = 1.0,
        spread: float = 1.0,
    ) -> Tensor:
        """Draw `n_samples` completions of each window: (B, K, L) -> (n_samples, B, K, L), in z-units.

        `cond` marks the known entries; they come back exactly. `batch_size` bounds how many (window, sample)
        pairs go through the network at once (the sample dimension is batched, not looped). grid "auto":
        "time-uniform" for ddpm (with steps = T it visits every table step: the paper's chain) and consistency,
        the log-SNR grid of DPM-Solver (Lu et al. 2022) for every other method. `median_share` and `spread`
        recalibrate the residual samples around the interpolation (see `calibrate`; 1, 1 leaves them as drawn).
        """
        if grid == "auto":
            grid = "time-uniform" if method in ("ddpm", "consistency") else "logsnr"
        if values.shape != cond.shape or values.ndim != 3:
            raise ValueError(
                f"values, cond: expected equal shapes (B, K, L), got {tuple(values.shape)}, {tuple(cond.shape)}"
            )
        n_samples = positive_int(n_samples, "n_samples")
        batch_size = positive_int(batch_size, "batch_size")
        cond = cond.bool()
        if not torch.isfinite(values[cond]).all():
            raise ValueError("values: expected finite values at the known (cond) entries, got NaN or inf")
        values = torch.where(cond, values, torch.zeros_like(values))
        interp, centred, scale = conditioning(values, cond, self.window_scale, self.scale_min_known)
        B, K, L = values.shape
        denoiser = self.denoiser(net)
        rep = lambda x: x.unsqueeze(0).expand(n_samples, B, K, L).reshape(n_samples * B, K, L)  # noqa: E731
        flat_cond, flat_centred = rep(cond), rep(self.net_input(centred, cond))
        dtype = next(net.parameters()).dtype
        chunks = []
        for lo in range(0, n_samples * B, batch_size):
            hi = min(lo + batch_size, n_samples * B)
            res = sample(
                denoiser,
                (hi - lo, K, L),
                method=method,
                steps=steps,
                grid=grid,
                generator=generator,
                dtype=dtype,
                device=values.device,
                cond_mask=flat_cond[lo:hi],
                interp=flat_centred[lo:hi],
            )
            chunks.append(res.to(values.dtype))
        residual = calibrate(torch.cat(chunks).reshape(n_samples, B, K, L), median_share, spread)
        out = interp.unsqueeze(0) + residual * scale.unsqueeze(0)
        return torch.where(cond.unsqueeze(0), values.unsqueeze(0), out)
