"""What downstream code calls: `SuperResolution(...).upscale(image)` and `Inpainter(...).inpaint(image, mask)`.

Both take a PIL image or a pixel-range tensor ((C, H, W) or (B, C, H, W), values in [0, 1]) and return the same
kind: a PIL image for a PIL input, a tensor of the input's rank otherwise.

    sr = SuperResolution.from_pretrained("runs/vision/sr3-faces")
    big = sr.upscale(Image.open("face_6x6.png"), method="dpm++2m", steps=25)
    fill = Inpainter.from_pretrained("runs/vision/ddpm-faces").inpaint(img, Image.open("mask.png"))
    fill = Inpainter(from_diffusers("ddpm-celebahq-256")).inpaint(img, "box")     # a diffusers folder
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from omnidiffusion.core import Denoiser
from omnidiffusion.core.checks import resolve_device

from .flags import as_flags
from .imaging import check_images, image_to_tensor, tensor_to_pil, to_model_range, to_pixel_range
from .inpaint import repaint_inpaint
from .masks import make_mask
from .models import SR3, ImageDDPM
from .priors import DenoiserPrior, as_image_prior, load_image_prior
from .sr3 import check_lr_size, sr3_upscale


def _as_batch(image, channels: int, name: str) -> tuple[Tensor, str]:
    """PIL / (C, H, W) / (B, C, H, W) -> ((B, C, H, W) in [0, 1], kind) with kind in pil | single | batch."""
    if isinstance(image, Image.Image):
        return image_to_tensor(image, channels, name)[None], "pil"
    if isinstance(image, Tensor) and not image.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor with values in [0, 1], got dtype {image.dtype}")
    if isinstance(image, Tensor) and image.ndim == 3:
        return image_to_tensor(image, channels, name)[None], "single"
    if isinstance(image, Tensor) and image.ndim == 4:
        return check_images(image.float(), name, channels=channels, low=0.0, high=1.0), "batch"
    raise ValueError(
        f"{name}: expected a PIL image or a tensor (C, H, W) / (B, C, H, W) in [0, 1], got {type(image).__name__}"
    )


def _restore(x: Tensor, kind: str):
    if kind == "pil":
        return tensor_to_pil(x[0])
    return x[0] if kind == "single" else x


class SuperResolution:
    """SR3 super-resolution: `upscale` returns the image `scale` times larger (Saharia et al. 2021)."""

    def __init__(self, model: SR3) -> None:
        if not isinstance(model, SR3):
            raise ValueError(f"model: expected an SR3 model, got {type(model).__name__}")
        self.model = model.eval()

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> SuperResolution:
        """Load an SR3 checkpoint directory written by `omnidiffusion-vision train --config sr3-...`."""
        return cls(SR3.from_pretrained(directory, map_location=resolve_device(device)))

    @property
    def scale(self) -> int:
        return self.model.scale

    def upscale(
        self,
        image,
        *,
        method: str = "dpm++2m",
        steps: int = 25,
        grid: str = "trailing",
        samples: int = 1,
        seed: int = 0,
        tile: int | str = "auto",
    ):
        """Super-resolve `image` (LR); `samples` > 1 returns the mean of that many draws (a posterior-mean estimate).

        method "ddpm" with steps = model.schedule.T is the paper's full ancestral chain. `tile`: "auto" (tiles for
        large outputs, announced on stderr), 0 (never) or a tile side in HR pixels (sr3.choose_tile).
        """
        x, kind = _as_batch(image, self.model.channels, "image")
        check_lr_size(self.model, x.shape[-2], x.shape[-1], "image")
        gen = torch.Generator().manual_seed(seed)
        with as_flags(lr="image"):
            draws = sr3_upscale(
                self.model,
                to_model_range(x),
                method=method,
                steps=steps,
                grid=grid,
                samples=samples,
                generator=gen,
                tile=tile,
            )
        return _restore(to_pixel_range(draws.mean(0)), kind)


class Inpainter:
    """RePaint inpainting with an unconditional image model (Lugmayr et al. 2022).

    `model`: an ImageDDPM, or a core Denoiser of images such as `from_diffusers(dir)` (wrapped in
    priors.DenoiserPrior: image size and channels from the diffusers UNet config).
    """

    def __init__(self, model: ImageDDPM | DenoiserPrior | Denoiser) -> None:
        self.model = as_image_prior(model).eval()

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> Inpainter:
        """Load an ImageDDPM checkpoint directory (e.g. from `omnidiffusion-vision train --config ddpm-faces`) or a
        local diffusers folder (model_index.json + unet/ + scheduler/, or a bare UNet2DModel folder)."""
        return cls(load_image_prior(directory, resolve_device(device)))

    def inpaint(
        self,
        image,
        mask,
        *,
        steps: int = 100,
        jump_length: int = 5,
        jump_n_sample: int = 5,
        samples: int = 1,
        seed: int = 0,
    ):
        """Fill the holes of `image`; `mask`: PIL image / tensor (white or True = keep) or box | half | lines |
        strokes | a mask file path. The image size must be the model's; known pixels are returned unchanged."""
        x, kind = _as_batch(image, self.model.channels, "image")
        size = (self.model.image_size, self.model.image_size)
        if tuple(x.shape[-2:]) != size:
            raise ValueError(f"image: expected size {size} (the model's image_size), got {tuple(x.shape[-2:])}")
        if isinstance(mask, Image.Image):
            mask = image_to_tensor(mask, 1, "mask")[0] >= 0.5
        m = make_mask(mask, size, seed=seed)
        gen = torch.Generator().manual_seed(seed)
        draws = repaint_inpaint(
            self.model,
            to_model_range(x),
            m,
            steps=steps,
            jump_length=jump_length,
            jump_n_sample=jump_n_sample,
            samples=samples,
            generator=gen,
        )
        out = to_pixel_range(draws.mean(0))
        out = torch.where(m[None, None], x, out)  # exact known pixels in pixel range too
        return _restore(out, kind)
