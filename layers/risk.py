"""Layers of the spatial-risk domain: roads (an exposure source) and the
computed risk zones and composite risk grid (``models.risk``).

``risk_zones`` holds one feature per zone, keyed by ``source`` = zone kind and
``source_id`` = id of the feature the zone is computed around (a building, a
curtain wall, a river segment), so a recomputation updates a zone in place
and keeps its ``id``. ``risk_grid`` holds the non-empty cells of the composite
surface, keyed by ``source_id`` = cell id.
"""

from __future__ import annotations

from layers.base import PUBLIC_REFERENCE, Access, LayerSpec, Prop, Style

#: Road classes kept for exposure (road length inside hazard zones).
ROAD_CLASSES = ("motorway", "primary", "secondary", "local")

#: Zone kinds computed by ``models.risk``.
ZONE_KINDS = ("dangerous_building", "curtain_wall", "river_pressure")

#: Zone levels, lowest first: the yellow / orange / red warning colours of the
#: Guangzhou river-chief guidance, reused for every kind of zone.
ZONE_LEVELS = ("yellow", "orange", "red")
ZONE_LEVEL_COLORS = {"yellow": "#fee08b", "orange": "#fc8d59", "red": "#d73027"}

#: Getis-Ord Gi* classes of a grid cell.
HOTSPOT_CLASSES = ("hot", "cold", "not_significant")

ROADS = LayerSpec(
    id="roads",
    title="Roads",
    title_zh="道路",
    description=(
        "Road centre lines, used for the road length exposed inside hazard zones."
    ),
    geometry_types=("MultiLineString",),
    properties=(
        Prop("name", "text", "Name", "名称", aliases=("name", "名称", "road_name")),
        Prop(
            "road_class",
            "text",
            "Road class",
            "道路等级",
            aliases=("road_class", "class", "highway", "kind", "等级"),
            choices=ROAD_CLASSES,
        ),
    ),
    min_zoom=10,
    style=Style(
        color="#888888",
        weight=1.5,
        color_by="road_class",
        palette={
            "motorway": "#e31a1c",
            "primary": "#ff7f00",
            "secondary": "#fdbf6f",
            "local": "#aaaaaa",
        },
    ),
    keywords=("road", "道路"),
    access=PUBLIC_REFERENCE,
)

RISK_ZONES = LayerSpec(
    id="risk_zones",
    title="Risk zones",
    title_zh="风险区",
    description=(
        "Computed risk zones: hazard zones around C/D dangerous buildings, fall "
        "zones around curtain walls due for a check, and pollution-pressure "
        "corridors along river segments. `stale` is set when a source feature "
        "the zone touches changed and the zone has not been recomputed yet."
    ),
    geometry_types=("MultiPolygon",),
    properties=(
        Prop("kind", "text", "Zone kind", "风险类型", choices=ZONE_KINDS),
        Prop("level", "text", "Level", "等级", choices=ZONE_LEVELS),
        Prop("score", "float", "Score", "风险分值", non_negative=True),
        Prop("subject_layer", "text", "Subject layer", "对象图层"),
        Prop("subject_id", "int", "Subject feature id", "对象编号"),
        Prop(
            "district",
            "text",
            "District",
            "所属区",
            description="The district of the building or curtain wall the zone "
            "is drawn around (a wall: its building's, else the district it "
            "lies in); empty for river corridors.",
        ),
        Prop(
            "chief_id",
            "text",
            "River chief id",
            "河长编号",
            description="The river chief of the segment a corridor follows; "
            "empty for other zones.",
        ),
        Prop("reasons", "json", "Reasons", "原因"),
        Prop("cause_ids", "json", "Causing feature ids by layer", "成因要素"),
        Prop("radius_m", "float", "Radius", "半径", unit="m", non_negative=True),
        Prop(
            "building_count", "int", "Buildings inside", "区内房屋数", non_negative=True
        ),
        Prop("building_ids", "json", "Buildings inside (ids)", "区内房屋"),
        Prop(
            "sensitive_count",
            "int",
            "Sensitive uses inside",
            "区内敏感建筑数",
            non_negative=True,
        ),
        Prop("sensitive_ids", "json", "Sensitive uses inside (ids)", "区内敏感建筑"),
        Prop(
            "road_length_m",
            "float",
            "Road length inside",
            "区内道路长度",
            unit="m",
            non_negative=True,
        ),
        Prop("detail", "json", "Detail", "明细"),
        Prop("params", "json", "Parameters", "计算参数"),
        Prop("computed_at", "datetime", "Computed at", "计算时间", temporal=True),
        Prop("stale", "bool", "Stale", "待更新"),
    ),
    min_zoom=8,
    style=Style(
        color="#d73027",
        fill_color="#d7302755",
        weight=1.5,
        color_by="level",
        palette=ZONE_LEVEL_COLORS,
    ),
    computed=True,
    keywords=("risk", "hazard zone", "风险"),
    # a zone names its subject (a building's id, grade and height, the
    # buildings inside, a segment and its polluters): housing officers see
    # the zones of their district's buildings and walls, river chiefs the
    # corridors of their own segments
    access=Access(
        read=("analyst",),
        scoped=(("housing_officer", "district"), ("river_chief", "chief_id")),
    ),
)

RISK_GRID = LayerSpec(
    id="risk_grid",
    title="Composite risk grid",
    title_zh="综合风险网格",
    description=(
        "Square cells (EPSG:32649) scoring every kind of risk zone, their "
        "weighted composite, and Getis-Ord Gi* hot spots of the composite."
    ),
    geometry_types=("Polygon",),
    properties=(
        Prop("cell_id", "text", "Cell id", "网格编号"),
        Prop(
            "cell_size_m", "float", "Cell size", "网格边长", unit="m", non_negative=True
        ),
        Prop(
            "building_score",
            "float",
            "Dangerous-building score",
            "危房分值",
            non_negative=True,
        ),
        Prop(
            "curtain_wall_score",
            "float",
            "Curtain-wall score",
            "幕墙分值",
            non_negative=True,
        ),
        Prop(
            "river_score",
            "float",
            "River-pressure score",
            "河道压力分值",
            non_negative=True,
        ),
        Prop("composite", "float", "Composite score", "综合分值", non_negative=True),
        Prop("gi_z", "float", "Gi* z-score", "Gi*统计量"),
        Prop("gi_p", "float", "Gi* p-value", "Gi*显著性"),
        Prop("hotspot", "text", "Hot spot", "热点", choices=HOTSPOT_CLASSES),
        Prop(
            "district",
            "text",
            "District",
            "所属区",
            description="The district the cell's centre lies in (empty outside "
            "every district).",
        ),
        Prop("computed_at", "datetime", "Computed at", "计算时间", temporal=True),
    ),
    min_zoom=8,
    max_zoom=18,
    style=Style(
        color="#00000000",
        fill_color="#fc8d59",
        weight=0,
        color_by="hotspot",
        palette={"hot": "#d73027", "cold": "#4575b4", "not_significant": "#ffffbf"},
    ),
    computed=True,
    keywords=("risk", "grid", "hot spot"),
    # an aggregate, but fine enough (a cell is 250 m by default) to place a
    # dangerous building: analysts read the whole grid (and the GeoTIFF),
    # housing officers the cells of their district; river chiefs read their
    # own corridors instead, and the city's rivers only as a summary
    access=Access(read=("analyst",), scoped=(("housing_officer", "district"),)),
)

RISK_LAYERS: tuple[LayerSpec, ...] = (ROADS, RISK_ZONES, RISK_GRID)
