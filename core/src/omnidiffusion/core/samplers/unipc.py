"""UniPC: unified predictor-corrector multistep solver (Zhao et al. 2023, arXiv 2302.04867), data-prediction form.

In the half log-SNR lambda, a step t -> s (h = lambda_s - lambda_t > 0) from the state x at t with model outputs
m0 = x0_hat(t) and m_k at earlier grid times t_k is

    x_s = (sigma_s/sigma_t) x - alpha_s phi1 m0 - alpha_s B(h) sum_k rho_k D_k,   D_k = (m_k - m0) / r_k,

phi1 = expm1(-h), r_k = (lambda_{t_k} - lambda_t)/h, B(h) = expm1(-h) ("bh2") or -h ("bh1"). The weights rho solve
the order conditions sum_k rho_k r_k^(j-1) = j! g_j / B(h), g_1 = phi1/(-h) - 1, g_{j+1} = g_j/(-h) - 1/(j+1)!
(the paper's Theorem 3.1 system). UniP-p uses p - 1 earlier outputs (p = 2: rho = 1/2, which makes UniP-2 with
bh2 exactly DPM-Solver++(2M)). The corrector UniC reuses the model output at the predicted point, which the
next step needs anyway, as one more node (r = 1) and re-solves the step from t: order p + 1 at no extra NFE.
The history holds outputs at the predicted (uncorrected) points; no corrector follows the last step.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..denoiser import DenoiserBase
from .common import Callback, Coeffs, grid_coeffs

VARIANTS = ("bh1", "bh2")


def _order_rhs(h: float, order: int, variant: str) -> tuple[float, list[float]]:
    """(B(h), [j! g_j / B(h) for j = 1..order]) for the data-prediction form (argument -h)."""
    hh = -h
    phi1 = math.expm1(hh)
    b_h = phi1 if variant == "bh2" else hh
    g = phi1 / hh - 1.0
    rhs, fact = [], 1.0
    for j in range(1, order + 1):
        rhs.append(g * fact / b_h)
        fact *= j + 1
        g = g / hh - 1.0 / fact
    return b_h, rhs


def _weights(rks: list[float], rhs: list[float]) -> list[float]:
    """Solve sum_k rho_k r_k^(j-1) = rhs_j, j = 1..len(rks) (a small Vandermonde system, float64)."""
    r = torch.tensor(rks, dtype=torch.float64)
    vander = torch.stack([r**j for j in range(len(rks))])  # (order, order): row j holds r_k^j
    return torch.linalg.solve(vander, torch.tensor(rhs[: len(rks)], dtype=torch.float64)).tolist()


def _update(x: Tensor, c_t: Coeffs, c_s: Coeffs, m0: Tensor, diffs: list[tuple[float, Tensor]],
            rhos: list[float], b_h: float) -> Tensor:
    """(sigma_s/sigma_t) x - alpha_s phi1 m0 - alpha_s B(h) sum_k rho_k (m_k - m0)/r_k."""
    h = c_s.lam - c_t.lam
    out = x.mul(c_s.sigma / c_t.sigma).add_(m0, alpha=-c_s.alpha * math.expm1(-h))
    for rho, (r, m) in zip(rhos, diffs, strict=True):
        w = -c_s.alpha * b_h * rho / r
        out.add_(m, alpha=w).add_(m0, alpha=-w)
    return out


def unipc(
    denoiser: DenoiserBase,
    x: Tensor,
    grid: Tensor,
    *,
    order: int = 2,
    variant: str = "bh2",
    corrector: bool = True,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    **cond,
) -> Tensor:
    """UniPC-p multistep sampling with the UniC corrector (Zhao et al. 2023, Algorithms 1-3, data prediction).

    order: p of the predictor, 1-3 (the corrector raises the order to p + 1); it warms up from 1 as outputs
    accumulate and, on a grid ending at the data end, drops so the step before the final jump uses no more
    than two outputs ("lower order final", as diffusers' UniPCMultistepScheduler). One NFE per step.
    """
    if order not in (1, 2, 3):
        raise ValueError(f"order: expected 1, 2 or 3, got {order}")
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    cs = grid_coeffs(denoiser.schedule, grid)
    n = len(grid) - 1
    ends_at_data = cs[-1].t == 0.0
    hist: list[tuple[Coeffs, Tensor]] = []  # (coefficients, x0_hat) at earlier grid times, newest last
    prev: tuple[Tensor, Coeffs, int] | None = None  # (state, its coefficients, predictor order) one step back
    for i in range(n):
        c_t, c_s = cs[i], cs[i + 1]
        out = denoiser.predict(x, c_t.t, **cond)
        if callback is not None:
            callback(i, c_t.t, x, out.x0)
        if corrector and prev is not None:
            x_prev, c_prev, k = prev
            h = c_t.lam - c_prev.lam
            b_h, rhs = _order_rhs(h, k, variant)
            m0 = hist[-1][1]
            diffs = [((c.lam - c_prev.lam) / h, m) for c, m in reversed(hist[-k:-1])]
            rhos = [0.5] if k == 1 else _weights([r for r, _ in diffs] + [1.0], rhs)
            x = _update(x_prev, c_prev, c_t, m0, diffs + [(1.0, out.x0)], rhos, b_h)
        hist = (hist + [(c_t, out.x0)])[-order:]
        if c_s.t == 0.0:
            x = out.x0
            continue
        k = min(order, len(hist))
        if ends_at_data:
            k = min(k, n - i)
        h = c_s.lam - c_t.lam
        b_h, rhs = _order_rhs(h, k, variant)
        diffs = [((c.lam - c_t.lam) / h, m) for c, m in reversed(hist[-k:-1])]
        rhos = [0.5] if k == 2 else (_weights([r for r, _ in diffs], rhs) if diffs else [])
        prev = (x, c_t, k)
        x = _update(x, c_t, c_s, out.x0, diffs, rhos, b_h)
    return x


__all__ = ["VARIANTS", "unipc"]
