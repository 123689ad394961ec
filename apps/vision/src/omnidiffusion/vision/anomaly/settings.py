"""[anomaly] section of VisionConfig: AnoDDPM (task "anomaly")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from omnidiffusion.core.checks import non_negative_int, positive_int, real_number


@dataclass
class AnomalyConfig:
    """AnoDDPM: diffuse to step `t_star` of the training table with `noise` ("gaussian" | "simplex"), reconstruct.

    Noise: simplex fields of `octaves` octaves, amplitude decay `persistence`, first-octave `frequency` (pixels per
    lattice cell; AnoDDPM: 6, 0.8, 64 at 256 px), 3-D noise sliced at the step index (`simplex_dims` = 3) or 2-D.
    Training draws steps from [0, train_max_index) only (AnoDDPM: 800 of 1000).
    Detection: `method` ("ddpm" = the paper's ancestral chain, or a core solver such as "dpm++2m") with `steps`
    (0 = every table step from t*), squared error summed over channels, Gaussian smoothing of `smooth_sigma`
    pixels (0 = none); image score = `score` ("max" | "mean") of the map. Baseline |x - blur(x)| uses `blur_sigma`.
    Data: crops of scikit-image texture `texture` downscaled by `zoom` (train: left 3/4, test: right 1/4 of the
    texture), or `dataset` = "digits"; test anomalies of `anomaly_kinds` in `anomalous_fraction` of the test images,
    kept inside the normal intensity range when `match_intensity` (see data.paste_anomalies).
    """

    noise: Literal["gaussian", "simplex"] = "simplex"
    t_star: int = 250
    octaves: int = 6
    persistence: float = 0.8
    frequency: float = 8.0
    simplex_dims: int = 3
    train_max_index: int = 800
    method: str = "ddpm"
    steps: int = 0
    smooth_sigma: float = 1.0
    score: Literal["max", "mean"] = "max"
    blur_sigma: float = 1.5
    seed: int = 0
    batch_size: int = 64
    dataset: Literal["textures", "digits"] = "textures"
    texture: str = "brick"
    other_texture: str = "gravel"
    zoom: int = 3
    train_crops: int = 2048
    test_images: int = 64
    anomalous_fraction: float = 0.75
    match_intensity: bool = True
    anomaly_kinds: list[str] = field(default_factory=lambda: ["texture", "intensity", "scratch"])

    def __post_init__(self) -> None:
        for name in ("t_star", "octaves", "train_max_index", "batch_size", "zoom", "train_crops", "test_images"):
            positive_int(getattr(self, name), f"anomaly.{name}")
        non_negative_int(self.steps, "anomaly.steps")
        non_negative_int(self.seed, "anomaly.seed")
        positive_int(self.simplex_dims, "anomaly.simplex_dims", minimum=2, maximum=3)
        real_number(self.smooth_sigma, "anomaly.smooth_sigma", low=0.0)
        real_number(self.blur_sigma, "anomaly.blur_sigma", low=0.0, low_open=True)
        real_number(self.frequency, "anomaly.frequency", low=0.0, low_open=True)
        real_number(self.persistence, "anomaly.persistence", low=0.0, low_open=True)
        real_number(self.anomalous_fraction, "anomaly.anomalous_fraction", low=0.0, high=1.0)
