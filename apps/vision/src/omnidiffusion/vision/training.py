"""Training entry points, all on core's `fit` (EMA, AMP, atomic checkpoints, exact resume, DDP under torchrun).

- `train_image_ddpm(images, config, out_dir)`: the unconditional image DDPM (Ho et al. 2020, L_simple: eps-MSE at a
  uniformly drawn table step, through core's `denoising_loss`).
- `train_sr3(images, config, out_dir)`: SR3 with continuous noise levels (see sr3.py).
- `train_regression(images, config, out_dir)`: the same-size UNet trained with L2 (SR3's regression baseline).
- `train(config)`: what `omnidiffusion-vision train` runs, dispatching on config.task.

Each writes `out_dir` as core's fit does (config.json + model.safetensors = EMA weights, checkpoint/, log.csv), so
`ImageDDPM.from_pretrained(out_dir)` / `SR3.from_pretrained(out_dir)` load the result, and calling again with the
same out_dir resumes from the last checkpoint. Images are augmented inside the loss (random crop to
config.data.image_size, random left-right flip) on torch's global RNG, which the checkpoints save.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from omnidiffusion.core import Denoiser, denoising_loss
from omnidiffusion.core.config import to_dict
from omnidiffusion.core.training import fit

from .data import random_crop_flip, training_images
from .imaging import check_images
from .models import SR3, ImageDDPM, RegressionSR
from .settings import VisionConfig, load_vision_config
from .sr3 import RegressionLoss, SR3Loss


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
        inner = model.module if hasattr(model, "module") else model  # DDP wraps the ImageDDPM
        return denoising_loss(Denoiser(model, inner.schedule, inner.prediction), x0)


def _resolve(config: VisionConfig | str | None, overrides) -> VisionConfig:
    if isinstance(config, VisionConfig):
        if overrides:
            from omnidiffusion.core.config import apply_override

            for o in overrides:
                config = apply_override(config, o)
        return config
    if config is None or isinstance(config, str | Path):
        return load_vision_config(None if config is None else str(config), list(overrides))
    raise ValueError(f"config: expected a VisionConfig, a config name or a TOML path, got {type(config).__name__}")


def _dataset(images: Tensor | Dataset | None, config: VisionConfig) -> Dataset:
    d = config.data
    if images is None:
        images = training_images(d.source, d.channels, d.image_size, d.folder, d.photo_crops)
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


def _out(out_dir: str | Path | None, config: VisionConfig) -> Path:
    return Path(config.out if out_dir is None else out_dir)


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
    'a.b=value' strings. out_dir defaults to config.out. resume: None continues from a checkpoint if present.
    """
    config = _resolve(config, overrides)
    data = _dataset(images, config)
    model = ImageDDPM(
        config.data.image_size,
        config.data.channels,
        config.model.unet_kwargs(),
        config.schedule.to_dict(),
        config.prediction,
    )
    loss = DDPMLoss(config.data.image_size, config.data.hflip)
    return _fit(model, loss, data, config, out_dir, resume, "ddpm")


def train_sr3(
    images: Tensor | Dataset | None = None,
    config: VisionConfig | str | None = "sr3-faces",
    out_dir: str | Path | None = None,
    *,
    resume: bool | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> SR3:
    """Train SR3 (HR crops of config.data.image_size, LR = bicubic / config.data.scale); returns the EMA model."""
    config = _resolve(config, overrides)
    data = _dataset(images, config)
    d = config.data
    model = SR3(d.image_size, d.channels, d.scale, config.model.unet_kwargs(), config.schedule.to_dict())
    loss = SR3Loss(model.schedule, d.image_size, d.scale, config.loss, d.hflip)
    return _fit(model, loss, data, config, out_dir, resume, "sr3")


def train_regression(
    images: Tensor | Dataset | None = None,
    config: VisionConfig | str | None = "sr3-faces",
    out_dir: str | Path | None = None,
    *,
    resume: bool | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> RegressionSR:
    """Train the regression baseline (same UNet settings as SR3, L2 on the HR image); returns the EMA model."""
    config = _resolve(config, overrides)
    data = _dataset(images, config)
    d = config.data
    model = RegressionSR(d.image_size, d.channels, d.scale, config.model.unet_kwargs())
    loss = RegressionLoss(d.image_size, d.scale, d.hflip)
    return _fit(model, loss, data, config, out_dir, resume, "regression")


def train(
    config: VisionConfig,
    images: Tensor | Dataset | None = None,
    out_dir: str | Path | None = None,
    resume: bool | None = None,
) -> nn.Module:
    """Run config.task on config.data (or `images`); the tasks of Vision II train through their own modules."""
    if config.task in ("segdiff", "seg-unet", "ddpm-seg"):
        from .segmentation.commands import train as train_seg

        return train_seg(config, out_dir, resume)
    if config.task == "points":
        from .points.commands import train as train_points

        return train_points(config, out_dir, resume)
    if config.task == "anomaly":
        from .anomaly.commands import train as train_anomaly

        return train_anomaly(config, out_dir, resume)
    fn = {"ddpm": train_image_ddpm, "sr3": train_sr3, "regression": train_regression}[config.task]
    return fn(images, config, out_dir, resume=resume)


def _fit(model, loss, data, config: VisionConfig, out_dir, resume, task: str):
    """core's fit with the run's metadata, then the EMA weights on CPU."""
    metadata = {"task": task, "vision_config": to_dict(config)}
    result = fit(model, loss, data, config.train, _out(out_dir, config), resume=resume, metadata=metadata)
    return _final(result, model)


def _final(result, model: nn.Module) -> nn.Module:
    final = result.ema_model if result.ema_model is not None else result.model
    if final is None:  # ranks other than 0 under DDP
        final = model
    return final.to(torch.device("cpu")).eval()
