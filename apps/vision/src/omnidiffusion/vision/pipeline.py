"""What downstream code calls: `SuperResolution(...).upscale(image)` and `Inpainter(...).inpaint(image, mask)`.

Both take a PIL image or a pixel-range tensor ((C, H, W) or (B, C, H, W), values in [0, 1]) and return the same
kind: a PIL image for a PIL input, a tensor of the input's rank otherwise.

    sr = SuperResolution.from_pretrained("runs/vision/sr3-faces")        # weights + the run config of `train`
    big = sr.upscale(Image.open("face_6x6.png"), method="dpm++2m", steps=25)   # unset: the run's [sampler]
    fill = Inpainter.from_pretrained("runs/vision/ddpm-faces").inpaint(img, Image.open("mask.png"))
    fill = Inpainter(from_diffusers("ddpm-celebahq-256")).inpaint(img, "box")     # a diffusers folder
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from omnidiffusion.core import Denoiser

from .flags import as_flags
from .imaging import check_images, image_to_tensor, tensor_to_pil, to_model_range, to_pixel_range
from .inpaint import repaint_inpaint
from .masks import make_mask
from .models import SR3, ImageDDPM, open_checkpoint
from .priors import DenoiserPrior, as_image_prior, load_image_prior_checkpoint
from .settings import RepaintConfig, VisionConfig, VisionSamplerConfig
from .sr3 import check_lr_size, sr3_upscale


def as_image_batch(image, channels: int, name: str) -> tuple[Tensor, str]:
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


def from_image_batch(x: Tensor, kind: str):
    """The inverse of `as_image_batch`: a PIL image, a (C, H, W) or the (B, C, H, W) tensor itself."""
    if kind == "pil":
        return tensor_to_pil(x[0])
    return x[0] if kind == "single" else x


def _given(value, default):
    return default if value is None else value


class SuperResolution:
    """SR3 super-resolution: `upscale` returns the image `scale` times larger (Saharia et al. 2021).

    `config`: the run config (the checkpoint's); `upscale`'s unset arguments come from its [sampler].
    """

    def __init__(self, model: SR3, config: VisionConfig | None = None) -> None:
        if not isinstance(model, SR3):
            raise ValueError(f"model: expected an SR3 model, got {type(model).__name__}")
        self.model = model.eval()
        self.config = config

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, device: str | torch.device = "cpu", config: VisionConfig | None = None
    ) -> SuperResolution:
        """Load an SR3 checkpoint directory written by `omnidiffusion-vision train --config sr3-...`.

        config: replaces the run config stored with the weights (the command line passes it with --set applied).
        """
        pre = open_checkpoint(directory, SR3, device=device)
        return cls(pre.model, config if config is not None else pre.config)

    @property
    def sampler(self) -> VisionSamplerConfig:
        """The [sampler] that upscale's unset arguments come from (the defaults without a run config)."""
        return self.config.sampler if self.config is not None else VisionSamplerConfig()

    @property
    def scale(self) -> int:
        return self.model.scale

    def upscale(
        self,
        image,
        *,
        method: str | None = None,
        steps: int | None = None,
        grid: str | None = None,
        samples: int | None = None,
        seed: int | None = None,
        tile: int | str | None = None,
    ):
        """Super-resolve `image` (LR); `samples` > 1 returns the mean of that many draws (a posterior-mean estimate).

        Unset arguments come from the run config's [sampler] (dpm++2m, 25 steps, trailing, 1 sample, seed 0, tile
        "auto" by default). method "ddpm" with steps = the schedule's length is the paper's full ancestral chain.
        `tile`: "auto" (tiles for large outputs, announced on stderr), 0 (never) or a tile side in HR pixels
        (sr3.choose_tile).
        """
        s = self.sampler
        x, kind = as_image_batch(image, self.model.channels, "image")
        check_lr_size(self.model, x.shape[-2], x.shape[-1], "image")
        gen = torch.Generator().manual_seed(_given(seed, s.seed))
        with as_flags(lr="image"):
            draws = sr3_upscale(
                self.model,
                to_model_range(x),
                method=_given(method, s.method),
                steps=_given(steps, s.steps),
                grid=_given(grid, s.grid),
                samples=_given(samples, s.samples),
                generator=gen,
                tile=_given(tile, s.tile),
            )
        return from_image_batch(to_pixel_range(draws.mean(0)), kind)


class Inpainter:
    """RePaint inpainting with an unconditional image model (Lugmayr et al. 2022).

    `model`: an ImageDDPM, or a core Denoiser of images such as `from_diffusers(dir)` (wrapped in
    priors.DenoiserPrior: image size and channels from the diffusers UNet config). `config`: the run config;
    `inpaint`'s unset arguments come from its [repaint] table.
    """

    def __init__(self, model: ImageDDPM | DenoiserPrior | Denoiser, config: VisionConfig | None = None) -> None:
        self.model = as_image_prior(model).eval()
        self.config = config

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, device: str | torch.device = "cpu", config: VisionConfig | None = None
    ) -> Inpainter:
        """Load an ImageDDPM checkpoint directory (e.g. from `omnidiffusion-vision train --config ddpm-faces`) or a
        local diffusers folder (model_index.json + unet/ + scheduler/, or a bare UNet2DModel folder).

        config: replaces the run config stored with the weights (a diffusers folder has none).
        """
        model, stored = load_image_prior_checkpoint(directory, device)
        return cls(model, config if config is not None else stored)

    @property
    def repaint(self) -> RepaintConfig:
        """The [repaint] table that inpaint's unset arguments come from (the defaults without a run config)."""
        return self.config.repaint if self.config is not None else RepaintConfig()

    def inpaint(
        self,
        image,
        mask,
        *,
        steps: int | None = None,
        jump_length: int | None = None,
        jump_n_sample: int | None = None,
        samples: int | None = None,
        seed: int | None = None,
    ):
        """Fill the holes of `image`; `mask`: PIL image / tensor (white or True = keep) or box | half | lines |
        strokes | a mask file path. The image size must be the model's; known pixels are returned unchanged.
        Unset arguments come from the run config's [repaint] (100 steps, j = 5, r = 5, 1 sample, seed 0 by default).
        """
        r = self.repaint
        seed = _given(seed, r.seed)
        x, kind = as_image_batch(image, self.model.channels, "image")
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
            steps=_given(steps, r.steps),
            jump_length=_given(jump_length, r.jump_length),
            jump_n_sample=_given(jump_n_sample, r.jump_n_sample),
            samples=_given(samples, r.samples),
            generator=gen,
        )
        out = to_pixel_range(draws.mean(0))
        out = torch.where(m[None, None], x, out)  # exact known pixels in pixel range too
        return from_image_batch(out, kind)
