"""GeoDiff as a core task: the chain-rule training loss and the network as a core eps-model.

Coordinates. Core's form is x_t = alpha x0 + sigma eps on a DiscreteVP schedule (`[schedule]`, sigmoid
betas). The network sees VE-scaled coordinates x_t / alpha = x0 + sigma_ve eps with sigma_ve = sigma / alpha,
exactly the `pos_perturbed` of the released GeoDiff code.

Training target (GeoDiff-C, Xu et al. 2022 sec. 4.3): per edge r_ij = (d_ij(x_ve) - d_ij(x0)) / sigma_ve,
mapped to atoms by the chain rule, g_i = sum_j r_ij (x_i - x_j)/d_ij; the squared error on g is weighted 5
(local edges) and 2 (radius-only edges within the cutoff; `[loss]`) and averaged over atoms.

As a core eps-model (`GeoDiffEps`) the chain-rule vectors g = J^T r (J: the distance Jacobian) are mapped to
coordinates by damped weighted least squares, eps_hat = (J^T W J + lambda I)^-1 g, per molecule (W: 1 on
local edges, w_global on the radius-only edges switched on), times `eps_scale`. This is our addition,
so that x0_hat = (x_t - sigma eps_hat)/alpha is on the right scale for core's DDPM and DPM-Solver++; it is
equivariant (J^T J rotates with the input) and removes the rigid-motion part of g. The paper's own sampler
(sampling.geodiff_ld) uses g directly.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from omnidiffusion.core import Denoiser, DiscreteVP, unwrap_model
from omnidiffusion.core.losses import sample_t

from .chem import RADIUS_TYPE
from .graph import center_pos, clip_norm, com_projection, edge_lengths, eq_transform, num_graphs
from .settings import GeoDiffSamplerConfig, LossConfig

GRAPH_KEYS = ("atom_type", "edge_index", "edge_type", "batch")


def check_loss(cfg: LossConfig) -> LossConfig:
    """Refuse weights that train nothing (both 0; LossConfig checks each one); returns `cfg` unchanged."""
    if cfg.local_weight == 0 and cfg.global_weight == 0:
        raise ValueError("loss.local_weight, loss.global_weight: expected at least one > 0, got both 0")
    return cfg


def ve_scale(schedule: DiscreteVP, t: Tensor) -> tuple[Tensor, Tensor]:
    """(alpha, sigma_ve = sigma / alpha) at times t (any shape), float64."""
    alpha, sigma = schedule.alpha(t), schedule.sigma(t)
    return alpha, sigma / alpha


def geodiff_loss(model: nn.Module, batch: dict[str, Tensor], schedule: DiscreteVP, cfg: LossConfig) -> Tensor:
    """Chain-rule denoising loss of one batch (GeoDiff-C; released code `get_loss_diffusion`).

    batch: pos (N, 3) reference coordinates and the graph (atom_type, edge_index, edge_type, batch).
    Times are drawn per molecule, antithetically (t and 1 - t in one batch, as the released code does).
    """
    pos0 = center_pos(batch["pos"], batch["batch"])
    n_mol = num_graphs(batch["batch"])
    t = sample_t(schedule, n_mol, "antithetic", device=pos0.device)  # (B,) float64
    _, sigma_ve = ve_scale(schedule, t)
    sig = sigma_ve.to(pos0.dtype)[batch["batch"]]  # (N,)
    noise = center_pos(torch.randn_like(pos0), batch["batch"])
    pos_t = pos0 + sig[:, None] * noise
    out = model(pos_t, sig, *(batch[k] for k in GRAPH_KEYS))
    row = out.edge_index[0]
    d0 = edge_lengths(pos0, out.edge_index)
    r = (out.length - d0) / sig[row]  # (E,)
    is_local = out.edge_type != RADIUS_TYPE
    cutoff = unwrap_model(model).cutoff
    is_global = ~is_local & (out.length <= cutoff)
    n = pos0.shape[0]
    target_l = eq_transform(r[is_local], pos_t, out.edge_index[:, is_local], out.length[is_local], n)
    target_g = eq_transform(r[is_global], pos_t, out.edge_index[:, is_global], out.length[is_global], n)
    err_l = ((out.local - target_l) ** 2).sum(-1)  # (N,)
    err_g = ((out.global_ - target_g) ** 2).sum(-1)
    return (cfg.local_weight * err_l + cfg.global_weight * err_g).mean()


def least_squares_eps(
    g: Tensor,
    pos: Tensor,
    edge_index: Tensor,
    length: Tensor,
    batch: Tensor,
    damping: float,
    weight: Tensor | None = None,
) -> Tensor:
    """Solve (J^T W J + lambda I) eps = g per molecule; J = d distances / d positions over `edge_index`.

    g (N, 3) = J^T W r, edges directed with both directions present, W = diag(weight) (E,) (default 1)
    -> eps (N, 3). lambda = damping * trace(J^T W J)/(3n).
    """
    n_graphs = num_graphs(batch)
    counts = torch.bincount(batch, minlength=n_graphs)
    starts = torch.cumsum(counts, 0) - counts
    local = torch.arange(batch.numel(), device=pos.device) - starts[batch]
    n_max = int(counts.max().item())
    row, col = edge_index
    unit = (pos[row] - pos[col]) / length.clamp(min=1e-6)[:, None]
    outer = unit[:, :, None] * unit[:, None, :]  # (E, 3, 3)
    if weight is not None:
        outer = outer * weight[:, None, None]
    # Each directed edge (i, j) adds u u^T at (i, i) and -u u^T at (i, j): both directions give J^T J.
    hess = pos.new_zeros(n_graphs, n_max, n_max, 3, 3)
    mol = batch[row]
    hess.index_put_((mol, local[row], local[row]), outer, accumulate=True)
    hess.index_put_((mol, local[row], local[col]), -outer, accumulate=True)
    hess = hess.permute(0, 1, 3, 2, 4).reshape(n_graphs, 3 * n_max, 3 * n_max)
    scale = hess.diagonal(dim1=1, dim2=2).sum(-1) / (3 * counts.to(pos.dtype))  # mean stiffness per molecule
    lam = (damping * scale).clamp(min=1e-8)
    eye = torch.eye(3 * n_max, dtype=pos.dtype, device=pos.device)
    rhs = pos.new_zeros(n_graphs, n_max, 3)
    rhs[batch, local] = g
    sol = torch.linalg.solve(hess + lam[:, None, None] * eye, rhs.reshape(n_graphs, 3 * n_max, 1))
    return sol.reshape(n_graphs, n_max, 3)[batch, local]


class GeoDiffEps(nn.Module):
    """The network as core sees it: `forward(x_t, t, **graph) -> eps_hat` (N, 3), t one entry per atom.

    `chain_rule(pos_ve, sigma_ve, ...)` gives the mixed chain-rule vectors of the paper's sampler:
    g = clip(local, clip_local) + w_global [sigma_ve < global_start_sigma] clip(global, clip).
    """

    def __init__(self, net: nn.Module, schedule: DiscreteVP, sampler: GeoDiffSamplerConfig):
        super().__init__()
        self.net, self.schedule, self.cfg = net, schedule, sampler

    def chain_rule(
        self, pos: Tensor, sigma: Tensor, atom_type: Tensor, edge_index: Tensor, edge_type: Tensor, batch: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(g (N, 3), active edge_index, their lengths, their weights) at VE coordinates `pos`, noise `sigma` (N,)."""
        out = self.net(pos, sigma, atom_type, edge_index, edge_type, batch)
        use_global = sigma < self.cfg.global_start_sigma  # (N,)
        g = clip_norm(out.local, self.cfg.clip_local)
        if self.cfg.w_global != 0 and bool(use_global.any()):
            g = g + self.cfg.w_global * use_global[:, None] * clip_norm(out.global_, self.cfg.clip)
        is_local = out.edge_type != RADIUS_TYPE
        global_on = (out.length <= self.net.cutoff) & use_global[out.edge_index[0]] & (self.cfg.w_global != 0)
        active = is_local | global_on
        # Edge weights of the mixture g = J^T W r: 1 on local edges, w_global on radius-only edges.
        weight = torch.where(is_local, 1.0, self.cfg.w_global).to(pos.dtype)[active]
        return g, out.edge_index[:, active], out.length[active], weight

    def forward(
        self, x_t: Tensor, t: Tensor, *, atom_type: Tensor, edge_index: Tensor, edge_type: Tensor, batch: Tensor
    ) -> Tensor:
        alpha, sigma_ve = ve_scale(self.schedule, t)
        pos = x_t / alpha.to(x_t.dtype)[:, None]
        sig = sigma_ve.to(x_t.dtype)
        g, e_index, e_len, e_w = self.chain_rule(pos, sig, atom_type, edge_index, edge_type, batch)
        eps = least_squares_eps(g, pos, e_index, e_len, batch, self.cfg.damping, e_w)
        return eps if self.cfg.eps_scale == 1.0 else self.cfg.eps_scale * eps


def make_denoiser(net: nn.Module, schedule: DiscreteVP, sampler: GeoDiffSamplerConfig, batch: Tensor) -> Denoiser:
    """A core eps-Denoiser with the centre-of-mass projection of x0_hat as its x0 hook."""
    return Denoiser(GeoDiffEps(net, schedule, sampler), schedule, "eps", x0_hooks=[com_projection(batch)])
