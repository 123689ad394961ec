"""Diffusers folders as the purifier's diffusion model: DiffPure, the pipeline and the CLI, against our own checkpoint.

The truth is our checkpoint: a tiny digits ImageDDPM (weights perturbed so the time embedding matters) exported with
`core.interop.to_diffusers` must purify the same images to the same output, up to float noise, because the
exported UNet2DModel and DiscreteVP reproduce the model exactly. `evaluate --checkpoint <exported>` runs end to
end and reports the same accuracies as `evaluate --checkpoint <ours>`.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from omnidiffusion.core import sample
from omnidiffusion.core.io import save_pretrained
from omnidiffusion.core.training import TrainConfig
from omnidiffusion.purification import DiffPure, SmallCNN, load_images, train_classifier
from omnidiffusion.purification.cli import cli
from omnidiffusion.purification.pipeline import PurificationPipeline, load_denoiser
from omnidiffusion.purification.settings import load_purification_config

pytest.importorskip("diffusers")
vision = pytest.importorskip("omnidiffusion.vision")
interop = pytest.importorskip("omnidiffusion.core.interop")

UNET = {"base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1, "attention_resolutions": [], "norm_groups": 4}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """ours/ (save_pretrained ImageDDPM 16x16 grey), exported/ (to_diffusers of it), classifier/ (SmallCNN)."""
    root = tmp_path_factory.mktemp("purification_diffusers")
    torch.manual_seed(0)
    ddpm = vision.ImageDDPM(16, 1, UNET)
    with torch.no_grad():  # the zero-initialised output layer would make eps_hat = 0 at every t
        for p in ddpm.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_pretrained(ddpm, root / "ours")
    interop.to_diffusers(ddpm, root / "exported")
    # a briefly trained classifier, so that equal accuracies are not equal zeros
    x, y = load_images("digits", split="train", size=16, channels=1)
    config = TrainConfig(
        steps=60, batch_size=64, lr=5e-3, ema_decay=None, log_every=60, ckpt_every=60, progress=False, device="cpu"
    )
    train_classifier(SmallCNN(1, 10, 4), x, y, config, root / "classifier")
    return root


def _digits(n: int = 4) -> torch.Tensor:
    return load_images("digits", split="test", size=16, channels=1)[0][:n]


def test_the_exported_folder_is_detected_and_gives_a_discrete_vp_denoiser(folders):
    assert interop.is_diffusers_folder(folders / "exported") and not interop.is_diffusers_folder(folders / "ours")
    den = load_denoiser(folders / "exported")
    ours = load_denoiser(folders / "ours")
    assert type(den.schedule).__name__ == "DiscreteVP" and den.schedule.T == 1000
    t = torch.tensor([0.05, 0.1, 0.5])
    assert torch.allclose(den.schedule.alpha(t), ours.schedule.alpha(t), rtol=1e-6)
    assert DiffPure(den, t_star=0.1, steps=2).image_shape == (1, 16)  # read from the UNet2DModel config


@pytest.mark.parametrize("method", ["sde", "ddpm", "dpm++2m"])
def test_diffpure_on_the_diffusers_denoiser_equals_ours(folders, method):
    x = _digits()
    outs = []
    for name in ("ours", "exported"):
        den = load_denoiser(folders / name)
        outs.append(DiffPure(den, t_star=0.1, method=method, steps=3, seed=5)(x))
    assert torch.allclose(outs[0], outs[1], atol=2e-5), (outs[0] - outs[1]).abs().max()
    assert not torch.allclose(outs[0], x, atol=1e-2)  # it did purify


def test_t_start_on_the_returned_schedule_is_core_sample(folders):
    """DiffPure without gradients is core `sample(t_start=t*)` on the DiscreteVP from_diffusers built."""
    den = load_denoiser(folders / "exported")
    x = _digits(2)
    got = DiffPure(den, t_star=0.2, method="ddpm", steps=4, seed=1)(x)
    gen = torch.Generator().manual_seed(1)
    z = x * 2 - 1
    noise = torch.randn(z.shape, generator=gen)
    x_t = den.schedule.alpha(torch.tensor(0.2)).float() * z + den.schedule.sigma(torch.tensor(0.2)).float() * noise
    want = sample(den, x_t, method="ddpm", steps=4, t_start=0.2, generator=gen, options={"variance": "fixed-small"})
    assert torch.allclose(got, ((want + 1) / 2).clamp(0, 1), atol=1e-5)


def test_pipeline_accepts_either_folder_and_agrees(folders):
    x = _digits()
    config = load_purification_config("digits", ["sampler.steps=2", "sampler.seed=3"])
    a = PurificationPipeline.from_pretrained(folders / "ours", config=config, classifier=folders / "classifier")
    b = PurificationPipeline.from_pretrained(folders / "exported", config=config, classifier=folders / "classifier")
    assert torch.allclose(a.purify(x), b.purify(x), atol=2e-5)
    a.purifier.reset_noise(), b.purifier.reset_noise()
    assert (a.classify(x) == b.classify(x)).all()


def _evaluate(folders, diffusion: str, capsys) -> dict:
    argv = ["evaluate", "--config", "tiny", "--checkpoint", folders / diffusion, "--quiet"]
    for key in (
        f"classifier.weights={folders / 'classifier'}",
        "data.source=digits",
        "evaluate.attacks=pgd",
        "evaluate.eps=0.02",
        "evaluate.n=8",
        "sampler.steps=2",
    ):
        argv += ["--set", key]
    assert cli.main([str(a) for a in argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_evaluate_end_to_end_on_the_exported_folder(folders, capsys):
    exported = _evaluate(folders, "exported", capsys)
    ours = _evaluate(folders, "ours", capsys)
    print(json.dumps(exported["model"], indent=1))  # the acceptance JSON, shown with -s
    assert exported["protocol"]["diffusion"]["format"] == "diffusers"
    assert ours["protocol"]["diffusion"]["format"] == "omnidiffusion"
    assert exported["model"] == ours["model"] and exported["baselines"] == ours["baselines"]
    assert exported["protocol"]["n"] == 8 and "robust_accuracy[pgd, eps=0.02, transfer]" in exported["model"]
    assert exported["baselines"]["classifier alone"]["clean_accuracy"] > 0.3  # the classifier learned something


def test_cli_purify_writes_the_same_pngs_from_either_folder(folders, capsys):
    import numpy as np
    from PIL import Image

    outs = []
    for name in ("ours", "exported"):
        out = folders / f"png_{name}"
        argv = ["purify", "--config", "tiny", "--checkpoint", folders / name, "--input", "digits", "--n", "2"]
        assert cli.main([str(a) for a in argv + ["--out", out]]) == 0
        outs.append([np.asarray(Image.open(out / f"{i:05d}.png"), dtype=np.int16) for i in range(2)])
    for a, b in zip(*outs, strict=True):
        assert np.abs(a - b).max() <= 1  # uint8 rounding of values equal to float noise


def test_a_broken_diffusers_folder_is_one_clear_error(folders, tmp_path, cli_error):
    broken = tmp_path / "nosched"
    shutil.copytree(folders / "exported", broken)
    shutil.rmtree(broken / "scheduler")
    argv = ["purify", "--config", "tiny", "--checkpoint", broken, "--input", "digits", "--out", tmp_path / "o"]
    cli_error(cli, argv, "--checkpoint", "(a diffusers folder)", "no scheduler_config.json")
    argv = ["evaluate", "--config", "tiny", "--checkpoint", folders / "ours"]
    cli_error(
        cli,
        argv + ["--set", f"classifier.weights={folders / 'exported'}"],
        "classifier.weights",
        "is a diffusers folder (a diffusion model)",
    )


def test_without_diffusers_installed_the_error_says_what_to_install(folders, monkeypatch):
    from omnidiffusion.purification import pipeline

    def missing(*args, **kwargs):
        raise ImportError("No module named 'diffusers'")

    monkeypatch.setattr(pipeline, "from_diffusers", missing)
    with pytest.raises(ValueError, match=r"directory: .* is a diffusers folder; .*omnidiffusion-core\[diffusers\]"):
        PurificationPipeline.from_pretrained(folders / "exported")
