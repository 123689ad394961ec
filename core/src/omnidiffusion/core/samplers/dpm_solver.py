"""DPM-Solver (Lu et al. 2022, arXiv 2206.00927) and DPM-Solver++ multistep (Lu et al. 2022, arXiv 2211.01095).

Both integrate the probability-flow ODE exactly in its linear part, in the half log-SNR lambda; h = lambda_s -
lambda_t > 0 for a denoising step t -> s. phi functions use expm1. A step that lands on the data end
(lambda = +inf) is the first-order limit x = x0_hat, i.e. "lower order final".
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..denoiser import DenoiserBase
from .common import Callback, coeffs, grid_coeffs


def dpm_solver(
    denoiser: DenoiserBase,
    x: Tensor,
    grid: Tensor,
    *,
    order: int = 2,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    **cond,
) -> Tensor:
    """Singlestep DPM-Solver-1/2/3 in noise-prediction form (Lu et al. 2022, Algorithms 1 and 2, r1 = 1/2 for
    order 2, r1 = 1/3, r2 = 2/3 for order 3). Each step costs `order` evaluations; DPM-Solver-1 is DDIM."""
    if order not in (1, 2, 3):
        raise ValueError(f"order: expected 1, 2 or 3, got {order}")
    sched = denoiser.schedule
    cs = grid_coeffs(sched, grid)
    for i in range(len(grid) - 1):
        c_t, c_s = cs[i], cs[i + 1]
        t, s = c_t.t, c_s.t
        out = denoiser.predict(x, t, **cond)
        if callback is not None:
            callback(i, t, x, out.x0)
        if s == 0.0:
            x = out.x0
            continue
        h = c_s.lam - c_t.lam
        eps_t = out.eps
        phi1 = math.expm1(h)
        if order == 1:
            x = (c_s.alpha / c_t.alpha) * x - c_s.sigma * phi1 * eps_t
        elif order == 2:
            r1 = 0.5
            c_1 = coeffs(sched, sched.t_from_log_snr(c_t.lam + r1 * h).item())
            u = (c_1.alpha / c_t.alpha) * x - c_1.sigma * math.expm1(r1 * h) * eps_t
            d1 = denoiser.eps(u, c_1.t, **cond) - eps_t
            x = (c_s.alpha / c_t.alpha) * x - c_s.sigma * phi1 * eps_t - c_s.sigma / (2 * r1) * phi1 * d1
        else:
            r1, r2 = 1.0 / 3.0, 2.0 / 3.0
            c_1 = coeffs(sched, sched.t_from_log_snr(c_t.lam + r1 * h).item())
            c_2 = coeffs(sched, sched.t_from_log_snr(c_t.lam + r2 * h).item())
            u1 = (c_1.alpha / c_t.alpha) * x - c_1.sigma * math.expm1(r1 * h) * eps_t
            d1 = denoiser.eps(u1, c_1.t, **cond) - eps_t
            phi_12 = math.expm1(r2 * h)
            phi_22 = phi_12 / (r2 * h) - 1.0
            u2 = (c_2.alpha / c_t.alpha) * x - c_2.sigma * phi_12 * eps_t - (r2 / r1) * c_2.sigma * phi_22 * d1
            d2 = denoiser.eps(u2, c_2.t, **cond) - eps_t
            phi2 = phi1 / h - 1.0
            x = (c_s.alpha / c_t.alpha) * x - c_s.sigma * phi1 * eps_t - (c_s.sigma / r2) * phi2 * d2
    return x


def dpm_solver_pp(
    denoiser: DenoiserBase,
    x: Tensor,
    grid: Tensor,
    *,
    order: int = 2,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    **cond,
) -> Tensor:
    """Multistep DPM-Solver++(2M)/(3M) in data-prediction form (Lu et al. 2022b, Algorithm 2 and appendix).

    Uses the x0_hat of previous steps; starts at order 1 and raises the order as history accumulates.
    """
    if order not in (1, 2, 3):
        raise ValueError(f"order: expected 1, 2 or 3, got {order}")
    sched = denoiser.schedule
    hist_x0: list[Tensor] = []
    hist_lam: list[float] = []
    cs = grid_coeffs(sched, grid)
    for i in range(len(grid) - 1):
        c_t, c_s = cs[i], cs[i + 1]
        t, s = c_t.t, c_s.t
        out = denoiser.predict(x, t, **cond)
        if callback is not None:
            callback(i, t, x, out.x0)
        if s == 0.0:
            x = out.x0
            continue
        hist_x0 = (hist_x0 + [out.x0])[-3:]
        hist_lam = (hist_lam + [c_t.lam])[-3:]
        k = min(order, len(hist_x0))
        h = c_s.lam - c_t.lam
        phi1 = math.expm1(-h)
        # The update is linear in (x, m0, m1, m2); fold the divided differences into one coefficient per
        # history entry so each step is a handful of fused multiply-adds.
        coef = [-c_s.alpha * phi1, 0.0, 0.0]  # on m0 = newest x0_hat, m1, m2
        if k >= 2:
            r0 = (hist_lam[-1] - hist_lam[-2]) / h
            if k == 2:
                c10, c11 = -0.5 * c_s.alpha * phi1, 0.0  # on D1_0 = (m0 - m1)/r0
            else:
                r1 = (hist_lam[-2] - hist_lam[-3]) / h
                phi2 = phi1 / h + 1.0
                phi3 = phi2 / h - 0.5
                # x += alpha (phi2 D1 - phi3 D2), D1 = D1_0 + r0/(r0+r1) (D1_0 - D1_1), D2 = (D1_0 - D1_1)/(r0+r1)
                w = r0 / (r0 + r1)
                c10 = c_s.alpha * (phi2 * (1.0 + w) - phi3 / (r0 + r1))
                c11 = c_s.alpha * (-phi2 * w + phi3 / (r0 + r1))  # on D1_1 = (m1 - m2)/r1
                coef[2] -= c11 / r1
                coef[1] += c11 / r1
            coef[0] += c10 / r0
            coef[1] -= c10 / r0
        x = x.mul(c_s.sigma / c_t.sigma)
        for c, m in zip(coef[:k], reversed(hist_x0[-k:]), strict=True):
            x.add_(m, alpha=c)
    return x
