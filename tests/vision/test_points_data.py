"""Point-cloud data: procedural shapes on their surfaces, file-format round trips, folders, FPS, cuts, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from omnidiffusion.vision.points.baselines import reflect, reflection_baseline
from omnidiffusion.vision.points.formats import (
    farthest_point_sample,
    load_cloud_folder,
    normalize_clouds,
    read_points,
    resample,
    write_points,
)
from omnidiffusion.vision.points.shapes import (
    SHAPES,
    cut_partial,
    make_shapes,
    random_rotation,
    sample_surface,
    shape_split,
)
from omnidiffusion.vision.points.training import plane_cut_mask


def test_shapes_lie_on_their_surfaces():
    rng = np.random.default_rng(0)
    s = sample_surface("sphere", 500, rng)
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-12)
    c = sample_surface("cube", 500, rng)
    np.testing.assert_allclose(np.abs(c).max(axis=1), 0.8, atol=1e-12)
    t = sample_surface("torus", 500, rng)  # (sqrt(x^2 + y^2) - R)^2 + z^2 = r^2
    np.testing.assert_allclose((np.hypot(t[:, 0], t[:, 1]) - 0.75) ** 2 + t[:, 2] ** 2, 0.25**2, atol=1e-12)
    y = sample_surface("cylinder", 500, rng)
    on_side = np.isclose(np.hypot(y[:, 0], y[:, 1]), 0.6)
    on_cap = np.isclose(np.abs(y[:, 2]), 0.8) & (np.hypot(y[:, 0], y[:, 1]) <= 0.6 + 1e-12)
    assert (on_side | on_cap).all()
    k = sample_surface("cone", 500, rng)  # lateral: radius = 0.7 (0.8 - z) / 1.6; base: z = -0.8
    rad = np.hypot(k[:, 0], k[:, 1])
    assert (np.isclose(rad, 0.7 * (0.8 - k[:, 2]) / 1.6) | np.isclose(k[:, 2], -0.8)).all()


def test_area_uniform_sampling_fractions():
    rng = np.random.default_rng(1)
    n = 40_000
    y = sample_surface("cylinder", n, rng)
    caps = np.isclose(np.abs(y[:, 2]), 0.8).mean()
    expected = 2 * math.pi * 0.36 / (2 * math.pi * 0.36 + 2 * math.pi * 0.6 * 1.6)  # cap area share
    assert caps == pytest.approx(expected, abs=4 / math.sqrt(n))
    t = sample_surface("torus", n, rng)
    outer = (np.hypot(t[:, 0], t[:, 1]) > 0.75).mean()  # outer half of the tube: (pi R + 2 r) / (2 pi R)
    assert outer == pytest.approx((math.pi * 0.75 + 2 * 0.25) / (2 * math.pi * 0.75), abs=4 / math.sqrt(n))
    s = sample_surface("sphere", n, rng)  # Archimedes: z is uniform on [-1, 1]
    assert (s[:, 2] > 0.5).mean() == pytest.approx(0.25, abs=4 / math.sqrt(n))


def test_rotations_and_split():
    rng = np.random.default_rng(2)
    for kind in ("so3", "z", "none"):
        r = random_rotation(rng, kind)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)
    train, test = shape_split(10, 5, 32, seed=3)
    assert train.shape == (10, 32, 3) and test.shape == (5, 32, 3)
    assert not np.isin(test, train).all()
    again, _ = make_shapes(10, 32, seed=3)
    np.testing.assert_array_equal(train, again)
    with pytest.raises(ValueError, match="shape"):
        sample_surface("pyramid", 5, rng)
    with pytest.raises(ValueError, match="classes"):
        make_shapes(2, 5, 0, classes=("sphere", "blob"))
    assert len(SHAPES) == 5


@pytest.mark.parametrize(
    "suffix,binary", [(".npy", True), (".ply", True), (".ply", False), (".off", True), (".xyz", True)]
)
def test_format_round_trip(tmp_path, suffix, binary):
    pts = np.random.default_rng(0).standard_normal((37, 3)).astype(np.float32)
    path = write_points(tmp_path / f"c{suffix}", pts, binary=binary)
    np.testing.assert_allclose(read_points(path), pts, rtol=1e-6, atol=1e-6)


def test_ply_with_faces_and_extra_properties(tmp_path):
    head = (
        "ply\nformat binary_little_endian 1.0\ncomment made by hand\nelement vertex 3\nproperty float x\n"
        "property float y\nproperty float z\nproperty uchar red\nelement face 1\n"
        "property list uchar int vertex_indices\nend_header\n"
    )
    dtype = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1")])
    verts = np.array([(0, 1, 2, 9), (3, 4, 5, 9), (6, 7, 8, 9)], dtype=dtype)
    face = np.array([3], "u1").tobytes() + np.array([0, 1, 2], "<i4").tobytes()
    (tmp_path / "m.ply").write_bytes(head.encode() + verts.tobytes() + face)
    np.testing.assert_array_equal(read_points(tmp_path / "m.ply"), np.arange(9, dtype=np.float32).reshape(3, 3))
    ascii_ply = "ply\nformat ascii 1.0\nelement vertex 2\nproperty double x\nproperty double y\nproperty double z\n"
    ascii_ply += "property float nx\nend_header\n1 2 3 0\n4 5 6 0\n"
    (tmp_path / "a.ply").write_text(ascii_ply)
    np.testing.assert_array_equal(read_points(tmp_path / "a.ply"), [[1, 2, 3], [4, 5, 6]])
    (tmp_path / "m.off").write_text("OFF\n# comment\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    np.testing.assert_array_equal(read_points(tmp_path / "m.off"), [[0, 0, 0], [1, 0, 0], [0, 1, 0]])


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        read_points(tmp_path / "none.ply")
    (tmp_path / "a.txt").write_text("1 2 3")
    with pytest.raises(ValueError, match="expected a file ending"):
        read_points(tmp_path / "a.txt")
    np.save(tmp_path / "flat.npy", np.zeros(5))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        read_points(tmp_path / "flat.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="not a plain numeric"):
        read_points(tmp_path / "obj.npy")
    (tmp_path / "nan.xyz").write_text("1 2 nan\n")
    with pytest.raises(ValueError, match="finite"):
        read_points(tmp_path / "nan.xyz")
    (tmp_path / "b.ply").write_text("ply\nformat binary_big_endian 1.0\nelement vertex 1\nend_header\n")
    with pytest.raises(ValueError, match="not supported"):
        read_points(tmp_path / "b.ply")
    (tmp_path / "bad.off").write_text("COFF?\n")
    with pytest.raises(ValueError, match="not an OFF"):
        read_points(tmp_path / "bad.off")
    with pytest.raises(FileNotFoundError, match="data_dir"):
        load_cloud_folder(tmp_path / "missing", 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no point-cloud files"):
        load_cloud_folder(tmp_path / "empty", 8)


def test_shapenet_like_folder(tmp_path):
    rng = np.random.default_rng(0)
    for cls, suffix in (("chair", ".ply"), ("plane", ".npy")):
        for i in range(2):
            write_points(tmp_path / cls / f"{i}{suffix}", rng.standard_normal((50 + 10 * i, 3)))
    clouds, labels = load_cloud_folder(tmp_path, 40, normalize="unit-sphere")
    assert clouds.shape == (4, 40, 3) and labels == ["chair", "chair", "plane", "plane"]
    np.testing.assert_allclose(np.linalg.norm(clouds, axis=2).max(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(clouds.mean(axis=1), 0.0, atol=1e-6)
    box = normalize_clouds(clouds, "bbox")
    np.testing.assert_allclose(np.abs(box).max(axis=(1, 2)), 1.0, rtol=1e-5)


def test_farthest_point_sampling_exact():
    # points on a line at 0, 1, 2, ..., 10: from 0 the farthest is 10, then 5, then 2 or 3 (first max: 2)...
    pts = torch.zeros(11, 3)
    pts[:, 0] = torch.arange(11.0)
    idx = farthest_point_sample(pts, 4, start=0).tolist()
    assert idx[:3] == [0, 10, 5]
    assert idx[3] in (2, 3, 7, 8)
    # the greedy max-min property: each pick is at the largest distance to those before it
    cloud = torch.randn(60, 3, generator=torch.Generator().manual_seed(0))
    idx = farthest_point_sample(cloud, 10)
    assert len(set(idx.tolist())) == 10
    for i in range(1, 10):
        d = torch.cdist(cloud, cloud[idx[:i]]).min(dim=1).values
        assert d[idx[i]] == pytest.approx(d.max().item())
    with pytest.raises(ValueError, match="k"):
        farthest_point_sample(cloud, 61)
    assert resample(cloud.numpy(), 80, np.random.default_rng(0)).shape == (80, 3)


def test_cut_partial_and_reflection():
    rng = np.random.default_rng(0)
    cloud, _ = make_shapes(1, 200, seed=4)
    idx, obs, u, c = cut_partial(cloud[0], 50, rng, 0.3, 0.4)
    assert obs.shape == (50, 3) and (obs @ u <= c).all()
    side = (cloud[0] @ u <= c).mean()
    assert 0.3 - 0.01 <= side <= 0.4 + 0.01
    np.testing.assert_array_equal(obs, cloud[0][idx])
    pts = np.array([[0.0, 0, 0], [2.0, 1, 0]])
    np.testing.assert_allclose(reflect(pts, np.array([1.0, 0, 0]), 1.0), [[2.0, 0, 0], [0.0, 1, 0]])
    both = reflection_baseline(pts, np.array([1.0, 0, 0]), 1.0, 8, rng)
    assert both.shape == (8, 3)
    with pytest.raises(ValueError, match="unit vector"):
        reflect(pts, np.array([2.0, 0, 0]), 0.0)


def test_plane_cut_mask_keeps_one_side():
    x = torch.as_tensor(make_shapes(6, 100, seed=0)[0])
    torch.manual_seed(0)
    known = plane_cut_mask(x, 20, 0.25, 0.5)
    assert known.shape == (6, 100) and (known.sum(dim=1) == 20).all()
    with pytest.raises(ValueError, match="n_known"):
        plane_cut_mask(x, 30, 0.25, 0.5)
