"""Geometry on batched molecular graphs: radius graph, chain-rule transform, centre-of-mass projection.

Atoms of a batch are stacked, pos (N_total, 3), with a batch vector (N_total,) naming each atom's molecule.
Everything here is plain torch (no pyg-lib or torch-cluster): the radius graph is a per-molecule distance
matrix, scatters are `index_add_`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .chem import RADIUS_TYPE


def num_graphs(batch: Tensor) -> int:
    return int(batch.max().item()) + 1 if batch.numel() else 0


def scatter_sum(src: Tensor, index: Tensor, size: int) -> Tensor:
    """sum of src rows per index: (E, ...) -> (size, ...)."""
    out = src.new_zeros((size, *src.shape[1:]))
    return out.index_add_(0, index, src)


def scatter_mean(src: Tensor, index: Tensor, size: int) -> Tensor:
    """mean of src rows per index: (E, ...) -> (size, ...); empty groups give 0."""
    total = scatter_sum(src, index, size)
    count = torch.bincount(index, minlength=size).clamp(min=1).to(src.dtype)
    return total / count.reshape(-1, *([1] * (src.ndim - 1)))


def center_pos(pos: Tensor, batch: Tensor) -> Tensor:
    """Subtract each molecule's centroid (uniform masses, as GeoDiff's CoM-free Gaussians): (N, 3) -> (N, 3)."""
    return pos - scatter_mean(pos, batch, num_graphs(batch))[batch]


def com_projection(batch: Tensor):
    """A core Denoiser x0 hook projecting x0_hat onto the centred (CoM-free) subspace of every molecule."""

    def hook(x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        if x0.shape[0] != batch.shape[0]:
            raise ValueError(f"com_projection: batch has {batch.shape[0]} atoms, x0 has {x0.shape[0]}")
        return center_pos(x0, batch)

    return hook


def radius_graph(pos: Tensor, batch: Tensor, cutoff: float) -> Tensor:
    """Directed pairs (i, j), i != j, of the same molecule with |x_i - x_j| <= cutoff: (2, E), sorted by i.

    Per-molecule distance matrices on a padded (B, n_max, 3) layout, so the cost is B n_max^2 (small molecules).
    """
    n_graphs = num_graphs(batch)
    counts = torch.bincount(batch, minlength=n_graphs)
    starts = torch.cumsum(counts, 0) - counts
    local = torch.arange(batch.numel(), device=pos.device) - starts[batch]  # index of each atom in its molecule
    n_max = int(counts.max().item())
    dense = pos.new_zeros(n_graphs, n_max, 3)
    dense[batch, local] = pos.detach()
    valid = torch.zeros(n_graphs, n_max, dtype=torch.bool, device=pos.device)
    valid[batch, local] = True
    dist = torch.cdist(dense, dense)  # (B, n, n)
    keep = valid[:, :, None] & valid[:, None, :] & (dist <= cutoff)
    keep &= ~torch.eye(n_max, dtype=torch.bool, device=pos.device)[None]
    g, i, j = torch.nonzero(keep, as_tuple=True)
    return torch.stack([starts[g] + i, starts[g] + j])


def merge_edges(local_index: Tensor, local_type: Tensor, radius_index: Tensor, n_atoms: int) -> tuple[Tensor, Tensor]:
    """Union of the fixed local edges and the radius edges; radius-only pairs get type RADIUS_TYPE (0).

    Returns (edge_index (2, E), edge_type (E,)) with the local edges first.
    """
    key_local = local_index[0] * n_atoms + local_index[1]
    key_radius = radius_index[0] * n_atoms + radius_index[1]
    extra = radius_index[:, ~torch.isin(key_radius, key_local)]
    edge_index = torch.cat([local_index, extra], dim=1)
    edge_type = torch.cat([local_type, local_type.new_full((extra.shape[1],), RADIUS_TYPE)])
    return edge_index, edge_type


def edge_lengths(pos: Tensor, edge_index: Tensor) -> Tensor:
    """|x_i - x_j| per edge: (E,)."""
    return (pos[edge_index[0]] - pos[edge_index[1]]).norm(dim=-1)


def eq_transform(score_d: Tensor, pos: Tensor, edge_index: Tensor, length: Tensor, n_atoms: int) -> Tensor:
    """Chain rule from per-edge scalars to per-atom vectors: v_i = sum_j s_ij (x_i - x_j) / d_ij.

    (E,) scalars -> (N, 3). This is d d_ij / d x_i applied to an invariant edge quantity (GeoDiff-C, Xu et al.
    2022 eq. 13; ConfGF): rotation-equivariant and translation-invariant because only invariants multiply
    relative positions. With both directions present and s_ij = s_ji, each molecule's vectors sum to zero.
    """
    row, col = edge_index
    unit = (pos[row] - pos[col]) / length.clamp(min=1e-6)[:, None]  # (E, 3)
    return scatter_sum(score_d[:, None] * unit, row, n_atoms)


def clip_norm(vec: Tensor, limit: float | None) -> Tensor:
    """Scale each row of (N, 3) down to norm <= limit (GeoDiff's `clip_norm`); None leaves it."""
    if limit is None:
        return vec
    norm = vec.norm(dim=-1, keepdim=True)
    return vec * torch.where(norm > limit, limit / norm.clamp(min=1e-12), torch.ones_like(norm))
