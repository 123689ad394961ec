"""`AnomalyDetector`: AnoDDPM for use inside other code (from_pretrained(dir).score(image) -> (map, score)).

A detector directory is what `omnidiffusion-vision train --config anomaly-textures` writes: the ImageDDPM
(config.json + model.safetensors, EMA weights), the run config with its [anomaly] settings (run_config.json; older
checkpoints kept them in the config.json metadata), and `anomaly_reference.safetensors` holding the mean training
image (the |x - mean| baseline).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from omnidiffusion.core.io import load_tensors, read_pretrained_config, save_tensors

from ..imaging import image_to_tensor
from ..models import ImageDDPM, open_checkpoint
from .anoddpm import reconstruct
from .maps import blur_residual_map, error_map, image_scores, mean_image_map
from .settings import AnomalyConfig

REFERENCE_FILE = "anomaly_reference.safetensors"


def settings_from_metadata(directory: str | Path) -> AnomalyConfig:
    """The [anomaly] section an older checkpoint kept in its config.json metadata (defaults when it has none)."""
    meta = read_pretrained_config(directory).get("metadata") or {}
    section = dict((meta.get("vision_config") or {}).get("anomaly") or {})
    known = AnomalyConfig.__dataclass_fields__
    return AnomalyConfig(**{k: v for k, v in section.items() if k in known})


def save_reference(directory: str | Path, mean_image: Tensor) -> Path:
    """Write the mean training image (C, H, W) in [0, 1] next to the model."""
    path = Path(directory) / REFERENCE_FILE
    save_tensors(path, {"mean_image": mean_image.detach().float().cpu().contiguous()})
    return path


class AnomalyDetector:
    """AnoDDPM detector: partial diffusion to t*, reconstruction, squared-error map and an image score."""

    def __init__(self, model: ImageDDPM, settings: AnomalyConfig, mean_image: Tensor | None = None) -> None:
        T = model.schedule.T
        if settings.t_star > T:
            raise ValueError(f"anomaly.t_star: expected an integer in [1, {T}] (steps of the model's table), got "
                             f"{settings.t_star}")  # fmt: skip
        self.model, self.settings, self.mean_image = model.eval(), settings, mean_image

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, device: str | torch.device = "cpu", **overrides
    ) -> AnomalyDetector:
        """Load a trained detector; its run config's [anomaly] settings, `overrides` replacing some of them
        (t_star=..., method=..., steps=...)."""
        known = AnomalyConfig.__dataclass_fields__
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ValueError(f"{unknown[0]}: not an [anomaly] setting; expected one of {', '.join(sorted(known))}")
        pre = open_checkpoint(directory, ImageDDPM, device=device)
        stored = pre.config.anomaly if pre.config is not None else settings_from_metadata(directory)
        model, settings = pre.model, replace(stored, **overrides)
        ref = Path(directory) / REFERENCE_FILE
        mean = load_tensors(ref)["mean_image"] if ref.is_file() else None
        return cls(model, settings, mean)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _check(self, x: Tensor) -> Tensor:
        m = self.model
        if x.ndim != 4 or x.shape[1] != m.channels or tuple(x.shape[-2:]) != (m.image_size, m.image_size):
            raise ValueError(
                f"images: expected images of shape (B, {m.channels}, {m.image_size}, {m.image_size}) (the model's "
                f"image size), got {tuple(x.shape)}"
            )
        if not torch.isfinite(x).all() or x.min() < -1e-6 or x.max() > 1 + 1e-6:
            raise ValueError("images: expected finite pixel values in [0, 1]")
        return x

    @torch.no_grad()
    def reconstruct(self, images: Tensor, seed: int | None = None) -> Tensor:
        """Reconstructions (B, C, H, W) in [0, 1] of pixel-range images (B, C, H, W), in batches."""
        x = self._check(images.float())
        s = self.settings
        gen = torch.Generator().manual_seed(s.seed if seed is None else seed)
        out = []
        for chunk in x.split(max(1, s.batch_size)):
            rec = reconstruct(
                self.model,
                chunk.to(self.device) * 2.0 - 1.0,
                s,
                method=s.method,
                steps=s.steps or None,
                generator=gen,
            )
            out.append(((rec + 1.0) / 2.0).cpu())
        return torch.cat(out)

    def score_batch(self, images: Tensor, seed: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(maps (B, H, W), image scores (B,), reconstructions (B, C, H, W)) of pixel-range images."""
        rec = self.reconstruct(images, seed)
        maps = error_map(images.float(), rec, self.settings.smooth_sigma)
        return maps, image_scores(maps, self.settings.score), rec

    def score(self, image) -> tuple[np.ndarray, float]:
        """Anomaly map (H, W) float32 and image score of one PIL image / ndarray (H, W[, C]) / tensor (C, H, W)."""
        x = image_to_tensor(image, self.model.channels)[None]  # (1, C, H, W) in [0, 1]
        maps, scores, _ = self.score_batch(x)
        return maps[0].numpy().astype(np.float32), float(scores[0])

    def baseline_maps(self, images: Tensor, smooth_sigma: float = 0.0) -> dict[str, Tensor]:
        """The baselines' maps (B, H, W): |x - mean training image| (when saved) and |x - blur(x)|."""
        s = self.settings
        out = {}
        if self.mean_image is not None:
            out["mean-image"] = mean_image_map(images.float(), self.mean_image.float(), smooth_sigma)
        out[f"blur-residual(sigma={s.blur_sigma:g})"] = blur_residual_map(images.float(), s.blur_sigma, smooth_sigma)
        return out


def overlay(image: Tensor, amap: Tensor, alpha: float = 0.5, vmax: float | None = None) -> Image.Image:
    """RGB overlay of a map (H, W) on an image (C, H, W) in [0, 1]: red intensity = map / vmax (default its max)."""
    if amap.shape != image.shape[-2:]:
        raise ValueError(f"amap: expected shape {tuple(image.shape[-2:])}, got {tuple(amap.shape)}")
    gray = image.float().mean(dim=0) if image.shape[0] == 3 else image[0].float()
    top = float(amap.max()) if vmax is None else float(vmax)
    heat = (amap.float() / top).clamp(0, 1) if top > 0 else torch.zeros_like(amap, dtype=torch.float32)
    rgb = torch.stack([gray * (1 - alpha * heat) + alpha * heat, gray * (1 - alpha * heat), gray * (1 - alpha * heat)])
    arr = (rgb.clamp(0, 1).numpy() * 255).round().astype(np.uint8).transpose(1, 2, 0)
    return Image.fromarray(arr, "RGB")


def map_image(amap: Tensor, vmax: float | None = None) -> Image.Image:
    """A map (H, W) as an 8-bit grayscale PNG scaled by vmax (default its max)."""
    top = float(amap.max()) if vmax is None else float(vmax)
    a = (amap.float() / top).clamp(0, 1) if top > 0 else torch.zeros_like(amap, dtype=torch.float32)
    return Image.fromarray((a.numpy() * 255).round().astype(np.uint8), "L")
