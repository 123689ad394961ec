"""[seg] section of VisionConfig: mask diffusion (task "segdiff"), its UNet baseline ("seg-unet"), DDPM-Seg."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SegSettings:
    """Segmentation settings; `n_samples` masks are averaged into the mean mask and its uncertainty."""

    n_samples: int = 5
