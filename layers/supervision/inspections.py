"""Declarations of the water-engineering inspections domain (水工程巡检).

Three feeds (DOMAIN.md §6): the checklist of each construction stage, the
inspections an inspector makes on site, and the problems each inspection
records. The rules reading them live in ``models/supervision/inspections.py``;
the rectification of each problem is a warning of the shared loop.
"""

from __future__ import annotations

import re
from typing import Any

from layers.base import LayerSpec, Prop
from layers.feeds import FeedSpec, register_feed

#: Construction stages of a water-engineering project, in order (the checklist
#: of 水利工程施工质量检验 is kept per stage).
STAGES: tuple[str, ...] = (
    "preparation",
    "foundation",
    "main_structure",
    "metal_structure",
    "electromechanical",
    "completion",
)
STAGE_ZH: dict[str, str] = {
    "preparation": "施工准备",
    "foundation": "地基与基础",
    "main_structure": "主体结构",
    "metal_structure": "金属结构安装",
    "electromechanical": "机电设备安装",
    "completion": "完工验收",
}
#: Problem severities, lowest first (一般 / 较重 / 严重) [R].
SEVERITIES: tuple[str, ...] = ("general", "serious", "severe")
SEVERITY_ZH: dict[str, str] = {"general": "一般", "serious": "较重", "severe": "严重"}

_SHA256 = re.compile(r"[0-9a-f]{64}")


def _check_problem(row: dict[str, Any]) -> str | None:
    """A photo reference must be a SHA-256 (what ``POST /supervision/evidence``
    answers): anything else can never name a stored file, so the row is
    rejected. Whether the file is stored yet is not this check's business
    (a warning of ``gis-server ingest feed``)."""
    sha = row.get("photo_sha256")
    if sha is not None and not _SHA256.fullmatch(sha):
        return (
            f"photo_sha256={sha[:80]!r} is not a SHA-256 (64 lowercase hex "
            "digits, as POST /supervision/evidence answers)"
        )
    return None


INSPECTION_CHECKLISTS = register_feed(
    FeedSpec(
        id="inspection_checklists",
        title="Inspection checklists",
        title_zh="巡检检查表",
        description="The items an inspector checks at each construction stage of "
        "a water-engineering project, with each item's default severity.",
        columns=(
            Prop(
                "stage",
                "text",
                "Stage",
                "施工阶段",
                aliases=("stage", "施工阶段", "阶段"),
                choices=STAGES,
            ),
            Prop(
                "item_code",
                "text",
                "Item code",
                "检查项编号",
                aliases=("item_code", "code", "检查项编号", "编号"),
            ),
            Prop(
                "item", "text", "Item", "检查项", aliases=("item", "检查项", "检查内容")
            ),
            Prop(
                "severity_default",
                "text",
                "Default severity",
                "默认严重程度",
                aliases=("severity_default", "severity", "默认严重程度"),
                choices=SEVERITIES,
            ),
            Prop(
                "required",
                "bool",
                "Required",
                "必查",
                aliases=("required", "必查"),
                description="An item every inspection of the stage must check "
                "(empty: required).",
            ),
        ),
        key=("stage", "item_code"),
        required=("item",),
        domain="inspections",
        # reference data: whoever reads construction sites reads the checklists
        readers=("construction_sites", "any"),
    )
)

INSPECTIONS = register_feed(
    FeedSpec(
        id="inspections",
        title="Water-engineering inspections",
        title_zh="水工程巡检记录",
        description="One on-site inspection of a project at a construction "
        "stage: who, when, where, and which checklist items were checked.",
        columns=(
            Prop(
                "inspection_id",
                "text",
                "Inspection",
                "巡检编号",
                aliases=("inspection_id", "id", "巡检编号"),
            ),
            Prop(
                "project",
                "text",
                "Project",
                "项目",
                aliases=("project", "project_code", "site", "项目", "项目编号"),
                description="A construction site's source id, or a free project code.",
                indexed=True,
            ),
            Prop(
                "stage",
                "text",
                "Stage",
                "施工阶段",
                aliases=("stage", "施工阶段", "阶段"),
                choices=STAGES,
            ),
            Prop(
                "inspector",
                "text",
                "Inspector",
                "巡检人员",
                aliases=("inspector", "巡检人员", "检查人"),
            ),
            Prop(
                "inspected_on",
                "date",
                "Inspected on",
                "巡检日期",
                aliases=("inspected_on", "date", "巡检日期", "检查日期"),
                temporal=True,
            ),
            Prop(
                "district",
                "text",
                "District",
                "所属区",
                aliases=("district", "所属区", "行政区"),
            ),
            Prop("lon", "float", "Longitude", "经度", aliases=("lon", "lng", "经度")),
            Prop("lat", "float", "Latitude", "纬度", aliases=("lat", "纬度")),
            Prop(
                "checked_items",
                "json",
                "Checked items",
                "已查项目",
                aliases=("checked_items", "checked", "已查项目"),
                description="The item codes of the stage's checklist that "
                "were checked (a JSON list).",
            ),
        ),
        key=("inspection_id",),
        required=("project", "stage", "inspected_on"),
        domain="inspections",
        subject=("construction_sites", "project"),
    )
)

INSPECTION_PROBLEMS = register_feed(
    FeedSpec(
        id="inspection_problems",
        title="Inspection problems",
        title_zh="巡检发现问题",
        description="A problem an inspection found: the checklist item, "
        "severity, measures required and the party responsible.",
        columns=(
            Prop(
                "inspection_id",
                "text",
                "Inspection",
                "巡检编号",
                aliases=("inspection_id", "巡检编号"),
            ),
            Prop(
                "problem_no",
                "int",
                "Problem no.",
                "问题序号",
                aliases=("problem_no", "no", "问题序号", "序号"),
                non_negative=True,
            ),
            Prop(
                "item_code",
                "text",
                "Item code",
                "检查项编号",
                aliases=("item_code", "检查项编号"),
            ),
            Prop(
                "severity",
                "text",
                "Severity",
                "严重程度",
                aliases=("severity", "严重程度"),
                choices=SEVERITIES,
                description="Empty: the checklist item's default severity.",
            ),
            Prop(
                "description",
                "text",
                "Description",
                "问题描述",
                aliases=("description", "问题描述"),
            ),
            # indexed: the evidence register's row-level policy looks a
            # photo's citing records up by it
            Prop(
                "photo_sha256",
                "text",
                "Photo (SHA-256)",
                "照片",
                aliases=("photo_sha256", "photo", "照片"),
                description="The SHA-256 of the photo stored with POST "
                "/supervision/evidence (64 lowercase hex digits; anything "
                "else is rejected).",
                indexed=True,
            ),
            Prop(
                "measures",
                "text",
                "Measures",
                "整改措施",
                aliases=("measures", "整改措施", "整改要求"),
            ),
            Prop(
                "responsible",
                "text",
                "Responsible",
                "责任单位",
                aliases=("responsible", "责任单位", "责任人"),
            ),
        ),
        key=("inspection_id", "problem_no"),
        required=("description",),
        domain="inspections",
        row_check=_check_problem,
        parent=("inspections", "inspection_id"),
    )
)

#: Map layers this domain adds (none: its warnings go on the warnings layer).
LAYERS: tuple[LayerSpec, ...] = ()
