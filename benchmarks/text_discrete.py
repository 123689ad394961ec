"""Masked (absorbing) discrete diffusion beside Diffusion-LM on the bundled corpus, at the same training budget.

Both models use the `default` config of omnidiffusion-text (same BERT-encoder backbone sizes, 3000 steps, batch 64,
AdamW 1e-3 with warm-up and cosine decay, EMA 0.999, bundled train split, seed 0); the masked one sets
`model.kind = masked` (MDLM loss, linear schedule, label-conditional for classifier-free guidance). The two
trainings run as two single-thread processes side by side; one teacher GPT-2 (trained with the Diffusion-LM run,
exactly as in benchmarks/text.py) scores the samples of both. Reported:

  masked model   test ELBO perplexity (continuous-time MDLM bound and the 128-step discrete-time bound, both
                 upper bounds on its perplexity), unguided samples (teacher PPL, distinct-2, memorisation),
                 classifier-free guided semantic control (rule-checked), clamped length control and infilling,
                 and quality against steps (8, 16, 32, 64, 128) for both unmasking rules, 3 sampling seeds;
  Diffusion-LM   unguided samples (200-step ancestral, as benchmarks/text.py) and infilling, same teacher;
  references     the teacher's perplexity of the held-out test text, teacher and unigram samples.

    python benchmarks/text_discrete.py [--n 200] [--work DIR]

Writes benchmarks/results/text_discrete.json and text_discrete.md (the section for docs/RESULTS.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from omnidiffusion.core.config import load_config, to_dict
from omnidiffusion.text.evaluation import evaluate, load_teacher, load_train_texts, text_scores
from omnidiffusion.text.masked import MaskedDiffusionLM
from omnidiffusion.text.metrics import infill_keep_rate, perplexity, teacher_nll
from omnidiffusion.text.pipeline import DiffusionLM
from omnidiffusion.text.settings import TextConfig
from omnidiffusion.text.training import load_examples, train

RESULTS = Path(__file__).resolve().parent / "results"
STEPS = (8, 16, 32, 64, 128)
SWEEP_SEEDS = (1, 2, 3)  # sampling seeds per sweep cell (the teacher PPL of 200 samples varies by ~10% with the seed)
UNMASKINGS = ("fixed-count", "independent")
TARGET_DLM_PPL = 24.4  # Diffusion-LM unguided, benchmarks/results/text.json


def config_for(kind: str, extra: list[str]) -> TextConfig:
    sets = [f"model.kind={kind}"] + (["classifier.enabled=false"] if kind == "continuous" else [])
    sets += ["teacher.enabled=false"] if kind == "masked" else []
    sets += [f"{stage}.progress=false" for stage in ("train", "classifier.train", "teacher.train")]
    return load_config(TextConfig, "default", sets + extra, package="omnidiffusion.text")


def cpu_seconds() -> dict[str, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"self": me.ru_utime + me.ru_stime, "children": kids.ru_utime + kids.ru_stime}


def train_stage(kind: str, work: Path, extra: list[str]) -> None:
    torch.set_num_threads(1)
    train(config_for(kind, extra), work / kind)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # Diffusion-LM (+ teacher) in a child process, the masked model here: two single-thread trainings side by side.
    cmd = [sys.executable, __file__, "--stage", "continuous", "--work", str(work)] + sum(
        (["--set", s] for s in args.set), []
    )
    child = subprocess.Popen(cmd)
    train_stage("masked", work, args.set)
    masked_train_s = time.perf_counter() - t0
    if child.wait() != 0:
        raise SystemExit("the Diffusion-LM training stage failed")
    train_s = time.perf_counter() - t0
    cpu_train = cpu_seconds()

    cont, mask = work / "continuous", work / "masked"
    teacher = load_teacher(cont)
    train_texts = load_train_texts(mask)
    config = config_for("masked", args.set)
    test = load_examples(config)["test"]
    samples: dict = {}

    # ---- masked model ----
    t1 = time.perf_counter()
    mlm = MaskedDiffusionLM.from_pretrained(mask)
    sample_cfg = dataclasses.replace(config.sampler, steps=args.steps)
    result = {"masked": evaluate(mlm, teacher, train_texts, test, args.n, sample_cfg, samples_out=samples)}
    held = [ex.text for ex in test]
    tb = time.perf_counter()
    result["masked"]["elbo_test"] = {
        "continuous_time": mlm.perplexity_bound(held, n_times=64),
        f"discrete_{args.steps}_steps": mlm.perplexity_bound(held, steps=args.steps),
        "sentences": len(held),
        "seconds": round(time.perf_counter() - tb, 1),
    }
    # classifier-free guidance scale 1 (the plain conditional) beside the configured one
    from omnidiffusion.text.evaluation import control_targets
    from omnidiffusion.text.metrics import semantic_success

    targets = control_targets(test, mlm.labels, args.n, config.sampler.seed)
    cfg1 = mlm.generate(args.n, steps=args.steps, control=[{f: v} for f, v in targets], guidance_scale=1.0)
    result["masked"]["semantic_scale_1"] = {
        "success": semantic_success(cfg1, targets),
        "teacher_ppl": perplexity(teacher_nll(teacher, mlm.tokenizer, cfg1)),
    }
    sweep = []
    for unmasking in UNMASKINGS:
        for steps in STEPS:
            per_seed = []
            for seed in SWEEP_SEEDS:
                ts = time.perf_counter()
                texts = mlm.generate(args.n, steps=steps, seed=seed, unmasking=unmasking)
                cell = {"seed": seed, "seconds": round(time.perf_counter() - ts, 2)}
                cell.update(text_scores(texts, teacher, mlm.tokenizer, train_texts))
                per_seed.append(cell)
            row = {"model": "masked", "unmasking": unmasking, "steps": steps, "seeds": per_seed}
            for key in ("teacher_ppl", "distinct_1", "distinct_2", "memorisation", "seconds"):
                row[key] = float(np.mean([c[key] for c in per_seed]))
            row["teacher_ppl_sd"] = float(np.std([c["teacher_ppl"] for c in per_seed], ddof=1))
            sweep.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "seeds"}), flush=True)
    masked_eval_s = time.perf_counter() - t1

    # ---- Diffusion-LM, same teacher ----
    t2 = time.perf_counter()
    dlm = DiffusionLM.from_pretrained(cont)
    ts = time.perf_counter()
    unguided = dlm.generate(args.n, steps=200, method="ddpm", seed=0)
    dlm_row = {"steps": 200, "sampler": "ddpm", "seconds": round(time.perf_counter() - ts, 2)}
    dlm_row.update(text_scores(unguided, teacher, dlm.tokenizer, load_train_texts(cont)))
    from omnidiffusion.text.evaluation import infill_templates

    templates = infill_templates(held, dlm.tokenizer.get_vocab(), args.n, dlm.seq_len - 2, 0)
    filled = dlm.infill_many(templates, steps=200, seed=0)
    dlm_row["infill_keep_rate"] = infill_keep_rate(filled, templates)
    dlm_row["infill_teacher_ppl"] = perplexity(teacher_nll(teacher, dlm.tokenizer, filled))
    result["diffusion_lm"] = dlm_row
    samples["diffusion_lm_unguided"] = unguided
    dlm_eval_s = time.perf_counter() - t2

    m = result["masked"]["model"]
    by_steps = {(r["unmasking"], r["steps"]): r["teacher_ppl"] for r in sweep}
    default = config.sampler.unmasking
    result["targets"] = {
        "masked_unguided_ppl_below_diffusion_lm_same_run": m["unguided_teacher_ppl"] < dlm_row["teacher_ppl"],
        "masked_unguided_ppl_below_24.4": m["unguided_teacher_ppl"] < TARGET_DLM_PPL,
        "masked_32_steps_within_10pct_of_128": by_steps[default, 32] <= 1.10 * by_steps[default, 128],
        "masked_32_steps_within_10pct_of_128_independent": by_steps["independent", 32]
        <= 1.10 * by_steps["independent", 128],
        "unmasking_of_the_targets": default,
    }
    cpu = cpu_seconds()
    result.update(
        {
            "sweep": sweep,
            "params": {
                "masked": sum(p.numel() for p in mlm.net.parameters()),
                "diffusion_lm": sum(p.numel() for p in dlm.net.parameters()),
            },
            "final_train_loss": {
                "masked_nats_per_token": float((mask / "log.csv").read_text().splitlines()[-1].split(",")[1]),
                "diffusion_lm": float((cont / "log.csv").read_text().splitlines()[-1].split(",")[1]),
            },
            "wall_seconds": {
                "train_both_in_parallel": round(train_s, 1),
                "train_masked": round(masked_train_s, 1),
                "evaluate_masked": round(masked_eval_s, 1),
                "evaluate_diffusion_lm": round(dlm_eval_s, 1),
                "total": round(time.perf_counter() - t0, 1),
            },
            "cpu_seconds": {
                "train_masked": round(cpu_train["self"], 1),
                "train_diffusion_lm_and_teacher": round(cpu_train["children"], 1),
                "evaluate": round(cpu["self"] - cpu_train["self"], 1),
                "total": round(cpu["self"] + cpu["children"], 1),
            },
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "machine": {
                "threads_per_process": args.threads,
                "platform": platform.platform(),
                "load_average_at_end": list(os.getloadavg()),
            },
            "config_masked": to_dict(config),
            "examples": {k: v[:8] for k, v in samples.items()},
            "n": args.n,
            "steps": args.steps,
        }
    )
    return result


def fmt(x) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def markdown(r: dict) -> str:
    mk, b = r["masked"]["model"], r["masked"]["baselines"]
    d, e = r["diffusion_lm"], r["masked"]["elbo_test"]
    ec, ed = e["continuous_time"], e[f"discrete_{r['steps']}_steps"]
    w, c = r["wall_seconds"], r["cpu_seconds"]
    unmasking = r["targets"].get("unmasking_of_the_targets", "independent")
    s1 = r["masked"]["semantic_scale_1"]
    scale = r["masked"]["protocol"]["guidance"]["classifier_free_scale"]
    lines = [
        "## Text: masked discrete diffusion beside Diffusion-LM",
        "",
        f"Bundled E2E-like corpus, `default` config for both ({r['params']['masked'] / 1e6:.2f}M-parameter masked "
        f"model, {r['params']['diffusion_lm'] / 1e6:.2f}M Diffusion-LM; 3000 steps, batch 64 each); n = {r['n']} "
        f"samples per row; one training seed; the same 2-layer GPT-2 teacher scores both. Masked model: "
        f"{r['steps']}-step ancestral sampling (core.discrete, {unmasking} unmasking); Diffusion-LM: 200-step "
        "ancestral with clamping.",
        "",
        "| samples | teacher PPL | distinct-2 | memorised | control / infilling |",
        "|---|---|---|---|---|",
        f"| held-out test text (teacher's own test PPL) | {fmt(b['held_out_text']['teacher_ppl'])} | | | |",
        f"| teacher LM samples | {fmt(b['teacher_lm']['teacher_ppl'])} | {fmt(b['teacher_lm']['distinct_2'])} | "
        f"{fmt(b['teacher_lm']['memorisation'])} | |",
        f"| unigram sampler | {fmt(b['unigram']['teacher_ppl'])} | {fmt(b['unigram']['distinct_2'])} | | |",
        f"| Diffusion-LM unguided (this run) | {fmt(d['teacher_ppl'])} | {fmt(d['distinct_2'])} | "
        f"{fmt(d['memorisation'])} | infilling: PPL {fmt(d['infill_teacher_ppl'])}, "
        f"kept {fmt(d['infill_keep_rate'])} |",
        f"| masked unguided | {fmt(mk['unguided_teacher_ppl'])} | {fmt(mk['unguided_distinct_2'])} | "
        f"{fmt(mk['unguided_memorisation'])} | semantic base rate "
        f"{fmt(r['masked']['baselines']['unguided_diffusion'].get('semantic_success', 0.0))} |",
        f"| masked + CFG semantic (scale {fmt(scale)}) | {fmt(mk.get('semantic_teacher_ppl', float('nan')))} | | | "
        f"{fmt(mk.get('semantic_success', float('nan')))} |",
        f"| masked + CFG semantic (scale 1) | {fmt(s1['teacher_ppl'])} | | | {fmt(s1['success'])} |",
        f"| masked + length (clamped END) | {fmt(mk['length_teacher_ppl'])} | | | exact {fmt(mk['length_exact'])} |",
        f"| masked infilling (clamped) | {fmt(mk['infill_teacher_ppl'])} | | | kept {fmt(mk['infill_keep_rate'])} |",
        "",
        f"Masked model test ELBO ({e['sentences']} test sentences; per-sentence nats / (words + END), averaged, "
        "exponentiated, the teacher's convention; an upper bound on the model's perplexity): continuous-time "
        f"{fmt(ec['elbo_ppl'])} ({fmt(ec['bits_per_token'])} bits/token), {r['steps']}-step discrete-time "
        f"{fmt(ed['elbo_ppl'])}; the teacher GPT-2's test perplexity is {fmt(b['held_out_text']['teacher_ppl'])}.",
        "",
        f"Masked model, quality against sampling steps (unguided; mean over sampling seeds {SWEEP_SEEDS}, "
        "+- the standard deviation over seeds; `fixed-count` reveals the expected number of tokens per step, "
        "`independent` each masked token on its own coin):",
        "",
        "| unmasking | steps | teacher PPL | distinct-2 | memorised | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["sweep"]:
        lines.append(
            f"| {row.get('unmasking', 'independent')} | {row['steps']} | {fmt(row['teacher_ppl'])} "
            f"+- {fmt(row.get('teacher_ppl_sd', float('nan')))} | {fmt(row['distinct_2'])} "
            f"| {fmt(row['memorisation'])} | {row['seconds']:.1f} |"
        )
    t = r["targets"]
    lines += [
        "",
        "Targets: masked unguided PPL below Diffusion-LM's at equal training steps: "
        f"{'met' if t['masked_unguided_ppl_below_diffusion_lm_same_run'] else 'NOT met'} (this run), "
        f"{'met' if t['masked_unguided_ppl_below_24.4'] else 'NOT met'} (against 24.4); 32 steps within 10% of 128 "
        f"({t['unmasking_of_the_targets']}, the default): "
        f"{'met' if t['masked_32_steps_within_10pct_of_128'] else 'NOT met'} (independent: "
        f"{'met' if t['masked_32_steps_within_10pct_of_128_independent'] else 'NOT met'}).",
        "",
        f"Wall time {w['total'] / 60:.1f} min (both trainings side by side {w['train_both_in_parallel'] / 60:.1f}, "
        f"masked evaluation {w['evaluate_masked'] / 60:.1f}, Diffusion-LM evaluation "
        f"{w['evaluate_diffusion_lm'] / 60:.1f}); process CPU time {c['total'] / 60:.1f} min (masked training "
        f"{c['train_masked'] / 60:.1f}, Diffusion-LM + teacher training "
        f"{c['train_diffusion_lm_and_teacher'] / 60:.1f}, "
        f"evaluation {c['evaluate'] / 60:.1f}), one thread per process on a 2-core CPU shared with other jobs "
        f"(load average at the end {r['machine']['load_average_at_end'][0]:.1f}).",
        "",
        "Reproduce: `python benchmarks/text_discrete.py` (results in benchmarks/results/text_discrete.json).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="samples per evaluated setting and per sweep cell")
    ap.add_argument("--steps", type=int, default=128, help="masked sampling steps of the main table")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default="/tmp/omnidiffusion-text-discrete-bench", help="checkpoint dirs (resumed)")
    ap.add_argument("--set", action="append", default=[], help="config override for both models")
    ap.add_argument("--stage", choices=["continuous", "masked"], default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage:
        train_stage(args.stage, Path(args.work), args.set)
        return
    result = run(args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "text_discrete.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "text_discrete.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
