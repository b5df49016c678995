"""Concrete-plant supervision: every rule on each side of its threshold,
GB/T 50107 worked examples, the credit score, feed ingest and the demo records.

The rule tests go through the real path: a plant feature inserted by SQL,
records loaded with ``ingest.feeds.load_feed``, findings from ``evaluate``
against the session's PostGIS.
"""

from __future__ import annotations

import copy
import datetime as dt
import doctest
import uuid
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from ingest.feeds import load_feed
from layers.feeds import get_feed
from models.supervision import concrete as C
from models.supervision import concrete_strength
from models.supervision.concrete_strength import (
    StrengthCriteria,
    assess_strength,
    lambda_factors,
    parse_strength_class,
)
from models.supervision.rules import EVALUATORS, RULES

AS_OF = dt.date(2026, 11, 30)
TZ = "+08:00"


def at(days_before: float, hour: int = 10) -> str:
    """An ISO time ``days_before`` days before AS_OF (local time)."""
    t = dt.datetime.combine(AS_OF, dt.time(hour)) - dt.timedelta(days=days_before)
    return t.isoformat() + TZ


def day(days_before: int) -> str:
    return (AS_OF - dt.timedelta(days=days_before)).isoformat()


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture
def plant(engine):
    """A fresh plant feature (complete basic data); its rows removed after."""
    pid = f"CT-{uuid.uuid4().hex[:8]}"
    _insert_plant(engine, pid)
    yield pid
    _cleanup(engine, [pid])


def _insert_plant(engine, pid: str, **props: Any) -> None:
    values = {
        "enterprise": "广州测试混凝土有限公司",
        "licence": "粤建预拌000001",
        "capacity_m3_per_year": 600000.0,
        **props,
    }
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO layer_plants (source, source_id, enterprise, licence, "
                "capacity_m3_per_year, geom) VALUES ('test_concrete', :pid, "
                ":enterprise, :licence, :capacity_m3_per_year, "
                "ST_SetSRID(ST_MakePoint(113.3, 23.1), 4326))"
            ),
            {"pid": pid, **values},
        )


def _cleanup(engine, pids: list[str]) -> None:
    with engine.begin() as conn:
        for table in [f.table for f in C_FEEDS] + ["concrete_credit_history"]:
            conn.execute(
                text(f"DELETE FROM {table} WHERE plant_id = ANY(:p)"), {"p": pids}
            )
        conn.execute(
            text("DELETE FROM layer_plants WHERE source_id = ANY(:p)"), {"p": pids}
        )


C_FEEDS = [
    get_feed(f)
    for f in (
        "concrete_production",
        "concrete_batching",
        "concrete_materials",
        "concrete_self_tests",
    )
]


def baseline(pid: str) -> dict[str, list[dict[str, Any]]]:
    """A clean record set: no rule fires on it."""
    rec = f"{pid}-R1"
    batching = [
        {
            "plant_id": pid,
            "record_no": rec,
            "batch_no": "1",
            "produced_at": at(2),
            "material": m,
            "target_kg": kg,
            "actual_kg": kg,
            "cumulative": False,
            "chloride_pct": 0.05 if m == "binder" else None,
        }
        for m, kg in C._DEMO_BATCH_KG.items()
    ]
    return {
        "concrete_production": [
            {
                "plant_id": pid,
                "record_no": rec,
                "produced_at": at(2),
                "project": "测试工程",
                "strength_class": "C30",
                "volume_m3": 80.0,
                "mix_ratio_no": "PH-C30-01",
                "batching_serial": f"PB{pid[-8:]}0001",
                "approved": True,
            }
        ],
        "concrete_batching": batching,
        "concrete_materials": [
            {
                "plant_id": pid,
                "material_record_no": f"{pid}-M1",
                "material": "cement",
                "supplier": "粤秀水泥",
                "batch_no": "L001",
                "quantity_kg": 30000.0,
                "arrived_at": at(10),
                "entered_at": at(10, hour=12),
                "tested": True,
                "tested_at": at(9),
                "expires_on": day(-60),
                "first_used_at": at(8),
                "last_used_at": at(2),
                "used_kg": 20000.0,
            }
        ],
        "concrete_self_tests": [
            {
                "plant_id": pid,
                "group_no": f"{rec}-G1",
                "record_no": rec,
                "strength_class": "C30",
                "cast_on": day(2),
                "curing": "standard",
            }
        ],
    }


def load(engine, data: dict[str, list[dict[str, Any]]]) -> None:
    for feed, rows in data.items():
        if rows:
            report = load_feed(engine, get_feed(feed), records=rows, source="test")
            assert report.rejected == 0, report.issues


def findings(engine, pid: str, rule: str | None = None, rules=None, as_of=AS_OF):
    with engine.connect() as conn:
        found = C.evaluate(conn, as_of, rules)
    return [
        f
        for f in found
        if f.subject_id == pid and (rule is None or f.rule == f"concrete.{rule}")
    ]


def run(engine, pid, change, rule, rules=None):
    """Load the baseline after ``change(data)`` and return the rule's findings."""
    data = copy.deepcopy(baseline(pid))
    change(data)
    load(engine, data)
    return findings(engine, pid, rule, rules)


# -- declarations -------------------------------------------------------------------


def test_every_kind_is_a_registered_rule_with_settings_sourced():
    # the seed system's twenty kinds (DOMAIN.md names nineteen; the twentieth,
    # self_test_strength, is our reading of it)
    assert len(C.KINDS) == 20 and len(set(C.KINDS)) == 20
    assert {r.split(".", 1)[1] for r in RULES if r.startswith("concrete.")} == set(
        C.KINDS
    )
    for kind in C.KINDS:
        rule = RULES[f"concrete.{kind}"]
        assert rule.subject_layer == "plants" and rule.confidence in "SRD"
        assert kind in C.ConcreteRules().levels
        fields = C.ConcreteRules.model_fields
        for name in rule.settings:
            assert fields[name].description[:3] in ("[S]", "[R]", "[D]"), name
    assert EVALUATORS["concrete"] is C.evaluate


def test_chloride_table_and_env_prefix(monkeypatch):
    rules = C.ConcreteRules()
    assert rules.chloride_limit_pct == 0.20
    assert rules.chloride_limits_pct["prestressed"] == 0.06
    monkeypatch.setenv("GIS_RULES_CONCRETE_CHLORIDE_ENVIRONMENT", "reinforced_dry")
    assert C.ConcreteRules().chloride_limit_pct == 0.30
    with pytest.raises(ValueError):
        C.ConcreteRules(chloride_environment="marine")
    with pytest.raises(ValueError):
        C.ConcreteRules(levels={"chloride": "purple"})
    with pytest.raises(ValueError, match=r"lacks .*plain"):
        C.ConcreteRules(
            chloride_environment="reinforced_humid",
            chloride_limits_pct={"reinforced_humid": 0.2},
        )
    assert rules.chloride_limit(None) == ("reinforced_humid", 0.20)
    assert rules.chloride_limit("prestressed") == ("prestressed", 0.06)


def test_clean_baseline_raises_nothing(engine, plant):
    load(engine, baseline(plant))
    assert findings(engine, plant) == []


# -- plant-level rules --------------------------------------------------------------


@pytest.mark.parametrize(
    ("props", "missing"),
    [
        ({}, None),
        ({"licence": None}, ["licence"]),
        (
            {"licence": " ", "capacity_m3_per_year": 0.0},
            ["licence", "capacity_m3_per_year"],
        ),
    ],
)
def test_basic_data(engine, props, missing):
    pid = f"CT-{uuid.uuid4().hex[:8]}"
    _insert_plant(engine, pid, **props)
    try:
        load(engine, baseline(pid))
        got = findings(engine, pid, "basic_data")
        if missing is None:
            assert got == []
        else:
            assert [f.evidence["missing"] for f in got] == [missing]
            assert got[0].responsible == "广州测试混凝土有限公司"
    finally:
        _cleanup(engine, [pid])


@pytest.mark.parametrize(("days", "fires"), [(6.9, False), (7.1, True)])
def test_equipment_silence(engine, plant, days, fires):
    def change(d):
        for r in d["concrete_batching"]:
            r["produced_at"] = at(days, hour=23)  # evaluation day ends at 24:00

    got = run(engine, plant, change, "equipment")
    assert bool(got) is fires


def test_equipment_without_any_batching(engine, plant):
    got = run(engine, plant, lambda d: d["concrete_batching"].clear(), "equipment")
    assert len(got) == 1 and got[0].evidence["last_batching_at"] is None


# -- production records -------------------------------------------------------------


def test_online_batching(engine, plant):
    def change(d):
        second = dict(d["concrete_production"][0], record_no=f"{plant}-R2")
        second["batching_serial"] = f"PB{plant[-8:]}0002"
        d["concrete_production"].append(second)
        d["concrete_self_tests"].append(
            dict(d["concrete_self_tests"][0], group_no="G2", record_no=f"{plant}-R2")
        )

    got = run(engine, plant, change, "online_batching")
    assert [f.period for f in got] == [f"{plant}-R2"]


@pytest.mark.parametrize(
    ("value", "fires"), [("PH-1", False), ("", True), (None, True)]
)
def test_mix_ratio(engine, plant, value, fires):
    got = run(
        engine,
        plant,
        lambda d: d["concrete_production"][0].update(mix_ratio_no=value),
        "mix_ratio",
    )
    assert bool(got) is fires


@pytest.mark.parametrize(
    ("change", "invalid"),
    [
        ({}, None),
        ({"strength_class": "30"}, ["strength_class"]),
        ({"volume_m3": 0.0}, ["volume_m3"]),
        ({"project": None}, ["project"]),
    ],
)
def test_production_record(engine, plant, change, invalid):
    got = run(
        engine,
        plant,
        lambda d: d["concrete_production"][0].update(change),
        "production_record",
    )
    assert [f.evidence["invalid"] for f in got] == ([invalid] if invalid else [])


@pytest.mark.parametrize(
    ("value", "fires"), [(True, False), (False, True), (None, True)]
)
def test_production_approval(engine, plant, value, fires):
    got = run(
        engine,
        plant,
        lambda d: d["concrete_production"][0].update(approved=value),
        "production_approval",
    )
    assert bool(got) is fires


@pytest.mark.parametrize(
    ("serial", "problem"),
    [
        ("PB-2026-000123", None),
        ("", "empty"),
        ("#12", "malformed"),
        ("dup", "duplicated"),
    ],
)
def test_batching_serial(engine, plant, serial, problem):
    def change(d):
        rec = d["concrete_production"][0]
        if serial == "dup":
            other = dict(rec, record_no=f"{plant}-R2")
            d["concrete_production"].append(other)
            d["concrete_batching"] += [
                dict(b, record_no=f"{plant}-R2") for b in d["concrete_batching"]
            ]
            d["concrete_self_tests"].append(
                dict(
                    d["concrete_self_tests"][0], group_no="G2", record_no=f"{plant}-R2"
                )
            )
        else:
            rec["batching_serial"] = serial

    got = run(engine, plant, change, "batching_serial")
    problems = {f.evidence["problem"] for f in got}
    assert problems == ({problem} if problem else set())
    if problem == "duplicated":
        assert len(got) == 2


# -- batching ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("material", "cumulative", "dev", "level"),
    [
        ("binder", False, 2.0, None),
        ("binder", False, -2.1, "orange"),
        ("binder", False, 4.1, "red"),  # > 2 x tolerance
        ("binder", True, 1.0, None),
        ("binder", True, 1.1, "orange"),
        ("aggregate", False, 3.0, None),
        ("aggregate", False, 3.1, "orange"),
        ("aggregate", True, -2.0, None),
        ("aggregate", True, -2.1, "orange"),
        ("water", False, 1.0, None),
        ("water", False, 1.1, "orange"),
        ("admixture", False, -1.0, None),
        ("admixture", False, -1.1, "orange"),
        # cumulative tolerances of water and admixture (GB/T 14902: +-1 %)
        ("water", True, 1.0, None),
        ("water", True, -1.1, "orange"),
        ("admixture", True, 1.0, None),
        ("admixture", True, 1.1, "orange"),
        ("water", True, 2.1, "red"),  # > 2 x the cumulative tolerance
    ],
)
def test_batching_deviation(engine, plant, material, cumulative, dev, level):
    def change(d):
        for r in d["concrete_batching"]:
            if r["material"] == material:
                row = r
        target = 1000.0
        row.update(
            target_kg=target,
            actual_kg=round(target * (1 + dev / 100), 6),
            cumulative=cumulative,
        )

    got = run(engine, plant, change, "batching_deviation")
    assert [f.level for f in got] == ([level] if level else [])
    if level:
        (row,) = got[0].evidence["rows"]
        assert row["material"] == material
        assert row["deviation_pct"] == pytest.approx(dev)


@pytest.mark.parametrize(
    ("value", "environment", "fires"),
    [
        (0.20, None, False),
        (0.21, None, True),
        (0.12, "reinforced_chloride", True),
        (0.30, "reinforced_dry", False),
    ],
)
def test_chloride(engine, plant, value, environment, fires):
    """The default environment is a setting (the city-wide default)."""
    rules = C.ConcreteRules(
        **({"chloride_environment": environment} if environment else {})
    )

    def change(d):
        d["concrete_batching"][0]["chloride_pct"] = value

    got = run(engine, plant, change, "chloride", rules)
    assert bool(got) is fires
    if fires:
        assert got[0].level == "red"
        assert got[0].evidence["limit_pct"] == rules.chloride_limit_pct


@pytest.mark.parametrize(
    ("value", "environment", "limit", "fires"),
    [
        (0.06, "prestressed", 0.06, False),
        (0.061, "prestressed", 0.06, True),  # judged against 0.20 before
        (0.06, "reinforced_deicing", 0.06, False),
        (0.07, "reinforced_deicing", 0.06, True),
        (1.00, "plain", 1.00, False),  # flagged above 0.20 before
        (1.01, "plain", 1.00, True),
        (0.10, "reinforced_chloride", 0.10, False),
        (0.30, "reinforced_dry", 0.30, False),
        (0.31, "reinforced_dry", 0.30, True),
    ],
)
def test_chloride_by_the_records_concrete_type(
    engine, plant, value, environment, limit, fires
):
    def change(d):
        d["concrete_production"][0]["chloride_environment"] = environment
        d["concrete_batching"][0]["chloride_pct"] = value

    got = run(engine, plant, change, "chloride")
    assert bool(got) is fires
    if fires:
        ev = got[0].evidence
        assert (ev["environment"], ev["limit_pct"]) == (environment, limit)
        assert ev["environment_of_record"] is True
        assert "cement" in ev["unit"]


# -- raw materials -------------------------------------------------------------------


def _mat(change: dict[str, Any]):
    return lambda d: d["concrete_materials"][0].update(change)


@pytest.mark.parametrize(
    ("change", "fires"),
    [
        ({"tested_at": at(8, hour=9)}, False),  # reported an hour before first use
        ({"tested_at": at(8, hour=11)}, True),  # an hour after
        ({"tested": False, "tested_at": None}, True),
        ({"tested": None, "tested_at": None}, True),
        ({"tested": None}, False),  # reported before use, flag not filled
        ({"tested": None, "tested_at": None, "first_used_at": None}, False),  # unused
    ],
)
def test_material_self_test(engine, plant, change, fires):
    got = run(engine, plant, _mat(change), "material_self_test")
    assert bool(got) is fires


@pytest.mark.parametrize(
    ("change", "fires"),
    [({}, False), ({"supplier": None}, True), ({"quantity_kg": None}, True)],
)
def test_material_arrival_record(engine, plant, change, fires):
    assert bool(run(engine, plant, _mat(change), "material_arrival")) is fires


@pytest.mark.parametrize(("days", "fires"), [(29, False), (31, True)])
def test_material_arrival_silence(engine, plant, days, fires):
    change = {
        "arrived_at": at(days),
        "entered_at": at(days, hour=11),
        "tested_at": at(days, hour=12),
        "first_used_at": at(days, hour=13),
    }
    got = run(engine, plant, _mat(change), "material_arrival")
    assert bool(got) is fires
    if fires:
        assert got[0].period == "" and got[0].evidence["silence_days"] == 30


@pytest.mark.parametrize(("expires", "fires"), [(day(2), False), (day(3), True)])
def test_material_overdue(engine, plant, expires, fires):
    # last used 2 days before AS_OF
    assert (
        bool(run(engine, plant, _mat({"expires_on": expires}), "material_overdue"))
        is fires
    )


@pytest.mark.parametrize(("hours", "fires"), [(24, False), (25, True)])
def test_material_late_entry(engine, plant, hours, fires):
    entered = dt.datetime.fromisoformat(at(10)) + dt.timedelta(hours=hours)
    got = run(
        engine, plant, _mat({"entered_at": entered.isoformat()}), "material_late_entry"
    )
    assert bool(got) is fires


@pytest.mark.parametrize(("used", "fires"), [(30600.0, False), (30700.0, True)])
def test_material_usage(engine, plant, used, fires):
    # 30,000 kg arrived, tolerance 2 % -> 30,600 kg
    assert bool(run(engine, plant, _mat({"used_kg": used}), "material_usage")) is fires


@pytest.mark.parametrize(("lot", "fires"), [("L001", True), ("L002", False)])
def test_material_duplicate(engine, plant, lot, fires):
    def change(d):
        d["concrete_materials"].append(
            dict(
                d["concrete_materials"][0],
                material_record_no=f"{plant}-M2",
                batch_no=lot,
            )
        )

    got = run(engine, plant, change, "material_duplicate")
    assert bool(got) is fires
    if fires:
        assert got[0].evidence["records"] == [f"{plant}-M1", f"{plant}-M2"]


@pytest.mark.parametrize(
    ("mb", "cls", "powder", "fires"),
    [
        (1.0, "C30", 7.0, False),
        (1.0, "C30", 7.1, True),
        (1.39, "C25", 10.0, False),
        (1.0, "C60", 5.1, True),
        (1.4, "C30", 3.0, False),
        (1.4, "C30", 3.1, True),
        (1.5, "C60", 2.1, True),
        (1.5, "C20", 5.0, False),
        (None, "C30", 1.0, True),  # incomplete record
        # JGJ 52-2006 table 3.1.5 through the evaluator, each side of each step
        (1.0, "C60", 5.0, False),  # MB < 1.4, >= C60: 5 %
        (1.0, "C25", 10.0, False),  # <= C25: 10 %
        (1.0, "C25", 10.1, True),
        (1.4, "C60", 2.0, False),  # MB >= 1.4, >= C60: 2 %
        (1.4, "C25", 5.0, False),  # MB >= 1.4, <= C25: 5 %
        (1.4, "C25", 5.1, True),
        (1.4, "C20", 5.1, True),
        (1.0, "C55", 6.0, False),  # C55 counts with C30-C55: 7 %
        (1.0, "C60", 6.0, True),  # C60: 5 %
        (1.0, "C25", 8.0, False),  # C25: 10 %
        (1.0, "C30", 8.0, True),  # C30: 7 %
        (1.6, "C55", 2.5, False),  # MB >= 1.4: C55 3 %, C60 2 %
        (1.6, "C60", 2.5, True),
        (1.6, "C25", 4.0, False),  # C25 5 %, C30 3 %
        (1.6, "C30", 4.0, True),
    ],
)
def test_manufactured_sand(engine, plant, mb, cls, powder, fires):
    change = {
        "material": "manufactured_sand",
        "mb_value": mb,
        "for_strength_class": cls,
        "stone_powder_pct": powder,
    }
    assert bool(run(engine, plant, _mat(change), "manufactured_sand")) is fires


# -- self tests ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("volume", "groups", "fires"),
    [(100.0, 1, False), (100.5, 1, True), (250, 3, False)],
)
def test_self_test_groups(engine, plant, volume, groups, fires):
    def change(d):
        d["concrete_production"][0]["volume_m3"] = volume
        g0 = d["concrete_self_tests"][0]
        d["concrete_self_tests"] = [dict(g0, group_no=f"G{i}") for i in range(groups)]

    got = run(engine, plant, change, "self_test_groups")
    assert bool(got) is fires
    if fires:
        assert got[0].evidence["required"] == 2


@pytest.mark.parametrize(
    ("age", "tested", "fires"),
    [(31, False, False), (32, False, True), (40, True, False)],
)
def test_self_test_overdue(engine, plant, age, tested, fires):
    def change(d):
        g = d["concrete_self_tests"][0]
        g.update(cast_on=day(age))
        if tested:
            g.update(tested_on=day(age - 28), strength_mpa=40.0)

    got = run(engine, plant, change, "self_test_overdue")
    assert bool(got) is fires


# -- strength through the evaluator --------------------------------------------------


def _groups(pid, values, cls="C30", start=40):
    return [
        {
            "plant_id": pid,
            "group_no": f"H{i:02d}",
            "strength_class": cls,
            "cast_on": day(start + i),
            "tested_on": day(start + i - 28),
            "strength_mpa": v,
            "curing": "standard",
        }
        for i, v in enumerate(values)
    ]


@pytest.mark.parametrize(
    ("values", "method", "fires"),
    [
        (
            [38.0, 36.0, 40.0, 35.0, 37.0, 39.0, 36.5, 38.5, 37.5, 36.0],
            "statistical",
            False,
        ),
        (
            [38.0, 36.0, 40.0, 35.0, 37.0, 39.0, 36.5, 38.5, 37.5, 26.0],
            "statistical",
            True,
        ),
        ([35.0, 34.5, 34.0], "non_statistical", False),
        ([34.0, 34.5, 34.0], "non_statistical", True),
    ],
)
def test_strength_assessment(engine, plant, values, method, fires):
    def change(d):
        d["concrete_self_tests"] += _groups(plant, values)

    got = run(engine, plant, change, "strength_assessment")
    assert bool(got) is fires
    if fires:
        ev = got[0].evidence
        assert ev["method"] == method and ev["n"] == len(values)
        assert got[0].period == "C30" and got[0].level == "red"
        for key in ("mean", "minimum", "mean_required", "min_required"):
            assert ev[key] is not None


def _ordered(pid, values, cls="C30", newest=40, prefix="K"):
    """Groups in production order (the first value cast first), a day apart;
    the last one cast ``newest`` days before AS_OF, tested at 28 days."""
    n = len(values)
    return [
        {
            "plant_id": pid,
            "group_no": f"{prefix}{i:02d}",
            "strength_class": cls,
            "cast_on": day(newest + n - 1 - i),
            "tested_on": day(newest + n - 1 - i - 28),
            "strength_mpa": v,
            "curing": "standard",
        }
        for i, v in enumerate(values)
    ]


SIGMA3 = {"strength_sigma0_mpa": {"C30": 3.0}}


def _known(engine, plant, groups, **rules):
    return run(
        engine,
        plant,
        lambda d: d["concrete_self_tests"].extend(groups),
        "strength_assessment",
        C.ConcreteRules(**{**SIGMA3, **rules}),
    )


def test_strength_known_sigma_passes(engine, plant):
    # sigma0 = 3, C30: mean >= 32.1, min >= max(27.9, 27.0); two lots on the line
    got = _known(engine, plant, _ordered(plant, [32.1, 32.1, 32.1, 33.0, 27.9, 35.4]))
    assert got == []


def test_strength_known_sigma_lots(engine, plant):
    # lot 1 passes, lot 2 fails on its minimum (27.8 < 27.9)
    values = [33.0, 32.0, 31.5, 35.0, 34.0, 27.8]
    got = _known(engine, plant, _ordered(plant, values))
    (f,) = got
    ev = f.evidence
    assert f.period == "C30/lot2" and ev["lot"] == 2 and ev["complete"] is True
    assert ev["method"] == "known_sigma" and ev["sigma0_source"] == "configured"
    assert ev["values"] == [35.0, 34.0, 27.8] and ev["min_ok"] is False
    # another plant's sigma0 does not apply: 6 groups -> non-statistical
    other = C.ConcreteRules(strength_sigma0_mpa={"elsewhere/C30": 3.0})
    got = findings(engine, plant, "strength_assessment", other)
    assert [f.evidence["method"] for f in got] == ["non_statistical"]


@pytest.mark.parametrize(("newest", "fires"), [(34, False), (35, True)])
def test_strength_known_sigma_short_lot(engine, plant, newest, fires):
    """The class's last lot of one group: pending, then non-statistical."""
    groups = _ordered(plant, [33.0, 33.0, 33.0, 30.0], newest=newest)
    got = _known(engine, plant, groups)
    assert bool(got) is fires
    if fires:
        ev = got[0].evidence
        assert got[0].period == "C30/lot2" and ev["complete"] is False
        assert ev["method"] == "non_statistical" and ev["n"] == 1


def test_strength_known_sigma_lots_do_not_shift_with_the_window(engine, plant):
    # groups 0-5 in production order; 0 and 1 cast before the 90-day window.
    # Lot 1 (groups 0-2) was assessed while in the window; lot 2 (3-5) is
    # assessed now. Counted from the window's own first group, the weak group
    # 2 would make a lot (2-4) of its own and fail it.
    values = [33.0, 33.0, 20.0, 34.0, 34.0, 34.0]
    groups = _ordered(plant, values, newest=86)  # cast 91 .. 86 days before
    got = _known(engine, plant, groups)
    assert got == []
    # the same records seen earlier, with lot 1 in the window: it fails
    earlier = AS_OF - dt.timedelta(days=5)
    got = findings(
        engine, plant, "strength_assessment", C.ConcreteRules(**SIGMA3), earlier
    )
    assert [f.period for f in got] == ["C30/lot1"]


@pytest.mark.parametrize(("previous", "method"), [(45, "known_sigma"), (44, None)])
def test_strength_sigma0_from_the_previous_period(engine, plant, previous, method):
    rng = np.random.default_rng(5)
    old = np.round(rng.normal(38.0, 3.2, previous), 1)
    history = _ordered(plant, list(old), newest=95, prefix="P")
    current = _ordered(plant, [36.0, 35.5, 27.0], newest=40)
    rules = C.ConcreteRules(strength_sigma0_from_previous=True)
    got = run(
        engine,
        plant,
        lambda d: d["concrete_self_tests"].extend(history + current),
        "strength_assessment",
        rules,
    )
    if method is None:  # too few groups: sigma0 unknown, non-statistical
        assert [f.evidence["method"] for f in got] == ["non_statistical"]
        return
    (f,) = got
    ev = f.evidence
    assert ev["method"] == "known_sigma" and ev["sigma0_source"] == "previous period"
    assert ev["sigma0_groups"] == previous
    assert ev["sigma0"] == pytest.approx(float(np.std(old, ddof=1)), abs=1e-3)
    assert f.period == "C30/lot16"  # counted from the class's first group


@pytest.mark.parametrize(
    ("value", "age", "cls", "fires"),
    [
        (30.0, 28, "C30", False),  # on f_cu,k
        (29.9, 28, "C30", True),
        (29.9, 27, "C30", False),  # an early-age test is not the 28-day result
        (59.9, 30, "C60", True),
    ],
)
def test_self_test_strength(engine, plant, value, age, cls, fires):
    def change(d):
        d["concrete_self_tests"].append(
            {
                "plant_id": plant,
                "group_no": "S1",
                "strength_class": cls,
                "cast_on": day(age + 2),
                "tested_on": day(2),
                "strength_mpa": value,
                "curing": "standard",
            }
        )

    got = run(engine, plant, change, "self_test_strength")
    assert bool(got) is fires
    if fires:
        assert got[0].period == "S1" and got[0].level == "orange"
        assert got[0].evidence["required_mpa"] == parse_strength_class(cls)


def test_strength_window_excludes_old_groups(engine, plant):
    weak = [20.0, 21.0, 22.0]  # cast 95+ days ago: outside the 90-day window
    got = run(
        engine,
        plant,
        lambda d: d["concrete_self_tests"].extend(_groups(plant, weak, start=95)),
        "strength_assessment",
    )
    assert got == []


# -- every rule on each side of its threshold, one table -----------------------------


def _set(feed: str, **values):
    """Change the first record of a feed."""
    return lambda pid, d: d[feed][0].update(values)


def _batch(material: str, dev: float, cumulative: bool = False):
    def change(pid, d):
        row = next(r for r in d["concrete_batching"] if r["material"] == material)
        row.update(
            target_kg=1000.0, actual_kg=1000.0 * (1 + dev / 100), cumulative=cumulative
        )

    return change


def _second_record(batched: bool):
    def change(pid, d):
        rec = dict(
            d["concrete_production"][0],
            record_no=f"{pid}-R2",
            batching_serial=f"PB{pid[-8:]}0002",
        )
        d["concrete_production"].append(rec)
        d["concrete_self_tests"].append(
            dict(d["concrete_self_tests"][0], group_no="G2", record_no=f"{pid}-R2")
        )
        if batched:
            d["concrete_batching"] += [
                dict(b, record_no=f"{pid}-R2") for b in d["concrete_batching"][:4]
            ]

    return change


def _all_batching(**values):
    return lambda pid, d: [r.update(values) for r in d["concrete_batching"]]


def _lot(batch_no: str):
    return lambda pid, d: d["concrete_materials"].append(
        dict(
            d["concrete_materials"][0],
            material_record_no=f"{pid}-M2",
            batch_no=batch_no,
        )
    )


def _group(value: float, age: int = 28, cls: str = "C30"):
    return lambda pid, d: d["concrete_self_tests"].append(
        {
            "plant_id": pid,
            "group_no": "S1",
            "strength_class": cls,
            "cast_on": day(age + 2),
            "tested_on": day(2),
            "strength_mpa": value,
            "curing": "standard",
        }
    )


def _strength(values: list[float]):
    return lambda pid, d: d["concrete_self_tests"].extend(_groups(pid, values))


def _sand(mb: float, cls: str, powder: float):
    return _set(
        "concrete_materials",
        material="manufactured_sand",
        mb_value=mb,
        for_strength_class=cls,
        stone_powder_pct=powder,
    )


#: (kind, plant properties, change of the baseline, fires): the threshold of
#: each kind from both sides (the tests above go through more of each).
CASES = [
    ("basic_data", {}, None, False),
    ("basic_data", {"licence": None}, None, True),
    ("equipment", {}, _all_batching(produced_at=at(6.9, hour=23)), False),
    ("equipment", {}, _all_batching(produced_at=at(7.1, hour=23)), True),
    ("online_batching", {}, _second_record(batched=True), False),
    ("online_batching", {}, _second_record(batched=False), True),
    ("material_self_test", {}, _set("concrete_materials", tested_at=at(8, 9)), False),
    ("material_self_test", {}, _set("concrete_materials", tested_at=at(8, 11)), True),
    ("material_arrival", {}, None, False),
    ("material_arrival", {}, _set("concrete_materials", supplier=None), True),
    ("material_overdue", {}, _set("concrete_materials", expires_on=day(2)), False),
    ("material_overdue", {}, _set("concrete_materials", expires_on=day(3)), True),
    (
        "material_late_entry",
        {},
        _set("concrete_materials", entered_at=at(9, 10)),
        False,
    ),
    ("material_late_entry", {}, _set("concrete_materials", entered_at=at(9, 11)), True),
    ("material_usage", {}, _set("concrete_materials", used_kg=30600.0), False),
    ("material_usage", {}, _set("concrete_materials", used_kg=30700.0), True),
    ("material_duplicate", {}, _lot("L002"), False),
    ("material_duplicate", {}, _lot("L001"), True),
    ("mix_ratio", {}, None, False),
    ("mix_ratio", {}, _set("concrete_production", mix_ratio_no=None), True),
    ("production_record", {}, None, False),
    ("production_record", {}, _set("concrete_production", strength_class="30"), True),
    ("batching_deviation", {}, _batch("binder", 2.0), False),
    ("batching_deviation", {}, _batch("binder", 2.1), True),
    ("chloride", {}, _set("concrete_batching", chloride_pct=0.20), False),
    ("chloride", {}, _set("concrete_batching", chloride_pct=0.21), True),
    ("self_test_groups", {}, _set("concrete_production", volume_m3=100.0), False),
    ("self_test_groups", {}, _set("concrete_production", volume_m3=100.5), True),
    ("production_approval", {}, None, False),
    ("production_approval", {}, _set("concrete_production", approved=False), True),
    ("batching_serial", {}, None, False),
    ("batching_serial", {}, _set("concrete_production", batching_serial=""), True),
    ("strength_assessment", {}, _strength([35.0, 34.5, 34.0]), False),
    ("strength_assessment", {}, _strength([34.0, 34.5, 34.0]), True),
    ("self_test_overdue", {}, _set("concrete_self_tests", cast_on=day(31)), False),
    ("self_test_overdue", {}, _set("concrete_self_tests", cast_on=day(32)), True),
    ("manufactured_sand", {}, _sand(1.0, "C30", 7.0), False),
    ("manufactured_sand", {}, _sand(1.0, "C30", 7.1), True),
    ("self_test_strength", {}, _group(30.0), False),
    ("self_test_strength", {}, _group(29.9), True),
]


@pytest.mark.parametrize(
    ("kind", "props", "change", "fires"),
    CASES,
    ids=[f"{c[0]}-{'fires' if c[3] else 'quiet'}" for c in CASES],
)
def test_rule_threshold(engine, kind, props, change, fires):
    pid = f"CT-{uuid.uuid4().hex[:8]}"
    _insert_plant(engine, pid, **props)
    try:
        data = copy.deepcopy(baseline(pid))
        if change is not None:
            change(pid, data)
        load(engine, data)
        assert bool(findings(engine, pid, kind)) is fires
    finally:
        _cleanup(engine, [pid])


def test_every_rule_has_a_case_on_each_side():
    tested = {(kind, fires) for kind, _, _, fires in CASES}
    for kind in C.KINDS:
        assert (kind, True) in tested and (kind, False) in tested, kind


# -- GB/T 50107 worked examples (pure) ----------------------------------------------


@pytest.mark.parametrize("module", [C, concrete_strength])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted >= 5 and result.failed == 0


@pytest.mark.parametrize(
    ("n", "l1", "l2"),
    [
        (10, 1.15, 0.90),
        (14, 1.15, 0.90),
        (15, 1.05, 0.85),
        (19, 1.05, 0.85),
        (20, 0.95, 0.85),
        (45, 0.95, 0.85),
    ],
)
def test_lambda_boundaries(n, l1, l2):
    assert lambda_factors(n) == (l1, l2)
    # S floored at 2.5: groups all equal -> mean required f_cuk + l1 * 2.5
    values = np.full(n, 30.0 + l1 * 2.5)
    a = assess_strength(values, 30.0)
    assert a.method == "statistical" and a.std == 0 and a.std_used == 2.5
    assert a.mean_required == pytest.approx(30 + l1 * 2.5)
    assert a.min_required == pytest.approx(l2 * 30)
    assert a.passed
    assert not assess_strength(values - 0.01, 30.0).passed


def test_nine_groups_are_non_statistical():
    assert assess_strength(np.full(9, 40.0), 30).method == "non_statistical"
    with pytest.raises(ValueError):
        lambda_factors(9)


def test_statistical_worked_example_with_s_above_floor():
    # C30, 12 groups; S computed by GB/T 50107 eq. 5.1.3-3
    v = np.array(
        [31.2, 36.8, 33.9, 40.1, 34.7, 37.3, 32.6, 36.0, 41.2, 35.5, 33.1, 38.9]
    )
    a = assess_strength(v, 30)
    s = np.sqrt((np.sum(v**2) - 12 * v.mean() ** 2) / 11)
    assert a.std == pytest.approx(s) and s > 2.5 and a.std_used == pytest.approx(s)
    assert a.lambda1 == 1.15 and a.lambda2 == 0.90
    assert a.mean_required == pytest.approx(30 + 1.15 * s)
    assert a.passed  # mean 35.94 >= 33.53 (S 3.07), min 31.2 >= 27.0
    # the same lot with one low group fails on the minimum (< 0.90 * 30 = 27)
    low = v.copy()
    low[1] = 26.9
    b = assess_strength(low, 30)
    assert not b.min_ok and b.mean_ok and not b.passed


def test_statistical_fails_on_mean_with_large_spread():
    # C40, 20 groups, S ~ 6: mean 47 < 40 + 0.95 * S
    rng = np.random.default_rng(3)
    v = 47 + 6 * (rng.standard_normal(20))
    v = (v - v.mean()) / v.std(ddof=1) * 6 + 47
    a = assess_strength(v, 40)
    assert a.lambda1 == 0.95 and a.std == pytest.approx(6)
    assert a.mean_required == pytest.approx(45.7)
    assert a.mean_ok  # 47 >= 45.7
    assert not assess_strength(v - 1.5, 40).mean_ok  # 45.5 < 45.7


@pytest.mark.parametrize(
    ("f_cuk", "lambda3", "mean_ok", "mean_bad"),
    [(55, 1.15, 63.25, 63.2), (60, 1.10, 66.0, 65.9), (80, 1.10, 88.0, 87.9)],
)
def test_non_statistical_c60_boundary(f_cuk, lambda3, mean_ok, mean_bad):
    a = assess_strength([mean_ok] * 3, f_cuk)
    assert a.method == "non_statistical" and a.lambda3 == lambda3
    assert a.mean_required == pytest.approx(lambda3 * f_cuk) and a.passed
    assert not assess_strength([mean_bad] * 3, f_cuk).passed


def test_non_statistical_minimum():
    # C30: min >= 0.95 * 30 = 28.5
    assert assess_strength([40.0, 40.0, 28.5], 30).passed
    a = assess_strength([40.0, 40.0, 28.4], 30)
    assert a.mean_ok and not a.min_ok and not a.passed


@pytest.mark.parametrize(
    ("f_cuk", "sigma0", "values", "passed", "min_required"),
    [
        # C30, sigma0 4: mean >= 32.8, min >= max(27.2, 27.0) = 27.2
        (30, 4.0, [33.0, 32.6, 32.8], True, 27.2),
        (30, 4.0, [33.0, 32.5, 32.8], False, 27.2),
        (30, 4.0, [36.0, 36.0, 27.1], False, 27.2),
        # C30, sigma0 1.0 floored to 2.5: mean >= 31.75, min >= max(28.25, 27.0)
        (30, 1.0, [31.75, 31.75, 31.75], True, 28.25),
        # C20, sigma0 6: mean >= 24.2, min >= max(15.8, 0.85 * 20 = 17.0)
        (20, 6.0, [26.0, 25.6, 21.0], True, 17.0),
        (20, 6.0, [26.0, 30.0, 16.9], False, 17.0),
        # C25 (> C20), sigma0 6: min >= max(20.8, 0.90 * 25 = 22.5)
        (25, 6.0, [32.0, 32.0, 22.4], False, 22.5),
    ],
)
def test_known_sigma(f_cuk, sigma0, values, passed, min_required):
    a = assess_strength(values, f_cuk, sigma0=sigma0)
    assert a.method == "known_sigma"
    assert a.std_used == max(sigma0, 2.5)
    assert a.min_required == pytest.approx(min_required)
    assert a.mean_required == pytest.approx(f_cuk + 0.7 * max(sigma0, 2.5))
    assert a.passed is passed


def test_criteria_are_configurable():
    strict = StrengthCriteria(std_floor_mpa=4.0)
    a = assess_strength([35.0] * 10, 30, criteria=strict)
    assert a.std_used == 4.0 and a.mean_required == pytest.approx(34.6)
    assert parse_strength_class("C100") == 100.0


# -- credit score --------------------------------------------------------------------


def test_credit_score_deductions_and_history(engine, plant):
    data = baseline(plant)
    data["concrete_production"][0]["approved"] = False  # yellow: 1
    data["concrete_batching"][0]["chloride_pct"] = 0.25  # red: 5
    load(engine, data)
    with engine.begin() as conn:
        scores = C.credit_scores(conn, AS_OF)
    assert scores[plant] == 94.0
    with engine.begin() as conn:
        # same date again: replaced, not added; a later date with a rule override
        C.credit_scores(conn, AS_OF)
        rules = C.ConcreteRules(credit_rule_deductions={"concrete.chloride": 50.0})
        later = C.credit_scores(conn, AS_OF + dt.timedelta(days=1), rules)
    assert later[plant] == 49.0
    with engine.connect() as conn:
        history = C.credit_history(conn, plant)
        layer_score = conn.execute(
            text("SELECT credit_score FROM layer_plants WHERE source_id = :p"),
            {"p": plant},
        ).scalar()
    assert [h["as_of"] for h in history] == [AS_OF, AS_OF + dt.timedelta(days=1)]
    assert [h["score"] for h in history] == [94.0, 49.0]
    assert history[0]["deductions"]["rules"] == {
        "concrete.production_approval": {"count": 1, "points": 1.0},
        "concrete.chloride": {"count": 1, "points": 5.0},
    }
    assert layer_score == 49.0


def test_credit_score_floor_and_layer_version(engine, plant):
    data = baseline(plant)
    data["concrete_production"] = [
        dict(
            data["concrete_production"][0],
            record_no=f"{plant}-X{i}",
            approved=False,
            mix_ratio_no=None,
            batching_serial="",
        )
        for i in range(12)
    ]  # 12 x (yellow 1 + orange 3 + orange 3 + orange online + orange groups) > 100
    load(engine, data)
    with engine.begin() as conn:
        before = conn.execute(
            text("SELECT version FROM layer_versions WHERE layer_id = 'plants'")
        ).scalar()
        scores = C.credit_scores(conn, AS_OF)
        after = conn.execute(
            text("SELECT version FROM layer_versions WHERE layer_id = 'plants'")
        ).scalar()
    assert scores[plant] == 0.0
    assert after > before


def test_credit_score_pure():
    rules = C.ConcreteRules(credit_deductions={"yellow": 2, "orange": 4, "red": 10})
    score, ded = C.credit_score([("concrete.mix_ratio", "orange")] * 3, rules)
    assert score == 88 and ded["total"] == 12


# -- feeds ---------------------------------------------------------------------------


def test_bad_feed_rows_rejected(engine, plant):
    rows = [
        {
            "plant_id": plant,
            "record_no": "R1",
            "batch_no": "1",
            "material": "cement",
            "target_kg": 1,
            "actual_kg": 1,
        },  # not a material class
        {
            "plant_id": plant,
            "batch_no": "2",
            "material": "water",
            "target_kg": 1,
            "actual_kg": 1,
        },  # no record number
        {
            "plant_id": plant,
            "record_no": "R1",
            "batch_no": "3",
            "material": "water",
            "target_kg": -5,
            "actual_kg": 1,
        },  # negative weight
        {
            "plant_id": plant,
            "record_no": "R1",
            "batch_no": "4",
            "material": "水",
            "target_kg": "abc",
            "actual_kg": 1,
        },
        {
            "plant_id": plant,
            "record_no": "R1",
            "batch_no": "5",
            "material": "Water",
            "target_kg": "100",
            "actual_kg": "101.5",
        },  # fine
    ]
    report = load_feed(engine, get_feed("concrete_batching"), records=rows, source="t")
    assert report.rejected == 4 and report.inserted == 1
    assert sorted(i.row for i in report.issues if i.action == "rejected") == [
        1,
        2,
        3,
        4,
    ]
    bad_time = [{"plant_id": plant, "record_no": "R9", "produced_at": "yesterday"}]
    report = load_feed(engine, get_feed("concrete_production"), records=bad_time)
    assert report.rejected == 1 and report.inserted == 0


def test_chinese_aliases(engine, plant, tmp_path):
    path = tmp_path / "production.csv"
    path.write_text(
        "企业编号,生产记录编号,生产时间,工程名称,强度等级,方量,配合比编号,配料流水号,已审批\n"
        f"{plant},Z1,2026-11-28 09:00,测试,C35,12.5,PH-1,PB-0000001,是\n",
        encoding="utf-8",
    )
    report = load_feed(engine, get_feed("concrete_production"), path)
    assert report.inserted == 1 and report.rejected == 0
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT strength_class, volume_m3, approved FROM "
                "feed_concrete_production WHERE plant_id = :p"
            ),
            {"p": plant},
        ).one()
    assert tuple(row) == ("C35", 12.5, True)


# -- demo records ------------------------------------------------------------------


def test_demo_records(engine):
    pids = [f"CT-demo-{uuid.uuid4().hex[:6]}-{i:03d}" for i in range(8)]
    for pid in pids:
        _insert_plant(engine, pid)
    try:
        with engine.connect() as conn:
            a = C.demo_records(conn, 7, AS_OF)
            b = C.demo_records(conn, 7, AS_OF)
        assert a == b
        ours = {
            feed: [r for r in rows if r["plant_id"] in pids] for feed, rows in a.items()
        }
        assert 200 < sum(len(r) for r in ours.values()) < 5000
        load(engine, ours)
        with engine.connect() as conn:
            found = [f for f in C.evaluate(conn, AS_OF) if f.subject_id in pids]
        kinds = {f.rule for f in found}
        assert len(kinds) >= 6, kinds
        assert "concrete.basic_data" not in kinds
    finally:
        _cleanup(engine, pids)
