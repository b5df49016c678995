"""Pure scoring rules of the risk zones: radii, scores, levels, schedules.

SQL measures geometry (what lies inside a zone, how far a source is); these
functions turn the measures into radii, scores and levels, so that every rule
is in one place, testable without a database, and driven by
:class:`~models.risk.settings.RiskSettings`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from models.risk.settings import RiskSettings

LEVELS = ("yellow", "orange", "red")


def level_for(score: float, orange: float, red: float) -> str:
    """The zone level of a score given the orange and red thresholds.

    Examples
    --------
    >>> level_for(0.5, 1.0, 2.0), level_for(1.0, 1.0, 2.0), level_for(3, 1, 2)
    ('yellow', 'orange', 'red')
    """
    if score >= red:
        return "red"
    if score >= orange:
        return "orange"
    return "yellow"


def building_height(height_m: float | None, floors: int | None,
                    settings: RiskSettings) -> float:
    """Height used for a hazard zone: measured, else floors x floor height.

    Examples
    --------
    >>> s = RiskSettings()
    >>> building_height(24.0, 8, s), building_height(None, 6, s)
    (24.0, 18.0)
    >>> building_height(None, None, s)
    10.0
    """
    if height_m is not None and height_m > 0:
        return float(height_m)
    if floors:
        return floors * settings.floor_height_m
    return settings.default_building_height_m


def building_radius(grade: str, height: float, settings: RiskSettings) -> float:
    """Hazard radius (m) around a C or D building of ``height`` metres.

    ``factor(grade) * height`` clamped to ``[min_radius, max_radius]``.

    Examples
    --------
    >>> s = RiskSettings()
    >>> building_radius("D", 30.0, s), building_radius("C", 30.0, s)
    (30.0, 15.0)
    >>> building_radius("C", 6.0, s)   # floored at the minimum radius
    10.0
    """
    factor = settings.d_radius_factor if grade == "D" else settings.c_radius_factor
    radius = factor * height
    return min(max(radius, settings.building_min_radius_m),
               settings.building_max_radius_m)


def exposure(building_count: int, sensitive_count: int, road_length_m: float,
             settings: RiskSettings) -> float:
    """Exposure added to a zone's base score by what lies inside it.

    Examples
    --------
    >>> round(exposure(10, 1, 1000.0, RiskSettings()), 3)
    1.5
    """
    return (settings.exposure_per_building * building_count
            + settings.exposure_per_sensitive * sensitive_count
            + settings.exposure_per_road_km * road_length_m / 1000.0)


def building_score(grade: str, building_count: int, sensitive_count: int,
                   road_length_m: float, settings: RiskSettings) -> float:
    """Score of a dangerous-building zone: grade weight x (1 + exposure).

    Examples
    --------
    >>> s = RiskSettings()
    >>> building_score("D", 0, 0, 0.0, s), building_score("C", 0, 0, 0.0, s)
    (1.0, 0.6)
    >>> building_score("D", 10, 1, 1000.0, s)
    2.5
    """
    base = settings.d_grade_weight if grade == "D" else settings.c_grade_weight
    return base * (1.0 + exposure(building_count, sensitive_count, road_length_m,
                                  settings))


# -- curtain walls ---------------------------------------------------------------


def add_years(day: dt.date, years: int) -> dt.date:
    """``day`` moved by whole years; 29 February becomes 28 February.

    >>> add_years(dt.date(2020, 2, 29), 1)
    datetime.date(2021, 2, 28)
    """
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


@dataclass(frozen=True)
class WallStatus:
    """Where a curtain wall stands in its check schedule on a given day."""

    next_due: dt.date | None
    overdue: bool
    overdue_years: int
    past_design_life: bool
    typhoon: bool

    @property
    def reasons(self) -> list[str]:
        """Why the wall needs a fall zone (empty: no zone)."""
        out = []
        if self.typhoon:
            out.append("typhoon")
        if self.past_design_life:
            out.append("past_design_life")
        if self.overdue:
            out.append("overdue_check")
        return out

    def key(self) -> list:
        """What decides the zone (compared to the stored zone on refresh)."""
        return [self.reasons, self.overdue_years]


def _typhoon_flag(value: object, last_checked: dt.date | None) -> bool:
    if value is None or value is False:
        return False
    if value is True or (isinstance(value, str) and value.lower() == "true"):
        return True
    try:
        flagged = dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return False
    return last_checked is None or last_checked < flagged


def next_check_due(support_type: str | None, accepted_on: dt.date,
                   last_checked_on: dt.date | None, design_life_years: int | None,
                   settings: RiskSettings) -> dt.date:
    """The date a curtain wall's next periodic safety check falls due.

    JGJ 102-2003 §12.2 and local rules (DOMAIN.md): first check one year after
    acceptance, then every five years; structural-silicone walls sampled at
    ten years then every three; point- or cable-supported walls every three
    years; past the design life every year. Reaching the design life makes a
    check due at once (it is also an appraisal trigger).

    Examples
    --------
    >>> s, acc = RiskSettings(), dt.date(2010, 6, 1)
    >>> next_check_due("frame", acc, None, 25, s)          # first check
    datetime.date(2011, 6, 1)
    >>> next_check_due("frame", acc, dt.date(2011, 6, 1), 25, s)
    datetime.date(2016, 6, 1)
    >>> next_check_due("structural_silicone", acc, dt.date(2016, 6, 1), 25, s)
    datetime.date(2020, 6, 1)
    >>> next_check_due("point", acc, dt.date(2011, 6, 1), 25, s)
    datetime.date(2014, 6, 1)
    """
    life = design_life_years or settings.wall_design_life_years
    end_of_life = add_years(accepted_on, life)
    if last_checked_on is None or last_checked_on < accepted_on:
        return min(add_years(accepted_on, settings.wall_first_check_years),
                   end_of_life)
    if last_checked_on >= end_of_life:
        return add_years(last_checked_on, settings.wall_past_life_interval_years)
    if support_type in ("point", "cable"):
        due = add_years(last_checked_on, settings.wall_point_cable_interval_years)
    elif support_type == "structural_silicone":
        silicone_first = add_years(accepted_on, settings.wall_silicone_first_years)
        if last_checked_on < silicone_first:
            due = min(add_years(last_checked_on, settings.wall_check_interval_years),
                      silicone_first)
        else:
            due = add_years(last_checked_on, settings.wall_silicone_interval_years)
    else:
        due = add_years(last_checked_on, settings.wall_check_interval_years)
    return min(due, end_of_life)


def wall_status(support_type: str | None, accepted_on: dt.date | None,
                last_checked_on: dt.date | None, design_life_years: int | None,
                typhoon_flag: object, today: dt.date,
                settings: RiskSettings) -> WallStatus:
    """The schedule status of one curtain wall on ``today``.

    A check is overdue the day after it falls due. A wall without an
    acceptance date cannot be scheduled (only a typhoon flag gives it a zone).

    Examples
    --------
    >>> s = RiskSettings()
    >>> st = wall_status("frame", dt.date(2020, 1, 1), dt.date(2021, 1, 1), 25,
    ...                  None, dt.date(2026, 1, 2), s)
    >>> st.next_due, st.overdue, st.overdue_years, st.reasons
    (datetime.date(2026, 1, 1), True, 1, ['overdue_check'])
    """
    typhoon = _typhoon_flag(typhoon_flag, last_checked_on)
    if accepted_on is None:
        return WallStatus(None, False, 0, False, typhoon)
    life = design_life_years or settings.wall_design_life_years
    past_life = today >= add_years(accepted_on, life)
    due = next_check_due(support_type, accepted_on, last_checked_on,
                         design_life_years, settings)
    overdue = today > due
    years = 0
    if overdue:
        years = 1
        while add_years(due, years) < today:
            years += 1
    return WallStatus(due, overdue, years, past_life, typhoon)


def wall_radius(height_m: float | None, settings: RiskSettings) -> float:
    """Fall-zone radius (m) around a curtain wall of ``height_m`` metres.

    >>> wall_radius(40.0, RiskSettings()), wall_radius(None, RiskSettings())
    (20.0, 10.0)
    """
    height = height_m if height_m and height_m > 0 else settings.wall_default_height_m
    return max(settings.wall_radius_factor * height, settings.wall_min_radius_m)


def wall_score(status: WallStatus, building_count: int, sensitive_count: int,
               road_length_m: float, settings: RiskSettings) -> float:
    """Score of a curtain-wall fall zone: worst reason x (1 + exposure).

    >>> s = RiskSettings()
    >>> st = WallStatus(None, True, 3, False, False)
    >>> round(wall_score(st, 0, 0, 0.0, s), 3)
    0.8
    """
    base = 0.0
    if status.overdue:
        base = settings.wall_overdue_score + (
            settings.wall_overdue_per_year * status.overdue_years)
    if status.past_design_life:
        base = max(base, settings.wall_past_life_score)
    if status.typhoon:
        base = max(base, settings.wall_typhoon_score)
    return base * (1.0 + exposure(building_count, sensitive_count, road_length_m,
                                  settings))


# -- rivers ----------------------------------------------------------------------


def source_pressure(distance_m: float, size: float, kind_weight: float,
                    settings: RiskSettings) -> float:
    """Pressure of one source on a river segment ``distance_m`` metres away.

    ``kind_weight * size * max(0, 1 - distance / river_distance_m)``.

    Examples
    --------
    >>> s = RiskSettings()      # 500 m search distance
    >>> source_pressure(100.0, 1.0, 2.0, s)
    1.6
    >>> source_pressure(600.0, 1.0, 2.0, s)
    0.0
    """
    decay = max(0.0, 1.0 - distance_m / settings.river_distance_m)
    return kind_weight * size * decay
