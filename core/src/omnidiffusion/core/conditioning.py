"""Guidance and known-value conditioning, each a Denoiser wrapper or a sampler over any Denoiser.

- Known-value replacement with RePaint's resampling schedule (Lugmayr et al. 2022, Algorithm 1): after every
  reverse step the known entries are replaced by a fresh forward sample of the known values; "jumps" re-noise
  the merged state and denoise it again so the unknown part harmonises with the known part.
- Classifier guidance (Dhariwal & Nichol 2021, eq. 14 in eps form): eps~ = eps - scale * sigma * grad log p(y|x_t).
- Classifier-free guidance (Ho & Salimans 2022, eq. 6): eps~ = eps_u + w (eps_c - eps_u); w = 0 is the
  unconditional model, w = 1 the conditional one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .denoiser import DenoiserBase, DenoiserOutput, check_state
from .processes import ForwardProcess, prior_std
from .samplers.common import Callback, coeffs, posterior_terms
from .tensors import append_dims, per_sample, randn, randn_like
from .timesteps import make_grid


class ClassifierFreeGuidance(DenoiserBase):
    """eps~ = eps(x | null) + weight (eps(x | cond) - eps(x | null)), and the matching x0~ (both are linear).

    `null_cond` gives the keyword arguments that replace the conditioning for the unconditional pass (e.g.
    {"class_labels": null_labels}); keys not in it are passed to both passes unchanged.
    """

    def __init__(self, denoiser: DenoiserBase, weight: float, null_cond: dict | None = None):
        self.inner = denoiser
        self.schedule = denoiser.schedule
        self.weight = float(weight)
        self.null_cond = dict(null_cond or {})

    def predict(self, x_t: Tensor, t: float | Tensor, **cond) -> DenoiserOutput:
        c = self.inner.predict(x_t, t, **cond)
        if self.weight == 1.0:
            return c
        null = {k: v for k, v in cond.items() if k not in self.null_cond}
        null.update(self.null_cond)
        u = self.inner.predict(x_t, t, **null)
        w = self.weight
        return DenoiserOutput(u.x0 + w * (c.x0 - u.x0), u.eps + w * (c.eps - u.eps), c.variance)


class ClassifierGuidance(DenoiserBase):
    """Shift the score by scale * grad_x log p(y | x_t): eps~ = eps - scale * sigma_t * grad.

    `log_prob(x_t, t, **cond) -> (B,)` is the (noise-aware) classifier's log-probability of the target class.
    With the exact classifier and scale 1 the guided model is the exact conditional p_t(x | y).
    """

    def __init__(self, denoiser: DenoiserBase, log_prob: Callable[..., Tensor], scale: float = 1.0):
        self.inner = denoiser
        self.schedule = denoiser.schedule
        self.log_prob = log_prob
        self.scale = float(scale)

    def predict(self, x_t: Tensor, t: float | Tensor, **cond) -> DenoiserOutput:
        out = self.inner.predict(x_t, t, **cond)
        tt = per_sample(t, x_t)
        with torch.enable_grad():
            x = x_t.detach().requires_grad_(True)
            lp = self.log_prob(x, tt, **cond)
            if lp.shape != (x_t.shape[0],):
                raise ValueError(f"log_prob: expected an output of shape ({x_t.shape[0]},), got {tuple(lp.shape)}")
            grad = torch.autograd.grad(lp.sum(), x)[0]
        a = append_dims(self.schedule.alpha(tt), x_t.ndim).to(x_t.dtype)
        s = append_dims(self.schedule.sigma(tt), x_t.ndim).to(x_t.dtype)
        eps = out.eps - self.scale * s * grad
        return DenoiserOutput((x_t - s * eps) / a, eps, out.variance)


def replace_known(
    x: Tensor,
    x_known: Tensor,
    mask: Tensor,
    t: float,
    process: ForwardProcess,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Merge: mask * q_sample(x_known, t) + (1 - mask) * x. At t = 0 the known values come back exactly."""
    if t == 0.0:
        known_t = x_known
    else:
        known_t = process.q_sample(x_known, t, noise=randn_like(x_known, generator))
    return torch.where(mask, known_t, x)


def repaint_schedule(steps: int, jump_length: int = 10, jump_n_sample: int = 10) -> list[int]:
    """The RePaint visiting order over grid positions 0 (noise end) .. steps (data end).

    Walk down one position at a time; one step before the data end and every `jump_length` positions above
    that (while a full jump fits), go back up `jump_length` positions, `jump_n_sample - 1` times, before
    continuing down (the schedule of Lugmayr et al. 2022, sec. 4.2). jump_n_sample = 1 is plain replacement.
    """
    if steps < 1 or jump_length < 1 or jump_n_sample < 1:
        raise ValueError(
            f"steps, jump_length, jump_n_sample: expected integers >= 1, got {steps}, {jump_length}, {jump_n_sample}"
        )
    # remaining[j] = re-noising rounds left at "steps to go" = j
    remaining = {j + 1: jump_n_sample - 1 for j in range(0, steps - jump_length, jump_length)}
    togo = steps
    order = [0]
    while togo > 0:
        togo -= 1
        order.append(steps - togo)
        if remaining.get(togo, 0) > 0:
            remaining[togo] -= 1
            for _ in range(jump_length):
                togo += 1
                order.append(steps - togo)
    return order


def repaint(
    denoiser: DenoiserBase,
    x_known: Tensor,
    mask: Tensor,
    *,
    steps: int = 250,
    grid: str | Tensor = "time-uniform",
    jump_length: int = 10,
    jump_n_sample: int = 10,
    x_T: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    **cond,
) -> Tensor:
    """Fill the entries where `mask` is False, keeping `x_known` where it is True (RePaint, Lugmayr et al. 2022).

    Reverse steps are ancestral DDPM steps (fixed-small variance); the returned tensor equals x_known exactly on
    the known entries. `mask` broadcasts against x_known (bool, or 0/1 floats; 1 = known).
    """
    check_state(x_known, "x_known")
    mask = torch.as_tensor(mask, device=x_known.device)
    if mask.dtype != torch.bool:
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("mask: expected booleans or 0/1 values (1 = known)")
        mask = mask.bool()
    try:
        mask = torch.broadcast_to(mask, x_known.shape)
    except RuntimeError as err:
        shapes = f"{tuple(mask.shape)} vs x_known {tuple(x_known.shape)}"
        raise ValueError(f"mask: expected a shape that broadcasts to x_known, got {shapes}") from err
    sched = denoiser.schedule
    times = grid if isinstance(grid, Tensor) else make_grid(sched, grid, steps)
    process = ForwardProcess(sched)
    if x_T is None:
        std = prior_std(sched, times[0].item())
        x = std * randn(x_known.shape, generator, device=x_known.device, dtype=x_known.dtype)
    else:
        x = x_T
    order = repaint_schedule(len(times) - 1, jump_length, jump_n_sample)
    with torch.no_grad():
        for n, (i, j) in enumerate(zip(order[:-1], order[1:], strict=True)):
            t, s = times[i].item(), times[j].item()
            if j < i:  # jump back towards noise
                x = process.renoise(x, s=t, t=s, generator=generator)
                continue
            out = denoiser.predict(x, t, **cond)
            if callback is not None:
                callback(n, t, x, out.x0)
            if s == 0.0:
                x = out.x0
            else:
                c_t, c_s = coeffs(sched, t), coeffs(sched, s)
                _, beta_tilde = posterior_terms(c_t, c_s)
                mean = c_s.alpha * out.x0 + (c_t.alpha / c_s.alpha) * c_s.sigma**2 / c_t.sigma * out.eps
                x = mean + beta_tilde**0.5 * randn_like(x, generator)
            x = replace_known(x, x_known, mask, s, process, generator)
    return x
