"""`train(config, out_dir)`: a CSDI imputer or forecaster built from the config and trained with core's `fit`.

    config = load_timeseries_config("default", ["train.steps=2000"])
    result = train(config, "runs/macro")               # task.task = impute: windows of data.source
    print(validation_message(result.validation))       # the selected checkpoint against linear interpolation
    Imputer.from_pretrained("runs/macro").impute(frame_with_nans)

    train(load_timeseries_config("forecast"), "runs/fc")   # task.task = forecast: as CSDIEstimator trains
    CSDIPredictor.from_pretrained("runs/fc")

out_dir receives fit's checkpoints, the final weights with the scaler in config.json and the whole config in
run_config.json (for an imputer with a validation part: with the sampler.median_share / sampler.spread chosen
there), which `from_pretrained` and the inference commands start from.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from omnidiffusion.core.io import save_pretrained, save_run_config
from omnidiffusion.core.training import TrainResult, fit, is_main_process, seed_everything

from .data import Scaler, WindowDataset, as_array, entry_target, last_window, load_table, make_windows, time_split
from .datasets import (
    PHYSIONET_HOURS,
    PHYSIONET_PARAMETERS,
    PM25_TRAIN_MONTHS,
    physionet_protocol,
    physionet_windows,
    pm25_protocol,
    pm25_windows,
    read_jsonlines,
    read_long_csv,
    read_physionet,
    read_pm25,
)
from .forecasting import table_to_dataset
from .selection import SelectingLoss, Validation, validation_starts
from .settings import TimeseriesConfig


@dataclass
class TimeseriesTrainResult(TrainResult):
    """fit's result plus the scaler and, for an imputer, the validation summary of the selected model (None
    without a validation part)."""

    scaler: Scaler | None = None
    validation: dict | None = None


def train(
    config: TimeseriesConfig,
    out_dir: str | Path,
    *,
    resume: bool | None = None,
    table: pd.DataFrame | None = None,
) -> TimeseriesTrainResult:
    """Train on the first `data.train_fraction` of the table's time range (`table`, default `data.source`).

    task.task = "impute": windows of `data.window` steps; with `data.val_fraction` > 0 the last part of the
    training range is held out, the network trains on the rows before it, every checkpoint is scored there
    against linear interpolation (selection.py), and the final weights are the selected checkpoint's, stored
    with the chosen `sampler.median_share` / `sampler.spread`. task.task = "forecast": the table as a gluonts
    dataset through `train_forecaster`. `resume` as in core's fit (None: continue when out_dir has a checkpoint).
    """
    if config.task.task == "forecast":
        H, L = config.task.horizon, config.data.window
        if H >= L:  # the window is context + horizon; the context needs one step at least
            raise ValueError(f"task.horizon: expected fewer steps than data.window = {L}, got {H}")
    if config.task.task == "impute" and config.data.format == "physionet" and table is None:
        return _train_physionet(config, out_dir, resume)
    if config.task.task == "impute" and config.data.format == "pm25" and table is None:
        return _train_pm25(config, out_dir, resume)
    if config.data.format in ("long-csv", "jsonl") and table is None:
        if config.task.task != "forecast":
            raise ValueError(f"data.format: {config.data.format!r} holds gluonts entries, for task.task = 'forecast'")
        return train_forecaster(config, forecast_entries(config), out_dir, resume=resume)
    frame = load_table(config.data.source, "data.source") if table is None else load_table(table, "table")
    if config.task.task == "forecast":
        dataset, _ = table_to_dataset(frame, config.data.train_fraction)
        return train_forecaster(config, dataset, out_dir, resume=resume)
    return _train_imputer(config, frame, out_dir, resume)


def _train_imputer(
    config: TimeseriesConfig, frame: pd.DataFrame, out_dir: str | Path, resume: bool | None
) -> TimeseriesTrainResult:
    values, observed = as_array(frame)
    fraction = config.data.train_fraction
    end = values.shape[0] if fraction >= 1.0 else time_split(values.shape[0], fraction)
    if config.data.window > end:
        raise ValueError(
            f"data.window: expected at most the {end} training time steps of the table "
            f"(data.train_fraction = {config.data.train_fraction:g}), got {config.data.window}"
        )
    L = config.data.window
    scaler = Scaler.fit(values[:end], observed[:end])
    z = scaler.transform(values[:end], observed[:end])
    val_start = _validation_start(end, L, config.data.val_fraction)
    fit_end = end if val_start is None else val_start
    windows = make_windows(z[:fit_end], observed[:fit_end], L, config.data.stride)
    meta = {
        "kind": "csdi-imputer",
        "scaler": scaler.to_dict(),
        "columns": [str(c) for c in frame.columns],
        "train_end": int(end),
    }
    val, where = None, {}
    if val_start is not None:
        starts = _spread(validation_starts(end, val_start, L))  # bounds the cost of each validation
        idx = starts[:, None] + np.arange(L)[None, :]  # (N, L)
        val = {
            "values": torch.as_tensor(z[idx].transpose(0, 2, 1), dtype=torch.float32),
            "observed": torch.as_tensor(observed[:end][idx].transpose(0, 2, 1)),
            "scored": torch.as_tensor(
                np.broadcast_to((idx >= val_start)[:, None, :], (len(starts), values.shape[1], L)).copy()
            ),
        }
        meta["fit_end"] = int(fit_end)
        where = {"rows": [int(val_start), int(end)], "windows": int(len(starts))}
    return _fit_and_select(config, windows, val, scaler, meta, where, out_dir, resume)


def _train_physionet(config: TimeseriesConfig, out_dir: str | Path, resume: bool | None) -> TimeseriesTrainResult:
    """data.format = physionet: CSDI's training stays are the windows (48 hours x 35 parameters); its validation
    stays select the checkpoint, median share and spread; the test fold is never read here."""
    d = config.data
    if d.root is None:
        raise ValueError("data.root: expected the PhysioNet 2012 set-a folder for data.format = 'physionet'")
    if d.window != PHYSIONET_HOURS:
        raise ValueError(f"data.window: PhysioNet stays are {PHYSIONET_HOURS} hours; expected 48, got {d.window}")
    stays = read_physionet(d.root)
    p = physionet_protocol(stays.values, d.missing_ratio, seed=d.split_seed, fold=d.fold)
    windows = physionet_windows(p, p["train"])
    scaler = Scaler(mean=p["mean"], std=p["std"])
    meta = {"kind": "csdi-imputer", "scaler": scaler.to_dict(), "columns": list(PHYSIONET_PARAMETERS)}
    val, where = None, {}
    if d.val_fraction > 0 and len(p["valid"]):
        chosen = p["valid"][_spread(np.arange(len(p["valid"])))]
        val = {
            **physionet_windows(p, chosen),
            "scored": torch.ones(len(chosen), *windows["values"].shape[1:], dtype=bool),
        }
        where = {"stays": [str(stays.ids[i]) for i in chosen], "windows": int(len(chosen))}
    meta["physionet"] = {"stays": len(stays.ids), "train": int(len(p["train"])), "valid": int(len(p["valid"]))}
    return _fit_and_select(config, windows, val, scaler, meta, where, out_dir, resume)


def _train_pm25(config: TimeseriesConfig, out_dir: str | Path, resume: bool | None) -> TimeseriesTrainResult:
    """data.format = pm25: windows of data.window hours (stride data.stride) inside each training month; the
    validation month's windows select the model; the test months are never read here."""
    d = config.data
    if d.root is None:
        raise ValueError("data.root: expected the STMVL SampleData folder (pm25_ground.txt, pm25_missing.txt)")
    ground, missing = read_pm25(d.root)
    p = pm25_protocol(ground, missing, valid_index=PM25_TRAIN_MONTHS.index(d.valid_month))
    historical = config.task.strategy in ("historical", "mix")
    windows = pm25_windows(p, p["train_months"], d.window, patterns=historical)
    if d.stride > 1:
        windows = {k: v[:: d.stride] for k, v in windows.items()}
    scaler = Scaler(mean=p["mean"], std=p["std"])
    meta = {"kind": "csdi-imputer", "scaler": scaler.to_dict(), "columns": [str(c) for c in ground.columns]}
    val, where = None, {}
    if d.val_fraction > 0:
        v = pm25_windows(p, p["valid_months"], d.window, test=True)
        keep = _spread(np.arange(len(v["values"])))
        val = {"values": v["values"][keep], "observed": v["observed"][keep], "scored": v["scored"][keep]}
        where = {"valid_month": d.valid_month, "windows": int(len(keep))}
    return _fit_and_select(config, windows, val, scaler, meta, where, out_dir, resume)


def _spread(items: np.ndarray, most: int = 16) -> np.ndarray:
    """At most `most` entries of `items`, evenly spread (the validation windows scored at every checkpoint)."""
    return items if len(items) <= most else items[np.linspace(0, len(items) - 1, most).round().astype(int)]


def _fit_and_select(
    config: TimeseriesConfig,
    windows: dict[str, torch.Tensor],
    val: dict[str, torch.Tensor] | None,
    scaler: Scaler,
    meta: dict,
    where: dict,
    out_dir: str | Path,
    resume: bool | None,
) -> TimeseriesTrainResult:
    """core's fit on the windows; with validation windows, every checkpoint is scored against linear
    interpolation and the best one (with its median share and spread) becomes the stored model."""
    n_features = int(windows["values"].shape[1])
    train_config = config.train
    if windows["values"].shape[0] < train_config.batch_size:  # a short table: one batch is all its windows
        train_config = replace(train_config, batch_size=int(windows["values"].shape[0]))
    seed_everything(config.train.seed)  # the initial weights (fit seeds only its own loop)
    net = config.build_net(n_features)
    task = config.build_task()
    loss = task.loss
    if val is not None:
        s = config.sampler
        validation = Validation(
            val["values"], val["observed"], val["scored"], n_samples=min(s.samples, 24), method=s.method, steps=s.steps
        )
        make_net = lambda: config.build_net(n_features)  # noqa: E731
        loss = SelectingLoss(task.loss, task, validation, make_net, Path(out_dir), s.batch_size)
    result = fit(
        net, loss, WindowDataset(windows), train_config, out_dir, metadata=meta, resume=resume, run_config=config
    )
    # validation selection runs once, on rank 0 (is_main_process reads torchrun's RANK after fit closed its group)
    if val is None or not is_main_process():
        return TimeseriesTrainResult(**vars(result), scaler=scaler)
    loss.add(result.step, result.final_model)
    best, weights = loss.best()
    chosen = config.build_net(n_features)
    chosen.load_state_dict(weights)
    config = replace(config, sampler=replace(config.sampler, median_share=best["median_share"], spread=best["spread"]))
    linear = loss.linear
    summary = {
        **where,
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
    save_pretrained(chosen, out_dir, metadata={**meta, "validation": summary})
    save_run_config(out_dir, config)
    return TimeseriesTrainResult(**vars(result), scaler=scaler, validation=summary)


def forecast_entries(config: TimeseriesConfig) -> list[dict]:
    """The training entries of data.format long-csv / jsonl: each entry's first data.train_fraction of time."""
    d = config.data
    if d.root is None:
        raise ValueError(f"data.root: expected the file to read for data.format = {d.format!r}")
    if d.format == "jsonl":
        if d.freq is None:
            raise ValueError("data.freq: expected the frequency of the JSON-lines entries (e.g. 'h', 'D', 'Q')")
        entries = read_jsonlines(d.root, d.freq)
    else:
        entries, _ = read_long_csv(d.root, freq=d.freq)
    out = []
    for e in entries:
        target = np.asarray(e["target"])
        n = target.shape[-1]
        end = n if d.train_fraction >= 1.0 else time_split(n, d.train_fraction)
        out.append({**e, "target": target[..., :end]})
    return out


def train_forecaster(
    config: TimeseriesConfig, training_data, out_dir: str | Path, *, resume: bool | None = None
) -> TimeseriesTrainResult:
    """Train a forecaster on the entries of a gluonts dataset (targets (T,) or (K, T), NaN = missing).

    Windows of `data.window` steps every `data.stride` steps are cut from each series (a shorter series gives
    one front-padded window); the forecast is the last `task.horizon` steps of a window. The scaler is fit on
    all observed values of all entries.
    """
    targets = [entry_target(e, "training_data") for e in training_data]
    if not targets:
        raise ValueError("training_data: the dataset is empty")
    K = targets[0].shape[0]
    if any(t.shape[0] != K for t in targets):
        raise ValueError(
            f"training_data: all targets need the same number of features, got {sorted({t.shape[0] for t in targets})}"
        )
    L, H = config.data.window, config.task.horizon
    stacked = np.concatenate(targets, axis=1).T  # (sum T, K)
    observed = ~np.isnan(stacked)
    empty = np.flatnonzero(~observed.any(0))
    if empty.size:
        raise ValueError(f"training_data: features {empty.tolist()} have no observed value in any entry")
    scaler = Scaler.fit(np.where(observed, stacked, 0.0), observed)
    parts = []
    for t in targets:
        if t.shape[1] < L:  # a short series gives one front-padded window
            v, o = last_window(t, L)
            z = scaler.transform(v.T, o.T).T
            parts.append(
                {"values": torch.as_tensor(z[None], dtype=torch.float32), "observed": torch.as_tensor(o[None])}
            )
            continue
        obs = ~np.isnan(t.T)
        parts.append(make_windows(scaler.transform(np.where(obs, t.T, 0.0), obs), obs, L, config.data.stride))
    windows = {k: torch.cat([p[k] for p in parts]) for k in ("values", "observed")}
    seed_everything(config.train.seed)  # the initial weights (fit seeds only its own loop)
    net = config.build_net(K)
    task = config.build_task()
    meta = {
        "kind": "csdi-forecaster",
        "scaler": scaler.to_dict(),
        "prediction_length": H,
        "context_length": L - H,
    }
    result = fit(
        net, task.loss, WindowDataset(windows), config.train, out_dir, metadata=meta, resume=resume, run_config=config
    )
    return TimeseriesTrainResult(**vars(result), scaler=scaler)


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
    part = (
        f"validation rows {summary['rows'][0]}-{summary['rows'][1] - 1}"
        if "rows" in summary
        else f"validation month {summary['valid_month']} ({summary['windows']} windows)"
        if "valid_month" in summary
        else f"validation on {summary['windows']} stays"
    )
    head = (
        f"{part}: selected step {summary['step']}, "
        f"median_share {summary['median_share']:g}, spread {summary['spread']:g}; CRPS ours vs linear "
        f"interpolation {rates}"
    )
    if summary["beats_linear"]:
        return head + " (beats linear interpolation at every rate)"
    return head + (
        " -- WARNING: the model does NOT beat linear interpolation on validation at every rate; "
        "consider linear interpolation for this table"
    )
