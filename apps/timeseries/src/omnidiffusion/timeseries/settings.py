"""The config tree (TOML files under configs/, `--set a.b=value` overrides through core.config).

`default` is the small CPU config (trains on macrodata in minutes); `paper` has CSDI's hyper-parameters
(Tashiro et al. 2021, appendix E: 4 layers, 64 channels, 8 heads, 50 steps, quadratic 1e-4 to 0.5, Adam 1e-3,
batch 16, 100 samples); `forecast` trains with the forecasting mask; `tiny` is the smoke-test config.

    config = load_timeseries_config("default", ["train.steps=2000", "sampler.samples=100"])
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from omnidiffusion.core import GRIDS, METHODS
from omnidiffusion.core.checks import non_negative_int, positive_int, real_number
from omnidiffusion.core.config import apply_override, from_dict, load_config
from omnidiffusion.core.settings import SamplerConfig, ScheduleConfig
from omnidiffusion.core.training import TrainConfig

from .masks import STRATEGIES
from .models import CSDINet
from .task import INTERP_INPUTS, PREDICTIONS, CSDITask

PACKAGE = "omnidiffusion.timeseries"


def _one_of(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value


@dataclass
class ModelConfig:
    """CSDINet sizes (paper: channels 64, layers 4, heads 8, ffn 64, time 128, feature 16, step 128)."""

    channels: int = 64
    layers: int = 4
    heads: int = 8
    ffn: int = 64
    time_dim: int = 128
    feature_dim: int = 16
    step_dim: int = 128

    def __post_init__(self) -> None:
        for f in fields(self):  # the sinusoidal time and step embeddings need two columns at least
            minimum = 2 if f.name in ("time_dim", "step_dim") else 1
            positive_int(getattr(self, f.name), f"model.{f.name}", minimum=minimum)


@dataclass
class CSDIScheduleConfig(ScheduleConfig):
    """CSDI's table: quadratic, T = 50 steps, beta from 1e-4 to 0.5."""

    name: str = "quadratic"
    timesteps: int = 50
    beta_start: float = 1e-4
    beta_end: float = 0.5


@dataclass
class CSDISamplerConfig(SamplerConfig):
    """How samples are drawn: the paper chain is ddpm over all 50 steps; dpm++2m is the few-step option."""

    method: str = "ddpm"
    steps: int = 50
    grid: str = "auto"  # time-uniform for ddpm and consistency, logsnr for the others (see CSDITask.impute)
    batch_size: int = 2048  # (window, sample) pairs per network call
    samples: int = 100  # samples per window
    # Recalibration around the interpolation (task.calibrate); `train` sets both from its validation part.
    median_share: float = 1.0  # 0: the median is the linear interpolation; 1: the model's own median
    spread: float = 1.0  # factor on the samples' deviations from their median

    def __post_init__(self) -> None:
        super().__post_init__()
        _one_of(self.method, "sampler.method", tuple(sorted(METHODS)))
        _one_of(self.grid, "sampler.grid", ("auto", *GRIDS))
        positive_int(self.samples, "sampler.samples")
        real_number(self.median_share, "sampler.median_share", low=0.0, high=1.0)
        real_number(self.spread, "sampler.spread", low=0.0, high=10.0, low_open=True)


@dataclass
class DataConfig:
    """Where the training table comes from and how it is cut into windows."""

    source: str = "macrodata"  # a bundled name (macrodata, co2, elnino) or a wide CSV path
    window: int = 16  # L, time points per window
    stride: int = 1
    train_fraction: float = 1.0  # share of the time range used for training (1.0 = all of it)
    # The last share of the training range held out for model selection (checkpoint, median_share, spread)
    # against linear interpolation; 0 trains on all of it and selects nothing.
    val_fraction: float = 0.0
    # format "physionet": the PhysioNet 2012 stays at `root` (set-a; omnidiffusion.timeseries.datasets) under
    # CSDI's protocol instead of one table: `missing_ratio` of each stay's observed entries are the test targets,
    # `fold` (of 5) is the test part, `split_seed` is CSDI's --seed; its validation stays select the model.
    # format "long-csv" / "jsonl" (task.task = "forecast"): the gluonts entries of a long-format CSV (item_id,
    # timestamp, values) or of gluonts JSON lines at `root` (at frequency `freq`; long-csv infers it when None);
    # each entry's first data.train_fraction of time trains.
    # format "pm25": the STMVL PM2.5 tables at `root` (pm25_ground.txt, pm25_missing.txt) under CSDI's protocol:
    # windows inside the training months, `valid_month` (one of 1, 2, 4, 5, 7, 8, 10, 11) validates.
    format: Literal["table", "physionet", "pm25", "long-csv", "jsonl"] = "table"
    root: str | None = None
    freq: str | None = None
    missing_ratio: float = 0.1
    fold: int = 0
    split_seed: int = 1
    valid_month: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.source, str | os.PathLike) or not str(self.source).strip():
            raise ValueError(f"data.source: expected a bundled name or a CSV path, got {self.source!r}")
        positive_int(self.window, "data.window", minimum=2)
        positive_int(self.stride, "data.stride")
        real_number(self.train_fraction, "data.train_fraction", low=0.0, high=1.0, low_open=True)
        real_number(self.val_fraction, "data.val_fraction", low=0.0, high=0.5)
        _one_of(self.format, "data.format", ("table", "physionet", "pm25", "long-csv", "jsonl"))
        if self.valid_month not in (1, 2, 4, 5, 7, 8, 10, 11):
            raise ValueError(
                f"data.valid_month: expected a training month 1, 2, 4, 5, 7, 8, 10 or 11, got {self.valid_month!r}"
            )
        if self.root is not None and not str(self.root).strip():
            raise ValueError("data.root: expected a folder, got an empty string")
        real_number(self.missing_ratio, "data.missing_ratio", low=0.0, high=1.0, low_open=True, high_open=True)
        if not (isinstance(self.fold, int) and 0 <= self.fold < 5):
            raise ValueError(f"data.fold: expected 0..4 (CSDI's 5-fold test), got {self.fold!r}")
        non_negative_int(self.split_seed, "data.split_seed", maximum=2**32 - 1)


@dataclass
class TaskConfig:
    """What is trained: imputation (a mask strategy) or forecasting (the last `horizon` steps hidden)."""

    task: Literal["impute", "forecast"] = "impute"
    strategy: Literal["random", "historical", "mix", "forecast"] = "random"
    horizon: int = 4
    forecast_share: float = 0.8  # forecast task: share of batches with the forecast mask (the rest random)
    window_scale: float | None = None  # instance normalisation floor (see task.conditioning); None = off
    scale_min_known: int = 2  # features with fewer known entries in the window stay in z-units
    prediction: str = "eps"  # what the network outputs: eps (CSDI), x0 (the residual itself) or v
    # the conditioning channel: the interpolation everywhere (PriSTI) or the known values only (CSDI's cond_obs)
    interp_input: str = "interpolation"

    def __post_init__(self) -> None:
        _one_of(self.task, "task.task", ("impute", "forecast"))
        _one_of(self.strategy, "task.strategy", STRATEGIES)
        positive_int(self.horizon, "task.horizon")
        real_number(self.forecast_share, "task.forecast_share", low=0.0, high=1.0)
        if self.window_scale is not None:  # a floor of 0 would divide a flat window by zero
            real_number(self.window_scale, "task.window_scale", low=0.0, low_open=True)
        non_negative_int(self.scale_min_known, "task.scale_min_known")
        _one_of(self.prediction, "task.prediction", PREDICTIONS)
        _one_of(self.interp_input, "task.interp_input", INTERP_INPUTS)


@dataclass
class TimeseriesConfig:
    """Everything one `train` run needs; stored with its weights (run_config.json) for the inference commands."""

    model: ModelConfig = field(default_factory=ModelConfig)
    schedule: CSDIScheduleConfig = field(default_factory=CSDIScheduleConfig)
    sampler: CSDISamplerConfig = field(default_factory=CSDISamplerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=3000, batch_size=16, lr=1e-3))

    def build_net(self, n_features: int) -> CSDINet:
        # Checked here rather than in ModelConfig: --set model.heads then model.channels must not fail halfway.
        if self.model.channels % self.model.heads:
            raise ValueError(
                f"model.heads: expected a divisor of model.channels = {self.model.channels}, got {self.model.heads}"
            )
        return CSDINet(n_features, n_steps=self.schedule.timesteps, **asdict(self.model))

    def build_task(self) -> CSDITask:
        forecast = self.task.task == "forecast"
        return CSDITask(
            schedule=self.schedule.build(),
            strategy="forecast" if forecast else self.task.strategy,
            horizon=self.task.horizon if forecast else 0,
            forecast_share=self.task.forecast_share,
            window_scale=self.task.window_scale,
            scale_min_known=self.task.scale_min_known,
            prediction=self.task.prediction,
            interp_input=self.task.interp_input,
        )


def load_timeseries_config(
    name_or_path: str | Path | None = "default", overrides: Sequence[str] = ()
) -> TimeseriesConfig:
    """A bundled config name (default, paper, forecast, tiny) or a TOML file, with 'a.b=value' overrides."""
    return load_config(TimeseriesConfig, name_or_path, overrides, package=PACKAGE)


def legacy_config(metadata: Mapping[str, Any], overrides: Sequence[str] = ()) -> TimeseriesConfig:
    """The config of a checkpoint written before run_config.json existed, from the "settings" its config.json
    metadata holds (old key names: [diffusion] n_steps, beta_start, beta_end -> [schedule] timesteps, ...;
    sampler.n_samples -> sampler.samples), with `overrides` ('a.b=value') applied."""
    settings = metadata.get("settings")
    if not isinstance(settings, Mapping):
        raise ValueError('config.json: holds neither a run_config.json beside it nor the old "settings" metadata')
    tables = {k: dict(v) if isinstance(v, Mapping) else v for k, v in settings.items()}
    diffusion = tables.pop("diffusion", None) or {}
    tables["schedule"] = {
        "name": "quadratic",
        **{("timesteps" if k == "n_steps" else k): v for k, v in diffusion.items()},
    }
    sampler = tables.get("sampler") or {}
    if "n_samples" in sampler:
        sampler["samples"] = sampler.pop("n_samples")
    config = from_dict(TimeseriesConfig, tables)
    for override in overrides:
        config = apply_override(config, override)
    return config
