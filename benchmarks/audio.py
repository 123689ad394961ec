"""Benchmark: the WaveGrad vocoder against Griffin-Lim and the measured lmnt-com/wavegrad reference.

Data (bundled, nothing downloaded): the 60 reference sentences spoken by espeak-ng (voice "en", 160 wpm) for
training, two other sentences (same voice) for the schedule search, and five held-out sentences of another
voice ("en-us+f3", 150 wpm) for every score; synthetic harmonic signals stand in where espeak-ng is missing.
Metric: log-mel distance of the reference measurement (metrics.log_mel_distance), multi-resolution STFT
distance, real-time factor (compute seconds per second of audio).

CPU mode (default) writes benchmarks/results/audio.json and audio.md; --part small | paper | all picks the parts
(a part run alone keeps the other part's results):
  1. small (default): the small default config trained on CPU: distance against training steps (EMA weights
     of every checkpoint, default 6-step schedule) beside Griffin-Lim; quality against iterations (1000, 50,
     25, 6, searched 6, dpm++2m at 6/12/25); RTF of 6 iterations on 2 threads; the mel-swap check;
  2. paper: paper-size WaveGrad (15.9 M parameters, hop 300, 128 mels at 22,050 Hz as the reference) on the
     reference protocol (batch 4, 24-frame segments, Adam 2e-4, --paper-steps = 2,000 steps; bf16 autocast on
     2 threads): held-out distance during training, then a searched 6-step schedule scored on the held-out
     clips, and RTF of 6 iterations on one thread (fp32 and bf16 autocast).
GPU mode (--gpu-paper-scale --seconds S --out DIR) writes DIR/audio_gpu.json: the reference protocol (paper
size, batch 4, --ref-steps steps) with its distance curve, then the paper-scale config (batch 256, bf16) trained
for S seconds with the held-out distance (searched 6-step schedule) every S/4 seconds beside Griffin-Lim,
training steps/s, sampling speed of one batch and peak GPU memory. Copied into benchmarks/results, it joins
audio.md with its own figure; --render rewrites audio.md and the figures from the JSON files.

    python benchmarks/audio.py                     # CPU, the small model (--part small)
    python benchmarks/audio.py --part paper        # CPU, the reference protocol: 2,000 steps of the paper size
    python benchmarks/audio.py --gpu-paper-scale --seconds 240 --out runs/audio_gpu
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import shutil
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for src in (ROOT / "apps" / "audio" / "src", ROOT / "core" / "src"):  # run from a bare checkout too
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))

import torch  # noqa: E402

from omnidiffusion.audio import training  # noqa: E402
from omnidiffusion.audio.demo_data import demo_clips  # noqa: E402
from omnidiffusion.audio.evaluation import evaluate_griffin_lim, evaluate_model, search_model_schedule  # noqa: E402
from omnidiffusion.audio.mel import MelConfig  # noqa: E402
from omnidiffusion.audio.metrics import log_mel_distance, real_time_factor  # noqa: E402
from omnidiffusion.audio.noise import inference_betas  # noqa: E402
from omnidiffusion.audio.pipeline import WaveGrad  # noqa: E402
from omnidiffusion.audio.plots import distance_curve  # noqa: E402
from omnidiffusion.audio.settings import AudioConfig, ModelConfig  # noqa: E402
from omnidiffusion.audio.task import vocode_mel  # noqa: E402
from omnidiffusion.core.config import load_config  # noqa: E402
from omnidiffusion.core.training import TrainConfig  # noqa: E402

REFERENCE = {  # lmnt-com/wavegrad, 60 espeak sentences, batch 4, 2,000 steps, CPU 1 thread (reference/audio.md)
    "searched_6": {"log_mel_distance": 1.885, "rtf_1_thread": 3.5},
    "ivanvovk_6": {"log_mel_distance": 4.04, "rtf_1_thread": 3.6},
    "iterations_1000_one_clip": {"log_mel_distance": 1.863, "rtf_1_thread": 574},
    "griffin_lim_32": {"log_mel_distance": 0.202, "rtf_1_thread": 0.05},
    "curve_searched_6": {"250": 2.851, "500": 2.905, "1000": 1.969, "2000": 1.885},
    "seconds_per_step_1_thread": 1.65,
}
# The reference's features: lmnt's WaveGrad at espeak's 22,050 Hz, hop 300, 128 mels, window 1200, FFT 2048.
REFERENCE_MEL = MelConfig(
    sample_rate=22050, n_fft=2048, win_length=1200, hop_length=300, n_mels=128, f_min=20.0, f_max=None
)


def paper_model(name: str = "paper") -> ModelConfig:
    cfg = load_config(AudioConfig, name, ["model.factors=5,5,3,2,2"], package="omnidiffusion.audio")  # hop 300
    return cfg.model


def splits(sample_rate: int, cache: Path, source: str = "auto") -> dict:
    """The bundled clips of each split, the corpus used ("espeak-ng" or "synthetic") and the [data] overrides that
    make `training.train` read the same training clips."""
    out = {}
    for split in ("train", "validation", "test"):
        clips, used = demo_clips(split, sample_rate, cache, source=source)
        out[split] = clips
        out["source"] = used
    bundled = "espeak" if out["source"] == "espeak-ng" else "synthetic"
    out["data_overrides"] = {"source": "bundled", "bundled": bundled, "cache_dir": str(cache)}
    return out


def on_bundled(config: AudioConfig, data: dict, **train) -> AudioConfig:
    """`config` reading the benchmark's training clips (data["data_overrides"]), with [train] fields replaced."""
    return replace(config, data=replace(config.data, **data["data_overrides"]), train=replace(config.train, **train))


def train_in_chunks(config: AudioConfig, data: dict, run: Path, chunks: int, score, *, device: str = "cpu"):
    """Train config.train.steps steps in `chunks` calls of training.train (each resumes the last: one run with a
    constant LR), calling score(step, WaveGrad with the EMA weights) after each; returns (train info, [scores])."""
    total = config.train.steps
    marks = sorted({max(1, round(total * (k + 1) / chunks)) for k in range(chunks)})
    points, info = [], None
    for mark in marks:
        t = time.perf_counter()
        info = train(on_bundled(config, data, steps=mark, ckpt_every=mark, device=device), run)
        info["chunk_wall_s"] = time.perf_counter() - t
        points.append(score(mark, WaveGrad.from_pretrained(run, device=device)))
    return info, points


def train(config: AudioConfig, out: Path) -> dict:
    """The app's own training entry (resuming a checkpoint in `out`), summarised for the JSON."""
    result = training.train(config, out)
    return {
        "steps": result.step,
        "loss": result.loss,
        "steps_per_sec": result.steps_per_sec,
        "wall_s": result.wall_time,
        "params": sum(p.numel() for p in result.final_model.parameters()),
    }


def pick(d: dict) -> dict:
    return {k: round(float(d[k]), 4) for k in ("log_mel_distance", "mr_stft", "rtf") if k in d}


# ----------------------------------------------------------------------------------------------------------------
# CPU mode


def cpu_small(
    data: dict,
    work: Path,
    steps: int,
    quick: bool,
    table_seconds: float,
    table_clips: int,
    search_seconds: float,
    chunks: int = 4,
) -> dict:
    torch.set_num_threads(1)
    config = load_config(
        AudioConfig,
        "default",
        [f"train.steps={steps}", "train.min_lr=1e-3", "train.progress=false"],  # constant LR: chunks = one run
        package="omnidiffusion.audio",
    )
    run = work / "default"
    shutil.rmtree(run, ignore_errors=True)  # a fresh run: fit would resume a stale checkpoint
    test, val = data["test"], data["validation"]
    curve_clips = data.get("test_curve", test)
    gl = evaluate_griffin_lim(config.mel, curve_clips)

    def score(step: int, model: WaveGrad) -> dict:
        r = evaluate_model(model, curve_clips, iterations=6)
        print(f"  small step {step}: log-mel {r['log_mel_distance']:.3f}", flush=True)
        return {"step": step, **pick(r)}

    info, curve = train_in_chunks(config, data, run, chunks, score)
    model = WaveGrad.from_pretrained(run)
    search = search_model_schedule(model, val[:1], steps=6, sweeps=1, max_seconds=search_seconds, progress=False)
    rows = []
    one = [test[0][: config.mel.sample_rate]]  # 1000 iterations: the first second of the first clip
    test = [c[: int(table_seconds * config.mel.sample_rate)] for c in test[:table_clips]]  # the table: clip starts
    plans = [
        ("ddpm 1000 (first 1 s of clip 1)", {"iterations": 1000}, one),
        ("ddpm 50", {"iterations": 50}, test),
        ("ddpm 25", {"iterations": 25}, test),
        ("ddpm 6 (default)", {"betas": inference_betas(6)}, test),
        ("ddpm 6 (searched)", {"betas": search["betas"]}, test),
    ]
    plans += [(f"dpm++2m {s}", {"method": "dpm++2m", "steps": s}, test) for s in (6, 12, 25)]
    if quick:
        plans = [p for p in plans if "1000" not in p[0]]
    rows.append({"sampler": "Griffin-Lim, 32 iterations", **pick(evaluate_griffin_lim(config.mel, test))})
    for name, kw, clips in plans:
        r = evaluate_model(model, clips, **kw)
        rows.append({"sampler": name, **pick(r)})
        print(f"  {name}: {rows[-1]}", flush=True)
    torch.set_num_threads(2)
    rtf2 = evaluate_model(model, test, betas=search["betas"])["rtf"]
    torch.set_num_threads(1)
    # Mel swap: vocode clip 2's mel while clip 1 is the 'original'; the output must follow the mel it was given.
    n = min(test[0].numel(), test[1].numel())
    a, b = test[0][:n], test[1][:n]
    out = model.vocode(model.mel(b)[0], betas=search["betas"], length=n)
    swap = {
        "to_given_mel_clip": float(log_mel_distance(b[None], out[None])[0]),
        "to_other_clip": float(log_mel_distance(a[None], out[None])[0]),
    }
    return {
        "config": "default",
        "train": info,
        "curve": curve,
        "griffin_lim_32": pick(gl),
        "iterations": rows,
        "searched_6": {
            "betas": search["betas"],
            "validation_score": search["score"],
            "validation_default": search["default_score"],
        },
        "rtf_6_searched_2_threads": rtf2,
        "mel_swap": swap,
    }


def cpu_paper(
    data: dict, work: Path, steps: int, *, amp: str = "bf16", threads: int = 2, chunks: int = 4, model: str = "paper"
) -> dict:
    """The reference protocol (section 10 of the audio research note) with our paper-size WaveGrad.

    Same sentences, batch 4, 24-frame segments, `steps` steps, Adam 2e-4 as the reference; trained with CPU
    bf16 autocast (`amp`) on `threads` threads. The held-out distance with the default 6-step schedule is taken
    after each of `chunks` equal parts; at the end a 6-step schedule is searched on the validation clips and
    scored on the five held-out clips, as the reference's 1.885 was. With amp = "bf16" the curve points and the
    search run under bf16 autocast too (several times faster, same scores to 1e-3); the final held-out score is
    taken in fp32 and in bf16. RTF: one thread, fp32 and bf16 autocast.
    """
    low = torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16")
    torch.set_num_threads(threads)
    config = AudioConfig(
        mel=REFERENCE_MEL,
        model=paper_model(model),
        train=TrainConfig(
            steps=steps,
            batch_size=4,
            lr=2e-4,
            min_lr=2e-4,
            ema_decay=0.995,
            amp=amp,
            ckpt_every=max(1, steps),
            log_every=50,
            progress=False,
        ),
    )
    test = data["test"]

    def score(step: int, model: WaveGrad) -> dict:
        with low:
            r = evaluate_model(model, test, betas=inference_betas(6))
        print(f"  paper step {step}: log-mel {r['log_mel_distance']:.3f} (default 6-step schedule)", flush=True)
        return {"step": step, **pick(r)}

    shutil.rmtree(work / "paper", ignore_errors=True)  # a fresh run: fit would resume a stale checkpoint
    info, curve = train_in_chunks(config, data, work / "paper", chunks, score)
    model = WaveGrad.from_pretrained(work / "paper")
    with low:
        search = search_model_schedule(model, data["validation"], steps=6, max_seconds=1.0, progress=False)
    searched = evaluate_model(model, test, betas=search["betas"], return_audio=True)
    out_rms = float(torch.cat(searched.pop("audio")).pow(2).mean().sqrt())
    print(f"  paper, searched 6-step schedule: log-mel {searched['log_mel_distance']:.3f}", flush=True)
    rtf32, rtf16 = paper_rtf(model, test[0], search["betas"])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = evaluate_model(model, test, betas=search["betas"])
    return {
        "train": info,
        "threads": threads,
        "amp": amp,
        "seconds_per_step": 1.0 / info["steps_per_sec"],
        "curve_default_6": curve,
        "searched_6": {**pick(searched), "betas": search["betas"], "validation_score": search["score"]},
        "searched_6_bf16_inference": pick(bf16),
        "rtf_6_1_thread": rtf32,
        "rtf_6_1_thread_bf16": rtf16,
        "rms": {"output": out_rms, "held_out_clips": float(torch.cat(test).pow(2).mean().sqrt())},
    }


def paper_rtf(model: WaveGrad, clip: torch.Tensor, betas: list, repeats: int = 3) -> tuple[float, float]:
    """RTF of vocoding the first 2 s of `clip` with `betas` on one thread, fp32 and bf16 autocast: the median of
    `repeats` runs after one warm-up run (the first call pays oneDNN's one-time setup)."""
    torch.set_num_threads(1)
    one = clip[: 2 * REFERENCE_MEL.sample_rate]
    mel = model.mel(one)[0]
    seconds = one.numel() / REFERENCE_MEL.sample_rate
    out = []
    for dtype in (None, torch.bfloat16):
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            runs = [real_time_factor(lambda: model.vocode(mel, betas=betas), seconds)[0] for _ in range(repeats + 1)]
        out.append(statistics.median(runs[1:]))
    return out[0], out[1]


def _small_markdown(s: dict) -> list[str]:
    lines = [
        "### Small default model (0.58 M parameters, 22,050 Hz / hop 256 / 80 mels), trained on CPU",
        "",
        "| step | log-mel distance (6 it.) | MR-STFT |",
        "|---|---|---|",
    ]
    lines += [f"| {c['step']} | {c['log_mel_distance']:.3f} | {c['mr_stft']:.3f} |" for c in s["curve"]]
    gl = s["griffin_lim_32"]
    lines += [
        f"| Griffin-Lim, 32 it. | {gl['log_mel_distance']:.3f} | {gl['mr_stft']:.3f} |",
        "",
        "| sampler (final EMA weights) | log-mel distance | MR-STFT | RTF (1 thread) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['sampler']} | {r['log_mel_distance']:.3f} | {r['mr_stft']:.3f} | {r['rtf']:.3f} |"
        for r in s["iterations"]
    ]
    lines += [
        "",
        f"RTF of 6 iterations on 2 threads: {s['rtf_6_searched_2_threads']:.3f}. Mel swap: the output "
        f"vocoded from clip 2's mel scores {s['mel_swap']['to_given_mel_clip']:.3f} against clip 2 and "
        f"{s['mel_swap']['to_other_clip']:.3f} against clip 1.",
        "",
    ]
    return lines


def write_curve(res: dict, path: Path) -> None:
    """Held-out log-mel distance against training steps (small and paper-size runs, the reference's curve) with
    Griffin-Lim as a horizontal line."""
    curves, base = {}, {}
    s, p = res.get("small"), res.get("paper")
    if s:
        curves["small default model (6 it.)"] = (
            [c["step"] for c in s["curve"]],
            [c["log_mel_distance"] for c in s["curve"]],
        )
        base["Griffin-Lim, 32 it."] = s["griffin_lim_32"]["log_mel_distance"]
    if p:
        c = p["curve_default_6"]
        curves["paper size (6 it.)"] = ([x["step"] for x in c], [x["log_mel_distance"] for x in c])
        ref = REFERENCE["curve_searched_6"]
        curves["reference, paper size (searched 6 it.)"] = ([int(k) for k in ref], list(ref.values()))
    if curves:
        distance_curve(path, curves, base)


def write_gpu_curve(gpu: dict, path: Path) -> None:
    """The GPU run's held-out distance against its training steps (batch 256), Griffin-Lim as a line."""
    c = gpu["paper_scale"]["curve"]
    steps = [x["step"] for x in c]
    curves = {
        "searched 6 it.": (steps, [x["searched_6"]["log_mel_distance"] for x in c]),
        "default 6 it.": (steps, [x["default_6"]["log_mel_distance"] for x in c]),
    }
    base = {
        "Griffin-Lim, 32 it.": gpu["griffin_lim_32"]["log_mel_distance"],
        "reference, 2,000 steps at batch 4": REFERENCE["searched_6"]["log_mel_distance"],
    }
    distance_curve(path, curves, base, xlabel=f"training step (batch {gpu['paper_scale']['batch_size']})")


def _gpu_markdown(gpu: dict) -> list[str]:
    g = gpu["paper_scale"]
    gl = gpu["griffin_lim_32"]["log_mel_distance"]
    lines = [
        f"### Paper-size WaveGrad at paper-scale batch on one GPU ({gpu['device']})",
        "",
        f"The same {g['params'] / 1e6:.1f} M model and 22,050 Hz / hop 300 / 128-mel features, batch "
        f"{g['batch_size']} (the paper's) of 24-frame segments, Adam 2e-4, bf16 autocast, EMA 0.999, trained "
        f"{g['train_seconds']:.0f} s ({g['steps']} steps at {statistics.mean(g['train_steps_per_sec']):.1f} "
        "steps/s); after each quarter a 6-step schedule is searched on the validation clips and scored on the "
        "held-out clips (torch " + gpu["torch"] + ").",
        "",
        "![GPU run: held-out log-mel distance against training steps](audio_gpu_curve.png)",
        "",
        "| step (batch 256) | training s | log-mel, searched 6 it. | log-mel, default 6 it. | MR-STFT (searched) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {c['step']} | {c['train_seconds']:.0f} | {c['searched_6']['log_mel_distance']:.3f} | "
        f"{c['default_6']['log_mel_distance']:.3f} | {c['searched_6']['mr_stft']:.3f} |"
        for c in g["curve"]
    ]
    sm = g["sampling"]
    lines += [
        f"| Griffin-Lim, 32 it. | - | {gl:.3f} | - | {gpu['griffin_lim_32']['mr_stft']:.3f} |",
        "",
        f"Sampling: {sm['batch']} mels of {sm['seconds_of_audio_each']:.1f} s in {sm['wall_s']:.2f} s with 6 "
        f"iterations (RTF {sm['rtf']:.4f}); peak GPU memory {g['peak_gpu_memory_gib']:.1f} GiB; whole run "
        f"{gpu['wall_s'] / 60:.1f} min.",
        "",
    ]
    return lines


def write_markdown(res: dict, path: Path, gpu: dict | None = None) -> None:
    s, p = res.get("small"), res.get("paper")
    lines = [
        "## Audio (WaveGrad vocoder)",
        "",
        f"Data: {res['data']} ({res['protocol']['train_clips']} training clips, {res['protocol']['test_clips']} "
        f"held-out clips of another voice, {res['protocol']['test_seconds']:.1f} s). Metric: log-mel distance "
        "of the reference measurement (mean |log mel_ref - log mel_est|, 22,050 Hz, FFT 1024, hop 256, 80 mels, "
        "0-8 kHz, power 1); MR-STFT = spectral convergence + log-magnitude L1 at three resolutions. Lower is "
        "better. Machine: " + res["machine"] + ", 2 cores.",
        "",
    ]
    if s or p:
        lines += ["![held-out log-mel distance against training steps](audio_curve.png)", ""]
    if s:
        lines += _small_markdown(s)
    if p:
        ref = REFERENCE
        lines += [
            f"### Paper-size WaveGrad ({p['train']['params'] / 1e6:.1f} M) against the measured reference "
            "(lmnt-com/wavegrad)",
            "",
            "The reference protocol: the same 60 sentences, batch 4, 24-frame segments (7,200 samples), "
            f"{p['train']['steps']} steps, Adam 2e-4, 22,050 Hz / hop 300 / 128 mels; scored on the five held-out "
            f"clips of another voice. Ours trains with bf16 autocast on {p['threads']} CPU threads "
            f"({p['seconds_per_step']:.2f} s/step); EMA 0.995.",
            "",
            "| system | steps | log-mel distance, searched 6-step schedule | RTF 6 it., 1 thread |",
            "|---|---|---|---|",
            f"| reference WaveGrad | 2000 | {ref['searched_6']['log_mel_distance']} | "
            f"{ref['searched_6']['rtf_1_thread']} |",
            f"| ours, fp32 inference | {p['train']['steps']} | {p['searched_6']['log_mel_distance']:.3f} | "
            f"{p['rtf_6_1_thread']:.2f} |",
            f"| ours, bf16 autocast inference | {p['train']['steps']} | "
            f"{p['searched_6_bf16_inference']['log_mel_distance']:.3f} | {p['rtf_6_1_thread_bf16']:.2f} |",
            "",
            "Held-out distance during training (default 6-step schedule; the reference's searched-schedule curve "
            "is "
            + ", ".join(f"{v} at {k}" for k, v in ref["curve_searched_6"].items())
            + "): "
            + ", ".join(f"{c['log_mel_distance']:.3f} at {c['step']}" for c in p["curve_default_6"])
            + f". Output RMS {p['rms']['output']:.3f} against {p['rms']['held_out_clips']:.3f} for the held-out "
            f"clips. Searched betas: {', '.join(f'{b:.3g}' for b in p['searched_6']['betas'])}.",
            "",
        ]
    if gpu and "paper_scale" in gpu:
        lines += _gpu_markdown(gpu)
    for name, part in (("small-model part", s), ("paper-size part", p)):
        if part and "wall_s" in part:
            lines.append(
                f"- {name}: wall {part['wall_s'] / 60:.1f} min, process CPU {part['cpu_s'] / 60:.1f} min; "
                f"`{part['command']}`"
                + (f"; RTF re-timed with `{part['rtf_command']}`" if part.get("rtf_command") else "")
            )
    lines += ["", f"Peak memory {res['peak_rss_mb']:.0f} MB.", ""]
    path.write_text("\n".join(lines))


def cpu_mode(args: argparse.Namespace) -> None:
    """--part small (default, about 10 min), paper (the reference protocol, about 24 min on 2 threads) or all; a
    part run alone keeps the other part's results from an existing audio.json."""
    start = time.perf_counter()
    work = Path(args.work)
    out = Path(args.out)
    data = splits(22050, Path(args.cache_dir))
    previous = out / "audio.json"
    res = json.loads(previous.read_text()) if previous.exists() and args.part != "all" else {}
    res.update(
        {
            "data": data["source"],
            "machine": f"{platform.machine()} CPU, torch {torch.__version__}",
            "reference": REFERENCE,
        }
    )
    res.setdefault("protocol", {}).update(
        {
            "train_clips": len(data["train"]),
            "test_clips": len(data["test"]),
            "test_seconds": sum(c.numel() for c in data["test"]) / 22050,
            "seeds": "seed 0 + clip index",
            "metric_mel": asdict(MelConfig()),
        }
    )
    if args.curve_seconds:
        data["test_curve"] = [c[: int(args.curve_seconds * 22050)] for c in data["test"]]
    if args.part in ("small", "all") and not args.paper_rtf_only:
        t0 = time.perf_counter()
        res["small"] = cpu_small(
            data,
            work,
            args.default_steps,
            args.quick,
            args.table_seconds,
            args.table_clips,
            args.search_seconds,
            args.curve_points,
        )
        res["small"]["wall_s"] = time.perf_counter() - t0
        res["small"]["cpu_s"] = time.process_time()
        res["small"]["command"] = "python benchmarks/audio.py " + " ".join(sys.argv[1:])
        res["protocol"].update(
            table_seconds_per_clip=args.table_seconds,
            table_clips=args.table_clips,
            curve_seconds_per_clip=args.curve_seconds,
            search_seconds=args.search_seconds,
        )
    if args.paper_rtf_only:  # re-time the trained paper-size model of an earlier --part paper run
        if "paper" not in res or not (work / "paper").is_dir():
            raise SystemExit(f"--paper-rtf-only: no paper run in {previous} and {work / 'paper'}; run --part paper")
        p = res["paper"]
        model = WaveGrad.from_pretrained(work / "paper")
        betas = p["searched_6"]["betas"]
        p["rtf_6_1_thread"], p["rtf_6_1_thread_bf16"] = paper_rtf(model, data["test"][0], betas)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            p["searched_6_bf16_inference"] = pick(evaluate_model(model, data["test"], betas=betas))
        p["rtf_command"] = "python benchmarks/audio.py " + " ".join(sys.argv[1:])
    elif args.part in ("paper", "all") and args.paper_steps > 0:
        t0, c0 = time.perf_counter(), time.process_time()
        if args.test_seconds:  # code-path runs only
            data["test"] = [c[: int(args.test_seconds * 22050)] for c in data["test"]]
        res["paper"] = cpu_paper(
            data, work, args.paper_steps, amp=args.paper_amp, threads=args.paper_threads, model=args.model
        )
        res["paper"]["wall_s"] = time.perf_counter() - t0
        res["paper"]["cpu_s"] = time.process_time() - c0
        res["paper"]["command"] = "python benchmarks/audio.py " + " ".join(sys.argv[1:])
    res["wall_s"] = sum(res[k]["wall_s"] for k in ("small", "paper") if k in res and "wall_s" in res[k])
    res["peak_rss_mb"] = max(res.get("peak_rss_mb", 0), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out.mkdir(parents=True, exist_ok=True)
    (out / "audio.json").write_text(json.dumps(res, indent=2) + "\n")
    render(out)
    print(f"wall {time.perf_counter() - start:.0f} s")


def render(out: Path) -> None:
    """audio.md and the figures from out/audio.json, with out/audio_gpu.json (a GPU-mode run) where present."""
    res = json.loads((out / "audio.json").read_text())
    gpu_path = out / "audio_gpu.json"
    gpu = json.loads(gpu_path.read_text()) if gpu_path.exists() else None
    write_curve(res, out / "audio_curve.png")
    if gpu and "paper_scale" in gpu:
        write_gpu_curve(gpu, out / "audio_gpu_curve.png")
    write_markdown(res, out / "audio.md", gpu)


# ----------------------------------------------------------------------------------------------------------------
# GPU mode


def _curve_point(model: WaveGrad, data: dict, label: dict, val_seconds: float = 1.0) -> dict:
    search = search_model_schedule(model, data["validation"], steps=6, max_seconds=val_seconds, progress=False)
    r = evaluate_model(model, data["test"], betas=search["betas"])
    d = evaluate_model(model, data["test"], betas=inference_betas(6))
    point = {**label, "searched_6": pick(r), "default_6": pick(d), "betas": search["betas"]}
    print(f"  {point}", flush=True)
    return point


def gpu_mode(args: argparse.Namespace) -> None:
    device = "cuda" if torch.cuda.is_available() else args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available; pass --device cpu to exercise this mode")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    work = Path(args.work)
    data = splits(22050, Path(args.cache_dir))
    if args.test_seconds:
        data["test"] = [c[: int(args.test_seconds * 22050)] for c in data["test"]]
    gl = evaluate_griffin_lim(REFERENCE_MEL, data["test"])
    res = {
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else device,
        "data": data["source"],
        "griffin_lim_32": pick(gl),
        "reference": REFERENCE,
        "torch": torch.__version__,
    }
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every stage, so a run cut short still leaves its figures
        res["wall_s"] = time.perf_counter() - t0
        (out / "audio_gpu.json").write_text(json.dumps(res, indent=2) + "\n")

    # 1. The reference protocol: paper size, batch 4, 24-frame segments, Adam 2e-4, --ref-steps steps.
    if args.ref_steps > 0:
        every = max(1, args.ref_steps // 4)
        cfg = AudioConfig(
            mel=REFERENCE_MEL,
            model=paper_model(args.model),
            train=TrainConfig(
                steps=args.ref_steps,
                batch_size=4,
                lr=2e-4,
                min_lr=2e-4,
                ema_decay=0.999,
                ckpt_every=every,
                log_every=50,
                progress=False,
            ),
        )
        info, curve = train_in_chunks(
            cfg,
            data,
            work / "ref",
            4,
            lambda s, m: _curve_point(m, data, {"step": s}, args.val_seconds),
            device=device,
        )
        res["reference_protocol"] = {"train": info, "curve": curve, "batch_size": 4, "segment_frames": 24}
        save()

    # 2. Paper scale: batch 256 (halved until it fits), bf16 autocast, trained for --seconds in 4 chunks; each
    # chunk is one call of training.train resuming the last checkpoint (constant LR: the chunks are one run).
    batch = args.batch
    base = AudioConfig(mel=REFERENCE_MEL, model=paper_model(args.model))
    amp = "bf16" if device.startswith("cuda") else "none"

    def paper_config(steps: int, log_every: int) -> AudioConfig:
        cfg = on_bundled(
            base, data, steps=steps, batch_size=batch, lr=2e-4, min_lr=2e-4, ema_decay=0.999, amp=amp,
            device=device, ckpt_every=10**9, log_every=log_every, progress=False,
        )  # fmt: skip
        repeats = max(1, math.ceil(4 * batch / len(data["train"])))
        return replace(cfg, data=replace(cfg.data, segment_frames=24, repeats=repeats))

    run = work / "paper_scale"
    steps_done, curve, speeds = 0, [], []
    chunk_s = args.seconds / 4
    steps_per_chunk = None
    t_train = 0.0
    while True:
        try:
            t = time.perf_counter()
            r = training.train(paper_config(steps_done + 5, 5), run)
            t_train += time.perf_counter() - t
            steps_done = r.step
            break
        except torch.OutOfMemoryError:
            batch //= 2
            torch.cuda.empty_cache()
            shutil.rmtree(run, ignore_errors=True)
            if batch < 4:
                raise
    cfg = paper_config(steps_done, 50)
    params = sum(p.numel() for p in r.final_model.parameters())
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for i in range(4):
        if steps_per_chunk is None:
            steps_per_chunk = max(1, int(r.steps_per_sec * (chunk_s - t_train)))
        t = time.perf_counter()
        r = training.train(paper_config(steps_done + steps_per_chunk, 50), run)
        t_train += time.perf_counter() - t
        steps_done = r.step
        speeds.append(r.steps_per_sec)
        if i == 0:  # rescale to the measured speed so the 4 chunks fill --seconds
            steps_per_chunk = max(1, int(r.steps_per_sec * chunk_s))
        model = WaveGrad.from_pretrained(run, device=device)
        curve.append(
            _curve_point(model, data, {"step": steps_done, "train_seconds": round(t_train, 1)}, args.val_seconds)
        )
        res["paper_scale_partial"] = {"batch_size": batch, "steps_per_sec": speeds, "curve": curve}
        save()
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None

    # 3. Sampling speed: one batch of 16 two-second mels, 6 iterations (ddpm, searched schedule).
    mels = torch.stack([model.mel(c[: 2 * 22050])[0] for c in data["test"] for _ in range(4)][:16])
    betas = curve[-1]["betas"]
    with torch.no_grad():
        vocode_mel(model.net, mels[:2], betas=betas)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        vocode_mel(model.net, mels, betas=betas)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
    seconds_each = mels.shape[-1] * cfg.mel.hop_length / cfg.mel.sample_rate
    res["paper_scale"] = {
        "config": {
            "mel": asdict(cfg.mel),
            "model": asdict(cfg.model),
            "batch_size": batch,
            "segment_frames": 24,
            "lr": 2e-4,
            "amp": "bf16",
            "ema_decay": 0.999,
        },
        "params": params,
        "batch_size": batch,
        "steps": steps_done,
        "train_seconds": round(t_train, 1),
        "train_steps_per_sec": speeds,
        "curve": curve,
        "sampling": {
            "sampler": "ddpm (WaveGrad Alg. 2), searched 6-step schedule",
            "batch": 16,
            "seconds_of_audio_each": seconds_each,
            "wall_s": dt,
            "samples_per_sec": 16 / dt,
            "rtf": dt / (16 * seconds_each),
        },
        "peak_gpu_memory_gib": peak,
    }
    res.pop("paper_scale_partial", None)
    save()
    print(json.dumps({k: v for k, v in res.items() if k != "reference"}, indent=2)[:6000])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--work", default=str(ROOT / "runs" / "audio_bench"))
    parser.add_argument("--cache-dir", default=str(ROOT / "runs" / "audio" / "data"))
    parser.add_argument("--default-steps", type=int, default=1000, help="CPU: training steps of the small model")
    parser.add_argument("--part", choices=("small", "paper", "all"), default="small", help="CPU: which part to run")
    parser.add_argument("--paper-steps", type=int, default=2000, help="CPU: steps of the paper-size run (0: skip)")
    parser.add_argument("--paper-amp", default="bf16", help="CPU: autocast of the paper-size training (none|bf16)")
    parser.add_argument("--paper-threads", type=int, default=2, help="CPU: threads of the paper-size training")
    parser.add_argument(
        "--paper-rtf-only",
        action="store_true",
        help="CPU: re-time (and re-score under bf16) the paper-size model of an earlier paper run",
    )
    parser.add_argument("--quick", action="store_true", help="CPU: skip the 1000-iteration row")
    parser.add_argument("--table-seconds", type=float, default=2.0, help="CPU: clip length in the iterations table")
    parser.add_argument("--curve-points", type=int, default=4, help="CPU: evaluations along the small run")
    parser.add_argument("--table-clips", type=int, default=5, help="CPU: test clips in the iterations table")
    parser.add_argument("--curve-seconds", type=float, default=None, help="CPU: cut test clips for the curve")
    parser.add_argument("--search-seconds", type=float, default=1.0, help="CPU: validation clip length (search)")
    parser.add_argument("--render", action="store_true", help="only rewrite audio.md and the figures in --out")
    parser.add_argument("--gpu-paper-scale", action="store_true", help="GPU mode (see the module docstring)")
    parser.add_argument("--seconds", type=float, default=240.0, help="GPU mode: paper-scale training seconds")
    parser.add_argument("--ref-steps", type=int, default=2000, help="GPU mode: steps of the reference protocol")
    parser.add_argument("--batch", type=int, default=256, help="GPU mode: paper-scale batch size")
    parser.add_argument("--val-seconds", type=float, default=1.0, help="GPU mode: validation clip length (search)")
    parser.add_argument("--test-seconds", type=float, default=None, help="GPU mode: cut test clips (code-path runs)")
    parser.add_argument("--model", default="paper", help="GPU mode: bundled config whose [model] is used (tiny: tests)")
    parser.add_argument("--device", default="cuda", help="GPU mode: device when CUDA is missing (cpu to test)")
    args = parser.parse_args()
    if args.render:
        render(Path(args.out))
    elif args.gpu_paper_scale:
        gpu_mode(args)
    else:
        cpu_mode(args)


if __name__ == "__main__":
    main()
