"""Point-cloud metrics in the PointFlow convention (Yang et al. 2019), as luost26 and PVD evaluate.

- Chamfer distance (squared): CD(X, Y) = mean_x min_y |x - y|^2 + mean_y min_x |x - y|^2, via torch.cdist.
- EMD: mean over points of the Euclidean distance under the optimal one-to-one matching of two equal-size clouds,
  solved exactly as an assignment problem (scipy.optimize.linear_sum_assignment). Unit: distance, not squared;
  PVD's EMD is reported on another scale (alexzhou907/PVD#4), so keys name the unit.
- Set metrics from a cross-distance matrix D[r, s] between reference clouds R and generated clouds S:
    MMD   = mean_r min_s D[r, s]                          (minimum matching distance; lower is better)
    COV   = |{argmin_r D[r, s] : s in S}| / |R|           (coverage; higher is better)
    1-NNA = accuracy of the leave-one-out 1-nearest-neighbour classifier on R u S (50% is ideal, Lopez-Paz &
            Oquab 2017); a tie between the two labels counts as a wrong answer.
- `copy_check`: every generated cloud's nearest training cloud by CD, against the training set's own
  nearest-neighbour spacing (a copy sits far closer to a training cloud than training clouds sit to each other).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .model import check_cloud


def _pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.ndim == 2:
        x, y = x.unsqueeze(0), y.unsqueeze(0)
    check_cloud(x, "x")
    check_cloud(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x, y: expected the same number of clouds, got {x.shape[0]} and {y.shape[0]}")
    return x.double(), y.double()


def chamfer(x: Tensor, y: Tensor) -> Tensor:
    """Squared Chamfer distance (PointFlow): (B, N, 3), (B, M, 3) -> (B,) (or () for single (N, 3) clouds)."""
    single = torch.as_tensor(x).ndim == 2
    x, y = _pair(x, y)
    d2 = torch.cdist(x, y).square()  # (B, N, M)
    cd = d2.min(dim=2).values.mean(dim=1) + d2.min(dim=1).values.mean(dim=1)
    return cd[0] if single else cd


def emd(x: Tensor, y: Tensor) -> Tensor:
    """Exact EMD (mean matched Euclidean distance) of equal-size clouds: (B, N, 3), (B, N, 3) -> (B,)."""
    from scipy.optimize import linear_sum_assignment

    single = torch.as_tensor(x).ndim == 2
    x, y = _pair(x, y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x, y: EMD needs clouds of equal size, got {x.shape[1]} and {y.shape[1]} points")
    cost = torch.cdist(x, y).numpy()  # (B, N, N)
    out = torch.empty(x.shape[0], dtype=torch.float64)
    for b in range(x.shape[0]):
        rows, cols = linear_sum_assignment(cost[b])
        out[b] = float(cost[b][rows, cols].mean())
    return out[0] if single else out


def pairwise(a: Tensor, b: Tensor, metric: str = "cd", block: int = 64, progress: bool = False) -> Tensor:
    """All-pairs distances between clouds: (A, N, 3), (B, M, 3) -> (A, B) float64, metric "cd" or "emd"."""
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    check_cloud(a, "a")
    check_cloud(b, "b")
    if metric not in ("cd", "emd"):
        raise ValueError(f"metric: expected 'cd' or 'emd', got {metric!r}")
    out = torch.empty(a.shape[0], b.shape[0], dtype=torch.float64)
    rows = range(a.shape[0])
    if progress:
        from tqdm import tqdm

        rows = tqdm(rows, desc=f"pairwise {metric}", leave=False)
    for i in rows:
        for j in range(0, b.shape[0], block):
            bj = b[j : j + block]
            ai = a[i : i + 1].expand(bj.shape[0], -1, -1)
            out[i, j : j + bj.shape[0]] = chamfer(ai, bj) if metric == "cd" else emd(ai, bj)
    return out


def mmd_cov(d_rs: Tensor) -> tuple[float, float]:
    """(MMD, COV) from the (|R|, |S|) reference-to-generated distance matrix."""
    d_rs = torch.as_tensor(d_rs)
    mmd = float(d_rs.min(dim=1).values.mean())
    cov = float(torch.unique(d_rs.argmin(dim=0)).numel() / d_rs.shape[0])
    return mmd, cov


def one_nna(d_rr: Tensor, d_ss: Tensor, d_rs: Tensor) -> float:
    """Leave-one-out 1-NN accuracy on R u S from the three distance blocks (|R|,|R|), (|S|,|S|), (|R|,|S|)."""
    d_rr, d_ss, d_rs = (torch.as_tensor(m, dtype=torch.float64) for m in (d_rr, d_ss, d_rs))
    nr, ns = d_rs.shape
    inf = torch.tensor(float("inf"), dtype=torch.float64)
    rr = torch.where(torch.eye(nr, dtype=torch.bool), inf, d_rr)
    ss = torch.where(torch.eye(ns, dtype=torch.bool), inf, d_ss)
    r_ok = rr.min(dim=1).values < d_rs.min(dim=1).values  # an R cloud is right when its neighbour is in R
    s_ok = ss.min(dim=1).values < d_rs.min(dim=0).values
    return float((r_ok.sum() + s_ok.sum()) / (nr + ns))


def generation_metrics(
    generated: Tensor, reference: Tensor, metrics: tuple[str, ...] = ("cd", "emd"), progress: bool = False
) -> dict[str, float]:
    """MMD, COV and 1-NNA of `generated` (S, N, 3) against `reference` (R, N, 3) for each metric in `metrics`.

    Keys: mmd_cd (squared distance), cov_cd, 1nna_cd, mmd_emd (distance), cov_emd, 1nna_emd.
    """
    out: dict[str, float] = {}
    for m in metrics:
        d_rs = pairwise(reference, generated, m, progress=progress)
        d_rr = pairwise(reference, reference, m, progress=progress)
        d_ss = pairwise(generated, generated, m, progress=progress)
        mmd, cov = mmd_cov(d_rs)
        out[f"mmd_{m}"], out[f"cov_{m}"], out[f"1nna_{m}"] = mmd, cov, one_nna(d_rr, d_ss, d_rs)
    return out


def copy_check(generated: Tensor, train: Tensor, ratio: float = 0.5) -> dict[str, float]:
    """Is any generated cloud a copy of a training cloud? Nearest-train CD against train-train spacing.

    A generated cloud counts as a copy when its nearest training cloud is closer than `ratio` times the 5th
    percentile of the training clouds' distances to their own nearest other training cloud.
    """
    d_gt = pairwise(generated, train, "cd")  # (S, T)
    d_tt = pairwise(train, train, "cd")
    d_tt.fill_diagonal_(float("inf"))
    nn_gen, nn_train = d_gt.min(dim=1).values.numpy(), d_tt.min(dim=1).values.numpy()
    threshold = ratio * float(np.percentile(nn_train, 5))
    return {
        "copies": int((nn_gen < threshold).sum()),
        "threshold_cd": threshold,
        "nearest_train_cd_min": float(nn_gen.min()),
        "nearest_train_cd_median": float(np.median(nn_gen)),
        "train_train_nn_cd_median": float(np.median(nn_train)),
    }
