"""`omnidiffusion-timeseries train | impute | forecast | evaluate` (parse, load config, wire; no logic).

    omnidiffusion-timeseries train --config default --out runs/macro                  # imputer on macrodata
    omnidiffusion-timeseries train --config forecast --out runs/fc                    # forecaster (gluonts)
    omnidiffusion-timeseries impute --checkpoint runs/macro --csv gaps.csv --out filled.csv --plot fan.png
    omnidiffusion-timeseries forecast --checkpoint runs/fc --csv history.csv --out next.csv --plot fan.png
    omnidiffusion-timeseries evaluate --checkpoint runs/macro --csv table.csv --missing-rate 0.5 --seed 0
    omnidiffusion-timeseries evaluate --checkpoint runs/fc --csv table.csv --task forecast --horizon 4

`impute`, `forecast` and `evaluate` take their sampler settings from the checkpoint; `--set sampler.x=...`
(or a TOML file with a [sampler] table) overrides them. They run on `--device` (auto: cuda when available).
Bad input ends a command with one line `omnidiffusion-timeseries CMD: error: ...` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from omnidiffusion.core.cli import AppCLI, add_device_argument, as_flags, count_arg, number_arg, output_file, print_json
from omnidiffusion.core.io import read_pretrained_config

from .evaluation import evaluate_forecast, evaluate_imputation
from .settings import SamplerConfig, check_sampler_value

PACKAGE = "omnidiffusion.timeseries"


@dataclass
class SamplerOverrides:
    """Sampler settings to override; None keeps the checkpoint's value."""

    n_samples: int | None = None
    method: str | None = None
    steps: int | None = None
    grid: str | None = None
    batch_size: int | None = None
    seed: int | None = None
    median_share: float | None = None
    spread: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) is not None:
                check_sampler_value(f.name, getattr(self, f.name))


@dataclass
class UseConfig:
    """Config of the commands that use a trained checkpoint: only sampler overrides."""

    sampler: SamplerOverrides = field(default_factory=SamplerOverrides)


def _sampler(checkpoint_sampler: SamplerConfig, overrides: SamplerOverrides) -> SamplerConfig:
    changes = {k: v for k, v in asdict(overrides).items() if v is not None}
    return replace(checkpoint_sampler, **changes)


# The Python API names its own parameters; on the command line the same mistake is reported under the flag.
_FLAGS = {
    "data": "--csv",
    "frame": "--csv",
    "imputer": "--checkpoint",
    "predictor": "--checkpoint",
    "missing_rate": "--missing-rate",
    "seed": "--seed",
    "stride": "--stride",
    "horizon": "--horizon",
    "season_length": "--season",
    "windows": "--windows",
}


def run_train(args: argparse.Namespace, settings) -> None:
    from .estimator import CSDIEstimator
    from .forecasting import table_to_dataset
    from .pipeline import train_imputer, validation_message

    if settings.task.task == "forecast":
        from .data import load_table

        H, L = settings.task.horizon, settings.data.window
        if H >= L:  # the window is context + horizon; the context needs one step at least
            raise ValueError(f"task.horizon: expected fewer steps than data.window = {L}, got {H}")
        table = load_table(settings.data.source, "data.source")
        dataset, _ = table_to_dataset(table, settings.data.train_fraction)
        estimator = CSDIEstimator(
            settings.task.horizon,
            settings.data.window - settings.task.horizon,
            settings,
            out_dir=args.out,
            stride=settings.data.stride,
        )
        estimator.train(dataset)
        summary = None
    else:
        summary = train_imputer(settings, args.out).validation
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        if settings.task.task != "forecast":
            print(validation_message(summary))
        print(f"wrote {args.out}")


def _load_model(checkpoint: str, config: UseConfig, device: torch.device):
    from .estimator import CSDIPredictor
    from .pipeline import Imputer

    if not Path(checkpoint).is_dir():
        raise FileNotFoundError(f"--checkpoint: no such folder {checkpoint} (expected one written by `train`)")
    try:
        kind = read_pretrained_config(checkpoint)["metadata"].get("kind", "")
        if kind == "csdi-imputer":
            model = Imputer.from_pretrained(checkpoint, device=device)
        elif kind == "csdi-forecaster":
            model = CSDIPredictor.from_pretrained(checkpoint, device=device)
        else:
            raise ValueError(f"{checkpoint}: not a CSDI checkpoint (metadata kind {kind!r})")
    except FileNotFoundError as e:  # config.json or model.safetensors missing
        raise FileNotFoundError(f"--checkpoint: {e}") from None
    except ValueError as e:
        raise ValueError(f"--checkpoint: {e}") from None
    model.settings.sampler = _sampler(model.settings.sampler, config.sampler)
    return model


def run_impute(args: argparse.Namespace, config: UseConfig) -> None:
    from .data import read_csv
    from .pipeline import Imputer
    from .plots import fan_chart

    output_file(args.out, "--out")
    output_file(args.plot, "--plot")
    imputer = _load_model(args.checkpoint, config, args.device)
    if not isinstance(imputer, Imputer):
        raise ValueError(f"--checkpoint: {args.checkpoint} holds a forecaster; use `forecast` (or `evaluate`)")
    frame = read_csv(args.csv, "--csv")
    with as_flags(**_FLAGS):
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


def run_forecast(args: argparse.Namespace, config: UseConfig) -> None:
    from .data import read_csv
    from .estimator import CSDIPredictor
    from .forecasting import forecast_table
    from .plots import fan_chart

    output_file(args.out, "--out")
    output_file(args.plot, "--plot")
    predictor = _load_model(args.checkpoint, config, args.device)
    if not isinstance(predictor, CSDIPredictor):
        raise ValueError(f"--checkpoint: {args.checkpoint} holds an imputer; use `impute` (or `evaluate`)")
    frame = read_csv(args.csv, "--csv")
    with as_flags(**_FLAGS):
        table, samples = forecast_table(predictor, frame)
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


def run_evaluate(args: argparse.Namespace, config: UseConfig) -> None:
    from .data import read_csv

    model = _load_model(args.checkpoint, config, args.device)
    frame = read_csv(args.csv, "--csv")
    with as_flags(**_FLAGS):
        if args.task == "forecast":
            report = evaluate_forecast(
                model, frame, horizon=args.horizon, season_length=args.season, windows=args.windows, seed=args.seed
            )
        else:
            report = evaluate_imputation(
                model, frame, missing_rate=args.missing_rate, seed=args.seed, stride=args.stride
            )
    print_json(report)


def build_cli() -> AppCLI:
    from .pipeline import Settings

    cli = AppCLI(
        "omnidiffusion-timeseries", "CSDI probabilistic imputation and forecasting of time series.", package=PACKAGE
    )
    train = cli.add_command(
        "train", run_train, Settings, help="train an imputer or a forecaster", default_config="default"
    )
    train.add_argument("--out", default="runs/timeseries", help="output directory (checkpoints, final weights)")
    impute = cli.add_command("impute", run_impute, UseConfig, help="fill the NaNs of a wide CSV")
    forecast = cli.add_command("forecast", run_forecast, UseConfig, help="forecast the steps after a wide CSV")
    evaluate = cli.add_command(
        "evaluate", run_evaluate, UseConfig, help="model vs baselines on a wide CSV; prints one JSON object"
    )
    for sub in (impute, forecast, evaluate):
        sub.add_argument("--checkpoint", required=True, help="directory written by `train`")
        sub.add_argument("--csv", required=True, help="wide CSV: rows are time steps, columns features, NaN = missing")
        add_device_argument(sub)
    for sub in (impute, forecast):
        sub.add_argument("--out", required=True, help="output CSV")
        sub.add_argument("--plot", default=None, help="fan-chart PNG path")
    evaluate.add_argument("--task", choices=("impute", "forecast"), default="impute")
    rate = number_arg(0.0, 1.0, low_open=True, high_open=True)
    evaluate.add_argument("--missing-rate", type=rate, default=0.5, help="share of observed entries hidden, in (0, 1)")
    evaluate.add_argument(
        "--seed", type=count_arg(minimum=0), default=0, help="seed of the evaluation mask and of the sampler"
    )
    evaluate.add_argument("--stride", type=count_arg(), default=None, help="window stride (default: the window length)")
    evaluate.add_argument("--horizon", type=count_arg(), default=None, help="forecast: must equal the model's horizon")
    evaluate.add_argument("--season", type=count_arg(), default=None, help="forecast: seasonal-naive season length")
    evaluate.add_argument(
        "--windows", type=count_arg(), default=8, help="forecast: rolling forecast origins at the end"
    )
    return cli


def main(argv: list[str] | None = None) -> int:
    """Console script entry point; the AppCLI turns bad input into one stderr line and exit code 2."""
    return build_cli().main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
