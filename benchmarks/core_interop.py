"""core.interop side by side with diffusers on the same diffusers UNet: parity and wall time per step.

A random-initialised diffusers UNet2DModel (32x32 RGB, block_out_channels 32/64/64, attention at the two
lower levels, 1 layer per block) and a DDPMScheduler config (linear betas, T = 1000) are saved to a temporary
folder and read back with `from_diffusers`. For each (method, prediction type) both loops start from the same
x_T and take 10 "trailing" steps:

  ddim     ours: sample(method="ddim")    diffusers: DDIMScheduler loop (eta = 0)
  dpm++2m  ours: sample(method="dpm++2m") diffusers: DPMSolverMultistepScheduler(dpmsolver++, order 2)

Parity: max abs difference of the outputs in float64 (and relative to max |x|). Timing: float32, wall time of a
whole sampling call divided by its steps, median of interleaved repeats after one warm-up, at 1 torch thread on
CPU, and on the GPU when one is present. Nothing is downloaded.

    python benchmarks/core_interop.py [--repeats 5] [--batch 4]

Writes benchmarks/results/core_interop.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import diffusers
import torch

from omnidiffusion.core import sample
from omnidiffusion.core.interop import from_diffusers

T, STEPS, SIDE = 1000, 10, 32
METHODS = {
    "ddim": lambda cfg: diffusers.DDIMScheduler.from_config(cfg, timestep_spacing="trailing"),
    "dpm++2m": lambda cfg: diffusers.DPMSolverMultistepScheduler.from_config(
        cfg, timestep_spacing="trailing", algorithm_type="dpmsolver++", solver_order=2
    ),
}
PREDICTIONS = {"eps": "epsilon", "v": "v_prediction"}
OUT = Path(__file__).resolve().parent / "results" / "core_interop.json"


def make_folder(root: Path, prediction_type: str) -> Path:
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=SIDE, in_channels=3, out_channels=3, block_out_channels=(32, 64, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8, attention_head_dim=32,
    )
    unet.save_pretrained(root / "unet")
    diffusers.DDPMScheduler(num_train_timesteps=T, clip_sample=False, prediction_type=prediction_type).save_pretrained(
        root / "scheduler"
    )
    return root


def diffusers_loop(unet, scheduler, x):
    scheduler.set_timesteps(STEPS)
    for t in scheduler.timesteps:
        x = scheduler.step(unet(x, t).sample, t, x).prev_sample
    return x


def timed(fn, repeats: int, sync) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / STEPS


def run(repeats: int, batch: int) -> dict:
    torch.set_num_threads(1)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    parity, timing = [], []
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        for pred, ptype in PREDICTIONS.items():
            root = make_folder(Path(tmp) / pred, ptype)
            cfg = json.loads((root / "scheduler" / "scheduler_config.json").read_text())
            den64 = from_diffusers(root, dtype=torch.float64)
            x64 = torch.randn(batch, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
            for method, make in METHODS.items():
                ours = sample(den64, x64.clone(), method=method, steps=STEPS, grid="trailing")
                ref = diffusers_loop(den64.net.unet, make(cfg), x64.clone()).double()
                diff = (ours - ref).abs().max().item()
                parity.append({"method": method, "prediction": pred, "max_abs_diff": diff,
                               "rel_diff": diff / ref.abs().max().item()})
                print(f"parity {method:8s} {pred:3s} max|diff| {diff:.3e}")
            for dev in devices:
                den = from_diffusers(root, device=dev, dtype=torch.float32)
                unet = den.net.unet
                x = x64.float().to(dev)
                sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
                for method, make in METHODS.items():
                    sched = make(cfg)
                    def ours(d=den, x=x, m=method):
                        return sample(d, x.clone(), method=m, steps=STEPS, grid="trailing")

                    def theirs(u=unet, s=sched, x=x):
                        return diffusers_loop(u, s, x.clone())

                    t_ours, t_ref = timed(ours, repeats, sync), timed(theirs, repeats, sync)
                    timing.append({"device": dev, "method": method, "prediction": pred,
                                   "ours_s_per_step": t_ours, "diffusers_s_per_step": t_ref,
                                   "ratio": t_ours / t_ref})
                    print(f"time   {dev:4s} {method:8s} {pred:3s} ours {t_ours * 1e3:.2f} ms/step, "
                          f"diffusers {t_ref * 1e3:.2f} ms/step")
    return {
        "setup": {"unet": "UNet2DModel 32x32x3, block_out_channels (32, 64, 64), 1 layer/block, attn at 2 levels",
                  "scheduler": "DDPMScheduler linear 1e-4..0.02, T=1000", "steps": STEPS, "grid": "trailing",
                  "batch": batch, "repeats": repeats, "threads": 1, "parity_dtype": "float64",
                  "timing_dtype": "float32", "torch": torch.__version__, "diffusers": diffusers.__version__,
                  "platform": platform.platform(),
                  "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "parity": parity,
        "timing": timing,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    result = run(args.repeats, args.batch)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
