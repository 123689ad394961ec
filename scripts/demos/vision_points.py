"""Vision demo: a point-cloud DDPM on procedural shapes, generation and PVD-style completion against the baselines.

Data: the bundled shapes (sphere, cube surface, torus, cylinder, cone; area-uniform samples, random scale and SO(3)
rotation), 128 points per cloud, 300 training clouds and 32 held out from another seed. A small permutation-
equivariant set network (points/network.py) is trained with core's `fit` for a short CPU run; generation uses dpm++2m
(x0_hat clamped to [-1.5, 1.5]) and is scored by 1-NNA / COV with squared Chamfer against the Gaussian-blob baseline;
completion keeps 32 observed points clean and is scored by Chamfer against the partial input plus its reflection
across the cut plane.

Writes OUT/vision_points/: figure.png (held-out, generated, completed clouds), metrics.json and the fit run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from demos.section import SectionResult, torch_threads
from omnidiffusion.vision import load_vision_config
from omnidiffusion.vision.points.data import training_clouds
from omnidiffusion.vision.points.evaluation import evaluate_completion, evaluate_generation
from omnidiffusion.vision.points.render import render_clouds
from omnidiffusion.vision.points.training import train_points

TITLE = "Vision: point-cloud diffusion (procedural shapes)"
DESCRIPTION = """
A DDPM over point sets (Luo & Hu 2021; PVD, Zhou et al. 2021) with a permutation-equivariant network (per-point MLPs
with pooled set context and FiLM time conditioning), trained briefly on procedural shapes (128 points per cloud).
Generation (dpm++2m) is scored on held-out shapes by 1-NNA and COV with the squared Chamfer distance (PointFlow
convention; 1-NNA 50% is ideal) against an isotropic Gaussian blob with the training points' mean and std. Completion
keeps the observed points clean at every step (PVD) and is compared by Chamfer with the partial input plus its mirror
image across the cut plane. The full protocol (256 points, longer training, EMD, ancestral sampling) is
benchmarks/vision_points.py.
"""


def run(out_dir: Path, quick: bool = False) -> SectionResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch_threads(1):
        return _run(out_dir, quick)


def _run(out_dir: Path, quick: bool) -> SectionResult:
    t0 = time.perf_counter()
    steps = 4 if quick else 260
    n_eval = 6 if quick else 32
    over = [
        "points.n_points=128",
        f"points.n_train={24 if quick else 300}",
        f"points.n_test={n_eval}",
        f"points.n_eval={n_eval}",
        "points.n_known=32",
        f"points.width={16 if quick else 96}",
        f"points.depth={1 if quick else 3}",
        "points.inducing=0",
        f"train.steps={steps}",
        f"train.batch_size={8 if quick else 32}",
        "train.lr=2e-3",
        "train.warmup_steps=20",
        "train.progress=false",
        "train.device=cpu",
        f"train.ckpt_every={steps}",
        "train.log_every=50",
    ]
    config = load_vision_config("points-shapes", over)
    train, test = training_clouds(config)
    model = train_points(config, train, out_dir / "points", resume=None)
    sample_steps = 3 if quick else 25
    gen = evaluate_generation(model, test, None, samplers=(("dpm++2m", sample_steps),), use_emd=False, clip=1.5)
    comp = evaluate_completion(model, test, n_known=32, method="dpm++2m", steps=sample_steps, use_emd=False, clip=1.5)

    g = torch.Generator().manual_seed(0)
    shown = model.generate(4, method="dpm++2m", steps=sample_steps, generator=g, clip=1.5)
    import numpy as np

    from omnidiffusion.vision.points.shapes import cut_partial

    rng = np.random.default_rng(0)
    parts = torch.as_tensor(np.stack([cut_partial(c, 32, rng)[1] for c in test[:4]]))
    done = model.complete(parts, method="dpm++2m", steps=sample_steps, generator=g, clip=1.5)
    fig = render_clouds(
        [*test[:4], *shown, *done],
        out_dir / "figure.png",
        titles=[*["held-out"] * 4, *["generated"] * 4, *["completed"] * 4],
        highlight=[0] * 8 + [32] * 4,
        cols=4,
        size=2.0,
    )
    metrics = {"generation": gen, "completion": comp, "seconds": time.perf_counter() - t0}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    m = gen["model"][f"dpm++2m_{sample_steps}"]
    blob = gen["baselines"]["gaussian_blob"]
    gen_rows = [
        {"method": f"point DDPM, dpm++2m {sample_steps} steps", "1-NNA-CD": f"{100 * m['1nna_cd']:.1f}%",
         "COV-CD": f"{100 * m['cov_cd']:.1f}%", "MMD-CD x1e3": round(1e3 * m["mmd_cd"], 2)},
        {"method": "Gaussian blob", "1-NNA-CD": f"{100 * blob['1nna_cd']:.1f}%",
         "COV-CD": f"{100 * blob['cov_cd']:.1f}%", "MMD-CD x1e3": round(1e3 * blob["mmd_cd"], 2)},
    ]  # fmt: skip
    comp_rows = [{"method": f"point DDPM, dpm++2m {sample_steps} steps", "CD x1e3": None}]
    comp_rows[0]["CD x1e3"] = round(1e3 * comp["model"][f"dpm++2m_{sample_steps}"]["cd"], 2)
    comp_rows += [
        {"method": "partial + reflection" if k == "reflection" else "partial only", "CD x1e3": round(1e3 * v["cd"], 2)}
        for k, v in comp["baselines"].items()
    ]
    return SectionResult(
        figures=[("Held-out (row 1), generated (row 2), completed (row 3; observed points in red)", fig)],
        tables=[
            (f"Generation: {n_eval} generated vs {n_eval} held-out clouds of 128 points", gen_rows),
            (f"Completion of {n_eval} held-out clouds from 32 observed points", comp_rows),
        ],
        notes=[f"Trained {steps} steps (batch {config.train.batch_size}) on {len(train)} clouds, one CPU thread."],
        files=[out_dir / "metrics.json"],
    )
