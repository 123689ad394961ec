"""What a downstream user calls: `Imputer.from_pretrained(dir).impute(table_with_nans)`.

    train(load_timeseries_config("default"), "runs/macro")   # training.py: core's fit on windows of the table
    result = Imputer.from_pretrained("runs/macro").impute(frame_with_nans, n_samples=100)
    result.median, result.quantiles[0.05], result.samples     # observed entries come back exactly

A series longer than the model's window is cut into consecutive windows (the last one aligned to the end);
a shorter one is front-padded with missing entries. Values are returned in the table's own units. Sampling
follows the checkpoint's `[sampler]` (run_config.json) unless `impute` is told otherwise.

    distil_imputer("runs/macro", "runs/macro-cd")          # consistency distillation: 1-, 2- or 4-step sampling
    Imputer.from_pretrained("runs/macro-cd").impute(frame_with_nans)   # samples with method "consistency"
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from omnidiffusion.core.checks import non_negative_int, positive_int, real_number, resolve_device
from omnidiffusion.core.consistency import consistency_distillation
from omnidiffusion.core.io import (
    has_run_config,
    load_run_config,
    open_pretrained,
    read_pretrained_config,
    save_pretrained,
    save_run_config,
)

from .data import Scaler, WindowDataset, as_array, load_table, make_windows
from .estimator import CSDIPredictor
from .metrics import QUANTILES
from .models import CSDINet
from .settings import TimeseriesConfig, legacy_config


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
        config: TimeseriesConfig,
        columns: list[str] | None = None,
        *,
        device: str | torch.device = "cpu",
    ):
        self.device = resolve_device(device)
        self.net, self.scaler, self.config = net.eval().to(self.device), scaler, config
        self.task = config.build_task()
        self.columns = columns

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, device: str | torch.device = "cpu", config: TimeseriesConfig | None = None
    ) -> Imputer:
        """Load the directory `train` (or `omnidiffusion-timeseries train`) wrote; `config` replaces the stored
        run config (the CLI passes it with the --set overrides applied)."""
        stored = has_run_config(directory)
        pre = open_pretrained(
            directory, CSDINet, config_cls=TimeseriesConfig if stored else None, device=device, what="a CSDI imputer"
        )
        if pre.metadata.get("kind") != "csdi-imputer":
            raise ValueError(f"{directory}: not a CSDI imputer (metadata kind {pre.metadata.get('kind')!r})")
        scaler = Scaler.from_dict(pre.metadata["scaler"])
        if config is None:  # a checkpoint from before run_config.json keeps its settings in the metadata
            config = pre.config if stored else legacy_config(pre.metadata)
        imputer = cls(pre.model, scaler, config, pre.metadata.get("columns"), device=pre.device)
        if pre.metadata.get("consistency") is not None:  # written by distil_imputer
            imputer.task = replace(imputer.task, consistency=dict(pre.metadata["consistency"]))
        return imputer

    @property
    def window(self) -> int:
        return self.config.data.window

    def sample_windows(
        self, z: torch.Tensor, cond: torch.Tensor, *, n_samples: int, method: str, steps: int, seed: int
    ) -> torch.Tensor:
        """Samples for z-scored windows (B, K, L) with known entries `cond`: (S, B, K, L) in z-units, on the cpu."""
        s = self.config.sampler
        seed = non_negative_int(seed, "seed")
        return self.task.impute(
            self.net,
            z.to(self.device),
            cond.to(self.device),
            n_samples=positive_int(n_samples, "n_samples"),
            method=method,
            steps=positive_int(steps, "steps"),
            grid=s.grid,
            generator=torch.Generator().manual_seed(seed),
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

        None (n_samples, method, steps, seed) means the checkpoint's sampler setting (sampler.samples, ...).
        """
        s = self.config.sampler
        n_samples = s.samples if n_samples is None else positive_int(n_samples, "n_samples")
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


def distil_imputer(
    teacher_dir: str | Path,
    out_dir: str | Path,
    *,
    config: TimeseriesConfig | None = None,
    table: pd.DataFrame | None = None,
    steps: int = 2000,
    lr: float = 1e-4,
    intervals: int = 18,
    solver: str = "heun",
    sample_steps: int = 2,
    resume: bool | None = None,
) -> Imputer:
    """Consistency distillation (core `consistency_distillation`, Song et al. 2023) of a trained CSDI imputer.

    The student starts as a copy of the teacher's network, read as v for an eps teacher (core.consistency: eps
    read at t = 1 multiplies errors by sigma/alpha), else as the teacher's prediction, and learns on the
    teacher's own training windows (the table of its run config or `table`, the rows before its validation
    part, its scaler) with fresh training masks, the loss scoring the hidden entries only. `steps` optimiser
    steps of the teacher's train config at learning rate `lr` (min_lr lr/10). out_dir loads with
    `Imputer.from_pretrained` (returned); its run config samples with method "consistency" in `sample_steps` steps (grid
    auto: time-uniform) and keeps the teacher's median_share / spread. `config` replaces the teacher's stored
    run config (the CLI passes it with --set applied). Calling again resumes (as core `fit`).
    """
    teacher = Imputer.from_pretrained(teacher_dir, config=config)
    meta = read_pretrained_config(teacher_dir).get("metadata", {})
    config = teacher.config
    if teacher.task.consistency is not None:
        raise ValueError(f"teacher_dir: {teacher_dir} holds a distilled imputer; distil the imputer `train` wrote")
    if config.data.format != "table" and table is None:
        raise ValueError(
            f"data.format: distillation reads the teacher's windows from a table, got {config.data.format!r} "
            "(pass `table`)"
        )
    steps, lr = positive_int(steps, "steps"), real_number(lr, "lr", low=0.0, low_open=True)
    frame = load_table(config.data.source, "data.source") if table is None else load_table(table, "table")
    values, observed = as_array(frame)
    end = int(meta.get("fit_end", meta.get("train_end", values.shape[0])))
    z = teacher.scaler.transform(values[:end], observed[:end])
    windows = make_windows(z, observed[:end], config.data.window, config.data.stride)
    train_config = replace(config.train, steps=steps, lr=lr, min_lr=min(config.train.min_lr, lr / 10),
                           batch_size=min(config.train.batch_size, int(windows["values"].shape[0])))  # fmt: skip
    task = teacher.task
    net = teacher.net.to(resolve_device(train_config.device)).eval()  # beside the student fit trains
    cm = consistency_distillation(
        task.denoiser(net), WindowDataset(windows), prediction="v" if task.prediction == "eps" else task.prediction,
        intervals=intervals, solver=solver,
        config=train_config, out_dir=out_dir, batch_fn=task.training_example, resume=resume,
    )  # fmt: skip
    run = replace(config, train=train_config,
                  sampler=replace(config.sampler, method="consistency", steps=positive_int(sample_steps,
                                  "sample_steps")))  # fmt: skip
    meta = {**meta, "consistency": cm.spec, "distilled_from": str(teacher_dir)}
    meta.pop("validation", None)
    save_pretrained(cm.net, out_dir, metadata=meta)
    save_run_config(out_dir, run)
    return Imputer.from_pretrained(out_dir)


def load_model(
    directory: str | Path,
    *,
    device: str | torch.device = "cpu",
    config: TimeseriesConfig | None = None,
    overrides: Sequence[str] = (),
) -> Imputer | CSDIPredictor:
    """The checkpoint's Imputer or CSDIPredictor, by the kind its config.json records.

    `config` replaces the stored run config (the CLI passes the stored one with --set applied); without it the
    stored one is used with `overrides` ('a.b=value') applied (for a checkpoint from before run_config.json:
    the settings its config.json metadata holds).
    """
    record = Path(directory) / "config.json"
    meta = read_pretrained_config(directory).get("metadata", {}) if record.is_file() else {}
    if config is None and overrides and record.is_file():
        stored = has_run_config(directory)
        config = load_run_config(directory, TimeseriesConfig, overrides) if stored else legacy_config(meta, overrides)
    kind = meta.get("kind")
    if kind == "csdi-forecaster":
        return CSDIPredictor.from_pretrained(directory, device=device, config=config)
    if kind not in (None, "csdi-imputer"):
        raise ValueError(f"{directory}: not a CSDI checkpoint (metadata kind {kind!r})")
    return Imputer.from_pretrained(directory, device=device, config=config)
