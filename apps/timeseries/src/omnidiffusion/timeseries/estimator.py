"""gluonts integration without lightning: `CSDIEstimator(...).train(dataset) -> CSDIPredictor`.

    estimator = CSDIEstimator(prediction_length=4, context_length=12, config=load_timeseries_config("forecast"))
    predictor = estimator.train(train_ds)                  # training.train_forecaster: core's fit
    forecasts, tss = make_evaluation_predictions(test_ds, predictor, num_samples=100)
    predictor.save_pretrained("runs/csdi"); CSDIPredictor.from_pretrained("runs/csdi")
    table, samples = predictor.forecast_table(frame)       # the steps after a wide table

Each entry's target is (T,) or, for multivariate data (`one_dim_target=False`), (K, T); NaN = missing. A
forecast window is the last `context_length` steps plus `prediction_length` hidden steps (CSDI's "test"
pattern); the predictor yields gluonts `SampleForecast`s with samples (S, H) or (S, H, K), so gluonts'
`Evaluator` and `MultivariateEvaluator` apply unchanged. Weights, scaler and run config are saved through
core's io (safetensors + JSON); gluonts' own serialize/deserialize go through the same files.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from gluonts.dataset.common import Dataset, ListDataset
from gluonts.model.estimator import Estimator
from gluonts.model.forecast import SampleForecast
from gluonts.model.predictor import Predictor
from torch import nn

from omnidiffusion.core.checks import non_negative_int, positive_int, resolve_device
from omnidiffusion.core.io import has_run_config, open_pretrained, save_pretrained, save_run_config

from .data import Scaler, entry_target, last_window, validate_frame
from .forecasting import start_and_freq, table_entry
from .masks import forecast_mask
from .models import CSDINet
from .settings import TimeseriesConfig, legacy_config, load_timeseries_config
from .training import train_forecaster


class CSDIPredictor(Predictor):
    """A trained CSDI forecaster as a gluonts Predictor (samples (S, H) for K = 1, else (S, H, K)).

    `config.sampler` sets how forecasts are drawn (method, steps, samples, seed, batch_size).
    """

    def __init__(
        self,
        net: nn.Module,
        scaler: Scaler,
        prediction_length: int,
        context_length: int,
        config: TimeseriesConfig,
        *,
        batch_entries: int = 32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(prediction_length=positive_int(prediction_length, "prediction_length"))
        self.device = resolve_device(device)
        self.net, self.scaler = net.eval().to(self.device), scaler
        self.context_length = positive_int(context_length, "context_length")
        self.config, self.task = config, config.build_task()
        self.batch_entries = positive_int(batch_entries, "batch_entries")

    def predict(self, dataset: Dataset, num_samples: int | None = None, **kwargs) -> Iterator[SampleForecast]:
        """Forecast the `prediction_length` steps after each entry's target; `num_samples` per forecast
        (None: sampler.samples)."""
        if num_samples is not None:
            num_samples = positive_int(num_samples, "num_samples")
        batch: list[dict] = []
        for entry in dataset:
            batch.append(entry)
            if len(batch) == self.batch_entries:
                yield from self._predict_batch(batch, num_samples)
                batch = []
        if batch:
            yield from self._predict_batch(batch, num_samples)

    def _predict_batch(self, entries: list[dict], num_samples: int | None) -> Iterable[SampleForecast]:
        s = self.config.sampler
        n = s.samples if num_samples is None else num_samples
        H, L = self.prediction_length, self.context_length + self.prediction_length
        K = self.scaler.mean.size
        vals, obs = [], []
        for entry in entries:
            target = entry_target(entry)
            if target.shape[0] != K:
                raise ValueError(
                    f"dataset: the model was trained on {K} features, got a target of shape {target.shape}"
                )
            if np.isnan(target).all():
                raise ValueError(f"dataset: a target has no observed value (all {target.size} entries NaN)")
            if "start" not in entry:
                raise ValueError(f"dataset: every entry needs a 'start' field, got {sorted(entry)}")
            v, o = last_window(np.concatenate([target, np.full((K, H), np.nan)], axis=1), L)
            vals.append(self.scaler.transform(v.T, o.T).T)
            obs.append(o)
        values = torch.as_tensor(np.stack(vals), dtype=torch.float32)  # (B, K, L)
        cond = forecast_mask(torch.as_tensor(np.stack(obs)), H)
        z = self.task.impute(
            self.net,
            values.to(self.device),
            cond.to(self.device),
            n_samples=n,
            method=s.method,
            steps=s.steps,
            grid=s.grid,
            generator=torch.Generator().manual_seed(non_negative_int(s.seed, "sampler.seed")),
            batch_size=s.batch_size,
        )  # (S, B, K, L)
        future = z[..., L - H :].cpu().numpy().astype(np.float64)  # (S, B, K, H)
        future = future * self.scaler.std[None, None, :, None] + self.scaler.mean[None, None, :, None]
        for i, entry in enumerate(entries):
            samples = future[:, i].transpose(0, 2, 1)  # (S, H, K)
            if np.asarray(entry["target"]).ndim == 1:
                samples = samples[..., 0]
            start = entry["start"] + entry_target(entry).shape[1]
            yield SampleForecast(samples=samples.astype(np.float32), start_date=start, item_id=entry.get("item_id"))

    def forecast_table(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """The `prediction_length` steps after a wide table: (median, q05, q95 per column), samples (S, H, K)."""
        frame = validate_frame(frame, "frame")
        if frame.shape[1] != self.scaler.mean.size:
            raise ValueError(f"frame: the model was trained on {self.scaler.mean.size} columns, got {frame.shape[1]}")
        values = frame.to_numpy(dtype=np.float64)
        start, freq = start_and_freq(frame)
        dataset = ListDataset([table_entry(values, start)], freq=freq, one_dim_target=values.shape[1] == 1)
        forecast = next(iter(self.predict(dataset)))
        samples = forecast.samples if forecast.samples.ndim == 3 else forecast.samples[..., None]
        index = pd.period_range(forecast.start_date, periods=samples.shape[1], freq=forecast.start_date.freq)
        cols = {}
        for k, name in enumerate(frame.columns):
            cols[str(name)] = np.median(samples[..., k], axis=0)
            cols[f"{name}_q05"] = np.quantile(samples[..., k], 0.05, axis=0)
            cols[f"{name}_q95"] = np.quantile(samples[..., k], 0.95, axis=0)
        return pd.DataFrame(cols, index=index), samples.astype(np.float64)

    # ---- save / load through core's io (safetensors + config.json + run_config.json), never pickle
    def save_pretrained(self, directory: str | Path) -> Path:
        meta = {
            "kind": "csdi-forecaster",
            "scaler": self.scaler.to_dict(),
            "prediction_length": self.prediction_length,
            "context_length": self.context_length,
        }
        path = save_pretrained(self.net, directory, metadata=meta)
        save_run_config(directory, self.config)
        return path

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        *,
        device: str | torch.device = "cpu",
        batch_entries: int = 32,
        config: TimeseriesConfig | None = None,
    ) -> CSDIPredictor:
        """Load what `train` (task.task = forecast) or `save_pretrained` wrote; `config` replaces the stored run
        config (the CLI passes it with the --set overrides applied)."""
        stored = has_run_config(directory)
        pre = open_pretrained(
            directory, CSDINet, config_cls=TimeseriesConfig if stored else None, device=device,
            what="a CSDI forecaster",
        )
        if pre.metadata.get("kind") != "csdi-forecaster":
            raise ValueError(f"{directory}: not a CSDI forecaster (metadata kind {pre.metadata.get('kind')!r})")
        if config is None:  # a checkpoint from before run_config.json keeps its settings in the metadata
            config = pre.config if stored else legacy_config(pre.metadata)
        return cls(
            pre.model,
            Scaler.from_dict(pre.metadata["scaler"]),
            pre.metadata["prediction_length"],
            pre.metadata["context_length"],
            config,
            batch_entries=batch_entries,
            device=pre.device,
        )

    def serialize(self, path: Path) -> None:
        """gluonts' serde: the same files as save_pretrained plus gluonts-config.json naming this class, so
        `gluonts.model.predictor.Predictor.deserialize(path)` finds and loads it."""
        path = Path(path)
        self.save_pretrained(path)
        super().serialize(path)

    @classmethod
    def deserialize(cls, path: Path, **kwargs) -> CSDIPredictor:
        """Load what `serialize` wrote; kwargs gluonts passes (device, batch_entries) go to from_pretrained."""
        known = {k: v for k, v in kwargs.items() if k in ("device", "batch_entries")}
        return cls.from_pretrained(Path(path), **known)


class CSDIEstimator(Estimator):
    """Trains CSDI on a gluonts dataset with core's `fit` (training.train_forecaster); returns a CSDIPredictor.

    Args:
        prediction_length: H, the steps to forecast (stored as task.horizon).
        context_length: steps of history each window sees (default 3 H; data.window = context + H).
        config: model, schedule, sampler and training settings (`load_timeseries_config("forecast")` by default).
        out_dir: where fit writes checkpoints, final weights and run config (default: a temporary directory).
        stride: step between training windows cut from each series (stored as data.stride).
    """

    def __init__(
        self,
        prediction_length: int,
        context_length: int | None = None,
        config: TimeseriesConfig | None = None,
        *,
        out_dir: str | Path | None = None,
        stride: int = 1,
    ) -> None:
        super().__init__()
        self.prediction_length = positive_int(prediction_length, "prediction_length")
        if context_length is None:
            context_length = 3 * self.prediction_length
        self.context_length = positive_int(context_length, "context_length")
        stride = positive_int(stride, "stride")
        config = load_timeseries_config("forecast") if config is None else config
        self.config = replace(
            config,
            task=replace(config.task, task="forecast", horizon=self.prediction_length),
            data=replace(config.data, window=self.context_length + self.prediction_length, stride=stride),
        )
        self.out_dir = out_dir

    def train(self, training_data: Dataset, validation_data: Dataset | None = None, **kwargs) -> CSDIPredictor:
        out_dir = self.out_dir if self.out_dir is not None else tempfile.mkdtemp(prefix="csdi-")
        result = train_forecaster(self.config, training_data, out_dir)
        return CSDIPredictor(
            result.final_model.cpu(), result.scaler, self.prediction_length, self.context_length, self.config
        )
