"""CSDI's two imputation benchmarks read from their own on-disk layouts, with CSDI's splits and target protocol.

PhysioNet 2012 (set-a; Silva et al. 2012): one text file per ICU stay, `<RecordID>.txt`, with the header
`Time,Parameter,Value` and rows such as `00:07,HR,73`. CSDI keeps 35 parameters and 48 hourly steps: the row's
hour is the integer part of `HH` in `HH:MM`, and the last row of a parameter within an hour wins (file order).
Rows at hour >= 48 and other parameters (the descriptors RecordID, Age, Gender, Height, ICUType, Weight) are
dropped. Values are taken as written (PhysioNet's -1 "unknown" appears only in descriptors).

    stays = read_physionet("/data/physionet/set-a")       # ids, values (N, 48, 35) with NaN where unobserved
    p = physionet_protocol(stays.values, missing_ratio=0.1, seed=1, fold=0)

`physionet_protocol` follows CSDI's dataset_physio.py: per stay, int(n_observed * missing_ratio) observed entries
become evaluation targets, drawn with numpy's legacy RNG seeded once with `seed` over the stays in id order; the
values are z-scored per parameter with the mean and std (ddof 0) of every observed value; the stays are shuffled
with `seed`, fold `fold` (of 5) is the test part, the rest is shuffled again with `seed` and its first
int(0.7 N) stays train, the remainder validate.

Beijing PM2.5 (Microsoft STMVL release, as CSDI uses it): `pm25_ground.txt` (the measurements) and
`pm25_missing.txt` (the same table with extra entries removed: the evaluation targets), CSV files with a `datetime`
column and one column per station (36 stations, hourly, 2014-05 to 2015-04).

    ground, missing = read_pm25("/data/pm25/Code/STMVL/SampleData")
    p = pm25_protocol(ground, missing)

`pm25_protocol` follows CSDI's dataset_pm25.py / download.py: test months 3, 6, 9, 12; training months
1, 2, 4, 5, 7, 8, 10, 11 with one of them (`valid_index`) held out for validation; normalisation by the mean and
std (pandas' describe: NaN skipped, ddof 1) of every non-test month; targets of the test months are the entries
observed in the ground file and missing in the missing file. Training windows can carry CSDI's historical
missing patterns (`pm25_windows(..., patterns=True)`), drawn from months 2, 5, 8 and 11 only.

Forecasting data as gluonts entries ({"start": pd.Period, "target": (T,) or (K, T), "item_id"}), for `train`
with task.task = "forecast" (data.format "long-csv" / "jsonl") or any gluonts pipeline:
- `read_long_csv(path)`: long format, one row per (item, time): columns `item_id`, `timestamp` and one or more
  value columns (`target`, or several: a (K, T) target). Each item is sorted by time and put on its inferred
  regular grid (missing timestamps become NaN).
- `read_jsonlines(path, freq)`: gluonts' JSON lines, one object per line with `start` and `target` (numbers,
  null or "NaN" for missing) and optional `item_id`.

Every reader parses text only (never pickle) and names the file, line and field of anything malformed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from omnidiffusion.core.checks import non_negative_int, positive_int, real_number

PHYSIONET_PARAMETERS = (
    "DiasABP", "HR", "Na", "Lactate", "NIDiasABP", "PaO2", "WBC", "pH", "Albumin", "ALT", "Glucose", "SaO2",
    "Temp", "AST", "Bilirubin", "HCO3", "BUN", "RespRate", "Mg", "HCT", "SysABP", "FiO2", "K", "GCS",
    "Cholesterol", "NISysABP", "TroponinT", "MAP", "TroponinI", "PaCO2", "Platelets", "Urine", "NIMAP",
    "Creatinine", "ALP",
)  # fmt: skip
PHYSIONET_HOURS = 48
PHYSIONET_HEADER = "Time,Parameter,Value"
PM25_TEST_MONTHS = (3, 6, 9, 12)
PM25_TRAIN_MONTHS = (1, 2, 4, 5, 7, 8, 10, 11)
PM25_PATTERN_MONTHS = (2, 5, 8, 11)  # CSDI's flag_for_histmask: the training months that give historical patterns
_COLUMN = {name: k for k, name in enumerate(PHYSIONET_PARAMETERS)}
_TIME = re.compile(r"^(\d{1,3}):([0-5]\d)$")
_RECORD = re.compile(r"\d{6}")


@dataclass
class PhysioNetStays:
    ids: list[str]  # RecordIDs (six digits, from the file names), sorted
    values: np.ndarray  # (N, 48, 35) float64, NaN where not observed; columns in PHYSIONET_PARAMETERS order


def read_physionet_stay(path: str | Path) -> np.ndarray:
    """One stay's (48, 35) hourly table (NaN where unobserved) from its `Time,Parameter,Value` text file."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].strip().lstrip("\ufeff") != PHYSIONET_HEADER:
        got = lines[0].strip() if lines else "an empty file"
        raise ValueError(f"{path}: expected the header {PHYSIONET_HEADER!r}, got {got!r}")
    table = np.full((PHYSIONET_HOURS, len(PHYSIONET_PARAMETERS)), np.nan)
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != 3:
            raise ValueError(f"{path}:{number}: expected 3 comma-separated fields (Time,Parameter,Value), got {line!r}")
        time, name, text = (f.strip() for f in fields)
        m = _TIME.match(time)
        if m is None:
            raise ValueError(f"{path}:{number}: Time: expected HH:MM, got {time!r}")
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{path}:{number}: Value: expected a number, got {text!r}") from None
        hour = int(m.group(1))
        if name in _COLUMN and hour < PHYSIONET_HOURS:
            if not np.isfinite(value):
                raise ValueError(f"{path}:{number}: Value: expected a finite number, got {text!r}")
            table[hour, _COLUMN[name]] = value  # a later row of the same hour replaces an earlier one
    return table


def read_physionet(root: str | Path, *, limit: int | None = None) -> PhysioNetStays:
    """Every `<RecordID>.txt` of a PhysioNet 2012 folder (set-a, or a folder holding it), in RecordID order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"root: {root}: no such directory (expected PhysioNet 2012's set-a folder)")
    folder = root / "set-a" if (root / "set-a").is_dir() else root
    files = {}
    for path in folder.iterdir():
        m = _RECORD.search(path.name)
        if path.suffix == ".txt" and m:
            files[m.group()] = path
    if not files:
        raise ValueError(f"root: {folder} holds no <RecordID>.txt files (six-digit PhysioNet 2012 record ids)")
    ids = sorted(files)
    if limit is not None:
        ids = ids[: positive_int(limit, "limit")]
    return PhysioNetStays(ids, np.stack([read_physionet_stay(files[i]) for i in ids]))


def physionet_protocol(values: np.ndarray, missing_ratio: float, *, seed: int = 1, fold: int = 0) -> dict:
    """CSDI's PhysioNet protocol on (N, 48, 35) values with NaN (see the module docstring).

    Returns z (N, 48, 35; 0 where unobserved), observed, cond (observed and not a target), target (bool, same
    shape), mean and std (35,), and the train / valid / test index arrays."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3 or values.shape[1:] != (PHYSIONET_HOURS, len(PHYSIONET_PARAMETERS)):
        raise ValueError(f"values: expected shape (N, 48, 35), got {values.shape}")
    real_number(missing_ratio, "missing_ratio", low=0.0, high=1.0, high_open=True)
    non_negative_int(seed, "seed", maximum=2**32 - 1)
    if not 0 <= fold < 5:
        raise ValueError(f"fold: expected 0..4 (5-fold test), got {fold}")
    observed = ~np.isnan(values)
    rng = np.random.RandomState(seed)  # the legacy RNG CSDI seeds globally: the same draws in the same order
    cond = observed.copy()
    for i in range(len(values)):
        flat = cond[i].reshape(-1)
        hidden = rng.choice(np.flatnonzero(flat), int(flat.sum() * missing_ratio), replace=False)
        flat[hidden] = False
    seen = observed.reshape(-1, observed.shape[-1])
    flat_values = values.reshape(-1, values.shape[-1])
    mean = np.array([flat_values[seen[:, k], k].mean() for k in range(values.shape[-1])])
    std = np.array([flat_values[seen[:, k], k].std() for k in range(values.shape[-1])])
    if (~seen.any(axis=0)).any() or (std == 0).any():
        bad = [PHYSIONET_PARAMETERS[k] for k in np.flatnonzero(~seen.any(axis=0) | (std == 0))]
        raise ValueError(f"values: parameters {bad} have no observed spread; the z-score is undefined")
    z = np.where(observed, (np.nan_to_num(values) - mean) / std, 0.0)
    n = len(values)
    order = np.arange(n)
    np.random.RandomState(seed).shuffle(order)
    start, end = int(fold * 0.2 * n), int((fold + 1) * 0.2 * n)
    test = order[start:end]
    rest = np.delete(order, np.arange(start, end))
    np.random.RandomState(seed).shuffle(rest)
    n_train = int(n * 0.7)
    return {
        "z": z,
        "observed": observed,
        "cond": cond,
        "target": observed & ~cond,
        "mean": mean,
        "std": std,
        "train": rest[:n_train],
        "valid": rest[n_train:],
        "test": test,
    }


def physionet_windows(protocol: dict, index: np.ndarray) -> dict[str, torch.Tensor]:
    """The stays `index` of a physionet_protocol as windows {"values", "observed"} of shape (N, 35, 48)."""
    return {
        "values": torch.as_tensor(protocol["z"][index].transpose(0, 2, 1), dtype=torch.float32),
        "observed": torch.as_tensor(protocol["observed"][index].transpose(0, 2, 1)),
    }


def _read_station_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"root: {path}: no such file (expected STMVL's SampleData folder)")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a CSV table ({e})") from None
    if "datetime" not in frame.columns:
        raise ValueError(f"{path}: expected a 'datetime' column, got columns {list(frame.columns)[:5]}")
    try:
        index = pd.to_datetime(frame.pop("datetime"), format="mixed")
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: datetime: not a date-time column ({e})") from None
    if frame.shape[1] == 0:
        raise ValueError(f"{path}: expected one column per station after 'datetime', got none")
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            bad = frame[column][pd.to_numeric(frame[column], errors="coerce").isna() & frame[column].notna()]
            raise ValueError(f"{path}: column {column!r}: expected numbers, got {bad.iloc[0]!r}")
    frame.index = pd.DatetimeIndex(index, name="datetime")
    return frame.astype(np.float64)


def read_pm25(root: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ground, missing) station tables from `pm25_ground.txt` and `pm25_missing.txt` in `root`."""
    root = Path(root)
    ground = _read_station_table(root / "pm25_ground.txt")
    missing = _read_station_table(root / "pm25_missing.txt")
    if list(ground.columns) != list(missing.columns) or not ground.index.equals(missing.index):
        raise ValueError(f"{root}: pm25_ground.txt and pm25_missing.txt must have the same datetimes and stations")
    extra = missing.notna() & ground.isna()
    if extra.to_numpy().any():
        count = int(extra.to_numpy().sum())
        raise ValueError(f"{root}: pm25_missing.txt has {count} values where pm25_ground.txt has none")
    return ground, missing


def pm25_protocol(ground: pd.DataFrame, missing: pd.DataFrame, *, valid_index: int = 0) -> dict:
    """CSDI's PM2.5 protocol (see the module docstring): the months of each part, the normaliser, and per month
    the observed / target masks (bool DataFrames) beside the z-scored values (0 where unobserved)."""
    if not 0 <= valid_index < len(PM25_TRAIN_MONTHS):
        raise ValueError(f"valid_index: expected 0..{len(PM25_TRAIN_MONTHS) - 1}, got {valid_index}")
    months = ground.index.month
    normaliser = ground[~np.isin(months, PM25_TEST_MONTHS)].describe()
    mean, std = normaliser.loc["mean"].to_numpy(), normaliser.loc["std"].to_numpy()
    if not (np.isfinite(std).all() and (std > 0).all()):
        raise ValueError("ground: every station needs at least two distinct values outside the test months")
    valid = (PM25_TRAIN_MONTHS[valid_index],)
    train = tuple(m for m in PM25_TRAIN_MONTHS if m not in valid)
    observed = ground.notna()
    z = ((ground.fillna(0.0) - mean) / std).where(observed, 0.0)
    return {
        "train_months": train,
        "valid_months": valid,
        "test_months": PM25_TEST_MONTHS,
        "mean": mean,
        "std": std,
        "z": z,
        "observed": observed,
        "target": observed & missing.isna(),
    }


def read_long_csv(path: str | Path, *, freq: str | None = None) -> tuple[list[dict], str]:
    """(entries, freq) from a long-format CSV (see the module docstring); `freq` default: inferred per item."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data.root: {path}: no such file (expected a long-format CSV)")
    frame = pd.read_csv(path)
    missing = [c for c in ("item_id", "timestamp") if c not in frame.columns]
    value_columns = [c for c in frame.columns if c not in ("item_id", "timestamp")]
    if missing or not value_columns:
        raise ValueError(
            f"{path}: expected columns item_id, timestamp and at least one value column, got {list(frame.columns)}"
        )
    for column in value_columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise ValueError(f"{path}: column {column!r}: expected numbers (empty = missing)")
    try:
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], format="mixed")
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: timestamp: not a date-time column ({e})") from None
    entries, freqs = [], set()
    for item, rows in frame.groupby("item_id", sort=True):
        rows = rows.sort_values("timestamp")
        if rows["timestamp"].duplicated().any():
            when = rows["timestamp"][rows["timestamp"].duplicated()].iloc[0]
            raise ValueError(f"{path}: item {item!r} has two rows at {when}")
        f = freq or (pd.infer_freq(pd.DatetimeIndex(rows["timestamp"])) if len(rows) >= 3 else None)
        if f is None:  # irregular: the smallest step, if every step is a multiple of it
            steps = rows["timestamp"].diff().dropna()
            if steps.empty or (steps % steps.min() != pd.Timedelta(0)).any():
                raise ValueError(f"{path}: item {item!r}: cannot infer a regular frequency; pass freq")
            f = pd.tseries.frequencies.to_offset(steps.min()).freqstr
        grid = pd.date_range(rows["timestamp"].iloc[0], rows["timestamp"].iloc[-1], freq=f)
        on_grid = rows.set_index("timestamp")[value_columns].reindex(grid)
        if len(on_grid.index.intersection(pd.DatetimeIndex(rows["timestamp"]))) != len(rows):
            raise ValueError(f"{path}: item {item!r}: timestamps off the {f} grid")
        target = on_grid.to_numpy(dtype=np.float64).T  # (K, T)
        entries.append({"start": pd.Period(grid[0], freq=f), "target": target[0] if len(value_columns) == 1 else target,
                        "item_id": str(item)})  # fmt: skip
        freqs.add(pd.Period(grid[0], freq=f).freqstr)
    if len(freqs) > 1:
        raise ValueError(f"{path}: the items have different frequencies {sorted(freqs)}; pass freq")
    return entries, freqs.pop()


def read_jsonlines(path: str | Path, freq: str) -> list[dict]:
    """gluonts entries from a JSON-lines file (see the module docstring) at frequency `freq`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data.root: {path}: no such file (expected gluonts JSON lines)")
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{number}: not JSON ({e.msg})") from None
        if not isinstance(obj, dict) or "start" not in obj or "target" not in obj:
            raise ValueError(f"{path}:{number}: expected an object with 'start' and 'target'")
        try:
            target = np.array(
                [[np.nan if v is None else float(v) for v in row] for row in obj["target"]]
                if obj["target"] and isinstance(obj["target"][0], list)
                else [np.nan if v is None else float(v) for v in obj["target"]],
                dtype=np.float64,
            )
        except (TypeError, ValueError):
            raise ValueError(f"{path}:{number}: target: expected numbers, null or 'NaN'") from None
        try:
            start = pd.Period(obj["start"], freq=freq)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}:{number}: start: {obj['start']!r} is not a date at {freq} ({e})") from None
        entries.append({"start": start, "target": target, "item_id": str(obj.get("item_id", number - 1))})
    if not entries:
        raise ValueError(f"{path}: no entries")
    return entries


def pm25_windows(
    protocol: dict, months: tuple[int, ...], length: int, *, test: bool = False, patterns: bool = False
) -> dict[str, torch.Tensor]:
    """Windows (N, K, length) inside each of `months` of a pm25_protocol: stride 1 for training; with `test`,
    CSDI's evaluation windows (stride `length`, the last one ending at the month's end) with "target" (the
    missing file's hidden entries) and "scored" (False on the steps a last window shares with the one before).

    With `patterns` (training windows), each window also gets "pattern": the observed mask of a window from a
    month in PM25_PATTERN_MONTHS, the n-th window the n-th of those in turn (CSDI's hist_mask). Months 1, 4, 7
    and 10 never give patterns: the missing file's test patterns were made from them."""
    z, observed, target = (protocol[k].to_numpy() for k in ("z", "observed", "target"))
    month_of = protocol["z"].index.month
    parts: dict[str, list[np.ndarray]] = {"values": [], "observed": [], "target": [], "scored": []}
    window_month: list[int] = []
    for month in months:
        rows = np.flatnonzero(month_of == month)
        if len(rows) < length:
            raise ValueError(f"data.window: month {month} has {len(rows)} hours, fewer than the window of {length}")
        if test:
            starts = list(range(0, len(rows) - length + 1, length))
            if len(rows) % length:
                starts.append(len(rows) - length)
        else:
            starts = list(range(len(rows) - length + 1))
        for k, start in enumerate(starts):
            idx = rows[start : start + length]
            scored = np.ones((z.shape[1], length), bool)
            if test and k and start < starts[k - 1] + length:  # overlaps the previous window: score the rest only
                scored[:, : starts[k - 1] + length - start] = False
            for key, arr in (("values", z), ("observed", observed), ("target", target)):
                parts[key].append(arr[idx].T)
            parts["scored"].append(scored)
            window_month.append(month)
    out = {k: torch.as_tensor(np.stack(v)) for k, v in parts.items()}
    out["values"] = out["values"].float()
    if test:
        return out
    train = {"values": out["values"], "observed": out["observed"]}
    if patterns:
        givers = np.flatnonzero(np.isin(window_month, PM25_PATTERN_MONTHS))
        if len(givers) == 0:
            raise ValueError(
                f"task.strategy: historical patterns come from months {PM25_PATTERN_MONTHS}, "
                f"and the training months {months} hold none of them"
            )
        train["pattern"] = out["observed"][givers[np.arange(len(window_month)) % len(givers)]]
    return train
