"""Segmentation data: deterministic bundled sets with exact masks, seeded splits, folder pairs and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from omnidiffusion.vision.segmentation.data import (
    load_mask_pairs,
    read_mask,
    split_indices,
    synthetic_item,
    synthetic_set,
    write_mask_pairs,
)


def test_bundled_set_is_deterministic_and_prefix_stable():
    a_img, a_mask = synthetic_set(6, 32, "mixed", seed=3)
    b_img, b_mask = synthetic_set(9, 32, "mixed", seed=3)
    assert torch.equal(a_img, b_img[:6]) and torch.equal(a_mask, b_mask[:6])  # item i depends on (seed, i) only
    c_img, _ = synthetic_set(6, 32, "mixed", seed=4)
    assert not torch.equal(a_img, c_img)
    assert a_img.shape == (6, 1, 32, 32) and a_img.min() >= 0 and a_img.max() <= 1
    assert set(torch.unique(a_mask).tolist()) <= {0.0, 1.0}


def test_horse_mask_is_the_skimage_silhouette():
    # the mask's bounding box, scaled back to 328x400, overlaps scikit-image's horse (False = horse), maybe mirrored
    from skimage.data import horse
    from skimage.transform import resize

    truth = ~horse()
    r, c = np.nonzero(truth)
    truth = truth[r.min() : r.max() + 1, c.min() : c.max() + 1]  # both cropped to their bounding boxes
    for i in range(3):
        _, mask = synthetic_item(0, i, 32, "horse")
        rows, cols = np.nonzero(mask)
        box = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].astype(float)
        back = resize(box, truth.shape, order=0) > 0.5
        iou = max((b & truth).sum() / (b | truth).sum() for b in (back, back[:, ::-1]))
        assert iou > 0.8


def test_shapes_cover_a_sensible_area_and_differ_from_background():
    for i in range(8):
        image, mask = synthetic_item(0, i, 32, "shapes")
        assert mask.dtype == bool and 0.04 <= mask.mean() <= 0.6


def test_split_is_a_seeded_partition():
    tr, te = split_indices(50, 10, seed=1)
    assert len(te) == 10 and len(tr) == 40
    assert sorted(torch.cat([tr, te]).tolist()) == list(range(50))
    tr2, te2 = split_indices(50, 10, seed=1)
    assert torch.equal(te, te2)
    assert not torch.equal(te, split_indices(50, 10, seed=2)[1])
    with pytest.raises(ValueError, match="n_test"):
        split_indices(5, 5)


def test_folder_round_trip(tmp_path):
    images, masks = synthetic_set(3, 16, "shapes", seed=0)
    write_mask_pairs(images, masks, tmp_path / "img", tmp_path / "msk")
    got_img, got_mask, stems = load_mask_pairs(tmp_path / "img", tmp_path / "msk")
    assert stems == ["0000", "0001", "0002"]
    assert torch.equal(got_mask, masks)
    assert torch.allclose(got_img, images, atol=0.5 / 255 + 1e-6)  # 8-bit PNG rounding


def _png(path, arr):
    Image.fromarray(np.asarray(arr, dtype=np.uint8), "L").save(path)


def test_folder_errors(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    _png(tmp_path / "img" / "a.png", np.zeros((8, 8)))
    _png(tmp_path / "img" / "b.png", np.zeros((8, 8)))
    _png(tmp_path / "msk" / "a.png", np.zeros((8, 8)))
    with pytest.raises(FileNotFoundError, match="no mask for image b.png"):
        load_mask_pairs(tmp_path / "img", tmp_path / "msk")
    _png(tmp_path / "msk" / "b.png", np.zeros((8, 9)))
    with pytest.raises(ValueError, match=r"mask size \(8, 9\) does not match its image size \(8, 8\)"):
        load_mask_pairs(tmp_path / "img", tmp_path / "msk")
    grey = np.zeros((8, 8))
    grey[0, :3] = (100, 200, 255)
    _png(tmp_path / "msk" / "b.png", grey)
    with pytest.raises(ValueError, match="binary mask"):
        load_mask_pairs(tmp_path / "img", tmp_path / "msk")
    with pytest.raises(FileNotFoundError, match="mask_dir"):
        load_mask_pairs(tmp_path / "img", tmp_path / "nowhere")


def test_read_mask_levels(tmp_path):
    two = np.zeros((4, 4))
    two[1, 1] = 1  # a 0/1 PNG: the brighter level is foreground
    _png(tmp_path / "m.png", two)
    assert read_mask(tmp_path / "m.png").sum().item() == 1
    _png(tmp_path / "e.png", np.zeros((4, 4)))
    assert read_mask(tmp_path / "e.png").sum().item() == 0  # one level 0: empty mask
    with pytest.raises(FileNotFoundError, match="no such mask"):
        read_mask(tmp_path / "missing.png")
