"""`PointCloudDiffusion`: what downstream code calls, numpy in and numpy out.

pipe = PointCloudDiffusion.from_pretrained("runs/vision/points-shapes")
clouds = pipe.generate(8, 256)                 # (8, 256, 3) float32
full = pipe.complete(partial)                  # (K, 3) or (B, K, 3) -> (N, 3) or (B, N, 3); first K = partial
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from omnidiffusion.core.checks import positive_int, real_number

from ..models import open_checkpoint
from ..settings import VisionConfig
from .model import PointDiffusionModel

_FROM_CONFIG = object()  # from_pretrained's "not given": the run config's value (or the default without one)


class PointCloudDiffusion:
    """Generation and PVD-style completion with a trained PointDiffusionModel; `method`/`steps` pick the sampler.

    `clip` clamps x0_hat while sampling (1.5 suits the bundled shapes and unit-sphere data; None turns it off).
    `config`: the run config; generate / complete seed with its sampler.seed when no seed is given (else 0).
    """

    def __init__(
        self,
        model: PointDiffusionModel,
        method: str = "dpm++2m",
        steps: int = 25,
        grid: str = "trailing",
        clip: float | None = 1.5,
        config: VisionConfig | None = None,
    ) -> None:
        if not isinstance(model, PointDiffusionModel):
            raise ValueError(f"model: expected a PointDiffusionModel, got {type(model).__name__}")
        steps = positive_int(steps, "steps")
        clip = None if clip is None else real_number(clip, "clip", low=0.0, low_open=True)
        self.model, self.method, self.steps, self.grid, self.clip = model.eval(), method, steps, grid, clip
        self.config = config  # the run config (from_pretrained: the checkpoint's); its sampler.seed is the seed

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        *,
        device: str | torch.device = "cpu",
        method: str | None = None,
        steps: int | None = None,
        grid: str | None = None,
        clip: float | None = _FROM_CONFIG,
        config: VisionConfig | None = None,
    ) -> PointCloudDiffusion:
        """Load a directory written by `omnidiffusion-vision train --config points-shapes` (or save_pretrained).

        Unset sampler arguments come from the run config (`config`, else the one stored with the weights): its
        [sampler] method / steps / grid and points.clip (0 = off); without one, dpm++2m, 25 steps, clip 1.5.
        """
        pre = open_checkpoint(directory, PointDiffusionModel, device=device)
        run = config if config is not None else pre.config
        if run is not None:
            s = run.sampler
            method, steps, grid = method or s.method, s.steps if steps is None else steps, grid or s.grid
            clip = (run.points.clip or None) if clip is _FROM_CONFIG else clip
        return cls(pre.model, method or "dpm++2m", 25 if steps is None else steps, grid or "trailing",
                   clip=1.5 if clip is _FROM_CONFIG else clip, config=run)  # fmt: skip

    @property
    def n_points(self) -> int:
        return self.model.n_points

    def _seed(self, seed: int | None) -> int:
        return seed if seed is not None else self.config.sampler.seed if self.config is not None else 0

    def generate(self, n: int, n_points: int | None = None, seed: int | None = None) -> np.ndarray:
        """n new clouds: (n, n_points, 3) float32 (n_points defaults to the training size; seed: the run's)."""
        x = self.model.generate(
            n, n_points, method=self.method, steps=self.steps, grid=self.grid,
            generator=torch.Generator().manual_seed(self._seed(seed)), clip=self.clip,
        )  # fmt: skip
        return x.numpy().astype(np.float32)

    def complete(self, partial: np.ndarray, n_points: int | None = None, seed: int | None = None) -> np.ndarray:
        """Complete (K, 3) or (B, K, 3) observed points to n_points per cloud; the first K are `partial` exactly."""
        arr = np.asarray(partial, dtype=np.float32)
        single = arr.ndim == 2
        if arr.ndim not in (2, 3) or arr.shape[-1] != 3:
            raise ValueError(f"partial: expected shape (K, 3) or (B, K, 3), got {arr.shape}")
        x = torch.from_numpy(arr[None] if single else arr)
        out = self.model.complete(
            x, n_points, method=self.method, steps=self.steps, grid=self.grid,
            generator=torch.Generator().manual_seed(self._seed(seed)), clip=self.clip,
        )  # fmt: skip
        out = out.numpy().astype(np.float32)
        return out[0] if single else out
