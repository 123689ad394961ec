"""Data: wide tables (rows = time steps, columns = features, NaN = missing), windows, normalisation, demo data.

    frame = read_csv("prices.csv")                      # wide CSV; an index column of dates is allowed
    values, observed = as_array(frame)                  # (T, K) float64 with zeros where missing, bool mask
    scaler = Scaler.fit(values, observed)               # per-feature mean/std over observed entries only
    windows = make_windows(z, observed, length=16)      # dict of (N, K, L) tensors for core's fit

Bundled demo data (nothing is downloaded): statsmodels `macrodata` (quarterly US macro, 12 series), `co2`
(weekly Mauna Loa CO2 with 59 genuine gaps), `elnino` (monthly sea-surface temperature, one series), and the
gluonts artificial `ComplexSeasonalTimeSeries` for the gluonts pipeline. gluonts entries: `entry_target`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from omnidiffusion.core.checks import positive_int

BUNDLED = ("macrodata", "co2", "elnino")


def validate_frame(frame: pd.DataFrame, name: str = "data") -> pd.DataFrame:
    """Check a wide table: numeric columns only, at least one row, no column without an observed value."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{name}: expected a pandas DataFrame, got {type(frame).__name__}")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"{name}: expected at least one row and one column, got shape {frame.shape}")
    bad = [str(c) for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise ValueError(f"{name}: columns must be numeric (NaN marks a missing value); non-numeric: {bad}")
    empty = [str(c) for c in frame.columns if frame[c].isna().all()]
    if empty:
        raise ValueError(f"{name}: columns with no observed value (all NaN) cannot be normalised: {empty}")
    if np.isinf(frame.to_numpy(dtype=np.float64)).any():
        raise ValueError(f"{name}: contains inf; use NaN for missing values")
    return frame


def read_csv(path: str | Path, name: str = "csv") -> pd.DataFrame:
    """Read a wide CSV (rows = time steps, columns = features, empty cells or NaN = missing).

    A first column that does not parse as numbers (dates, labels) becomes the index. Errors start with `name`
    (the CLI passes its flag, --csv).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name}: {path} is a directory, expected a CSV file")
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such file {path}")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise ValueError(f"{name}: cannot read {path} as a CSV table: {e}") from None
    if frame.shape[1] > 1 and not pd.api.types.is_numeric_dtype(frame.iloc[:, 0]):
        frame = frame.set_index(frame.columns[0])
        frame.index = _time_index(frame.index)
    return validate_frame(frame, f"{name} {path}")


def _time_index(index: pd.Index) -> pd.Index:
    """Labels such as 1959Q1, 2000-01 or 2000-01-01 as a PeriodIndex (frequency inferred); else unchanged."""
    try:
        periods = [pd.Period(str(v)) for v in index]
    except (ValueError, TypeError):
        return index
    if len({p.freq for p in periods}) != 1:
        return index
    return pd.PeriodIndex(periods)


def as_array(data: pd.DataFrame | np.ndarray, name: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """A DataFrame or (T, K) array -> (values with 0 at missing entries, observed mask), both (T, K)."""
    if isinstance(data, pd.DataFrame):
        arr = validate_frame(data, name).to_numpy(dtype=np.float64)
    else:
        arr = np.asarray(data)
        if arr.dtype.kind not in "fiub":
            raise ValueError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.size == 0:
            raise ValueError(f"{name}: expected a 2-D array (time steps, features), got shape {arr.shape}")
        if np.isinf(arr).any():
            raise ValueError(f"{name}: contains inf; use NaN for missing values")
        empty = np.flatnonzero(np.isnan(arr).all(0))
        if empty.size:
            raise ValueError(f"{name}: columns {empty.tolist()} have no observed value (all NaN)")
    observed = ~np.isnan(arr)
    return np.where(observed, arr, 0.0), observed


@dataclass
class Scaler:
    """Per-feature z-score with statistics over observed entries only (CSDI's normalisation)."""

    mean: np.ndarray  # (K,)
    std: np.ndarray  # (K,)

    @classmethod
    def fit(cls, values: np.ndarray, observed: np.ndarray) -> Scaler:
        n = observed.sum(0)
        if (n == 0).any():
            raise ValueError(f"observed: features {np.flatnonzero(n == 0).tolist()} have no observed value")
        mean = (values * observed).sum(0) / n
        var = (((values - mean) * observed) ** 2).sum(0) / np.maximum(n - 1, 1)
        std = np.sqrt(var)
        return cls(mean=mean, std=np.where(std > 0, std, 1.0))

    def transform(self, values: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
        z = (values - self.mean) / self.std
        return z if observed is None else np.where(observed, z, 0.0)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return z * self.std + self.mean

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Scaler:
        return cls(mean=np.asarray(d["mean"], dtype=np.float64), std=np.asarray(d["std"], dtype=np.float64))


def window_starts(n_time: int, length: int, stride: int = 1) -> np.ndarray:
    """Start indices of the windows of `length` steps every `stride` steps inside a series of n_time steps."""
    length = positive_int(length, "window", minimum=2)
    stride = positive_int(stride, "stride")
    if length > n_time:
        raise ValueError(f"window: window length {length} is longer than the series ({n_time} time steps)")
    return np.arange(0, n_time - length + 1, stride)


def make_windows(z: np.ndarray, observed: np.ndarray, length: int, stride: int = 1) -> dict[str, torch.Tensor]:
    """Cut (T, K) arrays into windows: {"values": (N, K, L) float32, "observed": (N, K, L) bool}."""
    starts = window_starts(z.shape[0], length, stride)
    idx = starts[:, None] + np.arange(length)[None, :]  # (N, L)
    vals = np.where(observed, z, 0.0)[idx].transpose(0, 2, 1)  # (N, K, L)
    obs = observed[idx].transpose(0, 2, 1)
    return {"values": torch.as_tensor(vals, dtype=torch.float32), "observed": torch.as_tensor(obs)}


class WindowDataset(Dataset):
    """Map-style dataset of windows for core's `fit`: item i is {"values": (K, L), "observed": (K, L)}, plus
    "pattern" (K, L), its historical missing pattern, where the windows bring one (PM2.5)."""

    def __init__(self, windows: dict[str, torch.Tensor]) -> None:
        keys = ("values", "observed", "pattern") if "pattern" in windows else ("values", "observed")
        self.windows = {k: windows[k] for k in keys}
        n = {k: v.shape[0] for k, v in self.windows.items()}
        if len(set(n.values())) != 1:
            raise ValueError(f"windows: expected one window count for every key, got {n}")

    def __len__(self) -> int:
        return self.windows["values"].shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.windows.items()}


def entry_target(entry: dict, name: str = "dataset") -> np.ndarray:
    """A gluonts entry's target as (K, T) float64 (univariate targets become K = 1); NaN = missing, inf refused."""
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


def last_window(target: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """The last `length` steps of a (K, T) target, front-padded with missing entries: (values, observed) (K, L)."""
    K, T = target.shape
    out = np.full((K, length), np.nan)
    take = min(T, length)
    out[:, length - take :] = target[:, T - take :]
    observed = ~np.isnan(out)
    return np.where(observed, out, 0.0), observed


def load_bundled(name: str) -> pd.DataFrame:
    """A bundled demo table (see BUNDLED), wide with a time index; nothing is downloaded."""
    if name not in BUNDLED:
        raise ValueError(f"dataset: expected a CSV path or one of {BUNDLED}, got {name!r}")
    import statsmodels.api as sm  # imported here: only the demo data needs it

    if name == "macrodata":
        raw = sm.datasets.macrodata.load_pandas().data
        index = pd.PeriodIndex(
            [f"{int(y)}Q{int(q)}" for y, q in zip(raw["year"], raw["quarter"], strict=True)], freq="Q"
        )
        return raw.drop(columns=["year", "quarter"]).set_index(index)
    if name == "co2":
        raw = sm.datasets.co2.load_pandas().data
        return raw.astype(np.float64)
    raw = sm.datasets.elnino.load_pandas().data  # one row per year, 12 monthly columns
    years = raw["YEAR"].astype(int)
    monthly = raw.drop(columns=["YEAR"]).to_numpy(dtype=np.float64).reshape(-1)
    index = pd.period_range(f"{years.iloc[0]}-01", periods=monthly.size, freq="M")
    return pd.DataFrame({"sst": monthly}, index=index)


def load_table(source: str | Path | pd.DataFrame, name: str = "data") -> pd.DataFrame:
    """A DataFrame, a bundled name, or a CSV path -> a validated wide DataFrame (errors start with `name`)."""
    if isinstance(source, pd.DataFrame):
        return validate_frame(source, name)
    if str(source) in BUNDLED:
        return load_bundled(str(source))
    return read_csv(source, name)


def time_split(n_time: int, train_fraction: float) -> int:
    """Index of the first test time step when the first `train_fraction` of the time range trains."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction: expected a value in (0, 1), got {train_fraction}")
    return int(round(n_time * train_fraction))
