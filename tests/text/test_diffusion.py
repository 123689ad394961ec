"""Diffusion-LM wiring: schedule, rounding, clamping hook, loss terms, embedding collapse, a tiny overfit."""

import math

import numpy as np
import pytest
import torch

from omnidiffusion.core.training import TrainConfig, fit
from omnidiffusion.text.data import TokenDataset
from omnidiffusion.text.diffusion import clamp_hook, e2e_loss, embedding_stats, make_denoiser, nearest_ids
from omnidiffusion.text.models import AttributeClassifier, DiffusionLMNet, TeacherLM
from omnidiffusion.text.settings import TextScheduleConfig


def tiny_net(vocab=20, seq_len=12, seed=0):
    torch.manual_seed(seed)
    return DiffusionLMNet(
        vocab,
        embed_dim=8,
        seq_len=seq_len,
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        intermediate_size=64,
        dropout=0.0,
        time_channels=32,
    )


def test_sqrt_schedule_matches_the_paper_formula():
    """alpha_bar(n) = 1 - sqrt((n+1)/T + 1e-4) (up to the beta <= 0.999 clip), Li et al. 2022 sec. 4.2."""
    sched = TextScheduleConfig().build()  # the [schedule] default: sqrt, T = 2000
    n = np.array([0, 499, 999, 1499])
    expected = (1 - np.sqrt((n + 1) / 2000 + 1e-4)) / (1 - np.sqrt(1e-4))
    np.testing.assert_allclose(sched.alphas_cumprod[n], expected, rtol=1e-6)
    # the noise std at the first step is ~0.12, far above cosine's (the paper's motivation)
    assert 0.1 < sched.sigma(sched.t_of_index(0)).item() < 0.15


def test_rounding_a_clean_embedding_gives_back_its_word():
    net = tiny_net(vocab=50)
    ids = torch.randint(0, 50, (4, 12))
    assert torch.equal(nearest_ids(net.embed(ids), net.embedding.weight), ids)
    # brute-force nearest neighbour as the oracle for a noisy point
    x = torch.randn(3, 12, 8)
    brute = torch.cdist(x.reshape(-1, 8), net.embedding.weight).argmin(-1).reshape(3, 12)
    assert torch.equal(nearest_ids(x, net.embedding.weight), brute)


def test_clamp_hook_returns_embedding_rows_and_denoiser_uses_it():
    net = tiny_net()
    hook = clamp_hook(net.embedding.weight)
    x0 = torch.randn(2, 12, 8)
    out = hook(x0, x0, torch.ones(2))
    rows = net.embedding.weight.detach()
    assert all(any(torch.equal(v, r) for r in rows) for v in out.reshape(-1, 8))
    den = make_denoiser(net.eval(), TextScheduleConfig(timesteps=100).build())
    pred = den.predict(torch.randn(2, 12, 8), 0.5).x0
    assert torch.equal(pred, rows[nearest_ids(pred, rows)])


def test_tied_rounding_head_and_loss_terms():
    net = tiny_net()
    assert net.lm_head.weight is net.embedding.weight
    sched = TextScheduleConfig(timesteps=100).build()
    ids = torch.randint(0, 20, (8, 12))
    loss, parts = e2e_loss(net, ids, sched)
    assert math.isclose(loss.item(), sum(p.item() for p in parts.values()), rel_tol=1e-5)
    assert parts["rounding"].item() > 0 and parts["mse"].item() > 0


def test_short_training_lowers_the_loss_and_keeps_embeddings_apart(tmp_path):
    """Joint embedding learning must not collapse the word vectors (Li et al. 2022 sec. 4.1)."""
    net = tiny_net(vocab=12, seq_len=8)
    torch.manual_seed(1)
    ids = torch.randint(4, 12, (32, 8))
    before = embedding_stats(net)
    sched = TextScheduleConfig(timesteps=100).build()
    g = torch.Generator().manual_seed(0)
    first = e2e_loss(net, ids, sched, generator=g)[0].item()
    cfg = TrainConfig(steps=100, batch_size=16, lr=3e-3, ema_decay=None, progress=False, log_every=50, ckpt_every=100)
    fit(net, lambda m, b: e2e_loss(m, b, sched)[0], TokenDataset(ids), cfg, tmp_path)
    g = torch.Generator().manual_seed(0)
    after_loss = e2e_loss(net, ids, sched, generator=g)[0].item()
    after = embedding_stats(net)
    assert after_loss < 0.7 * first
    assert after["mean_norm"] > 0.5 * before["mean_norm"]
    assert after["mean_nn_dist"] > 0.5 * before["mean_nn_dist"]


def test_networks_check_shapes():
    net = tiny_net()
    with pytest.raises(ValueError, match="x: expected shape"):
        net(torch.randn(2, 13, 8), torch.ones(2))
    with pytest.raises(ValueError, match="t: expected shape"):
        net(torch.randn(2, 12, 8), torch.ones(3))
    clf = AttributeClassifier(["food=Chinese", "area=riverside"], embed_dim=8, seq_len=12, hidden_size=16, num_layers=1)
    assert clf(torch.randn(3, 12, 8), torch.rand(3)).shape == (3, 2)
    lm = TeacherLM(20, n_positions=12, n_embd=16, n_layer=1, n_head=2)
    assert lm(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 5, 20)
    with pytest.raises(ValueError, match="ids"):
        lm(torch.zeros(2, 13, dtype=torch.long))
