"""SR3 noise levels and sampling, RePaint known pixels, masks, pipelines and bad-input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from omnidiffusion.core import DiscreteVP
from omnidiffusion.core.conditioning import repaint_schedule
from omnidiffusion.vision import (
    SR3,
    ImageDDPM,
    Inpainter,
    SuperResolution,
    box_mask,
    evaluate_sr,
    half_mask,
    lines_mask,
    load_mask,
    make_mask,
    repaint_inpaint,
    sample_noise_level,
    stroke_mask,
)
from omnidiffusion.vision.imaging import read_image
from omnidiffusion.vision.inpaint import network_calls
from omnidiffusion.vision.sr3 import sr3_loss, sr3_upscale

TINY_UNET = {
    "base_channels": 8,
    "channel_mults": [1, 2],
    "num_res_blocks": 1,
    "attention_resolutions": [],
    "norm_groups": 4,
    "dropout": 0.0,
}


def _linear(timesteps: int, beta_end: float) -> dict:
    return {"name": "linear", "timesteps": timesteps, "beta_start": 1e-4, "beta_end": beta_end}


def _randomise(model, std=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model.eval()


def test_noise_levels_lie_between_adjacent_levels():
    sched = DiscreteVP.linear(2000, 1e-6, 1e-2)  # SR3's schedule
    gamma, t, step = sample_noise_level(sched, 20000, torch.Generator().manual_seed(0))
    levels = np.sqrt(np.concatenate([[1.0], sched.alphas_cumprod]))
    lo, hi = levels[step.numpy() + 1], levels[step.numpy()]
    g = gamma.numpy()
    assert np.all(g >= lo - 1e-15) and np.all(g <= hi + 1e-15)
    # every step is drawn, and within a step gamma is spread over the interval (not pinned to an end)
    assert len(np.unique(step.numpy())) > 1900
    frac = (g - lo) / (hi - lo)
    assert 0.45 < frac.mean() < 0.55 and frac.min() < 0.05 and frac.max() > 0.95
    # t maps back to gamma (alpha(t) = gamma) and lies in the step's interval [n/T, (n+1)/T]
    assert torch.allclose(sched.alpha(t), gamma, rtol=0, atol=1e-9)
    n = step.double()
    assert torch.all(t >= n / 2000 - 1e-12) and torch.all(t <= (n + 1) / 2000 + 1e-12)


def test_sr3_sees_gamma_and_lr_image():
    model = _randomise(SR3(8, 1, 2, TINY_UNET, _linear(50, 0.2)))
    x, lr_up = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    t = torch.tensor([0.3, 0.3])
    # forward(x, t) = UNet(x, gamma = alpha(t), cond = lr_up)
    expected = model.net(x, model.schedule.alpha(t.double()).float(), cond=lr_up)
    assert torch.allclose(model(x, t, lr_up=lr_up), expected)
    assert not torch.allclose(model(x, t, lr_up=lr_up), model(x, t, lr_up=lr_up + 1))
    # the trailing grid with steps = T visits every table step: the net sees sqrt(alpha_bar_n) exactly
    assert torch.allclose(
        model.noise_level(model.schedule.t_of_index(torch.arange(50))),
        torch.from_numpy(np.sqrt(model.schedule.alphas_cumprod)),
        atol=1e-12,
    )


def test_sr3_loss_falls_when_overfitting():
    torch.manual_seed(0)
    model = SR3(8, 1, 2, TINY_UNET, {"name": "linear", "timesteps": 100, "beta_start": 1e-4, "beta_end": 0.05})
    hr = torch.rand(8, 1, 8, 8) * 2 - 1
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss = sr3_loss(model, hr, model.schedule, 2, "l2")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[:10]) > 0.8 and np.mean(losses[-20:]) < 0.6 * np.mean(losses[:10])


def test_sr3_upscale_shapes_and_errors():
    model = _randomise(SR3(8, 1, 4, TINY_UNET, _linear(20, 0.2)))
    lr = torch.rand(3, 1, 2, 2) * 2 - 1
    out = sr3_upscale(model, lr, method="dpm++2m", steps=4, samples=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 1, 8, 8) and out.abs().max() <= 1
    with pytest.raises(ValueError, match="channel"):
        sr3_upscale(model, torch.rand(1, 3, 2, 2), steps=2)
    with pytest.raises(ValueError, match="divisible"):
        SR3(10, 1, 4, TINY_UNET)


def test_repaint_schedule_and_call_count():
    order = repaint_schedule(20, 5, 3)
    assert order[0] == 0 and order[-1] == 20
    assert all(abs(b - a) == 1 for a, b in zip(order[:-1], order[1:], strict=True))
    # 20 downward steps + 3 jump points x 2 extra rounds x 5 steps
    assert network_calls(20, 5, 3) == 20 + 3 * 2 * 5
    assert network_calls(20, 5, 1) == 20


def test_repaint_returns_known_pixels_exactly():
    model = _randomise(ImageDDPM(8, 1, TINY_UNET, _linear(30, 0.3)))
    img = torch.rand(2, 1, 8, 8) * 2 - 1
    mask = box_mask((8, 8), 0.5)
    out = repaint_inpaint(
        model,
        img,
        mask,
        steps=10,
        jump_length=3,
        jump_n_sample=2,
        samples=2,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.shape == (2, 2, 1, 8, 8)
    assert torch.equal(out[:, :, :, mask], img[None].expand(2, -1, -1, -1, -1)[:, :, :, mask])
    assert not torch.equal(out[:, :, :, ~mask], img[None].expand(2, -1, -1, -1, -1)[:, :, :, ~mask])
    with pytest.raises(ValueError, match="does not match the image size"):
        repaint_inpaint(model, img, box_mask((6, 8)), steps=4)


def test_masks():
    assert (~box_mask((24, 24), 0.5)).sum() == 17 * 17  # round(sqrt(288)) = 17
    half = half_mask((24, 24), "right")
    assert half[:, :12].all() and not half[:, 12:].any()
    lines = lines_mask((6, 4))
    assert lines[0::2].all() and not lines[1::2].any()
    s1, s2 = stroke_mask((32, 32), seed=3), stroke_mask((32, 32), seed=3)
    assert torch.equal(s1, s2) and 0 < (~s1).sum() < 32 * 32
    assert not torch.equal(s1, stroke_mask((32, 32), seed=4))
    with pytest.raises(FileNotFoundError, match="neither"):
        make_mask("circle", (8, 8))


def test_user_mask_file_and_bad_files(tmp_path):
    arr = np.full((8, 8), 255, np.uint8)
    arr[2:5, 3:6] = 0
    Image.fromarray(arr).save(tmp_path / "mask.png")
    m = load_mask(tmp_path / "mask.png", (8, 8))
    assert m.sum() == 64 - 9 and not m[2:5, 3:6].any()
    with pytest.raises(ValueError, match="does not match the image size"):
        load_mask(tmp_path / "mask.png", (16, 16))
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image file"):
        read_image(tmp_path / "notes.png")
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.png")


def test_pipelines_round_trip_types(tmp_path):
    sr3 = _randomise(SR3(8, 1, 2, TINY_UNET, _linear(20, 0.2)))
    sr3.save_pretrained(tmp_path / "sr3")
    sr = SuperResolution.from_pretrained(tmp_path / "sr3")
    pil = Image.fromarray((np.random.default_rng(0).random((4, 4)) * 255).astype(np.uint8), "L")
    out = sr.upscale(pil, steps=3)
    assert isinstance(out, Image.Image) and out.size == (8, 8)
    t = sr.upscale(torch.rand(1, 4, 4), steps=3)
    assert t.shape == (1, 8, 8) and 0 <= t.min() and t.max() <= 1
    with pytest.raises(ValueError, match="not divisible by the scale factor 2"):
        evaluate_sr(sr3, torch.rand(1, 1, 9, 9), steps=2)  # HR images whose side is not a multiple of the scale
    ddpm = _randomise(ImageDDPM(8, 1, TINY_UNET, _linear(20, 0.3)))
    ddpm.save_pretrained(tmp_path / "ddpm")
    inp = Inpainter.from_pretrained(tmp_path / "ddpm")
    img = torch.rand(1, 8, 8)
    mask_img = Image.fromarray(np.where(box_mask((8, 8)).numpy(), 255, 0).astype(np.uint8), "L")
    filled = inp.inpaint(img, mask_img, steps=4, jump_length=2, jump_n_sample=2)
    keep = box_mask((8, 8))
    assert torch.equal(filled[0][keep], img[0][keep])
    with pytest.raises(ValueError, match="does not match the image size"):
        inp.inpaint(img, torch.ones(6, 6, dtype=torch.bool), steps=2)
    with pytest.raises(ValueError, match="image_size"):
        inp.inpaint(torch.rand(1, 6, 6), "box", steps=2)


def test_distil_sr3_leaves_the_teacher_alone_and_round_trips(tmp_path):
    """distil_sr3 (its learning is checked on the exact conditional oracle in tests/core/test_consistency.py and
    measured in benchmarks/vision_sr_few_step.py): the teacher's weights and dropout are untouched (the student
    trains a dropout-free copy), the student reads the LR input, the folder loads back as the same consistency
    SR3 (clipped eps read) and samples with its run config (consistency, 2 steps); a distilled SR3 is refused
    as a teacher."""
    from omnidiffusion.core.consistency import ConsistencyDenoiser
    from omnidiffusion.core.io import load_run_config
    from omnidiffusion.vision import VisionConfig, distil_sr3, load_vision_config

    unet = {**TINY_UNET, "dropout": 0.1}
    teacher = _randomise(SR3(8, 1, 2, unet, _linear(50, 0.2)), std=0.1)
    weights = {k: v.clone() for k, v in teacher.state_dict().items()}
    over = ["data.image_size=8", "data.scale=2", "train.batch_size=8", "train.progress=false", "train.log_every=5",
            "train.ckpt_every=10"]  # fmt: skip
    config = load_vision_config("sr3-faces", over)
    images = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    student = distil_sr3(teacher, images, config, tmp_path / "cd", steps=10)
    assert all(torch.equal(weights[k], v) for k, v in teacher.state_dict().items())
    assert all(m.p == 0.1 for m in teacher.modules() if isinstance(m, torch.nn.Dropout))
    assert not all(torch.equal(weights[k], v) for k, v in student.state_dict().items())  # it trained
    den = student.denoiser()
    assert isinstance(den, ConsistencyDenoiser) and student.consistency["clip"] == [-1.0, 1.0]
    x, lr_up = torch.randn(2, 1, 8, 8), torch.rand(2, 1, 8, 8) * 2 - 1
    with torch.no_grad():
        f = den.predict(x, 0.4, lr_up=lr_up).x0
        assert not torch.allclose(f, den.predict(x, 0.4, lr_up=-lr_up).x0)
    loaded = SR3.from_pretrained(tmp_path / "cd")
    assert loaded.consistency == student.consistency
    lr = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1
    a = sr3_upscale(loaded, lr, method="consistency", steps=2, generator=torch.Generator().manual_seed(0))
    b = sr3_upscale(student, lr, method="consistency", steps=2, generator=torch.Generator().manual_seed(0))
    assert a.shape == (1, 3, 1, 8, 8) and torch.equal(a, b)
    run = load_run_config(tmp_path / "cd", VisionConfig)
    assert (run.sampler.method, run.sampler.steps) == ("consistency", 2)
    with pytest.raises(ValueError, match="teacher"):
        distil_sr3(student, images, config, tmp_path / "again", steps=2)
