"""Zero-shot solvers for y = A x + sigma_y n with one unconditional prior (a core Denoiser on any schedule).

Each is a pure function solver(denoiser, y, op, *, steps, grid, x_T, generator, callback, **options) -> x:
  ddnm      DDNM (Wang et al. 2023, Alg. 1): at every step the clean estimate's range part is replaced by the
            measurement, x0 <- x0 - A^+ (A x0 - y), then a DDIM(eta) step; A x = y exactly at the end.
  ddnm_plus DDNM+ (Wang et al. 2023, eqs. 17-19): for noisy y the correction is shrunk per singular value,
            lambda_i = min(1, c s_i / (alpha_s sigma_y)), and the step's fresh noise in that component is cut to
            c^2 - (alpha_s lambda_i sigma_y / s_i)^2, so the noise carried in from y never exceeds the noise the
            step adds (c = the step's stochastic std). sigma_y = 0 gives DDNM.
  dps       DPS (Chung et al. 2023, Alg. 1): an ancestral DDPM step, then x_s <- x_s - zeta_i grad_{x_t}
            ||y - A x0_hat(x_t)||^2 with zeta_i = zeta / ||y - A x0_hat(x_t)||, the gradient through the denoiser.
            likelihood="gaussian" replaces that step by the score of N(y; A x0_hat, (sigma_y^2 + r_t^2) I),
            r_t^2 = sigma_t^2 / (alpha_t^2 + sigma_t^2) (the Pi-GDM variance, Song et al. 2023), scaled as a
            reverse-SDE score term: exact for a unit-variance Gaussian prior and A A^T = I.
  repaint   RePaint (Lugmayr et al. 2022): ancestral steps; after each, the range part of x_s is replaced by
            a fresh forward sample of A^+ y (for a mask: the known pixels), with RePaint's jump schedule.
            On an Inpaint operator it draws exactly what core.repaint draws (same generator, same result).
  sdedit    SDEdit (Meng et al. 2022): noise the guide A^+ y to t0 and run core `sample` from t0 to 0.
Where the text says A^+ the solvers call the operator's `lift` (a right inverse B of A, A^+ unless the operator
chooses another: `Grey` lifts by the grey copy, so corrections change luminance and keep the prior's chroma).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from omnidiffusion.core import sample
from omnidiffusion.core.checks import non_negative_int, positive_int, real_number
from omnidiffusion.core.conditioning import repaint_schedule
from omnidiffusion.core.processes import ForwardProcess
from omnidiffusion.core.samplers.common import coeffs, posterior_terms
from omnidiffusion.core.schedules import DiscreteVP
from omnidiffusion.core.tensors import randn_like
from omnidiffusion.core.timesteps import make_grid

from .operators import LinearOperator


def _grid(den, grid: str | Tensor, steps: int, t_start: float = 1.0) -> Tensor:
    if isinstance(grid, Tensor):
        return grid.detach().to(torch.float64).cpu()
    if grid == "trailing" and not isinstance(den.schedule, DiscreteVP):
        grid = "time-uniform"
    return make_grid(den.schedule, grid, positive_int(steps, "steps"), t_start=t_start)


def _start(x_T: Tensor | None, shape: tuple[int, ...], like: Tensor, generator) -> Tensor:
    if x_T is not None:
        if tuple(x_T.shape) != tuple(shape):
            raise ValueError(f"x_T: expected shape {tuple(shape)}, got {tuple(x_T.shape)}")
        return x_T.to(like.device, like.dtype)
    return torch.randn(shape, generator=generator, dtype=like.dtype).to(like.device)


def _ancestral(x0: Tensor, eps: Tensor, t: float, s: float, sched, generator) -> Tensor:
    """One DDPM step t -> s from (x0_hat, eps_hat), fixed-small variance (Ho et al. 2020, eq. 7)."""
    if s == 0.0:
        return x0
    c_t, c_s = coeffs(sched, t), coeffs(sched, s)
    _, beta_tilde = posterior_terms(c_t, c_s)
    mean = c_s.alpha * x0 + (c_t.alpha / c_s.alpha) * c_s.sigma**2 / c_t.sigma * eps
    return mean + math.sqrt(beta_tilde) * randn_like(x0, generator)


@torch.no_grad()
def ddnm(den, y: Tensor, op: LinearOperator, *, shape: tuple[int, ...], steps: int = 100, grid="trailing",
         eta: float = 0.85, sigma_y: float = 0.0, plus: bool = False, x_T: Tensor | None = None,
         generator: torch.Generator | None = None, callback=None, **cond) -> Tensor:
    """DDNM (plus=False) / DDNM+ (plus=True) with DDIM(eta) steps; returns x (shape) in the model's range."""
    eta = real_number(eta, "eta", low=0.0, high=1.0)
    sigma_y = real_number(sigma_y, "sigma_y", low=0.0)
    times = _grid(den, grid, steps)
    x = _start(x_T, shape, y, generator)
    sched = den.schedule
    for i in range(len(times) - 1):
        t, s = times[i].item(), times[i + 1].item()
        out = den.predict(x, t, **cond)
        c_t, c_s = coeffs(sched, t), coeffs(sched, s)
        c = eta * math.sqrt(posterior_terms(c_t, c_s)[1]) if s > 0 else 0.0  # the step's stochastic std
        weight = gain = None
        if plus and sigma_y > 0:
            a = c_s.alpha

            def weight(sv: Tensor, c=c, a=a) -> Tensor:  # lambda_i (eq. 18)
                return torch.clamp(c * sv / (a * sigma_y), max=1.0)

            def gain(sv: Tensor, c=c, a=a, weight=weight) -> Tensor:  # std of the fresh noise kept (eq. 19)
                return torch.sqrt(torch.clamp(c**2 - (a * weight(sv) * sigma_y / sv) ** 2, min=0.0)) / max(c, 1e-30)

        x0 = out.x0 - op.lift(op.forward(out.x0) - y, weight)
        if callback is not None:
            callback(i, t, x, x0)
        if s == 0.0:
            x = x0
            break
        eps = (x - c_t.alpha * x0) / c_t.sigma
        z = randn_like(x, generator)
        if gain is not None:
            z = z - op.lift_part(z) + op.lift_part(z, gain)
        x = c_s.alpha * x0 + math.sqrt(max(c_s.sigma**2 - c**2, 0.0)) * eps + c * z
    return x


def ddnm_plus(den, y: Tensor, op: LinearOperator, **kwargs) -> Tensor:
    """DDNM+ (Wang et al. 2023): DDNM with the noise-aware shrunk correction; see `ddnm`."""
    return ddnm(den, y, op, plus=True, **kwargs)


def dps(den, y: Tensor, op: LinearOperator, *, shape: tuple[int, ...], steps: int = 100, grid="trailing",
        zeta: float = 0.5, likelihood: str = "norm", sigma_y: float = 0.0, x_T: Tensor | None = None,
        generator: torch.Generator | None = None, callback=None, **cond) -> Tensor:
    """DPS (Chung et al. 2023, Alg. 1, Gaussian noise): ancestral steps with the measurement gradient through the
    denoiser. `zeta` is the paper's zeta' (step zeta' / ||y - A x0_hat|| on the squared norm); see the module."""
    zeta = real_number(zeta, "zeta", low=0.0)
    sigma_y = real_number(sigma_y, "sigma_y", low=0.0)
    if likelihood not in ("norm", "gaussian"):
        raise ValueError(f"likelihood: expected 'norm' or 'gaussian', got {likelihood!r}")
    if likelihood == "gaussian" and sigma_y == 0.0:
        raise ValueError("sigma_y: likelihood='gaussian' needs the measurement noise std sigma_y > 0, got 0")
    times = _grid(den, grid, steps)
    x = _start(x_T, shape, y, generator)
    sched = den.schedule
    for i in range(len(times) - 1):
        t, s = times[i].item(), times[i + 1].item()
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = den.predict(x, t, **cond)
            r = (y - op.forward(out.x0)).flatten(1)  # (B, M)
            c_t = coeffs(sched, t)
            if likelihood == "norm":
                norm = torch.linalg.vector_norm(r, dim=1)  # (B,)
                # zeta_i grad ||r||^2 with zeta_i = zeta / ||r||  ==  2 zeta grad ||r||
                objective = 2.0 * zeta * norm.sum()
            else:
                var = sigma_y**2 + c_t.sigma**2 / (c_t.alpha**2 + c_t.sigma**2)
                objective = (r**2).sum() / (2.0 * var)  # -log N(y; A x0_hat, var I) + const
            grad = torch.autograd.grad(objective, x)[0]
        x0, eps = out.x0.detach(), out.eps.detach()
        if callback is not None:
            callback(i, t, x.detach(), x0)
        x_new = _ancestral(x0, eps, t, s, sched, generator)
        if likelihood == "norm":
            x = x_new - grad
        else:
            c_s = coeffs(sched, s)
            trans = posterior_terms(c_t, c_s)[0]  # sigma_{t|s}^2 (sigma_t^2 for the last step, s = 0)
            # reverse-step mean = (x_t + sigma_{t|s}^2 score) / alpha_{t|s}: the likelihood score enters the same way
            x = x_new - trans * (c_s.alpha / c_t.alpha) * grad
    return x.detach()


@torch.no_grad()
def repaint(den, y: Tensor, op: LinearOperator, *, shape: tuple[int, ...], steps: int = 100, grid="trailing",
            jump_length: int = 5, jump_n_sample: int = 5, x_T: Tensor | None = None,
            generator: torch.Generator | None = None, callback=None, **cond) -> Tensor:
    """RePaint generalised to any operator with a right inverse B: x_s <- x_s - B A x_s + B A q(x_s | B y)."""
    jump_length = positive_int(jump_length, "jump_length")
    jump_n_sample = positive_int(jump_n_sample, "jump_n_sample")
    times = _grid(den, grid, steps)
    sched = den.schedule
    process = ForwardProcess(sched)
    known = op.lift(y)
    x = _start(x_T, shape, y, generator)
    order = repaint_schedule(len(times) - 1, jump_length, jump_n_sample)
    for n, (i, j) in enumerate(zip(order[:-1], order[1:], strict=True)):
        t, s = times[i].item(), times[j].item()
        if j < i:  # jump back towards noise
            x = process.renoise(x, s=t, t=s, generator=generator)
            continue
        out = den.predict(x, t, **cond)
        if callback is not None:
            callback(n, t, x, out.x0)
        x = _ancestral(out.x0, out.eps, t, s, sched, generator)
        known_s = known if s == 0.0 else process.q_sample(known, s, noise=randn_like(known, generator))
        x = x - op.lift_part(x) + op.lift_part(known_s)
    return x


@torch.no_grad()
def sdedit(den, y: Tensor, op: LinearOperator, *, shape: tuple[int, ...], steps: int = 50, grid="trailing",
           t0: float = 0.5, method: str = "ddpm", guide: Tensor | None = None, x_T: Tensor | None = None,
           generator: torch.Generator | None = None, callback=None, **cond) -> Tensor:
    """SDEdit: x_t0 = alpha(t0) guide + sigma(t0) z with guide = B y (default), then `method` from t0 to 0.

    t0 is rounded to the schedule's table (k / T) for a discrete schedule; `steps` counts the steps below t0.
    `x_T` (when given) is the noise z.
    """
    t0 = real_number(t0, "t0", low=0.0, high=1.0, low_open=True)
    sched = den.schedule
    if isinstance(sched, DiscreteVP):
        t0 = max(1, round(t0 * sched.T)) / sched.T
        if grid == "trailing":
            steps = min(positive_int(steps, "steps"), round(t0 * sched.T))
    guide = op.lift(y) if guide is None else guide
    if tuple(guide.shape) != tuple(shape):
        raise ValueError(f"guide: expected shape {tuple(shape)}, got {tuple(guide.shape)}")
    z = _start(x_T, shape, y, generator)
    x = ForwardProcess(sched).q_sample(guide, t0, noise=z)
    return sample(den, x, method, steps, grid, t_start=t0, generator=generator, callback=callback, **cond)


SOLVERS = {"ddnm": ddnm, "ddnm+": ddnm_plus, "dps": dps, "repaint": repaint, "sdedit": sdedit}


def network_calls(solver: str, steps: int, *, jump_length: int = 5, jump_n_sample: int = 5, t0: float = 0.5,
                  T: int | None = None) -> int:
    """Denoiser evaluations of one restoration (DPS also back-propagates through each one)."""
    if solver == "repaint":
        order = repaint_schedule(steps, jump_length, jump_n_sample)
        return sum(1 for i, j in zip(order[:-1], order[1:], strict=True) if j > i)
    if solver == "sdedit" and T is not None:
        return min(steps, max(1, round(t0 * T)))
    return non_negative_int(steps, "steps")


__all__ = ["SOLVERS", "ddnm", "ddnm_plus", "dps", "network_calls", "repaint", "sdedit"]
