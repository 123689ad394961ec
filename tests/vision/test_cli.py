"""CLI smoke tests on tiny configs: train writes a loadable checkpoint; evaluate prints one JSON object."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from omnidiffusion.vision import SR3, ImageDDPM
from omnidiffusion.vision.cli import cli

TINY = [
    "--set",
    "model.base_channels=8",
    "--set",
    "model.channel_mults=1,2",
    "--set",
    "model.num_res_blocks=1",
    "--set",
    "model.norm_groups=4",
    "--set",
    "model.attention_resolutions=[]",
    "--set",
    "train.steps=6",
    "--set",
    "train.batch_size=8",
    "--set",
    "train.log_every=3",
    "--set",
    "train.ckpt_every=3",
    "--set",
    "train.progress=false",
]


def _faces(folder, n=3, size=24):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8), "L").save(folder / f"f{i}.png")
    return folder


def test_console_script_help():
    exe = shutil.which("omnidiffusion-vision") or str(
        __import__("pathlib").Path(sys.executable).parent / "omnidiffusion-vision"
    )
    out = subprocess.run([exe, "evaluate", "--help"], capture_output=True, text=True, check=True)
    assert "--hr-dir" in out.stdout and "--config" in out.stdout and "--set" in out.stdout


def test_train_sr3_then_evaluate_and_upscale(tmp_path, capsys, cli_error):
    out = tmp_path / "sr3"
    sr3_tiny = [*TINY, "--set", "schedule.timesteps=50"]
    assert cli.main(["train", "--config", "sr3-faces", "--out", str(out), *sr3_tiny]) == 0
    model = SR3.from_pretrained(out)
    assert model.scale == 4 and model.image_size == 24
    hr_dir = _faces(tmp_path / "hr")
    capsys.readouterr()
    code = cli.main(
        [
            "evaluate",
            "--task",
            "sr",
            "--checkpoint",
            str(out),
            "--hr-dir",
            str(hr_dir),
            "--scale",
            "4",
            "--set",
            "sampler.steps=3",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"model", "baselines", "protocol"}
    assert {"nearest", "bilinear", "bicubic"} <= set(result["baselines"])
    assert result["protocol"]["steps"] == 3 and "psnr" in result["model"]
    cli_error(
        cli, ["evaluate", "--task", "sr", "--checkpoint", str(out), "--hr-dir", str(hr_dir), "--scale", "2"], "scale"
    )
    Image.fromarray(np.zeros((6, 6), np.uint8), "L").save(tmp_path / "lr.png")
    assert (
        cli.main(
            [
                "upscale",
                "--checkpoint",
                str(out),
                "--input",
                str(tmp_path / "lr.png"),
                "--out",
                str(tmp_path / "sr.png"),
                "--set",
                "sampler.steps=2",
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / "sr.png").size == (24, 24)
    # a folder holding a file that is not an image: clear error naming it
    (hr_dir / "broken.png").write_bytes(b"not a png")
    cli_error(cli, ["evaluate", "--task", "sr", "--checkpoint", str(out), "--hr-dir", str(hr_dir)], "broken.png")
    # distil: a consistency SR3 that upscales with its stored run config (method consistency, 2 steps)
    cd = tmp_path / "cd"
    argv = ["distil", "--checkpoint", str(out), "--out", str(cd), "--distil-steps", "2", "--device", "cpu"]
    assert cli.main(argv) == 0
    assert SR3.from_pretrained(cd).consistency is not None
    capsys.readouterr()
    assert cli.main(["upscale", "--checkpoint", str(cd), "--input", str(tmp_path / "lr.png"), "--out",
                     str(tmp_path / "sr_cd.png")]) == 0  # fmt: skip
    assert "(consistency, 2 steps)" in capsys.readouterr().out
    cli_error(cli, ["distil", "--checkpoint", str(cd), "--out", str(tmp_path / "cd2"), "--distil-steps", "1"],
              "consistency-distilled")  # fmt: skip


def test_train_ddpm_resume_and_evaluate_inpaint(tmp_path, capsys, cli_error):
    out = tmp_path / "ddpm"
    tiny = [*TINY, "--set", "schedule.timesteps=50"]
    assert cli.main(["train", "--config", "ddpm-faces", "--out", str(out), *tiny]) == 0
    # resume: a longer run continues from the checkpoint at step 6
    assert (
        cli.main(
            ["train", "--config", "ddpm-faces", "--out", str(out), "--resume", *tiny, "--set", "train.steps=9"]
        )
        == 0
    )
    steps = np.loadtxt(out / "log.csv", delimiter=",", skiprows=1)[:, 0]
    assert list(steps) == [3, 6, 9]
    assert ImageDDPM.from_pretrained(out).image_size == 24
    faces = _faces(tmp_path / "faces")
    capsys.readouterr()
    assert (
        cli.main(
            [
                "evaluate",
                "--task",
                "inpaint",
                "--checkpoint",
                str(out),
                "--image-dir",
                str(faces),
                "--mask",
                "half",
                "--set",
                "repaint.steps=4",
                "--set",
                "repaint.jump_length=2",
                "--set",
                "repaint.jump_n_sample=2",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert {"mean-fill", "biharmonic", "repaint-r1"} <= set(result["baselines"])
    assert result["model"]["known_max_abs_error"] < 1e-6
    assert result["protocol"]["hole_fraction"] == pytest.approx(0.5)
    bad_mask = tmp_path / "mask.png"
    Image.fromarray(np.full((16, 16), 255, np.uint8), "L").save(bad_mask)
    cli_error(
        cli,
        ["inpaint", "--checkpoint", str(out), "--input", str(faces / "f0.png"), "--mask", str(bad_mask)],
        "does not match the image size",
    )
    cli_error(cli, ["train", "--config", "ddpm-faces", "--set", "model.depth=3"], "unknown config key")
