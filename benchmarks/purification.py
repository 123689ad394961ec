"""DiffPure on held-out digits: clean and robust accuracy against the undefended classifier, under four threats.

Protocol (CPU, one thread, every number with the number of test images it rests on and a 95% Wilson interval):
1. Train the small CNN classifier (config `digits`, core `fit`) on the 1497 training digits (16x16, [0, 1]) and
   the small unconditional DDPM through `omnidiffusion.vision.train_image_ddpm` (vision's `ddpm-digits` at base
   width 16) on the same training digits. The last 300 digits are held out for everything below.
2. Undefended: PGD-20 (Linf, alpha = 2.5 eps / 20, random start) on the classifier alone over an eps grid; the
   headline eps is the smallest on the grid where its robust accuracy is below 10%.
3. Table over t* x eps: DiffPure (reverse SDE, Euler-Maruyama, dt = 0.01) clean accuracy and transfer accuracy
   (PGD-20 on the classifier alone, then purify), n = 300.
4. Samplers against steps at the headline t* (checklist 5): the paper's reverse SDE, ancestral DDPM and the
   few-step DPM-Solver++(2M) on the probability-flow ODE: clean and transfer accuracy, n = 300.
5. Adaptive attacks at the headline (t*, eps) on the first `--n-adaptive` test digits: BPDA + EOT-PGD and
   full-gradient EOT-PGD through every solver step of the deployed purifier (Lee & Kim 2023), the same purifier
   that is evaluated (so the gradient is exact, not a surrogate's). The defended prediction uses fresh noise.

    python benchmarks/purification.py [--work runs/bench/purification] [--n-adaptive 64] [--quick]
    python benchmarks/purification.py --gpu-paper-scale --seconds 60 --out DIR [--device cuda]

Writes benchmarks/results/purification.json, purification.md (the RESULTS.md section) and the figure
benchmarks/results/purification.png (beside the JSON; --results moves all three).
GPU mode (--gpu-paper-scale) trains the paper-scale DDPM (vision `ddpm-paper`: Ho et al. 2020's CIFAR-10 UNet,
batch 128, bf16 autocast) on 32x32 crops of the bundled photographs for S seconds, then times DiffPure at the
paper's CIFAR-10 setting (t* = 0.1, 100 Euler-Maruyama steps) and one full-gradient attack step through the 100-step
purifier with gradient checkpointing, and writes DIR/purification_gpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from dataclasses import asdict
from pathlib import Path

import torch

from omnidiffusion.core.checks import resolve_device
from omnidiffusion.core.training import TrainConfig
from omnidiffusion.purification import (
    AttackConfig,
    DiffPure,
    PurifiedClassifier,
    SmallCNN,
    digits_split,
    evaluate_robustness,
    predict_labels,
    train_classifier,
)
from omnidiffusion.purification.evaluation import sweep_t_star
from omnidiffusion.purification.metrics import summarize
from omnidiffusion.purification.plots import plot_robustness
from omnidiffusion.purification.settings import load_purification_config

RESULTS = Path(__file__).resolve().parent / "results"
EPS_GRID = [0.05, 0.1, 0.15, 0.2, 0.3]
T_STARS = [0.05, 0.1, 0.2, 0.3]
DT = 0.01  # reverse-SDE step in diffusion time for every purifier here (DiffPure uses 1e-3)
T_MAIN = 0.1  # DiffPure's CIFAR-10 Linf t*
SAMPLERS = [
    ("sde", 2),
    ("sde", 5),
    ("sde", 10),
    ("sde", 20),
    ("ddpm", 5),
    ("ddpm", 10),
    ("dpm++2m", 2),
    ("dpm++2m", 5),
    ("dpm++2m", 10),
]


def _pct(r: dict) -> str:
    return f"{100 * r['accuracy']:.1f} [{100 * r['ci_low']:.0f}, {100 * r['ci_high']:.0f}]"


def train_models(work: Path, quick: bool) -> tuple[torch.nn.Module, torch.nn.Module, dict]:
    """The classifier (config `digits`) and the DDPM (vision ddpm-digits at width 16), with their wall times."""
    from omnidiffusion.vision import train_image_ddpm

    cfg = load_purification_config("digits")
    x, y = digits_split("train")
    times = {"reused_checkpoints": (work / "diffusion" / "checkpoint").is_dir()}
    t0 = time.perf_counter()
    train_cfg = cfg.train if not quick else TrainConfig(**{**asdict(cfg.train), "steps": 20})
    torch.manual_seed(0)
    cls = SmallCNN(1, 10, cfg.classifier.width)
    res = train_classifier(cls, x, y, train_cfg, work / "classifier")
    classifier = res.final_model.cpu().eval()
    times["classifier_train_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    overrides = ["data.hflip=false", *cfg.diffusion.overrides]
    if quick:
        overrides += ["train.steps=20", "train.ckpt_every=20", "train.log_every=10"]
    ddpm = train_image_ddpm(x * 2 - 1, cfg.diffusion.vision_config, work / "diffusion", overrides=overrides)
    times["ddpm_train_s"] = time.perf_counter() - t0
    info = {
        "classifier_params": sum(p.numel() for p in classifier.parameters()),
        "ddpm_params": sum(p.numel() for p in ddpm.parameters()),
        "classifier_config": asdict(train_cfg),
        "ddpm_overrides": overrides,
        "ddpm_vision_config": cfg.diffusion.vision_config,
        **times,
    }
    return classifier, ddpm.eval(), info


def cpu_benchmark(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    start = time.perf_counter()
    work = Path(args.work) / ("quick" if args.quick else "full")
    classifier, ddpm, info = train_models(work, args.quick)
    x, y = digits_split("test")
    n = 40 if args.quick else len(y)
    x, y = x[:n], y[:n]
    clean_cls = summarize((predict_labels(classifier, x) == y).cpu())
    attack = AttackConfig(steps=20, eot_iter=args.eot, random_start=True)
    den = ddpm.denoiser(clip=False)  # DiffPure's score SDE does not clip x0_hat
    purifier = DiffPure(den, t_star=T_MAIN, method="sde", steps=round(T_MAIN / DT), seed=0)
    model = PurifiedClassifier(purifier, classifier).eval()
    t_stars = T_STARS if not args.quick else [0.1]
    eps_grid = EPS_GRID if not args.quick else [0.1]

    # 2-3. undefended PGD over eps, and the t* x eps table of clean and transfer accuracy
    t0 = time.perf_counter()
    sweep = sweep_t_star(model, (x, y), t_stars, eps_grid, "linf", config=attack, seed=0, progress=False)
    undefended = {r["eps"]: r for r in sweep if r["threat"] == "classifier"}
    eps_star = next((e for e in eps_grid if undefended[e]["accuracy"] < 0.10), eps_grid[-1])
    sweep_s = time.perf_counter() - t0

    # 4. samplers against steps at t* = T_MAIN: clean and transfer at eps_star
    t0 = time.perf_counter()
    sampler_rows = []
    for method, steps in SAMPLERS if not args.quick else [("sde", 2), ("dpm++2m", 2)]:
        dp = DiffPure(den, t_star=T_MAIN, method=method, steps=steps, seed=0)
        rows = sweep_t_star(
            PurifiedClassifier(dp, classifier).eval(),
            (x, y),
            [T_MAIN],
            [eps_star],
            "linf",
            config=attack,
            seed=0,
            progress=False,
        )
        clean = next(r for r in rows if r["threat"] == "clean")
        transfer = next(r for r in rows if r["threat"] == "transfer")
        sampler_rows.append({"method": method, "steps": steps, "clean": clean, "transfer": transfer})
    samplers_s = time.perf_counter() - t0

    # 5. adaptive attacks on the first n_adaptive digits at (T_MAIN, eps_star)
    t0 = time.perf_counter()
    na = min(args.n_adaptive if not args.quick else 4, n)
    adaptive_attack = AttackConfig(steps=args.adaptive_steps if not args.quick else 2, eot_iter=args.eot)
    adaptive = evaluate_robustness(
        model,
        (x[:na], y[:na]),
        ("eot-pgd",),
        eps_star,
        "linf",
        threats=("classifier", "transfer", "bpda", "full"),
        config=adaptive_attack,
        eval_runs=1,
        batch_size=64,
        seed=0,
        progress=False,
    )
    adaptive_s = time.perf_counter() - t0

    wall = time.perf_counter() - start
    main_clean = next(r for r in sweep if r["threat"] == "clean" and r["t_star"] == T_MAIN)
    main_transfer = next(
        r for r in sweep if r["threat"] == "transfer" and r["t_star"] == T_MAIN and r["eps"] == eps_star
    )
    full = next(r for r in adaptive["results"] if r["threat"] == "full")
    bpda = next(r for r in adaptive["results"] if r["threat"] == "bpda")
    undef_adaptive = next(r for r in adaptive["results"] if r["threat"] == "classifier")
    acceptance = {
        "eps": eps_star,
        "undefended_pgd20_below_10pct": undefended[eps_star]["accuracy"] < 0.10,
        "transfer_at_least_60pct": main_transfer["accuracy"] >= 0.60,
        "full_gradient_eot_pgd_above_undefended": full["accuracy"] > undef_adaptive["accuracy"],
        "clean_drop_at_most_5_points": (clean_cls["accuracy"] - main_clean["accuracy"]) <= 0.05,
    }
    result = {
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "load_average_end": os.getloadavg(),
        },
        "quick": args.quick,
        "models": info,
        "clean": {"classifier": clean_cls, "diffpure": main_clean},
        "undefended_pgd20": list(undefended.values()),
        "t_star_eps_table": [r for r in sweep if r["threat"] != "classifier"],
        "samplers": sampler_rows,
        "adaptive": adaptive,
        "headline": {
            "t_star": T_MAIN,
            "steps": round(T_MAIN / DT),
            "eps": eps_star,
            "clean_classifier": clean_cls,
            "clean_diffpure": main_clean,
            "undefended_pgd20": undefended[eps_star],
            "transfer": main_transfer,
            "bpda_eot": bpda,
            "full_gradient_eot_pgd": full,
            "undefended_eot_pgd_same_images": undef_adaptive,
        },
        "acceptance": acceptance,
        "timing_s": {
            "total": wall,
            "sweep": sweep_s,
            "samplers": samplers_s,
            "adaptive": adaptive_s,
            "classifier_train": info["classifier_train_s"],
            "ddpm_train": info["ddpm_train_s"],
        },
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    out_json = Path(args.results) / ("purification_quick.json" if args.quick else "purification.json")
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=2) + "\n")
    plot_rows = sweep + [{**r, "t_star": T_MAIN} for r in adaptive["results"] if r["threat"] in ("bpda", "full")]
    png = plot_robustness(
        plot_rows, out_json.with_suffix(".png"), t_star=T_MAIN, title="DiffPure on held-out digits (Linf)"
    )
    out_json.with_suffix(".md").write_text(markdown(result, png.name))
    print(
        json.dumps(
            {
                "acceptance": acceptance,
                "headline": {k: v["accuracy"] if isinstance(v, dict) else v for k, v in result["headline"].items()},
                "wall_s": wall,
            },
            indent=2,
        )
    )


def render(result: dict, out_json: Path, figure_dir: Path = Path("runs/bench/purification")) -> None:
    """Write the markdown section beside `out_json` and the figure under `figure_dir` from a result dict."""
    rows = result["undefended_pgd20"] + result["t_star_eps_table"]
    rows += [{**r, "t_star": T_MAIN} for r in result["adaptive"]["results"] if r["threat"] in ("bpda", "full")]
    png = plot_robustness(
        rows, figure_dir / out_json.with_suffix(".png").name, t_star=T_MAIN, title="DiffPure on held-out digits (Linf)"
    )
    out_json.with_suffix(".md").write_text(markdown(result, str(png)))


def markdown(r: dict, png: str) -> str:
    h, m = r["headline"], r["models"]
    e = h["eps"]
    na = h["full_gradient_eot_pgd"]["n"]
    ad = r["adaptive"]["protocol"]["attack_config"]
    lines = [
        "## Purification",
        "",
        "DiffPure (Nie et al. 2022) on the 300 held-out scikit-learn digits (16x16, Linf threat), with a small CNN "
        f"({m['classifier_params']} parameters) and a small unconditional DDPM ({m['ddpm_params']} parameters, "
        "`omnidiffusion.vision` `ddpm-digits` at base width 16), both trained by the benchmark on the 1497 training "
        f"digits. Purifier: reverse VP-SDE by Euler-Maruyama from t* back to 0 with dt = {DT} "
        "(DiffPure uses 1e-3). Accuracies in %, with 95% Wilson intervals and the number of test images n.",
        "",
        f"### Headline: t* = {h['t_star']}, {h['steps']} SDE steps, Linf eps = {e}",
        "",
        "| model / threat | attack protocol | n | accuracy (%) |",
        "|---|---|---|---|",
        f"| classifier alone, clean | none | {h['clean_classifier']['n']} | {_pct(h['clean_classifier'])} |",
        f"| DiffPure + classifier, clean | none (fresh purifier noise) | {h['clean_diffpure']['n']} | "
        f"{_pct(h['clean_diffpure'])} |",
        f"| classifier alone | {h['undefended_pgd20']['protocol']} | {h['undefended_pgd20']['n']} | "
        f"{_pct(h['undefended_pgd20'])} |",
        f"| DiffPure, transfer | {h['transfer']['protocol']} | {h['transfer']['n']} | {_pct(h['transfer'])} |",
        f"| classifier alone (adaptive subset) | {h['undefended_eot_pgd_same_images']['protocol']} | {na} | "
        f"{_pct(h['undefended_eot_pgd_same_images'])} |",
        f"| DiffPure, BPDA + EOT | {h['bpda_eot']['protocol']} | {na} | {_pct(h['bpda_eot'])} |",
        f"| DiffPure, full-gradient EOT-PGD | {h['full_gradient_eot_pgd']['protocol']} | {na} | "
        f"{_pct(h['full_gradient_eot_pgd'])} |",
        "",
        f"The adaptive attacks use {ad['steps']} iterations and {ad['eot_iter']} EOT samples, far below Lee & Kim "
        "(2023)'s 200 x 20 (CPU budget): the full-gradient number is an upper bound on DiffPure's robustness here.",
        "",
        "### Clean and transfer accuracy over t* and eps (n = 300; PGD-20 on the classifier alone, then purified)",
        "",
    ]
    eps_list = [u["eps"] for u in r["undefended_pgd20"]]
    lines += [
        "| t* | SDE steps | clean | " + " | ".join(f"eps {x:g}" for x in eps_list) + " |",
        "|---" * (3 + len(eps_list)) + "|",
    ]
    lines.append(
        "| classifier alone | - | "
        + f"{100 * r['clean']['classifier']['accuracy']:.1f} | "
        + " | ".join(f"{100 * u['accuracy']:.1f}" for u in r["undefended_pgd20"])
        + " |"
    )
    for t in sorted({row["t_star"] for row in r["t_star_eps_table"]}):
        rows = [row for row in r["t_star_eps_table"] if row["t_star"] == t]
        clean = next(row for row in rows if row["threat"] == "clean")
        cells = [
            f"{100 * next(row for row in rows if row['threat'] == 'transfer' and row['eps'] == x)['accuracy']:.1f}"
            for x in eps_list
        ]
        lines.append(f"| {t:g} | {clean['steps']} | {100 * clean['accuracy']:.1f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"### Purification samplers against steps (t* = {h['t_star']}, transfer PGD-20 at eps = {e}, n = 300)",
        "",
        "| sampler | steps | clean | transfer |",
        "|---|---|---|---|",
    ]
    names = {
        "sde": "reverse SDE, Euler-Maruyama (paper)",
        "ddpm": "ancestral DDPM",
        "dpm++2m": "PF-ODE, DPM-Solver++(2M)",
    }
    for s in r["samplers"]:
        lines.append(f"| {names[s['method']]} | {s['steps']} | {_pct(s['clean'])} | {_pct(s['transfer'])} |")
    t = r["timing_s"]
    lines += [
        "",
        f"Figure (accuracy against eps and t*): `{png}`, written by the run.",
        "",
        f"Acceptance: {json.dumps(r['acceptance'])}.",
        "",
        f"Wall time {t['total'] / 60:.1f} min on {r['machine']['cpu_count']} shared CPU cores, 1 thread "
        f"(classifier {t['classifier_train']:.0f} s, DDPM {t['ddpm_train']:.0f} s, t* x eps table {t['sweep']:.0f} s,"
        f" samplers {t['samplers']:.0f} s, adaptive attacks {t['adaptive']:.0f} s"
        + (f"; process CPU time {t['process_cpu'] / 60:.1f} min" if "process_cpu" in t else "")
        + f"; load average at the end "
        f"{r['machine']['load_average_end'][0]:.1f}, so times are inflated by other work). Peak RSS "
        f"{r['peak_rss_mib']:.0f} MiB. Reproduce: `python benchmarks/purification.py`.",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# GPU mode


def gpu_mode(args: argparse.Namespace) -> None:
    from omnidiffusion.core import denoising_loss
    from omnidiffusion.vision import ImageDDPM, load_photo_crops, load_vision_config

    device = resolve_device(args.device if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)
    vcfg = load_vision_config("ddpm-paper")
    model = ImageDDPM(32, 3, vcfg.model.unet_kwargs(), vcfg.schedule.to_dict(), vcfg.prediction).to(device)
    params = sum(p.numel() for p in model.parameters())
    data = load_photo_crops("train", size=32, n=1024 if device.type == "cuda" else 64, channels=3) * 2 - 1
    batch = vcfg.train.batch_size if device.type == "cuda" else 8
    opt = torch.optim.Adam(model.parameters(), lr=vcfg.train.lr)
    amp = device.type == "cuda"
    den = ImageDDPM.denoiser(model, clip=False)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    gen = torch.Generator().manual_seed(0)
    steps, t0 = 0, time.perf_counter()
    model.train()
    while time.perf_counter() - t0 < args.seconds:
        idx = torch.randint(0, len(data), (batch,), generator=gen)
        x0 = data[idx].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = denoising_loss(den, x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_s = time.perf_counter() - t0
    train_peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    model.eval()
    classifier = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 10),
    ).to(device)
    nb = 64 if device.type == "cuda" else 2
    steps_pur = 100 if device.type == "cuda" else 3
    x = (data[:nb].to(device) + 1) / 2
    dp = DiffPure(den, t_star=0.1, method="sde", steps=steps_pur, seed=0)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        dp(x[:2])  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        dp(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        pur_s = time.perf_counter() - t1
    na = 16 if device.type == "cuda" else 2
    dpc = DiffPure(den, t_star=0.1, method="sde", steps=steps_pur, seed=0, checkpointing=True)
    wrapped = PurifiedClassifier(dpc, classifier).eval()
    xa = x[:na].clone().requires_grad_(True)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t1 = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        loss = torch.nn.functional.cross_entropy(wrapped(xa).float(), torch.zeros(na, dtype=torch.long, device=device))
    loss.backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    grad_s = time.perf_counter() - t1
    attack_peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    res = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "params": params,
        "batch_size": batch,
        "amp": "bf16" if amp else "none",
        "train_seconds": train_s,
        "train_steps": steps,
        "train_steps_per_s": steps / train_s,
        "purification": {
            "t_star": 0.1,
            "sampler": "euler-maruyama (reverse SDE)",
            "steps": steps_pur,
            "batch": nb,
            "seconds": pur_s,
            "samples_per_s": nb / pur_s,
        },
        "full_gradient_step": {
            "batch": na,
            "steps": steps_pur,
            "checkpointing": True,
            "seconds": grad_s,
            "images_per_s": na / grad_s,
            "peak_gpu_memory_gib": attack_peak,
            "grad_finite": bool(torch.isfinite(xa.grad).all()),
        },
        "peak_gpu_memory_gib_training": train_peak,
        "config": {
            "vision_config": "ddpm-paper",
            "unet": vcfg.model.unet_kwargs(),
            "schedule": vcfg.schedule.to_dict(),
            "lr": vcfg.train.lr,
            "data": "vision load_photo_crops 32x32 RGB",
        },
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "purification_gpu.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="runs/bench/purification", help="where the trained models go")
    p.add_argument("--results", default=str(RESULTS), help="folder for purification.{json,md,png}")
    p.add_argument("--n-adaptive", type=int, default=64, help="test digits under the adaptive attacks")
    p.add_argument("--adaptive-steps", type=int, default=20, help="EOT-PGD iterations of the adaptive attacks")
    p.add_argument("--eot", type=int, default=4, help="EOT samples per attack step")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run (writes purification_quick.*)")
    p.add_argument("--render", default=None, metavar="JSON", help="only redraw the figure and markdown of a result")
    p.add_argument("--gpu-paper-scale", action="store_true", help="GPU mode (see the module docstring)")
    p.add_argument("--seconds", type=float, default=60.0, help="GPU mode: training seconds")
    p.add_argument("--out", default="runs/purification_gpu", help="GPU mode: output folder")
    p.add_argument("--device", default="cuda", help="GPU mode: device (falls back to cpu without CUDA)")
    args = p.parse_args()
    if args.render:
        render(json.loads(Path(args.render).read_text()), Path(args.render), Path(args.work))
    elif args.gpu_paper_scale:
        gpu_mode(args)
    else:
        cpu_benchmark(args)


if __name__ == "__main__":
    main()
