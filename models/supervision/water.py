"""River segments in the closed loop: the water-quality warnings of the model.

The relapse model (``models.water``) writes one row per segment into the
``water_quality_warnings`` layer at every scoring, with a level from its
predicted probability and the black-odorous rules. This domain raises each
yellow, orange or red segment as a supervision warning, so it follows the same
loop as every other warning: dispatched to the segment's river chief (the
responsible party), rectified with photos, verified and closed (销号) or sent
back, escalated when overdue. Its level, probability, grades and reasons are
the evidence. The evidence is the model's scoring: ``observed_at`` is the
segment's ``computed_at`` (the evaluation time when it has none), so a segment
still warned by a scoring made more than ``GIS_LOOP_REOPEN_AFTER_DAYS`` after
its warning was closed raises a new one, and a stale scoring never does
(``rules.Finding``).

The thresholds are the water domain's own (``GIS_WATER_*``: probability
cut-offs, black-odorous and GB 3838 limits); this module adds no threshold.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Connection, text

from models.supervision.rules import (
    LEVELS,
    Finding,
    Rule,
    evaluation_time,
    register_evaluator,
    register_rule,
)
from models.water.settings import WaterSettings

DOMAIN = "water"

#: The thresholds of this domain are the water model's (``GIS_WATER_*``).
SETTINGS = WaterSettings

RELAPSE = register_rule(
    Rule(
        id="water.relapse",
        domain=DOMAIN,
        title="River segment warned for black-odorous relapse",
        title_zh="河段返黑返臭预警",
        source="《城市黑臭水体整治工作指南》(2015) grades [S]; GB 3838-2002 classes "
        "[S]; 2021 Guangzhou river-chief guidance, levels yellow/orange/red [S]; "
        "the model's probability cut-offs [D] (GIS_WATER_*)",
        confidence="D",
        subject_layer="rivers",
        settings=(
            "yellow_probability",
            "orange_probability",
            "red_probability",
            "severe_grade_level",
            "mild_grade_level",
            "early_warning_level",
        ),
        description="A segment the water-quality model (or the black-odorous "
        "rules) warns at yellow, orange or red is a warning dispatched to its "
        "river chief; closing it is the chief's rectification, verified.",
    )
)

WARNINGS_SQL = text("""
SELECT DISTINCT ON (w.segment_code)
       w.segment_code, w.level, w.probability, w.grade, w.gb3838_class,
       w.reasons, w.model_version, w.computed_at,
       coalesce(w.chief_id, r.chief_id) AS chief_id,
       r.source_id AS river_id, r.district, r.name
FROM layer_water_quality_warnings w
LEFT JOIN layer_rivers r ON r.code = w.segment_code
WHERE w.level = ANY(:levels)
ORDER BY w.segment_code, r.id
""")


def evaluate(conn: Connection, as_of: dt.date) -> list[Finding]:
    """One finding per segment currently warned yellow, orange or red."""
    rows = conn.execute(WARNINGS_SQL, {"levels": list(LEVELS)}).mappings().all()
    at = evaluation_time(as_of)
    return [_finding(row, at) for row in rows]


def _finding(row: Any, at: dt.datetime) -> Finding:
    reasons = row["reasons"]
    if isinstance(reasons, str):
        reasons = json.loads(reasons)
    name = row["name"] or row["segment_code"]
    return Finding(
        rule=RELAPSE.id,
        subject_layer="rivers" if row["river_id"] else None,
        subject_id=row["river_id"] or row["segment_code"],
        level=row["level"],
        # the scoring is the evidence (the loop clamps a later one to ``at``)
        observed_at=row["computed_at"] or at,
        # a standing condition: one open warning per segment while it lasts
        period="",
        summary=f"{name} ({row['segment_code']}): {row['level']} relapse warning",
        evidence={
            "segment_code": row["segment_code"],
            "probability": row["probability"],
            "grade": row["grade"],
            "gb3838_class": row["gb3838_class"],
            "reasons": reasons,
            "model_version": row["model_version"],
        },
        responsible=row["chief_id"],
        district=row["district"],
    )


def demo_records(conn: Connection, seed: int, as_of: dt.date) -> dict[str, list]:
    """No records of its own: the demo's simulated warnings are its input."""
    return {}


register_evaluator(DOMAIN, evaluate)
