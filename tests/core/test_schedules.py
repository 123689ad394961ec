"""Schedules: closed forms, inverses, the discrete index <-> t mapping, zero-terminal-SNR, SDE coefficients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from omnidiffusion.core import schedules as S

F64 = torch.float64
CONTINUOUS = [S.LinearVP(), S.CosineVP(), S.SubVP(), S.VE(0.01, 50.0), S.EDM()]
ALL = [*CONTINUOUS, S.DiscreteVP.linear(1000), S.DiscreteVP.cosine(1000), S.DiscreteVP.sigmoid(200)]
ids = lambda s: repr(s)  # noqa: E731


@pytest.mark.parametrize("sched", ALL, ids=ids)
def test_log_snr_inverse_round_trip(sched):
    t = torch.linspace(0.01, 1.0, 97, dtype=F64)
    back = sched.t_from_log_snr(sched.log_snr(t))
    assert torch.allclose(back, t, atol=1e-9, rtol=0)


@pytest.mark.parametrize("sched", ALL, ids=ids)
def test_data_end_is_clean_and_monotone(sched):
    t = torch.linspace(0.0, 1.0, 1001, dtype=F64)
    lam = sched.log_snr(t)
    assert lam[0] == math.inf and sched.sigma(0.0).item() == 0.0
    assert bool((lam[1:] < lam[:-1]).all()), "log-SNR must decrease strictly with t"


def test_variance_preserving_flag_matches_marginals():
    t = torch.linspace(0.0, 1.0, 11, dtype=F64)
    for sched in ALL:
        vp = torch.allclose(sched.alpha(t) ** 2 + sched.sigma(t) ** 2, torch.ones_like(t), atol=1e-12)
        assert vp == sched.variance_preserving, sched


def test_linear_vp_closed_form():
    b0, b1 = 0.1, 20.0
    t = torch.tensor([0.1, 0.5, 1.0], dtype=F64)
    expected = torch.exp(-0.5 * (b0 * t + 0.5 * (b1 - b0) * t**2))  # exp(-1/2 int_0^t beta)
    assert torch.allclose(S.LinearVP(b0, b1).alpha(t), expected, rtol=1e-14)


def test_ve_matches_score_sde_away_from_zero():
    ve = S.VE(0.01, 50.0)
    t = torch.tensor([0.3, 0.7, 1.0], dtype=F64)
    score_sde = 0.01 * (50.0 / 0.01) ** t
    # sigma^2 = smin^2 (r^2t - 1): the SDE's marginal from clean data
    assert torch.allclose(ve.sigma(t) ** 2, score_sde**2 - 0.01**2, rtol=1e-12)
    assert abs(ve.sigma(ve.t_min).item() - ve.sigma_min) < 1e-12


def test_discrete_index_mapping():
    sched = S.DiscreteVP.linear(1000)
    betas = np.linspace(1e-4, 0.02, 1000)
    abar = np.cumprod(1 - betas)
    n = torch.arange(1000)
    t = sched.t_of_index(n)
    assert torch.allclose(t, (n + 1).to(F64) / 1000)
    assert torch.allclose(sched.index_of_t(t), n.to(F64))
    # the table is hit exactly at its knots
    assert np.allclose(sched.alpha(t).numpy() ** 2, abar, rtol=1e-12)
    assert sched.alpha(0.0).item() == 1.0


def test_named_tables():
    T = 100
    cos = S.DiscreteVP.cosine(T)
    u = np.arange(T + 1) / T
    f = np.cos((u + 0.008) / 1.008 * np.pi / 2) ** 2
    assert np.allclose(cos.alphas_cumprod, np.cumprod(np.minimum(1 - f[1:] / f[:-1], 0.999) * -1 + 1))
    sq = S.DiscreteVP.sqrt(T)
    # Li et al. 2022: alpha_bar(u) = 1 - sqrt(u + s), normalised by its value at u = 0 (betas from ratios)
    g = 1 - np.sqrt(u + 1e-4)
    assert np.allclose(sq.alphas_cumprod[:-1], (g[1:] / g[0])[:-1], rtol=1e-9)
    quad = S.DiscreteVP.quadratic(50, 1e-4, 0.5)
    assert np.allclose(quad.betas, np.linspace(1e-2, 0.5**0.5, 50) ** 2)
    sig = S.DiscreteVP.sigmoid(5000, 1e-7, 2e-3)
    assert sig.betas[0] == pytest.approx(1e-7 + (2e-3 - 1e-7) / (1 + math.exp(6)), rel=1e-9)  # GeoDiff form
    assert bool(np.all(np.diff(sig.betas) > 0))
    with pytest.raises(ValueError, match="name"):
        S.DiscreteVP.named("bogus", 10)


def test_zero_terminal_snr_rescale():
    base = S.DiscreteVP.linear(1000)
    z = base.rescale_zero_terminal_snr()
    assert z.alphas_cumprod[-1] == 0.0
    assert z.alphas_cumprod[0] == pytest.approx(base.alphas_cumprod[0], rel=1e-12)
    # sqrt(abar) is an affine function of the old sqrt(abar)
    q_old, q_new = np.sqrt(base.alphas_cumprod), np.sqrt(z.alphas_cumprod)
    slope = np.polyfit(q_old, q_new, 1)
    assert np.allclose(np.polyval(slope, q_old), q_new, atol=1e-12)
    assert z.alpha(1.0).item() == 0.0 and z.log_snr(1.0).item() == -math.inf
    t = torch.linspace(0.01, 0.999, 50, dtype=F64)
    assert torch.allclose(z.t_from_log_snr(z.log_snr(t)), t, atol=1e-9)


@pytest.mark.parametrize("sched", ALL, ids=ids)
def test_sde_coefficients_reproduce_marginals(sched):
    """d sigma^2/dt = 2 f sigma^2 + g^2 and d log alpha/dt = f, checked by central differences."""
    t = torch.tensor([0.2, 0.45, 0.8], dtype=F64) + 1e-4  # away from discrete knots
    h = 1e-6
    f, g2 = sched.sde_coefficients(t)
    dla = (sched.log_alpha(t + h) - sched.log_alpha(t - h)) / (2 * h)
    ds2 = (sched.sigma(t + h) ** 2 - sched.sigma(t - h) ** 2) / (2 * h)
    assert torch.allclose(f, dla, rtol=1e-6, atol=1e-8)
    assert torch.allclose(2 * f * sched.sigma(t) ** 2 + g2, ds2, rtol=1e-5)


def test_known_sde_coefficients():
    t = torch.tensor([0.3, 0.9], dtype=F64)
    beta = 0.1 + t * 19.9
    f, g2 = S.SubVP().sde_coefficients(t)
    assert torch.allclose(g2, beta * (1 - torch.exp(-2 * (0.1 * t + 0.5 * 19.9 * t**2))), rtol=1e-12)
    f, g2 = S.LinearVP().sde_coefficients(t)
    assert torch.allclose(g2, beta) and torch.allclose(f, -beta / 2)
    f, g2 = S.VE(0.01, 50).sde_coefficients(t)
    sig = 0.01 * 5000.0**t
    assert torch.allclose(g2, sig**2 * 2 * math.log(5000.0), rtol=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="betas"):
        S.DiscreteVP.from_betas([0.1, -0.2])
    with pytest.raises(ValueError, match="betas"):
        S.DiscreteVP.from_betas(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="sigma_min"):
        S.VE(1.0, 0.5)
    with pytest.raises(ValueError, match="T"):
        S.DiscreteVP.linear(0)


def test_cosine_vp_closed_form():
    s, tau_max = 0.008, 0.9946
    t = np.linspace(0.01, 1.0, 50)
    f = lambda tau: np.cos((tau + s) / (1 + s) * np.pi / 2)  # noqa: E731
    expected = f(t * tau_max) / f(0.0)
    got = S.CosineVP(s, tau_max).alpha(torch.from_numpy(t)).numpy()
    assert np.allclose(got, expected, rtol=1e-13, atol=0)


# ---- the data end on any CPU: no identity may rest on two libm builds rounding alike

_TINY = [0.0, 1e-300, 1e-200, 1e-12, 1e-8]


def _check_ends(sched, dtype):
    t = torch.tensor(_TINY, dtype=dtype)
    la, ls = sched.log_alpha_sigma(t)
    assert bool(torch.isfinite(la).all()), (sched, la)
    assert bool((la <= 0).all()), f"{sched}: alpha > 1 at t = {t[la > 0].tolist()}"
    assert not torch.isnan(ls).any(), (sched, ls)
    assert la[0].item() == 0.0 and ls[0].item() == -math.inf, sched
    assert sched.sigma(0.0).item() == 0.0 and sched.log_snr(0.0).item() == math.inf, sched
    assert sched.t_from_log_snr(math.inf).item() == 0.0, sched
    if sched.variance_preserving:
        one = sched.alpha(t) ** 2 + sched.sigma(t) ** 2
        assert torch.allclose(one, torch.ones_like(one), rtol=0, atol=1e-15), sched
    # log-SNR never rises as t grows, down to the smallest times
    lam = sched.log_snr(t)
    assert bool((lam[1:] <= lam[:-1]).all()), (sched, lam)


@pytest.mark.parametrize("sched", ALL, ids=ids)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_data_end_exact_at_tiny_times(sched, dtype):
    _check_ends(sched, dtype)


def _perturbed(fn, sign):
    """`fn` with every inexact result moved by one ulp (results 0 and +-1 stay exact, as in every libm)."""

    def wrapped(x, *args, **kwargs):
        out = fn(x, *args, **kwargs)
        if isinstance(out, torch.Tensor):
            exact = (out == 0) | (out.abs() == 1) | ~torch.isfinite(out)
            toward = torch.full_like(out, sign * math.inf)
            return torch.where(exact, out, torch.nextafter(out, toward))
        if out in (0.0, 1.0, -1.0) or not math.isfinite(out):
            return out
        return math.nextafter(out, sign * math.inf)

    return wrapped


@pytest.mark.parametrize("sign", [1, -1])
def test_data_end_survives_libm_rounding(monkeypatch, sign):
    """Move torch's and math's transcendental results by one ulp (as another CPU's libm may): the ends stay exact.

    This is the failure seen on AMD CPUs: log(torch.cos(s')) - log(math.cos(s')) was +1e-20 at t = 0, giving
    alpha(0) > 1 and sigma(0) = NaN.
    """
    # sqrt and the arithmetic operators are correctly rounded by IEEE 754 on every CPU; these are not.
    libm = ("cos", "sin", "tan", "log", "exp", "log1p", "expm1", "atan", "asinh")
    for mod, names in ((torch, (*libm, "arccos")), (math, (*libm, "acos"))):
        for name in names:
            monkeypatch.setattr(mod, name, _perturbed(getattr(mod, name), sign))
    fresh = [
        S.LinearVP(),
        S.CosineVP(),
        S.CosineVP(s=0.02, tau_max=0.99),
        S.SubVP(),
        S.VE(0.01, 50.0),
        S.EDM(),
        S.DiscreteVP.linear(1000),
        S.DiscreteVP.cosine(1000),
    ]
    for sched in fresh:
        for dtype in (torch.float32, torch.float64):
            _check_ends(sched, dtype)


@pytest.mark.parametrize("T", [49, 98, 999, 1000])
def test_discrete_index_round_trip_any_table_length(T):
    """(n+1)/T * T is not always n+1 in floating point (T = 49): the documented lookup rounds, and the knots hold."""
    sched = S.DiscreteVP.linear(T)
    n = torch.arange(T)
    back = sched.index_of_t(sched.t_of_index(n))
    assert torch.equal(back.round().long(), n)
    assert float((back - n).abs().max()) < 1e-9
    abar = np.cumprod(1 - np.linspace(1e-4, 0.02, T))
    assert np.allclose(sched.alpha(sched.t_of_index(n)).numpy() ** 2, abar, rtol=1e-12, atol=0)
