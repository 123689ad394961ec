"""Benchmark: CSDI imputation in 1, 2 and 4 steps by consistency distillation, against its 10-step dpm++2m and
the paper's 50-step chain.

Protocol (the imputation part of benchmarks/timeseries.py): the teacher is the default config trained on
statsmodels macrodata (or --teacher DIR, a folder `train` wrote). It is distilled with
`omnidiffusion.timeseries.pipeline.distil_imputer`: a copy of the teacher read as v, on the teacher's training
windows with fresh random training masks, the loss on the hidden entries only, Heun teacher steps over an
18-interval Karras grid with random shifts, --cd-steps optimiser steps of the teacher's batch size at lr 1e-4.
Test windows of 16 quarters in the last 30% of the time range (stride --test-stride); in each, round(r * 192)
entries hidden at random for r = 10%, 50%, 90% with mask seeds --seeds; --samples samples per window; CRPS
(19 quantiles / sum |y|), MAE of the median and 5-95% coverage over the hidden entries in z-units, for

- the teacher: ddpm over all 50 steps (the paper's chain), dpm++2m at 10 steps (the config's sampler and the
  reference of the target) and dpm++2m at 2 and 4 steps (the teacher at the student's cost);
- the student: method "consistency" at 1, 2 and 4 steps (time-uniform grid), with the teacher's
  validation-chosen median_share / spread.

Quality loss at k steps = (CRPS of the student at k - CRPS of teacher dpm++2m 10) / CRPS of teacher dpm++2m 10,
on the mean CRPS over rates and seeds; the issue's target is <= 5% at 2 steps.
Writes benchmarks/results/timeseries_few_step.json and .md (with --dataset NAME: timeseries_few_step_NAME.*;
the distillation settings were fixed before any of these runs, on the core two-moons benchmark).

    python benchmarks/timeseries_few_step.py                            # CPU, one thread
    python benchmarks/timeseries_few_step.py --teacher runs/macro       # distil an imputer trained before
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from omnidiffusion.timeseries.data import as_array, load_bundled, make_windows, time_split
from omnidiffusion.timeseries.evaluation import score_imputation
from omnidiffusion.timeseries.panel import PANEL, load_panel
from omnidiffusion.timeseries.pipeline import Imputer, distil_imputer
from omnidiffusion.timeseries.settings import load_timeseries_config
from omnidiffusion.timeseries.training import train

ROOT = Path(__file__).resolve().parents[1]
RATES = (0.1, 0.5, 0.9)
TEACHER = (("ddpm", 50), ("dpm++2m", 10), ("dpm++2m", 4), ("dpm++2m", 2))
STUDENT = (("consistency", 1), ("consistency", 2), ("consistency", 4))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", default=None, help="a trained imputer folder (default: train one into --work)")
    p.add_argument("--cd-steps", type=int, default=2000, help="distillation optimiser steps")
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--test-stride", type=int, default=4)
    p.add_argument("--work", default="runs/bench/timeseries_few_step")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--dataset", default="macrodata", choices=["macrodata", *PANEL],
                   help="the table (macrodata, where the distillation ran first, or a panel table of timeseries.py)")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run (not a result)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    work = Path(args.work)
    over = ["train.progress=false"] + (["train.steps=20", "train.ckpt_every=10"] if args.quick else [])
    if args.quick:
        args.cd_steps, args.samples, args.seeds = 10, 5, [0]
    config = load_timeseries_config("default", over)
    frame = load_bundled("macrodata") if args.dataset == "macrodata" else load_panel(args.dataset)
    teacher_dir = Path(args.teacher) if args.teacher else work / "imputer"
    train_s = None
    if args.teacher is None:
        t0 = time.perf_counter()
        train(config, teacher_dir, table=frame, resume=False)
        train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    student = distil_imputer(teacher_dir, work / "cd", table=frame, steps=args.cd_steps, resume=False)
    distil_s = time.perf_counter() - t0
    teacher = Imputer.from_pretrained(teacher_dir)

    values, observed = as_array(frame)
    split = time_split(len(frame), config.data.train_fraction)
    z = teacher.scaler.transform(values, observed)
    test = make_windows(z[split:], observed[split:], config.data.window, args.test_stride)
    rows, t1 = [], time.perf_counter()
    for rate in RATES:
        for seed in args.seeds:
            for who, model, samplers in (("teacher", teacher, TEACHER), ("student", student, STUDENT)):
                scores = score_imputation(model, test, rate, seed, samplers=samplers, n_samples=args.samples)
                for name, s in scores.items():
                    if name.startswith("csdi") or who == "teacher":  # the baselines once
                        rows.append({"rate": rate, "seed": seed, "model": who if name.startswith("csdi") else "-",
                                     "method": name, **s})  # fmt: skip
            print(f"rate {rate} seed {seed} done ({time.perf_counter() - t1:.0f} s)", flush=True)

    def mean_of(model: str, method: str, key: str = "crps", rate: float | None = None) -> float:
        vals = [r[key] for r in rows if (r["model"], r["method"]) == (model, method) and rate in (None, r["rate"])]
        return float(np.mean(vals))

    summary = {}
    for who, samplers in (("teacher", TEACHER), ("student", STUDENT)):
        for method, steps in samplers:
            name = f"csdi {method} {steps}"
            summary[f"{who} {method} {steps}"] = {
                "crps": mean_of(who, name), "mae": mean_of(who, name, "mae"),
                "coverage_90": mean_of(who, name, "coverage_90"),
                "crps_per_rate": {str(r): mean_of(who, name, rate=r) for r in RATES},
            }  # fmt: skip
    for name in ("linear interpolation", "mean imputation"):
        summary[name] = {"crps": mean_of("-", name), "mae": mean_of("-", name, "mae"),
                         "crps_per_rate": {str(r): mean_of("-", name, rate=r) for r in RATES}}  # fmt: skip
    ref = summary["teacher dpm++2m 10"]["crps"]
    loss = {str(n): 100 * (summary[f"student consistency {n}"]["crps"] - ref) / ref for n in (1, 2, 4)}
    loss_paper = {str(n): 100 * (summary[f"student consistency {n}"]["crps"] - summary["teacher ddpm 50"]["crps"])
                  / summary["teacher ddpm 50"]["crps"] for n in (1, 2, 4)}  # fmt: skip
    result = {
        "benchmark": "timeseries_few_step",
        "dataset": args.dataset,
        "quick": args.quick,
        "summary": summary,
        "crps_loss_pct_vs_teacher_dpm++2m_10": loss,
        "crps_loss_pct_vs_teacher_ddpm_50": loss_paper,
        "target": "<= 5% quality loss at 2 steps (mean CRPS relative to the teacher's dpm++2m 10)",
        "met_at_2_steps": bool(loss["2"] <= 5),
        "rows": rows,
        "distillation": {"steps": args.cd_steps, "lr": 1e-4, "intervals": 18, "solver": "heun", "read_as": "v",
                         "seconds": distil_s},  # fmt: skip
        "teacher": {"folder": str(teacher_dir), "train_seconds": train_s, "train_steps": config.train.steps},
        "protocol": {"samples": args.samples, "seeds": args.seeds, "test_stride": args.test_stride,
                     "test_windows": int(test["values"].shape[0]), "rates": list(RATES)},  # fmt: skip
        "sample_seconds": time.perf_counter() - t1,
        "wall_seconds": time.perf_counter() - t_start,
        "machine": f"{platform.machine()} {platform.processor()} {torch.get_num_threads()} thread(s)",
        "command": "python " + " ".join(["benchmarks/timeseries_few_step.py", *sys.argv[1:]]),
    }
    print(json.dumps({"summary": {k: v["crps"] for k, v in summary.items()}, "loss_pct": loss}, indent=2))
    if args.quick:
        return
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    name = "timeseries_few_step" + ("" if args.dataset == "macrodata" else f"_{args.dataset}")
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown(result))


def markdown(result: dict) -> str:
    s, d, pr = result["summary"], result["distillation"], result["protocol"]
    lines = [
        "## Time series: CSDI imputation in 1, 2 and 4 steps (consistency distillation)",
        "",
        f"Teacher: the default config on {result.get('dataset', 'macrodata')}; distilled in {d['steps']} steps "
        f"({d['seconds']:.0f} s). "
        f"{pr['test_windows']} test windows, {pr['samples']} samples, mask seeds {pr['seeds']}; CRPS in z-units, "
        "mean over seeds.",
        "",
        "| model | sampler | network calls | CRPS 10% | CRPS 50% | CRPS 90% | mean CRPS | MAE | 90% coverage |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in s.items():
        who, _, rest = name.partition(" ") if name.startswith(("teacher", "student")) else ("-", "", name)
        calls = rest.rsplit(" ", 1)[-1] if who != "-" else "-"
        cov = f"{v['coverage_90']:.2f}" if "coverage_90" in v else "-"
        per = " | ".join(f"{v['crps_per_rate'][str(r)]:.3f}" for r in pr["rates"])
        lines.append(f"| {who} | {rest} | {calls} | {per} | {v['crps']:.3f} | {v['mae']:.3f} | {cov} |")
    lines += ["", "Mean-CRPS change of the student against the teacher's dpm++2m 10 (and its 50-step chain):", ""]
    for n, v in result["crps_loss_pct_vs_teacher_dpm++2m_10"].items():
        lines.append(f"- {n} step(s): {v:+.1f}% ({result['crps_loss_pct_vs_teacher_ddpm_50'][n]:+.1f}%)")
    lines += ["", f"Wall time {result['wall_seconds']:.0f} s. Command: `{result['command']}`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
