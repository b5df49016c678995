"""Getis-Ord Gi* hot spots on a regular grid (numpy + scipy).

The grid is regular, so the neighbour sums of Gi* are a 3 x 3 convolution
(queen contiguity, the cell itself included: the "star" variant). That is
exact, vectorised and takes well under a second for the ~270,000 cells of
Guangzhou at 250 m, where a general weights object (esda/libpysal, which
compute the same statistic) would need a sparse matrix and far more memory.
The analytical z-score and normal p-values are used (no permutations).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, stats

_QUEEN = np.ones((3, 3), dtype=np.float64)


def gi_star(values: np.ndarray, mask: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Getis-Ord Gi* z-scores and two-sided p-values on a 2-D grid.

    Binary queen weights including the cell itself; only cells in ``mask``
    (the study area) count as observations and neighbours.

    Parameters
    ----------
    values : 2-D array of cell values
    mask : 2-D bool array, True inside the study area (default: all cells)

    Returns
    -------
    (z, p) arrays of the grid's shape; NaN outside the mask.

    Examples
    --------
    >>> x = np.zeros((7, 7)); x[2:5, 2:5] = 10.0
    >>> z, p = gi_star(x)
    >>> bool(z[3, 3] > 3 and p[3, 3] < 0.01), bool(abs(z[0, 6]) < 1)
    (True, True)
    """
    x = np.asarray(values, dtype=np.float64)
    m = np.ones(x.shape, dtype=bool) if mask is None else np.asarray(mask, bool)
    xm = np.where(m, x, 0.0)
    n = int(m.sum())
    z = np.full(x.shape, np.nan)
    p = np.full(x.shape, np.nan)
    if n < 2:
        return z, p
    mean = xm.sum() / n
    s = np.sqrt(max((xm**2).sum() / n - mean**2, 0.0))
    if s == 0.0:
        z[m] = 0.0
        p[m] = 1.0
        return z, p
    wsum = ndimage.convolve(m.astype(np.float64), _QUEEN, mode="constant", cval=0.0)
    lag = ndimage.convolve(xm, _QUEEN, mode="constant", cval=0.0)
    # binary weights: sum of squared weights == sum of weights
    denom = s * np.sqrt((n * wsum - wsum**2) / (n - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        zz = (lag - mean * wsum) / denom
    zz = np.where(denom > 0, zz, 0.0)
    z[m] = zz[m]
    p[m] = 2.0 * stats.norm.sf(np.abs(zz[m]))
    return z, p


def fdr_threshold(p: np.ndarray, alpha: float) -> float:
    """Benjamini-Hochberg cut-off: the largest p_(k) with p_(k) <= k/m * alpha.

    Returns 0.0 when no test passes (nothing is significant). NaNs are ignored.

    >>> fdr_threshold(np.array([0.001, 0.01, 0.03, 0.5]), 0.05)
    0.03
    >>> fdr_threshold(np.array([0.04, 0.5]), 0.05)
    0.0
    """
    vals = np.sort(p[~np.isnan(p)].ravel())
    m = vals.size
    if m == 0:
        return 0.0
    passed = np.nonzero(vals <= alpha * np.arange(1, m + 1) / m)[0]
    return float(vals[passed[-1]]) if passed.size else 0.0


def classify(z: np.ndarray, p: np.ndarray, alpha: float,
             fdr: bool = False) -> np.ndarray:
    """'hot', 'cold' or 'not_significant' per cell at significance ``alpha``.

    With ``fdr`` the cut-off is the Benjamini-Hochberg threshold over all
    cells (false-discovery-rate control for the many local tests).

    >>> classify(np.array([3.0, -3.0, 0.5]), np.array([0.001, 0.002, 0.6]), 0.05)
    array(['hot', 'cold', 'not_significant'], dtype='<U15')
    """
    out = np.full(z.shape, "not_significant", dtype="<U15")
    pp = np.nan_to_num(p, nan=1.0)
    sig = pp <= fdr_threshold(p, alpha) if fdr else pp < alpha
    out[sig & (z > 0)] = "hot"
    out[sig & (z < 0)] = "cold"
    return out
