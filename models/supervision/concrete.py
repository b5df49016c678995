"""Supervision of ready-mixed concrete plants: rules, evaluator, credit score.

The seed system's warning kinds (``../shared/DOMAIN.md`` §3), one
:class:`~models.supervision.rules.Rule` each (``concrete.<kind>``), evaluated
over the four feeds of :mod:`layers.supervision.concrete` and the ``plants``
layer. Every threshold is a field of :class:`ConcreteRules` (env prefix
``GIS_RULES_CONCRETE_``) whose description names its source and confidence
mark ([S] published, [R] commonly cited, [D] design default).

Shape of the code: :func:`evaluate` reads each feed once (set-based SQL over
the look-back window), turns the rows into column arrays, and hands them to
pure check functions (``check_<kind>``) that return findings; the arithmetic
(deviation, tolerance, stone-powder limit, strength assessment in
:mod:`models.supervision.concrete_strength`) is numpy with doctests.
:func:`credit_scores` turns the findings into each plant's credit score,
written to ``concrete_credit_history`` and to the layer's ``credit_score``.

A finding about a record (a production ticket, a lot, a specimen group) is
observed at the record's time under the record's number as its period; a
standing condition (incomplete basic data, a silent mixer, no arrival, a
result still missing) at the evaluation time (the engine's end of the day).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict
from sqlalchemy import (
    Column,
    Connection,
    Date,
    DateTime,
    Double,
    Engine,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from gis_server.overrides import OverridableSettings
from layers import metadata
from layers.supervision.concrete import BATCH_MATERIALS, CHLORIDE_ENVIRONMENTS
from models.supervision.concrete_strength import (
    StrengthCriteria,
    assess_strength,
    known_sigma_lots,
    parse_strength_class,
)
from models.supervision.rules import (
    LEVELS,
    Finding,
    Rule,
    register_evaluator,
    register_rule,
)

log = logging.getLogger("gis_server.supervision.concrete")

DOMAIN = "concrete"
SUBJECT_LAYER = "plants"
NO_STANDARD = "[D] no standard: design default."

#: Credit-score history: one row per plant and evaluation date (a second run
#: on the same date replaces the first).
credit_history_table = Table(
    "concrete_credit_history",
    metadata,
    Column("plant_id", Text, nullable=False),
    Column("as_of", Date, nullable=False),
    Column("score", Double, nullable=False),
    #: {"total": points, "rules": {rule id: {"count": n, "points": p}}}
    Column("deductions", JSONB, nullable=False),
    Column(
        "computed_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=func.now(),
    ),
    PrimaryKeyConstraint("plant_id", "as_of", name="pk_concrete_credit_history"),
    comment="Credit score of each concrete plant per evaluation date",
)


# -- settings -------------------------------------------------------------------


class ConcreteRules(OverridableSettings):
    """Thresholds of the concrete-plant rules, one field each."""

    model_config = SettingsConfigDict(
        env_prefix="GIS_RULES_CONCRETE_", env_file=".env", extra="ignore"
    )

    timezone: str = Field(
        "Asia/Shanghai",
        description="[S] Local time of the plants' systems (China Standard Time); "
        "an evaluation date runs to the end of that day in this zone.",
    )
    lookback_days: int = Field(
        90,
        ge=1,
        description=f"{NO_STANDARD} Records older than this many days before the "
        "evaluation date are not evaluated (a past violation stops costing "
        "credit once it leaves the window).",
    )
    levels: dict[str, str] = Field(
        default={
            "basic_data": "yellow",
            "equipment": "orange",
            "online_batching": "orange",
            "material_self_test": "orange",
            "material_arrival": "yellow",
            "material_overdue": "orange",
            "material_late_entry": "yellow",
            "material_usage": "orange",
            "material_duplicate": "yellow",
            "mix_ratio": "orange",
            "production_record": "yellow",
            "batching_deviation": "orange",
            "chloride": "red",
            "self_test_groups": "orange",
            "production_approval": "yellow",
            "batching_serial": "orange",
            "strength_assessment": "red",
            "self_test_overdue": "orange",
            "manufactured_sand": "orange",
            "self_test_strength": "orange",
        },
        description=f"{NO_STANDARD} Warning level of each kind (yellow / orange / "
        "red); batching deviation escalates to red past "
        "`deviation_red_factor` times its tolerance.",
    )
    # -- batching at the mixer (GB/T 14902-2012 §7.4, table 6) ----------------
    tolerance_batch_pct: dict[str, float] = Field(
        default={"binder": 2.0, "aggregate": 3.0, "water": 1.0, "admixture": 1.0},
        description="[R] GB/T 14902-2012 §7.4 (混凝土原材料计量允许偏差): per-batch "
        "(每盘) weighing tolerance, % of the target, per material class.",
    )
    tolerance_cumulative_pct: dict[str, float] = Field(
        default={"binder": 1.0, "aggregate": 2.0, "water": 1.0, "admixture": 1.0},
        description="[R] GB/T 14902-2012 §7.4: cumulative (累计) weighing "
        "tolerance, % of the target, per material class.",
    )
    deviation_red_factor: float = Field(
        2.0,
        gt=1,
        description=f"{NO_STANDARD} A deviation beyond this multiple of its "
        "tolerance is a red warning.",
    )
    # -- chloride (GB 50164-2011 table 3.1.8 / JGJ 55) -------------------------
    chloride_limits_pct: dict[str, float] = Field(
        default={
            "reinforced_dry": 0.30,
            "reinforced_humid": 0.20,
            "reinforced_chloride": 0.10,
            "reinforced_deicing": 0.06,
            "prestressed": 0.06,
            "plain": 1.00,
        },
        description="[S] GB 50164-2011 table 3.1.8 / JGJ 55-2011: maximum "
        "water-soluble chloride of the mix, % of the cement mass (水泥用量的质量"
        "百分比, as GB 50164 states it; GB 50010's design table counts the "
        "binder instead), per concrete type and environment: reinforced dry / "
        "humid without chlorides / with chlorides / sea water or de-icing "
        "salt; prestressed; plain. Every key of `CHLORIDE_ENVIRONMENTS` needs "
        "a limit.",
    )
    chloride_environment: str = Field(
        "reinforced_humid",
        description="[D] Guangzhou default, for a production record without its "
        "own `chloride_environment`: reinforced concrete in a humid environment "
        "without chlorides (0.20 %); a key of `chloride_limits_pct`.",
    )
    # -- strength (GB/T 50107-2010) --------------------------------------------
    strength_window_days: int = Field(
        90,
        ge=1,
        description="[R] GB/T 50107-2010 §5.1: a lot collects the groups of one "
        "class cast in a period of up to 3 months.",
    )
    strength_sigma0_mpa: dict[str, float] = Field(
        default={},
        description="[D] Known standard deviation sigma0 (MPa) of a plant's "
        "class, keyed '<plant_id>/<class>' or '<class>' for every plant; where "
        "given, the known-sigma method (lots of 3) is used (GB/T 50107 §5.1.2 "
        "requires production stable over the previous period: a judgement "
        "the records do not show, so it is configured).",
    )
    strength_sigma0_from_previous: bool = Field(
        False,
        description="[D] Also use the known-sigma method for a class without a "
        "configured sigma0 when the previous period (the `strength_window_days` "
        "before the current window) holds `strength_sigma0_min_groups` groups: "
        "sigma0 is then their standard deviation (GB/T 50107-2010 eq. 5.1.2-3). "
        "Off by default: the method also presumes stable production, which "
        "the records cannot show.",
    )
    strength_sigma0_min_groups: int = Field(
        45,
        ge=2,
        description="[R] GB/T 50107-2010 §5.1.2: sigma0 is computed from at "
        "least 45 groups of the previous inspection period (60-90 days).",
    )
    strength_lot_close_days: int = Field(
        35,
        ge=0,
        description="[D] Known-sigma method: a lot with fewer than 3 results "
        "(the last lot of a class, or one whose groups lack results) is "
        "assessed by the non-statistical method (GB/T 50107 §5.2, the method "
        "for small samples) once its last group was cast this many days "
        "before the evaluation (28-day results plus a margin); before, it is "
        "reported as pending.",
    )
    strength_std_floor_mpa: float = Field(
        2.5,
        gt=0,
        description="[S] GB/T 50107-2010 §5.1.2/§5.1.3: S (or sigma0) below "
        "2.5 MPa is taken as 2.5 MPa.",
    )
    strength_min_groups_statistical: int = Field(
        10,
        ge=2,
        description="[S] GB/T 50107-2010 §5.1.3: statistical method "
        "from 10 groups, non-statistical below (§5.2).",
    )
    strength_lambda1: tuple[tuple[int, float], ...] = Field(
        default=((10, 1.15), (15, 1.05), (20, 0.95)),
        description="[S] GB/T 50107-2010 table 5.1.3: lambda1 from n groups.",
    )
    strength_lambda2: tuple[tuple[int, float], ...] = Field(
        default=((10, 0.90), (15, 0.85)),
        description="[S] GB/T 50107-2010 table 5.1.3: lambda2 from n groups.",
    )
    strength_lambda3: tuple[tuple[float, float], ...] = Field(
        default=((0.0, 1.15), (60.0, 1.10)),
        description="[S] GB/T 50107-2010 table 5.2.2: lambda3 from f_cu,k "
        "(1.15 below C60, 1.10 from C60).",
    )
    strength_lambda4: float = Field(
        0.95, description="[S] GB/T 50107-2010 table 5.2.2: lambda4."
    )
    strength_sigma0_factor: float = Field(
        0.7,
        description="[S] GB/T 50107-2010 §5.1.2: mean >= f_cu,k + 0.7 sigma0, "
        "min >= f_cu,k - 0.7 sigma0.",
    )
    strength_sigma0_min_factor: tuple[tuple[float, float], ...] = Field(
        default=((20.0, 0.85), (1e9, 0.90)),
        description="[S] GB/T 50107-2010 §5.1.2: min >= 0.85 f_cu,k up to C20, "
        "0.90 f_cu,k above; (up to f_cu,k, factor) steps.",
    )
    # -- self-test specimens ---------------------------------------------------
    self_test_age_days: int = Field(
        28,
        description="[R] GB/T 50081-2019: standard-cured cubes are tested at "
        "28 days (20 +- 2 C, RH >= 95 %).",
    )
    self_test_tolerance_days: int = Field(
        3,
        ge=0,
        description=f"{NO_STANDARD} Days after the 28-day age before a missing "
        "result is a warning.",
    )
    self_test_strength_min_ratio: float = Field(
        1.0,
        gt=0,
        description="[D] A standard-cured group tested at 28 days or later whose "
        "strength is below this share of f_cu,k is a self-test strength "
        "warning: an early signal per group (GB/T 50107 assesses lots, and a "
        "lot may hold a group down to 0.85-0.95 f_cu,k).",
    )
    self_test_m3_per_group: float = Field(
        100.0,
        gt=0,
        description="[D] One specimen group per this many m3 of a production "
        "record, at least one (after GB/T 14902-2012 §9.3 and GB 50204 §7.4.1: "
        "one sample per 100 batches / 100 m3 of one mix [R]).",
    )
    # -- raw materials ---------------------------------------------------------
    late_entry_hours: float = Field(
        24.0,
        ge=0,
        description=f"{NO_STANDARD} An arrival entered more than this many hours "
        "after it arrived is a late entry.",
    )
    usage_tolerance_pct: float = Field(
        2.0,
        ge=0,
        description=f"{NO_STANDARD} A lot used beyond its arrived quantity by "
        "more than this % (weighing and moisture) is a usage warning.",
    )
    arrival_silence_days: int = Field(
        30,
        ge=1,
        description=f"{NO_STANDARD} A plant producing without any raw-material "
        "arrival in this many days is an arrival warning.",
    )
    manufactured_sand_materials: tuple[str, ...] = Field(
        default=("manufactured_sand", "机制砂"),
        description=f"{NO_STANDARD} `material` values taken as manufactured sand "
        "(also any record with a stone-powder content).",
    )
    sand_mb_threshold: float = Field(
        1.4,
        description="[S] JGJ 52-2006 §3.1.5: MB value below 1.4 (or the "
        "quick test passed) selects the higher stone-powder limits.",
    )
    sand_powder_limits_mb_low: tuple[tuple[float, float], ...] = Field(
        default=((60.0, 5.0), (30.0, 7.0), (0.0, 10.0)),
        description="[S] JGJ 52-2006 table 3.1.5, MB < 1.4: stone powder <= 5 % "
        "(>= C60), 7 % (C55-C30), 10 % (<= C25); (from f_cu,k, %) steps.",
    )
    sand_powder_limits_mb_high: tuple[tuple[float, float], ...] = Field(
        default=((60.0, 2.0), (30.0, 3.0), (0.0, 5.0)),
        description="[S] JGJ 52-2006 table 3.1.5, MB >= 1.4: 2 / 3 / 5 %.",
    )
    # -- records and equipment -------------------------------------------------
    batching_serial_pattern: str = Field(
        r"^[A-Za-z0-9][A-Za-z0-9_\-]{5,39}$",
        description=f"{NO_STANDARD} Shape of a valid batching serial number "
        "(6-40 letters, digits, '-' or '_'); one serial may appear on one "
        "production record only.",
    )
    equipment_silence_days: int = Field(
        7,
        ge=1,
        description=f"{NO_STANDARD} A plant with no batching record from its "
        "mixer in this many days has an equipment (data link) warning.",
    )
    # -- credit ----------------------------------------------------------------
    credit_start: float = Field(
        100.0, description=f"{NO_STANDARD} Credit score before deductions."
    )
    credit_floor: float = Field(
        0.0, description=f"{NO_STANDARD} The score never goes below this."
    )
    credit_deductions: dict[str, float] = Field(
        default={"yellow": 1.0, "orange": 3.0, "red": 5.0},
        description=f"{NO_STANDARD} Points deducted per finding of each level.",
    )
    credit_rule_deductions: dict[str, float] = Field(
        default={},
        description=f"{NO_STANDARD} Points per finding of a rule (id), replacing "
        "its level's deduction.",
    )

    @model_validator(mode="after")
    def _check(self) -> ConcreteRules:
        bad = {k: v for k, v in self.levels.items() if v not in LEVELS}
        if bad:
            raise ValueError(f"levels must be one of {LEVELS}: {bad}")
        if self.chloride_environment not in self.chloride_limits_pct:
            raise ValueError(
                f"chloride_environment {self.chloride_environment!r} is not a key "
                f"of chloride_limits_pct ({', '.join(self.chloride_limits_pct)})"
            )
        missing = [
            e for e in CHLORIDE_ENVIRONMENTS if e not in self.chloride_limits_pct
        ]
        if missing:
            raise ValueError(f"chloride_limits_pct lacks {', '.join(missing)}")
        return self

    @property
    def chloride_limit_pct(self) -> float:
        """The chloride limit of the configured (default) environment."""
        return self.chloride_limits_pct[self.chloride_environment]

    def chloride_limit(self, environment: str | None) -> tuple[str, float]:
        """The environment a record is judged in (its own, else the default)
        and its limit, % of the cement mass."""
        env = environment or self.chloride_environment
        return env, self.chloride_limits_pct[env]

    @property
    def strength_criteria(self) -> StrengthCriteria:
        return StrengthCriteria(
            min_groups_statistical=self.strength_min_groups_statistical,
            std_floor_mpa=self.strength_std_floor_mpa,
            lambda1=self.strength_lambda1,
            lambda2=self.strength_lambda2,
            lambda3=self.strength_lambda3,
            lambda4=self.strength_lambda4,
            sigma0_factor=self.strength_sigma0_factor,
            sigma0_min_factor=self.strength_sigma0_min_factor,
        )

    def level(self, kind: str) -> str:
        return self.levels.get(kind, "yellow")

    def sigma0(self, plant_id: str, strength_class: str) -> float | None:
        key = strength_class.strip().upper()
        return self.strength_sigma0_mpa.get(
            f"{plant_id}/{key}", self.strength_sigma0_mpa.get(key)
        )


# -- rules ----------------------------------------------------------------------


def _rule(
    kind: str,
    title: str,
    title_zh: str,
    source: str,
    confidence: str,
    description: str,
    settings: tuple[str, ...] = (),
) -> Rule:
    return register_rule(
        Rule(
            id=f"{DOMAIN}.{kind}",
            domain=DOMAIN,
            title=title,
            title_zh=title_zh,
            source=source,
            confidence=confidence,  # type: ignore[arg-type]
            subject_layer=SUBJECT_LAYER,
            description=description,
            settings=("levels", *settings),
        )
    )


R_BASIC = _rule(
    "basic_data",
    "Basic data incomplete",
    "基础数据预警",
    "seed system",
    "D",
    "The plant's row in the `plants` layer lacks its enterprise name, licence "
    "or a positive annual capacity.",
)
R_EQUIPMENT = _rule(
    "equipment",
    "Equipment silent",
    "设备预警",
    "seed system",
    "D",
    "No batching record from the plant's mixer in the last "
    "`equipment_silence_days` days: the mixer or its data link is down (we have "
    "no equipment register; this is the part of the seed rule the data shows).",
    ("equipment_silence_days",),
)
R_ONLINE = _rule(
    "online_batching",
    "Online batching missing",
    "生产配料在线预警",
    "seed system",
    "D",
    "A production record with no batching record at the mixer.",
    ("lookback_days",),
)
R_MAT_TEST = _rule(
    "material_self_test",
    "Raw material used before self-test",
    "原材料自检预警",
    "GB 50164-2011 §4 (materials checked on arrival before use)",
    "R",
    "A raw-material lot used (`first_used_at`) while not self-tested, or before "
    "its self-test was reported (`tested_at`).",
)
R_ARRIVAL = _rule(
    "material_arrival",
    "Raw-material arrival",
    "原材料进场预警",
    "seed system",
    "D",
    "An arrival record without supplier, lot number or quantity (untraceable), "
    "or a plant producing with no arrival recorded in `arrival_silence_days`.",
    ("arrival_silence_days",),
)
R_OVERDUE = _rule(
    "material_overdue",
    "Raw material used past its expiry",
    "原材料超期预警",
    "GB 175-2007 / GB 8076-2008 (shelf life of cement and admixtures)",
    "R",
    "A lot used (`last_used_at`) after its `expires_on` date.",
)
R_LATE = _rule(
    "material_late_entry",
    "Raw-material entry late",
    "原材料延迟录入预警",
    "seed system",
    "D",
    "An arrival entered into the system more than `late_entry_hours` after it arrived.",
    ("late_entry_hours",),
)
R_USAGE = _rule(
    "material_usage",
    "Raw-material usage exceeds arrival",
    "原材料使用预警",
    "seed system",
    "D",
    "More of a lot used than arrived (beyond `usage_tolerance_pct`): use "
    "booked against the wrong lot or an unrecorded arrival.",
    ("usage_tolerance_pct",),
)
R_DUPLICATE = _rule(
    "material_duplicate",
    "Duplicate raw-material record",
    "原材料重复记录预警",
    "seed system",
    "D",
    "The same material, supplier and lot recorded under more than one record number.",
)
R_MIX = _rule(
    "mix_ratio",
    "Mix ratio missing",
    "配合比预警",
    "JGJ 55-2011 (designed mix)",
    "R",
    "A production record without a mix-ratio number.",
)
R_RECORD = _rule(
    "production_record",
    "Production record incomplete",
    "生产记录预警",
    "seed system",
    "D",
    "A production record without project, volume or a valid strength class (C<n>).",
)
R_DEVIATION = _rule(
    "batching_deviation",
    "Batching deviation",
    "配料偏差预警",
    "GB/T 14902-2012 §7.4",
    "R",
    "A material weighed off its target by more than its tolerance, per batch or "
    "cumulative; red past `deviation_red_factor` times the tolerance. One "
    "finding per production record, listing the deviating rows.",
    ("tolerance_batch_pct", "tolerance_cumulative_pct", "deviation_red_factor"),
)
R_CHLORIDE = _rule(
    "chloride",
    "Chloride content too high",
    "氯离子含量预警",
    "GB 50164-2011 table 3.1.8; JGJ 55-2011",
    "S",
    "Water-soluble chloride (% of the cement mass) of a production record's "
    "batches above the `chloride_limits_pct` limit of the record's concrete "
    "type / environment (`chloride_environment` of the record, else the "
    "setting of that name).",
    ("chloride_limits_pct", "chloride_environment"),
)
R_GROUPS = _rule(
    "self_test_groups",
    "Too few self-test specimen groups",
    "自检试件组数预警",
    "GB/T 14902-2012 §9.3; GB 50204-2015 §7.4.1",
    "D",
    "A production record with fewer specimen groups than ceil(volume / "
    "`self_test_m3_per_group`) (at least one).",
    ("self_test_m3_per_group",),
)
R_APPROVAL = _rule(
    "production_approval",
    "Production not approved",
    "生产审批预警",
    "seed system",
    "D",
    "A production record not approved (`approved` false or missing).",
)
R_SERIAL = _rule(
    "batching_serial",
    "Invalid batching serial number",
    "配料流水号无效预警",
    "seed system",
    "D",
    "A production record whose batching serial is empty, does not match "
    "`batching_serial_pattern`, or is shared with another record of the plant.",
    ("batching_serial_pattern",),
)
R_STRENGTH = _rule(
    "strength_assessment",
    "Compressive strength fails assessment",
    "强度评定预警",
    "GB/T 50107-2010 §5",
    "S",
    "The plant's groups of one class cast in the last `strength_window_days` "
    "fail GB/T 50107: known-sigma method where sigma0 is known (configured, "
    "or from the previous period with `strength_sigma0_from_previous`), in "
    "lots of 3 consecutive groups counted from the class's first group (one "
    "finding per failed lot, period '<class>/lot<n>'; a lot short of 3 "
    "results assessed non-statistically once `strength_lot_close_days` old); "
    "else statistical (n >= 10) or non-statistical (n < 10), period the class.",
    (
        "strength_window_days",
        "strength_sigma0_mpa",
        "strength_sigma0_from_previous",
        "strength_sigma0_min_groups",
        "strength_lot_close_days",
        "strength_std_floor_mpa",
        "strength_min_groups_statistical",
        "strength_lambda1",
        "strength_lambda2",
        "strength_lambda3",
        "strength_lambda4",
        "strength_sigma0_factor",
        "strength_sigma0_min_factor",
    ),
)
R_SELF_OVERDUE = _rule(
    "self_test_overdue",
    "Self-test past 28 days",
    "自检超28天预警",
    "GB/T 50081-2019 (28-day standard curing)",
    "R",
    "A specimen group older than 28 days + `self_test_tolerance_days` without "
    "a test date or a strength.",
    ("self_test_age_days", "self_test_tolerance_days"),
)
R_SELF_STRENGTH = _rule(
    "self_test_strength",
    "Self-test group below its strength class",
    "自检强度不合格预警",
    "GB/T 50081-2019 §5.0.5 (group value); GB/T 50107-2010 §5 (lots)",
    "D",
    "A standard-cured specimen group tested at `self_test_age_days` or later "
    "whose strength is below `self_test_strength_min_ratio` x f_cu,k of its "
    "class: a failing group seen before its lot is assessed (the seed "
    "system's twentieth kind, read here as the per-group counterpart of the "
    "specimen-group count). Period: the group.",
    ("self_test_strength_min_ratio", "self_test_age_days"),
)
R_SAND = _rule(
    "manufactured_sand",
    "Invalid manufactured-sand record",
    "机制砂记录无效预警",
    "JGJ 52-2006 §3.1.5",
    "S",
    "A manufactured-sand lot whose stone-powder content exceeds the JGJ 52 "
    "limit for its MB value and strength class, or whose record lacks the "
    "stone powder, MB value or strength class the check needs.",
    (
        "manufactured_sand_materials",
        "sand_mb_threshold",
        "sand_powder_limits_mb_low",
        "sand_powder_limits_mb_high",
    ),
)

#: Every kind, in the order of DOMAIN.md §3; DOMAIN.md names 19 of the seed
#: system's 20, the twentieth (``self_test_strength``) is our reading of it.
KINDS = tuple(
    r.id.split(".", 1)[1]
    for r in (
        R_BASIC,
        R_EQUIPMENT,
        R_ONLINE,
        R_MAT_TEST,
        R_ARRIVAL,
        R_OVERDUE,
        R_LATE,
        R_USAGE,
        R_DUPLICATE,
        R_MIX,
        R_RECORD,
        R_DEVIATION,
        R_CHLORIDE,
        R_GROUPS,
        R_APPROVAL,
        R_SERIAL,
        R_STRENGTH,
        R_SELF_OVERDUE,
        R_SAND,
        R_SELF_STRENGTH,
    )
)


# -- pure arithmetic ------------------------------------------------------------


def deviation_pct(target: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Signed weighing deviation, % of the target (NaN for a zero target).

    Examples
    --------
    >>> deviation_pct(np.array([100.0, 200.0, 0.0]), np.array([102.0, 190.0, 1.0]))
    array([ 2., -5., nan])
    """
    target = np.asarray(target, dtype=float)
    actual = np.asarray(actual, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(target > 0, (actual - target) / target * 100.0, np.nan)


def tolerance_pct(
    material: Sequence[str],
    cumulative: Sequence[bool],
    per_batch: dict[str, float],
    per_total: dict[str, float],
) -> np.ndarray:
    """The GB/T 14902 tolerance (%) of each batching row.

    Examples
    --------
    >>> tolerance_pct(["binder", "binder", "water"], [False, True, False],
    ...               {"binder": 2.0, "water": 1.0}, {"binder": 1.0, "water": 1.0})
    array([2., 1., 1.])
    """
    return np.array(
        [
            (per_total if c else per_batch).get(m, np.nan)
            for m, c in zip(material, cumulative, strict=True)
        ],
        dtype=float,
    )


def _step_value(steps: Sequence[tuple[float, float]], x: float) -> float:
    """Value of the first ``(from, value)`` step (largest ``from`` first) <= x."""
    for start, value in sorted(steps, reverse=True):
        if x >= start:
            return value
    return sorted(steps)[0][1]


def stone_powder_limit_pct(
    mb_value: float,
    f_cuk: float,
    rules: ConcreteRules | None = None,
) -> float:
    """JGJ 52-2006 stone-powder limit (%) for an MB value and a class.

    Examples
    --------
    >>> [stone_powder_limit_pct(1.0, f) for f in (60, 55, 30, 25)]
    [5.0, 7.0, 7.0, 10.0]
    >>> [stone_powder_limit_pct(1.4, f) for f in (60, 30, 25)]
    [2.0, 3.0, 5.0]
    """
    rules = rules or ConcreteRules()
    steps = (
        rules.sand_powder_limits_mb_low
        if mb_value < rules.sand_mb_threshold
        else rules.sand_powder_limits_mb_high
    )
    return _step_value(steps, f_cuk)


def required_groups(volume_m3: np.ndarray, m3_per_group: float) -> np.ndarray:
    """Specimen groups a production record needs: ceil(volume / m3), at least 1.

    Examples
    --------
    >>> required_groups(np.array([0.0, 8.0, 100.0, 100.5, np.nan]), 100.0)
    array([1, 1, 1, 2, 1])
    """
    v = np.nan_to_num(np.asarray(volume_m3, dtype=float), nan=0.0)
    return np.maximum(1, np.ceil(v / m3_per_group - 1e-9)).astype(int)


def serial_problems(
    plant_ids: Sequence[str], serials: Sequence[str | None], pattern: str
) -> list[str | None]:
    """Why each batching serial is invalid (None: valid).

    Examples
    --------
    >>> serial_problems(["P1", "P1", "P1", "P2", "P1"],
    ...                 ["PB-000001", "", "x?", "PB-000001", "PB-000001"],
    ...                 r"^[A-Z0-9-]{6,}$")
    ['duplicated', 'empty', 'malformed', None, 'duplicated']
    """
    shape = re.compile(pattern)
    cleaned = [(s or "").strip() for s in serials]
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for p, s in zip(plant_ids, cleaned, strict=True):
        if s:
            counts[(p, s)] += 1
    out: list[str | None] = []
    for p, s in zip(plant_ids, cleaned, strict=True):
        if not s:
            out.append("empty")
        elif not shape.match(s):
            out.append("malformed")
        elif counts[(p, s)] > 1:
            out.append("duplicated")
        else:
            out.append(None)
    return out


def credit_score(
    findings: Iterable[tuple[str, str]], rules: ConcreteRules | None = None
) -> tuple[float, dict[str, Any]]:
    """A plant's score from its findings' ``(rule id, level)`` pairs.

    Returns the score and the deductions (total and per rule).

    Examples
    --------
    >>> credit_score([("concrete.chloride", "red"), ("concrete.mix_ratio", "orange"),
    ...               ("concrete.mix_ratio", "orange")])[0]
    89.0
    >>> credit_score([("concrete.chloride", "red")] * 30)[0]
    0.0
    """
    rules = rules or ConcreteRules()
    per_rule: dict[str, dict[str, float]] = {}
    total = 0.0
    for rule_id, level in findings:
        points = rules.credit_rule_deductions.get(
            rule_id, rules.credit_deductions.get(level, 0.0)
        )
        entry = per_rule.setdefault(rule_id, {"count": 0, "points": 0.0})
        entry["count"] += 1
        entry["points"] += points
        total += points
    score = max(rules.credit_floor, rules.credit_start - total)
    return score, {"total": total, "rules": per_rule}


# -- data -----------------------------------------------------------------------


@dataclass
class Columns:
    """Rows of one query as column arrays (object dtype; ``len`` = rows)."""

    data: dict[str, np.ndarray]

    @classmethod
    def from_rows(cls, rows: Sequence[Any], names: Sequence[str]) -> Columns:
        data = {}
        for i, name in enumerate(names):
            col = np.empty(len(rows), dtype=object)
            col[:] = [r[i] for r in rows]
            data[name] = col
        return cls(data)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.data[name]

    def __len__(self) -> int:
        return len(next(iter(self.data.values()))) if self.data else 0

    def floats(self, name: str) -> np.ndarray:
        return np.array(
            [np.nan if v is None else float(v) for v in self.data[name]], dtype=float
        )

    def row(self, i: int) -> dict[str, Any]:
        return {k: v[i] for k, v in self.data.items()}


@dataclass
class PlantData:
    """Everything the checks read, over the window ending at ``as_of``."""

    as_of: dt.date
    end: dt.datetime  # end of the evaluation day (exclusive), aware
    plants: Columns
    production: Columns
    batching: Columns
    materials: Columns
    self_tests: Columns
    #: (plant, class) -> (groups, std, first cast, last cast) of the previous
    #: period, read when ``strength_sigma0_from_previous`` is on
    previous_sigma: dict[tuple[str, str], tuple[int, float, dt.date, dt.date]] = field(
        default_factory=dict
    )

    def plant_info(self) -> dict[str, tuple[str | None, str | None]]:
        """plant_id -> (enterprise, district)."""
        p = self.plants
        return {
            p["plant_id"][i]: (p["enterprise"][i], p["district"][i])
            for i in range(len(p))
        }


_PLANTS_SQL = """
SELECT DISTINCT ON (p.source_id) p.source_id AS plant_id, p.enterprise,
       p.licence, p.capacity_m3_per_year, d.name AS district
FROM layer_plants p
LEFT JOIN LATERAL (
    SELECT name FROM layer_districts d
    WHERE ST_Intersects(d.geom, p.geom) LIMIT 1
) d ON true
ORDER BY p.source_id, p.source_part
"""
_PRODUCTION_SQL = """
SELECT plant_id, record_no, produced_at, project, strength_class, volume_m3,
       mix_ratio_no, batching_serial, approved, chloride_environment
FROM feed_concrete_production
WHERE produced_at >= :start AND produced_at < :end
"""
# NOTE: a batching row without its own time takes its record's; the
# COALESCE keeps the produced_at index out of play (fine at a plant's volume).
_BATCHING_SQL = """
SELECT b.plant_id, b.record_no, b.batch_no, b.material, b.target_kg,
       b.actual_kg, COALESCE(b.cumulative, false) AS cumulative, b.chloride_pct,
       COALESCE(b.produced_at, p.produced_at) AS produced_at,
       p.chloride_environment
FROM feed_concrete_batching b
LEFT JOIN feed_concrete_production p USING (plant_id, record_no)
WHERE COALESCE(b.produced_at, p.produced_at) >= :start
  AND COALESCE(b.produced_at, p.produced_at) < :end
"""
_MATERIALS_SQL = """
SELECT plant_id, material_record_no, material, supplier, batch_no, quantity_kg,
       arrived_at, entered_at, tested, tested_at, expires_on, first_used_at,
       last_used_at, used_kg, stone_powder_pct, mb_value, for_strength_class
FROM feed_concrete_materials
WHERE arrived_at < :end
  AND (arrived_at >= :start OR last_used_at >= :start OR first_used_at >= :start)
"""
# ``class_seq``: the group's place (0, 1, ...) among the plant's standard-cured
# groups of its class in production order (cast date, group number), from the
# first one on record: known-sigma lots are counted on it, so they do not shift
# as the window slides.
# NOTE: the numbering reads the class's whole history on every evaluation
# (an index scan per plant at a plant's volume); a city's decades of groups
# would want the sequence stored at ingest.
_SELF_TESTS_SQL = """
SELECT plant_id, group_no, record_no, strength_class, cast_on, tested_on,
       strength_mpa, curing, class_seq
FROM (
    SELECT t.*,
           CASE WHEN coalesce(t.curing, 'standard') = 'standard' THEN
               row_number() OVER (
                   PARTITION BY t.plant_id, upper(btrim(t.strength_class)),
                                coalesce(t.curing, 'standard') = 'standard'
                   ORDER BY t.cast_on, t.group_no) - 1
           END AS class_seq
    FROM feed_concrete_self_tests t
    WHERE t.cast_on <= :as_of
) s
WHERE cast_on >= :start_day
"""
# sigma0 of each plant and class from the previous period (GB/T 50107 §5.1.2):
# stddev_samp is eq. 5.1.2-3, sqrt((sum f^2 - n m^2) / (n - 1)).
_PREVIOUS_SIGMA_SQL = """
SELECT plant_id, upper(btrim(strength_class)) AS cls, count(*) AS n,
       stddev_samp(strength_mpa) AS sigma, min(cast_on) AS first, max(cast_on) AS last
FROM feed_concrete_self_tests
WHERE strength_mpa IS NOT NULL AND coalesce(curing, 'standard') = 'standard'
  AND cast_on > :prev_start AND cast_on <= :prev_end
  AND (tested_on IS NULL OR tested_on <= :as_of)
GROUP BY 1, 2
"""


def _query(conn: Connection, sql: str, params: dict) -> Columns:
    result = conn.execute(text(sql), params)
    return Columns.from_rows(result.all(), list(result.keys()))


def load_data(
    conn: Connection, as_of: dt.date, rules: ConcreteRules | None = None
) -> PlantData:
    """Read the plants and the four feeds over the window ending at ``as_of``.

    NOTE: every row of the window comes into Python (measured: 1.8 s for
    6,000 production records, 58,000 batching rows and 11,000 specimen groups
    of 40 plants on 2 shared cores). A city's full batching volume (millions
    of rows a quarter) would want the deviation and chloride filters pushed
    into the batching query, returning only the rows out of tolerance.
    """
    rules = rules or ConcreteRules()
    tz = ZoneInfo(rules.timezone)
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), tz)
    days = max(rules.lookback_days, rules.strength_window_days)
    start = end - dt.timedelta(days=rules.lookback_days)
    params = {
        "start": start,
        "end": end,
        "as_of": as_of,
        "start_day": as_of - dt.timedelta(days=days),
    }
    previous: dict[tuple[str, str], tuple[int, float, dt.date, dt.date]] = {}
    if rules.strength_sigma0_from_previous:
        window = dt.timedelta(days=rules.strength_window_days)
        for r in conn.execute(
            text(_PREVIOUS_SIGMA_SQL),
            {
                "prev_start": as_of - 2 * window,
                "prev_end": as_of - window,
                "as_of": as_of,
            },
        ):
            if r.sigma is not None:
                previous[(r.plant_id, r.cls)] = (r.n, float(r.sigma), r.first, r.last)
    return PlantData(
        as_of=as_of,
        end=end,
        plants=_query(conn, _PLANTS_SQL, params),
        production=_query(conn, _PRODUCTION_SQL, params),
        batching=_query(conn, _BATCHING_SQL, params),
        materials=_query(conn, _MATERIALS_SQL, params),
        self_tests=_query(conn, _SELF_TESTS_SQL, params),
        previous_sigma=previous,
    )


# -- checks ---------------------------------------------------------------------


class _Out:
    """Collects findings with the plant's enterprise and district filled in."""

    def __init__(self, data: PlantData, rules: ConcreteRules) -> None:
        from models.supervision.engine import end_of_day  # the engine imports us

        self.info = data.plant_info()
        self.rules = rules
        self.end = data.end
        #: when a standing condition (an absence, a state holding at the
        #: evaluation) is observed: the engine's end of the evaluation day
        self.now = end_of_day(data.as_of)
        self.findings: list[Finding] = []

    def add(
        self,
        rule: Rule,
        plant_id: str,
        summary: str,
        evidence: dict[str, Any],
        *,
        period: str = "",
        observed_at: dt.datetime | None = None,
        level: str | None = None,
    ) -> None:
        kind = rule.id.split(".", 1)[1]
        enterprise, district = self.info.get(plant_id, (None, None))
        self.findings.append(
            Finding(
                rule=rule.id,
                subject_layer=SUBJECT_LAYER,
                subject_id=plant_id,
                level=level or self.rules.level(kind),
                observed_at=observed_at or self.now,
                period=period,
                summary=summary,
                evidence=_jsonable(evidence),
                responsible=enterprise,
                district=district,
            )
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return None if math.isnan(v) else round(v, 4)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def check_basic_data(data: PlantData, out: _Out) -> None:
    """Plants whose layer row lacks enterprise, licence or capacity."""
    p = data.plants
    for i in range(len(p)):
        missing = [name for name in ("enterprise", "licence") if _blank(p[name][i])]
        cap = p["capacity_m3_per_year"][i]
        if cap is None or cap <= 0:
            missing.append("capacity_m3_per_year")
        if missing:
            out.add(
                R_BASIC,
                p["plant_id"][i],
                f"plant data incomplete: {', '.join(missing)}",
                {"missing": missing},
            )


def check_equipment(data: PlantData, out: _Out) -> None:
    """Plants with no batching record in the last ``equipment_silence_days``.

    ``last_batching_at`` is None when there is none in the look-back window
    either (the window is read, not the whole history).
    """
    days = out.rules.equipment_silence_days
    since = data.end - dt.timedelta(days=days)
    b = data.batching
    last: dict[str, dt.datetime] = {}
    for pid, at in zip(b["plant_id"], b["produced_at"], strict=True):
        if pid not in last or at > last[pid]:
            last[pid] = at
    for pid in data.plants["plant_id"]:
        seen = last.get(pid)
        if seen is None or seen < since:
            out.add(
                R_EQUIPMENT,
                pid,
                f"no batching record from the mixer in {days} days",
                {"silence_days": days, "last_batching_at": seen},
            )


def check_production(data: PlantData, out: _Out) -> None:
    """Per production record: batching present, mix ratio, completeness,
    approval, serial number."""
    p, b = data.production, data.batching
    batched = set(zip(b["plant_id"], b["record_no"], strict=True))
    # NOTE: a serial is compared with the records of the look-back window only;
    # reuse of a serial older than ``lookback_days`` goes unseen.
    problems = serial_problems(
        list(p["plant_id"]),
        list(p["batching_serial"]),
        out.rules.batching_serial_pattern,
    )
    for i in range(len(p)):
        pid, rec, at = p["plant_id"][i], p["record_no"][i], p["produced_at"][i]
        ev = {"record_no": rec, "produced_at": at, "project": p["project"][i]}
        kw = {"period": rec, "observed_at": at}
        if (pid, rec) not in batched:
            out.add(R_ONLINE, pid, f"record {rec}: no batching record", ev, **kw)
        if _blank(p["mix_ratio_no"][i]):
            out.add(R_MIX, pid, f"record {rec}: no mix ratio", ev, **kw)
        missing = [n for n in ("project",) if _blank(p[n][i])]
        vol = p["volume_m3"][i]
        if vol is None or vol <= 0:
            missing.append("volume_m3")
        if parse_strength_class(p["strength_class"][i]) is None:
            missing.append("strength_class")
        if missing:
            out.add(
                R_RECORD,
                pid,
                f"record {rec}: missing or invalid {', '.join(missing)}",
                {**ev, "invalid": missing, "strength_class": p["strength_class"][i]},
                **kw,
            )
        if p["approved"][i] is not True:
            out.add(
                R_APPROVAL,
                pid,
                f"record {rec}: produced without approval",
                {**ev, "approved": p["approved"][i]},
                **kw,
            )
        if problems[i]:
            out.add(
                R_SERIAL,
                pid,
                f"record {rec}: batching serial {problems[i]}",
                {
                    **ev,
                    "batching_serial": p["batching_serial"][i],
                    "problem": problems[i],
                },
                **kw,
            )


def check_batching(data: PlantData, out: _Out) -> None:
    """Weighing deviations and chloride content, one finding per record."""
    b, rules = data.batching, out.rules
    if not len(b):
        return
    dev = deviation_pct(b.floats("target_kg"), b.floats("actual_kg"))
    tol = tolerance_pct(
        list(b["material"]),
        [bool(c) for c in b["cumulative"]],
        rules.tolerance_batch_pct,
        rules.tolerance_cumulative_pct,
    )
    over = np.abs(dev) > tol + 1e-9
    ratio = np.abs(dev) / tol
    by_record: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i in np.flatnonzero(over):
        by_record[(b["plant_id"][i], b["record_no"][i])].append(int(i))
    for (pid, rec), idx in by_record.items():
        worst = max(idx, key=lambda i: ratio[i])
        rows = [
            {
                "batch_no": b["batch_no"][i],
                "material": b["material"][i],
                "cumulative": bool(b["cumulative"][i]),
                "target_kg": b["target_kg"][i],
                "actual_kg": b["actual_kg"][i],
                "deviation_pct": dev[i],
                "tolerance_pct": tol[i],
            }
            for i in sorted(idx, key=lambda i: -ratio[i])[:20]
        ]
        red = ratio[worst] > rules.deviation_red_factor
        out.add(
            R_DEVIATION,
            pid,
            f"record {rec}: {b['material'][worst]} off by {dev[worst]:+.1f} % "
            f"(tolerance {tol[worst]:g} %)",
            {"record_no": rec, "rows_over": len(idx), "rows": rows},
            period=rec,
            observed_at=max(b["produced_at"][i] for i in idx),
            level="red" if red else None,
        )
    chloride = b.floats("chloride_pct")
    envs = [rules.chloride_limit(e) for e in b["chloride_environment"]]
    limits = np.array([limit for _, limit in envs], dtype=float)
    worst_cl: dict[tuple[str, str], int] = {}
    for i in np.flatnonzero(chloride > limits + 1e-9):
        key = (b["plant_id"][i], b["record_no"][i])
        if key not in worst_cl or chloride[i] > chloride[worst_cl[key]]:
            worst_cl[key] = int(i)
    for (pid, rec), i in worst_cl.items():
        env, limit = envs[i]
        out.add(
            R_CHLORIDE,
            pid,
            f"record {rec}: chloride {chloride[i]:.3f} % of cement > {limit:g} % "
            f"({env})",
            {
                "record_no": rec,
                "batch_no": b["batch_no"][i],
                "chloride_pct": chloride[i],
                "limit_pct": limit,
                "environment": env,
                "environment_of_record": b["chloride_environment"][i] is not None,
                "unit": "% of cement mass (GB 50164-2011 table 3.1.8)",
            },
            period=rec,
            observed_at=b["produced_at"][i],
        )


def check_materials(data: PlantData, out: _Out) -> None:
    """Self-test before use, arrival, expiry, late entry, usage, duplicates,
    manufactured sand."""
    m, rules = data.materials, out.rules
    # NOTE: duplicates are looked for among the lots of the window (arrived or
    # used in it); a lot recorded again long after its first record is missed.
    late = dt.timedelta(hours=rules.late_entry_hours)
    sand = {s.casefold() for s in rules.manufactured_sand_materials}
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i in range(len(m)):
        r = m.row(i)
        pid, rec = r["plant_id"], r["material_record_no"]
        ev = {
            "material_record_no": rec,
            "material": r["material"],
            "supplier": r["supplier"],
            "batch_no": r["batch_no"],
            "arrived_at": r["arrived_at"],
        }
        kw = {"period": rec, "observed_at": r["arrived_at"]}
        used = r["first_used_at"]
        if (
            used is not None
            and used < data.end
            and (
                # a report time without the flag counts as tested
                r["tested"] is False
                or (r["tested"] is None and r["tested_at"] is None)
                or (r["tested_at"] is not None and r["tested_at"] > used)
            )
        ):
            out.add(
                R_MAT_TEST,
                pid,
                f"{r['material']} lot {rec} used before its self-test",
                {
                    **ev,
                    "tested": r["tested"],
                    "tested_at": r["tested_at"],
                    "first_used_at": used,
                },
                period=rec,
                observed_at=used,
            )
        missing = [n for n in ("supplier", "batch_no") if _blank(r[n])]
        if r["quantity_kg"] is None:
            missing.append("quantity_kg")
        if missing:
            out.add(
                R_ARRIVAL,
                pid,
                f"arrival {rec} lacks {', '.join(missing)}",
                {**ev, "missing": missing},
                **kw,
            )
        last = r["last_used_at"]
        if (
            r["expires_on"] is not None
            and last is not None
            and last.astimezone(data.end.tzinfo).date() > r["expires_on"]
        ):
            out.add(
                R_OVERDUE,
                pid,
                f"{r['material']} lot {rec} used after it expired on {r['expires_on']}",
                {**ev, "expires_on": r["expires_on"], "last_used_at": last},
                period=rec,
                observed_at=last,
            )
        if r["entered_at"] is not None and r["entered_at"] - r["arrived_at"] > late:
            hours = (r["entered_at"] - r["arrived_at"]).total_seconds() / 3600
            out.add(
                R_LATE,
                pid,
                f"arrival {rec} entered {hours:.0f} h after arrival",
                {
                    **ev,
                    "entered_at": r["entered_at"],
                    "delay_hours": hours,
                    "limit_hours": rules.late_entry_hours,
                },
                **kw,
            )
        qty, use = r["quantity_kg"], r["used_kg"]
        if (
            qty is not None
            and use is not None
            and use > qty * (1 + rules.usage_tolerance_pct / 100)
        ):
            out.add(
                R_USAGE,
                pid,
                f"{r['material']} lot {rec}: used {use:,.0f} kg of {qty:,.0f} kg",
                {
                    **ev,
                    "quantity_kg": qty,
                    "used_kg": use,
                    "tolerance_pct": rules.usage_tolerance_pct,
                },
                **kw,
            )
        if not (_blank(r["supplier"]) or _blank(r["batch_no"])):
            key = (
                pid,
                r["material"].strip().casefold(),
                r["supplier"].strip().casefold(),
                r["batch_no"].strip().casefold(),
            )
            groups[key].append(i)
        is_sand = (
            r["material"].strip().casefold() in sand
            or r["stone_powder_pct"] is not None
        )
        if is_sand:
            _check_sand(r, ev, out)
    for (pid, *lot), idx in groups.items():
        recs = sorted({m["material_record_no"][i] for i in idx})
        if len(recs) > 1:
            first = m.row(idx[0])
            out.add(
                R_DUPLICATE,
                pid,
                f"{first['material']} lot {first['batch_no']} of "
                f"{first['supplier']} recorded {len(recs)} times",
                {
                    "material": first["material"],
                    "supplier": first["supplier"],
                    "batch_no": first["batch_no"],
                    "records": recs,
                },
                # the lot, not its records: a third record of the same lot
                # updates the warning instead of raising another
                period="/".join(lot),
                observed_at=max(m["arrived_at"][i] for i in idx),
            )
    _check_arrival_silence(data, out)


def _check_sand(r: dict[str, Any], ev: dict[str, Any], out: _Out) -> None:
    f_cuk = parse_strength_class(r["for_strength_class"])
    powder, mb = r["stone_powder_pct"], r["mb_value"]
    missing = [
        name
        for name, value in (
            ("stone_powder_pct", powder),
            ("mb_value", mb),
            ("for_strength_class", f_cuk),
        )
        if value is None
    ]
    rec = r["material_record_no"]
    kw = {"period": rec, "observed_at": r["arrived_at"]}
    if missing:
        out.add(
            R_SAND,
            r["plant_id"],
            f"manufactured sand {rec}: record lacks {', '.join(missing)}",
            {**ev, "missing": missing},
            **kw,
        )
        return
    limit = stone_powder_limit_pct(mb, f_cuk, out.rules)
    if powder > limit + 1e-9:
        out.add(
            R_SAND,
            r["plant_id"],
            f"manufactured sand {rec}: stone powder {powder:g} % > {limit:g} % "
            f"(MB {mb:g}, {r['for_strength_class']})",
            {
                **ev,
                "stone_powder_pct": powder,
                "mb_value": mb,
                "for_strength_class": r["for_strength_class"],
                "limit_pct": limit,
                "mb_threshold": out.rules.sand_mb_threshold,
            },
            **kw,
        )


def _check_arrival_silence(data: PlantData, out: _Out) -> None:
    days = out.rules.arrival_silence_days
    since = data.end - dt.timedelta(days=days)
    m, p = data.materials, data.production
    arrived = {
        pid
        for pid, at in zip(m["plant_id"], m["arrived_at"], strict=True)
        if at >= since
    }
    produced: dict[str, dt.datetime] = {}
    for pid, at in zip(p["plant_id"], p["produced_at"], strict=True):
        if at >= since and (pid not in produced or at > produced[pid]):
            produced[pid] = at
    for pid, at in produced.items():
        if pid not in arrived:  # an absence: observed at the evaluation
            out.add(
                R_ARRIVAL,
                pid,
                f"producing with no raw-material arrival in {days} days",
                {"silence_days": days, "last_produced_at": at},
            )


def check_self_tests(data: PlantData, out: _Out) -> None:
    """Specimen groups per record and results overdue past 28 days."""
    s, p, rules = data.self_tests, data.production, out.rules
    count: dict[tuple[str, str], int] = defaultdict(int)
    for pid, rec in zip(s["plant_id"], s["record_no"], strict=True):
        if rec is not None:
            count[(pid, rec)] += 1
    need = required_groups(p.floats("volume_m3"), rules.self_test_m3_per_group)
    for i in range(len(p)):
        pid, rec = p["plant_id"][i], p["record_no"][i]
        have = count.get((pid, rec), 0)
        if have < need[i]:
            out.add(
                R_GROUPS,
                pid,
                f"record {rec}: {have} specimen group(s) of {need[i]} required",
                {
                    "record_no": rec,
                    "volume_m3": p["volume_m3"][i],
                    "groups": have,
                    "required": need[i],
                    "m3_per_group": rules.self_test_m3_per_group,
                },
                period=rec,
                observed_at=p["produced_at"][i],
            )
    due = data.as_of - dt.timedelta(
        days=rules.self_test_age_days + rules.self_test_tolerance_days
    )
    for i in range(len(s)):
        cast = s["cast_on"][i]
        if cast < due and (s["tested_on"][i] is None or s["strength_mpa"][i] is None):
            g = s["group_no"][i]
            out.add(
                R_SELF_OVERDUE,
                s["plant_id"][i],
                f"specimen group {g} cast {cast}: no result after "
                f"{(data.as_of - cast).days} days",
                {
                    "group_no": g,
                    "record_no": s["record_no"][i],
                    "cast_on": cast,
                    "tested_on": s["tested_on"][i],
                    "age_days": (data.as_of - cast).days,
                    "due_after_days": rules.self_test_age_days
                    + rules.self_test_tolerance_days,
                },
                period=g,
            )
    _check_group_strength(data, out)


def _check_group_strength(data: PlantData, out: _Out) -> None:
    """Standard-cured 28-day groups below ``self_test_strength_min_ratio`` f_cu,k."""
    s, rules = data.self_tests, out.rules
    tz = out.end.tzinfo
    for i in range(len(s)):
        value, tested, cast = s["strength_mpa"][i], s["tested_on"][i], s["cast_on"][i]
        if value is None or tested is None or tested > data.as_of:
            continue
        if s["curing"][i] not in (None, "standard"):
            continue  # same-condition cubes follow the structure, not the mix
        if (tested - cast).days < rules.self_test_age_days:
            continue  # an early-age test is not the 28-day result
        cls = s["strength_class"][i]
        f_cuk = parse_strength_class(cls)
        if f_cuk is None:
            continue  # the production-record rule reports bad class codes
        required = rules.self_test_strength_min_ratio * f_cuk
        if value + 1e-9 >= required:
            continue
        g = s["group_no"][i]
        out.add(
            R_SELF_STRENGTH,
            s["plant_id"][i],
            f"specimen group {g} ({cls}): {value:g} MPa < {required:g} MPa at "
            f"{(tested - cast).days} days",
            {
                "group_no": g,
                "record_no": s["record_no"][i],
                "strength_class": cls,
                "strength_mpa": value,
                "required_mpa": required,
                "min_ratio": rules.self_test_strength_min_ratio,
                "cast_on": cast,
                "tested_on": tested,
            },
            period=g,
            observed_at=dt.datetime.combine(tested, dt.time(), tz),
        )


class _Group(NamedTuple):
    """A tested specimen group of the strength assessment."""

    cast_on: dt.date
    group_no: str
    value: float
    class_seq: int  # place among the class's groups (see _SELF_TESTS_SQL)
    tested_on: dt.date | None

    @property
    def seen_on(self) -> dt.date:
        """When its result was known (the test date, else the cast date)."""
        return self.tested_on or self.cast_on


def _sigma0(
    data: PlantData, rules: ConcreteRules, pid: str, cls: str
) -> tuple[float, dict[str, Any]] | None:
    """sigma0 of a plant's class and where it comes from, or None (unknown)."""
    configured = rules.sigma0(pid, cls)
    if configured is not None:
        return configured, {"sigma0_source": "configured"}
    previous = data.previous_sigma.get((pid, cls))
    if (
        rules.strength_sigma0_from_previous
        and previous is not None
        and previous[0] >= rules.strength_sigma0_min_groups
    ):
        n, sigma, first, last = previous
        return sigma, {
            "sigma0_source": "previous period",
            "sigma0_groups": n,
            "sigma0_period": [first, last],
        }
    return None


def check_strength(data: PlantData, out: _Out) -> None:
    """GB/T 50107 assessment per plant and class over ``strength_window_days``.

    With sigma0 known, the known-sigma method judges lots of 3 consecutive
    groups numbered from the class's first group on record (``class_seq``),
    so a lot keeps its groups as the window slides; the lots whose first
    group falls in the window are assessed (older ones were, while they were
    in it). A lot short of 3 results (the class's last lot, or one whose
    groups lack results) is pending until its last group is
    ``strength_lot_close_days`` old, then assessed by the non-statistical
    method (§5.2, the method for small samples). Without sigma0, every group
    of the window forms one lot: statistical from 10 groups, else
    non-statistical.
    """
    s, rules = data.self_tests, out.rules
    since = data.as_of - dt.timedelta(days=rules.strength_window_days)
    tz = out.end.tzinfo
    lots: dict[tuple[str, str], list[_Group]] = defaultdict(list)
    #: places in the class sequence of the window's groups, results or not
    places: dict[tuple[str, str], set[int]] = defaultdict(set)
    for i in range(len(s)):
        value, cast = s["strength_mpa"][i], s["cast_on"][i]
        tested = s["tested_on"][i]
        if cast <= since or s["curing"][i] not in (None, "standard"):
            continue  # same-condition cubes are not assessed by GB/T 50107
        key = (s["plant_id"][i], (s["strength_class"][i] or "").strip().upper())
        places[key].add(int(s["class_seq"][i]))
        if value is None or (tested is not None and tested > data.as_of):
            continue
        lots[key].append(
            _Group(cast, s["group_no"][i], float(value), int(s["class_seq"][i]), tested)
        )
    criteria = rules.strength_criteria
    for (pid, cls), groups in lots.items():
        f_cuk = parse_strength_class(cls)
        if f_cuk is None:
            continue  # the production-record rule reports bad class codes
        groups.sort()
        known = _sigma0(data, rules, pid, cls)
        if known is not None:
            _known_sigma_lots(
                out, pid, cls, f_cuk, groups, places[(pid, cls)], known, data.as_of
            )
            continue
        values = np.array([g.value for g in groups])
        a = assess_strength(values, f_cuk, None, criteria)
        if a.passed:
            continue
        out.add(
            R_STRENGTH,
            pid,
            f"{cls} fails GB/T 50107 ({a.method.replace('_', '-')}, n={a.n}): "
            f"mean {a.mean:.1f} / {a.mean_required:.1f}, "
            f"min {a.minimum:.1f} / {a.min_required:.1f} MPa",
            {
                "strength_class": cls,
                **a.evidence(),
                "groups": [g.group_no for g in groups],
                "values": values.tolist(),
                "window_days": rules.strength_window_days,
            },
            period=cls,
            observed_at=dt.datetime.combine(
                max(g.seen_on for g in groups), dt.time(), tz
            ),
        )


def _known_sigma_lots(
    out: _Out,
    pid: str,
    cls: str,
    f_cuk: float,
    groups: list[_Group],
    places: set[int],
    known: tuple[float, dict[str, Any]],
    as_of: dt.date,
) -> None:
    """Known-sigma findings of one plant and class: one per failed lot."""
    rules, criteria = out.rules, out.rules.strength_criteria
    size = criteria.sigma0_lot_size
    sigma0, source = known
    tz = out.end.tzinfo
    assessed = pending = 0
    for lot, idx in known_sigma_lots([g.class_seq for g in groups], size).items():
        members = [groups[i] for i in idx]
        if lot * size not in places:
            continue  # its first group is older than the window: assessed then
        if len(members) < size:
            age = (as_of - max(m.cast_on for m in members)).days
            if age < rules.strength_lot_close_days:
                pending += 1
                log.debug(
                    "known-sigma lot pending",
                    extra={"plant": pid, "class": cls, "lot": lot + 1, "age": age},
                )
                continue
            a = assess_strength([m.value for m in members], f_cuk, None, criteria)
            note = f"lot of {len(members)} < {size} results: non-statistical (§5.2)"
        else:
            a = assess_strength([m.value for m in members], f_cuk, sigma0, criteria)
            note = ""
        assessed += 1
        if a.passed:
            continue
        out.add(
            R_STRENGTH,
            pid,
            f"{cls} lot {lot + 1} fails GB/T 50107 "
            f"({a.method.replace('_', '-')}, n={a.n}): "
            f"mean {a.mean:.1f} / {a.mean_required:.1f}, "
            f"min {a.minimum:.1f} / {a.min_required:.1f} MPa"
            + (f" ({note})" if note else ""),
            {
                "strength_class": cls,
                "scheme": "known_sigma",
                "lot": lot + 1,
                "lot_size": size,
                "complete": len(members) == size,
                **a.evidence(),
                "sigma0": sigma0,
                **source,
                "groups": [m.group_no for m in members],
                "values": [m.value for m in members],
                "window_days": rules.strength_window_days,
            },
            period=f"{cls}/lot{lot + 1}",
            observed_at=dt.datetime.combine(
                max(m.seen_on for m in members), dt.time(), tz
            ),
        )
    log.debug(
        "known-sigma lots",
        extra={"plant": pid, "class": cls, "assessed": assessed, "pending": pending},
    )


CHECKS = (
    check_basic_data,
    check_equipment,
    check_production,
    check_batching,
    check_materials,
    check_self_tests,
    check_strength,
)


def findings_for(data: PlantData, rules: ConcreteRules | None = None) -> list[Finding]:
    """Every check over data already read (pure: no database)."""
    out = _Out(data, rules or ConcreteRules())
    for check in CHECKS:
        check(data, out)
    return out.findings


def evaluate(
    conn: Connection, as_of: dt.date, rules: ConcreteRules | None = None
) -> list[Finding]:
    """Findings of every concrete rule at the end of ``as_of``."""
    rules = rules or ConcreteRules()
    data = load_data(conn, as_of, rules)
    findings = findings_for(data, rules)
    log.info(
        "concrete rules evaluated",
        extra={
            "as_of": as_of.isoformat(),
            "plants": len(data.plants),
            "production": len(data.production),
            "batching": len(data.batching),
            "materials": len(data.materials),
            "self_tests": len(data.self_tests),
            "findings": len(findings),
        },
    )
    return findings


# -- credit score ---------------------------------------------------------------


def credit_scores(
    conn: Connection,
    as_of: dt.date,
    rules: ConcreteRules | None = None,
    findings: list[Finding] | None = None,
) -> dict[str, float]:
    """Recompute every plant's credit score at ``as_of`` and store it.

    Scores come from the findings of :func:`evaluate` (or the ``findings``
    given); each is written to ``concrete_credit_history`` (replacing a score
    of the same date) and to the plant's ``credit_score`` in ``layer_plants``
    (rows whose score changes only, so the layer version moves only then).
    Runs in the caller's transaction.
    """
    rules = rules or ConcreteRules()
    if findings is None:
        findings = evaluate(conn, as_of, rules)
    plants = conn.execute(text("SELECT DISTINCT source_id FROM layer_plants")).scalars()
    by_plant: dict[str, list[tuple[str, str]]] = {pid: [] for pid in plants}
    for f in findings:
        if f.rule.startswith(f"{DOMAIN}.") and f.subject_id in by_plant:
            by_plant[f.subject_id].append((f.rule, f.level))
    rows = []
    scores: dict[str, float] = {}
    for pid, pairs in by_plant.items():
        score, deductions = credit_score(pairs, rules)
        scores[pid] = score
        rows.append(
            {"plant_id": pid, "as_of": as_of, "score": score, "deductions": deductions}
        )
    if rows:
        from sqlalchemy.dialects.postgresql import insert

        stmt = insert(credit_history_table).values(rows)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["plant_id", "as_of"],
                set_={
                    "score": stmt.excluded.score,
                    "deductions": stmt.excluded.deductions,
                    "computed_at": func.now(),
                },
            )
        )
        conn.execute(
            text(
                "UPDATE layer_plants p SET credit_score = s.score, updated_at = now() "
                "FROM unnest(CAST(:ids AS text[]), CAST(:scores AS float8[])) "
                "AS s(plant_id, score) "
                "WHERE p.source_id = s.plant_id "
                "AND p.credit_score IS DISTINCT FROM s.score"
            ),
            {"ids": list(scores), "scores": list(scores.values())},
        )
    log.info(
        "concrete credit scores",
        extra={
            "as_of": as_of.isoformat(),
            "plants": len(scores),
            "findings": len(findings),
        },
    )
    return scores


def credit_history(conn: Connection, plant_id: str) -> list[dict[str, Any]]:
    """A plant's stored scores, oldest first."""
    rows = conn.execute(
        text(
            "SELECT as_of, score, deductions, computed_at "
            "FROM concrete_credit_history WHERE plant_id = :p ORDER BY as_of"
        ),
        {"p": plant_id},
    ).mappings()
    return [dict(r) for r in rows]


# -- demo records -----------------------------------------------------------------

_DEMO_CLASSES = ("C25", "C30", "C30", "C30", "C35", "C40", "C50", "C60")
_DEMO_PROJECTS = (
    "天河某商住楼",
    "番禺地铁站",
    "黄埔厂房",
    "白云学校",
    "海珠医院",
    "南沙码头",
)
#: Target kg per 2 m3 batch by material class (a C30 pump mix, ~2,400 kg/m3).
_DEMO_BATCH_KG = {
    "binder": 760.0,
    "aggregate": 3700.0,
    "water": 340.0,
    "admixture": 15.0,
}
_DEMO_MATERIALS = (
    ("cement", "粤秀水泥", 90),
    ("fly_ash", "珠江电厂", 180),
    ("manufactured_sand", "从化石场", 365),
    ("stone", "清远石场", 365),
    ("admixture", "华南外加剂", 180),
    ("slag", "韶钢矿粉", 90),
)


def demo_records(
    conn: Connection, seed: int, as_of: dt.date, *, records_per_plant: int = 6
) -> dict[str, list[dict[str, Any]]]:
    """Synthetic records for the plants of ``layer_plants``, feed id -> records.

    About 90 records per plant over the 60 days before ``as_of``, with a few
    per cent of violations of most kinds (deviations, chloride, missing
    approval or mix ratio, bad serials, late or duplicate arrivals, untested
    use, expired lots, weak strength at about one plant in fifteen, overdue
    specimen groups). Deterministic for a seed and the plants' ids.
    """
    rules = ConcreteRules()
    tz = ZoneInfo(rules.timezone)
    plant_ids = (
        conn.execute(
            text("SELECT DISTINCT source_id FROM layer_plants ORDER BY source_id")
        )
        .scalars()
        .all()
    )
    rng = np.random.default_rng(seed)
    out: dict[str, list[dict[str, Any]]] = {
        "concrete_production": [],
        "concrete_batching": [],
        "concrete_materials": [],
        "concrete_self_tests": [],
    }
    day0 = dt.datetime.combine(as_of, dt.time(), tz)
    for pid in plant_ids:
        weak = rng.random() < 0.07
        silent = rng.random() < 1 / 12
        serials: list[str] = []
        for k in range(records_per_plant):
            # the newest record within 4 days (a plant in 12 has been silent)
            back = rng.integers(0, 5) if k == 0 and not silent else rng.integers(5, 45)
            at = day0 - dt.timedelta(days=int(back), hours=float(rng.uniform(-16, -6)))
            rec = f"{pid}-{at:%y%m%d}-{k:03d}"
            cls = str(rng.choice(_DEMO_CLASSES))
            volume = float(np.round(rng.uniform(8, 260), 1))
            serial = f"PB{at:%y%m%d}{k:04d}{pid[-3:]}"
            roll = rng.random()
            if roll < 0.02:
                serial = ""
            elif roll < 0.04:
                serial = "#" + serial[:3]
            elif roll < 0.06 and serials:
                serial = serials[-1]
            serials.append(serial)
            environment = _demo_environment(rng)
            out["concrete_production"].append(
                {
                    "plant_id": pid,
                    "record_no": rec,
                    "produced_at": at.isoformat(),
                    "project": str(rng.choice(_DEMO_PROJECTS)),
                    "strength_class": cls,
                    "volume_m3": volume,
                    "mix_ratio_no": None
                    if rng.random() < 0.04
                    else f"PH-{cls}-{k % 3:02d}",
                    "batching_serial": serial,
                    "approved": bool(rng.random() > 0.05),
                    # mostly the city default; some prestressed or plain mixes
                    "chloride_environment": environment,
                }
            )
            if rng.random() >= 0.04:  # else: online batching missing
                _demo_batching(
                    out["concrete_batching"], rng, pid, rec, at, rules, environment
                )
            need = int(required_groups(np.array([volume]), 100.0)[0])
            groups = need - int(rng.random() < 0.05)
            for g in range(groups):
                out["concrete_self_tests"].append(
                    _demo_group(
                        rng, pid, f"{rec}-G{g + 1}", rec, cls, at.date(), as_of, weak
                    )
                )
        # the plant's C30 history: enough groups for the statistical method
        for g in range(int(rng.integers(10, 16))):
            cast = as_of - dt.timedelta(days=int(rng.integers(29, 85)))
            out["concrete_self_tests"].append(
                _demo_group(
                    rng, pid, f"{pid}-H{g + 1:02d}", None, "C30", cast, as_of, weak
                )
            )
        _demo_materials(out["concrete_materials"], rng, pid, day0)
    return out


def _demo_environment(rng: np.random.Generator) -> str | None:
    """The GB 50164 row of a demo production record (None: the default)."""
    roll = rng.random()
    if roll < 0.08:
        return "prestressed"
    if roll < 0.12:
        return "plain"
    return None


def _demo_batching(
    rows: list[dict[str, Any]],
    rng: np.random.Generator,
    pid: str,
    rec: str,
    at: dt.datetime,
    rules: ConcreteRules,
    environment: str | None = None,
) -> None:
    totals = {m: [0.0, 0.0] for m in BATCH_MATERIALS}
    # a few per cent of the records over their limit
    _, limit = rules.chloride_limit(environment)
    scale = min(limit, rules.chloride_limit_pct) / 0.20
    chloride = float(np.round(rng.normal(0.06, 0.02) * scale, 3))
    if rng.random() < 0.03:
        chloride = float(np.round(rng.uniform(1.05, 1.6) * limit, 3))
    for n in (1, 2):
        for material in BATCH_MATERIALS:
            target = _DEMO_BATCH_KG[material]
            tol = rules.tolerance_cumulative_pct[material]
            dev = rng.normal(0, tol / 3)
            if rng.random() < 0.004:
                dev = (
                    rng.choice((-1, 1))
                    * rng.uniform(1.2, 3)
                    * (rules.tolerance_batch_pct[material])
                )
            actual = float(np.round(target * (1 + dev / 100), 1))
            totals[material][0] += target
            totals[material][1] += actual
            rows.append(
                {
                    "plant_id": pid,
                    "batch_no": str(n),
                    "record_no": rec,
                    "produced_at": (at + dt.timedelta(minutes=3 * n)).isoformat(),
                    "material": material,
                    "target_kg": target,
                    "actual_kg": actual,
                    "cumulative": False,
                    "chloride_pct": max(chloride, 0.0)
                    if material == "binder"
                    else None,
                }
            )
    if rng.random() < 0.5:
        for material, (target, actual) in totals.items():
            rows.append(
                {
                    "plant_id": pid,
                    "batch_no": "total",
                    "record_no": rec,
                    "produced_at": (at + dt.timedelta(minutes=8)).isoformat(),
                    "material": material,
                    "target_kg": target,
                    "actual_kg": round(actual, 1),
                    "cumulative": True,
                }
            )


def _demo_group(
    rng: np.random.Generator,
    pid: str,
    group_no: str,
    rec: str | None,
    cls: str,
    cast: dt.date,
    as_of: dt.date,
    weak: bool,
) -> dict[str, Any]:
    f_cuk = parse_strength_class(cls) or 30.0
    # mixes designed to f_cu,0 = f_cu,k + 1.645 sigma (JGJ 55-2011 §4.0.1, sigma
    # 4 / 5 / 6 MPa up to C35 / C45 / above); a weak plant falls short of it
    sigma = 4.0 if f_cuk <= 35 else 5.0 if f_cuk <= 45 else 6.0
    mean = f_cuk * 1.03 if weak else f_cuk + 1.645 * sigma + 3.0
    strength = float(np.round(rng.normal(mean, 2.5), 1))
    tested_on: dt.date | None = cast + dt.timedelta(days=28)
    if tested_on > as_of or rng.random() < 0.015:
        tested_on = None
    return {
        "plant_id": pid,
        "group_no": group_no,
        "record_no": rec,
        "strength_class": cls,
        "cast_on": cast.isoformat(),
        "tested_on": tested_on.isoformat() if tested_on else None,
        "strength_mpa": strength if tested_on else None,
        "curing": "standard",
    }


def _demo_materials(
    rows: list[dict[str, Any]], rng: np.random.Generator, pid: str, day0: dt.datetime
) -> None:
    n = len(_DEMO_MATERIALS) + 2
    for k in range(n):
        material, supplier, shelf = _DEMO_MATERIALS[k % len(_DEMO_MATERIALS)]
        arrived = day0 - dt.timedelta(days=float(rng.uniform(5, 80)))
        entered = arrived + dt.timedelta(hours=float(rng.uniform(0.2, 8)))
        if rng.random() < 0.05:
            entered = arrived + dt.timedelta(hours=float(rng.uniform(30, 90)))
        tested_at = arrived + dt.timedelta(hours=float(rng.uniform(6, 30)))
        first_used = tested_at + dt.timedelta(hours=float(rng.uniform(1, 24)))
        tested = True
        if rng.random() < 0.03:
            first_used = arrived + dt.timedelta(hours=2)
        if rng.random() < 0.015:
            tested, tested_at = False, None
        last_used = min(first_used + dt.timedelta(days=float(rng.uniform(2, 20))), day0)
        expires = (arrived + dt.timedelta(days=shelf)).date()
        if rng.random() < 0.04:
            expires = (last_used - dt.timedelta(days=2)).date()
        qty = float(np.round(rng.uniform(3e4, 6e4), -2))
        used = float(np.round(qty * rng.uniform(0.4, 0.97), -1))
        if rng.random() < 0.03:
            used = float(np.round(qty * 1.1, -1))
        rec = {
            "plant_id": pid,
            "material_record_no": f"{pid}-M{k + 1:03d}",
            "material": material,
            "supplier": supplier,
            "batch_no": f"{arrived:%y%m%d}-{k:02d}",
            "quantity_kg": qty,
            "arrived_at": arrived.isoformat(),
            "entered_at": entered.isoformat(),
            "tested": tested,
            "tested_at": tested_at.isoformat() if tested_at else None,
            "expires_on": expires.isoformat(),
            "first_used_at": first_used.isoformat(),
            "last_used_at": last_used.isoformat(),
            "used_kg": used,
        }
        if material == "manufactured_sand":
            rec["mb_value"] = float(np.round(rng.uniform(0.6, 1.6), 2))
            rec["for_strength_class"] = "C30"
            limit = stone_powder_limit_pct(rec["mb_value"], 30.0, None)
            rec["stone_powder_pct"] = float(np.round(rng.uniform(0.5, 1.1) * limit, 1))
        rows.append(rec)
        if rng.random() < 0.03:  # the same lot entered twice
            rows.append({**rec, "material_record_no": f"{pid}-M{k + 1:03d}D"})


def load_demo_records(engine: Engine, seed: int, as_of: dt.date) -> dict[str, Any]:
    """Generate :func:`demo_records` and load them with ``ingest.feeds``."""
    from ingest.feeds import load_feed
    from layers.feeds import get_feed

    with engine.connect() as conn:
        records = demo_records(conn, seed, as_of)
    return {
        feed: load_feed(engine, get_feed(feed), records=rows, source="demo")
        for feed, rows in records.items()
    }


def _after_evaluate(conn: Connection, as_of: dt.date, findings: list[Finding]) -> None:
    credit_scores(conn, as_of, findings=findings)


register_evaluator(DOMAIN, evaluate, after=_after_evaluate)
