"""Variational diffusion models (Kingma et al. 2021, arXiv 2107.00630): a learned monotone noise schedule and the
continuous-time variational bound.

VDM writes the schedule as gamma(t) = -log SNR(t) with alpha^2 = sigmoid(-gamma), sigma^2 = sigmoid(gamma); our
half log-SNR is lambda = -gamma/2. `LearnedSchedule` is a `NoiseSchedule` (samplers, Denoiser and likelihood use
it as any other) and an `nn.Module` (its parameters train jointly with the denoiser):

    gamma(t) = gamma_0 + (gamma_1 - gamma_0) (f(t) - f(0)) / (f(1) - f(0)),
    f(t) = w1 t + (1/K) sum_k w3_k sigmoid(w2_k (2t - 1) + b2_k),   w1, w2, w3 = softplus(raw) > 0

so gamma is strictly increasing by construction (VDM's positive-weight dense layers, paper appendix) and its end
points gamma_0 < gamma_1 are parameters of their own (gamma_1 = gamma_0 + softplus(raw gap)).

Bound for x with D dimensions, in nats (paper eqs. 11 and 17):
    prior           KL(q(z_1 | x) || N(0, I))
    reconstruction  E -log p(x | z_0), p(x | z_0) = N(z_0/alpha_0, e^{gamma_0}) ("gaussian", continuous data) or its
                    discretisation over bins of `bin_width` on [-1, 1] ("discretized", 8-bit data)
    diffusion       E_{t ~ U(0,1), eps} 0.5 gamma'(t) ||eps - eps_hat(z_t, t)||^2, gamma' by autograd (T = inf), or
                    with T steps E_{t ~ U{1/T, ..., 1}, eps} 0.5 T expm1(gamma(t) - gamma(t - 1/T)) ||eps - eps_hat||^2
                    (paper eq. 13 in the form of its code: the T-step sum of KL(q(z_s | z_t, x) || p(z_s | z_t))).
In continuous time the diffusion term depends on the schedule only through gamma_0 and gamma_1 (paper eq. 20); the
interior shape changes only the variance of its Monte-Carlo estimate. With finite T the bound depends on the whole
shape (and exceeds the continuous one: more steps, lower bound), so training the shape can lower it. Not
implemented: VDM's optional training of the interior shape to minimise the estimator variance (every parameter
follows the bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .denoiser import PREDICTIONS, Denoiser, DenoiserBase, check_state
from .losses import discretized_gaussian_log_likelihood, sample_t
from .processes import prior_std
from .schedules import NoiseSchedule
from .tensors import append_dims, sum_flat

_F64 = torch.float64
DECODERS = ("gaussian", "discretized")


def _inv_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class LearnedSchedule(nn.Module, NoiseSchedule):
    """Monotone learned gamma(t) = -log SNR(t) on [0, 1] as a variance-preserving NoiseSchedule (float64).

    Args:
        gamma_min, gamma_max: initial gamma(0) and gamma(1) (VDM's CIFAR-10 config uses -13.3 and 5).
        hidden: K sigmoid features of the monotone network; 0 makes gamma linear in t (VDM's "linear" schedule).
        learn_endpoints: train gamma(0), gamma(1); learn_shape: train the interior shape (needs hidden > 0).

    Unlike schedules with a clean data end, sigma(0) = sigmoid(gamma_0)^(1/2) > 0: z_0 is the latent the decoder
    reads. Samplers still end their grids at t = 0 by returning x0_hat there.
    """

    variance_preserving = True

    def __init__(
        self,
        gamma_min: float = -13.3,
        gamma_max: float = 5.0,
        hidden: int = 1024,
        *,
        learn_endpoints: bool = True,
        learn_shape: bool = True,
        t_min: float = 1e-3,
    ):
        super().__init__()
        if not gamma_min < gamma_max:
            raise ValueError(f"gamma_min, gamma_max: expected gamma_min < gamma_max, got {gamma_min}, {gamma_max}")
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 0:
            raise ValueError(f"hidden: expected an integer >= 0, got {hidden!r}")
        self.hidden, self.t_min = hidden, float(t_min)
        self._init = {"gamma_min": float(gamma_min), "gamma_max": float(gamma_max), "hidden": hidden}
        f64 = {"dtype": _F64}
        self.gamma_0 = nn.Parameter(torch.tensor(float(gamma_min), **f64), requires_grad=learn_endpoints)
        gap = _inv_softplus(float(gamma_max) - float(gamma_min))
        self.raw_gap = nn.Parameter(torch.tensor(gap, **f64), requires_grad=learn_endpoints)
        shape = learn_shape and hidden > 0
        self.raw_w1 = nn.Parameter(torch.tensor(_inv_softplus(1.0), **f64), requires_grad=shape)
        # Near-linear start (VDM initialises its network to the linear schedule): small sigmoid weights.
        gen = torch.Generator().manual_seed(0)
        self.raw_w2 = nn.Parameter(torch.randn(hidden, generator=gen, **f64), requires_grad=shape)
        self.b2 = nn.Parameter(torch.randn(hidden, generator=gen, **f64), requires_grad=shape)
        self.raw_w3 = nn.Parameter(torch.full((hidden,), -5.0, **f64), requires_grad=shape)

    def config(self) -> dict:
        return dict(self._init)

    @property
    def gamma_1(self) -> Tensor:
        return self.gamma_0 + F.softplus(self.raw_gap)

    def _f(self, t: Tensor) -> Tensor:
        out = F.softplus(self.raw_w1) * t
        if self.hidden:
            h = torch.sigmoid(F.softplus(self.raw_w2) * (2.0 * t[..., None] - 1.0) + self.b2)  # (..., K)
            out = out + (h * F.softplus(self.raw_w3)).mean(-1)
        return out

    def gamma(self, t: float | Tensor) -> Tensor:
        """gamma(t) = -log SNR(t), float64, same shape as t; strictly increasing in t."""
        t = torch.as_tensor(t, dtype=_F64, device=self.gamma_0.device)
        ends = self._f(torch.tensor([0.0, 1.0], dtype=_F64, device=t.device))
        return self.gamma_0 + (self.gamma_1 - self.gamma_0) * (self._f(t) - ends[0]) / (ends[1] - ends[0])

    def forward(self, t: float | Tensor) -> Tensor:
        return self.gamma(t)

    def log_alpha(self, t):
        return -0.5 * F.softplus(self.gamma(t))  # log sqrt(sigmoid(-gamma))

    def log_sigma(self, t):
        return -0.5 * F.softplus(-self.gamma(t))

    def log_snr(self, t):
        return -0.5 * self.gamma(t)

    @torch.no_grad()
    def t_from_log_snr(self, lam):
        """Inverse of log_snr by bisection (60 halvings: below float64 resolution of t); clamps to [0, 1]."""
        target = -2.0 * torch.as_tensor(lam, dtype=_F64, device=self.gamma_0.device)
        lo, hi = torch.zeros_like(target), torch.ones_like(target)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            below = self.gamma(mid) < target
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def gamma_prime(self, t: Tensor, create_graph: bool | None = None) -> Tensor:
        """d gamma / dt by autograd; the result keeps a graph to the parameters when grad mode is on."""
        return _dgamma_dt(self, t, create_graph)


def _dgamma_dt(schedule: NoiseSchedule, t: Tensor, create_graph: bool | None = None) -> Tensor:
    """d gamma/dt = -2 d lambda/dt by autograd, for any schedule (graph to its parameters when grad is on)."""
    if create_graph is None:
        create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        tt = t.detach().to(_F64).requires_grad_(True)
        gamma = -2.0 * schedule.log_snr(tt)
        (d,) = torch.autograd.grad(gamma.sum(), tt, create_graph=create_graph)
    return d


@dataclass
class VDMTerms:
    """The three terms of the bound (continuous or T-step), each (B,) in nats; `num_dims` converts to bits/dim."""

    prior: Tensor
    reconstruction: Tensor
    diffusion: Tensor
    num_dims: int

    @property
    def total(self) -> Tensor:
        return self.prior + self.reconstruction + self.diffusion

    def bits_per_dim(self) -> Tensor:
        """total / (D ln 2), per sample."""
        return self.total / (self.num_dims * math.log(2.0))


def vdm_terms(
    denoiser: DenoiserBase,
    x0: Tensor,
    *,
    t: Tensor | None = None,
    noise: Tensor | None = None,
    t_sampling: str = "antithetic",
    decoder: str = "gaussian",
    bin_width: float = 2.0 / 255,
    timesteps: int | None = None,
    generator: torch.Generator | None = None,
    **cond,
) -> VDMTerms:
    """One-sample Monte-Carlo estimate of the VLB terms (Kingma et al. 2021, eqs. 11, 13 and 17).

    Works for any schedule whose gamma(0) = -2 lambda(0) is finite (a `LearnedSchedule`; not LinearVP, whose
    sigma(0) = 0); gradients reach the schedule's parameters through gamma'(t) (or gamma(t) - gamma(s)), alpha_t,
    sigma_t and the end points. timesteps: None for the continuous-time bound, T for the T-step one.
    t: (B,) times in [0, 1], on the grid {1/T, ..., 1} when timesteps = T (default: `t_sampling` drawn, antithetic
    as in VDM, and rounded up to the grid, i.e. stratified over the T steps); noise: the eps of z_t (default drawn).
    """
    check_state(x0, "x0")
    if decoder not in DECODERS:
        raise ValueError(f"decoder: expected one of {DECODERS}, got {decoder!r}")
    if timesteps is not None and (isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1):
        raise ValueError(f"timesteps: expected None or an integer >= 1, got {timesteps!r}")
    sched = denoiser.schedule
    ends = torch.tensor([0.0, 1.0], dtype=_F64)
    lam_ends = sched.log_snr(ends)
    if not bool(torch.isfinite(lam_ends).all()):
        raise ValueError(
            f"schedule: the continuous VLB needs a finite log-SNR at t = 0 and t = 1, got {lam_ends.tolist()} "
            f"for {type(sched).__name__}; use vdm.LearnedSchedule"
        )
    n, nd = x0.shape[0], x0.ndim
    if t is None:
        t = sample_t(sched, n, t_sampling, t_eps=0.0, generator=generator)
        if timesteps is not None:  # u in [0, 1) -> step i = floor(u T) + 1 in {1, ..., T}
            t = (torch.floor(t * timesteps).clamp(max=timesteps - 1) + 1.0) / timesteps
    elif not isinstance(t, Tensor) or t.shape != (n,):
        raise ValueError(f"t: expected a tensor of shape ({n},), got {getattr(t, 'shape', t)}")
    t = t.detach().to(device=x0.device, dtype=_F64)
    if timesteps is not None:
        step = torch.round(t * timesteps)
        if not bool(((t * timesteps - step).abs() < 1e-6).all() and (step >= 1).all() and (step <= timesteps).all()):
            off = t[((t * timesteps - step).abs() >= 1e-6) | (step < 1) | (step > timesteps)]
            raise ValueError(f"t: expected times on the grid {{1/T, ..., 1}} with T = {timesteps}, got e.g. "
                             f"{off[:4].tolist()}")
        t = step / timesteps
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    elif noise.shape != x0.shape:
        raise ValueError(f"noise: expected shape {tuple(x0.shape)}, got {tuple(noise.shape)}")

    def col(v: Tensor) -> Tensor:
        return append_dims(v, nd).to(x0.dtype)

    # Diffusion term: weight(t) ||eps - eps_hat||^2, weight = 0.5 gamma'(t), or 0.5 T expm1(gamma_t - gamma_s) for the
    # T-step bound (expm1: the increments are small at large T, where this tends to the continuous weight).
    if timesteps is None:
        weight = 0.5 * _dgamma_dt(sched, t)
    else:
        s_prev = (step - 1.0) / timesteps
        weight = 0.5 * timesteps * torch.expm1(2.0 * (sched.log_snr(s_prev) - sched.log_snr(t)))
    z_t = col(sched.alpha(t)) * x0 + col(sched.sigma(t)) * noise
    eps_hat = denoiser.predict(z_t, t, **cond).eps
    diffusion = weight.to(x0.dtype) * sum_flat((noise - eps_hat) ** 2)

    # Prior term: KL(N(alpha_1 x, sigma_1^2) || N(0, std_p^2)) per dimension.
    a1, s1 = sched.alpha(ends[1:]).to(x0.device), sched.sigma(ends[1:]).to(x0.device)
    var_p = prior_std(sched) ** 2
    prior_el = 0.5 * (((a1 * x0) ** 2 + s1**2) / var_p - 1.0 - torch.log(s1**2 / var_p))
    prior = sum_flat(prior_el.to(x0.dtype))

    # Reconstruction term at gamma_0: p(x | z_0) with mean z_0/alpha_0 and variance (sigma_0/alpha_0)^2 = e^gamma_0.
    gamma_0 = (-2.0 * lam_ends[0]).to(x0.device)
    d = x0[0].numel()
    if decoder == "gaussian":
        # The expectation over z_0 in closed form: 0.5 (log 2 pi + gamma_0 + 1) per dimension.
        reconstruction = (0.5 * d * (math.log(2.0 * math.pi) + gamma_0 + 1.0)).to(x0.dtype).expand(n)
    else:
        a0, s0 = sched.alpha(ends[:1]).to(x0.device), sched.sigma(ends[:1]).to(x0.device)
        eps0 = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        z_0 = a0.to(x0.dtype) * x0 + s0.to(x0.dtype) * eps0
        log_scale = (0.5 * gamma_0).to(x0.dtype).expand_as(x0)
        reconstruction = -sum_flat(discretized_gaussian_log_likelihood(x0, z_0 / a0.to(x0.dtype), log_scale, bin_width))
    return VDMTerms(prior, reconstruction, diffusion, d)


def gaussian_diffusion_term(gamma_0: float, gamma_1: float, data_var: Tensor) -> Tensor:
    """Exact E[diffusion term] for data with independent coordinates of variance `data_var` and the exact
    denoiser: sum_d 0.5 log((1 + v_d e^{-gamma_0}) / (1 + v_d e^{-gamma_1})), whatever gamma's shape in between.

    (E||eps - E[eps | z_t]||^2 = v/(v + e^gamma) per dimension, integrated over d gamma.)
    """
    v = torch.as_tensor(data_var, dtype=_F64).reshape(-1)
    return 0.5 * (torch.log1p(v * math.exp(-gamma_0)) - torch.log1p(v * math.exp(-gamma_1))).sum()


class VDM(nn.Module):
    """A denoiser network and its `LearnedSchedule` in one module, so that `training.fit` trains both:

        model = VDM(net, LearnedSchedule(-13.3, 5.0))         # timesteps=T: the T-step bound instead
        fit(model, vdm_loss_fn, dataset, config, out_dir)     # the loss is the bound in bits/dim

    `model.denoiser()` is the Denoiser to sample or evaluate with.
    """

    def __init__(
        self,
        net: nn.Module,
        schedule: LearnedSchedule | None = None,
        prediction: str = "eps",
        decoder: str = "gaussian",
        bin_width: float = 2.0 / 255,
        timesteps: int | None = None,
    ):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction: expected one of {PREDICTIONS}, got {prediction!r}")
        if decoder not in DECODERS:
            raise ValueError(f"decoder: expected one of {DECODERS}, got {decoder!r}")
        if timesteps is not None and (isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1):
            raise ValueError(f"timesteps: expected None or an integer >= 1, got {timesteps!r}")
        self.net = net
        self.schedule = schedule if schedule is not None else LearnedSchedule()
        if not isinstance(self.schedule, NoiseSchedule):
            raise ValueError(f"schedule: expected a NoiseSchedule, got {type(self.schedule).__name__}")
        self.prediction, self.decoder, self.bin_width = prediction, decoder, float(bin_width)
        self.timesteps = timesteps

    def denoiser(self) -> Denoiser:
        return Denoiser(self.net, self.schedule, self.prediction)

    def terms(self, x0: Tensor, **kwargs) -> VDMTerms:
        kwargs = {"decoder": self.decoder, "bin_width": self.bin_width, "timesteps": self.timesteps, **kwargs}
        return vdm_terms(self.denoiser(), x0, **kwargs)

    def forward(self, x0: Tensor) -> Tensor:
        """The bound in bits per dimension, averaged over the batch (the training loss)."""
        return self.terms(x0).bits_per_dim().mean()


def vdm_loss_fn(model: nn.Module, batch) -> Tensor:
    """`training.fit` loss: model(x0) for a VDM (or its DDP wrapper); batches are x0 or (x0, ...)."""
    x0 = batch[0] if isinstance(batch, list | tuple) else batch
    return model(x0)


__all__ = ["DECODERS", "VDM", "LearnedSchedule", "VDMTerms", "gaussian_diffusion_term", "vdm_loss_fn", "vdm_terms"]
