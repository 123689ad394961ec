"""Time series: are the imputer's defaults right on data they were not chosen on? A sweep on validation parts only.

Every variant changes one default of configs/default.toml; each is trained by `train` on the five panel tables
(omnidiffusion.timeseries.panel: danish, interest_inflation, fertility, seasonal, var; never macrodata, where the
defaults were first chosen). `train` holds out the last data.val_fraction of the training range (first 70% of
time) and selects the checkpoint, median_share and spread there; this script reads the selected model's
validation CRPS against linear interpolation at 10/50/90% hidden (`TimeseriesTrainResult.validation`). The test
part of every table (the last 30%, scored by `benchmarks/timeseries.py --part panel`) is never read here.

Score of a variant: the mean over tables and rates of ours / linear validation CRPS (lower is better), and how
many of the 15 (table, rate) cells it wins against interpolation. Two worker processes, one thread each.

    python benchmarks/timeseries_defaults.py       # -> benchmarks/results/timeseries_defaults.{json,md}
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from omnidiffusion.timeseries.panel import PANEL, load_panel
from omnidiffusion.timeseries.settings import load_timeseries_config
from omnidiffusion.timeseries.training import train

ROOT = Path(__file__).resolve().parents[1]
RATES = ("0.1", "0.5", "0.9")
# name -> --set overrides on configs/default.toml; "default" is the config as shipped.
VARIANTS = {
    "default": [],
    "no window scaling": ["task.window_scale=none"],
    "scale_min_known 2": ["task.scale_min_known=2"],
    "known values only as input": ["task.interp_input=observed"],  # CSDI's cond_obs instead of the interpolation
    "x0 prediction": ["task.prediction=x0"],
    "v prediction": ["task.prediction=v"],
    "3000 train steps": ["train.steps=3000"],
    "dpm++2m 20 steps": ["sampler.steps=20"],
    "64 channels": ["model.channels=64"],
}


def run_one(job: tuple[str, str, list[str], str]) -> dict:
    name, variant, overrides, work = job
    torch.set_num_threads(1)
    config = load_timeseries_config("default", [*overrides, "train.progress=false"])
    t0, c0 = time.perf_counter(), time.process_time()
    result = train(config, Path(work) / f"{name}-{variant.replace(' ', '_')}", table=load_panel(name), resume=False)
    v = result.validation
    row = {
        "dataset": name,
        "variant": variant,
        "overrides": overrides,
        "step": v["step"],
        "median_share": v["median_share"],
        "spread": v["spread"],
        "ratio": {r: v["per_rate"][r]["crps"] / v["per_rate"][r]["linear_crps"] for r in RATES},
        "crps": {r: v["per_rate"][r]["crps"] for r in RATES},
        "linear_crps": {r: v["per_rate"][r]["linear_crps"] for r in RATES},
        "wall_seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
    }
    print(f"{name:20s} {variant:20s} " + " ".join(f"{row['ratio'][r]:.3f}" for r in RATES), flush=True)
    return row


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for variant in VARIANTS:
        mine = [r for r in rows if r["variant"] == variant]
        if not mine:
            continue
        ratios = [r["ratio"][k] for r in mine for k in RATES]
        out.append(
            {
                "variant": variant,
                "mean_ratio": statistics.fmean(ratios),
                "worst_ratio": max(ratios),
                "cells_won": sum(x < 1 for x in ratios),
                "cells": len(ratios),
                "per_dataset": {r["dataset"]: statistics.fmean(r["ratio"][k] for k in RATES) for r in mine},
                "cpu_seconds": sum(r["cpu_seconds"] for r in mine),
            }
        )
    return out


def markdown(record: dict) -> str:
    names = [n for n in PANEL if any(r["dataset"] == n for r in record["rows"])]
    lines = [
        "## Time series: the defaults swept on the panel's validation parts",
        "",
        "One default of configs/default.toml changed per row; `train` on each panel table (never macrodata, where the "
        "defaults were first chosen), checkpoint / median_share / spread selected on the last 20% of the training "
        "range; the test parts are not read. Cell: the selected model's validation CRPS / linear interpolation's, "
        "mean over 10/50/90% hidden (lower is better; below 1 beats interpolation).",
        "",
        "| variant | " + " | ".join(names) + " | mean | worst cell | cells won | CPU s |",
        "|---" * (len(names) + 5) + "|",
    ]
    for s in record["summary"]:
        cells = " | ".join(f"{s['per_dataset'][n]:.3f}" if n in s["per_dataset"] else "" for n in names)
        lines.append(
            f"| {s['variant']} | {cells} | **{s['mean_ratio']:.3f}** | {s['worst_ratio']:.3f} | "
            f"{s['cells_won']}/{s['cells']} | {s['cpu_seconds']:.0f} |"
        )
    lines += ["", f"Wall time {record['wall_seconds'] / 60:.1f} min on {record['machine']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), help="subset of the variant names")
    p.add_argument("--datasets", nargs="+", default=list(PANEL), choices=PANEL)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--set", action="append", default=[], help="extra override for every variant (smoke runs)")
    args = p.parse_args(argv)
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        p.error(f"--variants: unknown {sorted(unknown)}; expected some of {list(VARIANTS)}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ts-defaults-") as work:
        jobs = [(n, v, [*args.set, *VARIANTS[v]], work) for v in args.variants for n in args.datasets]
        with mp.get_context("spawn").Pool(args.workers) as pool:
            rows = pool.map(run_one, jobs, chunksize=1)
    record = {
        "rows": rows,
        "summary": summary(rows),
        "wall_seconds": time.perf_counter() - t0,
        "machine": f"{platform.machine()}, {args.workers} worker(s) x 1 thread, torch {torch.__version__}",
    }
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    (results / "timeseries_defaults.json").write_text(json.dumps(record, indent=2, default=float) + "\n")
    (results / "timeseries_defaults.md").write_text(markdown(record))
    print(markdown(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
