"""Benchmark: diffusion segmentation (SegDiff-style) vs Otsu and a same-size UNet; DDPM-Seg vs raw pixels.

Protocol: the bundled "mixed" set (ellipses, polygons and the horse silhouette filled with one scikit-image texture
and pasted on another, 32x32 grey, exact masks), 600 items split by seed 0 into 500 training and 100 held-out images.
1. SegDiff (config segdiff-shapes) and the same-size UNet (seg-unet-shapes: the same encoder + UNet, BCE + Dice) are
   trained with core `fit` for the same steps on the same images; with --threads 2 (the default) side by side, one
   process and one thread each. On the held-out images: Dice / IoU (mean per
   image and pooled) of the SegDiff ensemble (mean of n = 5 masks, threshold 0.5), of the UNet (sigmoid >= 0.5) and
   of Otsu (minority polarity). Quality against sampler steps: dpm++2m (5, 10 steps) on all held-out images,
   the paper's ancestral chain (T = 100 steps) and 25 ancestral steps on the first --paper-images of them.
2. DDPM-Seg (ddpm-seg-shapes): an unconditional ImageDDPM trained 400 steps on the 500 training images (no
   labels); features from its decoder blocks at 3 noise levels; an ensemble of 5 pixel MLPs on 512 pixels of
   each of the first 8 training images; mIoU on the 100 held-out images against the same ensemble on raw 5x5
   neighbourhoods with the same labelled pixels. Peak tensor memory of the feature streaming is measured
   (segmentation/memory.py) and compared with what keeping every pixel's features would take.
Writes benchmarks/results/vision_seg.json and vision_seg.md.

    python benchmarks/vision_seg.py                 # CPU, 2 threads (the two trainings side by side)
    python benchmarks/vision_seg.py --quick         # seconds-long smoke run (not a result)
    python benchmarks/vision_seg.py --gpu-paper-scale --seconds 120 --out DIR [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

import torch
from _vision import train_side_by_side  # benchmarks/_vision.py, beside this script

from omnidiffusion.vision import load_vision_config
from omnidiffusion.vision.segmentation.data import bundled_split
from omnidiffusion.vision.segmentation.ddpm_seg import compare_with_raw_pixels, ddpm_for_features
from omnidiffusion.vision.segmentation.evaluation import evaluate_segmentation
from omnidiffusion.vision.segmentation.features import DDPMFeatures, sample_pixels
from omnidiffusion.vision.segmentation.memory import TensorMemory
from omnidiffusion.vision.segmentation.models import SegDiff, SegUNet, count_parameters
from omnidiffusion.vision.segmentation.pipeline import Segmenter
from omnidiffusion.vision.segmentation.training import train_seg_unet, train_segdiff

ROOT = Path(__file__).resolve().parents[1]


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="2+: SegDiff and the UNet train side by side on CPU")
    p.add_argument("--steps", type=int, default=None, help="training steps of SegDiff and the UNet (config's)")
    p.add_argument("--ddpm-steps", type=int, default=400, help="training steps of DDPM-Seg's ImageDDPM")
    p.add_argument("--paper-images", type=int, default=20, help="held-out images for the ancestral-chain rows")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--work", default="runs/bench/vision_seg")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--set", action="append", default=[], help="config override key=value (repeatable)")
    p.add_argument("--gpu-paper-scale", action="store_true")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--out", default="runs/bench/gpu")
    p.add_argument("--batch", type=int, default=None)
    return p.parse_args()


def _overrides(args: argparse.Namespace, steps: int | None) -> list[str]:
    over = [*args.set, f"train.device={args.device}", "train.progress=false"]
    if steps is not None:
        over.append(f"train.steps={steps}")
    if args.quick:
        over += ["train.steps=6", "train.log_every=3", "train.ckpt_every=6", "seg.n_images=40", "seg.n_test=10"]
    return over


def segdiff_part(args, work: Path) -> dict:
    sd_cfg = load_vision_config("segdiff-shapes", _overrides(args, args.steps))
    un_cfg = load_vision_config("seg-unet-shapes", _overrides(args, args.steps))
    s = sd_cfg.seg
    split = bundled_split(s.n_images, s.n_test, sd_cfg.data.image_size, s.source, s.data_seed, s.split_seed)
    (tr_x, tr_m), (te_x, te_m) = split["train"], split["test"]
    jobs = [(train_segdiff, tr_x, tr_m, sd_cfg, work / "segdiff"), (train_seg_unet, tr_x, tr_m, un_cfg, work / "unet")]
    side_by_side = args.threads >= 2 and args.device == "cpu"
    (t_sd, c_sd), (t_un, c_un) = train_side_by_side(jobs, side_by_side)
    sd, un = SegDiff.from_pretrained(work / "segdiff"), SegUNet.from_pretrained(work / "unet")
    segd, unet = Segmenter(sd, "segdiff"), Segmenter(un, "seg-unet")
    print(f"trained SegDiff {t_sd:.0f} s, UNet {t_un:.0f} s", flush=True)
    n = s.n_samples
    rows = {}
    main = None
    sweeps = [("dpm++2m", 5), ("dpm++2m", 10)]
    for method, steps in sweeps:
        r = evaluate_segmentation(segd, te_x, te_m, unet=unet, n_samples=n, method=method, steps=steps)
        rows[f"{method}-{steps}"] = r["model"]
        main = r if steps == 10 else main
        print(f"{method}-{steps}: Dice {r['model']['dice']:.3f}", flush=True)
    k = min(args.paper_images, te_x.shape[0])
    sub = {}
    for method, steps in [("ddpm", 25), ("ddpm", sd.schedule.T), ("dpm++2m", 10)]:
        r = evaluate_segmentation(segd, te_x[:k], te_m[:k], unet=unet, n_samples=n, method=method, steps=steps)
        sub[f"{method}-{steps}"] = r["model"]
        sub_baselines = r["baselines"]
        print(f"first {k}: {method}-{steps}: Dice {r['model']['dice']:.3f}", flush=True)
    return {
        "params": {"segdiff": count_parameters(sd), "unet": count_parameters(un)},
        "train_seconds": {"segdiff": t_sd, "unet": t_un},
        "train_cpu_seconds": {"segdiff": c_sd, "unet": c_un},
        "side_by_side": side_by_side,
        "t_power": s.t_power,
        "mask_head": s.mask_head,
        "bce_weight": s.bce_weight,
        "dice_weight": s.dice_weight,
        "steps": sd_cfg.train.steps,
        "main": main,
        "sampler_sweep": rows,
        "paper_chain_subset": {"images": k, "rows": sub, "baselines": sub_baselines},
        "prediction": sd_cfg.prediction,
        "n_train": int(tr_x.shape[0]),
        "n_test": int(te_x.shape[0]),
        "fusion": s.fusion,
    }


def ddpm_seg_part(args, work: Path) -> dict:
    over = _overrides(args, args.ddpm_steps)
    if args.quick:
        over += ["seg.n_labelled=2", "seg.mlp_epochs=2", "seg.pixels_per_image=64"]
    cfg = load_vision_config("ddpm-seg-shapes", over)
    s = cfg.seg
    split = bundled_split(s.n_images, s.n_test, cfg.data.image_size, s.source, s.data_seed, s.split_seed)
    (tr_x, tr_m), (te_x, te_m) = split["train"], split["test"]
    t0, c0 = time.perf_counter(), time.process_time()
    ddpm = ddpm_for_features(tr_x, cfg, work / "ddpm", resume=False)
    t_ddpm, c_ddpm = time.perf_counter() - t0, time.process_time() - c0
    print(f"trained ImageDDPM {t_ddpm:.0f} s", flush=True)
    result = compare_with_raw_pixels(ddpm, tr_x, tr_m, te_x, te_m, cfg, work / "ddpm_seg")
    feats = DDPMFeatures(ddpm, list(s.feature_blocks), list(s.feature_steps))
    with TensorMemory() as mem:
        X, y = sample_pixels(feats, feats.dim, tr_x[: s.n_labelled], tr_m[: s.n_labelled], s.pixels_per_image)
        del X, y
    with TensorMemory() as one:
        feats(tr_x[0])
    h, w = tr_x.shape[-2:]
    result["memory"] = {
        "peak_tensor_bytes": mem.peak,
        "one_image_peak_bytes": one.peak,
        "sampled_buffer_bytes": s.n_labelled * s.pixels_per_image * (feats.dim * 4 + 8),
        "all_pixels_bytes": s.n_labelled * feats.dim * h * w * 4,
        "feature_dim": feats.dim,
    }
    result["ddpm_train_seconds"], result["ddpm_train_cpu_seconds"] = t_ddpm, c_ddpm
    print(f"DDPM-Seg mIoU {result['model']['miou']:.3f}", flush=True)
    return result


def gpu_mode(args: argparse.Namespace) -> None:
    """Train segdiff-paper for args.seconds (core fit), time sampling; write OUT/vision_seg_gpu.json."""
    import torch.nn.functional as F

    from omnidiffusion.vision.segmentation.data import synthetic_set

    device = args.device if args.device != "auto" else "cuda"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--gpu-paper-scale: CUDA is not available; pass --device cpu to exercise the code path")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_vision_config("segdiff-paper", [*args.set, f"train.device={device}", "train.progress=false"])
    size, c = cfg.data.image_size, cfg.data.channels
    if device == "cpu":  # exercise the code path on a CPU: the paper's width on 16x16 images, batch 2
        size = 16
        cfg = load_vision_config("segdiff-paper", [*args.set, "train.device=cpu", "train.progress=false",
                                                    "data.image_size=16", "model.channel_mults=1,2",
                                                    "model.attention_resolutions=[8]", "seg.encoder_blocks=1",
                                                    "train.batch_size=2"])  # fmt: skip
    small, masks = synthetic_set(64, 32, "mixed", seed=1)
    images = F.interpolate(small, size=(size, size), mode="bilinear").expand(-1, c, -1, -1).clamp(0, 1)
    masks = (F.interpolate(masks, size=(size, size), mode="nearest") >= 0.5).float()
    batch = args.batch or cfg.train.batch_size
    for old in ("probe", "vision_seg_gpu_run"):
        shutil.rmtree(out / old, ignore_errors=True)
    probe = load_vision_config("segdiff-paper", [])  # only to keep the paper's numbers in the record
    t0 = time.perf_counter()
    cfg.train.steps, cfg.train.batch_size, cfg.train.log_every, cfg.train.ckpt_every = 3, batch, 1, 10**6
    train_segdiff(images, masks, cfg, out / "probe", resume=False)
    per_step = (time.perf_counter() - t0) / 3
    steps = max(3, int(args.seconds / per_step))
    cfg.train.steps, cfg.train.log_every = steps, max(1, steps // 10)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model = train_segdiff(images, masks, cfg, out / "vision_seg_gpu_run", resume=False).to(device)
    train_s = time.perf_counter() - t0
    timings = {}
    for method, st in (("dpm++2m", 10), ("ddpm", model.schedule.T)):
        t0 = time.perf_counter()
        model.sample_masks(images[:batch] * 2 - 1, 1, method=method, steps=st, batch_size=batch)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        timings[f"{method}-{st}"] = batch / (time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else None
    result = {
        "benchmark": "vision_seg --gpu-paper-scale (segdiff-paper)",
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or "cpu",
        "params": count_parameters(model),
        "image_size": size,
        "batch": batch,
        "steps": steps,
        "steps_per_s": steps / train_s,
        "samples_per_s": timings,
        "peak_gpu_memory_bytes": peak,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "paper_config": {"image_size": probe.data.image_size, "base_channels": probe.model.base_channels},
    }
    (out / "vision_seg_gpu.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _md(res: dict) -> str:
    sd, dseg = res["segdiff"], res["ddpm_seg"]
    m, b = sd["main"]["model"], sd["main"]["baselines"]
    lines = [
        "## Vision: segmentation",
        "",
        f"Bundled mixed set (shapes + horse on textures, 32x32 grey), {sd['n_train']} train / {sd['n_test']} "
        "held-out. SegDiff "
        f"({sd['params']['segdiff']:,} params, {sd['prediction']}-prediction, fusion {sd['fusion']}) and the "
        f"same-size UNet ({sd['params']['unet']:,} params, BCE + Dice) trained {sd['steps']} steps each with core fit"
        + (" (side by side, one process and one thread each)" if sd.get("side_by_side") else "")
        + f". SegDiff loss: x0-MSE + {sd.get('dice_weight', 0):g} Dice + {sd.get('bce_weight', 0):g} BCE, mask head "
        f"{sd.get('mask_head', 'linear')}, training steps drawn with t_power {sd.get('t_power', 1):g}. "
        "Ensemble of 5 masks, mean thresholded at 0.5; Dice/IoU = mean per image (both empty -> 1), pooled = over "
        "all pixels. Otsu: minority polarity.",
        "",
        "| method | Dice | IoU | Dice pooled | IoU pooled |",
        "|---|---|---|---|---|",
        f"| SegDiff, dpm++2m-10, mean of 5 | {m['dice']:.3f} | {m['iou']:.3f} | {m['dice_pooled']:.3f} | "
        f"{m['iou_pooled']:.3f} |",
        f"| SegDiff, one draw | {m['dice_single_draw']:.3f} | {m['iou_single_draw']:.3f} | | |",
    ]
    for name, row in b.items():
        lines.append(
            f"| {name} | {row['dice']:.3f} | {row['iou']:.3f} | {row['dice_pooled']:.3f} | {row['iou_pooled']:.3f} |"
        )
    lines += [
        "",
        f"Uncertainty (per-pixel std of the 5 draws): {m['uncertainty_on_errors']:.3f} on wrong pixels vs "
        f"{m['uncertainty_on_correct']:.3f} on right ones.",
        "",
        "Quality against sampler steps (Dice, mean of 5):",
        "",
        "| sampler | images | Dice | IoU | sampling s |",
        "|---|---|---|---|---|",
    ]
    for name, row in sd["sampler_sweep"].items():
        lines.append(
            f"| {name} | {sd['n_test']} | {row['dice']:.3f} | {row['iou']:.3f} | {row['sampling_seconds']:.0f} |"
        )
    k = sd["paper_chain_subset"]["images"]
    for name, row in sd["paper_chain_subset"]["rows"].items():
        lines.append(f"| {name} | first {k} | {row['dice']:.3f} | {row['iou']:.3f} | {row['sampling_seconds']:.0f} |")
    for name, row in sd["paper_chain_subset"]["baselines"].items():
        lines.append(f"| {name} (baseline) | first {k} | {row['dice']:.3f} | {row['iou']:.3f} | |")
    dm, mem = dseg["model"], dseg["memory"]
    lines += [
        "",
        f"DDPM-Seg: ImageDDPM trained on the {sd['n_train']} training images; decoder blocks "
        f"{dseg['protocol']['blocks']} at "
        f"table steps {dseg['protocol']['steps']} ({dm['feature_dim']}-d features); {dseg['protocol']['mlps']} pixel "
        f"MLPs on {dseg['protocol']['pixels_per_image']} pixels of each of {dseg['protocol']['labelled_images']} "
        f"labelled images; mIoU pooled per class over the {sd['n_test']} held-out images.",
        "",
        "| features | dim | mIoU | IoU foreground | IoU background |",
        "|---|---|---|---|---|",
        f"| DDPM decoder features | {dm['feature_dim']} | {dm['miou']:.3f} | {dm['iou_foreground']:.3f} | "
        f"{dm['iou_background']:.3f} |",
    ]
    for name, row in dseg["baselines"].items():
        lines.append(
            f"| {name} | {row['feature_dim']} | {row['miou']:.3f} | {row['iou_foreground']:.3f} | "
            f"{row['iou_background']:.3f} |"
        )
    lines += [
        "",
        f"Feature memory: peak {mem['peak_tensor_bytes'] / 2**20:.2f} MiB of tensors while streaming the labelled "
        f"images (one image {mem['one_image_peak_bytes'] / 2**20:.2f} MiB + sampled pixels "
        f"{mem['sampled_buffer_bytes'] / 2**20:.2f} MiB) vs {mem['all_pixels_bytes'] / 2**20:.2f} MiB to keep every "
        "pixel's features.",
        "",
        f"Run: `{res.get('command', 'python benchmarks/vision_seg.py')}` ({res['threads']} thread(s), "
        f"{res['device']}): wall {res['wall_seconds'] / 60:.1f} min, CPU time {res['cpu_seconds'] / 60:.1f} min "
        f"(this process and its training workers), peak RSS {res['peak_rss_bytes'] / 2**20:.0f} MiB; machine: "
        f"{res['machine']}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    args = _args()
    torch.set_num_threads(args.threads)
    if args.gpu_paper_scale:
        gpu_mode(args)
        return
    t_start, c_start = time.perf_counter(), time.process_time()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)  # the benchmark's own scratch folder: every run trains from scratch
    result = {"benchmark": "vision_seg", "quick": args.quick, "device": args.device, "threads": args.threads}
    result["segdiff"] = segdiff_part(args, work)
    result["ddpm_seg"] = ddpm_seg_part(args, work)
    result["wall_seconds"] = time.perf_counter() - t_start
    tc = result["segdiff"]["train_cpu_seconds"]
    workers = tc["segdiff"] + tc["unet"] if result["segdiff"]["side_by_side"] else 0.0
    result["cpu_seconds"] = time.process_time() - c_start + workers
    result["command"] = " ".join(["python benchmarks/vision_seg.py", *sys.argv[1:]])
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result["machine"] = f"{platform.machine()}, {platform.system()}, python {sys.version.split()[0]}, torch " + (
        torch.__version__
    )
    sd = result["segdiff"]["main"]
    result["acceptance"] = {
        "segdiff_dice_above_otsu": sd["model"]["dice"] > sd["baselines"]["otsu"]["dice"],
        "segdiff_not_below_unet_by_more_than_0.01": sd["model"]["dice"]
        >= sd["baselines"]["unet-bce-dice"]["dice"] - 0.01,
        "ddpm_seg_beats_raw_pixels": result["ddpm_seg"]["model"]["miou"]
        > max(r["miou"] for r in result["ddpm_seg"]["baselines"].values()),
    }
    print(json.dumps(result["acceptance"]), flush=True)
    res_dir = Path(args.results) if not args.quick else work
    res_dir.mkdir(parents=True, exist_ok=True)
    (res_dir / "vision_seg.json").write_text(json.dumps(result, indent=2) + "\n")
    (res_dir / "vision_seg.md").write_text(_md(result))
    print(f"wrote {res_dir / 'vision_seg.json'} and vision_seg.md ({result['wall_seconds'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
