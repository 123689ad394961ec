"""`omnidiffusion-timeseries train | impute | forecast | evaluate` (parse, load config, wire; no logic).

    omnidiffusion-timeseries train --config default --out runs/macro                  # imputer on macrodata
    omnidiffusion-timeseries train --config forecast --out runs/fc                    # forecaster (gluonts)
    omnidiffusion-timeseries impute --checkpoint runs/macro --csv gaps.csv --out filled.csv --plot fan.png
    omnidiffusion-timeseries forecast --checkpoint runs/fc --csv history.csv --out next.csv --plot fan.png
    omnidiffusion-timeseries evaluate --checkpoint runs/macro --csv table.csv --missing-rate 0.5 --seed 0
    omnidiffusion-timeseries evaluate --checkpoint runs/fc --csv table.csv --task forecast --horizon 4

`impute`, `forecast` and `evaluate` take their sampler settings from the checkpoint; `--set sampler.x=...`
(or a TOML file with a [sampler] table) overrides them.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from omnidiffusion.core.cli import AppCLI, print_json
from omnidiffusion.core.io import read_pretrained_config

from .evaluation import evaluate_forecast, evaluate_imputation
from .settings import SamplerConfig

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


@dataclass
class UseConfig:
    """Config of the commands that use a trained checkpoint: only sampler overrides."""

    sampler: SamplerOverrides = field(default_factory=SamplerOverrides)


def _sampler(checkpoint_sampler: SamplerConfig, overrides: SamplerOverrides) -> SamplerConfig:
    changes = {k: v for k, v in asdict(overrides).items() if v is not None}
    return replace(checkpoint_sampler, **changes)


def _kind(directory: str) -> str:
    return read_pretrained_config(directory)["metadata"].get("kind", "")


def run_train(args: argparse.Namespace, settings) -> None:
    from .estimator import CSDIEstimator
    from .forecasting import table_to_dataset
    from .pipeline import train_imputer

    if settings.task.task == "forecast":
        from .data import load_table

        table = load_table(settings.data.source)
        dataset, _ = table_to_dataset(table, settings.data.train_fraction)
        estimator = CSDIEstimator(
            settings.task.horizon,
            settings.data.window - settings.task.horizon,
            settings,
            out_dir=args.out,
            stride=settings.data.stride,
        )
        estimator.train(dataset)
    else:
        train_imputer(settings, args.out)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        print(f"wrote {args.out}")


def _load_model(checkpoint: str, config: UseConfig):
    from .estimator import CSDIPredictor
    from .pipeline import Imputer

    kind = _kind(checkpoint)
    if kind == "csdi-imputer":
        model = Imputer.from_pretrained(checkpoint)
    elif kind == "csdi-forecaster":
        model = CSDIPredictor.from_pretrained(checkpoint)
    else:
        raise ValueError(f"--checkpoint {checkpoint}: not a CSDI checkpoint (kind {kind!r})")
    model.settings.sampler = _sampler(model.settings.sampler, config.sampler)
    return model


def run_impute(args: argparse.Namespace, config: UseConfig) -> None:
    from .data import read_csv
    from .pipeline import Imputer
    from .plots import fan_chart

    imputer = _load_model(args.checkpoint, config)
    if not isinstance(imputer, Imputer):
        raise SystemExit(f"--checkpoint {args.checkpoint}: a forecaster; use `forecast`")
    frame = read_csv(args.csv)
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

    predictor = _load_model(args.checkpoint, config)
    if not isinstance(predictor, CSDIPredictor):
        raise SystemExit(f"--checkpoint {args.checkpoint}: an imputer; use `impute`")
    frame = read_csv(args.csv)
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

    model = _load_model(args.checkpoint, config)
    frame = read_csv(args.csv)
    if args.task == "forecast":
        report = evaluate_forecast(
            model, frame, horizon=args.horizon, season_length=args.season, windows=args.windows, seed=args.seed
        )
    else:
        report = evaluate_imputation(model, frame, missing_rate=args.missing_rate, seed=args.seed, stride=args.stride)
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
    for sub in (impute, forecast):
        sub.add_argument("--out", required=True, help="output CSV")
        sub.add_argument("--plot", default=None, help="fan-chart PNG path")
    evaluate.add_argument("--task", choices=("impute", "forecast"), default="impute")
    evaluate.add_argument("--missing-rate", type=float, default=0.5, help="share of observed entries hidden")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the evaluation mask and of the sampler")
    evaluate.add_argument("--stride", type=int, default=None, help="window stride (default: the window length)")
    evaluate.add_argument("--horizon", type=int, default=None, help="forecast: must equal the model's horizon")
    evaluate.add_argument("--season", type=int, default=None, help="forecast: seasonal-naive season length")
    evaluate.add_argument("--windows", type=int, default=8, help="forecast: rolling forecast origins at the end")
    return cli


def main(argv: list[str] | None = None) -> int:
    """Console script entry point."""
    cli = build_cli()
    try:
        return cli.main(argv)
    except (ValueError, FileNotFoundError) as e:
        print(f"omnidiffusion-timeseries: error: {e}", flush=True)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
