"""Figures: robust accuracy against eps (one line per threat) and against t* (one line per eps); purified images.

Rows are the dicts `evaluate_robustness` returns in "results", each extended with its "t_star".
Matplotlib runs on the Agg backend (files only).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

THREAT_LABELS = {
    "classifier": "classifier alone (undefended)",
    "transfer": "transfer (PGD on classifier, then purify)",
    "bpda": "BPDA + EOT",
    "full": "full-gradient attack through DiffPure",
}


def _figure(ncols: int, width: float = 5.0, height: float = 3.6):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), dpi=110)
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def plot_robustness(rows: Sequence[dict], path: str | Path, *, t_star: float | None = None, title: str = "") -> Path:
    """Two panels: accuracy vs eps per (threat, attack) at `t_star`; accuracy vs t* per eps (transfer, clean).

    Rows need threat, attack, eps, t_star, accuracy, ci_low, ci_high; clean rows use eps = 0.
    """
    if not rows:
        raise ValueError("rows: nothing to plot")
    fig, (ax_eps, ax_t) = _figure(2)
    t_values = sorted({r["t_star"] for r in rows if r.get("t_star") is not None})
    t_main = t_star if t_star is not None else (t_values[len(t_values) // 2] if t_values else 0.0)
    series: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if r["threat"] == "classifier" or (r["threat"] != "clean" and r.get("t_star") == t_main):
            series.setdefault((r["threat"], r["attack"]), []).append(r)
    for (threat, attack), rs in sorted(series.items()):
        rs = sorted({r["eps"]: r for r in rs}.values(), key=lambda r: r["eps"])
        e = np.array([r["eps"] for r in rs])
        acc = np.array([100 * r["accuracy"] for r in rs])
        lo = [100 * (r["accuracy"] - r["ci_low"]) for r in rs]
        hi = [100 * (r["ci_high"] - r["accuracy"]) for r in rs]
        err = np.clip(np.array([lo, hi]), 0.0, None)  # rounding can leave -1e-15 at 0% or 100%
        ax_eps.errorbar(e, acc, yerr=err, marker="o", capsize=3, label=f"{THREAT_LABELS.get(threat, threat)}: {attack}")
    ax_eps.set_xlabel("eps")
    ax_eps.set_ylabel("accuracy (%)")
    ax_eps.set_ylim(-2, 102)
    ax_eps.set_title(f"accuracy vs eps (DiffPure t* = {t_main:g})")
    ax_eps.legend(fontsize=7)
    by_eps: dict[float, list[dict]] = {}
    for r in rows:
        if r["threat"] in ("transfer", "clean"):
            by_eps.setdefault(r["eps"], []).append(r)
    for e, rs in sorted(by_eps.items()):
        rs = sorted({r["t_star"]: r for r in rs}.values(), key=lambda r: r["t_star"])
        label = "clean" if e == 0 else f"transfer PGD, eps = {e:g}"
        ax_t.plot([r["t_star"] for r in rs], [100 * r["accuracy"] for r in rs], marker="o", label=label)
    ax_t.set_xlabel("t*")
    ax_t.set_ylabel("accuracy (%)")
    ax_t.set_ylim(-2, 102)
    ax_t.set_title("purified accuracy vs t*")
    ax_t.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def plot_purification(rows: Sequence[tuple[str, Tensor]], path: str | Path, n: int = 8) -> Path:
    """A grid: one row per (label, images (N, C, H, W) in [0, 1]), the first n images of each."""
    fig, _ = _figure(1, width=1.2 * n, height=1.2 * len(rows) + 0.4)
    fig.clear()
    for i, (label, x) in enumerate(rows):
        x = x[:n].detach().cpu()
        for j in range(len(x)):
            ax = fig.add_subplot(len(rows), n, i * n + j + 1)
            img = x[j].permute(1, 2, 0).numpy()
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


__all__ = ["THREAT_LABELS", "plot_purification", "plot_robustness"]
