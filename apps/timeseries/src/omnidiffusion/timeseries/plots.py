"""Fan charts (matplotlib, Agg): the sample median with 50% and 90% bands over the observed points."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def fan_chart(
    samples: np.ndarray,
    observed_values: np.ndarray,
    observed: np.ndarray,
    path: str | Path,
    *,
    truth: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    max_panels: int = 6,
    title: str = "",
) -> Path:
    """One panel per feature (up to `max_panels`): bands from samples (S, T, K), dots at the known entries.

    `truth` (T, K), when given, is drawn as a thin line (the hidden values in an evaluation).
    """
    from matplotlib.figure import Figure  # Agg canvas, no display needed

    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 3 or samples.shape[1:] != observed.shape:
        raise ValueError(f"samples: expected (S, T, K) with (T, K) = {observed.shape}, got {samples.shape}")
    S, T, K = samples.shape
    k_show = min(K, max_panels)
    fig = Figure(figsize=(10, 1.9 * k_show + 0.6))
    axes = fig.subplots(k_show, 1, sharex=True, squeeze=False)[:, 0]
    x = np.arange(T)
    q05, q25, q50, q75, q95 = np.quantile(samples, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    for k, ax in enumerate(axes):
        ax.fill_between(x, q05[:, k], q95[:, k], color="tab:blue", alpha=0.18, lw=0, label="5-95%")
        ax.fill_between(x, q25[:, k], q75[:, k], color="tab:blue", alpha=0.3, lw=0, label="25-75%")
        ax.plot(x, q50[:, k], color="tab:blue", lw=1.2, label="median")
        if truth is not None:
            ax.plot(x, truth[:, k], color="black", lw=0.8, alpha=0.7, label="truth")
        known = observed[:, k]
        ax.plot(x[known], observed_values[known, k], "o", ms=2.5, color="tab:orange", label="observed")
        ax.set_ylabel(str(names[k]) if names is not None else f"feature {k}", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, ncol=5, loc="upper left")
    axes[-1].set_xlabel("time step")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
