"""Benchmark: zero-shot inverse problems (DDNM, DDNM+, DPS, RePaint, SDEdit) with ONE unconditional DDPM per domain.

Protocol: train the unconditional DDPM of config ddpm-faces, for the sr4 comparison SR3 and its same-size L2
regression UNet of config sr3-faces, and for colourisation the ddpm-faces config on RGB photo crops (side by side
on CPU, one process and one thread each, the configs' 3000 steps). Restore 20 held-out images (pixel range
[0, 1]; the solvers work in [-1, 1]) from y = A x + sigma_y n for the tasks
  sr4        A = anti-aliased bicubic downsampling 24 -> 6 (the LR SR3 and the regression UNet are trained on;
             exact pinv from the Kronecker SVD), noise-free
  sr4-noisy  the same with sigma_y = 0.05 (pixel range)
  inpaint    A = keep the pixels outside a centred square hole (50% of the area)
  deblur     A = circular Gaussian blur, sigma 2 px (FFT)
  colorize   A = ITU-R 601 grey; the solvers lift by the grey copy (Grey's default, chosen before this run);
             colorize-pinv is the same task with the Moore-Penrose lift (Grey(lift="pinv"), the lift of the
             previous run), an ablation of ddnm / repaint / sdedit (the solvers that use the lift)
on the held-out lfw faces (center 24x24 crops, grey) for the first four and, for colorize, on 24x24 crops of the
colour photographs (astronaut, coffee, chelsea; training crops come from the left 3/4 of each photograph, test
crops from the right 1/4) restored by the DDPM trained on 2048 training-side crops (ddpm-photos). Rows: every
solver at 20 / 50 / 100 steps, the task's classical baseline (bicubic upsampling, biharmonic inpainting, Wiener
deconvolution, grey copy), and for sr4 SR3 (ancestral 100 steps, dpm++2m 25 steps) and the regression UNet.
Each stochastic method draws --samples (4) restorations per image: it is scored on its first draw and on the
mean of the draws (the estimate of the posterior mean, which PSNR rewards); the targets compare means with
means. PSNR / SSIM at data range 1 (metrics.py), consistency ||A x - y|| per image (RMS over measurements, pixel
range, after the [0, 1] clamp), seconds per image and draw.

Picked on TRAINING images only (4 of them, never the held-out ones), per task at 20 steps: DPS's zeta' and
SDEdit's t0 (TUNED).

    python benchmarks/vision_inverse.py                 # trains what --work lacks, evaluates, writes results
    python benchmarks/vision_inverse.py --train-only    # only the trainings
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

import torch
from _vision import train_side_by_side  # benchmarks/_vision.py, beside this script
from torch import Tensor

from omnidiffusion.vision import (
    SR3,
    ImageDDPM,
    RegressionSR,
    load_faces,
    load_vision_config,
    train_image_ddpm,
    train_regression,
    train_sr3,
)
from omnidiffusion.vision.data import training_images

ROOT = Path(__file__).resolve().parents[1]


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-steps", type=int, default=3000, help="training steps of each model (the configs')")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", default="runs/bench/vision_inverse")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--train-only", action="store_true")
    p.add_argument("--retrain", action="store_true", help="train even when --work holds the models")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run on untrained tiny models")
    p.add_argument("--images", type=int, default=20, help="held-out images to restore per task (at most 20)")
    p.add_argument("--samples", type=int, default=4, help="draws per image (first draw and mean of k scored)")
    return p.parse_args()


def _overrides(args: argparse.Namespace) -> list[str]:
    over = [f"train.steps={args.train_steps}", "train.progress=false", "train.device=cpu"]
    if args.quick:
        over += ["train.steps=4", "model.base_channels=8", "model.num_res_blocks=1", "model.norm_groups=4"]
        over += ["train.log_every=2", "train.ckpt_every=4"]
    return over


PHOTOS = ["data.source=photos", "data.channels=3", "data.photo_crops=2048"]  # the RGB prior of colorize


def train_models(args: argparse.Namespace) -> dict:
    """Train (or reuse) under --work the faces DDPM, SR3, the regression UNet and the RGB photo-crop DDPM; returns
    the training record. A model is reused when its folder is complete and it was trained with the same overrides;
    the missing ones are trained side by side."""
    work = Path(args.work)
    record_file = work / "training.json"
    record = json.loads(record_file.read_text()) if record_file.is_file() and not args.retrain else {}
    over = _overrides(args)
    ddpm_cfg = load_vision_config("ddpm-faces", over)
    sr_cfg = load_vision_config("sr3-faces", over)
    rgb_cfg = load_vision_config("ddpm-faces", [*over, *PHOTOS])
    models = {
        "ddpm": (train_image_ddpm, lambda: load_faces("train") * 2 - 1, ddpm_cfg),  # (80, 1, 25, 25) in [-1, 1]
        "sr3": (train_sr3, lambda: training_images("lfw", 1, 24), sr_cfg),
        "regression": (train_regression, lambda: training_images("lfw", 1, 24), sr_cfg),
        "ddpm-photos": (train_image_ddpm, lambda: training_images("photos", 3, 24, photo_crops=2048), rgb_cfg),
    }
    done = record.get("models", {})
    todo = [n for n in models if not ((work / n / "config.json").is_file() and done.get(n, {}).get("steps") == over)]
    if todo:
        for n in todo:
            if (work / n).exists():
                shutil.rmtree(work / n)  # an unfinished or outdated run
        jobs = [(models[n][0], models[n][1](), models[n][2], work / n) for n in todo]
        times = train_side_by_side(jobs, parallel=len(jobs) > 1)
        for n, (wall, cpu) in zip(todo, times, strict=True):
            done[n] = {"steps": over, "seconds": wall, "cpu_seconds": cpu, "side_by_side_with": todo}
        work.mkdir(parents=True, exist_ok=True)
        record = {"models": done, "train_steps": ddpm_cfg.train.steps, "batch_size": ddpm_cfg.train.batch_size,
                  "side_by_side": "one process and one thread per model"}
        record_file.write_text(json.dumps(record, indent=2) + "\n")
    record = {**record, "reused": [n for n in models if n not in todo]}
    return record


TASKS = {  # name: (operator, sigma_y in pixel units, prior)
    "sr4": ("sr4", 0.0, "ddpm"),
    "sr4-noisy": ("sr4", 0.05, "ddpm"),
    "inpaint": ("inpaint", 0.0, "ddpm"),
    "deblur": ("deblur", 0.0, "ddpm"),
    "colorize": ("colorize", 0.0, "ddpm-photos"),
    "colorize-pinv": ("colorize", 0.0, "ddpm-photos"),
}
LIFT_SOLVERS = ("ddnm", "repaint", "sdedit")  # the ones the ablation colorize-pinv runs


def _images(task: str, split: str, n: int) -> Tensor:
    """Pixel-range images of `task`: lfw faces (center 24x24 crops), or for colorize 24x24 crops of the colour
    photographs (astronaut, coffee, chelsea; camera is grey, so its crops are skipped), train or test side."""
    from omnidiffusion.vision.data import center_crop, load_photo_crops

    if TASKS[task][2] == "ddpm-photos":
        crops = load_photo_crops(split, 24, 4 * n, 3, seed=7)
        return crops[torch.arange(crops.shape[0]) % 4 != 3][:n]
    return center_crop(load_faces(split), 24)[:n]


STEPS = (20, 50, 100)  # every solver
SOLVER_OPTIONS = {"ddnm": {"eta": 0.85}, "ddnm+": {"eta": 0.85}, "repaint": {"jump_length": 5, "jump_n_sample": 2}}
TUNED = {"dps": ("zeta", (0.1, 0.3, 1.0, 3.0)), "sdedit": ("t0", (0.1, 0.2, 0.3, 0.5))}  # picked per task


def _operator(task: str, size: int):
    from omnidiffusion.vision.inverse import make_operator
    from omnidiffusion.vision.masks import box_mask

    name = TASKS[task][0]
    # sr4 uses anti-aliased bicubic downsampling: the degradation SR3 and the regression UNet were trained on
    return make_operator(name, (size, size), mask=box_mask((size, size), 0.5), blur_sigma=2.0, kind="bicubic",
                         grey_lift="pinv" if task == "colorize-pinv" else "copy")


def _tune(ddpm, task: str, size: int, steps: int, solver: str, option: str, values) -> tuple[float, dict]:
    """`option` of `solver` picked on 4 TRAINING images (never the held-out ones) by one-draw PSNR at `steps`."""
    from omnidiffusion.vision.inverse.evaluation import evaluate_inverse

    train = _images(task, "train", 4)
    op, sigma_y = _operator(task, size), TASKS[task][1]
    scores = {}
    for v in values:
        res, _ = evaluate_inverse(ddpm, train, op, task=task, solver=solver, steps=steps, sigma_y=sigma_y, seed=1,
                                  with_baseline=False, **{**SOLVER_OPTIONS.get(solver, {}), option: v})
        scores[v] = res["model"]["psnr"]
    return max(scores, key=scores.get), scores


def _sr3_rows(sr3, reg, y: Tensor, truth: Tensor, op, steps_list, k: int) -> dict:
    from omnidiffusion.vision.inverse.evaluation import score, score_draws
    from omnidiffusion.vision.sr3 import regression_upscale, sr3_upscale

    rows = {}
    lr = y.clamp(0, 1) * 2 - 1
    for method, steps in steps_list:
        t0 = time.perf_counter()
        out = sr3_upscale(sr3, lr, method=method, steps=steps, grid="trailing", samples=k,
                          generator=torch.Generator().manual_seed(0))  # (k, N, C, H, W)
        seconds = (time.perf_counter() - t0) / (truth.shape[0] * k)
        rows[f"SR3 {method} {steps}"] = {**score_draws((out.clamp(-1, 1) + 1) / 2, truth, op, y),
                                         "seconds_per_image": seconds, "sampler": f"{method} {steps}"}
    t0 = time.perf_counter()
    x = (regression_upscale(reg, lr) + 1) / 2
    seconds = (time.perf_counter() - t0) / truth.shape[0]
    rows["regression UNet"] = {**score(x, truth, op, y), "seconds_per_image": seconds}
    return rows


def evaluate_all(args, priors: dict, sr3, reg, training: dict, t_start: float) -> None:
    from omnidiffusion.vision.inverse.evaluation import BASELINES, baseline, degrade, evaluate_inverse, score

    k = args.samples
    steps_list = STEPS if not args.quick else (3,)
    results, figure = {}, {}
    for task, (_, sigma_y, prior) in TASKS.items():
        ddpm = priors[prior]
        size = ddpm.image_size
        truth = _images(task, "test", args.images)  # (N, C, 24, 24) in [0, 1]
        op = _operator(task, size)
        y = degrade(truth, op, sigma_y, seed=0)
        t0 = time.perf_counter()
        base = baseline(task, op, y)
        rows = {f"{BASELINES[TASKS[task][0]]} (classical)": {**score(base, truth, op, y),
                                                    "seconds_per_image": (time.perf_counter() - t0) / len(truth)}}
        shown = {"y": y, "classical": base}
        solvers = ["ddnm", "ddnm+", "dps", "repaint", "sdedit"] if sigma_y > 0 else ["ddnm", "dps", "repaint", "sdedit"]
        if task == "colorize-pinv":
            solvers = list(LIFT_SOLVERS)
        tuned = {}
        for solver, (option, values) in TUNED.items():
            if solver in solvers:
                values = values if not args.quick else values[:1]
                tuned[solver] = (option, *_tune(ddpm, task, size, steps_list[0], solver, option, values))
        for solver in solvers:
            for steps in steps_list:
                opts = {tuned[solver][0]: tuned[solver][1]} if solver in tuned else SOLVER_OPTIONS[solver]
                res, draws = evaluate_inverse(ddpm, truth, op, task=task, solver=solver, steps=steps,
                                              sigma_y=sigma_y, seed=0, with_baseline=False, y=y, samples=k, **opts)
                m = res["model"]
                rows[f"{solver} {steps}"] = {**m, "solver": solver, "steps": steps}
                if steps == 50 or args.quick:
                    shown[solver] = draws[0]  # the figure shows the first (scored) draw
                mean = f" (mean of {k}: {m[f'psnr_mean{k}']:.2f})" if k > 1 else ""
                print(f"{task:9s} {solver:7s} {steps:3d} steps: PSNR {m['psnr']:.2f}{mean} SSIM {m['ssim']:.3f} "
                      f"consistency {m['consistency']:.2e} {m['seconds_per_image']:.3f} s/img "
                      f"(elapsed {time.perf_counter() - t_start:.0f} s)", flush=True)
        if task.startswith("sr4"):
            sr3_steps = [("ddpm", 100), ("dpm++2m", 25)] if not args.quick else [("dpm++2m", 3)]
            rows.update(_sr3_rows(sr3, reg, y, truth, op, sr3_steps, k))
        shown["truth"] = truth
        figure[task] = shown
        results[task] = {"sigma_y": sigma_y, "operator": op.name, "prior": prior, "images": list(truth.shape),
                         "rows": rows,
                         "tuned": {sv: {"option": o, "value": v, "training_psnr": sc}
                                   for sv, (o, v, sc) in tuned.items()}}
        print(f"{task}: classical {rows[next(iter(rows))]['psnr']:.2f} dB", flush=True)
    summary = _summary(results, k)
    wall = time.perf_counter() - t_start
    result = {
        "benchmark": "vision_inverse",
        "quick": args.quick,
        "summary": summary,
        "tasks": results,
        "protocol": {
            "images": "20 held-out lfw faces (grey); colorize: 20 test-side crops of the colour photographs",
            "samples": k,
            "prior": "ddpm-faces (ImageDDPM, linear betas, T = 1000, eps-prediction); colorize: the same config on "
                     "2048 RGB train-side photo crops (ddpm-photos)",
            "grid": "trailing",
            "solver_options": SOLVER_OPTIONS,
            "tuned": "per task on 4 training images, one draw, 20 steps, by PSNR: "
                     + "; ".join(f"{sv} {o} among {list(v)}" for sv, (o, v) in TUNED.items()),
            "consistency": "per-image RMS of A x - y over the measurement (inpainting: known pixels), pixel range, "
                           "of the first draw after the [0, 1] clamp",
            "data_range": 1.0,
        },
        "training": training,
        "wall_seconds": wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "machine": {"torch_threads": torch.get_num_threads(), "platform": platform.platform(),
                    "cpu": platform.processor() or platform.machine()},
        "command": "python " + " ".join(sys.argv),
    }
    if args.quick:
        print(json.dumps(summary, indent=2))
        return
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vision_inverse.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "vision_inverse.md").write_text(_markdown(result))
    _figure(figure, out / "vision_inverse.png")
    print(json.dumps(summary, indent=2))


def _summary(results: dict, k: int) -> dict:
    """Per task: classical vs the best zero-shot row, on the first draw and on the mean of k (the targets' basis,
    the classical and regression rows being deterministic); for sr4 also DDNM against SR3."""
    key = f"psnr_mean{k}" if k > 1 else "psnr"

    def best(rows: dict, metric: str) -> tuple[str, float]:
        name = max(rows, key=lambda n: rows[n][metric])
        return name, rows[name][metric]

    out = {}
    for task, r in results.items():
        rows = r["rows"]
        classical = next(iter(rows))
        c_psnr = rows[classical]["psnr"]
        zero_shot = {n: v for n, v in rows.items() if "solver" in v}
        name, value = best(zero_shot, key)
        name1, value1 = best(zero_shot, "psnr")
        s = {"classical": classical, "classical_psnr": c_psnr, "basis": key,
             "best_zero_shot": name, "best_zero_shot_psnr": value, "best_zero_shot_above_classical": value > c_psnr,
             "best_zero_shot_one_draw": name1, "best_zero_shot_one_draw_psnr": value1,
             "ddnm_consistency": {n: v["consistency"] for n, v in zero_shot.items() if v["solver"] == "ddnm"},
             "sigma_y": r["sigma_y"]}
        if task == "sr4":
            sr3_name, sr3 = best({n: v for n, v in rows.items() if n.startswith("SR3")}, key)
            ddnm_name, ddnm = best({n: v for n, v in zero_shot.items() if v["solver"] == "ddnm"}, key)
            s.update({"sr3_best": sr3_name, "sr3_best_psnr": sr3, "ddnm_best": ddnm_name, "ddnm_best_psnr": ddnm,
                      "ddnm_minus_sr3_db": ddnm - sr3, "ddnm_within_0.5db_of_sr3": ddnm >= sr3 - 0.5,
                      "ddnm_above_bicubic": ddnm > c_psnr,
                      "regression_psnr": rows["regression UNet"]["psnr"]})
        out[task] = s
    return out


def _markdown(result: dict) -> str:
    tr, p = result["training"], result["protocol"]
    k = p["samples"]
    mean = f"mean of {k}"
    lines = [
        "## Vision: zero-shot inverse problems (one unconditional DDPM per domain)",
        "",
        "DDNM / DDNM+ (Wang et al. 2023), DPS (Chung et al. 2023), RePaint (Lugmayr et al. 2022) and SDEdit "
        "(Meng et al. 2022) on ONE unconditional DDPM per domain (config ddpm-faces), against the classical "
        "baseline of each task and, for sr4, SR3 and the regression UNet trained for that degradation. "
        "20 held-out lfw faces, 24x24 grey, pixel range [0, 1]; sr4 = anti-aliased bicubic "
        "downsampling 24 -> 6 (the LR SR3 is trained on); inpaint = centred box hole, 50% of the area; deblur = "
        "circular Gaussian blur sigma 2 px; colorize = ITU-R 601 grey of 20 test-side 24x24 crops of the colour "
        "photographs (astronaut, coffee, chelsea), restored by the same DDPM config trained on 2048 train-side "
        "RGB crops (ddpm-photos), the solvers lifting y by the grey copy (Grey's default); colorize-pinv = the "
        "same with the Moore-Penrose lift A^+ y (an ablation of the solvers that use the lift); sigma_y in pixel "
        "units. "
        f"Training: {tr['train_steps']} steps per model, batch {tr['batch_size']}, one process and one thread each "
        "(which models ran side by side: training.json). "
        f"{k} draws per image (seed 0): PSNR / SSIM of the first draw and of the {mean} draws. DPS's zeta' and "
        "SDEdit's t0 (from the lift B y: A^+ y, for colorize the grey copy) tuned per task on 4 training images "
        "(one draw, 20 steps). Consistency = RMS of "
        "A x - y (pixel range, first draw, after the [0, 1] clamp). RePaint j = 5, r = 2; DDNM eta = 0.85.",
        "",
        f"| task | method | steps | PSNR (dB), 1 draw | PSNR, {mean} | SSIM, 1 draw | SSIM, {mean} | consistency "
        "| s / image |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task, r in result["tasks"].items():
        label = f"{task} (sigma_y {r['sigma_y']:g})" if r["sigma_y"] else task
        for name, v in r["rows"].items():
            steps = v.get("steps", "-")
            method = v.get("solver", name)
            if method in r["tuned"]:
                method = f"{method} ({r['tuned'][method]['option']} {r['tuned'][method]['value']:g})"
            pm = f"{v[f'psnr_mean{k}']:.2f}" if f"psnr_mean{k}" in v else "-"
            sm = f"{v[f'ssim_mean{k}']:.3f}" if f"ssim_mean{k}" in v else "-"
            lines.append(f"| {label} | {method} | {steps} | {v['psnr']:.2f} | {pm} | {v['ssim']:.3f} | {sm} | "
                         f"{v['consistency']:.2e} | {v['seconds_per_image']:.3f} |")
    s = result["summary"]
    sr = s.get("sr4", {})
    lines += [
        "",
        f"sr4 ({mean}): best DDNM ({sr.get('ddnm_best')}) {sr.get('ddnm_best_psnr', float('nan')):.2f} dB vs best "
        f"SR3 ({sr.get('sr3_best')}) {sr.get('sr3_best_psnr', float('nan')):.2f} dB "
        f"({sr.get('ddnm_minus_sr3_db', float('nan')):+.2f} dB) and bicubic "
        f"{sr.get('classical_psnr', float('nan')):.2f} dB. Best zero-shot ({mean}) vs classical: "
        + "; ".join(f"{t} {v['best_zero_shot']} {v['best_zero_shot_psnr']:.2f} vs {v['classical_psnr']:.2f} dB"
                    for t, v in s.items())
        + ". One draw: "
        + "; ".join(f"{t} {v['best_zero_shot_one_draw']} {v['best_zero_shot_one_draw_psnr']:.2f} dB"
                    for t, v in s.items())
        + ".",
        "",
        f"Wall time {result['wall_seconds']:.0f} s (training "
        + ", ".join(f"{n} {m['seconds']:.0f} s" for n, m in tr["models"].items())
        + (f"; reused from --work: {', '.join(tr['reused'])}" if tr.get("reused") else "")
        + f"), peak RSS {result['peak_rss_mb']:.0f} MB, CPU, torch threads: {result['machine']['torch_threads']}, "
        "on a shared 2-core machine. Figure: benchmarks/results/vision_inverse.png (rows: tasks; columns: y, "
        "classical, one draw of each solver at 50 steps, ground truth).",
        "",
    ]
    return "\n".join(lines)


def _figure(figure: dict, path: Path, faces: int = 3) -> None:
    """One PNG: per task and image a row y | classical | solvers at 50 steps | truth (y shown at 24x24)."""
    from PIL import Image, ImageDraw

    from omnidiffusion.vision.imaging import tensor_to_pil

    size, scale, pad = 24, 3, 2
    names = ["y", "classical", "ddnm", "ddnm+", "dps", "repaint", "sdedit", "truth"]
    rows = [(task, k) for task in figure for k in range(faces)]
    cell, head = size * scale + pad, 14
    img = Image.new("RGB", (len(names) * cell + pad, head + len(rows) * cell + pad), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for j, name in enumerate(names):
        draw.text((pad + j * cell, 1), name, fill=(0, 0, 0))
    for r, (task, k) in enumerate(rows):
        for j, name in enumerate(names):
            if name not in figure[task]:
                continue
            t = figure[task][name][k].clamp(0, 1)
            if t.shape[-1] != size:
                t = torch.nn.functional.interpolate(t[None], size=(size, size), mode="nearest")[0]
            tile = tensor_to_pil(t).convert("RGB").resize((size * scale, size * scale), Image.NEAREST)
            img.paste(tile, (pad + j * cell, head + pad + r * cell))
    img.save(path)


def main() -> None:
    args = _args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    training = train_models(args)
    print(f"training: {json.dumps(training)}", flush=True)
    if args.train_only:
        return
    work = Path(args.work)
    priors = {name: ImageDDPM.from_pretrained(work / name) for name in ("ddpm", "ddpm-photos")}
    sr3 = SR3.from_pretrained(work / "sr3")
    reg = RegressionSR.from_pretrained(work / "regression")
    evaluate_all(args, priors, sr3, reg, training, t_start)


if __name__ == "__main__":
    multiprocessing.freeze_support()
    main()
