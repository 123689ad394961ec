"""Peak memory and speed of training the default core UNet on CPU (batch 32, random 32x32 RGB, AdamW).

Each variant (plain, gradient checkpointing) runs in its own subprocess, because ru_maxrss is a
per-process high-water mark. The loss is eps-prediction MSE on x_t = cos(pi t / 2) x0 + sin(pi t / 2) eps
(a cosine VP path written inline so the benchmark depends on the network only). Goal: peak RSS < 4 GB.

    python benchmarks/core_unet_memory.py [--steps 5] [--batch 32] [--threads 2]

Writes benchmarks/results/core_unet_memory.json.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "core_unet_memory.json"
GOAL_MB = 4096.0


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def run_variant(steps: int, batch: int, threads: int, checkpointing: bool) -> dict:
    """Train for `steps` AdamW steps after one warm-up step; return timings and peak RSS of this process."""
    import torch
    import torch.nn.functional as F

    from omnidiffusion.core.nn import UNet, default_unet_config

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rss_import = _rss_mb()
    config = default_unet_config()
    config["gradient_checkpointing"] = checkpointing
    net = UNet(**config)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-4, weight_decay=0.0)
    n_params = sum(p.numel() for p in net.parameters())
    rss_model = _rss_mb()

    def step() -> float:
        x0 = torch.rand(batch, 3, 32, 32) * 2 - 1
        eps = torch.randn_like(x0)
        t = torch.rand(batch)
        a = torch.cos(math.pi / 2 * t)[:, None, None, None]
        s = torch.sin(math.pi / 2 * t)[:, None, None, None]
        loss = F.mse_loss(net(a * x0 + s * eps, t), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)

    net.train()
    step()  # warm-up: allocator, AdamW state
    start = time.perf_counter()
    losses = [step() for _ in range(steps)]
    elapsed = time.perf_counter() - start
    return {
        "gradient_checkpointing": checkpointing,
        "parameters": n_params,
        "batch": batch,
        "steps_timed": steps,
        "threads": threads,
        "steps_per_s": steps / elapsed,
        "s_per_step": elapsed / steps,
        "images_per_s": steps * batch / elapsed,
        "peak_rss_mb": _rss_mb(),
        "rss_after_import_mb": rss_import,
        "rss_after_model_built_mb": rss_model,  # AdamW state is created lazily at step 1
        "losses": losses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", choices=["plain", "checkpointing"], default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.variant is not None:  # child process: one variant, JSON on stdout
        result = run_variant(args.steps, args.batch, args.threads, args.variant == "checkpointing")
        print(json.dumps(result))
        return

    import torch

    variants = []
    for variant in ("plain", "checkpointing"):
        cmd = [sys.executable, __file__, "--variant", variant, "--steps", str(args.steps),
               "--batch", str(args.batch), "--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        result["under_goal"] = result["peak_rss_mb"] < GOAL_MB
        variants.append(result)
        print(
            f"{variant:>13}: {result['parameters'] / 1e6:.2f}M params, batch {result['batch']}, "
            f"{result['steps_per_s']:.3f} steps/s ({result['images_per_s']:.1f} img/s), "
            f"peak RSS {result['peak_rss_mb']:.0f} MB (goal < {GOAL_MB:.0f} MB)"
        )
    report = {
        "benchmark": "core_unet_memory",
        "what": "train default omnidiffusion.core.nn UNet (32x32 RGB), AdamW, eps-prediction MSE, CPU",
        "goal_peak_rss_mb": GOAL_MB,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count_used": args.threads,
        "variants": variants,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
