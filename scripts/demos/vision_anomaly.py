"""Vision demo: AnoDDPM anomaly detection on a bundled texture, against two classical baselines.

Data: 32x32 crops of scikit-image's brick texture (downscaled 3x); the DDPM trains on crops from the left 3/4, the
test crops come from the right 1/4 with pasted anomalies (gravel patches, intensity blobs, scratches) and exact
masks. AnoDDPM (Wyatt et al. 2022) noises a test crop to step t* with simplex noise, reconstructs it with the reverse
chain and maps the squared error. Baselines: |x - mean training image| and |x - blur(x)| (sigma 1.5 px).

Writes OUT/vision_anomaly/: figure.png (rows: image, mask, reconstruction, AnoDDPM map, the two baseline maps),
metrics.json and model/ (the fit run).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure

from demos.section import SectionResult, torch_threads
from omnidiffusion.vision import load_vision_config
from omnidiffusion.vision.anomaly.data import anomaly_test_set
from omnidiffusion.vision.anomaly.evaluation import evaluate_anomaly
from omnidiffusion.vision.anomaly.pipeline import AnomalyDetector
from omnidiffusion.vision.anomaly.training import train

TITLE = "Vision: anomaly detection with AnoDDPM (textures)"
DESCRIPTION = """
AnoDDPM (Wyatt et al. 2022): an unconditional DDPM learns 32x32 crops of scikit-image's brick texture with simplex
noise (multi-octave 3-D simplex noise instead of Gaussian noise). A test crop is noised to step t* of the chain, the
reverse chain reconstructs a normal-looking crop, and the squared error is the anomaly map. Held-out crops carry
pasted anomalies with exact masks; metrics pooled over all pixels: pixel AUROC and best-threshold Dice, against
|x - mean training image| and |x - blur(x)|. A short CPU run; the full protocol is benchmarks/vision_anomaly.py.
"""


def run(out_dir: Path, quick: bool = False) -> SectionResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch_threads(1):
        return _run(out_dir, quick)


def _run(out_dir: Path, quick: bool) -> SectionResult:
    t0 = time.perf_counter()
    steps = 4 if quick else 150
    over = [
        f"train.steps={steps}",
        "train.progress=false",
        "train.device=cpu",
        "train.log_every=10",
        f"train.ckpt_every={steps}",
        "train.lr=2e-3",
    ]
    if quick:
        over += ["model.base_channels=8", "model.channel_mults=1,2", "model.norm_groups=4", "anomaly.train_crops=32"]
    config = load_vision_config("anomaly-textures", over)
    train(config, out_dir / "model")
    t_star, rev = (20, 4) if quick else (25, 25)
    det = AnomalyDetector.from_pretrained(out_dir / "model", t_star=t_star, method="ddpm", steps=rev)
    det.settings.test_images = 8 if quick else 32
    images, masks = anomaly_test_set(det.settings, det.model.image_size)
    res = evaluate_anomaly(det, images, masks)
    fig_path = _figure(out_dir / "figure.png", det, images[:8], masks[:8])
    metrics = {**res, "seconds": time.perf_counter() - t0}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")

    def row(name: str, m: dict) -> dict:
        return {"method": name, "pixel AUROC": round(m["pixel_auroc"], 3), "best Dice": round(m["best_dice"], 3)}

    rows = [row(f"AnoDDPM (simplex, t*={t_star}, {rev} ancestral steps)", res["model"])]
    rows += [row(name, m) for name, m in res["baselines"].items()]
    return SectionResult(
        figures=[("Rows: test crop, true mask, reconstruction, AnoDDPM map, |x - mean|, |x - blur(x)|", fig_path)],
        tables=[(f"Pixel-level detection on {images.shape[0]} held-out crops", rows)],
        notes=[
            f"DDPM trained {steps} steps (batch {config.train.batch_size}) on {config.anomaly.train_crops} brick "
            f"crops; detection with {rev} ancestral steps from t* = {t_star} (the benchmark trains longer and picks t* "
            "on a validation set)."
        ],
        files=[out_dir / "metrics.json"],
    )


def _figure(path: Path, det: AnomalyDetector, images: torch.Tensor, masks: torch.Tensor) -> Path:
    maps, _, rec = det.score_batch(images)
    base = det.baseline_maps(images)
    rows = [images[:, 0], masks[:, 0].float(), rec[:, 0], maps, *base.values()]
    fig = Figure(figsize=(1.0 * images.shape[0], 1.0 * len(rows)))
    for r, row in enumerate(rows):
        for c in range(images.shape[0]):
            ax = fig.add_subplot(len(rows), images.shape[0], r * images.shape[0] + c + 1)
            ax.imshow(row[c].numpy(), cmap="gray" if r < 3 else "inferno")
            ax.set_axis_off()
    fig.tight_layout(pad=0.1)
    fig.savefig(path, dpi=80)
    return path
