"""The run-config contract in the vision app: `train` stores its config, inference starts from it (CLI and Python
alike), --set changes one value, and checkpoints written before run_config.json (schedule "T", metadata config)
still load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from omnidiffusion.core.io import load_run_config
from omnidiffusion.core.training import TrainResult
from omnidiffusion.vision import SR3, ImageDDPM, load_vision_config
from omnidiffusion.vision.cli import EXTRA_TASKS, cli
from omnidiffusion.vision.pipeline import Inpainter, SuperResolution
from omnidiffusion.vision.settings import VisionConfig, legacy_config, upgrade_config_dict
from omnidiffusion.vision.training import train

TINY = ["model.base_channels=8", "model.channel_mults=1,2", "model.norm_groups=4", "model.attention_resolutions=[]",
        "train.steps=2", "train.batch_size=4", "train.log_every=1", "train.ckpt_every=2", "train.progress=false",
        "schedule.timesteps=20"]  # fmt: skip


@pytest.fixture(scope="module")
def sr3_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "sr3"
    config = load_vision_config("sr3-faces", [*TINY, "sampler.method=ddim", "sampler.steps=3", "sampler.seed=4"])
    result = train(config, out)
    assert isinstance(result, TrainResult) and isinstance(result.final_model, SR3)
    return out


def test_train_stores_the_config_and_from_pretrained_samples_with_it(sr3_run):
    stored = load_run_config(sr3_run, VisionConfig)
    assert stored.task == "sr3" and stored.schedule.timesteps == 20 and stored.sampler.method == "ddim"
    sr = SuperResolution.from_pretrained(sr3_run)
    assert sr.config == stored and sr.sampler.steps == 3
    lr = torch.rand(1, 6, 6, generator=torch.Generator().manual_seed(0))
    # unset arguments are the run's [sampler]: the same as passing them
    assert torch.equal(sr.upscale(lr), sr.upscale(lr, method="ddim", steps=3, grid="trailing", seed=4))


def test_cli_starts_from_the_checkpoint_config_and_refuses_config_beside_it(sr3_run, tmp_path, cli_error, capsys):
    lr = tmp_path / "lr.png"
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(lr)
    argv = ["upscale", "--checkpoint", str(sr3_run), "--input", str(lr), "--out", str(tmp_path / "sr.png")]
    assert cli.main(argv) == 0
    assert "(ddim, 3 steps)" in capsys.readouterr().out
    assert cli.main([*argv, "--set", "sampler.steps=2"]) == 0
    assert "(ddim, 2 steps)" in capsys.readouterr().out
    cli_error(cli, [*argv, "--config", "sr3-faces"], "--config", "not used with --checkpoint")
    cli_error(cli, [*argv, "--set", "sample.steps=2"], "sample")  # the old table name is gone


def test_print_config_shows_the_shared_tables():
    config = load_vision_config("ddpm-digits")
    assert config.schedule.timesteps == 1000 and config.sampler.method == "ddpm"
    assert not hasattr(config, "out") and not hasattr(config, "sample")


def test_image_train_refuses_the_task_packages_tasks(tmp_path):
    with pytest.raises(ValueError, match="points"):
        train(load_vision_config("points-shapes"), tmp_path)
    trains = {task for module in EXTRA_TASKS.values() for task in module.TRAINS}
    assert trains == {"segdiff", "seg-unet", "ddpm-seg", "points", "anomaly"}


def test_checkpoints_from_before_run_config_still_load(tmp_path):
    unet = {"base_channels": 8, "channel_mults": [1, 2], "norm_groups": 4}
    old = {"schedule": {"name": "linear", "T": 30, "beta_start": 1e-4, "beta_end": 0.05},
           "sample": {"steps": 7}, "repaint": {"steps": 9}, "out": "runs/x"}  # fmt: skip
    torch.manual_seed(0)
    ImageDDPM(16, 1, unet, old["schedule"]).save_pretrained(tmp_path / "old", metadata={"vision_config": old})
    model = ImageDDPM.from_pretrained(tmp_path / "old")
    assert model.schedule.T == 30  # the old "T" key of the schedule kwargs
    inp = Inpainter.from_pretrained(tmp_path / "old")
    assert inp.repaint.steps == 9 and inp.config.sampler.steps == 7 and inp.config.schedule.timesteps == 30
    assert upgrade_config_dict(old) == {
        "schedule": {"name": "linear", "timesteps": 30, "beta_start": 1e-4, "beta_end": 0.05},
        "sampler": {"steps": 7}, "repaint": {"steps": 9},
    }  # fmt: skip
    assert legacy_config({"vision_config": {"no_such_table": {}}}) is None and legacy_config(None) is None
