"""What a downstream user calls: train an imputer on a wide table, then `Imputer.from_pretrained(dir).impute(...)`.

    settings = load_settings("default", ["train.steps=2000"])
    train_imputer(settings, "runs/macro")                     # core's fit on windows of the table
    result = Imputer.from_pretrained("runs/macro").impute(frame_with_nans, n_samples=100)
    result.median, result.quantiles[0.05], result.samples     # observed entries come back exactly

A series longer than the model's window is cut into consecutive windows (the last one aligned to the end);
a shorter one is front-padded with missing entries. Values are returned in the table's own units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from omnidiffusion.core.checks import non_negative_int, positive_int, real_number, resolve_device
from omnidiffusion.core.config import from_dict, load_config, to_dict
from omnidiffusion.core.io import load_pretrained, read_pretrained_config
from omnidiffusion.core.training import TrainResult, fit

from .data import Scaler, WindowDataset, as_array, load_table, make_windows, time_split
from .metrics import QUANTILES
from .settings import Settings

PACKAGE = "omnidiffusion.timeseries"


def load_settings(name_or_path: str | Path | None = "default", overrides: Sequence[str] = ()) -> Settings:
    """A bundled config name (default, paper, forecast, tiny) or a TOML file, with 'a.b=value' overrides."""
    return load_config(Settings, name_or_path, overrides, package=PACKAGE)


def train_imputer(
    settings: Settings, out_dir: str | Path, table: pd.DataFrame | None = None, resume: bool | None = None
) -> TrainResult:
    """Train CSDI for imputation on the first `data.train_fraction` of the table's time range.

    `table` defaults to `settings.data.source`. out_dir receives fit's checkpoints and the final (EMA)
    weights with the scaler and settings in config.json, so `Imputer.from_pretrained(out_dir)` loads it.
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
    scaler = Scaler.fit(values[:end], observed[:end])
    windows = make_windows(
        scaler.transform(values[:end], observed[:end]), observed[:end], settings.data.window, settings.data.stride
    )
    net = settings.build_net(values.shape[1])
    meta = {
        "kind": "csdi-imputer",
        "scaler": scaler.to_dict(),
        "settings": to_dict(settings),
        "columns": [str(c) for c in frame.columns],
        "train_end": int(end),
    }
    return fit(
        net, settings.build_task().loss, WindowDataset(windows), settings.train, out_dir, metadata=meta, resume=resume
    )


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
