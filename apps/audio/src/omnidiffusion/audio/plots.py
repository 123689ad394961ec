"""Figures: log-mel spectrograms side by side (reference, vocoder, baseline) and distance-against-steps curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402
from torch import Tensor  # noqa: E402

from .mel import MelConfig, log_mel  # noqa: E402


def spectrogram_comparison(
    path: str | Path, signals: Mapping[str, Tensor], mel: MelConfig, scores: Mapping[str, float] | None = None
) -> Path:
    """One row per signal: its log-mel (the model's mel function), titled with its score when given."""
    fig = Figure(figsize=(10, 2.2 * len(signals)), layout="constrained")
    axes = fig.subplots(len(signals), 1, squeeze=False)[:, 0]
    mels = {name: log_mel(wav.reshape(-1).float().cpu(), mel)[0].numpy() for name, wav in signals.items()}
    top = float(next(iter(mels.values())).max())  # one colour scale for all rows: the first signal's top 10 nats
    for ax, (name, m) in zip(axes, mels.items(), strict=True):
        ax.imshow(m, origin="lower", aspect="auto", cmap="magma", vmin=top - 10.0, vmax=top)
        title = name if not scores or name not in scores else f"{name}: log-mel distance {scores[name]:.3f}"
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("mel band")
    axes[-1].set_xlabel(f"frame (hop {mel.hop_length} at {mel.sample_rate} Hz)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def distance_curve(
    path: str | Path,
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    baselines: Mapping[str, float],
    *,
    xlabel: str = "training step",
) -> Path:
    """Log-mel distance against training steps (or seconds) per system, baselines as horizontal lines."""
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.subplots()
    for name, (xs, ys) in curves.items():
        ax.plot(xs, ys, marker="o", label=name)
    for i, (name, value) in enumerate(baselines.items()):
        ax.axhline(value, ls="--", color=f"C{i + len(curves)}", label=f"{name} ({value:.3f})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("log-mel distance (lower is better)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
