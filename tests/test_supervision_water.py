"""River segments in the closed loop: the model's relapse warnings become
supervision warnings dispatched to each segment's river chief."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from gis_server.audit import Actor
from models.supervision import loop
from models.supervision import water as water_domain
from models.supervision.engine import evaluate

AS_OF = dt.date(2026, 11, 30)
CHIEF = Actor("chief-test", "river_chief")
SEGMENTS = (("WS1", "WC1", "yellow", 0.41), ("WS2", "WC1", "none", 0.05),
            ("WS3", "WC2", "red", 0.93))


@pytest.fixture
def segments(engine) -> Iterator[None]:
    with engine.begin() as conn:
        for code, chief, level, p in SEGMENTS:
            conn.execute(text(
                "INSERT INTO layer_rivers (source, source_id, code, name, district, "
                "chief_id, geom) VALUES ('wtest', :c, :c, :c || ' 河段', '天河区', "
                ":chief, ST_Multi(ST_MakeLine(ST_MakePoint(113.3, 23.1), "
                "ST_MakePoint(113.31, 23.11))))"), {"c": code, "chief": chief})
            conn.execute(text(
                "INSERT INTO layer_water_quality_warnings (source, source_id, "
                "segment_code, level, probability, grade, reasons, chief_id, "
                "computed_at, geom) VALUES ('wtest', :c, :c, :level, :p, 'mild', "
                "CAST(:reasons AS jsonb), :chief, :at, ST_Multi(ST_MakeLine("
                "ST_MakePoint(113.3, 23.1), ST_MakePoint(113.31, 23.11))))"),
                {"c": code, "level": level, "p": p, "chief": chief,
                 "reasons": '["DO < 2 mg/L"]',
                 "at": dt.datetime(2026, 11, 29, tzinfo=dt.UTC)})
    yield
    with engine.begin() as conn:
        conn.execute(text(
            "DELETE FROM supervision_warning_events WHERE warning_id IN (SELECT id "
            "FROM layer_supervision_warnings WHERE rule = 'water.relapse')"))
        conn.execute(text(
            "DELETE FROM layer_supervision_warnings WHERE rule = 'water.relapse'"))
        conn.execute(text("DELETE FROM layer_water_quality_warnings "
                          "WHERE source = 'wtest'"))
        conn.execute(text("DELETE FROM layer_rivers WHERE source = 'wtest'"))


def test_warned_segments_are_findings_for_their_chief(engine, segments):
    with engine.connect() as conn:
        findings = [f for f in water_domain.evaluate(conn, AS_OF)
                    if f.evidence["segment_code"].startswith("WS")]
    by_code = {f.evidence["segment_code"]: f for f in findings}
    assert set(by_code) == {"WS1", "WS3"}  # "none" is not a warning
    assert by_code["WS1"].level == "yellow" and by_code["WS1"].responsible == "WC1"
    assert by_code["WS3"].level == "red" and by_code["WS3"].responsible == "WC2"
    assert by_code["WS3"].subject_layer == "rivers"
    assert by_code["WS3"].evidence["probability"] == pytest.approx(0.93)
    assert by_code["WS3"].evidence["reasons"] == ["DO < 2 mg/L"]


def test_relapse_warning_runs_the_loop_and_reopens_after_closure(engine, segments):
    with engine.begin() as conn:
        evaluate(conn, AS_OF, domains=["water"], escalate=False)
        warnings = loop.list_warnings(conn, rule="water.relapse", responsible="WC2")
        assert len(warnings) == 1 and warnings[0]["located"] is True
        wid = warnings[0]["id"]
        loop.dispatch(conn, wid, CHIEF, note="收到，安排巡河")
        from models.supervision.demo import demo_png
        from models.supervision.evidence import store_evidence
        from models.supervision.settings import loop_settings

        ref = store_evidence(conn, demo_png(3), "river.png", "image/png",
                             loop_settings())
        loop.rectify(conn, wid, CHIEF, "已清淤截污", [ref])
        loop.verify(conn, wid, Actor("admin-test", "admin"), accept=True)
        # the same state seen again the next day: unchanged, still closed
        evaluate(conn, AS_OF, domains=["water"], escalate=False)
        assert loop.get_warning(conn, wid)["state"] == "closed"
        # warned again after closure: a new warning of the same segment
        conn.execute(text(
            "UPDATE layer_water_quality_warnings SET computed_at = clock_timestamp() "
            "+ interval '1 minute' "
            "WHERE segment_code = 'WS3'"))
        evaluate(conn, dt.date.today(), domains=["water"], escalate=False)
        again = loop.list_warnings(conn, rule="water.relapse", responsible="WC2")
        assert len(again) == 2
        assert {w["state"] for w in again} == {"closed", "raised"}
