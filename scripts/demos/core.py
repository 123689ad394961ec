"""Core demo: train a small MLP denoiser on 2-D two moons, then compare samplers by W2 to held-out data.

Data: scikit-learn `make_moons` (noise 0.05) drawn i.i.d. (see `moons`), standardised with the training set's
mean and std; held-out sets come from other seeds. Model: eps-prediction on the continuous linear VP schedule
(Song et al. 2021), trained with `omnidiffusion.core.training.fit` (EMA weights are sampled). Distance: exact
2-Wasserstein between n samples and n held-out points (network simplex, POT `ot.emd2`). The W2 from other
i.i.d. held-out sets of the same size (mean and sd over several) is the noise floor: what a perfect sampler
scores at that n.

Writes OUT/core/: samples.png (rows = samplers, columns = steps, plus held-out data), loss.png,
metrics.json, train/ (the fit() run: checkpoint, log.csv, EMA weights via save_pretrained).

Extra samplers join the same figure and table through EXTRA_SAMPLERS: append a function
`(teacher, train_data, work_dir, quick) -> list[Sampler]`; it receives the trained teacher Denoiser, the
standardised training points (N, 2) and a folder of its own, and returns Samplers whose `draw(n, generator)` gives
(n, 2) samples in standardised units. The one registered here, `distilled_students`, distils the teacher's DDIM
from 64 steps to 4 (Salimans & Ho 2022, progressive distillation, through `core.distillation`) and adds the 8-
and 4-step students beside the teacher's own DDIM at 4, 8 and 64 steps.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import ot
import torch
from matplotlib.figure import Figure
from sklearn.datasets import make_moons
from torch import Tensor, nn
from torch.utils.data import Dataset

from demos.section import SectionResult, torch_threads
from omnidiffusion.core import Denoiser, LinearVP, denoising_loss, sample
from omnidiffusion.core.distillation import progressive_distillation
from omnidiffusion.core.io import ConfigurableModule
from omnidiffusion.core.nn import SinusoidalEmbedding, TimeEmbedding
from omnidiffusion.core.samplers import nfe
from omnidiffusion.core.training import TrainConfig, fit

TITLE = "Core: samplers on a 2-D toy distribution"
DESCRIPTION = """
A 4-block residual MLP denoiser (eps-prediction, linear VP schedule) trained with the project's training loop
on two moons (scikit-learn `make_moons`, noise 0.05, standardised), then sampled with the core samplers at
several step counts. Each sampler uses its paper's time grid. A student progressively distilled from the
teacher's 64-step DDIM (Salimans & Ho 2022) is sampled with 8 and 4 DDIM steps, beside the teacher's own DDIM
at 4, 8 and 64 steps (all on the uniform time grid the distillation uses). The distance is the exact
2-Wasserstein distance (POT `ot.emd2`, squared-Euclidean cost, standardised units) between n samples and n
held-out points; the W2 between independent held-out sets of size n is the noise floor (what a perfect sampler
scores). Lower is better.
"""


@dataclass
class ToyConfig:
    """Sizes of the demo; `quick()` is the seconds-long smoke-test variant."""

    n_train: int = 10_000
    n_eval: int = 1_000
    noise: float = 0.05
    hidden: int = 128
    blocks: int = 4
    train_steps: int = 5_000
    batch_size: int = 512
    lr: float = 2e-3
    ema_decay: float = 0.999  # fit's EMA warm-up makes this usable for the quick run's 150 steps too
    methods: tuple[str, ...] = ("ddpm", "ddim", "euler-maruyama", "heun", "dpm++2m", "dpm++3m")
    steps: tuple[int, ...] = (5, 10, 20, 50, 200)
    train_seed: int = 0
    test_seed: int = 1  # the held-out set every sampler is compared with
    floor_seeds: tuple[int, ...] = tuple(range(2, 12))  # other held-out sets: the noise floor (mean and sd)
    sample_seed: int = 100  # one draw per cell, from the same x_T for every sampler (common random numbers)
    # Progressive distillation: DDIM distil_from steps halved per round down to distil_to, each round a short fit
    # from a copy of the previous network (the paper's initialisation).
    distil_from: int = 64
    distil_to: int = 4
    distil_steps: int = 400  # optimiser steps per round
    distil_batch: int = 256
    distil_lr: float = 5e-4

    @classmethod
    def quick(cls) -> ToyConfig:
        return cls(
            n_train=2_048,
            n_eval=256,
            train_steps=150,
            batch_size=256,
            methods=("ddim", "dpm++2m"),
            steps=(5, 20),
            floor_seeds=(2, 3),
            distil_from=16,
            distil_steps=40,
            distil_batch=128,
        )


# Each sampler on the grid its paper uses (DDPM/score_sde: uniform in t; EDM: Karras rho = 7; DPM-Solver: log-SNR).
GRID_OF = {
    "heun": "karras",
    "dpm1": "logsnr",
    "dpm2": "logsnr",
    "dpm3": "logsnr",
    "dpm++2m": "logsnr",
    "dpm++3m": "logsnr",
}


# ----------------------------------------------------------------------------------------------------------------
# Data and model


def moons(n: int, seed: int, noise: float) -> np.ndarray:
    """(n, 2) float64 i.i.d. draws from the two-moons distribution, unstandardised.

    make_moons alone is not an i.i.d. sample: it puts exactly n/2 points on each moon at evenly spaced angles, so
    two of its sets are much closer in W2 than two i.i.d. samples (or a perfect sampler's output) would be. A
    random subset of a large make_moons pool has binomial moon counts and random angles, like a sampler.
    """
    pool, _ = make_moons(n_samples=max(100_000, 20 * n), noise=noise, random_state=seed)
    return pool[np.random.default_rng(seed).choice(len(pool), size=n, replace=False)]


class Points(Dataset):
    """A (N, D) tensor as a map-style dataset whose batches are fetched in one indexing op (`__getitems__`)."""

    def __init__(self, x: Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        return self.x[i]

    def __getitems__(self, indices: list[int]) -> Tensor:
        return self.x[indices]  # (B, D)


def as_batch(batch: Tensor) -> Tensor:
    """collate_fn for Points: the batch is already one tensor."""
    return batch


class ToyMLP(ConfigurableModule):
    """eps(x_t, t) for low-dimensional points: residual MLP blocks, time added to every block's input.

    x: (B, dim), t: (B,) in [0, 1], embedded sinusoidally at scale 1000 (DDPM convention) then by an MLP.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, blocks: int = 4, time_dim: int = 64) -> None:
        super().__init__()
        self.time = nn.Sequential(SinusoidalEmbedding(time_dim, scale=1000.0), TimeEmbedding(time_dim, hidden))
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(blocks))
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        emb = self.time(t)  # (B, H)
        h = self.inp(x)  # (B, H)
        for block in self.blocks:
            h = h + block(nn.functional.silu(h + emb))
        return self.out(nn.functional.silu(h))  # (B, dim)


# ----------------------------------------------------------------------------------------------------------------
# Training: the one place that trains (the project's loop, fit)


@dataclass
class Trained:
    model: nn.Module  # EMA weights, eval mode
    wall_time: float
    steps_per_sec: float
    final_loss: float
    curve: list[tuple[int, float]]  # (step, mean loss over the log interval)


def train_denoiser(
    net: nn.Module, schedule: LinearVP, data: Tensor, cfg: ToyConfig, out_dir: Path, metadata: dict
) -> Trained:
    """Train `net` for eps-prediction with uniform weighting via core.training.fit, from scratch, into out_dir."""
    shutil.rmtree(out_dir, ignore_errors=True)  # fit would otherwise resume a previous demo's finished run
    config = TrainConfig(
        steps=cfg.train_steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        min_lr=cfg.lr / 20,
        warmup_steps=min(200, cfg.train_steps // 10),
        ema_decay=cfg.ema_decay,
        grad_clip=1.0,
        log_every=max(1, cfg.train_steps // 100),
        ckpt_every=max(1, cfg.train_steps // 2),
        seed=cfg.train_seed,
        device="cpu",
    )

    def loss_fn(model: nn.Module, batch: Tensor) -> Tensor:
        return denoising_loss(Denoiser(model, schedule, prediction="eps"), batch)

    result = fit(net, loss_fn, Points(data), config, out_dir, collate_fn=as_batch, resume=False, metadata=metadata)
    with open(out_dir / "log.csv", newline="") as f:
        curve = [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]
    model = result.ema_model if result.ema_model is not None else result.model
    return Trained(model.eval(), result.wall_time, result.steps_per_sec, result.loss, curve)


# ----------------------------------------------------------------------------------------------------------------
# Samplers and the distance


@dataclass
class Sampler:
    """One cell of the comparison: a figure row `label`, a column `steps`, its cost in network evaluations."""

    label: str
    steps: int
    nfe: int
    draw: Callable[[int, torch.Generator], Tensor]  # (n, generator) -> (n, 2), standardised units
    grid: str = ""
    info: dict = field(default_factory=dict)  # extra fields for this cell's record in metrics.json


ExtraSamplers = Callable[[Denoiser, Tensor, Path, bool], list[Sampler]]


def core_samplers(denoiser: Denoiser, methods: tuple[str, ...], step_counts: tuple[int, ...]) -> list[Sampler]:
    """One Sampler per (method, steps) through `omnidiffusion.core.sample`."""
    out = []
    for method in methods:
        grid = GRID_OF.get(method, "time-uniform")
        for steps in step_counts:

            def draw(n: int, g: torch.Generator, method=method, steps=steps, grid=grid) -> Tensor:
                return sample(denoiser, (n, 2), method=method, steps=steps, grid=grid, generator=g)

            out.append(Sampler(method, steps, nfe(method, steps), draw, grid))
    return out


def _ddim(denoiser: Denoiser, steps: int, label: str, info: dict) -> Sampler:
    def draw(n: int, g: torch.Generator) -> Tensor:
        return sample(denoiser, (n, 2), method="ddim", steps=steps, grid="time-uniform", generator=g)

    return Sampler(label, steps, nfe("ddim", steps), draw, "time-uniform", info)


def distilled_students(teacher: Denoiser, train: Tensor, work_dir: Path, quick: bool) -> list[Sampler]:
    """Progressive distillation (Salimans & Ho 2022, Algorithm 2) of the teacher's deterministic DDIM from
    cfg.distil_from steps to cfg.distil_to, on the uniform time grid; returns the last two students (e.g. 8 and 4
    steps, row "ddim, distilled") and the teacher's own DDIM at the same step counts and at distil_from (row
    "ddim", the trajectory the students imitate)."""
    cfg = ToyConfig.quick() if quick else ToyConfig()
    config = TrainConfig(
        steps=cfg.distil_steps,
        batch_size=cfg.distil_batch,
        lr=cfg.distil_lr,
        min_lr=cfg.distil_lr / 10,
        warmup_steps=cfg.distil_steps // 10,
        ema_decay=0.99,
        grad_clip=1.0,
        log_every=max(1, cfg.distil_steps // 10),
        ckpt_every=cfg.distil_steps,
        seed=cfg.train_seed,
        progress=False,
        device="cpu",
    )
    shutil.rmtree(work_dir / "rounds", ignore_errors=True)  # fit would resume the previous demo's finished rounds
    t0 = time.perf_counter()
    students = progressive_distillation(
        teacher, train, cfg.distil_from, cfg.distil_to, grid="time-uniform", config=config, out_dir=work_dir / "rounds"
    )
    wall = time.perf_counter() - t0
    n_steps = [cfg.distil_from // 2 ** (k + 1) for k in range(len(students))]  # 32, 16, 8, 4
    info = {
        "teacher_steps": cfg.distil_from,
        "rounds": len(students),
        "steps_per_round": cfg.distil_steps,
        "batch_size": cfg.distil_batch,
        "lr": cfg.distil_lr,
        "ema_decay": config.ema_decay,
        "distillation_wall_time_s": wall,
    }
    print(
        f"  distilled DDIM {cfg.distil_from} -> {cfg.distil_to} steps in {len(students)} rounds of "
        f"{cfg.distil_steps} steps: {wall:.1f} s",
        flush=True,
    )
    out = [_ddim(teacher, cfg.distil_from, "ddim", {"role": "distillation teacher"})]
    for student, n in list(zip(students, n_steps, strict=True))[-2:]:
        out.append(_ddim(teacher, n, "ddim", {"role": "teacher at the student's step count"}))
        out.append(_ddim(student, n, "ddim, distilled", {"role": "student", **info}))
    return out


EXTRA_SAMPLERS: list[ExtraSamplers] = [distilled_students]  # hook, see the module docstring


def w2(a: np.ndarray, b: np.ndarray) -> float:
    """Exact 2-Wasserstein distance between two empirical distributions with uniform weights.

    sqrt(min_P sum_ij P_ij ||a_i - b_j||^2) over couplings P, solved by the network simplex (POT ot.emd2).
    """
    cost = ot.dist(a.astype(np.float64), b.astype(np.float64), metric="sqeuclidean")  # (n, m)
    value = ot.emd2(ot.unif(len(a)), ot.unif(len(b)), cost, numItermax=10_000_000)
    return math.sqrt(max(float(value), 0.0))


# ----------------------------------------------------------------------------------------------------------------
# The section


def run(out_dir: Path, quick: bool = False) -> SectionResult:
    cfg = ToyConfig.quick() if quick else ToyConfig()
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch_threads(1):
        return _run(cfg, out_dir, quick)


def _run(cfg: ToyConfig, out_dir: Path, quick: bool) -> SectionResult:
    t_section = time.perf_counter()
    raw = moons(cfg.n_train, cfg.train_seed, cfg.noise)
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    train = torch.tensor((raw - mean) / std, dtype=torch.float32)  # (N, 2)
    test = (moons(cfg.n_eval, cfg.test_seed, cfg.noise) - mean) / std  # (n, 2)

    schedule = LinearVP()
    torch.manual_seed(cfg.train_seed)
    net = ToyMLP(hidden=cfg.hidden, blocks=cfg.blocks)
    metadata = {
        "schedule": {"name": "LinearVP", **schedule.config()},
        "prediction": "eps",
        "data": {"name": "make_moons", "noise": cfg.noise, "mean": mean.tolist(), "std": std.tolist()},
    }
    trained = train_denoiser(net, schedule, train, cfg, out_dir / "train", metadata)
    teacher = Denoiser(trained.model, schedule, prediction="eps")

    samplers = core_samplers(teacher, cfg.methods, cfg.steps)
    for hook in EXTRA_SAMPLERS:
        work = out_dir / f"extra_{getattr(hook, '__name__', 'sampler')}"
        work.mkdir(parents=True, exist_ok=True)
        samplers += hook(teacher, train, work, quick)
    # Rows in first-seen order with variants ("ddim, distilled") right below their base row; cells by steps.
    row = {}
    for s in samplers:
        row.setdefault(s.label.split(",")[0], len(row))
    samplers.sort(key=lambda s: (row[s.label.split(",")[0]], s.label, s.steps))

    t_eval = time.perf_counter()
    results, shown = evaluate(samplers, test, cfg.n_eval, cfg.sample_seed)
    # What a perfect sampler would score: other i.i.d. held-out sets against the same test set.
    floors = [w2((moons(cfg.n_eval, seed, cfg.noise) - mean) / std, test) for seed in cfg.floor_seeds]
    floor, floor_sd = float(np.mean(floors)), float(np.std(floors, ddof=1)) if len(floors) > 1 else 0.0
    gauss = w2(np.random.default_rng(cfg.sample_seed).standard_normal(test.shape), test)
    eval_time = time.perf_counter() - t_eval

    plot_samples(shown, results, test, floor, out_dir / "samples.png")
    plot_loss(trained.curve, out_dir / "loss.png")
    metrics = {
        "data": {
            "name": "make_moons",
            "noise": cfg.noise,
            "sampling": "i.i.d. subset of a large make_moons pool",
            "n_train": cfg.n_train,
            "n_eval": cfg.n_eval,
            "train_seed": cfg.train_seed,
            "test_seed": cfg.test_seed,
            "standardised_with": {"mean": mean.tolist(), "std": std.tolist()},
        },
        "model": {
            "class": "ToyMLP",
            "parameters": sum(p.numel() for p in net.parameters()),
            "schedule": metadata["schedule"],
            "prediction": "eps",
            "weights": "EMA",
        },
        "training": {
            "loop": "omnidiffusion.core.training.fit",
            "steps": cfg.train_steps,
            "batch_size": cfg.batch_size,
            "lr": cfg.lr,
            "ema_decay": cfg.ema_decay,
            "wall_time_s": trained.wall_time,
            "steps_per_sec": trained.steps_per_sec,
            "final_loss": trained.final_loss,
            "loss_curve": [list(p) for p in trained.curve],
            "torch_threads": torch.get_num_threads(),
        },
        "distance": {
            "name": "W2",
            "definition": "exact 2-Wasserstein distance, squared-Euclidean cost, standardised "
            "units, one draw of n samples vs the n-point held-out set (POT ot.emd2)",
            "n": cfg.n_eval,
            "noise_floor": floor,
            "noise_floor_sd": floor_sd,
            "noise_floor_w2": floors,
            "standard_normal": gauss,
        },
        "results": results,
        "config": asdict(cfg),
        "quick": quick,
        "eval_time_s": eval_time,
        "wall_time_s": time.perf_counter() - t_section,
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")

    notes = [
        f"Noise floor: W2 from the held-out set to {len(floors)} other i.i.d. held-out sets of n = {cfg.n_eval} "
        f"points is {floor:.3f} +- {floor_sd:.3f} (mean +- sd), which is what a perfect sampler scores on one "
        "draw; cells within that band are at the floor and their order is noise. Every cell starts from the same "
        f"x_T. N(0, I) instead of a model: W2 = {gauss:.3f}.",
        f"Training: {cfg.train_steps} steps of batch {cfg.batch_size} through `core.training.fit` in "
        f"{trained.wall_time:.1f} s ({trained.steps_per_sec:.0f} steps/s, 1 torch thread), final loss "
        f"{trained.final_loss:.4f}; sampling and W2: {eval_time:.1f} s.",
    ]
    students = [r for r in results if r.get("role") == "student"]
    if students:
        d = students[0]
        by_cell = {(r["sampler"], r["steps"]): r["w2"] for r in results}
        compare = "; ".join(
            f"{r['steps']} steps: student W2 {_fmt(r['w2'])} vs the teacher's own DDIM "
            f"{_fmt(by_cell.get(('ddim', r['steps'])))}"
            for r in students
        )
        notes.append(
            f"Progressive distillation (Salimans & Ho 2022, `core.distillation`): the teacher's {d['teacher_steps']}-"
            f"step DDIM (W2 {_fmt(by_cell.get(('ddim', d['teacher_steps'])))}) halved in {d['rounds']} rounds of "
            f"{d['steps_per_round']} steps (batch {d['batch_size']}, lr {d['lr']:g}, EMA {d['ema_decay']}), each "
            f"student starting from a copy of its teacher, in {d['distillation_wall_time_s']:.1f} s. {compare}."
        )
    return SectionResult(
        figures=[
            (
                f"Samples (n = {cfg.n_eval}) per sampler and step count over the held-out data (grey); "
                "panel titles give NFE and W2.",
                out_dir / "samples.png",
            ),
            ("Training loss (eps-MSE, mean per log interval).", out_dir / "loss.png"),
        ],
        tables=[
            (
                f"W2 to held-out data, n = {cfg.n_eval}, lower is better; cells: W2 (NFE)",
                pivot(results, floor, floor_sd, gauss),
            )
        ],
        notes=notes,
        files=[out_dir / "metrics.json", out_dir / "train"],
    )


def _fmt(w: float | None) -> str:
    return "diverged" if w is None else f"{w:.3f}"


def evaluate(
    samplers: list[Sampler], test: np.ndarray, n: int, seed: int
) -> tuple[list[dict], dict[tuple[str, int], np.ndarray]]:
    """W2 of one n-point draw of every sampler against `test`; returns the records and the draws."""
    results, shown = [], {}
    for s in samplers:
        record = {"sampler": s.label, "grid": s.grid, "steps": s.steps, "nfe": s.nfe, "w2": None, **s.info}
        t0 = time.perf_counter()
        try:
            x = s.draw(n, torch.Generator().manual_seed(seed)).detach().double().numpy()  # (n, 2)
            shown[(s.label, s.steps)] = x
            record["w2"] = w2(x, test)
        except FloatingPointError as e:  # a sampler that diverges is a result, not a crash of the demo
            record["error"] = str(e)
        record["time_s"] = time.perf_counter() - t0
        results.append(record)
        score = "diverged" if record["w2"] is None else f"{record['w2']:.4f}"
        print(f"  {s.label:>15} {s.grid:>12} steps {s.steps:>4} NFE {s.nfe:>4}  W2 {score}", flush=True)
    return results, shown


def pivot(results: list[dict], floor: float, floor_sd: float, gauss: float) -> list[dict[str, object]]:
    """Rows = samplers, columns = step counts, cells 'W2 (NFE)'; then the two reference rows."""
    columns = [f"{s} steps" for s in sorted({r["steps"] for r in results})]
    rows: dict[str, dict[str, object]] = {}
    for r in results:
        row = rows.setdefault(r["sampler"], {"sampler": r["sampler"], "grid": r["grid"], **dict.fromkeys(columns)})
        row[f"{r['steps']} steps"] = "diverged" if r["w2"] is None else f"{r['w2']:.3f} ({r['nfe']})"
    return [
        *rows.values(),
        {"sampler": "*i.i.d. held-out data (noise floor)*", "grid": "", columns[0]: f"{floor:.3f} +- {floor_sd:.3f}"},
        {"sampler": "*N(0, I), no model*", "grid": "", columns[0]: f"{gauss:.3f}"},
    ]


# ----------------------------------------------------------------------------------------------------------------
# Figures


def _panel(ax, background: np.ndarray, points: np.ndarray | None, title: str, color: str = "C0") -> None:
    ax.scatter(background[:, 0], background[:, 1], s=2, c="0.8", linewidths=0)
    if points is not None:
        ax.scatter(points[:, 0], points[:, 1], s=2, c=color, linewidths=0)
    ax.set(xlim=(-2.5, 2.5), ylim=(-2.5, 2.5), xticks=[], yticks=[], aspect="equal")
    ax.set_title(title, fontsize=7)


def plot_samples(
    drawn: dict[tuple[str, int], np.ndarray], results: list[dict], test: np.ndarray, floor: float, path: Path
) -> None:
    """Grid PNG: rows = sampler labels, columns = step counts, last column = held-out data."""
    labels = list(dict.fromkeys(r["sampler"] for r in results))
    step_cols = sorted({r["steps"] for r in results})
    info = {(r["sampler"], r["steps"]): r for r in results}
    fig = Figure(figsize=(1.6 * (len(step_cols) + 1), 1.7 * len(labels)), dpi=110, layout="constrained")
    axes = fig.subplots(len(labels), len(step_cols) + 1, squeeze=False)
    for i, label in enumerate(labels):
        named = False
        for j, steps in enumerate(step_cols):
            ax, r = axes[i, j], info.get((label, steps))
            if r is None:
                ax.set_axis_off()
                continue
            score = "diverged" if r["w2"] is None else f"W2 {r['w2']:.3f}"
            _panel(ax, test, drawn.get((label, steps)), f"{steps} steps, NFE {r['nfe']}\n{score}")
            if not named:  # the row's first panel carries its name (an empty cell has no axes to label)
                ax.set_ylabel(label, fontsize=9)
                named = True
        axes[i, -1].set_axis_off()
    _panel(axes[0, -1], test[:0], test, f"held-out data (n = {len(test)})\nnoise floor W2 {floor:.3f}", color="k")
    axes[0, -1].set_axis_on()
    fig.savefig(path)


def plot_loss(curve: list[tuple[int, float]], path: Path) -> None:
    fig = Figure(figsize=(4.5, 2.6), dpi=110, layout="constrained")
    ax = fig.subplots()
    steps, losses = zip(*curve, strict=True) if curve else ((), ())
    ax.plot(steps, losses, lw=1)
    ax.set(xlabel="optimiser step", ylabel="eps-MSE", yscale="log", title="training loss (core.training.fit)")
    ax.grid(alpha=0.3)
    fig.savefig(path)
