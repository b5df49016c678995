"""Buildings supervision: structural monitoring and curtain-wall schedules.

Rules (DOMAIN.md §2), thresholds in :class:`BuildingRules` (environment
variables ``GIS_RULES_BUILDINGS_*``):

* masonry tilt > 0.7 % (JGJ 125-99 [S]); overall tilt > 1 % with cracking
  (JGJ 125-2016 [R]);
* crack widths by type, on masonry buildings only (JGJ 125-99 masonry
  members [S]): vertical compression > 2 mm and longer than half the storey
  height, at a beam bearing > 1 mm, horizontal eccentric > 0.5 mm; a
  settlement crack > 10 mm or several > 5 mm (JGJ 125-2016 [R], any
  structure);
* settlement faster than 4 mm/month for two consecutive months without
  converging, faster than 2 mm/day next to underground works (JGJ 125-2016
  [R]); rates are least-squares slopes, not last minus first: a month with
  enough readings is fitted on its own, a sparsely surveyed month (monthly or
  fortnightly surveys) together with the last reading before it;
* a trend warning [D]: a reading whose recent rate carries it over its limit
  within a few weeks, or a settlement already faster than the monthly limit
  before the two-month rule fires;
* the curtain-wall schedule of :mod:`models.wall_schedule` (JGJ 102-2003
  §12.2 and local regulations [S]; the same schedule the risk fall zones and
  the housing page use): first check a year after acceptance, then every
  five years (point / cable supported: every three; past the design life:
  every year); structural silicone sampled at ten years then every three; an
  appraisal after a typhoon, lightning, fire, explosion, deformation, falling
  parts or burst glass, and once the wall reaches its design life or its
  building is found dangerous (grade C / D).

Levels are design defaults [D]: a monitoring limit exceeded is orange, by
``red_ratio`` times the limit red, a trend yellow; a check falling due within
``due_soon_days`` is yellow, overdue orange, overdue by more than
``overdue_red_days`` (or an event appraisal missing) red.

Periods and times: a condition that holds at the evaluation (a reading over
its limit now, a check overdue, an appraisal missing) is observed at the
evaluation time, under a period that stays the same from one day to the next
(``""`` for a reading over its limit, the due date for a check); a rate is
observed at its last reading, under its month.

The pure functions (rates, schedules, levels) take plain values; the
evaluator :func:`evaluate` reads each feed and layer in one query and
applies them.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from sqlalchemy import Connection, text

from models.supervision.rules import (
    LEVELS,
    Finding,
    Rule,
    register_evaluator,
    register_rule,
)
from models.wall_schedule import (
    DueCheck,
    WallScheduleRules,
    add_years,
    next_checks,
    scheduled_walls,
)

__all__ = [
    "BuildingRules",
    "DueCheck",
    "MonthRate",
    "ReadingSeries",
    "add_years",
    "demo_records",
    "evaluate",
    "exceedance_level",
    "hazard_list",
    "least_squares_line",
    "least_squares_slope",
    "next_checks",
    "reading_series",
    "schedule_level",
    "settlement_rates",
    "sustained_rate",
    "window_rate",
]

log = logging.getLogger("gis_server.supervision.buildings")

#: Zone the month windows and the as-of day are counted in.
TZ = ZoneInfo("Asia/Shanghai")
#: Average month length: rates per day times this are rates per month.
DAYS_PER_MONTH = 365.25 / 12
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

MASONRY_99 = "JGJ 125-99 (危险房屋鉴定标准, masonry members)"
JGJ125_2016 = "JGJ 125-2016 (危险房屋鉴定标准)"
JGJ102 = "JGJ 102-2003 §12.2 and Guangzhou / Guangdong curtain-wall regulations"
DESIGN = "[D] no standard: design default."


class BuildingRules(WallScheduleRules):
    """Thresholds and schedule of the buildings rules, one setting each.

    Each description starts with its confidence mark: [S] seen in a published
    source, [R] commonly cited value, [D] design default. The curtain-wall
    schedule fields come from :class:`~models.wall_schedule.WallScheduleRules`
    (the one schedule the risk zones and the housing page read too).
    """

    model_config = SettingsConfigDict(
        env_prefix="GIS_RULES_BUILDINGS_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
    )

    # -- tilt -------------------------------------------------------------------
    masonry_tilt_max_pct: float = Field(
        0.7, gt=0, description=f"[S] {MASONRY_99}: wall or column tilt > 0.7 %."
    )
    masonry_structures: tuple[str, ...] = Field(
        ("masonry", "brick_concrete"),
        description="[D] `structure` values of the buildings layer read as "
        "masonry (砌体 / 砖混): the JGJ 125-99 tilt and crack limits apply to "
        "these buildings only.",
    )
    overall_tilt_max_pct: float = Field(
        1.0, gt=0, description=f"[R] {JGJ125_2016}: overall tilt > 1 % with cracking."
    )
    cracking_min_width_mm: float = Field(
        0.0,
        ge=0,
        description="[D] A building counts as cracked (overall-tilt rule) when a "
        "crack reading is wider than this.",
    )
    # -- cracks -----------------------------------------------------------------
    crack_vertical_compression_max_mm: float = Field(
        2.0,
        gt=0,
        description=f"[S] {MASONRY_99}: vertical compression crack > 2 mm wide "
        "(and longer than `crack_vertical_compression_length_ratio` of the "
        "storey height).",
    )
    crack_vertical_compression_length_ratio: float = Field(
        0.5,
        gt=0,
        description=f"[S] {MASONRY_99}: ... and longer than half the storey "
        "height (a reading's `crack_length_m` over its `storey_height_m`).",
    )
    crack_length_unknown_level: str = Field(
        "yellow",
        pattern="^(yellow|orange|red)$",
        description="[D] Level of a vertical compression crack over the width "
        "limit whose reading lacks the crack length or the storey height: the "
        "rule cannot be decided, so a lower level asks for the measurement.",
    )
    crack_beam_bearing_max_mm: float = Field(
        1.0, gt=0, description=f"[S] {MASONRY_99}: crack at a beam bearing > 1 mm."
    )
    crack_horizontal_eccentric_max_mm: float = Field(
        0.5,
        gt=0,
        description=f"[S] {MASONRY_99}: horizontal eccentric-compression crack "
        "> 0.5 mm.",
    )
    settlement_crack_max_mm: float = Field(
        10.0, gt=0, description=f"[R] {JGJ125_2016}: a settlement crack > 10 mm."
    )
    settlement_crack_several_mm: float = Field(
        5.0, gt=0, description=f"[R] {JGJ125_2016}: several settlement cracks > 5 mm."
    )
    settlement_crack_several_count: int = Field(
        2,
        ge=1,
        description="[D] How many cracks are 'several' (JGJ 125-2016 gives no "
        "number): two or more survey points.",
    )
    # -- settlement rate -----------------------------------------------------------
    settlement_rate_max_mm_month: float = Field(
        4.0,
        gt=0,
        description=f"[R] {JGJ125_2016}: settlement > 4 mm/month for two "
        "consecutive months without converging.",
    )
    settlement_rate_months: int = Field(
        2, ge=1, description=f"[R] {JGJ125_2016}: consecutive months over the rate."
    )
    convergence_ratio: float = Field(
        0.8,
        gt=0,
        description="[D] A month whose rate fell below this share of the month "
        "before is converging (JGJ 125-2016 gives no measure).",
    )
    underground_rate_max_mm_day: float = Field(
        2.0,
        gt=0,
        description=f"[R] {JGJ125_2016}: settlement > 2 mm/day next to "
        "underground works.",
    )
    underground_window_days: int = Field(
        7,
        ge=1,
        description="[D] Days over which the daily settlement rate next to "
        "underground works is fitted.",
    )
    min_points_per_window: int = Field(
        3,
        ge=2,
        description="[D] Fewest readings a rate over a window of days is "
        "fitted from (the trend and underground-works rates).",
    )
    month_dense_points: int = Field(
        3,
        ge=2,
        description="[D] A calendar month with at least this many settlement "
        "readings is fitted on its own readings; a month with fewer (monthly "
        "or fortnightly surveys) is fitted together with the last reading "
        "before it (two points at least).",
    )
    month_anchor_max_days: int = Field(
        45,
        ge=1,
        description="[D] The reading before a sparse month anchors its rate only "
        "if it is at most this many days before the month's first reading.",
    )
    rate_lookback_months: int = Field(
        3,
        ge=1,
        description="[D] A sustained settlement rate is reported while its last "
        "month is within this many months of the as-of month.",
    )
    # -- levels and trends ------------------------------------------------------------
    red_ratio: float = Field(
        1.5,
        ge=1,
        description="[D] A monitoring limit exceeded is orange; by this many "
        "times the limit, red.",
    )
    reading_max_age_days: int = Field(
        365,
        ge=1,
        description="[D] Readings older than this are not evaluated (a sensor "
        "that stopped reporting is not a current condition).",
    )
    trend_window_days: int = Field(
        30,
        ge=2,
        description="[D] Trend rule: days of readings the recent rate is fitted on.",
    )
    trend_horizon_days: int = Field(
        30,
        ge=1,
        description="[D] Trend rule: warn (yellow) when the fitted rate carries "
        "a reading over its limit within this many days.",
    )
    # -- curtain walls (the schedule itself: WallScheduleRules, inherited) -----------
    undated_appraisal_level: str = Field(
        "orange",
        pattern="^(yellow|orange|red)$",
        description="[D] Level of a missing appraisal whose trigger has no date "
        "(a C / D building without its appraisal date, a typhoon flag `true`): "
        "it is due, by an unknown time.",
    )
    due_soon_days: int = Field(
        60,
        ge=0,
        description="[D] A check falling due within this many days is a yellow "
        "finding.",
    )
    overdue_red_days: int = Field(
        365,
        ge=0,
        description="[D] A check overdue by more than this many days is red "
        "(orange before).",
    )
    responsible_template: str = Field(
        "{district} 住建",
        description="[D] Party a finding is dispatched to: the district housing "
        "office of the building (`{district}` is the district name).",
    )


# -- rules ---------------------------------------------------------------------

DOMAIN = "buildings"
LEVEL_NOTE = " Levels [D]: over the limit orange, at red_ratio x the limit red."
SCHEDULE_NOTE = (
    " Levels [D]: due within due_soon_days yellow, overdue orange, overdue by "
    "more than overdue_red_days red."
)

R_MASONRY_TILT = register_rule(
    Rule(
        id="buildings.masonry_tilt",
        domain=DOMAIN,
        title="Masonry wall or column tilt over the limit",
        title_zh="砌体墙柱倾斜超限",
        source="JGJ 125-99",
        confidence="S",
        subject_layer="buildings",
        description="Latest tilt reading of a masonry building above "
        "masonry_tilt_max_pct." + LEVEL_NOTE,
        settings=("masonry_tilt_max_pct", "masonry_structures", "red_ratio"),
    )
)
R_OVERALL_TILT = register_rule(
    Rule(
        id="buildings.overall_tilt",
        domain=DOMAIN,
        title="Overall tilt over the limit with cracking",
        title_zh="整体倾斜超限并伴有裂缝",
        source="JGJ 125-2016",
        confidence="R",
        subject_layer="buildings",
        description="Latest tilt reading above overall_tilt_max_pct while a "
        "crack reading of the building is wider than cracking_min_width_mm."
        + LEVEL_NOTE,
        settings=("overall_tilt_max_pct", "cracking_min_width_mm", "red_ratio"),
    )
)
R_MASONRY_CRACK = register_rule(
    Rule(
        id="buildings.masonry_crack",
        domain=DOMAIN,
        title="Crack wider than the limit of its type",
        title_zh="裂缝宽度超限",
        source="JGJ 125-99",
        confidence="S",
        subject_layer="buildings",
        description="Masonry buildings (masonry_structures): latest width of a "
        "vertical compression, beam-bearing or horizontal eccentric crack above "
        "its limit; a vertical compression crack also longer than "
        "crack_vertical_compression_length_ratio of the storey height (a "
        "reading without the length or the storey height: "
        "crack_length_unknown_level, asking for them). Period: none (the "
        "condition holds now)." + LEVEL_NOTE,
        settings=(
            "masonry_structures",
            "crack_vertical_compression_max_mm",
            "crack_vertical_compression_length_ratio",
            "crack_length_unknown_level",
            "crack_beam_bearing_max_mm",
            "crack_horizontal_eccentric_max_mm",
            "red_ratio",
        ),
    )
)
R_SETTLEMENT_CRACK = register_rule(
    Rule(
        id="buildings.settlement_crack",
        domain=DOMAIN,
        title="Settlement crack over the limit, or several wide ones",
        title_zh="沉降裂缝超限",
        source="JGJ 125-2016",
        confidence="R",
        subject_layer="buildings",
        description="A settlement crack wider than settlement_crack_max_mm, or "
        "settlement_crack_several_count cracks wider than "
        "settlement_crack_several_mm (orange)." + LEVEL_NOTE,
        settings=(
            "settlement_crack_max_mm",
            "settlement_crack_several_mm",
            "settlement_crack_several_count",
            "red_ratio",
        ),
    )
)
R_SETTLEMENT_RATE = register_rule(
    Rule(
        id="buildings.settlement_rate",
        domain=DOMAIN,
        title="Settlement rate over the limit for consecutive months",
        title_zh="沉降速率连续超限且无收敛",
        source="JGJ 125-2016",
        confidence="R",
        subject_layer="buildings",
        description="Least-squares settlement rate of each calendar month above "
        "settlement_rate_max_mm_month for settlement_rate_months consecutive "
        "months, no month falling below convergence_ratio of the one before. "
        "A month with month_dense_points readings is fitted on its own; a "
        "sparser one together with the last reading before it (at most "
        "month_anchor_max_days earlier). Period: the last month." + LEVEL_NOTE,
        settings=(
            "settlement_rate_max_mm_month",
            "settlement_rate_months",
            "convergence_ratio",
            "month_dense_points",
            "month_anchor_max_days",
            "rate_lookback_months",
            "red_ratio",
        ),
    )
)
R_UNDERGROUND_RATE = register_rule(
    Rule(
        id="buildings.underground_settlement_rate",
        domain=DOMAIN,
        title="Daily settlement rate over the limit next to underground works",
        title_zh="临近地下工程沉降速率超限",
        source="JGJ 125-2016",
        confidence="R",
        subject_layer="buildings",
        description="Least-squares settlement rate over the last "
        "underground_window_days above underground_rate_max_mm_day at a point "
        "flagged next to underground works. Period: month of the last reading."
        + LEVEL_NOTE,
        settings=(
            "underground_rate_max_mm_day",
            "underground_window_days",
            "min_points_per_window",
            "red_ratio",
        ),
    )
)
R_TREND = register_rule(
    Rule(
        id="buildings.reading_trend",
        domain=DOMAIN,
        title="Reading heading over its limit",
        title_zh="监测数据趋势预警",
        source="design default",
        confidence="D",
        subject_layer="buildings",
        description="Yellow: the least-squares rate of the last "
        "trend_window_days carries a tilt or crack reading over its limit "
        "within trend_horizon_days, or settlement is already faster than "
        "settlement_rate_max_mm_month (before the two-month rule fires).",
        settings=("trend_window_days", "trend_horizon_days", "min_points_per_window"),
    )
)
R_WALL_CHECK = register_rule(
    Rule(
        id="buildings.wall_safety_check",
        domain=DOMAIN,
        title="Curtain-wall safety check due or overdue",
        title_zh="玻璃幕墙定期安全检查到期",
        source="JGJ 102-2003 §12.2; local regulations",
        confidence="S",
        subject_layer="curtain_walls",
        description="First check a year after acceptance, then every five years "
        "(point / cable supported every three, past the design life every "
        "year), counted from the latest of the layer's last_checked_on and the "
        "checks feed. Period: the due date." + SCHEDULE_NOTE,
        settings=(
            "wall_first_check_years",
            "wall_check_interval_years",
            "wall_point_cable_interval_years",
            "wall_past_life_interval_years",
            "wall_design_life_years",
            "appraisal_counts_as_check",
            "due_soon_days",
            "overdue_red_days",
        ),
    )
)
R_WALL_ADHESIVE = register_rule(
    Rule(
        id="buildings.wall_adhesive_sampling",
        domain=DOMAIN,
        title="Structural-silicone adhesive sampling due or overdue",
        title_zh="结构胶抽样检测到期",
        source="JGJ 102-2003 §12.2; local regulations",
        confidence="S",
        subject_layer="curtain_walls",
        description="Structural-silicone walls: adhesive sampled ten years after "
        "acceptance, then every three years. Period: the due date." + SCHEDULE_NOTE,
        settings=(
            "wall_silicone_first_years",
            "wall_silicone_interval_years",
            "due_soon_days",
            "overdue_red_days",
        ),
    )
)
R_WALL_APPRAISAL = register_rule(
    Rule(
        id="buildings.wall_event_appraisal",
        domain=DOMAIN,
        title="Curtain-wall appraisal missing after an event",
        title_zh="玻璃幕墙异常事件后未做安全鉴定",
        source="JGJ 102-2003 §12.2; local regulations",
        confidence="S",
        subject_layer="curtain_walls",
        description="A typhoon, lightning, fire, explosion, deformation, falling "
        "parts or burst glass event (the events feed, or the layer's typhoon "
        "flag wall_typhoon_key) with no appraisal on or after it. Period: the "
        "first pending event's due date. Levels [D]: red once "
        "event_appraisal_grace_days have passed, yellow before; an event of "
        "unknown date (a flag `true`) undated_appraisal_level.",
        settings=(
            "event_appraisal_grace_days",
            "wall_typhoon_key",
            "undated_appraisal_level",
        ),
    )
)

R_WALL_CONDITION = register_rule(
    Rule(
        id="buildings.wall_condition_appraisal",
        domain=DOMAIN,
        title="Curtain-wall appraisal missing past the design life or on a "
        "dangerous building",
        title_zh="玻璃幕墙超设计使用年限或主体结构危险未做安全鉴定",
        source="JGJ 102-2003 §12.2; local regulations",
        confidence="S",
        subject_layer="curtain_walls",
        description="The wall reached its design life (design_life_years, "
        "default wall_design_life_years), or its building was appraised grade "
        "C or D (wall_dangerous_grades), with no appraisal since. Period: the "
        "date of the condition; a grade without its appraisal date has the "
        "stable period 'undated:dangerous_building' and the level "
        "undated_appraisal_level (any appraisal of the wall on record meets "
        "it)." + SCHEDULE_NOTE,
        settings=(
            "wall_design_life_years",
            "wall_dangerous_grades",
            "undated_appraisal_level",
            "due_soon_days",
            "overdue_red_days",
        ),
    )
)

#: The reading kind each monitoring rule is about (the trend rule: per trend).
RULE_KIND = {
    R_MASONRY_TILT.id: "tilt_pct",
    R_OVERALL_TILT.id: "tilt_pct",
    R_MASONRY_CRACK.id: "crack_width_mm",
    R_SETTLEMENT_CRACK.id: "crack_width_mm",
    R_SETTLEMENT_RATE.id: "settlement_mm",
    R_UNDERGROUND_RATE.id: "settlement_mm",
}

#: (kind, trigger) of a due check -> the rule its finding belongs to
WALL_RULES = {
    ("safety_check", "schedule"): R_WALL_CHECK.id,
    ("adhesive_sampling", "schedule"): R_WALL_ADHESIVE.id,
    ("appraisal", "event"): R_WALL_APPRAISAL.id,
    ("appraisal", "condition"): R_WALL_CONDITION.id,
}


# -- pure functions -------------------------------------------------------------


def _days(times: Sequence[dt.datetime]) -> list[float]:
    return [(t - _EPOCH).total_seconds() / 86400.0 for t in times]


def least_squares_slope(days: Sequence[float], values: Sequence[float]) -> float | None:
    """Slope of the least-squares line through ``(days, values)``, per day.

    ``None`` with fewer than two distinct times.

    Examples
    --------
    >>> least_squares_slope([0, 1, 2, 3], [0.0, 1.0, 2.0, 3.0])
    1.0
    >>> round(least_squares_slope([0, 10, 20, 30], [0.0, 1.0, 2.0, 6.0]), 3)
    0.19
    >>> least_squares_slope([5, 5], [1.0, 2.0]) is None
    True
    """
    # plain sums: the windows are short, and numpy's per-call cost dominates
    n = len(days)
    if n < 2:
        return None
    mx = sum(days) / n
    my = sum(values) / n
    sxx = sum((x - mx) ** 2 for x in days)
    if sxx <= 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(days, values, strict=True)) / sxx


@dataclass(frozen=True)
class MonthRate:
    """A least-squares settlement rate of one calendar month."""

    month: str  # "2026-11"
    rate_mm_month: float
    points: int  # readings the line was fitted on (the anchor included)
    first: dt.datetime
    last: dt.datetime
    #: the month had fewer than ``dense_points`` readings: the fit includes
    #: the last reading before it (``first``)
    anchored: bool = False


def least_squares_line(
    days: Sequence[float], values: Sequence[float]
) -> tuple[float, float] | None:
    """Slope (per day) and intercept of the least-squares line, or None.

    Examples
    --------
    >>> least_squares_line([0, 1, 2], [1.0, 3.0, 5.0])
    (2.0, 1.0)
    """
    slope = least_squares_slope(days, values)
    if slope is None:
        return None
    return slope, sum(values) / len(values) - slope * sum(days) / len(days)


def settlement_rates(
    times: Sequence[dt.datetime],
    values: Sequence[float],
    *,
    dense_points: int = 3,
    anchor_max_days: float = 45,
    tz: dt.tzinfo = TZ,
) -> list[MonthRate]:
    """Settlement rate of each calendar month, fitted by least squares.

    A month (in ``tz``) with at least ``dense_points`` readings is fitted on
    its own readings by a straight line. A month with fewer (a survey every
    month or every two weeks) is fitted together with the last reading
    before it, when that one is at most ``anchor_max_days`` before the
    month's first reading: two points at least, so a monthly survey gives
    each month the slope from the survey before. The slope per day times the
    average month length (30.44 days) is the month's rate in mm/month. A
    least-squares slope uses every reading, so one noisy first or last
    reading moves it far less than ``last - first`` does.

    Parameters
    ----------
    times
        Times of the readings (timezone-aware), in any order.
    values
        Cumulative settlement (mm, downwards positive) at those times.
    dense_points
        Readings from which a month is fitted on its own.
    anchor_max_days
        Longest gap between a sparse month and the reading anchoring it.
    tz
        Zone the calendar months are counted in.

    Returns
    -------
    list of MonthRate
        One per month with a rate, oldest first.

    Examples
    --------
    >>> t = [dt.datetime(2026, 10, d, tzinfo=TZ) for d in (1, 11, 21, 31)]
    >>> [round(r.rate_mm_month, 2) for r in settlement_rates(t, [0, 1, 2, 3])]
    [3.04]

    Two readings in November: fitted with the one of 31 October.

    >>> t += [dt.datetime(2026, 11, d, tzinfo=TZ) for d in (5, 15)]
    >>> [(r.month, r.points, r.anchored)
    ...  for r in settlement_rates(t, [0, 1, 2, 3, 4, 5])]
    [('2026-10', 4, False), ('2026-11', 3, True)]

    A monthly survey: each month's rate is the slope from the survey before.

    >>> t = [dt.datetime(2026, m, 15, tzinfo=TZ) for m in (8, 9, 10)]
    >>> [(r.month, round(r.rate_mm_month, 2))
    ...  for r in settlement_rates(t, [0.0, 4.2, 8.3])]
    [('2026-09', 4.12), ('2026-10', 4.16)]
    """
    order = sorted(range(len(times)), key=lambda i: times[i])
    ts = [times[i] for i in order]
    months = [t.astimezone(tz).strftime("%Y-%m") for t in ts]
    return _month_rates(
        ts,
        _days(ts),
        months,
        [float(values[i]) for i in order],
        dense_points,
        anchor_max_days,
    )


def _month_rates(
    times: Sequence[dt.datetime],
    days: Sequence[float],
    months: Sequence[str],
    values: Sequence[float],
    dense_points: int,
    anchor_max_days: float,
) -> list[MonthRate]:
    """:func:`settlement_rates` on readings sorted by time, days and months given."""
    out = []
    start = 0
    for end in range(1, len(months) + 1):
        if end < len(months) and months[end] == months[start]:
            continue
        first = start
        if (
            end - start < dense_points
            and start > 0
            and days[start] - days[start - 1] <= anchor_max_days
        ):
            first = start - 1  # anchored on the reading before the month
        if end - first >= 2:
            slope = least_squares_slope(days[first:end], values[first:end])
            if slope is not None:
                out.append(
                    MonthRate(
                        months[start],
                        slope * DAYS_PER_MONTH,
                        end - first,
                        times[first],
                        times[end - 1],
                        first < start,
                    )
                )
        start = end
    return out


def _next_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


def sustained_rate(
    rates: Sequence[MonthRate],
    limit: float,
    months: int = 2,
    convergence_ratio: float = 0.8,
) -> list[MonthRate] | None:
    """The latest run of ``months`` consecutive months over ``limit``.

    A run breaks at a month at or below the limit, at a gap (a month without a
    rate) and where the rate converges: falls below ``convergence_ratio``
    times the month before.

    Examples
    --------
    >>> def m(month, rate):
    ...     return MonthRate(month, rate, 4, None, None)
    >>> run = sustained_rate([m("2026-09", 4.5), m("2026-10", 4.6)], 4.0)
    >>> [r.month for r in run]
    ['2026-09', '2026-10']
    >>> sustained_rate([m("2026-09", 3.9), m("2026-10", 4.6)], 4.0) is None
    True
    >>> sustained_rate([m("2026-09", 6.0), m("2026-10", 4.1)], 4.0) is None
    True
    >>> sustained_rate([m("2026-08", 5.0), m("2026-10", 5.0)], 4.0) is None
    True
    """
    best: list[MonthRate] | None = None
    run: list[MonthRate] = []
    for r in rates:
        if r.rate_mm_month <= limit:
            run = []
            continue
        prev = run[-1] if run else None
        if prev is not None and (
            _next_month(prev.month) != r.month
            or r.rate_mm_month < convergence_ratio * prev.rate_mm_month
        ):
            run = []
        run.append(r)
        if len(run) >= months:
            best = run[-months:]
    return best


def window_rate(
    times: Sequence[dt.datetime],
    values: Sequence[float],
    end: dt.datetime,
    days: float,
    min_points: int = 3,
) -> float | None:
    """Least-squares rate per day of the readings in ``(end - days, end]``.

    Examples
    --------
    >>> end = dt.datetime(2026, 11, 30, tzinfo=TZ)
    >>> t = [end - dt.timedelta(days=d) for d in (6, 4, 2, 0)]
    >>> window_rate(t, [0.0, 5.0, 10.0, 15.0], end, 7)
    2.5
    >>> window_rate(t, [0.0, 5.0, 10.0, 15.0], end, 3) is None  # two points
    True
    """
    return _window_rate(_days(times), values, _days([end])[0], days, min_points)


def _window_rate(
    days: Sequence[float],
    values: Sequence[float],
    end: float,
    window: float,
    min_points: int,
) -> float | None:
    """:func:`window_rate` with times as days since the epoch."""
    start = end - window
    pts = [(d, v) for d, v in zip(days, values, strict=True) if start < d <= end]
    if len(pts) < min_points:
        return None
    return least_squares_slope([p[0] for p in pts], [p[1] for p in pts])


def exceedance_level(value: float, limit: float, red_ratio: float) -> str | None:
    """Level of a reading against its limit: over it orange, ``red_ratio`` x red.

    Examples
    --------
    >>> exceedance_level(0.69, 0.7, 1.5), exceedance_level(0.71, 0.7, 1.5)
    (None, 'orange')
    >>> exceedance_level(1.05, 0.7, 1.5)
    'red'
    """
    if value <= limit:
        return None
    return "red" if value >= red_ratio * limit else "orange"


def schedule_level(
    due_on: dt.date, as_of: dt.date, settings: BuildingRules, *, event: bool = False
) -> str | None:
    """Level of a check due on ``due_on`` seen on ``as_of`` (levels are [D]).

    Due within ``due_soon_days`` (or today): yellow; overdue (from the day
    after): orange, red past ``overdue_red_days``; an overdue event appraisal
    is red at once.

    Examples
    --------
    >>> s, today = BuildingRules(), dt.date(2026, 12, 3)
    >>> [schedule_level(today + dt.timedelta(days=d), today, s)
    ...  for d in (61, 60, 0, -1, -365, -366)]
    [None, 'yellow', 'yellow', 'orange', 'orange', 'red']
    >>> schedule_level(today - dt.timedelta(days=1), today, s, event=True)
    'red'
    """
    late = (as_of - due_on).days
    if late > 0:
        if event or late > settings.overdue_red_days:
            return "red"
        return "orange"
    if -late <= settings.due_soon_days:
        return "yellow"
    return None


def _worst(levels: Iterable[str | None]) -> str | None:
    found = [lv for lv in levels if lv is not None]
    return max(found, key=LEVELS.index) if found else None


# -- reading the database ---------------------------------------------------------


def _day_end(day: dt.date) -> dt.datetime:
    """The end of ``day`` in Guangzhou: readings before it count for ``day``."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), TZ)


def _responsible(district: str | None, settings: BuildingRules) -> str | None:
    return settings.responsible_template.format(district=district) if district else None


@dataclass
class _Series:
    building_id: str
    sensor_id: str
    kind: str
    times: list[dt.datetime] = field(default_factory=list)
    days: list[float] = field(default_factory=list)  # since the epoch
    months: list[str] = field(default_factory=list)  # "2026-11", Guangzhou time
    values: list[float] = field(default_factory=list)
    crack_type: str | None = None
    near_flags: list[bool] = field(default_factory=list)
    #: the latest crack length and storey height given (m), for the JGJ 125-99
    #: "longer than half the storey height" test
    crack_length_m: float | None = None
    storey_height_m: float | None = None

    def rate(self, window: float, min_points: int) -> float | None:
        """Least-squares rate per day over the last ``window`` days."""
        return _window_rate(self.days, self.values, self.days[-1], window, min_points)

    def month_rates(self, dense_points: int, anchor_max_days: float) -> list[MonthRate]:
        return _month_rates(
            self.times,
            self.days,
            self.months,
            self.values,
            dense_points,
            anchor_max_days,
        )

    @property
    def last(self) -> float:
        return self.values[-1]

    @property
    def last_at(self) -> dt.datetime:
        return self.times[-1]


READINGS_SQL = """
WITH r AS (
    SELECT building_id, sensor_id, kind, measured_at, value, crack_type,
           crack_length_m, storey_height_m,
           coalesce(near_underground_works, false) AS near,
           extract(epoch FROM measured_at)::float8 / 86400 AS day,
           to_char(measured_at AT TIME ZONE :tz, 'YYYY-MM') AS month
    FROM feed_building_readings
    WHERE measured_at < :end AND measured_at >= :start
),
b AS (
    SELECT DISTINCT ON (source_id) source_id, district, structure
    FROM layer_buildings
    WHERE source_id IN (SELECT DISTINCT building_id FROM r)
    ORDER BY source_id, source_part, updated_at DESC
)
SELECT r.building_id, r.sensor_id, r.kind, r.measured_at, r.value, r.crack_type,
       r.crack_length_m, r.storey_height_m,
       r.near, r.day, r.month, b.district, b.structure,
       b.source_id IS NOT NULL AS known
FROM r LEFT JOIN b ON b.source_id = r.building_id
ORDER BY r.building_id, r.sensor_id, r.kind, r.measured_at
"""


def _read_series(
    conn: Connection, as_of: dt.date, settings: BuildingRules
) -> tuple[dict[str, list[_Series]], dict[str, dict[str, Any]]]:
    """Readings up to the end of ``as_of`` grouped per building and series."""
    end = _day_end(as_of)
    days = max(
        settings.reading_max_age_days,
        31 * (settings.rate_lookback_months + settings.settlement_rate_months + 1),
        settings.trend_window_days,
        settings.underground_window_days,
    )
    rows = conn.execute(
        text(READINGS_SQL),
        {"end": end, "start": end - dt.timedelta(days=days), "tz": TZ.key},
    ).all()
    series: dict[str, list[_Series]] = defaultdict(list)
    info: dict[str, dict[str, Any]] = {}
    unknown = set()
    cur: _Series | None = None
    for (
        bid,
        sensor,
        kind,
        at,
        value,
        crack,
        length,
        storey,
        near,
        day,
        month,
        *b,
        known,
    ) in rows:
        if not known:
            unknown.add(bid)
            continue
        if cur is None or (cur.building_id, cur.sensor_id, cur.kind) != (
            bid,
            sensor,
            kind,
        ):
            cur = _Series(bid, sensor, kind)
            series[bid].append(cur)
            info[bid] = {"district": b[0], "structure": b[1]}
        cur.times.append(at)
        cur.days.append(day)
        cur.months.append(month)
        cur.values.append(float(value))
        cur.near_flags.append(near)
        if crack:
            cur.crack_type = crack
        if length is not None:
            cur.crack_length_m = float(length)
        if storey is not None:
            cur.storey_height_m = float(storey)
    if unknown:
        log.warning(
            "readings of buildings not in the buildings layer skipped",
            extra={"count": len(unknown), "examples": sorted(unknown)[:5]},
        )
    return series, info


#: Crack types whose width limits are JGJ 125-99's for masonry members.
MASONRY_CRACK_TYPES = ("vertical_compression", "beam_bearing", "horizontal_eccentric")


def _crack_limit(
    crack_type: str | None, s: BuildingRules, masonry: bool
) -> float | None:
    """The width limit of a crack type; the masonry types only on masonry."""
    if crack_type in MASONRY_CRACK_TYPES and not masonry:
        return None
    return {
        "vertical_compression": s.crack_vertical_compression_max_mm,
        "beam_bearing": s.crack_beam_bearing_max_mm,
        "horizontal_eccentric": s.crack_horizontal_eccentric_max_mm,
        "settlement": s.settlement_crack_max_mm,
    }.get(crack_type or "")


def crack_over_length(
    length_m: float | None, storey_m: float | None, ratio: float
) -> bool | None:
    """Is a crack longer than ``ratio`` of the storey height? None: not known.

    Examples
    --------
    >>> crack_over_length(1.6, 3.0, 0.5), crack_over_length(1.5, 3.0, 0.5)
    (True, False)
    >>> crack_over_length(None, 3.0, 0.5), crack_over_length(1.0, 0, 0.5)
    (None, None)
    """
    if length_m is None or storey_m is None or storey_m <= 0:
        return None
    return length_m > ratio * storey_m


def _building_findings(
    building_id: str,
    group: list[_Series],
    info: dict[str, Any],
    as_of: dt.date,
    s: BuildingRules,
    now: dt.datetime,
) -> list[Finding]:
    """Every monitoring rule on one building's series.

    ``now`` is the evaluation time: the time a reading over its limit (a
    condition holding now) is observed at.
    """
    end = _day_end(as_of)
    fresh = [
        x for x in group if x.last_at >= end - dt.timedelta(days=s.reading_max_age_days)
    ]
    tilts = [x for x in fresh if x.kind == "tilt_pct"]
    cracks = [x for x in fresh if x.kind == "crack_width_mm"]
    settlements = [x for x in group if x.kind == "settlement_mm"]
    masonry = info.get("structure") in s.masonry_structures
    district = info.get("district")
    out: list[Finding] = []

    def add(
        rule: Rule,
        level: str,
        at: dt.datetime,
        period: str,
        summary: str,
        evidence: dict[str, Any],
    ) -> None:
        out.append(
            Finding(
                rule=rule.id,
                subject_layer="buildings",
                subject_id=building_id,
                level=level,
                observed_at=at,
                period=period,
                summary=summary,
                # the reading kind first: the trend chart of a warning draws it
                evidence={"kind": RULE_KIND.get(rule.id), **evidence},
                responsible=_responsible(district, s),
                district=district,
            )
        )

    def point(x: _Series, limit: float) -> dict[str, Any]:
        return {
            "sensor_id": x.sensor_id,
            "value": x.last,
            "threshold": limit,
            "measured_at": x.last_at.isoformat(),
            **({"crack_type": x.crack_type} if x.crack_type else {}),
        }

    # tilt (standing conditions: observed now, no period)
    if tilts:
        worst = max(tilts, key=lambda x: x.last)
        if masonry:
            limit = s.masonry_tilt_max_pct
            level = exceedance_level(worst.last, limit, s.red_ratio)
            if level:
                add(
                    R_MASONRY_TILT,
                    level,
                    now,
                    "",
                    f"masonry tilt {worst.last:.2f} % > {limit} % at {worst.sensor_id}",
                    {
                        **point(worst, limit),
                        "structure": info.get("structure"),
                        "unit": "%",
                    },
                )
        widest = max(cracks, key=lambda x: x.last, default=None)
        if widest is not None and widest.last > s.cracking_min_width_mm:
            limit = s.overall_tilt_max_pct
            level = exceedance_level(worst.last, limit, s.red_ratio)
            if level:
                add(
                    R_OVERALL_TILT,
                    level,
                    now,
                    "",
                    f"tilt {worst.last:.2f} % > {limit} % with a {widest.last} mm "
                    f"crack at {widest.sensor_id}",
                    {
                        **point(worst, limit),
                        "unit": "%",
                        "crack": {
                            "sensor_id": widest.sensor_id,
                            "width_mm": widest.last,
                        },
                    },
                )

    # cracks by type: the JGJ 125-99 limits are for masonry members
    over = []
    for x in cracks if masonry else ():
        limit = _crack_limit(x.crack_type, s, masonry)
        if limit is None or x.crack_type == "settlement":
            continue
        level = exceedance_level(x.last, limit, s.red_ratio)
        extra: dict[str, Any] = {}
        if level and x.crack_type == "vertical_compression":
            longer = crack_over_length(
                x.crack_length_m,
                x.storey_height_m,
                s.crack_vertical_compression_length_ratio,
            )
            extra = {
                "crack_length_m": x.crack_length_m,
                "storey_height_m": x.storey_height_m,
                "length_ratio": s.crack_vertical_compression_length_ratio,
                "longer_than_ratio": longer,
            }
            if longer is False:
                continue  # wide, but shorter than half the storey height
            if longer is None:
                level = s.crack_length_unknown_level
        if level:
            over.append((level, x, limit, extra))
    if over:
        level = _worst(o[0] for o in over)
        top = max(over, key=lambda o: o[1].last / o[2])
        unknown = [o for o in over if o[3].get("longer_than_ratio", True) is None]
        add(
            R_MASONRY_CRACK,
            level,
            now,
            "",
            f"{top[1].crack_type} crack {top[1].last} mm > {top[2]} mm at "
            f"{top[1].sensor_id}"
            + (f" (+{len(over) - 1} more)" if len(over) > 1 else "")
            + (
                "; crack length or storey height not recorded: measure them "
                "(JGJ 125-99 also needs a length over "
                f"{s.crack_vertical_compression_length_ratio:g} storey height)"
                if unknown
                else ""
            ),
            {
                "cracks": [
                    {**point(x, limit), **extra, "level": lv}
                    for lv, x, limit, extra in over
                ],
                "structure": info.get("structure"),
                "unit": "mm",
            },
        )
    settle_cracks = [x for x in cracks if x.crack_type == "settlement"]
    if settle_cracks:
        widest = max(settle_cracks, key=lambda x: x.last)
        level = exceedance_level(widest.last, s.settlement_crack_max_mm, s.red_ratio)
        several = [x for x in settle_cracks if x.last > s.settlement_crack_several_mm]
        if level is None and len(several) >= s.settlement_crack_several_count:
            level = "orange"
        if level:
            add(
                R_SETTLEMENT_CRACK,
                level,
                now,
                "",
                f"settlement crack {widest.last} mm (limit "
                f"{s.settlement_crack_max_mm} mm); {len(several)} wider than "
                f"{s.settlement_crack_several_mm} mm",
                {
                    "cracks": [
                        point(x, s.settlement_crack_max_mm) for x in several or [widest]
                    ],
                    "several_mm": s.settlement_crack_several_mm,
                    "several_count": s.settlement_crack_several_count,
                    "wider_than_several_mm": len(several),
                    "unit": "mm",
                },
            )

    # settlement rates (record-based: observed at the run's last reading)
    back = as_of.year * 12 + as_of.month - 1 - (s.rate_lookback_months - 1)
    first_month = f"{back // 12:04d}-{back % 12 + 1:02d}"
    rate_hits = []
    for x in settlements:
        monthly = x.month_rates(s.month_dense_points, s.month_anchor_max_days)
        run = sustained_rate(
            monthly,
            s.settlement_rate_max_mm_month,
            s.settlement_rate_months,
            s.convergence_ratio,
        )
        if run and run[-1].month >= first_month:
            rate_hits.append((x, run))
    if rate_hits:
        x, run = max(rate_hits, key=lambda h: (h[1][-1].month, h[1][-1].rate_mm_month))
        limit = s.settlement_rate_max_mm_month
        level = "red" if run[-1].rate_mm_month >= s.red_ratio * limit else "orange"
        rates = ", ".join(f"{r.month} {r.rate_mm_month:.1f}" for r in run)
        add(
            R_SETTLEMENT_RATE,
            level,
            run[-1].last,
            run[-1].month,
            f"settlement {rates} mm/month > {limit} at {x.sensor_id}",
            {
                "sensor_id": x.sensor_id,
                "threshold_mm_month": limit,
                "months": [
                    {
                        "month": r.month,
                        "rate_mm_month": round(r.rate_mm_month, 3),
                        "points": r.points,
                        "anchored": r.anchored,
                    }
                    for r in run
                ],
                "sensors_over": [h[0].sensor_id for h in rate_hits],
                "method": "least squares per calendar month (a sparse month "
                "with the reading before it)",
            },
        )
    near_hits = []
    start = end - dt.timedelta(days=s.underground_window_days)
    for x in settlements:
        if x.last_at <= start or not any(
            f for t, f in zip(x.times, x.near_flags, strict=True) if t > start
        ):
            continue
        rate = x.rate(s.underground_window_days, s.min_points_per_window)
        if rate is not None:
            level = exceedance_level(rate, s.underground_rate_max_mm_day, s.red_ratio)
            if level:
                near_hits.append((level, x, rate))
    if near_hits:
        level, x, rate = max(near_hits, key=lambda h: h[2])
        add(
            R_UNDERGROUND_RATE,
            level,
            x.last_at,
            x.last_at.astimezone(TZ).strftime("%Y-%m"),
            f"settlement {rate:.2f} mm/day > {s.underground_rate_max_mm_day} mm/day "
            f"next to underground works at {x.sensor_id}",
            {
                "sensor_id": x.sensor_id,
                "rate_mm_day": round(rate, 3),
                "threshold_mm_day": s.underground_rate_max_mm_day,
                "window_days": s.underground_window_days,
                "measured_at": x.last_at.isoformat(),
                "method": "least squares over the window",
            },
        )

    # trends [D] (record-based: observed at the last reading, under its month)
    trends = []
    for x in fresh:
        rate = x.rate(s.trend_window_days, s.min_points_per_window)
        if rate is None or rate <= 0:
            continue
        if x.kind == "settlement_mm":
            per_month = rate * DAYS_PER_MONTH
            if rate_hits or per_month <= s.settlement_rate_max_mm_month:
                continue
            trends.append(
                (
                    0.0,
                    x,
                    rate,
                    s.settlement_rate_max_mm_month,
                    f"settlement {per_month:.1f} mm/month over the last "
                    f"{s.trend_window_days} days at {x.sensor_id}",
                )
            )
            continue
        if x.kind == "tilt_pct":
            limit = s.masonry_tilt_max_pct if masonry else s.overall_tilt_max_pct
        else:
            limit = _crack_limit(x.crack_type, s, masonry)
        if limit is None or x.last > limit:
            continue
        days_left = (limit - x.last) / rate
        if days_left <= s.trend_horizon_days:
            trends.append(
                (
                    days_left,
                    x,
                    rate,
                    limit,
                    f"{x.kind} {x.last} at {x.sensor_id} reaches {limit} in "
                    f"about {days_left:.0f} days",
                )
            )
    if trends:
        days_left, x, rate, limit, summary = min(trends, key=lambda t: t[0])
        add(
            R_TREND,
            "yellow",
            x.last_at,
            x.last_at.astimezone(TZ).strftime("%Y-%m"),
            summary,
            {
                "kind": x.kind,
                "trends": [
                    {
                        "sensor_id": t[1].sensor_id,
                        "kind": t[1].kind,
                        "value": t[1].last,
                        "threshold": t[3],
                        "rate_per_day": round(t[2], 5),
                        "days_to_threshold": round(t[0], 1),
                        "measured_at": t[1].last_at.isoformat(),
                    }
                    for t in trends
                ],
                "window_days": s.trend_window_days,
                "horizon_days": s.trend_horizon_days,
                "method": "least squares over the window",
            },
        )
    return out


def _wall_findings(
    conn: Connection, as_of: dt.date, s: BuildingRules, now: dt.datetime
) -> list[Finding]:
    """Due and overdue checks of every curtain wall (the shared schedule).

    Standing conditions: observed at ``now`` (the evaluation time), under the
    due date as their period (or, for a trigger of unknown date, a period
    naming it), so one overdue check stays one warning from day to day.
    """
    out = []
    seen: set[str] = set()
    for wall in scheduled_walls(conn, as_of, s, districts=True):
        if wall.source_id in seen:  # a wall of several parts: its first part
            continue
        seen.add(wall.source_id)
        for due in wall.due:
            if due.due_on is None:
                level: str | None = s.undated_appraisal_level
                late = 0
                state = "due, since a date not recorded"
            else:
                level = schedule_level(
                    due.due_on, as_of, s, event=due.trigger == "event"
                )
                late = (as_of - due.due_on).days
                state = f"overdue by {late} days" if late > 0 else f"due {due.due_on}"
            if level is None:
                continue
            out.append(
                Finding(
                    rule=WALL_RULES[due.kind, due.trigger],
                    subject_layer="curtain_walls",
                    subject_id=wall.source_id,
                    level=level,
                    observed_at=now,
                    period=due.period,
                    summary=f"{due.kind.replace('_', ' ')} {state}: {due.reason}",
                    evidence={
                        "kind": due.kind,
                        "trigger": due.trigger,
                        "causes": list(due.causes),
                        "due_on": _iso(due.due_on),
                        "days_overdue": max(late, 0),
                        "reason": due.reason,
                        "support_type": wall.support_type,
                        "accepted_on": _iso(wall.accepted_on),
                        "last_checked_on": _iso(wall.last_checked_on),
                        "checks": {k: d.isoformat() for k, d in wall.checks.items()},
                        "events": [
                            {"event": e, "occurred_on": _iso(d)}
                            for e, d in sorted(
                                wall.events, key=lambda x: x[1] or dt.date.min
                            )
                        ],
                        "building": wall.building,
                        "building_grade": wall.building_grade,
                        "building_appraised_on": _iso(wall.building_appraised_on),
                    },
                    responsible=_responsible(wall.district, s),
                    district=wall.district,
                )
            )
    return out


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


def _evaluation_time(as_of: dt.date) -> dt.datetime:
    """When a standing condition is observed: the engine's end of ``as_of``."""
    from models.supervision.engine import end_of_day  # the engine imports us

    return end_of_day(as_of)


def evaluate(
    conn: Connection, as_of: dt.date, settings: BuildingRules | None = None
) -> list[Finding]:
    """Every buildings rule on the feeds and layers as of ``as_of``.

    One query per feed (readings joined to their buildings; checks aggregated
    per wall and kind; events) and one for the curtain walls; the rules are
    the pure functions above.
    """
    s = settings or BuildingRules()
    now = _evaluation_time(as_of)
    series, info = _read_series(conn, as_of, s)
    findings: list[Finding] = []
    for building_id, group in series.items():
        findings += _building_findings(
            building_id, group, info[building_id], as_of, s, now
        )
    findings += _wall_findings(conn, as_of, s, now)
    log.info(
        "buildings rules evaluated",
        extra={
            "as_of": as_of.isoformat(),
            "buildings_monitored": len(series),
            "findings": len(findings),
        },
    )
    return findings


#: The settings class of this domain (``WallScheduleRules``, its base, shares
#: the env prefix).
SETTINGS = BuildingRules

register_evaluator(DOMAIN, evaluate)


# -- hazard list and trend chart --------------------------------------------------

_GRADE_LEVEL = {"D": "red", "C": "orange"}
_GRADE_REASON = {
    "D": "JGJ 125-2016 grade D: the whole building is dangerous",
    "C": "JGJ 125-2016 grade C: part of the load-bearing structure is dangerous",
}


def hazard_list(
    conn: Connection,
    as_of: dt.date,
    district: str | None = None,
    limit: int | None = 500,
    settings: BuildingRules | None = None,
) -> list[dict[str, Any]]:
    """Dangerous buildings and curtain walls, most severe first.

    Rows: C/D buildings (D red, C orange) and buildings with an orange or red
    monitoring finding, and curtain walls with an overdue check or a missing
    appraisal (orange / red findings), each with its reasons and rules. A row's
    level is the worst of its reasons; rows are sorted by level, then days
    overdue, then grade; ``limit`` None: every row. The housing page lists
    these rows too.
    """
    s = settings or BuildingRules()
    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def row(layer: str, sid: str) -> dict[str, Any]:
        return rows.setdefault(
            (layer, sid),
            {
                "layer": layer,
                "subject_id": sid,
                "name": None,
                "district": None,
                "responsible": None,
                "level": None,
                "grade": None,
                "days_overdue": 0,
                "due_on": None,
                "reasons": [],
                "rules": [],
            },
        )

    def bump(r: dict[str, Any], level: str) -> None:
        r["level"] = _worst([r["level"], level])

    for f in evaluate(conn, as_of, s):
        if f.level == "yellow":
            continue
        r = row(f.subject_layer or "", f.subject_id)
        bump(r, f.level)
        r["reasons"].append(f.summary)
        r["rules"].append(f.rule)
        r["district"] = r["district"] or f.district
        r["responsible"] = r["responsible"] or f.responsible
        late = f.evidence.get("days_overdue", 0)
        if late > r["days_overdue"]:
            r["days_overdue"], r["due_on"] = late, f.evidence.get("due_on")
    monitored = [sid for (layer, sid) in rows if layer == "buildings"]
    walls = [sid for (layer, sid) in rows if layer == "curtain_walls"]
    for b in conn.execute(
        text(
            "SELECT DISTINCT ON (source_id) source_id, address, district, "
            "safety_grade, appraised_on FROM layer_buildings "
            "WHERE safety_grade IN ('C', 'D') OR source_id = ANY(:ids) "
            "ORDER BY source_id, source_part"
        ),
        {"ids": monitored},
    ):
        r = row("buildings", b.source_id)
        r["name"], r["grade"] = b.address, b.safety_grade
        r["district"] = b.district or r["district"]
        r["responsible"] = r["responsible"] or _responsible(b.district, s)
        if b.safety_grade in _GRADE_LEVEL:
            bump(r, _GRADE_LEVEL[b.safety_grade])
            when = f" (appraised {b.appraised_on})" if b.appraised_on else ""
            r["reasons"].insert(0, _GRADE_REASON[b.safety_grade] + when)
    for w in conn.execute(
        text(
            "SELECT DISTINCT ON (source_id) source_id, building FROM "
            "layer_curtain_walls WHERE source_id = ANY(:ids) "
            "ORDER BY source_id, source_part"
        ),
        {"ids": walls},
    ):
        rows[("curtain_walls", w.source_id)]["name"] = w.building
    out = [
        r
        for r in rows.values()
        if r["level"] and (district is None or r["district"] == district)
    ]
    for r in out:
        r["severity"] = LEVELS.index(r["level"]) + 1
    out.sort(
        key=lambda r: (
            -r["severity"],
            -r["days_overdue"],
            {"D": 0, "C": 1}.get(r["grade"] or "", 2),
            -len(r["reasons"]),
            r["subject_id"],
        )
    )
    return out[:limit]


@dataclass(frozen=True)
class ReadingSeries:
    """One survey point's readings for a trend chart, with the fitted rates."""

    building_id: str
    sensor_id: str
    kind: str
    unit: str
    points: list[tuple[dt.datetime, float]]
    #: least-squares rate per day over the last ``trend_window_days``
    rate_per_day: float | None
    #: the limit a chart draws as a line (None: no limit on the value itself)
    threshold: float | None
    crack_type: str | None = None
    #: per calendar month (settlement only): the rates the rate rule uses
    monthly: list[MonthRate] = field(default_factory=list)
    #: the least-squares line of the last ``trend_window_days``: its two ends
    fit: tuple[tuple[dt.datetime, float], tuple[dt.datetime, float]] | None = None
    #: the limit on the monthly rate (settlement: mm/month), None otherwise
    rate_limit_per_month: float | None = None


def _fit_line(
    times: Sequence[dt.datetime],
    values: Sequence[float],
    window: float,
    min_points: int,
) -> tuple[tuple[dt.datetime, float], tuple[dt.datetime, float]] | None:
    """Ends of the least-squares line through the readings of the last window."""
    end = times[-1]
    pts = [
        (t, v)
        for t, v in zip(times, values, strict=True)
        if t > end - dt.timedelta(days=window)
    ]
    if len(pts) < min_points:
        return None
    line = least_squares_line(_days([p[0] for p in pts]), [p[1] for p in pts])
    if line is None:
        return None
    slope, intercept = line
    t0, t1 = pts[0][0], pts[-1][0]
    d0, d1 = _days([t0, t1])
    return (t0, intercept + slope * d0), (t1, intercept + slope * d1)


def reading_series(
    conn: Connection,
    building_id: str,
    kind: str,
    sensor_id: str | None = None,
    settings: BuildingRules | None = None,
) -> list[ReadingSeries]:
    """Readings of one building and kind, one series per survey point.

    Each series carries its points ``(time, value)`` oldest first, the
    least-squares rate over the last ``trend_window_days`` (per day) and the
    ends of that line, the limit to draw (the masonry limits on masonry
    buildings only) and, for settlement, the monthly rates of the rate rule
    and its limit (mm/month).
    """
    s = settings or BuildingRules()
    rows = conn.execute(
        text(
            "SELECT sensor_id, measured_at, value, crack_type, "
            "(SELECT structure FROM layer_buildings WHERE source_id = :b LIMIT 1) "
            "AS structure FROM feed_building_readings "
            "WHERE building_id = :b AND kind = :k "
            "AND (CAST(:s AS text) IS NULL OR sensor_id = :s) "
            "ORDER BY sensor_id, measured_at"
        ),
        {"b": building_id, "k": kind, "s": sensor_id},
    ).all()
    grouped: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        grouped[r.sensor_id].append(r)
    unit = {"tilt_pct": "%", "crack_width_mm": "mm", "settlement_mm": "mm"}.get(
        kind, ""
    )
    out = []
    for sid, rs in grouped.items():
        times = [r.measured_at for r in rs]
        values = [float(r.value) for r in rs]
        crack_type = next((r.crack_type for r in reversed(rs) if r.crack_type), None)
        masonry = rs[0].structure in s.masonry_structures
        if kind == "tilt_pct":
            limit = s.masonry_tilt_max_pct if masonry else s.overall_tilt_max_pct
        elif kind == "crack_width_mm":
            limit = _crack_limit(crack_type, s, masonry)
        else:
            limit = None
        settlement = kind == "settlement_mm"
        out.append(
            ReadingSeries(
                building_id=building_id,
                sensor_id=sid,
                kind=kind,
                unit=unit,
                points=list(zip(times, values, strict=True)),
                rate_per_day=window_rate(
                    times,
                    values,
                    times[-1],
                    s.trend_window_days,
                    s.min_points_per_window,
                ),
                threshold=limit,
                crack_type=crack_type,
                monthly=settlement_rates(
                    times,
                    values,
                    dense_points=s.month_dense_points,
                    anchor_max_days=s.month_anchor_max_days,
                )
                if settlement
                else [],
                fit=_fit_line(
                    times, values, s.trend_window_days, s.min_points_per_window
                ),
                rate_limit_per_month=s.settlement_rate_max_mm_month
                if settlement
                else None,
            )
        )
    return out


# -- demo records ---------------------------------------------------------------

#: Share of demo buildings per scenario, in the order they are assigned; the
#: rest are stable (converging settlement, steady tilt and cracks).
DEMO_SCENARIOS = (
    "accelerating_settlement",
    "accelerating_settlement",
    "accelerating_settlement",
    "underground_works",
    "settlement_trend",
    "settlement_trend",
    "crack_over",
    "crack_far_over",
    "settlement_cracks",
    "crack_widening",
    "tilt_over",
    "tilt_far_over",
)


def demo_records(
    conn: Connection,
    seed: int,
    as_of: dt.date,
    *,
    buildings: int = 40,
    walls: int = 60,
) -> dict[str, list[dict[str, Any]]]:
    """Synthetic monitoring readings, wall checks and events for the demo city.

    **Invented data** for demonstrations and tests. ``buildings`` buildings
    and ``walls`` curtain walls are drawn (by ``seed``) from the layer tables;
    most buildings are stable, a few have accelerating settlement, settlement
    next to underground works, cracks over their limits, widening cracks or
    tilt over the limit (:data:`DEMO_SCENARIOS`). Walls get recent checks,
    old or no checks (overdue), checks falling due soon, and a few a typhoon
    (some appraised since, some not). About 3,000 records with the defaults.

    Returns
    -------
    dict
        Feed id -> records (dicts keyed by column name) for ``load_feed``.
    """
    rng = np.random.default_rng(seed)
    picked = conn.execute(
        text(
            "SELECT source_id, structure FROM (SELECT DISTINCT ON (source_id) "
            "source_id, structure FROM layer_buildings ORDER BY source_id, "
            "source_part) b ORDER BY md5(source_id || :seed) LIMIT :n"
        ),
        {"seed": str(seed), "n": buildings},
    ).all()
    end = dt.datetime.combine(as_of, dt.time(9), TZ)
    readings: list[dict[str, Any]] = []

    def series(
        bid: str,
        sensor: str,
        kind: str,
        days: np.ndarray,
        values: np.ndarray,
        crack_type: str | None = None,
        near: bool | None = None,
    ) -> None:
        # a vertical compression crack over 0.6 of a 3.0 m storey (JGJ 125-99
        # counts those longer than half the storey height)
        length = 1.8 if crack_type == "vertical_compression" else None
        for d, v in zip(days, values, strict=True):
            readings.append(
                {
                    "building_id": bid,
                    "sensor_id": sensor,
                    "measured_at": end - dt.timedelta(days=int(d)),
                    "kind": kind,
                    "value": round(float(v), 2),
                    "crack_type": crack_type,
                    "crack_length_m": length,
                    "storey_height_m": 3.0 if length else None,
                    "near_underground_works": near,
                }
            )

    weekly = np.arange(182, -1, -7)  # days before as_of, oldest first
    fortnightly = np.arange(182, -1, -14)
    for i, (bid, structure) in enumerate(picked):
        scenario = DEMO_SCENARIOS[i] if i < len(DEMO_SCENARIOS) else "stable"
        t = 182.0 - weekly  # days since the first reading
        noise = rng.normal(0, 0.15, (2, len(weekly)))
        if scenario == "accelerating_settlement":
            # rate rising from ~2 to ~8 mm/month over the half year
            base = 2.0 * t / DAYS_PER_MONTH + 0.5 * (t / DAYS_PER_MONTH) ** 2
        elif scenario == "settlement_trend":
            # slow, then ~6 mm/month over the last four weeks only
            base = 0.5 * t / DAYS_PER_MONTH + np.where(
                t > 154, 6.0 * (t - 154) / DAYS_PER_MONTH, 0.0
            )
        else:
            # converging: 12 mm in all, the rate halving every ~two months
            base = 12.0 * (1 - np.exp(-(t + 200) / 90.0))
        for k in range(2):
            series(bid, f"S{k + 1}", "settlement_mm", weekly, base + noise[k])
        if scenario == "underground_works":
            daily = np.arange(13, -1, -1)
            series(
                bid,
                "S9",
                "settlement_mm",
                daily,
                2.4 * (13 - daily) + rng.normal(0, 0.2, len(daily)),
                near=True,
            )
        n = len(fortnightly)
        masonry = structure in ("masonry", "brick_concrete")
        tilt = rng.uniform(0.1, 0.4) + rng.normal(0, 0.01, n)
        if scenario == "tilt_over":
            tilt = (0.8 if masonry else 1.2) + rng.normal(0, 0.01, n)
        elif scenario == "tilt_far_over":
            tilt = 1.7 + rng.normal(0, 0.01, n)
        series(bid, "T1", "tilt_pct", fortnightly, np.abs(tilt))
        # the JGJ 125-99 crack limits are for masonry: other structures show
        # their crack scenarios as settlement cracks (JGJ 125-2016)
        crack = (
            {
                "crack_over": ("vertical_compression", 2.4),
                "crack_far_over": ("beam_bearing", 1.6),
                "tilt_over": ("horizontal_eccentric", 0.3),
                "tilt_far_over": ("horizontal_eccentric", 0.4),
            }
            if masonry
            else {
                "crack_over": ("settlement", 10.8),
                "crack_far_over": ("settlement", 15.5),
                "tilt_over": ("settlement", 1.5),
                "tilt_far_over": ("settlement", 2.0),
            }
        ).get(scenario)
        if scenario == "settlement_cracks":
            for k in range(2):
                series(
                    bid,
                    f"C{k + 1}",
                    "crack_width_mm",
                    fortnightly,
                    6.0 + rng.normal(0, 0.05, n),
                    crack_type="settlement",
                )
        elif scenario == "crack_widening":
            start, per_day = (0.9, 0.004) if masonry else (8.4, 0.008)
            widths = start + per_day * (182 - fortnightly) + rng.normal(0, 0.01, n)
            series(
                bid,
                "C1",
                "crack_width_mm",
                fortnightly,
                widths,
                crack_type="vertical_compression" if masonry else "settlement",
            )
        elif crack is not None:
            series(
                bid,
                "C1",
                "crack_width_mm",
                fortnightly,
                crack[1] + rng.normal(0, 0.02, n),
                crack_type=crack[0],
            )
        elif rng.random() < 0.5:
            series(
                bid,
                "C1",
                "crack_width_mm",
                fortnightly,
                rng.uniform(0.1, 0.4) + rng.normal(0, 0.01, n),
                crack_type=str(rng.choice(CRACK_TYPES_DEMO)),
            )

    checks: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    wall_rows = conn.execute(
        text(
            "SELECT source_id, support_type, accepted_on, design_life_years FROM "
            "(SELECT DISTINCT ON (source_id) source_id, support_type, accepted_on, "
            "design_life_years FROM "
            "layer_curtain_walls ORDER BY source_id, source_part) w "
            "WHERE accepted_on IS NOT NULL ORDER BY md5(source_id || :seed) LIMIT :n"
        ),
        {"seed": str(seed), "n": walls},
    ).all()
    typhoon = as_of - dt.timedelta(days=70)
    for i, w in enumerate(wall_rows):
        age = (as_of - w.accepted_on).days
        u = rng.random()
        if u < 0.6 and age > 400:  # checked recently: fine
            day = as_of - dt.timedelta(days=int(rng.integers(30, 700)))
            checks.append(
                {
                    "wall_id": w.source_id,
                    "checked_on": day,
                    "kind": "safety_check",
                    "result": "合格",
                }
            )
            if w.support_type == "structural_silicone" and age > 3650:
                checks.append(
                    {
                        "wall_id": w.source_id,
                        "checked_on": day - dt.timedelta(days=10),
                        "kind": "adhesive_sampling",
                        "result": "合格",
                    }
                )
        elif u < 0.75 and age > 2000:  # falls due within the next weeks
            years = 3 if w.support_type in ("point", "cable") else 5
            day = add_years(as_of, -years) + dt.timedelta(
                days=int(rng.integers(10, 50))
            )
            checks.append(
                {
                    "wall_id": w.source_id,
                    "checked_on": day,
                    "kind": "safety_check",
                    "result": "合格",
                }
            )
        elif w.support_type == "structural_silicone" and age > 3650:
            # sampled once, long ago: overdue
            checks.append(
                {
                    "wall_id": w.source_id,
                    "checked_on": as_of - dt.timedelta(days=5 * 365),
                    "kind": "adhesive_sampling",
                    "result": "需复检",
                }
            )
        # else: only the layer's last_checked_on (about a quarter overdue)
        end_of_life = add_years(w.accepted_on, w.design_life_years or 25)
        if end_of_life < as_of and rng.random() < 0.6:  # appraised at end of life
            checks.append(
                {
                    "wall_id": w.source_id,
                    "checked_on": min(
                        as_of,
                        end_of_life + dt.timedelta(days=int(rng.integers(20, 300))),
                    ),
                    "kind": "appraisal",
                    "result": "可继续使用",
                }
            )
        if i < 5:
            events.append(
                {
                    "wall_id": w.source_id,
                    "occurred_on": typhoon,
                    "event": "typhoon",
                    "note": "demo typhoon (invented)",
                }
            )
            if i < 2:
                checks.append(
                    {
                        "wall_id": w.source_id,
                        "checked_on": typhoon + dt.timedelta(days=20),
                        "kind": "appraisal",
                        "result": "可继续使用",
                    }
                )
        elif i == 5:
            events.append(
                {
                    "wall_id": w.source_id,
                    "occurred_on": as_of - dt.timedelta(days=12),
                    "event": "burst_glass",
                    "note": "demo (invented)",
                }
            )
    log.info(
        "buildings demo records drawn",
        extra={
            "seed": seed,
            "buildings": len(picked),
            "readings": len(readings),
            "walls": len(wall_rows),
            "checks": len(checks),
            "events": len(events),
        },
    )
    return {
        "building_readings": readings,
        "curtain_wall_checks": checks,
        "curtain_wall_events": events,
    }


CRACK_TYPES_DEMO = ("vertical_compression", "beam_bearing", "horizontal_eccentric")
