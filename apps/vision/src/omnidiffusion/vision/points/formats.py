"""Point-cloud files: .npy, .ply (ascii and binary_little_endian), .off, .xyz, and ShapeNet-like folders.

- .npy: an (N, 3) float array (or (N, >=3): the first three columns), read with allow_pickle=False.
- .ply: the `vertex` element's x, y, z properties; other elements (faces) are skipped by their declared sizes.
- .off: "OFF" header, "nv nf ne", then nv vertex lines (faces are ignored: points only).
- .xyz: whitespace-separated rows "x y z [more columns]"; '#' starts a comment.
- folders: `root/<class>/*.{npy,ply,off,xyz}` (ShapeNet-like class subfolders) or files directly in `root`.
  Clouds are brought to a common size by farthest point sampling (or random repeats when a file is smaller).

Nothing is unpickled; every reader raises ValueError naming the file and what was wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

SUFFIXES = (".npy", ".ply", ".off", ".xyz")
_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


def _check_points(points: np.ndarray, path: Path) -> np.ndarray:
    if points.ndim != 2 or points.shape[1] < 3 or points.shape[0] < 1:
        raise ValueError(f"{path}: expected an (N, 3) array of points, got shape {points.shape}")
    points = points[:, :3].astype(np.float32)
    if not np.isfinite(points).all():
        raise ValueError(f"{path}: expected finite coordinates, got NaN or inf")
    return points


def _read_ply(path: Path) -> np.ndarray:
    data = path.read_bytes()
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise ValueError(f"{path}: not a PLY file (expected 'ply' ... 'end_header')")
    body_start = data.index(b"\n", end) + 1
    header = data[:end].decode("ascii", errors="replace").splitlines()
    fmt, elements = None, []  # elements: [name, count, [(prop name, dtype) or (name, ("list", count_t, item_t))]]
    for line in header[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            fmt = words[1]
        elif words[0] == "element":
            elements.append([words[1], int(words[2]), []])
        elif words[0] == "property" and elements:
            if words[1] == "list":
                elements[-1][2].append((words[4], ("list", _PLY_TYPES[words[2]], _PLY_TYPES[words[3]])))
            else:
                elements[-1][2].append((words[2], _PLY_TYPES[words[1]]))
    if fmt not in ("ascii", "binary_little_endian"):
        raise ValueError(f"{path}: PLY format {fmt!r} is not supported (ascii, binary_little_endian)")
    vertex = next((e for e in elements if e[0] == "vertex"), None)
    if vertex is None or not {"x", "y", "z"} <= {p[0] for p in vertex[2]}:
        raise ValueError(f"{path}: expected a 'vertex' element with x, y, z properties")
    names = [p[0] for p in vertex[2]]
    cols = [names.index(c) for c in "xyz"]
    if fmt == "ascii":
        lines = data[body_start:].decode("ascii").split("\n")
        for e in elements:  # vertex data follow the elements declared before it (usually none)
            if e[0] == "vertex":
                break
            lines = lines[e[1] :]
        rows = [ln.split() for ln in lines[: vertex[1]]]
        if len(rows) < vertex[1] or any(len(r) < len(names) for r in rows):
            raise ValueError(f"{path}: expected {vertex[1]} vertex rows of {len(names)} values")
        return np.array([[float(r[c]) for c in cols] for r in rows], dtype=np.float64)
    offset = body_start
    for e in elements:
        if any(isinstance(p[1], tuple) for p in e[2]):
            if e[0] == "vertex":
                raise ValueError(f"{path}: list properties on vertices are not supported")
            break  # lists (faces) only after the vertices: nothing further is needed
        dtype = np.dtype([(p[0], "<" + p[1]) for p in e[2]])
        if e[0] == "vertex":
            if len(data) < offset + e[1] * dtype.itemsize:
                raise ValueError(f"{path}: file ends before its {e[1]} vertices")
            arr = np.frombuffer(data, dtype=dtype, count=e[1], offset=offset)
            return np.stack([arr[c].astype(np.float64) for c in "xyz"], axis=1)
        offset += e[1] * dtype.itemsize
    raise ValueError(f"{path}: no vertex data found")


def _read_off(path: Path) -> np.ndarray:
    words = []
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            words.append(line)
    if not words or not words[0].startswith("OFF"):
        raise ValueError(f"{path}: not an OFF file (expected 'OFF' on the first line)")
    head = words[0][3:].split() or words.pop(1).split()  # counts may share the first line ("OFF8 6 0")
    nv = int(head[0])
    rows = [w.split()[:3] for w in words[1 : 1 + nv]]
    if len(rows) < nv:
        raise ValueError(f"{path}: expected {nv} vertex lines, got {len(rows)}")
    return np.array(rows, dtype=np.float64)


def read_points(path: str | Path) -> np.ndarray:
    """One cloud from .npy / .ply / .off / .xyz: (N, 3) float32."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            points = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise ValueError(f"{path}: not a plain numeric .npy array ({err})") from err
    elif suffix == ".ply":
        points = _read_ply(path)
    elif suffix == ".off":
        points = _read_off(path)
    elif suffix == ".xyz":
        try:
            points = np.loadtxt(path, comments="#", ndmin=2)
        except ValueError as err:
            raise ValueError(f"{path}: expected rows of numbers 'x y z' ({err})") from err
    else:
        raise ValueError(f"path: expected a file ending in one of {SUFFIXES}, got {path.name!r}")
    return _check_points(np.asarray(points), path)


def write_points(path: str | Path, points: np.ndarray | Tensor, binary: bool = True) -> Path:
    """Write an (N, 3) cloud as .npy, .ply (binary_little_endian, or ascii with binary=False), .off or .xyz."""
    path = Path(path)
    pts = np.asarray(points.detach().cpu() if isinstance(points, Tensor) else points, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points: expected shape (N, 3), got {pts.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, pts)
    elif suffix == ".ply":
        fmt = "binary_little_endian" if binary else "ascii"
        head = f"ply\nformat {fmt} 1.0\nelement vertex {len(pts)}\n"
        head += "property float x\nproperty float y\nproperty float z\nend_header\n"
        if binary:
            path.write_bytes(head.encode("ascii") + pts.astype("<f4").tobytes())
        else:
            path.write_text(head + "".join(f"{x:.7g} {y:.7g} {z:.7g}\n" for x, y, z in pts))
    elif suffix == ".off":
        path.write_text(f"OFF\n{len(pts)} 0 0\n" + "".join(f"{x:.7g} {y:.7g} {z:.7g}\n" for x, y, z in pts))
    elif suffix == ".xyz":
        np.savetxt(path, pts, fmt="%.7g")
    else:
        raise ValueError(f"path: expected a file ending in one of {SUFFIXES}, got {path.name!r}")
    return path


def farthest_point_sample(points: Tensor | np.ndarray, k: int, start: int = 0) -> Tensor:
    """Greedy farthest point sampling: indices (k,) of an (N, 3) cloud, starting at index `start`.

    Each next point maximises the distance to the chosen set (Qi et al. 2017, PointNet++ sec. 3.2); O(N k).
    """
    pts = torch.as_tensor(np.asarray(points) if not isinstance(points, Tensor) else points, dtype=torch.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points: expected shape (N, 3), got {tuple(pts.shape)}")
    if not 1 <= k <= pts.shape[0]:
        raise ValueError(f"k: expected 1 <= k <= N = {pts.shape[0]}, got {k}")
    idx = torch.empty(k, dtype=torch.long)
    idx[0] = start
    dist = (pts - pts[start]).square().sum(dim=1)  # (N,) squared distance to the chosen set
    for i in range(1, k):
        idx[i] = int(dist.argmax())
        dist = torch.minimum(dist, (pts - pts[idx[i]]).square().sum(dim=1))
    return idx


def resample(points: np.ndarray, n_points: int, rng: np.random.Generator) -> np.ndarray:
    """(M, 3) -> (n_points, 3): farthest point sampling when M > n_points, random repeats when M < n_points."""
    m = points.shape[0]
    if m == n_points:
        return points
    if m > n_points:
        return points[farthest_point_sample(points, n_points, int(rng.integers(m))).numpy()]
    extra = rng.integers(0, m, n_points - m)
    return np.concatenate([points, points[extra]])


def normalize_clouds(clouds: np.ndarray, mode: str = "unit-sphere") -> np.ndarray:
    """Per-cloud normalisation of (B, N, 3): 'unit-sphere' centres each cloud and scales its farthest point to 1
    (as the bundled shapes); 'bbox' maps the bounding box to [-1, 1] keeping the aspect (luost26 shape_bbox);
    'none' returns the clouds unchanged."""
    if mode == "none":
        return clouds
    if mode == "unit-sphere":
        c = clouds - clouds.mean(axis=1, keepdims=True)
        return c / np.linalg.norm(c, axis=2).max(axis=1)[:, None, None].clip(1e-12)
    if mode == "bbox":
        lo, hi = clouds.min(axis=1, keepdims=True), clouds.max(axis=1, keepdims=True)
        c = clouds - (lo + hi) / 2
        return c / ((hi - lo).max(axis=2, keepdims=True) / 2).clip(1e-12)
    raise ValueError(f"mode: expected 'unit-sphere', 'bbox' or 'none', got {mode!r}")


def load_cloud_folder(
    root: str | Path, n_points: int, *, seed: int = 0, normalize: str = "none"
) -> tuple[np.ndarray, list[str]]:
    """All clouds under `root` (class subfolders or flat), each resampled to n_points: ((M, n_points, 3), labels).

    labels[i] is the class subfolder of cloud i ("" for files directly in root). Files are read in sorted order.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data_dir: no such folder {str(root)!r}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise ValueError(f"data_dir: no point-cloud files ({', '.join(SUFFIXES)}) under {str(root)!r}")
    rng = np.random.default_rng(seed)
    clouds = np.stack([resample(read_points(f), n_points, rng) for f in files]).astype(np.float32)
    labels = ["" if f.parent == root else f.relative_to(root).parts[0] for f in files]
    return normalize_clouds(clouds, normalize).astype(np.float32), labels
