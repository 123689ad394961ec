"""The point-cloud task's data: the training and held-out clouds a config names (bundled shapes or a folder of
.ply/.npy/.xyz/.off files, see formats.py), and the map-style dataset `fit` reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset

from ..settings import VisionConfig
from .formats import load_cloud_folder
from .model import check_cloud
from .shapes import shape_split


class PointClouds(Dataset):
    """A (M, N, 3) tensor as a map-style dataset of (N, 3) clouds."""

    def __init__(self, clouds: Tensor) -> None:
        check_cloud(clouds, "clouds")
        self.clouds = clouds.float().contiguous()

    def __len__(self) -> int:
        return self.clouds.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        return self.clouds[i]


def training_clouds(config: VisionConfig) -> tuple[np.ndarray, np.ndarray]:
    """The (train, held-out) clouds of config.points: bundled shapes, or a folder split by `test_fraction`."""
    p = config.points
    if p.source == "shapes":
        return shape_split(
            p.n_train, p.n_test, p.n_points, p.seed, scale_min=p.scale_min, scale_max=p.scale_max, rotation=p.rotation
        )
    if p.source != "folder":
        raise ValueError(f"points.source: expected 'shapes' or 'folder', got {p.source!r}")
    clouds, _ = load_cloud_folder(p.folder, p.n_points, seed=p.seed, normalize=p.normalize)
    rng = np.random.default_rng(p.seed)
    order = rng.permutation(len(clouds))
    n_test = max(1, int(round(p.test_fraction * len(clouds))))
    return clouds[order[n_test:]], clouds[order[:n_test]]


def held_out_clouds(config: VisionConfig, n_points: int, data_dir: str | Path | None = None) -> tuple[np.ndarray, str]:
    """(clouds, description) that `evaluate --task points` scores: a folder of held-out clouds (class subfolders
    allowed) resampled to `n_points` and normalised by config.points.normalize, else the config's bundled
    held-out shapes."""
    p = config.points
    if data_dir:
        test, _ = load_cloud_folder(data_dir, n_points, seed=p.seed, normalize=p.normalize)
        return test, str(data_dir)
    kwargs = {"scale_min": p.scale_min, "scale_max": p.scale_max, "rotation": p.rotation}
    test = shape_split(1, p.n_test, n_points, p.seed, **kwargs)[1]
    return test, f"bundled shapes, {p.n_test} held-out clouds (seed {p.seed + 10_000})"


def reference_clouds(config: VisionConfig) -> np.ndarray | None:
    """The training clouds of the run config (the memorisation baseline of evaluate), or None when they cannot be
    read here (a folder on another machine)."""
    try:
        return training_clouds(config)[0]
    except (ValueError, FileNotFoundError):
        return None
