"""Data loaders (bundled digits, image folders, torchvision datasets on disk), the classifier trainer and the
pipeline's type round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from omnidiffusion.core import load_pretrained, save_pretrained
from omnidiffusion.core.training import TrainConfig
from omnidiffusion.purification import DiffPure, SmallCNN, TorchvisionClassifier, predict_labels, train_classifier
from omnidiffusion.purification.data import digits_split, image_folder, load_images
from omnidiffusion.purification.pipeline import PurificationPipeline


def test_digits_split_is_the_bundled_data_at_16x16():
    x, y = digits_split("test")
    d = load_digits()
    assert x.shape == (300, 1, 16, 16) and y.shape == (300,)
    assert torch.equal(y, torch.from_numpy(d.target[-300:]).long())
    assert x.min() >= 0 and x.max() <= 1
    # bilinear 2x upsampling keeps the mean of every 8x8 image up to boundary effects
    np.testing.assert_allclose(x.mean((1, 2, 3)).numpy(), d.images[-300:].mean((1, 2)) / 16, atol=0.03)
    xtr, ytr = digits_split("train")
    assert len(xtr) == 1497 and len(set(ytr.tolist())) == 10


def test_digits_split_matches_the_vision_loader():
    vision_data = pytest.importorskip("omnidiffusion.vision.data")
    for split in ("train", "test"):
        assert torch.equal(digits_split(split)[0], vision_data.load_digits_16(split))


def test_image_folder_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        a = rng.integers(0, 256, (8, 8), dtype=np.uint8)
        Image.fromarray(a, "L").save(tmp_path / cls / "0.png")
        arrays[cls] = a
    x, y = image_folder(tmp_path, size=8, channels=1)
    assert x.shape == (2, 1, 8, 8) and y.tolist() == [0, 1]  # classes in sorted order
    assert torch.allclose(x[1, 0], torch.from_numpy(arrays["dog"] / 255.0).float(), atol=1e-6)


def test_missing_data_raises_named_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="data"):
        load_images(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="MNIST"):
        load_images(f"torchvision:MNIST:{tmp_path}")
    with pytest.raises(ValueError, match="no dataset"):
        load_images(f"torchvision:NoSuchSet:{tmp_path}")


def test_small_cnn_overfits_a_few_digits(tmp_path):
    """The loss falls and training accuracy reaches 100% on 40 digits (a tiny overfit test through core fit)."""
    x, y = digits_split("train")
    x, y = x[:40], y[:40]
    torch.manual_seed(0)
    model = SmallCNN(1, 10, 8)
    cfg = TrainConfig(steps=150, batch_size=20, lr=5e-3, ema_decay=None, log_every=50, ckpt_every=150, progress=False)
    before = torch.nn.functional.cross_entropy(model.eval()(x), y).item()
    result = train_classifier(model, x, y, cfg, tmp_path / "cls")
    loaded = load_pretrained(tmp_path / "cls")
    after = torch.nn.functional.cross_entropy(loaded(x), y).item()
    assert after < 0.2 * before
    assert (predict_labels(loaded, x) == y).all()
    assert result.step == 150


def test_classifiers_save_and_load(tmp_path):
    model = TorchvisionClassifier("resnet18", num_classes=3, in_channels=1).eval()
    save_pretrained(model, tmp_path / "tv")
    loaded = load_pretrained(tmp_path / "tv")
    x = torch.rand(2, 1, 32, 32)
    assert torch.equal(model(x), loaded(x))
    with pytest.raises(ValueError, match="arch"):
        TorchvisionClassifier("no_such_net")
    with pytest.raises(ValueError, match="x: expected"):
        SmallCNN(1, 10, 4)(torch.rand(2, 3, 8, 8))


def test_pipeline_keeps_the_input_type(denoiser, classifier):
    pipe = PurificationPipeline(DiffPure(denoiser, t_star=0.1, steps=2), classifier)
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    out = pipe.purify(grey)
    assert out.shape == (8, 8) and out.dtype == np.uint8
    batch = rng.random((3, 8, 8, 1)).astype(np.float32)
    out = pipe.purify(batch)
    assert out.shape == (3, 8, 8, 1) and out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    pil = pipe.purify(Image.fromarray(grey, "L"))
    assert isinstance(pil, Image.Image) and pil.size == (8, 8)
    t = pipe.purify(torch.rand(1, 8, 8))
    assert t.shape == (1, 8, 8)
    labels = pipe.classify(batch, votes=3)
    assert labels.shape == (3,) and labels.dtype == np.int64
    with pytest.raises(ValueError, match="images"):
        pipe.purify("not an image")


def test_image_folder_keeps_16_bit_values(tmp_path):
    """A 16-bit grey PNG is scaled by /65535 (vision's decoder), not clipped at 255 by an RGB conversion."""
    from PIL import Image

    from omnidiffusion.purification.data import image_folder

    (tmp_path / "a").mkdir()
    values = np.array([[0, 1000], [30000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "a" / "x.png")
    x, y = image_folder(tmp_path, size=2, channels=1)
    assert y.tolist() == [0]
    np.testing.assert_allclose(x[0, 0].numpy(), values / 65535.0, rtol=0, atol=1e-7)
