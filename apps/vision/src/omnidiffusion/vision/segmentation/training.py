"""Training of the segmentation models, all through core's `fit` (EMA, atomic checkpoints, exact resume).

- `train_segdiff(images, masks, config, out_dir)`: SegDiff (Amit et al. 2021): the mask m in {0, 1} is mapped to
  x0 = 2m - 1 in [-1, 1] and the network learns core `denoising_loss` (L_simple, eps-MSE at a uniformly drawn table
  step of the T = 100 schedule) conditioned on the image.
- `train_seg_unet(images, masks, config, out_dir)`: the same-size UNet baseline with BCE + soft Dice on its logits
  (the usual medical-segmentation loss; Milletari et al. 2016 for the Dice term), for the same number of steps.
- `train(config, out_dir, *, resume=None)`: config.task segdiff | seg-unet | ddpm-seg on `data.training_data(config)`
  (what `omnidiffusion-vision train` runs); returns core's TrainResult, the run config stored in out_dir.
Both augment with random left-right and up-down flips of image and mask together (torch's global RNG, which core's
checkpoints save). Images are (N, C, H, W) in [0, 1] and masks (N, 1, H, W) in {0, 1}; the networks see [-1, 1].
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from omnidiffusion.core import Denoiser, clip_x0, denoising_loss
from omnidiffusion.core.tensors import append_dims
from omnidiffusion.core.training import TrainResult, unwrap_model

from ..training import final_model, fit_model
from .data import check_pairs, training_data
from .ddpm_seg import fit_ddpm_seg
from .models import SegDiff, SegUNet

TASKS = ("segdiff", "seg-unet", "ddpm-seg")


class ImageMaskPairs(Dataset):
    """(image (C, H, W), mask (1, H, W)) pairs in [-1, 1] from pixel-range images and {0, 1} masks."""

    def __init__(self, images: Tensor, masks: Tensor) -> None:
        check_pairs(images, masks)
        self.images = (images.float() * 2 - 1).contiguous()
        self.masks = ((masks.float() >= 0.5).float() * 2 - 1).contiguous()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.images[i], self.masks[i]


def flip_pair(image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Random left-right and up-down flips of (B, C, H, W) images and (B, 1, H, W) masks, the same per pair."""
    b = image.shape[0]
    for dim in (-1, -2):
        flip = (torch.rand(b) < 0.5).to(image.device)[:, None, None, None]
        image = torch.where(flip, image.flip(dim), image)
        mask = torch.where(flip, mask.flip(dim), mask)
    return image, mask


class _KeepX0:
    """A Denoiser proxy that keeps x0_hat of its last call, so one network call serves both loss terms."""

    def __init__(self, denoiser: Denoiser) -> None:
        self.inner, self.schedule, self.prediction = denoiser, denoiser.schedule, denoiser.prediction
        self.x0: Tensor | None = None

    def predict(self, x_t: Tensor, t: Tensor, **cond):
        out = self.inner.predict(x_t, t, **cond)
        self.x0 = out.x0
        return out


def soft_dice_loss(p: Tensor, y: Tensor, smooth: float = 1.0) -> Tensor:
    """1 - (2 sum p y + s) / (sum p + sum y + s) per image, batch mean; p, y (B, 1, H, W) in [0, 1]."""
    p, y = p.flatten(1), y.flatten(1)
    return (1 - (2 * (p * y).sum(1) + smooth) / (p.sum(1) + y.sum(1) + smooth)).mean()


class SegDiffLoss:
    """loss_fn(model, batch) for `fit`: flips, core `denoising_loss` on the mask with image conditioning, plus
    `dice_weight` x soft Dice and `bce_weight` x binary cross-entropy of the same call's x0_hat, mapped to
    p = (x0_hat + 1) / 2, against the {0, 1} mask (both 0 = the paper's loss). The BCE term is meant for SegDiff's
    sigmoid mask head, where p = sigmoid(network output); p is clamped to [1e-6, 1 - 1e-6]."""

    def __init__(
        self, flips: bool = True, dice_weight: float = 0.0, t_power: float = 1.0, bce_weight: float = 0.0
    ) -> None:
        if not t_power > 0:
            raise ValueError(f"t_power: expected a positive number, got {t_power}")
        if not bce_weight >= 0:
            raise ValueError(f"bce_weight: expected a number >= 0, got {bce_weight}")
        self.flips, self.dice_weight, self.t_power = flips, float(dice_weight), float(t_power)
        self.bce_weight = float(bce_weight)

    def __call__(self, model: nn.Module, batch) -> Tensor:
        image, mask = batch
        if self.flips:
            image, mask = flip_pair(image, mask)
        inner = unwrap_model(model)  # DDP wraps the SegDiff
        den = _KeepX0(Denoiser(model, inner.schedule, inner.prediction))
        t = draw_steps(inner.schedule, mask.shape[0], self.t_power).to(mask.device)
        if getattr(inner, "self_condition", False):
            noise, cond = _self_conditioning_draw(model, inner, mask, image, t)
            loss = denoising_loss(den, mask, t=t, noise=noise, image=image, x0_prev=cond)
        else:
            loss = denoising_loss(den, mask, t=t, image=image)
        y = (mask + 1) / 2
        if self.dice_weight:
            loss = loss + self.dice_weight * soft_dice_loss(((den.x0 + 1) / 2).clamp(0, 1), y)
        if self.bce_weight:
            p = ((den.x0 + 1) / 2).clamp(1e-6, 1 - 1e-6)
            loss = loss + self.bce_weight * F.binary_cross_entropy(p, y)
        return loss


def draw_steps(schedule, n: int, power: float = 1.0) -> Tensor:
    """n training times on the table grid: step k in {0..T-1} with P(k) = ((k+1)/T)^p - (k/T)^p, i.e. floor(T u^(1/p))
    for u ~ U(0, 1); p = 1 is uniform (the paper), p > 1 draws the noisier steps more often."""
    u = torch.rand(n, dtype=torch.float64) ** (1.0 / power)
    return schedule.t_of_index(torch.floor(u * schedule.T).clamp(max=schedule.T - 1))


def _self_conditioning_draw(model: nn.Module, inner: nn.Module, mask: Tensor, image: Tensor, t: Tensor):
    """Self-conditioning's training draw (Chen et al. 2022): noise for the batch, and for a random half of it the
    model's own x0_hat at (x_t, t) with zeros fed back (no gradient, clipped to [-1, 1]); zeros elsewhere."""
    b = mask.shape[0]
    noise = torch.randn_like(mask)
    cond = torch.zeros_like(mask)
    use = torch.rand(b) < 0.5
    if bool(use.any()):
        idx = use.nonzero()[:, 0].to(mask.device)
        with torch.no_grad():
            out = Denoiser(model, inner.schedule, inner.prediction, x0_hooks=[clip_x0()])
            x0 = mask[idx]
            a = append_dims(inner.schedule.alpha(t[idx]), x0.ndim).to(x0.dtype)
            s = append_dims(inner.schedule.sigma(t[idx]), x0.ndim).to(x0.dtype)
            cond[idx] = out.predict(a * x0 + s * noise[idx], t[idx], image=image[idx]).x0.to(cond.dtype)
    return noise, cond


def bce_dice_loss(logits: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """BCE-with-logits + (1 - soft Dice), Dice = (2 sum p y + s) / (sum p + sum y + s) per image, batch mean."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    return bce + soft_dice_loss(torch.sigmoid(logits), target, smooth)


class SegUNetLoss:
    """loss_fn(model, batch) for `fit`: flips, then BCE + Dice of the logits against the {0, 1} mask."""

    def __init__(self, flips: bool = True) -> None:
        self.flips = flips

    def __call__(self, model: nn.Module, batch) -> Tensor:
        image, mask = batch
        if self.flips:
            image, mask = flip_pair(image, mask)
        return bce_dice_loss(model(image), (mask + 1) / 2)


def segdiff_from_config(config, channels: int) -> SegDiff:
    """A fresh SegDiff from a VisionConfig's [model], [schedule], [data] and [seg] sections."""
    s = config.seg
    return SegDiff(
        config.data.image_size,
        channels,
        config.model.unet_kwargs(),
        config.schedule.to_dict(),
        config.prediction,
        s.fusion,
        s.encoder_blocks,
        s.encoder_growth,
        s.self_condition,
        s.mask_head,
    )


def seg_unet_from_config(config, channels: int) -> SegUNet:
    """The same-size UNet baseline for a VisionConfig (same [model] and encoder settings as SegDiff)."""
    s = config.seg
    return SegUNet(config.data.image_size, channels, config.model.unet_kwargs(), s.encoder_blocks, s.encoder_growth)


def _check_size(images: Tensor, config) -> None:
    size = config.data.image_size
    if tuple(images.shape[-2:]) != (size, size):
        raise ValueError(f"images: expected {size}x{size} (data.image_size), got {tuple(images.shape[-2:])}")


def _segdiff_run(images: Tensor, masks: Tensor, config, out_dir, resume: bool | None) -> TrainResult:
    check_pairs(images, masks)
    _check_size(images, config)
    s = config.seg
    if s.bce_weight and s.mask_head != "sigmoid":
        raise ValueError(
            f"seg.bce_weight = {s.bce_weight} needs seg.mask_head = 'sigmoid' (x0_hat in (-1, 1)), got {s.mask_head!r}"
        )
    model = segdiff_from_config(config, images.shape[1])
    loss = SegDiffLoss(s.flips, s.dice_weight, s.t_power, s.bce_weight)
    return fit_model(model, loss, ImageMaskPairs(images, masks), config, out_dir, resume, "segdiff")


def _seg_unet_run(images: Tensor, masks: Tensor, config, out_dir, resume: bool | None) -> TrainResult:
    check_pairs(images, masks)
    _check_size(images, config)
    model = seg_unet_from_config(config, images.shape[1])
    data = ImageMaskPairs(images, masks)
    return fit_model(model, SegUNetLoss(config.seg.flips), data, config, out_dir, resume, "seg-unet")


def train_segdiff(
    images: Tensor, masks: Tensor, config, out_dir: str | Path | None = None, *, resume: bool | None = None
) -> SegDiff:
    """Train SegDiff on pixel-range images (N, C, S, S) and masks (N, 1, S, S); returns the EMA model (saved too)."""
    return final_model(_segdiff_run(images, masks, _as_task(config, "segdiff"), out_dir, resume))


def train_seg_unet(
    images: Tensor, masks: Tensor, config, out_dir: str | Path | None = None, *, resume: bool | None = None
) -> SegUNet:
    """Train the same-size UNet baseline (BCE + Dice) on the same data and steps; returns the EMA model."""
    return final_model(_seg_unet_run(images, masks, _as_task(config, "seg-unet"), out_dir, resume))


def _as_task(config, task: str):
    return config if config.task == task else replace(config, task=task)


def train(config, out_dir: str | Path, *, resume: bool | None = None) -> TrainResult:
    """config.task segdiff | seg-unet | ddpm-seg on `training_data(config)` into `out_dir`; core's TrainResult.

    For ddpm-seg it is the pixel ensemble's (out_dir/classifier; the DDPM is in out_dir/ddpm).
    """
    if config.task not in TASKS:
        raise ValueError(f"task: expected one of {TASKS} (segmentation), got {config.task!r}")
    images, masks = training_data(config)
    run = {"segdiff": _segdiff_run, "seg-unet": _seg_unet_run, "ddpm-seg": fit_ddpm_seg}[config.task]
    return run(images, masks, config, out_dir, resume)
