"""Analytic-DPM reverse variances against fixed-small and fixed-large with few sampling steps (Bao et al. 2022).

The discrete variational bound (`likelihood.vlb`, Gaussian decoder, nats -> bits/dim) of the ancestral chain on a
time-uniform grid of 10 and 25 steps of DiscreteVP.linear(1000), for the three variance choices, on 2-D data:

  (a) the exact denoiser of a Gaussian mixture (8 components on a circle of radius 2, std 0.25), so every gap
      to the exact NLL is the variance choice and the step count alone;
  (b) a small MLP eps-network trained for a few thousand steps with `training.fit` on the same mixture.

Gamma_t = E||eps_hat||^2/d is estimated once per model on 20 000 training samples (`estimate_eps_sq_mean`); the
bound is evaluated on 10 000 held-out samples, two noise draws each, and reported with its standard error.
Lower is better; the exact NLL of the held-out samples is the floor for (a).

    python benchmarks/core_analytic_dpm.py [--train-steps 3000] [--threads 1]

Writes benchmarks/results/core_analytic_dpm.json.
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

from omnidiffusion.core import schedules as S
from omnidiffusion.core.analytic_dpm import estimate_eps_sq_mean
from omnidiffusion.core.denoiser import Denoiser
from omnidiffusion.core.likelihood import bits_per_dim, vlb
from omnidiffusion.core.losses import denoising_loss
from omnidiffusion.core.testing import GaussianMixture
from omnidiffusion.core.training import TrainConfig, fit

RESULTS = Path(__file__).resolve().parent / "results" / "core_analytic_dpm.json"
STEPS = (10, 25)
VARIANCES = ("fixed-small", "fixed-large", "analytic")
F64 = torch.float64


def ring_mixture(k: int = 8, radius: float = 2.0, std: float = 0.25) -> GaussianMixture:
    angle = torch.arange(k, dtype=F64) * 2 * math.pi / k
    means = radius * torch.stack([angle.cos(), angle.sin()], 1)  # (k, 2)
    return GaussianMixture(torch.ones(k), means, torch.full((k,), std, dtype=F64))


def train_mlp(schedule, train_x: torch.Tensor, steps: int) -> tuple[Denoiser, float]:
    torch.manual_seed(0)  # the initial weights; fit seeds the rest
    net = MLP()
    config = TrainConfig(steps=steps, batch_size=256, lr=2e-3, min_lr=2e-5, ema_decay=0.995, progress=False,
                         log_every=max(steps // 10, 1), ckpt_every=steps, device="cpu", seed=0)

    def loss_fn(model, batch):
        return denoising_loss(Denoiser(model, schedule, "eps"), batch)

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = fit(net, loss_fn, train_x.float(), config, tmp)
    ema = result.ema_model
    ema.eval()
    return Denoiser(ema, schedule, "eps"), time.perf_counter() - t0


def evaluate(denoiser, train_x, test_x, exact_nll_bpd: float | None, repeats: int) -> dict:
    dims = test_x.shape[1]
    rows = {}
    for steps in STEPS:
        t0 = time.perf_counter()
        table = estimate_eps_sq_mean(denoiser, train_x, "time-uniform", steps, batch_size=5000,
                                     generator=torch.Generator().manual_seed(steps))
        est_s = time.perf_counter() - t0
        row = {"eps_sq_mean": table.values.tolist(), "eps_sq_stderr": table.stderr.tolist(),
               "eps_sq_estimate_s": est_s}
        per_point = {}
        for variance in VARIANCES:
            values = []
            for r in range(repeats):
                with torch.no_grad():
                    res = vlb(denoiser, test_x, steps=steps, variance=variance, eps_sq_mean=table,
                              generator=torch.Generator().manual_seed(1000 * steps + r))
                values.append(bits_per_dim(-res.total.double(), dims))  # the bound is on -log p
            bpd = torch.stack(values).mean(0)  # (N,) per test point, averaged over noise draws
            per_point[variance] = bpd
            row[variance] = {"bpd": bpd.mean().item(), "stderr": bpd.std().item() / math.sqrt(len(bpd))}
            if exact_nll_bpd is not None:
                row[variance]["gap_to_exact_nll_bpd"] = bpd.mean().item() - exact_nll_bpd
            print(f"  {steps:3d} steps  {variance:12s} {row[variance]['bpd']:.4f} +- {row[variance]['stderr']:.4f} "
                  "bits/dim")
        for other in ("fixed-small", "fixed-large"):
            # same test points and noise draws for every variance: a paired difference
            diff = per_point["analytic"] - per_point[other]
            row[f"analytic_minus_{other}"] = {"bpd": diff.mean().item(),
                                               "stderr_paired": diff.std().item() / math.sqrt(len(diff))}
        best = min(VARIANCES, key=lambda v: row[v]["bpd"])
        row["best"] = best
        others = [v for v in VARIANCES if v != "analytic"]
        row["analytic_beats_both"] = all(row["analytic"]["bpd"] < row[v]["bpd"] for v in others)
        rows[str(steps)] = row
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-steps", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (tiny tensors: 1 is fastest)")
    ap.add_argument("--repeats", type=int, default=2, help="noise draws of the bound per test point")
    ap.add_argument("--n-test", type=int, default=10000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    schedule = S.DiscreteVP.linear(1000)
    mix = ring_mixture()
    train_x = mix.sample(20000, torch.Generator().manual_seed(0))
    test_x = mix.sample(args.n_test, torch.Generator().manual_seed(1))
    exact_nll_bpd = bits_per_dim(mix.log_prob(test_x), 2).mean().item()
    print(f"exact NLL of the held-out samples: {exact_nll_bpd:.4f} bits/dim")

    print("(a) exact Gaussian-mixture denoiser")
    t0 = time.perf_counter()
    oracle = evaluate(mix.denoiser(schedule, "eps"), train_x, test_x, exact_nll_bpd, args.repeats)
    oracle_s = time.perf_counter() - t0
    print(f"(b) MLP trained for {args.train_steps} steps")
    model, train_s = train_mlp(schedule, train_x, args.train_steps)
    t0 = time.perf_counter()
    trained = evaluate(model, train_x.float(), test_x.float(), exact_nll_bpd, args.repeats)
    trained_eval_s = time.perf_counter() - t0

    res = {
        "benchmark": "core_analytic_dpm",
        "what": "discrete VLB (bits/dim) with fixed-small / fixed-large / analytic reverse variances, "
                "DiscreteVP.linear(1000), time-uniform grids, 2-D 8-component ring mixture",
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": args.threads,
        "n_train": train_x.shape[0],
        "n_test": test_x.shape[0],
        "noise_draws_per_test_point": args.repeats,
        "exact_nll_bpd": exact_nll_bpd,
        "exact_oracle": oracle,
        "exact_oracle_eval_s": oracle_s,
        "trained_mlp": {"train_steps": args.train_steps, "train_s": train_s, "eval_s": trained_eval_s,
                        "results": trained},
        "wall_s": time.perf_counter() - start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,  # Linux reports KiB
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {RESULTS} ({res['wall_s']:.0f} s, peak RSS {res['peak_rss_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
