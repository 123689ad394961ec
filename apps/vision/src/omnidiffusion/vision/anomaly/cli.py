"""Command-line wiring of the anomaly task: `train` (task "anomaly"), `evaluate --task anomaly` and `anomaly-score`.

omnidiffusion-vision train --config anomaly-textures [--set anomaly.noise=gaussian]
omnidiffusion-vision evaluate --task anomaly --checkpoint DIR [--image-dir F --mask-dir F] [--set anomaly.t_star=..]
omnidiffusion-vision anomaly-score --checkpoint DIR --input img.png --out OUT

The detector's [anomaly] settings are the checkpoint's run config with --set applied.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ..flags import as_flags
from ..imaging import read_image
from .data import anomaly_test_set, read_mvtec_test, read_pairs
from .evaluation import evaluate_anomaly
from .pipeline import AnomalyDetector, map_image, overlay
from .training import train

TRAINS = ("anomaly",)  # the config.task values `train` runs


def _overrides(args: argparse.Namespace, config) -> dict:
    """The [anomaly] values given with --set on the command line (they replace the checkpoint's settings)."""
    keys = [o.split("=", 1)[0].strip() for o in getattr(args, "overrides", None) or []]
    names = [k.split(".", 1)[1] for k in keys if k.startswith("anomaly.")]
    return {n: getattr(config.anomaly, n) for n in names}


def _detector(args: argparse.Namespace, config) -> AnomalyDetector:
    return AnomalyDetector.from_pretrained(args.checkpoint, device=args.device, **_overrides(args, config))


def run_score(args: argparse.Namespace, config) -> int:
    """anomaly-score: write <stem>_map.png (the map scaled to its max) and <stem>_overlay.png for one image."""
    det = _detector(args, config)
    image = read_image(args.input, det.model.channels)
    with as_flags(image="--input", images="--input"):
        amap, score = det.score(image)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.input).stem
    m = torch.from_numpy(amap)
    map_image(m).save(out / f"{stem}_map.png")
    overlay(image, m).save(out / f"{stem}_overlay.png")
    if args.save_npy:
        np.save(out / f"{stem}_map.npy", amap)
    s = det.settings
    print(
        f"score {score:.5g} ({s.score} of the map; {s.noise} noise, t*={s.t_star}, {s.method}) -> "
        f"{out / (stem + '_map.png')}, {out / (stem + '_overlay.png')}"
    )
    return 0


def register(add) -> None:
    """Add this task's verbs to `omnidiffusion-vision`; `add(name, handler, help=..., out=...)` registers one
    inference command on the root config with --checkpoint."""
    p = add(
        "anomaly-score",
        run_score,
        help="AnoDDPM anomaly map and score of one image (writes the map and an overlay PNG)",
        out=("anomaly", "folder for <name>_map.png and <name>_overlay.png"),
    )
    p.add_argument("--input", required=True, help="the image (PNG/JPEG) at the model's size")
    p.add_argument("--save-npy", action="store_true", help="also write the raw map as <name>_map.npy")


def evaluate(args: argparse.Namespace, config) -> dict:
    """`evaluate --task anomaly`: detector and both baselines on --image-dir/--mask-dir (else the bundled test set)."""
    det = _detector(args, config)
    size = det.model.image_size
    if bool(args.image_dir) != bool(args.mask_dir):
        raise ValueError("--image-dir, --mask-dir: give both folders (images and their masks), or neither")
    if args.data_dir:  # an MVTec AD class folder: its test split and ground truth
        images, masks, names = read_mvtec_test(args.data_dir, det.model.channels, size)
        defects = sorted({n.split("/")[0] for n in names})
        counts = {d: sum(n.startswith(f"{d}/") for n in names) for d in defects}
        data = {"mvtec_class": str(args.data_dir), "images_per_defect": counts, "resized_to": size}
    elif args.image_dir:
        images, masks, _ = read_pairs(args.image_dir, args.mask_dir, det.model.channels, size)
        data = {"image_dir": str(args.image_dir), "mask_dir": str(args.mask_dir)}
    else:
        images, masks = anomaly_test_set(det.settings, size)
        data = {"bundled": det.settings.dataset, "texture": det.settings.texture}
    result = evaluate_anomaly(det, images, masks)
    result["protocol"]["data"] = data
    return result


__all__ = ["TRAINS", "evaluate", "register", "run_score", "train"]
