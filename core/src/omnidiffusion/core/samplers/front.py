"""The one front door: `sample(denoiser, x_T_or_shape, method=..., steps=..., grid=...)`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..denoiser import DenoiserBase, check_state
from ..processes import prior_std
from ..tensors import randn
from ..timesteps import check_grid, make_grid
from .common import Callback
from .consistency import consistency
from .ddpm import ddim, ddpm
from .dpm_solver import dpm_solver, dpm_solver_pp
from .heun import heun
from .noise import Noise, resolve_noise
from .sde import euler_maruyama, predictor_corrector
from .unipc import unipc

METHODS: dict[str, Callable[..., Tensor]] = {
    "ddpm": ddpm,
    "ddim": ddim,
    "euler-maruyama": euler_maruyama,
    "pc": predictor_corrector,
    "heun": heun,
    "dpm1": partial(dpm_solver, order=1),
    "dpm2": partial(dpm_solver, order=2),
    "dpm3": partial(dpm_solver, order=3),
    "dpm++2m": partial(dpm_solver_pp, order=2),
    "dpm++3m": partial(dpm_solver_pp, order=3),
    "unipc": partial(unipc, order=2),
    "unipc3": partial(unipc, order=3),
    "consistency": consistency,
}

# Sampler options each method accepts; anything else passed by name is refused rather than ignored.
_OPTIONS = {
    "ddpm": {"variance", "eps_sq_mean", "x0_var_max", "noise"},
    "ddim": {"eta", "noise"},
    "euler-maruyama": {"noise"},
    "pc": {"snr", "n_corrector", "predictor", "noise"},
    "heun": {"s_churn", "s_tmin", "s_tmax", "s_noise"},
    "unipc": {"variant", "corrector"},
    "unipc3": {"variant", "corrector"},
    "consistency": {"noise"},
}


def nfe(method: str, steps: int, ends_at_data: bool = True) -> int:
    """Network evaluations of `method` over `steps` intervals (the jump to t = 0 costs one)."""
    last = 1 if ends_at_data else 0
    inner = steps - last
    per = {"heun": 2, "dpm2": 2, "dpm3": 3}.get(method, 1)
    if method == "pc":
        per = 2  # one corrector and one predictor evaluation per step (n_corrector = 1)
    return inner * per + last * (2 if method == "pc" else 1)


def sample(
    denoiser: DenoiserBase,
    x_T: Tensor | Sequence[int],
    method: str = "dpm++2m",
    steps: int = 20,
    grid: str | Tensor | Sequence[float] = "time-uniform",
    *,
    t_start: float | None = None,
    t_end: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    options: dict | None = None,
    eta: float | None = None,
    variance: str | None = None,
    noise: str | Noise | None = None,
    **cond,
) -> Tensor:
    """Sample from `denoiser` with one of METHODS over a grid of `steps` intervals.

    Args:
        x_T: the state at `t_start`, or a shape; a shape draws N(0, s^2 I) with s = 1 on VP schedules and
            s = sigma(t_start) otherwise (in `dtype` on `device`, from `generator`).
        grid: a name from timesteps.GRIDS, or explicit times (a tensor, numpy array, list or tuple, or a string
            of comma-separated times as a config value "0.6,0.4,0"; strictly decreasing, noise end first; then
            `steps` and `t_start` are ignored). For "consistency" the
            interior times are where the model re-noises: "quadratic" puts the 2-step one at t = 1/4.
        t_start: start from a partially noised input at this time (SDEdit, DiffPure, AnoDDPM); x_T must then be
            the noised state at t_start (see processes.q_sample). Default 1.
        t_end: last grid time; 0 (default) is the data end, reached by a final denoising step.
        dtype: of a state drawn from a shape. A given x_T keeps its dtype: float16/bfloat16 states stay in it
            (step coefficients are float64 Python scalars; the Denoiser computes in at least float32).
        options: further sampler options by name (ddpm: variance, eps_sq_mean, x0_var_max; ddim: eta;
            pc: snr, n_corrector, predictor; heun: s_churn, s_tmin, s_tmax, s_noise; unipc/unipc3: variant
            "bh2" | "bh1", corrector). `eta` and `variance` may also be given directly.
        noise: the stochastic samplers' per-step draws (ddpm, ddim with eta > 0, euler-maruyama, pc's
            predictor, consistency): None/"gaussian" i.i.d. from `generator`; "brownian" a seeded
            `samplers.noise.BrownianTree` (seed drawn from `generator` after x_T), so one seed gives converging
            samples as `steps` grows; or a callable noise(like, t, s).
        **cond: passed to the network on every call.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {sorted(METHODS)}, got {method!r}")
    opts = dict(options or {})
    if eta is not None:
        opts["eta"] = eta
    if variance is not None:
        opts["variance"] = variance
    if noise is not None:
        opts["noise"] = noise
    unknown = set(opts) - _OPTIONS.get(method, set())
    if unknown:
        allowed = sorted(_OPTIONS.get(method, set())) or "none"
        raise ValueError(f"options: {sorted(unknown)} do not apply to method {method!r} (it takes: {allowed})")

    start = 1.0 if t_start is None else float(t_start)
    if isinstance(grid, str) and "," in grid:  # explicit times written as text (a config value "0.6,0.4,0")
        try:
            grid = [float(v) for v in grid.split(",")]
        except ValueError:
            raise ValueError(f"grid: expected a grid name or comma-separated times, got {grid!r}") from None
    if isinstance(grid, Tensor):
        times = check_grid(grid.detach().to(torch.float64).cpu())
    elif not isinstance(grid, str):
        try:
            times = torch.as_tensor(np.asarray(grid, dtype=np.float64))
        except (TypeError, ValueError):
            raise ValueError(f"grid: expected a grid name or a sequence of times, got {grid!r}") from None
        times = check_grid(times)
    else:
        if not 0.0 < start <= 1.0:
            raise ValueError(f"t_start: expected a value in (0, 1], got {t_start}")
        times = make_grid(denoiser.schedule, grid, steps, t_start=start, t_end=t_end)

    if isinstance(x_T, Tensor):
        x = x_T
        check_state(x, "x_T")
    else:
        shape = tuple(int(d) for d in x_T)
        if not shape or min(shape) < 1:
            raise ValueError(f"x_T: expected a tensor or a non-empty shape of positive sizes, got {x_T!r}")
        t0 = times[0].item()
        scale = prior_std(denoiser.schedule, t0)
        x = scale * randn(shape, generator, device=device, dtype=dtype or torch.get_default_dtype())

    if "noise" in opts:
        opts["noise"] = resolve_noise(opts["noise"], generator)

    bar = None
    if progress:
        bar = tqdm(total=len(times) - 1, desc=f"sampling ({method})", leave=False)
        user_cb = callback

        def callback(i, t, x_, x0):  # noqa: F811 - wraps the user's callback with the progress bar
            bar.update(1)
            if user_cb is not None:
                user_cb(i, t, x_, x0)

    try:
        with torch.no_grad():
            out = METHODS[method](denoiser, x, times, generator=generator, callback=callback, **opts, **cond)
    finally:
        if bar is not None:
            bar.close()
    if not torch.isfinite(out).all():
        bad = (~torch.isfinite(out)).sum().item()
        raise FloatingPointError(
            f"sample: {bad} non-finite values after {method} with {len(times) - 1} steps "
            "(check the schedule end points and the prediction type; eps-prediction is undefined at alpha = 0)"
        )
    return out


__all__ = ["METHODS", "nfe", "sample"]
