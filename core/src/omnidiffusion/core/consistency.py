"""Consistency models: one- and few-step generation for any Denoiser (Song et al. 2023, arXiv 2303.01469;
Song & Dhariwal 2023, "Improved techniques for training consistency models", iCT, arXiv 2310.14189).

A consistency function f(x_t, t) maps every point of a probability-flow ODE trajectory to its end at the
boundary time t_min, so f(x_1, 1) is a one-step sample. On the core's schedule it works in VE coordinates
x~ = x_t / alpha_t, sigma~ = sigma_t / alpha_t, and the boundary condition f(x, t_min) = x~ holds by
construction, f = c_skip(t) x~ + c_out(t) G(x_t, t), with one of two parameterisations:

  "edm"    G = F(c_in x~, t) a raw network, c_skip = sd^2 / ((sigma~ - sigma~_min)^2 + sd^2),
           c_out = (sigma~ - sigma~_min) sd / sqrt(sigma~^2 + sd^2), c_in = 1 / sqrt(sigma~^2 + sd^2)
           (Song et al. 2023, Appendix C; sd = sigma_data).
  "euler"  G = x0_hat of a Denoiser (any prediction type) on the network, c_skip = sigma~_min / sigma~,
           c_out = 1 - sigma~_min / sigma~: f is one Euler step of the PF-ODE from t to t_min with the
           network's eps_hat, so a copy of a trained teacher is a good initialisation (as in the paper).

Consistency distillation (CD, Algorithm 2) trains f on pairs of adjacent times t_n > t_{n+1} of an N-interval
grid from 1 down to t_min: x_{t_n} = alpha x0 + sigma z, x^ = one teacher ODE step t_n -> t_{n+1} with ANY
core solver (samplers.METHODS, optionally in sub-steps), loss d(f(x_{t_n}, t_n), sg[f^-(x^, t_{n+1})]), f^- the
online student (mu = 0) or its EMA (`target_ema`, the paper's mu). By default the grid is shifted per sample by
a random fraction of an interval (`grid_pairs`), so f is trained at every time and not only at the N + 1 grid
times: multistep sampling re-noises to times off the grid, where a fixed-grid f is poor.
Consistency training (CT, iCT recipe) replaces the teacher step by the same noise at t_{n+1}, draws n with
the lognormal discretisation weights p(n) ~ erf((log sigma~_n - P_mean)/(sqrt 2 P_std)) - erf(...n+1),
doubles N from s0 to s1 over training (N(k) = min(s0 2^floor(k/K'), s1), K' = floor(K/(log2(s1/s0) + 1))),
weights by 1/(sigma~_n - sigma~_{n+1}) and uses the pseudo-Huber metric sqrt(||d||^2 + c^2) - c,
c = 0.00054 sqrt(dim), with the online network under stop-gradient as the target (iCT: no EMA teacher).
Training runs through `training.fit` (EMA of the weights for sampling, AMP, resume, DDP come from there).

Sample with `samplers.sample(model, x_T, method="consistency", steps=1 | 2 | 4, grid=...)`.
"""

from __future__ import annotations

import copy
import math
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from .checks import positive_int, real_number
from .denoiser import PREDICTIONS, Denoiser, DenoiserBase, DenoiserOutput, check_state, clip_x0
from .distillation import TensorRows, batch_tensor, teacher_device
from .samplers import METHODS
from .schedules import NoiseSchedule
from .tensors import append_dims, mean_flat, per_sample, sum_flat
from .timesteps import make_grid
from .training import TrainConfig, fit

PARAMETERISATIONS = ("edm", "euler")
METRICS = ("l2", "pseudo-huber")
_F64 = torch.float64


class ConsistencyDenoiser(DenoiserBase):
    """A consistency model f(x_t, t) as a Denoiser: predict() returns x0 = f and eps = (x_t - alpha f)/sigma.

    Args:
        net: the trained network, called as net(x_in, t, **cond).
        schedule: the NoiseSchedule of the trajectories (the teacher's for CD).
        parameterisation: "edm" (net is the raw F) or "euler" (net is read through `prediction`), see above.
        prediction: for "euler", the prediction type of `net` (eps, x0, v, score, edm).
        t_min: boundary time where f is the identity (default the schedule's t_min).
        sigma_data: sd of the "edm" scalings and of an "edm" prediction (default the schedule's, else 0.5).
        clip: (low, high) of the data, for "euler": the net's x0 estimate is clamped to it before the Euler step
            (DDPM's clipped sampling). An eps teacher whose x0 is clipped, as SR3's samplers do, then starts
            the student at its own clipped one-step map, well conditioned at t = 1 without re-reading the net.
    """

    def __init__(
        self,
        net,
        schedule: NoiseSchedule,
        parameterisation: str = "euler",
        *,
        prediction: str = "eps",
        t_min: float | None = None,
        sigma_data: float | None = None,
        clip: tuple[float, float] | list[float] | None = None,
    ):
        if parameterisation not in PARAMETERISATIONS:
            raise ValueError(f"parameterisation: expected one of {PARAMETERISATIONS}, got {parameterisation!r}")
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction: expected one of {PREDICTIONS}, got {prediction!r}")
        if not isinstance(schedule, NoiseSchedule):
            raise ValueError(f"schedule: expected a NoiseSchedule, got {type(schedule).__name__}")
        t_min = float(schedule.t_min if t_min is None else t_min)
        real_number(t_min, "t_min", low=0.0, high=1.0, low_open=True, high_open=True)
        self.net = net
        self.schedule = schedule
        self.parameterisation = parameterisation
        self.prediction = prediction
        self.t_min = t_min
        self.sigma_min_ve = schedule.sigma_ve(t_min).item()
        self.sigma_data = float(sigma_data if sigma_data is not None else getattr(schedule, "sigma_data", 0.5))
        hooks = []
        if clip is not None:
            if parameterisation != "euler":
                raise ValueError(f"clip: only the 'euler' parameterisation clips its x0, got {parameterisation!r}")
            if not (isinstance(clip, tuple | list) and len(clip) == 2):
                raise ValueError(f"clip: expected (low, high), got {clip!r}")
            clip = (float(clip[0]), float(clip[1]))
            hooks.append(clip_x0(*clip))
        self.clip = clip
        self._inner = Denoiser(net, schedule, prediction, sigma_data=self.sigma_data, x0_hooks=hooks)

    @property
    def spec(self) -> dict:
        """The keyword arguments that rebuild this model around its net (JSON-like; apps store it with the
        weights): ConsistencyDenoiser(net, schedule, **spec)."""
        spec = {"parameterisation": self.parameterisation, "prediction": self.prediction, "t_min": self.t_min,
                "sigma_data": self.sigma_data}
        if self.clip is not None:
            spec["clip"] = list(self.clip)
        return spec

    def predict(self, x_t: Tensor, t: float | Tensor, **cond) -> DenoiserOutput:
        check_state(x_t, "x_t")
        work = torch.promote_types(x_t.dtype, torch.float32)
        x = x_t.to(work)
        t64 = per_sample(t, x_t)
        if torch.isnan(t64).any() or t64.min() < 0 or t64.max() > 1:
            raise ValueError(f"t: expected values in [0, 1], got range [{t64.min().item()}, {t64.max().item()}]")
        # At or below t_min f is the identity; clamping keeps the coefficients finite there.
        tc = t64.clamp_min(self.t_min)
        a64, s64 = self.schedule.alpha(tc), self.schedule.sigma(tc)
        sig = s64 / a64
        gap = (sig - self.sigma_min_ve).clamp_min(0.0)
        if self.parameterisation == "edm":
            sd = self.sigma_data
            c_skip = sd**2 / (gap**2 + sd**2)
            c_out = gap * sd / torch.sqrt(sig**2 + sd**2)
            c_in = 1.0 / torch.sqrt(sig**2 + sd**2)
            x_ve = x / append_dims(a64, x.ndim).to(work)
            raw = self.net((x_ve * append_dims(c_in, x.ndim).to(work)).to(x_t.dtype), t64, **cond)
            if not isinstance(raw, Tensor) or raw.shape != x.shape:
                got = tuple(raw.shape) if isinstance(raw, Tensor) else type(raw).__name__
                raise ValueError(f"net output: expected shape {tuple(x.shape)}, got {got}")
            g = raw.to(work)
        else:
            c_skip = self.sigma_min_ve / sig
            c_out = 1.0 - c_skip
            x_ve = x / append_dims(a64, x.ndim).to(work)
            g = self._inner.predict(x_t, tc, **cond).x0.to(work)
        f = append_dims(c_skip, x.ndim).to(work) * x_ve + append_dims(c_out, x.ndim).to(work) * g
        a = append_dims(self.schedule.alpha(t64.clamp_min(1e-12)), x.ndim).to(work)
        s = append_dims(self.schedule.sigma(t64.clamp_min(1e-12)), x.ndim).to(work)
        eps = (x - a * f) / s
        return DenoiserOutput(f.to(x_t.dtype), eps.to(x_t.dtype))


# ----------------------------------------------------------------------------------------------------------------
# Discretisation and losses


def consistency_grid(schedule: NoiseSchedule, intervals: int, *, t_min: float | None = None,
                     rho: float = 7.0, t_max: float = 1.0) -> Tensor:
    """The N-interval training grid from t_max (default 1) down to t_min, Karras rho = 7 in sigma~ (Song et al.
    2023)."""
    intervals = positive_int(intervals, "intervals")
    lo = float(schedule.t_min if t_min is None else t_min)
    real_number(t_max, "t_max", low=lo, high=1.0, low_open=True)
    return make_grid(schedule, "karras", intervals, t_start=float(t_max), t_end=lo, rho=rho)


def lognormal_weights(schedule: NoiseSchedule, grid: Tensor, p_mean: float = -1.1, p_std: float = 2.0) -> Tensor:
    """iCT's probability of each interval n (grid[n] -> grid[n+1]): the N(p_mean, p_std^2) mass of log sigma~
    between the interval's ends (Song & Dhariwal 2023, eq. 10), normalised. Returns (N,) float64."""
    real_number(p_std, "p_std", low=0.0, low_open=True)
    log_sig = torch.log(schedule.sigma_ve(grid.to(_F64)))
    cdf = torch.erf((log_sig - p_mean) / (math.sqrt(2.0) * p_std))
    w = (cdf[:-1] - cdf[1:]).clamp_min(0.0)
    if not w.sum() > 0:
        raise ValueError(f"p_mean, p_std: no probability mass on the grid's sigma~ range, got {p_mean}, {p_std}")
    return w / w.sum()


def ict_intervals(step: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """iCT's discretisation curriculum N(k) = min(s0 2^floor(k / K'), s1), K' = floor(K / (log2 floor(s1/s0) + 1))
    (Song & Dhariwal 2023, eq. 9; counted here in intervals)."""
    k_prime = max(1, math.floor(total_steps / (math.log2(s1 // s0) + 1)))
    return min(s0 * 2 ** (step // k_prime), s1)


def grid_pairs(schedule: NoiseSchedule, grid: Tensor, batch: int, *, random_shift: bool = False,
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """(t_n, t_{n+1}) for `batch` samples, n uniform over the intervals of `grid` (noise end first). Both (B,)
    float64.

    random_shift: shift the whole grid, per sample, by a uniform fraction w of one interval in log-SNR,
    lambda(n + w) = lerp(lambda_n, lambda_{n+1}, w), with the end clamped at the grid's last time. The pair keeps
    its interval's length but covers every time in [t_N, t_0], not only the N + 1 grid times, while a fraction
    1/N of pairs still end on the boundary t_N. A consistency function trained on fixed grid times only is
    poor between them, where multistep sampling re-noises to (e.g. t = 1/4 on the quadratic grid)."""
    n = torch.randint(0, len(grid) - 1, (batch,), generator=generator)
    g = grid.to(_F64).cpu()
    if not random_shift:
        return g[n], g[n + 1]
    lam = schedule.log_snr(g)
    lam = torch.cat([lam, lam[-1:]])  # lambda_{N+1} := lambda_N: the last shifted pair ends on the boundary
    # w < 1 keeps t_n strictly above t_{n+1} in the last interval (the teacher steps from t_n to t_{n+1}).
    w = torch.rand(batch, generator=generator, dtype=_F64) * (1.0 - 1e-3)
    lam_hi, lam_lo = torch.lerp(lam[n], lam[n + 1], w), torch.lerp(lam[n + 1], lam[n + 2], w)
    t_hi, t_lo = schedule.t_from_log_snr(lam_hi), schedule.t_from_log_snr(lam_lo)
    t_lo = torch.where(n == len(grid) - 2, g[-1], t_lo)
    return t_hi.clamp(max=float(g[0])), t_lo


def _distance(a: Tensor, b: Tensor, metric: str, huber_c: float | None, mask: Tensor | None = None) -> Tensor:
    """Per-sample d(a, b); with `mask` (broadcastable to a, 1 = scored) only the masked entries count: L2 is their
    mean, pseudo-Huber's dimension and squared norm are theirs."""
    sq = (a - b) ** 2
    if mask is None:
        if metric == "l2":
            return mean_flat(sq)
        c = 0.00054 * math.sqrt(a[0].numel()) if huber_c is None else huber_c
        return torch.sqrt(sum_flat(sq) + c**2) - c
    m = mask.to(sq.dtype).expand_as(sq)
    count = sum_flat(m)
    if metric == "l2":
        return sum_flat(sq * m) / count.clamp_min(1.0)
    c = 0.00054 * torch.sqrt(count) if huber_c is None else torch.full_like(count, huber_c)
    return torch.sqrt(sum_flat(sq * m) + c**2) - c


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")


def _noised(schedule: NoiseSchedule, x0: Tensor, t: Tensor, z: Tensor) -> Tensor:
    a = append_dims(schedule.alpha(t), x0.ndim).to(x0.dtype)
    s = append_dims(schedule.sigma(t), x0.ndim).to(x0.dtype)
    return a * x0 + s * z


def _ab(schedule: NoiseSchedule, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
    a = append_dims(schedule.alpha(t), like.ndim).to(like.dtype)
    return a, append_dims(schedule.sigma(t), like.ndim).to(like.dtype)


def _vectorised_step(teacher: DenoiserBase, x: Tensor, t: Tensor, s: Tensor, solver: str, **cond) -> Tensor:
    """One DDIM (Euler) or Heun step t -> s > 0 with per-sample times, in VE coordinates: the same arithmetic
    as samplers.ddim / samplers.heun (without churn) for a whole batch of different times at once."""
    sched = teacher.schedule
    a_t, s_t = _ab(sched, t, x)
    a_s, s_s = _ab(sched, s, x)
    eps = teacher.eps(x, t, **cond)
    dsig = s_s / a_s - s_t / a_t
    x_ve = x / a_t + dsig * eps
    if solver == "heun":
        eps_s = teacher.eps(x_ve * a_s, s, **cond)
        x_ve = x / a_t + dsig * 0.5 * (eps + eps_s)
    return x_ve * a_s


@torch.no_grad()
def teacher_step(teacher: DenoiserBase, x: Tensor, t: Tensor, s: Tensor, solver: str = "heun",
                 substeps: int = 1, **cond) -> Tensor:
    """Solve the teacher's PF-ODE from per-sample times t to s (0 < s < t) with core sampler `solver` over
    `substeps` log-SNR-uniform sub-steps. Any deterministic sampler of samplers.METHODS works (ddim, heun,
    dpm*, unipc*): samples sharing (t, s) go through it together; "ddim" and "heun" run vectorised over
    per-sample times instead (the same arithmetic). x: (B, ...), t, s: (B,) float64."""
    if solver not in METHODS or solver in ("ddpm", "euler-maruyama", "pc", "consistency"):
        raise ValueError(f"solver: expected a deterministic core sampler (ddim, heun, dpm*, unipc*), got {solver!r}")
    substeps = positive_int(substeps, "substeps")
    t, s = t.to(_F64), s.to(_F64)
    if not bool((s > 0).all() & (s < t).all()):
        raise ValueError("t, s: expected 0 < s < t for every sample (the teacher step ends before the data end)")
    sched = teacher.schedule
    # Sub-step times, log-SNR uniform: (substeps + 1, B), ends pinned.
    frac = torch.linspace(0.0, 1.0, substeps + 1, dtype=_F64, device=t.device)[:, None]
    lam_t, lam_s = sched.log_snr(t), sched.log_snr(s)
    times = sched.t_from_log_snr(lam_t + frac * (lam_s - lam_t)).to(t.device)
    times[0], times[-1] = t, s
    if solver in ("ddim", "heun"):
        for k in range(substeps):
            x = _vectorised_step(teacher, x, times[k], times[k + 1], solver, **cond)
        return x
    keys, inverse = torch.unique(times.T.cpu(), dim=0, return_inverse=True)
    out = torch.empty_like(x)
    inverse = inverse.to(x.device)
    for j in range(keys.shape[0]):
        idx = (inverse == j).nonzero(as_tuple=True)[0]
        sub_cond = {k: (v[idx] if isinstance(v, Tensor) and v.shape[:1] == x.shape[:1] else v) for k, v in cond.items()}
        out[idx] = METHODS[solver](teacher, x[idx], keys[j], **sub_cond)
    return out


def consistency_distillation_loss(
    student: DenoiserBase,
    teacher: DenoiserBase,
    x0: Tensor,
    grid: Tensor,
    *,
    solver: str = "heun",
    substeps: int = 1,
    metric: str = "l2",
    huber_c: float | None = None,
    generator: torch.Generator | None = None,
    reduce: bool = True,
    target: DenoiserBase | None = None,
    random_shift: bool = False,
    mask: Tensor | None = None,
    **cond,
) -> Tensor:
    """d(f(x_{t_n}, t_n), sg[f^-(x^_{t_{n+1}}, t_{n+1})]) with x^ one teacher ODE step (Song et al. 2023,
    Algorithm 2); n uniform over the grid's intervals. target: f^-, the EMA target network of the paper
    (None: the online student under stop-gradient, the mu = 0 case). random_shift: see `grid_pairs`.
    mask: which entries the distance scores (broadcastable to x0; e.g. CSDI's hidden targets), default all.
    cond: the conditioning kwargs of teacher and student (the same for both)."""
    check_state(x0, "x0")
    _check_metric(metric)
    if mask is not None and (not isinstance(mask, Tensor) or mask.ndim != x0.ndim):
        got = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask: expected a tensor broadcastable to x0 {tuple(x0.shape)}, got {got}")
    if target is not None and not isinstance(target, DenoiserBase):
        raise ValueError(f"target: expected a Denoiser or None, got {type(target).__name__}")
    t_hi, t_lo = grid_pairs(teacher.schedule, grid, x0.shape[0], random_shift=random_shift, generator=generator)
    t_hi, t_lo = t_hi.to(x0.device), t_lo.to(x0.device)
    z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    x_hi = _noised(teacher.schedule, x0, t_hi, z)
    x_lo = teacher_step(teacher, x_hi, t_hi, t_lo, solver, substeps, **cond)
    with torch.no_grad():
        goal = (student if target is None else target).predict(x_lo, t_lo, **cond).x0
    err = _distance(student.predict(x_hi, t_hi, **cond).x0, goal, metric, huber_c, mask)
    return err.mean() if reduce else err


def consistency_training_loss(
    model: DenoiserBase,
    x0: Tensor,
    grid: Tensor,
    *,
    weights: Tensor | None = None,
    metric: str = "pseudo-huber",
    huber_c: float | None = None,
    generator: torch.Generator | None = None,
    reduce: bool = True,
    **cond,
) -> Tensor:
    """iCT loss: lambda_n d(f(x0 + sigma~_n z), sg[f(x0 + sigma~_{n+1} z)]) in VE terms (one z, no teacher),
    lambda_n = 1/(sigma~_n - sigma~_{n+1}), n drawn with `weights` (default `lognormal_weights`)."""
    check_state(x0, "x0")
    _check_metric(metric)
    sched = model.schedule
    probs = lognormal_weights(sched, grid) if weights is None else weights
    n = torch.multinomial(probs.to(torch.float64), x0.shape[0], replacement=True, generator=generator)
    t_hi, t_lo = grid[n], grid[n + 1]
    sig = sched.sigma_ve(grid.to(_F64))
    lam = (1.0 / (sig[n] - sig[n + 1])).to(x0.device)
    z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    t_hi, t_lo = t_hi.to(x0.device), t_lo.to(x0.device)
    with torch.no_grad():
        target = model.predict(_noised(sched, x0, t_lo, z), t_lo, **cond).x0
    err = _distance(model.predict(_noised(sched, x0, t_hi, z), t_hi, **cond).x0, target, metric, huber_c)
    err = err * lam.to(err.dtype)
    return err.mean() if reduce else err


# ----------------------------------------------------------------------------------------------------------------
# Training through core fit


def _default_config(device: str, steps: int = 2000) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=128, lr=1e-4, ema_decay=0.999, progress=False, ckpt_every=steps,
                       device=device)


def _final_net(result) -> nn.Module:
    net = result.ema_model if result.ema_model is not None else result.model
    return net.eval()


def consistency_distillation(
    teacher: DenoiserBase,
    data: Tensor | Dataset,
    *,
    student_net: nn.Module | None = None,
    parameterisation: str = "euler",
    prediction: str | None = None,
    intervals: int = 18,
    solver: str = "heun",
    substeps: int = 1,
    metric: str = "l2",
    huber_c: float | None = None,
    t_min: float | None = None,
    sigma_data: float | None = None,
    clip: tuple[float, float] | None = None,
    t_max: float = 1.0,
    target_ema: float = 0.0,
    random_shift: bool = True,
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
    batch_fn: Callable | None = None,
    resume: bool | None = None,
) -> ConsistencyDenoiser:
    """Distil `teacher` into a consistency model (Song et al. 2023, Algorithm 2) through `training.fit`.

    student_net: None copies the teacher's network (with parameterisation "euler", the paper's initialisation).
    prediction: for "euler", how the student's net is read; default the teacher's prediction type.
    clip: the student's x0 clamp (`ConsistencyDenoiser`). t_max: the highest time trained (the grid's start; below
    1, multistep sampling should re-noise to at most t_max after its first step).
    intervals: N of the Karras grid from 1 to t_min (`consistency_grid`); solver/substeps: the teacher's ODE
    step between adjacent grid times (`teacher_step`). target_ema: mu of the target network f^- (Song et al.
    2023 use 0.95 on CIFAR-10; 0 = the online student under stop-gradient); the target is saved in every
    checkpoint, so a resumed run continues exactly. random_shift: train on randomly shifted grids, so f is right
    at every time, not only the N + 1 grid times (`grid_pairs`; False is the paper's fixed grid). For an eps
    teacher on a VP schedule, prediction="v" reads the copied net well conditioned at t = 1, where eps -> x0
    multiplies the net's errors by sigma/alpha (152 on LinearVP): on the two-moons benchmark it takes the
    1-step W2 from 0.255 to 0.153 (benchmarks/core_consistency.py). config: default 2000 steps of batch 128, lr 1e-4,
    EMA 0.999 (the sampling weights, not the target). batch_fn: how a conditional model reads a batch of `data`,
    batch -> x0, or (x0, cond), or (x0, cond, mask): cond the kwargs teacher and student are called with (SR3's
    lr_up, CSDI's cond_mask and interp), mask the entries the loss scores (`consistency_distillation_loss`);
    default: the batch is x0 (its first tensor). resume: as in `fit` (None: continue from a checkpoint in out_dir
    when there is one). Returns the student (EMA weights when EMA is on), in eval mode.
    """
    if not isinstance(teacher, DenoiserBase):
        raise ValueError(f"teacher: expected a Denoiser, got {type(teacher).__name__}")
    _check_metric(metric)
    if solver not in METHODS:
        raise ValueError(f"solver: expected one of {sorted(METHODS)}, got {solver!r}")
    target_ema = real_number(target_ema, "target_ema", low=0.0, high=1.0, high_open=True)
    prediction = prediction or getattr(teacher, "prediction", "x0")
    if student_net is None:
        if not isinstance(getattr(teacher, "net", None), nn.Module):
            raise ValueError("student_net: None copies the teacher's network, but the teacher's net is no nn.Module")
        student_net = copy.deepcopy(teacher.net)
    if not isinstance(student_net, nn.Module):
        raise ValueError(f"student_net: expected an nn.Module, got {type(student_net).__name__}")
    schedule = teacher.schedule
    grid = consistency_grid(schedule, intervals, t_min=t_min, t_max=t_max)
    build = partial(ConsistencyDenoiser, schedule=schedule, parameterisation=parameterisation,
                    prediction=prediction, t_min=t_min, sigma_data=sigma_data, clip=clip)
    build(student_net)  # validate the arguments before training
    config = config or _default_config(teacher_device(teacher))
    dataset = TensorRows(data) if isinstance(data, Tensor) else data
    teacher_net = getattr(teacher, "net", None)
    teacher_mode = teacher_net.training if isinstance(teacher_net, nn.Module) else None
    if teacher_mode is not None:
        teacher_net.eval()

    grad_accum = config.grad_accum

    def loss_fn(model: nn.Module, batch) -> Tensor:
        target = None
        if target_ema > 0:
            core = getattr(model, "module", model)  # DDP wraps the module
            core.track(target_ema, grad_accum)
            target = build(core.target)
        x0, cond, mask = _read_batch(batch, batch_fn)
        return consistency_distillation_loss(build(model), teacher, x0, grid, solver=solver, substeps=substeps,
                                             metric=metric, huber_c=huber_c, target=target,
                                             random_shift=random_shift, mask=mask, **cond)

    trained = _WithTarget(student_net) if target_ema > 0 else student_net
    try:
        with tempfile.TemporaryDirectory(prefix="cd-") as tmp:
            result = fit(trained, loss_fn, dataset, config, Path(tmp) if out_dir is None else out_dir, resume=resume)
    finally:
        if teacher_mode is not None:
            teacher_net.train(teacher_mode)
    final = _final_net(result)
    if target_ema > 0:
        final = (final.module.net if hasattr(final, "module") else final.net).eval()
    return build(final)


def _read_batch(batch, batch_fn: Callable | None) -> tuple[Tensor, dict, Tensor | None]:
    """(x0, cond, mask) of one batch through `batch_fn` (see `consistency_distillation`)."""
    if batch_fn is None:
        return batch_tensor(batch), {}, None
    out = batch_fn(batch)
    if isinstance(out, Tensor):
        return out, {}, None
    if isinstance(out, tuple) and len(out) in (2, 3) and isinstance(out[0], Tensor) and isinstance(out[1], dict):
        return out[0], out[1], (out[2] if len(out) == 3 else None)
    raise ValueError(
        f"batch_fn: expected it to return x0, (x0, cond dict) or (x0, cond dict, mask), got {type(out).__name__}"
    )


class _WithTarget(nn.Module):
    """The student plus its EMA target network f^- (Song et al. 2023, Algorithm 2: theta^- <- mu theta^- +
    (1 - mu) theta after each optimiser step). The target's parameters need no gradient, so fit's optimiser
    skips them, and they live in the module's state, so checkpoints and resume carry them."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.target = copy.deepcopy(net).requires_grad_(False).eval()
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

    def forward(self, *args, **kwargs):
        return self.net(*args, **kwargs)

    @torch.no_grad()
    def track(self, mu: float, grad_accum: int = 1) -> None:
        """Move the target towards the current weights once per optimiser step (on its first micro-batch)."""
        if int(self.calls) % grad_accum == 0 and int(self.calls) > 0:
            online = [p.detach() for p in self.net.parameters()]
            torch._foreach_lerp_(list(self.target.parameters()), online, 1.0 - mu)
            for b_t, b in zip(self.target.buffers(), self.net.buffers(), strict=True):
                b_t.copy_(b)
        self.calls += 1


class _Curriculum(nn.Module):
    """The trained network plus a counter of loss evaluations, so the iCT curriculum resumes exactly (the counter
    is a buffer: it is saved in every checkpoint with the weights)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

    def forward(self, *args, **kwargs):
        return self.net(*args, **kwargs)


def consistency_training(
    net: nn.Module,
    data: Tensor | Dataset,
    schedule: NoiseSchedule,
    *,
    parameterisation: str = "edm",
    prediction: str = "eps",
    s0: int = 10,
    s1: int = 1280,
    p_mean: float = -1.1,
    p_std: float = 2.0,
    metric: str = "pseudo-huber",
    huber_c: float | None = None,
    t_min: float | None = None,
    sigma_data: float | None = None,
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
) -> ConsistencyDenoiser:
    """Train a consistency model from data alone with the iCT recipe (Song & Dhariwal 2023) through `fit`.

    s0, s1: the curriculum's first and last interval counts; p_mean, p_std: the lognormal interval weights
    (in log sigma~); metric/huber_c: pseudo-Huber by default with c = 0.00054 sqrt(dim). The target is the
    online network under stop-gradient. Returns the model (EMA weights when EMA is on), in eval mode.
    """
    if not isinstance(net, nn.Module):
        raise ValueError(f"net: expected an nn.Module, got {type(net).__name__}")
    _check_metric(metric)
    s0, s1 = positive_int(s0, "s0"), positive_int(s1, "s1")
    if s1 < s0:
        raise ValueError(f"s1: expected s1 >= s0 = {s0}, got {s1}")
    build = partial(ConsistencyDenoiser, schedule=schedule, parameterisation=parameterisation,
                    prediction=prediction, t_min=t_min, sigma_data=sigma_data)
    build(net)
    config = config or _default_config("cpu")
    dataset = TensorRows(data) if isinstance(data, Tensor) else data
    wrapped = _Curriculum(net)
    grids: dict[int, tuple[Tensor, Tensor]] = {}

    def loss_fn(model: nn.Module, batch) -> Tensor:
        core = getattr(model, "module", model)  # DDP wraps the module
        step = int(core.calls) // config.grad_accum
        core.calls += 1
        n = ict_intervals(step, config.steps, s0, s1)
        if n not in grids:
            g = consistency_grid(schedule, n, t_min=t_min)
            grids[n] = (g, lognormal_weights(schedule, g, p_mean, p_std))
        g, w = grids[n]
        return consistency_training_loss(build(model), batch_tensor(batch), g, weights=w, metric=metric,
                                         huber_c=huber_c)

    with tempfile.TemporaryDirectory(prefix="ct-") as tmp:
        result = fit(wrapped, loss_fn, dataset, config, Path(tmp) if out_dir is None else out_dir)
    final = _final_net(result)
    inner = final.module.net if hasattr(final, "module") else final.net
    return build(inner.eval())


__all__ = [
    "METRICS",
    "PARAMETERISATIONS",
    "ConsistencyDenoiser",
    "consistency_distillation",
    "consistency_distillation_loss",
    "consistency_grid",
    "consistency_training",
    "consistency_training_loss",
    "grid_pairs",
    "ict_intervals",
    "lognormal_weights",
    "teacher_step",
]
