"""Geometry: radius graph against brute force, chain rule against autograd, least squares against rigid modes."""

from __future__ import annotations

import numpy as np
import torch

from omnidiffusion.molecules.graph import (
    center_pos,
    com_projection,
    edge_lengths,
    eq_transform,
    merge_edges,
    radius_graph,
)
from omnidiffusion.molecules.task import least_squares_eps


def _batch(sizes):
    return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))


def test_radius_graph_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    batch = _batch([5, 1, 7, 3])
    pos = 3.0 * torch.randn(batch.numel(), 3, generator=gen, dtype=torch.float64)
    got = {tuple(e) for e in radius_graph(pos, batch, 4.0).T.tolist()}
    want = {
        (i, j)
        for i in range(len(batch))
        for j in range(len(batch))
        if i != j and batch[i] == batch[j] and (pos[i] - pos[j]).norm() <= 4.0
    }
    assert got == want and len(want) > 0


def test_merge_edges_keeps_local_types_and_adds_radius_type_zero():
    local = torch.tensor([[0, 1], [1, 0]])
    types = torch.tensor([2, 2])
    radius = torch.tensor([[0, 1, 0, 2], [1, 0, 2, 0]])
    index, etype = merge_edges(local, types, radius, 3)
    got = {tuple(e): int(t) for e, t in zip(index.T.tolist(), etype.tolist(), strict=True)}
    assert got == {(0, 1): 2, (1, 0): 2, (0, 2): 0, (2, 0): 0}


def test_eq_transform_is_half_the_gradient_of_the_weighted_distance_sum():
    # With both directions and s_ij = s_ji, grad_x sum_e s_e d_e = 2 sum_j s_ij (x_i - x_j)/d_ij.
    gen = torch.Generator().manual_seed(1)
    n = 6
    pos = torch.randn(n, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    i, j = torch.triu_indices(n, n, 1)
    sym = torch.randn(i.numel(), generator=gen, dtype=torch.float64)
    index = torch.cat([torch.stack([i, j]), torch.stack([j, i])], dim=1)
    s = torch.cat([sym, sym])
    length = edge_lengths(pos, index)
    grad = torch.autograd.grad((s * length).sum(), pos)[0]
    vec = eq_transform(s, pos.detach(), index, length.detach(), n)
    assert torch.allclose(vec, 0.5 * grad, atol=1e-12)
    assert torch.allclose(vec.sum(0), torch.zeros(3, dtype=torch.float64), atol=1e-12)


def test_least_squares_recovers_a_deformation_up_to_rigid_motion():
    # g = J^T J delta on a complete graph; the damped solve (damping -> 0) returns delta minus its projection
    # onto the six rigid modes (translations and infinitesimal rotations), computed here by numpy lstsq.
    gen = torch.Generator().manual_seed(2)
    sizes = [5, 4]
    batch = _batch(sizes)
    pos = torch.randn(batch.numel(), 3, generator=gen, dtype=torch.float64)
    delta = torch.randn(batch.numel(), 3, generator=gen, dtype=torch.float64)
    index = radius_graph(pos, batch, 100.0)
    length = edge_lengths(pos, index)
    pos_v = pos.clone().requires_grad_(True)
    # J^T J delta = grad of 0.5 |J delta|^2 with J delta = (u_ij . (delta_i - delta_j)) per undirected pair.
    row, col = index
    unit = (pos_v[row] - pos_v[col]) / edge_lengths(pos_v, index)[:, None]
    jd = (unit * (delta[row] - delta[col])).sum(-1)
    g = torch.zeros_like(pos)
    g.index_add_(0, row, unit.detach() * jd.detach()[:, None])  # sum_j u_ij (u_ij . (d_i - d_j))
    eps = least_squares_eps(g, pos, index, length, batch, damping=1e-9)
    start = 0
    for n in sizes:
        x, d = pos[start : start + n].numpy(), delta[start : start + n].numpy()
        modes = []
        for k in range(3):
            t = np.zeros((n, 3))
            t[:, k] = 1
            modes.append(t.ravel())
            w = np.zeros(3)
            w[k] = 1
            modes.append(np.cross(w, x - x.mean(0)).ravel())
        m = np.stack(modes, 1)
        rigid = m @ np.linalg.lstsq(m, d.ravel(), rcond=None)[0]
        want = d.ravel() - rigid
        assert np.allclose(eps[start : start + n].numpy().ravel(), want, atol=1e-5)
        start += n


def test_com_projection_hook_centres_every_molecule():
    batch = _batch([3, 4])
    x0 = torch.randn(7, 3, dtype=torch.float64) + torch.tensor([5.0, -2.0, 1.0], dtype=torch.float64)
    out = com_projection(batch)(x0, x0, torch.zeros(7, dtype=torch.float64))
    for b in range(2):
        assert torch.allclose(out[batch == b].mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-12)
        assert torch.allclose(
            out[batch == b] - x0[batch == b], -x0[batch == b].mean(0).expand(int((batch == b).sum()), 3)
        )
    assert torch.allclose(center_pos(out, batch), out)


def test_zero_weight_edges_drop_out_of_the_least_squares():
    # Weighted least squares with weight 0 on some edges equals the unweighted solve on the other edges.
    gen = torch.Generator().manual_seed(3)
    batch = _batch([6])
    pos = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    g = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    index = radius_graph(pos, batch, 100.0)
    keep = (index[0] + index[1]) % 3 != 0  # symmetric in (i, j), so both directions stay together
    weight = keep.to(torch.float64)
    length = edge_lengths(pos, index)
    full = least_squares_eps(g, pos, index, length, batch, 0.05, weight)
    sub = least_squares_eps(g, pos, index[:, keep], length[keep], batch, 0.05)
    assert torch.allclose(full, sub, atol=1e-10)
