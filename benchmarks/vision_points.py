"""Benchmark: point-cloud DDPM generation and PVD-style completion on held-out procedural shapes vs the baselines.

Protocol: train config points-shapes (400 clouds of 256 points: sphere, cube surface, torus, cylinder, cone, area-
uniform samples with random scale in [0.6, 1] and SO(3) rotation; seed 0) with core's fit on CPU, one thread. Held
out: 64 clouds from seed 10000. Generation: 64 clouds per sampler (ancestral "ddpm" on the trailing grid and
"dpm++2m", a few step counts each) against the 64 held-out clouds: MMD / COV / 1-NNA with squared Chamfer (PointFlow
convention) and, for the main sampler, exact EMD; the isotropic Gaussian blob with the training points' mean and std
is the baseline; the copy check compares each generated cloud's nearest training cloud with the training set's own
spacing. Completion: each held-out cloud is cut by a random plane keeping 25-50% of it, 64 of those points are
observed and stay clean; Chamfer / EMD of the completion to the full cloud against the partial + its reflection across
the cut plane. Writes benchmarks/results/vision_points.json, vision_points.md and vision_points.png.

    python benchmarks/vision_points.py
    python benchmarks/vision_points.py --gpu-paper-scale --seconds 120 --out DIR   # points-paper on cuda
"""

from __future__ import annotations

import json
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

import torch
from _vision import parser  # benchmarks/_vision.py, beside this script

from omnidiffusion.vision import load_vision_config
from omnidiffusion.vision.points.data import PointClouds, training_clouds
from omnidiffusion.vision.points.evaluation import evaluate_completion, evaluate_generation
from omnidiffusion.vision.points.render import render_clouds
from omnidiffusion.vision.points.training import build_model, train_points

GEN_SAMPLERS = (("ddpm", 100), ("ddpm", 50))  # dpm++2m rows: _clipped_rows
COMPLETION = ("ddpm", 100)
CLIP = 1.5  # x0_hat clamp for dpm++2m (|coordinates| of the bundled shapes stay below 0.8 sqrt(3) = 1.39)


def _overrides(args) -> list[str]:
    over = [*args.set, f"train.device={args.device}", "train.progress=false"]
    if args.steps is not None:
        over.append(f"train.steps={args.steps}")
    if args.quick:
        over += ["train.steps=20", "train.log_every=10", "train.ckpt_every=20", "points.width=32", "points.depth=1"]
        over += ["points.n_train=40", "points.n_test=8", "points.n_eval=8", "points.n_points=64", "points.n_known=16"]
    return over


def gpu_paper_scale(args) -> None:
    """Train points-paper for about args.seconds on the device, time one sampling batch, write OUT/..._gpu.json."""
    from omnidiffusion.core.training import TrainConfig, fit
    from omnidiffusion.vision.points.training import PointsLoss
    from omnidiffusion.vision.throughput import logged_rate

    device = args.device if args.device != "auto" else "cuda"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--gpu-paper-scale: CUDA is not available; pass --device cpu to exercise the code path")
    cuda = device.startswith("cuda")
    config = load_vision_config("points-paper", [*args.set, "points.n_train=64", "points.n_test=4"])
    p = config.points
    bs = args.batch or config.train.batch_size
    amp = "none" if not cuda else args.amp
    clouds = torch.as_tensor(training_clouds(config)[0])
    model = build_model(config)
    params = sum(q.numel() for q in model.parameters())
    loss = PointsLoss(p.complete_frac, p.n_known, p.keep_min, p.keep_max, p.augment_rotation)
    base = {"batch_size": bs, "lr": config.train.lr, "amp": amp, "device": device, "progress": False}
    base.update(ckpt_every=10**9, log_every=1, betas=tuple(config.train.betas), ema_decay=config.train.ema_decay)
    work = Path(args.out) / "vision_points_gpu_run"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    fit(model, loss, PointClouds(clouds), TrainConfig(steps=3, **base), work, resume=False)
    warm = time.perf_counter() - t0
    total = 3 + max(1, int(args.seconds / max(warm / 3, 1e-3)))
    log_every = max(1, (total - 3) // 20)
    cfg = TrainConfig(steps=total, **{**base, "log_every": log_every})
    r = fit(model, loss, PointClouds(clouds), cfg, work, resume=True)
    steps_per_s = logged_rate(work / "log.csv", first=4)  # fit's per-interval speeds, checkpoint writes excluded
    net = r.model.to(device).eval()
    steps = args.sample_steps or (config.sampler.steps if cuda else 3)
    sb = bs if cuda else 2
    if cuda:
        torch.cuda.synchronize()
    t2 = time.perf_counter()
    net.generate(sb, p.n_points, method=config.sampler.method, steps=steps, generator=torch.Generator().manual_seed(0))
    if cuda:
        torch.cuda.synchronize()
    sample_s = time.perf_counter() - t2
    result = {
        "benchmark": "vision_points --gpu-paper-scale (points-paper: 2048 points, width 256, depth 8, 32 inducing)",
        "device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "params": params,
        "batch": bs,
        "amp": amp,
        "train_steps": total - 3,
        "train_steps_per_s": steps_per_s,
        "sample_batch": sb,
        "sample_method": config.sampler.method,
        "sample_steps": steps,
        "samples_per_s": sb / sample_s,
        "samples_per_s_full_chain": sb / sample_s * steps / config.schedule.timesteps,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vision_points_gpu.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _clipped_rows(model, test, pts, quick: bool) -> dict:
    """dpm++2m with x0_hat clamped to [-CLIP, CLIP]: generation (CD metrics) and completion (CD)."""
    samplers = (("dpm++2m", 5),) if quick else (("dpm++2m", 50), ("dpm++2m", 25), ("dpm++2m", 10))
    gen = evaluate_generation(model, test, None, samplers=samplers, use_emd=False, clip=CLIP)
    comp = evaluate_completion(
        model, test, n_known=pts.n_known, keep_min=pts.keep_min, keep_max=pts.keep_max,
        method="dpm++2m", steps=5 if quick else 25, use_emd=False, clip=CLIP,
    )  # fmt: skip
    return {"clip": CLIP, "generation": gen["model"], "completion": comp["model"]}


def clip_supplement(args) -> None:
    """Evaluate the clipped dpm++2m rows with the model trained by the last full run; update the results."""
    from omnidiffusion.vision.points.model import PointDiffusionModel

    config = load_vision_config("points-shapes", _overrides(args))
    pts = config.points
    test = training_clouds(config)[1][: pts.n_eval]
    model = PointDiffusionModel.from_pretrained(Path(args.work) / "points")
    c0 = time.process_time()
    extra = _clipped_rows(model, test, pts, args.quick)
    extra["cpu_s"] = time.process_time() - c0
    extra["note"] = "evaluated after the main run, with the same trained model (--clip-supplement)"
    name = "vision_points_quick" if args.quick else "vision_points"
    path = Path(args.results) / f"{name}.json"
    result = json.loads(path.read_text())
    result["dpm_clipped"] = extra
    path.write_text(json.dumps(result, indent=2) + "\n")
    (Path(args.results) / f"{name}.md").write_text(markdown(result, config))
    print(markdown(result, config))


def main() -> None:
    p = parser(__doc__, "unused", "runs/bench/vision_points")
    p.add_argument("--clip-supplement", action="store_true", help="add clipped dpm++2m rows using the trained model")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.gpu_paper_scale:
        gpu_paper_scale(args)
        return
    if args.clip_supplement:
        clip_supplement(args)
        return
    t_start, c_start = time.perf_counter(), time.process_time()
    config = load_vision_config("points-shapes", _overrides(args))
    pts = config.points
    train, test = training_clouds(config)
    test = test[: pts.n_eval]
    work = Path(args.work) / "points"
    if work.exists():  # the benchmark's own scratch run: always train from scratch
        shutil.rmtree(work)
    t0, c0 = time.perf_counter(), time.process_time()
    model = train_points(config, train, work, resume=False).to(args.device)
    t_train, c_train = time.perf_counter() - t0, time.process_time() - c0
    params = sum(q.numel() for q in model.parameters())

    samplers = (("ddpm", 5), ("ddpm", 3)) if args.quick else GEN_SAMPLERS
    comp_sampler = ("ddpm", 5) if args.quick else COMPLETION
    t1, c1 = time.perf_counter(), time.process_time()
    gen = evaluate_generation(model, test, train, samplers=samplers[:1], use_emd=pts.emd)
    rest = evaluate_generation(model, test, None, samplers=samplers[1:], use_emd=False)
    gen["model"].update(rest["model"])
    gen["protocol"]["samplers"] += rest["protocol"]["samplers"]
    gen["protocol"]["emd_for"] = f"{samplers[0][0]} {samplers[0][1]} steps and the blob"
    comp = evaluate_completion(
        model, test, n_known=pts.n_known, keep_min=pts.keep_min, keep_max=pts.keep_max,
        method=comp_sampler[0], steps=comp_sampler[1], use_emd=pts.emd,
    )  # fmt: skip
    clipped = _clipped_rows(model, test, pts, args.quick)
    t_eval, c_eval = time.perf_counter() - t1, time.process_time() - c1

    # figure: 4 held-out, 8 generated, 4 completions (observed points in red)
    g = torch.Generator().manual_seed(0)
    shown = model.generate(8, method=samplers[0][0], steps=samplers[0][1], generator=g)
    import numpy as np

    from omnidiffusion.vision.points.shapes import cut_partial

    rng = np.random.default_rng(0)
    parts = torch.as_tensor(
        np.stack([cut_partial(c, pts.n_known, rng, pts.keep_min, pts.keep_max)[1] for c in test[:4]])
    )
    done = model.complete(parts, method="dpm++2m", steps=25, generator=g, clip=CLIP)
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    name = "vision_points_quick" if args.quick else "vision_points"
    figure = render_clouds(
        [*test[:4], *shown, *done],
        results_dir / f"{name}.png",
        titles=[*["held-out"] * 4, *["generated"] * 8, *["completed"] * 4],
        highlight=[0] * 12 + [pts.n_known] * 4,
        cols=8,
        size=1.8,
    )

    result = {
        "benchmark": "vision_points",
        "config": "points-shapes" + (" (--quick)" if args.quick else ""),
        "params": params,
        "generation": gen,
        "completion": comp,
        "dpm_clipped": clipped,
        "train": {
            "steps": config.train.steps,
            "batch_size": config.train.batch_size,
            "wall_s": t_train,
            "cpu_s": c_train,
        },
        "eval": {"wall_s": t_eval, "cpu_s": c_eval},
        "wall_s": time.perf_counter() - t_start,
        "cpu_s": time.process_time() - c_start,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), "
        f"python {sys.version.split()[0]}, torch {torch.__version__}",
        "figure": figure.name,
    }
    (results_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (results_dir / f"{name}.md").write_text(markdown(result, config))
    print(markdown(result, config))


def _f(x: float, scale: float = 1.0, digits: int = 2) -> str:
    return f"{x * scale:.{digits}f}"


def markdown(r: dict, config) -> str:
    """The results section (## Vision: point clouds) from the result dict."""
    gen, comp = r["generation"], r["completion"]
    blob = gen["baselines"]["gaussian_blob"]
    lines = [
        "## Vision: point clouds",
        "",
        f"Config `{r['config']}` ({r['params']:,} parameters), trained {r['train']['steps']} steps at batch "
        f"{r['train']['batch_size']} on {config.points.n_train} procedural clouds of {config.points.n_points} points; "
        "evaluated on "
        f"{gen['protocol']['n_reference']} held-out clouds (another seed). CD = squared Chamfer (PointFlow) x 10^3, "
        "EMD = mean matched distance (exact assignment) x 10^2; 1-NNA 50% is ideal.",
        "",
        "### Generation",
        "",
        "| model / baseline | sampler | 1-NNA-CD | COV-CD | MMD-CD | 1-NNA-EMD | COV-EMD | MMD-EMD | sample s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, m in gen["model"].items():
        if key == "copy_check":
            continue
        emd = (
            f"{_f(m['1nna_emd'], 100, 1)}% | {_f(m['cov_emd'], 100, 1)}% | {_f(m['mmd_emd'], 100)}"
            if "1nna_emd" in m
            else "- | - | -"
        )
        lines.append(
            f"| point DDPM | {key.replace('_', ' ')} steps | {_f(m['1nna_cd'], 100, 1)}% | {_f(m['cov_cd'], 100, 1)}% "
            f"| {_f(m['mmd_cd'], 1e3)} | {emd} | {m['sample_seconds']:.1f} |"
        )
    clipped = r.get("dpm_clipped")
    for key, m in (clipped or {}).get("generation", {}).items():
        lines.append(
            f"| point DDPM, x0 clipped to +-{clipped['clip']:g} | {key.replace('_', ' ')} steps | "
            f"{_f(m['1nna_cd'], 100, 1)}% | {_f(m['cov_cd'], 100, 1)}% | {_f(m['mmd_cd'], 1e3)} | - | - | - | "
            f"{m['sample_seconds']:.1f} |"
        )
    lines.append(
        f"| Gaussian blob | - | {_f(blob['1nna_cd'], 100, 1)}% | {_f(blob['cov_cd'], 100, 1)}% | "
        f"{_f(blob['mmd_cd'], 1e3)} | {_f(blob.get('1nna_emd', float('nan')), 100, 1)}% | "
        f"{_f(blob.get('cov_emd', float('nan')), 100, 1)}% | {_f(blob.get('mmd_emd', float('nan')), 100)} | - |"
    )
    cc = gen["model"].get("copy_check", {})
    if cc:
        lines += [
            "",
            f"Copy check ({gen['protocol']['samplers'][0]}): {cc['copies']} of {gen['protocol']['n_generated']} "
            f"generated clouds within {_f(cc['threshold_cd'], 1e3, 3)} (CD x 10^3; half the 5th percentile of the "
            f"training clouds' nearest-neighbour CD) of a training cloud; nearest-train CD min "
            f"{_f(cc['nearest_train_cd_min'], 1e3, 2)}, median {_f(cc['nearest_train_cd_median'], 1e3, 2)}, vs "
            f"train-train median {_f(cc['train_train_nn_cd_median'], 1e3, 2)}.",
        ]
    lines += [
        "",
        f"### Completion ({config.points.n_known} observed points kept clean, from the side of a random plane that "
        f"keeps {100 * config.points.keep_min:.0f}-{100 * config.points.keep_max:.0f}% of the cloud)",
        "",
        "| method | CD x 10^3 | EMD x 10^2 |",
        "|---|---|---|",
    ]
    for key, m in comp["model"].items():
        emd = _f(m["emd"], 100) if "emd" in m else "-"
        lines.append(f"| point DDPM, {key.replace('_', ' ')} steps | {_f(m['cd'], 1e3)} | {emd} |")
    for key, m in (clipped or {}).get("completion", {}).items():
        lines.append(
            f"| point DDPM, {key.replace('_', ' ')} steps, x0 clipped to +-{clipped['clip']:g} | "
            f"{_f(m['cd'], 1e3)} | - |"
        )
    for key, m in comp["baselines"].items():
        label = {"reflection": "partial + reflection across the cut plane", "partial_only": "partial input only"}[key]
        lines.append(f"| {label} | {_f(m['cd'], 1e3)} | {_f(m['emd'], 100) if 'emd' in m else '-'} |")
    if clipped and "note" in clipped:
        lines += ["", f"Clipped dpm++2m rows: {clipped['note']}; CPU time {clipped['cpu_s'] / 60:.1f} min."]
    lines += [
        "",
        f"Wall time {r['wall_s'] / 60:.1f} min (training {r['train']['wall_s'] / 60:.1f} min, evaluation "
        f"{r['eval']['wall_s'] / 60:.1f} min) on a CPU shared with other jobs, so wall times are inflated; process "
        f"CPU time {r['cpu_s'] / 60:.1f} min (training {r['train']['cpu_s'] / 60:.1f}, evaluation "
        f"{r['eval']['cpu_s'] / 60:.1f}), which is what one thread costs alone. Peak RSS {r['peak_rss_mib']:.0f} MiB. "
        f"Machine: {r['machine']}.",
        "",
        f"![held-out, generated and completed clouds]({r['figure']})",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
