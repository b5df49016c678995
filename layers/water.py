"""Layers of the water-quality domain (warnings, patrol tasks).

Both are computed by the server (``gis-server predict score`` and
``gis-server patrols plan``) from the river segments, the observations and the
relapse model; neither is ingested.
"""

from __future__ import annotations

from layers.base import Access, LayerSpec, Prop, Style

WARNING_LEVELS = ("none", "yellow", "orange", "red")
WARNING_COLORS = {
    "none": "#1a9850",
    "yellow": "#fee08b",
    "orange": "#fc8d59",
    "red": "#d73027",
}
BLACK_ODOROUS_GRADES = ("none", "mild", "severe")
GB3838_CLASSES = ("I", "II", "III", "IV", "V", "劣V")

WATER_QUALITY_WARNINGS = LayerSpec(
    id="water_quality_warnings",
    title="Water-quality warnings",
    title_zh="水质预警",
    description=(
        "Per river segment: the predicted probability that the segment is, or "
        "within the next period will be, black-odorous (返黑返臭), its grade by "
        "the 2015 guideline and class by GB 3838-2002, and the warning level "
        "(none / yellow / orange / red) with its reasons, the model version and "
        "the top contributing factors."
    ),
    geometry_types=("MultiLineString",),
    properties=(
        Prop("segment_code", "text", "Segment code", "河段编码"),
        Prop("level", "text", "Warning level", "预警等级", choices=WARNING_LEVELS),
        Prop(
            "probability",
            "float",
            "Relapse probability",
            "返黑返臭概率",
            non_negative=True,
        ),
        Prop(
            "grade",
            "text",
            "Black-odorous grade (2015 guideline)",
            "黑臭等级",
            choices=BLACK_ODOROUS_GRADES,
        ),
        Prop(
            "gb3838_class",
            "text",
            "GB 3838-2002 class",
            "水质类别",
            choices=GB3838_CLASSES,
        ),
        Prop("reasons", "json", "Reasons", "预警原因"),
        Prop("model_version", "text", "Model version", "模型版本"),
        Prop("top_factors", "json", "Top contributing factors", "主要影响因素"),
        Prop("chief_id", "text", "River chief id", "河长编号"),
        Prop("computed_at", "datetime", "Computed at", "计算时间", temporal=True),
    ),
    min_zoom=8,
    max_zoom=20,
    style=Style(color="#fee08b", weight=4, color_by="level", palette=WARNING_COLORS),
    computed=True,
    keywords=("water quality", "warning", "黑臭水体", "河长制"),
    access=Access(read=("analyst",), scoped=(("river_chief", "chief_id"),)),
)

PATROL_TASKS = LayerSpec(
    id="patrol_tasks",
    title="River-chief patrol tasks",
    title_zh="河长巡河任务",
    description=(
        "Per river chief and period: which segments to patrol, how often (by "
        "warning level, Guangzhou 2021 guidance), why, when the next patrol is "
        "due and whether it is overdue; `urgency_rank` 1 is the most urgent of "
        "the chief's tasks."
    ),
    geometry_types=("MultiLineString",),
    properties=(
        Prop("chief_id", "text", "River chief id", "河长编号"),
        Prop(
            "chief_level",
            "text",
            "River chief level",
            "河长级别",
            choices=("city", "district", "town", "village"),
        ),
        Prop("segment_code", "text", "Segment code", "河段编码"),
        Prop("period_start", "date", "Period start", "周期开始", temporal=True),
        Prop("period_end", "date", "Period end", "周期结束"),
        Prop("level", "text", "Warning level", "预警等级", choices=WARNING_LEVELS),
        Prop(
            "interval_days",
            "float",
            "Days between patrols",
            "巡查间隔",
            unit="d",
            non_negative=True,
        ),
        Prop(
            "patrols_required",
            "int",
            "Patrols required in the period",
            "周期内应巡次数",
            non_negative=True,
        ),
        Prop(
            "patrols_done",
            "int",
            "Patrols done in the period",
            "周期内已巡次数",
            non_negative=True,
        ),
        Prop(
            "urgency_rank",
            "int",
            "Urgency rank (1 = most urgent)",
            "紧急程度",
            non_negative=True,
        ),
        Prop("reason", "text", "Reason", "原因"),
        Prop("last_patrol_at", "datetime", "Last patrol", "上次巡查"),
        Prop("due_at", "datetime", "Next patrol due", "下次应巡时间", temporal=True),
        Prop("overdue", "bool", "Overdue", "已逾期"),
        Prop("overdue_days", "float", "Days overdue", "逾期天数", unit="d"),
    ),
    min_zoom=8,
    max_zoom=20,
    style=Style(color="#6a3d9a", weight=3, color_by="level", palette=WARNING_COLORS),
    computed=True,
    keywords=("river chief", "patrol", "河长巡河"),
    access=Access(read=("analyst",), scoped=(("river_chief", "chief_id"),)),
)

WATER_LAYERS: tuple[LayerSpec, ...] = (WATER_QUALITY_WARNINGS, PATROL_TASKS)
