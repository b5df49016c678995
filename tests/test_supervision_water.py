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
SEGMENTS = (
    ("WS1", "WC1", "yellow", 0.41),
    ("WS2", "WC1", "none", 0.05),
    ("WS3", "WC2", "red", 0.93),
)


@pytest.fixture
def segments(engine) -> Iterator[None]:
    with engine.begin() as conn:
        for code, chief, level, p in SEGMENTS:
            conn.execute(
                text(
                    "INSERT INTO layer_rivers (source, source_id, code, name, "
                    "district, chief_id, geom) VALUES ('wtest', :c, :c, "
                    ":c || ' 河段', '天河区', :chief, ST_Multi(ST_MakeLine("
                    "ST_MakePoint(113.3, 23.1), ST_MakePoint(113.31, 23.11))))"
                ),
                {"c": code, "chief": chief},
            )
            conn.execute(
                text(
                    "INSERT INTO layer_water_quality_warnings (source, source_id, "
                    "segment_code, level, probability, grade, reasons, chief_id, "
                    "computed_at, geom) VALUES ('wtest', :c, :c, :level, :p, 'mild', "
                    "CAST(:reasons AS jsonb), :chief, :at, ST_Multi(ST_MakeLine("
                    "ST_MakePoint(113.3, 23.1), ST_MakePoint(113.31, 23.11))))"
                ),
                {
                    "c": code,
                    "level": level,
                    "p": p,
                    "chief": chief,
                    "reasons": '["DO < 2 mg/L"]',
                    "at": dt.datetime(2026, 11, 29, tzinfo=dt.UTC),
                },
            )
    yield
    with engine.begin() as conn:
        conn.execute(
            text(
                "DELETE FROM supervision_warning_events WHERE warning_id IN (SELECT id "
                "FROM layer_supervision_warnings WHERE rule = 'water.relapse')"
            )
        )
        conn.execute(
            text("DELETE FROM layer_supervision_warnings WHERE rule = 'water.relapse'")
        )
        conn.execute(
            text("DELETE FROM layer_water_quality_warnings WHERE source = 'wtest'")
        )
        conn.execute(text("DELETE FROM layer_rivers WHERE source = 'wtest'"))


def test_warned_segments_are_findings_for_their_chief(engine, segments):
    with engine.connect() as conn:
        findings = [
            f
            for f in water_domain.evaluate(conn, AS_OF)
            if f.evidence["segment_code"].startswith("WS")
        ]
    by_code = {f.evidence["segment_code"]: f for f in findings}
    assert set(by_code) == {"WS1", "WS3"}  # "none" is not a warning
    assert by_code["WS1"].level == "yellow" and by_code["WS1"].responsible == "WC1"
    assert by_code["WS3"].level == "red" and by_code["WS3"].responsible == "WC2"
    assert by_code["WS3"].subject_layer == "rivers"
    assert by_code["WS3"].evidence["probability"] == pytest.approx(0.93)
    assert by_code["WS3"].evidence["reasons"] == ["DO < 2 mg/L"]


def _scored(conn, at: dt.datetime) -> None:
    """The model scored segment WS3 again at ``at`` (still red)."""
    conn.execute(
        text(
            "UPDATE layer_water_quality_warnings SET computed_at = :at "
            "WHERE source = 'wtest' AND segment_code = 'WS3'"
        ),
        {"at": at},
    )


def test_relapse_warning_runs_the_loop_and_reopens_after_closure(
    engine, segments, tmp_path
):
    from models.supervision.demo import demo_png
    from models.supervision.evidence import store_evidence
    from models.supervision.settings import LoopSettings

    settings = LoopSettings(evidence_dir=tmp_path / "evidence")
    reopen = dt.timedelta(days=settings.reopen_after_days)
    supervisor = Actor("admin-test", "admin")
    scored = dt.datetime(2026, 10, 1, 8, tzinfo=dt.UTC)
    with engine.begin() as conn:
        _scored(conn, scored)
        evaluate(
            conn,
            dt.date(2026, 10, 1),
            domains=["water"],
            escalate=False,
            settings=settings,
        )
        warnings = loop.list_warnings(conn, rule="water.relapse", responsible="WC2")
        assert len(warnings) == 1 and warnings[0]["located"] is True
        wid = warnings[0]["id"]
        assert warnings[0]["observed_at"] == scored  # the scoring is the evidence
        t = dt.datetime(2026, 10, 2, 9, tzinfo=dt.UTC)
        loop.dispatch(
            conn, wid, supervisor, note="请河长组织整治", at=t, settings=settings
        )
        ref = store_evidence(conn, demo_png(3), "river.png", "image/png", settings)
        loop.rectify(conn, wid, CHIEF, "已清淤截污", [ref], at=t + dt.timedelta(days=1))
        closed = t + dt.timedelta(days=2)
        loop.verify(conn, wid, supervisor, accept=True, at=closed, settings=settings)
        # stored in the test's own folder, by checksum
        assert (tmp_path / "evidence" / ref.sha256[:2] / ref.sha256).is_file()

        def reevaluate(at: dt.datetime) -> list[dict]:
            evaluate(
                conn, at.date(), domains=["water"], escalate=False, settings=settings
            )
            return loop.list_warnings(conn, rule="water.relapse", responsible="WC2")

        # the same (stale) scoring, evaluated again later: still closed
        assert len(reevaluate(closed + reopen + dt.timedelta(days=2))) == 1
        # scored again soon after the closure: the records catching up
        _scored(conn, closed + dt.timedelta(days=5))
        assert len(reevaluate(closed + dt.timedelta(days=6))) == 1
        assert loop.get_warning(conn, wid)["state"] == "closed"
        # still warned by a scoring made past reopen_after_days: a new warning
        _scored(conn, closed + reopen + dt.timedelta(hours=1))
        again = reevaluate(closed + reopen + dt.timedelta(days=1))
        assert len(again) == 2
        assert {w["state"] for w in again} == {"closed", "raised"}
        assert {w["occurrence"] for w in again} == {1, 2}
