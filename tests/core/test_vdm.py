"""VDM: monotone learned schedule, gradients, and the continuous VLB against closed forms for Gaussian data."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from omnidiffusion.core import schedules as S
from omnidiffusion.core.denoiser import Denoiser
from omnidiffusion.core.samplers import sample
from omnidiffusion.core.testing import Gaussian
from omnidiffusion.core.training import TrainConfig, fit
from omnidiffusion.core.vdm import VDM, LearnedSchedule, gaussian_diffusion_term, vdm_loss_fn, vdm_terms

F64 = torch.float64
GAUSS = Gaussian(torch.tensor([1.5, -0.5]), torch.tensor([0.3, 1.2]))


def _inv_softplus(y: float) -> float:
    return math.log(math.expm1(y))


def _randomise(schedule: LearnedSchedule, scale: float, seed: int) -> LearnedSchedule:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in schedule.named_parameters():
            if name in ("raw_w1", "raw_w2", "b2", "raw_w3"):
                p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=F64))
    return schedule


@pytest.mark.parametrize("seed", range(5))
def test_gamma_is_monotone_with_exact_end_points_for_random_parameters(seed):
    s = _randomise(LearnedSchedule(-7.0, 4.0, hidden=32), scale=4.0, seed=seed)
    g = s.gamma(torch.linspace(0, 1, 20001, dtype=F64))
    assert bool((g.diff() > 0).all())
    assert abs(g[0].item() + 7.0) < 1e-12 and abs(g[-1].item() - 4.0) < 1e-12
    t = torch.linspace(0, 1, 501, dtype=F64)
    g = s.gamma(t)
    # VP and the VDM parameterisation: alpha^2 = sigmoid(-gamma), sigma^2 = sigmoid(gamma), lambda = -gamma/2.
    assert torch.allclose(s.alpha(t) ** 2, torch.sigmoid(-g), atol=1e-14, rtol=0)
    assert torch.allclose(s.alpha(t) ** 2 + s.sigma(t) ** 2, torch.ones_like(t), atol=1e-14, rtol=0)
    assert (s.t_from_log_snr(s.log_snr(t)) - t).abs().max() < 1e-12
    # gamma' by autograd equals the slope of gamma.
    h = 1e-6
    tm = torch.linspace(0.05, 0.95, 19, dtype=F64)
    fd = (s.gamma(tm + h) - s.gamma(tm - h)) / (2 * h)
    assert torch.allclose(s.gamma_prime(tm), fd, rtol=1e-6, atol=1e-6)


class _TinyEps(nn.Module):
    """A small float64 eps network of (z, t)."""

    def __init__(self, d: int = 2):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.w1 = nn.Parameter(0.5 * torch.randn(d + 1, 16, generator=gen, dtype=F64))
        self.w2 = nn.Parameter(0.5 * torch.randn(16, d, generator=gen, dtype=F64))

    def forward(self, z, t):
        return torch.tanh(torch.cat([z, t[:, None]], 1) @ self.w1) @ self.w2


@pytest.mark.parametrize(("decoder", "timesteps"), [("gaussian", None), ("discretized", None), ("gaussian", 8)])
def test_loss_gradient_in_the_schedule_parameters_matches_finite_differences(decoder, timesteps):
    schedule = _randomise(LearnedSchedule(-6.0, 5.0, hidden=4), scale=1.0, seed=3)
    model = VDM(_TinyEps(), schedule, decoder=decoder, timesteps=timesteps)
    gen = torch.Generator().manual_seed(1)
    x0 = (torch.randint(0, 256, (32, 2), generator=gen) / 127.5 - 1.0).to(F64)
    if timesteps is None:
        t = torch.rand(32, generator=gen, dtype=F64)
    else:  # every step of the grid, including the first (s = 0) and the last (t = 1)
        t = (torch.arange(32, dtype=F64) % timesteps + 1) / timesteps
    noise = torch.randn(32, 2, generator=gen, dtype=F64)

    def loss() -> torch.Tensor:
        # the discretised decoder draws z_0: same seed for every evaluation
        return model.terms(x0, t=t, noise=noise, generator=torch.Generator().manual_seed(2)).total.mean()

    params = [p for p in schedule.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss(), params)
    h = 1e-6
    with torch.no_grad():
        for p, g in zip(params, grads, strict=True):
            flat, gflat = p.view(-1), g.reshape(-1)
            for k in range(flat.numel()):
                old = flat[k].item()
                flat[k] = old + h
                up = loss().item()
                flat[k] = old - h
                down = loss().item()
                flat[k] = old
                fd = (up - down) / (2 * h)
                assert abs(gflat[k].item() - fd) < 1e-6 * max(1.0, abs(fd)), (p.shape, k, gflat[k].item(), fd)


def _gaussian_bound(g0: float, g1: float) -> float:
    """Exact E[VLB] in nats for GAUSS with the exact denoiser: prior KL + Gaussian decoder + diffusion term."""
    v, mu = GAUSS.std**2, GAUSS.mean
    a1 = 1.0 / (1.0 + math.exp(g1))  # alpha_1^2
    prior = 0.5 * (a1 * (mu**2 + v) - a1 - math.log1p(-a1)).sum()
    recon = 0.5 * (math.log(2 * math.pi) + g0 + 1.0) * v.numel()
    return (prior + recon + gaussian_diffusion_term(g0, g1, v)).item()


def test_continuous_vlb_bounds_the_exact_nll_and_is_close():
    """With the exact eps of GAUSS at a learned schedule (gamma in [-4, 6]) the VLB estimate exceeds the exact NLL
    of the same points (by more than 3 standard errors) and matches the closed-form expected bound; the gap
    (0.10 nats for 2 dims) is the prior and decoder mismatch."""
    schedule = _randomise(LearnedSchedule(-4.0, 6.0, hidden=4), scale=1.5, seed=0)
    n = 100_000
    x = GAUSS.sample(n, torch.Generator().manual_seed(2))
    with torch.no_grad():
        terms = vdm_terms(GAUSS.denoiser(schedule, "eps"), x, generator=torch.Generator().manual_seed(3))
    gap = terms.total - (-GAUSS.log_prob(x))
    se = gap.std().item() / math.sqrt(n)
    exact_gap = _gaussian_bound(-4.0, 6.0) - 0.5 * torch.log(2 * math.pi * math.e * GAUSS.std**2).sum().item()
    assert 0 < exact_gap < 0.15
    assert gap.mean().item() > 3 * se
    assert abs(gap.mean().item() - exact_gap) < 4 * se, (gap.mean().item(), exact_gap, se)
    # bits/dim is the same bound in other units
    assert torch.allclose(terms.bits_per_dim(), terms.total / (2 * math.log(2)))


def test_diffusion_term_depends_only_on_the_end_points():
    """Kingma et al. 2021, eq. 20: two different monotone gammas with the same gamma(0), gamma(1) give the same
    expected diffusion loss, sum_d 0.5 log((1 + v e^-g0)/(1 + v e^-g1)) for the exact denoiser (antithetic t)."""
    linear = LearnedSchedule(-5.0, 5.0, hidden=0)
    bent = LearnedSchedule(-5.0, 5.0, hidden=2)
    with torch.no_grad():  # a weak linear part plus two sigmoid steps centred at t = 1/4 and t = 3/4
        bent.raw_w1.fill_(_inv_softplus(0.05))
        bent.raw_w2.fill_(_inv_softplus(8.0))
        bent.b2.copy_(torch.tensor([4.0, -4.0], dtype=F64))
        bent.raw_w3.fill_(_inv_softplus(1.0))
    t = torch.linspace(0.0, 1.0, 101, dtype=F64)
    assert (linear.gamma(t) - bent.gamma(t)).abs().max() > 0.6  # genuinely different shapes
    assert bent.gamma_prime(t).max() > 2 * bent.gamma_prime(t).min()
    exact = gaussian_diffusion_term(-5.0, 5.0, GAUSS.std**2).item()
    n = 100_000
    means, ses = [], []
    for k, sched in enumerate((linear, bent)):
        x = GAUSS.sample(n, torch.Generator().manual_seed(10 + k))
        with torch.no_grad():
            d = vdm_terms(GAUSS.denoiser(sched, "eps"), x, generator=torch.Generator().manual_seed(20 + k)).diffusion
        means.append(d.mean().item())
        ses.append(d.std().item() / math.sqrt(n))
        assert abs(means[-1] - exact) < 4 * ses[-1], (k, means[-1], exact, ses[-1])
    assert abs(means[0] - means[1]) < 4 * math.hypot(*ses)


def _bent_schedule() -> LearnedSchedule:
    """gamma from -5 to 5: a weak linear part plus two sigmoid steps centred at t = 1/4 and t = 3/4."""
    bent = LearnedSchedule(-5.0, 5.0, hidden=2)
    with torch.no_grad():
        bent.raw_w1.fill_(_inv_softplus(0.05))
        bent.raw_w2.fill_(_inv_softplus(8.0))
        bent.b2.copy_(torch.tensor([4.0, -4.0], dtype=F64))
        bent.raw_w3.fill_(_inv_softplus(1.0))
    return bent


def _discrete_diffusion_term(schedule: LearnedSchedule, T: int) -> float:
    """Exact E[T-step diffusion term] for GAUSS and its exact denoiser (Kingma et al. 2021, eq. 13), summed step by
    step: 0.5 expm1(gamma_i - gamma_{i-1}) E||eps - E[eps | z_i]||^2, and Var(eps_d | z) = v_d / (v_d + e^gamma)."""
    with torch.no_grad():
        g = schedule.gamma(torch.arange(T + 1, dtype=F64) / T)
    v = GAUSS.std.to(F64) ** 2
    total = 0.0
    for i in range(1, T + 1):
        mse = sum(vd / (vd + math.exp(g[i].item())) for vd in v.tolist())
        total += 0.5 * math.expm1(g[i].item() - g[i - 1].item()) * mse
    return total


def _diffusion_mc(schedule: LearnedSchedule, timesteps: int | None, n: int, seed: int) -> tuple[float, float]:
    x = GAUSS.sample(n, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        d = vdm_terms(GAUSS.denoiser(schedule, "eps"), x, timesteps=timesteps,
                      generator=torch.Generator().manual_seed(seed + 1)).diffusion
    return d.mean().item(), d.std().item() / math.sqrt(n)


def test_discrete_diffusion_term_matches_the_step_sum_and_tends_to_the_continuous_one():
    """The T-step estimator (stratified t on {1/T, ..., 1}) has the exact step-sum mean; the T-step bound exceeds
    the continuous one and decreases to it as T grows, and at T = 1000 the estimate agrees with
    the continuous closed form within Monte-Carlo error."""
    bent = _bent_schedule()
    continuous = gaussian_diffusion_term(-5.0, 5.0, GAUSS.std**2).item()
    exact = {T: _discrete_diffusion_term(bent, T) for T in (2, 4, 16, 100, 1000)}
    assert exact[2] > exact[4] > exact[16] > exact[100] > exact[1000] > continuous
    assert exact[4] - continuous > 1.0  # a real gap at small T
    # first order in 1/T: ten times the steps, a tenth of the gap (0.21 nats at T = 100, 0.021 at T = 1000)
    assert 0.08 < (exact[1000] - continuous) / (exact[100] - continuous) < 0.12
    n = 50_000
    for k, T in enumerate((4, 1000)):
        mean, se = _diffusion_mc(bent, T, n, seed=30 + 2 * k)
        assert abs(mean - exact[T]) < 4 * se, (T, mean, exact[T], se)
    mean, se = _diffusion_mc(bent, 1000, n, seed=40)
    assert abs(mean - continuous) < 4 * se, (mean, continuous, se)


def test_discrete_bound_depends_on_the_shape_and_bounds_the_exact_nll():
    """Same end points, different shapes: different T-step bounds (unlike eq. 20 for T = inf); with the exact
    denoiser the T = 8 bound exceeds the exact NLL of the same points (by more than 3 standard errors) and matches
    prior + decoder + the exact step sum."""
    linear, bent = LearnedSchedule(-5.0, 5.0, hidden=0), _bent_schedule()
    assert abs(_discrete_diffusion_term(linear, 8) - _discrete_diffusion_term(bent, 8)) > 0.1
    n = 100_000
    x = GAUSS.sample(n, torch.Generator().manual_seed(5))
    with torch.no_grad():
        terms = vdm_terms(GAUSS.denoiser(bent, "eps"), x, timesteps=8, generator=torch.Generator().manual_seed(6))
    gap = terms.total - (-GAUSS.log_prob(x))
    se = gap.std().item() / math.sqrt(n)
    expected = (_gaussian_bound(-5.0, 5.0) - gaussian_diffusion_term(-5.0, 5.0, GAUSS.std**2).item()
                + _discrete_diffusion_term(bent, 8))
    exact_gap = expected - 0.5 * torch.log(2 * math.pi * math.e * GAUSS.std**2).sum().item()
    assert gap.mean().item() > 3 * se
    assert abs(gap.mean().item() - exact_gap) < 4 * se, (gap.mean().item(), exact_gap, se)


def test_discrete_times_are_on_the_grid_and_stratified():
    sched = LearnedSchedule(-5.0, 5.0, hidden=0)
    den = GAUSS.denoiser(sched, "eps")
    x = GAUSS.sample(64, torch.Generator().manual_seed(0))
    seen = []

    class Spy(nn.Module):
        def forward(self, z, t):
            seen.append(t.detach().clone())
            return torch.zeros_like(z)

    with torch.no_grad():
        vdm_terms(Denoiser(Spy(), sched, "eps"), x, timesteps=8, generator=torch.Generator().manual_seed(1))
    steps = seen[0] * 8
    assert torch.equal(steps, steps.round()) and steps.min() >= 1 and steps.max() <= 8
    assert torch.equal(torch.bincount(steps.long(), minlength=9)[1:], torch.full((8,), 8))  # 64 / 8 per step
    with pytest.raises(ValueError, match="grid"):
        vdm_terms(den, x, timesteps=8, t=torch.full((64,), 0.3, dtype=F64))
    with pytest.raises(ValueError, match="grid"):
        vdm_terms(den, x, timesteps=8, t=torch.zeros(64, dtype=F64))
    with pytest.raises(ValueError, match="timesteps"):
        vdm_terms(den, x, timesteps=0)
    with pytest.raises(ValueError, match="timesteps"):
        VDM(_TinyEps(), sched, timesteps=2.5)


def test_learned_schedule_works_with_the_samplers():
    """DPM-Solver++(2M) on log-SNR (uses t_from_log_snr) and time-uniform grids reaches the exact probability-flow
    ODE endpoint on a learned schedule (the error at 200 steps is 5e-4 on LinearVP as well)."""
    schedule = _randomise(LearnedSchedule(-10.0, 8.0, hidden=8), scale=1.0, seed=1)
    den = GAUSS.denoiser(schedule, "eps")
    x_T = torch.randn(256, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    t_end = schedule.t_min
    exact = GAUSS.ode_endpoint(x_T, schedule, 1.0, t_end)
    with torch.no_grad():
        for grid in ("logsnr", "time-uniform"):
            out = sample(den, x_T, "dpm++2m", steps=200, grid=grid, t_end=t_end)
            assert (out - exact).abs().max() < 2e-3, (grid, (out - exact).abs().max())


def test_fit_trains_the_schedule_jointly_with_the_denoiser(tmp_path):
    schedule = LearnedSchedule(-6.0, 5.0, hidden=8)
    model = VDM(_TinyEps(), schedule)
    before = {k: v.clone() for k, v in schedule.state_dict().items()}
    data = GAUSS.sample(256, torch.Generator().manual_seed(0))
    config = TrainConfig(steps=5, batch_size=32, lr=1e-2, ema_decay=None, progress=False, device="cpu")
    fit(model, vdm_loss_fn, data, config, tmp_path)
    after = schedule.state_dict()
    for name in ("gamma_0", "raw_gap", "raw_w1", "raw_w3"):
        assert not torch.equal(before[name], after[name]), name
    g = schedule.gamma(torch.linspace(0, 1, 1001, dtype=F64))
    assert bool((g.diff() > 0).all())
    assert isinstance(model.denoiser(), Denoiser) and model.denoiser().schedule is schedule


def test_fixed_schedules_have_no_trainable_parameters_and_bad_input_is_refused():
    fixed = LearnedSchedule(-5.0, 5.0, hidden=0, learn_endpoints=False)
    assert not any(p.requires_grad for p in fixed.parameters())
    t = torch.linspace(0, 1, 11, dtype=F64)
    assert torch.allclose(fixed.gamma(t), -5.0 + 10.0 * t, atol=1e-12)
    with pytest.raises(ValueError, match="gamma_min"):
        LearnedSchedule(1.0, 0.0)
    with pytest.raises(ValueError, match="finite log-SNR"):
        vdm_terms(GAUSS.denoiser(S.LinearVP(), "eps"), GAUSS.sample(4))
    with pytest.raises(ValueError, match="decoder"):
        vdm_terms(GAUSS.denoiser(fixed, "eps"), GAUSS.sample(4), decoder="bernoulli")
