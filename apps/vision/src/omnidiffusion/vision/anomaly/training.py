"""Training AnoDDPM's model (Wyatt et al. 2022): an ImageDDPM on anomaly-free images, with the configured noise.

`train(config, out_dir)` fits `anoddpm.AnoDDPMLoss` (Gaussian or simplex noise at steps below
anomaly.train_max_index) through vision's `fit_model` (core `fit`, run config stored) and writes the mean training
image beside the weights (`anomaly_reference.safetensors`, the |x - mean| baseline of `evaluate`). Data: the
bundled textures / digits of [anomaly], or the PNG/JPEG files of data.root when data.source = "folder".
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from omnidiffusion.core.training import TrainResult, is_main_process

from ..data import training_images
from ..models import ImageDDPM
from ..settings import VisionConfig
from ..training import TensorImages, fit_model
from .anoddpm import AnoDDPMLoss
from .data import normal_images
from .pipeline import save_reference


def train(config: VisionConfig, out_dir: str | Path, *, resume: bool | None = None) -> TrainResult:
    """config.task "anomaly": AnoDDPM's DDPM on the normal images into `out_dir`; returns core's TrainResult."""
    if config.task != "anomaly":
        config = replace(config, task="anomaly")
    d = config.data
    if d.source == "folder":
        data = training_images("folder", d.channels, d.image_size, d.root, resize=d.resize)
        mean = torch.stack([data[i] for i in range(len(data))]).mean(dim=0) * 0.5 + 0.5
    else:
        if d.channels != 1:
            raise ValueError(f"data.channels: the bundled anomaly data are grayscale (1 channel), got {d.channels}")
        x = normal_images(config.anomaly, "train", d.image_size)  # (N, 1, S, S) in [0, 1]
        data = TensorImages((x * 2.0 - 1.0).contiguous())
        mean = x.mean(dim=0)
    model = ImageDDPM(
        d.image_size, d.channels, config.model.unet_kwargs(), config.schedule.to_dict(), config.prediction
    )
    loss = AnoDDPMLoss(config.anomaly, d.hflip)
    result = fit_model(model, loss, data, config, out_dir, resume, "anomaly")
    if is_main_process():
        save_reference(out_dir, mean)
    return result
