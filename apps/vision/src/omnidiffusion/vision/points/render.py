"""Point clouds to PNG: a grid of matplotlib 3-D scatter plots (Agg backend; matplotlib is the "plots" extra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor


def _np(x: Tensor | np.ndarray) -> np.ndarray:
    return np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x, dtype=np.float32)


def render_clouds(
    clouds: Sequence[Tensor | np.ndarray] | Tensor | np.ndarray,
    path: str | Path,
    *,
    titles: Sequence[str] | None = None,
    highlight: Sequence[int] | None = None,
    cols: int = 4,
    size: float = 2.6,
    limit: float | None = None,
) -> Path:
    """Render each (N, 3) cloud as a 3-D scatter in a grid and save a PNG.

    highlight[i] = K colours the first K points of cloud i apart (the observed points of a completion).
    limit: half-width of the shared axes (default: 1.1 x the median over clouds of each cloud's largest |coordinate|,
    so that one diverged cloud does not shrink the others).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - the optional extra
        raise ImportError("render_clouds needs matplotlib: pip install 'omnidiffusion-vision[plots]'") from err

    items = [_np(c) for c in clouds]
    for i, c in enumerate(items):
        if c.ndim != 2 or c.shape[1] != 3:
            raise ValueError(f"clouds[{i}]: expected shape (N, 3), got {c.shape}")
    if not items:
        raise ValueError("clouds: expected at least one cloud")
    lim = limit or 1.1 * float(np.median([np.abs(c).max() for c in items])) or 1.0
    cols = max(1, min(cols, len(items)))
    rows = -(-len(items) // cols)
    fig = Figure(figsize=(cols * size, rows * size))
    for i, c in enumerate(items):
        ax = fig.add_subplot(rows, cols, i + 1, projection="3d")
        k = 0 if highlight is None else int(highlight[i])
        if k:
            ax.scatter(c[k:, 0], c[k:, 1], c[k:, 2], s=3, c="tab:blue", depthshade=True)
            ax.scatter(c[:k, 0], c[:k, 1], c[:k, 2], s=4, c="tab:red", depthshade=True)
        else:
            ax.scatter(c[:, 0], c[:, 1], c[:, 2], s=3, c=c[:, 2], cmap="viridis", depthshade=True)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_zlim(-lim, lim)
        ax.set_box_aspect((1, 1, 1))
        ax.set_axis_off()
        if titles is not None and i < len(titles):
            ax.set_title(titles[i], fontsize=8)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=0.95, wspace=0, hspace=0.05)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path
