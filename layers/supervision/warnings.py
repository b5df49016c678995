"""The supervision warnings layer: every rule's findings, one closed loop.

One point per warning, on the map where its subject is (a building, a plant, a
site, a fund centre, an inspected project). The loop that moves a warning
raised -> dispatched -> rectified -> closed (or back to dispatched) lives in
``models.supervision.loop``; this module only declares the layer, which is
computed by the server (``gis-server supervision evaluate``), never ingested.

Positions: the point on the subject's own feature when the subject layer has
it, else the lon/lat recorded with the finding (an inspection's position),
both ``located`` true; otherwise the point on the surface of the finding's
district (layer ``districts``, matched by name), else Guangzhou city hall;
both fallbacks have ``located`` false.
"""

from __future__ import annotations

from layers.base import Access, LayerSpec, Prop, Style

#: Levels, lowest first (the same ladder as ``models.supervision.rules.LEVELS``;
#: ``layers`` imports nothing of the project, so it is repeated here).
LEVELS = ("yellow", "orange", "red")
LEVEL_COLORS = {"yellow": "#fee08b", "orange": "#fc8d59", "red": "#d73027"}

#: States of the loop (``models.supervision.loop.TRANSITIONS`` moves them).
STATES = ("raised", "dispatched", "rectified", "closed")

SUPERVISION_WARNINGS = LayerSpec(
    id="supervision_warnings",
    title="Supervision warnings",
    title_zh="监管预警",
    description=(
        "Warnings raised by the supervision rules of every domain (dangerous "
        "buildings, curtain walls, concrete plants, construction sites, "
        "provident fund, water-engineering inspections) and where each stands "
        "in its closed loop: raised, dispatched to a responsible party with a "
        "deadline, rectified with evidence, closed (销号) or sent back; overdue "
        "steps escalate (督办, 约谈, 通报). `source_id` is "
        "`<rule>|<subject_id>|<period>`; a finding observed more than "
        "`GIS_LOOP_REOPEN_AFTER_DAYS` after its warning was closed raises a new "
        "warning with the next `occurrence`. `listed`: supervised listing "
        "(挂牌督办)."
    ),
    geometry_types=("Point",),
    properties=(
        Prop("rule", "text", "Rule", "规则", indexed=True),
        Prop("domain", "text", "Domain", "业务领域", indexed=True),
        Prop("level", "text", "Warning level", "预警等级", choices=LEVELS),
        Prop("state", "text", "State", "处置状态", choices=STATES, indexed=True),
        Prop("occurrence", "int", "Occurrence", "第几次预警", non_negative=True),
        Prop("subject_layer", "text", "Subject layer", "对象图层"),
        Prop("subject_id", "text", "Subject id", "对象编号"),
        Prop("summary", "text", "Summary", "预警内容"),
        Prop("responsible", "text", "Responsible party", "责任主体", indexed=True),
        Prop("district", "text", "District", "所属区", indexed=True),
        Prop("period", "text", "Period", "周期"),
        Prop("raised_at", "datetime", "Raised at", "预警时间", temporal=True),
        Prop("observed_at", "datetime", "Last observed", "最近发现时间"),
        Prop("dispatched_at", "datetime", "Dispatched at", "派发时间"),
        Prop("deadline", "datetime", "Rectification deadline", "整改期限"),
        Prop("rectified_at", "datetime", "Rectified at", "整改回复时间"),
        Prop("closed_at", "datetime", "Closed at", "销号时间"),
        Prop(
            "escalation",
            "int",
            "Escalation (0 none, 1 督办, 2 约谈, 3 通报)",
            "升级等级",
            non_negative=True,
        ),
        Prop("escalated_at", "datetime", "Last escalated at", "最近升级时间"),
        Prop("overdue", "bool", "Overdue", "已逾期"),
        Prop("evidence", "json", "Evidence", "预警依据"),
        Prop("source_standard", "text", "Standard", "依据标准"),
        Prop("located", "bool", "Placed on its subject", "已定位"),
        Prop(
            "listed",
            "bool",
            "Supervised listing (挂牌督办)",
            "挂牌督办",
            description="The warning's rectification is supervised-listed (a "
            "severe inspection problem, say); its notice says so.",
        ),
    ),
    id_aliases=("source_id",),
    min_zoom=0,
    max_zoom=22,
    style=Style(color="#fc8d59", radius=7, color_by="level", palette=LEVEL_COLORS),
    computed=True,
    keywords=("supervision", "warning", "closed loop", "监管预警", "闭环"),
    # housing officers see and move the warnings of their district, river
    # chiefs those they are responsible for (their segments' relapse warnings)
    access=Access(
        read=("analyst",),
        scoped=(("housing_officer", "district"), ("river_chief", "responsible")),
        scoped_write=("housing_officer", "river_chief"),
    ),
)

#: Map layers this domain adds.
LAYERS: tuple[LayerSpec, ...] = (SUPERVISION_WARNINGS,)
