"""Distribution metrics every app can use on its own feature space.

    frechet_distance(x, y)                        # Gaussians fitted to feature sets (N, D) and (M, D)
    gaussian_frechet_distance(mu1, s1, mu2, s2)   # from stored statistics (e.g. FID reference files)

The Frechet (2-Wasserstein) distance between N(mu1, S1) and N(mu2, S2) is
||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2}) (Dowson & Landau 1982; FID, Heusel et al. 2017).
tr((S1 S2)^{1/2}) is computed from the eigenvalues of S1^{1/2} S2 S1^{1/2}, a symmetric PSD matrix with the
eigenvalues of S1 S2, so no complex square root (scipy.linalg.sqrtm) and no imaginary parts are involved.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor


def _sqrtm_trace(a: np.ndarray, b: np.ndarray) -> float:
    """tr((A B)^{1/2}) for symmetric PSD A, B: the eigenvalues of A^{1/2} B A^{1/2} (PSD) are those of A B."""
    wa, va = np.linalg.eigh(a)
    ra = (va * np.sqrt(np.clip(wa, 0, None))) @ va.T
    w = np.linalg.eigvalsh(ra @ b @ ra)
    return float(np.sqrt(np.clip(w, 0, None)).sum())


def gaussian_frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2): means (D,), covariances (D, D)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.ndim != 1 or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"mu1, sigma1, mu2, sigma2: expected (D,), (D, D), (D,), (D, D), got {mu1.shape}, {s1.shape}, "
            f"{mu2.shape}, {s2.shape}"
        )
    if not all(np.isfinite(a).all() for a in (mu1, mu2, s1, s2)):
        raise ValueError("mu1, sigma1, mu2, sigma2: expected finite statistics, got NaN or inf")
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * _sqrtm_trace(s1, s2))


def frechet_distance(x: Tensor | np.ndarray, y: Tensor | np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature sets x (N, D) and y (M, D) (covariance ddof 1)."""
    x = np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x, dtype=np.float64)
    y = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x, y: expected (N, D) and (M, D) feature arrays, got {x.shape} and {y.shape}")
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"x, y: expected at least 2 rows each, got {x.shape[0]} and {y.shape[0]}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x, y: expected finite features, got NaN or inf")
    return gaussian_frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))


__all__ = ["frechet_distance", "gaussian_frechet_distance"]
