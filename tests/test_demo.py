"""`make demo` in miniature: scripts/demo.py --quick writes the report, the core figures and metrics.json."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

ROOT = Path(__file__).resolve().parents[1]


def _load_driver():
    """scripts/demo.py as a module (it puts scripts/ on sys.path, so `demos` imports after this)."""
    spec = importlib.util.spec_from_file_location("omnidiffusion_demo_driver", ROOT / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_quick_writes_report_figures_and_metrics(tmp_path, capsys):
    # In-process (the same main() that `make demo` runs) to share the torch import with the rest of the test.
    out = tmp_path / "demo"
    status = _load_driver().main(["--out", str(out), "--quick"])
    assert status == 0, capsys.readouterr().err[-4000:]

    core = out / "core"
    for name in ("samples.png", "loss.png", "metrics.json", "train/model.safetensors", "train/config.json",
                 "train/log.csv", "train/checkpoint/latest.json"):
        assert (core / name).is_file(), f"missing {name}"
    for name in ("samples.png", "loss.png"):
        assert (core / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Every image the report embeds exists at its relative path.
    report = (out / "report.md").read_text()
    assert "## Core" in report
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert {"core/samples.png", "core/loss.png"} <= set(images)
    assert all((out / p).is_file() for p in images)

    m = json.loads((core / "metrics.json").read_text())
    assert m["quick"] is True
    assert m["training"]["wall_time_s"] > 0 and len(m["training"]["loss_curve"]) > 1
    methods = m["config"]["methods"]
    steps = m["config"]["steps"]
    assert len(methods) >= 2
    got = {(r["sampler"], r["steps"]) for r in m["results"]}
    assert got >= {(meth, s) for meth in methods for s in steps}
    # The distilled students (the last two rounds) and the teacher's own DDIM at the same and the starting steps.
    cfg = m["config"]
    last_two = {cfg["distil_to"], 2 * cfg["distil_to"]}
    assert got - {(meth, s) for meth in methods for s in steps} == (
        {("ddim, distilled", n) for n in last_two} | {("ddim", n) for n in last_two | {cfg["distil_from"]}})
    students = [r for r in m["results"] if r["sampler"] == "ddim, distilled"]
    for r in students:
        assert r["grid"] == "time-uniform" and r["nfe"] == r["steps"] and math.isfinite(r["w2"])
        assert r["teacher_steps"] == cfg["distil_from"] and r["distillation_wall_time_s"] > 0
    assert (core / "extra_distilled_students" / "rounds" / f"round0_{cfg['distil_from'] // 2}steps"
            / "model.safetensors").is_file()
    assert "Progressive distillation" in report
    for r in m["results"]:
        assert set(r) >= {"sampler", "grid", "steps", "nfe", "w2", "time_s"}
        assert r["nfe"] >= r["steps"] - 1
    best = {r["sampler"]: r["w2"] for r in m["results"] if r["steps"] == max(steps)}
    assert math.isfinite(best["dpm++2m"])
    # Even a 150-step model is closer to the data than N(0, I) is.
    dist = m["distance"]
    assert 0 < dist["noise_floor"] < dist["standard_normal"]
    assert best["dpm++2m"] < dist["standard_normal"]


def test_w2_matches_closed_form_for_shifted_clouds():
    # W2 between a point cloud and its translate by v is exactly |v| (the identity coupling is optimal).
    _load_driver()
    from demos.core import w2
    x = np.random.default_rng(0).standard_normal((300, 2))
    assert abs(w2(x, x + np.array([0.3, -0.4])) - 0.5) < 1e-9
    # Equal sizes, uniform weights: the optimal coupling is a permutation (Birkhoff), found independently by the
    # Hungarian algorithm on squared distances computed by hand.
    y = np.random.default_rng(1).standard_normal((300, 2)) + 1.0
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    assert abs(w2(x, y) - math.sqrt(cost[rows, cols].mean())) < 1e-9
