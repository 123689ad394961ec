"""Overhead of `omnidiffusion.core.training.fit` against a bare hand-written PyTorch loop, on CPU.

Both train the same network on the same data with the same math: AdamW, grad-norm clip 1.0, eps-prediction MSE
on x_t = cos(pi t / 2) x0 + sin(pi t / 2) eps, a shuffled DataLoader, loss.item() every 50 steps. `fit` runs
with its defaults otherwise (log_every 50, progress bar, CSV log, checkpoints every 500 steps and at the end,
final weights), first with EMA off (the fair comparison; goal: within 5% of the bare loop's steps/s), then
with EMA on.
Each run is timed end to end (fit's setup and file writing included) in wall-clock and in process CPU time;
on a shared machine the CPU-time rate is the steadier measure of the work each loop does.

Workloads: `unet` (the core UNet, small: 16x16 RGB, base 16, batch 16), where a step costs milliseconds as in
real use, and `mlp` (2-D points, batch 256), where a step costs about 2 ms (mostly the DataLoader) so any fixed
per-step overhead shows. Variants alternate and repeat; the median steps/s is reported.

    python benchmarks/core_training.py [--repeats 5] [--threads 1] [--workloads unet mlp]

The ratios are the result; absolute steps/s depend on what else runs on the machine (load average recorded).

Writes benchmarks/results/core_training.json (steps/s, ratios, wall time, peak RSS).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from omnidiffusion.core.nn import UNet
from omnidiffusion.core.training import TrainConfig, fit

RESULTS = Path(__file__).resolve().parent / "results" / "core_training.json"
LOG_EVERY = 50


def eps_loss(net: nn.Module, batch) -> torch.Tensor:
    (x0,) = batch
    eps = torch.randn_like(x0)
    t = torch.rand(x0.shape[0])
    shape = (-1,) + (1,) * (x0.ndim - 1)  # (B, 1, ..., 1)
    a, s = torch.cos(math.pi / 2 * t).reshape(shape), torch.sin(math.pi / 2 * t).reshape(shape)
    return ((net(a * x0 + s * eps, t) - eps) ** 2).mean()


class PointDenoiser(nn.Module):
    """MLP eps-predictor for 2-D points with t appended as a third input."""

    def __init__(self, width: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                                 nn.Linear(width, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, t[:, None]], dim=1))


def workload(name: str):
    """(model factory, dataset, batch size, steps) of one workload."""
    gen = torch.Generator().manual_seed(0)
    if name == "unet":
        data = TensorDataset(torch.rand(512, 3, 16, 16, generator=gen) * 2 - 1)

        def make() -> nn.Module:
            torch.manual_seed(0)
            return UNet(in_channels=3, out_channels=3, base_channels=16, channel_mults=[1, 2], num_res_blocks=1,
                        attention_resolutions=[], dropout=0.0, norm_groups=8, resolution=16)

        return make, data, 16, 150
    centres = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    points = centres[torch.randint(0, 3, (4096,), generator=gen)] + 0.3 * torch.randn(4096, 2, generator=gen)

    def make_mlp() -> nn.Module:
        torch.manual_seed(0)
        return PointDenoiser()

    return make_mlp, TensorDataset(points), 256, 1500


def bare_loop(make, data, batch: int, steps: int) -> tuple[float, float]:
    """The loop people write by hand; returns (steps per wall second, steps per CPU second)."""
    model = make()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=0.0)
    loader = DataLoader(data, batch_size=batch, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    wall, cpu, step = time.perf_counter(), time.process_time(), 0
    while step < steps:
        for b in loader:
            loss = eps_loss(model, b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            if step % LOG_EVERY == 0:
                loss.item()
            if step == steps:
                break
    return steps / (time.perf_counter() - wall), steps / (time.process_time() - cpu)


def fit_loop(make, data, batch: int, steps: int, ema: float | None) -> tuple[float, float]:
    """fit with its defaults (EMA as given), timed end to end: setup, loop, checkpoint and final weights
    included. Returns (steps per wall second, steps per CPU second)."""
    model = make()
    config = TrainConfig(steps=steps, batch_size=batch, lr=2e-4, ema_decay=ema, device="cpu")
    with tempfile.TemporaryDirectory() as out:
        wall, cpu = time.perf_counter(), time.process_time()
        fit(model, eps_loss, data, config, out)
        return steps / (time.perf_counter() - wall), steps / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    # One intra-op thread by default: on a shared 2-core machine two threads stall whenever another process
    # takes a core (single runs dropped 25x), which swamps a per-step overhead comparison.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workloads", nargs="+", choices=["unet", "mlp"], default=["unet", "mlp"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()

    report = {
        "benchmark": "core_training",
        "what": "fit() vs a bare hand-written loop: same model, data, AdamW, clip 1.0, eps-MSE; CPU",
        "goal": "fit (EMA off) steps/s within 5% of the bare loop",
        "timing": "end to end per run; wall clock and process CPU time; medians over repeats",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": args.threads,
        "repeats": args.repeats,
        "load_average_at_start": os.getloadavg(),  # other processes on the machine skew absolute numbers
        "workloads": {},
    }
    for name in args.workloads:
        make, data, batch, steps = workload(name)
        bare_loop(make, data, batch, max(20, steps // 10))  # warm-up: allocator, thread pool
        runs: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in ("bare", "fit", "fit_ema")}
        for _ in range(args.repeats):  # interleaved, so drifting machine load hits every variant alike
            for variant in ("bare", "fit", "fit_ema"):
                if variant == "bare":
                    wall, cpu = bare_loop(make, data, batch, steps)
                else:
                    wall, cpu = fit_loop(make, data, batch, steps, ema=0.999 if variant == "fit_ema" else None)
                runs[variant]["wall"].append(wall)
                runs[variant]["cpu"].append(cpu)
        med = {v: {k: statistics.median(x) for k, x in r.items()} for v, r in runs.items()}
        entry = {
            "batch": batch,
            "steps": steps,
            "parameters": sum(p.numel() for p in make().parameters()),
            "steps_per_s_median": med,
            "steps_per_s_all": runs,
            "fit_over_bare": {k: med["fit"][k] / med["bare"][k] for k in ("wall", "cpu")},
            "fit_ema_over_bare": {k: med["fit_ema"][k] / med["bare"][k] for k in ("wall", "cpu")},
        }
        entry["within_5_percent_cpu"] = entry["fit_over_bare"]["cpu"] >= 0.95
        report["workloads"][name] = entry
        print(f"{name}: steps/s wall (cpu): bare {med['bare']['wall']:.1f} ({med['bare']['cpu']:.1f}), "
              f"fit {med['fit']['wall']:.1f} ({med['fit']['cpu']:.1f}), "
              f"fit+EMA {med['fit_ema']['wall']:.1f} ({med['fit_ema']['cpu']:.1f})", file=sys.stderr)

    report["load_average_at_end"] = os.getloadavg()
    report["wall_time_s"] = time.perf_counter() - t0
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "workloads"}, indent=2))


if __name__ == "__main__":
    main()
