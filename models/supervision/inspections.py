"""Rules of water-engineering inspections (水工程巡检, DOMAIN.md §6).

Workflow [S]: an inspector records the problems of a project against the
checklist of its construction stage and issues a rectification notice
(deadline, measures, responsible party); the project replies with photos; the
inspector confirms or rejects the reply; confirmed problems are closed (销号);
overdue ones escalate to a summons (约谈) or a public notice (通报).

Every step maps onto the shared loop (``models.supervision.loop``):

=====================================  =====================================
inspection workflow                    loop
=====================================  =====================================
a problem recorded                     a finding of ``inspections.problem``
                                       -> a *raised* warning (``listed``
                                       when supervised-listed)
rectification notice                   ``dispatch`` (deadline by severity
                                       from the notice: the domain's deadline
                                       hook, :func:`notice_deadline_of`, on
                                       every path; :func:`issue_notice` adds
                                       the measures)
the project's reply with photos        ``rectify`` (evidence files)
the inspector confirms / rejects       ``verify(accept=True / False)``
closed (销号)                          state ``closed``
summons / public notice when overdue   ``escalate_overdue`` (levels 1..3,
                                       :data:`ESCALATION_ZH`)
=====================================  =====================================

A second rule, ``inspections.checklist_incomplete``, flags an inspection that
left required items of its stage's checklist unchecked.

Photos: an inspector uploads a problem's photo (``POST /supervision/evidence``)
and records its SHA-256 in the problem's ``photo_sha256``. A value that is not
a SHA-256 is rejected at ingest (the feed's row check); a well-formed one
whose file is not stored yet is accepted -- records and photos may arrive in
either order -- reported as a warning by ``gis-server ingest feed`` and marked
``photo_stored: false`` in the warning's evidence until the file is stored.
``GET /supervision/evidence/{sha256}`` serves the photo to whoever sees the
warning.

Both rules' findings are records (an inspection, a problem): ``observed_at``
is the inspection day, and their period is the record's id.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from sqlalchemy import Connection, select

from gis_server.overrides import OverridableSettings
from layers.supervision.inspections import (
    SEVERITIES,
    SEVERITY_ZH,
    STAGE_ZH,
    STAGES,
)
from layers.tables import feed_table, table_for
from models.supervision.evidence import known_evidence, supervision_evidence
from models.supervision.rules import Finding, Rule, register_evaluator, register_rule

log = logging.getLogger("gis_server.supervision.inspections")

DOMAIN = "inspections"
TZ = ZoneInfo("Asia/Shanghai")

#: What an escalation level of an overdue rectification means here (the
#: loop counts the levels; these are the inspections' names for them) [S].
ESCALATION_ZH: dict[int, str] = {0: "", 1: "督办", 2: "约谈", 3: "通报"}
ESCALATION_EN: dict[int, str] = {
    0: "",
    1: "urged",
    2: "summons",
    3: "public notice",
}


class InspectionRules(OverridableSettings):
    """Thresholds of the inspection rules (env ``GIS_RULES_INSPECTIONS_*``)."""

    model_config = SettingsConfigDict(
        env_prefix="GIS_RULES_INSPECTIONS_", env_file=".env", extra="ignore"
    )

    level_general: str = Field(
        "yellow",
        description="[D] Warning level of a general (一般) problem: the "
        "river-chief ladder's lowest rung (rules.LEVELS). Design default: no "
        "rule maps inspection severities onto warning colours.",
    )
    level_serious: str = Field(
        "orange", description="[D] Warning level of a serious (较重) problem."
    )
    level_severe: str = Field(
        "red", description="[D] Warning level of a severe (严重) problem."
    )
    deadline_general_days: int = Field(
        7, ge=1, description="[D] Days to rectify a general problem (DOMAIN §6)."
    )
    deadline_serious_days: int = Field(
        15, ge=1, description="[D] Days to rectify a serious problem (DOMAIN §6)."
    )
    deadline_severe_days: int = Field(
        30,
        ge=1,
        description="[D] Days to rectify a severe problem, under supervised "
        "listing (挂牌督办, DOMAIN §6).",
    )
    supervised_listing: tuple[str, ...] = Field(
        ("severe",),
        description="[D] Severities whose rectification is supervised-listed "
        "(挂牌督办) (DOMAIN §6: severe).",
    )
    default_severity: str = Field(
        "general",
        description="[D] Severity of a problem that gives none and whose "
        "checklist item gives no default.",
    )
    checklist_incomplete_level: str = Field(
        "yellow",
        description="[D] Level of an inspection that skipped required items of "
        "its stage's checklist.",
    )
    checklist_deadline_days: int = Field(
        7,
        ge=1,
        description="[D] Days to complete (re-inspect) the skipped items.",
    )

    def level_of(self, severity: str) -> str:
        """The warning level of a problem severity.

        >>> InspectionRules().level_of("serious")
        'orange'
        """
        return {
            "general": self.level_general,
            "serious": self.level_serious,
            "severe": self.level_severe,
        }[severity]

    def deadline_days(self, severity: str) -> int:
        """Days to rectify a problem of ``severity``.

        >>> InspectionRules().deadline_days("severe")
        30
        """
        return {
            "general": self.deadline_general_days,
            "serious": self.deadline_serious_days,
            "severe": self.deadline_severe_days,
        }[severity]


PROBLEM = register_rule(
    Rule(
        id="inspections.problem",
        domain=DOMAIN,
        title="Problem found on inspection",
        title_zh="巡检发现问题",
        source="Water-engineering inspection workflow (DOMAIN.md §6) [S]; "
        "severities general/serious/severe [R]; deadlines 7/15/30 days [D]",
        confidence="D",
        subject_layer="construction_sites",
        description="Each problem an inspection records is a warning whose "
        "rectification notice is the loop's dispatch, with a deadline by "
        "severity; severe problems are supervised-listed.",
        settings=(
            "level_general",
            "level_serious",
            "level_severe",
            "deadline_general_days",
            "deadline_serious_days",
            "deadline_severe_days",
            "supervised_listing",
            "default_severity",
        ),
    )
)

CHECKLIST_INCOMPLETE = register_rule(
    Rule(
        id="inspections.checklist_incomplete",
        domain=DOMAIN,
        title="Inspection skipped required checklist items",
        title_zh="巡检漏查必查项",
        source="Stage checklists of the inspection workflow (DOMAIN.md §6) [S]; "
        "level and deadline [D]",
        confidence="D",
        subject_layer="construction_sites",
        description="An inspection whose checked items (and problems) do not "
        "cover every required item of its stage's checklist.",
        settings=("checklist_incomplete_level", "checklist_deadline_days"),
    )
)


def parse_items(value: Any) -> list[str]:
    """The item codes of a ``checked_items`` value (JSON list or a text list).

    >>> parse_items(["F01", "F02"]), parse_items('["F01"]'), parse_items("F01; F02")
    (['F01', 'F02'], ['F01'], ['F01', 'F02'])
    >>> parse_items(None)
    []
    """
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [p for p in re.split(r"[\s,;|，；、]+", value) if p]
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if v is not None and str(v).strip()]
    return []


def problem_finding(
    inspection: dict[str, Any],
    problem: dict[str, Any],
    checklist: dict[tuple[str, str], dict[str, Any]],
    rules: InspectionRules,
    site: dict[str, Any] | None = None,
) -> Finding:
    """The finding of one recorded problem (pure; the evaluator's core).

    ``checklist`` maps (stage, item_code) to the item's row; ``site`` is the
    construction site the project code names, when it names one.
    """
    item = checklist.get((inspection["stage"], problem.get("item_code") or ""))
    severity = (
        problem.get("severity")
        or (item or {}).get("severity_default")
        or rules.default_severity
    )
    days = rules.deadline_days(severity)
    inspected_on: dt.date = inspection["inspected_on"]
    deadline = inspected_on + dt.timedelta(days=days)
    listed = severity in rules.supervised_listing
    district = inspection.get("district") or (site or {}).get("district")
    summary = (
        f"{SEVERITY_ZH[severity]}问题：{problem['description']}"
        f"（{STAGE_ZH.get(inspection['stage'], inspection['stage'])}，"
        f"限{days}天整改{'，挂牌督办' if listed else ''}）"
    )
    evidence = {
        "inspection_id": inspection["inspection_id"],
        "problem_no": problem["problem_no"],
        "project": inspection["project"],
        "stage": inspection["stage"],
        "inspector": inspection.get("inspector"),
        "inspected_on": inspected_on.isoformat(),
        "item_code": problem.get("item_code"),
        "item": (item or {}).get("item"),
        "item_in_checklist": item is not None,
        "severity": severity,
        "severity_given": problem.get("severity") is not None,
        "description": problem["description"],
        "measures": problem.get("measures"),
        "photo_sha256": problem.get("photo_sha256"),
        "deadline_days": days,
        "deadline": deadline.isoformat(),
        "supervised_listing": listed,
    }
    if problem.get("photo_sha256"):
        evidence["photo_stored"] = problem.get("photo_stored")
    _position(evidence, inspection)
    return Finding(
        rule=PROBLEM.id,
        subject_layer="construction_sites" if site is not None else None,
        subject_id=inspection["project"],
        level=rules.level_of(severity),
        observed_at=_at(inspected_on),
        period=f"{inspection['inspection_id']}/{problem['problem_no']}",
        summary=summary,
        evidence=evidence,
        responsible=problem.get("responsible") or (site or {}).get("contractor"),
        district=district,
        listed=listed,
    )


def checklist_finding(
    inspection: dict[str, Any],
    problem_items: set[str],
    checklist: dict[tuple[str, str], dict[str, Any]],
    rules: InspectionRules,
    site: dict[str, Any] | None = None,
) -> Finding | None:
    """The finding of an inspection that skipped required items, or None.

    An item counts as checked when ``checked_items`` lists it or a problem was
    recorded against it. A stage without a loaded checklist cannot be judged
    (None). An inspection with no ``checked_items`` at all checked nothing.
    """
    required = sorted(
        code
        for (stage, code), row in checklist.items()
        if stage == inspection["stage"] and row.get("required") is not False
    )
    if not required:
        return None
    checked = set(parse_items(inspection.get("checked_items"))) | problem_items
    missing = [c for c in required if c not in checked]
    if not missing:
        return None
    stage = inspection["stage"]
    inspected_on: dt.date = inspection["inspected_on"]
    days = rules.checklist_deadline_days
    evidence = {
        "inspection_id": inspection["inspection_id"],
        "project": inspection["project"],
        "stage": stage,
        "inspector": inspection.get("inspector"),
        "inspected_on": inspected_on.isoformat(),
        "required": required,
        "missing": missing,
        "missing_items": [checklist[(stage, c)].get("item") for c in missing],
        "deadline_days": days,
        "deadline": (inspected_on + dt.timedelta(days=days)).isoformat(),
    }
    _position(evidence, inspection)
    return Finding(
        rule=CHECKLIST_INCOMPLETE.id,
        subject_layer="construction_sites" if site is not None else None,
        subject_id=inspection["project"],
        level=rules.checklist_incomplete_level,
        observed_at=_at(inspected_on),
        period=inspection["inspection_id"],
        summary=f"{STAGE_ZH.get(stage, stage)}巡检漏查{len(missing)}/"
        f"{len(required)}项必查项（{inspection['inspection_id']}）",
        evidence=evidence,
        responsible=inspection.get("inspector"),
        district=inspection.get("district") or (site or {}).get("district"),
    )


def _at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=TZ)


def _position(evidence: dict[str, Any], inspection: dict[str, Any]) -> None:
    # A free project code has no site on the map: the inspection's own
    # position (when recorded) is the only place the warning can be drawn.
    if inspection.get("lon") is not None and inspection.get("lat") is not None:
        evidence["lon"] = inspection["lon"]
        evidence["lat"] = inspection["lat"]


def _rows(conn: Connection, query) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(query).mappings()]


def evaluate(
    conn: Connection, as_of: dt.date, rules: InspectionRules | None = None
) -> list[Finding]:
    """Every finding of the inspections recorded up to ``as_of``."""
    rules = rules or InspectionRules()
    checklists = feed_table("inspection_checklists")
    inspections = feed_table("inspections")
    problems = feed_table("inspection_problems")
    checklist = {
        (r["stage"], r["item_code"]): r for r in _rows(conn, select(checklists))
    }
    done = _rows(conn, select(inspections).where(inspections.c.inspected_on <= as_of))
    if not done:
        return []
    by_id = {r["inspection_id"]: r for r in done}
    found = _rows(
        conn,
        select(problems)
        .where(problems.c.inspection_id.in_(list(by_id)))
        .order_by(problems.c.inspection_id, problems.c.problem_no),
    )
    photos = sorted({p["photo_sha256"] for p in found if p.get("photo_sha256")})
    stored = known_evidence(conn, photos)
    for p in found:
        if p.get("photo_sha256"):
            p["photo_stored"] = p["photo_sha256"] in stored
    if len(stored) < len(photos):
        log.warning(
            "inspection photos not stored",
            extra={"missing": len(photos) - len(stored), "as_of": as_of.isoformat()},
        )
    sites_t = table_for("construction_sites")
    projects = sorted({r["project"] for r in done})
    sites = {
        r["source_id"]: r
        for r in _rows(
            conn,
            select(sites_t.c.source_id, sites_t.c.district, sites_t.c.contractor)
            .where(sites_t.c.source_id.in_(projects))
            .order_by(sites_t.c.source_id, sites_t.c.source_part),
        )
    }
    out: list[Finding] = []
    items_by_inspection: dict[str, set[str]] = {}
    for p in found:
        ins = by_id[p["inspection_id"]]
        out.append(problem_finding(ins, p, checklist, rules, sites.get(ins["project"])))
        if p.get("item_code"):
            items_by_inspection.setdefault(p["inspection_id"], set()).add(
                p["item_code"]
            )
    for ins in done:
        f = checklist_finding(
            ins,
            items_by_inspection.get(ins["inspection_id"], set()),
            checklist,
            rules,
            sites.get(ins["project"]),
        )
        if f is not None:
            out.append(f)
    log.info(
        "inspections evaluated",
        extra={
            "as_of": as_of.isoformat(),
            "inspections": len(done),
            "problems": len(found),
            "findings": len(out),
        },
    )
    return out


def notice_deadline(notice_at: dt.datetime, deadline_days: int) -> dt.datetime:
    """When a problem noticed at ``notice_at`` is due: the end (local time) of
    the ``deadline_days``-th day after the notice.

    >>> at = dt.datetime(2026, 12, 3, 10, tzinfo=TZ)
    >>> notice_deadline(at, 7).isoformat()
    '2026-12-10T23:59:59+08:00'
    """
    day = notice_at.astimezone(TZ).date() + dt.timedelta(days=deadline_days)
    return dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=TZ)


def notice_days(warning: Mapping[str, Any], rules: InspectionRules) -> int:
    """Days to rectify the warning of a problem (by its severity) or of a
    skipped checklist (``checklist_deadline_days``), as the settings say now."""
    evidence = warning.get("evidence") or {}
    if warning.get("rule") == PROBLEM.id:
        return rules.deadline_days(evidence.get("severity") or rules.default_severity)
    return rules.checklist_deadline_days


def notice_deadline_of(
    warning: Mapping[str, Any], at: dt.datetime, rules: InspectionRules | None = None
) -> dt.datetime:
    """The domain's deadline hook: a notice issued at ``at`` (a dispatch, or a
    rejection sending the reply back) is due at the end of the problem's
    days by severity counted from it (7 / 15 / 30 [D])."""
    return notice_deadline(at, notice_days(warning, rules or InspectionRules()))


def issue_notice(
    conn: Connection,
    warning_id: int,
    actor,
    note: str = "",
    *,
    at: dt.datetime | None = None,
    rules: InspectionRules | None = None,
) -> dict[str, Any]:
    """Issue the rectification notice of a problem: the loop's ``dispatch``.

    The deadline is the domain's (:func:`notice_deadline_of`, which every
    dispatch of this domain gets); the note carries the measures required,
    and the loop adds the supervised listing (挂牌督办) of a listed warning.
    The responsible party is the one the problem names. ``rules`` overrides
    the current settings. Returns the dispatched warning.
    """
    from models.supervision import loop

    at = at or dt.datetime.now(dt.UTC)
    warning = loop.get_warning(conn, warning_id)
    evidence = warning.get("evidence") or {}
    measures = evidence.get("measures")
    text_ = note or (f"整改通知：{measures}" if measures else "整改通知")
    return loop.dispatch(
        conn,
        warning_id,
        actor,
        responsible=warning.get("responsible"),
        deadline=notice_deadline_of(warning, at, rules) if rules else None,
        note=text_,
        at=at,
    )


def unstored_photos(
    conn: Connection, source: str | None = None
) -> list[tuple[str, int, str]]:
    """(inspection_id, problem_no, photo_sha256) of the problems (of
    ``source``) whose photo is not stored as evidence (yet)."""
    problems = feed_table("inspection_problems")
    query = (
        select(problems.c.inspection_id, problems.c.problem_no, problems.c.photo_sha256)
        .where(problems.c.photo_sha256.isnot(None))
        .where(
            ~select(supervision_evidence.c.sha256)
            .where(supervision_evidence.c.sha256 == problems.c.photo_sha256)
            .exists()
        )
        .order_by(problems.c.inspection_id, problems.c.problem_no)
    )
    if source is not None:
        query = query.where(problems.c.source == source)
    return [tuple(r) for r in conn.execute(query)]


register_evaluator(DOMAIN, evaluate, deadline=notice_deadline_of)


# -- demo data ---------------------------------------------------------------

#: The demo checklist: (stage, code, item, default severity, required).
DEMO_CHECKLIST: tuple[tuple[str, str, str, str, bool], ...] = (
    ("preparation", "P01", "施工组织设计及专项方案审批", "serious", True),
    ("preparation", "P02", "围堰及临时度汛措施", "severe", True),
    ("preparation", "P03", "施工现场安全文明措施", "general", True),
    ("foundation", "F01", "基坑开挖边坡稳定及支护", "severe", True),
    ("foundation", "F02", "地基承载力检测", "serious", True),
    ("foundation", "F03", "基坑降排水", "serious", True),
    ("foundation", "F04", "地基处理记录", "general", False),
    ("main_structure", "M01", "钢筋制作安装", "serious", True),
    ("main_structure", "M02", "混凝土浇筑及养护", "serious", True),
    ("main_structure", "M03", "止水及伸缩缝", "severe", True),
    ("main_structure", "M04", "模板支撑体系", "severe", True),
    ("main_structure", "M05", "施工日志及质量检验记录", "general", True),
    ("metal_structure", "S01", "闸门及埋件安装", "serious", True),
    ("metal_structure", "S02", "启闭机安装调试", "serious", True),
    ("metal_structure", "S03", "防腐涂装", "general", True),
    ("electromechanical", "E01", "水泵机组安装", "serious", True),
    ("electromechanical", "E02", "电气设备接地及绝缘", "severe", True),
    ("electromechanical", "E03", "自动化监控系统", "general", True),
    ("completion", "C01", "工程外观质量", "general", True),
    ("completion", "C02", "质量评定及验收资料", "serious", True),
    ("completion", "C03", "安全监测设施", "serious", True),
)

_DEMO_PROBLEMS = {
    "general": ("现场材料堆放杂乱", "安全警示标志缺失", "资料记录不完整"),
    "serious": ("钢筋间距超出允许偏差", "混凝土养护不到位", "降排水措施不足"),
    "severe": ("基坑边坡出现裂缝未处理", "模板支撑未按方案搭设", "止水带破损"),
}
_DEMO_INSPECTORS = ("陈工", "李工", "黄工", "张工", "梁工", "何工")


def demo_records(
    conn: Connection, seed: int, as_of: dt.date, n: int = 36
) -> dict[str, list[dict[str, Any]]]:
    """A demo of ``n`` inspections on the demo city's construction sites.

    Active and suspended sites are inspected at a stage drawn at random within
    the last 60 days before ``as_of``; most inspections record 0-3 problems
    (item codes of the stage, severity mostly left to the item's default), a
    few skip a required item. Returns feed id -> records for
    :func:`ingest.feeds.load_feed`; the same seed gives the same records.
    """
    rng = np.random.default_rng(seed)
    sites_t = table_for("construction_sites")
    from sqlalchemy import func

    sites = _rows(
        conn,
        select(
            sites_t.c.source_id,
            sites_t.c.district,
            sites_t.c.contractor,
            func.ST_X(func.ST_Centroid(sites_t.c.geom)).label("lon"),
            func.ST_Y(func.ST_Centroid(sites_t.c.geom)).label("lat"),
        )
        .where(sites_t.c.status.in_(("active", "suspended")))
        .where(sites_t.c.source_part == 0)
        .order_by(sites_t.c.source_id),
    )
    checklist = [
        {
            "stage": s,
            "item_code": c,
            "item": item,
            "severity_default": sev,
            "required": req,
        }
        for s, c, item, sev, req in DEMO_CHECKLIST
    ]
    out: dict[str, list[dict[str, Any]]] = {
        "inspection_checklists": checklist,
        "inspections": [],
        "inspection_problems": [],
    }
    if not sites:
        return out
    by_stage: dict[str, list[str]] = {}
    for s, c, *_ in DEMO_CHECKLIST:
        by_stage.setdefault(s, []).append(c)
    for k in range(n):
        site = sites[int(rng.integers(0, len(sites)))]
        stage = STAGES[int(rng.integers(0, len(STAGES)))]
        codes = by_stage[stage]
        checked = [c for c in codes if rng.random() > 0.08]  # some skip an item
        inspection_id = f"XJ{as_of:%Y}{k + 1:04d}"
        out["inspections"].append(
            {
                "inspection_id": inspection_id,
                "project": site["source_id"],
                "stage": stage,
                "inspector": _DEMO_INSPECTORS[int(rng.integers(0, 6))],
                "inspected_on": as_of - dt.timedelta(days=int(rng.integers(0, 60))),
                "district": site["district"],
                "lon": round(float(site["lon"]), 6),
                "lat": round(float(site["lat"]), 6),
                "checked_items": checked,
            }
        )
        n_problems = int(rng.choice(4, p=(0.3, 0.35, 0.25, 0.1)))
        for no in range(1, n_problems + 1):
            code = codes[int(rng.integers(0, len(codes)))]
            given = rng.random() < 0.3
            severity = SEVERITIES[int(rng.integers(0, 3))] if given else None
            kind = (
                severity or dict((c, sev) for _, c, _, sev, _ in DEMO_CHECKLIST)[code]
            )
            texts = _DEMO_PROBLEMS[kind]
            out["inspection_problems"].append(
                {
                    "inspection_id": inspection_id,
                    "problem_no": no,
                    "item_code": code,
                    "severity": severity,
                    "description": texts[int(rng.integers(0, len(texts)))],
                    "measures": "按规范整改并上传整改照片",
                    "responsible": site["contractor"],
                }
            )
    return out


def load_demo(engine, seed: int, as_of: dt.date) -> dict[str, Any]:
    """Generate the demo records and load them with ``ingest.feeds.load_feed``."""
    from ingest.feeds import load_feed
    from layers.feeds import get_feed

    with engine.connect() as conn:
        records = demo_records(conn, seed, as_of)
    return {
        feed_id: load_feed(engine, get_feed(feed_id), records=rows, source="demo")
        for feed_id, rows in records.items()
    }


__all__ = [
    "CHECKLIST_INCOMPLETE",
    "ESCALATION_EN",
    "ESCALATION_ZH",
    "PROBLEM",
    "STAGES",
    "InspectionRules",
    "checklist_finding",
    "demo_records",
    "evaluate",
    "issue_notice",
    "load_demo",
    "notice_days",
    "notice_deadline",
    "notice_deadline_of",
    "parse_items",
    "problem_finding",
    "unstored_photos",
]
