"""One training loop for every app: `fit(model, loss_fn, dataset, config, out_dir)`.

Read `fit` top to bottom: set up (devices, DDP, data order, optimiser, EMA), resume from the latest checkpoint,
then the loop (LR, forward under autocast, backward with accumulation, clip, step, EMA, log, checkpoint), then
the final weights. `loss_fn(model, batch)` returns a scalar loss and may draw noise and timesteps from torch's
global RNG; that RNG (and python's and numpy's) is part of every checkpoint, so a resumed run continues exactly.

out_dir/
  config.json, model.safetensors   final weights (EMA weights when EMA is on): load_pretrained(out_dir)
  raw/                              final raw weights, only when EMA is on
  checkpoint/latest.json            names the newest complete checkpoint directory below
  checkpoint/step_00001000/         model.safetensors, ema.safetensors, state.safetensors + state.json
  run_config.json                   the app's whole resolved config, when `fit(..., run_config=config)`
  log.csv, train_config.json, tensorboard/

Under `torchrun --nproc_per_node N` the same call runs DistributedDataParallel (gloo on CPU, nccl on GPU);
batch_size is per process and rank 0 logs and writes files.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import random
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset, IterableDataset
from tqdm import tqdm

from .checks import resolve_device
from .io import load_tensors, load_weights, read_json, save_pretrained, save_run_config, save_tensors, write_json

LossFn = Callable[[nn.Module, Any], Tensor]
logger = logging.getLogger(__name__)
_STEP_DIR = re.compile(r"^step_\d{8,}$")


@dataclass
class TrainConfig:
    """Everything `fit` needs besides the model, the loss and the data. Steps count optimiser steps."""

    steps: int = 1000
    batch_size: int = 32  # per process
    lr: float = 2e-4
    min_lr: float = 0.0  # cosine decay from lr to min_lr after warmup; min_lr = lr gives a constant LR
    warmup_steps: int = 0
    weight_decay: float = 0.0  # AdamW, applied to weights with ndim >= 2 only
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = 1.0  # max global grad norm; None disables
    grad_accum: int = 1  # micro-batches per optimiser step
    ema_decay: float | None = 0.999  # None disables EMA
    ema_warmup: bool = True  # decay min(ema_decay, (1 + n) / (10 + n)) at update n, see ema_decay_at
    amp: Literal["none", "bf16", "fp16"] = "none"
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 500
    num_workers: int = 0
    tensorboard: bool = False
    progress: bool = True  # tqdm bar on rank 0
    device: str = "auto"  # "auto" = cuda when available, else cpu; or "cpu", "cuda", "cuda:1"

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "grad_accum", "log_every", "ckpt_every")
        for name in positive:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name}: expected an int >= 1, got {getattr(self, name)!r}")
        if self.warmup_steps < 0 or self.num_workers < 0:
            raise ValueError("TrainConfig.warmup_steps and num_workers must be >= 0")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"TrainConfig: expected lr > 0 and 0 <= min_lr <= lr, got lr={self.lr}, "
                             f"min_lr={self.min_lr}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"TrainConfig.grad_clip: expected > 0 or None, got {self.grad_clip}")
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            raise ValueError(f"TrainConfig.ema_decay: expected in [0, 1) or None, got {self.ema_decay}")
        if not isinstance(self.ema_warmup, bool):
            raise ValueError(f"TrainConfig.ema_warmup: expected a bool, got {self.ema_warmup!r}")
        if self.amp not in ("none", "bf16", "fp16"):
            raise ValueError(f"TrainConfig.amp: expected 'none', 'bf16' or 'fp16', got {self.amp!r}")


@dataclass
class TrainResult:
    """What `fit` returns. `ema_model` is None when EMA is off and on ranks other than 0."""

    model: nn.Module
    ema_model: nn.Module | None
    step: int
    loss: float  # mean loss over the last log interval (of the earlier call when the run had already finished)
    out_dir: Path
    steps_per_sec: float  # over the steps this call ran (the loop only, checkpoints included)
    wall_time: float

    @property
    def final_model(self) -> nn.Module:
        """The weights to sample with: the EMA model when EMA is on, else the trained model (unwrapped)."""
        return unwrap_model(self.ema_model if self.ema_model is not None else self.model)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel (or torch.compile / AveragedModel) wrapper, else `model`."""
    while True:
        if isinstance(model, DistributedDataParallel | nn.DataParallel | AveragedModel):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile's OptimizedModule
            model = model._orig_mod
        else:
            return model


def is_main_process() -> bool:
    """True on rank 0 of a torchrun job and in a plain single process: the one that logs and writes files.

    Outside an initialised process group (before `fit` starts one, or after it has torn its own down) the
    launcher's RANK environment variable decides, so an app's summary after `fit` is printed once per job.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return os.environ.get("RANK", "0").strip() in ("", "0")


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or inf; training stopped and the last checkpoint was left as it was."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


def lr_at(step: int, config: TrainConfig) -> float:
    """LR for optimiser step `step` (0-based): linear warmup, then cosine decay from lr to min_lr."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))) * (config.lr - config.min_lr)


def ema_decay_at(n: int, config: TrainConfig) -> float:
    """EMA decay of the update after optimiser step n + 1 (n = 0-based step = number of earlier updates).

    With config.ema_warmup: min(ema_decay, (1 + n) / (10 + n)), the warm-up of TensorFlow's
    ExponentialMovingAverage(num_updates) and diffusers' EMAModel, so a short run's average is not dominated by
    the initial weights; it depends on the step only, so a resumed run uses the same decays. Update 0 copies.
    """
    if config.ema_decay is None:
        raise ValueError("ema_decay_at: config.ema_decay is None (EMA is off)")
    if not config.ema_warmup:
        return config.ema_decay
    return min(config.ema_decay, (1 + n) / (10 + n))


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------------------------------------
# The loop


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    dataset: Dataset,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    collate_fn: Callable[[list], Any] | None = None,
    resume: bool | None = None,
    metadata: Mapping[str, Any] | None = None,
    run_config: Any = None,
) -> TrainResult:
    """Train `model` for config.steps optimiser steps of `loss_fn(model, batch)` on `dataset`.

    `loss_fn` must run the network by calling the model it is given (`model(x, t)`), so that under DDP the
    call goes through the DistributedDataParallel wrapper and gradients are averaged across processes.
    resume: None continues from out_dir/checkpoint when one exists; True requires one; False requires that
    there is none. A resumed run may raise config.steps (train longer); the LR schedule follows the new value.
    `metadata` is stored in the final config.json (see io.save_pretrained); `run_config`, the app's whole
    dataclass config, in out_dir/run_config.json beside it (io.save_run_config). Returns a TrainResult; raises
    NonFiniteLossError naming the step where the loss first became NaN/inf (checked at every log/checkpoint
    step, before any checkpoint is written).
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"fit: config must be a TrainConfig, got {type(config).__name__}")
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__len__"):
        raise ValueError("fit: dataset must be a map-style Dataset with __len__ (the data order is a permutation)")
    out_dir = Path(out_dir)
    t_start = time.perf_counter()

    # Processes and devices: torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; a plain call is one process.
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = _resolve_device(config.device)
    owns_group = world > 1 and not dist.is_initialized()
    if owns_group:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if dist.is_initialized():
        world, rank = dist.get_world_size(), dist.get_rank()
    else:
        world, rank = 1, 0
    if device.type == "cuda" and device.index is None:  # DDP: one GPU per local rank
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) if world > 1 else 0)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    main = rank == 0
    log = board = bar = None
    try:
        if config.amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError(f"TrainConfig.amp='bf16': {torch.cuda.get_device_name(device)} has no bf16 support")

        # Each rank draws its own noise; the data order below is shared by all ranks.
        seed_everything(config.seed + rank)

        # Data: epoch e visits a permutation seeded by (seed, e), cut into global batches of batch_size * world;
        # rank r takes the r-th slice of each, so N ranks see exactly the samples one process would see.
        batches = _EpochBatches(len(dataset), config.batch_size, rank, world, config.seed)
        loader = DataLoader(
            dataset,
            batch_sampler=batches,
            collate_fn=collate_fn,
            num_workers=config.num_workers,
            pin_memory=device.type == "cuda",
            persistent_workers=config.num_workers > 0,
            generator=torch.Generator().manual_seed(config.seed),  # keeps DataLoader off the global RNG
        )

        # Model, optimiser, grad scaler (fp16 only), EMA (rank 0 only: DDP keeps every rank's weights equal).
        raw = model.to(device)
        raw.train()
        params = [p for p in raw.parameters() if p.requires_grad]
        groups = [{"params": params, "weight_decay": 0.0}]
        if config.weight_decay > 0:  # decay weights, not biases and norm scales (one group is cheaper per step)
            groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
                      {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)
        scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
        ema = None
        if main and config.ema_decay is not None:
            ema = AveragedModel(raw, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)

        # Resume: weights, EMA, optimiser, scaler, data position, the last logged loss, and last the RNG states.
        step, epoch, index = 0, 0, 0
        loss_value = float("nan")
        checkpoint = _latest_checkpoint(out_dir)
        if resume is True and checkpoint is None:
            raise FileNotFoundError(f"fit(resume=True): no checkpoint in {out_dir / 'checkpoint'}")
        if resume is False and checkpoint is not None:
            raise ValueError(f"fit(resume=False): {out_dir} already holds a checkpoint ({checkpoint}); "
                             "use another out_dir, delete it, or resume")
        if checkpoint is not None:
            step, epoch, index, loss_value = _load_checkpoint(checkpoint, raw, ema, optimizer, scaler, rank, world)
            if step >= config.steps and main:
                logger.info("fit: the run in %s is already complete (checkpoint at step %d, config.steps %d); "
                            "no steps to run, returning its final weights and last logged loss %.6g",
                            out_dir, step, config.steps, loss_value)
        net = DistributedDataParallel(raw, device_ids=[device.index] if device.type == "cuda" else None) \
            if world > 1 else raw
        batches.position(epoch, index)
        data = iter(loader)
        amp_dtype = torch.float16 if config.amp == "fp16" else torch.bfloat16
        # A disabled torch.autocast still costs tens of microseconds per step, hence the null context.
        autocast = contextlib.nullcontext() if config.amp == "none" else torch.autocast(device.type, amp_dtype)

        # Logs (rank 0): CSV always, TensorBoard on request, progress bar.
        if main:
            out_dir.mkdir(parents=True, exist_ok=True)
            write_json(out_dir / "train_config.json", asdict(config))
        log = _CsvLog(out_dir / "log.csv", step) if main else None
        board = _tensorboard(out_dir / "tensorboard", step) if main and config.tensorboard else None
        bar = tqdm(total=config.steps, initial=step, disable=not (main and config.progress), desc="train",
                   dynamic_ncols=True)

        start_step = step
        pending: list[Tensor] = []  # losses of the steps since the last sync, checked for NaN/inf at the sync
        t_loop = t_log = time.perf_counter()
        step_log = step
        while step < config.steps:
            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr

            micro_losses = []
            for micro in range(config.grad_accum):
                if index == batches.per_epoch:  # epoch boundary
                    epoch, index = epoch + 1, 0
                    batches.position(epoch, index)
                    data = iter(loader)
                batch = next(data) if device.type == "cpu" else _to_device(next(data), device)
                index += 1
                # DDP averages gradients across ranks on the last micro-batch only.
                last = micro == config.grad_accum - 1
                with net.no_sync() if world > 1 and not last else contextlib.nullcontext():
                    with autocast:
                        loss = loss_fn(net, batch)
                    if not isinstance(loss, Tensor) or loss.numel() != 1:
                        raise ValueError(f"loss_fn must return a scalar tensor, got {type(loss).__name__} "
                                         f"{tuple(getattr(loss, 'shape', ()))}")
                    if config.grad_accum > 1:
                        loss = loss / config.grad_accum
                    scaler.scale(loss).backward()
                micro_losses.append(loss.detach())

            if config.grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(raw.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                if config.ema_warmup:  # a fresh closure per step: the decay is a plain float, no device sync
                    ema.multi_avg_fn = get_ema_multi_avg_fn(ema_decay_at(step, config))
                ema.update_parameters(raw)
            step += 1
            pending.append(micro_losses[0] if len(micro_losses) == 1 else sum(m.float() for m in micro_losses))
            bar.update(1)

            checkpoint_now = step % config.ckpt_every == 0 or step == config.steps
            if step % config.log_every == 0 or checkpoint_now:
                losses = _gather_losses(pending, world)
                for i, value in enumerate(losses):
                    if not math.isfinite(value):
                        bad = step - len(losses) + 1 + i
                        kept = _latest_checkpoint(out_dir)
                        raise NonFiniteLossError(
                            f"loss is {value} at step {bad} of {config.steps}; training stopped. Last good "
                            f"checkpoint: {kept if kept is not None else 'none written yet'}", bad)
                pending.clear()
                now = time.perf_counter()
                loss_value, speed = sum(losses) / len(losses), (step - step_log) / max(now - t_log, 1e-9)
                t_log, step_log = now, step
                bar.set_postfix(loss=f"{loss_value:.4g}", lr=f"{lr:.3g}", **{"steps/s": f"{speed:.2f}"})
                if log is not None:
                    log.write(step, loss_value, lr, speed)
                if board is not None:
                    board.add_scalar("train/loss", loss_value, step)
                    board.add_scalar("train/lr", lr, step)
                    board.add_scalar("train/steps_per_sec", speed, step)
            if checkpoint_now:
                _save_checkpoint(out_dir, step, epoch, index, raw, ema, optimizer, scaler, config, rank, world,
                                 loss_value)

        # Final weights: EMA when on (the ones to sample with), raw beside them.
        if main:
            save_pretrained(ema.module if ema is not None else raw, out_dir, metadata=metadata)
            if ema is not None:
                save_pretrained(raw, out_dir / "raw", metadata=metadata)
            if run_config is not None:
                save_run_config(out_dir, run_config)
        loop_time = time.perf_counter() - t_loop
        if world > 1:
            dist.barrier()
        return TrainResult(
            model=raw,
            ema_model=ema.module if ema is not None else None,
            step=step,
            loss=loss_value,
            out_dir=out_dir,
            steps_per_sec=(step - start_step) / max(loop_time, 1e-9),
            wall_time=time.perf_counter() - t_start,
        )
    finally:
        for closeable in (bar, log, board):
            if closeable is not None:
                closeable.close()
        if owns_group:
            dist.destroy_process_group()


# ----------------------------------------------------------------------------------------------------------------
# Pieces of the loop


def _resolve_device(name: str) -> torch.device:
    return resolve_device(name, name="TrainConfig.device")


class _EpochBatches:
    """Batch sampler: a seeded permutation per epoch, cut into global batches; yields this rank's slices.

    `position(epoch, index)` makes the next iteration start at batch `index` of `epoch` (used on resume).
    """

    def __init__(self, n: int, batch_size: int, rank: int, world: int, seed: int) -> None:
        self.n, self.batch_size, self.rank, self.world, self.seed = n, batch_size, rank, world, seed
        self.per_epoch = n // (batch_size * world)  # the last incomplete global batch is dropped
        if self.per_epoch == 0:
            raise ValueError(f"fit: dataset has {n} samples, fewer than one global batch "
                             f"(batch_size {batch_size} x {world} processes)")
        self.epoch, self.start = 0, 0

    def position(self, epoch: int, index: int) -> None:
        self.epoch, self.start = epoch, index

    def __len__(self) -> int:
        return self.per_epoch - self.start

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        size = self.batch_size * self.world
        for b in range(self.start, self.per_epoch):
            lo = b * size + self.rank * self.batch_size
            yield order[lo : lo + self.batch_size].tolist()


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(_to_device(v, device) for v in batch))
    if isinstance(batch, list | tuple):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _gather_losses(pending: list[Tensor], world: int) -> list[float]:
    """Per-step losses since the last sync, averaged over ranks (so every rank sees the same values)."""
    losses = torch.stack([loss.float().reshape(()) for loss in pending])
    if world > 1:
        dist.all_reduce(losses, op=dist.ReduceOp.SUM)
        losses = losses / world
    return losses.tolist()


class _CsvLog:
    """out_dir/log.csv with step, loss, lr, steps_per_sec; on resume, rows after the resumed step are dropped."""

    header = ["step", "loss", "lr", "steps_per_sec"]

    def __init__(self, path: Path, start_step: int) -> None:
        rows = []
        if path.is_file() and start_step > 0:
            with open(path, newline="") as f:
                rows = [r for r in csv.reader(f) if r and r[0].isdigit() and int(r[0]) <= start_step]
        self.file = open(path, "w", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerows([self.header, *rows])
        self.file.flush()

    def write(self, step: int, loss: float, lr: float, speed: float) -> None:
        self.writer.writerow([step, f"{loss:.6g}", f"{lr:.6g}", f"{speed:.4g}"])
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _tensorboard(path: Path, start_step: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError("TrainConfig.tensorboard=True needs the tensorboard package (pip install tensorboard)") \
            from None
    return SummaryWriter(str(path), purge_step=start_step if start_step > 0 else None)


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints: tensors in safetensors, everything else in JSON (nothing pickled)


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and "cuda" in state and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _pack(obj: Any, key: str, tensors: dict[str, Tensor]) -> Any:
    """Nested state -> JSON, moving tensors and numpy arrays into `tensors` under path-like keys."""
    if isinstance(obj, Tensor):
        tensors[key] = obj
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        tensors[key] = torch.from_numpy(obj.astype(np.int64) if obj.dtype.kind == "u" else obj)
        return {"__ndarray__": key, "dtype": obj.dtype.str}
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj):
            return {k: _pack(v, f"{key}.{k}", tensors) for k, v in obj.items()}
        return {"__items__": [[k, _pack(v, f"{key}.{i}", tensors)] for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_pack(v, f"{key}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_pack(v, f"{key}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"checkpoint: cannot store a {type(obj).__name__} at {key}")


def _unpack(obj: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, list):
        return [_unpack(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy().astype(np.dtype(obj["dtype"]))
        if "__tuple__" in obj:
            return tuple(_unpack(v, tensors) for v in obj["__tuple__"])
        if "__items__" in obj:
            return {k: _unpack(v, tensors) for k, v in obj["__items__"]}
        return {k: _unpack(v, tensors) for k, v in obj.items()}
    return obj


def _latest_checkpoint(out_dir: Path) -> Path | None:
    """The directory out_dir/checkpoint/latest.json names, or None when there is no checkpoint."""
    pointer = out_dir / "checkpoint" / "latest.json"
    if not pointer.is_file():
        return None
    info = read_json(pointer, "a checkpoint pointer written by fit")
    name = info.get("dir") if isinstance(info, dict) else None
    if not isinstance(name, str) or not _STEP_DIR.match(name):
        raise ValueError(f"{pointer}: expected {{\"dir\": \"step_NNNNNNNN\", ...}}, got {info!r}")
    path = pointer.parent / name
    if not path.is_dir():
        raise FileNotFoundError(f"{pointer} names {name}, but {path} does not exist")
    return path


def _save_checkpoint(out_dir: Path, step: int, epoch: int, index: int, raw: nn.Module, ema: nn.Module | None,
                     optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, config: TrainConfig,
                     rank: int, world: int, loss: float) -> None:
    """Write checkpoint/step_N atomically: fill a temp dir, rename it, then repoint latest.json."""
    rng = [_rng_state()]
    if world > 1:  # every rank's RNG is needed for an exact resume; collectives need all ranks
        rng = [None] * world
        dist.all_gather_object(rng, _rng_state())
    if rank != 0:
        return
    root = out_dir / "checkpoint"
    name = f"step_{step:08d}"
    tmp = root / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {
        "step": step,
        "epoch": epoch,
        "index": index,
        "world_size": world,
        "lr": lr_at(step - 1, config),
        "loss": loss,  # the last logged loss (every checkpoint step is a log step)
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rng,
        "config": asdict(config),
    }
    tensors: dict[str, Tensor] = {}
    record = _pack(state, "state", tensors)
    save_tensors(tmp / "model.safetensors", raw.state_dict())
    if ema is not None:
        save_tensors(tmp / "ema.safetensors", ema.state_dict())
    save_tensors(tmp / "state.safetensors", tensors)
    write_json(tmp / "state.json", record)
    shutil.rmtree(root / name, ignore_errors=True)  # a leftover from a run killed before repointing
    os.replace(tmp, root / name)
    write_json(root / "latest.json", {"dir": name, "step": step})  # the commit point
    for old in root.iterdir():
        if old.is_dir() and old.name != name:
            shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(path: Path, raw: nn.Module, ema: nn.Module | None, optimizer: torch.optim.Optimizer,
                     scaler: torch.amp.GradScaler, rank: int, world: int) -> tuple[int, int, int, float]:
    """Restore a checkpoint into the given objects; returns (step, epoch, index within epoch, last logged loss)."""
    state = _unpack(read_json(path / "state.json", "checkpoint state written by fit"),
                    load_tensors(path / "state.safetensors"))
    if state["world_size"] != world:
        raise ValueError(f"{path}: written by {state['world_size']} processes, resumed with {world}; an exact "
                         "resume needs the same number (the global batch and data order depend on it)")
    load_weights(raw, path / "model.safetensors")
    if ema is not None:
        if not (path / "ema.safetensors").is_file():
            raise FileNotFoundError(f"{path / 'ema.safetensors'}: missing, but ema_decay is set (was EMA off?)")
        ema.load_state_dict(load_tensors(path / "ema.safetensors"))
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"][rank])
    loss = state.get("loss")
    if loss is None:  # checkpoints written before the loss was stored: the log row of the checkpoint step
        loss = _logged_loss(path.parent.parent / "log.csv", state["step"])
    return state["step"], state["epoch"], state["index"], float(loss)


def _logged_loss(path: Path, step: int) -> float:
    """The loss of the last row of log.csv at or before `step`; NaN when there is none (no log, or not rank 0)."""
    if not path.is_file():
        return float("nan")
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= step]
    return float(rows[-1]["loss"]) if rows else float("nan")
