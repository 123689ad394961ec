"""Bundled point-cloud data: procedural surfaces sampled uniformly by area, random scale and rotation.

Classes (all centred at the origin, largest extent about 1 before scaling):
    sphere    radius 1
    cube      the surface of [-0.8, 0.8]^3 (a face is picked with probability 1/6, all faces have equal area)
    torus     major radius R = 0.75, minor r = 0.25; uniform by area: accept theta (the tube angle) with
              probability (R + r cos theta) / (R + r), the surface element of the torus
    cylinder  radius 0.6, height 1.6, with both caps; side / cap picked by area (2 pi r h vs 2 pi r^2)
    cone      base radius 0.7, height 1.6, with its base disc; lateral area pi r l (l = slant) vs base pi r^2

`make_shapes(n, n_points, seed)` draws the classes in turn, a scale in [scale_min, scale_max] and a rotation
("so3": uniform on SO(3) from a normalised Gaussian quaternion; "z": about the vertical axis; "none"). The train and
held-out sets are the same generator with different seeds (`shape_split`). `cut_partial` makes the completion input:
the points on one side of a random plane (keeping a random fraction), of which `n_known` are kept.
"""

from __future__ import annotations

import math

import numpy as np

SHAPES = ("sphere", "cube", "torus", "cylinder", "cone")
ROTATIONS = ("so3", "z", "none")


def _sphere(n: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)  # (n, 3)


def _cube(n: int, rng: np.random.Generator, half: float = 0.8) -> np.ndarray:
    face = rng.integers(0, 6, n)  # 6 faces of equal area
    uv = rng.uniform(-half, half, (n, 2))
    axis, sign = face // 2, np.where(face % 2 == 0, -1.0, 1.0)
    out = np.empty((n, 3))
    for a in range(3):
        others = [b for b in range(3) if b != a]
        sel = axis == a
        out[sel, a] = sign[sel] * half
        out[np.ix_(sel, others)] = uv[sel]
    return out


def _torus(n: int, rng: np.random.Generator, big: float = 0.75, small: float = 0.25) -> np.ndarray:
    thetas: list[np.ndarray] = []
    got = 0
    while got < n:  # rejection on the area element (R + r cos theta) dtheta dphi
        th = rng.uniform(0, 2 * math.pi, 2 * n)
        keep = rng.uniform(0, 1, 2 * n) < (big + small * np.cos(th)) / (big + small)
        thetas.append(th[keep])
        got += int(keep.sum())
    th = np.concatenate(thetas)[:n]
    ph = rng.uniform(0, 2 * math.pi, n)
    rad = big + small * np.cos(th)
    return np.stack([rad * np.cos(ph), rad * np.sin(ph), small * np.sin(th)], axis=1)


def _disc(n: int, rng: np.random.Generator, radius: float, z: float) -> np.ndarray:
    r = radius * np.sqrt(rng.uniform(0, 1, n))  # uniform by area on the disc
    ph = rng.uniform(0, 2 * math.pi, n)
    return np.stack([r * np.cos(ph), r * np.sin(ph), np.full(n, z)], axis=1)


def _cylinder(n: int, rng: np.random.Generator, radius: float = 0.6, height: float = 1.6) -> np.ndarray:
    side, cap = 2 * math.pi * radius * height, math.pi * radius**2
    part = rng.choice(3, n, p=np.array([side, cap, cap]) / (side + 2 * cap))
    out = np.empty((n, 3))
    k = int((part == 0).sum())
    ph = rng.uniform(0, 2 * math.pi, k)
    out[part == 0] = np.stack([radius * np.cos(ph), radius * np.sin(ph), rng.uniform(-height / 2, height / 2, k)], 1)
    out[part == 1] = _disc(int((part == 1).sum()), rng, radius, -height / 2)
    out[part == 2] = _disc(int((part == 2).sum()), rng, radius, height / 2)
    return out


def _cone(n: int, rng: np.random.Generator, radius: float = 0.7, height: float = 1.6) -> np.ndarray:
    lateral, base = math.pi * radius * math.hypot(radius, height), math.pi * radius**2
    on_side = rng.uniform(0, 1, n) < lateral / (lateral + base)
    k = int(on_side.sum())
    # distance from the apex grows with the square root of a uniform draw (area element ~ s ds)
    s = np.sqrt(rng.uniform(0, 1, k))
    ph = rng.uniform(0, 2 * math.pi, k)
    side = np.stack([s * radius * np.cos(ph), s * radius * np.sin(ph), height / 2 - s * height], axis=1)
    out = np.empty((n, 3))
    out[on_side] = side
    out[~on_side] = _disc(n - k, rng, radius, -height / 2)
    return out  # apex at +h/2, base at -h/2


SAMPLERS = {"sphere": _sphere, "cube": _cube, "torus": _torus, "cylinder": _cylinder, "cone": _cone}


def sample_surface(shape: str, n_points: int, rng: np.random.Generator) -> np.ndarray:
    """n_points drawn uniformly by area on the canonical `shape` surface: (n_points, 3) float64."""
    if shape not in SAMPLERS:
        raise ValueError(f"shape: expected one of {SHAPES}, got {shape!r}")
    if n_points < 1:
        raise ValueError(f"n_points: expected an integer >= 1, got {n_points}")
    return SAMPLERS[shape](n_points, rng)


def random_rotation(rng: np.random.Generator, kind: str = "so3") -> np.ndarray:
    """A (3, 3) rotation: uniform on SO(3) ('so3', normalised Gaussian quaternion), about z ('z'), or identity."""
    if kind == "none":
        return np.eye(3)
    if kind == "z":
        a = rng.uniform(0, 2 * math.pi)
        c, s = math.cos(a), math.sin(a)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    if kind != "so3":
        raise ValueError(f"rotation: expected one of {ROTATIONS}, got {kind!r}")
    q = rng.standard_normal(4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def make_shapes(
    n: int,
    n_points: int,
    seed: int,
    *,
    classes: tuple[str, ...] | list[str] = SHAPES,
    scale_min: float = 0.6,
    scale_max: float = 1.0,
    rotation: str = "so3",
) -> tuple[np.ndarray, np.ndarray]:
    """n clouds (n, n_points, 3) float32 and their class index (n,): classes in turn, random scale and rotation."""
    if n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n}")
    if not 0 < scale_min <= scale_max:
        raise ValueError(f"scale_min, scale_max: expected 0 < scale_min <= scale_max, got {scale_min}, {scale_max}")
    bad = [c for c in classes if c not in SHAPES]
    if bad or not classes:
        raise ValueError(f"classes: expected a non-empty subset of {SHAPES}, got {list(classes)}")
    rng = np.random.default_rng(seed)
    clouds = np.empty((n, n_points, 3), dtype=np.float32)
    labels = np.arange(n) % len(classes)
    for i in range(n):
        pts = sample_surface(classes[labels[i]], n_points, rng)  # (P, 3)
        scale = rng.uniform(scale_min, scale_max)
        clouds[i] = (scale * pts @ random_rotation(rng, rotation).T).astype(np.float32)
    return clouds, labels


def shape_split(n_train: int, n_test: int, n_points: int, seed: int = 0, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out clouds from disjoint seeds (seed and seed + 10_000): ((n_train, P, 3), (n_test, P, 3))."""
    train, _ = make_shapes(n_train, n_points, seed, **kwargs)
    test, _ = make_shapes(n_test, n_points, seed + 10_000, **kwargs)
    return train, test


def cut_partial(
    cloud: np.ndarray,
    n_known: int,
    rng: np.random.Generator,
    keep_min: float = 0.25,
    keep_max: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The completion input: `n_known` of the points on one side of a random plane through the cloud.

    The plane has a uniform random normal u and offset c = the keep-quantile of u . x, so a fraction in
    [keep_min, keep_max] of the points satisfies u . x <= c. Returns (known indices (n_known,), the kept points
    (n_known, 3), the unit normal u (3,), the offset c); the kept side is u . x <= c.
    """
    p = cloud.shape[0]
    u = rng.standard_normal(3)
    u /= np.linalg.norm(u)
    proj = cloud @ u  # (P,)
    keep = rng.uniform(keep_min, keep_max)
    order = np.argsort(proj)
    n_side = max(n_known, int(round(keep * p)))
    side = order[:n_side]
    c = float(proj[order[n_side - 1]]) if n_side < p else float(proj.max())
    if n_side < p:
        c = 0.5 * (c + float(proj[order[n_side]]))  # the plane lies between the last kept and the first cut point
    idx = np.sort(rng.choice(side, n_known, replace=False))
    return idx, cloud[idx], u, c
