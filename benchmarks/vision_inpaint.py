"""Benchmark: RePaint inpainting of held-out lfw faces vs mean fill, biharmonic and RePaint without resampling.

Protocol: train the unconditional DDPM of config ddpm-faces (24x24 crops of the 80 training faces of scikit-image
`lfw_subset`, flips; linear betas over T = 1000). Inpaint the 20 held-out faces (center 24x24 crops) with RePaint
(t_T = 100 trailing steps, jump length j = 5, r = 5 resamplings) for the masks half (right half missing), box
(centred square hole, 50% of the area), lines (every other row) and strokes; score MSE / PSNR inside the hole
(data range 1) for a single draw and for the mean of --samples draws; check the known pixels come back exactly;
compare with mean fill, scikit-image `inpaint_biharmonic` and RePaint with r = 1 (same steps, no resampling).
Writes benchmarks/results/vision_inpaint.json and vision_inpaint.md.

    python benchmarks/vision_inpaint.py
    python benchmarks/vision_inpaint.py --gpu-paper-scale --seconds 120 --out DIR   # ddpm-paper + RePaint on cuda
"""

from __future__ import annotations

import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch
from _vision import gpu_mode, parser, train_overrides  # benchmarks/_vision.py, beside this script

from omnidiffusion.vision import load_faces, load_vision_config, train_image_ddpm
from omnidiffusion.vision.data import center_crop
from omnidiffusion.vision.evaluation import evaluate_inpaint

MASKS = ("half", "box", "lines", "strokes")


def main() -> None:
    p = parser(__doc__, "RePaint", "runs/bench/vision_inpaint")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.gpu_paper_scale:
        gpu_mode(args, "ddpm-paper", "vision_inpaint", "ddpm-paper: 32x32 RGB photo crops, RePaint")
        return

    t_start = time.perf_counter()
    over = train_overrides(args)
    if args.quick:
        over += ["repaint.steps=10", "repaint.jump_length=2", "repaint.jump_n_sample=2"]
    config = load_vision_config("ddpm-faces", over)
    rp = config.repaint
    k = 1 if args.quick else args.samples
    t0 = time.perf_counter()
    model = train_image_ddpm(load_faces("train") * 2 - 1, config, Path(args.work) / "ddpm").to(args.device)
    t_train = time.perf_counter() - t0
    images = center_crop(load_faces("test"), config.data.image_size)  # (20, 1, 24, 24) in [0, 1]

    results = {}
    for mask in MASKS[:2] if args.quick else MASKS:
        res = evaluate_inpaint(
            model,
            images,
            mask,
            steps=rp.steps,
            jump_length=rp.jump_length,
            jump_n_sample=rp.jump_n_sample,
            samples=k,
            seed=0,
        )
        results[mask] = res
        m, b = res["model"], res["baselines"]
        key = f"hole_psnr_mean{k}" if k > 1 else "hole_psnr"
        print(
            f"{mask:8s} RePaint {m['hole_psnr']:.2f} dB (mean of {k}: {m.get(key, m['hole_psnr']):.2f}); "
            f"r=1 {b.get('repaint-r1', {}).get('hole_psnr', float('nan')):.2f}; mean-fill "
            f"{b['mean-fill']['hole_psnr']:.2f}; biharmonic {b['biharmonic']['hole_psnr']:.2f}; known max err "
            f"{m['known_max_abs_error']:.1e}",
            flush=True,
        )
    wall = time.perf_counter() - t_start
    result = {
        "benchmark": "vision_inpaint",
        "quick": args.quick,
        "masks": results,
        "train": {
            "steps": config.train.steps,
            "batch_size": config.train.batch_size,
            "seconds": t_train,
            "params": sum(p.numel() for p in model.parameters()),
        },
        "wall_seconds": wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "machine": {
            "device": args.device,
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        },
        "config": "ddpm-faces" + (f" with {over}" if over else ""),
        "command": "python " + " ".join(sys.argv),
    }
    if args.quick:
        return
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vision_inpaint.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "vision_inpaint.md").write_text(_markdown(result, k, rp))


def _markdown(result: dict, k: int, rp) -> str:
    tr, mach = result["train"], result["machine"]
    lines = [
        "## Vision: RePaint inpainting (faces)",
        "",
        "RePaint (Lugmayr et al. 2022) with an unconditional DDPM vs mean fill, scikit-image `inpaint_biharmonic`, and "
        "RePaint without resampling (r = 1).",
        f"Data: scikit-image `lfw_subset`, DDPM trained on 80 faces ({tr['steps']} steps, batch {tr['batch_size']}, "
        f"{tr['params']:,} parameters), 20 held-out faces (24x24 center crops). RePaint: {rp.steps} trailing steps, "
        f"j = {rp.jump_length}, r = {rp.jump_n_sample}. Hole metrics over the hole pixels only (data range 1); "
        f"RePaint as a single draw and as the mean of {k} draws (seed 0).",
        "",
        f"| mask | hole % | RePaint r={rp.jump_n_sample} | mean of {k} | RePaint r=1 | r=1 mean of {k} | mean fill | "
        "biharmonic | known pixels max error |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mask, res in result["masks"].items():
        m, b, pr = res["model"], res["baselines"], res["protocol"]
        r1 = b.get("repaint-r1", {})
        lines.append(
            f"| {mask} | {100 * pr['hole_fraction']:.0f} | {m['hole_psnr']:.2f} | "
            f"{m.get(f'hole_psnr_mean{k}', float('nan')):.2f} | {r1.get('hole_psnr', float('nan')):.2f} | "
            f"{r1.get(f'hole_psnr_mean{k}', float('nan')):.2f} | {b['mean-fill']['hole_psnr']:.2f} | "
            f"{b['biharmonic']['hole_psnr']:.2f} | {m['known_max_abs_error']:.1e} |"
        )
    lines += [
        "",
        "Values are hole PSNR in dB (higher is better); the JSON also has hole MSE and whole-image PSNR.",
        "",
        f"Wall time {result['wall_seconds']:.0f} s (training {tr['seconds']:.0f} s), peak RSS "
        f"{result['peak_rss_mb']:.0f} MB; device {mach['device']}"
        + (f" ({mach['gpu']})" if mach.get("gpu") else f", {mach['torch_threads']} torch thread(s)")
        + f". Command: `{result['command']}`.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
