"""Diffusion-LM on the bundled E2E-like restaurant corpus: fluency, diversity, memorisation, control (Li et al. 2022).

Trains the `default` config of omnidiffusion-text (tokenizer, Diffusion-LM, time-aware attribute classifier,
teacher GPT-2) on the bundled generated corpus (train split, seed 0), then runs the protocol of
`omnidiffusion.text.evaluation.evaluate` on the held-out test split (a disjoint generator stream):

  model       unguided samples (teacher perplexity, distinct-1/2, memorisation), semantic-content control success,
              length control (exact word count), infilling (given words kept), each with its teacher perplexity;
  baselines   unigram sampler (fluency floor), the teacher LM's own samples (ceiling), unguided Diffusion-LM
              samples on the same targets (control floor), the held-out text itself (reference perplexity).

Control success is judged by the rule-based checker, never by the guiding classifier. Then a quality-vs-steps
sweep of unguided samples: the paper's ancestral sampler (ddpm) and DPM-Solver++(2M) at several step counts.

    python benchmarks/text.py [--n 200] [--threads 1] [--work DIR]
    python benchmarks/text.py --gpu-paper-scale --seconds 120 --out DIR [--device cuda]

Writes benchmarks/results/text.json and text.md (the markdown section for docs/RESULTS.md). The GPU mode builds
the paper-scale config (BERT-base sizes, L = 64, batch 64), trains it for the given seconds on the bundled corpus
and times one sampling batch; it writes DIR/text_gpu.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import torch

from omnidiffusion.core.config import load_config, to_dict
from omnidiffusion.core.training import TrainConfig, fit
from omnidiffusion.text.data import TokenDataset, encode, train_tokenizer
from omnidiffusion.text.diffusion import e2e_loss, embedding_stats
from omnidiffusion.text.evaluation import evaluate, load_teacher, load_train_texts, text_scores
from omnidiffusion.text.models import DiffusionLMNet
from omnidiffusion.text.pipeline import DiffusionLM
from omnidiffusion.text.settings import TextConfig
from omnidiffusion.text.training import load_examples, train

RESULTS = Path(__file__).resolve().parent / "results"
SWEEP = {"ddpm": (50, 100, 200), "dpm++2m": (10, 20, 50)}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_cpu(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    config = load_config(TextConfig, "default", args.set, package="omnidiffusion.text")
    work = Path(args.work)
    t0 = time.perf_counter()
    train(config, work)
    train_s = time.perf_counter() - t0
    lm = DiffusionLM.from_pretrained(work, device=args.sample_device)
    teacher = load_teacher(work).to(args.sample_device)
    train_texts = load_train_texts(work)
    test = load_examples(config)["test"]

    t1 = time.perf_counter()
    samples: dict = {}
    result = evaluate(lm, teacher, train_texts, test, args.n, config.sampler, samples_out=samples)
    eval_s = time.perf_counter() - t1

    sweep = []
    t2 = time.perf_counter()
    for method, steps_list in SWEEP.items():
        for steps in steps_list:
            ts = time.perf_counter()
            texts = lm.generate(args.n_sweep, steps=steps, method=method, seed=1)
            row = {"method": method, "steps": steps, "seconds": round(time.perf_counter() - ts, 2)}
            row.update(text_scores(texts, teacher, lm.tokenizer, train_texts))
            sweep.append(row)
            print(json.dumps(row), flush=True)
    sweep_s = time.perf_counter() - t2

    log = (work / "log.csv").read_text().splitlines()
    result.update(
        {
            "sweep": sweep,
            "embedding": embedding_stats(lm.net),
            "params": sum(p.numel() for p in lm.net.parameters()),
            "final_train_loss": float(log[-1].split(",")[1]),
            "wall_seconds": {
                "train": round(train_s, 1),
                "evaluate": round(eval_s, 1),
                "sweep": round(sweep_s, 1),
                "total": round(time.perf_counter() - t0, 1),
            },
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "machine": {
                "cpu_threads": args.threads,
                "platform": platform.platform(),
                "load_average_at_end": list(__import__("os").getloadavg()),
            },
            "config": to_dict(config),
            "examples": {k: v[:8] for k, v in samples.items()},
        }
    )
    return result


def fmt(x: float) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def markdown(r: dict) -> str:
    m, b, p = r["model"], r["baselines"], r["protocol"]
    w = r["wall_seconds"]
    lines = [
        "## Text (Diffusion-LM)",
        "",
        f"Bundled E2E-like restaurant corpus (generated, {r['config']['data']['n_train']} train sentences, vocabulary "
        f"{p['vocab_size']}, length {p['seq_len']}); held-out test split (disjoint generator stream). Default config: "
        f"{r['params'] / 1e6:.2f}M-parameter Diffusion-LM, {r['config']['train']['steps']} steps, batch "
        f"{r['config']['train']['batch_size']}. Sampler: {p['sampler']}, {p['steps']} steps; n = {p['n']} per row; "
        f"one training seed. Control success by the rule checker (never the guiding classifier). Fluency = "
        "perplexity of a 2-layer GPT-2 teacher trained on the same train split (lower is better).",
        "",
        "| samples | teacher PPL | distinct-2 | memorised | control success |",
        "|---|---|---|---|---|",
        f"| held-out text (reference) | {fmt(b['held_out_text']['teacher_ppl'])} | | | |",
        f"| teacher LM samples (ceiling) | {fmt(b['teacher_lm']['teacher_ppl'])} | {fmt(b['teacher_lm']['distinct_2'])}"
        f" | {fmt(b['teacher_lm']['memorisation'])} | |",
        f"| unigram sampler (floor) | {fmt(b['unigram']['teacher_ppl'])} | {fmt(b['unigram']['distinct_2'])} | "
        f"{fmt(b['unigram']['memorisation'])} | |",
        f"| Diffusion-LM unguided | {fmt(m['unguided_teacher_ppl'])} | {fmt(m['unguided_distinct_2'])} | "
        f"{fmt(m['unguided_memorisation'])} | semantic {fmt(b['unguided_diffusion'].get('semantic_success', 0.0))}, "
        f"length exact {fmt(b['unguided_diffusion']['length_exact'])} |",
    ]
    if "semantic_success" in m:
        lines.append(
            f"| Diffusion-LM + semantic control | {fmt(m['semantic_teacher_ppl'])} | | | {fmt(m['semantic_success'])} |"
        )
    lines += [
        f"| Diffusion-LM + length control | {fmt(m['length_teacher_ppl'])} | | | exact {fmt(m['length_exact'])}, "
        f"within 2: {fmt(m['length_within_2'])} |",
        f"| Diffusion-LM infilling | {fmt(m['infill_teacher_ppl'])} | | | words kept {fmt(m['infill_keep_rate'])} |",
        "",
        f"Quality against sampling steps (unguided, n = {r['n_sweep']} per cell, sampling seed 1):",
        "",
        "| sampler | steps | teacher PPL | distinct-2 | memorised | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["sweep"]:
        lines.append(
            f"| {row['method']} | {row['steps']} | {fmt(row['teacher_ppl'])} | {fmt(row['distinct_2'])} | "
            f"{fmt(row['memorisation'])} | {row['seconds']} |"
        )
    lines += [
        "",
        f"Wall time {w['total'] / 60:.1f} min (train {w['train'] / 60:.1f}, evaluate {w['evaluate'] / 60:.1f}, "
        f"sweep {w['sweep'] / 60:.1f}) on {r['machine']['cpu_threads']} thread of a 2-core CPU shared with other "
        f"jobs (load average at the end {r['machine']['load_average_at_end'][0]:.1f}), so times are inflated; "
        f"peak RSS {r['peak_rss_mib']:.0f} MiB. Final training loss {fmt(r['final_train_loss'])}; word vectors: "
        f"mean norm {fmt(r['embedding']['mean_norm'])}, mean nearest-neighbour distance "
        f"{fmt(r['embedding']['mean_nn_dist'])} (no collapse).",
        "",
        "Reproduce: `python benchmarks/text.py` (results in benchmarks/results/text.json).",
        "",
    ]
    return "\n".join(lines)


def run_gpu(args: argparse.Namespace) -> dict:
    """Paper-scale Diffusion-LM for `seconds` of training on the bundled corpus, then one timed sampling batch."""
    device = torch.device(args.device)
    config = load_config(TextConfig, "paper", args.set, package="omnidiffusion.text")
    config.data.n_train = 20000
    examples = load_examples(config)["train"]
    tok = train_tokenizer([e.text for e in examples], 1)
    ids = encode(tok, [e.text for e in examples], config.data.seq_len)
    m = config.model
    net = DiffusionLMNet(tok.get_vocab_size(), m.embed_dim, config.data.seq_len, **m.encoder_kwargs())
    schedule = config.schedule.build()
    amp = "bf16" if device.type == "cuda" else "none"
    out = Path(args.out)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # Steps/s from a bare warm loop (fit's final checkpoint write would weigh on a short probe), then a fit run
    # sized to the seconds asked for.
    loss = lambda model, batch: e2e_loss(model, batch, schedule)[0]  # noqa: E731
    net.to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=config.train.lr)
    batch_size = config.train.batch_size

    def one_step() -> None:
        batch = ids[torch.randint(0, len(ids), (batch_size,))].to(device)
        with torch.autocast(device.type, torch.bfloat16, enabled=amp == "bf16"):
            value = loss(net, batch)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()

    for _ in range(5):
        one_step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(20):
        one_step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    rate = 20 / (time.perf_counter() - t0)
    timed = TrainConfig(
        steps=max(10, int(rate * args.seconds)),
        batch_size=batch_size,
        lr=config.train.lr,
        amp=amp,
        device=str(device),
        ema_decay=config.train.ema_decay,
        progress=False,
        log_every=50,
        ckpt_every=10**9,
    )
    with tempfile.TemporaryDirectory() as tmp:  # checkpoints of a timing run are not kept
        res = fit(net, loss, TokenDataset(ids), timed, Path(tmp) / "run", resume=False)
    lm = DiffusionLM(res.final_model, tok, config, None, device)
    batch = config.train.batch_size
    timings = {}
    for method, steps_s in (("ddpm", 200), ("dpm++2m", 20)):
        lm.generate(batch, steps=5, method=method)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        ts = time.perf_counter()
        texts = lm.generate(batch, steps=steps_s, method=method, batch_size=batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        timings[f"{method}_{steps_s}"] = {"samples_per_s": batch / (time.perf_counter() - ts), "example": texts[0]}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    record = {
        "device": name,
        "params": sum(p.numel() for p in net.parameters()),
        "batch_size": batch,
        "amp": amp,
        "train_seconds_asked": args.seconds,
        "train_steps": res.step,
        "train_steps_per_s": res.steps_per_sec,
        "final_loss": res.loss,
        "sampling": timings,
        "sampler_note": "ddpm = the paper's ancestral sampler with the clamping trick, 200 steps; dpm++2m 20 steps",
        "peak_gpu_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "config": to_dict(config),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "text_gpu.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="samples per evaluated setting")
    ap.add_argument("--n-sweep", type=int, default=100, help="samples per sampler/steps cell of the sweep")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sample-device", default="cpu", help="device for sampling and scoring (training: auto)")
    ap.add_argument("--work", default="/tmp/omnidiffusion-text-bench", help="checkpoint directory (resumed)")
    ap.add_argument("--set", action="append", default=[], help="config override, e.g. train.steps=500")
    ap.add_argument("--gpu-paper-scale", action="store_true")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--out", default="gpu_out")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    if args.gpu_paper_scale:
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise SystemExit("--gpu-paper-scale: CUDA is not available; pass --device cpu to exercise the code path")
        print(json.dumps(run_gpu(args), indent=2))
        return
    result = run_cpu(args)
    result["n_sweep"] = args.n_sweep
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "text.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "text.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
