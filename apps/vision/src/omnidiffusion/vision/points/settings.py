"""[points] section of VisionConfig: the point-cloud DDPM (task "points")."""

from __future__ import annotations

from dataclasses import dataclass

from omnidiffusion.core.checks import positive_int, real_number


@dataclass
class PointsConfig:
    """Point-cloud settings: data, network, PVD-style completion and evaluation sizes.

    source "shapes" draws the bundled procedural shapes (n_train / n_test clouds from seeds `seed` and
    seed + 10000); "folder" reads a ShapeNet-like folder (points/formats.py) and holds out `test_fraction`.
    """

    n_points: int = 256
    source: str = "shapes"  # shapes | folder
    folder: str = ""
    test_fraction: float = 0.1  # source = folder: share held out for evaluation
    normalize: str = "none"  # folders: none | unit-sphere | bbox, per cloud (points/formats.py)
    n_train: int = 400
    n_test: int = 64
    seed: int = 0
    scale_min: float = 0.6
    scale_max: float = 1.0
    rotation: str = "so3"  # so3 | z | none: the bundled shapes' random rotation
    augment_rotation: bool = True  # random z rotations while training (turn off for axis-aligned data)
    # network (points/network.py)
    width: int = 128
    depth: int = 4
    inducing: int = 16  # inducing summaries per block; 0 = max/mean pooling only
    heads: int = 4
    local: bool = True  # kernel-weighted local context and mean-shift input features (points/network.py)
    # PVD-style completion (Zhou et al. 2021): observed points stay clean
    complete_frac: float = 0.5  # share of training clouds that carry an observed subset
    n_known: int = 64  # observed points of a completion input
    keep_min: float = 0.25  # the cutting plane keeps a fraction in [keep_min, keep_max] of the cloud
    keep_max: float = 0.5
    clip: float = 0.0  # > 0: clamp x0_hat to [-clip, clip] while sampling (needed by dpm++2m); 0 = off
    # evaluation
    n_eval: int = 64  # generated clouds compared with as many held-out clouds (MMD / COV / 1-NNA)
    emd: bool = True  # also the EMD-based metrics (exact assignment; O(n_eval^2) assignments)

    def __post_init__(self) -> None:
        positive_int(self.n_points, "points.n_points", minimum=2)
        for name in ("n_eval", "n_known", "n_test"):
            positive_int(getattr(self, name), f"points.{name}")
        real_number(self.clip, "points.clip", low=0.0)
        real_number(self.keep_min, "points.keep_min", low=0.0, high=1.0, low_open=True)
        real_number(self.keep_max, "points.keep_max", low=self.keep_min, high=1.0)
        real_number(self.complete_frac, "points.complete_frac", low=0.0, high=1.0)
