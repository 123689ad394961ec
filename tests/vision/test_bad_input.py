"""Bad input to omnidiffusion-vision and its Python API: one clear error naming the flag / parameter, or an announced
conversion; and SR3's patch-wise sampling (tiles blended with weights that sum to one).

Tiny untrained checkpoints are built once per module with save_pretrained (no training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from omnidiffusion.vision import cli as vision_cli
from omnidiffusion.vision import sr3 as sr3_module
from omnidiffusion.vision.anomaly.pipeline import AnomalyDetector, save_reference
from omnidiffusion.vision.cli import cli
from omnidiffusion.vision.imaging import read_image
from omnidiffusion.vision.inpaint import repaint_inpaint
from omnidiffusion.vision.models import SR3, ImageDDPM
from omnidiffusion.vision.pipeline import Inpainter, SuperResolution
from omnidiffusion.vision.points.model import PointDiffusionModel
from omnidiffusion.vision.points.pipeline import PointCloudDiffusion
from omnidiffusion.vision.segmentation.models import SegUNet
from omnidiffusion.vision.segmentation.pipeline import Segmenter
from omnidiffusion.vision.sr3 import sr3_upscale
from omnidiffusion.vision.tiling import TiledNetwork, axis_windows

UNET = {
    "base_channels": 8,
    "channel_mults": [1, 2, 2],
    "num_res_blocks": 1,
    "attention_resolutions": [],
    "norm_groups": 4,
}
SCHEDULE = {"name": "linear", "timesteps": 200, "beta_start": 1e-4, "beta_end": 0.1}


@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    """Checkpoints (16 px, UNet factor 4; SR3 2x) and input files shared by every test of this module."""
    root = tmp_path_factory.mktemp("bad_input")
    torch.manual_seed(0)
    ImageDDPM(16, 1, UNET, SCHEDULE).save_pretrained(root / "ddpm")
    SR3(16, 1, 2, UNET, SCHEDULE).save_pretrained(root / "sr3")
    SegUNet(16, 1, UNET, encoder_growth=4).save_pretrained(root / "seg")
    PointDiffusionModel(32, 16, 1, 2, 2, SCHEDULE).save_pretrained(root / "points")
    meta = {"vision_config": {"anomaly": {"t_star": 5, "frequency": 4.0}}}
    ImageDDPM(16, 1, UNET, SCHEDULE).save_pretrained(root / "anomaly", metadata=meta)
    save_reference(root / "anomaly", torch.full((1, 16, 16), 0.5))
    rng = np.random.default_rng(0)
    for name, shape in {"g16": (16, 16), "g8": (8, 8), "lr1": (1, 1), "lr3": (3, 3)}.items():
        Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(root / f"{name}.png")
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(root / "white.png")
    (root / "img").mkdir()
    (root / "msk").mkdir()
    Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(root / "img" / "0000.png")
    Image.fromarray(np.kron(np.eye(2, dtype=np.uint8), np.full((8, 8), 255, np.uint8))).save(root / "msk" / "0000.png")
    cloud = rng.normal(size=(10, 3)).astype(np.float32)
    np.save(root / "part10.npy", cloud)
    cloud[3, 1] = np.nan
    np.save(root / "partnan.npy", cloud)
    return root


def _cli_cases():
    d, s, p, g, a = "ddpm", "sr3", "points", "seg", "anomaly"
    return [
        # (checkpoint, argv after --checkpoint DIR, fragments the error line must contain)
        ("sample", d, ["--n", "-3"], ["--n", "expected an integer >= 1, got -3"]),
        ("sample", d, ["--n", "2.5"], ["--n", "expected an integer >= 1"]),
        ("sample", d, ["--set", "sampler.steps=0"], ["sampler.steps", "expected an integer >= 1, got 0"]),
        ("sample", d, ["--device", "gpu"], ["--device", "expected auto, cpu, cuda or cuda:N, got 'gpu'"]),
        ("sample", d, ["--out", "{root}/grid.xyz"], ["--out", "expected an image file name"]),
        ("upscale", s, ["--input", "{root}/lr1.png"], ["--input", "at least 2x2 pixels", "got 1x1"]),
        ("upscale", s, ["--input", "{root}/lr3.png"], ["--input", "6x6", "divisible by 4"]),
        ("upscale", s, ["--input", "{root}/g8.png", "--set", "sampler.tile=6"], ["sampler.tile", "multiple of 4"]),
        ("upscale", s, ["--input", "{root}/g8.png", "--set", "sampler.tile=-1"], ["sampler.tile", ">= 0, got -1"]),
        ("upscale", s, ["--input", "{root}/g8.png", "--set", "sampler.samples=0"], ["sampler.samples", ">= 1"]),
        ("inpaint", d, ["--input", "{root}/g16.png", "--mask", "{root}/white.png"], ["--mask", "at least one pixel"]),
        ("inpaint", d, ["--input", "{root}/g16.png", "--set", "repaint.jump_length=0"], ["repaint.jump_length"]),
        ("evaluate", s, ["--task", "sr", "--hr-dir", "{root}/img", "--crop", "0"], ["--crop", ">= 1, got 0"]),
        ("evaluate", s, ["--task", "sr", "--hr-dir", "{root}/img", "--crop", "40"], ["--crop", "larger"]),
        ("evaluate", s, ["--task", "sr", "--hr-dir", "{root}/img", "--scale", "-1"], ["--scale", ">= 1"]),
        ("evaluate", d, ["--task", "inpaint", "--image-dir", "{root}/img", "--crop", "8"], ["--crop", "size 16"]),
        (
            "evaluate",
            g,
            ["--task", "seg", "--image-dir", "{root}/img", "--mask-dir", "{root}/msk", "--crop", "-1"],
            ["--crop", ">= 1"],
        ),  # fmt: skip
        ("segment", g, ["--input", "{root}/g16.png", "--set", "seg.n_samples=0"], ["seg.n_samples", ">= 1, got 0"]),
        ("segment", g, ["--input", "{root}/g16.png", "--set", "seg.threshold=1.5"], ["seg.threshold", "(0, 1]"]),
        ("segment", g, ["--input", "{root}/g8.png"], ["--input", "(16, 16)"]),
        ("points-generate", p, ["--n-points", "1"], ["--n-points", ">= 2, got 1"]),
        ("points-generate", p, ["--set", "points.clip=-1"], ["points.clip", "got -1.0"]),
        ("points-complete", p, ["--input", "{root}/part10.npy", "--n-points", "5"], ["--n-points", "the 10 observed"]),
        ("points-complete", p, ["--input", "{root}/partnan.npy"], ["partnan.npy", "NaN"]),
        ("anomaly-score", a, ["--input", "{root}/g16.png", "--set", "anomaly.t_star=1000"], ["anomaly.t_star", "200"]),
        ("anomaly-score", a, ["--input", "{root}/g16.png", "--set", "anomaly.smooth_sigma=-1"], ["smooth_sigma"]),
        ("anomaly-score", a, ["--input", "{root}/g8.png"], ["--input", "(B, 1, 16, 16)"]),
    ]


@pytest.mark.parametrize(("command", "checkpoint", "argv", "fragments"), _cli_cases())
def test_cli_refuses_bad_input_in_one_line(ck, cli_error, tmp_path, command, checkpoint, argv, fragments):
    argv = [a.format(root=ck) for a in argv]
    if command in ("sample", "upscale", "inpaint", "segment") and "--out" not in argv:
        argv += ["--out", str(tmp_path / "out.png")]
    cli_error(cli, [command, "--checkpoint", ck / checkpoint, *argv], *fragments)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
@pytest.mark.parametrize(
    ("checkpoint", "argv"),
    [
        ("ddpm", ["sample"]),
        ("sr3", ["upscale", "--input", "{root}/g8.png"]),
        ("seg", ["segment", "--input", "{root}/g16.png"]),
        ("points", ["points-generate"]),
        ("anomaly", ["anomaly-score", "--input", "{root}/g16.png"]),
        ("sr3", ["evaluate", "--task", "sr", "--hr-dir", "{root}/img"]),
    ],
)
def test_cli_device_cuda_without_gpu(ck, cli_error, checkpoint, argv):
    argv = [a.format(root=ck) for a in argv]
    cli_error(cli, [*argv, "--checkpoint", ck / checkpoint, "--device", "cuda"], "--device", "no CUDA GPU")


def test_console_script_exits_2_without_traceback(ck, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["omnidiffusion-vision", "sample", "--checkpoint", str(ck / "ddpm"), "--n", "0"])
    with pytest.raises(SystemExit) as exit_info:
        vision_cli.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 1 and "--n" in err


def _api_cases(ck):
    ddpm = ImageDDPM.from_pretrained(ck / "ddpm")
    sr = SuperResolution.from_pretrained(ck / "sr3")
    inp = Inpainter(ddpm)
    seg = Segmenter.from_pretrained(ck / "seg")
    pc = PointCloudDiffusion.from_pretrained(ck / "points", steps=2)
    cloud = np.random.default_rng(1).normal(size=(10, 3)).astype(np.float32)
    img = torch.rand(1, 16, 16)
    return {
        "generate(-2)": (lambda: ddpm.generate(-2), "n", "an integer >= 1, got -2"),
        "generate(2.5)": (lambda: ddpm.generate(2.5), "n", "an integer >= 1, got 2.5"),
        "generate(steps=0)": (lambda: ddpm.generate(2, steps=0), "steps", "an integer >= 1, got 0"),
        "from_pretrained(gpu)": (lambda: SuperResolution.from_pretrained(ck / "sr3", device="gpu"), "device", "'gpu'"),
        "upscale(1x1)": (lambda: sr.upscale(torch.rand(1, 1, 1), steps=1), "image", "at least 2x2"),
        "upscale(uint8)": (lambda: sr.upscale(torch.zeros(1, 1, 8, 8, dtype=torch.uint8)), "image", "floating"),
        "upscale(tile=6)": (lambda: sr.upscale(torch.rand(1, 8, 8), steps=1, tile=6), "tile", "multiple of 4"),
        "inpaint(all keep)": (lambda: inp.inpaint(img, torch.ones(16, 16, dtype=torch.bool)), "mask", "to fill"),
        "repaint(jump_length=0)": (
            lambda: repaint_inpaint(ddpm, img[None] * 2 - 1, torch.zeros(16, 16, dtype=torch.bool), jump_length=0),
            "jump_length",
            ">= 1, got 0",
        ),
        "segment(n_samples=2.5)": (lambda: seg.segment(img, 2.5), "n_samples", ">= 1, got 2.5"),
        "Segmenter(threshold=2)": (lambda: Segmenter(seg.model, "seg-unet", threshold=2.0), "threshold", "(0, 1]"),
        "points generate(n_points=1)": (lambda: pc.generate(2, 1), "n_points", ">= 2, got 1"),
        "points complete(K >= N)": (lambda: pc.complete(cloud, n_points=5), "n_points", "the 10 observed"),
        "PointCloudDiffusion(steps=0)": (lambda: PointCloudDiffusion(pc.model, steps=0), "steps", ">= 1"),
        "AnomalyDetector(t_star=1000)": (
            lambda: AnomalyDetector.from_pretrained(ck / "anomaly", t_star=1000),
            "anomaly.t_star",
            "[1, 200]",
        ),
        "AnomalyDetector(bogus=1)": (
            lambda: AnomalyDetector.from_pretrained(ck / "anomaly", bogus=1),
            "bogus",
            "t_star",
        ),
    }


API_NAMES = [
    "generate(-2)", "generate(2.5)", "generate(steps=0)", "from_pretrained(gpu)", "upscale(1x1)", "upscale(uint8)",
    "upscale(tile=6)", "inpaint(all keep)", "repaint(jump_length=0)", "segment(n_samples=2.5)",
    "Segmenter(threshold=2)", "points generate(n_points=1)", "points complete(K >= N)",
    "PointCloudDiffusion(steps=0)", "AnomalyDetector(t_star=1000)", "AnomalyDetector(bogus=1)",
]  # fmt: skip


@pytest.fixture(scope="module")
def api(ck):
    return _api_cases(ck)


@pytest.mark.parametrize("case", API_NAMES)
def test_api_refuses_bad_input_naming_the_parameter(api, case):
    call, name, expected = api[case]
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"{name}: "), message
    assert expected in message, message


def test_sixteen_bit_png_keeps_every_bit_and_says_so(tmp_path, capsys):
    values = np.array([[0, 1, 255, 256], [1000, 32768, 65534, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    t = read_image(tmp_path / "deep.png", 1)
    assert torch.equal(t[0], torch.from_numpy((values.astype(np.float64) / 65535).astype(np.float32)))
    assert "/65535" in capsys.readouterr().err


def test_rgba_drops_alpha_and_rgb_to_grey_is_601_luma(tmp_path, capsys):
    rgb = np.random.default_rng(2).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    alpha = np.random.default_rng(3).integers(0, 256, (5, 6, 1), dtype=np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha], axis=2), "RGBA").save(tmp_path / "a.png")
    assert torch.equal(read_image(tmp_path / "a.png", 3), torch.from_numpy(rgb / 255.0).float().permute(2, 0, 1))
    assert "alpha channel dropped" in capsys.readouterr().err
    grey = read_image(tmp_path / "a.png", 1)[0] * 255
    luma = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114  # ITU-R 601
    assert float((grey - torch.from_numpy(luma)).abs().max()) <= 0.5 + 1e-4
    assert "ITU-R 601" in capsys.readouterr().err
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
    read_image(tmp_path / "g.png", 1)
    assert capsys.readouterr().err == ""  # nothing converted, nothing said


@pytest.mark.parametrize(
    ("length", "tile", "overlap"), [(16, 16, 4), (40, 16, 4), (37, 12, 5), (100, 32, 0), (9, 4, 3)]
)
def test_blend_weights_sum_to_one_everywhere(length, tile, overlap):
    windows = axis_windows(length, tile, overlap)
    total = torch.zeros(length, dtype=torch.float64)
    for start, w in windows:
        assert w.shape == (tile,) and bool((w > 0).all())
        total[start : start + tile] += w
    assert torch.allclose(total, torch.ones(length, dtype=torch.float64), atol=1e-12, rtol=0)
    grid = torch.zeros(length, length, dtype=torch.float64)  # the 2-D weights are products of the 1-D ones
    for y, wy in windows:
        for x, wx in windows:
            grid[y : y + tile, x : x + tile] += wy[:, None] * wx[None, :]
    assert torch.allclose(grid, torch.ones_like(grid), atol=1e-12, rtol=0)


def test_tile_covering_the_image_equals_the_untiled_network(ck):
    model = SR3.from_pretrained(ck / "sr3")
    gen = torch.Generator().manual_seed(0)
    x, lr_up = torch.randn(2, 1, 16, 16, generator=gen), torch.rand(2, 1, 16, 16, generator=gen) * 2 - 1
    t = torch.tensor([0.3, 0.9])
    with torch.no_grad():
        whole = model(x, t, lr_up=lr_up)
        tiled = TiledNetwork(model, 16, 4, factor=4)(x, t, lr_up=lr_up)
    assert torch.equal(tiled, whole)


def test_tiles_of_a_pointwise_network_reassemble_exactly():
    """A network acting pixel by pixel gives the same output however it is tiled (the weights sum to one)."""

    def pointwise(x_t, t, *, lr_up):
        return torch.tanh(x_t) * t[:, None, None, None] + 0.5 * lr_up

    gen = torch.Generator().manual_seed(1)
    x, lr_up = torch.randn(2, 1, 28, 20, generator=gen), torch.randn(2, 1, 28, 20, generator=gen)
    t = torch.tensor([0.2, 0.7])
    tiled = TiledNetwork(pointwise, 8, 4, factor=4, batch_size=3)(x, t, lr_up=lr_up)
    assert torch.allclose(tiled, pointwise(x, t, lr_up=lr_up), atol=1e-6, rtol=0)


def test_sr3_larger_than_the_tile_runs_and_auto_tiling_is_announced(ck, monkeypatch, capsys):
    model = SR3.from_pretrained(ck / "sr3")
    lr = torch.rand(1, 1, 12, 10, generator=torch.Generator().manual_seed(2)) * 2 - 1
    out = sr3_upscale(model, lr, method="dpm++2m", steps=2, tile=8, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 1, 1, 24, 20) and bool(torch.isfinite(out).all())
    monkeypatch.setattr(sr3_module, "MAX_ATTENTION_TOKENS", 4)  # a 2x2 bottleneck: tiles of 8 px
    auto = sr3_upscale(model, lr, method="dpm++2m", steps=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(auto, out)  # "auto" chose the same 8 px tiles
    err = capsys.readouterr().err
    assert "note:" in err and "8x8 tiles" in err


def test_a_one_point_partial_cloud_is_completed(ck):
    pc = PointCloudDiffusion.from_pretrained(ck / "points", steps=2)
    point = np.array([[0.1, -0.2, 0.3]], np.float32)
    full = pc.complete(point)
    assert full.shape == (32, 3) and np.array_equal(full[:1], point)
