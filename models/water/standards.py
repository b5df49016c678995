"""Deterministic classification by the standards.

- Black-odorous grade (黑臭) per reading, sampling point and water body, from the
  2015 urban black-and-odorous water guideline (《城市黑臭水体整治工作指南》).
- Surface-water class per GB 3838-2002 (worst indicator; worse than V is 劣V).

Grades are small integers so that whole series classify with numpy:
``NONE = 0``, ``MILD = 1``, ``SEVERE = 2``. Thresholds come from
:class:`~models.water.settings.WaterSettings`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from models.water.settings import GB3838_2002_LIMITS, WaterSettings

NONE, MILD, SEVERE = 0, 1, 2
GRADE_NAMES = ("none", "mild", "severe")

#: The four indicators of the 2015 guideline.
BLACK_ODOROUS_INDICATORS = ("transparency", "do", "orp", "nh3n")

GB3838_CLASSES = ("I", "II", "III", "IV", "V", "劣V")


def _arr(values: Mapping[str, object], name: str, n: int) -> np.ndarray:
    v = values.get(name)
    if v is None:
        return np.full(n, np.nan)
    return (
        np.asarray(v, dtype=float).reshape(-1) if np.ndim(v) else np.full(n, float(v))
    )


def grade_indicators(
    values: Mapping[str, object], settings: WaterSettings
) -> dict[str, np.ndarray]:
    """Black-odorous grade of each guideline indicator, reading by reading.

    Parameters
    ----------
    values
        Indicator -> value or array of values (``transparency`` cm, ``do`` mg/L,
        ``orp`` mV, ``nh3n`` mg/L, optional ``depth`` cm); NaN or missing means
        not measured (graded NONE).
    settings
        Thresholds.

    Returns
    -------
    dict
        Indicator -> int array of NONE / MILD / SEVERE. In water shallower than
        ``shallow_depth_cm`` the transparency limits scale with the depth, and a
        reading clear to the bottom is NONE for every indicator.

    Examples
    --------
    >>> from models.water.settings import WaterSettings
    >>> g = grade_indicators({"do": [3.0, 1.0, 0.1]}, WaterSettings())
    >>> g["do"].tolist()
    [0, 1, 2]
    """
    n = max((np.size(v) for v in values.values()), default=1)
    s = settings
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore"):
        t = _arr(values, "transparency", n)
        depth = _arr(values, "depth", n)
        shallow = depth < s.shallow_depth_cm
        mild_limit = np.where(
            shallow, s.shallow_transparency_fraction * depth, s.transparency_mild_cm
        )
        severe_limit = mild_limit * (s.transparency_severe_cm / s.transparency_mild_cm)
        out["transparency"] = np.where(
            t < severe_limit, SEVERE, np.where(t < mild_limit, MILD, NONE)
        )
        do = _arr(values, "do", n)
        out["do"] = np.where(
            do < s.do_severe_mg_l, SEVERE, np.where(do < s.do_mild_mg_l, MILD, NONE)
        )
        orp = _arr(values, "orp", n)
        out["orp"] = np.where(
            orp < s.orp_severe_mv, SEVERE, np.where(orp < s.orp_mild_mv, MILD, NONE)
        )
        nh3n = _arr(values, "nh3n", n)
        out["nh3n"] = np.where(
            nh3n > s.nh3n_severe_mg_l,
            SEVERE,
            np.where(nh3n > s.nh3n_mild_mg_l, MILD, NONE),
        )
        if s.shallow_clear_to_bottom:
            clear = shallow & (t >= depth)
            for name in out:
                out[name] = np.where(clear, NONE, out[name])
    return {k: v.astype(np.int8) for k, v in out.items()}


def grade_reading(values: Mapping[str, object], settings: WaterSettings) -> np.ndarray:
    """Grade of each reading: its worst indicator.

    >>> from models.water.settings import WaterSettings
    >>> int(grade_reading({"do": 3.0, "nh3n": 16.0}, WaterSettings())[0])
    2
    """
    grades = grade_indicators(values, settings)
    return np.max(np.vstack(list(grades.values())), axis=0)


@dataclass(frozen=True)
class PointGrade:
    """The grade of one sampling point over its readings."""

    grade: int
    severe_fraction: dict[str, float]
    readings: int
    enough_readings: bool
    reason: str

    @property
    def name(self) -> str:
        return GRADE_NAMES[self.grade]


def grade_point(
    values: Mapping[str, Sequence[float]], settings: WaterSettings
) -> PointGrade:
    """Grade of a sampling point from its series of readings.

    A point is severe when one indicator is severe in at least 60 % of its
    readings, or two or more indicators in at least 30 %; otherwise mild when
    any reading is black-odorous; otherwise none (2015 guideline).

    Examples
    --------
    >>> from models.water.settings import WaterSettings
    >>> grade_point({"do": [0.1, 0.1, 3.0]}, WaterSettings()).name
    'severe'
    >>> grade_point({"do": [0.1, 3.0, 3.0]}, WaterSettings()).name
    'mild'
    """
    grades = grade_indicators(values, settings)
    n = len(next(iter(grades.values())))
    if n == 0:
        return PointGrade(NONE, {}, 0, False, "no readings")
    frac = {k: float(np.mean(v == SEVERE)) for k, v in grades.items()}
    one = [k for k, f in frac.items() if f >= settings.point_one_indicator_fraction]
    two = [k for k, f in frac.items() if f >= settings.point_two_indicator_fraction]
    enough = n >= settings.point_min_readings
    if one:
        return PointGrade(
            SEVERE,
            frac,
            n,
            enough,
            f"{one[0]} severe in {frac[one[0]]:.0%} of readings",
        )
    if len(two) >= 2:
        return PointGrade(
            SEVERE,
            frac,
            n,
            enough,
            f"{', '.join(two)} severe in >= "
            f"{settings.point_two_indicator_fraction:.0%} of readings",
        )
    worst = np.max(np.vstack(list(grades.values())), axis=0)
    if np.any(worst >= MILD):
        return PointGrade(
            MILD,
            frac,
            n,
            enough,
            f"{int(np.sum(worst >= MILD))} of {n} readings black-odorous",
        )
    return PointGrade(NONE, frac, n, enough, "no reading black-odorous")


def severe_fractions_grade(
    severe_fraction: Mapping[str, np.ndarray],
    any_black: np.ndarray,
    settings: WaterSettings,
) -> np.ndarray:
    """Vectorised point grade from per-indicator severe fractions of many points.

    ``severe_fraction`` maps indicator -> fraction of severe readings per point;
    ``any_black`` says whether any reading of the point was mild or worse.
    """
    fr = np.vstack(
        [np.nan_to_num(np.asarray(v, float)) for v in severe_fraction.values()]
    )
    one = np.any(fr >= settings.point_one_indicator_fraction, axis=0)
    two = np.sum(fr >= settings.point_two_indicator_fraction, axis=0) >= 2
    return np.where(one | two, SEVERE, np.where(any_black, MILD, NONE)).astype(np.int8)


@dataclass(frozen=True)
class WaterBodyGrade:
    """The grade of a water body from its sampling points in flow order."""

    grade: int
    severe_fraction: float
    #: (first, last) indices of point runs that make a stretch severe
    severe_stretches: tuple[tuple[int, int], ...]
    reason: str

    @property
    def name(self) -> str:
        return GRADE_NAMES[self.grade]


def grade_water_body(
    point_grades: Sequence[int], settings: WaterSettings
) -> WaterBodyGrade:
    """Grade of a water body from its points' grades, ordered along the flow.

    Three or more consecutive severe points make the stretch between them
    severe; at least 60 % severe points make the whole water body severe;
    otherwise the body takes its worst point's grade, except that isolated
    severe points (no qualifying run) leave it mild (2015 guideline; the
    fallback for isolated severe points is [D]).

    Examples
    --------
    >>> from models.water.settings import WaterSettings
    >>> s = WaterSettings()
    >>> grade_water_body([0, 2, 2, 2, 0, 0, 0], s).severe_stretches
    ((1, 3),)
    >>> grade_water_body([2, 2, 2, 0, 0], s).name
    'severe'
    """
    g = np.asarray(point_grades, dtype=int)
    if g.size == 0:
        return WaterBodyGrade(NONE, 0.0, (), "no sampling points")
    runs: list[tuple[int, int]] = []
    start = None
    for i, v in enumerate([*g.tolist(), NONE]):
        if v == SEVERE and start is None:
            start = i
        elif v != SEVERE and start is not None:
            if i - start >= settings.consecutive_severe_points:
                runs.append((start, i - 1))
            start = None
    frac = float(np.mean(g == SEVERE))
    if frac >= settings.water_body_severe_fraction:
        return WaterBodyGrade(SEVERE, frac, tuple(runs), f"{frac:.0%} of points severe")
    if runs:
        # the stretches are severe; the body as a whole is graded by its
        # worst remaining state: severe stretches make the body at least mild
        return WaterBodyGrade(
            MILD,
            frac,
            tuple(runs),
            f"{len(runs)} severe stretch(es) of >= "
            f"{settings.consecutive_severe_points} consecutive points",
        )
    if np.any(g >= MILD):
        return WaterBodyGrade(MILD, frac, (), "black-odorous points, no severe stretch")
    return WaterBodyGrade(NONE, frac, (), "no black-odorous point")


def gb3838_class(
    values: Mapping[str, object], *, lake: bool = False
) -> tuple[str, dict[str, str]]:
    """GB 3838-2002 class of one sample: the worst indicator's class.

    Parameters
    ----------
    values
        Indicator -> value (``do``, ``codmn``, ``cod``, ``bod5``, ``nh3n``,
        ``tp``, ``ph``); missing or NaN indicators are ignored.
    lake
        Use the lake/reservoir limits for total phosphorus.

    Returns
    -------
    tuple
        Overall class (``"I"`` .. ``"V"`` or ``"劣V"``) and the class per indicator.

    Examples
    --------
    >>> gb3838_class({"do": 6.5, "nh3n": 1.2})
    ('IV', {'do': 'II', 'nh3n': 'IV'})
    >>> gb3838_class({"ph": 9.5})[0]
    '劣V'
    """
    per: dict[str, int] = {}
    for name, value in values.items():
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue
        v = float(value)
        if name == "ph":
            per["ph"] = 0 if 6.0 <= v <= 9.0 else 5
            continue
        key = "tp_lake" if (name == "tp" and lake) else name
        limits = GB3838_2002_LIMITS.get(key)
        if limits is None:
            continue
        if name == "do":
            idx = next((i for i, lim in enumerate(limits) if v >= lim), 5)
        else:
            idx = next((i for i, lim in enumerate(limits) if v <= lim), 5)
        per[name] = idx
    if not per:
        return "I", {}
    return GB3838_CLASSES[max(per.values())], {
        k: GB3838_CLASSES[i] for k, i in per.items()
    }


def gb3838_class_index(values: Mapping[str, np.ndarray]) -> np.ndarray:
    """Vectorised GB 3838 class index (0 = I .. 5 = 劣V) over arrays of readings."""
    n = max((np.size(v) for v in values.values()), default=0)
    worst = np.zeros(n, dtype=np.int8)
    with np.errstate(invalid="ignore"):
        for name, v in values.items():
            arr = np.asarray(v, float)
            if name == "ph":
                idx = np.where(np.isnan(arr) | ((arr >= 6) & (arr <= 9)), 0, 5)
            elif name in GB3838_2002_LIMITS:
                lim = np.asarray(GB3838_2002_LIMITS[name])
                if name == "do":
                    idx = np.sum(arr[:, None] < lim[None, :], axis=1)
                else:
                    idx = np.sum(arr[:, None] > lim[None, :], axis=1)
                idx = np.where(np.isnan(arr), 0, idx)
            else:
                continue
            worst = np.maximum(worst, idx.astype(np.int8))
    return worst
