"""The layers the server keeps: one declaration each.

Collection ids are public API (URLs, CLI verbs, scripts rely on them).
Adding a layer is adding a :class:`LayerSpec` here and generating a migration
(``alembic revision --autogenerate``); ingest, the features API, tiles and the
maps pick it up from this list.
"""

from __future__ import annotations

from layers.base import PUBLIC_REFERENCE, Access, LayerSpec, Prop, Style
from layers.risk import RISK_LAYERS
from layers.supervision import SUPERVISION_LAYERS
from layers.water import WATER_LAYERS

DISTRICT_ALIASES = ("district", "district_name", "区", "所属区", "行政区")

#: JGJ 125-2016 §6.1.4 safety grades, A (safe) to D (whole building dangerous).
SAFETY_GRADES = ("A", "B", "C", "D")
SAFETY_GRADE_COLORS = {"A": "#1a9850", "B": "#fee08b", "C": "#fc8d59", "D": "#d73027"}

#: River-chief levels in the Guangzhou river chief system.
CHIEF_LEVELS = ("city", "district", "town", "village")

DISTRICTS = LayerSpec(
    id="districts",
    title="Districts",
    title_zh="行政区",
    description="Administrative districts of the city.",
    geometry_types=("MultiPolygon",),
    properties=(
        Prop("name", "text", "Name", "名称", aliases=("name", "名称", "district")),
        Prop(
            "adcode",
            "text",
            "Administrative code",
            "行政区划代码",
            aliases=("adcode", "code", "admin_code"),
        ),
    ),
    id_aliases=("adcode", "id", "fid", "objectid"),
    min_zoom=0,
    max_zoom=16,
    style=Style(color="#555555", fill_color="#00000000", weight=1.5),
    keywords=("boundary", "district"),
    access=PUBLIC_REFERENCE,
)

RIVERS = LayerSpec(
    id="rivers",
    title="Managed river segments",
    title_zh="河段",
    description=(
        "River segments (河段) managed under the river chief system, digitised "
        "in flow direction; `downstream_code` names the segment the water "
        "flows into."
    ),
    geometry_types=("MultiLineString",),
    properties=(
        Prop("name", "text", "Segment name", "河段名称", aliases=("name", "名称")),
        Prop(
            "code",
            "text",
            "Segment code",
            "河段编码",
            aliases=("code", "segment_code", "编码"),
        ),
        Prop(
            "river_name",
            "text",
            "River name",
            "河流名称",
            aliases=("river", "river_name", "河流", "河流名称", "name_en"),
        ),
        Prop("district", "text", "District", "所属区", aliases=DISTRICT_ALIASES),
        Prop(
            "chief_id",
            "text",
            "River chief id",
            "河长编号",
            aliases=("chief", "chief_id", "河长"),
        ),
        Prop(
            "chief_level",
            "text",
            "River chief level",
            "河长级别",
            aliases=("chief_level", "level", "河长级别"),
            choices=CHIEF_LEVELS,
        ),
        Prop(
            "length_m",
            "float",
            "Length",
            "长度",
            unit="m",
            aliases=("length", "length_m", "长度"),
            non_negative=True,
        ),
        Prop(
            "remediated",
            "bool",
            "Remediated (消除)",
            "已消除",
            aliases=("remediated", "eliminated", "消除"),
        ),
        Prop(
            "downstream_code",
            "text",
            "Downstream segment code",
            "下游河段编码",
            aliases=("downstream", "downstream_code", "下游"),
        ),
    ),
    min_zoom=8,
    max_zoom=20,
    style=Style(color="#1f78b4", weight=3),
    keywords=("river", "河长制"),
    access=Access(read=("analyst",), scoped=(("river_chief", "chief_id"),)),
)

MONITORING_STATIONS = LayerSpec(
    id="monitoring_stations",
    title="Water-quality monitoring stations",
    title_zh="水质监测点",
    description="Sampling points and automatic stations on river segments.",
    geometry_types=("Point",),
    properties=(
        Prop(
            "code", "text", "Station code", "站点编码", aliases=("code", "station_code")
        ),
        Prop("name", "text", "Name", "名称", aliases=("name", "名称")),
        Prop(
            "river_code",
            "text",
            "River segment code",
            "河段编码",
            aliases=("river_code", "segment", "segment_code", "river_segment"),
        ),
        Prop(
            "kind",
            "text",
            "Kind",
            "类型",
            aliases=("kind", "type"),
            choices=("manual", "automatic"),
        ),
    ),
    min_zoom=10,
    style=Style(color="#6a3d9a", radius=6),
    keywords=("water quality", "monitoring"),
    access=Access(read=("analyst", "river_chief")),
)

BUILDINGS = LayerSpec(
    id="buildings",
    title="Buildings",
    title_zh="房屋",
    description=(
        "Building footprints with their safety appraisal grade (JGJ 125-2016: "
        "A safe, B some dangerous members, C local danger, D whole building "
        "dangerous)."
    ),
    geometry_types=("MultiPolygon",),
    properties=(
        Prop(
            "address",
            "text",
            "Address",
            "地址",
            aliases=("address", "addr", "addr_full", "地址"),
        ),
        Prop("district", "text", "District", "所属区", aliases=DISTRICT_ALIASES),
        Prop(
            "structure",
            "text",
            "Structure",
            "结构类型",
            aliases=("structure", "building_material", "结构"),
        ),
        Prop(
            "floors",
            "int",
            "Floors",
            "层数",
            aliases=("floors", "levels", "building_levels", "层数"),
            non_negative=True,
        ),
        Prop(
            "height_m",
            "float",
            "Height",
            "高度",
            unit="m",
            aliases=("height", "height_m", "高度"),
            non_negative=True,
        ),
        Prop(
            "built_year",
            "int",
            "Year built",
            "建成年份",
            aliases=("built_year", "year", "start_date", "建成年份"),
        ),
        Prop(
            "safety_grade",
            "text",
            "Safety grade (JGJ 125-2016)",
            "安全等级",
            aliases=("safety_grade", "grade", "安全等级"),
            choices=SAFETY_GRADES,
            indexed=True,
        ),
        Prop(
            "appraised_on",
            "date",
            "Appraised on",
            "鉴定日期",
            aliases=("appraised_on", "appraisal_date"),
            temporal=True,
        ),
        Prop(
            "historic",
            "bool",
            "Historic building",
            "历史建筑",
            aliases=("historic", "heritage", "历史建筑"),
        ),
        Prop(
            "use",
            "text",
            "Use",
            "用途",
            aliases=("use", "usage", "kind_detail", "用途"),
        ),
    ),
    min_zoom=12,
    max_zoom=22,
    style=Style(
        color="#666666",
        fill_color="#bbbbbb",
        weight=0.5,
        color_by="safety_grade",
        palette=SAFETY_GRADE_COLORS,
    ),
    keywords=("building", "dangerous building", "危房"),
    access=Access(
        read=("analyst",),
        scoped=(("housing_officer", "district"),),
        scoped_write=("housing_officer",),
    ),
)

CURTAIN_WALLS = LayerSpec(
    id="curtain_walls",
    title="Glass curtain walls",
    title_zh="玻璃幕墙",
    description=(
        "Glass curtain walls, as facade footprints or points, with the dates "
        "their periodic safety checks are counted from (JGJ 102-2003 §12.2)."
    ),
    geometry_types=("MultiPolygon", "Point"),
    properties=(
        Prop(
            "building",
            "text",
            "Building",
            "所属建筑",
            aliases=("building", "building_name", "建筑"),
        ),
        Prop(
            "area_m2",
            "float",
            "Area",
            "面积",
            unit="m2",
            aliases=("area", "area_m2", "面积"),
            non_negative=True,
        ),
        Prop(
            "height_m",
            "float",
            "Height",
            "高度",
            unit="m",
            aliases=("height", "height_m", "高度"),
            non_negative=True,
        ),
        Prop(
            "support_type",
            "text",
            "Support type",
            "支承形式",
            aliases=("support", "support_type", "支承形式"),
            choices=("frame", "structural_silicone", "point", "cable", "other"),
        ),
        Prop(
            "accepted_on",
            "date",
            "Accepted on",
            "竣工验收日期",
            aliases=("accepted_on", "acceptance_date"),
            temporal=True,
        ),
        Prop(
            "last_checked_on",
            "date",
            "Last checked on",
            "上次检查日期",
            aliases=("last_checked_on", "last_check"),
            temporal=True,
        ),
        Prop(
            "design_life_years",
            "int",
            "Design life",
            "设计使用年限",
            unit="a",
            aliases=("design_life", "design_life_years"),
            non_negative=True,
        ),
    ),
    min_zoom=12,
    style=Style(color="#00a6ca", radius=5),
    keywords=("curtain wall", "玻璃幕墙"),
    access=Access(read=("analyst", "housing_officer")),
)

CONSTRUCTION_SITES = LayerSpec(
    id="construction_sites",
    title="Construction sites",
    title_zh="在建工地",
    description="Construction sites under real-name worker and wage supervision.",
    geometry_types=("MultiPolygon",),
    properties=(
        Prop(
            "project",
            "text",
            "Project",
            "项目名称",
            aliases=("project", "name", "项目名称"),
        ),
        Prop(
            "contractor",
            "text",
            "Contractor",
            "施工单位",
            aliases=("contractor", "施工单位"),
        ),
        Prop("district", "text", "District", "所属区", aliases=DISTRICT_ALIASES),
        Prop(
            "registered_workers",
            "int",
            "Registered workers",
            "实名登记人数",
            aliases=("registered_workers", "workers"),
            non_negative=True,
        ),
        Prop(
            "wage_account",
            "text",
            "Wage account",
            "工资专用账户",
            aliases=("wage_account",),
        ),
        Prop(
            "started_on",
            "date",
            "Started on",
            "开工日期",
            aliases=("started_on", "start_date"),
            temporal=True,
        ),
        Prop(
            "status",
            "text",
            "Status",
            "状态",
            aliases=("status",),
            choices=("planned", "active", "suspended", "completed"),
        ),
    ),
    min_zoom=10,
    style=Style(color="#ff7f00", fill_color="#fdbf6f", weight=1.5),
    keywords=("construction", "wages"),
    access=Access(
        read=("analyst", "river_chief"),
        scoped=(("housing_officer", "district"),),
        scoped_write=("housing_officer",),
    ),
)

PLANTS = LayerSpec(
    id="plants",
    title="Ready-mixed concrete plants",
    title_zh="预拌混凝土企业",
    description=(
        "Ready-mixed concrete plants with their production licence and credit score."
    ),
    geometry_types=("Point",),
    properties=(
        Prop(
            "enterprise",
            "text",
            "Enterprise",
            "企业名称",
            aliases=("enterprise", "name", "企业名称"),
        ),
        Prop(
            "licence",
            "text",
            "Licence",
            "资质证书",
            aliases=("licence", "license", "资质"),
        ),
        Prop(
            "capacity_m3_per_year",
            "float",
            "Capacity",
            "年产能",
            unit="m3/a",
            aliases=("capacity", "capacity_m3_per_year"),
            non_negative=True,
        ),
        Prop(
            "credit_score",
            "float",
            "Credit score",
            "信用分",
            aliases=("credit_score", "credit"),
            non_negative=True,
        ),
    ),
    min_zoom=8,
    style=Style(color="#b15928", radius=7),
    keywords=("concrete", "plant"),
    access=Access(read=("analyst", "river_chief")),
)

#: Every layer, in the order they are listed to users: the ingested layers
#: above, then the computed ones declared beside their domain.
LAYERS: tuple[LayerSpec, ...] = (
    DISTRICTS,
    RIVERS,
    MONITORING_STATIONS,
    BUILDINGS,
    CURTAIN_WALLS,
    CONSTRUCTION_SITES,
    PLANTS,
    *RISK_LAYERS,
    *WATER_LAYERS,
    *SUPERVISION_LAYERS,
)
