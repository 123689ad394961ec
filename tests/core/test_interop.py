"""core.interop against diffusers itself: tiny random diffusers models saved to tmp_path (no network).

Truths: diffusers' own schedulers (alpha_bar tables, the DDIM and DPM-Solver++ loops), its UNet forward, and
DDPMPipeline loading what we wrote. Float64 throughout, so the only differences left are diffusers' float32
timestep embedding and scheduler tables.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from omnidiffusion.core import DiscreteVP, sample  # noqa: E402
from omnidiffusion.core.denoiser import Denoiser  # noqa: E402
from omnidiffusion.core.interop import (  # noqa: E402
    diffusers_alphas_cumprod,
    export_problems,
    from_diffusers,
    is_diffusers_folder,
    to_diffusers,
    unet2d_state_dict,
)
from omnidiffusion.core.io import load_tensors, save_pretrained  # noqa: E402
from omnidiffusion.core.nn import UNet  # noqa: E402

T = 1000


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)


def tiny_unet2d(in_channels=1, out_channels=None, seed=0):
    torch.manual_seed(seed)
    return diffusers.UNet2DModel(
        sample_size=8,
        in_channels=in_channels,
        out_channels=out_channels or in_channels,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        attention_head_dim=8,
    ).eval()


def save_folder(root, unet, prediction_type="epsilon", **sched):
    """A diffusers pipeline folder: model_index.json + unet/ + scheduler/ (DDPMScheduler)."""
    unet.save_pretrained(root / "unet")
    kw = {"num_train_timesteps": T, "clip_sample": False, "prediction_type": prediction_type, **sched}
    diffusers.DDPMScheduler(**kw).save_pretrained(root / "scheduler")
    index = {"_class_name": "DDPMPipeline", "unet": ["diffusers", type(unet).__name__],
             "scheduler": ["diffusers", "DDPMScheduler"]}
    (root / "model_index.json").write_text(json.dumps(index))
    return root


def diffusers_loop(unet, scheduler, x, steps, **cond):
    """The loop of diffusers' DDIMPipeline / any scheduler: unet(x, t) then scheduler.step."""
    scheduler.set_timesteps(steps)
    for t in scheduler.timesteps:
        out = unet(x, t, **cond).sample
        x = scheduler.step(out, t, x).prev_sample
    return x


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def test_core_import_does_not_import_diffusers():
    code = "import sys, omnidiffusion.core, omnidiffusion.core.interop; print('diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "cfg",
    [
        {"beta_schedule": "linear"},
        {"beta_schedule": "scaled_linear", "beta_start": 8.5e-4, "beta_end": 1.2e-2},
        {"beta_schedule": "squaredcos_cap_v2"},
        {"beta_schedule": "sigmoid"},
        {"beta_schedule": "linear", "rescale_betas_zero_snr": True},
        {"trained_betas": torch.linspace(1e-3, 5e-2, 50).tolist(), "num_train_timesteps": 50},
    ],
)
def test_alpha_bar_table_equals_diffusers(cfg):
    cfg = {"num_train_timesteps": T, **cfg}
    ref = diffusers.DDPMScheduler(**cfg).alphas_cumprod.double()
    ours = torch.from_numpy(diffusers_alphas_cumprod(cfg))
    assert torch.equal(ours, ref)  # the same float32 table, bit for bit


@pytest.mark.parametrize("prediction_type, zero_snr", [("epsilon", False), ("v_prediction", False),
                                                      ("v_prediction", True)])
def test_ddim_trailing_equals_diffusers_ddim(tmp_path, prediction_type, zero_snr):
    unet = tiny_unet2d()
    save_folder(tmp_path, unet, prediction_type, rescale_betas_zero_snr=zero_snr)
    den = from_diffusers(tmp_path, dtype=torch.float64)
    assert den.prediction == {"epsilon": "eps", "v_prediction": "v"}[prediction_type]
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ours = sample(den, x.clone(), method="ddim", steps=10, grid="trailing")
    sched = diffusers.DDIMScheduler.from_pretrained(tmp_path, subfolder="scheduler", timestep_spacing="trailing")
    with torch.no_grad():
        ref = diffusers_loop(unet.double(), sched, x.clone(), 10)
    assert rel_err(ours, ref) < 1e-5


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_dpmpp_2m_equals_diffusers_dpm_solver_multistep(tmp_path, prediction_type):
    unet = tiny_unet2d(seed=1)
    save_folder(tmp_path, unet, prediction_type)
    den = from_diffusers(tmp_path, dtype=torch.float64)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    ours = sample(den, x.clone(), method="dpm++2m", steps=10, grid="trailing")
    sched = diffusers.DPMSolverMultistepScheduler.from_pretrained(
        tmp_path, subfolder="scheduler", timestep_spacing="trailing", algorithm_type="dpmsolver++", solver_order=2
    )
    with torch.no_grad():
        ref = diffusers_loop(unet.double(), sched, x.clone(), 10)
    assert rel_err(ours, ref.double()) < 1e-5


def test_conditional_unet_passes_cond_and_matches_ddim(tmp_path):
    torch.manual_seed(2)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=2, out_channels=2, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        norm_num_groups=4, cross_attention_dim=6, attention_head_dim=4,
    ).eval()
    save_folder(tmp_path, unet)
    den = from_diffusers(tmp_path, dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 2, 8, 8, generator=g, dtype=torch.float64)
    ctx = torch.randn(2, 3, 6, generator=g, dtype=torch.float64)
    ours = sample(den, x.clone(), method="ddim", steps=10, grid="trailing", encoder_hidden_states=ctx)
    sched = diffusers.DDIMScheduler.from_pretrained(tmp_path, subfolder="scheduler", timestep_spacing="trailing")
    with torch.no_grad():
        ref = diffusers_loop(unet.double(), sched, x.clone(), 10, encoder_hidden_states=ctx)
    assert rel_err(ours, ref) < 1e-5


def test_unet1d_bare_folder_with_scheduler_argument(tmp_path):
    torch.manual_seed(3)
    unet = diffusers.UNet1DModel(sample_size=64, in_channels=2, out_channels=2, block_out_channels=(32, 32, 64),
                                 extra_in_channels=64, norm_num_groups=8).eval()
    unet.save_pretrained(tmp_path / "bare")
    assert is_diffusers_folder(tmp_path / "bare")
    with pytest.raises(FileNotFoundError, match="scheduler"):
        from_diffusers(tmp_path / "bare")
    cfg = {"num_train_timesteps": T, "beta_schedule": "linear", "prediction_type": "epsilon", "clip_sample": False}
    den = from_diffusers(tmp_path / "bare", scheduler=cfg, dtype=torch.float64)
    x = torch.randn(3, 2, 64, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    sched = diffusers.DDIMScheduler(**cfg, timestep_spacing="trailing")
    ours = sample(den, x.clone(), method="ddim", steps=10, grid="trailing")
    with torch.no_grad():
        ref = diffusers_loop(unet.double(), sched, x.clone(), 10)
    assert rel_err(ours, ref) < 1e-5


def test_learned_range_variance_is_split_off(tmp_path):
    unet = tiny_unet2d(in_channels=1, out_channels=2)
    save_folder(tmp_path, unet, variance_type="learned_range")
    den = from_diffusers(tmp_path, dtype=torch.float64)
    assert den.learned_variance
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    t = 0.5  # step n = 499
    out = den.predict(x, t)
    with torch.no_grad():
        raw = unet.double()(x, torch.tensor(499)).sample
    assert torch.allclose(out.eps, raw[:, :1], rtol=1e-12, atol=1e-12)
    assert torch.allclose(out.variance, raw[:, 1:], rtol=1e-12, atol=1e-12)


# ---- export


class _Model(torch.nn.Module):
    """Shaped like vision's ImageDDPM: .net (core UNet), .schedule (DiscreteVP), .prediction."""

    def __init__(self, net, prediction="eps"):
        super().__init__()
        self.net, self.schedule, self.prediction = net, DiscreteVP.linear(T), prediction

    def forward(self, x, t):
        return self.net(x, t)


def random_core_unet(seed=0, **kw):
    cfg = dict(in_channels=1, out_channels=1, base_channels=8, channel_mults=[1, 2], num_res_blocks=1,
               attention_resolutions=[4], dropout=0.0, resolution=8, norm_groups=4, num_heads=1)
    net = UNet(**{**cfg, **kw})
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():  # the zero-initialised branches too, so every weight matters
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return net.eval()


@pytest.mark.parametrize("kw", [{}, {"channel_mults": [1, 1], "num_heads": 2, "attention_resolutions": [8, 4]}])
def test_export_forward_matches_core_unet(tmp_path, kw):
    net = random_core_unet(**kw)
    to_diffusers(_Model(net), tmp_path)
    d = diffusers.UNet2DModel.from_pretrained(tmp_path / "unet").double().eval()
    net = net.double()
    g = torch.Generator().manual_seed(7)
    x = torch.randn(5, 1, 8, 8, generator=g, dtype=torch.float64)
    n = torch.tensor([0, 1, 250, 731, 999])
    with torch.no_grad():
        ours = net(x, (n.double() + 1) / T)  # step n sits at t = (n + 1)/T
        ref = d(x, n).sample
    assert rel_err(ref, ours) < 1e-5


def test_export_loads_in_ddpm_pipeline_bit_for_bit_and_runs(tmp_path):
    net = random_core_unet(seed=1)
    model = _Model(net, prediction="v")
    to_diffusers(Denoiser(model, model.schedule, "v"), tmp_path)
    written = load_tensors(tmp_path / "unet" / "diffusion_pytorch_model.safetensors")
    pipe = diffusers.DDPMPipeline.from_pretrained(tmp_path)
    loaded = pipe.unet.state_dict()
    assert set(loaded) == set(written)
    assert all(torch.equal(loaded[k], written[k]) for k in written)
    # Every core weight is copied unchanged except linear_1, which absorbs the one-step time offset.
    core = set()
    for p in net.state_dict().values():
        core.add(p.numpy().tobytes())
    unchanged = [k for k in written if k != "time_embedding.linear_1.weight"]
    exact = {k for k in unchanged if written[k].numpy().tobytes() in core}
    qkv = {k for k in unchanged if ".to_q." in k or ".to_k." in k or ".to_v." in k or ".to_out." in k}
    assert set(unchanged) - qkv <= exact
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    img = pipe(batch_size=2, num_inference_steps=4, generator=torch.Generator().manual_seed(0), output_type="np")
    assert img.images.shape == (2, 8, 8, 1) and bool(torch.isfinite(torch.from_numpy(img.images)).all())


def test_export_round_trip_sampling_equals_core(tmp_path):
    net = random_core_unet(seed=2).double()
    model = _Model(net)
    to_diffusers(model, tmp_path, clip_sample=False)
    den = from_diffusers(tmp_path, dtype=torch.float64)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    ours = sample(Denoiser(model, model.schedule, "eps"), x.clone(), method="ddim", steps=10, grid="trailing")
    back = sample(den, x.clone(), method="ddim", steps=10, grid="trailing")
    assert rel_err(back, ours) < 1e-5


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"time_embedding": "fourier"}, "time_embedding"),
        ({"cond_channels": 1}, "cond_channels"),
        ({"channel_mults": [2, 2]}, "channel_mults"),
        ({"num_heads": 2, "attention_resolutions": [8, 4]}, "num_heads"),
        ({"time_embedding_scale": 5000.0}, "time_embedding_scale"),
    ],
)
def test_export_refuses_layouts_without_a_unet2d_equivalent(tmp_path, kw, field):
    net = random_core_unet(**kw)
    assert any(p.startswith(field) for p in export_problems(net, T))
    with pytest.raises(ValueError, match=field):
        to_diffusers(_Model(net), tmp_path)
    assert not (tmp_path / "model_index.json").exists()


# ---- never unpickle, refuse what cannot be mapped


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_weights_are_refused_and_never_executed(tmp_path):
    unet = tiny_unet2d()
    save_folder(tmp_path, unet)
    (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    marker = tmp_path / "executed"
    with open(tmp_path / "unet" / "diffusion_pytorch_model.bin", "wb") as f:
        pickle.dump({"conv_in.weight": _Evil(str(marker))}, f)
    with pytest.raises(ValueError, match="refused"):
        from_diffusers(tmp_path)
    assert not marker.exists()
    # A pickle under the safetensors name is refused by the safetensors reader.
    unet_dir = tmp_path / "unet"
    (unet_dir / "diffusion_pytorch_model.bin").rename(unet_dir / "diffusion_pytorch_model.safetensors")
    with pytest.raises(ValueError, match="safetensors"):
        from_diffusers(tmp_path)
    assert not marker.exists()


def test_plain_tensor_bin_loads_with_weights_only(tmp_path):
    unet = tiny_unet2d()
    save_folder(tmp_path, unet)
    (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    torch.save(unet.state_dict(), tmp_path / "unet" / "diffusion_pytorch_model.bin")
    den = from_diffusers(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(den.net.unet.state_dict().values(), unet.state_dict().values(),
                                                 strict=True))


@pytest.mark.parametrize(
    "sched, field",
    [
        ({"prediction_type": "flow_prediction"}, "prediction_type"),
        ({"beta_schedule": "cubic"}, "beta_schedule"),
        ({"variance_type": "learned"}, "variance_type"),
        ({"rescale_betas_zero_snr": True}, "rescale_betas_zero_snr"),
        ({"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": T, "shift": 3.0}, "beta table"),
    ],
)
def test_unmappable_scheduler_fields_are_named(tmp_path, sched, field):
    tiny_unet2d().save_pretrained(tmp_path / "unet")
    base = {"num_train_timesteps": T, "beta_schedule": "linear", "prediction_type": "epsilon"}
    cfg = sched if "_class_name" in sched else {**base, **sched}
    with pytest.raises(ValueError, match=field):
        from_diffusers(tmp_path / "unet", scheduler=cfg)


def test_our_own_format_is_not_a_diffusers_folder(tmp_path):
    save_pretrained(random_core_unet(), tmp_path / "ours")
    assert not is_diffusers_folder(tmp_path / "ours")
    unet2d_state_dict(random_core_unet(), T)  # the layout the tests above export
