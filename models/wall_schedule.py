"""The curtain-wall check schedule: one implementation for every reader.

The risk fall zones (:mod:`models.risk`), the buildings supervision rules
(:mod:`models.supervision.buildings`) and the housing page
(:mod:`map_ui.housing`) all ask this module when a glass curtain wall's next
safety check, structural-silicone adhesive sampling or safety appraisal falls
due, from the same records: the ``curtain_walls`` layer (acceptance, the
layer's ``last_checked_on``, design life, a typhoon flag in ``extra``), the
``curtain_wall_checks`` and ``curtain_wall_events`` feeds and the JGJ 125-2016
grade of the wall's building.

The schedule (JGJ 102-2003 §12.2 and Guangzhou / Guangdong regulations [S]):

* first safety check a year after acceptance, then every five years (point-
  or cable-supported walls every three); once the wall reaches its design
  life, a check falls due that day and then every year;
* structural-silicone walls: adhesive sampled ten years after acceptance,
  then every three years (a separate check: a safety check does not sample
  the adhesive);
* a safety appraisal after a typhoon, lightning, fire, explosion, abnormal
  deformation, falling parts or burst glass, and once the wall reaches its
  design life or its building is graded C or D.

Settings: :class:`WallScheduleRules`, environment ``GIS_RULES_BUILDINGS_*``
(the supervision rules' :class:`~models.supervision.buildings.BuildingRules`
extends it); the risk model's former ``GIS_RISK_WALL_*`` names are read as
aliases. Pure functions take plain values; :func:`scheduled_walls` reads the
layer and feeds in three queries.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict
from sqlalchemy import Connection, text

from gis_server.overrides import OverridableSettings

__all__ = [
    "DueCheck",
    "ScheduledWall",
    "WallScheduleRules",
    "add_years",
    "flag_event",
    "next_checks",
    "scheduled_walls",
]

log = logging.getLogger("gis_server.wall_schedule")

JGJ102 = "JGJ 102-2003 §12.2 and Guangzhou / Guangdong curtain-wall regulations"
ENV_PREFIX = "GIS_RULES_BUILDINGS_"
#: Prefix of the risk model's former names of the same settings (still read).
LEGACY_PREFIX = "GIS_RISK_"


def _env(name: str, legacy: bool = True) -> AliasChoices:
    """The environment names of a setting: the current one, then the legacy one."""
    names = [f"{ENV_PREFIX}{name.upper()}"]
    if legacy:
        names.append(f"{LEGACY_PREFIX}{name.upper()}")
    return AliasChoices(*names)


class WallScheduleRules(OverridableSettings):
    """The curtain-wall schedule, one setting each (``GIS_RULES_BUILDINGS_*``).

    Each description starts with its confidence mark: [S] seen in a published
    source, [R] commonly cited value, [D] design default. The fields that the
    risk model used to hold are also read from their old ``GIS_RISK_WALL_*``
    names (the new name wins when both are set).
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", populate_by_name=True
    )
    #: the group ``rules_buildings`` is ``BuildingRules``, which extends this
    partial_group: ClassVar[bool] = True

    wall_first_check_years: int = Field(
        1,
        ge=0,
        validation_alias=_env("wall_first_check_years"),
        description=f"[S] {JGJ102}: first check one year after acceptance.",
    )
    wall_check_interval_years: int = Field(
        5,
        ge=1,
        validation_alias=_env("wall_check_interval_years"),
        description=f"[S] {JGJ102}: then every five years.",
    )
    wall_silicone_first_years: int = Field(
        10,
        ge=1,
        validation_alias=_env("wall_silicone_first_years"),
        description=f"[S] {JGJ102}: structural-silicone adhesive sampled ten "
        "years after acceptance.",
    )
    wall_silicone_interval_years: int = Field(
        3,
        ge=1,
        validation_alias=_env("wall_silicone_interval_years"),
        description=f"[S] {JGJ102}: adhesive sampled every three years after.",
    )
    wall_point_cable_interval_years: int = Field(
        3,
        ge=1,
        validation_alias=_env("wall_point_cable_interval_years"),
        description=f"[S] {JGJ102}: point- or cable-supported: every 3 years.",
    )
    wall_past_life_interval_years: int = Field(
        1,
        ge=1,
        validation_alias=_env("wall_past_life_interval_years"),
        description=f"[S] {JGJ102}: past the design life, every year.",
    )
    wall_design_life_years: int = Field(
        25,
        ge=1,
        validation_alias=_env("wall_design_life_years"),
        description=f"[S] {JGJ102}: design life >= 25 years; used for a wall "
        "without `design_life_years`.",
    )
    wall_dangerous_grades: tuple[str, ...] = Field(
        ("C", "D"),
        validation_alias=_env("wall_dangerous_grades", legacy=False),
        description=f"[S] {JGJ102}: an appraisal is mandatory when the main "
        "structure is dangerous; these JGJ 125-2016 grades of the wall's "
        "building (the layer's `building` = the building's source id) count.",
    )
    appraisal_counts_as_check: bool = Field(
        True,
        validation_alias=_env("appraisal_counts_as_check", legacy=False),
        description="[D] A safety appraisal also counts as the periodic safety "
        "check (it is the more thorough inspection).",
    )
    event_appraisal_grace_days: int = Field(
        0,
        ge=0,
        validation_alias=_env("event_appraisal_grace_days", legacy=False),
        description="[D] Days after an event before a missing appraisal is "
        "overdue; the regulations name no period.",
    )
    wall_typhoon_key: str = Field(
        "typhoon_flagged_on",
        validation_alias=_env("wall_typhoon_key"),
        description="[D] Key in a curtain wall's `extra` flagging typhoon damage "
        "(the layer has no such property): an ISO date is a typhoon event on "
        "that day, `true` one of unknown date; either needs an appraisal like "
        "an event of the `curtain_wall_events` feed.",
    )


def add_years(day: dt.date, years: int) -> dt.date:
    """``day`` moved by whole years; 29 February becomes 28 February.

    Examples
    --------
    >>> add_years(dt.date(2024, 2, 29), 1)
    datetime.date(2025, 2, 28)
    """
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


class DueCheck(NamedTuple):
    """A check a curtain wall needs: ``(kind, due_on, reason, trigger, ...)``."""

    kind: str  # safety_check | adhesive_sampling | appraisal
    #: the day it falls (fell) due; None when the trigger's date is not known
    #: (a typhoon flag without a date, a C/D grade without its appraisal date):
    #: due since an unknown day
    due_on: dt.date | None
    reason: str
    #: why: "schedule" (periodic), "event" (after an event), "condition" (past
    #: the design life, dangerous main structure)
    trigger: str = "schedule"
    #: what triggered it: the pending events ("typhoon", ...), or the
    #: conditions ("design_life", "dangerous_building")
    causes: tuple[str, ...] = ()

    @property
    def period(self) -> str:
        """A stable key of this due check: its due date, else its causes."""
        if self.due_on is not None:
            return self.due_on.isoformat()
        return f"undated:{'+'.join(self.causes) or self.kind}"


def flag_event(value: object) -> tuple[str, dt.date | None] | None:
    """The typhoon event a curtain wall's ``extra`` flag stands for, or None.

    Examples
    --------
    >>> flag_event("2026-09-16"), flag_event(True), flag_event("true")
    (('typhoon', datetime.date(2026, 9, 16)), ('typhoon', None), ('typhoon', None))
    >>> flag_event(None), flag_event(False), flag_event("not a date")
    (None, None, None)
    """
    if value is None or value is False:
        return None
    if value is True or (isinstance(value, str) and value.strip().lower() == "true"):
        return ("typhoon", None)
    try:
        return ("typhoon", dt.date.fromisoformat(str(value)[:10]))
    except ValueError:
        return None


def next_checks(
    wall: Mapping[str, Any],
    checks: Iterable[tuple[str, dt.date]],
    events: Iterable[tuple[str, dt.date | None]],
    as_of: dt.date,
    settings: WallScheduleRules | None = None,
) -> list[DueCheck]:
    """The next periodic check, adhesive sampling and appraisals of a wall.

    Parameters
    ----------
    wall
        ``support_type``, ``accepted_on``, ``last_checked_on`` and
        ``design_life_years`` of the wall (the ``curtain_walls`` layer);
        optionally ``building_grade`` and ``building_appraised_on`` of the
        building it hangs on (JGJ 125-2016 grade and its date).
    checks
        ``(kind, checked_on)`` of its records in the checks feed; only their
        latest date per kind matters.
    events
        ``(event, occurred_on)`` of its events; ``occurred_on`` None for an
        event of unknown date (a typhoon flag ``true``).
    as_of
        The day evaluated: later records are ignored.
    settings
        The schedule; defaults to ``WallScheduleRules()``.

    Returns
    -------
    list of DueCheck
        The safety check (walls with an acceptance date), the adhesive
        sampling (structural-silicone walls), an appraisal when an event has
        none on or after it (trigger ``event``) and one when the wall reached
        its design life or its building's main structure was found dangerous
        with no appraisal since (trigger ``condition``); ``due_on`` may lie in
        the past (overdue) or be None (due since an unknown day).

    Notes
    -----
    A trigger of unknown date (a typhoon flag ``true``, a C / D grade without
    the building's appraisal date) is met by any appraisal of the wall on
    record: the appraisal cannot be shown to predate it, and a trigger that
    no appraisal could meet would keep a warning open that no work on the
    wall can close.

    Examples
    --------
    >>> s = WallScheduleRules()
    >>> wall = {"support_type": "structural_silicone",
    ...         "accepted_on": dt.date(2014, 6, 1),
    ...         "last_checked_on": dt.date(2015, 6, 1), "design_life_years": 25}
    >>> for c in next_checks(wall, [("safety_check", dt.date(2020, 6, 3))],
    ...                      [("typhoon", dt.date(2026, 9, 15))],
    ...                      dt.date(2026, 12, 3), s):
    ...     print(c.kind, c.due_on, c.trigger)
    safety_check 2025-06-03 schedule
    adhesive_sampling 2024-06-01 schedule
    appraisal 2026-09-15 event
    """
    s = settings or WallScheduleRules()
    latest: dict[str, dt.date] = {}
    for kind, day in checks:
        if day is not None and day <= as_of and day > latest.get(kind, dt.date.min):
            latest[kind] = day
    out: list[DueCheck] = []
    accepted: dt.date | None = wall.get("accepted_on")
    support = wall.get("support_type")
    life = wall.get("design_life_years") or s.wall_design_life_years
    end_of_life = add_years(accepted, life) if accepted is not None else None
    if accepted is not None and end_of_life is not None:
        done = [wall.get("last_checked_on"), latest.get("safety_check")]
        if s.appraisal_counts_as_check:
            done.append(latest.get("appraisal"))
        done_after = [d for d in done if d is not None and accepted <= d <= as_of]
        last = max(done_after, default=None)
        if last is None:
            due = add_years(accepted, s.wall_first_check_years)
            reason = (
                f"first safety check {s.wall_first_check_years} year(s) after "
                f"acceptance on {accepted}"
            )
        elif last >= end_of_life:
            due = add_years(last, s.wall_past_life_interval_years)
            reason = (
                f"past its {life}-year design life (ended {end_of_life}): checked "
                f"every {s.wall_past_life_interval_years} year(s); last {last}"
            )
        else:
            if support in ("point", "cable"):
                years = s.wall_point_cable_interval_years
                reason = f"{support}-supported wall: every {years} years; last {last}"
            else:
                years = s.wall_check_interval_years
                reason = f"safety check every {years} years; last {last}"
            due = add_years(last, years)
        if due > end_of_life and (last is None or last < end_of_life):
            due = end_of_life
            reason = f"{life}-year design life ends {end_of_life}: check due"
        out.append(DueCheck("safety_check", due, reason))
        if support == "structural_silicone":
            sampled = latest.get("adhesive_sampling")
            if sampled is not None and sampled >= accepted:
                due = add_years(sampled, s.wall_silicone_interval_years)
                reason = (
                    f"structural silicone sampled every "
                    f"{s.wall_silicone_interval_years} years; last {sampled}"
                )
            else:
                due = add_years(accepted, s.wall_silicone_first_years)
                reason = (
                    f"structural silicone first sampled {s.wall_silicone_first_years}"
                    f" years after acceptance on {accepted}"
                )
            out.append(DueCheck("adhesive_sampling", due, reason))
    appraised = latest.get("appraisal")
    since = f"last appraisal {appraised}" if appraised else "no appraisal"

    def pending(day: dt.date | None) -> bool:
        if day is None:  # unknown date: any appraisal on record meets it
            return appraised is None
        return day <= as_of and (appraised is None or day > appraised)

    waiting = [(event, day) for event, day in events if pending(day)]
    if waiting:
        dated = sorted(day for _, day in waiting if day is not None)
        names = ", ".join(
            f"{event} on {day}" if day else f"{event} (date not recorded)"
            for event, day in sorted(waiting, key=lambda e: e[1] or dt.date.min)
        )
        out.append(
            DueCheck(
                "appraisal",
                dated[0] + dt.timedelta(days=s.event_appraisal_grace_days)
                if dated
                else None,
                f"appraisal mandatory after {names} ({since})",
                "event",
                tuple(sorted({event for event, _ in waiting})),
            )
        )
    conditions: list[tuple[dt.date | None, str, str]] = []
    if end_of_life is not None and as_of >= end_of_life:
        conditions.append(
            (
                end_of_life,
                "design_life",
                f"reached its {life}-year design life on {end_of_life}",
            )
        )
    grade = wall.get("building_grade")
    if grade in s.wall_dangerous_grades:
        day = wall.get("building_appraised_on")
        when = f"on {day}" if day else "(date of the appraisal not recorded)"
        conditions.append(
            (day, "dangerous_building", f"building graded {grade} {when}")
        )
    waiting_c = [c for c in conditions if pending(c[0])]
    if waiting_c:
        dated = sorted(c[0] for c in waiting_c if c[0] is not None)
        out.append(
            DueCheck(
                "appraisal",
                dated[0] if dated else None,
                "appraisal mandatory: "
                + "; ".join(c[2] for c in waiting_c)
                + f" ({since})",
                "condition",
                tuple(c[1] for c in waiting_c),
            )
        )
    return out


# -- reading the database -----------------------------------------------------------


@dataclass(frozen=True)
class ScheduledWall:
    """One row of the ``curtain_walls`` layer with its records and due checks."""

    id: int  # the layer row's id
    source_id: str  # what the feeds call ``wall_id``
    source_part: int
    building: str | None
    support_type: str | None
    accepted_on: dt.date | None
    last_checked_on: dt.date | None
    design_life_years: int | None
    height_m: float | None
    building_grade: str | None
    building_appraised_on: dt.date | None
    district: str | None
    #: latest date of each kind in the checks feed (up to the day evaluated)
    checks: dict[str, dt.date] = field(default_factory=dict)
    #: events of the events feed and of the layer's typhoon flag
    events: list[tuple[str, dt.date | None]] = field(default_factory=list)
    due: list[DueCheck] = field(default_factory=list)

    def as_wall(self) -> dict[str, Any]:
        """The mapping :func:`next_checks` reads."""
        return {
            "support_type": self.support_type,
            "accepted_on": self.accepted_on,
            "last_checked_on": self.last_checked_on,
            "design_life_years": self.design_life_years,
            "building_grade": self.building_grade,
            "building_appraised_on": self.building_appraised_on,
        }


_WALLS_SQL = """
WITH w AS (
    SELECT id, source_id, source_part, building, support_type, accepted_on,
           last_checked_on, design_life_years, height_m, extra -> :flag AS flag,
           geom, updated_at
    FROM layer_curtain_walls
    WHERE CAST(:ids AS bigint[]) IS NULL OR id = ANY(CAST(:ids AS bigint[]))
),
b AS (
    SELECT DISTINCT ON (source_id) source_id, district, safety_grade, appraised_on
    FROM layer_buildings
    WHERE source_id IN (SELECT building FROM w)
    ORDER BY source_id, source_part, updated_at DESC
)
SELECT w.id, w.source_id, w.source_part, w.building, w.support_type, w.accepted_on,
       w.last_checked_on, w.design_life_years, w.height_m, w.flag,
       b.safety_grade AS building_grade, b.appraised_on AS building_appraised_on,
       {district} AS district
FROM w LEFT JOIN b ON b.source_id = w.building
ORDER BY w.source_id, w.source_part, w.updated_at DESC, w.id
"""
#: A wall's district: its building's, else the district polygon it lies in.
_DISTRICT = """coalesce(b.district, (
           SELECT d.name FROM layer_districts d
           WHERE ST_Intersects(d.geom, ST_PointOnSurface(w.geom)) LIMIT 1))"""


def scheduled_walls(
    conn: Connection,
    as_of: dt.date,
    settings: WallScheduleRules | None = None,
    *,
    ids: Sequence[int] | None = None,
    districts: bool = True,
) -> list[ScheduledWall]:
    """Every curtain wall (or the layer rows ``ids``) with its due checks.

    One query for the walls (with their building's grade and, when
    ``districts``, their district: the building's, else the district polygon
    holding the wall), one per feed (checks: latest per wall and kind up to
    ``as_of``; events up to ``as_of``). The layer's typhoon flag
    (``wall_typhoon_key`` in ``extra``) is one more event. Rows come ordered by
    source id and part, the newest first, so the first row of a source id is
    the one a per-wall reader keeps.
    """
    s = settings or WallScheduleRules()
    rows = (
        conn.execute(
            text(_WALLS_SQL.format(district=_DISTRICT if districts else "b.district")),
            {"flag": s.wall_typhoon_key, "ids": list(ids) if ids is not None else None},
        )
        .mappings()
        .all()
    )
    wanted = sorted({r["source_id"] for r in rows}) if ids is not None else None
    checks: dict[str, dict[str, dt.date]] = defaultdict(dict)
    for r in conn.execute(
        text(
            "SELECT wall_id, kind, max(checked_on) AS day "
            "FROM feed_curtain_wall_checks WHERE checked_on <= :d "
            "AND (CAST(:w AS text[]) IS NULL OR wall_id = ANY(CAST(:w AS text[]))) "
            "GROUP BY wall_id, kind"
        ),
        {"d": as_of, "w": wanted},
    ):
        checks[r.wall_id][r.kind] = r.day
    events: dict[str, list[tuple[str, dt.date | None]]] = defaultdict(list)
    for r in conn.execute(
        text(
            "SELECT wall_id, event, occurred_on FROM feed_curtain_wall_events "
            "WHERE occurred_on <= :d "
            "AND (CAST(:w AS text[]) IS NULL OR wall_id = ANY(CAST(:w AS text[]))) "
            "ORDER BY occurred_on"
        ),
        {"d": as_of, "w": wanted},
    ):
        events[r.wall_id].append((r.event, r.occurred_on))
    out = []
    for r in rows:
        sid = r["source_id"]
        wall_events = list(events.get(sid, ()))
        flagged = flag_event(r["flag"])
        if flagged is not None and flagged not in wall_events:
            wall_events.append(flagged)
        wall = ScheduledWall(
            id=r["id"],
            source_id=sid,
            source_part=r["source_part"],
            building=r["building"],
            support_type=r["support_type"],
            accepted_on=r["accepted_on"],
            last_checked_on=r["last_checked_on"],
            design_life_years=r["design_life_years"],
            height_m=r["height_m"],
            building_grade=r["building_grade"],
            building_appraised_on=r["building_appraised_on"],
            district=r["district"],
            checks=dict(checks.get(sid, {})),
            events=wall_events,
        )
        wall.due.extend(
            next_checks(wall.as_wall(), wall.checks.items(), wall_events, as_of, s)
        )
        out.append(wall)
    log.debug(
        "curtain-wall schedules read",
        extra={"as_of": as_of.isoformat(), "walls": len(out)},
    )
    return out
