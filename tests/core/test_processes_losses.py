"""Forward processes and denoising losses against closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from omnidiffusion.core import Denoiser
from omnidiffusion.core import schedules as S
from omnidiffusion.core.losses import denoising_loss, hybrid_loss, loss_weight, sample_t
from omnidiffusion.core.processes import VESDE, VPSDE, ForwardProcess, SubVPSDE
from omnidiffusion.core.testing import Gaussian

F64 = torch.float64


@pytest.mark.parametrize("proc", [VPSDE(), SubVPSDE(), VESDE()], ids=lambda p: repr(p.schedule))
def test_q_sample_moments_and_prior(proc):
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 2), 0.7, dtype=F64)
    x = proc.q_sample(x0, 0.5, generator=gen)
    a, s = proc.schedule.alpha(0.5).item(), proc.schedule.sigma(0.5).item()
    assert abs(x.mean().item() - a * 0.7) < 5 * s / math.sqrt(x.numel())
    assert abs(x.std().item() / s - 1) < 0.02
    z = torch.randn(5, 3, dtype=F64)
    std = 1.0 if proc.schedule.variance_preserving else proc.schedule.sigma(1.0).item()
    expected = torch.distributions.Normal(0.0, std).log_prob(z).sum(1)
    assert torch.allclose(proc.prior_logp(z), expected)


def test_probability_flow_keeps_the_gaussian_marginal():
    """For Gaussian data the PF drift with the exact score is the derivative of the exact flow."""
    sched = S.LinearVP()
    proc = ForwardProcess(sched)
    g = Gaussian(torch.tensor([1.0, -0.5]), torch.tensor([0.3, 2.0]))
    x = torch.randn(7, 2, dtype=F64)
    t, h = 0.4, 1e-6
    drift = proc.probability_flow_drift(x, t, g.score(x, t, sched))
    fd = (g.ode_endpoint(x, sched, t, t + h) - g.ode_endpoint(x, sched, t, t - h)) / (2 * h)
    assert torch.allclose(drift, fd, atol=1e-6)
    rev = proc.reverse_drift(x, t, g.score(x, t, sched))
    f, g2 = sched.sde_coefficients(t)
    assert torch.allclose(rev, f * x - g2 * g.score(x, t, sched))


def test_exact_denoiser_loss_is_the_posterior_variance():
    """E||x0_hat - x0||^2 / d at fixed t equals Var[x0 | x_t] = s^2 sigma^2 / (alpha^2 s^2 + sigma^2) per dim."""
    sched = S.LinearVP()
    std = torch.tensor([0.5, 1.0, 2.0])
    g = Gaussian(torch.zeros(3), std)
    den = g.denoiser(sched, "eps")
    n = 20000
    gen = torch.Generator().manual_seed(1)
    x0 = g.sample(n, gen)
    t = torch.full((n,), 0.3, dtype=F64)
    per = denoising_loss(den, x0, target="x0", t=t, generator=gen, reduce=False)
    a, s = sched.alpha(0.3).item(), sched.sigma(0.3).item()
    expected = (std.double() ** 2 * s**2 / (a**2 * std.double() ** 2 + s**2)).mean()
    assert abs(per.mean() - expected) < 5 * per.std() / math.sqrt(n)


def test_min_snr_is_the_same_objective_for_every_target():
    """Min-SNR-gamma (Hang et al. 2023): w = min(SNR, gamma) on the x0 error, whatever the parameterisation."""
    sched = S.LinearVP()
    net = torch.nn.Sequential(torch.nn.Linear(2, 2)).double()
    den = Denoiser(lambda x, t: net(x), sched, "eps")
    gen = torch.Generator().manual_seed(2)
    x0 = torch.randn(64, 2, generator=gen, dtype=F64)
    t = torch.rand(64, generator=gen, dtype=F64) * 0.98 + 0.01
    noise = torch.randn(64, 2, generator=gen, dtype=F64)
    losses = [
        denoising_loss(den, x0, target=tg, weighting="min-snr", t=t, noise=noise, reduce=False)
        for tg in ("eps", "x0", "v")
    ]
    snr = sched.snr(t)
    x0_err = denoising_loss(den, x0, target="x0", t=t, noise=noise, reduce=False)
    for loss in losses:
        assert torch.allclose(loss, snr.clamp(max=5.0) * x0_err, rtol=1e-9)
    eps_err = denoising_loss(den, x0, target="eps", t=t, noise=noise, reduce=False)
    assert torch.allclose(eps_err, snr * x0_err, rtol=1e-9)  # uniform eps loss = SNR-weighted x0 loss


@pytest.mark.parametrize("sched", [S.LinearVP(), S.VE(), S.CosineVP()], ids=repr)
def test_likelihood_weight_is_minus_dsnr_dt(sched):
    t = torch.tensor([0.1, 0.5, 0.9], dtype=F64)
    h = 1e-6
    dsnr = (sched.snr(t + h) - sched.snr(t - h)) / (2 * h)
    assert torch.allclose(loss_weight(sched, t, "likelihood"), -dsnr, rtol=1e-5)


def test_edm_weight_cancels_c_out():
    """EDM: lambda(sigma) c_out(sigma)^2 = 1 (Karras et al. 2022, sec. 5)."""
    sched = S.EDM()
    t = torch.tensor([0.001, 0.01, 0.3], dtype=F64)
    sig, sd = t * 80, 0.5
    c_out = sig * sd / torch.sqrt(sig**2 + sd**2)
    assert torch.allclose(loss_weight(sched, t, "edm") * c_out**2, torch.ones(3, dtype=F64))


def test_t_sampling():
    sched = S.DiscreteVP.linear(100)
    t = sample_t(sched, 10000, "uniform", generator=torch.Generator().manual_seed(0))
    idx = sched.index_of_t(t)
    assert torch.allclose(idx, idx.round()) and idx.min() >= 0 and idx.max() <= 99
    ta = sample_t(S.LinearVP(), 8, "antithetic", generator=torch.Generator().manual_seed(0))
    frac = torch.sort(torch.remainder((ta - 1e-5) / (1 - 1e-5) * 8, 1.0)).values
    assert torch.allclose(frac, frac[0].expand(8), atol=1e-9)  # one offset, evenly spaced
    tl = sample_t(S.EDM(), 20000, "lognormal", generator=torch.Generator().manual_seed(0))
    log_sig = torch.log(S.EDM().sigma_ve(tl))
    assert abs(log_sig.mean().item() + 1.2) < 0.05 and abs(log_sig.std().item() - 1.2) < 0.05


def test_hybrid_loss_trains_the_variance_through_the_vlb_only():
    sched = S.DiscreteVP.linear(50)
    lin = torch.nn.Linear(2, 4).double()
    den = Denoiser(lambda x, t: lin(x), sched, "eps", learned_variance=True)
    x0 = torch.rand(32, 2, dtype=F64) * 2 - 1
    loss = hybrid_loss(den, x0, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and lin.weight.grad[2:].abs().sum() > 0
    lin.zero_grad()
    hybrid_loss(den, x0, vlb_weight=0.0, generator=torch.Generator().manual_seed(0)).backward()
    assert lin.weight.grad[2:].abs().sum() == 0  # without the VLB term the variance head gets no gradient
    with pytest.raises(ValueError, match="learned_variance"):
        hybrid_loss(Denoiser(lambda x, t: x, sched), x0)


def test_bad_loss_arguments():
    den = Gaussian(0.0, 1.0).denoiser(S.LinearVP())
    x0 = torch.zeros(4, 1, dtype=F64)
    with pytest.raises(ValueError, match="weighting: expected one of"):
        denoising_loss(den, x0, weighting="p2")
    with pytest.raises(ValueError, match="t_sampling: expected one of"):
        denoising_loss(den, x0, t_sampling="beta")
    with pytest.raises(ValueError, match=r"t: expected shape \(4,\)"):
        denoising_loss(den, x0, t=torch.zeros(3))
