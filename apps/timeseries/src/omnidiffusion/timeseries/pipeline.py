"""What a downstream user calls: train an imputer on a wide table, then `Imputer.from_pretrained(dir).impute(...)`.

    settings = load_settings("default", ["train.steps=2000"])
    train_imputer(settings, "runs/macro")                     # core's fit on windows of the table
    result = Imputer.from_pretrained("runs/macro").impute(frame_with_nans, n_samples=100)
    result.median, result.quantiles[0.05], result.samples     # observed entries come back exactly

A series longer than the model's window is cut into consecutive windows (the last one aligned to the end);
a shorter one is front-padded with missing entries. Values are returned in the table's own units.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from omnidiffusion.core.checks import non_negative_int, positive_int, real_number, resolve_device
from omnidiffusion.core.config import from_dict, load_config, to_dict
from omnidiffusion.core.io import load_pretrained, read_pretrained_config, save_pretrained
from omnidiffusion.core.training import TrainResult, fit

from .data import Scaler, WindowDataset, as_array, load_table, make_windows, time_split
from .metrics import QUANTILES
from .selection import SelectingLoss, Validation, validation_starts
from .settings import Settings

PACKAGE = "omnidiffusion.timeseries"


def load_settings(name_or_path: str | Path | None = "default", overrides: Sequence[str] = ()) -> Settings:
    """A bundled config name (default, paper, forecast, tiny) or a TOML file, with 'a.b=value' overrides."""
    return load_config(Settings, name_or_path, overrides, package=PACKAGE)


def train_imputer(
    settings: Settings, out_dir: str | Path, table: pd.DataFrame | None = None, resume: bool | None = None
) -> ImputerTrainResult:
    """Train CSDI for imputation on the first `data.train_fraction` of the table's time range.

    `table` defaults to `settings.data.source`. out_dir receives fit's checkpoints and the final (EMA)
    weights with the scaler and settings in config.json, so `Imputer.from_pretrained(out_dir)` loads it.
    With `data.val_fraction` > 0 the last part of the training range is held out: the network trains on the
    rows before it, every checkpoint is scored there against linear interpolation (selection.py), and the
    final weights are the selected checkpoint's, with the chosen `sampler.median_share` / `sampler.spread`;
    the returned result's `validation` holds the summary (None without a validation part).
    """
    frame = load_table(settings.data.source, "data.source") if table is None else load_table(table, "table")
    values, observed = as_array(frame)
    end = (
        values.shape[0]
        if settings.data.train_fraction >= 1.0
        else time_split(values.shape[0], settings.data.train_fraction)
    )
    if settings.data.window > end:
        raise ValueError(
            f"data.window: expected at most the {end} training time steps of the table "
            f"(data.train_fraction = {settings.data.train_fraction:g}), got {settings.data.window}"
        )
    L = settings.data.window
    scaler = Scaler.fit(values[:end], observed[:end])
    z = scaler.transform(values[:end], observed[:end])
    val_start = _validation_start(end, L, settings.data.val_fraction)
    fit_end = end if val_start is None else val_start
    windows = make_windows(z[:fit_end], observed[:fit_end], L, settings.data.stride)
    train_config = settings.train
    if windows["values"].shape[0] < train_config.batch_size:  # a short table: one batch is all its windows
        train_config = replace(train_config, batch_size=int(windows["values"].shape[0]))
    net = settings.build_net(values.shape[1])
    task = settings.build_task()
    meta = {
        "kind": "csdi-imputer",
        "scaler": scaler.to_dict(),
        "settings": to_dict(settings),
        "columns": [str(c) for c in frame.columns],
        "train_end": int(end),
    }
    loss = task.loss
    if val_start is not None:
        starts = validation_starts(end, val_start, L)
        if len(starts) > 16:  # bounds the cost of each validation: 16 windows evenly spread
            starts = starts[np.linspace(0, len(starts) - 1, 16).round().astype(int)]
        idx = starts[:, None] + np.arange(L)[None, :]  # (N, L)
        val = Validation(
            torch.as_tensor(z[idx].transpose(0, 2, 1), dtype=torch.float32),
            torch.as_tensor(observed[:end][idx].transpose(0, 2, 1)),
            torch.as_tensor(np.broadcast_to((idx >= val_start)[:, None, :], (len(starts), values.shape[1], L)).copy()),
            n_samples=min(settings.sampler.n_samples, 24),
            method=settings.sampler.method,
            steps=settings.sampler.steps,
        )
        make_net = lambda: settings.build_net(values.shape[1])  # noqa: E731
        loss = SelectingLoss(task.loss, task, val, make_net, Path(out_dir), settings.sampler.batch_size)
        meta["fit_end"] = int(fit_end)
    result = fit(net, loss, WindowDataset(windows), train_config, out_dir, metadata=meta, resume=resume)
    if val_start is None or os.environ.get("RANK", "0") != "0":
        return ImputerTrainResult(**vars(result))
    final = result.ema_model if result.ema_model is not None else result.model
    loss.add(result.step, final)
    best, weights = loss.best()
    chosen = settings.build_net(values.shape[1])
    chosen.load_state_dict(weights)
    settings.sampler.median_share, settings.sampler.spread = best["median_share"], best["spread"]
    linear = loss.linear
    summary = {
        "rows": [int(val_start), int(end)],
        "windows": int(len(starts)),
        "step": best["step"],
        "median_share": best["median_share"],
        "spread": best["spread"],
        "crps": best["crps"],
        "mae": best["mae"],
        "linear_crps": float(np.mean([v["crps"] for v in linear.values()])),
        "linear_mae": float(np.mean([v["mae"] for v in linear.values()])),
        "per_rate": {
            str(r): {**best["per_rate"][r], "linear_crps": linear[r]["crps"], "linear_mae": linear[r]["mae"]}
            for r in best["per_rate"]
        },
    }
    summary["beats_linear"] = bool(all(best["per_rate"][r]["crps"] < linear[r]["crps"] for r in best["per_rate"]))
    meta = {**meta, "settings": to_dict(settings), "validation": summary}
    save_pretrained(chosen, out_dir, metadata=meta)
    return ImputerTrainResult(**vars(result), validation=summary)


def _validation_start(end: int, length: int, fraction: float) -> int | None:
    """First validation row, or None when there is no validation (fraction 0, or too short a training range)."""
    if fraction <= 0:
        return None
    start = end - max(1, int(round(fraction * end)))
    if start < length + 1:  # fewer than two training windows: train on everything, select nothing
        return None
    return start


def validation_message(summary: dict | None) -> str:
    """One line for the training summary: the selected model against linear interpolation on validation."""
    if summary is None:
        return "no validation part (data.val_fraction = 0 or too short a table): nothing selected"
    rates = ", ".join(
        f"{float(r):.0%}: {v['crps']:.3f} vs {v['linear_crps']:.3f}" for r, v in summary["per_rate"].items()
    )
    head = (
        f"validation rows {summary['rows'][0]}-{summary['rows'][1] - 1}: selected step {summary['step']}, "
        f"median_share {summary['median_share']:g}, spread {summary['spread']:g}; CRPS ours vs linear "
        f"interpolation {rates}"
    )
    if summary["beats_linear"]:
        return head + " (beats linear interpolation at every rate)"
    return head + (
        " -- WARNING: the model does NOT beat linear interpolation on validation at every rate; "
        "consider linear interpolation for this table"
    )


@dataclass
class ImputerTrainResult(TrainResult):
    """fit's result plus the validation summary of the selected model (None without a validation part)."""

    validation: dict | None = None


@dataclass
class ImputationResult:
    """samples (S, T, K); median and every quantile as (T, K) arrays, or DataFrames for DataFrame input."""

    samples: np.ndarray
    median: np.ndarray | pd.DataFrame
    quantiles: dict[float, np.ndarray | pd.DataFrame]


class Imputer:
    """A trained CSDI imputer: `impute(frame_or_array)` fills the NaNs with samples, median and quantiles.

    `device` (cpu by default; "auto" picks cuda when there is one) is where the network and the sampler run.
    """

    def __init__(
        self,
        net: nn.Module,
        scaler: Scaler,
        settings: Settings,
        columns: list[str] | None = None,
        *,
        device: str | torch.device = "cpu",
    ):
        self.device = resolve_device(device)
        self.net, self.scaler, self.settings = net.eval().to(self.device), scaler, settings
        self.task = settings.build_task()
        self.columns = columns

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device: str | torch.device = "cpu") -> Imputer:
        """Load the directory `train_imputer` (or `omnidiffusion-timeseries train`) wrote."""
        if not Path(directory).is_dir():
            raise FileNotFoundError(f"directory: no such folder {directory} (expected one written by train_imputer)")
        meta = read_pretrained_config(directory)["metadata"]
        if meta.get("kind") != "csdi-imputer":
            raise ValueError(f"{directory}: not a CSDI imputer (metadata kind {meta.get('kind')!r})")
        settings = from_dict(Settings, meta["settings"])
        scaler = Scaler.from_dict(meta["scaler"])
        return cls(load_pretrained(directory), scaler, settings, meta.get("columns"), device=device)

    @property
    def window(self) -> int:
        return self.settings.data.window

    def sample_windows(
        self, z: torch.Tensor, cond: torch.Tensor, *, n_samples: int, method: str, steps: int, seed: int
    ) -> torch.Tensor:
        """Samples for z-scored windows (B, K, L) with known entries `cond`: (S, B, K, L) in z-units, on the cpu."""
        s = self.settings.sampler
        seed = non_negative_int(seed, "seed")
        return self.task.impute(
            self.net,
            z.to(self.device),
            cond.to(self.device),
            n_samples=positive_int(n_samples, "n_samples"),
            method=method,
            steps=positive_int(steps, "steps"),
            grid=s.grid,
            generator=torch.Generator(self.device).manual_seed(seed),
            batch_size=s.batch_size,
            median_share=s.median_share,
            spread=s.spread,
        ).cpu()

    def impute(
        self,
        data: pd.DataFrame | np.ndarray,
        n_samples: int | None = None,
        *,
        method: str | None = None,
        steps: int | None = None,
        quantiles: Sequence[float] = QUANTILES,
        seed: int | None = None,
    ) -> ImputationResult:
        """Fill the missing (NaN) entries of a (T, K) table with `n_samples` draws; known entries stay exact.

        None (n_samples, method, steps, seed) means the checkpoint's sampler setting.
        """
        s = self.settings.sampler
        n_samples = s.n_samples if n_samples is None else positive_int(n_samples, "n_samples")
        steps = s.steps if steps is None else positive_int(steps, "steps")
        seed = s.seed if seed is None else non_negative_int(seed, "seed")
        if isinstance(quantiles, str | bytes) or not isinstance(quantiles, Sequence | np.ndarray):
            raise ValueError(f"quantiles: expected a sequence of levels in [0, 1], got {quantiles!r}")
        quantiles = [real_number(q, "quantiles", low=0.0, high=1.0) for q in quantiles]
        values, observed = as_array(data)
        T, K = values.shape
        if K != self.scaler.mean.size:
            raise ValueError(f"data: the model was trained on {self.scaler.mean.size} features, got {K} columns")
        L = self.window
        z = self.scaler.transform(values, observed)
        starts = list(range(0, max(T - L, 0) + 1, L))
        if T > L and starts[-1] != T - L:
            starts.append(T - L)
        vals = np.zeros((len(starts), K, L))
        obs = np.zeros((len(starts), K, L), dtype=bool)
        for i, a in enumerate(starts):  # a short series sits at the end of a front-padded window
            n = min(L, T - a)
            vals[i, :, L - n :], obs[i, :, L - n :] = z[a : a + n].T, observed[a : a + n].T
        out = self.sample_windows(
            torch.as_tensor(vals, dtype=torch.float32),
            torch.as_tensor(obs),
            n_samples=n_samples,
            method=s.method if method is None else method,
            steps=steps,
            seed=seed,
        ).numpy()
        S = out.shape[0]
        filled = np.zeros((S, T, K))
        for i, a in enumerate(starts):
            n = min(L, T - a)
            filled[:, a : a + n] = out[:, i, :, L - n :].transpose(0, 2, 1)
        filled = self.scaler.inverse(filled)
        samples = np.where(observed[None], values[None], filled)  # the known entries, bit for bit
        median = np.median(samples, axis=0)
        qs = {float(q): np.quantile(samples, q, axis=0) for q in quantiles}
        if isinstance(data, pd.DataFrame):
            wrap = lambda a: pd.DataFrame(a, index=data.index, columns=data.columns)  # noqa: E731
            return ImputationResult(samples, wrap(median), {q: wrap(a) for q, a in qs.items()})
        return ImputationResult(samples, median, qs)
