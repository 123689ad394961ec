"""Bad input: one-line errors (exit 2) naming the argument, from the CLI and from the Python API."""

from __future__ import annotations

import pytest
import torch

from omnidiffusion.multimodal import cli as mm_cli
from omnidiffusion.multimodal.data import load_folder, parse_caption
from omnidiffusion.multimodal.metrics import diversity, faithfulness, frechet_distance
from omnidiffusion.multimodal.settings import GuidedSamplerConfig, LatentScheduleConfig, MultimodalConfig, TextConfig


@pytest.fixture(scope="module")
def cli():
    return mm_cli.cli


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["train", "--set", "text.heads=3"], ["text.heads", "divisor"]),
        (["train", "--set", "nope.x=1"], ["nope"]),
        (["train", "--set", "unet.space=voxel"], ["unet.space", "latent, pixel"]),
        (["train", "--set", "schedule.name=sqrt"], ["schedule.name", "scaled-linear"]),
        (["train", "--set", "schedule.timesteps=1"], ["schedule.timesteps"]),
        (["train", "--set", "text.caption_dropout=1.5"], ["text.caption_dropout"]),
        (["train", "--set", "text.canonical=maybe"], ["text.canonical", "true/false"]),
        (["train", "--config", "no-such-config"], ["no-such-config"]),
        (["generate", "--checkpoint", "/nonexistent/run", "--prompt", "a small red circle", "--out", "x.png"],
         ["--checkpoint", "/nonexistent/run"]),
        (["generate", "--checkpoint", ".", "--prompt", "a small red circle", "--out", "x.png",
          "--set", "sampler.samples=0"], ["sampler.samples"]),
        (["generate", "--checkpoint", ".", "--prompt", "a small red circle"], ["--out"]),
        (["generate", "--checkpoint", ".", "--prompt", "  ", "--out", "x.png"], ["--prompt"]),
        (["generate", "--checkpoint", ".", "--prompt", "a big purple blob", "--out", "x.png", "--strict"],
         ["caption", "purple"]),
        (["generate", "--checkpoint", ".", "--prompt", "a small red circle", "--out", "/no/such/dir/x.png"],
         ["--out", "does not exist"]),
        (["generate", "--checkpoint", ".", "--prompt", "a small red circle", "--out", "x.txt"], ["--out", ".png"]),
        (["evaluate", "--checkpoint", ".", "--set", "sampler.guidance_scale=-1"], ["sampler.guidance_scale"]),
        (["evaluate", "--checkpoint", ".", "--set", "sampler.method=euler-x"], ["sampler.method"]),
        (["evaluate", "--checkpoint", ".", "--set", "sampler.samples=1"], ["sampler.samples", ">= 2"]),
        (["evaluate", "--checkpoint", ".", "--seed", "1"], ["--seed"]),
        (["evaluate", "--checkpoint", ".", "--split", "train"], ["--split"]),
        (["evaluate", "--checkpoint", "/nonexistent/run"], ["--checkpoint"]),
    ],
)
def test_cli_bad_input(cli, cli_error, argv, fragments, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli_error(cli, argv, *fragments)


def test_cli_checkpoint_that_is_not_a_run(cli, cli_error, tmp_path):
    (tmp_path / "run").mkdir()
    cli_error(cli, ["evaluate", "--checkpoint", tmp_path / "run"], "--checkpoint", "denoiser", "config.json")


def test_cli_folder_with_unreadable_image(cli, cli_error, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not an image")
    (folder / "captions.csv").write_text("file,caption\na.png,a small red circle\n")
    (tmp_path / "run").mkdir()
    cli_error(cli, ["evaluate", "--checkpoint", tmp_path / "run", "--folder", folder], "a.png", "not a readable image")


def test_api_bad_input(tmp_path):
    with pytest.raises(ValueError, match="caption: expected"):
        parse_caption("a small red circle above a blue square")
    with pytest.raises(FileNotFoundError, match="captions.csv"):
        load_folder(tmp_path)
    with pytest.raises(ValueError, match="predicted, target"):
        faithfulness(torch.zeros(3, 7, dtype=torch.long), torch.zeros(3, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="x, y"):
        frechet_distance(torch.zeros(1, 4), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="finite"):
        frechet_distance(torch.full((3, 2), float("nan")), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="groups"):
        diversity(torch.zeros(4, 2), [0, 1, 2, 3])
    with pytest.raises(ValueError, match="sampler.steps"):
        GuidedSamplerConfig(steps=0)
    with pytest.raises(ValueError, match="sampler.grid"):
        GuidedSamplerConfig(grid="leading")
    with pytest.raises(ValueError, match="schedule.name"):
        LatentScheduleConfig(name="quadratic")
    with pytest.raises(ValueError, match=r"text.canonical: expected bool \(true/false\), got 'yes'"):
        TextConfig(canonical="yes")
    with pytest.raises(ValueError, match="config: expected a MultimodalConfig"):
        from omnidiffusion.multimodal.training import train

        train({"data": {}}, tmp_path)
    assert MultimodalConfig().text.caption_dropout == 0.1
