"""core.metrics: the Frechet distance against closed forms and scipy's matrix square root."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from omnidiffusion.core.metrics import frechet_distance, gaussian_frechet_distance


def test_one_dimensional_and_diagonal_closed_forms():
    # 1-D: W2^2 = (m1 - m2)^2 + (s1 - s2)^2 with standard deviations s
    assert gaussian_frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9.0 + 1.0, rel=1e-12)
    a, b = np.array([1.0, 2.0, 0.25]), np.array([4.0, 0.5, 1.0])
    want = 0.5**2 * 3 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    got = gaussian_frechet_distance(np.zeros(3), np.diag(a), np.full(3, 0.5), np.diag(b))
    assert got == pytest.approx(want, rel=1e-12)
    assert gaussian_frechet_distance(np.ones(3), np.diag(a), np.ones(3), np.diag(a)) == pytest.approx(0.0, abs=1e-12)


def test_general_covariances_match_scipy_sqrtm_and_rotation_invariance():
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=(2, 5, 5))
    s1, s2 = m1 @ m1.T + 0.1 * np.eye(5), m2 @ m2.T
    mu1, mu2 = rng.normal(size=(2, 5))
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    want = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    assert gaussian_frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-9)
    q = np.linalg.qr(rng.normal(size=(5, 5)))[0]  # the distance is invariant under a common rotation
    rotated = gaussian_frechet_distance(q @ mu1, q @ s1 @ q.T, q @ mu2, q @ s2 @ q.T)
    assert rotated == pytest.approx(want, rel=1e-9)
    x, y = rng.normal(size=(200, 5)), rng.normal(loc=1.0, size=(150, 5))
    by_hand = gaussian_frechet_distance(x.mean(0), np.cov(x.T), y.mean(0), np.cov(y.T))
    assert frechet_distance(x, y) == pytest.approx(by_hand, rel=1e-12)


def test_bad_statistics_are_named():
    with pytest.raises(ValueError, match="expected \\(D,\\), \\(D, D\\)"):
        gaussian_frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="finite"):
        gaussian_frechet_distance(np.zeros(2), np.eye(2) * np.nan, np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="at least 2 rows"):
        frechet_distance(np.zeros((1, 3)), np.zeros((4, 3)))
