"""[anomaly] section of VisionConfig: AnoDDPM (task "anomaly")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class AnomalySettings:
    """AnoDDPM: diffuse to step `t_star` of the training table with `noise` ("gaussian" | "simplex"), reconstruct."""

    noise: Literal["gaussian", "simplex"] = "simplex"
    t_star: int = 250
