"""Image plumbing: PIL / numpy <-> tensors, the [0, 1] <-> [-1, 1] range maps, and the resampling of SR.

Conventions: tensors are float (B, C, H, W) or (C, H, W); "pixel range" is [0, 1]; models work in [-1, 1].
Low-resolution images are made by anti-aliased bicubic downsampling (torch `interpolate(..., antialias=True)`,
the PIL/Matlab-style area-aware bicubic), and SR3's conditioning input is the bicubic upsampling of the LR
image back to the HR size (Saharia et al. 2021, sec. 2).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

UPSAMPLE_MODES = ("nearest", "bilinear", "bicubic")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def to_model_range(x: Tensor) -> Tensor:
    """[0, 1] -> [-1, 1]."""
    return x * 2.0 - 1.0


def to_pixel_range(x: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1], clamped."""
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


def check_images(
    x: Tensor, name: str = "images", *, channels: int | None = None, low: float = -1.0, high: float = 1.0
) -> Tensor:
    """Validate a float (B, C, H, W) batch with finite values in [low, high] (a small tolerance allowed)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name}: expected shape (B, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name}: expected {channels} channel(s), got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or inf values")
    lo, hi = x.min().item(), x.max().item()
    if lo < low - 1e-3 or hi > high + 1e-3:
        raise ValueError(f"{name}: expected values in [{low:g}, {high:g}], got range [{lo:.4g}, {hi:.4g}]")
    return x


def image_to_tensor(image, channels: int | None = None, name: str = "image") -> Tensor:
    """PIL image, uint8/float ndarray (H, W[, C]) or tensor (C, H, W) -> float tensor (C, H, W) in [0, 1].

    `channels` converts: 1 = grayscale (ITU-R 601 luma, as PIL "L"), 3 = RGB.
    """
    if isinstance(image, Image.Image):
        if channels == 1:
            image = image.convert("L")
        elif channels == 3 or image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        arr = np.asarray(image, dtype=np.float32) / 255.0
        t = torch.from_numpy(arr.copy())
        t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
    elif isinstance(image, np.ndarray):
        arr = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
        t = torch.from_numpy(np.ascontiguousarray(arr))
        if t.ndim == 2:
            t = t[None]
        elif t.ndim == 3:
            t = t.permute(2, 0, 1)
        else:
            raise ValueError(f"{name}: expected an array of shape (H, W) or (H, W, C), got {arr.shape}")
    elif isinstance(image, Tensor):
        if image.ndim != 3:
            raise ValueError(f"{name}: expected a tensor of shape (C, H, W), got shape {tuple(image.shape)}")
        t = image.float()
    else:
        raise ValueError(f"{name}: expected a PIL image, numpy array or tensor, got {type(image).__name__}")
    if t.shape[0] not in (1, 3):
        raise ValueError(f"{name}: expected 1 or 3 channels, got {t.shape[0]}")
    if not torch.isfinite(t).all() or t.min() < -1e-6 or t.max() > 1 + 1e-6:
        raise ValueError(f"{name}: expected finite pixel values in [0, 1] (or uint8), got another range")
    if channels == 1 and t.shape[0] == 3:
        t = (0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2])[None]
    elif channels == 3 and t.shape[0] == 1:
        t = t.expand(3, -1, -1).clone()
    return t.clamp(0.0, 1.0)


def tensor_to_pil(x: Tensor) -> Image.Image:
    """Float (C, H, W) in [0, 1] -> PIL image ("L" for 1 channel, "RGB" for 3), rounded to uint8."""
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"x: expected shape (1 or 3, H, W), got {tuple(x.shape)}")
    arr = (x.detach().float().clamp(0, 1).cpu().numpy() * 255.0).round().astype(np.uint8)
    return Image.fromarray(arr[0], "L") if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0), "RGB")


def note(message: str) -> None:
    """One line on stderr announcing a conversion the user did not ask for: `note: <message>`."""
    print(f"note: {message}", file=sys.stderr, flush=True)


_INT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")


def decode_image(im: Image.Image, channels: int | None = None, name: str = "image") -> tuple[Tensor, list[str]]:
    """PIL image -> ((C, H, W) float in [0, 1], the conversions made), the one place image modes are handled.

    - 16-bit (and 32-bit integer) grey images are scaled by /65535, keeping all 16 bits (never clipped at 255);
      values outside [0, 65535] are refused. Float images ("F") must already hold values in [0, 1].
    - An alpha channel (RGBA, LA, PA, palette transparency) is dropped; palette / bilevel / CMYK / YCbCr images
      decode to RGB or grey.
    - `channels` = 1 turns colour into grey with ITU-R 601 luma (PIL "L"); 3 repeats grey to RGB.
    """
    done: list[str] = []
    mode = im.mode
    if mode in _INT_MODES or mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if mode == "F":
            if not np.isfinite(arr).all() or lo < 0.0 or hi > 1.0:
                raise ValueError(f"{name}: expected a floating-point image with values in [0, 1], got [{lo:g}, {hi:g}]")
        else:
            if lo < 0 or hi > 65535:
                raise ValueError(f"{name}: expected 8- or 16-bit pixel values, got integers in [{lo:g}, {hi:g}]")
            arr = arr / 65535.0
            done.append("16-bit values scaled to [0, 1] by /65535")
        t = torch.from_numpy(arr.astype(np.float32))[None]  # (1, H, W)
        if channels == 3:
            t = t.expand(3, -1, -1).clone()
            done.append("grey repeated to 3 channels (RGB)")
        return t, done
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in im.info):
        done.append("alpha channel dropped")
    grey = mode in ("L", "LA", "La", "1")
    if mode not in ("L", "RGB"):
        im = im.convert("L" if grey else "RGB")
    if channels == 1 and not grey:
        im = im.convert("L")
        done.append("RGB converted to 1 channel (grey, ITU-R 601 luma)")
    elif channels == 3 and grey:
        im = im.convert("RGB")
        done.append("grey repeated to 3 channels (RGB)")
    return image_to_tensor(im, channels, name), done


def load_image(path: str | Path, channels: int | None = None) -> tuple[Tensor, list[str]]:
    """Read a PNG/JPEG/... file: ((C, H, W) tensor in [0, 1], the conversions `decode_image` made).

    Missing or non-image files raise FileNotFoundError / ValueError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im.load()
            return decode_image(im, channels, str(path))
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path}: not a readable image file (expected PNG/JPEG/...): {e}") from None


def read_image(path: str | Path, channels: int | None = None, *, notes: bool = True) -> Tensor:
    """`load_image` that announces a conversion (16-bit, alpha, RGB <-> grey) with one `note:` line on stderr."""
    t, done = load_image(path, channels)
    if done and notes:
        note(f"{path}: {'; '.join(done)}")
    return t


def read_images(paths: list[Path], channels: int | None, where: str) -> list[Tensor]:
    """`load_image` of many files with one `note:` line for all of them (`where`: the folder, for the message)."""
    out, done = [], {}
    for p in paths:
        t, conv = load_image(p, channels)
        out.append(t)
        for c in conv:
            done[c] = done.get(c, 0) + 1
    if done:
        note(f"{where}: " + "; ".join(f"{c} ({k} of {len(paths)} images)" for c, k in done.items()))
    return out


def image_files(folder: str | Path) -> list[Path]:
    """Sorted image files (by suffix) directly inside `folder`; FileNotFoundError/ValueError if none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (expected a folder of PNG/JPEG images)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no image files (expected suffixes {', '.join(IMAGE_SUFFIXES)})")
    return files


def check_scale(size: tuple[int, int], scale: int, name: str = "image") -> None:
    """Raise ValueError unless both sides are divisible by the SR factor."""
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale: expected an integer >= 1, got {scale!r}")
    h, w = size
    if h % scale or w % scale:
        raise ValueError(f"{name}: size {h}x{w} is not divisible by the scale factor {scale}")


def downsample(x: Tensor, scale: int) -> Tensor:
    """Anti-aliased bicubic downsampling by an integer factor: (B, C, H, W) -> (B, C, H/scale, W/scale)."""
    check_scale((x.shape[-2], x.shape[-1]), scale, "x")
    if scale == 1:
        return x
    size = (x.shape[-2] // scale, x.shape[-1] // scale)
    return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)


def upsample(x: Tensor, scale: int, mode: str = "bicubic") -> Tensor:
    """Interpolate (B, C, h, w) -> (B, C, h*scale, w*scale) with nearest / bilinear / bicubic."""
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"mode: expected one of {UPSAMPLE_MODES}, got {mode!r}")
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale: expected an integer >= 1, got {scale!r}")
    size = (x.shape[-2] * scale, x.shape[-1] * scale)
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode=mode, align_corners=False)
