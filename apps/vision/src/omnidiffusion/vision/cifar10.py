"""CIFAR-10 from its binary distribution `cifar-10-batches-bin` (Krizhevsky 2009), read without unpickling.

    x, y = cifar10_binary("data", split="test")    # data/cifar-10-batches-bin/test_batch.bin -> (10000, 3, 32, 32)

Layout (the "binary version" of https://www.cs.toronto.edu/~kriz/cifar.html): `data_batch_1.bin` ..
`data_batch_5.bin` (train, 10000 records each) and `test_batch.bin` (test), each a plain concatenation of
3073-byte records: 1 label byte (0..9), then 3072 pixel bytes, the 1024 red values of the 32x32 image in row-major
order, then the 1024 green, then the 1024 blue. `batches.meta.txt` holds the 10 class names, one per line.

The "python version" (`cifar-10-batches-py`, pickled dicts, which torchvision's CIFAR10 reads) is never read: a
pickle executes code on load, so a folder that holds it is refused with a pointer to the binary version.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from omnidiffusion.core.checks import positive_int

FOLDER = "cifar-10-batches-bin"
PYTHON_FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
META_FILE = "batches.meta.txt"
SIDE = 32
PIXELS = 3 * SIDE * SIDE  # 3072: R plane, G plane, B plane
RECORD_BYTES = 1 + PIXELS  # 3073
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, what PIL's convert("L") uses


def _looks_binary(folder: Path) -> bool:
    return any((folder / f).is_file() for f in (*TRAIN_FILES, *TEST_FILES))


def _looks_pickled(folder: Path) -> bool:
    return any((folder / f).is_file() for f in ("data_batch_1", "test_batch", "batches.meta"))


def is_cifar10_binary(path: str | Path) -> bool:
    """True when `path` is (or directly holds) a `cifar-10-batches-bin` folder, told by its file names."""
    p = Path(path)
    return p.is_dir() and (_looks_binary(p) or _looks_binary(p / FOLDER))


def is_cifar10_python(path: str | Path) -> bool:
    """True when `path` is (or directly holds) the pickled `cifar-10-batches-py` folder, which is never read."""
    p = Path(path)
    return p.is_dir() and (_looks_pickled(p) or _looks_pickled(p / PYTHON_FOLDER))


def _refuse_pickled(folder: Path, name: str) -> None:
    raise ValueError(
        f"{name}: {folder} holds the pickled python version of CIFAR-10 ({PYTHON_FOLDER}: data_batch_1, "
        f"test_batch, batches.meta), which is never unpickled; expected the binary version ({FOLDER}: "
        f"data_batch_1.bin .. data_batch_5.bin, test_batch.bin), from cifar-10-binary.tar.gz"
    )


def cifar10_folder(root: str | Path, name: str = "data.root") -> Path:
    """The `cifar-10-batches-bin` folder: `root` itself when it holds the .bin files, else root/cifar-10-batches-bin."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{name}: {root} is not a directory (expected {FOLDER} or the folder holding it)")
    for folder in (root, root / FOLDER):
        if folder.is_dir() and _looks_binary(folder):
            return folder
    for folder in (root, root / PYTHON_FOLDER):
        if folder.is_dir() and _looks_pickled(folder):
            _refuse_pickled(folder, name)
    found = sorted(p.name for p in root.iterdir())[:8]
    raise FileNotFoundError(
        f"{name}: no CIFAR-10 binary files in {root} or {root / FOLDER} (expected data_batch_1.bin .. "
        f"data_batch_5.bin and test_batch.bin); found {found}"
    )


def read_batch(path: str | Path) -> tuple[Tensor, Tensor]:
    """One batch file: (N, 3, 32, 32) uint8 images and (N,) int64 labels, checked record by record.

    Raises ValueError naming the file when its size is not a positive multiple of 3073 bytes or a label byte is
    not a class index 0..9.
    """
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)  # (N * 3073,)
    if raw.size == 0 or raw.size % RECORD_BYTES:
        raise ValueError(
            f"{path}: expected a whole number of {RECORD_BYTES}-byte CIFAR-10 records (1 label byte + {PIXELS} "
            f"pixel bytes), got {raw.size} bytes ({raw.size // RECORD_BYTES} records + {raw.size % RECORD_BYTES})"
        )
    records = raw.reshape(-1, RECORD_BYTES)  # (N, 3073)
    labels = records[:, 0].astype(np.int64)
    bad = np.flatnonzero(labels >= len(CLASSES))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{path}: record {i} (byte offset {i * RECORD_BYTES}): expected a label byte 0..{len(CLASSES) - 1}, "
            f"got {labels[i]} ({bad.size} bad record(s)); is this a CIFAR-100 or a corrupted file?"
        )
    images = records[:, 1:].reshape(-1, 3, SIDE, SIDE)  # (N, C, H, W): planes R, G, B, each row-major
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels)


def read_class_names(root: str | Path, name: str = "data.root") -> tuple[str, ...]:
    """The class names of `batches.meta.txt` (one per line, blank lines ignored); the standard 10 when absent."""
    meta = cifar10_folder(root, name) / META_FILE
    if not meta.is_file():
        return CLASSES
    names = tuple(line.strip() for line in meta.read_text(encoding="utf-8").splitlines() if line.strip())
    if len(names) != len(CLASSES):
        raise ValueError(f"{meta}: expected {len(CLASSES)} class names, one per line, got {len(names)}: {names[:12]}")
    return names


def cifar10_binary(
    root: str | Path,
    split: str = "test",
    *,
    size: int = SIDE,
    channels: int = 3,
    name: str = "data.root",
    note: Callable[[str], None] | None = None,
) -> tuple[Tensor, Tensor]:
    """CIFAR-10 binary as (N, channels, size, size) float32 in [0, 1] (= byte / 255) and (N,) int64 labels.

    split: "train" (data_batch_1..5.bin, in order), "test" (test_batch.bin) or "all" (train then test). Every file
    of the split must be present. Other sizes are bilinear resamples (antialiased when shrinking) and channels=1
    the ITU-R 601-2 luma; `note` hears about either once.
    """
    files = {"train": TRAIN_FILES, "test": TEST_FILES, "all": TRAIN_FILES + TEST_FILES}.get(split)
    if files is None:
        raise ValueError(f"split: expected 'train', 'test' or 'all', got {split!r}")
    size = positive_int(size, "size")
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ValueError(f"channels: expected 1 (grey) or 3 (RGB), got {channels!r}")
    folder = cifar10_folder(root, name)
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{name}: {folder}: the {split} split needs {list(files)}; missing {missing}")
    parts = [read_batch(folder / f) for f in files]
    images = torch.cat([p[0] for p in parts]).float().div_(255.0)  # (N, 3, 32, 32) in [0, 1]
    labels = torch.cat([p[1] for p in parts])
    if channels == 1:
        luma = torch.tensor(LUMA, dtype=images.dtype).reshape(1, 3, 1, 1)
        images = (images * luma).sum(1, keepdim=True)  # (N, 1, 32, 32)
    if size != SIDE:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=size < SIDE)
    if note is not None and (size != SIDE or channels != 3):
        note(f"{name}: CIFAR-10 images (32x32, 3 channels) converted to {size}x{size}, {channels} channel(s)")
    return images.clamp_(0.0, 1.0).contiguous(), labels


__all__ = [
    "CLASSES",
    "FOLDER",
    "RECORD_BYTES",
    "TEST_FILES",
    "TRAIN_FILES",
    "cifar10_binary",
    "cifar10_folder",
    "is_cifar10_binary",
    "is_cifar10_python",
    "read_batch",
    "read_class_names",
]
