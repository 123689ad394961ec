"""DDPM-Seg features: what the hooks catch, the raw-patch baseline, pixel sampling, and bounded memory."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from omnidiffusion.vision import ImageDDPM
from omnidiffusion.vision.segmentation.features import (
    DDPMFeatures,
    PatchFeatures,
    choose_pixels,
    predict_maps,
    sample_pixels,
)
from omnidiffusion.vision.segmentation.memory import TensorMemory

UNET = {"base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1, "norm_groups": 4}


def _ddpm(size: int = 16) -> ImageDDPM:
    torch.manual_seed(0)
    model = ImageDDPM(size, 1, UNET, {"name": "linear", "timesteps": 100})
    with torch.no_grad():  # non-zero output conv, so the network is not the zero map of its initialisation
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_last_decoder_block_reproduces_the_network_output():
    # the last decoder block works at full resolution, so its feature map is not resampled: applying the UNet's
    # output head (GroupNorm, SiLU, conv) to it must give the model's prediction on the same noisy input
    model = _ddpm()
    last = len(model.net.up) - 1
    feats = DDPMFeatures(model, [last], [10, 60], seed=0)
    image = torch.rand(1, 16, 16)
    f = feats(image)  # (2 * width, 16, 16)
    width = f.shape[0] // 2
    x0 = image[None] * 2 - 1
    for j, step in enumerate([10, 60]):
        t = model.schedule.t_of_index(torch.tensor([step])).float()
        a, s = model.schedule.alpha(t.double()).float(), model.schedule.sigma(t.double()).float()
        x_t = a * x0 + s * feats.noise
        expected = model(x_t, t)
        head = model.net.out_conv(F.silu(model.net.out_norm(f[j * width : (j + 1) * width][None])))
        torch.testing.assert_close(head, expected, atol=1e-5, rtol=1e-4)


def test_dims_and_bilinear_upsampling_of_coarse_blocks():
    model = _ddpm()
    feats = DDPMFeatures(model, [0, 1], [5], seed=0)  # the first decoder blocks work at 8x8
    f = feats(torch.rand(1, 16, 16))
    assert f.shape == (feats.dim, 16, 16) and feats.dim == 2 * 16
    with pytest.raises(ValueError, match="blocks"):
        DDPMFeatures(model, [99], [5])
    with pytest.raises(ValueError, match="steps"):
        DDPMFeatures(model, [0], [100])


def test_patch_features_hand_worked():
    img = torch.arange(16.0).reshape(1, 4, 4) / 15  # values 0..1
    f = PatchFeatures(1, 3)(img)  # (9, 4, 4), channel 4 = the centre pixel
    torch.testing.assert_close(f[4], img[0] * 2 - 1)
    # pixel (1, 1): its 3x3 neighbourhood is rows 0..2, cols 0..2 in raster order
    expected = torch.tensor([0, 1, 2, 4, 5, 6, 8, 9, 10.0]) / 15 * 2 - 1
    torch.testing.assert_close(f[:, 1, 1], expected)
    # corner (0, 0) with replicate padding: the top-left 3x3 window repeats row 0 and column 0
    assert f[0, 0, 0] == img[0, 0, 0] * 2 - 1
    with pytest.raises(ValueError, match="odd"):
        PatchFeatures(1, 4)


def test_choose_pixels_balances_classes():
    mask = torch.zeros(8, 8)
    mask[:2, :2] = 1  # 4 foreground pixels of 64
    idx = choose_pixels(mask, 100, torch.Generator().manual_seed(0))
    labels = mask.reshape(-1)[idx]
    assert labels.sum() == 50 and len(idx) == 100
    assert choose_pixels(torch.zeros(4, 4), 7, torch.Generator().manual_seed(0)).shape == (7,)


def test_sample_pixels_and_predict_maps_agree_with_direct_features():
    images, masks = torch.rand(3, 1, 8, 8), (torch.rand(3, 1, 8, 8) > 0.7).float()
    patch = PatchFeatures(1, 3)
    X, y = sample_pixels(patch, patch.dim, images, masks, 10, seed=0)
    assert X.shape == (30, 9) and y.shape == (30,)
    # every sampled row is one pixel's neighbourhood of the right image, with that pixel's label
    gen = torch.Generator().manual_seed(0)
    for i in range(3):
        idx = choose_pixels(masks[i, 0], 10, gen)
        torch.testing.assert_close(X[i * 10 : (i + 1) * 10], patch(images[i]).reshape(9, -1)[:, idx].T)
        assert torch.equal(y[i * 10 : (i + 1) * 10], masks[i, 0].reshape(-1)[idx].long())
    maps = predict_maps(patch, lambda x: (x[:, 4] > 0).long(), images)  # centre pixel > 0.5 in pixel range
    assert torch.equal(maps, (images[:, 0] > 0.5).long())


def test_feature_memory_is_bounded_by_one_image_plus_the_sampled_pixels():
    size, k = 16, 16
    model = _ddpm(size)
    feats = DDPMFeatures(model, [0, 1, 2, 3], [10, 40, 70], seed=0)
    d = feats.dim
    images = torch.rand(8, 1, size, size)
    masks = (torch.rand(8, 1, size, size) > 0.8).float()

    def peak(n: int) -> int:
        with TensorMemory() as mem:
            X, y = sample_pixels(feats, d, images[:n], masks[:n], k)
            del X, y
        return mem.peak

    with TensorMemory() as one:
        feats(images[0])
    per_image = one.peak  # one image's features plus the UNet's activations on its len(steps) noisy copies
    buffer = lambda n: n * k * (d * 4 + 8)  # noqa: E731  (the (n k, d) float32 output and its int64 labels)
    peaks = {n: peak(n) for n in (2, 8)}
    for n, p in peaks.items():
        # streaming: never more than the output buffer plus one image's work (small slack for index tensors)
        assert p <= buffer(n) + per_image + 64 * 1024
    # the growth from 2 to 8 images is the sampled pixels only, far below the 6 more images' full feature maps
    # that keeping every pixel (the DDPM-Seg repository's layout) would add
    growth = peaks[8] - peaks[2]
    assert growth <= buffer(8) - buffer(2) + 64 * 1024
    assert growth < 6 * d * size * size * 4 / 10


def test_tensor_memory_accounting_hand_worked():
    before = torch.ones(100)
    with TensorMemory() as mem:
        a = torch.empty(1000)  # 4000 bytes
        b = torch.empty(500, dtype=torch.float64)  # 4000 -> live 8000 (the peak)
        del a  # 4000
        c = b.view(50, 10)  # a view: no new storage
        d = torch.zeros(250)  # 1000 -> 5000
        before.add_(1)  # in place on memory made before the block: nothing
    assert mem.peak == 8000 and mem.live == 5000
    del b, c, d
