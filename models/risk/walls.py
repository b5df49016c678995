"""Curtain-wall statuses for the fall zones, from the shared schedule.

The walls' due checks come from :func:`models.wall_schedule.scheduled_walls`
(the layer, the ``curtain_wall_checks`` / ``curtain_wall_events`` feeds and
the grade of each wall's building: the same schedule the supervision rules
and the housing page use); :func:`models.risk.scoring.status_from_checks`
turns them into the reasons and steps a zone is scored on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Engine

from models.risk import scoring
from models.risk.settings import RiskSettings
from models.wall_schedule import WallScheduleRules, scheduled_walls


def wall_statuses(
    engine: Engine,
    settings: RiskSettings,
    today: dt.date,
    ids: Sequence[int] | None = None,
    schedule: WallScheduleRules | None = None,
) -> dict[int, tuple[scoring.WallStatus, float | None]]:
    """Schedule status and height of every curtain wall (or those in ``ids``).

    Keyed by the layer row's id (a wall of several parts has one zone per
    part, all with the wall's status).
    """
    schedule = schedule or WallScheduleRules()
    with engine.connect() as conn:
        walls = scheduled_walls(conn, today, schedule, ids=ids, districts=False)
    return {
        w.id: (
            scoring.status_from_checks(
                w.due, w.accepted_on, w.design_life_years, today, schedule
            ),
            w.height_m,
        )
        for w in walls
    }
