"""Diffusion-LM's task wiring on core: sqrt schedule, end-to-end loss, clamping hook, rounding.

Li et al. 2022 (Diffusion-LM), sec. 4:
- the forward chain starts one step before the data: q(x_0 | w) = N(EMB(w), sigma_0^2 I) (eq. 2's embedding step),
  with sigma_0 the noise level of the schedule's first table step;
- L_e2e-simple (sec. 4.1) = E_t ||f(x_t, t) - x_0||^2 + ||EMB(w) - f(x_1, 1)||^2 - log p(w | x_0): the x0 term,
  the t = 0 embedding term (the model's x0 at the first step must equal EMB(w)) and the rounding cross-entropy,
  plus the released code's tiny prior term ||sqrt(abar_T) x_0||^2;
- the sqrt schedule abar(s) = 1 - sqrt(s + 1e-4) (sec. 4.2; core's DiscreteVP.sqrt), T = 2000: the `[schedule]`
  table (settings.TextScheduleConfig.build());
- decoding with the clamping trick (sec. 4.2): every x0 estimate snapped to its nearest word vector.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from omnidiffusion.core import Denoiser, DiscreteVP, ForwardProcess
from omnidiffusion.core.denoiser import X0Hook
from omnidiffusion.core.losses import sample_t
from omnidiffusion.core.tensors import mean_flat, randn
from omnidiffusion.core.training import unwrap_model


def e2e_loss(
    model: nn.Module, ids: Tensor, schedule: DiscreteVP, generator: torch.Generator | None = None
) -> tuple[Tensor, dict[str, Tensor]]:
    """L_e2e-simple of Li et al. 2022 (sec. 4.1) for (B, L) ids; returns (scalar loss, its detached terms).

    `model` is called as model(x_t, t) (so a DDP wrapper syncs gradients); its embed/logits give EMB and the
    rounding head.
    """
    net = unwrap_model(model)
    emb = net.embed(ids)  # (B, L, d)
    B = ids.shape[0]
    t0 = schedule.t_of_index(0)
    sigma0 = schedule.sigma(t0).item()
    x0 = emb + sigma0 * randn(emb.shape, generator, device=emb.device, dtype=emb.dtype)
    t = sample_t(schedule, B, generator=generator, device=ids.device)  # (B,) table steps
    noise = randn(x0.shape, generator, device=x0.device, dtype=x0.dtype)
    x_t = ForwardProcess(schedule).q_sample(x0, t, noise=noise)
    pred = model(x_t, t.to(x0.dtype))  # x0 prediction, (B, L, d)
    first = torch.isclose(t, t0.to(t)).to(x0.dtype)  # the t = 0 step of the paper (our first table step)
    mse = (1 - first) * mean_flat((pred - x0) ** 2) + first * mean_flat((pred - emb) ** 2)
    alpha_T = schedule.alpha(torch.ones((), dtype=torch.float64)).item()
    prior = mean_flat((alpha_T * x0) ** 2)
    logits = net.logits(x0)  # (B, L, V)
    nll = nn.functional.cross_entropy(logits.transpose(1, 2), ids, reduction="none").mean(dim=1)
    loss = (mse + prior + nll).mean()
    return loss, {"mse": mse.mean().detach(), "prior": prior.mean().detach(), "rounding": nll.mean().detach()}


def nearest_ids(x: Tensor, weight: Tensor) -> Tensor:
    """Nearest word vector per position by L2: (B, L, d), (V, d) -> (B, L) ids (Diffusion-LM's rounding)."""
    if x.ndim != 3 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"x: expected shape (B, L, {weight.shape[1]}), got {tuple(x.shape)}")
    w = weight.to(x.dtype)
    # ||x - e||^2 = ||x||^2 - 2 x.e + ||e||^2; ||x||^2 is constant per position.
    dist = (w * w).sum(-1)[None, None] - 2.0 * x @ w.T  # (B, L, V)
    return dist.argmin(dim=-1)


def clamp_hook(weight: Tensor) -> X0Hook:
    """The clamping trick as a core x0 hook: x0_hat -> EMB(nearest word) at every step (Li et al. 2022 sec. 4.2)."""
    table = weight.detach()

    def hook(x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        return table.to(x0)[nearest_ids(x0, table)]

    return hook


def make_denoiser(net: nn.Module, schedule: DiscreteVP, clamp: bool = True) -> Denoiser:
    """x0-prediction Denoiser around a DiffusionLMNet, with the clamping hook when `clamp`."""
    hooks = [clamp_hook(unwrap_model(net).embedding.weight)] if clamp else []
    return Denoiser(net, schedule, prediction="x0", x0_hooks=hooks)


def embedding_stats(net: nn.Module) -> dict[str, float]:
    """Mean word-vector norm and mean nearest-neighbour distance (the collapse check of sec. 4.1)."""
    w = unwrap_model(net).embedding.weight.detach()
    d = torch.cdist(w, w)
    d.fill_diagonal_(float("inf"))
    return {"mean_norm": w.norm(dim=1).mean().item(), "mean_nn_dist": d.min(dim=1).values.mean().item()}
