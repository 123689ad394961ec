"""The Denoiser: one adapter from a raw network to (x0_hat, eps_hat).

Every sampler, loss and likelihood in core talks only to a Denoiser. The raw network is always called as
`net(x_in, t, **cond)` with `t` the continuous time in [0, 1], one entry per leading element of x; a network
that wants another noise input (an index, sqrt(alpha_bar), log sigma) converts inside itself.

Prediction types (Salimans & Ho 2022 for v; Karras et al. 2022 for edm), with x_t = alpha x0 + sigma eps:
  eps:   x0 = (x_t - sigma eps) / alpha
  x0:    eps = (x_t - alpha x0) / sigma
  v:     v = alpha eps - sigma x0, so x0 = (alpha x_t - sigma v)/(alpha^2 + sigma^2) and
         eps = (sigma x_t + alpha v)/(alpha^2 + sigma^2) (valid for VP and non-VP schedules)
  score: eps = -sigma * score
  edm:   D = c_skip x~ + c_out F(c_in x~, t) in VE coordinates x~ = x_t/alpha, sigma~ = sigma/alpha.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .schedules import NoiseSchedule
from .tensors import append_dims, per_sample

PREDICTIONS = ("eps", "x0", "v", "score", "edm")

X0Hook = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclass
class DenoiserOutput:
    """x0_hat and eps_hat for one call; `variance` is the raw learned-variance output in [-1, 1] or None."""

    x0: Tensor
    eps: Tensor
    variance: Tensor | None = None


def check_time(t: Tensor, x: Tensor) -> None:
    """Raise ValueError unless t is a finite (B,) tensor in [0, 1] matching x's leading dimension."""
    if t.shape != (x.shape[0],):
        raise ValueError(f"t: expected shape ({x.shape[0]},), got {tuple(t.shape)}")
    if torch.isnan(t).any() or t.min() < 0 or t.max() > 1:
        raise ValueError(f"t: expected values in [0, 1], got range [{t.min().item():.6g}, {t.max().item():.6g}]")


def check_state(x: Tensor, name: str = "x") -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"{name}: expected at least one dimension with a non-empty batch, got shape {tuple(x.shape)}")


class DenoiserBase:
    """Anything with a `schedule` and `predict(x_t, t, **cond) -> DenoiserOutput` (guidance wrappers too)."""

    schedule: NoiseSchedule

    def predict(self, x_t: Tensor, t: float | Tensor, **cond) -> DenoiserOutput:
        raise NotImplementedError

    def __call__(self, x_t: Tensor, t: float | Tensor, **cond) -> Tensor:
        """x0_hat = E[x0 | x_t] as estimated by the model."""
        return self.predict(x_t, t, **cond).x0

    def eps(self, x_t: Tensor, t: float | Tensor, **cond) -> Tensor:
        return self.predict(x_t, t, **cond).eps

    def score(self, x_t: Tensor, t: float | Tensor, **cond) -> Tensor:
        """grad_x log p_t(x_t) = -eps_hat / sigma(t)."""
        tt = per_sample(t, x_t)
        sigma = append_dims(self.schedule.sigma(tt), x_t.ndim).to(x_t.dtype)
        return -self.eps(x_t, tt, **cond) / sigma

    def v(self, x_t: Tensor, t: float | Tensor, **cond) -> Tensor:
        tt = per_sample(t, x_t)
        out = self.predict(x_t, tt, **cond)
        a = append_dims(self.schedule.alpha(tt), x_t.ndim).to(x_t.dtype)
        s = append_dims(self.schedule.sigma(tt), x_t.ndim).to(x_t.dtype)
        return a * out.eps - s * out.x0


def clip_x0(low: float = -1.0, high: float = 1.0) -> X0Hook:
    """An x0 hook clamping x0_hat to [low, high] (DDPM's clipped sampling)."""
    if not low < high:
        raise ValueError(f"low, high: expected low < high, got {low}, {high}")

    def hook(x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        return x0.clamp(low, high)

    return hook


def _net_dtype(net) -> torch.dtype | None:
    if isinstance(net, nn.Module):
        for p in net.parameters():
            return p.dtype
    return None


class Denoiser(DenoiserBase):
    """Wraps `net` and its prediction type; converts every output once into (x0_hat, eps_hat).

    Args:
        net: callable `net(x_in, t, **cond)`; with `learned_variance` it returns twice the channels of x on dim 1
            (prediction, variance interpolation in [-1, 1] as in Nichol & Dhariwal 2021).
        schedule: the NoiseSchedule the network was trained with.
        prediction: one of "eps", "x0", "v", "score", "edm".
        x0_hooks: functions `hook(x0_hat, x_t, t) -> x0_hat` applied in order (clipping, clamping to word
            embeddings, centre-of-mass projection); eps_hat is then recomputed from the hooked x0_hat.
        sigma_data: data standard deviation for "edm" preconditioning (default: the schedule's, else 0.5).
    """

    def __init__(
        self,
        net: Callable[..., Tensor],
        schedule: NoiseSchedule,
        prediction: str = "eps",
        *,
        x0_hooks: Sequence[X0Hook] = (),
        learned_variance: bool = False,
        sigma_data: float | None = None,
    ):
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction: expected one of {PREDICTIONS}, got {prediction!r}")
        if not isinstance(schedule, NoiseSchedule):
            raise ValueError(f"schedule: expected a NoiseSchedule, got {type(schedule).__name__}")
        self.net = net
        self.schedule = schedule
        self.prediction = prediction
        self.x0_hooks = list(x0_hooks)
        self.learned_variance = learned_variance
        self.sigma_data = float(sigma_data if sigma_data is not None else getattr(schedule, "sigma_data", 0.5))

    def _call_net(self, x_in: Tensor, t: Tensor, cond: dict) -> Tensor:
        dtype = _net_dtype(self.net) or x_in.dtype
        out = self.net(x_in.to(dtype), t.to(dtype), **cond)
        if not isinstance(out, Tensor):
            raise ValueError(f"net: expected a Tensor output, got {type(out).__name__}")
        return out

    def predict(self, x_t: Tensor, t: float | Tensor, **cond) -> DenoiserOutput:
        check_state(x_t, "x_t")
        work = torch.promote_types(x_t.dtype, torch.float32)
        x = x_t.to(work)
        a: float | Tensor
        s: float | Tensor
        if isinstance(t, (float, int)) and not isinstance(t, bool):
            # One time for the whole batch (every sampler step): coefficients as float64 Python scalars.
            if not 0.0 <= t <= 1.0:
                raise ValueError(f"t: expected values in [0, 1], got {t}")
            la, ls = self.schedule.log_alpha_sigma(float(t))
            a, s = math.exp(la.item()), math.exp(ls.item())
            t64 = torch.full((x.shape[0],), float(t), dtype=torch.float64, device=x.device)
        else:
            t64 = per_sample(t, x_t)
            check_time(t64, x_t)
            a = append_dims(self.schedule.alpha(t64), x.ndim).to(work)
            s = append_dims(self.schedule.sigma(t64), x.ndim).to(work)

        if self.prediction == "edm":
            sig = s / a
            sd2 = self.sigma_data**2
            c_in = (sig**2 + sd2) ** -0.5
            raw = self._call_net(x / a * c_in, t64, cond)
        else:
            raw = self._call_net(x, t64, cond)
        raw, variance = self._split_variance(raw, x)
        raw = raw.to(work)

        if self.prediction == "eps":
            eps = raw
            x0 = torch.add(x, eps, alpha=-s).div_(a) if isinstance(s, float) else (x - s * eps) / a
        elif self.prediction == "x0":
            x0 = raw
            eps = (x - a * x0) / s
        elif self.prediction == "v":
            norm = a**2 + s**2
            x0 = (a * x - s * raw) / norm
            eps = (s * x + a * raw) / norm
        elif self.prediction == "score":
            eps = -s * raw
            x0 = (x - s * eps) / a
        else:  # edm
            sig = s / a
            sd2 = self.sigma_data**2
            c_skip = sd2 / (sig**2 + sd2)
            c_out = sig * self.sigma_data * (sig**2 + sd2) ** -0.5
            x0 = c_skip * (x / a) + c_out * raw
            eps = (x - a * x0) / s

        if self.x0_hooks:
            for hook in self.x0_hooks:
                x0 = hook(x0, x, t64)
            eps = (x - a * x0) / s
        return DenoiserOutput(x0.to(x_t.dtype), eps.to(x_t.dtype), variance)

    def _split_variance(self, raw: Tensor, x: Tensor) -> tuple[Tensor, Tensor | None]:
        if not self.learned_variance:
            if raw.shape != x.shape:
                raise ValueError(f"net output: expected shape {tuple(x.shape)}, got {tuple(raw.shape)}")
            return raw, None
        expected = (x.shape[0], 2 * x.shape[1], *x.shape[2:])
        if raw.shape != expected:
            raise ValueError(
                f"net output: learned_variance expects shape {expected} (prediction and variance on dim 1), "
                f"got {tuple(raw.shape)}"
            )
        pred, var = raw.chunk(2, dim=1)
        return pred, var.to(x.dtype)


def convert_prediction(
    value: Tensor, x_t: Tensor, t: float | Tensor, schedule: NoiseSchedule, source: str, target: str
) -> Tensor:
    """Convert a prediction of type `source` to type `target` (eps, x0, v, score) at (x_t, t)."""
    for name, kind in (("source", source), ("target", target)):
        if kind not in ("eps", "x0", "v", "score"):
            raise ValueError(f"{name}: expected one of eps, x0, v, score, got {kind!r}")
    t64 = per_sample(t, x_t)
    a = append_dims(schedule.alpha(t64), x_t.ndim).to(x_t.dtype)
    s = append_dims(schedule.sigma(t64), x_t.ndim).to(x_t.dtype)
    if source == "eps":
        eps = value
        x0 = (x_t - s * eps) / a
    elif source == "x0":
        x0 = value
        eps = (x_t - a * x0) / s
    elif source == "v":
        norm = a**2 + s**2
        x0, eps = (a * x_t - s * value) / norm, (s * x_t + a * value) / norm
    else:
        eps = -s * value
        x0 = (x_t - s * eps) / a
    if target == "eps":
        return eps
    if target == "x0":
        return x0
    if target == "v":
        return a * eps - s * x0
    return -eps / s
