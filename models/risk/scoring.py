"""Pure scoring rules of the risk zones: radii, scores, levels, schedules.

SQL measures geometry (what lies inside a zone, how far a source is); these
functions turn the measures into radii, scores and levels, so that every rule
is in one place, testable without a database, and driven by
:class:`~models.risk.settings.RiskSettings`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from models.risk.settings import RiskSettings
from models.wall_schedule import (
    DueCheck,
    WallScheduleRules,
    add_years,
    flag_event,
    next_checks,
)

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
#
# The schedule itself (when a check, an adhesive sampling or an appraisal falls
# due) is :mod:`models.wall_schedule`, shared with the supervision rules and the
# housing page; here it becomes the reasons and the score of a fall zone.


@dataclass(frozen=True)
class WallStatus:
    """Where a curtain wall stands in its check schedule on a given day."""

    #: the earliest periodic check (safety check, adhesive sampling) due
    next_due: dt.date | None
    #: a periodic check is overdue (the day after it fell due)
    overdue: bool
    overdue_years: int
    past_design_life: bool
    #: a typhoon with no appraisal since
    typhoon: bool
    #: another event (fire, burst glass, ...) with no appraisal since
    event_appraisal: bool = False
    #: the wall's building is graded C / D with no appraisal of the wall since
    dangerous_building: bool = False

    @property
    def reasons(self) -> list[str]:
        """Why the wall needs a fall zone (empty: no zone)."""
        out = []
        if self.typhoon:
            out.append("typhoon")
        if self.event_appraisal:
            out.append("event_appraisal")
        if self.dangerous_building:
            out.append("dangerous_building")
        if self.past_design_life:
            out.append("past_design_life")
        if self.overdue:
            out.append("overdue_check")
        return out

    def key(self) -> list:
        """What decides the zone (compared to the stored zone on refresh)."""
        return [self.reasons, self.overdue_years]


def status_from_checks(due: Sequence[DueCheck], accepted_on: dt.date | None,
                       design_life_years: int | None, today: dt.date,
                       schedule: WallScheduleRules | None = None) -> WallStatus:
    """A wall's :class:`WallStatus` from its due checks on ``today``.

    Periodic checks (safety check and, for structural silicone, adhesive
    sampling) decide ``next_due`` and ``overdue`` (the day after the due
    date; ``overdue_years`` counts started years, so a zone does not change
    every day); pending appraisals give the event and dangerous-building
    reasons; the design life gives ``past_design_life``.

    Examples
    --------
    >>> due = [DueCheck("safety_check", dt.date(2026, 1, 1), "")]
    >>> st = status_from_checks(due, dt.date(2020, 1, 1), 25, dt.date(2026, 1, 2))
    >>> st.next_due, st.overdue, st.overdue_years, st.reasons
    (datetime.date(2026, 1, 1), True, 1, ['overdue_check'])
    """
    schedule = schedule or WallScheduleRules()
    periodic = [d.due_on for d in due if d.trigger == "schedule" and d.due_on]
    next_due = min(periodic, default=None)
    late = [d for d in periodic if today > d]
    years = 0
    if late:
        first = min(late)
        years = 1
        while add_years(first, years) < today:
            years += 1
    life = design_life_years or schedule.wall_design_life_years
    past_life = accepted_on is not None and today >= add_years(accepted_on, life)
    events = {c for d in due if d.trigger == "event" for c in d.causes}
    conditions = {c for d in due if d.trigger == "condition" for c in d.causes}
    return WallStatus(
        next_due, bool(late), years, past_life, "typhoon" in events,
        event_appraisal=bool(events - {"typhoon"}),
        dangerous_building="dangerous_building" in conditions,
    )


def wall_status(support_type: str | None, accepted_on: dt.date | None,
                last_checked_on: dt.date | None, design_life_years: int | None,
                typhoon_flag: object, today: dt.date,
                settings: RiskSettings | None = None, *,
                checks: Iterable[tuple[str, dt.date]] = (),
                events: Iterable[tuple[str, dt.date | None]] = (),
                building_grade: str | None = None,
                building_appraised_on: dt.date | None = None,
                schedule: WallScheduleRules | None = None) -> WallStatus:
    """The schedule status of one curtain wall on ``today`` from plain values.

    The layer's values, the typhoon flag of its ``extra`` and, when known,
    its checks and events (the feeds) and its building's grade go through
    :func:`models.wall_schedule.next_checks` (``settings`` is not read: the
    schedule is ``schedule``, default ``WallScheduleRules()``). A wall
    without an acceptance date has no periodic schedule (only events or its
    building's grade give it a zone).

    Examples
    --------
    >>> st = wall_status("frame", dt.date(2020, 1, 1), dt.date(2021, 1, 1), 25,
    ...                  None, dt.date(2026, 1, 2))
    >>> st.next_due, st.overdue, st.overdue_years, st.reasons
    (datetime.date(2026, 1, 1), True, 1, ['overdue_check'])
    >>> wall_status("frame", dt.date(2020, 1, 1), dt.date(2021, 1, 1), 25,
    ...             None, dt.date(2026, 1, 2),
    ...             checks=[("safety_check", dt.date(2025, 12, 1))]).reasons
    []
    """
    schedule = schedule or WallScheduleRules()
    wall_events = list(events)
    flagged = flag_event(typhoon_flag)
    if flagged is not None:
        wall_events.append(flagged)
    wall = {"support_type": support_type, "accepted_on": accepted_on,
            "last_checked_on": last_checked_on,
            "design_life_years": design_life_years,
            "building_grade": building_grade,
            "building_appraised_on": building_appraised_on}
    due = next_checks(wall, checks, wall_events, today, schedule)
    return status_from_checks(due, accepted_on, design_life_years, today, schedule)


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

    Reasons: overdue periodic check (plus a step per started year), past
    design life, dangerous building, typhoon or another event awaiting its
    appraisal.

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
    if status.dangerous_building:
        base = max(base, settings.wall_dangerous_building_score)
    if status.typhoon or status.event_appraisal:
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
