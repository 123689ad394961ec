"""The evaluation panel: multivariate tables other than macrodata, shipped with installed packages or generated
with known dynamics (nothing is downloaded). Defaults are chosen on their validation parts and reported on their
test parts (benchmarks/timeseries.py).

    danish              statsmodels danish_data: Danish money demand, quarterly 1974Q1-1987Q3, 55 x 5 (log money,
                        log income, log prices, bond and deposit rates); trending, random-walk-like
    interest_inflation  statsmodels interest_inflation: German inflation and interest rate, quarterly, 107 x 2
    fertility           statsmodels fertility: births per woman 1960-2011 of six countries, annual, 52 x 6; smooth
    seasonal            gluonts ComplexSeasonalTimeSeries: 4 daily ramping sinusoids with weekly spikes, 160 x 4
    var                 a stationary Gaussian VAR(1), x_t = A x_{t-1} + e_t with 4 coupled series, 160 x 4
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PANEL = ("danish", "interest_inflation", "fertility", "seasonal", "var")
FERTILITY_COUNTRIES = ("Argentina", "Australia", "Austria", "Belgium", "Brazil", "Canada")


def load_panel(name: str) -> pd.DataFrame:
    """One panel table, wide (rows = time steps, columns = features) with a time index."""
    if name not in PANEL:
        raise ValueError(f"name: expected one of {PANEL}, got {name!r}")
    if name == "seasonal":
        return _seasonal()
    if name == "var":
        return var_series()
    import statsmodels.api as sm  # only the demo data needs it

    if name == "danish":
        raw = sm.datasets.danish_data.load_pandas().data.astype(np.float64)
        return raw.set_index(pd.period_range("1974Q1", periods=len(raw), freq="Q"))
    if name == "interest_inflation":
        raw = sm.datasets.interest_inflation.load_pandas().data
        labels = [f"{int(y)}Q{int(q)}" for y, q in zip(raw["year"], raw["quarter"], strict=True)]
        index = pd.PeriodIndex(labels, freq="Q")
        return raw[["Dp", "R"]].astype(np.float64).set_index(index)
    raw = sm.datasets.fertility.load_pandas().data.set_index("Country Name")
    years = [c for c in raw.columns if c.isdigit() and int(c) <= 2011]
    table = raw.loc[list(FERTILITY_COUNTRIES), years].T.astype(np.float64)
    table.index = pd.period_range(years[0], periods=len(years), freq="Y")
    return table


def var_series(n: int = 160, seed: int = 0) -> pd.DataFrame:
    """A stationary Gaussian VAR(1) with 4 coupled series (spectral radius 0.9), unit-variance correlated noise."""
    rng = np.random.default_rng(seed)
    A = np.array([[0.7, 0.2, 0.0, 0.0], [0.0, 0.6, 0.3, 0.0], [0.0, 0.0, 0.8, -0.2], [0.25, 0.0, 0.0, 0.75]])
    chol = np.linalg.cholesky(0.5 * np.eye(4) + 0.5)  # noise correlation 0.5
    x = np.zeros((n + 100, 4))
    for t in range(1, n + 100):  # the first 100 steps are burn-in
        x[t] = A @ x[t - 1] + chol @ rng.normal(size=4)
    return pd.DataFrame(x[100:], columns=[f"x{k}" for k in range(4)], index=pd.RangeIndex(n))


def _seasonal(n: int = 160, k: int = 4) -> pd.DataFrame:
    from gluonts.dataset.artificial import ComplexSeasonalTimeSeries

    data = ComplexSeasonalTimeSeries(
        num_series=k,
        prediction_length=1,
        freq_str="D",
        length_low=n,
        length_high=n + 1,
        is_noise=True,
        percentage_unique_timestamps=0.0,
    ).generate()
    series = [np.asarray(e["target"], dtype=np.float64)[:n] for e in data.test]
    return pd.DataFrame(np.stack(series, 1), columns=[f"s{i}" for i in range(k)], index=pd.RangeIndex(n))
