"""Warning levels and river-chief patrol tasks (pure functions, no database).

Levels: the predicted probability, the standard grade and the relapse
early-warning rules each give a level; the highest applies (2021 Guangzhou
guidance: "the highest level applies"). Each level sets how often the
segment's chief patrols; a patrol not done by its due date is overdue, and an
overdue patrol is itself a warning.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from models.water.settings import WaterSettings
from models.water.standards import MILD, SEVERE

LEVELS = ("none", "yellow", "orange", "red")
RANK = {name: i for i, name in enumerate(LEVELS)}


def probability_level(p: float, settings: WaterSettings) -> str:
    """Level of a predicted probability by the configured cut-offs.

    >>> s = WaterSettings()
    >>> [probability_level(p, s) for p in (0.1, 0.3, 0.6, 0.9)]
    ['none', 'yellow', 'orange', 'red']
    """
    if p >= settings.red_probability:
        return "red"
    if p >= settings.orange_probability:
        return "orange"
    if p >= settings.yellow_probability:
        return "yellow"
    return "none"


def warning_level(
    p: float | None, grade: int, early: bool, settings: WaterSettings
) -> tuple[str, list[str]]:
    """The highest of the probability, grade and early-warning levels, with why."""
    level, why = "none", []

    def raise_to(new: str, reason: str) -> None:
        nonlocal level
        if RANK[new] > RANK["none"]:
            why.append(f"{new}: {reason}")
        if RANK[new] > RANK[level]:
            level = new

    if p is not None:
        raise_to(probability_level(p, settings), f"relapse probability {p:.2f}")
    if grade == SEVERE:
        raise_to(settings.severe_grade_level, "graded severe black-odorous")
    elif grade == MILD:
        raise_to(settings.mild_grade_level, "graded mild black-odorous")
    if early:
        raise_to(settings.early_warning_level, "relapse early-warning rule")
    return level, why


@dataclass
class PatrolTask:
    chief_id: str
    chief_level: str | None
    segment_code: str
    level: str
    probability: float
    interval_days: float
    period_start: dt.date
    period_end: dt.date
    patrols_required: int
    patrols_done: int
    last_patrol_at: dt.datetime | None
    due_at: dt.datetime
    overdue: bool
    overdue_days: float
    reason: str
    urgency_rank: int = 0


def plan_tasks(
    segments: list[dict],
    patrols: dict[tuple[str, str], list[dt.datetime]],
    *,
    now: dt.datetime,
    period_start: dt.date,
    period_end: dt.date,
    settings: WaterSettings,
) -> list[PatrolTask]:
    """Patrol tasks per chief for the period, most urgent first within each chief.

    Parameters
    ----------
    segments
        Dicts with ``code``, ``chief_id``, ``chief_level``, ``level``,
        ``probability`` and ``reasons`` (list of text).
    patrols
        (chief, segment) -> start times of completed patrols meeting the
        standard (>= 10 min, >= 1 km).
    now
        Time the plan is made at (decides what is overdue).
    period_start, period_end
        The period (end inclusive) the tasks cover.
    """
    tz = now.tzinfo or dt.UTC
    p0 = dt.datetime.combine(period_start, dt.time(), tz)
    p1 = dt.datetime.combine(period_end + dt.timedelta(days=1), dt.time(), tz)
    days = (p1 - p0).total_seconds() / 86400
    tasks: list[PatrolTask] = []
    for seg in segments:
        chief = seg.get("chief_id")
        if not chief:
            continue
        interval = settings.patrol_interval_days(seg["level"], seg.get("chief_level"))
        done = sorted(patrols.get((chief, seg["code"]), []))
        last = done[-1] if done else None
        in_period = sum(1 for t in done if p0 <= t < p1)
        due = (last + dt.timedelta(days=interval)) if last else p0
        late = (now - due).total_seconds() / 86400 - settings.patrol_grace_days
        overdue = late > 0
        why = list(seg.get("reasons") or [])
        head = (
            f"{seg['level']} warning: patrol every {interval:g} d"
            if seg["level"] != "none"
            else f"no warning: patrol every {interval:g} d"
        )
        if overdue:
            head = (
                f"OVERDUE {late:.1f} d (never patrolled); "
                if last is None
                else f"OVERDUE {late:.1f} d; "
            ) + head
        tasks.append(
            PatrolTask(
                chief_id=chief,
                chief_level=seg.get("chief_level"),
                segment_code=seg["code"],
                level=seg["level"],
                probability=float(seg.get("probability") or 0.0),
                interval_days=interval,
                period_start=period_start,
                period_end=period_end,
                patrols_required=max(1, math.ceil(days / interval)),
                patrols_done=in_period,
                last_patrol_at=last,
                due_at=due,
                overdue=overdue,
                overdue_days=round(max(late, 0.0), 2),
                reason="; ".join([head, *why[:3]]),
            )
        )
    tasks.sort(
        key=lambda t: (
            t.chief_id,
            not t.overdue,
            -RANK[t.level],
            -t.overdue_days,
            -t.probability,
            t.due_at,
        )
    )
    rank, current = 0, None
    for t in tasks:
        rank = rank + 1 if t.chief_id == current else 1
        current = t.chief_id
        t.urgency_rank = rank
    return tasks


def overdue_warnings(
    tasks: list[PatrolTask], settings: WaterSettings
) -> dict[str, str]:
    """Segment -> reason for every segment whose patrol is overdue.

    The overdue patrol is itself a warning at ``overdue_patrol_level`` (at least).
    """
    out: dict[str, str] = {}
    for t in tasks:
        if t.overdue:
            out[t.segment_code] = (
                f"{settings.overdue_patrol_level}: patrol by "
                f"{t.chief_id} overdue {t.overdue_days:g} d"
            )
    return out


def levels_array(
    probability: np.ndarray,
    grade: np.ndarray,
    early: np.ndarray,
    settings: WaterSettings,
) -> tuple[list[str], list[list[str]]]:
    """:func:`warning_level` over arrays."""
    levels, reasons = [], []
    for p, g, e in zip(probability, grade, early, strict=True):
        lv, why = warning_level(float(p), int(g), bool(e), settings)
        levels.append(lv)
        reasons.append(why)
    return levels, reasons
