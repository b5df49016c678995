"""Declarations of the buildings supervision domain (feeds and layers).

Three record feeds sit on the ``buildings`` and ``curtain_walls`` layers:

* ``building_readings``: structural monitoring readings (tilt, crack width,
  cumulative settlement) per building and survey point;
* ``curtain_wall_checks``: periodic safety checks, structural-silicone
  adhesive sampling and safety appraisals of glass curtain walls;
* ``curtain_wall_events``: events after which a curtain wall must be
  appraised (typhoon, lightning, fire, explosion, deformation, falling parts,
  burst glass).

The rules reading them are in :mod:`models.supervision.buildings`.
"""

from __future__ import annotations

from typing import Any

from layers.base import LayerSpec, Prop
from layers.feeds import FeedSpec, register_feed

#: Map layers this domain adds (none: the findings sit on existing layers).
LAYERS: tuple[LayerSpec, ...] = ()

#: What a structural reading measures; the unit follows from the kind.
READING_KINDS = ("tilt_pct", "crack_width_mm", "settlement_mm")

#: Crack types with their own limits (JGJ 125-99 masonry members; JGJ 125-2016
#: settlement cracks).
CRACK_TYPES = (
    "vertical_compression",
    "beam_bearing",
    "horizontal_eccentric",
    "settlement",
)

CHECK_KINDS = ("safety_check", "adhesive_sampling", "appraisal")

#: Events that make a safety appraisal of a curtain wall mandatory.
WALL_EVENTS = (
    "typhoon",
    "lightning",
    "fire",
    "explosion",
    "deformation",
    "falling_parts",
    "burst_glass",
)


def _check_reading(row: dict[str, Any]) -> str | None:
    """A crack reading needs its crack type: every crack limit depends on it."""
    if row.get("kind") == "crack_width_mm" and row.get("crack_type") is None:
        return (
            "crack_type is missing or not one of "
            f"{', '.join(CRACK_TYPES)} (a crack_width_mm reading needs it)"
        )
    return None


BUILDING_READINGS = register_feed(
    FeedSpec(
        id="building_readings",
        title="Structural monitoring readings",
        title_zh="房屋结构监测数据",
        description=(
            "Readings of survey points on buildings: tilt (% of height), crack "
            "width (mm, with the crack type, required for a crack reading, and "
            "optionally the crack's length and the storey height) and "
            "cumulative settlement (mm, downwards positive). `building_id` is "
            "the source id of the building in the `buildings` layer."
        ),
        columns=(
            Prop(
                "building_id",
                "text",
                "Building",
                "房屋编号",
                aliases=("building_id", "building", "house_id", "房屋编号", "建筑编号"),
            ),
            Prop(
                "sensor_id",
                "text",
                "Survey point / sensor",
                "测点编号",
                aliases=(
                    "sensor_id",
                    "sensor",
                    "point_id",
                    "point",
                    "测点",
                    "测点编号",
                ),
            ),
            Prop(
                "measured_at",
                "datetime",
                "Measured at",
                "监测时间",
                aliases=("measured_at", "time", "timestamp", "监测时间", "观测时间"),
                temporal=True,
            ),
            Prop(
                "kind",
                "text",
                "Kind",
                "监测项目",
                aliases=("kind", "item", "type", "监测项目", "监测类型"),
                choices=READING_KINDS,
            ),
            Prop(
                "value",
                "float",
                "Value",
                "监测值",
                aliases=("value", "reading", "监测值", "测值"),
                description="% for tilt_pct, mm for crack_width_mm and settlement_mm",
            ),
            Prop(
                "crack_type",
                "text",
                "Crack type",
                "裂缝类型",
                aliases=("crack_type", "裂缝类型"),
                choices=CRACK_TYPES,
            ),
            Prop(
                "crack_length_m",
                "float",
                "Crack length",
                "裂缝长度",
                unit="m",
                aliases=("crack_length_m", "crack_length", "裂缝长度"),
                non_negative=True,
                description="Length of the crack (vertical compression cracks: "
                "JGJ 125-99 counts those longer than half the storey height)",
            ),
            Prop(
                "storey_height_m",
                "float",
                "Storey height",
                "层高",
                unit="m",
                aliases=("storey_height_m", "storey_height", "floor_height", "层高"),
                non_negative=True,
                description="Height of the storey the crack is in",
            ),
            Prop(
                "near_underground_works",
                "bool",
                "Next to underground works",
                "临近地下工程",
                aliases=("near_underground_works", "underground_works", "临近地下工程"),
            ),
        ),
        key=("building_id", "sensor_id", "kind", "measured_at"),
        required=("value",),
        domain="buildings",
        subject=("buildings", "building_id"),
        row_check=_check_reading,
    )
)

CURTAIN_WALL_CHECKS = register_feed(
    FeedSpec(
        id="curtain_wall_checks",
        title="Curtain-wall checks",
        title_zh="玻璃幕墙检查记录",
        description=(
            "Periodic safety checks, structural-silicone adhesive sampling and "
            "safety appraisals of glass curtain walls (JGJ 102-2003 §12.2). "
            "`wall_id` is the source id of the wall in the `curtain_walls` layer."
        ),
        columns=(
            Prop(
                "wall_id",
                "text",
                "Curtain wall",
                "幕墙编号",
                aliases=("wall_id", "wall", "curtain_wall", "幕墙编号"),
            ),
            Prop(
                "checked_on",
                "date",
                "Checked on",
                "检查日期",
                aliases=("checked_on", "date", "check_date", "检查日期"),
                temporal=True,
            ),
            Prop(
                "kind",
                "text",
                "Kind",
                "检查类型",
                aliases=("kind", "type", "检查类型"),
                choices=CHECK_KINDS,
            ),
            Prop(
                "result",
                "text",
                "Result",
                "检查结论",
                aliases=("result", "conclusion", "检查结论", "结论"),
            ),
        ),
        key=("wall_id", "checked_on", "kind"),
        domain="buildings",
        subject=("curtain_walls", "wall_id"),
    )
)

CURTAIN_WALL_EVENTS = register_feed(
    FeedSpec(
        id="curtain_wall_events",
        title="Curtain-wall events",
        title_zh="玻璃幕墙异常事件",
        description=(
            "Events after which a safety appraisal of the curtain wall is "
            "mandatory (typhoon, lightning, fire or explosion damage, abnormal "
            "deformation, falling parts, burst glass)."
        ),
        columns=(
            Prop(
                "wall_id",
                "text",
                "Curtain wall",
                "幕墙编号",
                aliases=("wall_id", "wall", "curtain_wall", "幕墙编号"),
            ),
            Prop(
                "occurred_on",
                "date",
                "Occurred on",
                "发生日期",
                aliases=("occurred_on", "date", "event_date", "发生日期"),
                temporal=True,
            ),
            Prop(
                "event",
                "text",
                "Event",
                "事件类型",
                aliases=("event", "kind", "type", "事件类型"),
                choices=WALL_EVENTS,
            ),
            Prop("note", "text", "Note", "备注", aliases=("note", "remark", "备注")),
        ),
        key=("wall_id", "occurred_on", "event"),
        domain="buildings",
        subject=("curtain_walls", "wall_id"),
    )
)

FEEDS = (BUILDING_READINGS, CURTAIN_WALL_CHECKS, CURTAIN_WALL_EVENTS)
