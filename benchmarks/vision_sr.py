"""Benchmark: SR3 4x super-resolution on held-out lfw faces vs interpolation and a same-size L2 regression UNet.

Protocol: train SR3 (config sr3-faces: 6x6 -> 24x24, linear betas 1e-6..1e-2 over T = 2000, L1 on eps, continuous
noise levels, dropout 0.1) and the regression UNet (same UNet settings, L2 on the HR image) for the same number of
steps on the config's data source "lfw": the 80 training faces of scikit-image `lfw_subset` and its 100 non-face
patches (random 24x24 crops of 25x25, flips). With --threads 2 on CPU the two models train side by side, one
process and one thread each; sampling then uses both threads. Evaluate on the 20 held-out faces (center 24x24
crops; LR by anti-aliased bicubic downsampling): PSNR / SSIM (data range 1, checked against
scikit-image in tests) and consistency MSE(downsample(SR), LR), for SR3's full ancestral chain (2000 steps), a
100-step trailing sub-chain and dpm++2m at 10 / 25 / 50 steps, each as a single sample and as the mean of
--samples draws. Writes benchmarks/results/vision_sr.json and vision_sr.md.

    python benchmarks/vision_sr.py                       # CPU protocol (use --device cuda to run it on a GPU)
    python benchmarks/vision_sr.py --gpu-paper-scale --seconds 120 --out DIR    # sr3-paper throughput on cuda
"""

from __future__ import annotations

import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch
from _vision import gpu_mode, parser, train_overrides, train_side_by_side  # benchmarks/_vision.py, beside this

from omnidiffusion.vision import SR3, RegressionSR, load_faces, load_vision_config, train_regression, train_sr3
from omnidiffusion.vision.data import center_crop, training_images
from omnidiffusion.vision.evaluation import evaluate_sr


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    p = parser(__doc__, "SR3", "runs/bench/vision_sr")
    p.set_defaults(threads=2)  # the CPU protocol: SR3 and the regression UNet train side by side
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.gpu_paper_scale:
        gpu_mode(args, "sr3-paper", "vision_sr", "sr3-paper: 16 -> 128, photo crops")
        return

    t_start = time.perf_counter()
    over = train_overrides(args)
    config = load_vision_config("sr3-faces", over)
    work = Path(args.work)
    d = config.data
    faces_train = training_images(d.source, d.channels, d.image_size)  # "lfw": (180, 1, 25, 25) in [-1, 1]
    hr = center_crop(load_faces("test"), config.data.image_size)  # (20, 1, 24, 24) in [0, 1]

    jobs = [
        (train_sr3, faces_train, config, work / "sr3"),
        (train_regression, faces_train, config, work / "regression"),
    ]
    # on CPU with 2+ threads: one process per model, one thread each, side by side
    (t_sr3, c_sr3), (t_reg, c_reg) = train_side_by_side(jobs, args.threads >= 2 and args.device == "cpu")
    sr3 = SR3.from_pretrained(work / "sr3").to(args.device)
    reg = RegressionSR.from_pretrained(work / "regression").to(args.device)

    T = sr3.schedule.T
    settings = [("ddpm", T), ("ddpm", 100), ("dpm++2m", 10), ("dpm++2m", 25), ("dpm++2m", 50)]
    if args.quick:
        settings = [("ddpm", 20), ("dpm++2m", 5)]
    runs = []
    for method, steps in settings:
        res = evaluate_sr(
            sr3,
            hr,
            regression=reg,
            method=method,
            steps=steps,
            grid="trailing",
            samples=1 if args.quick else args.samples,
            seed=0,
        )
        runs.append(res)
        m = res["model"]
        print(
            f"{method:8s} {steps:5d} steps: PSNR {m['psnr']:.2f} dB"
            + (
                f" (mean of {args.samples}: {m.get(f'psnr_mean{args.samples}', float('nan')):.2f})"
                if not args.quick
                else ""
            )
            + f", SSIM {m['ssim']:.3f}, consistency {m['consistency_mse']:.2e}",
            flush=True,
        )
    base = runs[0]["baselines"]
    best_interp = max(("nearest", "bilinear", "bicubic"), key=lambda k: base[k]["psnr"])
    k = args.samples
    full = runs[0]["model"]
    dpm25 = next((r["model"] for r, (m_, s_) in zip(runs, settings, strict=True) if (m_, s_) == ("dpm++2m", 25)), None)
    summary = {
        "best_interpolation": best_interp,
        "best_interpolation_psnr": base[best_interp]["psnr"],
        "bicubic_consistency_mse": base["bicubic"]["consistency_mse"],
        "regression_psnr": base["regression"]["psnr"],
        "sr3_full_chain_psnr_single": full["psnr"],
        f"sr3_full_chain_psnr_mean{k}": full.get(f"psnr_mean{k}"),
        "sr3_full_chain_consistency_mse": full["consistency_mse"],
    }
    if dpm25 is not None:
        summary["dpm++2m_25_psnr_single"] = dpm25["psnr"]
        summary[f"dpm++2m_25_psnr_mean{k}"] = dpm25.get(f"psnr_mean{k}")
    wall = time.perf_counter() - t_start
    result = {
        "benchmark": "vision_sr",
        "quick": args.quick,
        "summary": summary,
        "runs": runs,
        "train": {
            "steps": config.train.steps,
            "batch_size": config.train.batch_size,
            "sr3_seconds": t_sr3,
            "regression_seconds": t_reg,
            "sr3_cpu_seconds": c_sr3,
            "regression_cpu_seconds": c_reg,
            "side_by_side": args.threads >= 2 and args.device == "cpu",
            "sr3_params": sum(p.numel() for p in sr3.parameters()),
            "regression_params": sum(p.numel() for p in reg.parameters()),
        },
        "wall_seconds": wall,
        "peak_rss_mb": _peak_rss_mb(),
        "machine": {
            "device": args.device,
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(),
            "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        },
        "config": "sr3-faces" + (f" with {over}" if over else ""),
        "command": "python " + " ".join(sys.argv),
    }
    if args.quick:
        print(json.dumps(summary, indent=2))
        return
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vision_sr.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "vision_sr.md").write_text(_markdown(result, settings, k))
    print(json.dumps(summary, indent=2))


def _markdown(result: dict, settings, k: int) -> str:
    runs, s, tr, mach = result["runs"], result["summary"], result["train"], result["machine"]
    base = runs[0]["baselines"]
    lines = [
        "## Vision: SR3 super-resolution (4x faces)",
        "",
        "SR3 (Saharia et al. 2021) vs interpolation and a same-size regression UNet trained with L2, same steps.",
        "Data: scikit-image `lfw_subset`; training on its 80 training faces and 100 non-face patches (data source "
        '"lfw"), evaluation on the 20 held-out faces (24x24 center crops), 6x6 -> 24x24; '
        f"LR by anti-aliased bicubic downsampling. Training: {tr['steps']} steps, batch {tr['batch_size']}, "
        f"SR3 {tr['sr3_params']:,} / regression {tr['regression_params']:,} parameters. PSNR/SSIM at data range 1; "
        "consistency = MSE(downsample(SR), LR). SR3 rows: a single draw, and the mean of "
        f"{k} draws (seed 0).",
        "",
        f"| method | steps | PSNR (dB) | PSNR mean of {k} | SSIM | SSIM mean of {k} | consistency MSE |",
        "|---|---|---|---|---|---|---|",
    ]
    for (method, steps), r in zip(settings, runs, strict=True):
        m = r["model"]
        lines.append(
            f"| SR3 {method} | {steps} | {m['psnr']:.2f} | {m.get(f'psnr_mean{k}', float('nan')):.2f} | "
            f"{m['ssim']:.3f} | {m.get(f'ssim_mean{k}', float('nan')):.3f} | {m['consistency_mse']:.2e} |"
        )
    for name in ("nearest", "bilinear", "bicubic", "regression"):
        b = base[name]
        lines.append(f"| {name} | - | {b['psnr']:.2f} | - | {b['ssim']:.3f} | - | {b['consistency_mse']:.2e} |")
    gain_single = s["sr3_full_chain_psnr_single"] - s["best_interpolation_psnr"]
    gain_mean = (s.get(f"sr3_full_chain_psnr_mean{k}") or float("nan")) - s["best_interpolation_psnr"]
    d25_mean = (s.get(f"dpm++2m_25_psnr_mean{k}") or float("nan")) - (
        s.get(f"sr3_full_chain_psnr_mean{k}") or float("nan")
    )
    lines += [
        "",
        f"SR3 full chain vs best interpolation ({s['best_interpolation']}): {gain_single:+.2f} dB single sample, "
        f"{gain_mean:+.2f} dB mean of {k}. dpm++2m 25 steps vs full chain: "
        f"{s.get('dpm++2m_25_psnr_single', float('nan')) - s['sr3_full_chain_psnr_single']:+.2f} dB (single), "
        f"{d25_mean:+.2f} dB (mean of {k}).",
        "",
        f"Wall time {result['wall_seconds']:.0f} s (training SR3 {tr['sr3_seconds']:.0f} s, regression "
        f"{tr['regression_seconds']:.0f} s"
        + (", side by side, one process and one thread each" if tr.get("side_by_side") else "")
        + f"), peak RSS {result['peak_rss_mb']:.0f} MB; device {mach['device']}"
        + (f" ({mach['gpu']})" if mach.get("gpu") else f", {mach['torch_threads']} torch thread(s)")
        + f". Command: `{result['command']}`.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
