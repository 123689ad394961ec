"""Likelihood: probability-flow ODE log-likelihood (Song et al. 2021, sec. 4.3 and app. D.2) and the discrete
variational bound of a reverse chain on any grid (Ho et al. 2020, eq. 5), with explicit units.

Units: functions return nats summed over the non-batch dimensions; `bits_per_dim` converts, adding the bin-width
correction -log2(bin_width) for data quantised to bins of that width (8 for 256 levels in [0, 1], 7 for 256
levels in [-1, 1]). Evaluate discrete data after `uniform_dequantize`, or the bound means nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torchdiffeq import odeint

from .denoiser import DenoiserBase, check_state
from .losses import discretized_gaussian_log_likelihood, gaussian_kl
from .processes import ForwardProcess, prior_std
from .samplers.common import Coeffs, coeffs, posterior_terms
from .samplers.ddpm import VARIANCES, analytic_variance
from .tensors import randint, randn, sum_flat
from .timesteps import make_grid

_ADAPTIVE = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")


@dataclass
class LikelihoodResult:
    """log p(x) in nats per sample (B,), the prior term, and the number of network evaluations."""

    logp: Tensor
    prior_logp: Tensor
    nfe: int


def bits_per_dim(logp_nats: Tensor, num_dims: int, bin_width: float | None = None) -> Tensor:
    """-log p / (D ln 2), plus -log2(bin_width) when the data live on a grid of that bin width."""
    bpd = -logp_nats / (num_dims * math.log(2.0))
    return bpd if bin_width is None else bpd - math.log2(bin_width)


def uniform_dequantize(
    x: Tensor, n_levels: int = 256, out_range: tuple[float, float] = (-1.0, 1.0), generator=None
) -> Tensor:
    """Integer levels {0..n_levels-1} -> continuous values (x + U(0,1)) / n_levels mapped to `out_range`."""
    if x.is_floating_point() and not torch.equal(x, x.round()):
        raise ValueError("x: expected integer quantisation levels (e.g. uint8 pixels)")
    if x.min() < 0 or x.max() > n_levels - 1:
        raise ValueError(f"x: expected levels in [0, {n_levels - 1}], got [{x.min().item()}, {x.max().item()}]")
    u = (x.to(torch.float64) + torch.rand(x.shape, generator=generator, dtype=torch.float64)) / n_levels
    lo, hi = out_range
    return lo + (hi - lo) * u


def _divergence_exact(fn: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    """(f(x), tr df/dx per sample) by one autograd pass per dimension (for small D)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        out = fn(x)
        flat_out = out.reshape(out.shape[0], -1)
        div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for i in range(flat_out.shape[1]):
            g = torch.autograd.grad(flat_out[:, i].sum(), x, retain_graph=True)[0]
            div = div + g.reshape(x.shape[0], -1)[:, i]
    return out.detach(), div.detach()


def _divergence_hutchinson(fn: Callable[[Tensor], Tensor], x: Tensor, probes: Tensor) -> tuple[Tensor, Tensor]:
    """(f(x), mean_k v_k^T (df/dx) v_k per sample), probes (K, *x.shape) held fixed along the trajectory."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        out = fn(x)
        est = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for k in range(probes.shape[0]):
            g = torch.autograd.grad((out * probes[k]).sum(), x, retain_graph=k + 1 < probes.shape[0])[0]
            est = est + sum_flat(g * probes[k])
    return out.detach(), (est / probes.shape[0]).detach()


def ode_log_likelihood(
    denoiser: DenoiserBase,
    x: Tensor,
    *,
    t_eps: float | None = None,
    divergence: str = "exact",
    n_probes: int = 1,
    probe: str = "rademacher",
    prior_logp: Callable[[Tensor], Tensor] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    method: str = "dopri5",
    generator: torch.Generator | None = None,
    **cond,
) -> LikelihoodResult:
    """log p_{t_eps}(x) by integrating the probability-flow ODE and its divergence jointly from t_eps to 1:
    log p_{t_eps}(x) = log p_1(x_1) + int_{t_eps}^1 div f~(x_t, t) dt, f~ = f x - g^2 score / 2.

    divergence: "exact" (autograd trace, one pass per dimension) or "hutchinson" (unbiased estimate with
    `n_probes` Rademacher or Gaussian probes per sample, fixed along the trajectory). `prior_logp` defaults to
    the forward process's Gaussian prior. t_eps defaults to the schedule's t_min.
    """
    check_state(x, "x")
    if divergence not in ("exact", "hutchinson"):
        raise ValueError(f"divergence: expected 'exact' or 'hutchinson', got {divergence!r}")
    if probe not in ("rademacher", "gaussian"):
        raise ValueError(f"probe: expected 'rademacher' or 'gaussian', got {probe!r}")
    sched = denoiser.schedule
    process = ForwardProcess(sched)
    t0 = float(sched.t_min if t_eps is None else t_eps)
    if not 0.0 < t0 < 1.0:
        raise ValueError(f"t_eps: expected a value in (0, 1), got {t_eps}")
    prior = prior_logp or process.prior_logp
    probes = None
    if divergence == "hutchinson":
        if n_probes < 1:
            raise ValueError(f"n_probes: expected an integer >= 1, got {n_probes}")
        shape = (n_probes, *x.shape)
        if probe == "gaussian":
            probes = randn(shape, generator, device=x.device, dtype=x.dtype)
        else:
            probes = randint(0, 2, shape, generator, device=x.device).to(x.dtype) * 2 - 1
    nfe = 0

    def drift(t: float, xt: Tensor) -> Tensor:
        score = denoiser.score(xt, t, **cond)
        return process.probability_flow_drift(xt, t, score)

    def rhs(t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        nonlocal nfe
        nfe += 1
        xt = state[0]
        tf = float(t)
        fn = lambda z: drift(tf, z)  # noqa: E731
        if probes is None:
            dx, div = _divergence_exact(fn, xt)
        else:
            dx, div = _divergence_hutchinson(fn, xt, probes)
        return dx, div

    delta0 = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    ts = torch.tensor([t0, 1.0], dtype=x.dtype, device=x.device)
    # Adaptive solvers may step past t = 1 and interpolate back; pinning a step at 1 keeps every evaluation
    # inside the schedule's domain.
    opts = {"step_t": ts[1:]} if method in _ADAPTIVE else {}
    xs, deltas = odeint(rhs, (x, delta0), ts, rtol=rtol, atol=atol, method=method, options=opts)
    x1, delta = xs[-1], deltas[-1]
    p1 = prior(x1)
    return LikelihoodResult(p1 + delta, p1, nfe)


@dataclass
class VLBResult:
    """The bound -log p(x0) <= total, in nats per sample (B,), and its terms (prior, per step, decoder)."""

    total: Tensor
    prior: Tensor
    steps: list[Tensor] = field(default_factory=list)
    decoder: Tensor | None = None


# q(x0 | x0) at the data end: alpha = 1, sigma = 0.
_DATA_END = Coeffs(0.0, 1.0, 0.0, math.inf)


def vlb(
    denoiser: DenoiserBase,
    x0: Tensor,
    *,
    steps: int | None = None,
    grid: str | Tensor = "time-uniform",
    variance: str = "fixed-small",
    eps_sq_mean: Callable[[float], float] | Sequence[float] | None = None,
    x0_var_max: float | None = None,
    decoder: str = "gaussian",
    bin_width: float = 2.0 / 255,
    generator: torch.Generator | None = None,
    **cond,
) -> VLBResult:
    """Monte-Carlo estimate (one x_t per step and sample) of the variational bound of the ancestral chain on
    `grid`: KL(q(x_1|x0) || prior) + sum_steps KL(q(x_s|x_t,x0) || p(x_s|x_t)) - log p(x0 | x_{t_1}).

    variance: as for the "ddpm" sampler. decoder: "gaussian" (a density, for continuous data) or
    "discretized" (bins of `bin_width` on [-1, 1], for quantised data). Returns nats.
    """
    check_state(x0, "x0")
    if variance not in VARIANCES:
        raise ValueError(f"variance: expected one of {VARIANCES}, got {variance!r}")
    if decoder not in ("gaussian", "discretized"):
        raise ValueError(f"decoder: expected 'gaussian' or 'discretized', got {decoder!r}")
    sched = denoiser.schedule
    if isinstance(grid, Tensor):
        times = grid.to(torch.float64)
    else:
        if steps is None:
            raise ValueError("steps: needed with a named grid")
        times = make_grid(sched, grid, steps)
    if times[-1].item() != 0.0 or times[0].item() != 1.0:
        raise ValueError("grid: the bound needs a grid from t = 1 to t = 0")

    def moment(i: int, t: float) -> float:
        if eps_sq_mean is None:
            raise ValueError("eps_sq_mean: the 'analytic' variance needs E||eps_hat||^2/d per step")
        return float(eps_sq_mean(t)) if callable(eps_sq_mean) else float(eps_sq_mean[i])

    c1 = coeffs(sched, 1.0)
    std_p = prior_std(sched)
    prior = sum_flat(
        gaussian_kl(
            c1.alpha * x0,
            torch.full_like(x0, 2 * math.log(c1.sigma)),
            torch.zeros_like(x0),
            torch.full_like(x0, 2 * math.log(std_p)),
        )
    )
    terms: list[Tensor] = []
    prev_beta_tilde = None
    dec = None
    for i in range(len(times) - 1):
        t, s = times[i].item(), times[i + 1].item()
        c_t = coeffs(sched, t)
        noise = randn(x0.shape, generator, device=x0.device, dtype=x0.dtype)
        x_t = c_t.alpha * x0 + c_t.sigma * noise
        out = denoiser.predict(x_t, t, **cond)
        if s > 0.0:
            c_s = coeffs(sched, s)
            trans, beta_tilde = posterior_terms(c_t, c_s)
            c_x0 = c_s.alpha * trans / c_t.sigma**2
            c_xt = (c_t.alpha / c_s.alpha) * c_s.sigma**2 / c_t.sigma**2
            mean_q = c_x0 * x0 + c_xt * x_t
            mean_p = c_x0 * out.x0 + c_xt * x_t
            if variance == "fixed-small":
                logvar_p: Tensor | float = math.log(beta_tilde)
            elif variance == "fixed-large":
                logvar_p = math.log(trans)
            elif variance == "analytic":
                logvar_p = math.log(analytic_variance(c_t, c_s, moment(i, t), x0_var_max))
            else:
                if out.variance is None:
                    raise ValueError("variance: 'learned' needs a Denoiser built with learned_variance=True")
                frac = (out.variance + 1.0) / 2.0
                logvar_p = frac * math.log(trans) + (1 - frac) * math.log(beta_tilde)
            lv_p = logvar_p if isinstance(logvar_p, Tensor) else torch.full_like(x0, logvar_p)
            kl = gaussian_kl(mean_q, torch.full_like(x0, math.log(beta_tilde)), mean_p, lv_p)
            terms.append(sum_flat(kl))
            prev_beta_tilde = beta_tilde
        else:
            if variance == "analytic":
                var = analytic_variance(c_t, _DATA_END, moment(i, t), x0_var_max)
            elif variance == "fixed-large":
                var = c_t.sigma**2
            elif variance == "fixed-small":
                var = prev_beta_tilde if prev_beta_tilde is not None else c_t.sigma**2
            else:
                small = prev_beta_tilde if prev_beta_tilde is not None else c_t.sigma**2
                frac = (out.variance + 1.0) / 2.0
                var = torch.exp(frac * math.log(c_t.sigma**2) + (1 - frac) * math.log(small))
            log_var = var.log() if isinstance(var, Tensor) else torch.full_like(x0, math.log(var))
            if decoder == "gaussian":
                ll = -0.5 * ((x0 - out.x0) ** 2 * torch.exp(-log_var) + log_var + math.log(2 * math.pi))
            else:
                ll = discretized_gaussian_log_likelihood(x0, out.x0, 0.5 * log_var, bin_width)
            dec = -sum_flat(ll)
    total = prior + sum(terms, torch.zeros_like(prior)) + (dec if dec is not None else 0.0)
    return VLBResult(total, prior, terms, dec)


__all__ = [
    "LikelihoodResult",
    "VLBResult",
    "bits_per_dim",
    "ode_log_likelihood",
    "uniform_dequantize",
    "vlb",
]
