"""gluonts integration without lightning: `CSDIEstimator(...).train(dataset) -> CSDIPredictor`.

    estimator = CSDIEstimator(prediction_length=4, context_length=12, settings=load_settings("forecast"))
    predictor = estimator.train(train_ds)                  # core's fit: EMA, checkpoints, progress bar
    forecasts, tss = make_evaluation_predictions(test_ds, predictor, num_samples=100)
    predictor.save_pretrained("runs/csdi"); CSDIPredictor.from_pretrained("runs/csdi")

Each entry's target is (T,) or, for multivariate data (`one_dim_target=False`), (K, T); NaN = missing. A
forecast window is the last `context_length` steps plus `prediction_length` hidden steps (CSDI's "test"
pattern); the predictor yields gluonts `SampleForecast`s with samples (S, H) or (S, H, K), so gluonts'
`Evaluator` and `MultivariateEvaluator` apply unchanged. Weights and settings are saved through core's io
(safetensors + JSON); gluonts' own serialize/deserialize go through the same files.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from gluonts.dataset.common import Dataset
from gluonts.model.estimator import Estimator
from gluonts.model.forecast import SampleForecast
from gluonts.model.predictor import Predictor
from torch import nn

from omnidiffusion.core.checks import non_negative_int, positive_int, resolve_device
from omnidiffusion.core.config import from_dict, to_dict
from omnidiffusion.core.io import load_pretrained, read_pretrained_config, save_pretrained
from omnidiffusion.core.training import fit

from .data import Scaler, WindowDataset, make_windows
from .masks import forecast_mask
from .settings import Settings


def _target(entry: dict, name: str = "dataset") -> np.ndarray:
    """An entry's target as (K, T) float64 (univariate targets become K = 1); NaN = missing, inf refused."""
    if not isinstance(entry, dict) or "target" not in entry:
        got = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise ValueError(f"{name}: every entry needs a 'target' field, got {got}")
    target = np.asarray(entry["target"])
    if target.dtype.kind not in "fiub":
        raise ValueError(f"{name}: expected a numeric target (NaN = missing), got dtype {target.dtype}")
    target = target.astype(np.float64)
    if target.ndim == 1:
        target = target[None]
    if target.ndim != 2 or target.shape[1] < 1:
        raise ValueError(f"{name}: expected a target of shape (T,) or (K, T), got {target.shape}")
    if np.isinf(target).any():
        raise ValueError(f"{name}: the target contains inf; use NaN for missing values")
    return target


def _window(target: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """The last `length` steps of a (K, T) target, front-padded with missing entries: (values, observed) (K, L)."""
    K, T = target.shape
    out = np.full((K, length), np.nan)
    take = min(T, length)
    out[:, length - take :] = target[:, T - take :]
    observed = ~np.isnan(out)
    return np.where(observed, out, 0.0), observed


def _metadata(scaler: Scaler, settings: Settings, prediction_length: int, context_length: int) -> dict:
    return {
        "kind": "csdi-forecaster",
        "scaler": scaler.to_dict(),
        "settings": to_dict(settings),
        "prediction_length": prediction_length,
        "context_length": context_length,
    }


class CSDIPredictor(Predictor):
    """A trained CSDI forecaster as a gluonts Predictor (samples (S, H) for K = 1, else (S, H, K))."""

    def __init__(
        self,
        net: nn.Module,
        scaler: Scaler,
        prediction_length: int,
        context_length: int,
        settings: Settings,
        *,
        batch_entries: int = 32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(prediction_length=positive_int(prediction_length, "prediction_length"))
        self.device = resolve_device(device)
        self.net, self.scaler = net.eval().to(self.device), scaler
        self.context_length = positive_int(context_length, "context_length")
        self.settings, self.task = settings, settings.build_task()
        self.batch_entries = positive_int(batch_entries, "batch_entries")

    def predict(self, dataset: Dataset, num_samples: int | None = None, **kwargs) -> Iterator[SampleForecast]:
        """Forecast the `prediction_length` steps after each entry's target; `num_samples` per forecast."""
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
        s = self.settings.sampler
        n = s.n_samples if num_samples is None else num_samples
        H, L = self.prediction_length, self.context_length + self.prediction_length
        K = self.scaler.mean.size
        vals, obs = [], []
        for entry in entries:
            target = _target(entry)
            if target.shape[0] != K:
                raise ValueError(
                    f"dataset: the model was trained on {K} features, got a target of shape {target.shape}"
                )
            if np.isnan(target).all():
                raise ValueError(f"dataset: a target has no observed value (all {target.size} entries NaN)")
            if "start" not in entry:
                raise ValueError(f"dataset: every entry needs a 'start' field, got {sorted(entry)}")
            v, o = _window(np.concatenate([target, np.full((K, H), np.nan)], axis=1), L)
            vals.append(self.scaler.transform(v.T, o.T).T)
            obs.append(o)
        values = torch.as_tensor(np.stack(vals), dtype=torch.float32)  # (B, K, L)
        cond = forecast_mask(torch.as_tensor(np.stack(obs)), H)
        gen = torch.Generator(self.device).manual_seed(non_negative_int(s.seed, "sampler.seed"))
        z = self.task.impute(
            self.net,
            values.to(self.device),
            cond.to(self.device),
            n_samples=n,
            method=s.method,
            steps=s.steps,
            grid=s.grid,
            generator=gen,
            batch_size=s.batch_size,
        )  # (S, B, K, L)
        future = z[..., L - H :].cpu().numpy().astype(np.float64)  # (S, B, K, H)
        future = future * self.scaler.std[None, None, :, None] + self.scaler.mean[None, None, :, None]
        for i, entry in enumerate(entries):
            samples = future[:, i].transpose(0, 2, 1)  # (S, H, K)
            if np.asarray(entry["target"]).ndim == 1:
                samples = samples[..., 0]
            start = entry["start"] + _target(entry).shape[1]
            yield SampleForecast(samples=samples.astype(np.float32), start_date=start, item_id=entry.get("item_id"))

    # ---- save / load through core's io (safetensors + config.json), never pickle
    def save_pretrained(self, directory: str | Path) -> Path:
        meta = _metadata(self.scaler, self.settings, self.prediction_length, self.context_length)
        return save_pretrained(self.net, directory, metadata=meta)

    @classmethod
    def from_pretrained(cls, directory: str | Path, **kwargs) -> CSDIPredictor:
        """Load a saved forecaster; kwargs (batch_entries, device) go to the constructor."""
        if not Path(directory).is_dir():
            raise FileNotFoundError(f"directory: no such folder {directory} (expected one written by save_pretrained)")
        meta = read_pretrained_config(directory)["metadata"]
        if meta.get("kind") != "csdi-forecaster":
            raise ValueError(f"{directory}: not a CSDI forecaster (metadata kind {meta.get('kind')!r})")
        net = load_pretrained(directory)
        settings = from_dict(Settings, meta["settings"])
        return cls(
            net, Scaler.from_dict(meta["scaler"]), meta["prediction_length"], meta["context_length"], settings, **kwargs
        )

    def serialize(self, path: Path) -> None:
        """gluonts' serde: the same files as save_pretrained plus gluonts-config.json naming this class, so
        `gluonts.model.predictor.Predictor.deserialize(path)` finds and loads it."""
        path = Path(path)
        self.save_pretrained(path)
        super().serialize(path)

    @classmethod
    def deserialize(cls, path: Path, **kwargs) -> CSDIPredictor:
        """Load what `serialize` wrote; kwargs gluonts passes (device, batch_entries) go to the constructor."""
        known = {k: v for k, v in kwargs.items() if k in ("device", "batch_entries")}
        return cls.from_pretrained(Path(path), **known)


class CSDIEstimator(Estimator):
    """Trains CSDI on a gluonts dataset with core's `fit`; returns a CSDIPredictor.

    Args:
        prediction_length: H, the steps to forecast.
        context_length: steps of history each window sees (default 3 H).
        settings: model, diffusion, sampler and training settings (`load_settings("forecast")` by default).
        out_dir: where fit writes checkpoints and final weights (default: a temporary directory).
        stride: step between training windows cut from each series.
    """

    def __init__(
        self,
        prediction_length: int,
        context_length: int | None = None,
        settings: Settings | None = None,
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
        if settings is None:
            from .pipeline import load_settings

            settings = load_settings("forecast")
        settings.task.task, settings.task.horizon = "forecast", prediction_length
        self.settings, self.out_dir, self.stride = settings, out_dir, stride

    def train(self, training_data: Dataset, validation_data: Dataset | None = None, **kwargs) -> CSDIPredictor:
        targets = [_target(e, "training_data") for e in training_data]
        if not targets:
            raise ValueError("training_data: the dataset is empty")
        K = targets[0].shape[0]
        if any(t.shape[0] != K for t in targets):
            raise ValueError(
                f"training_data: all targets need the same number of features, got "
                f"{sorted({t.shape[0] for t in targets})}"
            )
        L = self.context_length + self.prediction_length
        stacked = np.concatenate(targets, axis=1).T  # (sum T, K)
        observed = ~np.isnan(stacked)
        empty = np.flatnonzero(~observed.any(0))
        if empty.size:
            raise ValueError(f"training_data: features {empty.tolist()} have no observed value in any entry")
        scaler = Scaler.fit(np.where(observed, stacked, 0.0), observed)
        parts = []
        for t in targets:
            if t.shape[1] < L:  # a short series gives one front-padded window
                v, o = _window(t, L)
                z = scaler.transform(v.T, o.T).T
                parts.append(
                    {"values": torch.as_tensor(z[None], dtype=torch.float32), "observed": torch.as_tensor(o[None])}
                )
                continue
            obs = ~np.isnan(t.T)
            parts.append(make_windows(scaler.transform(np.where(obs, t.T, 0.0), obs), obs, L, self.stride))
        windows = {k: torch.cat([p[k] for p in parts]) for k in ("values", "observed")}
        net = self.settings.build_net(K)
        task = self.settings.build_task()
        out_dir = self.out_dir if self.out_dir is not None else tempfile.mkdtemp(prefix="csdi-")
        meta = _metadata(scaler, self.settings, self.prediction_length, self.context_length)
        result = fit(net, task.loss, WindowDataset(windows), self.settings.train, out_dir, metadata=meta)
        model = result.ema_model if result.ema_model is not None else result.model
        return CSDIPredictor(model.cpu(), scaler, self.prediction_length, self.context_length, self.settings)
