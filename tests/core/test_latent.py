"""core.latent: the KL autoencoder, the scale factor, LatentDenoiser sampling against an exact oracle, save/load."""

from __future__ import annotations

import math

import pytest
import torch

from omnidiffusion.core import sample
from omnidiffusion.core.latent import (
    AutoencoderKL,
    LatentDenoiser,
    Posterior,
    autoencoder_loss,
    estimate_scale_factor,
    latent_schedule,
    read_latent_config,
)
from omnidiffusion.core.nn import UNet
from omnidiffusion.core.testing import Gaussian
from omnidiffusion.core.training import TrainConfig


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_ae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(in_channels=3, latent_channels=2, channels=(8, 8), norm_groups=4)


def test_shapes_and_factor():
    ae = tiny_ae()
    post = ae.encode(torch.randn(3, 3, 8, 12))
    assert post.mean.shape == (3, 2, 4, 6) and ae.factor == 2
    assert ae.decode(post.mean).shape == (3, 3, 8, 12)


def test_kl_matches_closed_form():
    mean, logvar = torch.randn(4, 2, 3, 3), torch.randn(4, 2, 3, 3)
    var = logvar.exp()
    # KL(N(m, v) || N(0, 1)) = 0.5 (m^2 + v - 1 - log v), summed; checked against torch.distributions
    q = torch.distributions.Normal(mean, var.sqrt())
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    expected = torch.distributions.kl_divergence(q, p).flatten(1).sum(1)
    torch.testing.assert_close(Posterior(mean, logvar).kl(), expected)


def test_autoencoder_loss_falls_with_fit(tmp_path):
    from omnidiffusion.core.latent import fit_autoencoder

    torch.manual_seed(0)
    x = (torch.rand(64, 3, 1, 1) * 2 - 1).expand(64, 3, 8, 8).contiguous()  # flat colours: compressible
    ae = tiny_ae()
    before = autoencoder_loss(ae, x).item()
    cfg = TrainConfig(steps=40, batch_size=16, lr=3e-3, ema_decay=None, progress=False, log_every=20, ckpt_every=40)
    fit_autoencoder(ae, torch.utils.data.TensorDataset(x), cfg, tmp_path / "ae")
    assert autoencoder_loss(ae, x).item() < 0.5 * before


def test_scale_factor_gives_unit_variance():
    ae = tiny_ae()
    x = torch.randn(64, 3, 8, 8)
    gen = torch.Generator().manual_seed(1)
    scale = estimate_scale_factor(ae, x, generator=gen)
    z = ae.encode(x).sample(torch.Generator().manual_seed(1)) * scale
    assert z.double().std().item() == pytest.approx(1.0, rel=1e-5)


def test_scaled_linear_schedule_matches_ldm_betas():
    sched = latent_schedule("scaled-linear", 1000)
    betas = [(math.sqrt(0.00085) + i / 999 * (math.sqrt(0.012) - math.sqrt(0.00085))) ** 2 for i in (0, 500, 999)]
    assert sched.betas[[0, 500, 999]].tolist() == pytest.approx(betas, rel=1e-12)
    with pytest.raises(ValueError, match="betas"):
        latent_schedule("quadratic-ish")


def test_latent_sampling_reaches_the_exact_ode_endpoint_then_decodes():
    """A Gaussian oracle in latent space: dpm++2m through LatentDenoiser.generate lands on the closed-form PF-ODE
    endpoint, and the images are the decoder's images of it (divided by the scale factor)."""
    ae = tiny_ae().eval()
    sched = latent_schedule("linear", 1000)
    oracle = Gaussian(torch.full((2, 2, 2), 0.3), torch.full((2, 2, 2), 0.7))
    latent = LatentDenoiser(oracle.denoiser(sched, "eps"), ae, scale_factor=2.5)
    x_T = torch.randn(5, 2, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    images, z = latent.generate(5, 4, 4, x_T=x_T, method="dpm++2m", steps=60, grid="logsnr", return_latents=True)
    exact = oracle.ode_endpoint(x_T, sched, t_start=1.0, t_end=0.0)
    assert (z - exact).abs().max().item() < 1e-2
    with torch.no_grad():
        torch.testing.assert_close(images, ae.decode(z / 2.5))


def test_guidance_weight_zero_is_the_null_condition():
    ae = tiny_ae().eval()
    sched = latent_schedule("linear", 100)
    torch.manual_seed(0)
    net = UNet(in_channels=2, out_channels=2, base_channels=8, channel_mults=[1], num_res_blocks=1,
               attention_resolutions=[], dropout=0.0, num_classes=3, resolution=4, norm_groups=4).eval()
    for p in net.out_conv.parameters():  # a non-zero output layer, so the classes matter
        torch.nn.init.normal_(p, std=0.1)
    from omnidiffusion.core import Denoiser

    latent = LatentDenoiser(Denoiser(net, sched), ae, 1.0)
    x_T = torch.randn(4, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 0])
    null = {"class_labels": torch.full((4,), -1)}
    guided = latent.generate(4, 8, 8, x_T=x_T, method="ddim", steps=5, guidance_scale=0.0, null_cond=null,
                             class_labels=labels)
    plain = latent.decode(sample(latent, x_T, method="ddim", steps=5, class_labels=torch.full((4,), -1)))
    torch.testing.assert_close(guided, plain)


def test_save_load_round_trip(tmp_path):
    from omnidiffusion.core import Denoiser

    ae = tiny_ae().eval()
    torch.manual_seed(1)
    net = UNet(in_channels=2, out_channels=2, base_channels=8, channel_mults=[1], num_res_blocks=1,
               attention_resolutions=[], dropout=0.0, resolution=4, norm_groups=4).eval()
    latent = LatentDenoiser(Denoiser(net, latent_schedule("cosine", 50), "v"), ae, 0.7)
    latent.save_pretrained(tmp_path / "ldm", schedule_spec={"betas": "cosine", "T": 50})
    back = LatentDenoiser.from_pretrained(tmp_path / "ldm")
    assert back.scale_factor == 0.7 and back.inner.prediction == "v" and back.schedule.T == 50
    x_T = torch.randn(2, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(back.generate(2, 8, 8, x_T=x_T, steps=3), latent.generate(2, 8, 8, x_T=x_T, steps=3))
    assert read_latent_config(tmp_path / "ldm")["schedule"] == {"betas": "cosine", "T": 50}


def test_bad_input_is_refused_with_named_arguments(tmp_path):
    ae = tiny_ae()
    with pytest.raises(ValueError, match="images: expected shape"):
        ae.encode(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match="divisible by 2"):
        ae.encode(torch.randn(2, 3, 7, 8))
    with pytest.raises(ValueError, match="scale_factor"):
        LatentDenoiser(Gaussian(0.0, 1.0).denoiser(latent_schedule("linear", 10)), ae, -1.0)
    with pytest.raises(ValueError, match="height"):
        LatentDenoiser(Gaussian(0.0, 1.0).denoiser(latent_schedule("linear", 10)), ae, 1.0).latent_shape(7, 8)
    with pytest.raises(FileNotFoundError):
        LatentDenoiser.from_pretrained(tmp_path / "missing")
    with pytest.raises(ValueError, match="channels"):
        AutoencoderKL(channels=(6, 8), norm_groups=4)
