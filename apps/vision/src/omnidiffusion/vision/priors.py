"""Unconditional image priors from either checkpoint format: our ImageDDPM folder or a local diffusers folder.

    model = load_image_prior("runs/vision/ddpm-faces")      # config.json with "class" + model.safetensors
    model = load_image_prior("ddpm-cifar10-32")             # model_index.json + unet/ + scheduler/, or a bare UNet
    Inpainter(model).inpaint(img, "box");  model.generate(4, method="ddim", steps=50)

A diffusers folder is read by `omnidiffusion.core.interop.from_diffusers` (never downloaded, never unpickled) and
wrapped in `DenoiserPrior`, which has what ImageDDPM's users need: `.denoiser()`, `.channels`, `.image_size`,
`.schedule`, `.generate(...)`. The image shape comes from the UNet config (sample_size, in_channels); the x0
clipping is the scheduler's clip_sample (already in the Denoiser's x0_hooks).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from omnidiffusion.core import Denoiser
from omnidiffusion.core.checks import positive_int, resolve_device

from .models import ImageDDPM, draw_images, open_checkpoint
from .settings import VisionConfig


def _unet_config(den: Denoiser) -> dict:
    unet = getattr(den.net, "unet", None)
    config = getattr(unet, "config", None)
    return dict(config) if config is not None else {}


class DenoiserPrior(nn.Module):
    """A core Denoiser of images (e.g. `from_diffusers(dir)`) with ImageDDPM's interface.

    image_size / channels default to the diffusers UNet config's sample_size / in_channels.
    """

    def __init__(self, denoiser: Denoiser, image_size: int | None = None, channels: int | None = None) -> None:
        super().__init__()
        if not isinstance(denoiser, Denoiser):
            raise ValueError(f"denoiser: expected a core Denoiser (e.g. from_diffusers(dir)), got "
                             f"{type(denoiser).__name__}")
        cfg = _unet_config(denoiser)
        kind = cfg.get("_class_name")
        if kind is not None and kind != "UNet2DModel":
            raise ValueError(f"denoiser: expected an unconditional image UNet (UNet2DModel), got {kind}")
        size = image_size if image_size is not None else cfg.get("sample_size")
        if isinstance(size, (list, tuple)):
            if len(size) != 2 or size[0] != size[1]:
                raise ValueError(f"denoiser: expected a square sample_size, got {size}")
            size = size[0]
        if size is None:
            raise ValueError("image_size: the denoiser's network has no sample_size; pass image_size=")
        ch = channels if channels is not None else cfg.get("in_channels")
        if ch is None:
            raise ValueError("channels: the denoiser's network has no in_channels; pass channels=")
        self.image_size, self.channels = positive_int(size, "image_size"), positive_int(ch, "channels")
        self._den = denoiser
        self.net = denoiser.net if isinstance(denoiser.net, nn.Module) else None
        self.schedule = denoiser.schedule
        self.prediction = denoiser.prediction

    def denoiser(self, clip: bool = True) -> Denoiser:
        """The wrapped Denoiser; clip=False drops its x0 hooks (the scheduler's clip_sample)."""
        if clip:
            return self._den
        d = self._den
        return Denoiser(d.net, d.schedule, d.prediction, learned_variance=d.learned_variance, sigma_data=d.sigma_data)

    @torch.no_grad()
    def generate(self, n: int, *, method: str = "ddpm", steps: int | None = None, grid: str = "trailing",
                 generator: torch.Generator | None = None, progress: bool = False) -> Tensor:
        """Draw n images (n, C, H, W) in [-1, 1], as ImageDDPM.generate."""
        return draw_images(self, n, method=method, steps=steps, grid=grid, generator=generator, progress=progress)


def as_image_prior(model, name: str = "model") -> ImageDDPM | DenoiserPrior:
    """ImageDDPM and DenoiserPrior pass through; a core Denoiser is wrapped in DenoiserPrior."""
    if isinstance(model, (ImageDDPM, DenoiserPrior)):
        return model
    if isinstance(model, Denoiser):
        return DenoiserPrior(model)
    raise ValueError(f"{name}: expected an ImageDDPM or a core Denoiser (from_diffusers), got {type(model).__name__}")


def load_image_prior(directory: str | Path, device: str | torch.device = "cpu") -> ImageDDPM | DenoiserPrior:
    """An unconditional image model from `directory`: a diffusers folder (detected by its files) or ours."""
    return load_image_prior_checkpoint(directory, device)[0]


def load_image_prior_checkpoint(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[ImageDDPM | DenoiserPrior, VisionConfig | None]:
    """(the image model of `directory`, its run config): ours through `open_checkpoint`, a diffusers folder
    (detected by its files) through core.interop (no run config)."""
    from omnidiffusion.core.interop import from_diffusers, is_diffusers_folder

    device = resolve_device(device)
    if is_diffusers_folder(directory):
        return DenoiserPrior(from_diffusers(directory, device=device)), None
    pre = open_checkpoint(directory, ImageDDPM, device=device)
    return pre.model, pre.config


__all__ = ["DenoiserPrior", "as_image_prior", "load_image_prior", "load_image_prior_checkpoint"]
