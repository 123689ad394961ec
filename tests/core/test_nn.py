"""Tests for omnidiffusion.core.nn: time embeddings, FiLM and the configurable UNet (tiny configurations)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from omnidiffusion.core.nn import (
    FiLM,
    GaussianFourierFeatures,
    SinusoidalEmbedding,
    TimeEmbedding,
    UNet,
    default_unet_config,
    film,
    sinusoidal_embedding,
)


def tiny_config(**overrides) -> dict:
    config = {
        "in_channels": 1,
        "out_channels": 1,
        "base_channels": 8,
        "channel_mults": [1, 2],
        "num_res_blocks": 1,
        "attention_resolutions": [4],
        "dropout": 0.0,
        "resolution": 8,
        "norm_groups": 4,
    }
    config.update(overrides)
    return config


def randomised(net: UNet, seed: int = 0) -> UNet:
    """Give every parameter (including the zero-initialised ones) random values, so outputs are non-trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return net.eval()


# ---------------------------------------------------------------- embeddings


def test_sinusoidal_matches_hand_computation():
    t = torch.tensor([0.0, 0.25], dtype=torch.float64)
    emb = sinusoidal_embedding(t, 4, scale=1000.0, max_period=10000.0)
    # h = 2 frequencies: 10000 ** (-0 / 2) = 1 and 10000 ** (-1 / 2) = 0.01; arguments 1000 * t * w.
    expected = torch.tensor(
        [
            [0.0, 0.0, 1.0, 1.0],
            [math.sin(250.0), math.sin(2.5), math.cos(250.0), math.cos(2.5)],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(emb, expected)


def test_sinusoidal_scale_odd_dim_and_module():
    t = torch.tensor([0.1, 0.7, 1.0])
    # WaveGrad-style scale 5000 on t is the same as DDPM scale 1000 on 5 t.
    torch.testing.assert_close(sinusoidal_embedding(t, 6, scale=5000.0), sinusoidal_embedding(5 * t, 6))
    odd = sinusoidal_embedding(t, 7)
    assert odd.shape == (3, 7)
    torch.testing.assert_close(odd[:, :6], sinusoidal_embedding(t, 6))
    assert torch.all(odd[:, 6] == 0)
    torch.testing.assert_close(SinusoidalEmbedding(6, scale=5000.0)(t), sinusoidal_embedding(t, 6, scale=5000.0))
    # An integer step index is embedded like the same float.
    torch.testing.assert_close(sinusoidal_embedding(torch.tensor([3, 7]), 8, scale=1.0),
                               sinusoidal_embedding(torch.tensor([3.0, 7.0]), 8, scale=1.0))


def test_embeddings_reject_bad_time_shape():
    with pytest.raises(ValueError, match=r"t: expected a tensor of shape \(N,\).*got shape \(2, 1\)"):
        sinusoidal_embedding(torch.zeros(2, 1), 8)
    with pytest.raises(ValueError, match=r"t: .*got shape \(\)"):
        GaussianFourierFeatures(8)(torch.tensor(0.5))
    with pytest.raises(ValueError, match="dim: expected an even integer >= 2, got 7"):
        GaussianFourierFeatures(7)


def test_fourier_features_shape_and_statistics():
    dim, scale = 4096, 16.0
    layer = GaussianFourierFeatures(dim, scale=scale, seed=3)
    # W is a saved, untrained buffer drawn from N(0, scale^2).
    assert "W" in layer.state_dict() and not list(layer.parameters())
    w = layer.W
    assert w.shape == (dim // 2,)
    assert abs(w.mean().item()) < 4 * scale / math.sqrt(dim // 2)
    assert abs(w.std().item() / scale - 1) < 0.05
    torch.testing.assert_close(GaussianFourierFeatures(dim, scale=scale, seed=3).W, w)

    t = torch.linspace(0, 1, 257)
    feats = layer(t)
    assert feats.shape == (257, dim)
    sin, cos = feats[:, : dim // 2], feats[:, dim // 2 :]
    torch.testing.assert_close(sin**2 + cos**2, torch.ones_like(sin))
    torch.testing.assert_close(sin[1], torch.sin(2 * math.pi * t[1] * w))
    # Over a time grid, high-frequency features average to ~0 with variance ~1/2 (|2 pi W| >> 1 for most W).
    fast = (2 * math.pi * w.abs()) > 20
    expected_fraction = math.erfc(20 / (2 * math.pi * scale) / math.sqrt(2))  # P(|N(0, scale^2)| > 20 / 2 pi)
    assert abs(fast.float().mean().item() - expected_fraction) < 0.03
    assert sin[:, fast].mean().abs() < 0.02
    assert abs(sin[:, fast].var(dim=0).mean().item() - 0.5) < 0.02


def test_time_embedding_mlp():
    mlp = TimeEmbedding(8, 32, hidden_dim=16)
    out = mlp(sinusoidal_embedding(torch.rand(5), 8))
    assert out.shape == (5, 32)
    with pytest.raises(ValueError, match=r"features: expected shape \(N, 8\), got shape \(5, 6\)"):
        mlp(torch.zeros(5, 6))


# ---------------------------------------------------------------- FiLM


@pytest.mark.parametrize("shape", [(3, 4), (3, 4, 5), (3, 4, 5, 6), (3, 4, 2, 3, 2)])
def test_film_zero_init_is_identity(shape):
    layer = FiLM(7, 4, zero_init=True)
    h = torch.randn(shape)
    torch.testing.assert_close(layer(h, torch.randn(3, 7)), h)


def test_film_matches_hand_computation_both_channel_axes():
    torch.manual_seed(0)
    layer = FiLM(2, 3)
    cond = torch.randn(2, 2)
    W, b = layer.proj.weight.detach(), layer.proj.bias.detach()
    h = torch.randn(2, 3, 5)  # (B, C, N)
    out = layer(h, cond)
    for i in range(2):
        for c in range(3):
            gamma = sum(W[c, j] * cond[i, j] for j in range(2)) + b[c]
            beta = sum(W[3 + c, j] * cond[i, j] for j in range(2)) + b[3 + c]
            torch.testing.assert_close(out[i, c], h[i, c] * (1 + gamma) + beta)

    last = FiLM(2, 3, channel_dim=-1)
    last.load_state_dict(layer.state_dict())
    tokens = h.transpose(1, 2)  # (B, L, D) with D = C
    torch.testing.assert_close(last(tokens, cond), out.transpose(1, 2))


def test_film_function_and_errors():
    h = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(film(h, torch.zeros(2, 3), torch.zeros(2, 3)), h)
    torch.testing.assert_close(film(h, torch.ones(2, 3), torch.full((2, 3), 0.5)), 2 * h + 0.5)
    with pytest.raises(ValueError, match=r"gamma: expected shape \(2, 3\).*got \(2, 4\)"):
        film(h, torch.zeros(2, 4), torch.zeros(2, 3))
    layer = FiLM(5, 3)
    with pytest.raises(ValueError, match=r"cond: expected shape \(B, 5\), got shape \(2, 4\)"):
        layer(h, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"h: expected \(B, C, \.\.\.\) with C=3, got shape \(2, 4, 4, 4\)"):
        layer(torch.zeros(2, 4, 4, 4), torch.zeros(2, 5))


# ---------------------------------------------------------------- UNet


@pytest.mark.parametrize(
    "overrides, batch, size, kwargs",
    [
        ({}, 3, (8, 8), {}),
        ({"in_channels": 3, "out_channels": 3, "cond_channels": 2}, 1, (8, 8), {"cond": (2,)}),
        ({"num_classes": 5}, 5, (8, 8), {"class_labels": True}),
        (
            {"out_channels": 2, "channel_mults": [1, 2, 2], "resolution": 16, "attention_resolutions": [8, 4],
             "time_embedding": "fourier", "num_heads": 2, "num_res_blocks": 2},
            2, (16, 16), {},
        ),
        ({}, 2, (8, 16), {}),  # non-square
        ({"channel_mults": [1, 2, 2]}, 1, (12, 20), {}),  # sizes other than `resolution`
    ],
)
def test_unet_output_shapes(overrides, batch, size, kwargs):
    net = UNet(**tiny_config(**overrides))
    x = torch.randn(batch, net.config["in_channels"], *size)
    call = {}
    if "cond" in kwargs:
        call["cond"] = torch.randn(batch, kwargs["cond"][0], *size)
    if kwargs.get("class_labels"):
        call["class_labels"] = torch.arange(batch) - 1  # includes -1 ("no class")
    out = net(x, torch.rand(batch), **call)
    assert out.shape == (batch, net.config["out_channels"], *size)
    assert out.dtype == x.dtype


def test_unet_zero_init_output_is_zero():
    net = UNet(**tiny_config(num_classes=3, cond_channels=1))
    out = net(torch.randn(2, 1, 8, 8), torch.rand(2), cond=torch.randn(2, 1, 8, 8),
              class_labels=torch.tensor([0, 2]))
    assert torch.count_nonzero(out) == 0


def test_unet_batch_independence():
    net = randomised(UNet(**tiny_config(cond_channels=1, num_classes=4, dropout=0.3)))
    B = 5
    x, t, c = torch.randn(B, 1, 8, 8), torch.rand(B), torch.randn(B, 1, 8, 8)
    labels = torch.tensor([0, 3, -1, 1, 2])
    with torch.no_grad():
        batched = net(x, t, cond=c, class_labels=labels)
        for i in range(B):
            alone = net(x[i : i + 1], t[i : i + 1], cond=c[i : i + 1], class_labels=labels[i : i + 1])
            torch.testing.assert_close(batched[i : i + 1], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["sinusoidal", "fourier"])
def test_unet_output_depends_on_time_and_class(kind):
    net = randomised(UNet(**tiny_config(time_embedding=kind, num_classes=3)))
    x = torch.randn(1, 1, 8, 8).expand(3, -1, -1, -1)
    with torch.no_grad():
        out = net(x, torch.tensor([0.1, 0.5, 0.9]))
        assert (out[0] - out[1]).abs().max() > 1e-3 and (out[1] - out[2]).abs().max() > 1e-3
        t = torch.full((3,), 0.5)
        by_class = net(x, t, class_labels=torch.tensor([0, 1, -1]))
        assert (by_class[0] - by_class[1]).abs().max() > 1e-3
        # -1 and class_labels=None both mean "no class embedding".
        torch.testing.assert_close(by_class[2], net(x, t)[2])


def test_unet_overfits_a_fixed_batch():
    torch.manual_seed(0)
    net = UNet(**tiny_config())
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(4, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g)
    t = 0.1 + 0.8 * torch.rand(4, generator=g)
    a, s = torch.cos(math.pi / 2 * t)[:, None, None, None], torch.sin(math.pi / 2 * t)[:, None, None, None]
    x_t = a * x0 + s * eps
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        loss = torch.mean((net(x_t, t) - eps) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


def test_unet_gradient_checkpointing_matches_plain():
    torch.manual_seed(0)
    plain = randomised(UNet(**tiny_config()))
    ckpt = UNet(**tiny_config(gradient_checkpointing=True))
    ckpt.load_state_dict(plain.state_dict())
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    for net in (plain, ckpt):
        net.train()
        net.zero_grad()
        net(x, t).square().mean().backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_unet_config_is_json_and_rebuilds_same_net():
    net = randomised(UNet(**tiny_config(num_classes=2, cond_channels=1, time_embedding="fourier")))
    config = json.loads(json.dumps(net.config))
    clone = UNet(**config)
    clone.load_state_dict(net.state_dict())
    clone.eval()
    x, t, c = torch.randn(2, 1, 8, 8), torch.rand(2), torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(clone(x, t, cond=c), net(x, t, cond=c))


def test_default_config_size():
    config = default_unet_config()
    json.dumps(config)
    net = UNet(**config)
    n = sum(p.numel() for p in net.parameters())
    assert 8e6 < n < 12e6, n
    assert default_unet_config() is not config  # a fresh dict each call


def test_unet_runs_in_float64():
    net = UNet(**tiny_config()).double()
    out = net(torch.randn(2, 1, 8, 8, dtype=torch.float64), torch.rand(2, dtype=torch.float64))
    assert out.dtype == torch.float64


X = torch.randn(2, 1, 8, 8)
T = torch.rand(2)


@pytest.mark.parametrize(
    "call, pattern",
    [
        (
            lambda n: n(torch.randn(2, 3, 8, 8), T),
            r"x_t: expected shape \(B, 1, H, W\), got shape \(2, 3, 8, 8\)",
        ),
        (lambda n: n(torch.randn(2, 1, 8), T), r"x_t: expected shape \(B, 1, H, W\), got shape \(2, 1, 8\)"),
        (lambda n: n(torch.randn(2, 1, 8, 6), T), r"x_t: expected H and W divisible by 4 .*got H=8, W=6"),
        (lambda n: n(X, torch.rand(2, 1)), r"t: expected a float tensor of shape \(2,\).*got shape \(2, 1\)"),
        (lambda n: n(X, torch.rand(3)), r"t: expected a float tensor of shape \(2,\).*got shape \(3,\)"),
        (lambda n: n(X, 0.5), r"t: expected a float tensor of shape \(2,\).*got float"),
        (lambda n: n(X, torch.tensor([3, 4])), r"t: expected a float tensor .* got dtype torch.int64"),
        (
            lambda n: n(X, T, cond=torch.zeros(2, 1, 8, 8)),
            r"cond: expected None \(cond_channels=0\), got shape \(2, 1, 8, 8\)",
        ),
        (
            lambda n: n(X, T, class_labels=torch.zeros(2, dtype=torch.long)),
            r"class_labels: expected None \(num_classes=None\)",
        ),
    ],
)
def test_unet_bad_input_raises(call, pattern):
    net = UNet(**tiny_config(channel_mults=[1, 2, 2], attention_resolutions=[2]))
    with pytest.raises(ValueError, match=pattern):
        call(net)


def test_unet_bad_conditioning_raises():
    net = UNet(**tiny_config(cond_channels=2, num_classes=3))
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    with pytest.raises(ValueError, match=r"cond: expected a tensor of shape \(2, 2, 8, 8\).*got None"):
        net(x, t)
    with pytest.raises(ValueError, match=r"cond: expected shape \(2, 2, 8, 8\), got shape \(2, 2, 4, 4\)"):
        net(x, t, cond=torch.zeros(2, 2, 4, 4))
    c = torch.zeros(2, 2, 8, 8)
    with pytest.raises(ValueError, match=r"class_labels: expected values in \[-1, 2\].*got values in \[0, 3\]"):
        net(x, t, cond=c, class_labels=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"class_labels: expected an integer tensor of shape \(2,\).*float32"):
        net(x, t, cond=c, class_labels=torch.tensor([0.0, 1.0]))


@pytest.mark.parametrize(
    "overrides, pattern",
    [
        (
            {"attention_resolutions": [5]},
            r"attention_resolutions: expected sides among the level sizes \[8, 4\], got \[5\]",
        ),
        ({"norm_groups": 3}, r"norm_groups: expected a divisor of every level width 8, got 3"),
        (
            {"time_embedding": "learned"},
            r"time_embedding: expected one of \['fourier', 'sinusoidal'\], got 'learned'",
        ),
        ({"channel_mults": []}, r"channel_mults: expected a non-empty list"),
        ({"resolution": 7}, r"resolution: expected a multiple of 2 for 2 levels, got 7"),
        ({"num_heads": 3}, r"num_heads: expected a divisor of every attention width, got 3"),
        ({"dropout": 1.0}, r"dropout: expected a float in \[0, 1\), got 1.0"),
    ],
)
def test_unet_bad_config_raises(overrides, pattern):
    with pytest.raises(ValueError, match=pattern):
        UNet(**tiny_config(**overrides))
