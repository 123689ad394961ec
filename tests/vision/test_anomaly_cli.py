"""AnoDDPM end to end on a tiny config: train, evaluate (folders and bundled), anomaly-score, pipeline, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from omnidiffusion.core import Denoiser
from omnidiffusion.vision.anomaly.anoddpm import AnoDDPMLoss, partial_diffusion, reconstruct, step_grid
from omnidiffusion.vision.anomaly.data import anomaly_test_set, write_pairs
from omnidiffusion.vision.anomaly.pipeline import AnomalyDetector
from omnidiffusion.vision.anomaly.settings import AnomalyConfig
from omnidiffusion.vision.cli import cli
from omnidiffusion.vision.models import ImageDDPM

TINY = [
    "--set",
    "model.base_channels=8",
    "--set",
    "model.channel_mults=1,2",
    "--set",
    "model.norm_groups=4",
    "--set",
    "data.image_size=16",
    "--set",
    "schedule.timesteps=100",
    "--set",
    "anomaly.t_star=10",
    "--set",
    "anomaly.train_max_index=80",
    "--set",
    "anomaly.frequency=4",
    "--set",
    "anomaly.train_crops=64",
    "--set",
    "anomaly.test_images=8",
    "--set",
    "train.steps=4",
    "--set",
    "train.batch_size=8",
    "--set",
    "train.log_every=2",
    "--set",
    "train.ckpt_every=2",
    "--set",
    "train.progress=false",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("anomaly") / "model"
    torch.set_num_threads(1)
    assert cli.main(["train", "--config", "anomaly-textures", "--out", str(out), *TINY]) == 0
    return out


def test_train_writes_a_loadable_detector(trained):
    det = AnomalyDetector.from_pretrained(trained)
    assert det.settings.t_star == 10 and det.settings.noise == "simplex"
    assert det.model.image_size == 16 and det.mean_image.shape == (1, 16, 16)
    amap, score = det.score(Image.fromarray(np.full((16, 16), 128, np.uint8)))
    assert amap.shape == (16, 16) and amap.dtype == np.float32 and np.isfinite(score)
    assert score == pytest.approx(float(amap.max()))
    with pytest.raises(ValueError, match="images"):
        det.score_batch(torch.rand(1, 1, 12, 12))


def test_evaluate_folders_and_bundled(trained, tmp_path, capsys, cli_error):
    settings = AnomalyDetector.from_pretrained(trained).settings
    images, masks = anomaly_test_set(settings, 16)
    write_pairs(images, masks, tmp_path / "img", tmp_path / "mask")
    args = ["evaluate", "--task", "anomaly", "--checkpoint", str(trained), "--device", "cpu"]
    capsys.readouterr()
    assert cli.main([*args, "--image-dir", str(tmp_path / "img"), "--mask-dir", str(tmp_path / "mask")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"model", "baselines", "protocol"}
    for metrics in [result["model"], *result["baselines"].values()]:
        assert 0.0 <= metrics["pixel_auroc"] <= 1.0 and 0.0 < metrics["best_dice"] <= 1.0
    assert "mean-image" in result["baselines"] and "blur-residual(sigma=1.5)" in result["baselines"]
    assert result["protocol"]["images"] == 8
    # bundled test set, with a setting overridden from the command line
    assert cli.main([*args, "--set", "anomaly.t_star=5"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["protocol"]["anomaly"]["t_star"] == 5
    # a mask of the wrong size
    Image.fromarray(np.zeros((15, 16), np.uint8)).save(tmp_path / "mask" / "0000.png")
    cli_error(cli, [*args, "--image-dir", str(tmp_path / "img"), "--mask-dir", str(tmp_path / "mask")], "mask_dir")
    cli_error(cli, [*args, "--image-dir", str(tmp_path / "img")], "--mask-dir")


def test_anomaly_score_verb(trained, tmp_path, capsys, cli_error):
    img = tmp_path / "x.png"
    Image.fromarray((np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8)).save(img)
    out = tmp_path / "out"
    args = ["anomaly-score", "--checkpoint", str(trained), "--input", str(img), "--out", str(out)]
    assert cli.main([*args, "--save-npy", "--device", "cpu"]) == 0
    assert "score" in capsys.readouterr().out
    assert Image.open(out / "x_overlay.png").mode == "RGB"
    assert Image.open(out / "x_map.png").size == (16, 16)
    assert np.load(out / "x_map.npy", allow_pickle=False).shape == (16, 16)
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    cli_error(cli, ["anomaly-score", "--checkpoint", str(trained), "--input", str(bad), "--out", str(out)], "bad.png")


def _tiny_model(T: int = 50) -> ImageDDPM:
    torch.manual_seed(0)
    unet = {"base_channels": 8, "channel_mults": [1], "norm_groups": 4, "attention_resolutions": []}
    return ImageDDPM(8, 1, unet, {"name": "linear", "timesteps": T, "beta_start": 1e-4, "beta_end": 0.02}).eval()


def test_step_grid_and_partial_diffusion_marginal():
    model = _tiny_model()
    sched = model.schedule
    grid = step_grid(sched, 10)
    assert len(grid) == 11 and grid[0] == pytest.approx(10 / 50) and grid[-1] == 0
    assert len(step_grid(sched, 10, 4)) == 5
    with pytest.raises(ValueError, match="t_star"):
        step_grid(sched, 51)
    # x_{t*} = sqrt(abar) x + sqrt(1 - abar) eps with abar the product of (1 - beta) over the first t* steps
    betas = np.linspace(1e-4, 0.02, 50)
    abar = np.prod(1 - betas[:10])
    x = torch.full((64, 1, 8, 8), 0.5)
    s = AnomalyConfig(noise="gaussian", t_star=10)
    xt = partial_diffusion(Denoiser(model, sched, "eps"), x, 10, s, torch.Generator().manual_seed(0))
    assert xt.mean().item() == pytest.approx(0.5 * np.sqrt(abar), abs=0.01)
    assert xt.std().item() == pytest.approx(np.sqrt(1 - abar), rel=0.05)


@pytest.mark.parametrize("noise", ["gaussian", "simplex"])
def test_reconstruct_shapes_seeds_and_loss(noise):
    model = _tiny_model()
    s = AnomalyConfig(noise=noise, t_star=5, frequency=4.0, train_max_index=40)
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    a = reconstruct(model, x, s, generator=torch.Generator().manual_seed(1))
    b = reconstruct(model, x, s, generator=torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and a.abs().max() <= 1
    c = reconstruct(model, x, s, method="ddim", steps=3, generator=torch.Generator().manual_seed(1))
    assert c.shape == x.shape
    loss = AnoDDPMLoss(s)(model.train(), x)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()


def test_training_loss_falls_on_one_texture():
    from omnidiffusion.vision.anomaly.data import texture_crops

    torch.manual_seed(0)
    model = _tiny_model(T=100).train()
    x = texture_crops("brick", "train", 32, 8, 3) * 2 - 1
    loss_fn = AnoDDPMLoss(AnomalyConfig(t_star=20, train_max_index=80, frequency=4.0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = loss_fn(model, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:5])


def test_bundled_configs_load():
    from omnidiffusion.vision.settings import load_vision_config

    small = load_vision_config("anomaly-textures")
    paper = load_vision_config("anomaly-paper")
    assert small.task == paper.task == "anomaly"
    assert (paper.data.image_size, paper.model.base_channels, paper.train.batch_size) == (256, 128, 1)
    assert (paper.anomaly.octaves, paper.anomaly.persistence, paper.anomaly.frequency) == (6, 0.8, 64.0)
    assert paper.anomaly.t_star == 250 and paper.anomaly.train_max_index == 800
    with pytest.raises(ValueError, match="anomaly"):
        load_vision_config("anomaly-textures", ["anomaly.octave=3"])


def _write_mvtec_class(root, rng) -> None:
    """A miniature MVTec AD class folder: train/good, test/good, test/crack + ground_truth/crack masks (24 px)."""
    for sub, n in (("train/good", 8), ("test/good", 2), ("test/crack", 3)):
        (root / sub).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8)).save(root / sub / f"{i:03d}.png")
    (root / "ground_truth" / "crack").mkdir(parents=True)
    for i in range(3):
        mask = np.zeros((24, 24), np.uint8)
        mask[4 + i : 10 + i, 6:12] = 255
        Image.fromarray(mask).save(root / "ground_truth" / "crack" / f"{i:03d}_mask.png")


def test_mvtec_test_split_reads_masks_and_defects(tmp_path):
    from omnidiffusion.vision.anomaly.data import read_mvtec_test

    _write_mvtec_class(tmp_path / "bottle", np.random.default_rng(0))
    images, masks, names = read_mvtec_test(tmp_path / "bottle", 1)
    assert names == ["crack/000.png", "crack/001.png", "crack/002.png", "good/000.png", "good/001.png"]
    assert images.shape == (5, 1, 24, 24) and masks.dtype == torch.bool
    assert masks[:3].flatten(1).sum(1).tolist() == [36, 36, 36] and not masks[3:].any()
    assert masks[1, 0, 5:11, 6:12].all() and not masks[1, 0, 4].any()
    want = np.asarray(Image.open(tmp_path / "bottle" / "test" / "good" / "001.png"), dtype=np.float32) / 255
    np.testing.assert_allclose(images[4, 0].numpy(), want, atol=1e-6)
    small, small_masks, _ = read_mvtec_test(tmp_path / "bottle", 1, size=12)
    assert small.shape == (5, 1, 12, 12) and small_masks[:3].any() and not small_masks[3:].any()
    (tmp_path / "bottle" / "ground_truth" / "crack" / "002_mask.png").unlink()
    with pytest.raises(FileNotFoundError, match="no mask for test image crack/002.png"):
        read_mvtec_test(tmp_path / "bottle", 1)
    with pytest.raises(FileNotFoundError, match="no test/ folder"):
        read_mvtec_test(tmp_path, 1)


def test_train_on_mvtec_good_and_evaluate_its_test_split(tmp_path, capsys):
    _write_mvtec_class(tmp_path / "bottle", np.random.default_rng(1))
    out = tmp_path / "model"
    good = tmp_path / "bottle" / "train" / "good"
    folder = ["--set", "data.source=folder", "--set", f"data.root={good}", "--set", "data.resize=true"]
    assert cli.main(["train", "--config", "anomaly-textures", "--out", str(out), *TINY, *folder]) == 0
    capsys.readouterr()
    assert (
        cli.main(["evaluate", "--task", "anomaly", "--checkpoint", str(out), "--data-dir", str(tmp_path / "bottle")])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["protocol"]["data"]["images_per_defect"] == {"crack": 3, "good": 2}
    assert 0.0 <= report["model"]["image_auroc"] <= 1.0 and 0.0 <= report["model"]["pixel_auroc"] <= 1.0


def test_image_folder_resize_keeps_the_whole_image(tmp_path):
    import torch.nn.functional as F

    from omnidiffusion.vision.data import ImageFolder

    (tmp_path / "f").mkdir()
    img = np.zeros((24, 36), np.uint8)
    img[:, :18] = 255  # left half white: a crop would lose one half, a resize keeps both
    Image.fromarray(img).save(tmp_path / "f" / "a.png")
    x = ImageFolder(tmp_path / "f", 16, 1, random_crop=False, resize=True)[0]
    assert x.shape == (1, 16, 16)
    want = F.interpolate(
        torch.tensor(img / 255.0, dtype=torch.float32)[None, None], size=(16, 24), mode="bilinear", antialias=True
    )
    torch.testing.assert_close(x[0], want[0, 0, :, 4:20].clamp(0, 1) * 2 - 1, atol=1e-6, rtol=0)
