"""RePaint (Lugmayr et al. 2022) with any unconditional image model, through core's known-value conditioning.

RePaint is a sampler, not a model: at every reverse step of an unconditional DDPM the known pixels are replaced by a
fresh forward sample q(x_t | x0_known) (Alg. 1, line 5), the unknown pixels come from the model's reverse step
(line 7), and on the jump schedule the merged state is re-noised `jump_length` steps back towards noise and
denoised again, `jump_n_sample` - 1 extra times (sec. 4.2: j and r), so the hole harmonises with the known part.
The loop itself is `omnidiffusion.core.repaint`; this module validates images and masks, batches the work, draws
several inpaintings per image, and pastes the known pixels back exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from omnidiffusion.core import repaint
from omnidiffusion.core.checks import positive_int
from omnidiffusion.core.conditioning import repaint_schedule

from .imaging import check_images
from .masks import check_mask


def network_calls(steps: int, jump_length: int, jump_n_sample: int) -> int:
    """Denoiser evaluations RePaint makes for one image: the forward (downward) moves of its schedule."""
    order = repaint_schedule(steps, jump_length, jump_n_sample)
    return sum(1 for i, j in zip(order[:-1], order[1:], strict=True) if j > i)


def _masks(mask: Tensor, images: Tensor) -> Tensor:
    """(H, W) or (B, 1, H, W) bool -> (B, 1, H, W) bool, sizes checked against the images."""
    b, _, h, w = images.shape
    if mask.ndim == 4:
        if mask.shape[0] != b or mask.shape[1] != 1:
            raise ValueError(f"mask: expected shape (H, W) or ({b}, 1, {h}, {w}), got {tuple(mask.shape)}")
        return torch.stack([check_mask(m, (h, w)) for m in mask])[:, None]
    return check_mask(mask, (h, w))[None, None].expand(b, 1, h, w)


@torch.no_grad()
def repaint_inpaint(
    model,
    images: Tensor,
    mask: Tensor,
    *,
    steps: int = 100,
    jump_length: int = 5,
    jump_n_sample: int = 5,
    samples: int = 1,
    grid: str = "trailing",
    generator: torch.Generator | None = None,
    batch_size: int = 64,
) -> Tensor:
    """Fill the holes (mask False) of images (B, C, H, W) in [-1, 1]; returns (samples, B, C, H, W).

    `model` is an ImageDDPM or a core Denoiser of images (e.g. `from_diffusers(dir)`); `mask` is (H, W) shared by
    every image or (B, 1, H, W), True = keep. steps / jump_length / jump_n_sample are RePaint's t_T, j and r
    (r = 1: plain replacement, no resampling). The known pixels of every output equal the input exactly.
    """
    from .priors import as_image_prior

    model = as_image_prior(model)
    check_images(images, "images", channels=model.channels)
    steps, jump_length, jump_n_sample = (
        positive_int(steps, "steps"),
        positive_int(jump_length, "jump_length"),
        positive_int(jump_n_sample, "jump_n_sample"),
    )
    samples, batch_size = positive_int(samples, "samples"), positive_int(batch_size, "batch_size")
    masks = _masks(mask, images)
    full = masks.flatten(1).all(dim=1)  # (B,) True where nothing is to be filled
    if bool(full.any()):
        which = "the mask" if mask.ndim != 4 else f"mask {int(full.nonzero()[0])}"
        raise ValueError(
            f"mask: expected at least one pixel to fill (False / black = hole), got {which} keeping all "
            f"{masks.shape[-2] * masks.shape[-1]} pixels"
        )
    device = next(model.parameters()).device
    den = model.denoiser()
    outs = []
    for _ in range(samples):
        chunks = []
        for lo in range(0, images.shape[0], batch_size):
            x = images[lo : lo + batch_size].to(device)
            m = masks[lo : lo + batch_size].to(device)
            x_T = torch.randn(x.shape, generator=generator).to(device)
            y = repaint(
                den,
                x,
                m,
                steps=steps,
                grid=grid,
                jump_length=jump_length,
                jump_n_sample=jump_n_sample,
                x_T=x_T,
                generator=generator,
            )
            chunks.append(torch.where(m, x, y.clamp(-1.0, 1.0)).cpu())
        outs.append(torch.cat(chunks))
    return torch.stack(outs)

