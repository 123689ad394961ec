"""Dice / IoU / mIoU against hand-worked cases and scikit-learn; Otsu's polarity rule on hand-made images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, jaccard_score

from omnidiffusion.vision.segmentation.baselines import otsu_segment
from omnidiffusion.vision.segmentation.metrics import (
    ConfusionCounter,
    dice_per_image,
    dice_pooled,
    iou_per_image,
    iou_pooled,
    mean_iou,
    segmentation_scores,
)


def _m(rows: list[str]) -> torch.Tensor:
    return torch.tensor([[float(c == "#") for c in r] for r in rows])


def test_hand_worked_dice_iou():
    # P has 4 pixels, G has 3, they share 2: Dice = 2*2/(4+3) = 4/7, IoU = 2/(4+3-2) = 2/5
    pred = _m(["##..", "##..", "...."])
    truth = _m([".#..", ".#..", ".#.."])
    assert dice_per_image(pred, truth).item() == pytest.approx(4 / 7)
    assert iou_per_image(pred, truth).item() == pytest.approx(2 / 5)


def test_empty_rules():
    empty = torch.zeros(4, 4)
    full = torch.ones(4, 4)
    assert dice_per_image(empty, empty).item() == 1.0  # both empty: a correct "nothing here"
    assert iou_per_image(empty, empty).item() == 1.0
    assert dice_per_image(full, empty).item() == 0.0  # one empty: 0
    assert iou_per_image(empty, full).item() == 0.0
    assert dice_pooled(empty[None, None], empty[None, None]) == 1.0
    assert iou_pooled(empty[None, None], empty[None, None]) == 1.0


def test_per_image_mean_vs_pooled_hand_worked():
    # image 1: P = G = 1 pixel -> Dice 1; image 2: P 3 pixels, G 1 pixel inside -> Dice 2/4 = 0.5
    pred = torch.stack([_m(["#...", "...."]), _m(["###.", "...."])])[:, None]
    truth = torch.stack([_m(["#...", "...."]), _m(["#...", "...."])])[:, None]
    s = segmentation_scores(pred, truth)
    assert s["dice"] == pytest.approx((1.0 + 0.5) / 2)
    assert s["iou"] == pytest.approx((1.0 + 1 / 3) / 2)
    # pooled: intersections 1 + 1, |P| 1 + 3, |G| 1 + 1 -> Dice 4/6, IoU 2/4
    assert s["dice_pooled"] == pytest.approx(4 / 6)
    assert s["iou_pooled"] == pytest.approx(2 / 4)
    assert s["n_images"] == 2


def test_against_sklearn_random_masks():
    gen = torch.Generator().manual_seed(0)
    pred = (torch.rand(6, 1, 9, 7, generator=gen) > 0.6).float()
    truth = (torch.rand(6, 1, 9, 7, generator=gen) > 0.5).float()
    for i in range(6):
        p, g = pred[i].flatten().numpy(), truth[i].flatten().numpy()
        assert dice_per_image(pred[i : i + 1], truth[i : i + 1]).item() == pytest.approx(f1_score(g, p))
        assert iou_per_image(pred[i : i + 1], truth[i : i + 1]).item() == pytest.approx(jaccard_score(g, p))
    pooled = jaccard_score(truth.flatten().numpy(), pred.flatten().numpy())
    assert iou_pooled(pred, truth) == pytest.approx(pooled)
    # DDPM-Seg mIoU = per-class IoU pooled over all pixels, averaged over classes = sklearn's macro Jaccard
    macro = jaccard_score(truth.flatten().numpy(), pred.flatten().numpy(), average="macro")
    assert mean_iou(pred[:, 0].long(), truth[:, 0].long()) == pytest.approx(macro)


def test_miou_streaming_equals_one_shot_and_absent_class():
    gen = torch.Generator().manual_seed(1)
    pred = torch.randint(0, 3, (4, 5, 5), generator=gen)
    truth = torch.randint(0, 3, (4, 5, 5), generator=gen)
    c = ConfusionCounter(3)
    for i in range(4):
        c.update(pred[i], truth[i])
    assert c.miou() == pytest.approx(mean_iou(pred, truth, 3))
    # a class that never occurs is left out of the mean: all-zero maps score 1
    assert mean_iou(torch.zeros(3, 3, dtype=torch.long), torch.zeros(3, 3, dtype=torch.long), 3) == 1.0


def test_threshold_at_half_and_shape_errors():
    truth = torch.tensor([[1.0, 0.0]])
    assert dice_per_image(torch.tensor([[0.5, 0.49]]), truth).item() == 1.0
    with pytest.raises(ValueError, match="same shape"):
        dice_per_image(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="one mask channel"):
        iou_per_image(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="labels"):
        mean_iou(torch.full((2, 2), 2), torch.zeros(2, 2, dtype=torch.long), 2)


@pytest.mark.parametrize("object_value, background_value", [(0.9, 0.2), (0.1, 0.8)])
def test_otsu_minority_polarity_finds_the_object(object_value, background_value):
    img = np.full((16, 16), background_value, dtype=np.float32)
    img[4:9, 5:11] = object_value  # a 5x6 object, bright or dark
    # (with noise, Otsu may cut anywhere in the empty gap of the histogram, even inside a noise tail)
    mask = otsu_segment(torch.from_numpy(img)[None, None])
    expected = np.zeros((16, 16), dtype=np.float32)
    expected[4:9, 5:11] = 1
    np.testing.assert_array_equal(mask[0, 0].numpy(), expected)


def test_otsu_flat_image_is_empty():
    assert otsu_segment(torch.full((1, 1, 8, 8), 0.3)).sum().item() == 0
