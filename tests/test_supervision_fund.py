"""Provident fund rules, the centres layer and the demo, on the real test database.

Hand-made centres use codes starting ``T`` (findings on other centres are
ignored); the demo centres are loaded under their real codes with the source
``test_fund_demo`` and removed afterwards.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from gis_server.audit import Actor
from gis_server.errors import NotFound
from ingest.feeds import load_feed
from ingest.loader import load_batch
from layers import get_layer, metadata
from layers.feeds import get_feed
from layers.supervision.fund import FEEDS, FUND_CENTRES
from models.supervision import fund as F
from models.supervision import loop
from models.supervision.engine import end_of_day
from models.supervision.fund import FundRules
from models.supervision.rules import EVALUATORS, RULES

D = dt.date
AS_OF = D(2026, 11, 30)
SOURCE = "test_fund"
DEMO = "test_fund_demo"
S = FundRules()


@pytest.fixture
def db(engine) -> Iterator:
    def clean() -> None:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "DELETE FROM layer_supervision_warnings "
                    "WHERE domain = 'fund' AND subject_id LIKE 'T%'"
                )
            )
            conn.execute(
                text("DELETE FROM layer_fund_centres WHERE source IN (:a, :b)"),
                {"a": SOURCE, "b": DEMO},
            )
            for spec in FEEDS:
                conn.execute(
                    text(f"DELETE FROM {spec.table} WHERE source IN (:a, :b)"),
                    {"a": SOURCE, "b": DEMO},
                )

    clean()
    yield engine
    clean()


def _months(
    last: dt.date,
    ratios: list[float],
    flows: list[float],
    overdue_permille: float = 0.5,
    largest: float = 100.0,
    issued: float = 500.0,
    repaid: float = 500.0,
) -> list[dict]:
    """Rows of consecutive months ending at ``last`` with the given loan ratios
    and net flows (deposit balance 100 000 thousand yuan).

    Deposits and withdrawals are set so that deposits + ``repaid`` -
    withdrawals - ``issued`` is the wanted flow.
    """
    out = []
    n = len(ratios)
    for i, (ratio, flow) in enumerate(zip(ratios, flows, strict=True)):
        k = last.year * 12 + last.month - 1 - (n - 1 - i)
        loans = ratio * 100_000
        lending = flow - (repaid - issued)  # what deposits - withdrawals must be
        out.append(
            {
                "month": D(k // 12, k % 12 + 1, 1),
                "deposits": 1000.0 + max(lending, 0),
                "withdrawals": 1000.0 - min(lending, 0),
                "loans_issued": issued,
                "principal_repaid": repaid,
                "deposit_balance": 100_000.0,
                "loan_balance": loans,
                "overdue_loan_balance": loans * overdue_permille / 1000,
                "large_flows_count": 2,
                "largest_single_flow": largest,
            }
        )
    return out


def _load_centre(engine, code: str, rows: list[dict]) -> None:
    report = load_feed(
        engine,
        get_feed("fund_metrics"),
        records=[{"centre_code": code, **r} for r in rows],
        source=SOURCE,
    )
    assert report.rejected == 0, report.issues


def _centre_feature(engine, code: str, name_zh: str = "测试") -> None:
    """A centre of the layer (the choropleth draws the layer's centres)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO layer_fund_centres (source, source_id, source_part, "
                "code, name, name_zh, geom) VALUES (:s, :c, 0, :c, :c, :n, "
                "ST_Multi(ST_MakeEnvelope(113.2, 23.0, 113.4, 23.2, 4326)))"
            ),
            {"s": SOURCE, "c": code, "n": name_zh},
        )


def _findings(engine, rule: str, as_of: dt.date = AS_OF, settings: FundRules = S):
    with engine.connect() as conn:
        found = F.evaluate(conn, as_of, settings)
    return {
        f.subject_id: f
        for f in found
        if f.rule == rule and f.subject_id.startswith("T")
    }


def test_registered_with_the_loop():
    assert EVALUATORS["fund"] is F.evaluate
    assert {
        "fund.loan_ratio",
        "fund.liquidity",
        "fund.overdue_rate",
        "fund.large_flow",
    } <= set(RULES)
    for rule in (F.LOAN_RATIO, F.LIQUIDITY, F.OVERDUE, F.LARGE_FLOW):
        assert set(rule.settings) <= set(FundRules.model_fields), rule.id
    for name, field in FundRules.model_fields.items():
        assert field.description[:3] in ("[S]", "[R]", "[D]"), name
    assert get_layer("fund_centres") is FUND_CENTRES


# -- liquidity levels and the loan-ratio alert --------------------------------------


NEG = [-10.0, -10.0, -10.0]


@pytest.mark.parametrize(
    ("ratio", "flows", "level", "colour", "alert"),
    [
        (0.849, NEG, 0, None, False),
        (0.85, NEG, 1, "yellow", False),
        (0.899, NEG, 1, "yellow", False),
        (0.85, [-10.0, 5.0, -10.0], 0, None, True),  # run broken: the alert only
        (0.85, [-10.0, -10.0, 0.0], 0, None, True),  # zero is not negative
        (0.90, [5.0, 5.0, 5.0], 2, "orange", False),
        (0.949, NEG, 2, "orange", False),
        (0.95, [5.0, 5.0, 5.0], 3, "red", False),
    ],
)
def test_liquidity_levels_each_side(db, ratio, flows, level, colour, alert):
    _load_centre(db, "T1", _months(D(2026, 10, 1), [0.8, 0.82, ratio], flows))
    liq = _findings(db, "fund.liquidity")
    alerts = _findings(db, "fund.loan_ratio")
    if level:
        f = liq["T1"]
        assert (f.level, f.evidence["liquidity_level"], f.period) == (
            colour,
            level,
            "",  # a standing condition: one warning per centre
        )
        assert f.evidence["month"] == "2026-10-01"
        assert f.observed_at == end_of_day(AS_OF)
    else:
        assert "T1" not in liq
    assert ("T1" in alerts) is alert
    with db.connect() as conn:
        series = F.centre_metrics(conn, "T1")
    assert series[-1]["liquidity_level"] == level
    assert series[-1]["loan_ratio"] == pytest.approx(ratio)


@pytest.mark.parametrize(
    ("deposits", "withdrawals", "issued", "repaid", "expected"),
    [
        (100.0, 90.0, 40.0, 20.0, -10.0),
        (100.0, 90.0, 20.0, 40.0, 30.0),  # repaid > issued: money comes back
        (100.0, 100.0, 0.0, 25.0, 25.0),
        (100.0, 100.0, 25.0, 0.0, -25.0),
        (0.0, 50.0, 10.0, 70.0, 10.0),
        (100.0, None, 1.0, 1.0, None),
    ],
)
def test_net_flow_formula(deposits, withdrawals, issued, repaid, expected):
    """net flow = deposits + principal repaid - withdrawals - loans issued."""
    assert F.net_flow(deposits, repaid, withdrawals, issued) == expected


@pytest.mark.parametrize(
    ("issued", "repaid", "level"),
    [
        # deposits == withdrawals: the sign is the lending's alone
        (800.0, 500.0, 1),  # more lent than repaid: -300 a month, level 1
        (500.0, 800.0, 0),  # more repaid than lent: +300 a month, no level
    ],
)
def test_net_flow_of_lending_decides_level_1(db, issued, repaid, level):
    flow = repaid - issued
    rows = _months(D(2026, 10, 1), [0.87] * 3, [flow] * 3, issued=issued, repaid=repaid)
    assert all(r["deposits"] == r["withdrawals"] == 1000.0 for r in rows)
    _load_centre(db, "T10", rows)
    _centre_feature(db, "T10")
    with db.connect() as conn:
        series = F.centre_metrics(conn, "T10")
    assert [p["net_flow"] for p in series] == [flow] * 3
    assert series[-1]["liquidity_level"] == level
    assert ("T10" in _findings(db, "fund.liquidity")) is bool(level)
    assert ("T10" in _findings(db, "fund.loan_ratio")) is not bool(level)
    with db.connect() as conn:
        (row,) = [c for c in F.choropleth(conn, D(2026, 10, 1)) if c["code"] == "T10"]
    assert row["net_flow"] == flow and row["liquidity_level"] == level


def test_a_lasting_condition_is_one_warning_updated_monthly(db):
    """Six months at liquidity level 3 are one warning, carrying the latest
    month's figures; large flows stay one warning per month."""
    load_feed(
        db,
        get_feed("fund_centre_limits"),
        source=SOURCE,
        records=[
            {
                "centre_code": "T11",
                "large_flow_limit": 100,
                "effective_from": "2020-01-01",
            }
        ],
    )
    ratios = [0.95, 0.96, 0.97, 0.96, 0.955, 0.97]
    rows = _months(D(2026, 10, 1), ratios, [1.0] * 6, largest=600.0)
    _load_centre(db, "T11", rows)
    actor = Actor("test")
    ids = {}
    for k, row in enumerate(rows):
        as_of = F._add_months(row["month"], 1) - dt.timedelta(days=1)
        with db.begin() as conn:
            found = [f for f in F.evaluate(conn, as_of) if f.subject_id == "T11"]
            result = loop.raise_findings(conn, found, actor, at=end_of_day(as_of))
        for f, wid in zip(found, result.ids, strict=True):
            ids.setdefault((f.rule, f.period), set()).add(wid)
        assert {f.rule for f in found} == {"fund.liquidity", "fund.large_flow"}, k
    assert len(ids["fund.liquidity", ""]) == 1  # one warning all along
    flows = [key for key in ids if key[0] == "fund.large_flow"]
    assert len(flows) == 6 and all(len(ids[key]) == 1 for key in flows)
    (wid,) = ids["fund.liquidity", ""]
    with db.connect() as conn:
        w = loop.get_warning(conn, wid)
    assert w["evidence"]["month"] == "2026-10-01"
    assert w["evidence"]["loan_ratio"] == pytest.approx(0.97)
    assert w["observed_at"] == end_of_day(D(2026, 10, 31))
    assert "2026-10" in w["summary"]


def test_a_large_flow_mid_month_is_not_observed_in_the_future(db):
    load_feed(
        db,
        get_feed("fund_centre_limits"),
        source=SOURCE,
        records=[
            {
                "centre_code": "T12",
                "large_flow_limit": 100,
                "effective_from": "2020-01-01",
            }
        ],
    )
    _load_centre(db, "T12", _months(D(2026, 11, 1), [0.6], [1.0], largest=600.0))
    mid = D(2026, 11, 15)
    f = _findings(db, "fund.large_flow", mid)["T12"]
    assert f.period == "2026-11" and f.observed_at == end_of_day(mid)
    f = _findings(db, "fund.large_flow", D(2026, 12, 3))["T12"]
    assert f.observed_at == dt.datetime(2026, 12, 1, tzinfo=F.TZ)


def test_a_missing_month_breaks_the_negative_run(db):
    rows = _months(D(2026, 10, 1), [0.86] * 4, [-5.0] * 4)
    del rows[0]  # July missing: Aug, Sep, Oct negative is still three running
    _load_centre(db, "T2", rows)
    assert _findings(db, "fund.liquidity")["T2"].level == "yellow"
    rows = _months(D(2026, 10, 1), [0.86] * 4, [-5.0] * 4)
    del rows[1]  # August missing: only Sep and Oct are consecutive
    _load_centre(db, "T3", rows)
    assert "T3" not in _findings(db, "fund.liquidity")
    assert "T3" in _findings(db, "fund.loan_ratio")


def test_only_months_up_to_as_of_count(db):
    _load_centre(db, "T4", _months(D(2026, 12, 1), [0.5, 0.5, 0.96], [1.0] * 3))
    assert "T4" not in _findings(db, "fund.liquidity")
    assert _findings(db, "fund.liquidity", D(2026, 12, 1))["T4"].level == "red"


def test_levels_are_settings(db):
    _load_centre(db, "T5", _months(D(2026, 10, 1), [0.8, 0.8, 0.88], [1.0] * 3))
    assert "T5" not in _findings(db, "fund.liquidity")
    low = FundRules(liquidity_level_2=0.87, liquidity_level_3=0.99)
    assert _findings(db, "fund.liquidity", settings=low)["T5"].level == "orange"


# -- overdue rate ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("permille", "level"),
    [(1.0, None), (1.01, "yellow"), (1.5, "yellow"), (1.51, "orange")],
)
def test_overdue_rate_each_side(db, permille, level):
    _load_centre(
        db, "T6", _months(D(2026, 10, 1), [0.6], [1.0], overdue_permille=permille)
    )
    found = _findings(db, "fund.overdue_rate")
    if level is None:
        assert "T6" not in found
    else:
        assert found["T6"].level == level
        assert found["T6"].evidence["overdue_rate_permille"] == pytest.approx(permille)


# -- large flows -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("largest", "level", "band"),
    [
        (1000.0, None, None),
        (1000.1, "yellow", "1000-1500"),
        (1500.0, "orange", "1500-2000"),
        (2000.0, "red", ">= 2000"),
    ],
)
def test_large_flow_above_the_centres_limit(db, largest, level, band):
    load_feed(
        db,
        get_feed("fund_centre_limits"),
        source=SOURCE,
        records=[
            {
                "centre_code": "T7",
                "large_flow_limit": 5000,
                "effective_from": "2020-01-01",
            },
            {
                "centre_code": "T7",
                "large_flow_limit": 1000,
                "effective_from": "2026-10-31",
            },
            # not yet in force in October
            {
                "centre_code": "T7",
                "large_flow_limit": 10,
                "effective_from": "2026-11-01",
            },
        ],
    )
    _load_centre(db, "T7", _months(D(2026, 10, 1), [0.6], [1.0], largest=largest))
    found = _findings(db, "fund.large_flow")
    if level is None:
        assert "T7" not in found
    else:
        assert (found["T7"].level, found["T7"].evidence["band"]) == (level, band)
        assert found["T7"].evidence["limit"] == 1000


def test_no_limit_no_large_flow_finding(db):
    _load_centre(db, "T8", _months(D(2026, 10, 1), [0.6], [1.0], largest=9000.0))
    assert "T8" not in _findings(db, "fund.large_flow")
    with db.connect() as conn:
        bands = {b["code"]: b for b in F.large_flow_bands(conn, D(2026, 1, 1), AS_OF)}
    assert bands["T8"]["bands"][">= 2000"] == 1


# -- ingest ----------------------------------------------------------------------------


def test_bad_rows_are_rejected(db):
    good = _months(D(2026, 10, 1), [0.6], [1.0])[0]
    report = load_feed(
        db,
        get_feed("fund_metrics"),
        source=SOURCE,
        records=[
            {"centre_code": "T9", **good},
            {"centre_code": "T9", **good, "month": "2026-09-15"},
            {"centre_code": "T9", **good, "month": "2026-08-01", "deposits": -5},
            {"centre_code": "T9", **good, "month": "2026-07-01", "loan_balance": None},
            {
                "centre_code": "T9",
                **good,
                "month": "2026-06-01",
                "deposit_balance": "lots",
            },
        ],
    )
    assert (report.inserted, report.rejected) == (2, 3)
    assert report.warnings == 1  # the negative optional value kept in extra
    reasons = " ".join(i.reason for i in report.issues)
    assert "first day" in reasons and "loan_balance is missing" in reasons


# -- layer, maps, demo -----------------------------------------------------------------


def test_demo_centres_load_into_the_layer_and_evaluate(db):
    with db.connect() as conn:
        before = conn.execute(
            text("SELECT version FROM layer_versions WHERE layer_id = 'fund_centres'")
        ).scalar()
    report = load_batch(db, FUND_CENTRES, F.demo_centres(), source=DEMO, strict=True)
    assert report.inserted == 21
    demo = F.demo_records(seed=8, as_of=AS_OF)
    assert len(demo["fund_metrics"]) == 21 * 24
    for feed, rows in demo.items():
        assert load_feed(db, get_feed(feed), records=rows, source=DEMO).rejected == 0
    with db.connect() as conn:
        after, cells, area_ok = conn.execute(
            text(
                "SELECT (SELECT version FROM layer_versions "
                "        WHERE layer_id = 'fund_centres'), "
                "count(*), bool_and(ST_IsValid(geom) AND ST_Area(geom) > 0.05) "
                "FROM layer_fund_centres WHERE source = :s"
            ),
            {"s": DEMO},
        ).one()
        overlap = conn.execute(
            text(
                "SELECT count(*) FROM layer_fund_centres a JOIN layer_fund_centres b "
                "ON a.id < b.id AND ST_Overlaps(a.geom, b.geom) "
                "WHERE a.source = :s AND b.source = :s"
            ),
            {"s": DEMO},
        ).scalar()
        found = F.evaluate(conn, AS_OF)
        chart = F.choropleth(conn, D(2026, 10, 1))
        series = F.centre_metrics(conn, "441500")
    assert after > before and cells == 21 and area_ok and overlap == 0
    levels = {
        f.subject_id: f.evidence["liquidity_level"]
        for f in found
        if f.rule == "fund.liquidity"
    }
    assert levels == F.DEMO_LEVELS
    overdue = {f.subject_id: f.level for f in found if f.rule == "fund.overdue_rate"}
    assert overdue == {"440800": "yellow", "441700": "orange"}
    big = {f.subject_id: f.level for f in found if f.rule == "fund.large_flow"}
    assert big == {"440300": "red", "441300": "yellow"}
    shenzhen = next(f for f in found if f.subject_id == "440300")
    assert shenzhen.responsible == "深圳"
    by_code = {c["code"]: c for c in chart}
    assert len([c for c in chart if c["code"][0] == "4"]) == 21
    assert by_code["441500"]["liquidity_level"] == 3
    assert by_code["440100"]["liquidity_level"] == 0
    assert 0.5 < by_code["440100"]["loan_ratio"] < 0.85
    assert len(series) == 24 and series[-1]["liquidity_level"] == 3
    assert series[0]["month"] == D(2024, 11, 1)


def test_unknown_centre_is_not_found(db):
    with db.connect() as conn, pytest.raises(NotFound):
        F.centre_metrics(conn, "T-nowhere")


def test_migration_matches_the_declarations(engine):
    mine = {s.table for s in FEEDS} | {FUND_CENTRES.table}
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        triggers = conn.execute(
            text(
                "SELECT count(*) FROM pg_trigger "
                "WHERE tgrelid = 'layer_fund_centres'::regclass AND NOT tgisinternal"
            )
        ).scalar()
    flat = [d[0] if isinstance(d, list) else d for d in diff]
    ours = [
        d
        for d in flat
        if any(
            getattr(p, "name", p) in mine
            or getattr(getattr(p, "table", None), "name", None) in mine
            for p in d[1:]
        )
    ]
    assert not ours, ours
    assert triggers == 2


def test_settings_from_the_environment_and_checked(monkeypatch):
    monkeypatch.setenv("GIS_RULES_FUND_OVERDUE_ALARM_PERMILLE", "2.0")
    assert FundRules().overdue_alarm_permille == 2.0
    with pytest.raises(ValueError):
        FundRules(liquidity_level_2=0.97)
    with pytest.raises(ValueError):
        FundRules(large_flow_band_levels=("yellow", "red"))
    with pytest.raises(ValueError):
        FundRules(liquidity_colours=("yellow", "orange", "purple"))
