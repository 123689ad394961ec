"""Anomaly metrics, maps and data: hand-worked AUROC, brute-force Dice, blur against scipy, pasted masks, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from omnidiffusion.vision.anomaly.data import paste_anomalies, read_pairs, texture_crops, write_pairs
from omnidiffusion.vision.anomaly.maps import (
    blur_residual_map,
    error_map,
    gaussian_blur,
    image_scores,
    mean_image_map,
)
from omnidiffusion.vision.anomaly.metrics import best_dice, image_auroc, pixel_auroc


def test_pixel_auroc_hand_worked():
    # Positives 0.35, 0.8; negatives 0.1, 0.4: of the 4 (pos, neg) pairs 3 are ordered correctly -> 0.75.
    maps = torch.tensor([[[0.1, 0.4], [0.35, 0.8]]])
    masks = torch.tensor([[[False, False], [True, True]]])
    assert pixel_auroc(maps, masks) == pytest.approx(0.75)
    # A tie between a positive and a negative counts one half: pairs (0.5 vs 0.5) = 0.5, (0.5 vs 0.2) = 1.
    maps = torch.tensor([[[0.5, 0.5, 0.2]]])
    masks = torch.tensor([[[True, False, False]]])
    assert pixel_auroc(maps, masks) == pytest.approx(0.75)


def test_image_auroc_hand_worked_and_one_class():
    assert image_auroc(torch.tensor([0.9, 0.2, 0.5]), torch.tensor([True, False, False])) == pytest.approx(1.0)
    assert image_auroc(torch.tensor([0.1, 0.2, 0.5]), torch.tensor([True, False, False])) == pytest.approx(0.0)
    assert np.isnan(image_auroc(torch.tensor([0.1, 0.2]), torch.tensor([True, True])))


def _brute_dice(scores: np.ndarray, labels: np.ndarray) -> float:
    best = 0.0
    for thr in np.unique(scores):
        pred = scores >= thr
        tp = np.sum(pred & labels)
        best = max(best, 2 * tp / (pred.sum() + labels.sum()))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_best_dice_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random((3, 6, 6)) < 0.3
    scores = np.round(rng.random((3, 6, 6)) + 0.5 * labels, 1)  # rounding makes ties
    dice, thr = best_dice(torch.from_numpy(scores), torch.from_numpy(labels))
    assert dice == pytest.approx(_brute_dice(scores.ravel(), labels.ravel()))
    pred = scores >= thr
    assert 2 * np.sum(pred & labels) / (pred.sum() + labels.sum()) == pytest.approx(dice)


def test_best_dice_perfect_and_errors():
    masks = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    masks[0, 0, 1:3, 1:3] = True
    assert best_dice(masks[:, 0].float(), masks)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="masks"):
        best_dice(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="masks"):
        pixel_auroc(torch.zeros(2, 4, 4), torch.zeros(2, 5, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="maps"):
        pixel_auroc(torch.full((1, 2, 2), float("nan")), torch.tensor([[[True, False], [False, False]]]))


def test_gaussian_blur_matches_scipy():
    from scipy.ndimage import gaussian_filter

    x = torch.rand(2, 1, 20, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = gaussian_blur(x, 1.5).numpy()
    # scipy's "mirror" mode is the reflect padding of torch (the edge pixel is not repeated); truncate = 3 sigma.
    ref = np.stack([gaussian_filter(x[i, 0].numpy(), 1.5, mode="mirror", truncate=3.0) for i in range(2)])
    assert np.allclose(ours[:, 0], ref, atol=1e-10)


def test_maps_by_hand():
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 2] = 1.0
    recon = torch.zeros_like(x)
    recon[0, 0, 1, 2] = 0.5
    m = error_map(x, recon)
    assert m[0, 1, 2] == pytest.approx(0.25) and m.sum() == pytest.approx(0.25)
    mean = torch.full((1, 4, 4), 0.25)
    assert torch.allclose(mean_image_map(x, mean), (x - 0.25).abs()[:, 0])
    flat = torch.full((1, 1, 8, 8), 0.3)
    assert torch.allclose(blur_residual_map(flat, 1.0), torch.zeros(1, 8, 8), atol=1e-6)
    assert torch.allclose(image_scores(m, "max"), torch.tensor([0.25]))
    assert torch.allclose(image_scores(m, "mean"), torch.tensor([0.25 / 16]))
    with pytest.raises(ValueError, match="recon"):
        error_map(x, torch.zeros(1, 1, 3, 4))
    with pytest.raises(ValueError, match="score"):
        image_scores(m, "median")


def test_pasted_masks_are_exactly_the_changed_pixels():
    normal = texture_crops("brick", "test", 12, 32, 3)
    other = texture_crops("gravel", "test", 12, 32, 3)
    images, masks = paste_anomalies(normal, other=other, anomalous_fraction=0.75, seed=1)
    changed = images != normal
    assert not (changed & ~masks).any()  # nothing outside the masks changed
    assert masks[:9].flatten(1).any(1).all() and not masks[9:].any()
    # most mask pixels really differ (a pasted value can coincide with the original by chance)
    assert changed[masks].float().mean() > 0.8
    assert torch.equal(images[9:], normal[9:])


def test_train_and_test_crops_do_not_overlap():
    a = texture_crops("brick", "train", 4, 32, 3)
    b = texture_crops("brick", "test", 4, 32, 3)
    assert a.shape == b.shape == (4, 1, 32, 32)
    with pytest.raises(ValueError, match="texture"):
        texture_crops("wood", "train", 1, 32, 3)
    with pytest.raises(ValueError, match="size"):
        texture_crops("brick", "test", 1, 64, 3)  # the test strip is 42 px wide


def test_folder_pairs_round_trip_and_errors(tmp_path):
    images = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    images = (images * 255).round() / 255
    masks = torch.zeros(3, 1, 8, 8, dtype=torch.bool)
    masks[1, 0, 2:5, 3:6] = True
    write_pairs(images, masks, tmp_path / "img", tmp_path / "mask")
    x, m, names = read_pairs(tmp_path / "img", tmp_path / "mask")
    assert names == ["0000.png", "0001.png", "0002.png"]
    assert torch.allclose(x, images, atol=1e-6) and torch.equal(m, masks)
    # mask of another size
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(tmp_path / "mask" / "0002.png")
    with pytest.raises(ValueError, match="mask_dir.*0002.png"):
        read_pairs(tmp_path / "img", tmp_path / "mask")
    # a file with an image suffix that is not an image
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "mask" / "0002.png")
    (tmp_path / "img" / "0003.png").write_text("not a png")
    (tmp_path / "mask" / "0003.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match="0003.png"):
        read_pairs(tmp_path / "img", tmp_path / "mask")
    (tmp_path / "img" / "0003.png").unlink()
    (tmp_path / "img" / "0004.png").write_bytes((tmp_path / "img" / "0000.png").read_bytes())
    with pytest.raises(ValueError, match="no mask"):
        read_pairs(tmp_path / "img", tmp_path / "mask")
    with pytest.raises(FileNotFoundError):
        read_pairs(tmp_path / "nowhere", tmp_path / "mask")
