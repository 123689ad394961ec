"""Text demo: a small Diffusion-LM trained on the bundled restaurant corpus, unguided and controlled samples.

Trains the default omnidiffusion-text config, shortened to fit about two minutes on two CPU cores (fewer steps; the
benchmark trains the full default), then samples unguided sentences, semantic-content-controlled sentences and
length-controlled sentences with the paper's ancestral sampler, and scores them: teacher-LM perplexity against a
unigram sampler (fluency floor) and the teacher's own samples (ceiling), and rule-checked control success against
the unguided samples (control floor). quick=True trains the `tiny` config for a few steps (seconds; a smoke run).

Writes OUT/text/: scores.png, samples.md, metrics.json, run/ (the checkpoint directory, loadable with
`DiffusionLM.from_pretrained`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from demos.section import SectionResult, torch_threads  # noqa: E402
from omnidiffusion.core.config import load_config  # noqa: E402
from omnidiffusion.text import DiffusionLM  # noqa: E402
from omnidiffusion.text.evaluation import evaluate, load_teacher, load_train_texts  # noqa: E402
from omnidiffusion.text.settings import TextConfig  # noqa: E402
from omnidiffusion.text.training import load_examples, train  # noqa: E402

TITLE = "Text: Diffusion-LM with controllable generation"
DESCRIPTION = """
Diffusion-LM (Li et al. 2022): continuous diffusion over learned 16-d word vectors with a small BERT-encoder
x0-denoiser, sqrt noise schedule and the clamping trick, trained on the bundled E2E-like restaurant corpus
(a deterministic generator; held-out sentences from a disjoint stream). Fluency is the perplexity of a small
GPT-2 teacher trained on the same corpus (lower is better; a unigram sampler is the floor, the teacher's own
samples the ceiling). Control success (a field=value of a held-out meaning representation must appear; an exact
word count) is judged by a rule-based checker, never by the guiding classifier; unguided samples are the control
floor. This demo trains for about two minutes; `benchmarks/text.py` trains the full default config.
"""

DEMO_OVERRIDES = ["train.steps=500", "classifier.train.steps=300", "teacher.train.steps=400", "data.n_train=3000"]
QUICK_OVERRIDES = ["train.steps=4", "classifier.train.steps=2", "teacher.train.steps=2"]


def plot_scores(result: dict, path: Path) -> None:
    m, b = result["model"], result["baselines"]
    fig = Figure(figsize=(9, 3.4))
    ax1, ax2 = fig.subplots(1, 2)
    names = ["unigram\n(floor)", "Diffusion-LM", "Diffusion-LM\n+ control", "teacher LM\n(ceiling)"]
    vals = [
        b["unigram"]["teacher_ppl"],
        m["unguided_teacher_ppl"],
        m.get("semantic_teacher_ppl", float("nan")),
        b["teacher_lm"]["teacher_ppl"],
    ]
    ax1.bar(names, vals, color=["#bbbbbb", "#4c72b0", "#55a868", "#dd8452"])
    ax1.set_yscale("log")
    ax1.set_ylabel("teacher perplexity (log)")
    ax1.set_title("fluency (lower is better)")
    ax1.tick_params(axis="x", labelsize=7)
    groups = ["semantic content", "length (exact)"]
    unguided = [b["unguided_diffusion"].get("semantic_success", 0.0), b["unguided_diffusion"]["length_exact"]]
    guided = [m.get("semantic_success", 0.0), m["length_exact"]]
    xs = range(len(groups))
    ax2.bar([x - 0.2 for x in xs], unguided, 0.4, label="unguided", color="#bbbbbb")
    ax2.bar([x + 0.2 for x in xs], guided, 0.4, label="guided", color="#55a868")
    ax2.set_xticks(list(xs), groups)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("success rate (rule checker)")
    ax2.set_title("control")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run(out_dir: Path, quick: bool = False) -> SectionResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch_threads(1):
        return _run(out_dir, quick)


def _run(out_dir: Path, quick: bool) -> SectionResult:
    t0 = time.perf_counter()
    if quick:
        config = load_config(TextConfig, "tiny", QUICK_OVERRIDES, package="omnidiffusion.text")
        n, steps = 4, 5
    else:
        config = load_config(TextConfig, "default", DEMO_OVERRIDES, package="omnidiffusion.text")
        n, steps = 48, 100
    config.train.progress = config.classifier.train.progress = config.teacher.train.progress = False
    run_dir = out_dir / "run"
    train(config, run_dir)
    train_s = time.perf_counter() - t0
    lm = DiffusionLM.from_pretrained(run_dir)
    sample_cfg = config.sampler
    sample_cfg.steps = steps
    samples: dict = {}
    result = evaluate(
        lm,
        load_teacher(run_dir),
        load_train_texts(run_dir),
        load_examples(config)["test"],
        n,
        sample_cfg,
        samples_out=samples,
    )
    plot_scores(result, out_dir / "scores.png")
    result["train_seconds"] = round(train_s, 1)
    result["quick"] = quick
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = []
    for key in ("unguided", "semantic", "length", "infill"):
        lines += [f"**{key}**", ""] + [f"- {s}" for s in samples.get(key, [])[:5]] + [""]
    (out_dir / "samples.md").write_text("\n".join(lines))

    m, b = result["model"], result["baselines"]
    rows = [
        {"samples": "unigram sampler (floor)", "teacher PPL": round(b["unigram"]["teacher_ppl"], 2), "control": ""},
        {"samples": "teacher LM (ceiling)", "teacher PPL": round(b["teacher_lm"]["teacher_ppl"], 2), "control": ""},
        {"samples": "Diffusion-LM unguided", "teacher PPL": round(m["unguided_teacher_ppl"], 2),
         "control": f"semantic {b['unguided_diffusion'].get('semantic_success', 0):.2f}, "
                    f"length {b['unguided_diffusion']['length_exact']:.2f}"},
        {"samples": "Diffusion-LM + semantic control", "teacher PPL": round(m.get("semantic_teacher_ppl", 0), 2),
         "control": f"{m.get('semantic_success', 0):.2f}"},
        {"samples": "Diffusion-LM + length control", "teacher PPL": round(m["length_teacher_ppl"], 2),
         "control": f"{m['length_exact']:.2f}"},
        {"samples": "Diffusion-LM infilling", "teacher PPL": round(m["infill_teacher_ppl"], 2),
         "control": f"words kept {m['infill_keep_rate']:.2f}"},
    ]  # fmt: skip
    notes = [
        f"Training {train_s:.0f} s ({config.train.steps} Diffusion-LM steps); {n} samples per row, "
        f"{sample_cfg.method} with {steps} steps. Examples: samples.md."
    ]
    return SectionResult(
        figures=[("Teacher perplexity and control success", out_dir / "scores.png")],
        tables=[("Fluency and control (held-out targets)", rows)],
        notes=notes,
        files=[out_dir / "metrics.json", out_dir / "samples.md"],
    )
