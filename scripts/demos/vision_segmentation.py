"""Vision demo: segmentation by mask diffusion (SegDiff-style) against Otsu and a same-size UNet.

Data: the bundled synthetic set (`omnidiffusion.vision.segmentation.data`): ellipses, polygons and the horse
silhouette filled with one scikit-image texture and pasted on another, 32x32 grey, exact masks; split by seed.
SegDiff (Amit et al. 2021) denoises the mask in [-1, 1] conditioned on image-encoder features added after the UNet's
first conv; 5 masks are sampled with dpm++2m and averaged into the mean mask (threshold 0.5) and a per-pixel
uncertainty (std). The UNet baseline is the same network with the image at its input, trained with BCE + Dice for
the same steps. A short CPU run: the full protocol and DDPM-Seg are benchmarks/vision_seg.py.

Writes OUT/vision_segmentation/: figure.png (rows: image, truth, Otsu, UNet, SegDiff mean mask, uncertainty),
metrics.json, segdiff/ and unet/ (fit runs).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from matplotlib.figure import Figure

from demos.section import SectionResult, torch_threads
from omnidiffusion.vision import load_vision_config
from omnidiffusion.vision.segmentation.baselines import otsu_segment
from omnidiffusion.vision.segmentation.data import bundled_split
from omnidiffusion.vision.segmentation.evaluation import evaluate_segmentation
from omnidiffusion.vision.segmentation.pipeline import Segmenter
from omnidiffusion.vision.segmentation.training import train_seg_unet, train_segdiff

TITLE = "Vision: segmentation by mask diffusion (SegDiff) vs Otsu and a same-size UNet"
DESCRIPTION = """
SegDiff-style segmentation (Amit et al. 2021) on bundled 32x32 images: ellipses, polygons and the horse silhouette
filled with one scikit-image texture (brick / grass / gravel) on another, brightness gaps often too small for a global
threshold. The mask in [-1, 1] is denoised by a UNet whose first-block features get the image encoder's features
added; 5 sampled masks (dpm++2m) give the mean mask (threshold 0.5) and a per-pixel uncertainty (their std).
Baselines: Otsu's threshold (minority side = object) and the same-size UNet trained with BCE + Dice for the same
steps. Dice is the mean over held-out images (both masks empty scores 1). Short CPU training; the full protocol
and DDPM-Seg are in benchmarks/vision_seg.py.
"""


def run(out_dir: Path, quick: bool = False) -> SectionResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch_threads(1):
        return _run(out_dir, quick)


def _run(out_dir: Path, quick: bool) -> SectionResult:
    t0 = time.perf_counter()
    steps = 3 if quick else 80
    over = [f"train.steps={steps}", "train.progress=false", "train.device=cpu", "train.log_every=10",
            f"train.ckpt_every={steps}"]  # fmt: skip
    if quick:
        over += ["model.base_channels=8", "model.channel_mults=1,2", "model.norm_groups=4", "train.batch_size=4",
                 "data.image_size=16", "seg.encoder_growth=4"]  # fmt: skip
    n_images, n_test = (16, 4) if quick else (160, 32)
    sd_cfg = load_vision_config("segdiff-shapes", [*over, f"seg.n_images={n_images}", f"seg.n_test={n_test}"])
    un_cfg = load_vision_config("seg-unet-shapes", [*over, f"seg.n_images={n_images}", f"seg.n_test={n_test}"])
    split = bundled_split(n_images, n_test, sd_cfg.data.image_size, "mixed", 0, 0)
    (tr_x, tr_m), (te_x, te_m) = split["train"], split["test"]
    for sub in ("segdiff", "unet"):  # a fresh run each time the demo is built
        shutil.rmtree(out_dir / sub, ignore_errors=True)
    sd = Segmenter(train_segdiff(tr_x, tr_m, sd_cfg, out_dir / "segdiff", resume=False), "segdiff")
    un = Segmenter(train_seg_unet(tr_x, tr_m, un_cfg, out_dir / "unet", resume=False), "seg-unet")
    sample_steps = 2 if quick else 10
    n = 2 if quick else 5
    res = evaluate_segmentation(sd, te_x, te_m, unet=un, n_samples=n, method="dpm++2m", steps=sample_steps)
    fig_path = _figure(out_dir / "figure.png", sd, un, te_x[:8], te_m[:8], n, sample_steps)
    metrics = {**res, "seconds": time.perf_counter() - t0}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    m = res["model"]
    rows = [{"method": f"SegDiff (mean of {n}, dpm++2m {sample_steps})", "Dice": round(m["dice"], 3),
             "IoU": round(m["iou"], 3)}]  # fmt: skip
    rows.append({"method": "SegDiff, one draw", "Dice": round(m["dice_single_draw"], 3),
                 "IoU": round(m["iou_single_draw"], 3)})  # fmt: skip
    rows += [{"method": k, "Dice": round(v["dice"], 3), "IoU": round(v["iou"], 3)} for k, v in res["baselines"].items()]
    return SectionResult(
        figures=[("Held-out images; rows: image, truth, Otsu, UNet, SegDiff mean mask, SegDiff uncertainty", fig_path)],
        tables=[(f"Segmentation of {te_x.shape[0]} held-out images", rows)],
        notes=[
            f"Both networks trained {steps} steps on {tr_x.shape[0]} images; mean uncertainty on wrong pixels "
            f"{m['uncertainty_on_errors']:.3f} vs {m['uncertainty_on_correct']:.3f} on right ones."
        ],
        files=[out_dir / "metrics.json"],
    )


def _figure(path: Path, sd: Segmenter, un: Segmenter, images, masks, n: int, steps: int) -> Path:
    mask, unc, _ = sd.segment_tensor(images, n, method="dpm++2m", steps=steps, seed=1)
    unet_mask, _, _ = un.segment_tensor(images)
    rows = [images, masks, otsu_segment(images), unet_mask, mask, unc / max(float(unc.max()), 1e-8)]
    fig = Figure(figsize=(1.0 * images.shape[0], 1.0 * len(rows)))
    axes = fig.subplots(len(rows), images.shape[0], squeeze=False)
    for r, imgs in enumerate(rows):
        for c in range(images.shape[0]):
            ax = axes[r][c]
            ax.imshow(imgs[c, 0].numpy(), cmap="magma" if r == len(rows) - 1 else "gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path
