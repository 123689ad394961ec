"""VDM on 2-D toy data: a learned noise schedule against the fixed one at equal training steps (Kingma et al. 2021).

Data: scikit-learn make_moons (noise 0.05), standardised with the training mean and std; 20 000 training and
5 000 held-out points. Model: the same small MLP eps-network (Fourier features of t, three SiLU layers of 128),
trained with `training.fit` on the continuous-time VLB (`vdm.vdm_loss_fn`, bits/dim, Gaussian decoder) with

  fixed           gamma(t) linear from -13.3 to 5 (VDM's CIFAR-10 end points), nothing of the schedule trained;
  learned-linear  the same line with trainable end points (VDM's "learned linear");
  learned         `LearnedSchedule` starting from the same line, end points and monotone shape (64 sigmoid
                  units) trained jointly with the network (VLB gradient for every parameter; VDM's optional
                  variance-minimising objective for the shape is not used).

Runs of one seed share initialisation, data order, optimiser and step count; `--seeds` seeds per schedule. The
held-out bound is averaged over `--passes` antithetic draws of t per point (EMA weights, schedule included) and
reported with its standard error, and each learned run minus the fixed run of the same seed with a paired
standard error over the held-out points; lower is better. The data are continuous, so bits/dim are of a density
(no dequantisation, may be negative).

    python benchmarks/core_vdm.py [--steps 6000] [--seeds 3] [--threads 1]

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
from sklearn.datasets import make_moons
from torch import nn

from omnidiffusion.core.training import TrainConfig, fit
from omnidiffusion.core.vdm import VDM, LearnedSchedule, vdm_loss_fn

RESULTS = Path(__file__).resolve().parent / "results" / "core_vdm.json"
GAMMA_MIN, GAMMA_MAX = -13.3, 5.0


class MLP(nn.Module):
    """eps(z_t, t) for 2-D data: Fourier features of t, three SiLU layers of `width`."""

    def __init__(self, width: int = 128, dim: int = 2, n_freq: int = 16):
        super().__init__()
        self.register_buffer("freq", torch.arange(1, n_freq + 1, dtype=torch.float32) * math.pi)
        self.body = nn.Sequential(
            nn.Linear(dim + 2 * n_freq, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, dim),
        )

    def forward(self, x, t):
        ft = t.to(x.dtype)[:, None] * self.freq  # (B, n_freq)
        return self.body(torch.cat([x, ft.sin(), ft.cos()], 1))


def moons(n_train: int, n_test: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, _ = make_moons(n_samples=n_train + n_test, noise=0.05, random_state=0)
    x = torch.as_tensor(x, dtype=torch.float32)
    train, test = x[:n_train], x[n_train:]
    mean, std = train.mean(0), train.std(0)
    return (train - mean) / std, (test - mean) / std


SCHEDULES = {
    "fixed": lambda: LearnedSchedule(GAMMA_MIN, GAMMA_MAX, hidden=0, learn_endpoints=False),
    "learned-linear": lambda: LearnedSchedule(GAMMA_MIN, GAMMA_MAX, hidden=0),
    "learned": lambda: LearnedSchedule(GAMMA_MIN, GAMMA_MAX, hidden=64),
}


def run(name: str, seed: int, train_x, test_x, steps: int, passes: int) -> dict:
    torch.manual_seed(seed)
    model = VDM(MLP(), SCHEDULES[name]())
    config = TrainConfig(steps=steps, batch_size=256, lr=2e-3, min_lr=2e-5, ema_decay=0.995, grad_clip=1.0,
                         progress=False, log_every=max(steps // 20, 1), ckpt_every=steps, device="cpu", seed=seed)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = fit(model, vdm_loss_fn, train_x, config, tmp)
        log = (Path(tmp) / "log.csv").read_text().splitlines()
    train_s = time.perf_counter() - t0
    ema = result.ema_model
    ema.eval()

    t0 = time.perf_counter()
    per_point = torch.zeros(test_x.shape[0], dtype=torch.float64)
    parts = {"prior": 0.0, "reconstruction": 0.0, "diffusion": 0.0}
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for _ in range(passes):
            terms = ema.terms(test_x, generator=gen)
            per_point += terms.bits_per_dim().double() / passes
            for k in parts:
                parts[k] += getattr(terms, k).double().mean().item() / passes / (2 * math.log(2))
    eval_s = time.perf_counter() - t0
    sched = ema.schedule
    grid = torch.linspace(0, 1, 11, dtype=torch.float64)
    out = {
        "bpd": per_point.mean().item(),
        "stderr": per_point.std().item() / math.sqrt(len(per_point)),
        "terms_bpd": parts,
        "gamma_0": sched.gamma(0.0).item(),
        "gamma_1": sched.gamma(1.0).item(),
        "gamma_on_t_0_to_1_by_0.1": sched.gamma(grid).tolist(),
        "train_s": train_s,
        "eval_s": eval_s,
        "final_train_loss_bpd": result.loss,
        "train_log_csv": log,
        "per_point_bpd": per_point,
    }
    print(f"{name:14s} seed {seed}  held-out VLB {out['bpd']:.4f} +- {out['stderr']:.4f} bits/dim  "
          f"gamma(0) {out['gamma_0']:.2f}  gamma(1) {out['gamma_1']:.2f}  (train {train_s:.0f} s)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--passes", type=int, default=50, help="draws of t per held-out point")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (tiny tensors: 1 is fastest)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    train_x, test_x = moons(20000, 5000)

    results: dict[str, list[dict]] = {name: [] for name in SCHEDULES}
    for seed in range(args.seeds):
        for name in SCHEDULES:
            results[name].append(run(name, seed, train_x, test_x, args.steps, args.passes))
    # Paired over held-out points: both bounds are averages over the same points.
    comparison = {}
    for name in ("learned-linear", "learned"):
        rows = []
        for seed in range(args.seeds):
            paired = results[name][seed]["per_point_bpd"] - results["fixed"][seed]["per_point_bpd"]
            rows.append({"seed": seed, "minus_fixed_bpd": paired.mean().item(),
                         "stderr_paired": paired.std().item() / math.sqrt(len(paired))})
        diffs = torch.tensor([r["minus_fixed_bpd"] for r in rows], dtype=torch.float64)
        mean = diffs.mean().item()
        seed_se = diffs.std().item() / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
        comparison[name] = {"per_seed": rows, "mean_minus_fixed_bpd": mean, "stderr_over_seeds": seed_se,
                            "better_than_fixed": mean < 0, "better_in_every_seed": bool((diffs < 0).all())}
        print(f"{name} - fixed: " + ", ".join(f"{r['minus_fixed_bpd']:+.4f} +- {r['stderr_paired']:.4f}"
                                               for r in rows)
              + f" bits/dim (per seed, paired); mean {mean:+.4f} +- {seed_se:.4f} over seeds")
    for runs in results.values():
        for r in runs:
            r.pop("per_point_bpd")
    res = {
        "benchmark": "core_vdm",
        "what": "continuous-time VDM bound (bits/dim, held-out, Gaussian decoder) of an MLP eps-network trained "
                "with a fixed linear gamma vs learned end points vs a learned monotone gamma, make_moons "
                "standardised",
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": args.threads,
        "train_steps": args.steps,
        "batch_size": 256,
        "n_train": train_x.shape[0],
        "n_test": test_x.shape[0],
        "passes": args.passes,
        "seeds": args.seeds,
        "results": results,
        "comparison": comparison,
        "wall_s": time.perf_counter() - start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,  # Linux reports KiB
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {RESULTS} ({res['wall_s']:.0f} s, peak RSS {res['peak_rss_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
