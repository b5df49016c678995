"""Construction-site wage rules: each rule on each side of its threshold.

Every case is loaded through the feed ingest into the session's real PostGIS
and evaluated with :func:`models.supervision.sites.evaluate`; the sites are
rows of ``layer_construction_sites`` with ids starting ``T-`` (findings on
other sites, from other tests, are ignored).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from gis_server.errors import StrictIngestFailed
from ingest.feeds import load_feed
from layers import metadata
from layers.feeds import get_feed
from layers.supervision.sites import FEEDS, looks_like_id_number
from models.supervision import sites as S
from models.supervision.engine import end_of_day
from models.supervision.rules import EVALUATORS, RULES
from models.supervision.sites import SiteRules, add_working_days, working_days_between

D = dt.date
AS_OF = D(2026, 11, 30)  # a Monday
TZ = S.TZ
NOW = end_of_day(AS_OF)  # when a standing condition is observed
SOURCE = "test_sites"
RULES_ = SiteRules()


def _site(
    conn,
    site_id: str,
    contractor: str = "T建设",
    status: str = "active",
    started_on: dt.date = D(2025, 1, 6),
    district: str = "天河区",
) -> None:
    conn.execute(
        text(
            "INSERT INTO layer_construction_sites "
            "(source, source_id, project, contractor, district, status, started_on, "
            "geom) VALUES (:src, :id, :id, :c, :d, :st, :on, ST_Multi(ST_Buffer("
            "ST_SetSRID(ST_MakePoint(113.3, 23.1), 4326), 0.001)))"
        ),
        {
            "src": SOURCE,
            "id": site_id,
            "c": contractor,
            "d": district,
            "st": status,
            "on": started_on,
        },
    )


@pytest.fixture
def db(engine) -> Iterator:
    """The engine, with this module's rows removed before and after."""

    def clean() -> None:
        with engine.begin() as conn:
            conn.execute(
                text("DELETE FROM layer_construction_sites WHERE source = :s"),
                {"s": SOURCE},
            )
            for spec in FEEDS:
                conn.execute(
                    text(f"DELETE FROM {spec.table} WHERE source = :s"), {"s": SOURCE}
                )

    clean()
    yield engine
    clean()


def _load(engine, feed: str, records: list[dict], **kw):
    report = load_feed(engine, get_feed(feed), records=records, source=SOURCE, **kw)
    return report


def _findings(engine, rule: str, as_of: dt.date = AS_OF, settings=RULES_):
    with engine.connect() as conn:
        found = S.evaluate(conn, as_of, settings)
    return {
        (f.subject_id, f.period): f
        for f in found
        if f.rule == rule and f.subject_id.startswith("T-")
    }


def _sites(engine, *specs: tuple) -> None:
    with engine.begin() as conn:
        for spec in specs:
            _site(conn, *spec)


def _attend(site: str, workers: list[str], month: dt.date, days: int = 20):
    return [
        {"site_id": site, "worker_id": w, "month": month, "days": days} for w in workers
    ]


def _wage(site: str, worker: str, month: dt.date, paid_on: dt.date):
    return {
        "site_id": site,
        "worker_id": worker,
        "month": month,
        "paid_on": paid_on,
        "amount_yuan": 8000,
    }


def test_registered_with_the_loop():
    assert EVALUATORS["sites"] is S.evaluate
    assert {r for r in RULES if r.startswith("sites.")} >= {
        "sites.attendance_without_wage",
        "sites.paid_ratio",
        "sites.paid_without_attendance",
        "sites.no_labour_cost_transfer",
        "sites.no_wage_deposit",
        "sites.deposit_below_minimum",
        "sites.unregistered_attendance",
        "sites.late_registration",
        "sites.blacklisted_contractor",
    }
    for rule in S.__dict__.values():
        if isinstance(rule, type(S.UNPAID)):
            for name in rule.settings:
                assert name in SiteRules.model_fields, (rule.id, name)
    for name, field in SiteRules.model_fields.items():
        assert field.description[:3] in ("[S]", "[R]", "[D]"), name


# -- 有考勤无工资: due at the end of M+1 ------------------------------------------


def test_attendance_without_wage_each_side_of_the_due_date(db):
    sep, octo = D(2026, 9, 1), D(2026, 10, 1)
    _sites(db, ("T-U1",), ("T-U2",), ("T-U3",))
    _load(
        db,
        "site_attendance",
        [
            *_attend("T-U1", ["a", "b", "c"], sep),
            *_attend("T-U2", ["a", "b"], sep),
            *_attend("T-U3", ["a", "b"], sep),
            *_attend("T-U1", ["a"], octo),
        ],
    )
    _load(
        db,
        "site_wages",
        [
            _wage("T-U1", "a", sep, D(2026, 10, 15)),
            _wage("T-U1", "b", sep, D(2026, 11, 5)),  # late
            # c never paid; October unpaid but not due before 30 November
            _wage("T-U2", "a", sep, D(2026, 10, 31)),  # on the due date: in time
            _wage("T-U2", "b", sep, D(2026, 10, 1)),
            _wage("T-U3", "a", sep, D(2026, 11, 1)),  # both late, both paid now
            _wage("T-U3", "b", sep, D(2026, 11, 2)),
        ],
    )
    found = _findings(db, "sites.attendance_without_wage")
    assert set(found) == {("T-U1", "2026-09"), ("T-U3", "2026-09")}
    f = found["T-U1", "2026-09"]
    assert (f.level, f.evidence["unpaid_at_due"], f.evidence["unpaid_now"]) == (
        "orange",
        2,
        1,
    )
    assert f.responsible == "T建设" and f.district == "天河区"
    assert f.observed_at == NOW  # c is still unpaid: a standing condition
    u3 = found["T-U3", "2026-09"]
    assert u3.level == "yellow"
    # all paid, late: observed at the last late payment, not at the evaluation
    assert u3.observed_at == dt.datetime(2026, 11, 2, tzinfo=TZ)
    # the day after October's due date it is October's turn
    later = _findings(db, "sites.attendance_without_wage", D(2026, 12, 1))
    assert ("T-U1", "2026-10") in later
    # red from unpaid_red_workers still unpaid
    red = _findings(
        db, "sites.attendance_without_wage", settings=SiteRules(unpaid_red_workers=1)
    )
    assert red["T-U1", "2026-09"].level == "red"


def test_paid_ratio_each_side_of_0_9_and_of_the_red_cut_off(db):
    sep = D(2026, 9, 1)
    ten = [f"w{i}" for i in range(10)]
    _sites(db, ("T-R9",), ("T-R8",), ("T-R5",), ("T-R4",))
    _load(
        db,
        "site_attendance",
        [
            *_attend("T-R9", ten, sep),
            *_attend("T-R8", ten, sep),
            *_attend("T-R5", ten, sep),
            *_attend("T-R4", ten, sep),
        ],
    )
    paid = D(2026, 10, 10)
    _load(
        db,
        "site_wages",
        [
            *[_wage("T-R9", w, sep, paid) for w in ten[:9]],
            *[_wage("T-R8", w, sep, paid) for w in ten[:8]],
            *[_wage("T-R5", w, sep, paid) for w in ten[:5]],
            *[_wage("T-R4", w, sep, paid) for w in ten[:4]],
        ],
    )
    found = _findings(db, "sites.paid_ratio")
    assert set(found) == {("T-R8", "2026-09"), ("T-R5", "2026-09"), ("T-R4", "2026-09")}
    assert found["T-R8", "2026-09"].level == "orange"
    assert found["T-R8", "2026-09"].evidence["ratio"] == 0.8
    # exactly at paid_ratio_red (0.5) is orange; below it red
    assert RULES_.paid_ratio_red == 0.5
    assert found["T-R5", "2026-09"].level == "orange"
    assert found["T-R5", "2026-09"].evidence["ratio"] == 0.5
    assert found["T-R4", "2026-09"].level == "red"
    # unpaid workers at the evaluation: a standing condition
    assert {f.observed_at for f in found.values()} == {NOW}
    # attendance of zero days is no attendance
    _load(db, "site_attendance", _attend("T-R9", ["ghost"], sep, days=0))
    assert ("T-R9", "2026-09") not in _findings(db, "sites.paid_ratio")


def test_wages_paid_without_attendance_do_not_hide_unpaid_workers(db):
    sep = D(2026, 9, 1)
    ten = [f"w{i}" for i in range(10)]
    _sites(db, ("T-G8",))
    _load(db, "site_attendance", _attend("T-G8", ten, sep))
    paid = D(2026, 10, 10)
    # 8 of the 10 who attended are paid, and 2 people who never attended are:
    # 10 wages for 10 attendances, yet 2 workers are unpaid
    _load(
        db,
        "site_wages",
        [
            *[_wage("T-G8", w, sep, paid) for w in ten[:8]],
            _wage("T-G8", "x1", sep, paid),
            _wage("T-G8", "x2", sep, D(2026, 10, 20)),
        ],
    )
    ratio = _findings(db, "sites.paid_ratio")["T-G8", "2026-09"]
    assert (ratio.level, ratio.evidence["paid"], ratio.evidence["ratio"]) == (
        "orange",
        8,
        0.8,
    )
    ghost = _findings(db, "sites.paid_without_attendance")["T-G8", "2026-09"]
    assert (ghost.level, ghost.evidence["workers"], ghost.evidence["attended"]) == (
        "orange",
        2,
        10,
    )
    # observed at the latest such payment (the records are over)
    assert ghost.observed_at == dt.datetime(2026, 10, 20, tzinfo=TZ)


def test_paid_without_attendance_each_side(db):
    sep, octo, nov = D(2026, 9, 1), D(2026, 10, 1), D(2026, 11, 1)
    _sites(db, ("T-H0",), ("T-H1",), ("T-H5",), ("T-HZ",), ("T-HN",))
    _load(
        db,
        "site_attendance",
        [
            *_attend("T-H0", ["a", "b"], sep),
            *_attend("T-H1", ["a"], sep),
            *_attend("T-H1", ["b"], octo),  # attended, but in another month
            *_attend("T-HZ", ["a"], sep, days=0),  # zero days: no attendance
        ],
    )
    paid = D(2026, 10, 10)
    _load(
        db,
        "site_wages",
        [
            _wage("T-H0", "a", sep, paid),
            _wage("T-H0", "b", sep, paid),
            _wage("T-H1", "a", sep, paid),
            _wage("T-H1", "b", sep, paid),
            *[_wage("T-H5", f"g{i}", sep, paid) for i in range(5)],
            _wage("T-HZ", "a", sep, paid),
            # November is not over on 30 November: its attendance may be to come
            _wage("T-HN", "a", nov, AS_OF),
            # paid after the evaluation day: not yet a payment
            _wage("T-H0", "c", sep, AS_OF + dt.timedelta(days=1)),
        ],
    )
    found = _findings(db, "sites.paid_without_attendance")
    assert set(found) == {("T-H1", "2026-09"), ("T-H5", "2026-09"), ("T-HZ", "2026-09")}
    assert found["T-H1", "2026-09"].level == "orange"
    assert found["T-H5", "2026-09"].level == "red"  # ghost_red_workers = 5
    assert found["T-H5", "2026-09"].evidence["attended"] == 0
    assert (
        _findings(
            db, "sites.paid_without_attendance", settings=SiteRules(ghost_red_workers=6)
        )["T-H5", "2026-09"].level
        == "orange"
    )
    # from 1 December November is over
    later = _findings(db, "sites.paid_without_attendance", D(2026, 12, 1))
    assert ("T-HN", "2026-11") in later


# -- money: transfers and the deposit ----------------------------------------------


def test_labour_cost_transfer_gap(db):
    _sites(
        db,
        ("T-T31",),
        ("T-T32",),
        ("T-T62",),
        ("T-T63",),
        ("T-TNONE", "T建设", "active", AS_OF - dt.timedelta(40)),
        ("T-TSUSP", "T建设", "suspended"),
    )
    _load(
        db,
        "site_wage_transfers",
        [
            {
                "site_id": "T-T31",
                "transferred_on": AS_OF - dt.timedelta(31),
                "amount_yuan": 1e5,
            },
            {
                "site_id": "T-T32",
                "transferred_on": AS_OF - dt.timedelta(32),
                "amount_yuan": 1e5,
            },
            {
                "site_id": "T-T62",
                "transferred_on": AS_OF - dt.timedelta(62),
                "amount_yuan": 1e5,
            },
            {
                "site_id": "T-T63",
                "transferred_on": AS_OF - dt.timedelta(63),
                "amount_yuan": 1e5,
            },
            # a transfer after the evaluation day does not count
            {
                "site_id": "T-T63",
                "transferred_on": AS_OF + dt.timedelta(1),
                "amount_yuan": 1e5,
            },
        ],
    )
    found = {k[0]: f for k, f in _findings(db, "sites.no_labour_cost_transfer").items()}
    assert set(found) == {"T-T32", "T-T62", "T-T63", "T-TNONE"}
    assert found["T-T32"].level == "orange"
    # transfer_red_gap_days = 62: 62 days is still orange, 63 red
    assert RULES_.transfer_red_gap_days == 62
    assert (found["T-T62"].level, found["T-T62"].evidence["gap_days"]) == ("orange", 62)
    assert (found["T-T63"].level, found["T-T63"].evidence["gap_days"]) == ("red", 63)
    assert found["T-TNONE"].evidence["last_transfer"] is None
    assert {f.observed_at for f in found.values()} == {NOW}


def test_wage_deposit_due_20_working_days_after_start(db):
    start = D(2026, 11, 2)  # Monday; 20 working days later: Monday 30 November
    _sites(
        db,
        ("T-D0", "T建设", "active", start),
        ("T-D1", "T建设", "active", start),
        ("T-DC", "T建设", "completed", D(2026, 1, 5)),
    )
    _load(
        db,
        "site_deposits",
        [
            {
                "site_id": "T-D1",
                "paid_on": D(2026, 12, 1),
                "amount_yuan": 5e4,
                "contract_amount_yuan": 5e6,
            },
        ],
    )
    assert not _findings(db, "sites.no_wage_deposit", AS_OF)
    found = _findings(db, "sites.no_wage_deposit", D(2026, 12, 1))
    # T-D1 paid on that day; a completed site is not checked
    assert set(found) == {("T-D0", "")}
    assert found["T-D0", ""].evidence["due"] == "2026-11-30"
    # no deposit is a standing condition: observed when evaluated
    assert found["T-D0", ""].observed_at == end_of_day(D(2026, 12, 1))
    # a listed holiday moves the due date by a working day
    holiday = SiteRules(holidays=(D(2026, 11, 20),))
    assert not _findings(db, "sites.no_wage_deposit", D(2026, 12, 1), holiday)


def test_deposit_below_one_percent_of_the_contract(db):
    """1 % of the contract is the floor: 9 999 of 1 000 000 is short, 10 000 (in
    two payments) is not. The 3 % ceiling bounds what may be required, so a
    larger deposit (5 %) is no finding."""
    _sites(db, ("T-P1",), ("T-P0",), ("T-PX",), ("T-P5",))
    _load(
        db,
        "site_deposits",
        [
            {
                "site_id": "T-P1",
                "paid_on": D(2025, 1, 10),
                "amount_yuan": 9_000,
                "contract_amount_yuan": 1_000_000,
            },
            {"site_id": "T-P1", "paid_on": D(2025, 6, 10), "amount_yuan": 1_000},
            {
                "site_id": "T-P0",
                "paid_on": D(2025, 1, 10),
                "amount_yuan": 9_999,
                "contract_amount_yuan": 1_000_000,
            },
            # no contract amount: nothing to measure against
            {"site_id": "T-PX", "paid_on": D(2025, 1, 10), "amount_yuan": 1},
            {
                "site_id": "T-P5",
                "paid_on": D(2025, 1, 10),
                "amount_yuan": 50_000,
                "contract_amount_yuan": 1_000_000,
            },
        ],
    )
    found = _findings(db, "sites.deposit_below_minimum")
    assert set(found) == {("T-P0", "")}
    assert found["T-P0", ""].evidence["share"] == pytest.approx(0.009999)
    assert found["T-P0", ""].observed_at == NOW
    assert not _findings(db, "sites.no_wage_deposit")


# -- real-name registration -----------------------------------------------------------


def test_attendance_without_registration_or_contract(db):
    nov = D(2026, 11, 1)
    _sites(db, ("T-N0",), ("T-N1",), ("T-N5",))
    reg = {
        "enterprise": "T劳务",
        "registered_on": D(2026, 10, 1),
        "entered_on": D(2026, 10, 1),
    }
    _load(
        db,
        "site_workers",
        [
            {"site_id": "T-N0", "worker_id": "ok", "contract_signed": True, **reg},
            {"site_id": "T-N1", "worker_id": "nc", "contract_signed": False, **reg},
            *[
                {
                    "site_id": "T-N5",
                    "worker_id": f"x{i}",
                    "contract_signed": None,
                    **reg,
                }
                for i in range(3)
            ],
        ],
    )
    _load(
        db,
        "site_attendance",
        [
            *_attend("T-N0", ["ok"], nov),
            *_attend("T-N1", ["nc"], nov),
            *_attend("T-N5", ["x0", "x1", "x2", "u1", "u2"], nov),
        ],
    )
    found = _findings(db, "sites.unregistered_attendance")
    assert set(found) == {("T-N1", "2026-11"), ("T-N5", "2026-11")}
    assert found["T-N1", "2026-11"].level == "orange"
    n5 = found["T-N5", "2026-11"]
    assert (n5.level, n5.evidence["unregistered"], n5.evidence["no_contract"]) == (
        "red",
        2,
        3,
    )
    # November is not over on the 30th: observed at the evaluation; once it is
    # over, at its end (the attendance records are what was seen)
    assert n5.observed_at == NOW
    later = _findings(db, "sites.unregistered_attendance", D(2026, 12, 15))
    assert later["T-N5", "2026-11"].observed_at == dt.datetime(2026, 12, 1, tzinfo=TZ)


def test_late_registration(db):
    _sites(db, ("T-L",), ("T-OK",))
    _load(
        db,
        "site_workers",
        [
            {
                "site_id": "T-L",
                "worker_id": "a",
                "contract_signed": True,
                "registered_on": D(2026, 11, 5),
                "entered_on": D(2026, 11, 1),
            },
            {
                "site_id": "T-OK",
                "worker_id": "a",
                "contract_signed": True,
                "registered_on": D(2026, 11, 5),
                "entered_on": D(2026, 11, 5),
            },
        ],
    )
    found = _findings(db, "sites.late_registration")
    assert set(found) == {("T-L", "2026-11")}
    assert found["T-L", "2026-11"].evidence["max_days_late"] == 4
    assert found["T-L", "2026-11"].level == "yellow"
    assert found["T-L", "2026-11"].observed_at == dt.datetime(2026, 11, 5, tzinfo=TZ)


# -- enterprises -----------------------------------------------------------------------


def test_blacklist_flags_every_open_site_and_scores_rank(db):
    _sites(
        db,
        ("T-B1", "T黑"),
        ("T-B2", "T黑", "planned", D(2027, 3, 1)),
        ("T-B3", "T黑", "completed"),
        ("T-G1", "T好"),
        ("T-O1", "T旧"),
    )
    _load(
        db,
        "enterprise_records",
        [
            {
                "record_id": "T-E1",
                "enterprise": "T黑",
                "recorded_on": D(2026, 6, 1),
                "kind": "blacklist",
                "severity": "severe",
                "note": "拖欠工资",
            },
            {
                "record_id": "T-E2",
                "enterprise": "T好",
                "recorded_on": D(2026, 6, 1),
                "kind": "bad_behaviour",
                "severity": "serious",
                "note": "未实名",
            },
            {
                "record_id": "T-E3",
                "enterprise": "T好",
                "recorded_on": D(2026, 7, 1),
                "kind": "credit",
                "severity": None,
                "note": "失信",
            },
            # a blacklisting older than blacklist_days has lapsed
            {
                "record_id": "T-E4",
                "enterprise": "T旧",
                "recorded_on": D(2023, 1, 1),
                "kind": "blacklist",
                "severity": "severe",
                "note": "old",
            },
        ],
    )
    found = _findings(db, "sites.blacklisted_contractor")
    assert set(found) == {("T-B1", ""), ("T-B2", "")}
    assert {f.level for f in found.values()} == {"red"}
    # listed and building at the evaluation: a standing condition
    assert {f.observed_at for f in found.values()} == {NOW}
    assert found["T-B1", ""].evidence["blacklisted_on"] == "2026-06-01"
    with db.connect() as conn:
        scores = {r["enterprise"]: r for r in S.enterprise_scores(conn, AS_OF)}
        ranks = [
            r["enterprise"]
            for r in S.enterprise_rankings(conn, AS_OF)
            if r["enterprise"].startswith("T")
        ]
    assert scores["T好"]["score"] == 90.0 and not scores["T好"]["blacklisted"]
    assert scores["T黑"]["blacklisted"] and scores["T黑"]["open_sites"] == 2
    assert scores["T旧"]["score"] == 100.0 and not scores["T旧"]["blacklisted"]
    assert ranks[0] == "T黑" and ranks.index("T好") < ranks.index("T旧")
    # a heavier deduction is a setting
    heavy = SiteRules(score_deductions={"credit:general": 50.0})
    with db.connect() as conn:
        rows = {r["enterprise"]: r for r in S.enterprise_scores(conn, AS_OF, heavy)}
    assert rows["T好"]["score"] == 50.0


def test_an_enterprise_record_is_identified_by_its_number(db):
    """A record needs no note, and one loaded again with a corrected note,
    severity or date replaces itself: it is deducted once."""
    first = {
        "record_id": "T-R-2026-001",
        "enterprise": "T改",
        "recorded_on": D(2026, 6, 1),
        "kind": "bad_behaviour",
        "severity": "serious",
    }
    report = _load(db, "enterprise_records", [first])
    assert (report.inserted, report.rejected) == (1, 0)

    def score() -> tuple[float, int]:
        with db.connect() as conn:
            row = next(
                r for r in S.enterprise_scores(conn, AS_OF) if r["enterprise"] == "T改"
            )
        return row["score"], row["records"]["bad_behaviour"]

    assert score() == (95.0, 1)
    edited = {**first, "note": "未按规定实名登记（更正）"}
    report = _load(db, "enterprise_records", [edited])
    assert (report.inserted, report.updated) == (0, 1)
    assert score() == (95.0, 1)
    report = _load(db, "enterprise_records", [{**edited, "severity": "severe"}])
    assert report.updated == 1 and score() == (90.0, 1)
    # a second record of the same kind on the same day is a record of its own
    second = {**first, "record_id": "T-R-2026-002"}
    assert _load(db, "enterprise_records", [second]).inserted == 1
    assert score() == (85.0, 2)


# -- working days ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "n", "kwargs", "expected"),
    [
        (D(2026, 11, 2), 0, {}, D(2026, 11, 2)),
        (D(2026, 11, 6), 1, {}, D(2026, 11, 9)),  # Friday -> Monday
        (D(2026, 11, 7), 1, {}, D(2026, 11, 9)),  # Saturday -> Monday
        (D(2026, 11, 2), 5, {}, D(2026, 11, 9)),
        (D(2026, 11, 2), 20, {}, D(2026, 11, 30)),
        (
            D(2026, 9, 28),
            5,
            {"holidays": [D(2026, 10, d) for d in range(1, 8)]},
            D(2026, 10, 12),
        ),
        (D(2026, 11, 6), 1, {"weekdays": (0, 1, 2, 3, 4, 5)}, D(2026, 11, 7)),
    ],
)
def test_add_working_days(start, n, kwargs, expected):
    assert add_working_days(start, n, **kwargs) == expected
    if n:
        assert working_days_between(start, expected, **kwargs) == n


def test_working_days_between_edges():
    assert working_days_between(D(2026, 11, 2), D(2026, 11, 2)) == 0
    assert working_days_between(D(2026, 11, 9), D(2026, 11, 2)) == 0
    assert working_days_between(D(2026, 11, 6), D(2026, 11, 8)) == 0
    with pytest.raises(ValueError):
        add_working_days(D(2026, 11, 2), 1, weekdays=())


# -- ingest ----------------------------------------------------------------------------


def test_bad_rows_are_rejected(db):
    report = _load(
        db,
        "site_attendance",
        [
            {"site_id": "T-X", "worker_id": "ok", "month": "2026-11-01", "days": 20},
            {
                "site_id": "T-X",
                "worker_id": "44010619900101123X",
                "month": "2026-11-01",
                "days": 20,
            },
            {"site_id": "T-X", "worker_id": "b", "month": "2026-11-15", "days": 20},
            {"site_id": "T-X", "worker_id": "c", "month": "2026-11-01", "days": 40},
            {"site_id": "T-X", "worker_id": "d", "month": "2026-11-01", "days": -1},
            {"site_id": "T-X", "worker_id": "e", "month": "not a date", "days": 3},
            {"site_id": "", "worker_id": "f", "month": "2026-11-01", "days": 3},
        ],
    )
    assert (report.inserted, report.rejected) == (1, 6)
    reasons = {i.row: i.reason for i in report.issues}
    assert "identity number" in reasons[2]
    assert "first day" in reasons[3]
    assert "more than a month" in reasons[4]
    records = _load(
        db,
        "enterprise_records",
        [
            {
                "record_id": "T-X1",
                "enterprise": "T",
                "recorded_on": "2026-01-01",
                "kind": "praise",
                "note": "x",
            },
            # no record number: nothing to identify it by
            {"enterprise": "T", "recorded_on": "2026-01-01", "kind": "credit"},
            {"record_id": "T-X3", "recorded_on": "2026-01-01", "kind": "credit"},
            # no note is fine
            {
                "record_id": "T-X4",
                "enterprise": "T",
                "recorded_on": "2026-01-01",
                "kind": "credit",
            },
        ],
    )
    assert (records.rejected, records.inserted) == (3, 1)
    with pytest.raises(StrictIngestFailed):
        _load(
            db,
            "site_wages",
            [
                {
                    "site_id": "T-X",
                    "worker_id": "a",
                    "month": "2026-11-01",
                    "paid_on": "2026-11-20",
                    "amount_yuan": 100,
                },
                {
                    "site_id": "T-X",
                    "worker_id": "b",
                    "month": "2026-11-01",
                    "paid_on": None,
                    "amount_yuan": 100,
                },  # no paid_on
            ],
            strict=True,
        )
    with db.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM feed_site_wages WHERE source = :s"),
                {"s": SOURCE},
            ).scalar()
            == 0
        )
    assert looks_like_id_number("440106900101123")
    assert not looks_like_id_number("W3f9a0c1d2e4b5a6")


def test_demo_records_load_and_evaluate(db):
    _sites(
        db,
        *[(f"T-DEMO{i}", f"T企业{i % 3}", "active", D(2025, 3, 3)) for i in range(30)],
    )
    with db.connect() as conn:
        demo = S.demo_records(conn, seed=3, as_of=AS_OF)
    assert all(not looks_like_id_number(r["worker_id"]) for r in demo["site_workers"])
    for feed, rows in demo.items():
        if rows:
            report = _load(db, feed, rows)
            assert report.rejected == 0, (feed, report.issues[:3])
    with db.connect() as conn:
        found = [f for f in S.evaluate(conn, AS_OF) if f.subject_id.startswith("T-")]
    assert found and {f.rule for f in found} <= set(RULES)


def test_migration_matches_the_declarations(engine):
    mine = {s.table for s in FEEDS}
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn)
        diff = compare_metadata(ctx, metadata)

    def table_of(item) -> str | None:
        op = item[0] if isinstance(item, list) else item
        for part in op[1:]:
            name = getattr(part, "name", None)
            table = getattr(part, "table", None)
            if table is not None and getattr(table, "name", None):
                return table.name
            if isinstance(part, str):
                return part
            if name:
                return name
        return None

    ours = [d for d in diff if table_of(d) in mine]
    assert not ours, ours


def test_settings_from_the_environment_and_checked(monkeypatch):
    monkeypatch.setenv("GIS_RULES_SITES_PAID_RATIO_MIN", "0.95")
    monkeypatch.setenv("GIS_RULES_SITES_WORKING_WEEKDAYS", "[0, 1, 2, 3, 4, 5]")
    env = SiteRules()
    assert env.paid_ratio_min == 0.95 and 5 in env.working_weekdays
    with pytest.raises(ValueError):
        SiteRules(working_weekdays=(7,))
    with pytest.raises(ValueError):
        SiteRules(score_deductions={"praise:general": 1.0})
    with pytest.raises(ValueError):
        SiteRules(transfer_max_gap_days=40, transfer_red_gap_days=35)
