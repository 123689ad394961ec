"""CLI smoke tests of segmentation on tiny configs: train (segdiff, seg-unet, ddpm-seg), segment, evaluate, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from omnidiffusion.vision.cli import cli
from omnidiffusion.vision.segmentation.data import synthetic_set, write_mask_pairs
from omnidiffusion.vision.segmentation.pipeline import Segmenter

TINY = [
    "model.base_channels=8",
    "model.channel_mults=1,2",
    "model.norm_groups=4",
    "model.attention_resolutions=[]",
    "train.steps=4",
    "train.batch_size=4",
    "train.log_every=2",
    "train.ckpt_every=4",
    "train.progress=false",
    "data.image_size=16",
    "seg.n_images=12",
    "seg.n_test=4",
    "seg.encoder_growth=4",
    "seg.n_samples=2",
]


def _sets(extra=()):
    out = []
    for s in [*TINY, *extra]:
        out += ["--set", s]
    return out


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("segdata")
    images, masks = synthetic_set(3, 16, "mixed", seed=7)
    write_mask_pairs(images, masks, root / "img", root / "msk")
    return root


def test_segdiff_train_segment_evaluate(tmp_path, folders, capsys):
    out, unet = tmp_path / "sd", tmp_path / "unet"
    assert cli.main(["train", "--config", "segdiff-shapes", "--out", str(out), *_sets(["schedule.timesteps=10"])]) == 0
    assert cli.main(["train", "--config", "seg-unet-shapes", "--out", str(unet), *_sets()]) == 0
    assert Segmenter.from_pretrained(out).kind == "segdiff"
    assert Segmenter.from_pretrained(unet).kind == "seg-unet"
    capsys.readouterr()
    mask_png, over_png, unc_png = tmp_path / "m.png", tmp_path / "o.png", tmp_path / "u.png"
    code = cli.main(
        ["segment", "--checkpoint", str(out), "--input", str(folders / "img" / "0000.png"), "--out", str(mask_png),
         "--overlay", str(over_png), "--uncertainty", str(unc_png), "--set", "sampler.method=dpm++2m",
         "--set", "sampler.steps=2", "--device", "cpu"]
    )  # fmt: skip
    assert code == 0 and "segdiff" in capsys.readouterr().out
    mask = np.asarray(Image.open(mask_png))
    assert mask.shape == (16, 16) and set(np.unique(mask)) <= {0, 255}
    assert Image.open(over_png).mode == "RGB" and unc_png.is_file()
    code = cli.main(
        ["evaluate", "--task", "seg", "--checkpoint", str(out), "--image-dir", str(folders / "img"),
         "--mask-dir", str(folders / "msk"), "--device", "cpu", "--set", "sampler.method=dpm++2m",
         "--set", "sampler.steps=2", "--set", f"seg.unet_checkpoint={unet}", "--set", "seg.n_samples=2"]
    )  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"model", "baselines", "protocol"}
    assert {"otsu", "unet-bce-dice"} <= set(result["baselines"])
    for row in (result["model"], *result["baselines"].values()):
        assert 0.0 <= row["dice"] <= 1.0 and 0.0 <= row["iou"] <= row["dice"] + 1e-9  # IoU <= Dice always
        assert row["n_images"] == 3
    # without folders (and without --config): the run's own bundled held-out split (seg.n_test = 4 at training)
    assert cli.main(["evaluate", "--task", "seg", "--checkpoint", str(unet), "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"]["n_images"] == 4 and "held-out" in result["protocol"]["data"]


def test_ddpm_seg_train_and_evaluate(tmp_path, folders, capsys):
    out = tmp_path / "dseg"
    extra = ["schedule.timesteps=100", "seg.feature_steps=[5,20]", "seg.feature_blocks=[0,2]", "seg.n_labelled=2",
             "seg.pixels_per_image=32", "seg.n_mlps=3", "seg.mlp_epochs=2", "seg.mlp_batch=16"]  # fmt: skip
    assert cli.main(["train", "--config", "ddpm-seg-shapes", "--out", str(out), *_sets(extra)]) == 0
    assert Segmenter.from_pretrained(out).kind == "ddpm-seg"
    capsys.readouterr()
    code = cli.main(
        ["evaluate", "--task", "seg", "--checkpoint", str(out), "--image-dir", str(folders / "img"),
         "--mask-dir", str(folders / "msk"), "--device", "cpu", *_sets(extra)]
    )  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert "raw-pixels-5x5" in result["baselines"] and 0.0 <= result["model"]["miou"] <= 1.0
    assert cli.main(["segment", "--checkpoint", str(out), "--input", str(folders / "img" / "0001.png"),
                     "--out", str(tmp_path / "d.png")]) == 0  # fmt: skip


def test_evaluate_bad_inputs(tmp_path, folders, cli_error):
    ckpt = tmp_path / "unet"
    assert cli.main(["train", "--config", "seg-unet-shapes", "--out", str(ckpt), *_sets(["train.steps=1"])]) == 0
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(masks / "0000.png")
    base = ["evaluate", "--task", "seg", "--checkpoint", str(ckpt), "--image-dir", str(folders / "img")]
    cli_error(cli, [*base, "--mask-dir", str(masks)], "no mask for image 0001.png")
    for i in (1, 2):
        Image.fromarray(np.zeros((16, 12), np.uint8)).save(masks / f"000{i}.png")
    cli_error(cli, [*base, "--mask-dir", str(masks)], "does not match its image size")
    Image.fromarray((np.arange(256).reshape(16, 16) % 7 * 30).astype(np.uint8)).save(masks / "0001.png")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(masks / "0002.png")
    cli_error(cli, [*base, "--mask-dir", str(masks)], "binary mask")
    cli_error(cli, base, "--mask-dir")
    with pytest.raises(ValueError, match="image_size"):
        Segmenter.from_pretrained(ckpt).segment_tensor(torch.zeros(1, 1, 8, 8))
