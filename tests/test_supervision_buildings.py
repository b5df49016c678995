"""Buildings supervision rules: each threshold from both sides, on a real PostGIS.

Hand-made buildings (``TB-*``) and curtain walls (``TW-*``) go into the layer
tables with ``source = 'test_bld'``; their readings, checks and events go
through :func:`ingest.feeds.load_feed`; the evaluator runs once for the
module and every case looks up its own findings. Everything is removed
afterwards.
"""

from __future__ import annotations

import datetime as dt
import doctest
import json

import pytest
from sqlalchemy import Engine, text

import models.supervision.buildings as mod
from ingest.feeds import load_feed
from layers.feeds import get_feed
from layers.supervision.buildings import FEEDS
from models.supervision.buildings import (
    DAYS_PER_MONTH,
    TZ,
    BuildingRules,
    MonthRate,
    evaluate,
    hazard_list,
    next_checks,
    reading_series,
    settlement_rates,
    sustained_rate,
)
from models.supervision.rules import EVALUATORS, RULES

SRC = "test_bld"
AS_OF = dt.date(2026, 12, 3)
END = dt.datetime(2026, 12, 3, 9, 0, tzinfo=TZ)
GEOM = "ST_Multi(ST_MakeEnvelope(113.30, 23.10, 113.3005, 23.1005, 4326))"
WALL_GEOM = "ST_SetSRID(ST_MakePoint(113.301, 23.101), 4326)"

#: building id -> (structure, safety grade)
BUILDINGS = {
    "TB-MT-LOW": ("masonry", "B"),
    "TB-MT-HIGH": ("brick_concrete", "B"),
    "TB-MT-RED": ("masonry", "B"),
    "TB-OT-LOW": ("rc_frame", "A"),
    "TB-OT-HIGH": ("rc_frame", "A"),
    "TB-OT-NOCRACK": ("rc_frame", "A"),
    "TB-VC-LOW": ("masonry", "A"),
    "TB-VC-HIGH": ("masonry", "A"),
    "TB-VC-SHORT": ("masonry", "A"),
    "TB-VC-NOLEN": ("masonry", "A"),
    "TB-NM-BB": ("rc_frame", "A"),
    "TB-NM-VC": ("rc_frame", "A"),
    "TB-BB-LOW": ("masonry", "A"),
    "TB-BB-HIGH": ("masonry", "A"),
    "TB-HE-LOW": ("masonry", "A"),
    "TB-HE-HIGH": ("masonry", "A"),
    "TB-HE-RED": ("masonry", "A"),
    "TB-SC-LOW": ("rc_frame", "A"),
    "TB-SC-HIGH": ("rc_frame", "A"),
    "TB-SC-ONE5": ("rc_frame", "A"),
    "TB-SC-TWO5": ("rc_frame", "A"),
    "TB-SR-BELOW": ("rc_frame", "A"),
    "TB-SR-ABOVE": ("rc_frame", "A"),
    "TB-SR-CONV": ("rc_frame", "A"),
    "TB-SR-NOTCONV": ("rc_frame", "A"),
    "TB-SR-RED": ("rc_frame", "A"),
    "TB-SR-FLAT": ("rc_frame", "A"),
    "TB-UG-LOW": ("rc_frame", "A"),
    "TB-UG-HIGH": ("rc_frame", "A"),
    "TB-UG-NOTNEAR": ("rc_frame", "A"),
    "TB-TR-LOW": ("masonry", "A"),
    "TB-TR-HIGH": ("masonry", "A"),
    "TB-TT-LOW": ("masonry", "A"),
    "TB-TT-HIGH": ("masonry", "A"),
    "TB-SM-BELOW": ("rc_frame", "A"),
    "TB-SM-ABOVE": ("rc_frame", "A"),
    "TB-SB-BELOW": ("rc_frame", "A"),
    "TB-SB-ABOVE": ("rc_frame", "A"),
    "TB-GRADE-D": ("masonry", "D"),
    "TB-GRADE-C": ("masonry", "C"),
    "TB-GRADE-C-ND": ("masonry", "C"),  # no appraisal date on record
}

#: wall id -> (support type, accepted on, last checked on, design life)
WALLS = {
    "TW-OVERDUE": ("frame", "2020-01-10", "2021-01-10", 25),
    "TW-RED": ("frame", "2019-01-01", "2020-01-01", 25),
    "TW-SOON": ("frame", "2015-01-01", "2022-01-31", 25),
    "TW-LATER": ("frame", "2015-01-01", "2022-02-02", 25),
    "TW-FEED": ("frame", "2019-01-01", "2020-01-01", 25),
    "TW-SILICONE": ("structural_silicone", "2014-06-01", "2024-06-01", 25),
    "TW-SILICONE-OK": ("structural_silicone", "2014-06-01", "2024-06-01", 25),
    "TW-POINT": ("point", "2010-01-01", "2023-11-01", 30),
    "TW-FRAME-SAME": ("frame", "2010-01-01", "2023-11-01", 30),
    "TW-LIFE": ("frame", "2000-01-01", "2025-03-01", 25),
    "TW-LIFE-OK": ("frame", "2000-01-01", "2026-03-01", 25),
    "TW-NEW": ("frame", "2025-11-01", None, None),
    "TW-NEW2": ("frame", "2026-01-10", None, None),
    "TW-TYPHOON": ("frame", "2020-01-10", "2026-01-01", 25),
    "TW-TYPHOON-OK": ("frame", "2020-01-10", "2026-01-01", 25),
    "TW-TYPHOON-OLD": ("frame", "2020-01-10", "2026-01-01", 25),
    "TW-DANGER": ("frame", "2020-01-10", "2026-01-01", 25),
    "TW-DANGER-OK": ("frame", "2020-01-10", "2026-01-01", 25),
    "TW-DANGER-ND": ("frame", "2020-01-10", "2026-01-01", 25),
    "TW-DANGER-ND-OK": ("frame", "2020-01-10", "2026-01-01", 25),
    "TW-EVENT-TODAY": ("frame", "2020-01-10", "2026-01-01", 25),
    "TW-SILICONE-LATE": ("structural_silicone", "2010-01-01", "2025-06-01", 25),
    "TW-SILICONE-3Y": ("structural_silicone", "2010-01-01", "2025-06-01", 25),
}

#: walls hanging on another building than TB-MT-LOW (grade B)
WALL_BUILDING = {
    "TW-DANGER": "TB-GRADE-D",
    "TW-DANGER-OK": "TB-GRADE-C",
    "TW-DANGER-ND": "TB-GRADE-C-ND",
    "TW-DANGER-ND-OK": "TB-GRADE-C-ND",
}
#: JGJ 125-2016 appraisal dates of the C / D buildings
APPRAISED = {
    "TB-GRADE-D": dt.date(2025, 6, 1),
    "TB-GRADE-C": dt.date(2026, 6, 1),
}


def reading(bid, sensor, kind, at, value, crack_type=None, near=None, **more):
    return {
        "building_id": bid,
        "sensor_id": sensor,
        "measured_at": at,
        "kind": kind,
        "value": value,
        "crack_type": crack_type,
        "near_underground_works": near,
        "crack_length_m": more.get("length"),
        "storey_height_m": more.get("storey"),
    }


def one(bid, kind, value, crack_type=None, sensor="P1", **more):
    at = END - dt.timedelta(days=2)
    if crack_type == "vertical_compression" and not more:
        more = {"length": 1.6, "storey": 3.0}  # longer than half the storey
    return reading(bid, sensor, kind, at, value, crack_type, **more)


def survey(bid: str, days: list[dt.datetime], rates: dict[str, float]) -> list[dict]:
    """Settlement surveyed on ``days``; between two surveys the rate (mm/month)
    of the month the later one falls in."""
    out, value = [], 0.0
    for k, day in enumerate(days):
        if k:
            gap = (day - days[k - 1]).total_seconds() / 86400
            value += rates[day.strftime("%Y-%m")] * gap / DAYS_PER_MONTH
        out.append(reading(bid, "S1", "settlement_mm", day, round(value, 6)))
    return out


MONTHLY = [dt.datetime(2026, m, 15, 9, tzinfo=TZ) for m in (7, 8, 9, 10, 11)]
BIWEEKLY = [
    dt.datetime(2026, 7, 1, 9, tzinfo=TZ) + dt.timedelta(days=14 * k) for k in range(11)
]  # 1 July .. 18 November: two or three a month


def monthly_settlement(bid: str, rates: dict[str, float]) -> list[dict]:
    """Readings every 5 days, linear within each month at the given mm/month."""
    out, value = [], 0.0
    day = dt.datetime(2026, 9, 1, 9, tzinfo=TZ)
    while day <= dt.datetime(2026, 11, 30, 9, tzinfo=TZ):
        out.append(reading(bid, "S1", "settlement_mm", day, round(value, 6)))
        nxt = day + dt.timedelta(days=1)
        value += rates[day.strftime("%Y-%m")] / DAYS_PER_MONTH
        day = nxt
    return [*out[::5], out[-1]]


def daily_settlement(bid: str, mm_day: float, near: bool) -> list[dict]:
    return [
        reading(
            bid,
            "S2",
            "settlement_mm",
            END - dt.timedelta(days=d),
            mm_day * (7 - d),
            near=near,
        )
        for d in range(7, -1, -1)
    ]


def widening(bid: str, start: float, per_week: float) -> list[dict]:
    return [
        reading(
            bid,
            "C1",
            "crack_width_mm",
            END - dt.timedelta(days=7 * (4 - k)),
            round(start + per_week * k, 4),
            "vertical_compression",
        )
        for k in range(5)
    ]


def readings() -> list[dict]:
    out = [
        one("TB-MT-LOW", "tilt_pct", 0.69),
        one("TB-MT-HIGH", "tilt_pct", 0.71),
        one("TB-MT-RED", "tilt_pct", 1.06),
        one("TB-OT-LOW", "tilt_pct", 0.99),
        one("TB-OT-LOW", "crack_width_mm", 0.3, "vertical_compression"),
        one("TB-OT-HIGH", "tilt_pct", 1.01),
        one("TB-OT-HIGH", "crack_width_mm", 0.3, "vertical_compression"),
        one("TB-OT-NOCRACK", "tilt_pct", 1.2),
        one("TB-VC-LOW", "crack_width_mm", 1.99, "vertical_compression"),
        one("TB-VC-HIGH", "crack_width_mm", 2.01, "vertical_compression"),
        one(
            "TB-VC-SHORT",
            "crack_width_mm",
            2.5,
            "vertical_compression",
            length=1.5,  # exactly half the storey height: not longer
            storey=3.0,
        ),
        one(
            "TB-VC-NOLEN",
            "crack_width_mm",
            2.5,
            "vertical_compression",
            length=None,
            storey=3.0,
        ),
        one("TB-NM-BB", "crack_width_mm", 1.6, "beam_bearing"),  # not masonry
        one("TB-NM-VC", "crack_width_mm", 3.5, "vertical_compression"),
        one("TB-BB-LOW", "crack_width_mm", 0.99, "beam_bearing"),
        one("TB-BB-HIGH", "crack_width_mm", 1.01, "beam_bearing"),
        one("TB-HE-LOW", "crack_width_mm", 0.49, "horizontal_eccentric"),
        one("TB-HE-HIGH", "crack_width_mm", 0.51, "horizontal_eccentric"),
        one("TB-HE-RED", "crack_width_mm", 0.76, "horizontal_eccentric"),
        one("TB-SC-LOW", "crack_width_mm", 9.9, "settlement"),
        one("TB-SC-HIGH", "crack_width_mm", 10.1, "settlement"),
        one("TB-SC-ONE5", "crack_width_mm", 5.1, "settlement"),
        one("TB-SC-ONE5", "crack_width_mm", 4.9, "settlement", sensor="P2"),
        one("TB-SC-TWO5", "crack_width_mm", 5.1, "settlement"),
        one("TB-SC-TWO5", "crack_width_mm", 5.1, "settlement", sensor="P2"),
    ]
    out += monthly_settlement(
        "TB-SR-BELOW", {"2026-09": 3.9, "2026-10": 3.9, "2026-11": 4.5}
    )
    out += monthly_settlement(
        "TB-SR-ABOVE", {"2026-09": 2.0, "2026-10": 4.2, "2026-11": 4.3}
    )
    out += monthly_settlement(
        "TB-SR-CONV", {"2026-09": 2.0, "2026-10": 6.0, "2026-11": 4.7}
    )
    out += monthly_settlement(
        "TB-SR-NOTCONV", {"2026-09": 2.0, "2026-10": 6.0, "2026-11": 4.9}
    )
    out += monthly_settlement(
        "TB-SR-RED", {"2026-09": 2.0, "2026-10": 6.1, "2026-11": 6.1}
    )
    out += monthly_settlement(
        "TB-SR-FLAT", {"2026-09": 3.9, "2026-10": 3.9, "2026-11": 3.9}
    )
    out += daily_settlement("TB-UG-LOW", 1.9, True)
    out += daily_settlement("TB-UG-HIGH", 2.1, True)
    out += daily_settlement("TB-UG-NOTNEAR", 2.5, False)
    out += widening("TB-TR-LOW", 1.4, 0.05)  # 1.6 mm, +0.05/week: 56 days to 2
    out += widening("TB-TR-HIGH", 0.8, 0.2)  # 1.6 mm, +0.2/week: 14 days to 2
    # masonry tilt 0.6 %: +0.02 %/week reaches 0.7 % in 35 days, +0.04 in 17.5
    for bid, per_week in (("TB-TT-LOW", 0.02), ("TB-TT-HIGH", 0.04)):
        out += [
            reading(
                bid,
                "T1",
                "tilt_pct",
                END - dt.timedelta(days=7 * (3 - k)),
                round(0.6 - per_week * (3 - k), 4),
            )
            for k in range(4)
        ]
    # sparse surveys: monthly (one a month) and fortnightly (two or three)
    out += survey("TB-SM-BELOW", MONTHLY, dict.fromkeys(MONTHS, 3.9))
    out += survey(
        "TB-SM-ABOVE",
        MONTHLY,
        {**dict.fromkeys(MONTHS, 2.0), "2026-10": 4.2, "2026-11": 4.3},
    )
    out += survey("TB-SB-BELOW", BIWEEKLY, dict.fromkeys(MONTHS, 3.9))
    out += survey("TB-SB-ABOVE", BIWEEKLY, dict.fromkeys(MONTHS, 4.1))
    return out


MONTHS = ("2026-07", "2026-08", "2026-09", "2026-10", "2026-11")


def checks() -> list[dict]:
    def c(wid, day, kind):
        return {"wall_id": wid, "checked_on": day, "kind": kind, "result": "合格"}

    return [
        c("TW-FEED", "2026-06-01", "safety_check"),
        c("TW-SILICONE-OK", "2024-06-01", "adhesive_sampling"),
        c("TW-TYPHOON-OK", "2026-10-01", "appraisal"),
        c("TW-TYPHOON-OLD", "2026-09-01", "appraisal"),
        c("TW-LIFE-OK", "2025-02-01", "appraisal"),
        c("TW-DANGER-OK", "2026-07-01", "appraisal"),
        c("TW-DANGER-ND-OK", "2019-05-01", "appraisal"),
        c("TW-FEED", "2027-01-01", "appraisal"),  # after as_of: ignored
        # sampled at ten years, then due every three: 2023-01-01 (red) ...
        c("TW-SILICONE-LATE", "2020-01-01", "adhesive_sampling"),
        # ... and 2026-06-01, 185 days ago (orange)
        c("TW-SILICONE-3Y", "2020-01-01", "adhesive_sampling"),
        c("TW-SILICONE-3Y", "2023-06-01", "adhesive_sampling"),
    ]


def events() -> list[dict]:
    return [
        {"wall_id": w, "occurred_on": "2026-09-15", "event": "typhoon"}
        for w in ("TW-TYPHOON", "TW-TYPHOON-OK", "TW-TYPHOON-OLD")
    ] + [{"wall_id": "TW-EVENT-TODAY", "occurred_on": AS_OF, "event": "burst_glass"}]


def clean(engine: Engine) -> None:
    with engine.begin() as conn:
        for layer in ("buildings", "curtain_walls"):
            conn.execute(
                text(f"DELETE FROM layer_{layer} WHERE source = :s"), {"s": SRC}
            )
        for spec in FEEDS:
            conn.execute(
                text(f"DELETE FROM {spec.table} WHERE source LIKE :s"), {"s": f"{SRC}%"}
            )


@pytest.fixture(scope="module")
def world(engine: Engine):
    clean(engine)
    with engine.begin() as conn:
        for bid, (structure, grade) in BUILDINGS.items():
            conn.execute(
                text(
                    "INSERT INTO layer_buildings (source, source_id, district, "
                    "structure, safety_grade, appraised_on, address, geom) VALUES "
                    f"(:src, :id, '天河区', :st, :g, :app, :addr, {GEOM})"
                ),
                {
                    "src": SRC,
                    "id": bid,
                    "st": structure,
                    "g": grade,
                    "app": APPRAISED.get(bid),
                    "addr": f"天河区测试路{bid}号",
                },
            )
        for wid, (support, accepted, last, life) in WALLS.items():
            conn.execute(
                text(
                    "INSERT INTO layer_curtain_walls (source, source_id, building, "
                    "support_type, accepted_on, last_checked_on, design_life_years, "
                    f"geom) VALUES (:src, :id, :b, :sup, :acc, :last, "
                    f":life, {WALL_GEOM})"
                ),
                {
                    "src": SRC,
                    "id": wid,
                    "b": WALL_BUILDING.get(wid, "TB-MT-LOW"),
                    "sup": support,
                    "acc": dt.date.fromisoformat(accepted),
                    "last": dt.date.fromisoformat(last) if last else None,
                    "life": life,
                },
            )
    reports = {
        "building_readings": load_feed(
            engine, get_feed("building_readings"), records=readings(), source=SRC
        ),
        "curtain_wall_checks": load_feed(
            engine, get_feed("curtain_wall_checks"), records=checks(), source=SRC
        ),
        "curtain_wall_events": load_feed(
            engine, get_feed("curtain_wall_events"), records=events(), source=SRC
        ),
    }
    for report in reports.values():
        assert report.rejected == 0, report.issues
    with engine.connect() as conn:
        findings = evaluate(conn, AS_OF)
    yield {"findings": findings, "reports": reports}
    clean(engine)


def found(world, subject: str, rule: str) -> list:
    return [
        f
        for f in world["findings"]
        if f.subject_id == subject and f.rule == f"buildings.{rule}"
    ]


CASES = [
    # (subject, rule, expected level or None)
    ("TB-MT-LOW", "masonry_tilt", None),
    ("TB-MT-HIGH", "masonry_tilt", "orange"),
    ("TB-MT-RED", "masonry_tilt", "red"),
    ("TB-OT-NOCRACK", "masonry_tilt", None),  # 1.2 % but not masonry
    ("TB-OT-LOW", "overall_tilt", None),
    ("TB-OT-HIGH", "overall_tilt", "orange"),
    ("TB-OT-NOCRACK", "overall_tilt", None),  # over 1 % but no crack
    ("TB-VC-LOW", "masonry_crack", None),
    ("TB-VC-HIGH", "masonry_crack", "orange"),  # 1.6 m of a 3.0 m storey
    ("TB-VC-SHORT", "masonry_crack", None),  # 1.5 m: not over half the storey
    ("TB-VC-NOLEN", "masonry_crack", "yellow"),  # length not recorded
    ("TB-NM-BB", "masonry_crack", None),  # masonry limits, rc frame
    ("TB-NM-VC", "masonry_crack", None),
    ("TB-BB-LOW", "masonry_crack", None),
    ("TB-BB-HIGH", "masonry_crack", "orange"),
    ("TB-HE-LOW", "masonry_crack", None),
    ("TB-HE-HIGH", "masonry_crack", "orange"),
    ("TB-HE-RED", "masonry_crack", "red"),
    ("TB-SC-LOW", "settlement_crack", None),
    ("TB-SC-HIGH", "settlement_crack", "orange"),
    ("TB-SC-ONE5", "settlement_crack", None),
    ("TB-SC-TWO5", "settlement_crack", "orange"),
    ("TB-SR-BELOW", "settlement_rate", None),  # only one month over 4
    ("TB-SR-ABOVE", "settlement_rate", "orange"),
    ("TB-SR-CONV", "settlement_rate", None),  # 6.0 -> 4.7: converging
    ("TB-SR-NOTCONV", "settlement_rate", "orange"),  # 6.0 -> 4.9
    ("TB-SR-RED", "settlement_rate", "red"),
    ("TB-UG-LOW", "underground_settlement_rate", None),
    ("TB-UG-HIGH", "underground_settlement_rate", "orange"),
    ("TB-UG-NOTNEAR", "underground_settlement_rate", None),
    ("TB-TR-LOW", "reading_trend", None),
    ("TB-TR-HIGH", "reading_trend", "yellow"),
    ("TB-TT-LOW", "reading_trend", None),  # tilt reaches 0.7 % in 35 days
    ("TB-TT-HIGH", "reading_trend", "yellow"),  # in 17.5 days
    ("TB-TT-HIGH", "masonry_tilt", None),  # 0.6 %: not over yet
    ("TB-SM-BELOW", "settlement_rate", None),  # monthly survey, 3.9 mm/month
    ("TB-SM-ABOVE", "settlement_rate", "orange"),  # monthly, 4.2 then 4.3
    ("TB-SB-BELOW", "settlement_rate", None),  # fortnightly, 3.9
    ("TB-SB-ABOVE", "settlement_rate", "orange"),  # fortnightly, 4.1
    ("TB-SR-FLAT", "reading_trend", None),  # 3.9 mm/month
    ("TB-SR-BELOW", "reading_trend", "yellow"),  # 4.5 mm/month lately
    ("TB-SR-ABOVE", "reading_trend", None),  # the rate rule already fired
    ("TW-OVERDUE", "wall_safety_check", "orange"),
    ("TW-RED", "wall_safety_check", "red"),
    ("TW-SOON", "wall_safety_check", "yellow"),  # due in 59 days
    ("TW-LATER", "wall_safety_check", None),  # due in 61 days
    ("TW-FEED", "wall_safety_check", None),  # checked again per the feed
    ("TW-SILICONE", "wall_adhesive_sampling", "red"),  # due 2024-06-01
    ("TW-SILICONE", "wall_safety_check", None),
    ("TW-SILICONE-OK", "wall_adhesive_sampling", None),
    ("TW-SILICONE-LATE", "wall_adhesive_sampling", "red"),  # due 2023-01-01
    ("TW-SILICONE-3Y", "wall_adhesive_sampling", "orange"),  # due 2026-06-01
    ("TW-FRAME-SAME", "wall_adhesive_sampling", None),
    ("TW-POINT", "wall_safety_check", "orange"),  # 3-year cycle
    ("TW-FRAME-SAME", "wall_safety_check", None),  # 5-year cycle
    ("TW-LIFE", "wall_safety_check", "orange"),  # yearly past design life
    ("TW-LIFE-OK", "wall_safety_check", None),
    ("TW-NEW", "wall_safety_check", "orange"),  # first check 2026-11-01
    ("TW-NEW2", "wall_safety_check", "yellow"),  # first check 2027-01-10
    ("TW-TYPHOON", "wall_event_appraisal", "red"),
    ("TW-TYPHOON-OK", "wall_event_appraisal", None),
    ("TW-TYPHOON-OLD", "wall_event_appraisal", "red"),  # appraised before it
    ("TW-EVENT-TODAY", "wall_event_appraisal", "yellow"),  # on the event day
    ("TW-LIFE", "wall_condition_appraisal", "red"),  # life ended 2025-01-01
    ("TW-LIFE-OK", "wall_condition_appraisal", None),  # appraised 2025-02-01
    ("TW-DANGER", "wall_condition_appraisal", "red"),  # grade D since 2025-06-01
    ("TW-DANGER-OK", "wall_condition_appraisal", None),  # appraised after C
    ("TW-DANGER-ND", "wall_condition_appraisal", "orange"),  # C, date unknown
    ("TW-DANGER-ND-OK", "wall_condition_appraisal", None),  # an appraisal on record
    ("TW-OVERDUE", "wall_condition_appraisal", None),  # grade B, within life
    ("TW-TYPHOON", "wall_safety_check", None),
]


@pytest.mark.parametrize(("subject", "rule", "level"), CASES)
def test_rule_threshold(world, subject, rule, level):
    hits = found(world, subject, rule)
    if level is None:
        assert hits == []
    else:
        assert [f.level for f in hits] == [level]


def test_every_rule_has_a_case_on_each_side():
    tested = {(rule, level is None) for _, rule, level in CASES}
    for rule in (r.split(".", 1)[1] for r in RULES if r.startswith("buildings.")):
        assert (rule, True) in tested and (rule, False) in tested, rule


def test_finding_evidence_period_and_responsible(world):
    (rate,) = found(world, "TB-SR-ABOVE", "settlement_rate")
    assert rate.period == "2026-11"
    months = rate.evidence["months"]
    assert [m["month"] for m in months] == ["2026-10", "2026-11"]
    assert months[0]["rate_mm_month"] == pytest.approx(4.2, abs=0.01)
    assert months[1]["rate_mm_month"] == pytest.approx(4.3, abs=0.01)
    assert rate.responsible == "天河区 住建" and rate.district == "天河区"
    assert rate.evidence["kind"] == "settlement_mm"  # what the trend chart draws
    (tilt,) = found(world, "TB-MT-HIGH", "masonry_tilt")
    assert tilt.evidence["value"] == 0.71 and tilt.evidence["threshold"] == 0.7
    (wall,) = found(world, "TW-OVERDUE", "wall_safety_check")
    assert wall.period == "2026-01-10"
    assert wall.evidence["days_overdue"] == 327
    assert wall.district == "天河区"  # through the wall's building
    (ug,) = found(world, "TB-UG-HIGH", "underground_settlement_rate")
    assert ug.evidence["rate_mm_day"] == pytest.approx(2.1)
    (trend,) = found(world, "TB-TR-HIGH", "reading_trend")
    assert trend.evidence["trends"][0]["days_to_threshold"] == pytest.approx(14.0)
    assert trend.evidence["kind"] == "crack_width_mm"
    (app,) = found(world, "TW-TYPHOON", "wall_event_appraisal")
    assert app.period == "2026-09-15" and "typhoon" in app.summary
    for f in world["findings"]:  # the loop stores evidence as JSON
        json.dumps(f.evidence)


def test_settings_change_thresholds(world, engine):
    """Thresholds are settings: raising the masonry limit clears the finding."""
    with engine.connect() as conn:
        findings = evaluate(conn, AS_OF, BuildingRules(masonry_tilt_max_pct=0.8))
    assert not [
        f
        for f in findings
        if f.subject_id == "TB-MT-HIGH" and f.rule == "buildings.masonry_tilt"
    ]
    assert EVALUATORS["buildings"] is evaluate


def test_hazard_list(world, engine):
    with engine.connect() as conn:
        rows = hazard_list(conn, AS_OF, district="天河区")
        other = hazard_list(conn, AS_OF, district="不存在区")
        short = hazard_list(conn, AS_OF, limit=3)
    ids = [r["subject_id"] for r in rows]
    assert other == [] and len(short) == 3
    assert {"TB-GRADE-D", "TB-GRADE-C", "TB-SR-RED", "TW-RED", "TW-OVERDUE"} <= set(ids)
    assert "TW-SOON" not in ids and "TB-TR-HIGH" not in ids  # yellow only
    assert "TB-MT-LOW" not in ids
    severities = [r["severity"] for r in rows]
    assert severities == sorted(severities, reverse=True)
    d = rows[ids.index("TB-GRADE-D")]
    assert d["level"] == "red" and "grade D" in d["reasons"][0]
    assert rows[ids.index("TB-GRADE-C")]["level"] == "orange"
    wall = rows[ids.index("TW-RED")]
    assert wall["layer"] == "curtain_walls" and wall["days_overdue"] == 701
    assert wall["rules"] == ["buildings.wall_safety_check"]


def test_reading_series(world, engine):
    with engine.connect() as conn:
        (series,) = reading_series(conn, "TB-SR-ABOVE", "settlement_mm")
        (crack,) = reading_series(conn, "TB-TR-HIGH", "crack_width_mm")
        assert reading_series(conn, "TB-SR-ABOVE", "tilt_pct") == []
    assert len(series.points) == 19 and series.unit == "mm"
    assert [m.month for m in series.monthly] == ["2026-09", "2026-10", "2026-11"]
    assert series.rate_per_day * DAYS_PER_MONTH == pytest.approx(4.3, abs=0.01)
    assert crack.threshold == 2.0 and crack.crack_type == "vertical_compression"
    assert crack.rate_per_day == pytest.approx(0.2 / 7)


def test_reading_series_fit_and_rate_limit(world, engine):
    with engine.connect() as conn:
        (series,) = reading_series(conn, "TB-SM-ABOVE", "settlement_mm")
        (tilt,) = reading_series(conn, "TB-TT-HIGH", "tilt_pct")
        (nm,) = reading_series(conn, "TB-NM-BB", "crack_width_mm")
    # a monthly survey: every month anchored on the survey before
    assert [m.month for m in series.monthly][-2:] == ["2026-10", "2026-11"]
    assert series.monthly[-1].rate_mm_month == pytest.approx(4.3, abs=0.01)
    assert series.rate_limit_per_month == 4.0 and tilt.rate_limit_per_month is None
    (t0, v0), (t1, v1) = tilt.fit
    assert (v1 - v0) / ((t1 - t0).days) == pytest.approx(0.04 / 7)
    assert tilt.threshold == 0.7 and nm.threshold is None  # masonry limit only


@pytest.mark.parametrize(
    ("building", "kind"),
    [("TB-SR-ABOVE", "settlement_mm"), ("TB-TR-HIGH", "crack_width_mm")],
)
def test_trend_chart(world, engine, building, kind, tmp_path):
    from map_ui.supervision import chart_png

    png = chart_png(engine, "trend", "en", building=building, kind=kind)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    empty = chart_png(engine, "trend", "en", building="TB-NONE", kind=kind)
    assert len(png) > len(empty)
    (tmp_path / f"{building}.png").write_bytes(png)


def test_feed_csv_bad_rows_rejected_with_reasons(engine, tmp_path):
    path = tmp_path / "readings.csv"
    path.write_text(
        "房屋编号,测点编号,监测时间,监测项目,监测值,裂缝类型\n"
        "TB-CSV,P1,2026-11-01 09:00,crack_width_mm,0.3,vertical_compression\n"
        "TB-CSV,P1,2026-11-02 09:00,crack_mm,0.3,\n"
        ",P1,2026-11-03 09:00,tilt_pct,0.2,\n"
        "TB-CSV,P1,yesterday,tilt_pct,0.2,\n"
        "TB-CSV,P1,2026-11-04 09:00,tilt_pct,abc,\n"
        "TB-CSV,P2,2026-11-05 09:00,crack_width_mm,0.4,diagonal\n"
        "TB-CSV,P3,2026-11-05 09:00,crack_width_mm,0.4,\n"
        "TB-CSV,P4,2026-11-05 09:00,settlement_mm,1.2,\n",
        encoding="utf-8",
    )
    try:
        report = load_feed(
            engine, get_feed("building_readings"), path, source=f"{SRC}-csv"
        )
        assert (report.read, report.inserted, report.rejected) == (8, 2, 6)
        rejected = {i.row: i.reason for i in report.issues if i.action == "rejected"}
        # row numbers are the file's lines (the header is line 1)
        assert set(rejected) == {3, 4, 5, 6, 7, 8}
        assert rejected[3].startswith("kind=")
        assert rejected[4] == "building_id is missing"
        assert rejected[5].startswith("measured_at=")
        assert rejected[6].startswith("value=")
        # a crack reading without a valid crack type: no crack rule could read it
        assert rejected[7].startswith("crack_type is missing or not one of")
        assert rejected[8].startswith("crack_type is missing or not one of")
        assert not [i for i in report.issues if i.action == "warning"]
        with engine.connect() as conn:
            stored = conn.execute(
                text(
                    "SELECT sensor_id, crack_type FROM feed_building_readings "
                    "WHERE building_id = 'TB-CSV' ORDER BY sensor_id"
                )
            ).all()
        assert [(r.sensor_id, r.crack_type) for r in stored] == [
            ("P1", "vertical_compression"),
            ("P4", None),  # a settlement reading needs no crack type
        ]
    finally:
        with engine.begin() as conn:
            conn.execute(
                text("DELETE FROM feed_building_readings WHERE source = :s"),
                {"s": f"{SRC}-csv"},
            )


def test_demo_records(world, engine):
    with engine.connect() as conn:
        a = mod.demo_records(conn, 7, AS_OF, buildings=12, walls=10)
        b = mod.demo_records(conn, 7, AS_OF, buildings=12, walls=10)
        known = set(
            conn.execute(text("SELECT source_id FROM layer_buildings")).scalars()
        )
    assert a == b
    recs = a["building_readings"]
    assert 0 < len(recs) < 3000
    assert {r["building_id"] for r in recs} <= known
    assert a["curtain_wall_events"]
    # loadable as they are, and the scenarios show up in the findings
    try:
        for feed_id, records in a.items():
            report = load_feed(
                engine, get_feed(feed_id), records=records, source=f"{SRC}-demo"
            )
            assert report.rejected == 0, report.issues
        with engine.connect() as conn:
            findings = evaluate(conn, AS_OF)
        rules = {f.rule for f in findings}
        assert {
            "buildings.settlement_rate",
            "buildings.wall_event_appraisal",
            "buildings.masonry_crack",
        } <= rules
    finally:
        with engine.begin() as conn:
            for spec in FEEDS:
                conn.execute(
                    text(f"DELETE FROM {spec.table} WHERE source = :s"),
                    {"s": f"{SRC}-demo"},
                )


def test_standing_conditions_are_observed_now_under_stable_periods(world, engine):
    from models.supervision.engine import end_of_day

    now = end_of_day(AS_OF)
    (tilt,) = found(world, "TB-MT-HIGH", "masonry_tilt")
    (wall,) = found(world, "TW-OVERDUE", "wall_safety_check")
    (crack,) = found(world, "TB-HE-HIGH", "masonry_crack")
    assert tilt.observed_at == wall.observed_at == crack.observed_at == now
    assert tilt.period == crack.period == ""
    (rate,) = found(world, "TB-SR-ABOVE", "settlement_rate")
    assert rate.observed_at < now  # record-based: the run's last reading
    # a C building without its appraisal date: the same period every day
    (nd,) = found(world, "TW-DANGER-ND", "wall_condition_appraisal")
    assert nd.period == "undated:dangerous_building"
    assert nd.evidence["due_on"] is None and "not recorded" in nd.summary
    with engine.connect() as conn:
        later = evaluate(conn, AS_OF + dt.timedelta(days=1))
    (again,) = [
        f
        for f in later
        if f.subject_id == "TW-DANGER-ND" and f.rule.endswith("condition_appraisal")
    ]
    assert (again.period, again.level) == (nd.period, nd.level)
    (again,) = [
        f
        for f in later
        if f.subject_id == "TW-OVERDUE" and f.rule.endswith("wall_safety_check")
    ]
    assert again.period == wall.period


def test_event_appraisal_yellow_within_the_grace_days(world, engine):
    graced = BuildingRules(event_appraisal_grace_days=10)
    with engine.connect() as conn:
        day_after = evaluate(conn, AS_OF + dt.timedelta(days=1))
        within = evaluate(conn, AS_OF + dt.timedelta(days=10), graced)
        past = evaluate(conn, AS_OF + dt.timedelta(days=11), graced)

    def level(findings):
        return [
            f.level
            for f in findings
            if f.subject_id == "TW-EVENT-TODAY" and f.rule.endswith("event_appraisal")
        ]

    assert level(day_after) == ["red"]  # no grace: overdue the day after
    assert level(within) == ["yellow"] and level(past) == ["red"]


def test_sparse_surveys_are_anchored(world):
    (monthly,) = found(world, "TB-SM-ABOVE", "settlement_rate")
    months = monthly.evidence["months"]
    assert [m["month"] for m in months] == ["2026-10", "2026-11"]
    assert all(m["anchored"] and m["points"] == 2 for m in months)
    assert months[0]["rate_mm_month"] == pytest.approx(4.2, abs=0.01)
    (biweekly,) = found(world, "TB-SB-ABOVE", "settlement_rate")
    assert all(
        m["rate_mm_month"] == pytest.approx(4.1, abs=0.01)
        for m in biweekly.evidence["months"]
    )


def test_vertical_compression_crack_evidence(world):
    (short,) = found(world, "TB-VC-NOLEN", "masonry_crack")
    (crack,) = short.evidence["cracks"]
    assert crack["longer_than_ratio"] is None and crack["level"] == "yellow"
    assert "storey height not recorded" in short.summary
    (high,) = found(world, "TB-VC-HIGH", "masonry_crack")
    assert high.evidence["cracks"][0]["longer_than_ratio"] is True


def test_cli_ingest_feed_json_reports_bad_rows(engine, tmp_path, monkeypatch):
    """A JSON file through `gis-server ingest feed`, a bad row reported."""
    import typer
    from typer.testing import CliRunner

    from gis_server.cli_supervision import ingest_feed_command
    from gis_server.settings import database_settings, ingest_settings

    url = engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("GIS_INGEST_REPORT_DIR", str(tmp_path / "reports"))
    database_settings.cache_clear()
    ingest_settings.cache_clear()
    path = tmp_path / "readings.json"
    rows = [
        reading(
            "TB-JSON",
            "C1",
            "crack_width_mm",
            "2026-11-01T09:00:00+08:00",
            0.3,
            "beam_bearing",
        ),
        reading("TB-JSON", "C2", "crack_width_mm", "2026-11-01T09:00:00+08:00", 0.3),
        reading("TB-JSON", "S1", "settlement_mm", "2026-11-01T09:00:00+08:00", 1.0),
    ]
    path.write_text(json.dumps({"records": rows}), encoding="utf-8")
    report = tmp_path / "report.json"
    app = typer.Typer()
    app.command()(ingest_feed_command)
    try:
        res = CliRunner().invoke(
            app,
            [
                "building_readings",
                str(path),
                "--source",
                f"{SRC}-json",
                "--report",
                str(report),
            ],
        )
        assert res.exit_code == 0, res.output
        assert "inserted 2" in " ".join(res.output.split())
        saved = json.loads(report.read_text(encoding="utf-8"))
        assert (saved["inserted"], saved["rejected"]) == (2, 1)
        (bad,) = [i for i in saved["issues"] if i["action"] == "rejected"]
        assert bad["row"] == 2 and "crack_type" in bad["reason"]
    finally:
        database_settings.cache_clear()
        ingest_settings.cache_clear()
        with engine.begin() as conn:
            conn.execute(
                text("DELETE FROM feed_building_readings WHERE source = :s"),
                {"s": f"{SRC}-json"},
            )


# -- pure functions ----------------------------------------------------------------


def test_doctests():
    result = doctest.testmod(mod)
    assert result.attempted > 10 and result.failed == 0


@pytest.mark.parametrize(
    ("survey_days", "rate", "fires"),
    [
        (MONTHLY, 3.95, False),
        (MONTHLY, 4.05, True),
        (BIWEEKLY, 3.95, False),
        (BIWEEKLY, 4.05, True),
    ],
)
def test_sparse_settlement_rates_each_side_of_the_limit(survey_days, rate, fires):
    recs = survey("X", survey_days, dict.fromkeys(MONTHS, rate))
    monthly = settlement_rates(
        [r["measured_at"] for r in recs], [r["value"] for r in recs]
    )
    assert {r.month for r in monthly} >= {"2026-09", "2026-10", "2026-11"}
    assert (sustained_rate(monthly, 4.0) is not None) is fires


def test_least_squares_resists_one_bad_endpoint():
    t = [dt.datetime(2026, 11, d, 9, tzinfo=TZ) for d in (1, 8, 15, 22, 29)]
    values = [0.0, 1.0, 2.0, 3.0, 4.0]  # 1 mm/week
    noisy = [*values[:-1], 6.0]  # one bad last reading
    (clean_rate,) = settlement_rates(t, values)
    (noisy_rate,) = settlement_rates(t, noisy)
    per_month = DAYS_PER_MONTH / 7
    assert clean_rate.rate_mm_month == pytest.approx(per_month)
    naive = (noisy[-1] - noisy[0]) / 28 * DAYS_PER_MONTH
    assert abs(noisy_rate.rate_mm_month - per_month) < abs(naive - per_month)


def test_sustained_rate_needs_calendar_consecutive_months():
    def m(month, rate):
        return MonthRate(month, rate, 4, END, END)

    run = sustained_rate([m("2025-12", 5.0), m("2026-01", 5.0)], 4.0)
    assert [r.month for r in run] == ["2025-12", "2026-01"]
    assert sustained_rate([m("2026-01", 5.0), m("2026-03", 5.0)], 4.0) is None
    assert sustained_rate([m("2026-01", 5.0)], 4.0, months=1) is not None


def test_next_checks_cases():
    s = BuildingRules()
    wall = {
        "support_type": "cable",
        "accepted_on": dt.date(2016, 3, 1),
        "last_checked_on": None,
        "design_life_years": None,
    }
    (first,) = next_checks(wall, [], [], AS_OF, s)
    assert first[:4] == ("safety_check", dt.date(2017, 3, 1), first.reason, "schedule")
    (later,) = next_checks(wall, [("safety_check", dt.date(2024, 5, 5))], [], AS_OF, s)
    assert later.due_on == dt.date(2027, 5, 5) and "every 3 years" in later.reason
    # checks after as_of do not count; an appraisal counts as the check
    (c,) = next_checks(wall, [("safety_check", dt.date(2027, 1, 1))], [], AS_OF, s)
    assert c.due_on == dt.date(2017, 3, 1)
    (c,) = next_checks(wall, [("appraisal", dt.date(2025, 1, 1))], [], AS_OF, s)
    assert c.due_on == dt.date(2028, 1, 1)
    strict = BuildingRules(appraisal_counts_as_check=False)
    (c,) = next_checks(wall, [("appraisal", dt.date(2025, 1, 1))], [], AS_OF, strict)
    assert c.due_on == dt.date(2017, 3, 1)
    # the design life caps the interval
    old = {
        "support_type": "frame",
        "accepted_on": dt.date(2002, 1, 1),
        "last_checked_on": dt.date(2024, 1, 1),
        "design_life_years": 25,
    }
    (c,) = next_checks(old, [], [], AS_OF, s)
    assert c.due_on == dt.date(2027, 1, 1) and "design life" in c.reason
    # several events: one appraisal, due from the first still pending
    ev = [
        ("fire", dt.date(2026, 5, 1)),
        ("burst_glass", dt.date(2026, 8, 1)),
        ("typhoon", dt.date(2025, 9, 1)),
    ]
    *_, app = next_checks(old, [("appraisal", dt.date(2026, 1, 1))], ev, AS_OF, s)
    assert app.kind == "appraisal" and app.due_on == dt.date(2026, 5, 1)
    assert "fire" in app.reason and "burst_glass" in app.reason
    assert "typhoon" not in app.reason


# -- the migration ------------------------------------------------------------------


def test_migration_matches_the_feed_declarations(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from layers import metadata

    mine = {spec.table for spec in FEEDS}

    def include(obj, name, type_, reflected, compare_to):
        table = (
            name
            if type_ == "table"
            else getattr(getattr(obj, "table", None), "name", None)
        )
        return table in mine

    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"include_object": include, "compare_type": True}
        )
        diff = compare_metadata(ctx, metadata)
    assert diff == []
