"""One-, two- and four-step generation on the demo's two moons: consistency distillation (CD), consistency
training (CT, iCT recipe), progressive distillation (PD) and the teacher's own best solver, by W2.

Same teacher and the same W2 as `scripts/demos/core.py` (the `make demo` core section, whose figures
docs/RESULTS.md quotes): the 4-block residual MLP, eps-prediction on LinearVP, 5000 steps of batch 512 on
10 000 i.i.d. two-moons points through `training.fit` (EMA 0.999); one draw of n = 1000 from the same seed per
cell, exact W2 (POT) to the 1000-point held-out set; the noise floor is W2 between held-out sets.

  teacher   ddim, dpm++2m / unipc (log-SNR grid), heun (Karras grid) at 1, 2, 4 steps; best per step count
  PD        core.distillation.progressive_distillation 64 -> 1 steps with the demo's settings, DDIM sampling
  CD        core.consistency.consistency_distillation, Heun teacher steps on an 18-interval Karras grid, L2,
            3000 steps of batch 256, lr 2e-4, no EMA target (mu = 0):
            (a) the default recipe: student = copy of the teacher, "euler" parameterisation with the net read as
                v (well conditioned at t = 1, where eps -> x0 multiplies errors by sigma/alpha = 152), trained
                on randomly shifted grids (`random_shift`: f is trained at every time, not only the 19 grid
                times the multistep sampler mostly misses),
            (a0) the same with the net read as eps on the fixed grid (Song et al. 2023's initialisation, the
                previous default), kept as the ablation's reference,
            (b) student = a fresh MLP, "edm" parameterisation, random shift
  CT        core.consistency.consistency_training (iCT: pseudo-Huber, lognormal intervals, N doubling), fresh MLP
  CD and CT sample with `sample(..., method="consistency")` on the "quadratic" grid (re-noising at t = 1/4
  for 2 steps), and on "time-uniform" as a second row.

    python benchmarks/core_consistency.py [--quick] [--families CD --variants cd_v_shift,cd_edm_fresh]
        [--teacher-cache runs/teacher.pt]

Writes benchmarks/results/core_consistency.json. --families/--variants re-measure only those rows and keep
the others from the existing file (same teacher, seeds and W2, so the cells stay comparable);
--teacher-cache loads the teacher's weights from a file a previous run saved there (training it and saving
them when the file is missing): the same recipe gives the same weights, so this only skips 2-3 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from demos.core import ToyConfig, ToyMLP, Trained, moons, train_denoiser, w2  # noqa: E402
from demos.section import torch_threads  # noqa: E402

from omnidiffusion.core import Denoiser, LinearVP  # noqa: E402
from omnidiffusion.core.consistency import consistency_distillation, consistency_training  # noqa: E402
from omnidiffusion.core.distillation import progressive_distillation  # noqa: E402
from omnidiffusion.core.samplers import nfe, sample  # noqa: E402
from omnidiffusion.core.training import TrainConfig  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "core_consistency.json"
STEPS = (1, 2, 4)
TARGET_1STEP = 0.214  # PD 4-step W2 in docs/RESULTS.md
FLOOR_BAND = (0.148, 0.038)


def train_config(steps: int, batch: int, lr: float, seed: int, ema: float | None = 0.999) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch, lr=lr, min_lr=lr / 10, warmup_steps=steps // 20,
                       ema_decay=ema, grad_clip=1.0, log_every=max(1, steps // 10), ckpt_every=steps, seed=seed,
                       progress=False, device="cpu")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run (numbers meaningless)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--families", default="teacher,PD,CD,CT", help="comma list of the families to run")
    parser.add_argument("--variants", default=",".join(CD_VARIANTS), help="comma list of the CD variants to run")
    parser.add_argument("--teacher-cache", type=Path, default=None, help="teacher state_dict file (see above)")
    args = parser.parse_args(argv)
    families = set(args.families.split(","))
    variants = [v for v in args.variants.split(",") if v]
    unknown = (families - {"teacher", "PD", "CD", "CT"}) | (set(variants) - set(CD_VARIANTS) - set(CD_ABLATIONS))
    if unknown:
        parser.error(f"--families/--variants: unknown names {sorted(unknown)}")
    with torch_threads(1):
        result = run(args.quick, families, variants, args.teacher_cache)
    if families != {"teacher", "PD", "CD", "CT"} or set(variants) != set(CD_VARIANTS):
        result = merge(result, args.out, families, variants)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out} ({result['wall_time_s']:.0f} s)")
    return 0


# CD recipes: (row label, consistency_distillation keywords, fresh network?, learning rate).
CD_VARIANTS = {
    "cd_v_shift": ("teacher copy, v read, shifted grid (default)",
                   {"parameterisation": "euler", "prediction": "v", "random_shift": True}, False, 2e-4),
    "cd_eps_fixed": ("teacher copy, euler param.",
                     {"parameterisation": "euler", "prediction": "eps", "random_shift": False}, False, 2e-4),
    "cd_edm_fresh": ("fresh MLP, edm param., shifted grid",
                     {"parameterisation": "edm", "sigma_data": 1.0, "random_shift": True}, True, 1e-3),
}
# One-variable ablations of the default recipe (docs/core.md, "Few-step generation"); run them by name with
# --families CD --variants ... (not in the default run).
CD_ABLATIONS = {
    "cd_v_fixed": ("ablation: teacher copy, v read, fixed grid",
                   {"parameterisation": "euler", "prediction": "v", "random_shift": False}, False, 2e-4),
    "cd_eps_shift": ("ablation: teacher copy, eps read, shifted grid",
                     {"parameterisation": "euler", "prediction": "eps", "random_shift": True}, False, 2e-4),
    "cd_eps_fixed_ema95": ("ablation: teacher copy, eps read, fixed grid, EMA target mu 0.95",
                           {"parameterisation": "euler", "prediction": "eps", "random_shift": False,
                            "target_ema": 0.95}, False, 2e-4),
    "cd_v_shift_lr5e-4": ("ablation: teacher copy, v read, shifted grid, lr 5e-4",
                          {"parameterisation": "euler", "prediction": "v", "random_shift": True}, False, 5e-4),
    "cd_v_shift_huber": ("ablation: teacher copy, v read, shifted grid, pseudo-Huber",
                         {"parameterisation": "euler", "prediction": "v", "random_shift": True,
                          "metric": "pseudo-huber"}, False, 2e-4),
}


def merge(result: dict, path: Path, families: set[str], variants: list[str]) -> dict:
    """Rows re-measured now replace their namesakes in the results file; every other row is kept from it."""
    if not path.exists():
        return result
    old = json.loads(path.read_text())
    labels = {{**CD_VARIANTS, **CD_ABLATIONS}[v][0] for v in variants}
    fresh = {(r["family"], r["variant"]) for r in result["rows"]}

    def rerun(r: dict) -> bool:
        return (r["family"], r["variant"]) in fresh or (r["family"] == "CD" and r["variant"] in labels) \
            or (r["family"] in families and r["family"] != "CD")

    rows = [r for r in old["rows"] if not rerun(r)] + result["rows"]
    order = {"teacher": 0, "PD": 1, "CD": 2, "CT": 3}
    rows.sort(key=lambda r: order[r["family"]])
    result = {**old, **{k: v for k, v in result.items() if k not in ("rows", "settings") and v is not None},
              "rows": rows,
              "settings": {**old.get("settings", {}), **result["settings"]}}
    result.update(summary(rows))
    result["partial_rerun"] = {"families": sorted(families), "cd_variants": variants,
                               "kept_from_previous_file": sorted({f"{r['family']}: {r['variant']}" for r in rows
                                                                  if not rerun(r)})}
    return result


def summary(rows: list[dict]) -> dict:
    best = {}
    for r in rows:
        key = f"{r['family']} {r['steps']}"
        if r["w2"] is not None and (key not in best or r["w2"] < best[key]["w2"]):
            best[key] = r
    cd1 = [r["w2"] for r in rows if r["family"] == "CD" and r["steps"] == 1 and r["w2"] is not None]
    cd2 = [r for r in rows if r["family"] == "CD" and r["steps"] == 2 and r["grid"] == "quadratic"]
    targets = {
        "cd_1step_below_pd_4step_0.214": {r["variant"]: (r["w2"], r["w2"] is not None and r["w2"] < TARGET_1STEP)
                                          for r in rows if r["family"] == "CD" and r["steps"] == 1},
        "cd_2step_quadratic_within_floor_band_0.148_pm_0.038": {
            r["variant"]: (r["w2"], r["w2"] is not None and abs(r["w2"] - FLOOR_BAND[0]) <= FLOOR_BAND[1])
            for r in cd2},
        "best_cd_1step": min(cd1) if cd1 else None,
    }
    return {"best_per_family_and_steps": {k: {"variant": v["variant"], "grid": v["grid"], "w2": v["w2"]}
                                          for k, v in sorted(best.items())},
            "targets": targets}


def run(quick: bool, families: set[str] | None = None, variants: list[str] | None = None,
        teacher_cache: Path | None = None) -> dict:
    families = {"teacher", "PD", "CD", "CT"} if families is None else families
    variants = list(CD_VARIANTS) if variants is None else variants
    t_all = time.perf_counter()
    cfg = ToyConfig.quick() if quick else ToyConfig()
    cd_steps, ct_steps = (60, 80) if quick else (3000, 6000)
    raw = moons(cfg.n_train, cfg.train_seed, cfg.noise)
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    train = torch.tensor((raw - mean) / std, dtype=torch.float32)  # (N, 2)
    test = (moons(cfg.n_eval, cfg.test_seed, cfg.noise) - mean) / std  # (n, 2)
    floors = [w2((moons(cfg.n_eval, s, cfg.noise) - mean) / std, test) for s in cfg.floor_seeds]
    floor, floor_sd = float(np.mean(floors)), float(np.std(floors, ddof=1))

    work = Path(tempfile.mkdtemp(prefix="bench-consistency-"))
    schedule = LinearVP()
    torch.manual_seed(cfg.train_seed)
    net = ToyMLP(hidden=cfg.hidden, blocks=cfg.blocks)
    meta = {"prediction": "eps", "schedule": {"name": "LinearVP", **schedule.config()}}
    t0 = time.perf_counter()
    if teacher_cache is not None and teacher_cache.exists() and not quick:
        net.load_state_dict(torch.load(teacher_cache, weights_only=True))
        trained = Trained(net.eval(), float("nan"), float("nan"), float("nan"), [])
        log(f"teacher: weights loaded from {teacher_cache}")
    else:
        trained = train_denoiser(net, schedule, train, cfg, work / "teacher", meta)
        if teacher_cache is not None and not quick:
            teacher_cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save(trained.model.state_dict(), teacher_cache)
    teacher = Denoiser(trained.model, schedule, prediction="eps")
    log(f"teacher: {cfg.train_steps} steps in {time.perf_counter() - t0:.1f} s")

    rows: list[dict] = []

    def score(family: str, variant: str, draw, steps: int, n_fe: int, grid: str, cost: dict) -> None:
        t = time.perf_counter()
        x = draw(cfg.n_eval, torch.Generator().manual_seed(cfg.sample_seed)).detach().double().numpy()
        value = w2(x, test) if np.isfinite(x).all() else None
        rows.append({"family": family, "variant": variant, "steps": steps, "nfe": n_fe, "grid": grid, "w2": value,
                     "sample_time_s": time.perf_counter() - t, **cost})
        log(f"  {family:>8} {variant:>34} {grid:>12} steps {steps}  NFE {n_fe:>2}  W2 {value}")

    # Teacher's own solvers.
    teacher_cost = {"train_steps": cfg.train_steps, "train_time_s": trained.wall_time}
    for method, grid in (("ddim", "time-uniform"), ("dpm++2m", "logsnr"), ("unipc", "logsnr"),
                         ("heun", "karras")) if "teacher" in families else ():
        for steps in STEPS:
            def draw(n, g, method=method, steps=steps, grid=grid):
                return sample(teacher, (n, 2), method, steps, grid, generator=g)
            score("teacher", method, draw, steps, nfe(method, steps), grid, teacher_cost)

    # Progressive distillation with the demo's per-round settings, 64 -> 1 steps.
    pd_config = TrainConfig(steps=cfg.distil_steps, batch_size=cfg.distil_batch, lr=cfg.distil_lr,
                            min_lr=cfg.distil_lr / 10, warmup_steps=cfg.distil_steps // 10, ema_decay=0.99,
                            grad_clip=1.0, log_every=max(1, cfg.distil_steps // 10), ckpt_every=cfg.distil_steps,
                            seed=cfg.train_seed, progress=False, device="cpu")
    t0 = time.perf_counter()
    students = progressive_distillation(teacher, train, cfg.distil_from, 1, grid="time-uniform", config=pd_config,
                                        out_dir=work / "pd") if "PD" in families else []
    pd_time = time.perf_counter() - t0
    log(f"PD: {len(students)} rounds in {pd_time:.1f} s")
    for k, student in enumerate(students):
        steps = cfg.distil_from // 2 ** (k + 1)
        if steps in STEPS:
            cost = {"train_steps": cfg.distil_steps * (k + 1), "train_time_s": pd_time * (k + 1) / len(students),
                    "rounds": k + 1}
            def draw(n, g, student=student, steps=steps):
                return sample(student, (n, 2), "ddim", steps, "time-uniform", generator=g)
            score("PD", "ddim, student", draw, steps, steps, "time-uniform", cost)

    def consistency_rows(family: str, variant: str, model, cost: dict) -> None:
        for grid in ("quadratic", "time-uniform"):
            for steps in STEPS:
                if steps == 1 and grid != "quadratic":
                    continue  # one step is f(x_1, 1) on every grid
                def draw(n, g, steps=steps, grid=grid):
                    return sample(model, (n, 2), "consistency", steps, grid, generator=g)
                score(family, variant, draw, steps, steps, grid, cost)

    settings: dict = {}
    cd_kw = {"intervals": 18, "solver": "heun", "metric": "l2"}
    for key in variants if "CD" in families else ():
        label, kw, fresh_net, lr = {**CD_VARIANTS, **CD_ABLATIONS}[key]
        extra = {}
        if fresh_net:
            torch.manual_seed(cfg.train_seed + 1)
            extra["student_net"] = ToyMLP(hidden=cfg.hidden, blocks=cfg.blocks)
        cd_cfg = train_config(cd_steps, 256, lr, cfg.train_seed)
        t0 = time.perf_counter()
        model = consistency_distillation(teacher, train, config=cd_cfg, out_dir=work / key,
                                         **{**cd_kw, **kw}, **extra)
        cost = {"train_steps": cd_steps, "train_time_s": time.perf_counter() - t0}
        settings[f"CD_{key}"] = {**cd_kw, **kw, "student": "fresh ToyMLP" if fresh_net else "teacher copy",
                                 **asdict(cd_cfg)}
        log(f"CD {key}: {cost['train_time_s']:.1f} s")
        consistency_rows("CD", label, model, cost)

    # CT (iCT recipe), fresh network, no teacher.
    if "CT" in families:
        torch.manual_seed(cfg.train_seed + 2)
        fresh = ToyMLP(hidden=cfg.hidden, blocks=cfg.blocks)
        ct_cfg = train_config(ct_steps, 256, 1e-3, cfg.train_seed)
        ct_kw = {"s0": 10, "s1": 1280, "p_mean": -1.1, "p_std": 2.0, "metric": "pseudo-huber"}
        t0 = time.perf_counter()
        ct = consistency_training(fresh, train, schedule, parameterisation="edm", sigma_data=1.0, config=ct_cfg,
                                  out_dir=work / "ct", **ct_kw)
        cost = {"train_steps": ct_steps, "train_time_s": time.perf_counter() - t0}
        settings["CT_ict"] = {**ct_kw, "sigma_data": 1.0, **asdict(ct_cfg)}
        log(f"CT: {cost['train_time_s']:.1f} s")
        consistency_rows("CT", "fresh MLP, edm param., iCT", ct, cost)
    shutil.rmtree(work, ignore_errors=True)

    return {
        "benchmark": "core_consistency",
        "quick": quick,
        "data": {"name": "make_moons i.i.d. (scripts/demos/core.py moons)", "noise": cfg.noise,
                 "n_train": cfg.n_train, "n_eval": cfg.n_eval},
        "teacher": None if not trained.curve else {
            "recipe": "scripts/demos/core.py ToyMLP + train_denoiser (the make demo core section)",
            "steps": cfg.train_steps, "wall_time_s": trained.wall_time, "final_loss": trained.final_loss},
        "distance": {"name": "W2", "n": cfg.n_eval, "noise_floor": floor, "noise_floor_sd": floor_sd,
                     "definition": "exact 2-Wasserstein (POT ot.emd2), standardised units, one draw of n from "
                                   f"seed {cfg.sample_seed} vs the held-out set"},
        "settings": settings,
        "rows": rows,
        **summary(rows),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "torch": torch.__version__, "torch_threads": 1,
                    "load_average": os.getloadavg()},
        "wall_time_s": time.perf_counter() - t_all,
    }


def log(msg: str) -> None:
    print(msg, flush=True)


if __name__ == "__main__":
    sys.exit(main())
