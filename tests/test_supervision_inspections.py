"""Water-engineering inspections: rules, feeds, the loop of a problem, charts."""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
import zlib

import pytest
from sqlalchemy import delete, func, select, text

from gis_server.audit import Actor
from gis_server.errors import IllegalTransition
from ingest.feeds import load_feed
from layers.feeds import get_feed
from layers.tables import feed_table, metadata
from map_ui import charts
from models.supervision import inspections as insp
from models.supervision.rules import RULES

TZ = insp.TZ
DOMAIN = insp.DOMAIN
AS_OF = dt.date(2026, 11, 30)
PREFIX = "T-INSP-"  # the ids this module writes (deleted afterwards)

CHECKLIST = {
    ("foundation", "F01"): {
        "item": "基坑边坡",
        "severity_default": "severe",
        "required": True,
    },
    ("foundation", "F02"): {
        "item": "地基承载力",
        "severity_default": "serious",
        "required": None,
    },  # empty: required
    ("foundation", "F04"): {
        "item": "地基处理记录",
        "severity_default": "general",
        "required": False,
    },
}


def _inspection(**over):
    row = {
        "inspection_id": "I1",
        "project": "GD0001",
        "stage": "foundation",
        "inspector": "陈工",
        "inspected_on": dt.date(2026, 11, 20),
        "district": "天河区",
        "lon": None,
        "lat": None,
        "checked_items": ["F01", "F02"],
    }
    return {**row, **over}


def _problem(**over):
    row = {
        "inspection_id": "I1",
        "problem_no": 1,
        "item_code": "F01",
        "severity": None,
        "description": "边坡裂缝",
        "measures": "加固",
        "responsible": "广州某建设工程有限公司",
        "photo_sha256": None,
    }
    return {**row, **over}


# -- rules (pure) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "level", "days", "listed"),
    [
        ("general", "yellow", 7, False),
        ("serious", "orange", 15, False),
        ("severe", "red", 30, True),
    ],
)
def test_problem_severity_sets_level_deadline_and_listing(
    severity, level, days, listed
):
    f = insp.problem_finding(
        _inspection(), _problem(severity=severity), CHECKLIST, insp.InspectionRules()
    )
    assert f.rule == "inspections.problem"
    assert f.level == level
    assert f.evidence["deadline_days"] == days
    assert (
        f.evidence["deadline"]
        == (dt.date(2026, 11, 20) + dt.timedelta(days=days)).isoformat()
    )
    assert f.evidence["supervised_listing"] is listed
    assert ("挂牌督办" in f.summary) is listed
    assert f.period == "I1/1" and f.subject_id == "GD0001"
    assert f.responsible == "广州某建设工程有限公司"


def test_problem_severity_defaults_to_checklist_item_then_setting():
    rules = insp.InspectionRules()
    from_item = insp.problem_finding(
        _inspection(), _problem(item_code="F02"), CHECKLIST, rules
    )
    assert from_item.evidence["severity"] == "serious" and from_item.level == "orange"
    assert from_item.evidence["severity_given"] is False
    unknown = insp.problem_finding(
        _inspection(), _problem(item_code="X9"), CHECKLIST, rules
    )
    assert unknown.evidence["severity"] == "general"
    assert unknown.evidence["item_in_checklist"] is False
    # thresholds are settings: a stricter deadline applies without code changes
    strict = insp.InspectionRules(deadline_severe_days=20)
    f = insp.problem_finding(_inspection(), _problem(), CHECKLIST, strict)
    assert f.evidence["deadline_days"] == 20 and f.level == "red"


def test_problem_on_a_site_uses_the_site_and_free_code_keeps_its_position():
    site = {"district": "海珠区", "contractor": "承建单位"}
    f = insp.problem_finding(
        _inspection(district=None),
        _problem(responsible=None),
        CHECKLIST,
        insp.InspectionRules(),
        site,
    )
    assert f.subject_layer == "construction_sites"
    assert f.district == "海珠区" and f.responsible == "承建单位"
    free = insp.problem_finding(
        _inspection(project="SW-2026-07", lon=113.3, lat=23.1),
        _problem(),
        CHECKLIST,
        insp.InspectionRules(),
    )
    assert free.subject_layer is None
    assert (free.evidence["lon"], free.evidence["lat"]) == (113.3, 23.1)


def test_checklist_complete_gives_no_finding():
    rules = insp.InspectionRules()
    # F04 is not required; F02 (required empty) counts as required
    assert insp.checklist_finding(_inspection(), set(), CHECKLIST, rules) is None
    # an item with a recorded problem was checked
    done = insp.checklist_finding(
        _inspection(checked_items=["F01"]), {"F02"}, CHECKLIST, rules
    )
    assert done is None
    # a stage without a loaded checklist cannot be judged
    assert (
        insp.checklist_finding(
            _inspection(stage="completion", checked_items=[]), set(), CHECKLIST, rules
        )
        is None
    )


def test_checklist_incomplete_lists_the_missing_items():
    rules = insp.InspectionRules()
    f = insp.checklist_finding(
        _inspection(checked_items='["F01"]'), set(), CHECKLIST, rules
    )
    assert f is not None and f.rule == "inspections.checklist_incomplete"
    assert f.evidence["missing"] == ["F02"]
    assert f.evidence["required"] == ["F01", "F02"]
    assert f.level == "yellow" and f.period == "I1"
    nothing = insp.checklist_finding(
        _inspection(checked_items=None), set(), CHECKLIST, rules
    )
    assert nothing.evidence["missing"] == ["F01", "F02"]


def test_rules_are_declared_with_sources_and_settings():
    fields = insp.InspectionRules.model_fields
    for rule_id in ("inspections.problem", "inspections.checklist_incomplete"):
        rule = RULES[rule_id]
        assert rule.source and rule.confidence in ("S", "R", "D")
        assert all(name in fields for name in rule.settings)
    for name, field in fields.items():
        assert field.description and field.description[:3] in ("[S]", "[R]", "[D]"), (
            name
        )


def test_parse_items_accepts_lists_json_and_text():
    assert insp.parse_items("F01，F02、F03") == ["F01", "F02", "F03"]
    assert insp.parse_items('"F01"') == ["F01"]
    assert insp.parse_items([]) == []


# -- feeds and the evaluator (database) --------------------------------------


@pytest.fixture
def clean(engine):
    def wipe():
        with engine.begin() as conn:
            for feed in ("inspection_problems", "inspections"):
                t = feed_table(feed)
                conn.execute(delete(t).where(t.c.inspection_id.like(f"{PREFIX}%")))
            t = feed_table("inspection_checklists")
            conn.execute(delete(t).where(t.c.source == "test-insp"))
            conn.execute(
                text(
                    "DELETE FROM layer_supervision_warnings "
                    "WHERE domain = 'inspections'"
                )
            )
            conn.execute(
                text("DELETE FROM layer_construction_sites WHERE source = 'test-insp'")
            )

    wipe()
    yield
    wipe()


def _load(engine, feed, records, **kw):
    return load_feed(engine, get_feed(feed), records=records, source="test-insp", **kw)


def test_feed_bad_rows_are_rejected_with_row_and_reason(engine, clean):
    report = _load(
        engine,
        "inspections",
        [
            {
                "inspection_id": f"{PREFIX}1",
                "project": "GD0001",
                "stage": "foundation",
                "inspected_on": "2026-11-20",
                "checked_items": ["F01"],
            },
            {
                "inspection_id": f"{PREFIX}2",
                "project": "GD0001",
                "stage": "roofing",
                "inspected_on": "2026-11-20",
            },
            {
                "inspection_id": f"{PREFIX}3",
                "project": "GD0001",
                "stage": "foundation",
                "inspected_on": "not a date",
            },
            {
                "inspection_id": f"{PREFIX}4",
                "stage": "foundation",
                "inspected_on": "2026-11-20",
            },
        ],
    )
    assert (report.inserted, report.rejected) == (1, 3)
    reasons = {i.row: i.reason for i in report.issues if i.action == "rejected"}
    assert "stage" in reasons[2] and "inspected_on" in reasons[3]
    assert "project" in reasons[4]
    problems = _load(
        engine,
        "inspection_problems",
        [
            {
                "inspection_id": f"{PREFIX}1",
                "problem_no": 1,
                "severity": "fatal",
                "description": "x",
            },
            {"inspection_id": f"{PREFIX}1", "problem_no": 2, "severity": "severe"},
            {"inspection_id": f"{PREFIX}1", "problem_no": -1, "description": "y"},
        ],
    )
    assert problems.inserted == 1 and problems.rejected == 2
    # an optional column that does not coerce is kept in extra with a warning
    assert any(
        i.action == "warning" and "severity" in i.reason for i in problems.issues
    )


def _fixture_records():
    checklist = [
        {"stage": s, "item_code": c, **row} for (s, c), row in CHECKLIST.items()
    ]
    inspections = [
        {
            "inspection_id": f"{PREFIX}A",
            "project": "T-SITE-1",
            "stage": "foundation",
            "inspector": "陈工",
            "inspected_on": "2026-11-20",
            "checked_items": "F01;F02",
        },
        {
            "inspection_id": f"{PREFIX}B",
            "project": "SW-FREE-9",
            "stage": "foundation",
            "inspector": "李工",
            "inspected_on": "2026-11-25",
            "district": "黄埔区",
            "lon": 113.45,
            "lat": 23.10,
            "checked_items": ["F01"],
        },
        {
            "inspection_id": f"{PREFIX}C",
            "project": "T-SITE-1",
            "stage": "foundation",
            "inspected_on": "2026-12-05",
            "checked_items": [],
        },  # after as_of
    ]
    problems = [
        {
            "inspection_id": f"{PREFIX}A",
            "problem_no": 1,
            "item_code": "F01",
            "description": "边坡裂缝",
            "responsible": "承建单位甲",
        },
        {
            "inspection_id": f"{PREFIX}A",
            "problem_no": 2,
            "item_code": "F02",
            "severity": "general",
            "description": "检测报告缺页",
        },
        {
            "inspection_id": f"{PREFIX}C",
            "problem_no": 1,
            "item_code": "F01",
            "description": "未来的问题",
        },
    ]
    return checklist, inspections, problems


def _site(engine):
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO layer_construction_sites (source, source_id, source_part, "
                "project, contractor, district, status, geom) VALUES ('test-insp', "
                "'T-SITE-1', 0, '测试水闸项目', '承建单位乙', '天河区', 'active', "
                "ST_Multi(ST_MakeEnvelope(113.33, 23.12, 113.34, 23.13, 4326)))"
            )
        )


def test_evaluator_reads_the_feeds_up_to_as_of(engine, clean):
    _site(engine)
    checklist, inspections, problems = _fixture_records()
    for feed, rows in (
        ("inspection_checklists", checklist),
        ("inspections", inspections),
        ("inspection_problems", problems),
    ):
        assert _load(engine, feed, rows, strict=True).rejected == 0
    with engine.connect() as conn:
        found = [
            f
            for f in insp.evaluate(conn, AS_OF)
            if f.subject_id in ("T-SITE-1", "SW-FREE-9")
        ]
    by_key = {(f.rule, f.period): f for f in found}
    assert set(by_key) == {
        ("inspections.problem", f"{PREFIX}A/1"),
        ("inspections.problem", f"{PREFIX}A/2"),
        ("inspections.checklist_incomplete", f"{PREFIX}B"),
    }
    a1 = by_key[("inspections.problem", f"{PREFIX}A/1")]
    assert a1.level == "red" and a1.evidence["supervised_listing"]
    assert a1.subject_layer == "construction_sites" and a1.district == "天河区"
    assert a1.responsible == "承建单位甲"  # the problem's own party first
    a2 = by_key[("inspections.problem", f"{PREFIX}A/2")]
    assert a2.level == "yellow" and a2.responsible == "承建单位乙"  # the contractor
    b = by_key[("inspections.checklist_incomplete", f"{PREFIX}B")]
    assert b.evidence["missing"] == ["F02"] and b.subject_layer is None


def _png_bytes() -> bytes:
    """A real 1x1 PNG (a photo of the rectified work, as far as the loop sees)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return (
            struct.pack(">I", len(data))
            + body
            + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
        )

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


def test_a_problem_goes_round_the_loop(engine, clean, tmp_path):
    """notice -> reply with photo -> rejected -> reply -> confirmed -> closed."""
    from models.supervision import loop
    from models.supervision.evidence import store_evidence
    from models.supervision.settings import LoopSettings

    _site(engine)
    checklist, inspections, problems = _fixture_records()
    for feed, rows in (
        ("inspection_checklists", checklist),
        ("inspections", inspections),
        ("inspection_problems", problems),
    ):
        _load(engine, feed, rows)
    inspector = Actor("inspector-chen", "supervisor")
    project = Actor("contractor-a", "responsible")
    settings = LoopSettings(evidence_dir=tmp_path / "evidence")
    t0 = dt.datetime(2026, 11, 30, 9, tzinfo=TZ)
    with engine.begin() as conn:
        findings = [f for f in insp.evaluate(conn, AS_OF) if f.period == f"{PREFIX}A/1"]
        raised = loop.raise_findings(conn, findings, inspector, at=t0)
        (wid,) = raised.ids
        notice = insp.issue_notice(conn, wid, inspector, at=t0)
        assert notice["state"] == "dispatched"
        # severe: 30 days from the notice, supervised listing in the note
        assert dt.datetime.fromisoformat(notice["deadline"]) == dt.datetime(
            2026, 12, 30, 23, 59, 59, tzinfo=TZ
        )
        photo = store_evidence(conn, _png_bytes(), "整改后.png", "image/png", settings)
        loop.rectify(
            conn, wid, project, "已加固边坡", [photo], at=t0 + dt.timedelta(days=3)
        )
        with pytest.raises(IllegalTransition):  # cannot reply twice
            loop.rectify(conn, wid, project, "again", [photo])
        back = loop.verify(
            conn,
            wid,
            inspector,
            accept=False,
            note="裂缝仍在，需重新加固",
            at=t0 + dt.timedelta(days=4),
        )
        assert back["state"] == "dispatched"
        photo2 = store_evidence(
            conn, _png_bytes() + b"\x00", "复查.png", "image/png", settings
        )
        loop.rectify(
            conn,
            wid,
            project,
            "已重新加固并复测",
            [photo2],
            at=t0 + dt.timedelta(days=9),
        )
        done = loop.verify(
            conn,
            wid,
            inspector,
            accept=True,
            note="复查合格，销号",
            at=t0 + dt.timedelta(days=10),
        )
        assert done["state"] == "closed"
        warning = loop.get_warning(conn, wid)
        actions = [e["action"] for e in warning["events"]]
        assert actions == [
            "raise",
            "dispatch",
            "rectify",
            "reject",
            "rectify",
            "accept",
        ]
        assert "挂牌督办" in warning["events"][1]["note"]
        assert [e["sha256"] for e in warning["events"][2]["evidence"]] == [photo.sha256]
        audited = conn.execute(
            text(
                "SELECT count(*) FROM audit_log WHERE target_kind = 'warning' "
                "AND target = :t"
            ),
            {"t": str(wid)},
        ).scalar_one()
        assert audited == 6


def test_an_unanswered_notice_escalates(engine, clean):
    from models.supervision import loop

    _site(engine)
    checklist, inspections, problems = _fixture_records()
    for feed, rows in (
        ("inspection_checklists", checklist),
        ("inspections", inspections),
        ("inspection_problems", problems),
    ):
        _load(engine, feed, rows)
    actor = Actor("inspector-li", "supervisor")
    t0 = dt.datetime(2026, 11, 30, 9, tzinfo=TZ)
    with engine.begin() as conn:
        findings = [
            f for f in insp.evaluate(conn, AS_OF) if f.period == f"{PREFIX}A/2"
        ]  # general: 7 days
        (wid,) = loop.raise_findings(conn, findings, actor, at=t0).ids
        insp.issue_notice(conn, wid, actor, at=t0)
        assert loop.escalate_overdue(conn, t0 + dt.timedelta(days=7), actor) == []
        assert wid in loop.escalate_overdue(
            conn, t0 + dt.timedelta(days=8, hours=15), actor
        )
        assert loop.get_warning(conn, wid)["escalation"] == 1
        assert insp.ESCALATION_ZH[1] == "督办"


def _loaded(engine) -> None:
    _site(engine)
    checklist, inspections, problems = _fixture_records()
    for feed, rows in (
        ("inspection_checklists", checklist),
        ("inspections", inspections),
        ("inspection_problems", problems),
    ):
        _load(engine, feed, rows)


@pytest.mark.parametrize(
    ("period", "days", "listed"),
    [(f"{PREFIX}A/1", 30, True), (f"{PREFIX}A/2", 7, False)],
)
def test_any_dispatch_gets_the_notice_deadline_and_listing(
    engine, clean, tmp_path, period, days, listed
):
    """The API and the CLI dispatch with ``loop.dispatch``: the domain's
    deadline (days by severity from the notice) and listing apply there too."""
    from models.supervision import loop
    from models.supervision.evidence import store_evidence
    from models.supervision.settings import LoopSettings

    _loaded(engine)
    inspector = Actor("inspector-huang", "housing_officer")
    settings = LoopSettings(evidence_dir=tmp_path / "evidence")
    t0 = dt.datetime(2026, 12, 3, 10, tzinfo=TZ)
    with engine.begin() as conn:
        findings = [f for f in insp.evaluate(conn, AS_OF) if f.period == period]
        (wid,) = loop.raise_findings(conn, findings, inspector, at=t0).ids
        assert loop.get_warning(conn, wid)["listed"] is listed
        ids = {w["id"] for w in loop.list_warnings(conn, domain=DOMAIN, listed=True)}
        assert (wid in ids) is listed
        out = loop.dispatch(conn, wid, inspector, note="限期整改", at=t0)
        due = dt.datetime(2026, 12, 3, 23, 59, 59, tzinfo=TZ) + dt.timedelta(days)
        assert dt.datetime.fromisoformat(out["deadline"]) == due
        note = loop.get_warning(conn, wid)["events"][-1]["note"]
        assert ("挂牌督办" in note) is listed and note.startswith("限期整改")
        # a reply sent back: a new notice, the same days from the rejection
        photo = store_evidence(conn, _png_bytes(), "a.png", "image/png", settings)
        loop.rectify(conn, wid, Actor("contractor", "responsible"), "已整改", [photo])
        back = t0 + dt.timedelta(days=2)
        loop.verify(conn, wid, inspector, False, "未整改到位", at=back)
        assert loop.get_warning(conn, wid)["deadline"] == due + dt.timedelta(days=2)


def test_notice_days_follow_the_current_settings():
    problem = {"rule": "inspections.problem", "evidence": {"severity": "serious"}}
    skipped = {"rule": "inspections.checklist_incomplete", "evidence": {}}
    rules = insp.InspectionRules(deadline_serious_days=10, checklist_deadline_days=3)
    at = dt.datetime(2026, 12, 1, 23, 30, tzinfo=TZ)
    assert insp.notice_days(problem, rules) == 10
    assert insp.notice_days(skipped, rules) == 3
    assert insp.notice_deadline_of(problem, at, rules) == dt.datetime(
        2026, 12, 11, 23, 59, 59, tzinfo=TZ
    )


def test_photo_reference_is_checked_at_ingest_and_its_file_followed(
    engine, clean, tmp_path
):
    from models.supervision.evidence import store_evidence
    from models.supervision.settings import LoopSettings

    _loaded(engine)
    photo = _png_bytes() + b"photo"
    sha = hashlib.sha256(photo).hexdigest()
    report = _load(
        engine,
        "inspection_problems",
        [
            {
                "inspection_id": f"{PREFIX}A",
                "problem_no": 5,
                "description": "a",
                "photo_sha256": sha,
            },
            {
                "inspection_id": f"{PREFIX}A",
                "problem_no": 6,
                "description": "b",
                "photo_sha256": "IMG_0001.jpg",
            },
            {
                "inspection_id": f"{PREFIX}A",
                "problem_no": 7,
                "description": "c",
                "photo_sha256": sha.upper(),
            },
        ],
    )
    assert (report.inserted, report.rejected) == (1, 2)
    reasons = [i.reason for i in report.issues if i.action == "rejected"]
    assert all("not a SHA-256" in r for r in reasons)

    def evidence_of_problem_5():
        with engine.connect() as conn:
            (f,) = [x for x in insp.evaluate(conn, AS_OF) if x.period.endswith("/5")]
        return f.evidence

    with engine.connect() as conn:
        assert (f"{PREFIX}A", 5, sha) in insp.unstored_photos(conn, "test-insp")
    assert evidence_of_problem_5()["photo_stored"] is False  # accepted, flagged
    with engine.begin() as conn:
        store_evidence(
            conn,
            photo,
            "现场.png",
            "image/png",
            LoopSettings(evidence_dir=tmp_path / "evidence"),
        )
    with engine.connect() as conn:
        assert insp.unstored_photos(conn, "test-insp") == []
    assert evidence_of_problem_5()["photo_stored"] is True


def test_cli_ingest_warns_of_photos_not_stored(
    engine, clean, db_settings, monkeypatch, tmp_path
):
    import typer
    from typer.testing import CliRunner

    from gis_server.cli_supervision import console, ingest_feed_command
    from gis_server.settings import database_settings, ingest_settings

    _loaded(engine)
    monkeypatch.setenv("DATABASE_URL", db_settings.effective_url())
    monkeypatch.setenv("GIS_INGEST_REPORT_DIR", str(tmp_path / "reports"))
    monkeypatch.setattr(console, "_width", 250)
    database_settings.cache_clear()
    ingest_settings.cache_clear()
    sha = hashlib.sha256(b"never uploaded").hexdigest()
    path = tmp_path / "problems.csv"
    path.write_text(
        "inspection_id,problem_no,description,photo_sha256\n"
        f"{PREFIX}A,8,漏水,{sha}\n{PREFIX}A,9,渗漏,not-a-hash\n",
        encoding="utf-8",
    )
    app = typer.Typer()
    app.command()(ingest_feed_command)
    try:
        res = CliRunner().invoke(
            app, ["inspection_problems", str(path), "--source", "test-insp"]
        )
    finally:
        database_settings.cache_clear()
        ingest_settings.cache_clear()
    out = " ".join(res.output.split())
    assert res.exit_code == 0, out
    assert "rejected 1" in out  # the malformed reference
    assert f"{PREFIX}A/8 ({sha[:12]})" in out and "not stored yet" in out


def test_migration_matches_the_declarations(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    ours = {
        "feed_inspection_checklists",
        "feed_inspections",
        "feed_inspection_problems",
    }
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)

    def table_of(entry):
        if isinstance(entry, list):  # modify_* entries come as lists
            entry = entry[0]
        for item in entry[1:]:
            name = getattr(item, "name", None)
            table = getattr(item, "table", None)
            if table is not None:
                return table.name
            if isinstance(item, str) and item in ours:
                return item
            if name in ours:
                return name
        return None

    assert [d for d in diff if table_of(d) in ours] == []
    with engine.connect() as conn:
        n = conn.execute(
            select(func.count()).select_from(feed_table("inspections"))
        ).scalar_one()
    assert n >= 0


# -- demo ----------------------------------------------------------------------


def test_demo_records_are_deterministic_and_load_cleanly(engine, clean):
    _site(engine)
    with engine.connect() as conn:
        a = insp.demo_records(conn, 7, AS_OF, n=12)
        b = insp.demo_records(conn, 7, AS_OF, n=12)
    assert a == b
    assert len(a["inspections"]) == 12
    assert {r["project"] for r in a["inspections"]} <= {r for r in _site_ids(engine)}
    for rec in a["inspections"]:
        rec["inspection_id"] = PREFIX + rec["inspection_id"]
    for rec in a["inspection_problems"]:
        rec["inspection_id"] = PREFIX + rec["inspection_id"]
    for feed, rows in a.items():
        assert _load(engine, feed, rows, strict=True).rejected == 0, feed


def _site_ids(engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT source_id FROM layer_construction_sites "
                    "WHERE status IN ('active', 'suspended')"
                )
            ).scalars()
        )


# -- charts ------------------------------------------------------------------

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _size(png: bytes) -> tuple[int, int]:
    return struct.unpack(">II", png[16:24])


@pytest.mark.parametrize(
    "draw",
    [
        lambda: charts.bar_chart(
            [{"k": "天河区", "n": 3, "m": 1}, {"k": "越秀区", "n": 1, "m": 0}],
            "k",
            ["n", "m"],
            "按区排名",
        ),
        lambda: charts.line_chart(
            {"沉降": [(dt.date(2026, 11, d), d * 0.8) for d in range(1, 29)]},
            "沉降趋势",
            {"预警 20 mm": 20.0},
        ),
        lambda: charts.pie_chart({"已预警": 3, "已销号": 2, "已派发": 0}, "状态"),
        lambda: charts.table_png(
            [{"a": "天河区", "b": 2}] * 30, [("a", "区"), "b"], "清单"
        ),
    ],
)
def test_charts_are_small_deterministic_pngs(draw):
    png = draw()
    assert png[:8] == PNG_MAGIC
    assert len(png) < 100_000
    w, h = _size(png)
    assert w == 640 and 100 < h <= 900
    assert draw() == png  # same data, same bytes


@pytest.mark.parametrize(
    "draw",
    [
        lambda: charts.bar_chart([], "k", "n", "空"),
        lambda: charts.line_chart({"s": []}, "空", {"limit": 1.0}),
        lambda: charts.line_chart({}, "空"),
        lambda: charts.pie_chart({"a": 0}, "空"),
        lambda: charts.table_png([], ["a"], "空"),
    ],
)
def test_charts_of_no_data_say_so(draw):
    png = draw()
    assert png[:8] == PNG_MAGIC and len(png) < 100_000
    assert png != charts.bar_chart([{"k": "x", "n": 1}], "k", "n", "空")


def test_a_cjk_font_is_found_or_charts_fall_back_to_english():
    font = charts.cjk_font()
    assert charts.chart_lang("zh") == ("zh" if font else "en")
    assert charts.chart_lang("en") == "en"


@pytest.mark.parametrize(
    "module", ["models.supervision.inspections", "map_ui.supervision", "map_ui.charts"]
)
def test_doctests(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
