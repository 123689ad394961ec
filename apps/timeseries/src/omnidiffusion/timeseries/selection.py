"""Model selection inside `train`: score checkpoints against linear interpolation on a held-out validation part.

The last `data.val_fraction` of the training range is never trained on. Validation windows (length L, stride 1)
start from L // 2 steps before that part, as the test windows of the official CSDI protocol start before the
test part; only hidden entries inside the validation part are scored. At every checkpoint `fit` writes (and
at the end) the EMA weights draw samples for round(rate * #observed) hidden entries per window, rates 10%,
50%, 90% (fixed seeds); the score is the mean over rates of CSDI's CRPS. Besides the checkpoint, two
post-hoc calibration parameters are chosen on the same samples (task.calibrate): `median_share` (how much of
the model's own residual median is kept: 0 puts the median on the interpolation) and `spread` (a factor on the
deviations from the median). The selected weights are written as the final model; the summary says whether
they beat linear interpolation on validation, and by how much.

`fit` has no evaluation hook, so `SelectingLoss` wraps the loss: before each step it looks whether a new
checkpoint appeared and scores it (rank 0 only; its own generators, so the training RNG and an exact resume
are untouched).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from omnidiffusion.core.io import load_tensors, read_json, save_tensors, write_json
from omnidiffusion.core.training import is_main_process

from . import baselines, metrics
from .masks import fixed_rate_mask
from .task import CSDITask, calibrate

RATES = (0.1, 0.5, 0.9)
MEDIAN_SHARES = (0.0, 0.5, 1.0)
SPREADS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5)


def validation_starts(train_end: int, val_start: int, length: int) -> np.ndarray:
    """Start rows of the validation windows: from val_start - length // 2 (>= 0), stride 1, inside train_end."""
    last = train_end - length
    first = max(0, min(val_start - length // 2, last))
    return np.arange(first, last + 1)


@dataclass
class Validation:
    """Validation windows (N, K, L) with their fixed masks; `score` gives CRPS/MAE of a network against linear."""

    values: Tensor
    observed: Tensor
    scored: Tensor  # (N, K, L) bool: entries inside the validation part
    n_samples: int = 24
    method: str = "dpm++2m"
    steps: int = 10
    seeds: tuple[int, ...] = (0,)
    masks: list[tuple[float, Tensor, np.ndarray]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for rate, seed in itertools.product(RATES, self.seeds):
            cond = fixed_rate_mask(self.observed, rate, torch.Generator().manual_seed(1000 + seed))
            target = (self.observed & ~cond & self.scored).numpy()
            if target.any():
                self.masks.append((rate, cond, target))
        if not self.masks:
            raise ValueError("validation: no hidden entry falls inside the validation part")

    def linear(self) -> dict[float, dict[str, float]]:
        """CRPS and MAE of linear interpolation per rate (a point forecast: CRPS = normalised absolute error)."""
        y = self.values.numpy().astype(np.float64)
        rows: dict[float, list[tuple[float, float]]] = {}
        for rate, cond, target in self.masks:
            lin = baselines.linear_imputation(y, cond.numpy())
            rows.setdefault(rate, []).append((metrics.crps(lin, y, target), metrics.mae(lin, y, target)))
        return {
            r: {"crps": float(np.mean([a for a, _ in v])), "mae": float(np.mean([b for _, b in v]))}
            for r, v in rows.items()
        }

    @torch.no_grad()
    def score(self, task: CSDITask, net: nn.Module, batch_size: int = 2048) -> dict[tuple[float, float], dict]:
        """{(median_share, spread): {"crps": mean over rates, "mae": ..., "per_rate": {...}}} for one network."""
        y = self.values.numpy().astype(np.float64)
        draws = []
        for i, (_, cond, _) in enumerate(self.masks):
            residual = task.impute(
                net,
                self.values,
                cond,
                n_samples=self.n_samples,
                method=self.method,
                steps=self.steps,
                generator=torch.Generator().manual_seed(2000 + i),
                batch_size=batch_size,
            )
            lin = torch.from_numpy(baselines.linear_imputation(y, cond.numpy())[0]).to(residual.dtype)
            draws.append((residual - lin, lin))
        out = {}
        for share, spread in itertools.product(MEDIAN_SHARES, SPREADS):
            per_rate: dict[float, list[tuple[float, float]]] = {}
            for (rate, _, target), (dev, lin) in zip(self.masks, draws, strict=True):
                z = (lin + calibrate(dev, share, spread)).numpy().astype(np.float64)
                per_rate.setdefault(rate, []).append((metrics.crps(z, y, target), metrics.mae(z, y, target)))
            summary = {
                r: {"crps": float(np.mean([a for a, _ in v])), "mae": float(np.mean([b for _, b in v]))}
                for r, v in per_rate.items()
            }
            out[(share, spread)] = {
                "crps": float(np.mean([s["crps"] for s in summary.values()])),
                "mae": float(np.mean([s["mae"] for s in summary.values()])),
                "per_rate": summary,
            }
        return out


def choose(history: list[dict], linear: dict[float, dict[str, float]]) -> dict:
    """The best (step, median_share, spread) by mean validation CRPS, among candidates whose median is not worse
    than linear interpolation's at any rate (to float32 rounding); median_share = 0 always qualifies."""
    best = None
    for entry in history:
        for (share, spread), sc in entry["scores"].items():
            # float32 sampling: median_share 0 reproduces linear's MAE to ~1e-7, hence the tolerance
            ok = all(sc["per_rate"][r]["mae"] <= linear[r]["mae"] * (1 + 1e-5) + 1e-6 for r in sc["per_rate"])
            key = (not ok, sc["crps"])
            if best is None or key < best[0]:
                best = (key, {"step": entry["step"], "median_share": share, "spread": spread, **sc})
    if best is None:
        raise ValueError("validation: no checkpoint was scored")
    return best[1]


def _ema_weights(directory: Path) -> dict[str, Tensor]:
    """The EMA weights of a fit checkpoint directory (AveragedModel keys without 'module.'), else the raw ones."""
    ema = directory / "ema.safetensors"
    if not ema.is_file():
        return load_tensors(directory / "model.safetensors")
    return {k[len("module.") :]: v for k, v in load_tensors(ema).items() if k.startswith("module.")}


class SelectingLoss:
    """Wraps a loss for `fit`: scores each new checkpoint of `out_dir` on `validation` (rank 0) before the next step.

    The history survives a kill: it is kept in out_dir/validation.json and reloaded on resume.
    """

    def __init__(self, loss, task: CSDITask, validation: Validation, make_net, out_dir: Path, batch_size: int):
        self.loss, self.task, self.validation, self.make_net = loss, task, validation, make_net
        self.out_dir, self.batch_size = Path(out_dir), batch_size
        self.path, self.best_path = self.out_dir / "validation.json", self.out_dir / "selected.safetensors"
        self.linear = validation.linear()
        self.history: list[dict] = []
        if self.path.is_file():
            self.history = [_decode(e) for e in read_json(self.path, "validation history")["history"]]

    def __call__(self, net: nn.Module, batch) -> Tensor:
        if is_main_process():  # inside fit, whose process group tells the ranks apart
            self.check()
        return self.loss(net, batch)

    def check(self) -> None:
        """Score the newest checkpoint if it has not been scored yet."""
        pointer = self.out_dir / "checkpoint" / "latest.json"
        if not pointer.is_file():
            return
        info = read_json(pointer, "a checkpoint pointer written by fit")
        if any(e["step"] == info["step"] for e in self.history):
            return
        net = self.make_net()
        net.load_state_dict(_ema_weights(pointer.parent / info["dir"]))
        self.add(int(info["step"]), net.eval())

    def add(self, step: int, net: nn.Module) -> None:
        """Score `net` as the weights of `step` and keep the history on disk."""
        if any(e["step"] == step for e in self.history):
            return
        was_training = net.training
        net.eval()
        self.history.append({"step": step, "scores": self.validation.score(self.task, net, self.batch_size)})
        net.train(was_training)
        if choose(self.history, self.linear)["step"] == step:  # fit keeps only the newest checkpoint
            save_tensors(self.best_path, {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()})
        write_json(self.path, {"history": [_encode(e) for e in self.history]})

    def best(self) -> tuple[dict, dict[str, Tensor]]:
        """The chosen entry (see `choose`) and its weights."""
        return choose(self.history, self.linear), load_tensors(self.best_path)


def _encode(entry: dict) -> dict:
    return {
        "step": entry["step"],
        "scores": [{"median_share": a, "spread": b, **v} for (a, b), v in entry["scores"].items()],
    }


def _decode(entry: dict) -> dict:
    scores = {}
    for row in entry["scores"]:
        row = dict(row)
        key = (row.pop("median_share"), row.pop("spread"))
        row["per_rate"] = {float(r): v for r, v in row["per_rate"].items()}
        scores[key] = row
    return {"step": entry["step"], "scores": scores}
