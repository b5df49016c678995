"""Compressive-strength assessment of concrete by GB/T 50107-2010.

A lot (检验批) of specimen groups of one strength class is accepted or
rejected by one of three methods, chosen from what is known about it:

- **known sigma0** (标准差已知方案, §5.1.2): the plant's standard deviation
  from the previous period is known and stable; the lot is 3 consecutive
  groups (:func:`known_sigma_lots` counts them from the class's first group,
  so a lot does not shift as an evaluation window slides).
  mean >= f_cu,k + 0.7 sigma0; min >= f_cu,k - 0.7 sigma0 and
  min >= 0.85 f_cu,k (up to C20) or 0.90 f_cu,k (above C20); sigma0 below
  2.5 MPa is taken as 2.5.
- **statistical** (标准差未知方案, §5.1.3), n >= 10 groups:
  mean >= f_cu,k + lambda1 S and min >= lambda2 f_cu,k, S floored at 2.5 MPa;
  lambda1 = 1.15 / 1.05 / 0.95 for 10-14 / 15-19 / >= 20 groups, lambda2 =
  0.90 / 0.85 for 10-14 / >= 15 groups.
- **non-statistical** (非统计方法, §5.2), n < 10: mean >= lambda3 f_cu,k
  (1.15 below C60, 1.10 from C60) and min >= lambda4 f_cu,k (0.95).

Everything here is pure: values in, an :class:`StrengthAssessment` out with
every intermediate value (the evidence of a warning).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

#: Tolerance of the >= comparisons (MPa): the criteria are products of
#: decimals (1.15 * 30 = 34.4999...), a value on the line passes.
EPS = 1e-9

_CLASS = re.compile(r"^\s*C\s*(\d{2,3}(?:\.\d+)?)\s*$", re.IGNORECASE)


def parse_strength_class(code: str | None) -> float | None:
    """The characteristic strength f_cu,k (MPa) of a class code, or None.

    Examples
    --------
    >>> parse_strength_class("C30"), parse_strength_class(" c60 ")
    (30.0, 60.0)
    >>> parse_strength_class("M10") is None, parse_strength_class(None) is None
    (True, True)
    """
    if not code:
        return None
    m = _CLASS.match(code)
    return float(m.group(1)) if m else None


@dataclass(frozen=True)
class StrengthCriteria:
    """The coefficients of GB/T 50107-2010 (defaults: the standard's values).

    ``lambda1`` / ``lambda2`` are ``(from n groups, value)`` steps, ``lambda3``
    ``(from f_cu,k, value)`` steps, ``sigma0_min_factor`` ``(up to f_cu,k,
    value)`` steps with the last one open-ended.
    """

    min_groups_statistical: int = 10
    std_floor_mpa: float = 2.5
    lambda1: tuple[tuple[int, float], ...] = ((10, 1.15), (15, 1.05), (20, 0.95))
    lambda2: tuple[tuple[int, float], ...] = ((10, 0.90), (15, 0.85))
    lambda3: tuple[tuple[float, float], ...] = ((0.0, 1.15), (60.0, 1.10))
    lambda4: float = 0.95
    sigma0_factor: float = 0.7
    sigma0_min_factor: tuple[tuple[float, float], ...] = ((20.0, 0.85), (1e9, 0.90))
    sigma0_lot_size: int = 3


def _step(steps: Sequence[tuple[float, float]], x: float) -> float | None:
    """The value of the last step whose start is <= x (None below the first)."""
    out = None
    for start, value in steps:
        if x + EPS >= start:
            out = value
    return out


def lambda_factors(
    n: int, criteria: StrengthCriteria = StrengthCriteria()
) -> tuple[float, float]:
    """lambda1 and lambda2 of the statistical method for ``n`` groups.

    Examples
    --------
    >>> [lambda_factors(n) for n in (10, 14, 15, 19, 20)]
    [(1.15, 0.9), (1.15, 0.9), (1.05, 0.85), (1.05, 0.85), (0.95, 0.85)]
    """
    l1, l2 = _step(criteria.lambda1, n), _step(criteria.lambda2, n)
    if l1 is None or l2 is None:
        raise ValueError(f"statistical method needs >= 10 groups, got {n}")
    return l1, l2


def lambda3_factor(
    f_cuk: float, criteria: StrengthCriteria = StrengthCriteria()
) -> float:
    """lambda3 of the non-statistical method: 1.15 below C60, 1.10 from C60.

    >>> lambda3_factor(55), lambda3_factor(60)
    (1.15, 1.1)
    """
    value = _step(criteria.lambda3, f_cuk)
    if value is None:
        raise ValueError(f"no lambda3 for f_cu,k = {f_cuk}")
    return value


def sample_std(values: np.ndarray) -> float:
    """S = sqrt((sum f^2 - n mean^2) / (n - 1)), GB/T 50107 eq. 5.1.3-3.

    >>> round(sample_std(np.array([30.0, 32.0, 34.0])), 6)
    2.0
    """
    n = len(values)
    if n < 2:
        return float("nan")
    return float(np.std(values, ddof=1))


@dataclass(frozen=True)
class StrengthAssessment:
    """The outcome of one lot and every value it was reached with."""

    method: str  # "statistical" | "known_sigma" | "non_statistical"
    n: int
    f_cuk: float
    mean: float
    minimum: float
    mean_required: float
    min_required: float
    passed: bool
    mean_ok: bool
    min_ok: bool
    std: float | None = None  # S as computed (statistical)
    std_used: float | None = None  # S or sigma0 after the 2.5 MPa floor
    sigma0: float | None = None  # sigma0 as given (known sigma)
    lambda1: float | None = None
    lambda2: float | None = None
    lambda3: float | None = None
    lambda4: float | None = None
    min_factor: float | None = None  # 0.85 / 0.90 of the known-sigma method

    def evidence(self) -> dict:
        """The assessment as JSON-able evidence, values rounded to 0.01 MPa."""
        out = {}
        for k, v in asdict(self).items():
            if isinstance(v, float):
                v = None if math.isnan(v) else round(v, 4)
            out[k] = v
        return out


def assess_strength(
    values: Sequence[float] | np.ndarray,
    f_cuk: float,
    sigma0: float | None = None,
    criteria: StrengthCriteria = StrengthCriteria(),
) -> StrengthAssessment:
    """Assess one lot of group strengths (MPa) of class ``f_cuk`` (MPa).

    With ``sigma0`` the known-sigma method is used (the lot is normally 3
    groups); without, ``n >= 10`` groups use the statistical method and fewer
    the non-statistical one.

    Parameters
    ----------
    values
        Representative strength of each specimen group, MPa.
    f_cuk
        Characteristic cube strength of the class (C30 -> 30).
    sigma0
        The plant's known standard deviation for this class, MPa (floored at
        2.5), or None.
    criteria
        The coefficients (GB/T 50107-2010 by default).

    Returns
    -------
    StrengthAssessment

    Examples
    --------
    Non-statistical, C30, 3 groups: mean must reach 1.15 * 30 = 34.5 MPa.

    >>> a = assess_strength([34.5, 33.0, 36.0], 30)
    >>> a.method, a.mean_required, a.min_required, a.passed
    ('non_statistical', 34.5, 28.5, True)
    >>> assess_strength([34.4, 33.0, 36.0], 30).passed
    False

    Statistical, 10 groups of C30 with S = 0 (floored to 2.5): mean must reach
    30 + 1.15 * 2.5 = 32.875 MPa.

    >>> a = assess_strength([32.875] * 10, 30)
    >>> a.method, a.std_used, round(a.mean_required, 3), a.passed
    ('statistical', 2.5, 32.875, True)

    Known sigma0 = 3 MPa, C30 lot of 3: mean >= 32.1, min >= max(27.9, 27.0).

    >>> a = assess_strength([33.0, 31.5, 31.8], 30, sigma0=3.0)
    >>> a.method, round(a.mean_required, 2), round(a.min_required, 2), a.passed
    ('known_sigma', 32.1, 27.9, True)
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        raise ValueError("no strength values to assess")
    if f_cuk <= 0:
        raise ValueError(f"f_cu,k must be positive, got {f_cuk}")
    mean, minimum = float(v.mean()), float(v.min())
    c = criteria
    if sigma0 is not None:
        used = max(float(sigma0), c.std_floor_mpa)
        factor = c.sigma0_min_factor[-1][1]
        for upto, value in c.sigma0_min_factor:
            if f_cuk <= upto + EPS:
                factor = value
                break
        mean_req = f_cuk + c.sigma0_factor * used
        min_req = max(f_cuk - c.sigma0_factor * used, factor * f_cuk)
        extra = dict(sigma0=float(sigma0), std_used=used, min_factor=factor)
        method = "known_sigma"
    elif n >= c.min_groups_statistical:
        s = sample_std(v)
        used = max(s, c.std_floor_mpa)
        l1, l2 = lambda_factors(n, c)
        mean_req = f_cuk + l1 * used
        min_req = l2 * f_cuk
        extra = dict(std=s, std_used=used, lambda1=l1, lambda2=l2)
        method = "statistical"
    else:
        l3 = lambda3_factor(f_cuk, c)
        mean_req = l3 * f_cuk
        min_req = c.lambda4 * f_cuk
        extra = dict(
            std=sample_std(v) if n > 1 else None, lambda3=l3, lambda4=c.lambda4
        )
        method = "non_statistical"
    mean_ok = mean + EPS >= mean_req
    min_ok = minimum + EPS >= min_req
    return StrengthAssessment(
        method=method,
        n=n,
        f_cuk=float(f_cuk),
        mean=mean,
        minimum=minimum,
        mean_required=mean_req,
        min_required=min_req,
        passed=mean_ok and min_ok,
        mean_ok=mean_ok,
        min_ok=min_ok,
        **extra,
    )


def known_sigma_lots(
    class_seq: Sequence[int], lot_size: int = 3
) -> dict[int, list[int]]:
    """The known-sigma lots of groups given their place in the class's sequence.

    ``class_seq[i]`` is group ``i``'s place (0, 1, ...) among its plant's
    groups of the class in production order from the first one on record;
    lot ``k`` holds places ``k * lot_size`` to ``(k + 1) * lot_size - 1``, so
    a lot keeps its groups however the groups at hand are windowed. Returns
    lot number -> indexes into ``class_seq``; a lot may be short (the last
    one, or groups missing from the input): the caller decides what a short
    lot means, nothing is dropped.

    >>> known_sigma_lots([3, 4, 5, 6, 7])
    {1: [0, 1, 2], 2: [3, 4]}
    >>> known_sigma_lots([0, 2, 3])
    {0: [0, 1], 1: [2]}
    """
    lots: dict[int, list[int]] = {}
    for i, seq in enumerate(class_seq):
        lots.setdefault(int(seq) // lot_size, []).append(i)
    return dict(sorted(lots.items()))
