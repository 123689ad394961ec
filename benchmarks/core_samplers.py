"""Core samplers side by side with diffusers: PF-ODE endpoint accuracy on exact oracles, and per-step overhead.

Accuracy. Discrete linear VP, T = 1000 (diffusers: beta_schedule="linear", beta 1e-4..0.02, prediction_type=
"epsilon"). The model is an exact oracle from omnidiffusion.core.testing for (a) a 16-D Gaussian with per-dim mean
and std and (b) a 16-D, 4-component Gaussian mixture. Every sampler starts from the same batch of VP states x_T at
t = 1 and is scored by the RMS (over dims and batch) distance of its output to the exact probability-flow ODE
solution at t = 0: Gaussian.ode_endpoint for (a); for (b) a DPM-Solver-3 solve on a log-SNR grid of 2000 steps
down to t = 1e-9 (its convergence, 1000 vs 2000 steps, is measured and reported).

diffusers calls the model with an integer timestep k; the oracle answers with the exact eps at our t = (k + 1)/T
(the DiscreteVP index mapping). Euler and Heun keep their state in VE coordinates x~ = x / alpha: they start from
x_T / alpha(1) and the model sees scale_model_input(x~) = alpha x~. Every scheduler uses timestep_spacing=
"trailing"; our samplers run on our "trailing" grid (identical times, checked below) and on every other grid.
NFE is counted by wrapping the model, in both libraries.

Overhead. A zero-cost model (zeros) on a (64, 3, 32, 32) float32 batch: wall time of a whole sampling call (grid
or set_timesteps included) divided by its number of model evaluations; median over interleaved repeats after
warm-up, at 1 torch thread (add more counts with --threads 1,2 on a quiet machine: on a shared 2-core box the
2-thread runs mostly measure other jobs). Our samplers are also profiled with cProfile.

    python benchmarks/core_samplers.py [--batch 1000] [--repeats 60] [--threads 1]
    python benchmarks/core_samplers.py --markdown-only   # rebuild the tables from the JSON

Writes benchmarks/results/core_samplers.json and the "Core samplers" section of docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import platform
import pstats
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "core_samplers.json"
DOC = ROOT / "docs" / "RESULTS.md"
SECTION = "## Core samplers"

T = 1000
DIM = 16
NFE_TARGETS = (5, 10, 15, 20, 50)
OUR_GRIDS = ("trailing", "time-uniform", "quadratic", "logsnr", "karras")
REF_STEPS = (1000, 2000)
REF_T_MIN = 1e-9
OVERHEAD_SHAPE = (64, 3, 32, 32)
OVERHEAD_STEPS = 50
PROFILE_ROWS_MD = 6

# (row, our method, diffusers scheduler, scheduler kwargs beyond the shared ones)
PAIRS = (
    # clip_sample defaults to True in DDIMScheduler (x0_hat clamped to [-1, 1]); the ODE solution is not clipped.
    ("ddim", "ddim", "DDIMScheduler", {"set_alpha_to_one": True, "steps_offset": 0, "clip_sample": False}),
    (
        "dpm++2m",
        "dpm++2m",
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "final_sigmas_type": "zero"},
    ),
    ("heun", "heun", "HeunDiscreteScheduler", {}),
    ("euler", "ddim", "EulerDiscreteScheduler", {}),
)
VE_SCHEDULERS = ("EulerDiscreteScheduler", "HeunDiscreteScheduler")
# Relative gap below which two errors count as equal (diffusers keeps its tables and some states in float32).
TIE_RTOL = 1e-4


def steps_for(method: str, nfe_target: int) -> int:
    """Intervals N whose NFE is closest to the target without exceeding it (Heun: 2N - 1 in both libraries)."""
    return (nfe_target + 1) // 2 if method == "heun" else nfe_target


def rms(a, b) -> float:
    import torch

    return math.sqrt(torch.mean((a.double() - b.double()) ** 2).item())


def point_stats(x, ref) -> dict:
    """Per-starting-point RMS errors: their batch RMS, median, and the share of the squared error from the worst 1%."""
    import torch

    e2 = ((x.double() - ref.double()) ** 2).reshape(x.shape[0], -1).mean(dim=1)  # (B,)
    worst = e2.sort(descending=True).values[: max(1, x.shape[0] // 100)]
    return {
        "rms": math.sqrt(e2.mean().item()),
        "median_point_rms": math.sqrt(torch.median(e2).item()),
        "worst_1pct_share_of_mse": (worst.sum() / e2.sum()).item(),
    }


class Counted:
    """Wrap a callable and count its calls (one call = one network evaluation)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


# ------------------------------------------------------------------------------------------------ diffusers side


def make_scheduler(name: str, **kwargs):
    import diffusers

    return getattr(diffusers, name)(
        num_train_timesteps=T,
        beta_schedule="linear",
        beta_start=1e-4,
        beta_end=0.02,
        prediction_type="epsilon",
        timestep_spacing="trailing",
        **kwargs,
    )


def run_diffusers(scheduler, model, x_T, steps: int, alpha_1: float):
    """The standard diffusers loop from the VP state x_T at t = 1; returns the final state (x0 at sigma = 0)."""
    scheduler.set_timesteps(steps)
    x = x_T / alpha_1 if type(scheduler).__name__ in VE_SCHEDULERS else x_T
    for k in scheduler.timesteps:
        x_in = scheduler.scale_model_input(x, k)
        x = scheduler.step(model(x_in, k), k, x).prev_sample
    return x


def timestep_model(den):
    """diffusers-style eps model: timestep k answers with the oracle's exact eps at t = (k + 1)/T."""

    def model(x_in, k):
        return den.eps(x_in, (float(k) + 1.0) / T)

    return model


def grid_checks(schedule) -> dict:
    """Our 'trailing' grid vs each scheduler's timesteps, and DDIM's stride-based previous timestep."""
    import torch

    from omnidiffusion.core.timesteps import make_grid

    out = {}
    for steps in sorted({steps_for(m, n) for _, m, _, _ in PAIRS for n in NFE_TARGETS}):
        ours = make_grid(schedule, "trailing", steps)
        row = {}
        for _, _, name, kwargs in PAIRS:
            sch = make_scheduler(name, **kwargs)
            sch.set_timesteps(steps)
            ks = torch.unique_consecutive(sch.timesteps.double())  # Heun repeats interior timesteps
            theirs = torch.cat([(ks + 1.0) / T, torch.zeros(1, dtype=torch.float64)])
            row[name] = bool(theirs.shape == ours.shape and torch.equal(theirs, ours))
        if steps not in NFE_TARGETS:
            out[str(steps)] = row
            continue
        ddim = make_scheduler("DDIMScheduler", set_alpha_to_one=True)
        ddim.set_timesteps(steps)
        ks = [int(k) for k in ddim.timesteps]
        nxt = ks[1:] + [-1]
        prev = [k - T // steps for k in ks]
        bad = [(k, p, n) for k, p, n in zip(ks, prev, nxt, strict=True) if (p if p >= 0 else -1) != n]
        row["ddim_prev_timestep_mismatches"] = [{"t": k, "diffusers_prev": p, "grid_next": n} for k, p, n in bad]
        out[str(steps)] = row
    return out


# ------------------------------------------------------------------------------------------------ accuracy


def datasets():
    import torch

    from omnidiffusion.core.testing import Gaussian, GaussianMixture

    f64 = torch.float64
    g = torch.Generator().manual_seed(0)
    d = torch.arange(DIM, dtype=f64)
    gauss = Gaussian(0.3 + 0.8 * torch.sin(d), torch.logspace(-1.0, 0.0, DIM, dtype=f64))
    means = 1.2 * torch.randn(4, DIM, generator=g, dtype=f64)
    stds = 0.15 + 0.35 * torch.rand(4, DIM, generator=g, dtype=f64)
    mix = GaussianMixture([0.1, 0.2, 0.3, 0.4], means, stds)
    return {
        "gaussian": (gauss, "N(0.3 + 0.8 sin(d), diag(s^2)), s log-spaced 0.1..1, d = 0..15"),
        "mixture": (mix, "4 components, weights 0.1/0.2/0.3/0.4, means 1.2 N(0, I), per-dim stds U(0.15, 0.5), seed 0"),
    }


def reference_solve(den, x_T, steps: int, t_end: float = 0.0):
    """DPM-Solver-3 on a log-SNR grid from t = 1 to REF_T_MIN, then the jump to 0 (or stop at t_end > 0)."""
    from omnidiffusion.core.samplers import sample
    from omnidiffusion.core.timesteps import make_grid

    if t_end > 0:
        grid = make_grid(den.schedule, "logsnr", steps, t_end=t_end)
    else:
        grid = make_grid(den.schedule, "logsnr", steps, t_min=REF_T_MIN)
    return sample(den, x_T, "dpm3", grid=grid)


def accuracy(batch: int, log) -> dict:
    import torch

    from omnidiffusion.core.samplers import nfe, sample
    from omnidiffusion.core.schedules import DiscreteVP
    from omnidiffusion.core.timesteps import make_grid

    schedule = DiscreteVP.linear(T)
    alpha_1 = schedule.alpha(1.0).item()
    x_T = torch.randn(batch, DIM, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = {}
    for data_name, (oracle, description) in datasets().items():
        den = oracle.denoiser(schedule, prediction="eps")
        info: dict = {"data": description}
        t0 = time.perf_counter()
        refs = {n: reference_solve(den, x_T, n) for n in REF_STEPS}
        ref = refs[REF_STEPS[-1]]
        info["reference_self_convergence_rms"] = rms(refs[REF_STEPS[0]], ref)
        # No sampler whose grid ends with the jump t = 1/T -> 0 (returning x0_hat) can beat this floor.
        x_min = reference_solve(den, x_T, REF_STEPS[0], t_end=1.0 / T)
        if data_name == "gaussian":
            exact = oracle.ode_endpoint(x_T, schedule, 1.0, 0.0)
            info["reference"] = "Gaussian.ode_endpoint(x_T, t_start=1, t_end=0) (closed form)"
            info["reference_solver_vs_exact_rms"] = rms(ref, exact)
            info["exact_state_at_1_over_T_vs_solver_rms"] = rms(x_min, oracle.ode_endpoint(x_T, schedule, 1.0, 1 / T))
            ref = exact
        else:
            info["reference"] = f"dpm3, logsnr grid to t={REF_T_MIN:g} then x0_hat, {REF_STEPS[-1]} steps"
        info["final_jump_floor_rms"] = rms(den(x_min, 1.0 / T), ref)
        info["reference_wall_s"] = time.perf_counter() - t0
        log(f"[{data_name}] reference: self-convergence {info['reference_self_convergence_rms']:.2e}")

        rows, ours_cache = [], {}
        for label, method, sched_name, kwargs in PAIRS:
            scheduler = make_scheduler(sched_name, **kwargs)
            for target in NFE_TARGETS:
                steps = steps_for(method, target)
                model = Counted(timestep_model(den))
                theirs = run_diffusers(scheduler, model, x_T, steps, alpha_1)
                grids = {}
                for grid in OUR_GRIDS:
                    key = (method, steps, grid)
                    if key not in ours_cache:
                        counted = oracle.denoiser(schedule, prediction="eps")
                        counted.net = Counted(counted.net)
                        x0 = sample(counted, x_T, method, steps, grid=grid)
                        if counted.net.calls != nfe(method, steps):
                            raise RuntimeError(f"{method}: {counted.net.calls} NFE counted, nfe() says otherwise")
                        ours_cache[key] = point_stats(x0, ref)
                    grids[grid] = ours_cache[key]["rms"]
                rows.append(
                    {
                        "sampler": label,
                        "ours": method,
                        "diffusers": sched_name,
                        "nfe_target": target,
                        "steps": steps,
                        "nfe_ours": nfe(method, steps),
                        "nfe_diffusers": model.calls,
                        "diffusers_rms": rms(theirs, ref),
                        "diffusers_point_stats": point_stats(theirs, ref),
                        "ours_trailing_point_stats": ours_cache[(method, steps, "trailing")],
                        "ours_trailing_rms": grids["trailing"],
                        "ours_rms_by_grid": grids,
                    }
                )
                r = rows[-1]
                best = min(grids, key=grids.get)
                r["ours_best_grid"], r["ours_best_rms"] = best, grids[best]
                r["verdict_trailing"] = verdict(r["ours_trailing_rms"], r["diffusers_rms"])
                r["verdict_best"] = verdict(r["ours_best_rms"], r["diffusers_rms"])
                if sched_name == "DDIMScheduler" and T % steps:
                    # diffusers' stride bug makes its last DDIM step land on table index 0 (t = 1/T), not t = 0:
                    # our trailing grid with that last time, to separate the two effects.
                    g = make_grid(schedule, "trailing", steps)
                    g[-1] = 1.0 / T
                    r["ours_trailing_ending_at_1_over_T_rms"] = rms(sample(den, x_T, "ddim", grid=g), ref)
                log(
                    f"[{data_name}] {label:8s} NFE {r['nfe_ours']:3d}/{r['nfe_diffusers']:3d}  diffusers "
                    f"{r['diffusers_rms']:.3e}  trailing {r['ours_trailing_rms']:.3e}  best {grids[best]:.3e} ({best})"
                )
        info["rows"] = rows
        out[data_name] = info
    return out


def verdict(ours: float, theirs: float) -> str:
    if abs(ours - theirs) <= TIE_RTOL * max(ours, theirs):
        return "tie"
    return "better" if ours < theirs else "worse"


# ------------------------------------------------------------------------------------------------ overhead


def overhead(thread_counts: list[int], repeats: int, warmup: int, log) -> dict:
    """Median wall time per model evaluation of whole sampling calls with a zero-cost model, per thread count."""
    import torch

    from omnidiffusion.core.denoiser import Denoiser
    from omnidiffusion.core.samplers import nfe, sample
    from omnidiffusion.core.schedules import DiscreteVP

    schedule = DiscreteVP.linear(T)
    alpha_1 = schedule.alpha(1.0).item()
    x = torch.randn(OVERHEAD_SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float32)

    def zero_net(x_in, t):
        return torch.zeros_like(x_in)

    den = Denoiser(zero_net, schedule, prediction="eps")
    runs = {}
    for _, method, sched_name, kwargs in PAIRS:
        steps = steps_for(method, OVERHEAD_STEPS)
        scheduler = make_scheduler(sched_name, **kwargs)
        runs[f"ours:{method}"] = (lambda m=method, n=steps: sample(den, x, m, n, grid="trailing"), nfe(method, steps))
        counter = Counted(zero_net)
        run_diffusers(scheduler, counter, x, steps, alpha_1)
        runs[f"diffusers:{sched_name}"] = (
            lambda s=scheduler, n=steps: run_diffusers(s, zero_net, x, n, alpha_1),
            counter.calls,
        )
    per_threads = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        per_threads.append({"threads": threads, **time_runs(runs, repeats, warmup, log)})
    torch.set_num_threads(1)
    return {
        "shape": list(OVERHEAD_SHAPE),
        "dtype": "float32",
        "steps": OVERHEAD_STEPS,
        "repeats": repeats,
        "warmup": warmup,
        "by_threads": per_threads,
        "profile_threads": 1,
        "profile": profile_ours(den, x),
    }


def time_runs(runs: dict, repeats: int, warmup: int, log) -> dict:
    """Wall and process CPU time of every run, interleaved; per-NFE medians and minima, and ours/diffusers ratios.

    On a shared machine the wall median carries other jobs' load. The steadiest comparison is paired: in every
    repeat ours and diffusers run back to back, so the median over repeats of the per-repeat ratio of CPU times
    (which exclude time spent descheduled) cancels most of the load drift.
    """
    import torch

    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    names = list(runs)
    for r in range(warmup + repeats):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate so drift in machine load is shared
        for name in order:
            fn = runs[name][0]
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            w1, c1 = time.perf_counter(), time.process_time()
            if r >= warmup:
                wall[name].append(w1 - w0)
                cpu[name].append(c1 - c0)
    result = {}
    for name, (_, n_eval) in runs.items():
        result[name] = {
            "nfe": n_eval,
            "median_call_s": statistics.median(wall[name]),
            "median_per_nfe_us": 1e6 * statistics.median(wall[name]) / n_eval,
            "min_per_nfe_us": 1e6 * min(wall[name]) / n_eval,
            "iqr_per_nfe_us": 1e6 * iqr(wall[name]) / n_eval,
            "cpu_median_per_nfe_us": 1e6 * statistics.median(cpu[name]) / n_eval,
        }
        log(
            f"[overhead, {torch.get_num_threads()} threads] {name:40s} wall median "
            f"{result[name]['median_per_nfe_us']:7.1f}, min {result[name]['min_per_nfe_us']:7.1f}, cpu "
            f"{result[name]['cpu_median_per_nfe_us']:7.1f} us/NFE ({n_eval} NFE)"
        )
    pairs = []
    for label, method, sched_name, _ in PAIRS:
        ours, theirs = result[f"ours:{method}"], result[f"diffusers:{sched_name}"]
        paired = [
            (a / ours["nfe"]) / (b / theirs["nfe"])
            for a, b in zip(cpu[f"ours:{method}"], cpu[f"diffusers:{sched_name}"], strict=True)
        ]
        q1, q2, q3 = statistics.quantiles(paired, n=4)
        pairs.append(
            {
                "sampler": label,
                "ours": method,
                "diffusers": sched_name,
                "nfe": ours["nfe"],
                "ours_us_per_nfe": ours["median_per_nfe_us"],
                "diffusers_us_per_nfe": theirs["median_per_nfe_us"],
                "ratio": ours["median_per_nfe_us"] / theirs["median_per_nfe_us"],
                "ratio_min": ours["min_per_nfe_us"] / theirs["min_per_nfe_us"],
                "ratio_cpu": ours["cpu_median_per_nfe_us"] / theirs["cpu_median_per_nfe_us"],
                "ratio_cpu_paired_median": q2,
                "ratio_cpu_paired_iqr": [q1, q3],
            }
        )
    return {"runs": result, "pairs": pairs}


def iqr(v: list[float]) -> float:
    q = statistics.quantiles(v, n=4)
    return q[2] - q[0]


def profile_ours(den, x, reps: int = 5, top: int = 12) -> dict:
    """cProfile of our samplers: the functions with the largest own time, per model evaluation."""
    from omnidiffusion.core.samplers import nfe, sample

    out = {}
    for method in ("ddim", "dpm++2m", "heun"):
        steps = steps_for(method, OVERHEAD_STEPS)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(reps):
            sample(den, x, method, steps, grid="trailing")
        prof.disable()
        stats = pstats.Stats(prof, stream=io.StringIO())
        per = reps * nfe(method, steps)
        rows = []
        for (file, line, func), (_, ncalls, tottime, cumtime, _) in stats.stats.items():
            rows.append(
                {
                    "function": f"{Path(file).name}:{line}({func})",
                    "calls_per_nfe": ncalls / per,
                    "own_us_per_nfe": 1e6 * tottime / per,
                    "cum_us_per_nfe": 1e6 * cumtime / per,
                }
            )
        rows.sort(key=lambda r: -r["own_us_per_nfe"])
        out[method] = {"total_us_per_nfe": 1e6 * stats.total_tt / per, "top_own_time": rows[:top]}
    return out


# ------------------------------------------------------------------------------------------------ report


def fmt(v: float) -> str:
    return f"{v:.2e}"


def table_row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def render_markdown(res: dict) -> str:
    """The "Core samplers" section of docs/RESULTS.md, built from the JSON only."""
    env, proto = res["environment"], res["protocol"]
    lines = [
        SECTION,
        "",
        f"Generated by `benchmarks/core_samplers.py` from `benchmarks/results/core_samplers.json` ({res['date']}). "
        f"Machine: {env['cpu']}, {env['logical_cpus']} logical CPUs shared with other jobs (load average "
        f"{env['load_average_start']:.1f} at start, {env['load_average_end']:.1f} at end); torch {env['torch']}, "
        f"diffusers {env['diffusers']}, Python {env['python']}. Wall time {res['wall_s']:.0f} s, "
        f"peak RSS {res['peak_rss_mb']:.0f} MB.",
        "",
        "### Accuracy: probability-flow ODE endpoint error",
        "",
        "Protocol: discrete linear VP, T = 1000 (diffusers `beta_schedule=\"linear\"`, betas 1e-4..0.02, "
        "`prediction_type=\"epsilon\"`, `timestep_spacing=\"trailing\"`; DDIM with `set_alpha_to_one=True`, "
        "`clip_sample=False`; DPM-Solver++ with `solver_order=2`, `final_sigmas_type=\"zero\"`, default "
        "`lower_order_final`). The model is an exact oracle; diffusers' timestep k is answered with the exact eps "
        f"at t = (k+1)/T. All samplers start from the same {proto['batch']} VP states x_T at t = 1 (Euler/Heun: "
        "x_T / alpha(1) in their VE coordinates) and are scored by the RMS over dims and batch of the distance to "
        f"the exact PF-ODE solution at t = 0. States in float64, {proto['threads']} torch thread. NFE is counted "
        "by wrapping the model and is the same in both libraries (Heun: N = (NFE+1)//2 intervals, 2N-1 "
        "evaluations). Columns: diffusers; ours on the identical trailing grid and the ratio to diffusers "
        f"(\"tie\" = within {TIE_RTOL:g} relative: diffusers rounds its tables to float32); ours on the log-SNR "
        "grid; ours on the best of our five grids at that NFE (chosen with the reference known: an upper bound "
        "on what grid choice buys, every grid's number is in the JSON).",
        "",
    ]
    for name, info in res["accuracy"].items():
        notes = [f"reference self-convergence (1000 vs 2000 steps) {fmt(info['reference_self_convergence_rms'])}"]
        if "reference_solver_vs_exact_rms" in info:
            notes.append(f"the reference solver vs the closed form {fmt(info['reference_solver_vs_exact_rms'])}")
        notes.append(f"error floor of any grid ending with the jump t = 1/T -> 0: {fmt(info['final_jump_floor_rms'])}")
        lines += [
            f"**{name}**: {info['data']}. Reference: {info['reference']}; " + "; ".join(notes) + ".",
            "",
            table_row(
                "ours vs diffusers", "NFE", "diffusers", "ours, trailing", "ours / diffusers", "ours, logsnr",
                "ours, best grid",
            ),
            table_row(*["---"] * 7),
        ]
        for r in info["rows"]:
            n = str(r["nfe_ours"]) if r["nfe_ours"] == r["nfe_diffusers"] else f"{r['nfe_ours']}/{r['nfe_diffusers']}"
            if r["nfe_ours"] != r["nfe_target"]:
                n += f" (target {r['nfe_target']})"
            ratio = r["ours_trailing_rms"] / r["diffusers_rms"]
            lines.append(
                f"| {r['sampler']} vs {r['diffusers'].replace('Scheduler', '')} | {n} | {fmt(r['diffusers_rms'])} | "
                f"{fmt(r['ours_trailing_rms'])} | {ratio:.4f} ({r['verdict_trailing']}) | "
                f"{fmt(r['ours_rms_by_grid']['logsnr'])} | {fmt(r['ours_best_rms'])} ({r['ours_best_grid']}) |"
            )
        lines.append("")
    verdicts = [r["verdict_trailing"] for info in res["accuracy"].values() for r in info["rows"]]
    lines += [
        f"Summary, ours on the identical trailing grid vs diffusers, {len(verdicts)} rows: "
        f"{verdicts.count('tie')} tie, {verdicts.count('better')} better, {verdicts.count('worse')} worse.",
        "",
        "Notes:",
        "",
        *[f"- {note}" for note in notes_for(res)],
        "",
    ]

    ov = res["overhead"]
    lines += [
        "### Overhead: sampler cost per model evaluation with a zero-cost model",
        "",
        f"Protocol: the model returns zeros; x is a {tuple(ov['shape'])} {ov['dtype']} batch; {ov['steps']} "
        "steps on the trailing grid (Heun: 25 intervals = 49 NFE); wall time of a whole sampling call (our "
        "`sample(...)`, or diffusers' `set_timesteps` + `scale_model_input`/`step` loop) divided by its NFE, i.e. "
        f"per diffusers `step()` call; median of {ov['repeats']} repeats after {ov['warmup']} warm-up, all runs "
        "interleaved so that changes in machine load hit both libraries alike. Times in microseconds per NFE. "
        "The machine is shared, so the wall medians carry other jobs' load; the steadier comparison is the paired "
        "ratio: in each repeat ours and diffusers run back to back, and the median over repeats of their ratio of "
        "process CPU times is shown with its quartiles (minima, CPU medians and IQRs are in the JSON).",
        "",
        table_row(
            "ours vs diffusers", "torch threads", "NFE", "ours, median wall", "diffusers, median wall",
            "ratio of medians", "paired CPU-time ratio [quartiles]",
        ),
        table_row(*["---"] * 7),
    ]
    summaries = []
    for block in ov["by_threads"]:
        ratios = [p["ratio_cpu_paired_median"] for p in block["pairs"]]
        summaries.append(
            f"{block['threads']} torch thread(s): ours is faster in {sum(r < 1 for r in ratios)} and slower in "
            f"{sum(r > 1 for r in ratios)} of {len(ratios)} pairs (paired CPU-time ratio {min(ratios):.2f} to "
            f"{max(ratios):.2f})."
        )
        for p in block["pairs"]:
            lines.append(
                table_row(
                    f"{p['ours']} vs {p['diffusers'].replace('Scheduler', '')}", block["threads"], p["nfe"],
                    f"{p['ours_us_per_nfe']:.0f}", f"{p['diffusers_us_per_nfe']:.0f}", f"{p['ratio']:.2f}",
                    f"{p['ratio_cpu_paired_median']:.2f} [{p['ratio_cpu_paired_iqr'][0]:.2f}, "
                    f"{p['ratio_cpu_paired_iqr'][1]:.2f}]",
                )
            )
    lines += ["", "Summary: " + " ".join(summaries)]
    lines += [
        "",
        f"Where our time goes (cProfile, {ov['profile_threads']} thread, own time per NFE; profiler overhead "
        "included, so totals exceed the table above; a function's own time includes the tensor arithmetic written "
        "inline in it, since operators are not separate profile entries):",
        "",
        "| ours | total (us/NFE) | function | calls per NFE | own (us/NFE) | cumulative (us/NFE) |",
        "|---|---|---|---|---|---|",
    ]
    for method, prof in ov["profile"].items():
        for j, row in enumerate(prof["top_own_time"][:PROFILE_ROWS_MD]):
            head = f"{method} | {prof['total_us_per_nfe']:.0f}" if j == 0 else " | "
            lines.append(
                f"| {head} | `{row['function']}` | {row['calls_per_nfe']:.2f} | {row['own_us_per_nfe']:.0f} | "
                f"{row['cum_us_per_nfe']:.0f} |"
            )
    lines.append("")
    return "\n".join(lines)


def write_doc(section: str) -> None:
    """Replace (or add) the "## Core samplers" section of docs/RESULTS.md, keeping every other section."""
    header = (
        "# Results\n\n"
        "Measured numbers, one `## ` section per area (core samplers, training, apps). Every table is generated\n"
        "from `benchmarks/results/<area>.json` by `benchmarks/<area>.py`; do not edit tables by hand.\n"
    )
    text = DOC.read_text() if DOC.exists() else header
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() == SECTION), None)
    if start is None:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        text = "\n".join(lines[:start] + section.rstrip("\n").splitlines() + [""] + lines[end:])
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text.rstrip("\n") + "\n")


def notes_for(res: dict) -> list[str]:
    """Facts worth a sentence under the accuracy tables, derived from the grid checks and the rows."""
    notes = [
        "diffusers DDIMScheduler defaults to clip_sample=True (x0_hat clamped to [-1, 1]); it is run with "
        "clip_sample=False because neither data set lies in [-1, 1] and the ODE solution is not clipped."
    ]
    for name, info in res["accuracy"].items():
        shares = [r["ours_trailing_point_stats"]["worst_1pct_share_of_mse"] for r in info["rows"]]
        ratio = [r["ours_trailing_point_stats"]["rms"] / r["ours_trailing_point_stats"]["median_point_rms"]
                 for r in info["rows"]]
        notes.append(
            f"{name}: the worst 1% of starting points carry {100 * min(shares):.0f}-{100 * max(shares):.0f}% of the "
            f"squared error (ours, trailing; batch RMS / median per-point RMS = {min(ratio):.1f}-{max(ratio):.1f}); "
            "per-point medians for both libraries are in the JSON."
        )
    checks = res["grid_checks"]
    if all(v for row in checks.values() for k, v in row.items() if k.endswith("Scheduler")):
        notes.append(
            "our trailing grid equals every diffusers scheduler's trailing timesteps (plus the final t = 0) "
            f"for all N used ({', '.join(checks)})."
        )
    for steps, row in checks.items():
        bad = row.get("ddim_prev_timestep_mismatches")
        if bad:
            last = bad[-1]
            notes.append(
                f"diffusers DDIMScheduler with N = {steps} takes its previous timestep as t - T//N, which differs "
                f"from the next trailing timestep in {len(bad)} of {steps} steps (e.g. t = {bad[0]['t']} -> "
                f"{bad[0]['diffusers_prev']} instead of {bad[0]['grid_next']}; the last step lands on "
                f"{last['diffusers_prev']} instead of the clean-data end), so its N = {steps} row is not the same "
                "grid (stride bug, diffusers #14357; pitfall (b)2 in reference/core.md)."
            )
            for name, info in res["accuracy"].items():
                for r in info["rows"]:
                    if r["diffusers"] != "DDIMScheduler" or str(r["steps"]) != steps:
                        continue
                    ours, stop, theirs = r["ours_trailing_rms"], r["ours_trailing_ending_at_1_over_T_rms"], r[
                        "diffusers_rms"
                    ]
                    head = (
                        f"{name}, DDIM N = {steps}: diffusers {fmt(theirs)}, ours {fmt(ours)}; our trailing grid with "
                        f"its last time moved from 0 to 1/T (where diffusers' last step lands) gives {fmt(stop)}"
                    )
                    if stop <= theirs:
                        tail = (
                            ", at or below diffusers: on these data a last DDIM step that stops at sigma = 0.01 beats "
                            "the first-order jump to 0, and that end point is the whole gap."
                        )
                    else:
                        share = (ours - stop) / (ours - theirs)
                        tail = (
                            f": stopping at sigma = 0.01 instead of jumping to 0 accounts for {100 * share:.0f}% of "
                            "the gap on these data; the rest comes from evaluating the model at the next array "
                            "timestep while the state sits at t - T//N."
                        )
                    notes.append(head + tail)
    return notes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1000, help="starting points per data set")
    ap.add_argument("--repeats", type=int, default=60, help="timed repeats per overhead run")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", default="1", help="comma-separated torch thread counts for the overhead table")
    ap.add_argument("--markdown-only", action="store_true", help="rebuild docs/RESULTS.md from the JSON")
    args = ap.parse_args()

    if args.markdown_only:
        section = render_markdown(json.loads(RESULTS.read_text()))
        write_doc(section)
        print(section)
        return

    import diffusers
    import numpy as np
    import torch

    from omnidiffusion.core.schedules import DiscreteVP

    # Accuracy runs single-threaded: the tensors are small, and on a shared 2-core machine intra-op threads
    # stall on each other (100x slower under load) without changing a single number.
    torch.set_num_threads(1)
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"{time.perf_counter() - start:7.1f}s {msg}", flush=True)

    schedule = DiscreteVP.linear(T)
    theirs = make_scheduler("DDIMScheduler").alphas_cumprod.double().numpy()
    res: dict = {
        "benchmark": "core_samplers",
        "date": time.strftime("%Y-%m-%d"),
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "numpy": np.__version__,
            "cpu": cpu_name(),
            "machine": platform.machine(),
            "logical_cpus": os.cpu_count(),
            "load_average_start": os.getloadavg()[0],
        },
        "protocol": {
            "schedule": "DiscreteVP.linear(1000) / diffusers linear betas 1e-4..0.02, epsilon prediction",
            "index_mapping": "diffusers timestep k <-> t = (k + 1)/T",
            "timestep_spacing": "trailing",
            "batch": args.batch,
            "dim": DIM,
            "threads": 1,
            "dtype": "float64 states (diffusers Euler/DPM-Solver step in float32 internally; its tables are float32)",
            "nfe_targets": list(NFE_TARGETS),
            "heun_steps": "N = (NFE + 1) // 2, NFE = 2N - 1",
            "error": "RMS over dims and batch of (sample - exact PF-ODE endpoint at t = 0)",
            "grids": list(OUR_GRIDS),
            "diffusers_kwargs": {name: kwargs for _, _, name, kwargs in PAIRS},
            "diffusers_alphas_cumprod_max_rel_diff": float(np.abs(theirs / schedule.alphas_cumprod - 1.0).max()),
            "tie_rtol": TIE_RTOL,
        },
    }
    res["grid_checks"] = grid_checks(schedule)
    res["accuracy"] = accuracy(args.batch, log)
    res["notes"] = notes_for(res)
    threads = [int(v) for v in args.threads.split(",")]
    res["overhead"] = overhead(threads, args.repeats, args.warmup, log)
    res["environment"]["load_average_end"] = os.getloadavg()[0]
    res["wall_s"] = time.perf_counter() - start
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=2) + "\n")
    section = render_markdown(res)
    write_doc(section)
    print(section)
    print(f"wrote {RESULTS.relative_to(ROOT)} and {DOC.relative_to(ROOT)}", file=sys.stderr)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
