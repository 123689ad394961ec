"""Diffusers folders in the vision app (sample | inpaint | restore, Inpainter), and the restore / evaluate --task
inverse commands. Tiny random diffusers UNet2DModels are saved to a temp dir (no network); the truth is diffusers'
own DDIM loop, the known pixels of an inpainting, and DDNM's consistency A x = y."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from omnidiffusion.core.interop import from_diffusers
from omnidiffusion.vision.cli import cli
from omnidiffusion.vision.inverse import Downsample, restore
from omnidiffusion.vision.masks import box_mask
from omnidiffusion.vision.models import ImageDDPM
from omnidiffusion.vision.pipeline import Inpainter
from omnidiffusion.vision.priors import DenoiserPrior, load_image_prior

diffusers = pytest.importorskip("diffusers")

SIZE = 16


def _unet(channels: int = 1):
    torch.manual_seed(0)
    return diffusers.UNet2DModel(
        sample_size=SIZE, in_channels=channels, out_channels=channels, block_out_channels=(8, 16),
        layers_per_block=1, norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    ).eval()


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("diffusers")
    sched = diffusers.DDPMScheduler(num_train_timesteps=200, beta_end=0.05, clip_sample=True)
    diffusers.DDPMPipeline(unet=_unet(), scheduler=sched).save_pretrained(root / "pipe")
    # diffusers' DDIM step keeps the unclipped eps when it clips x0 (core recomputes eps from the clipped x0), so
    # the loop-parity test uses a scheduler without clip_sample
    noclip = diffusers.DDPMScheduler(num_train_timesteps=200, beta_end=0.05, clip_sample=False)
    diffusers.DDPMPipeline(unet=_unet(), scheduler=noclip).save_pretrained(root / "noclip")
    bare = root / "bare"
    _unet().save_pretrained(bare)
    sched.save_pretrained(bare)  # scheduler_config.json beside the UNet's config.json
    torch.manual_seed(0)
    ImageDDPM(SIZE, 1, {"base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1, "norm_groups": 4},
              {"name": "linear", "timesteps": 200, "beta_start": 1e-4, "beta_end": 0.05}).save_pretrained(root / "ours")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.uniform(50, 200, (SIZE, SIZE))).astype(np.uint8)).save(root / "img.png")
    Image.fromarray((rng.uniform(50, 200, (SIZE // 4, SIZE // 4))).astype(np.uint8)).save(root / "lr.png")
    (root / "faces").mkdir()
    for i in range(2):
        Image.fromarray((rng.uniform(0, 255, (SIZE, SIZE))).astype(np.uint8)).save(root / "faces" / f"{i}.png")
    return root


def _main(argv) -> int:
    return cli.main([str(a) for a in argv])


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.int64)


def test_load_image_prior_detects_the_format(folders):
    for name in ("pipe", "bare"):
        model = load_image_prior(folders / name)
        assert isinstance(model, DenoiserPrior) and (model.image_size, model.channels) == (SIZE, 1)
        assert model.denoiser().x0_hooks  # clip_sample=True became an x0 clamp
    assert isinstance(load_image_prior(folders / "ours"), ImageDDPM)


def test_cli_sample_on_a_diffusers_folder_equals_diffusers_ddim_loop(folders, tmp_path):
    out = tmp_path / "s.png"
    code = _main(["sample", "--checkpoint", folders / "noclip", "--n", "2", "--out", out, "--set",
                     "sampler.method=ddim", "--set", "sampler.steps=5", "--set", "sampler.seed=3"])
    assert code == 0
    # diffusers' own loop from the same x_T (the CLI draws it from Generator(seed 3) on the CPU)
    x = torch.randn((2, 1, SIZE, SIZE), generator=torch.Generator().manual_seed(3))
    unet = diffusers.UNet2DModel.from_pretrained(folders / "noclip" / "unet").eval()
    sched = diffusers.DDIMScheduler.from_pretrained(folders / "noclip" / "scheduler", timestep_spacing="trailing")
    sched.set_timesteps(5)
    with torch.no_grad():
        for t in sched.timesteps:
            x = sched.step(unet(x, t).sample, t, x, eta=0.0).prev_sample
    ref = ((x.clamp(-1, 1) + 1) / 2 * 255).round().numpy().astype(np.int64)  # (2, 1, H, W)
    grid = _png(out)
    for i in range(2):
        tile = grid[1 : 1 + SIZE, 1 + i * (SIZE + 1) : 1 + i * (SIZE + 1) + SIZE]
        assert np.abs(tile - ref[i, 0]).max() <= 1


def test_inpainter_and_cli_inpaint_take_a_diffusers_model_and_keep_known_pixels(folders, tmp_path):
    img = torch.from_numpy(_png(folders / "img.png").astype(np.float32) / 255.0)[None]  # (1, H, W)
    out = Inpainter(from_diffusers(folders / "bare")).inpaint(img, "box", steps=4, jump_length=2, jump_n_sample=2)
    keep = box_mask((SIZE, SIZE), 0.5)
    assert out.shape == img.shape
    torch.testing.assert_close(out[:, keep], img[:, keep], atol=0, rtol=0)
    path = tmp_path / "in.png"
    code = _main(["inpaint", "--checkpoint", folders / "pipe", "--input", folders / "img.png", "--mask", "box",
                     "--out", path, "--set", "repaint.steps=4", "--set", "repaint.jump_n_sample=1"])
    assert code == 0
    assert np.array_equal(_png(path)[keep.numpy()], _png(folders / "img.png")[keep.numpy()])


@pytest.mark.parametrize("checkpoint", ["bare", "ours"])
def test_cli_restore_sr4_ddnm_equals_the_api_whose_output_satisfies_a_x_equals_y(folders, tmp_path, checkpoint):
    path = tmp_path / "x.png"
    code = _main(["restore", "--checkpoint", folders / checkpoint, "--task", "sr4", "--input", folders / "lr.png",
                  "--set", "inverse.solver=ddnm", "--out", path, "--set", "inverse.steps=4"])
    assert code == 0
    model = load_image_prior(folders / checkpoint)
    op = Downsample(4, (SIZE, SIZE))
    y = torch.from_numpy(_png(folders / "lr.png").astype(np.float32) / 255.0)[None, None] * 2 - 1
    x = restore(model, y, op, "ddnm", 4, torch.Generator().manual_seed(0), eta=0.85)
    # DDNM's last projection: A x = y to float32 precision, whatever the (random) network says
    assert float((op.forward(x) - y).abs().max()) < 1e-5
    ref = ((x[0, 0].clamp(-1, 1) + 1) / 2 * 255).round().numpy().astype(np.int64)
    assert np.abs(_png(path) - ref).max() <= 1  # the command is the API call (default seed 0, eta 0.85)


def test_cli_restore_colorize_uses_the_grey_lift_of_the_settings(folders, tmp_path):
    from omnidiffusion.vision.inverse import Grey

    torch.manual_seed(1)
    rgb = ImageDDPM(SIZE, 3, {"base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1, "norm_groups": 4},
                    {"name": "linear", "timesteps": 200, "beta_start": 1e-4, "beta_end": 0.05})
    rgb.save_pretrained(tmp_path / "rgb")
    model = load_image_prior(tmp_path / "rgb")
    y = torch.from_numpy(_png(folders / "img.png").astype(np.float32) / 255.0)[None, None] * 2 - 1  # sum(w) = 1
    outs = {}
    for lift in ("copy", "pinv"):
        path = tmp_path / f"{lift}.png"
        code = _main(["restore", "--checkpoint", tmp_path / "rgb", "--task", "colorize", "--input", folders / "img.png",
                      "--set", "inverse.solver=ddnm", "--set", "inverse.steps=4", "--set", f"inverse.grey_lift={lift}",
                      "--out", path])
        assert code == 0
        op = Grey(lift=lift)
        x = restore(model, y, op, "ddnm", 4, torch.Generator().manual_seed(0), eta=0.85)
        assert float((op.forward(x) - y).abs().max()) < 1e-5  # either lift meets y
        ref = ((x[0].clamp(-1, 1) + 1) / 2 * 255).round().permute(1, 2, 0).numpy().astype(np.int64)
        outs[lift] = _png(path)
        assert np.abs(outs[lift] - ref).max() <= 1
    assert np.abs(outs["copy"] - outs["pinv"]).max() > 1  # the setting reaches the operator


def test_cli_evaluate_inverse_prints_model_and_baseline(folders, capsys):
    code = _main(["evaluate", "--task", "inverse", "--checkpoint", folders / "ours", "--image-dir", folders / "faces",
                  "--inverse-task", "deblur", "--set", "inverse.solver=ddnm", "--set", "inverse.steps=3"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["model"]) >= {"psnr", "ssim", "consistency", "seconds_per_image"}
    assert "wiener" in result["baseline"]
    assert result["protocol"]["images"] == [2, 1, SIZE, SIZE]


def test_evaluate_inverse_samples_scores_the_first_draw_and_the_mean_of_hand_made_draws(folders, capsys):
    from omnidiffusion.vision.data import load_folder_images
    from omnidiffusion.vision.inverse import pixel_offset
    from omnidiffusion.vision.metrics import mean_db, psnr

    code = _main(["evaluate", "--task", "inverse", "--checkpoint", folders / "ours", "--image-dir", folders / "faces",
                  "--inverse-task", "sr4", "--set", "inverse.solver=ddnm", "--set", "inverse.steps=3",
                  "--set", "inverse.samples=2"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)["model"]
    # the same restorations by hand: y from the clean faces, two draws from one generator seeded 0
    model = load_image_prior(folders / "ours")
    images = load_folder_images(folders / "faces", 1, SIZE)
    op = Downsample(4, (SIZE, SIZE))
    y = op.forward(images)  # noise-free
    gen = torch.Generator().manual_seed(0)
    draws = [(restore(model, 2 * y - pixel_offset(op, (1, SIZE, SIZE)), op, "ddnm", 3, gen, eta=0.85)
              .clamp(-1, 1) + 1) / 2 for _ in range(2)]
    assert result["psnr"] == pytest.approx(mean_db(psnr(draws[0], images)), abs=1e-4)
    assert result["psnr_mean2"] == pytest.approx(mean_db(psnr((draws[0] + draws[1]) / 2, images)), abs=1e-4)
    assert result["psnr_mean2"] != pytest.approx(result["psnr"], abs=1e-3)  # the second draw differs


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["restore", "--task", "sr4", "--input", "img.png"], ("--input", "expected a 4x4 image")),
        (["restore", "--task", "colorize", "--input", "img.png"], ("--task", "RGB (3-channel) model")),
        (["restore", "--task", "sr4", "--input", "lr.png", "--set", "inverse.eta=2"], ("inverse.eta", "[0, 1]")),
        (["restore", "--task", "sr4", "--input", "lr.png", "--set", "inverse.solver=nope"], ("inverse.solver", "nope")),
        (["restore", "--task", "sr4", "--input", "lr.png", "--set", "inverse.grey_lift=svd"],
         ("inverse.grey_lift", "svd")),
        (["restore", "--task", "sr4", "--input", "lr.png", "--out", "x.txt"], ("--out", "image file")),
        (["restore", "--task", "inpaint", "--input", "img.png", "--mask", "nomask"], ("mask", "nomask")),
        (["evaluate", "--task", "inverse"], ("--image-dir", "folder")),
    ],
)
def test_restore_bad_input_is_one_clear_error(folders, cli_error, monkeypatch, argv, fragments):
    monkeypatch.chdir(folders)
    cli_error(cli, [*argv, "--checkpoint", folders / "ours"], *fragments)
