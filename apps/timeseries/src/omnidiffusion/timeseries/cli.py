"""`omnidiffusion-timeseries train | distil | impute | forecast | evaluate` (parse, load config, wire; no logic).

    omnidiffusion-timeseries train --config default --out runs/macro                  # imputer on macrodata
    omnidiffusion-timeseries distil --checkpoint runs/macro --out runs/macro-cd       # its 2-step version
    omnidiffusion-timeseries train --config forecast --out runs/fc                    # forecaster (gluonts)
    omnidiffusion-timeseries impute --checkpoint runs/macro --csv gaps.csv --out filled.csv --plot fan.png
    omnidiffusion-timeseries forecast --checkpoint runs/fc --csv history.csv --out next.csv --plot fan.png
    omnidiffusion-timeseries evaluate --checkpoint runs/macro --csv table.csv --missing-rate 0.5
    omnidiffusion-timeseries evaluate --checkpoint runs/fc --csv table.csv --windows 8 --set sampler.seed=1

`impute`, `forecast` and `evaluate` start from the config `train` stored in the checkpoint (run_config.json);
`--set sampler.steps=50` (or any other key) changes it for one run. `evaluate` scores the kind of model the
checkpoint holds (task.task) and seeds its mask with sampler.seed (the samples with sampler.seed + 1).
Bad input ends a command with one line `omnidiffusion-timeseries CMD: error: ...` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from omnidiffusion.core.cli import AppCLI, as_flags, count_arg, number_arg, output_file, print_json
from omnidiffusion.core.io import has_run_config
from omnidiffusion.core.training import is_main_process

from .data import read_csv
from .estimator import CSDIPredictor
from .evaluation import evaluate_forecast, evaluate_imputation, evaluate_physionet, evaluate_pm25
from .pipeline import Imputer, distil_imputer, load_model
from .plots import fan_chart
from .settings import PACKAGE, TimeseriesConfig
from .training import train, validation_message

# The Python API names its own parameters; on the command line the same mistake is reported under the flag.
FLAGS = {
    "data": "--csv",
    "frame": "--csv",
    "imputer": "--checkpoint",
    "predictor": "--checkpoint",
    "missing_rate": "--missing-rate",
    "seed": "sampler.seed",
    "stride": "--stride",
    "horizon": "task.horizon",
    "season_length": "--season",
    "windows": "--windows",
}


def run_train(args: argparse.Namespace, config: TimeseriesConfig) -> None:
    if config.train.device == "auto":  # --set train.device=... stays as given
        config.train.device = str(args.device)
    summary = train(config, args.out, resume=args.resume).validation
    if is_main_process():  # under torchrun only rank 0 reports
        if config.task.task != "forecast":
            print(validation_message(summary))
        print(f"wrote {args.out}")


def _load_model(args: argparse.Namespace, config: TimeseriesConfig) -> Imputer | CSDIPredictor:
    """The checkpoint's imputer or forecaster (by the kind it records) with the run config `config` on --device.

    A checkpoint from before run_config.json starts from the settings its config.json holds, then --set."""
    stored = has_run_config(args.checkpoint)
    try:
        return load_model(
            args.checkpoint,
            device=args.device,
            config=config if stored else None,
            overrides=() if stored else args.overrides,
        )
    except (FileNotFoundError, ValueError) as e:  # config.json, model.safetensors or run_config.json
        raise type(e)(f"--checkpoint: {e}") from None


def run_impute(args: argparse.Namespace, config: TimeseriesConfig) -> None:
    output_file(args.out, "--out")
    output_file(args.plot, "--plot")
    imputer = _load_model(args, config)
    if not isinstance(imputer, Imputer):
        raise ValueError(f"--checkpoint: {args.checkpoint} holds a forecaster; use `forecast` (or `evaluate`)")
    frame = read_csv(args.csv, "--csv")
    with as_flags(**FLAGS):
        result = imputer.impute(frame)
    out = Path(args.out)
    result.median.to_csv(out)
    for q in (0.05, 0.95):
        result.quantiles[q].to_csv(out.with_name(f"{out.stem}_q{round(q * 100):02d}{out.suffix}"))
    if args.plot:
        values = frame.to_numpy(dtype=np.float64)
        fan_chart(
            result.samples,
            np.nan_to_num(values),
            ~np.isnan(values),
            args.plot,
            names=list(frame.columns),
            title="CSDI imputation",
        )
    print(f"wrote {out}")


def run_forecast(args: argparse.Namespace, config: TimeseriesConfig) -> None:
    output_file(args.out, "--out")
    output_file(args.plot, "--plot")
    predictor = _load_model(args, config)
    if not isinstance(predictor, CSDIPredictor):
        raise ValueError(f"--checkpoint: {args.checkpoint} holds an imputer; use `impute` (or `evaluate`)")
    frame = read_csv(args.csv, "--csv")
    with as_flags(**FLAGS):
        table, samples = predictor.forecast_table(frame)
    table.to_csv(args.out)
    if args.plot:
        values = frame.to_numpy(dtype=np.float64)
        hist = np.broadcast_to(np.nan_to_num(values), (samples.shape[0], *values.shape))
        full = np.concatenate([hist, samples], axis=1)
        known = np.concatenate([~np.isnan(values), np.zeros(samples.shape[1:], bool)])
        fan_chart(
            full,
            np.concatenate([np.nan_to_num(values), samples[0]]),
            known,
            args.plot,
            names=list(frame.columns),
            title="CSDI forecast",
        )
    print(f"wrote {args.out}")


def run_evaluate(args: argparse.Namespace, config: TimeseriesConfig) -> None:
    model = _load_model(args, config)
    own = {"physionet": evaluate_physionet, "pm25": evaluate_pm25}
    if not isinstance(model, CSDIPredictor) and model.config.data.format in own and args.csv is None:
        print_json(own[model.config.data.format](model))  # the checkpoint's own test part
        return
    if args.csv is None:
        raise ValueError("--csv: required (only models trained with data.format physionet or pm25 bring test data)")
    frame = read_csv(args.csv, "--csv")
    seed = model.config.sampler.seed
    with as_flags(**FLAGS):
        if isinstance(model, CSDIPredictor):
            report = evaluate_forecast(
                model, frame, horizon=model.config.task.horizon, season_length=args.season, windows=args.windows,
                seed=seed,
            )
        else:
            report = evaluate_imputation(model, frame, missing_rate=args.missing_rate, seed=seed, stride=args.stride)
    print_json(report)


def run_distil(args: argparse.Namespace, config: TimeseriesConfig) -> None:
    if config.train.device == "auto":
        config.train.device = str(args.device)
    table = read_csv(args.csv, "--csv") if args.csv else None
    with as_flags(**FLAGS, teacher_dir="--checkpoint", steps="--distil-steps", lr="--distil-lr"):
        distil_imputer(args.checkpoint, args.out, config=config, table=table, steps=args.distil_steps,
                       lr=args.distil_lr, resume=args.resume)  # fmt: skip
    if is_main_process():
        print(f"wrote {args.out} (a consistency imputer: samples in 2 steps; --set sampler.steps=1 or 4 to change)")


cli = AppCLI(
    "omnidiffusion-timeseries", "CSDI probabilistic imputation and forecasting of time series.", package=PACKAGE
)
cli.add_command(
    "train",
    run_train,
    TimeseriesConfig,
    help="train an imputer or a forecaster (task.task)",
    default_config="default",
    out=("runs/timeseries", "output directory (checkpoints, final weights, run_config.json)"),
    resume=True,
)
_distil = cli.add_command(
    "distil",
    run_distil,
    TimeseriesConfig,
    help="consistency-distil a trained imputer into a 1/2/4-step imputer (on the teacher's training windows)",
    checkpoint="required",
    out=("runs/timeseries-cd", "directory of the distilled imputer (checkpoints, weights, run_config.json)"),
    resume=True,
)
_distil.add_argument("--csv", default=None, help="wide CSV the teacher was trained on (default: its data.source)")
_distil.add_argument("--distil-steps", type=count_arg(), default=2000, help="optimiser steps of the distillation")
_distil.add_argument("--distil-lr", type=float, default=1e-4, help="learning rate of the distillation")
_impute = cli.add_command(
    "impute",
    run_impute,
    TimeseriesConfig,
    help="fill the NaNs of a wide CSV",
    checkpoint="required",
    out=("imputed.csv", "output CSV of the sample median; the 5%% and 95%% quantiles go beside it (<name>_q05, _q95)"),
)
_forecast = cli.add_command(
    "forecast",
    run_forecast,
    TimeseriesConfig,
    help="forecast the steps after a wide CSV",
    checkpoint="required",
    out=("forecast.csv", "output CSV: one row per future step, <column>, <column>_q05, <column>_q95"),
)
_evaluate = cli.add_command(
    "evaluate",
    run_evaluate,
    TimeseriesConfig,
    help="model vs baselines on a wide CSV; prints one JSON object",
    checkpoint="required",
)
for _sub in (_impute, _forecast):
    _sub.add_argument("--csv", required=True, help="wide CSV: rows are time steps, columns features, NaN = missing")
_evaluate.add_argument(
    "--csv", default=None, help="wide CSV to score (not for data.format physionet / pm25 models: their test part)"
)
for _sub in (_impute, _forecast):
    _sub.add_argument("--plot", default=None, help="fan-chart PNG path")
_evaluate.add_argument(
    "--missing-rate",
    type=number_arg(0.0, 1.0, low_open=True, high_open=True),
    default=0.5,
    help="imputer: share of observed entries hidden, in (0, 1)",
)
_evaluate.add_argument(
    "--stride", type=count_arg(), default=None, help="imputer: stride of the evaluation windows (default: the window)"
)
_evaluate.add_argument("--season", type=count_arg(), default=None, help="forecaster: seasonal-naive season length")
_evaluate.add_argument("--windows", type=count_arg(), default=8, help="forecaster: rolling forecast origins at the end")
main = cli.run
