"""What the vision benchmarks share: the command line and paper-scale GPU mode of SR and inpainting (skipped by
make bench), and training two models side by side on CPU (SR, segmentation)."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from omnidiffusion.vision import load_vision_config

ROOT = Path(__file__).resolve().parents[1]


def parser(doc: str, draws: str, work: str) -> argparse.ArgumentParser:
    """The shared flags; `draws` says what --samples counts, `work` is the default training folder."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the config's)")
    p.add_argument("--samples", type=int, default=4, help=f"{draws} draws per image (mean of k reported too)")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run (not a result)")
    p.add_argument("--work", default=work)
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--set", action="append", default=[], help="config override key=value (repeatable)")
    p.add_argument("--gpu-paper-scale", action="store_true")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--out", default="runs/bench/gpu")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--amp", default="bf16")
    p.add_argument("--sample-steps", type=int, default=None)
    return p


def gpu_mode(args: argparse.Namespace, config_name: str, name: str, description: str) -> None:
    """Train `config_name` for args.seconds on the device, time sampling, write OUT/<name>_gpu.json."""
    from omnidiffusion.vision.throughput import paper_scale_throughput

    if args.device == "cpu" and args.amp == "bf16":
        args.amp = "none"
    device = args.device if args.device != "auto" else "cuda"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--gpu-paper-scale: CUDA is not available; pass --device cpu to exercise the code path")
    config = load_vision_config(config_name, args.set)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = paper_scale_throughput(
        config,
        args.seconds,
        device,
        out / f"{name}_gpu_run",
        batch_size=args.batch,
        amp=args.amp,
        sample_steps=args.sample_steps,
    )
    result["benchmark"] = f"{name} --gpu-paper-scale ({description})"
    (out / f"{name}_gpu.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=2))


def train_overrides(args: argparse.Namespace) -> list[str]:
    """Config overrides from the flags: device, steps, and a tiny model for --quick."""
    over = [*args.set, f"train.device={args.device}", "train.progress=false"]
    if args.steps is not None:
        over.append(f"train.steps={args.steps}")
    if args.quick:
        over += ["train.steps=20", "model.base_channels=8", "model.num_res_blocks=1", "model.norm_groups=4"]
        over += ["train.log_every=10", "train.ckpt_every=20"]
    return over


def train_timed(train_fn: Callable, *args) -> tuple[float, float]:
    """train_fn(*args, resume=False), from scratch; returns (wall s, process CPU s). In a worker process of
    `train_side_by_side` it runs on one thread."""
    if multiprocessing.parent_process() is not None:
        torch.set_num_threads(1)
    t0, c0 = time.perf_counter(), time.process_time()
    train_fn(*args, resume=False)
    return time.perf_counter() - t0, time.process_time() - c0


def train_side_by_side(jobs: Sequence[tuple], parallel: bool) -> list[tuple[float, float]]:
    """Run each job (train_fn, *args) through `train_timed`: with `parallel`, each in its own spawned process with
    one thread, all at once; else one after the other in this process. Returns their (wall s, CPU s)."""
    if not parallel:
        return [train_timed(*job) for job in jobs]
    with ProcessPoolExecutor(max_workers=len(jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(train_timed, *zip(*jobs, strict=True)))
