"""Denoising losses = prediction target x weighting x t-sampling, and the iDDPM hybrid loss.

Every weighting is defined as a weight w(t) on the x0 error ||x0_hat - x0||^2 and evaluated in the target's own
space for numerical stability: with target error e_target, ||x0_hat - x0||^2 = e_target / c_target(t), where
c_eps = SNR, c_x0 = 1, c_v = (alpha^2 + sigma^2)^2 / sigma^2 (= 1 + SNR on VP).

  uniform     plain MSE on the target (w = c_target): Ho et al. 2020's L_simple for eps
  snr         w = SNR                 (eps-MSE)
  min-snr     w = min(SNR, gamma)     Hang et al. 2023 (Min-SNR-gamma), the same for every target
  likelihood  w = -dSNR/dt            the continuous-time VLB weighting; equals g^2 alpha^2/sigma^4
                                      (Song et al. 2021 likelihood weighting; Kingma et al. 2021 eq. 14)
  edm         w = (sigma~^2 + sd^2) / (sigma~ sd)^2   Karras et al. 2022 (sigma~ = sigma/alpha)

t-sampling: "uniform" U(t_eps, 1) (discrete schedules draw a table step), "antithetic" (Kingma et al. 2021
low-discrepancy: u_i = (u0 + i/B) mod 1), "lognormal" (ln sigma~ ~ N(p_mean, p_std^2), Karras et al. 2022).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .denoiser import DenoiserBase, check_state
from .schedules import DiscreteVP, NoiseSchedule
from .tensors import append_dims, mean_flat, randn

TARGETS = ("eps", "x0", "v")
WEIGHTINGS = ("uniform", "snr", "min-snr", "likelihood", "edm")
T_SAMPLINGS = ("uniform", "antithetic", "lognormal")


def sample_t(
    schedule: NoiseSchedule,
    n: int,
    method: str = "uniform",
    *,
    t_eps: float = 1e-5,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw n training times in (0, 1] (float64)."""
    if method not in T_SAMPLINGS:
        raise ValueError(f"t_sampling: expected one of {T_SAMPLINGS}, got {method!r}")
    if method == "lognormal":
        log_sig = p_mean + p_std * torch.randn(n, generator=generator, dtype=torch.float64)
        lo, hi = schedule.log_snr(1.0).item(), schedule.log_snr(max(schedule.t_min, t_eps)).item()
        t = schedule.t_from_log_snr((-log_sig).clamp(lo, hi))
        return t.clamp(t_eps, 1.0).to(device)
    if method == "uniform":
        u = torch.rand(n, generator=generator, dtype=torch.float64)
    else:
        u0 = torch.rand(1, generator=generator, dtype=torch.float64)
        u = torch.remainder(u0 + torch.arange(n, dtype=torch.float64) / n, 1.0)
    if isinstance(schedule, DiscreteVP):
        # a table step n in {0..T-1}, i.e. t = (n + 1) / T
        return schedule.t_of_index(torch.floor(u * schedule.T).clamp(max=schedule.T - 1)).to(device)
    return (t_eps + (1.0 - t_eps) * u).to(device)


def _target_scale(target: str, a: Tensor, s: Tensor) -> Tensor:
    """c_target: the factor with e_target = c_target * e_x0."""
    if target == "eps":
        return (a / s) ** 2
    if target == "x0":
        return torch.ones_like(a)
    return (a**2 + s**2) ** 2 / s**2


def loss_weight(
    schedule: NoiseSchedule, t: Tensor, weighting: str, *, gamma: float = 5.0, sigma_data: float = 0.5
) -> Tensor:
    """The weight w(t) on the x0 error for `weighting` (see the module docstring); 'uniform' is not defined here."""
    a, s = schedule.alpha(t), schedule.sigma(t)
    snr = (a / s) ** 2
    if weighting == "snr":
        return snr
    if weighting == "min-snr":
        return snr.clamp(max=gamma)
    if weighting == "likelihood":
        f, g2 = schedule.sde_coefficients(t)
        return g2 * a**2 / s**4
    if weighting == "edm":
        sig = s / a
        return (sig**2 + sigma_data**2) / (sig * sigma_data) ** 2
    raise ValueError(f"weighting: expected one of {WEIGHTINGS[1:]}, got {weighting!r}")


def denoising_loss(
    denoiser: DenoiserBase,
    x0: Tensor,
    *,
    target: str | None = None,
    weighting: str = "uniform",
    t_sampling: str = "uniform",
    t: Tensor | None = None,
    noise: Tensor | None = None,
    gamma: float = 5.0,
    generator: torch.Generator | None = None,
    reduce: bool = True,
    **cond,
) -> Tensor:
    """Weighted denoising loss, mean over non-batch dimensions (and over the batch when `reduce`).

    `target` defaults to the denoiser's prediction type (edm -> x0, score -> eps). `t` and `noise` may be given
    (one time per leading element of x0); otherwise they are drawn with `t_sampling` and `generator`.
    """
    check_state(x0, "x0")
    sched = denoiser.schedule
    if target is None:
        pred = getattr(denoiser, "prediction", "eps")
        target = {"edm": "x0", "score": "eps"}.get(pred, pred)
    if target not in TARGETS:
        raise ValueError(f"target: expected one of {TARGETS}, got {target!r}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting: expected one of {WEIGHTINGS}, got {weighting!r}")
    if t is None:
        t = sample_t(sched, x0.shape[0], t_sampling, generator=generator, device=x0.device)
    elif t.shape != (x0.shape[0],):
        raise ValueError(f"t: expected shape ({x0.shape[0]},), got {tuple(t.shape)}")
    if noise is None:
        noise = randn(x0.shape, generator, device=x0.device, dtype=x0.dtype)
    t64 = t.to(torch.float64)
    a = append_dims(sched.alpha(t64), x0.ndim).to(x0.dtype)
    s = append_dims(sched.sigma(t64), x0.ndim).to(x0.dtype)
    x_t = a * x0 + s * noise
    out = denoiser.predict(x_t, t64, **cond)
    if target == "eps":
        err = mean_flat((out.eps - noise) ** 2)
    elif target == "x0":
        err = mean_flat((out.x0 - x0) ** 2)
    else:
        v = a * noise - s * x0
        v_hat = a * out.eps - s * out.x0
        err = mean_flat((v_hat - v) ** 2)
    if weighting != "uniform":
        a1, s1 = sched.alpha(t64), sched.sigma(t64)
        w = loss_weight(sched, t64, weighting, gamma=gamma, sigma_data=getattr(denoiser, "sigma_data", 0.5))
        err = err * (w / _target_scale(target, a1, s1)).to(err.dtype)
    return err.mean() if reduce else err


# ---------------------------------------------------------------------------------------------------------------
# iDDPM hybrid loss (Nichol & Dhariwal 2021, sec. 3.1)


def gaussian_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """Elementwise KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) in nats."""
    return 0.5 * (logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2) - 1.0)


def _std_normal_cdf(x: Tensor) -> Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def discretized_gaussian_log_likelihood(
    x: Tensor, mean: Tensor, log_scale: Tensor, bin_width: float = 2.0 / 255
) -> Tensor:
    """Elementwise log-probability of the bin around x (data in [-1, 1] on a 256-level grid), the edge bins
    open-ended (Ho et al. 2020, sec. 3.3)."""
    inv = torch.exp(-log_scale)
    upper = _std_normal_cdf((x - mean + bin_width / 2) * inv)
    lower = _std_normal_cdf((x - mean - bin_width / 2) * inv)
    log_cdf_plus = torch.log(upper.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - lower).clamp(min=1e-12))
    log_delta = torch.log((upper - lower).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


def hybrid_loss(
    denoiser: DenoiserBase,
    x0: Tensor,
    *,
    vlb_weight: float = 1e-3,
    generator: torch.Generator | None = None,
    **cond,
) -> Tensor:
    """L_simple + vlb_weight * T * L_t for a learned-variance model on a DiscreteVP (iDDPM's L_hybrid, lambda=0.001).

    The VLB term sees the mean through a stop-gradient, so it trains only the variance; L_t is in bits per
    dimension, the KL of the posterior for t > 1 and the discretised decoder NLL at the first step.
    """
    sched = denoiser.schedule
    if not isinstance(sched, DiscreteVP):
        raise ValueError(f"schedule: the hybrid loss needs a DiscreteVP, got {type(sched).__name__}")
    if not getattr(denoiser, "learned_variance", False):
        raise ValueError("denoiser: the hybrid loss needs a Denoiser built with learned_variance=True")
    T = sched.T
    nd = x0.ndim

    def col(v: Tensor) -> Tensor:
        return append_dims(v, nd).to(x0.dtype)

    n = torch.randint(0, T, (x0.shape[0],), generator=generator).to(x0.device)
    t = sched.t_of_index(n)
    noise = randn(x0.shape, generator, device=x0.device, dtype=x0.dtype)
    abar = torch.as_tensor(sched.alphas_cumprod, device=x0.device)
    abar_prev = torch.cat([torch.ones(1, dtype=abar.dtype, device=x0.device), abar[:-1]])
    ab, abp = abar[n], abar_prev[n]
    b = torch.as_tensor(sched.betas, device=x0.device)[n]
    x_t = col(ab.sqrt()) * x0 + col((1 - ab).sqrt()) * noise
    out = denoiser.predict(x_t, t, **cond)
    mse = mean_flat((out.eps - noise) ** 2)

    # Posterior q(x_{n-1} | x_n, x0); iDDPM clips the first variance (0) to the second one.
    post_var = b * (1 - abp) / (1 - ab)
    first = torch.as_tensor(post_var_at(sched, 1) if T > 1 else sched.betas[0], dtype=b.dtype, device=b.device)
    log_post = torch.log(torch.where(n == 0, first, post_var))
    frac = (out.variance + 1.0) / 2.0
    log_var = frac * col(torch.log(b)) + (1 - frac) * col(log_post)

    c0, ct = col(abp.sqrt() * b / (1 - ab)), col((1 - b).sqrt() * (1 - abp) / (1 - ab))
    mean_true = c0 * x0 + ct * x_t
    mean_model = c0 * out.x0.detach() + ct * x_t  # stop-gradient: the VLB term trains the variance only
    kl = mean_flat(gaussian_kl(mean_true, col(log_post), mean_model, log_var))
    nll = -mean_flat(discretized_gaussian_log_likelihood(x0, mean_model, 0.5 * log_var))
    vb = torch.where(n == 0, nll, kl) / math.log(2.0)
    return (mse + vlb_weight * T * vb).mean()


def post_var_at(sched: DiscreteVP, n: int) -> float:
    """beta_tilde_n = beta_n (1 - alpha_bar_{n-1}) / (1 - alpha_bar_n) for table step n >= 1."""
    abar = sched.alphas_cumprod
    return float(sched.betas[n] * (1 - abar[n - 1]) / (1 - abar[n]))
