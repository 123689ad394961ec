"""Analytic-DPM moments and variances against the N(0, I) closed form (Bao et al. 2022)."""

from __future__ import annotations

import math

import pytest
import torch

from omnidiffusion.core import schedules as S
from omnidiffusion.core.analytic_dpm import EpsSqTable, analytic_variances, estimate_eps_sq_mean, x0_var_bound
from omnidiffusion.core.likelihood import vlb
from omnidiffusion.core.samplers import analytic_variance, coeffs, posterior_terms, sample
from omnidiffusion.core.testing import Gaussian
from omnidiffusion.core.timesteps import make_grid

F64 = torch.float64
STD_NORMAL = Gaussian(torch.zeros(4), torch.ones(4))
SCHEDULES = [S.DiscreteVP.linear(1000), S.LinearVP(), S.CosineVP()]


def _forward_variances(sched, grid):
    """sigma_{t|s}^2 of each step (beta_t for consecutive discrete steps); for the jump to t = 0, sigma_t^2."""
    out = []
    for i in range(len(grid) - 1):
        c_t = coeffs(sched, grid[i].item())
        if grid[i + 1].item() == 0.0:
            out.append(c_t.sigma**2)
        else:
            out.append(posterior_terms(c_t, coeffs(sched, grid[i + 1].item()))[0])
    return torch.tensor(out, dtype=F64)


@pytest.mark.parametrize("sched", SCHEDULES, ids=repr)
def test_moment_is_sigma_squared_and_variances_are_the_forward_ones(sched):
    """N(0, I) data with the exact eps: E||eps_hat||^2/d = sigma_t^2 (eps_hat = sigma_t x_t), within 4 standard
    errors at every grid time; the analytic variance of each step then equals its forward variance, exactly with
    the exact moment and within the propagated Monte-Carlo error with the estimate."""
    den = STD_NORMAL.denoiser(sched, "eps")
    grid = make_grid(sched, "time-uniform", 10)
    data = STD_NORMAL.sample(8000, torch.Generator().manual_seed(0))
    table = estimate_eps_sq_mean(den, data, grid, batch_size=3000, generator=torch.Generator().manual_seed(1))
    assert len(table) == 10 and table.n_samples == 8000
    assert torch.equal(table.times, grid[:-1])
    sigma2 = sched.sigma(table.times) ** 2
    assert ((table.values - sigma2).abs() < 4 * table.stderr).all(), (table.values - sigma2) / table.stderr

    forward = _forward_variances(sched, grid)
    exact_table = EpsSqTable(table.times, sigma2, torch.zeros_like(sigma2), 0)
    assert torch.allclose(analytic_variances(den, grid, exact_table), forward, rtol=1e-10, atol=0)

    # d var / d Gamma = -(c_x0 sigma_t / alpha_t)^2 with c_x0 = alpha_s sigma_{t|s}^2 / sigma_t^2 (1 at the end).
    estimated = analytic_variances(den, grid, table)
    for i in range(10):
        c_t, c_s = coeffs(sched, grid[i].item()), coeffs(sched, grid[i + 1].item())
        c_x0 = 1.0 if c_s.t == 0.0 else c_s.alpha * posterior_terms(c_t, c_s)[0] / c_t.sigma**2
        slope = (c_x0 * c_t.sigma / c_t.alpha) ** 2
        assert abs(estimated[i] - forward[i]) <= 4 * slope * table.stderr[i] + 1e-15, i


def test_table_plugs_into_the_ddpm_sampler_and_the_vlb():
    """N(0, I) with the exact eps: the reverse kernels with analytic variances are the true ones, so the VLB equals
    the exact NLL (within 4 standard errors), while fixed-small variances pay a visible price; the sampler accepts
    the same table and its samples have the N(0, 1 - Var[x0 | x_{t_1}]) law of a chain that ends on x0_hat."""
    sched = S.DiscreteVP.linear(1000)
    den = STD_NORMAL.denoiser(sched, "eps")
    table = estimate_eps_sq_mean(den, STD_NORMAL.sample(4000, torch.Generator().manual_seed(0)), "time-uniform", 10,
                                 generator=torch.Generator().manual_seed(1))
    x0 = STD_NORMAL.sample(20000, torch.Generator().manual_seed(2))
    nll = -STD_NORMAL.log_prob(x0)
    gaps = {}
    for variance in ("analytic", "fixed-small"):
        res = vlb(den, x0, steps=10, variance=variance, eps_sq_mean=table, generator=torch.Generator().manual_seed(3))
        gap = res.total - nll
        gaps[variance] = (gap.mean().item(), gap.std().item() / math.sqrt(len(gap)))
    mean, se = gaps["analytic"]
    assert abs(mean) < 4 * se + 0.01, gaps
    assert gaps["fixed-small"][0] > mean + 1.0

    x = sample(den, (20000, 4), "ddpm", steps=10, variance="analytic", options={"eps_sq_mean": table},
               generator=torch.Generator().manual_seed(4), dtype=F64)
    t1 = make_grid(sched, "time-uniform", 10)[-2].item()
    expected_var = 1.0 - sched.sigma(t1).item() ** 2  # Var E[x0 | x_{t_1}] = alpha_{t_1}^2
    assert (x.var(0) - expected_var).abs().max() < 0.05 and x.mean(0).abs().max() < 0.05


def test_table_lookup_by_time_and_by_step():
    times = torch.tensor([1.0, 0.5, 0.25], dtype=F64)
    table = EpsSqTable(times, torch.tensor([0.9, 0.5, 0.1], dtype=F64), torch.zeros(3, dtype=F64), 10)
    assert table[1] == 0.5 and table(0.5) == 0.5 and table(1.0) == 0.9
    assert abs(table(0.75) - 0.7) < 1e-12  # linear in t between stored times
    with pytest.raises(ValueError, match="table holds times"):
        table(0.1)
    assert x0_var_bound(-1.0, 1.0) == 1.0
    # the sampler's clipping with that bound keeps Var[x0 | x_t] = (sigma/alpha)^2 (1 - Gamma) <= 1
    c_t, c_s = coeffs(S.LinearVP(), 0.9), coeffs(S.LinearVP(), 0.8)
    at_bound = 1.0 - (c_t.alpha / c_t.sigma) ** 2
    assert math.isclose(analytic_variance(c_t, c_s, -5.0, x0_var_bound(-1, 1)),
                        analytic_variance(c_t, c_s, at_bound, None), rel_tol=1e-12)


def test_bad_input_is_refused():
    den = STD_NORMAL.denoiser(S.LinearVP(), "eps")
    with pytest.raises(ValueError, match="steps"):
        estimate_eps_sq_mean(den, STD_NORMAL.sample(8), "time-uniform")
    with pytest.raises(ValueError, match="at least 2"):
        estimate_eps_sq_mean(den, STD_NORMAL.sample(1), "time-uniform", 4)
    with pytest.raises(ValueError, match="batch_size"):
        estimate_eps_sq_mean(den, STD_NORMAL.sample(8), "time-uniform", 4, batch_size=0)
