"""Paper-scale throughput: train a bundled paper config for a fixed wall time, then time sampling one batch.

Used by the benchmarks' `--gpu-paper-scale` mode (training steps/s, samples/s, peak accelerator memory); it runs
on any device, so the same code path is checked on CPU with a few seconds.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from omnidiffusion.core.config import to_dict
from omnidiffusion.core.training import TrainConfig, fit

from .data import training_images
from .inpaint import network_calls, repaint_inpaint
from .models import SR3, ImageDDPM
from .settings import VisionConfig
from .sr3 import SR3Loss, make_lr, sr3_upscale
from .training import DDPMLoss, image_dataset


def logged_rate(log_csv: Path, first: int) -> float:
    """Steps per second over the log.csv rows from step `first` on: total steps / total time of those rows."""
    rows = [line.split(",") for line in log_csv.read_text().splitlines()[1:]]
    prev, steps, secs = None, 0, 0.0
    for row in rows:
        step, speed = int(row[0]), float(row[3])
        if prev is not None and step >= first and speed > 0:
            steps += step - prev
            secs += (step - prev) / speed
        prev = step
    if steps == 0:
        raise ValueError(f"{log_csv}: no logged steps from step {first} on")
    return steps / secs


def paper_scale_throughput(
    config: VisionConfig,
    seconds: float,
    device: str,
    work_dir: str | Path,
    *,
    batch_size: int | None = None,
    amp: str = "none",
    sample_steps: int | None = None,
    sample_batch: int | None = None,
) -> dict:
    """Train `config` (task ddpm or sr3) for about `seconds` on `device`, then time one sampling batch.

    Training runs core `fit` twice: 10 warm-up steps to measure the step rate, then the remaining budget resumed from
    the same directory; the reported rate comes from fit's per-interval log (checkpoint writes excluded).
    Sampling: SR3 uses the config's [sampler] on LR crops; a DDPM is timed with RePaint ([repaint] settings)
    on a box mask. Returns a JSON-ready dict.
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    d = config.data
    bs = batch_size or config.train.batch_size
    data = image_dataset(training_images(d.source, d.channels, d.image_size, d.root, d.photo_crops, d.resize), config)
    if config.task == "sr3":
        model = SR3(d.image_size, d.channels, d.scale, config.model.unet_kwargs(), config.schedule.to_dict())
        loss = SR3Loss(model.schedule, d.image_size, d.scale, config.loss, d.hflip)
    elif config.task == "ddpm":
        model = ImageDDPM(
            d.image_size, d.channels, config.model.unet_kwargs(), config.schedule.to_dict(), config.prediction
        )
        loss = DDPMLoss(d.image_size, d.hflip)
    else:
        raise ValueError(f"config.task: expected 'sr3' or 'ddpm', got {config.task!r}")
    params = sum(p.numel() for p in model.parameters())
    base = dict(to_dict(config.train))
    base.update(
        batch_size=bs,
        amp=amp,
        device=str(dev),
        progress=False,
        log_every=5,
        ckpt_every=10**9,
        warmup_steps=0,
        betas=tuple(base["betas"]),
    )
    work = Path(work_dir)
    warm = 10
    fit(model, loss, data, TrainConfig(**{**base, "steps": warm, "log_every": 1}), work, resume=False)
    # Step rate from the logged per-step speeds after the first 3 steps (CUDA start-up, autotuning), which the
    # logs measure before any checkpoint is written.
    rate = logged_rate(work / "log.csv", first=4)
    total = warm + max(1, int(seconds * rate))
    log_every = max(1, (total - warm) // 20)
    r = fit(model, loss, data, TrainConfig(**{**base, "steps": total, "log_every": log_every}), work, resume=True)
    steps_per_s = logged_rate(work / "log.csv", first=warm + 1)

    # Sampling one batch with the trained (raw) weights.
    model = r.model.to(dev).eval()
    sb = sample_batch or bs
    s = config.sampler
    gen = torch.Generator().manual_seed(0)
    images = torch.stack([data[i % len(data)] for i in range(sb)])
    if images.shape[-1] != d.image_size:
        images = images[..., : d.image_size, : d.image_size]
    _sync(dev)
    t1 = time.perf_counter()
    if config.task == "sr3":
        steps = sample_steps or s.steps
        sr3_upscale(
            model, make_lr(images, d.scale), method=s.method, steps=steps, grid=s.grid, generator=gen, batch_size=sb
        )
        sampler = {"method": s.method, "steps": steps, "grid": s.grid}
    else:
        rp = config.repaint
        steps = sample_steps or rp.steps
        from .masks import box_mask

        repaint_inpaint(
            model,
            images,
            box_mask((d.image_size, d.image_size)),
            steps=steps,
            jump_length=rp.jump_length,
            jump_n_sample=rp.jump_n_sample,
            generator=gen,
            batch_size=sb,
        )
        sampler = {
            "method": "repaint",
            "steps": steps,
            "jump_length": rp.jump_length,
            "jump_n_sample": rp.jump_n_sample,
            "network_calls": network_calls(steps, rp.jump_length, rp.jump_n_sample),
        }
    _sync(dev)
    sample_time = time.perf_counter() - t1
    return {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "task": config.task,
        "params": params,
        "batch_size": bs,
        "amp": amp,
        "train_seconds_budget": seconds,
        "train_steps": r.step,
        "train_steps_per_s": steps_per_s,
        "train_images_per_s": steps_per_s * bs,
        "sample_batch": sb,
        "sampler": sampler,
        "sample_seconds": sample_time,
        "samples_per_s": sb / sample_time,
        "peak_gpu_memory_bytes": torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None,
        "config": to_dict(config),
    }


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
