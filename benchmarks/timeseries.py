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
from omnidiffusion.timeseries.evaluation import score_imputation
from omnidiffusion.timeseries.forecasting import SeasonalNaive, gluonts_scores, rolling_dataset, table_to_dataset
from omnidiffusion.timeseries.panel import PANEL, load_panel
from omnidiffusion.timeseries.pipeline import Imputer
from omnidiffusion.timeseries.settings import load_timeseries_config
from omnidiffusion.timeseries.training import train

ROOT = Path(__file__).resolve().parents[1]
RATES = (0.1, 0.5, 0.9)


def imputation(args, work: Path) -> dict:
    config = load_timeseries_config("default", args.set)
    t0 = time.perf_counter()
    result = train(config, work / "imputer", resume=False)
    train_s = time.perf_counter() - t0
    imputer = Imputer.from_pretrained(work / "imputer")
    frame = load_bundled("macrodata")
    values, observed = as_array(frame)
    split = time_split(len(frame), config.data.train_fraction)
    scaler = Scaler.fit(values[:split], observed[:split])
    z = scaler.transform(values, observed)
    test = make_windows(z[split:], observed[split:], config.data.window, args.test_stride)
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
        "settings": {"model": vars(config.model), "data": vars(config.data), "train_steps": config.train.steps},
    }


def panel(args, work: Path, results: Path) -> dict:
    """The default config on every panel table (and macrodata) under the official CSDI test protocol."""
    out: dict = {"datasets": {}}
    path = results / "timeseries_panel.json"
    names = args.datasets
    for name in names:
        t0, c0 = time.perf_counter(), time.process_time()
        frame = load_bundled("macrodata") if name == "macrodata" else load_panel(name)
        config = load_timeseries_config("default", args.set)
        config.train.progress = False
        result = train(config, work / name, table=frame, resume=False)
        train_s, train_c = time.perf_counter() - t0, time.process_time() - c0
        imputer = Imputer.from_pretrained(work / name)
        values, observed = as_array(frame)
        split = time_split(len(frame), config.data.train_fraction)
        scaler = Scaler.fit(values[:split], observed[:split])
        z = scaler.transform(values, observed)
        L = config.data.window
        start = split - L // 2  # official CSDI protocol: test windows from t_train - L/2, stride 1
        test = make_windows(z[start:], observed[start:], L, 1)
        rows = []
        for rate in RATES:
            for seed in args.seeds:
                for method_name, scores in score_imputation(imputer, test, rate, seed, n_samples=args.samples).items():
                    rows.append(
                        {"rate": rate, "seed": seed, "method": method_name.replace("csdi dpm++2m 10", "ours"), **scores}
                    )
        out["datasets"][name] = {
            "shape": list(frame.shape),
            "train_rows": split,
            "test_windows": int(test["values"].shape[0]),
            "validation": result.validation,
            "train_steps": result.step,
            "train_seconds": train_s,
            "train_cpu_seconds": train_c,
            "wall_seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0,
            "rows": rows,
        }
        path.write_text(json.dumps({"panel": out, "partial": True}, indent=2, default=float) + "\n")
        print(name, summarise(rows).round(3).to_string(), flush=True)
    out["settings"] = {"model": vars(load_timeseries_config("default", args.set).model)}
    return out


def panel_markdown(record: dict) -> str:
    data = record["panel"]["datasets"]
    lines = [
        "## Time series: the panel (data sets nobody tuned on)",
        "",
        "Default config (`omnidiffusion-timeseries train --config default --set data.source=...`: 1500 steps, "
        "the last 20% of the training range held out to select the checkpoint, median_share and spread) on each "
        "table; first 70% of time trains, z-units of that part; test windows L = 16, stride 1, from t_train - 8 "
        f"(the official CSDI protocol), hidden entries drawn per window with mask seeds {record['seeds']}, "
        f"{record['samples']} samples, dpm++2m 10 steps. CRPS = CSDI's 19-quantile CRPS / sum |y|, MAE of the "
        "median; mean ± sd over the mask seeds. **bold**: ours below linear interpolation.",
        "",
        "| data set (T x K) | hidden | ours CRPS | linear CRPS | mean imp. CRPS | ours MAE | linear MAE "
        "| mean imp. MAE | ours 90% cov. |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    met = {"crps": [], "mae": []}
    for name, d in data.items():
        df = pd.DataFrame(d["rows"])
        g = df.groupby(["rate", "method"])[["crps", "mae", "coverage_90"]]
        m, sd = g.mean(), g.std()
        for rate in RATES:
            o, li, me = (m.loc[(rate, k)] for k in ("ours", "linear interpolation", "mean imputation"))
            so, sl, sm_ = (sd.loc[(rate, k)] for k in ("ours", "linear interpolation", "mean imputation"))
            win_c, win_m = o.crps < li.crps, o.mae <= li.mae * (1 + 1e-5) + 1e-6  # float32 rounding
            met["crps"].append(win_c)
            if rate < 0.9:
                met["mae"].append(win_m)
            bc = "**" if win_c else ""
            bm = "**" if o.mae < li.mae - 5e-4 else ""  # median_share 0 gives linear's MAE to float rounding
            lines.append(
                f"| {name} ({d['shape'][0]} x {d['shape'][1]}) | {rate:.0%} | {bc}{o.crps:.3f} ± {so.crps:.3f}{bc} "
                f"| {li.crps:.3f} ± {sl.crps:.3f} | {me.crps:.3f} ± {sm_.crps:.3f} "
                f"| {bm}{o.mae:.3f} ± {so.mae:.3f}{bm} "
                f"| {li.mae:.3f} ± {sl.mae:.3f} | {me.mae:.3f} ± {sm_.mae:.3f} | {o.coverage_90:.2f} |"
            )
    lines += [
        "",
        f"Targets: CRPS below linear interpolation on every data set at 10/50/90%: {sum(met['crps'])} of "
        f"{len(met['crps'])} cells; MAE not above it at 10% and 50%: {sum(met['mae'])} of {len(met['mae'])}.",
        "",
        "What `train` selected on each validation part (never the test part):",
        "",
        "| data set | step | median_share | spread | validation CRPS ours / linear (10%, 50%, 90%) | beats linear "
        "| train CPU s | total CPU s | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, d in data.items():
        v = d["validation"]
        if v is None:
            lines.append(
                f"| {name} | - | - | - | no validation part | - | {d['train_cpu_seconds']:.0f} "
                f"| {d['cpu_seconds']:.0f} | {d['wall_seconds']:.0f} |"
            )
            continue
        pr = ", ".join(f"{x['crps']:.3f} / {x['linear_crps']:.3f}" for x in v["per_rate"].values())
        lines.append(
            f"| {name} | {v['step']} | {v['median_share']:g} | {v['spread']:g} | {pr} | "
            f"{'yes' if v['beats_linear'] else 'no'} | {d['train_cpu_seconds']:.0f} | {d['cpu_seconds']:.0f} "
            f"| {d['wall_seconds']:.0f} |"
        )
    lines += [
        "",
        f"Wall time {record['wall_seconds'] / 60:.1f} min, process CPU time {record['cpu_seconds'] / 60:.1f} min "
        f"({record['machine']}, torch threads 1; the wall time is longer when other jobs share the cores).",
        "",
        f"Command: `{record['command']}`",
        "",
    ]
    return "\n".join(lines)


def forecasting(args, work: Path) -> dict:
    config = load_timeseries_config("forecast", args.set_forecast)
    frame = load_bundled("macrodata")
    values, observed = as_array(frame)
    split = time_split(len(frame), config.data.train_fraction)
    scaler = Scaler.fit(values[:split], observed[:split])
    zframe = pd.DataFrame(scaler.transform(values), index=frame.index, columns=frame.columns)
    train_ds, _ = table_to_dataset(zframe, config.data.train_fraction)
    H = config.task.horizon
    t0 = time.perf_counter()
    predictor = CSDIEstimator(H, config.data.window - H, config, out_dir=work / "forecaster").train(train_ds)
    train_s = time.perf_counter() - t0
    ends = list(range(split + H, len(frame) + 1, H))  # every forecast window lies in the test part
    test_ds = rolling_dataset(zframe, ends)
    from gluonts.evaluation import make_evaluation_predictions

    out = {}
    t1 = time.perf_counter()
    for method, steps in (("ddpm", 50), ("dpm++2m", 10)):
        predictor.config.sampler.method, predictor.config.sampler.steps = method, steps
        fc, ts = make_evaluation_predictions(test_ds, predictor, num_samples=args.samples)
        out[f"csdi {method} {steps}"] = gluonts_scores(list(fc), list(ts), True)
    fc, ts = make_evaluation_predictions(test_ds, SeasonalNaive(H, 4), num_samples=1)
    out["seasonal naive (4)"] = gluonts_scores(list(fc), list(ts), True)
    return {
        "train_seconds": train_s,
        "sample_seconds": time.perf_counter() - t1,
        "origins": len(ends),
        "horizon": H,
        "context": config.data.window - H,
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
    config = load_timeseries_config("paper")
    frame = load_bundled("macrodata")
    values, observed = as_array(frame)
    scaler = Scaler.fit(values, observed)
    windows = make_windows(scaler.transform(values, observed), observed, config.data.window, 1)
    net = config.build_net(values.shape[1]).to(device)
    task = config.build_task()
    opt = torch.optim.Adam(net.parameters(), lr=config.train.lr, weight_decay=1e-6)
    B = config.train.batch_size
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
    n_samples = config.sampler.samples
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
        "batch_size": config.train.batch_size,
        "train_steps": steps,
        "train_steps_per_s": steps / train_s,
        "samples_per_s": rates,
        "sampling": f"{n_samples} samples per window, {B} windows of 12 x 16, batched in one call",
        "peak_gpu_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "amp": "bf16" if device.type == "cuda" else "none",
        "config": "paper",
        "settings": {"model": vars(config.model), "schedule": vars(config.schedule)},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "timeseries_gpu.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def write_combined(results: Path) -> None:
    """benchmarks/results/timeseries.md: the panel first, then the macrodata imputation/forecasting parts."""
    parts = [(results / "timeseries_panel.md").read_text()] if (results / "timeseries_panel.md").is_file() else []
    files = [results / f"timeseries_{p}.json" for p in ("imputation", "forecasting")]
    if all(f.is_file() for f in files):
        imp, fc = (json.loads(f.read_text()) for f in files)
        old = markdown(
            {
                "imputation": imp["imputation"],
                "forecasting": fc["forecasting"],
                "wall_seconds": imp["wall_seconds"] + fc["wall_seconds"],
                "cpu_seconds": imp.get("cpu_seconds", float("nan")) + fc.get("cpu_seconds", float("nan")),
                "peak_rss_mb": max(imp["peak_rss_mb"], fc["peak_rss_mb"]),
                "machine": imp["machine"],
                "protocol": imp["protocol"],
                "command": "; ".join(sorted({imp["command"], fc["command"]})),
            }
        )
        if "val_fraction" not in json.dumps(imp["imputation"].get("settings", {})):
            title = "## Time series: macrodata (measured with the defaults before issue 25)"
            old = old.replace("## Time series", title, 1)
        parts.append(old)
    (results / "timeseries.md").write_text("\n".join(parts))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--test-stride", type=int, default=4)
    p.add_argument("--dpm-steps", type=int, nargs="+", default=[5, 10, 20])
    p.add_argument("--set", action="append", default=[], help="override of the default (imputation) config")
    p.add_argument("--set-forecast", action="append", default=[], help="override of the forecast config")
    p.add_argument("--part", choices=("panel", "all", "imputation", "forecasting"), default="panel")
    p.add_argument("--merge", nargs="+", default=None, help="join timeseries_panel.json files of earlier runs")
    p.add_argument("--datasets", nargs="+", default=[*PANEL, "macrodata"], choices=[*PANEL, "macrodata"])
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
    if args.merge:  # runs of --datasets subsets (e.g. in parallel processes) joined into one report
        records = [json.loads(Path(f).read_text()) for f in args.merge]
        complete = [r for r in records if "machine" in r]  # a run killed early has only its finished data sets
        record = {**(complete or records)[0], "panel": {"datasets": {}}}
        for r in records:
            record["panel"]["datasets"].update(r["panel"]["datasets"])
        # the runs went side by side: wall time is the longest run's, CPU time the sum over data sets
        record["wall_seconds"] = max(sum(d["wall_seconds"] for d in r["panel"]["datasets"].values()) for r in records)
        record["cpu_seconds"] = sum(d["cpu_seconds"] for d in record["panel"]["datasets"].values())
        # runs stopped after their last finished data set carry no run metadata: the merging command's is used
        record.setdefault("seeds", args.seeds)
        record.setdefault("samples", args.samples)
        record.setdefault("machine", common["machine"])
        commands = [c["command"] for c in complete] or [common["command"]]
        record["command"] = "; ".join(commands) + (" (joined with --merge)" if complete else "")
        (results / "timeseries_panel.json").write_text(json.dumps(record, indent=2, default=float) + "\n")
        (results / "timeseries_panel.md").write_text(panel_markdown(record))
        write_combined(results)
        print(panel_markdown(record))
        return 0
    if args.part == "panel":
        t_part, c_part = time.perf_counter(), time.process_time()
        with tempfile.TemporaryDirectory(prefix="ts-panel-") as tmp:
            out = panel(args, Path(tmp), results)
        record = {
            "panel": out,
            "wall_seconds": time.perf_counter() - t_part,
            "cpu_seconds": time.process_time() - c_part,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "seeds": args.seeds,
            "samples": args.samples,
            **common,
        }
        (results / "timeseries_panel.json").write_text(json.dumps(record, indent=2, default=float) + "\n")
        (results / "timeseries_panel.md").write_text(panel_markdown(record))
        write_combined(results)
        print(panel_markdown(record))
        return 0
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
        write_combined(results)
        print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
