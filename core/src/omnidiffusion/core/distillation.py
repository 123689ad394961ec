"""Progressive distillation (Salimans & Ho 2022, arXiv 2202.00512, Algorithm 2) for any Denoiser.

A student sampled with N deterministic DDIM steps learns to land, in ONE step t -> s, where TWO teacher DDIM
steps t -> m -> s land (m is the teacher grid time between t and s). The student's x0 target is

    x~ = (z_teacher - (sigma_s/sigma_t) z_t) / (alpha_s - (sigma_s/sigma_t) alpha_t),

the only x0_hat for which the DDIM step x_s = alpha_s x0_hat + sigma_s (z_t - alpha_t x0_hat)/sigma_t equals
z_teacher (on the last interval, s = 0, it is the teacher's z at the data end). The loss is the "truncated SNR"
weighting max(SNR_t, 1) ||x0_hat - x~||^2 (paper sec. 4; `snr_trunc` in the authors' dpm.py). After a round
the student becomes the teacher and N halves.

Grids: the student trains at, and must be sampled on, the times of `make_grid(schedule, grid, N)`; the teacher
steps over `make_grid(schedule, grid, 2N)`. These must nest (every other teacher time is a student time), which
holds for "time-uniform" and "quadratic" for any N and for "trailing" when 2N divides T; "logsnr" and "karras"
pin t_min before the jump to t = 0 and do not nest, so they are refused. Sample a student with
`samplers.sample(student, x_T, "ddim", steps=N, grid=grid)`.

Training runs through `training.fit`, one call per round (checkpoints, EMA, AMP, DDP come from there).
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from .denoiser import PREDICTIONS, Denoiser, DenoiserBase, check_state
from .schedules import NoiseSchedule
from .tensors import append_dims, mean_flat
from .timesteps import make_grid
from .training import TrainConfig, fit

_F64 = torch.float64


def distillation_grids(
    schedule: NoiseSchedule, n_student_steps: int, grid: str = "time-uniform"
) -> tuple[Tensor, Tensor]:
    """(student grid of N + 1 times, teacher grid of 2N + 1 times), both from `timesteps.make_grid`.

    Raises ValueError unless every other teacher time is the student time (the grids nest).
    """
    if isinstance(n_student_steps, bool) or not isinstance(n_student_steps, int) or n_student_steps < 1:
        raise ValueError(f"n_student_steps: expected an integer >= 1, got {n_student_steps!r}")
    if not isinstance(grid, str):
        raise ValueError(f"grid: expected a grid name (the sampler rebuilds it), got {type(grid).__name__}")
    student = make_grid(schedule, grid, n_student_steps)
    teacher = make_grid(schedule, grid, 2 * n_student_steps)
    gap = (teacher[::2] - student).abs().max().item()
    if gap > 1e-12:
        raise ValueError(
            f"grid: {grid!r} with {n_student_steps} student and {2 * n_student_steps} teacher steps does not nest "
            f"(every other teacher time must be a student time; max gap {gap:.3g}); use 'time-uniform' or 'quadratic'"
        )
    return student, teacher


def _alpha_sigma(schedule: NoiseSchedule, t: Tensor) -> tuple[Tensor, Tensor]:
    """(alpha, sigma) at float64 times, with t = 0 the data end (1, 0) as the samplers treat it."""
    t = t.to(_F64)
    data_end = t == 0
    safe = torch.where(data_end, torch.ones_like(t), t)
    a = torch.where(data_end, torch.ones_like(t), schedule.alpha(safe))
    s = torch.where(data_end, torch.zeros_like(t), schedule.sigma(safe))
    return a, s


def _ddim_step(teacher: DenoiserBase, z: Tensor, t: Tensor, s: Tensor, **cond) -> Tensor:
    """One deterministic DDIM step t -> s per sample: alpha_s x0_hat + sigma_s eps_hat (Song et al. 2021, eq. 12)."""
    out = teacher.predict(z, t, **cond)
    a_s, s_s = _alpha_sigma(teacher.schedule, s)
    return append_dims(a_s, z.ndim).to(z.dtype) * out.x0 + append_dims(s_s, z.ndim).to(z.dtype) * out.eps


@torch.no_grad()
def distillation_target(
    teacher: DenoiserBase, z_t: Tensor, t: Tensor, t_mid: Tensor, s: Tensor, **cond
) -> tuple[Tensor, Tensor]:
    """(x~, z_teacher): two teacher DDIM steps t -> t_mid -> s from z_t, and the x0 that one DDIM step t -> s
    needs to land on z_teacher (Salimans & Ho 2022, Algorithm 2). t, t_mid, s: (B,) with t > t_mid > s >= 0."""
    check_state(z_t, "z_t")
    for name, v in (("t", t), ("t_mid", t_mid), ("s", s)):
        if not isinstance(v, Tensor) or v.shape != (z_t.shape[0],):
            raise ValueError(f"{name}: expected a tensor of shape ({z_t.shape[0]},), got {getattr(v, 'shape', v)}")
    if not bool(((t > t_mid) & (t_mid > s) & (s >= 0) & (t <= 1)).all()):
        raise ValueError("t, t_mid, s: expected 1 >= t > t_mid > s >= 0 for every sample")
    z_mid = _ddim_step(teacher, z_t, t, t_mid, **cond)
    z_teacher = _ddim_step(teacher, z_mid, t_mid, s, **cond)
    a_t, s_t = _alpha_sigma(teacher.schedule, t)
    a_s, s_s = _alpha_sigma(teacher.schedule, s)
    ratio = s_s / s_t
    # alpha_s - ratio alpha_t = sigma_s (e^{lambda_s} - e^{lambda_t}) > 0 whenever s < t.
    denom = append_dims(a_s - ratio * a_t, z_t.ndim).to(z_t.dtype)
    target = (z_teacher - append_dims(ratio, z_t.ndim).to(z_t.dtype) * z_t) / denom
    return target, z_teacher


def distillation_loss(
    teacher: DenoiserBase,
    student: DenoiserBase,
    x0: Tensor,
    n_student_steps: int,
    *,
    grid: str = "time-uniform",
    generator: torch.Generator | None = None,
    reduce: bool = True,
    **cond,
) -> Tensor:
    """max(SNR_t, 1) ||x0_hat_student(z_t) - x~||^2 (mean over non-batch dims) at a student grid time t drawn
    uniformly per sample, z_t = alpha_t x0 + sigma_t eps (Salimans & Ho 2022, Algorithm 2, truncated SNR)."""
    check_state(x0, "x0")
    if student.schedule is not teacher.schedule and repr(student.schedule) != repr(teacher.schedule):
        raise ValueError(
            f"student: expected the teacher's schedule {teacher.schedule!r}, got {student.schedule!r}"
        )
    g_student, g_teacher = distillation_grids(teacher.schedule, n_student_steps, grid)
    n = x0.shape[0]
    i = torch.randint(0, n_student_steps, (n,), generator=generator)
    t, t_mid, s = g_student[i], g_teacher[2 * i + 1], g_student[i + 1]
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    t, t_mid, s = t.to(x0.device), t_mid.to(x0.device), s.to(x0.device)
    a_t, s_t = _alpha_sigma(teacher.schedule, t)
    z_t = append_dims(a_t, x0.ndim).to(x0.dtype) * x0 + append_dims(s_t, x0.ndim).to(x0.dtype) * noise
    target, _ = distillation_target(teacher, z_t, t, t_mid, s, **cond)
    x0_hat = student.predict(z_t, t, **cond).x0
    weight = torch.clamp((a_t / s_t) ** 2, min=1.0)
    err = mean_flat((x0_hat - target.to(x0_hat.dtype)) ** 2) * weight.to(x0_hat.dtype)
    return err.mean() if reduce else err


class TensorRows(Dataset):
    """A tensor as a map-style dataset of its rows (default collation stacks them back into a batch)."""

    def __init__(self, x: Tensor):
        self.x = x

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        return self.x[i]

    def __getitems__(self, idx: list[int]) -> list[Tensor]:
        # DataLoader's batched fetch: one indexing op instead of one Python call per row.
        return list(self.x[idx].unbind(0))


def batch_tensor(batch) -> Tensor:
    """The data tensor of a batch: the batch itself, or the first item of an (x, label, ...) batch."""
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, list | tuple) and batch and isinstance(batch[0], Tensor):
        return batch[0]  # (x, label, ...) datasets: distil the data, ignore the rest
    raise ValueError(f"data: expected batches that are a Tensor or start with one, got {type(batch).__name__}")


def teacher_device(teacher: DenoiserBase) -> str:
    """The device of a denoiser's network parameters (cpu when it has none), to train a student beside it."""
    net = getattr(teacher, "net", None)
    if isinstance(net, nn.Module):
        for p in net.parameters():
            return str(p.device)
    return "cpu"


def distill_round(
    teacher: DenoiserBase,
    student_net: nn.Module | None,
    data: Tensor | Dataset,
    n_student_steps: int,
    *,
    prediction: str | None = None,
    grid: str = "time-uniform",
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
) -> Denoiser:
    """Train `student_net` to take `n_student_steps` DDIM steps where `teacher` takes twice as many; returns the
    student as a Denoiser on the teacher's schedule (EMA weights when config.ema_decay is set), in eval mode.

    student_net: any network called as net(x_t, t); None copies the teacher's network (the paper's initialisation).
    prediction: the student's prediction type; default the teacher's (x0 when the teacher has none).
    config: `training.TrainConfig`; default 2000 steps of batch 128, lr 1e-4, no EMA, on the teacher's device.
    out_dir: where `fit` keeps checkpoints and the final weights; None uses a temporary directory.
    """
    if not isinstance(teacher, DenoiserBase):
        raise ValueError(f"teacher: expected a Denoiser, got {type(teacher).__name__}")
    distillation_grids(teacher.schedule, n_student_steps, grid)  # validate before training
    if prediction is None:
        prediction = getattr(teacher, "prediction", "x0")
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction: expected one of {PREDICTIONS}, got {prediction!r}")
    if student_net is None:
        if not isinstance(getattr(teacher, "net", None), nn.Module):
            raise ValueError("student_net: None copies the teacher's network, but the teacher's net is no nn.Module")
        student_net = copy.deepcopy(teacher.net)
    if not isinstance(student_net, nn.Module):
        raise ValueError(f"student_net: expected an nn.Module, got {type(student_net).__name__}")
    if config is None:
        config = TrainConfig(steps=2000, batch_size=128, lr=1e-4, ema_decay=None, progress=False,
                             ckpt_every=2000, device=teacher_device(teacher))
    dataset = TensorRows(data) if isinstance(data, Tensor) else data
    schedule = teacher.schedule
    teacher_net = getattr(teacher, "net", None)
    teacher_mode = teacher_net.training if isinstance(teacher_net, nn.Module) else None
    if teacher_mode is not None:
        teacher_net.eval()  # dropout/normalisation off: the teacher is a fixed function during distillation

    def loss_fn(model: nn.Module, batch) -> Tensor:
        student = Denoiser(model, schedule, prediction)
        return distillation_loss(teacher, student, batch_tensor(batch), n_student_steps, grid=grid)

    try:
        with tempfile.TemporaryDirectory(prefix="distill-") as tmp:
            result = fit(student_net, loss_fn, dataset, config, Path(tmp) if out_dir is None else out_dir)
    finally:
        if teacher_mode is not None:
            teacher_net.train(teacher_mode)
    net = result.ema_model if result.ema_model is not None else result.model
    net.eval()
    return Denoiser(net, schedule, prediction)


def progressive_distillation(
    teacher: DenoiserBase,
    data: Tensor | Dataset,
    n_teacher_steps: int,
    n_final_steps: int,
    *,
    student_net: nn.Module | None = None,
    prediction: str | None = None,
    grid: str = "time-uniform",
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
) -> list[Denoiser]:
    """Halve the DDIM step count from `n_teacher_steps` to `n_final_steps` (Salimans & Ho 2022, Algorithm 2):
    each round distils a student of N/2 steps from a teacher of N steps, and the student becomes the next teacher.

    student_net: the first round's student (None copies the teacher's network); later rounds start from a copy
    of the previous student. Each round runs `fit` with `config` (seed + round index) and writes to
    out_dir/round{k}_{N}steps when out_dir is given. Returns the students, one per round (the last has
    n_final_steps steps).
    """
    for name, v in (("n_teacher_steps", n_teacher_steps), ("n_final_steps", n_final_steps)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {v!r}")
    ratio = n_teacher_steps // n_final_steps
    if n_teacher_steps % n_final_steps or ratio < 2 or ratio & (ratio - 1):
        raise ValueError(
            f"n_teacher_steps, n_final_steps: expected n_teacher_steps = n_final_steps * 2^k with k >= 1, "
            f"got {n_teacher_steps} and {n_final_steps}"
        )
    students: list[Denoiser] = []
    current, net, n = teacher, student_net, n_teacher_steps // 2
    k = 0
    while n >= n_final_steps:
        round_config = None if config is None else dataclasses.replace(config, seed=config.seed + k)
        round_dir = None if out_dir is None else Path(out_dir) / f"round{k}_{n}steps"
        student = distill_round(current, net, data, n, prediction=prediction, grid=grid, config=round_config,
                                out_dir=round_dir)
        students.append(student)
        current, net, n, k = student, copy.deepcopy(student.net), n // 2, k + 1
        prediction = student.prediction
    return students


__all__ = [
    "distill_round",
    "distillation_grids",
    "distillation_loss",
    "distillation_target",
    "progressive_distillation",
]
