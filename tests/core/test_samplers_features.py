"""UniPC, the Brownian-tree noise source, explicit grids and dtype preservation, against independent truths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from omnidiffusion.core import schedules as S
from omnidiffusion.core.samplers import METHODS, BrownianTree, sample
from omnidiffusion.core.testing import Gaussian, GaussianMixture
from omnidiffusion.core.timesteps import make_grid

F64 = torch.float64
GAUSS = Gaussian(torch.tensor([1.5, -0.5, 0.3]), torch.tensor([0.3, 1.2, 0.6]))
MIX = GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.5, -0.5]], [0.3, 0.5])


def _x_T(n=64, d=3, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


# ---------------------------------------------------------------------------------------------- UniPC


def test_unipc_predictor_alone_is_dpm_solver_pp_2m():
    """UniP-2 with B(h) = expm1(-h) and rho = 1/2 is algebraically DPM-Solver++(2M) (Zhao et al. 2023, Sec. 3.2)."""
    sched = S.DiscreteVP.linear(1000)
    den = GAUSS.denoiser(sched, "eps")
    for steps in (3, 7, 12):
        grid = make_grid(sched, "trailing", steps)
        a = sample(den, _x_T(), "unipc", grid=grid, options={"corrector": False})
        b = sample(den, _x_T(), "dpm++2m", grid=grid)
        assert (a - b).abs().max() < 1e-12


@pytest.mark.parametrize("method,order", [("unipc", 2), ("unipc3", 3)])
def test_unipc_matches_diffusers_unipc_multistep_scheduler(method, order):
    """An independent implementation: diffusers' UniPCMultistepScheduler (bh2, x0-prediction, corrector on,
    trailing spacing) on the same discrete table, driven by the exact eps. diffusers keeps its sigmas in
    float32, so agreement is to about 1e-6, far below the solver error (~0.1) and the corrector's effect."""
    diffusers = pytest.importorskip("diffusers")
    T = 1000
    sched = S.DiscreteVP.linear(T)
    den = GAUSS.denoiser(sched, "eps")
    x_T = _x_T()
    for steps in (5, 10):
        sch = diffusers.UniPCMultistepScheduler(
            num_train_timesteps=T, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
            prediction_type="epsilon", timestep_spacing="trailing", solver_order=order, solver_type="bh2",
        )
        sch.set_timesteps(steps)
        x = x_T.clone()
        for k in sch.timesteps:
            x = sch.step(den.eps(x, (float(k) + 1.0) / T), k, x).prev_sample
        ours = sample(den, x_T, method, steps, "trailing")
        no_corr = sample(den, x_T, method, steps, "trailing", options={"corrector": False})
        assert (ours - x).abs().max() < 5e-6, steps
        assert (no_corr - x).abs().max() > 1e-3  # the corrector is really on


@pytest.mark.parametrize("sched", [S.LinearVP(), S.DiscreteVP.linear(1000), S.VE()], ids=repr)
@pytest.mark.parametrize("method,band", [("unipc", (-9.0, -2.3)), ("unipc3", (-9.0, -3.0))])
def test_unipc_error_falls_at_its_order(sched, method, band):
    """UniPC-p with its corrector has order p + 1 (Zhao et al. 2023, Theorem 3.3): the endpoint error against
    the exact Gaussian PF-ODE solution falls with slope <= -(p + 1) + 0.7 over 8-64 log-SNR steps, while the
    predictor alone (= DPM-Solver++(2M) for p = 2) only reaches order 2."""
    den = GAUSS.denoiser(sched, "eps")
    x = _x_T() * (1.0 if sched.variance_preserving else sched.sigma(1.0).item())
    exact = GAUSS.ode_endpoint(x, sched, 1.0, sched.t_min)
    steps = (8, 16, 32, 64)

    def slope(**opts):
        errs = [(sample(den, x, method, grid=make_grid(sched, "logsnr", n, t_end=sched.t_min), options=opts)
                 - exact).abs().max().item() for n in steps]
        return np.polyfit(np.log(steps), np.log(errs), 1)[0], errs

    s, errs = slope()
    assert band[0] <= s <= band[1], (s, errs)
    if method == "unipc":
        s_pred, _ = slope(corrector=False)
        assert s_pred > -2.3 and s < s_pred - 0.5


# ---------------------------------------------------------------------------------------------- Brownian tree


def test_brownian_tree_has_brownian_increments_and_is_consistent():
    """W(0) = 0; increments over disjoint intervals are N(0, dt) and uncorrelated; repeated queries agree."""
    like = torch.zeros(20000, 1, dtype=F64)
    tree = BrownianTree(seed=3)
    times = [0.0, 0.13, 0.5, 0.77, 1.0]
    w = [tree.value(t, like) for t in times]
    assert torch.equal(w[0], torch.zeros_like(like))
    incs = [(w[i + 1] - w[i]).squeeze(1) for i in range(len(times) - 1)]
    n = like.shape[0]
    for inc, (a, b) in zip(incs, zip(times[:-1], times[1:], strict=True), strict=True):
        var = inc.var().item()
        # sample variance of n normals: relative sd sqrt(2/n) ~ 1%; 5 sd
        assert abs(var / (b - a) - 1.0) < 5 * math.sqrt(2.0 / n), (a, b, var)
        assert abs(inc.mean().item()) < 5 * math.sqrt((b - a) / n)
    corr = torch.corrcoef(torch.stack(incs))
    assert (corr - torch.eye(4, dtype=F64)).abs().max() < 5 / math.sqrt(n)
    assert torch.equal(tree.value(0.77, like), w[3])  # the same time gives the same value
    z = tree(like, 0.5, 0.13)
    assert torch.allclose(z, (w[2] - w[1]) / math.sqrt(0.37))
    assert not torch.equal(BrownianTree(seed=4).value(0.5, like), w[2])


def test_one_seed_converges_as_steps_grow_with_brownian_noise():
    """Euler-Maruyama on the reverse SDE driven by one Brownian path converges strongly (order 1/2 in general,
    1 for additive noise): the distance to the finest solution falls as the grid is refined. With i.i.d. noise
    per step the samples at different step counts stay an O(1) distance apart."""
    sched = S.LinearVP()
    den = MIX.denoiser(sched, "eps")
    steps = (20, 40, 80)

    def draw(n, noise):
        return sample(den, (256, 2), "euler-maruyama", n, generator=torch.Generator().manual_seed(7), dtype=F64,
                      noise=noise, t_end=0.01)

    ref = draw(320, "brownian")
    gaps = [(draw(n, "brownian") - ref).pow(2).mean().sqrt().item() for n in steps]
    assert all(b < 0.8 * a for a, b in zip(gaps, gaps[1:], strict=False)), gaps
    assert gaps[-1] < 0.15
    iid = (draw(20, None) - draw(40, None)).pow(2).mean().sqrt().item()
    assert iid > 5 * gaps[0] / 2, (iid, gaps)
    # The default (i.i.d.) source is unchanged by the new argument.
    a = sample(den, (16, 2), "euler-maruyama", 10, generator=torch.Generator().manual_seed(1), dtype=F64)
    b = sample(den, (16, 2), "euler-maruyama", 10, generator=torch.Generator().manual_seed(1), dtype=F64,
               noise="gaussian")
    assert torch.equal(a, b)


@pytest.mark.parametrize("method,opts", [("ddpm", {}), ("ddim", {"eta": 1.0})])
def test_brownian_noise_keeps_the_stochastic_samplers_exact_in_law(method, opts):
    """Brownian increments are N(0, I) per step, so sample moments still match the exact mixture (5 s.e.)."""
    sched = S.LinearVP()
    den = MIX.denoiser(sched, "eps")
    n, steps = 2000, 100
    x = sample(den, (n, 2), method, steps, generator=torch.Generator().manual_seed(5), dtype=F64, noise="brownian",
               options=opts)
    mu, cov = MIX.mean_cov()
    m = x.mean(0)
    assert bool(((m - mu).abs() < 5 * x.var(0).sqrt() / math.sqrt(n)).all()), (m, mu)
    c = x - m
    for i, j in ((0, 0), (1, 1), (0, 1)):
        prod = c[:, i] * c[:, j]
        assert abs(prod.mean() - cov[i, j]) < 5 * prod.std() / math.sqrt(n)


# ---------------------------------------------------------------------------------------------- explicit grids


@pytest.mark.parametrize(
    "kind", [list, tuple, np.array, lambda v: torch.tensor(v, dtype=F64), lambda v: ",".join(map(str, v))]
)
def test_grid_accepts_any_explicit_sequence(kind):
    """A user's list of times is used as given: DDIM along it equals DDIM along the same tensor, and a
    one-interval grid [t, 0] is the exact posterior mean E[x0 | x_t]."""
    sched = S.LinearVP()
    den = GAUSS.denoiser(sched, "eps")
    times = [1.0, 0.62, 0.3, 0.11, 0.0]
    x = _x_T()
    ref = sample(den, x, "ddim", grid=torch.tensor(times, dtype=F64))
    assert torch.equal(sample(den, x, "ddim", grid=kind(times)), ref)
    x_t = GAUSS.ode_endpoint(x, sched, 1.0, 0.4)
    one = sample(den, x_t, "ddim", grid=kind([0.4, 0.0]))
    assert torch.allclose(one, GAUSS.posterior_mean(x_t, 0.4, sched), atol=1e-12)
    with pytest.raises(ValueError, match="grid: expected strictly decreasing"):
        sample(den, x, "ddim", grid=kind([0.0, 0.5, 1.0]))


def test_bad_explicit_grid_and_noise_are_refused():
    den = GAUSS.denoiser(S.LinearVP(), "eps")
    with pytest.raises(ValueError, match="grid: expected times in"):
        sample(den, _x_T(4), "ddim", grid=[1.5, 0.0])
    with pytest.raises(ValueError, match="grid: expected a grid name or a sequence"):
        sample(den, _x_T(4), "ddim", grid=[[1.0, "a"]])
    with pytest.raises(ValueError, match="grid: expected a grid name or comma-separated times, got '1,half,0'"):
        sample(den, _x_T(4), "ddim", grid="1,half,0")
    with pytest.raises(ValueError, match="noise: expected None, 'gaussian', 'brownian'"):
        sample(den, _x_T(4), "ddpm", 4, noise="pink")
    with pytest.raises(ValueError, match=r"options: \['noise'\] do not apply to method 'dpm\+\+2m'"):
        sample(den, _x_T(4), "dpm++2m", 4, noise="brownian")
    with pytest.raises(ValueError, match="variant: expected one of"):
        sample(den, _x_T(4), "unipc", 4, options={"variant": "bh3"})
    with pytest.raises(ValueError, match="seed: expected an integer >= 0"):
        BrownianTree(-1)


# ---------------------------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-2), (torch.bfloat16, 1.5e-1)])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_low_precision_states_stay_in_their_dtype(method, dtype, tol):
    """float16/bfloat16 states come back in their dtype, and (deterministic samplers) within the format's
    rounding of the float64 run; step coefficients stay float64 scalars, so nothing is upcast or lost."""
    sched = S.LinearVP()
    den = GAUSS.denoiser(sched, "eps")
    x = _x_T(256) * 0.5
    opts = {"eta": 0.0} if method == "ddim" else {}
    grid = "logsnr" if method.startswith(("dpm", "unipc")) else "time-uniform"
    out = sample(den, x.to(dtype), method, 8, grid, generator=torch.Generator().manual_seed(0), options=opts)
    assert out.dtype == dtype and torch.isfinite(out).all()
    deterministic = method in ("ddim", "heun", "dpm1", "dpm2", "dpm3", "dpm++2m", "dpm++3m", "unipc", "unipc3")
    if deterministic:
        ref = sample(den, x.to(dtype).to(F64), method, 8, grid, options=opts)
        scale = ref.abs().max().item()
        assert (out.to(F64) - ref).abs().max().item() < tol * scale, method


def test_noise_follows_the_state_device_from_any_generator():
    """A CPU generator feeds a state on another device (meta stands in for CUDA here): same draws, moved."""
    from omnidiffusion.core.tensors import randn, randn_like

    x = torch.empty(3, 4, device="meta")
    z = randn_like(x, torch.Generator().manual_seed(0))
    assert z.device.type == "meta" and z.shape == (3, 4)
    a = randn((3, 4), torch.Generator().manual_seed(5))
    b = torch.randn((3, 4), generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)  # same device: exactly the plain draw, so CPU results are unchanged
