"""Training of the image models, all on core's `fit` (EMA, AMP, atomic checkpoints, exact resume, DDP under torchrun).

- `train(config, out_dir, *, resume=None)`: config.task "ddpm" | "sr3" | "regression" into `out_dir`; returns core's
  TrainResult (`result.final_model` = the EMA weights). The other tasks train through their own packages
  (`segmentation.training.train`, `points.training.train`, `anomaly.training.train`); `omnidiffusion-vision train`
  picks the one of config.task.
- `train_image_ddpm(images, config, out_dir)`: the unconditional image DDPM (Ho et al. 2020, L_simple: eps-MSE at a
  uniformly drawn table step, through core's `denoising_loss`); returns the EMA model.
- `train_sr3(images, config, out_dir)`: SR3 with continuous noise levels (see sr3.py).
- `train_regression(images, config, out_dir)`: the same-size UNet trained with L2 (SR3's regression baseline).
- `distil_sr3(teacher, images, config, out_dir)`: consistency distillation of a trained SR3 (core.consistency), a
  1-, 2- or 4-step SR3 sampled with method "consistency".

The pieces the task packages share are public here: `TensorImages`, `DDPMLoss`, `image_dataset` and `fit_model`
(core fit with the task's metadata and the run config). Each run writes `out_dir` as core's fit does (config.json +
model.safetensors = EMA weights, run_config.json = the resolved VisionConfig, checkpoint/, log.csv), so
`ImageDDPM.from_pretrained(out_dir)` / `SR3.from_pretrained(out_dir)` load the result, and calling again with the
same out_dir resumes from the last checkpoint. Images are augmented inside the loss (random crop to
config.data.image_size, random left-right flip) on torch's global RNG, which the checkpoints save.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from torch import Tensor, nn
from torch.utils.data import Dataset

from omnidiffusion.core import Denoiser, denoising_loss
from omnidiffusion.core.checks import positive_int, real_number, resolve_device
from omnidiffusion.core.config import apply_override
from omnidiffusion.core.consistency import consistency_distillation
from omnidiffusion.core.io import save_run_config
from omnidiffusion.core.training import TrainResult, fit, seed_everything, unwrap_model

from .data import random_crop_flip, training_images
from .imaging import check_images
from .models import SR3, ImageDDPM, RegressionSR
from .settings import VisionConfig, load_vision_config
from .sr3 import RegressionLoss, SR3Loss, SR3Pairs

IMAGE_TASKS = ("ddpm", "sr3", "regression")


class TensorImages(Dataset):
    """A (N, C, H, W) tensor as a map-style dataset of (C, H, W) items."""

    def __init__(self, images: Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        return self.images[i]


class DDPMLoss:
    """loss_fn(model, batch) for `fit`: random crop + flip, then core `denoising_loss` (uniform weighting)."""

    def __init__(self, size: int, hflip: bool = True) -> None:
        self.size, self.hflip = size, hflip

    def __call__(self, model: nn.Module, batch) -> Tensor:
        x0 = batch[0] if isinstance(batch, list | tuple) else batch
        x0 = random_crop_flip(x0, self.size, self.hflip)
        inner = unwrap_model(model)  # DDP wraps the ImageDDPM
        return denoising_loss(Denoiser(model, inner.schedule, inner.prediction), x0)


def resolve_config(config: VisionConfig | str | Path | None, overrides=()) -> VisionConfig:
    """A VisionConfig from a VisionConfig, a bundled config name or a TOML path, with 'a.b=value' overrides."""
    if isinstance(config, VisionConfig):
        for o in overrides:
            config = apply_override(config, o)
        return config
    if config is None or isinstance(config, str | Path):
        return load_vision_config(None if config is None else str(config), list(overrides))
    raise ValueError(f"config: expected a VisionConfig, a config name or a TOML path, got {type(config).__name__}")


def image_dataset(images: Tensor | Dataset | None, config: VisionConfig) -> Dataset:
    """The training set: `images` (N, C, H, W) in [-1, 1] (checked against config.data) or a Dataset; None reads
    config.data.source."""
    d = config.data
    if images is None:
        images = training_images(d.source, d.channels, d.image_size, d.root, d.photo_crops, d.resize)
    if isinstance(images, Tensor):
        check_images(images, "images", channels=d.channels)
        if images.shape[-1] < d.image_size or images.shape[-2] < d.image_size:
            raise ValueError(
                f"images: expected sides >= data.image_size = {d.image_size}, got shape "
                f"{tuple(images.shape)} (set data.image_size)"
            )
        return TensorImages(images.float().contiguous())
    if isinstance(images, Dataset):
        return images
    raise ValueError(f"images: expected a (N, C, H, W) tensor in [-1, 1] or a Dataset, got {type(images).__name__}")


def fit_model(
    model: nn.Module, loss, data: Dataset, config: VisionConfig, out_dir: str | Path, resume: bool | None, task: str
) -> TrainResult:
    """core's fit on config.train into `out_dir`, with {"task": task} as metadata and the run config stored."""
    if out_dir is None or str(out_dir) == "":
        raise ValueError("out_dir: expected the directory to train into (the `--out` flag of `train`)")
    return fit(model, loss, data, config.train, Path(out_dir), resume=resume, metadata={"task": task},
               run_config=config)  # fmt: skip


def final_model(result: TrainResult) -> nn.Module:
    """The weights to sample with (EMA when on), on the CPU in eval mode."""
    return result.final_model.cpu().eval()


def _ddpm(data: Dataset, config: VisionConfig) -> tuple[nn.Module, Callable]:
    d = config.data
    model = ImageDDPM(d.image_size, d.channels, config.model.unet_kwargs(), config.schedule.to_dict(),
                      config.prediction)  # fmt: skip
    return model, DDPMLoss(d.image_size, d.hflip)


def _sr3(data: Dataset, config: VisionConfig) -> tuple[nn.Module, Callable]:
    d = config.data
    model = SR3(d.image_size, d.channels, d.scale, config.model.unet_kwargs(), config.schedule.to_dict())
    return model, SR3Loss(model.schedule, d.image_size, d.scale, config.loss, d.hflip)


def _regression(data: Dataset, config: VisionConfig) -> tuple[nn.Module, Callable]:
    d = config.data
    model = RegressionSR(d.image_size, d.channels, d.scale, config.model.unet_kwargs())
    return model, RegressionLoss(d.image_size, d.scale, d.hflip)


BUILDERS = {"ddpm": _ddpm, "sr3": _sr3, "regression": _regression}


def _run(task: str, images, config: VisionConfig, out_dir, resume: bool | None) -> TrainResult:
    if config.task != task:  # the stored run config names what was trained
        config = replace(config, task=task)
    data = image_dataset(images, config)
    seed_everything(config.train.seed)  # the initial weights (fit seeds only its own loop)
    model, loss = BUILDERS[task](data, config)
    return fit_model(model, loss, data, config, out_dir, resume, task)


def train(config: VisionConfig, out_dir: str | Path, *, resume: bool | None = None) -> TrainResult:
    """Train config.task ("ddpm" | "sr3" | "regression") on config.data into `out_dir`; returns core's TrainResult.

    resume: None continues from a checkpoint in out_dir when there is one, True requires one, False refuses one.
    """
    if not isinstance(config, VisionConfig):
        raise ValueError(f"config: expected a VisionConfig, got {type(config).__name__}")
    if config.task not in IMAGE_TASKS:
        raise ValueError(
            f"task: {config.task!r} is trained by its task package (omnidiffusion.vision.segmentation, .points or "
            f".anomaly: <package>.training.train, or `omnidiffusion-vision train`); this one trains {IMAGE_TASKS}"
        )
    return _run(config.task, None, config, out_dir, resume)


def train_image_ddpm(
    images: Tensor | Dataset | None = None,
    config: VisionConfig | str | None = "ddpm-digits",
    out_dir: str | Path | None = None,
    *,
    resume: bool | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> ImageDDPM:
    """Train an unconditional ImageDDPM with core `fit`; returns the EMA model (also saved in `out_dir`).

    images: (N, C, H, W) in [-1, 1] with C = config.data.channels and sides >= config.data.image_size (random
    crops of that side are trained on), or a Dataset of (C, H, W) items; None uses config.data.source.
    config: a VisionConfig, a bundled config name ("ddpm-digits", "ddpm-faces") or a TOML path; `overrides` are
    'a.b=value' strings. out_dir: where to train (required). resume: None continues from a checkpoint if present.
    """
    return final_model(_run("ddpm", images, resolve_config(config, overrides), out_dir, resume))


def train_sr3(
    images: Tensor | Dataset | None = None,
    config: VisionConfig | str | None = "sr3-faces",
    out_dir: str | Path | None = None,
    *,
    resume: bool | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> SR3:
    """Train SR3 (HR crops of config.data.image_size, LR = bicubic / config.data.scale); returns the EMA model."""
    return final_model(_run("sr3", images, resolve_config(config, overrides), out_dir, resume))


def train_regression(
    images: Tensor | Dataset | None = None,
    config: VisionConfig | str | None = "sr3-faces",
    out_dir: str | Path | None = None,
    *,
    resume: bool | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> RegressionSR:
    """Train the regression baseline (same UNet settings as SR3, L2 on the HR image); returns the EMA model."""
    return final_model(_run("regression", images, resolve_config(config, overrides), out_dir, resume))


def distil_sr3(
    teacher: SR3,
    images: Tensor | Dataset | None = None,
    config: VisionConfig | str | None = "sr3-faces",
    out_dir: str | Path | None = None,
    *,
    steps: int = 500,
    lr: float = 1e-4,
    intervals: int = 18,
    solver: str = "heun",
    sample_steps: int = 2,
    resume: bool | None = None,
) -> SR3:
    """Consistency distillation (core `consistency_distillation`, Song et al. 2023) of a trained SR3 on the HR
    crops it was trained on; returns the distilled SR3 (EMA weights), also saved in `out_dir`.

    The student starts as a copy of the teacher (dropout off), read as eps with its x0 clipped to [-1, 1], and
    the teacher's ODE steps clip its x0 too, as SR3's samplers do (`clip`). Without clipping, eps read at t = 1
    multiplies errors by sigma/alpha (about 150 on SR3's schedule); a copy read as v starts far from the
    teacher and did not recover in 1000 steps (benchmarks/vision_sr_few_step.py, docs/vision.md). The teacher
    steps between adjacent times of an `intervals`-interval Karras grid with `solver` (random shifts).
    `steps` optimiser steps of config.train (batch size, EMA, AMP, device) at learning rate `lr` (min_lr
    lr/10). The saved folder loads with `SR3.from_pretrained(out_dir)`; its run config samples with method
    "consistency" in `sample_steps` steps on the time-uniform grid. Calling again with the same out_dir
    resumes (as core `fit`).
    """
    if not isinstance(teacher, SR3):
        raise ValueError(f"teacher: expected a trained SR3, got {type(teacher).__name__}")
    if teacher.consistency is not None:
        raise ValueError("teacher: expected an SR3 trained by train_sr3, got a consistency-distilled one")
    if out_dir is None or str(out_dir) == "":
        raise ValueError("out_dir: expected the directory to distil into")
    config = resolve_config(config)
    lr = real_number(lr, "lr", low=0.0, low_open=True)
    d = config.data
    train_config = replace(config.train, steps=positive_int(steps, "steps"), lr=lr, min_lr=min(config.train.min_lr,
                           lr / 10), warmup_steps=min(config.train.warmup_steps, steps // 10))  # fmt: skip
    was_training = teacher.training
    teacher = teacher.to(resolve_device(train_config.device)).eval()  # beside the student fit trains
    start = copy.deepcopy(teacher)
    for module in start.modules():  # the two student calls of one loss must see the same network
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    try:
        cm = consistency_distillation(
            teacher.denoiser(clip=True), image_dataset(images, config), student_net=start, prediction="eps",
            clip=(-1.0, 1.0), intervals=intervals, solver=solver, config=train_config, out_dir=out_dir,
            batch_fn=SR3Pairs(d.image_size, d.scale, d.hflip), resume=resume,
        )  # fmt: skip
    finally:
        teacher.train(was_training)
    student = SR3(**{**teacher.init_kwargs, "consistency": cm.spec})
    student.load_state_dict(cm.net.state_dict())
    student.eval()
    run = replace(config, task="sr3", train=train_config,
                  sampler=replace(config.sampler, method="consistency", steps=positive_int(sample_steps,
                                  "sample_steps"), grid="time-uniform"))  # fmt: skip
    student.save_pretrained(out_dir, metadata={"task": "sr3", "distilled": "consistency"})
    save_run_config(out_dir, run)
    return student
