"""The unconditional image DDPM: save/load round trip, the Denoiser contract, data loaders, a tiny overfit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omnidiffusion.core import Denoiser, DiscreteVP
from omnidiffusion.vision import ImageDDPM, load_digits_16, load_faces, train_image_ddpm
from omnidiffusion.vision.models import SR3

TINY_UNET = {
    "base_channels": 8,
    "channel_mults": [1, 2],
    "num_res_blocks": 1,
    "attention_resolutions": [],
    "norm_groups": 4,
    "dropout": 0.0,
}
TINY = [
    "model.base_channels=8",
    "model.channel_mults=1,2",
    "model.num_res_blocks=1",
    "model.norm_groups=4",
    "train.progress=false",
    "train.batch_size=16",
]


def test_digits_loader_matches_sklearn():
    from sklearn.datasets import load_digits

    raw = load_digits().images / 16.0  # (1797, 8, 8)
    train, test = load_digits_16("train"), load_digits_16("test")
    assert train.shape == (1497, 1, 16, 16) and test.shape == (300, 1, 16, 16)
    assert float(train.min()) >= 0.0 and float(train.max()) <= 1.0
    # 2x bilinear upsampling then 2x2 average pooling recovers the 8x8 image up to the border blur; the
    # interior mean of each 2x2 block equals the mean of the 4 nearest input pixels weighted 9:3:3:1, so check
    # the global means instead (bilinear interpolation with half-pixel centres preserves the mean to ~1e-2).
    assert np.allclose(train.mean(dim=(1, 2, 3)).numpy(), raw[:1497].mean(axis=(1, 2)), atol=0.03)
    assert torch.equal(torch.cat([train, test]), load_digits_16("all"))
    with pytest.raises(ValueError, match="split"):
        load_digits_16("validation")


def test_faces_loader_is_lfw_faces():
    from skimage.data import lfw_subset

    faces = load_faces("all")
    assert faces.shape == (100, 1, 25, 25)
    assert np.array_equal(faces[:, 0].numpy(), lfw_subset()[:100].astype(np.float32))
    assert load_faces("train").shape[0] + load_faces("test").shape[0] == 100


def test_lfw_source_adds_the_non_face_patches_and_no_held_out_face():
    from skimage.data import lfw_subset

    from omnidiffusion.vision.data import load_lfw_nonfaces, training_images

    assert np.array_equal(load_lfw_nonfaces()[:, 0].numpy(), lfw_subset()[100:].astype(np.float32))
    x = training_images("lfw", 1, 24)
    assert x.shape == (180, 1, 25, 25) and x.min() >= -1 and x.max() <= 1
    held_out = load_faces("test") * 2 - 1
    assert not any(torch.equal(img, face) for img in x for face in held_out)


def test_save_load_round_trip(tmp_path):
    model = ImageDDPM(16, 1, TINY_UNET, {"name": "linear", "timesteps": 50, "beta_start": 1e-4, "beta_end": 0.2}, "v")
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    model.save_pretrained(tmp_path / "m")
    loaded = ImageDDPM.from_pretrained(tmp_path / "m")
    assert (loaded.image_size, loaded.channels, loaded.prediction) == (16, 1, "v")
    assert loaded.schedule.T == 50 and np.allclose(loaded.schedule.betas, model.schedule.betas)
    x, t = torch.randn(3, 1, 16, 16), torch.rand(3)
    model.eval()
    assert torch.equal(model(x, t), loaded(x, t))
    den = loaded.denoiser()
    assert isinstance(den, Denoiser) and isinstance(den.schedule, DiscreteVP)
    # Clipped x0_hat lies in [-1, 1]; the eps/x0 relation x_t = alpha x0 + sigma eps holds (x0 recomputed eps).
    out = den.predict(x, 0.5)
    a, s = den.schedule.alpha(0.5).item(), den.schedule.sigma(0.5).item()
    assert out.x0.abs().max() <= 1.0
    assert torch.allclose(a * out.x0 + s * out.eps, x, atol=1e-5)
    # A directory holding another model class is refused by name.
    SR3(8, 1, 2, TINY_UNET, {"name": "linear", "timesteps": 20}).save_pretrained(tmp_path / "sr3")
    with pytest.raises(ValueError, match="SR3"):
        ImageDDPM.from_pretrained(tmp_path / "sr3")


def test_train_image_ddpm_overfits_and_resumes(tmp_path):
    """The loss on 8 fixed digits falls well below its starting value (eps-MSE starts near 1)."""
    torch.manual_seed(0)
    images = load_digits_16("train")[:16] * 2 - 1
    over = TINY + [
        "train.steps=120",
        "train.lr=3e-3",
        "train.log_every=20",
        "train.ckpt_every=60",
        "schedule.timesteps=100",
        "data.hflip=false",
    ]
    model = train_image_ddpm(images, "ddpm-digits", tmp_path / "run", overrides=over)
    losses = np.loadtxt(tmp_path / "run" / "log.csv", delimiter=",", skiprows=1)[:, 1]
    assert losses[0] > 0.5 and losses[-1] < 0.6 * losses[0]
    loaded = ImageDDPM.from_pretrained(tmp_path / "run")
    x, t = torch.randn(2, 1, 16, 16), torch.rand(2)
    assert torch.equal(loaded(x, t), model(x, t))
    # A finished run called again with more steps resumes from its checkpoint.
    train_image_ddpm(images, "ddpm-digits", tmp_path / "run", overrides=[*over, "train.steps=130"], resume=True)
    steps = np.loadtxt(tmp_path / "run" / "log.csv", delimiter=",", skiprows=1)[:, 0]
    assert steps[-1] == 130


def test_train_image_ddpm_rejects_bad_images(tmp_path):
    with pytest.raises(ValueError, match="images"):
        train_image_ddpm(torch.rand(4, 16, 16), "ddpm-digits", tmp_path, overrides=TINY)
    with pytest.raises(ValueError, match=r"range"):
        train_image_ddpm(torch.rand(4, 1, 16, 16) * 3, "ddpm-digits", tmp_path, overrides=TINY)
    with pytest.raises(ValueError, match="channel"):
        train_image_ddpm(torch.rand(4, 3, 16, 16), "ddpm-digits", tmp_path, overrides=TINY)
    with pytest.raises(ValueError, match="unknown config key"):
        train_image_ddpm(torch.rand(4, 1, 16, 16), "ddpm-digits", tmp_path, overrides=["model.width=3"])


def test_training_images_read_cifar10_binary(tmp_path):
    """data.source = cifar10: the five training batches of cifar-10-batches-bin, byte / 255 scaled to [-1, 1]."""
    from omnidiffusion.vision.data import training_images

    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(0)
    records = []
    for i in range(1, 6):
        rec = np.concatenate([rng.integers(0, 10, (3, 1)), rng.integers(0, 256, (3, 3072))], axis=1).astype(np.uint8)
        (folder / f"data_batch_{i}.bin").write_bytes(rec.tobytes())
        records.append(rec)
    x = training_images("cifar10", 3, 32, str(tmp_path))
    assert x.shape == (15, 3, 32, 32)
    want = np.concatenate(records)[:, 1:].reshape(15, 3, 32, 32) / 255.0 * 2 - 1  # R plane, G plane, B plane
    np.testing.assert_allclose(x.numpy(), want, atol=1e-6)
    test = np.concatenate([rng.integers(0, 10, (2, 1)), rng.integers(0, 256, (2, 3072))], axis=1).astype(np.uint8)
    (folder / "test_batch.bin").write_bytes(test.tobytes())
    from omnidiffusion.vision.data import load_folder_images

    held_out = load_folder_images(tmp_path, 3)  # evaluate's --hr-dir / --image-dir: the test batch
    np.testing.assert_allclose(held_out.numpy(), test[:, 1:].reshape(2, 3, 32, 32) / 255.0, atol=1e-6)
    assert load_folder_images(folder, 1, 16).shape == (2, 1, 16, 16)  # grey, center-cropped
    with pytest.raises(ValueError, match="data.root"):
        training_images("cifar10", 3, 32, "")
    with pytest.raises(FileNotFoundError, match="data.root"):
        training_images("cifar10", 3, 32, str(tmp_path / "absent"))
