"""Likelihood against exact densities: PF-ODE log-likelihood, Hutchinson unbiasedness, the VLB bound."""

from __future__ import annotations

import math

import pytest
import torch

from omnidiffusion.core import schedules as S
from omnidiffusion.core.likelihood import bits_per_dim, ode_log_likelihood, uniform_dequantize, vlb
from omnidiffusion.core.testing import Gaussian, GaussianMixture

F64 = torch.float64
MIX = GaussianMixture([0.4, 0.6], torch.tensor([[-1.0, 0.5], [1.0, -0.5]]), torch.tensor([0.3, 0.5]))


@pytest.mark.parametrize("sched", [S.LinearVP(), S.VE(0.01, 50.0)], ids=repr)
def test_ode_log_likelihood_is_exact_with_the_exact_denoiser(sched):
    """log p_{t_eps}(x) from the ODE equals the exact marginal density within 1e-3 nats (exact divergence).

    The prior is the exact p_1 so that only the ODE solve is tested; with the Gaussian prior the gap is the
    prior mismatch, checked separately below."""
    den = MIX.denoiser(sched, "eps")
    x = MIX.sample(16, torch.Generator().manual_seed(0))
    t_eps = 1e-3
    res = ode_log_likelihood(
        den, x, t_eps=t_eps, prior_logp=lambda z: MIX.log_prob(z, 1.0, sched), rtol=1e-8, atol=1e-8
    )
    exact = MIX.log_prob(x, t_eps, sched)
    assert (res.logp - exact).abs().max() < 1e-3, (res.logp - exact)


def test_gaussian_prior_gap_is_the_prior_mismatch():
    """With the N(0, I) prior the error is exactly log N(x_1) - log p_1(x_1) at the flowed point x_1."""
    sched = S.LinearVP()
    den = MIX.denoiser(sched, "eps")
    x = MIX.sample(16, torch.Generator().manual_seed(1))
    res = ode_log_likelihood(den, x, t_eps=1e-3, rtol=1e-8, atol=1e-8)
    x1 = _flow_to_one(den, x)
    std_normal = -0.5 * (x1**2).sum(1) - math.log(2 * math.pi)
    expected_gap = std_normal - MIX.log_prob(x1, 1.0, sched)
    assert (res.logp - MIX.log_prob(x, 1e-3, sched) - expected_gap).abs().max() < 1e-3


def _flow_to_one(den, x):
    from torchdiffeq import odeint

    from omnidiffusion.core.processes import ForwardProcess

    proc = ForwardProcess(den.schedule)

    def rhs(t, z):
        return proc.probability_flow_drift(z, float(t), den.score(z, float(t)))

    ts = torch.tensor([1e-3, 1.0], dtype=F64)
    return odeint(rhs, x, ts, rtol=1e-9, atol=1e-9, options={"step_t": ts[1:]})[-1]


def test_hutchinson_is_unbiased():
    """The Hutchinson estimate averages to the exact value: over many probe draws the mean error of log p is within
    3 standard errors of 0, and the spread falls as probes are added."""
    sched = S.LinearVP()
    den = MIX.denoiser(sched, "eps")
    x = MIX.sample(8, torch.Generator().manual_seed(2))
    exact = ode_log_likelihood(den, x, t_eps=1e-2, rtol=1e-6, atol=1e-6).logp
    reps = 40
    xs = x.repeat(reps, 1)
    gen = torch.Generator().manual_seed(3)
    est1 = ode_log_likelihood(den, xs, t_eps=1e-2, divergence="hutchinson", rtol=1e-6, atol=1e-6, generator=gen).logp
    est4 = ode_log_likelihood(
        den, xs, t_eps=1e-2, divergence="hutchinson", n_probes=4, rtol=1e-6, atol=1e-6, generator=gen
    ).logp
    err1 = (est1.reshape(reps, 8) - exact).flatten()
    err4 = (est4.reshape(reps, 8) - exact).flatten()
    assert abs(err1.mean()) < 3 * err1.std() / math.sqrt(err1.numel())
    assert abs(err4.mean()) < 3 * err4.std() / math.sqrt(err4.numel())
    assert err4.std() < err1.std()


@pytest.mark.parametrize("variance", ["fixed-small", "fixed-large"])
def test_vlb_bounds_the_exact_nll(variance):
    """E[VLB] >= E[-log p(x0)] for the ancestral chain with the exact denoiser (Ho et al. 2020, eq. 3)."""
    sched = S.DiscreteVP.linear(1000)
    g = Gaussian(torch.tensor([0.3, -0.2]), torch.tensor([0.4, 0.7]))
    den = g.denoiser(sched, "eps")
    gen = torch.Generator().manual_seed(4)
    x0 = g.sample(4000, gen)
    nll = -g.log_prob(x0)
    res = vlb(den, x0, steps=10, variance=variance, generator=gen)
    gap = res.total - nll
    se = gap.std() / math.sqrt(gap.numel())
    assert gap.mean() > 3 * se, (gap.mean(), se)


def test_vlb_tightens_with_more_steps():
    """With the exact denoiser and fixed-large variances the bound approaches the NLL as the chain refines."""
    sched = S.DiscreteVP.linear(1000)
    g = Gaussian(torch.tensor([0.3, -0.2]), torch.tensor([0.4, 0.7]))
    den = g.denoiser(sched, "eps")
    gen = torch.Generator().manual_seed(6)
    x0 = g.sample(2000, gen)
    nll = -g.log_prob(x0)
    gaps = [(vlb(den, x0, steps=n, variance="fixed-large", generator=gen).total - nll) for n in (10, 100)]
    se = math.hypot(*(gp.std().item() / math.sqrt(gp.numel()) for gp in gaps))
    assert gaps[0].mean() - gaps[1].mean() > 3 * se


def test_bits_per_dim_units():
    logp = torch.tensor([-100.0 * math.log(2.0)])
    assert bits_per_dim(logp, 100).item() == pytest.approx(1.0)
    assert bits_per_dim(logp, 100, bin_width=1 / 256).item() == pytest.approx(9.0)
    assert bits_per_dim(logp, 100, bin_width=2 / 256).item() == pytest.approx(8.0)


def test_uniform_dequantize():
    x = torch.tensor([[0, 255, 128]], dtype=torch.uint8)
    u = uniform_dequantize(x, generator=torch.Generator().manual_seed(0))
    lo = -1 + 2 * x.double() / 256
    assert bool(((u >= lo) & (u <= lo + 2 / 256)).all())
    with pytest.raises(ValueError, match="x: expected levels"):
        uniform_dequantize(torch.tensor([300]))
