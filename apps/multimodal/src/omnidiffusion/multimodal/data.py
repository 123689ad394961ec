"""Bundled scenes with captions from a grammar, and a loader for folders of captioned images.

A scene holds 1 or 2 objects, each a (shape, colour, size); one object sits near the centre, two sit left and
right. Captions come from a small grammar: "a small red circle", "a large blue square left of a small green
triangle", or the same pair said the other way round ("... right of ..."). Images are 32x32 RGB in [-1, 1],
drawn at 4x resolution and box-filtered down (anti-aliased edges), with jitter in position, size and tint.

Compositional split (Lake & Baroni 2018's idea, applied to images): the colour-shape pairs in HELD_OUT (red
triangle, green square, blue circle) never occur in "train"; each colour and each shape still occurs with other
partners. "seen" draws test scenes from the training distribution; "unseen" scenes contain at least one held-out
pair; "judge" draws from every combination, to train the attribute classifier that scores generations.

Labels (B, 7) int64: count-1, then shape, colour, size of object A (the single or the left object) and of
object B (the right one; -1 when there is one object).

User data: a folder of images plus captions.csv with columns `file,caption` (see `load_folder`).
"""

from __future__ import annotations

import csv
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from omnidiffusion.core.checks import positive_int

SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue", "yellow")
SIZES = ("small", "large")
RGB = {"red": (225, 45, 40), "green": (40, 200, 70), "blue": (50, 90, 235), "yellow": (235, 215, 40)}
HELD_OUT = (("red", "triangle"), ("green", "square"), ("blue", "circle"))
SPLITS = ("train", "seen", "unseen", "judge")
SPLIT_SEEDS = {"train": 0, "seen": 1, "unseen": 2, "judge": 3}
RESOLUTION = 32
_SS = 4  # supersampling factor of the renderer
_RADIUS = {"small": 3.6, "large": 6.2}  # pixels at 32x32
ATTRIBUTES = ("count", "shape", "colour", "size")


@dataclass(frozen=True)
class Obj:
    shape: str
    colour: str
    size: str

    def words(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"


def caption(objects: tuple[Obj, ...], swap: bool = False) -> str:
    """The grammar: 'a <size> <colour> <shape>' or 'a <A> left of a <B>' (or 'a <B> right of a <A>' if swap)."""
    if len(objects) == 1:
        return f"a {objects[0].words()}"
    a, b = objects
    return f"a {b.words()} right of a {a.words()}" if swap else f"a {a.words()} left of a {b.words()}"


_OBJ = r"(small|large) (red|green|blue|yellow) (circle|square|triangle)"
_ONE = re.compile(rf"^a {_OBJ}$")
_TWO = re.compile(rf"^a {_OBJ} (left|right) of a {_OBJ}$")


def parse_caption(text: str) -> tuple[Obj, ...]:
    """Objects (A = single/left, B = right) of a caption in the grammar; ValueError names the caption otherwise."""
    t = " ".join(str(text).lower().split())
    m = _ONE.match(t)
    if m:
        return (Obj(m[3], m[2], m[1]),)
    m = _TWO.match(t)
    if m:
        first, second = Obj(m[3], m[2], m[1]), Obj(m[7], m[6], m[5])
        return (first, second) if m[4] == "left" else (second, first)
    raise ValueError(
        f"caption: expected 'a <size> <colour> <shape>' or 'a <object> left of|right of a <object>' with sizes "
        f"{'/'.join(SIZES)}, colours {'/'.join(COLOURS)}, shapes {'/'.join(SHAPES)}; got {text!r}"
    )


def canonical_caption(text: str) -> str:
    """A caption of the grammar in its one canonical order, the left object first ('a <B> right of a <A>' becomes
    'a <A> left of a <B>'; case and spacing normalised); text outside the grammar is returned unchanged."""
    try:
        return caption(parse_caption(text))
    except ValueError:
        return text


def labels_of(objects: tuple[Obj, ...]) -> list[int]:
    out = [len(objects) - 1]
    for i in range(2):
        if i < len(objects):
            o = objects[i]
            out += [SHAPES.index(o.shape), COLOURS.index(o.colour), SIZES.index(o.size)]
        else:
            out += [-1, -1, -1]
    return out


def is_held_out(obj: Obj) -> bool:
    return (obj.colour, obj.shape) in HELD_OUT


def _all_objects() -> list[Obj]:
    return [Obj(s, c, z) for s, c, z in itertools.product(SHAPES, COLOURS, SIZES)]


def _draw(canvas: np.ndarray, obj: Obj, cx: float, cy: float, r: float, tint: np.ndarray) -> None:
    """Paint one object into a (H*ss, W*ss, 3) float canvas (pixel units of the final image times _SS)."""
    n = canvas.shape[0]
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / _SS + 0.5 / _SS
    dx, dy = xx - cx, yy - cy
    if obj.shape == "circle":
        mask = dx**2 + dy**2 <= r**2
    elif obj.shape == "square":
        h = 0.86 * r
        mask = (np.abs(dx) <= h) & (np.abs(dy) <= h)
    else:  # an upward triangle inscribed in the circle of radius 1.15 r
        R = 1.15 * r
        top, base = cy - R, cy + 0.5 * R
        half = (dy - (top - cy)) / (1.5 * R) * (R * np.sqrt(3) / 2)
        mask = (yy >= top) & (yy <= base) & (np.abs(dx) <= half)
    canvas[mask] = tint


def render(objects: tuple[Obj, ...], rng: np.random.Generator) -> np.ndarray:
    """One (32, 32, 3) uint8 image of the objects (layout and jitter from `rng`)."""
    n = RESOLUTION * _SS
    canvas = np.zeros((n, n, 3), np.float32)
    canvas[:] = rng.uniform(10, 35)  # a dark grey background of random level
    centres = [(16.0, 16.0)] if len(objects) == 1 else [(8.5, 16.0), (23.5, 16.0)]
    for obj, (cx, cy) in zip(objects, centres, strict=True):
        r = _RADIUS[obj.size] * rng.uniform(0.92, 1.08)
        jx = 2.5 if len(objects) == 1 else 1.0
        x, y = cx + rng.uniform(-jx, jx), cy + rng.uniform(-4.0, 4.0)
        tint = np.clip(np.array(RGB[obj.colour], np.float32) + rng.uniform(-18, 18, 3), 0, 255)
        _draw(canvas, obj, x, y, r, tint)
    img = canvas.reshape(RESOLUTION, _SS, RESOLUTION, _SS, 3).mean(axis=(1, 3))
    return np.round(img).astype(np.uint8)


def sample_scenes(split: str, n: int, seed: int = 0) -> list[tuple[Obj, ...]]:
    """n scenes of `split` (train / seen: no held-out pair; unseen: at least one; judge: any)."""
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
    n = positive_int(n, "n")
    rng = np.random.default_rng([SPLIT_SEEDS[split], seed, 7])
    objs = _all_objects()
    seen = [o for o in objs if not is_held_out(o)]
    held = [o for o in objs if is_held_out(o)]
    scenes = []
    for _ in range(n):
        count = 1 + int(rng.random() < 0.5)
        if split in ("train", "seen"):
            pool = seen
            scene = tuple(pool[i] for i in rng.integers(len(pool), size=count))
        elif split == "judge":
            scene = tuple(objs[i] for i in rng.integers(len(objs), size=count))
        else:  # unseen: one held-out object, the other (if any) from anywhere, in a random slot
            first = held[rng.integers(len(held))]
            scene = (first,) if count == 1 else (first, objs[rng.integers(len(objs))])
            if count == 2 and rng.random() < 0.5:
                scene = scene[::-1]
        scenes.append(scene)
    return scenes


@dataclass
class SceneSet:
    """Images (N, 3, 32, 32) float32 in [-1, 1], captions (N strings), labels (N, 7) int64."""

    images: Tensor
    captions: list[str]
    labels: Tensor

    def __len__(self) -> int:
        return len(self.captions)


def make_split(split: str, n: int, seed: int = 0) -> SceneSet:
    """Render n scenes of `split` with captions (the swap form for half of the two-object scenes)."""
    scenes = sample_scenes(split, n, seed)
    rng = np.random.default_rng([SPLIT_SEEDS[split], seed, 11])
    images = np.stack([render(s, rng) for s in scenes])  # (N, 32, 32, 3) uint8
    caps = [caption(s, swap=bool(rng.random() < 0.5)) for s in scenes]
    return SceneSet(to_tensor(images), caps, torch.tensor([labels_of(s) for s in scenes], dtype=torch.int64))


def to_tensor(images: np.ndarray) -> Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).contiguous()


def to_uint8(images: Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8 (values outside are clipped)."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


class CaptionedImages(Dataset):
    """(image, caption) pairs for `fit`; collate with `collate`."""

    def __init__(self, images: Tensor, captions: list[str]) -> None:
        if images.ndim != 4 or images.shape[0] != len(captions):
            raise ValueError(f"images, captions: expected (N, C, H, W) and N captions, got {tuple(images.shape)} "
                             f"and {len(captions)}")
        self.images, self.captions = images, list(captions)

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, i: int) -> tuple[Tensor, str]:
        return self.images[i], self.captions[i]


def collate(batch: list[tuple[Tensor, str]]) -> tuple[Tensor, list[str]]:
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


def load_folder(folder: str | Path, resolution: int = RESOLUTION) -> tuple[Tensor, list[str]]:
    """Images and captions from `folder`/captions.csv (columns file,caption; files relative to the folder).

    Images are converted to RGB and resized (bicubic) to resolution x resolution; returns (N, 3, R, R) in
    [-1, 1] and the captions. Errors name the file and the line.
    """
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    index = folder / "captions.csv"
    if not index.is_file():
        raise FileNotFoundError(f"{index}: no such file (expected a CSV with columns file,caption)")
    with open(index, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"file", "caption"} <= set(rows[0]):
        raise ValueError(f"{index}: expected a header with columns file,caption and at least one row")
    images, caps = [], []
    for line, row in enumerate(rows, start=2):
        path = folder / (row["file"] or "")
        if not path.is_file():
            raise FileNotFoundError(f"{index} line {line}: no such image {path}")
        try:
            with Image.open(path) as im:
                im = im.convert("RGB").resize((resolution, resolution), Image.Resampling.BICUBIC)
                images.append(np.asarray(im, dtype=np.uint8))
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"{index} line {line}: {path} is not a readable image: {e}") from None
        text = (row["caption"] or "").strip()
        if not text:
            raise ValueError(f"{index} line {line}: empty caption")
        caps.append(text)
    return to_tensor(np.stack(images)), caps


def write_folder(folder: str | Path, images: Tensor, captions: list[str]) -> Path:
    """Write images as PNGs plus captions.csv (the format `load_folder` reads)."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arr = to_uint8(images)
    with open(folder / "captions.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "caption"])
        for i, (img, cap) in enumerate(zip(arr, captions, strict=True)):
            name = f"{i:05d}.png"
            Image.fromarray(img).save(folder / name)
            w.writerow([name, cap])
    return folder
