"""What downstream code calls: `Segmenter.from_pretrained(dir).segment(image, n_samples)` -> (mask, uncertainty).

A checkpoint directory holds one of three segmenters, recognised from its files:
- SegDiff (task "segdiff"): n masks sampled through core `sample` are mapped from [-1, 1] to [0, 1] and averaged;
  mask = mean >= threshold (0.5: SegDiff's majority vote), uncertainty = the per-pixel standard deviation of the n
  draws (0 where they agree; at most 0.5).
- SegUNet (task "seg-unet"): mask = sigmoid(logits) >= threshold; uncertainty = p (1 - p) scaled to [0, 1] by 4
  (one forward pass: there are no draws).
- DDPM-Seg (task "ddpm-seg", folders ddpm/ and classifier/): the pixel-MLP ensemble's majority vote on the DDPM's
  features; uncertainty = the fraction of members that disagree with the vote.
Images: a PIL image or a pixel-range tensor (C, H, W) / (B, C, H, W) in [0, 1]. The mask comes back as the same
kind (PIL "L" 0/255 for a PIL input, float {0, 1} tensors otherwise), the uncertainty as a float tensor in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from omnidiffusion.core.checks import positive_int, real_number
from omnidiffusion.core.io import read_pretrained_config

from ..imaging import check_images
from ..models import ImageDDPM, open_checkpoint
from ..pipeline import as_image_batch
from ..settings import VisionConfig
from .models import SegDiff, SegUNet
from .pixel_classifier import PixelEnsemble

KINDS = ("segdiff", "seg-unet", "ddpm-seg")


def ensemble_statistics(draws: Tensor, threshold: float = 0.5) -> tuple[Tensor, Tensor, Tensor]:
    """SegDiff's fusion of n draws (n, B, 1, H, W) in [-1, 1]: (mean in [0, 1], mask mean >= threshold, std)."""
    if draws.ndim != 5:
        raise ValueError(f"draws: expected shape (n, B, 1, H, W), got {tuple(draws.shape)}")
    p = ((draws.double() + 1) / 2).clamp(0, 1)
    mean = p.mean(0)
    std = p.std(0, unbiased=False)
    return mean.float(), (mean >= threshold).float(), std.float()


def checkpoint_kind(directory: str | Path) -> str:
    """'segdiff', 'seg-unet' or 'ddpm-seg' from what `directory` holds (ValueError for anything else)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint: {directory}: no such directory")
    if (directory / "classifier" / "config.json").is_file() and (directory / "ddpm" / "config.json").is_file():
        return "ddpm-seg"
    cls = read_pretrained_config(directory)["class"]
    for kind, model_cls in (("segdiff", SegDiff), ("seg-unet", SegUNet)):
        if cls == f"{model_cls.__module__}:{model_cls.__qualname__}":
            return kind
    raise ValueError(f"checkpoint: {directory} holds a {cls!r} model, expected a segmentation model ({KINDS})")


class Segmenter:
    """Binary segmentation with a trained SegDiff, SegUNet or DDPM-Seg checkpoint (see the module docstring).

    `config`: the run config (the checkpoint's); the unset arguments of `segment` come from its [seg] n_samples
    and [sampler] (without one: 5 draws of SegDiff's full ancestral chain, seed 0).
    """

    def __init__(
        self, model, kind: str, classifier=None, threshold: float = 0.5, config: VisionConfig | None = None
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
        threshold = real_number(threshold, "threshold", low=0.0, high=1.0, low_open=True)
        self.model, self.kind, self.classifier, self.threshold = model.eval(), kind, classifier, threshold
        self.channels = model.channels
        self.image_size = model.image_size
        self.config = config

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        *,
        device: str | torch.device = "cpu",
        threshold: float | None = None,
        config: VisionConfig | None = None,
    ) -> Segmenter:
        """Load a directory written by `omnidiffusion-vision train` (segdiff-*, seg-unet-* or ddpm-seg-* configs).

        config: replaces the run config stored with the weights; threshold None: its seg.threshold (else 0.5).
        """
        kind = checkpoint_kind(directory)
        classifier = None
        if kind == "ddpm-seg":
            pre = open_checkpoint(directory, ImageDDPM, device=device, subfolder="ddpm")
            classifier = PixelEnsemble.from_pretrained(Path(directory) / "classifier")
        else:
            pre = open_checkpoint(directory, SegDiff if kind == "segdiff" else SegUNet, device=device)
        run = config if config is not None else pre.config
        if threshold is None:
            threshold = run.seg.threshold if run is not None else 0.5
        return cls(pre.model, kind, classifier=classifier, threshold=threshold, config=run)

    def segment_tensor(
        self,
        images: Tensor,
        n_samples: int | None = None,
        *,
        method: str | None = None,
        steps: int | None = None,
        grid: str | None = None,
        seed: int | None = None,
        batch_size: int = 256,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Pixel-range (B, C, H, W) -> (mask {0, 1}, uncertainty, foreground probability), each (B, 1, H, W).

        `n_samples` (>= 1) draws are fused (SegDiff only); unset arguments come from the run config (see the class).
        """
        if self.config is not None:
            c, s = self.config.seg, self.config.sampler
            n_samples = c.n_samples if n_samples is None else n_samples
            method, steps = method or s.method, s.steps if steps is None else steps
            grid, seed = grid or s.grid, s.seed if seed is None else seed
        else:  # the paper's sampler: every step of the table
            n_samples, method, grid = 5 if n_samples is None else n_samples, method or "ddpm", grid or "trailing"
            seed = 0 if seed is None else seed
        check_images(images, "images", channels=self.channels, low=0.0, high=1.0)
        n_samples = positive_int(n_samples, "n_samples")
        steps = None if steps is None else positive_int(steps, "steps")
        size = (self.image_size, self.image_size)
        if tuple(images.shape[-2:]) != size:
            raise ValueError(f"image: expected size {size} (the model's image_size), got {tuple(images.shape[-2:])}")
        if self.kind == "segdiff":
            gen = torch.Generator().manual_seed(seed)
            draws = self.model.sample_masks(
                images * 2 - 1, n_samples, method=method, steps=steps, grid=grid, generator=gen, batch_size=batch_size
            )
            mean, _, std = ensemble_statistics(draws)
            return (mean >= self.threshold).float(), std, mean
        if self.kind == "seg-unet":
            p = self.model.probabilities(images * 2 - 1, batch_size)
            return (p >= self.threshold).float(), 4 * p * (1 - p), p
        return self._ddpm_seg(images)

    def _ddpm_seg(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        from .features import DDPMFeatures

        spec = self.classifier.feature
        feats = DDPMFeatures(self.model, spec["blocks"], spec["steps"], spec.get("seed", 0))
        masks, dis, prob = [], [], []
        for image in images:
            f = feats(image)  # (D, H, W)
            x = f.reshape(f.shape[0], -1).T  # (H W, D)
            with torch.no_grad():
                votes = self.classifier(x).argmax(-1)  # (M, H W)
            label = votes.mode(0).values
            frac = (votes == 1).float().mean(0)
            masks.append(label.float().reshape(f.shape[1:]))
            dis.append((votes != label).float().mean(0).reshape(f.shape[1:]))
            prob.append(frac.reshape(f.shape[1:]))
        return torch.stack(masks)[:, None], torch.stack(dis)[:, None], torch.stack(prob)[:, None]

    def segment(self, image, n_samples: int | None = None, **kwargs):
        """Segment `image` (PIL / (C, H, W) / (B, C, H, W) in [0, 1]) -> (mask, uncertainty).

        SegDiff keyword options: method ("ddpm" = the paper's full chain, or "dpm++2m"), steps, grid, seed; unset
        ones come from the run config (see the class).
        """
        from PIL import Image

        x, kind = as_image_batch(image, self.channels, "image")
        mask, unc, _ = self.segment_tensor(x, n_samples, **kwargs)
        if kind == "pil":
            return Image.fromarray((mask[0, 0].numpy() * 255).astype("uint8"), "L"), unc[0]
        return (mask[0], unc[0]) if kind == "single" else (mask, unc)


def overlay(image: Tensor, mask: Tensor, alpha: float = 0.45) -> Tensor:
    """Pixel-range image (C, H, W) and mask (1, H, W) -> RGB (3, H, W) with the mask tinted red."""
    rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    red = torch.tensor([1.0, 0.0, 0.0])[:, None, None]
    m = (mask >= 0.5).float()
    return rgb * (1 - alpha * m) + alpha * m * red
