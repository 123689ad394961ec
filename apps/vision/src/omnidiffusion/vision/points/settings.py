"""[points] section of VisionConfig: the point-cloud DDPM (task "points")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PointsSettings:
    """Point-cloud settings: clouds of `n_points` points."""

    n_points: int = 512
