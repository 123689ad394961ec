"""VDM on 2-D toy data: a learned noise schedule against the fixed one at equal training steps (Kingma et al. 2021).

The continuous-time bound depends on the schedule only through gamma(0) and gamma(1) (paper eq. 20), so the main
comparison is on the T-step bound (paper eq. 13), which depends on the whole shape and which the learned schedule
improves most at small T (the paper's finite-T experiments). For each T in `--timesteps` (and T = inf, the
continuous bound, as an extra row) the same MLP eps-network is trained with `training.fit` on that bound
(`vdm.vdm_loss_fn`, bits/dim, Gaussian decoder) with

  fixed    gamma(t) linear from -13.3 to 5 (VDM's CIFAR-10 end points), nothing of the schedule trained;
  learned  `LearnedSchedule` starting from the same line, end points and monotone shape (64 sigmoid units)
           trained jointly with the network on the same bound.

Data: scikit-learn make_moons (noise 0.05), standardised with the training mean and std; 20 000 training and
5 000 held-out points. Runs of one seed share network initialisation, data order, optimiser and step count.
Held-out bound (EMA weights, schedule included): for T steps, every step i = 1..T of every point with `--rounds`
noise draws (the T-step sum itself, no sampling of t); for T = inf, `--passes` antithetic draws of t. Reported:
each run's bound with its standard error over points, and learned minus fixed of the same seed, paired over the
same held-out points, then mean +- standard error over seeds; lower is better. The data are continuous, so
bits/dim are of a density (no dequantisation, may be negative).

    python benchmarks/core_vdm.py [--steps 2000] [--seeds 3] [--timesteps 8 16 32] [--threads 1]

Writes benchmarks/results/core_vdm.json.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import tempfile
import time
from pathlib import Path

import torch
from _toy import MLP  # benchmarks/_toy.py, beside this script
from sklearn.datasets import make_moons

from omnidiffusion.core.training import TrainConfig, fit
from omnidiffusion.core.vdm import VDM, LearnedSchedule, vdm_loss_fn

RESULTS = Path(__file__).resolve().parent / "results" / "core_vdm.json"
GAMMA_MIN, GAMMA_MAX = -13.3, 5.0
BATCH = 256


def moons(n_train: int, n_test: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, _ = make_moons(n_samples=n_train + n_test, noise=0.05, random_state=0)
    x = torch.as_tensor(x, dtype=torch.float32)
    train, test = x[:n_train], x[n_train:]
    mean, std = train.mean(0), train.std(0)
    return (train - mean) / std, (test - mean) / std


SCHEDULES = {
    "fixed": lambda: LearnedSchedule(GAMMA_MIN, GAMMA_MAX, hidden=0, learn_endpoints=False),
    "learned": lambda: LearnedSchedule(GAMMA_MIN, GAMMA_MAX, hidden=64),
}


@torch.no_grad()
def held_out_bound(model: VDM, test_x: torch.Tensor, rounds: int, passes: int) -> tuple[torch.Tensor, dict]:
    """Per-point bound in bits/dim (float64, (N,)) and the mean of each term in bits/dim."""
    n, T = test_x.shape[0], model.timesteps
    gen = torch.Generator().manual_seed(123)
    if T is None:  # continuous: Monte Carlo over t (antithetic within each pass)
        draws = [dict(generator=gen) for _ in range(passes)]
    else:  # T steps: every step of the sum, each with `rounds` noise draws
        draws = [dict(t=torch.full((n,), i / T, dtype=torch.float64), generator=gen)
                 for _ in range(rounds) for i in range(1, T + 1)]
    per_point = torch.zeros(n, dtype=torch.float64)
    parts = {"prior": 0.0, "reconstruction": 0.0, "diffusion": 0.0}
    for kw in draws:
        terms = model.terms(test_x, **kw)
        per_point += terms.bits_per_dim().double() / len(draws)
        for k in parts:
            parts[k] += getattr(terms, k).double().mean().item() / len(draws) / (terms.num_dims * math.log(2))
    return per_point, parts


def run(name: str, timesteps: int | None, seed: int, train_x, test_x, args) -> dict:
    torch.manual_seed(seed)
    model = VDM(MLP(), SCHEDULES[name](), timesteps=timesteps)
    config = TrainConfig(steps=args.steps, batch_size=BATCH, lr=2e-3, min_lr=2e-5, ema_decay=0.995, grad_clip=1.0,
                         progress=False, log_every=max(args.steps // 10, 1), ckpt_every=args.steps, device="cpu",
                         seed=seed)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = fit(model, vdm_loss_fn, train_x, config, tmp)
    train_s = time.perf_counter() - t0
    ema = result.ema_model
    ema.eval()
    t0 = time.perf_counter()
    per_point, parts = held_out_bound(ema, test_x, args.rounds, args.passes)
    eval_s = time.perf_counter() - t0
    grid = torch.linspace(0, 1, 11, dtype=torch.float64)
    out = {
        "bpd": per_point.mean().item(),
        "stderr": per_point.std().item() / math.sqrt(len(per_point)),
        "terms_bpd": parts,
        "gamma_on_t_0_to_1_by_0.1": [round(g, 3) for g in ema.schedule.gamma(grid).tolist()],
        "train_s": round(train_s, 2),
        "eval_s": round(eval_s, 2),
        "final_train_loss_bpd": result.loss,
        "per_point_bpd": per_point,
    }
    label = "inf" if timesteps is None else timesteps
    print(f"T={label!s:4s} {name:8s} seed {seed}  held-out bound {out['bpd']:.4f} +- {out['stderr']:.4f} bits/dim  "
          f"gamma(0) {out['gamma_on_t_0_to_1_by_0.1'][0]:.2f}  gamma(1) {out['gamma_on_t_0_to_1_by_0.1'][-1]:.2f}  "
          f"(train {train_s:.0f} s)", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--timesteps", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--no-continuous", action="store_true", help="skip the T = inf row")
    ap.add_argument("--rounds", type=int, default=2, help="noise draws per held-out point and step (finite T)")
    ap.add_argument("--passes", type=int, default=50, help="draws of t per held-out point (T = inf)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (tiny tensors: 1 is fastest)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    train_x, test_x = moons(20000, 5000)
    settings: list[int | None] = list(args.timesteps) + ([] if args.no_continuous else [None])

    rows = []
    for timesteps in settings:
        runs = {name: [run(name, timesteps, seed, train_x, test_x, args) for seed in range(args.seeds)]
                for name in SCHEDULES}
        # Paired over held-out points: both bounds are averages over the same points.
        per_seed = []
        for seed in range(args.seeds):
            paired = runs["learned"][seed]["per_point_bpd"] - runs["fixed"][seed]["per_point_bpd"]
            per_seed.append({"seed": seed, "learned_minus_fixed_bpd": paired.mean().item(),
                             "stderr_paired": paired.std().item() / math.sqrt(len(paired))})
        diffs = torch.tensor([r["learned_minus_fixed_bpd"] for r in per_seed], dtype=torch.float64)
        seed_se = diffs.std().item() / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
        for r in (*runs["fixed"], *runs["learned"]):
            r.pop("per_point_bpd")
        row = {
            "timesteps": "inf" if timesteps is None else timesteps,
            "fixed_bpd_mean": sum(r["bpd"] for r in runs["fixed"]) / args.seeds,
            "learned_bpd_mean": sum(r["bpd"] for r in runs["learned"]) / args.seeds,
            "learned_minus_fixed_bpd": diffs.mean().item(),
            "stderr_over_seeds": seed_se,
            "learned_better_in_every_seed": bool((diffs < 0).all()),
            "per_seed": per_seed,
            "runs": runs,
        }
        rows.append(row)
        print(f"T={row['timesteps']}: learned - fixed = {row['learned_minus_fixed_bpd']:+.4f} +- {seed_se:.4f} "
              f"bits/dim over {args.seeds} seeds (per seed: "
              + ", ".join(f"{r['learned_minus_fixed_bpd']:+.4f} +- {r['stderr_paired']:.4f}" for r in per_seed)
              + ")", flush=True)

    print("\n| T | fixed bpd | learned bpd | learned - fixed (mean +- s.e. over seeds) | better in every seed |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['timesteps']} | {r['fixed_bpd_mean']:.4f} | {r['learned_bpd_mean']:.4f} | "
              f"{r['learned_minus_fixed_bpd']:+.4f} +- {r['stderr_over_seeds']:.4f} | "
              f"{r['learned_better_in_every_seed']} |")
    res = {
        "benchmark": "core_vdm",
        "what": "held-out VDM bound (bits/dim, Gaussian decoder) of an MLP eps-network trained on the T-step bound "
                "(and the continuous one, T = inf) with a fixed linear gamma vs a learned monotone gamma from the "
                "same start, make_moons standardised",
        "protocol": {
            "data": "make_moons(noise=0.05, random_state=0), 20000 train / 5000 held-out, standardised by train",
            "network": "MLP: Fourier features of t (16), 3 SiLU layers of 128, eps prediction",
            "schedules": {"fixed": f"linear gamma {GAMMA_MIN} -> {GAMMA_MAX}, frozen",
                          "learned": "LearnedSchedule(hidden=64), same initial line, all parameters trained"},
            "training": f"training.fit, {args.steps} steps, batch {BATCH}, AdamW lr 2e-3 cosine to 2e-5, "
                        "grad clip 1, EMA 0.995; loss = the bound being evaluated (t antithetic/stratified)",
            "evaluation": f"EMA model; finite T: all T steps x {args.rounds} noise draws per point; "
                          f"T = inf: {args.passes} antithetic draws of t per point",
            "comparison": "learned - fixed per seed, paired over the same held-out points; mean +- s.e. over seeds",
        },
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": args.threads,
        "train_steps": args.steps,
        "seeds": args.seeds,
        "rows": rows,
        "wall_s": time.perf_counter() - start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,  # Linux reports KiB
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {RESULTS} ({res['wall_s']:.0f} s, peak RSS {res['peak_rss_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
