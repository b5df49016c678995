"""Warning levels, patrol tasks (ordering, frequency) and overdue patrols."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import text

from models.water import service
from models.water.features import segment_state
from models.water.network import network_from_database
from models.water.patrols import plan_tasks, warning_level
from models.water.settings import WaterSettings
from models.water.simulate import Readings

S = WaterSettings()
NOW = dt.datetime(2026, 5, 10, 12, tzinfo=dt.UTC)


def test_highest_level_applies():
    assert warning_level(0.1, 0, False, S)[0] == "none"
    assert warning_level(0.1, 0, True, S)[0] == "yellow"
    assert warning_level(0.1, 1, False, S)[0] == "orange"
    assert warning_level(0.1, 2, False, S)[0] == "red"
    assert warning_level(0.85, 0, False, S)[0] == "red"
    custom = WaterSettings(red_probability=0.95)
    assert warning_level(0.85, 0, False, custom)[0] == "orange"


def test_tasks_most_urgent_first_and_frequency_by_level():
    segs = [
        {
            "code": "A",
            "chief_id": "c1",
            "chief_level": "village",
            "level": "none",
            "probability": 0.1,
        },
        {
            "code": "B",
            "chief_id": "c1",
            "chief_level": "village",
            "level": "red",
            "probability": 0.9,
        },
        {
            "code": "C",
            "chief_id": "c1",
            "chief_level": "village",
            "level": "yellow",
            "probability": 0.4,
        },
        {
            "code": "D",
            "chief_id": "c2",
            "chief_level": "city",
            "level": "red",
            "probability": 0.9,
        },
    ]
    recent = NOW - dt.timedelta(hours=2)
    done = {
        ("c1", "A"): [recent],
        ("c1", "B"): [recent],
        ("c1", "C"): [recent],
        ("c2", "D"): [recent],
    }
    tasks = plan_tasks(
        segs,
        done,
        now=NOW,
        period_start=dt.date(2026, 5, 1),
        period_end=dt.date(2026, 5, 10),
        settings=S,
    )
    c1 = [t for t in tasks if t.chief_id == "c1"]
    assert [t.segment_code for t in c1] == ["B", "C", "A"]
    assert [t.urgency_rank for t in c1] == [1, 2, 3]
    assert [t.interval_days for t in c1] == [1.0, 5.0, 10.0]
    assert [t.patrols_required for t in c1] == [10, 2, 1]
    # city chiefs: quarterly whatever the level
    assert next(t for t in tasks if t.chief_id == "c2").interval_days == 91.0
    assert not any(t.overdue for t in tasks)


def test_overdue_task_comes_first():
    segs = [
        {"code": "A", "chief_id": "c1", "chief_level": "village", "level": "none"},
        {"code": "B", "chief_id": "c1", "chief_level": "village", "level": "red"},
    ]
    done = {
        ("c1", "A"): [NOW - dt.timedelta(days=12)],
        ("c1", "B"): [NOW - dt.timedelta(hours=3)],
    }
    tasks = plan_tasks(
        segs,
        done,
        now=NOW,
        period_start=dt.date(2026, 5, 1),
        period_end=dt.date(2026, 5, 10),
        settings=S,
    )
    assert tasks[0].segment_code == "A" and tasks[0].overdue
    assert tasks[0].overdue_days == pytest.approx(2.0)
    assert tasks[0].reason.startswith("OVERDUE")


@pytest.fixture
def rivers(engine):
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM layer_rivers WHERE source = 'test-water'"))
        conn.execute(text("DELETE FROM water_patrol_records WHERE chief_id LIKE 'W%'"))
        for i, (down, chief) in enumerate([("WR1", "W1"), ("WR2", "W1"), (None, "W2")]):
            conn.execute(
                text("""
                INSERT INTO layer_rivers (source, source_id, code, downstream_code,
                    chief_id, chief_level, remediated, geom)
                VALUES ('test-water', :c, :c, :d, :ch, 'village', true,
                        ST_Multi(ST_GeomFromText(:wkt, 4326)))"""),
                {
                    "c": f"WR{i}",
                    "d": down,
                    "ch": chief,
                    "wkt": f"LINESTRING(113.{i}0 23.1, 113.{i}1 23.1)",
                },
            )
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM layer_rivers WHERE source = 'test-water'"))
        conn.execute(text("DELETE FROM water_patrol_records WHERE chief_id LIKE 'W%'"))
        conn.execute(text("DELETE FROM layer_water_quality_warnings"))
        conn.execute(text("DELETE FROM layer_patrol_tasks"))


def test_warnings_and_patrol_layers(engine, rivers):
    net = network_from_database(engine)
    net_idx = net.index
    assert net.downstream[net_idx["WR0"]] == net_idx["WR1"]
    empty = Readings(
        np.zeros(0, np.int64),
        np.zeros(0),
        {"do": np.zeros(0)},
        NOW - dt.timedelta(days=180),
    )
    state = segment_state(net, empty, 180, S)
    proba = np.array([0.9 if c == "WR0" else 0.05 for c in net.codes])
    factors = [[{"factor": "pressure_local", "contribution": 1.0, "value": 1.0}]] * len(
        net
    )
    counts = service.write_warnings(
        engine, net, state, proba, factors, "test-v1", S, NOW
    )
    assert counts["red"] == 1
    # W1 patrolled WR1 recently; WR0 (red) never: overdue and first on the list
    service.record_patrol(
        engine,
        S,
        chief_id="W1",
        segment_code="WR1",
        started_at=NOW - dt.timedelta(days=1),
        duration_min=15,
        distance_km=1.2,
    )
    short = service.record_patrol(
        engine,
        S,
        chief_id="W2",
        segment_code="WR2",
        started_at=NOW - dt.timedelta(days=1),
        duration_min=5,
        distance_km=0.3,
    )
    assert short["meets_standard"] is False
    service.plan_patrols(
        engine,
        S,
        NOW,
        period_start=dt.date(2026, 5, 1),
        period_end=dt.date(2026, 5, 31),
    )
    w1 = service.tasks_for_chief(engine, "W1")
    assert [t["segment_code"] for t in w1] == ["WR0", "WR1"]
    assert w1[0]["overdue"] and not w1[1]["overdue"]
    # the too-short patrol does not count: WR2 is overdue, which is a warning
    with engine.connect() as conn:
        level, reasons, version = conn.execute(
            text(
                "SELECT level, reasons, model_version "
                "FROM layer_water_quality_warnings "
                "WHERE segment_code = 'WR2'"
            )
        ).one()
        versions = dict(
            conn.execute(
                text(
                    "SELECT layer_id, version FROM layer_versions WHERE layer_id IN "
                    "('water_quality_warnings', 'patrol_tasks')"
                )
            ).all()
        )
    assert level == "yellow" and version == "test-v1"
    assert any("overdue" in r for r in reasons)
    assert versions["water_quality_warnings"] > 0 and versions["patrol_tasks"] > 0


SKEW = dt.timedelta(minutes=S.patrol_clock_skew_minutes)
SECOND = dt.timedelta(seconds=1)


@pytest.mark.parametrize(
    "started_at, minutes, km, error",
    [
        (NOW, 30.0, 2.0, None),
        (NOW + SKEW, 30.0, 2.0, None),  # a clock running ahead, within the skew
        (NOW + SKEW + SECOND, 30.0, 2.0, "in the future"),
        (NOW + dt.timedelta(days=1), 30.0, 2.0, "in the future"),
        (NOW.replace(tzinfo=None), 30.0, 2.0, "time zone"),
        (NOW, 0.0, 0.0, None),  # recorded, does not meet the standard
        (NOW, S.patrol_max_minutes, S.patrol_max_km, None),
        (NOW, S.patrol_max_minutes + 0.1, 2.0, "duration_min"),
        (NOW, 30.0, S.patrol_max_km + 0.1, "distance_km"),
        (NOW, -0.1, 2.0, "duration_min"),
        (NOW, 30.0, -0.1, "distance_km"),
        (NOW, float("nan"), 2.0, "duration_min"),
        (NOW, 30.0, float("inf"), "distance_km"),
    ],
)
def test_patrol_records_that_cannot_be_true_are_refused(started_at, minutes, km, error):
    from gis_server.errors import InvalidParameter

    def check():
        service.check_patrol(
            S, started_at=started_at, duration_min=minutes, distance_km=km, now=NOW
        )

    if error is None:
        check()
    else:
        with pytest.raises(InvalidParameter, match=error):
            check()


def test_record_patrol_checks_before_writing(engine, rivers):
    from gis_server.errors import InvalidParameter

    with engine.connect() as conn:
        before = conn.execute(
            text("SELECT count(*) FROM water_patrol_records")
        ).scalar()
    with pytest.raises(InvalidParameter, match="in the future"):
        service.record_patrol(
            engine,
            S,
            chief_id="W1",
            segment_code="WR1",
            started_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2),
            duration_min=15,
            distance_km=1.2,
        )
    with engine.connect() as conn:
        after = conn.execute(text("SELECT count(*) FROM water_patrol_records")).scalar()
    assert after == before
