"""Time series benchmark: CSDI imputation and forecasting on statsmodels macrodata against the baselines.

Imputation (the protocol of the measured reference, docs/timeseries.md): the 12 macrodata series, z-scored with
the statistics of the first 70% of the time range (training part); windows of 16 quarters; training windows with
stride 1 inside the training part; test windows inside the last 30% (stride --test-stride); in every test
window round(r * 192) entries hidden at random for r = 10%, 50%, 90% (mask seeds 0, 1, 2); n samples per
window; CRPS (19 quantiles / sum |y|), MAE of the median and 5-95% coverage in z-units over the hidden
entries; beside linear interpolation and mean imputation on the same masks. Samplers: the paper's ancestral
chain (ddpm, all 50 steps) and dpm++2m with 10 steps for every seed, 5 and 20 steps for the first seed.

Forecasting: CSDIEstimator (gluonts) on the z-scored training part, 12 quarters of context, 4 ahead; rolling
origins every 4 quarters over the test part; gluonts' MultivariateEvaluator (19 quantiles) CRPS-sum and CRPS
beside gluonts' seasonal naive (season 4) through the same evaluator.

    python benchmarks/timeseries.py                      # CPU, writes benchmarks/results/timeseries.{json,md}
    python benchmarks/timeseries.py --gpu-paper-scale --seconds 60 --out DIR   # paper-scale speed on a GPU
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from omnidiffusion.timeseries.data import Scaler, as_array, load_bundled, make_windows, time_split
from omnidiffusion.timeseries.estimator import CSDIEstimator
from omnidiffusion.timeseries.evaluation import _Naive, score_imputation
from omnidiffusion.timeseries.forecasting import gluonts_scores, rolling_dataset, table_to_dataset
from omnidiffusion.timeseries.pipeline import Imputer, load_settings, train_imputer

ROOT = Path(__file__).resolve().parents[1]
RATES = (0.1, 0.5, 0.9)


def imputation(args, work: Path) -> dict:
    settings = load_settings("default", args.set)
    t0 = time.perf_counter()
    result = train_imputer(settings, work / "imputer", resume=False)
    train_s = time.perf_counter() - t0
    imputer = Imputer.from_pretrained(work / "imputer")
    frame = load_bundled("macrodata")
    values, observed = as_array(frame)
    split = time_split(len(frame), settings.data.train_fraction)
    scaler = Scaler.fit(values[:split], observed[:split])
    z = scaler.transform(values, observed)
    test = make_windows(z[split:], observed[split:], settings.data.window, args.test_stride)
    sweep = (("ddpm", 50), *(("dpm++2m", s) for s in args.dpm_steps))  # first seed: every step count
    rows, t1 = [], time.perf_counter()
    for rate in RATES:
        for seed in args.seeds:
            samplers = sweep if seed == args.seeds[0] else (("ddpm", 50), ("dpm++2m", 10))
            for method_name, scores in score_imputation(
                imputer, test, rate, seed, samplers=samplers, n_samples=args.samples
            ).items():
                rows.append({"rate": rate, "seed": seed, "method": method_name, **scores})
            print(f"imputation rate {rate} seed {seed} done ({time.perf_counter() - t1:.0f} s)", flush=True)
    return {
        "train_seconds": train_s,
        "train_steps": result.step,
        "final_loss": result.loss,
        "sample_seconds": time.perf_counter() - t1,
        "test_windows": int(test["values"].shape[0]),
        "train_rows": split,
        "rows": rows,
        "settings": {"model": vars(settings.model), "train_steps": settings.train.steps},
    }


def forecasting(args, work: Path) -> dict:
    settings = load_settings("forecast", args.set_forecast)
    frame = load_bundled("macrodata")
    values, observed = as_array(frame)
    split = time_split(len(frame), settings.data.train_fraction)
    scaler = Scaler.fit(values[:split], observed[:split])
    zframe = pd.DataFrame(scaler.transform(values), index=frame.index, columns=frame.columns)
    train_ds, _ = table_to_dataset(zframe, settings.data.train_fraction)
    H = settings.task.horizon
    t0 = time.perf_counter()
    predictor = CSDIEstimator(H, settings.data.window - H, settings, out_dir=work / "forecaster").train(train_ds)
    train_s = time.perf_counter() - t0
    ends = list(range(split + H, len(frame) + 1, H))  # every forecast window lies in the test part
    test_ds = rolling_dataset(zframe, ends)
    from gluonts.evaluation import make_evaluation_predictions

    out = {}
    t1 = time.perf_counter()
    for method, steps in (("ddpm", 50), ("dpm++2m", 10)):
        predictor.settings.sampler.method, predictor.settings.sampler.steps = method, steps
        fc, ts = make_evaluation_predictions(test_ds, predictor, num_samples=args.samples)
        out[f"csdi {method} {steps}"] = gluonts_scores(list(fc), list(ts), True)
    fc, ts = make_evaluation_predictions(test_ds, _Naive(H, 4), num_samples=1)
    out["seasonal naive (4)"] = gluonts_scores(list(fc), list(ts), True)
    return {
        "train_seconds": train_s,
        "sample_seconds": time.perf_counter() - t1,
        "origins": len(ends),
        "horizon": H,
        "context": settings.data.window - H,
        "scores": out,
    }


def summarise(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    return df.groupby(["rate", "method"])[["crps", "mae", "rmse", "coverage_90"]].agg(["mean", "std"])


def markdown(report: dict) -> str:
    imp, fc = report["imputation"], report["forecasting"]
    df = pd.DataFrame(imp["rows"])
    means = df.groupby(["rate", "method"])[["crps", "mae", "coverage_90"]].mean()
    sds = df.groupby(["rate", "method"])[["crps", "mae"]].std()
    lines = [
        "## Time series",
        "",
        f"CSDI (small default config: {imp['settings']['model']['layers']} layers, "
        f"{imp['settings']['model']['channels']} channels, {imp['train_steps']} steps) on statsmodels "
        f"macrodata, {imp['test_windows']} test windows of 16 quarters in the last 30% of the time range, "
        f"{report['protocol']['samples']} samples, mask seeds {report['protocol']['seeds']} (mean and sd over "
        "seeds). CRPS = CSDI's 19-quantile CRPS normalised by sum |y|; MAE of the median; coverage of the "
        "5-95% interval; all in z-units of the training part.",
        "",
        "| hidden | method | CRPS | MAE | 90% coverage |",
        "|---|---|---|---|---|",
    ]
    for (rate, method), row in means.iterrows():
        sd = sds.loc[(rate, method)]
        lines.append(
            f"| {rate:.0%} | {method} | {row.crps:.3f} ± {sd.crps:.3f} | {row.mae:.3f} ± {sd.mae:.3f} "
            f"| {row.coverage_90:.2f} |"
        )
    lines += [
        "",
        "Reference (official CSDI code, same protocol, 3 training seeds): CRPS 0.091-0.132 / 0.160-0.176 / "
        "0.328-0.377 and MAE 0.268-0.369 / 0.437-0.478 / 0.834-0.962 at 10/50/90%; linear interpolation "
        "CRPS 0.057 / 0.064 / 0.279.",
        "",
        f"Forecasting ({fc['origins']} rolling origins in the test part, context {fc['context']}, horizon "
        f"{fc['horizon']}, gluonts MultivariateEvaluator with 19 quantiles):",
        "",
        "| method | CRPS-sum | CRPS | ND |",
        "|---|---|---|---|",
    ]
    for name, s in fc["scores"].items():
        lines.append(f"| {name} | {s['crps_sum']:.4f} | {s['crps']:.4f} | {s['nd']:.4f} |")
    lines += [
        "",
        f"Wall time {report['wall_seconds'] / 60:.1f} min (imputer training {imp['train_seconds']:.0f} s, "
        f"imputation sampling {imp['sample_seconds']:.0f} s, forecaster training {fc['train_seconds']:.0f} s, "
        f"forecast sampling {fc['sample_seconds']:.0f} s), peak memory {report['peak_rss_mb']:.0f} MB, "
        f"{report['machine']}, torch threads 1. Process CPU time {report['cpu_seconds'] / 60:.1f} min: what the "
        "run costs on a core of its own (the wall time is longer when other jobs share the two cores).",
        "",
        f"Command: `{report['command']}`",
        "",
    ]
    return "\n".join(lines)


def gpu_paper_scale(args) -> None:
    """Train the paper-scale config for --seconds on the device, then time one sampling batch."""
    device = torch.device(args.device if args.device != "cuda" or torch.cuda.is_available() else "cpu")
    settings = load_settings("paper")
    frame = load_bundled("macrodata")
    values, observed = as_array(frame)
    scaler = Scaler.fit(values, observed)
    windows = make_windows(scaler.transform(values, observed), observed, settings.data.window, 1)
    net = settings.build_net(values.shape[1]).to(device)
    task = settings.build_task()
    opt = torch.optim.Adam(net.parameters(), lr=settings.train.lr, weight_decay=1e-6)
    B = settings.train.batch_size
    n = windows["values"].shape[0]
    steps, t0 = 0, time.perf_counter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    while time.perf_counter() - t0 < args.seconds:
        idx = torch.randint(0, n, (B,))
        batch = {k: v[idx].to(device) for k, v in windows.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = task.loss(net, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train_s = time.perf_counter() - t0
    net.eval()
    n_samples = settings.sampler.n_samples
    if device.type == "cpu":  # the CPU check only exercises the code path
        B, n_samples = 2, 4
    values_b = windows["values"][:B].to(device)
    cond = windows["observed"][:B].to(device) & (torch.rand(values_b.shape, device=device) > 0.5)
    rates = {}
    for method, k in (("ddpm", 50), ("dpm++2m", 10)):
        t1 = time.perf_counter()
        task.impute(net, values_b, cond, n_samples=n_samples, method=method, steps=k)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        rates[f"{method} {k} steps"] = B * n_samples / (time.perf_counter() - t1)
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "params": sum(p.numel() for p in net.parameters()),
        "batch_size": settings.train.batch_size,
        "train_steps": steps,
        "train_steps_per_s": steps / train_s,
        "samples_per_s": rates,
        "sampling": f"{n_samples} samples per window, {B} windows of 12 x 16, batched in one call",
        "peak_gpu_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "amp": "bf16" if device.type == "cuda" else "none",
        "config": "paper",
        "settings": {"model": vars(settings.model), "diffusion": vars(settings.diffusion)},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "timeseries_gpu.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--test-stride", type=int, default=4)
    p.add_argument("--dpm-steps", type=int, nargs="+", default=[5, 10, 20])
    p.add_argument("--set", action="append", default=[], help="override of the default (imputation) config")
    p.add_argument("--set-forecast", action="append", default=[], help="override of the forecast config")
    p.add_argument("--part", choices=("all", "imputation", "forecasting"), default="all")
    p.add_argument("--gpu-paper-scale", action="store_true")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--out", default="runs/gpu")
    p.add_argument("--device", default="cuda")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.gpu_paper_scale:
        gpu_paper_scale(args)
        return 0
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    common = {
        "machine": f"{platform.machine()} {torch.get_num_threads()} thread(s), {platform.python_version()}",
        "protocol": {"samples": args.samples, "seeds": args.seeds, "test_stride": args.test_stride},
        "command": "python " + " ".join(["benchmarks/timeseries.py", *sys.argv[1:]]),
    }
    parts = ("imputation", "forecasting") if args.part == "all" else (args.part,)
    with tempfile.TemporaryDirectory(prefix="ts-bench-") as tmp:
        for part in parts:
            t_part, c_part = time.perf_counter(), time.process_time()
            out = imputation(args, Path(tmp)) if part == "imputation" else forecasting(args, Path(tmp))
            record = {
                part: out,
                "wall_seconds": time.perf_counter() - t_part,
                "cpu_seconds": time.process_time() - c_part,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                **common,
            }
            (results / f"timeseries_{part}.json").write_text(json.dumps(record, indent=2, default=float) + "\n")
            print(
                summarise(out["rows"]).round(4).to_string()
                if part == "imputation"
                else json.dumps(out["scores"], indent=1),
                flush=True,
            )
    # The report joins the two parts (they may run as separate processes: --part imputation / --part forecasting).
    files = [results / f"timeseries_{p}.json" for p in ("imputation", "forecasting")]
    if all(f.is_file() for f in files):
        imp, fc = (json.loads(f.read_text()) for f in files)
        report = {
            "imputation": imp["imputation"],
            "forecasting": fc["forecasting"],
            "wall_seconds": imp["wall_seconds"] + fc["wall_seconds"],
            "cpu_seconds": imp.get("cpu_seconds", float("nan")) + fc.get("cpu_seconds", float("nan")),
            "peak_rss_mb": max(imp["peak_rss_mb"], fc["peak_rss_mb"]),
            "machine": imp["machine"],
            "protocol": imp["protocol"],
            "command": "; ".join(sorted({imp["command"], fc["command"]})),
        }
        (results / "timeseries.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
        (results / "timeseries.md").write_text(markdown(report))
        print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
