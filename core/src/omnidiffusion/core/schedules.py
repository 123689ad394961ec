"""Noise schedules: x_t = alpha(t) x0 + sigma(t) eps for continuous t in [0, 1].

Every schedule is computed in float64 and has a clean data end, sigma(0) = 0 (log-SNR +inf), and a
noise end at t = 1. `t_min` is the smallest time that log-SNR and Karras grids visit before their
final jump to t = 0.

Half log-SNR: lambda(t) = log alpha(t) - log sigma(t) (Kingma et al. 2021; Lu et al. 2022).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

_F64 = torch.float64


def _as_t(t: float | Tensor | Sequence[float]) -> Tensor:
    """Any time input as a float64 tensor (keeps the device of a tensor input)."""
    if isinstance(t, Tensor):
        return t.to(_F64)
    return torch.as_tensor(t, dtype=_F64)


def _check_range(t: Tensor, name: str = "t") -> None:
    if t.numel() and (torch.isnan(t).any() or t.min() < 0.0 or t.max() > 1.0):
        raise ValueError(
            f"{name}: expected values in [0, 1], got range [{t.min().item():.6g}, {t.max().item():.6g}]"
        )


def _log_sigma_vp(log_alpha: Tensor) -> Tensor:
    # sigma^2 = 1 - alpha^2, computed without cancellation near alpha = 1.
    return 0.5 * torch.log(-torch.expm1(2.0 * log_alpha))


def _log_alpha_vp_from_lambda(lam: Tensor) -> Tensor:
    # VP: alpha^2 = sigmoid(2 lambda), so log alpha = -softplus(-2 lambda) / 2.
    return -0.5 * torch.nn.functional.softplus(-2.0 * lam)


class NoiseSchedule:
    """Base class. Subclasses implement `log_alpha`, `log_sigma` and `t_from_log_snr`.

    `variance_preserving` is True when alpha^2 + sigma^2 = 1.
    """

    variance_preserving: bool = True
    t_min: float = 1e-3

    def log_alpha(self, t: float | Tensor) -> Tensor:
        raise NotImplementedError

    def log_sigma(self, t: float | Tensor) -> Tensor:
        raise NotImplementedError

    def t_from_log_snr(self, lam: float | Tensor) -> Tensor:
        """Inverse of `log_snr`: the time whose half log-SNR is `lam`."""
        raise NotImplementedError

    def log_alpha_sigma(self, t: float | Tensor) -> tuple[Tensor, Tensor]:
        """(log alpha, log sigma) in one pass (samplers call this once per grid)."""
        return self.log_alpha(t), self.log_sigma(t)

    def alpha(self, t: float | Tensor) -> Tensor:
        return torch.exp(self.log_alpha(t))

    def sigma(self, t: float | Tensor) -> Tensor:
        return torch.exp(self.log_sigma(t))

    def log_snr(self, t: float | Tensor) -> Tensor:
        """Half log-SNR lambda(t) = log alpha - log sigma (+inf at t = 0)."""
        return self.log_alpha(t) - self.log_sigma(t)

    def snr(self, t: float | Tensor) -> Tensor:
        return torch.exp(2.0 * self.log_snr(t))

    def sigma_ve(self, t: float | Tensor) -> Tensor:
        """VE-equivalent noise level sigma/alpha = exp(-lambda) (the k-diffusion/EDM sigma)."""
        return torch.exp(-self.log_snr(t))

    def t_from_sigma_ve(self, sigma_ve: float | Tensor) -> Tensor:
        return self.t_from_log_snr(-torch.log(_as_t(sigma_ve)))

    def sde_coefficients(self, t: float | Tensor) -> tuple[Tensor, Tensor]:
        """(f(t), g(t)^2) of the forward SDE dx = f x dt + g dw with this schedule's marginals.

        f = d log alpha / dt and g^2 = d sigma^2 / dt - 2 f sigma^2 (Kingma et al. 2021, appendix; for
        linear VP this is beta(t) and for VE d sigma^2/dt). Computed by autograd in float64 unless a
        subclass gives the closed form.
        """
        t = _as_t(t).detach().clone().requires_grad_(True)
        with torch.enable_grad():
            log_a = self.log_alpha(t)
            sigma2 = torch.exp(2.0 * self.log_sigma(t))
            f = torch.autograd.grad(log_a.sum(), t, retain_graph=True)[0]
            dsigma2 = torch.autograd.grad(sigma2.sum(), t)[0]
        return f.detach(), (dsigma2 - 2.0 * f * sigma2).detach()

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({fields})"

    def config(self) -> dict:
        return {}


class VPSchedule(NoiseSchedule):
    """A variance-preserving schedule, sigma^2 = 1 - alpha^2: subclasses give log alpha and its inverse."""

    def log_sigma(self, t):
        return _log_sigma_vp(self.log_alpha(t))

    def log_alpha_sigma(self, t):
        la = self.log_alpha(t)
        return la, _log_sigma_vp(la)


class LinearVP(VPSchedule):
    """Continuous VP with linear beta(t) = b0 + t (b1 - b0) (Song et al. 2021, VP SDE).

    log alpha(t) = -t^2 (b1 - b0)/4 - t b0/2.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3):
        if not 0 < beta_min < beta_max:
            raise ValueError(f"beta_min, beta_max: expected 0 < beta_min < beta_max, got {beta_min}, {beta_max}")
        self.beta_min, self.beta_max, self.t_min = float(beta_min), float(beta_max), float(t_min)

    def config(self) -> dict:
        return {"beta_min": self.beta_min, "beta_max": self.beta_max, "t_min": self.t_min}

    def log_alpha(self, t):
        t = _as_t(t)
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def t_from_log_snr(self, lam):
        # Solve (b1-b0)/4 t^2 + b0/2 t = softplus(-2 lam)/2 in the cancellation-free form.
        tmp = torch.nn.functional.softplus(-2.0 * _as_t(lam))
        b0, db = self.beta_min, self.beta_max - self.beta_min
        return 2.0 * tmp / (torch.sqrt(b0**2 + 2.0 * db * tmp) + b0)

    def sde_coefficients(self, t):
        t = _as_t(t)
        beta = self.beta_min + t * (self.beta_max - self.beta_min)
        return -0.5 * beta, beta


class SubVP(LinearVP):
    """sub-VP (Song et al. 2021): the VP drift with marginal std sigma = 1 - alpha^2 (not variance preserving)."""

    variance_preserving = False

    def log_sigma(self, t):
        return torch.log(-torch.expm1(2.0 * self.log_alpha(t)))

    def log_alpha_sigma(self, t):
        la = self.log_alpha(t)
        return la, torch.log(-torch.expm1(2.0 * la))

    def t_from_log_snr(self, lam):
        # lambda = log a - log(1 - a^2) is increasing in a on (0, 1): a = (sqrt(1 + 4 e^{2 lam}) - 1)/(2 e^{lam}).
        # The same root as log a = -asinh(e^{-lam} / 2): exactly 0 at lam = +inf, never positive.
        tmp = 2.0 * torch.asinh(0.5 * torch.exp(-_as_t(lam)))  # = -2 log alpha >= 0
        b0, db = self.beta_min, self.beta_max - self.beta_min
        return 2.0 * tmp / (torch.sqrt(b0**2 + 2.0 * db * tmp) + b0)

    def sde_coefficients(self, t):
        # g^2 = beta(t) (1 - alpha^4), the sub-VP diffusion of Song et al. 2021.
        f, beta = super().sde_coefficients(t)
        return f, beta * -torch.expm1(4.0 * self.log_alpha(t))


class CosineVP(VPSchedule):
    """Continuous cosine VP of Nichol & Dhariwal 2021: alpha(tau) = cos((tau+s)/(1+s) pi/2) / cos(s/(1+s) pi/2).

    Time is rescaled, tau = t * tau_max, so that t = 1 keeps a finite log-SNR (tau_max = 0.9946 as in
    DPM-Solver's cosine schedule; lambda(1) is about -4.8).
    """

    def __init__(self, s: float = 0.008, tau_max: float = 0.9946, t_min: float = 1e-3):
        if not 0 < tau_max < 1:
            raise ValueError(f"tau_max: expected a value in (0, 1), got {tau_max}")
        self.s, self.tau_max, self.t_min = float(s), float(tau_max), float(t_min)
        self._a = math.pi / 2 * self.s / (1 + self.s)  # the angle at t = 0
        self._tan_a = math.tan(self._a)

    def config(self) -> dict:
        return {"s": self.s, "tau_max": self.tau_max, "t_min": self.t_min}

    def log_alpha(self, t):
        # alpha = cos(a + b) / cos(a) with b = pi/2 tau/(1+s) >= 0, written as 1 - 2 sin^2(b/2) - tan(a) sin(b):
        # no ratio of two cosines that must cancel (they round differently across libm builds and gave
        # log alpha(0) > 0), exactly 0 at b = 0 on any CPU (sin(0) = 0), and <= 0 since both terms are >= 0.
        b = _as_t(t) * (self.tau_max * math.pi / 2 / (1 + self.s))
        return torch.log1p(-2.0 * torch.sin(0.5 * b) ** 2 - self._tan_a * torch.sin(b))

    def t_from_log_snr(self, lam):
        # Solve 2 sin^2(b/2) + tan(a) sin(b) = d := 1 - alpha for b. With u = tan(b/2) this is
        # (2 - d) u^2 + 2 tan(a) u - d = 0, whose root u >= 0 is taken in the cancellation-free form; d = 0
        # (lambda = +inf, the data end) gives b = 0 exactly.
        d = -torch.expm1(_log_alpha_vp_from_lambda(_as_t(lam)))
        u = d / (self._tan_a + torch.sqrt(self._tan_a**2 + d * (2.0 - d)))
        b = 2.0 * torch.atan(u)
        return b * ((1 + self.s) / (self.tau_max * math.pi / 2))


class VE(NoiseSchedule):
    """Variance exploding (Song et al. 2021, VE SDE): alpha = 1, g(t) = sigma_min r^t sqrt(2 log r), r = smax/smin.

    The marginal of that SDE started from clean data is sigma(t)^2 = sigma_min^2 (r^(2t) - 1), which we use so
    that t = 0 is the data end; it equals score_sde's sigma_min r^t up to a relative 1/(2 r^(2t)).
    `t_min` is where sigma(t) = sigma_min.
    """

    variance_preserving = False

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(
                f"sigma_min, sigma_max: expected 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}"
            )
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self._log_r = math.log(self.sigma_max / self.sigma_min)
        self.t_min = math.log(2.0) / (2.0 * self._log_r)

    def config(self) -> dict:
        return {"sigma_min": self.sigma_min, "sigma_max": self.sigma_max}

    def log_alpha(self, t):
        return torch.zeros_like(_as_t(t))

    def log_sigma(self, t):
        t = _as_t(t)
        return math.log(self.sigma_min) + 0.5 * torch.log(torch.expm1(2.0 * self._log_r * t))

    def t_from_log_snr(self, lam):
        # sigma = exp(-lam): r^(2t) = 1 + (sigma/sigma_min)^2.
        log_ratio = -_as_t(lam) - math.log(self.sigma_min)
        return torch.nn.functional.softplus(2.0 * log_ratio) / (2.0 * self._log_r)

    def sde_coefficients(self, t):
        t = _as_t(t)
        g2 = self.sigma_min**2 * 2.0 * self._log_r * torch.exp(2.0 * self._log_r * t)
        return torch.zeros_like(t), g2


class EDM(NoiseSchedule):
    """Karras et al. 2022: alpha = 1, sigma(t) = t * sigma_max; grids visit sigma_min before the jump to 0."""

    variance_preserving = False

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, sigma_data: float = 0.5):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(
                f"sigma_min, sigma_max: expected 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}"
            )
        self.sigma_min, self.sigma_max, self.sigma_data = float(sigma_min), float(sigma_max), float(sigma_data)
        self.t_min = self.sigma_min / self.sigma_max

    def config(self) -> dict:
        return {"sigma_min": self.sigma_min, "sigma_max": self.sigma_max, "sigma_data": self.sigma_data}

    def log_alpha(self, t):
        return torch.zeros_like(_as_t(t))

    def log_sigma(self, t):
        return torch.log(_as_t(t) * self.sigma_max)

    def t_from_log_snr(self, lam):
        return torch.exp(-_as_t(lam)) / self.sigma_max

    def sde_coefficients(self, t):
        t = _as_t(t)
        return torch.zeros_like(t), 2.0 * t * self.sigma_max**2


# --------------------------------------------------------------------------------------------------------------
# Discrete schedules


def _betas_linear(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    return np.linspace(beta_start, beta_end, T, dtype=np.float64)


def _betas_from_alpha_bar(fn, T: int, max_beta: float = 0.999) -> np.ndarray:
    i = np.arange(T, dtype=np.float64)
    return np.minimum(1.0 - fn((i + 1) / T) / fn(i / T), max_beta)


def _betas_cosine(T: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    # Nichol & Dhariwal 2021, eq. 17 with betas clipped at 0.999.
    return _betas_from_alpha_bar(lambda u: np.cos((u + s) / (1 + s) * np.pi / 2) ** 2, T, max_beta)


def _betas_sqrt(T: int, s: float = 1e-4, max_beta: float = 0.999) -> np.ndarray:
    # Li et al. 2022 (Diffusion-LM): alpha_bar(u) = 1 - sqrt(u + s).
    return _betas_from_alpha_bar(lambda u: 1.0 - np.sqrt(u + s), T, max_beta)


def _betas_sigmoid(T: int, beta_start: float = 1e-7, beta_end: float = 2e-3) -> np.ndarray:
    # GeoDiff (Xu et al. 2022): sigmoid of linspace(-6, 6) scaled into [beta_start, beta_end].
    x = np.linspace(-6.0, 6.0, T, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-x)) * (beta_end - beta_start) + beta_start


def _betas_quadratic(T: int, beta_start: float = 1e-4, beta_end: float = 0.5) -> np.ndarray:
    # CSDI (Tashiro et al. 2021): linspace(sqrt(b0), sqrt(b1))^2.
    return np.linspace(beta_start**0.5, beta_end**0.5, T, dtype=np.float64) ** 2


NAMED_BETAS = {
    "linear": _betas_linear,
    "cosine": _betas_cosine,
    "sqrt": _betas_sqrt,
    "sigmoid": _betas_sigmoid,
    "quadratic": _betas_quadratic,
}


def rescale_zero_terminal_snr(alphas_cumprod: np.ndarray) -> np.ndarray:
    """Lin et al. 2023, Algorithm 1: shift and scale sqrt(alpha_bar) so alpha_bar_T = 0 and alpha_bar_1 is kept."""
    q = np.sqrt(np.asarray(alphas_cumprod, dtype=np.float64))
    q0, qT = q[0], q[-1]
    q = (q - qT) * q0 / (q0 - qT)
    return q**2


class DiscreteVP(VPSchedule):
    """VP schedule from a table of T betas, with ONE index <-> time mapping: step n (0-based) sits at t = (n+1)/T.

    alpha_bar_n = prod_{i<=n} (1 - beta_i). Between table points log alpha is linear in t (as DPM-Solver does
    for discrete models), with log alpha(0) = 0, so t = 0 is clean data. A zero terminal alpha_bar (after
    `rescale_zero_terminal_snr`) is interpolated linearly in alpha on the last interval instead.
    """

    def __init__(self, betas: Sequence[float] | np.ndarray | Tensor, name: str = "custom"):
        b = np.asarray(betas.detach().cpu() if isinstance(betas, Tensor) else betas, dtype=np.float64)
        if b.ndim != 1 or b.size < 1:
            raise ValueError(f"betas: expected a 1-D sequence with at least one entry, got shape {b.shape}")
        if np.isnan(b).any() or b.min() <= 0 or b.max() > 1:
            raise ValueError(f"betas: expected values in (0, 1], got range [{b.min():.3g}, {b.max():.3g}]")
        self.betas = b
        self.name = name
        self.T = int(b.size)
        self.alphas_cumprod = np.cumprod(1.0 - b)
        self.t_min = 1.0 / self.T
        with np.errstate(divide="ignore"):
            log_a = 0.5 * np.log(self.alphas_cumprod)
        self._zero_terminal = bool(self.alphas_cumprod[-1] == 0.0)
        self._knots_t = torch.arange(self.T + 1, dtype=_F64) / self.T
        self._knots_log_a = torch.from_numpy(np.concatenate([[0.0], log_a]))

    # ---- constructors
    @classmethod
    def from_betas(cls, betas, name: str = "custom") -> DiscreteVP:
        return cls(betas, name=name)

    @classmethod
    def named(cls, name: str, T: int = 1000, **kwargs) -> DiscreteVP:
        if name not in NAMED_BETAS:
            raise ValueError(f"name: expected one of {sorted(NAMED_BETAS)}, got {name!r}")
        if int(T) != T or T < 1:
            raise ValueError(f"T: expected a positive integer, got {T!r}")
        return cls(NAMED_BETAS[name](int(T), **kwargs), name=name)

    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> DiscreteVP:
        return cls.named("linear", T, beta_start=beta_start, beta_end=beta_end)

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008) -> DiscreteVP:
        return cls.named("cosine", T, s=s)

    @classmethod
    def sqrt(cls, T: int = 2000, s: float = 1e-4) -> DiscreteVP:
        return cls.named("sqrt", T, s=s)

    @classmethod
    def sigmoid(cls, T: int = 5000, beta_start: float = 1e-7, beta_end: float = 2e-3) -> DiscreteVP:
        return cls.named("sigmoid", T, beta_start=beta_start, beta_end=beta_end)

    @classmethod
    def quadratic(cls, T: int = 50, beta_start: float = 1e-4, beta_end: float = 0.5) -> DiscreteVP:
        return cls.named("quadratic", T, beta_start=beta_start, beta_end=beta_end)

    def rescale_zero_terminal_snr(self) -> DiscreteVP:
        """A new schedule whose alpha_bar_T is exactly 0 (Lin et al. 2023); needs x0- or v-prediction."""
        abar = rescale_zero_terminal_snr(self.alphas_cumprod)
        prev = np.concatenate([[1.0], abar[:-1]])
        betas = 1.0 - abar / prev
        return DiscreteVP(betas, name=f"{self.name}+zero-snr")

    def config(self) -> dict:
        return {"T": self.T, "name": self.name}

    # ---- the index <-> time mapping
    def t_of_index(self, n: int | Tensor) -> Tensor:
        """Continuous time of discrete step n (0-based): t = (n + 1) / T."""
        return (_as_t(n) + 1.0) / self.T

    def index_of_t(self, t: float | Tensor) -> Tensor:
        """Continuous step index n = t T - 1 (an integer at table points; round it for an index lookup)."""
        return _as_t(t) * self.T - 1.0

    # ---- alpha, sigma
    def _segment(self, t: Tensor) -> tuple[Tensor, Tensor]:
        pos = t * self.T
        k = pos.floor().clamp(0, self.T - 1)
        return k.long(), pos - k

    def log_alpha(self, t):
        t = _as_t(t)
        knots = self._knots_log_a.to(t.device)
        k, w = self._segment(t)
        lo, hi = knots[k], knots[k + 1]
        out = lo + w * (hi - lo)
        if self._zero_terminal:
            last = k == self.T - 1
            a_lo = torch.exp(lo)
            out = torch.where(last, torch.log(a_lo * (1.0 - w)), out)
        return out

    def t_from_log_snr(self, lam):
        target = _log_alpha_vp_from_lambda(_as_t(lam))
        knots = self._knots_log_a.to(target.device)
        neg = -knots  # increasing (non-strictly if a beta were 0; betas > 0 makes it strict)
        k = torch.searchsorted(neg, -target.contiguous(), right=False).clamp(1, self.T) - 1
        lo, hi = knots[k], knots[k + 1]
        w = (target - lo) / (hi - lo)
        if self._zero_terminal:
            last = k == self.T - 1
            w_last = 1.0 - torch.exp(target - lo)
            w = torch.where(last, w_last, w)
        return ((k.to(_F64) + w.clamp(0.0, 1.0)) / self.T).clamp(0.0, 1.0)


def as_schedule(schedule: NoiseSchedule | str) -> NoiseSchedule:
    """Accept a schedule object or one of the names 'linear-vp', 'cosine-vp', 've', 'edm'."""
    if isinstance(schedule, NoiseSchedule):
        return schedule
    table = {"linear-vp": LinearVP, "cosine-vp": CosineVP, "sub-vp": SubVP, "ve": VE, "edm": EDM}
    if schedule in table:
        return table[schedule]()
    raise ValueError(f"schedule: expected a NoiseSchedule or one of {sorted(table)}, got {schedule!r}")
