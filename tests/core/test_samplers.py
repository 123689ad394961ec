"""Samplers against exact oracles: identities, convergence orders, stochastic moments, shapes, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from omnidiffusion.core import schedules as S
from omnidiffusion.core.samplers import METHODS, ddim, ddpm, dpm_solver, dpm_solver_pp, nfe, sample
from omnidiffusion.core.testing import Gaussian, GaussianMixture
from omnidiffusion.core.timesteps import make_grid

F64 = torch.float64
GAUSS = Gaussian(torch.tensor([0.5, -1.0, 0.0]), torch.tensor([0.5, 0.2, 1.3]))
MIX = GaussianMixture([0.3, 0.7], torch.tensor([[-1.5, 0.5], [1.0, -0.5]]), torch.tensor([0.4, 0.6]))


def _x_T(n=256, d=3, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


# ---------------------------------------------------------------------------------------------- exact identities


@pytest.mark.parametrize("grid", ["time-uniform", "logsnr", "karras"])
def test_ddim_dpm1_and_first_order_dpmpp_agree(grid):
    sched = S.DiscreteVP.linear(1000)
    den = MIX.denoiser(sched, "eps")
    g = make_grid(sched, grid, 12)
    x = _x_T(200, 2)
    a = ddim(den, x, g)
    b = dpm_solver(den, x, g, order=1)
    c = dpm_solver_pp(den, x, g, order=1)
    assert (a - b).abs().max() < 1e-10 and (a - c).abs().max() < 1e-10


def test_ddim_eta1_on_consecutive_steps_is_ddpm_fixed_small():
    sched = S.DiscreteVP.linear(100)
    den = MIX.denoiser(sched, "eps")
    g = make_grid(sched, "trailing", 100)  # every table step: consecutive
    x = _x_T(100, 2)
    a = ddim(den, x, g, eta=1.0, generator=torch.Generator().manual_seed(3))
    b = ddpm(den, x, g, variance="fixed-small", generator=torch.Generator().manual_seed(3))
    assert (a - b).abs().max() < 1e-10


@pytest.mark.parametrize("variance", ["fixed-small", "fixed-large"])
def test_one_ddpm_step_matches_ho_et_al_eq7(variance):
    """Posterior mean and variance written from the beta table (Ho et al. 2020, eqs. 6-7)."""
    T = 1000
    sched = S.DiscreteVP.linear(T)
    betas = np.linspace(1e-4, 0.02, T)
    abar = np.cumprod(1 - betas)
    n = 500
    den = GAUSS.denoiser(sched, "eps")
    x = _x_T(64)
    t_n = sched.t_of_index(n).item()
    g = torch.tensor([t_n, sched.t_of_index(n - 1).item()], dtype=F64)
    out = ddpm(den, x, g, variance=variance, generator=torch.Generator().manual_seed(5))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=F64)
    x0 = den(x, t_n)
    mean = (
        math.sqrt(abar[n - 1]) * betas[n] / (1 - abar[n]) * x0
        + math.sqrt(1 - betas[n]) * (1 - abar[n - 1]) / (1 - abar[n]) * x
    )
    var = betas[n] * (1 - abar[n - 1]) / (1 - abar[n]) if variance == "fixed-small" else betas[n]
    assert torch.allclose(out, mean + math.sqrt(var) * z, atol=1e-12)


def test_analytic_variance_is_beta_for_standard_normal_data():
    """Bao et al. 2022: for N(0, I) data E||eps_hat||^2/d = sigma_t^2 and the optimal variance is beta_n."""
    from omnidiffusion.core.samplers import analytic_variance, coeffs

    sched = S.DiscreteVP.linear(1000)
    for n in (1, 10, 300, 999):
        c_t, c_s = coeffs(sched, sched.t_of_index(n).item()), coeffs(sched, sched.t_of_index(n - 1).item())
        gamma = c_t.sigma**2  # E[eps_hat^2] with eps_hat = sigma_t x_t for N(0, 1) data
        assert analytic_variance(c_t, c_s, gamma) == pytest.approx(sched.betas[n], rel=1e-9)
    # and on a respaced step the optimum is the forward transition variance 1 - abar_t / abar_s
    c_t, c_s = coeffs(sched, 0.8), coeffs(sched, 0.5)
    expected = 1 - (c_t.alpha / c_s.alpha) ** 2
    assert analytic_variance(c_t, c_s, c_t.sigma**2) == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------------------------------------- convergence order

# (method, step counts): log-log slope of the endpoint error must lie in the band.
ORDER_CASES = [
    ("ddim", (16, 32, 64, 128), (-1.3, -0.7)),
    ("dpm1", (16, 32, 64, 128), (-1.3, -0.7)),
    ("heun", (8, 16, 32, 64), (-9.0, -1.6)),
    ("dpm2", (8, 16, 32, 64), (-9.0, -1.6)),
    ("dpm++2m", (16, 32, 64, 128), (-9.0, -1.6)),
    ("dpm3", (8, 16, 32), (-9.0, -2.3)),
    # The multistep method starts with one first- and one second-order step, which caps its asymptotic order
    # at 2; over 8-32 steps the third-order terms still dominate.
    ("dpm++3m", (8, 16, 32), (-9.0, -2.3)),
]


@pytest.mark.parametrize("sched", [S.LinearVP(), S.DiscreteVP.linear(1000), S.VE()], ids=repr)
@pytest.mark.parametrize("method,steps,band", ORDER_CASES, ids=[c[0] for c in ORDER_CASES])
def test_convergence_order(sched, method, steps, band):
    """Endpoint error at t_min of the probability-flow ODE vs the exact solution, on a log-SNR grid."""
    den = GAUSS.denoiser(sched, "eps")
    x = _x_T() * (1.0 if sched.variance_preserving else sched.sigma(1.0).item())
    exact = GAUSS.ode_endpoint(x, sched, 1.0, sched.t_min)
    errs = []
    for n in steps:
        grid = make_grid(sched, "logsnr", n, t_end=sched.t_min)
        errs.append((sample(den, x, method, grid=grid) - exact).abs().max().item())
    slope = np.polyfit(np.log(steps), np.log(errs), 1)[0]
    assert band[0] <= slope <= band[1], f"{method}: slope {slope:.2f}, errors {errs}"


# ---------------------------------------------------------------------------------------------- stochastic samplers

STOCHASTIC = [
    ("ddpm", S.DiscreteVP.linear(1000), "trailing", 250, {}),
    ("ddim", S.DiscreteVP.linear(1000), "trailing", 250, {"eta": 1.0}),
    ("euler-maruyama", S.LinearVP(), "time-uniform", 500, {}),
    ("pc", S.LinearVP(), "time-uniform", 250, {}),
    ("euler-maruyama", S.VE(0.01, 50.0), "time-uniform", 500, {}),
]


@pytest.mark.parametrize("method,sched,grid,steps,opts", STOCHASTIC, ids=[f"{c[0]}-{c[1]!r}" for c in STOCHASTIC])
def test_stochastic_samplers_reproduce_mixture_moments(method, sched, grid, steps, opts):
    """Sample mean and covariance within 5 standard errors of the exact ones.

    With n i.i.d. samples the standard error of a mean is sqrt(Var/n) and that of a covariance entry is
    sqrt(Var[(x_i - m_i)(x_j - m_j)] / n), estimated from the samples; 5 standard errors on 5 statistics keep
    the false-alarm rate below 1e-5 while the discretisation bias at these step counts is far smaller.
    """
    n = 4000
    den = MIX.denoiser(sched, "eps")
    gen = torch.Generator().manual_seed(11)
    x = sample(den, (n, 2), method, steps, grid, generator=gen, dtype=F64, options=opts)
    mu, cov = MIX.mean_cov()
    m = x.mean(0)
    se_m = x.var(0).sqrt() / math.sqrt(n)
    assert bool(((m - mu).abs() < 5 * se_m).all()), (m, mu, se_m)
    c = x - m
    for i, j in ((0, 0), (1, 1), (0, 1)):
        prod = c[:, i] * c[:, j]
        se = prod.std() / math.sqrt(n)
        assert abs(prod.mean() - cov[i, j]) < 5 * se, (i, j, prod.mean().item(), cov[i, j].item(), se.item())


# ---------------------------------------------------------------------------------------------- shapes

SHAPES = {"image": (3, 4, 4), "audio": (1, 16), "series": (3, 6), "tokens": (5, 4)}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_sampler_runs_unchanged_on_every_shape(method):
    """Shape-generic: on any event shape a sampler gives the flattened computation's result."""
    sched = S.DiscreteVP.linear(1000)
    for name, shape in SHAPES.items():
        d = int(np.prod(shape))
        mean = torch.linspace(-1, 1, d, dtype=F64)
        std = torch.linspace(0.3, 1.2, d, dtype=F64)
        shaped = Gaussian(mean.reshape(shape), std.reshape(shape)).denoiser(sched, "eps")
        flat = Gaussian(mean, std).denoiser(sched, "eps")
        x = torch.randn(4, *shape, generator=torch.Generator().manual_seed(0), dtype=F64)
        a = sample(shaped, x, method, 6, generator=torch.Generator().manual_seed(1))
        b = sample(flat, x.reshape(4, d), method, 6, generator=torch.Generator().manual_seed(1))
        assert a.shape == x.shape, name
        assert torch.allclose(a.reshape(4, d), b, atol=1e-10), (method, name)


def test_atoms_with_per_atom_time():
    """(N_total, 3) atoms: one time entry per atom, as molecules need."""
    sched = S.LinearVP()
    g = Gaussian(torch.zeros(3), torch.ones(3))
    den = g.denoiser(sched, "eps")
    x = torch.randn(7, 3, dtype=F64)
    out = sample(den, x, "dpm++2m", 10)
    assert out.shape == (7, 3)


# ---------------------------------------------------------------------------------------------- front door


def test_nfe_counts_network_calls():
    sched = S.LinearVP()
    calls = {"n": 0}
    base = GAUSS.denoiser(sched, "eps")

    def counting(x, t):
        calls["n"] += 1
        return base.net(x, t)

    from omnidiffusion.core import Denoiser

    den = Denoiser(counting, sched, "eps")
    for method in ("ddim", "heun", "dpm2", "dpm3", "dpm++2m", "pc"):
        calls["n"] = 0
        sample(den, _x_T(4), method, 10, generator=torch.Generator().manual_seed(0))
        assert calls["n"] == nfe(method, 10), method


def test_t_start_starts_from_a_partially_noised_input():
    sched = S.LinearVP()
    den = GAUSS.denoiser(sched, "eps")
    x = _x_T(64) * 0.3
    out = sample(den, x, "dpm3", 40, "logsnr", t_start=0.4)
    exact = GAUSS.ode_endpoint(x, sched, 0.4, 0.0)
    assert (out - exact).abs().max() < 2e-3


def test_callback_sees_every_step():
    den = GAUSS.denoiser(S.LinearVP(), "eps")
    seen = []
    sample(den, _x_T(4), "ddim", 7, callback=lambda i, t, x, x0: seen.append((i, t, x.shape, x0.shape)))
    assert [s[0] for s in seen] == list(range(7))
    assert seen[0][1] == 1.0 and all(s[2] == (4, 3) == s[3] for s in seen)


def test_bad_input_names_the_argument():
    den = GAUSS.denoiser(S.LinearVP(), "eps")
    x = _x_T(4)
    with pytest.raises(ValueError, match="method: expected one of"):
        sample(den, x, "plms")
    with pytest.raises(ValueError, match="steps: expected an integer >= 1, got 0"):
        sample(den, x, "ddim", 0)
    with pytest.raises(ValueError, match="grid: expected one of"):
        sample(den, x, "ddim", 5, "leading")
    with pytest.raises(ValueError, match="t_start: expected a value in"):
        sample(den, x, "ddim", 5, t_start=1.5)
    with pytest.raises(ValueError, match="x_T: expected a floating-point tensor"):
        sample(den, torch.zeros(4, 3, dtype=torch.long), "ddim", 5)
    with pytest.raises(ValueError, match=r"x_t: expected shape|x: expected shape"):
        sample(den, torch.zeros(4, 2, dtype=F64), "ddim", 5)
    with pytest.raises(ValueError, match="options: \\['eta'\\] do not apply to method 'heun'"):
        sample(den, x, "heun", 5, eta=0.5)
    with pytest.raises(ValueError, match="variance: expected one of"):
        sample(den, x, "ddpm", 5, variance="huge")
