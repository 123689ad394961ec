"""Training of the image models, all on core's `fit` (EMA, AMP, atomic checkpoints, exact resume, DDP under torchrun).

- `train(config, out_dir, *, resume=None)`: config.task "ddpm" | "sr3" | "regression" into `out_dir`; returns core's
  TrainResult (`result.final_model` = the EMA weights). The other tasks train through their own packages
  (`segmentation.training.train`, `points.training.train`, `anomaly.training.train`); `omnidiffusion-vision train`
  picks the one of config.task.
- `train_image_ddpm(images, config, out_dir)`: the unconditional image DDPM (Ho et al. 2020, L_simple: eps-MSE at a
  uniformly drawn table step, through core's `denoising_loss`); returns the EMA model.
- `train_sr3(images, config, out_dir)`: SR3 with continuous noise levels (see sr3.py).
- `train_regression(images, config, out_dir)`: the same-size UNet trained with L2 (SR3's regression baseline).

The pieces the task packages share are public here: `TensorImages`, `DDPMLoss`, `image_dataset` and `fit_model`
(core fit with the task's metadata and the run config). Each run writes `out_dir` as core's fit does (config.json +
model.safetensors = EMA weights, run_config.json = the resolved VisionConfig, checkpoint/, log.csv), so
`ImageDDPM.from_pretrained(out_dir)` / `SR3.from_pretrained(out_dir)` load the result, and calling again with the
same out_dir resumes from the last checkpoint. Images are augmented inside the loss (random crop to
config.data.image_size, random left-right flip) on torch's global RNG, which the checkpoints save.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from torch import Tensor, nn
from torch.utils.data import Dataset

from omnidiffusion.core import Denoiser, denoising_loss
from omnidiffusion.core.config import apply_override
from omnidiffusion.core.training import TrainResult, fit, unwrap_model

from .data import random_crop_flip, training_images
from .imaging import check_images
from .models import SR3, ImageDDPM, RegressionSR
from .settings import VisionConfig, load_vision_config
from .sr3 import RegressionLoss, SR3Loss

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
