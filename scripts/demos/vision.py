"""Vision demo: SR3 4x super-resolution and RePaint inpainting of held-out handwritten digits.

Data: scikit-learn digits upsampled to 16x16 (`omnidiffusion.vision.load_digits_16`); the last 300 are held out.
SR3 (Saharia et al. 2021) learns 4x4 -> 16x16 with its continuous noise-level conditioning and is sampled with
dpm++2m; an unconditional DDPM (Ho et al. 2020) on the same digits fills box holes with RePaint (Lugmayr et al.
2022). Both are trained with core's `fit` on the small settings of the bundled configs (fewer steps here) and compared
with their baselines: bicubic / nearest interpolation for SR, mean fill and biharmonic inpainting for the holes.

Writes OUT/vision/: figure.png (rows: input, baselines, model, truth), metrics.json, sr3/ and ddpm/ (fit runs).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure

from demos.section import SectionResult, torch_threads
from omnidiffusion.vision import load_digits_16, load_vision_config, train_image_ddpm, train_sr3
from omnidiffusion.vision.baselines import biharmonic_fill, interpolate_sr, mean_fill
from omnidiffusion.vision.evaluation import degrade, evaluate_inpaint, evaluate_sr
from omnidiffusion.vision.imaging import to_model_range, to_pixel_range
from omnidiffusion.vision.inpaint import repaint_inpaint
from omnidiffusion.vision.masks import box_mask
from omnidiffusion.vision.sr3 import sr3_upscale

TITLE = "Vision: SR3 super-resolution and RePaint inpainting (digits)"
DESCRIPTION = """
SR3 (Saharia et al. 2021) on scikit-learn digits upsampled to 16x16: 4x super-resolution from 4x4 inputs, the UNet
sees the noisy image concatenated with the bicubic-upsampled input and the continuous noise level sqrt(alpha_bar);
sampled with dpm++2m in 25 steps. RePaint (Lugmayr et al. 2022) fills a centred box hole (50% of the area) with an
unconditional DDPM trained on the same digits. Metrics on held-out digits (data range 1): PSNR for SR against
nearest / bilinear / bicubic interpolation, PSNR inside the hole for inpainting against mean fill and scikit-image
biharmonic inpainting. Short CPU training runs: the full protocol (faces, longer training) is the vision benchmarks.
"""


def run(out_dir: Path, quick: bool = False) -> SectionResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch_threads(1):
        return _run(out_dir, quick)


def _run(out_dir: Path, quick: bool) -> SectionResult:
    t0 = time.perf_counter()
    tiny = ["model.base_channels=8", "model.channel_mults=1,2", "model.norm_groups=4"] if quick else []
    steps = 4 if quick else 800
    common = [
        *tiny,
        f"train.steps={steps}",
        "train.progress=false",
        "train.device=cpu",
        "train.log_every=10",
        f"train.ckpt_every={steps}",
    ]
    train = load_digits_16("train") * 2 - 1  # (1497, 1, 16, 16)
    n_eval = 4 if quick else 48
    test = load_digits_16("test")[:n_eval]  # (n, 1, 16, 16) in [0, 1]

    sr_cfg = load_vision_config(
        "sr3-faces",
        [*common, "data.image_size=16", "data.hflip=false", "model.num_res_blocks=1", "model.attention_resolutions=[]"],
    )
    sr3 = train_sr3(train, sr_cfg, out_dir / "sr3", resume=None)
    sr_steps = 2 if quick else 25
    sr_res = evaluate_sr(sr3, test, method="dpm++2m", steps=sr_steps, samples=1, seed=0)

    dd_cfg = load_vision_config("ddpm-digits", common)
    ddpm = train_image_ddpm(train, dd_cfg, out_dir / "ddpm", resume=None)
    rp = (
        {"steps": 5, "jump_length": 2, "jump_n_sample": 2}
        if quick
        else {"steps": 50, "jump_length": 5, "jump_n_sample": 3}
    )
    in_res = evaluate_inpaint(ddpm, test, "box", samples=1, seed=0, compare_no_resampling=False, **rp)

    fig_path = _figure(out_dir / "figure.png", sr3, ddpm, test[:8], sr_steps, rp)
    metrics = {"sr": sr_res, "inpaint": in_res, "seconds": time.perf_counter() - t0}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    sr_rows = [
        {
            "method": f"SR3 dpm++2m {sr_steps} steps",
            "PSNR (dB)": round(sr_res["model"]["psnr"], 2),
            "SSIM": round(sr_res["model"]["ssim"], 3),
        }
    ]
    sr_rows += [
        {"method": name, "PSNR (dB)": round(v["psnr"], 2), "SSIM": round(v["ssim"], 3)}
        for name, v in sr_res["baselines"].items()
    ]
    in_rows = [
        {
            "method": f"RePaint ({rp['steps']} steps, j={rp['jump_length']}, r={rp['jump_n_sample']})",
            "hole PSNR (dB)": round(in_res["model"]["hole_psnr"], 2),
        }
    ]
    in_rows += [{"method": name, "hole PSNR (dB)": round(v["hole_psnr"], 2)} for name, v in in_res["baselines"].items()]
    return SectionResult(
        figures=[
            (
                "Digits: 4x SR (rows 1-4: LR, bicubic, SR3, truth) and box inpainting (rows 5-8: input, mean fill, "
                "biharmonic, RePaint)",
                fig_path,
            )
        ],
        tables=[
            (f"4x super-resolution, {n_eval} held-out digits", sr_rows),
            (f"Inpainting a 50% box, {n_eval} held-out digits", in_rows),
        ],
        notes=[
            f"Each model trained {steps} steps on 1497 digits (batch {sr_cfg.train.batch_size}); known pixels "
            f"returned with max error {in_res['model']['known_max_abs_error']:.1e}."
        ],
        files=[out_dir / "metrics.json"],
    )


def _figure(path: Path, sr3, ddpm, hr: torch.Tensor, sr_steps: int, rp: dict) -> Path:
    gen = torch.Generator().manual_seed(1)
    lr = degrade(hr, sr3.scale)
    sr = to_pixel_range(sr3_upscale(sr3, to_model_range(lr), method="dpm++2m", steps=sr_steps, generator=gen)[0])
    mask = box_mask((16, 16), 0.5)
    masked = torch.where(mask, hr, torch.zeros_like(hr))
    fill = to_pixel_range(repaint_inpaint(ddpm, to_model_range(hr), mask, generator=gen, **rp)[0])
    rows = [
        interpolate_sr(lr, sr3.scale, "nearest"),
        interpolate_sr(lr, sr3.scale, "bicubic"),
        sr,
        hr,
        masked,
        mean_fill(hr, mask),
        biharmonic_fill(hr, mask),
        fill,
    ]
    fig = Figure(figsize=(1.0 * hr.shape[0], 1.0 * len(rows)))
    axes = fig.subplots(len(rows), hr.shape[0], squeeze=False)
    for r, imgs in enumerate(rows):
        for c in range(hr.shape[0]):
            ax = axes[r][c]
            ax.imshow(imgs[c, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path
