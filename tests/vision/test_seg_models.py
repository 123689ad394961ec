"""SegDiff / SegUNet networks: the feature addition, same size, ensemble fusion, sampling shapes, losses that fall."""

from __future__ import annotations

import pytest
import torch

from omnidiffusion.core.training import TrainConfig, fit
from omnidiffusion.vision.segmentation.models import SegDiff, SegUNet, count_parameters
from omnidiffusion.vision.segmentation.pipeline import ensemble_statistics
from omnidiffusion.vision.segmentation.pixel_classifier import PixelEnsemble
from omnidiffusion.vision.segmentation.training import (
    ImageMaskPairs,
    SegDiffLoss,
    SegUNetLoss,
    bce_dice_loss,
    check_pairs,
)

UNET = {"base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1, "norm_groups": 4, "attention_resolutions": []}


def test_same_size_unet_has_the_same_parameter_count():
    a = SegDiff(16, 1, UNET, encoder_blocks=1, encoder_growth=4)
    b = SegUNet(16, 1, UNET, encoder_blocks=1, encoder_growth=4)
    assert count_parameters(a) == count_parameters(b)


def test_encoder_features_are_added_after_the_first_conv():
    torch.manual_seed(0)
    model = SegDiff(16, 1, UNET, encoder_blocks=1, encoder_growth=4).eval()
    x, img, t = torch.randn(2, 1, 16, 16), torch.rand(2, 1, 16, 16) * 2 - 1, torch.rand(2)
    feats = model.encode(img)
    # independent route: a copy of the UNet whose first conv has the features folded into its output
    net = model.net
    plain_first = net.input_conv
    with torch.no_grad():

        class Shifted(torch.nn.Module):
            weight = plain_first.weight  # the UNet reads its dtype

            def forward(self, h):
                return plain_first(h) + feats

        net.input_conv = Shifted()
        expected = net(x, t)
        net.input_conv = plain_first
        got = model(x, t, image=img)
    torch.testing.assert_close(got, expected)
    assert not net.input_conv._forward_hooks  # the hook is gone after the call
    # the image changes the output (with a non-zero output conv)
    with torch.no_grad():
        torch.nn.init.normal_(net.out_conv.weight, std=0.1)
        assert not torch.allclose(model(x, t, image=img), model(x, t, image=-img))
    with pytest.raises(ValueError, match="image"):
        model(x, t, image=torch.zeros(2, 3, 16, 16))


@pytest.mark.parametrize("fusion", ["concat", "both"])
def test_concat_fusion_builds_and_runs(fusion):
    model = SegDiff(16, 1, UNET, fusion=fusion, encoder_growth=4)
    out = model(torch.randn(2, 1, 16, 16), torch.rand(2), image=torch.zeros(2, 1, 16, 16))
    assert out.shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match="fusion"):
        SegDiff(16, 1, UNET, fusion="sum")


def test_ensemble_statistics_hand_worked():
    draws = torch.ones(4, 1, 1, 2, 2)  # four draws of a 2x2 mask in [-1, 1]
    draws[:, 0, 0, 0, 1] = torch.tensor([1.0, 1.0, -1.0, -1.0])  # a 2-2 split: mean 0.5, std 0.5
    draws[:, 0, 0, 1, 0] = torch.tensor([-1.0, -1.0, -1.0, 1.0])  # mean 0.25, std sqrt(3)/4
    draws[:, 0, 0, 1, 1] = -1.0
    mean, mask, std = ensemble_statistics(draws)
    torch.testing.assert_close(mean[0, 0], torch.tensor([[1.0, 0.5], [0.25, 0.0]]))
    torch.testing.assert_close(mask[0, 0], torch.tensor([[1.0, 1.0], [0.0, 0.0]]))  # threshold 0.5 inclusive
    torch.testing.assert_close(std[0, 0], torch.tensor([[0.0, 0.5], [3**0.5 / 4, 0.0]]))


def test_sample_masks_shapes_and_range():
    model = SegDiff(16, 1, UNET, schedule={"name": "linear", "timesteps": 10, "beta_start": 1e-3, "beta_end": 0.2})
    img = torch.rand(3, 1, 16, 16) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    draws = model.sample_masks(img, 2, method="dpm++2m", steps=3, generator=gen, batch_size=4)
    assert draws.shape == (2, 3, 1, 16, 16) and draws.abs().max() <= 1


def test_bce_dice_hand_worked():
    logits = torch.zeros(1, 1, 1, 2)  # p = 0.5 everywhere; target [1, 0]
    target = torch.tensor([[[[1.0, 0.0]]]])
    # BCE = log 2; Dice = (2 * 0.5 + 1) / (1 + 1 + 1) = 2/3 -> loss = log 2 + 1/3
    assert bce_dice_loss(logits, target).item() == pytest.approx(float(torch.log(torch.tensor(2.0))) + 1 / 3)


def test_bad_pairs():
    with pytest.raises(ValueError, match="binary"):
        check_pairs(torch.rand(2, 1, 4, 4), torch.full((2, 1, 4, 4), 0.5))
    with pytest.raises(ValueError, match="one per image"):
        check_pairs(torch.rand(2, 1, 4, 4), torch.zeros(2, 1, 4, 5))


def _overfit(model, loss, tmp_path, steps=40):
    torch.manual_seed(0)
    images = torch.rand(8, 1, 8, 8)
    masks = (images > 0.5).float()  # a per-pixel rule any of the nets can learn
    cfg = TrainConfig(steps=steps, batch_size=8, lr=5e-3, ema_decay=None, progress=False, log_every=5, ckpt_every=1000)
    fit(model, loss, ImageMaskPairs(images, masks), cfg, tmp_path)
    log = (tmp_path / "log.csv").read_text().strip().splitlines()[1:]
    losses = [float(line.split(",")[1]) for line in log]
    return losses[0], losses[-1]


def test_segdiff_and_unet_losses_fall(tmp_path):
    first, last = _overfit(SegUNet(8, 1, UNET, encoder_growth=4), SegUNetLoss(), tmp_path / "u")
    assert last < 0.7 * first
    sd = SegDiff(8, 1, UNET, prediction="x0", encoder_growth=4)
    first, last = _overfit(sd, SegDiffLoss(), tmp_path / "s")
    assert last < 0.7 * first


def test_pixel_ensemble_majority_vote():
    ens = PixelEnsemble(2, 2, n_models=3, hidden=[4]).eval()
    with torch.no_grad():  # member m says class 1 iff x[:, m % 2] > 0, by construction of its last layer
        for m, member in enumerate(ens.members):
            for p in member.parameters():
                p.zero_()
            member[0].weight[0, m % 2] = 1.0
            member[2].weight.fill_(1.0)  # BatchNorm (eval: running mean 0, var 1) as the identity
            member[3].weight[1, 0] = 1.0
            member[3].bias[0] = 1e-3
    x = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]])
    ens.mean.zero_()
    ens.std.fill_(1.0)
    # members 0 and 2 look at x0, member 1 at x1: the vote follows x0
    assert ens.predict(x).tolist() == [1, 0, 1]


def test_segdiff_loss_is_core_l_simple_plus_the_dice_term():
    from omnidiffusion.core import Denoiser, denoising_loss

    model = SegDiff(8, 1, UNET, prediction="x0", encoder_growth=4)
    with torch.no_grad():
        torch.nn.init.normal_(model.net.out_conv.weight, std=0.1)
    image = torch.rand(3, 1, 8, 8) * 2 - 1
    mask = (torch.rand(3, 1, 8, 8) > 0.5).float() * 2 - 1
    torch.manual_seed(5)
    plain = SegDiffLoss(flips=False)(model, (image, mask))
    torch.manual_seed(5)
    core = denoising_loss(Denoiser(model, model.schedule, "x0"), mask, image=image)
    torch.testing.assert_close(plain, core)
    # the Dice term, recomputed from the same noise draw with an explicit forward pass
    torch.manual_seed(5)
    with_dice = SegDiffLoss(flips=False, dice_weight=0.5)(model, (image, mask))
    torch.manual_seed(5)
    from omnidiffusion.core.losses import sample_t

    t = sample_t(model.schedule, 3, "uniform")
    noise = torch.randn(mask.shape)
    a = model.schedule.alpha(t.double()).float()[:, None, None, None]
    s = model.schedule.sigma(t.double()).float()[:, None, None, None]
    x0_hat = model(a * mask + s * noise, t, image=image)
    p, y = ((x0_hat + 1) / 2).clamp(0, 1).flatten(1), ((mask + 1) / 2).flatten(1)
    dice = (1 - (2 * (p * y).sum(1) + 1) / (p.sum(1) + y.sum(1) + 1)).mean()
    torch.testing.assert_close(with_dice, plain + 0.5 * dice, rtol=1e-4, atol=1e-5)


def test_self_conditioning_feeds_back_the_last_clipped_x0():
    model = SegDiff(8, 1, UNET, prediction="x0", fusion="both", encoder_growth=4, self_condition=True)
    assert model.net.input_conv.in_channels == 1 + 1 + 1  # noisy mask, image, previous estimate
    x, t, image = torch.randn(2, 1, 8, 8), torch.full((2,), 0.5), torch.rand(2, 1, 8, 8) * 2 - 1
    torch.testing.assert_close(model(x, t, image=image), model(x, t, image=image, x0_prev=torch.zeros_like(x)))
    seen = []
    hook = model.net.input_conv.register_forward_pre_hook(lambda m, inp: seen.append(inp[0][:, 2:3].clone()))
    den = model.denoiser()
    first = den.predict(x, 0.5, image=image)
    den.predict(x, 0.4, image=image)
    hook.remove()
    assert torch.equal(seen[0], torch.zeros_like(x))  # first call: nothing to feed back
    torch.testing.assert_close(seen[1], first.x0)  # second call: the first call's (clipped) x0_hat
    assert first.x0.abs().max() <= 1
    fresh = model.denoiser()  # a new denoiser starts from zeros again
    torch.testing.assert_close(fresh.predict(x, 0.5, image=image).x0, first.x0)


def test_self_conditioning_training_draw_and_round_trip(tmp_path):
    from omnidiffusion.vision.segmentation.training import _self_conditioning_draw, draw_steps

    model = SegDiff(8, 1, UNET, prediction="x0", encoder_growth=4, self_condition=True)
    with torch.no_grad():
        torch.nn.init.normal_(model.net.out_conv.weight, std=0.1)
    image = torch.rand(64, 1, 8, 8) * 2 - 1
    mask = (torch.rand(64, 1, 8, 8) > 0.5).float() * 2 - 1
    torch.manual_seed(0)
    t = draw_steps(model.schedule, 64)
    noise, cond = _self_conditioning_draw(model, model, mask, image, t)
    fed = cond.flatten(1).abs().sum(1) > 0
    assert 16 < int(fed.sum()) < 48  # about half of the batch gets its own estimate
    a = model.schedule.alpha(t.double()).float()[:, None, None, None]
    s = model.schedule.sigma(t.double()).float()[:, None, None, None]
    with torch.no_grad():
        own = model(a * mask + s * noise, t, image=image).clamp(-1, 1)
    torch.testing.assert_close(cond[fed], own[fed], rtol=1e-4, atol=1e-5)
    loss = SegDiffLoss(flips=False)(model, (image[:4], mask[:4]))
    loss.backward()
    assert torch.isfinite(loss) and model.net.input_conv.weight.grad is not None
    model.save_pretrained(tmp_path / "m")
    back = SegDiff.from_pretrained(tmp_path / "m")
    assert back.self_condition and back.net.input_conv.in_channels == 2


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_draw_steps_follows_its_stated_law(power):
    from omnidiffusion.vision.segmentation.training import draw_steps

    model = SegDiff(8, 1, UNET, schedule={"name": "linear", "timesteps": 10, "beta_start": 1e-3, "beta_end": 0.2})
    torch.manual_seed(0)
    n = 200_000
    t = draw_steps(model.schedule, n, power)
    k = torch.round(t * 10 - 1).long()
    torch.testing.assert_close(t, model.schedule.t_of_index(k))  # on the table grid
    freq = torch.bincount(k, minlength=10).double() / n
    edges = torch.arange(11, dtype=torch.float64) / 10
    law = edges[1:] ** power - edges[:-1] ** power  # P(k) = ((k+1)/T)^p - (k/T)^p
    assert (freq - law).abs().max() < 4 * (0.25 / n) ** 0.5
    with pytest.raises(ValueError, match="t_power"):
        SegDiffLoss(t_power=0)


def test_sigmoid_mask_head_is_two_sigmoid_minus_one(tmp_path):
    torch.manual_seed(0)
    linear = SegDiff(8, 1, UNET, prediction="x0", fusion="both", encoder_blocks=1, encoder_growth=4).eval()
    with torch.no_grad():
        linear.net.out_conv.weight.normal_(0, 0.5)  # zero-initialised: give the head something to map
        linear.net.out_conv.bias.normal_(0, 1.0)
    head = SegDiff(8, 1, UNET, prediction="x0", fusion="both", encoder_blocks=1, encoder_growth=4, mask_head="sigmoid")
    head.load_state_dict(linear.state_dict())
    head.eval()
    x, img, t = torch.randn(3, 1, 8, 8), torch.rand(3, 1, 8, 8) * 2 - 1, torch.rand(3)
    with torch.no_grad():
        raw, out = linear(x, t, image=img), head(x, t, image=img)
    assert raw.abs().max() > 2  # the check reaches the saturating part of the map
    torch.testing.assert_close(out, 2 * torch.sigmoid(raw) - 1, rtol=1e-5, atol=1e-6)
    head.save_pretrained(tmp_path / "m")
    assert SegDiff.from_pretrained(tmp_path / "m").mask_head == "sigmoid"
    with pytest.raises(ValueError, match="needs prediction 'x0'"):
        SegDiff(8, 1, UNET, prediction="eps", mask_head="sigmoid")
    with pytest.raises(ValueError, match="mask_head"):
        SegDiff(8, 1, UNET, prediction="x0", mask_head="softmax")


def test_bce_term_of_a_fresh_model_is_log_two():
    """A fresh SegDiff outputs exactly 0 (core's UNet zero-initialises its last conv): with the sigmoid head
    x0_hat = 0, so p = 1/2 everywhere; then x0-MSE = 1 (masks are +-1), BCE = ln 2 and the soft Dice loss is
    1 - (sum y + 1) / (N/2 + sum y + 1)."""
    torch.manual_seed(0)
    model = SegDiff(8, 1, UNET, prediction="x0", fusion="both", encoder_blocks=1, encoder_growth=4, mask_head="sigmoid")
    image = torch.rand(4, 1, 8, 8) * 2 - 1
    mask = (torch.rand(4, 1, 8, 8) > 0.6).float() * 2 - 1
    y = ((mask + 1) / 2).flatten(1)
    dice = (1 - (y.sum(1) + 1) / (32 + y.sum(1) + 1)).mean()
    total = SegDiffLoss(flips=False, dice_weight=0.5, bce_weight=2.0)(model, (image, mask))
    expected = 1.0 + 0.5 * dice + 2.0 * torch.log(torch.tensor(2.0))
    torch.testing.assert_close(total, expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="bce_weight"):
        SegDiffLoss(bce_weight=-1)


def test_training_refuses_bce_without_the_sigmoid_head(tmp_path):
    from omnidiffusion.vision import load_vision_config
    from omnidiffusion.vision.segmentation.training import train_segdiff

    config = load_vision_config("segdiff-shapes", ["seg.mask_head=linear", "seg.bce_weight=1", "train.steps=1"])
    images, masks = torch.rand(2, 1, 32, 32), (torch.rand(2, 1, 32, 32) > 0.5).float()
    with pytest.raises(ValueError, match="seg.bce_weight = 1.0 needs seg.mask_head = 'sigmoid'"):
        train_segdiff(images, masks, config, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before anything was written
