"""SQL for the items of a layer: the page, the count, one feature, extents.

GeoJSON is built by PostgreSQL: each row becomes the text of one Feature
(``ST_AsGeoJSON`` with a fixed number of decimals and ``json_build_object``
for the properties) and the page is aggregated into one string, so Python
only frames the FeatureCollection around it. The bbox is a
``ST_Intersects(geom, envelope)`` on the EPSG:4326 column, which PostGIS runs
as ``geom && envelope`` on the GiST index plus an exact test.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Numeric,
    Select,
    Table,
    and_,
    case,
    cast,
    func,
    literal,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by

from gis_server.errors import FeatureNotFound, InvalidParameter
from gis_server.features.crs import CRS, DEFAULT_CRS, output_precision
from gis_server.features.props import (
    UPDATED_AT,
    output_properties,
    queryables,
)
from gis_server.features.temporal import TimeInterval, interval_condition
from layers import LayerSpec, table_for

log = logging.getLogger("gis_server.features.query")


@dataclass(frozen=True)
class ItemsQuery:
    """Everything that selects and shapes one page of items of a layer."""

    spec: LayerSpec
    #: (min lon, min lat, max lon, max lat) in EPSG:4326
    bbox: tuple[float, float, float, float] | None = None
    time: TimeInterval | None = None
    #: the property ``time`` applies to (see ``props.temporal_fields``)
    time_field: str | None = None
    #: further conditions: property equality parameters and the CQL2 filter
    conditions: tuple[ColumnElement[bool], ...] = ()
    #: output properties; None means all of them
    properties: tuple[str, ...] | None = None
    #: (queryable name, descending); ``id`` is always the last key
    sortby: tuple[tuple[str, bool], ...] = ()
    limit: int = 10
    offset: int = 0
    crs: CRS = DEFAULT_CRS
    #: decimal digits of degrees in the output (projected CRSs get cm)
    degree_digits: int = 7

    @property
    def table(self) -> Table:
        return table_for(self.spec.id)

    @property
    def precision(self) -> int:
        return output_precision(self.crs, self.degree_digits)


def where(query: ItemsQuery, *, spatial: bool = True) -> list[ColumnElement[bool]]:
    """The WHERE conditions of ``query`` on its table (the bbox first)."""
    table = query.table
    conditions: list[ColumnElement[bool]] = []
    if query.bbox is not None and spatial:
        conditions.append(func.ST_Intersects(table.c.geom, _envelope(query)))
    if query.time is not None:
        field = query.time_field or UPDATED_AT
        kind = (
            "datetime" if field == UPDATED_AT else query.spec.prop_by_name[field].type
        )
        conditions.append(interval_condition(table.c[field], kind, query.time))
    conditions.extend(query.conditions)
    return conditions


def _envelope(query: ItemsQuery) -> ColumnElement:
    assert query.bbox is not None
    return func.ST_MakeEnvelope(*query.bbox, 4326)


def output_geometry(cols: Any, crs: CRS) -> ColumnElement:
    """The geometry column in ``crs``, in that CRS's axis order."""
    geom: ColumnElement = cols.geom
    if crs.srid == 3857:
        geom = cols.geom_3857
    elif crs.srid != 4326:
        geom = func.ST_Transform(geom, crs.srid)
    if crs.lat_first:
        geom = func.ST_FlipCoordinates(geom)
    return geom


def properties_json(query: ItemsQuery, cols: Any) -> ColumnElement:
    """``json_build_object`` of the output properties of ``query``."""
    names = query.properties
    if names is None:
        names = output_properties(query.spec)
    kinds = {p.name: p.type for p in query.spec.properties}
    args: list[Any] = []
    for name in names:
        column = cols[name]
        args += [
            literal(name),
            _float_json(column) if kinds.get(name) == "float" else column,
        ]
    return func.json_build_object(*args)


def _float_json(column: ColumnElement) -> ColumnElement:
    """A float that keeps its decimal point in JSON (``3.0``, not ``3``).

    Clients that guess field types from the first features (GDAL's OAPIF
    driver) would otherwise make a float property an integer field.
    """
    whole = and_(column == func.trunc(column), func.abs(column) < 1e15)
    return case(
        (whole, func.to_json(cast(column, Numeric(32, 1)))), else_=func.to_json(column)
    )


def feature_text(query: ItemsQuery, cols: Any) -> ColumnElement:
    """One row as the text of a GeoJSON Feature."""
    return func.concat(
        '{"type":"Feature","id":',
        cols.id,
        ',"geometry":',
        func.ST_AsGeoJSON(output_geometry(cols, query.crs), query.precision, 0),
        ',"properties":',
        properties_json(query, cols),
        "}",
    )


def _sort_keys(query: ItemsQuery) -> list[tuple[str, bool]]:
    keys = list(query.sortby)
    if not any(name == "id" for name, _ in keys):
        keys.append(("id", False))
    return keys


def _ordered(expr: ColumnElement, descending: bool) -> Any:
    return expr.desc().nulls_last() if descending else expr.asc()


@dataclass(frozen=True)
class _Source:
    """Where a page's rows come from: columns, remaining conditions, order."""

    from_: Any
    cols: Any
    conditions: list[ColumnElement[bool]]
    #: (expression, descending) in sort order
    order: list[tuple[ColumnElement, bool]]


#: Above this share of the table, a bbox is served in plain ``id`` order.
WIDE_BBOX_SHARE = 0.2


def _source(query: ItemsQuery, candidates: int | None = None) -> _Source:
    """The rows of ``query`` in sort order, ready for LIMIT / OFFSET.

    Without a bbox (or for a bbox holding a large share of the layer) the
    table is read in sort order. For a narrower bbox the candidates that
    ``geom && bbox`` finds through the GiST index are sorted first, behind a
    fence (``OFFSET 0``), and the exact ``ST_Intersects`` test runs on them
    in that order only until the page is full. Ordering by ``id`` through
    the primary key instead looks cheap to the planner but reads the table
    until it reaches the box: when ids follow space (they do after any
    ingest), that is most of a large table.
    """
    table = query.table
    keys = _sort_keys(query)
    if query.bbox is None or candidates is None:
        return _Source(
            table, table.c, where(query), [(table.c[name], desc) for name, desc in keys]
        )
    envelope = _envelope(query)
    labelled = [
        ((table.c.id + 0) if name == "id" else table.c[name]).label(f"_k{i}")
        for i, (name, _) in enumerate(keys)
    ]
    # Only the id and the sort keys are sorted (narrow rows sort fast); the
    # full rows are then fetched by primary key, in that order, through a
    # LATERAL subquery (always a nested loop, so LIMIT stops it early), and
    # the exact test runs on those rows only.
    inner = (
        select(table.c.id.label("_id"), *labelled)
        .where(table.c.geom.op("&&")(envelope), *where(query, spatial=False))
        .order_by(
            *(
                _ordered(col, desc)
                for col, (_, desc) in zip(labelled, keys, strict=True)
            )
        )
        .offset(0)
        .subquery("candidates")
    )
    row = (
        select(table)
        .where(table.c.id == inner.c._id, func.ST_Intersects(table.c.geom, envelope))
        .limit(1)  # one row per id anyway; keeps the planner from flattening it
        .lateral("feature")
    )
    return _Source(
        inner.join(row, true()),
        row.c,
        [],
        [(inner.c[f"_k{i}"], desc) for i, (_, desc) in enumerate(keys)],
    )


def page_statement(query: ItemsQuery, candidates: int | None = None) -> Select:
    """``SELECT count, features_text`` of one page, ordered and limited."""
    src = _source(query, candidates)
    page = (
        select(
            feature_text(query, src.cols).label("f"),
            *(expr.label(f"_o{i}") for i, (expr, _) in enumerate(src.order)),
        )
        .select_from(src.from_)
        .where(*src.conditions)
        .order_by(*(_ordered(expr, desc) for expr, desc in src.order))
        .limit(query.limit)
        .offset(query.offset)
        .subquery("page")
    )
    keys = [_ordered(page.c[f"_o{i}"], desc) for i, (_, desc) in enumerate(src.order)]
    return select(
        func.count(),
        func.string_agg(page.c.f, aggregate_order_by(literal(","), *keys)),
    )


def fetch_page(
    conn: Connection, query: ItemsQuery, candidates: int | None = None
) -> tuple[int, bytes]:
    """Number of features on the page and their comma-joined GeoJSON text.

    ``candidates`` is the planner's estimate of the matches (from
    :func:`estimate_matches`); it chooses how a bbox page is read.
    """
    returned, features = conn.execute(page_statement(query, candidates)).one()
    return int(returned), (features or "").encode()


def rows_statement(
    query: ItemsQuery, *, geometry: str = "geojson", candidates: int | None = None
) -> Select:
    """Rows ``(id, properties json, geometry)`` for HTML, CSV and GeoPackage.

    ``geometry`` is ``geojson`` (text in the output CRS and axis order),
    ``wkt`` or ``wkb`` (in the output CRS, x/y order as files expect).
    """
    src = _source(query, candidates)
    if geometry == "geojson":
        geom = func.ST_AsGeoJSON(
            output_geometry(src.cols, query.crs), query.precision, 0
        )
    else:
        plain = output_geometry(src.cols, _xy_order(query.crs))
        geom = (
            func.ST_AsText(plain, query.precision)
            if geometry == "wkt"
            else (func.ST_AsBinary(plain))
        )
    return (
        select(
            src.cols.id,
            properties_json(query, src.cols).label("properties"),
            geom.label("geometry"),
        )
        .select_from(src.from_)
        .where(*src.conditions)
        .order_by(*(_ordered(expr, desc) for expr, desc in src.order))
        .limit(query.limit)
        .offset(query.offset)
    )


def _xy_order(crs: CRS) -> CRS:
    return CRS(crs.uri, crs.srid, lat_first=False, projected=crs.projected)


def fetch_rows(
    conn: Connection, query: ItemsQuery, candidates: int | None = None
) -> list[dict[str, Any]]:
    """The page as GeoJSON-like dicts (for HTML)."""
    result = conn.execute(rows_statement(query, candidates=candidates))
    return [
        {
            "type": "Feature",
            "id": row.id,
            "geometry": orjson.loads(row.geometry),
            "properties": row.properties,
        }
        for row in result
    ]


def bbox_candidates(
    conn: Connection, query: ItemsQuery
) -> tuple[int | None, int | None]:
    """The planner's estimate of matches and how to read a bbox page.

    Returns ``(estimate, candidates)``: ``candidates`` is the estimate when
    the bbox is narrow enough to be read through the spatial index and
    sorted (see :func:`_source`), None when the table is read in order.
    Without a bbox both are None (nothing to decide, nothing estimated).
    """
    if query.bbox is None:
        return None, None
    estimate = estimate_matches(conn, query)
    rows = conn.execute(
        text("SELECT reltuples FROM pg_class WHERE oid = CAST(:t AS regclass)"),
        {"t": query.spec.table},
    ).scalar_one()
    if rows > 0 and estimate > WIDE_BBOX_SHARE * rows:
        return estimate, None
    return estimate, estimate


def fetch_feature(
    conn: Connection, spec: LayerSpec, feature_id: str, crs: CRS, degree_digits: int
) -> bytes:
    """One feature's GeoJSON text; :class:`FeatureNotFound` if there is none."""
    try:
        fid = int(feature_id)
    except ValueError:
        fid = None
    if fid is None or not -(2**63) <= fid < 2**63:
        raise FeatureNotFound(f"no feature {feature_id!r} in collection {spec.id!r}")
    query = ItemsQuery(spec, crs=crs, degree_digits=degree_digits)
    stmt = select(feature_text(query, query.table.c)).where(query.table.c.id == fid)
    found = conn.execute(stmt).scalar()
    if found is None:
        raise FeatureNotFound(f"no feature {feature_id!r} in collection {spec.id!r}")
    return found.encode()


def fetch_feature_dict(
    conn: Connection, spec: LayerSpec, feature_id: str, crs: CRS, degree_digits: int
) -> dict[str, Any]:
    """One feature as a dict (for HTML)."""
    return orjson.loads(fetch_feature(conn, spec, feature_id, crs, degree_digits))


@dataclass(frozen=True)
class Matched:
    """``numberMatched`` and whether it was counted or estimated."""

    count: int
    exact: bool


def count_matched(
    conn: Connection,
    query: ItemsQuery,
    returned: int,
    threshold: int,
    estimate: int | None = None,
) -> Matched:
    """How many features match ``query``, without a full count on large layers.

    A page shorter than ``limit`` tells the answer for free. Otherwise the
    planner's row estimate decides: at most ``threshold`` rows are counted
    exactly, more are reported as the estimate.
    """
    if returned < query.limit and (returned > 0 or query.offset == 0):
        return Matched(query.offset + returned, True)
    conditions = where(query)
    if estimate is None:
        estimate = estimate_matches(conn, query)
    if estimate <= threshold:
        exact = conn.execute(
            select(func.count()).select_from(query.table).where(*conditions)
        ).scalar_one()
        return Matched(int(exact), True)
    log.debug(
        "numberMatched estimated", extra={"layer": query.spec.id, "estimate": estimate}
    )
    return Matched(max(estimate, query.offset + returned), False)


def estimate_matches(conn: Connection, query: ItemsQuery) -> int:
    """The planner's estimate of how many features match (an EXPLAIN)."""
    stmt = select(literal(1)).select_from(query.table).where(*where(query))
    return _planner_rows(conn, stmt)


def _planner_rows(conn: Connection, stmt: Select) -> int:
    # render_postcompile expands IN lists into one parameter per value
    compiled = stmt.compile(
        dialect=conn.dialect, compile_kwargs={"render_postcompile": True}
    )
    plan = conn.exec_driver_sql(
        "EXPLAIN (FORMAT JSON) " + str(compiled), compiled.params
    ).scalar_one()
    if isinstance(plan, str):
        plan = orjson.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def estimated_extent(
    conn: Connection, spec: LayerSpec, small_table_rows: int = 50_000
) -> tuple[float, float, float, float] | None:
    """The layer's bbox in lon/lat from planner statistics (no table scan).

    ``ST_EstimatedExtent`` reads the statistics ANALYZE keeps; a table never
    analysed has none, and is measured exactly only when it is small.
    """
    table = spec.table
    row = conn.execute(
        text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
            "FROM (SELECT ST_EstimatedExtent('public', :t, 'geom') AS e) s"
        ),
        {"t": table},
    ).one()
    if row[0] is not None:
        return (row[0], row[1], row[2], row[3])
    # reltuples is stale right after a load (never analysed: -1 or 0); the
    # statistics collector's live-tuple count follows inserts at once.
    rows = conn.execute(
        text(
            "SELECT greatest(c.reltuples, coalesce(s.n_live_tup, 0)) "
            "FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
            "WHERE c.oid = CAST(:t AS regclass)"
        ),
        {"t": table},
    ).scalar_one()
    if rows > small_table_rows:
        return None
    return exact_extent(conn, spec)


def exact_extent(
    conn: Connection, spec: LayerSpec
) -> tuple[float, float, float, float] | None:
    """The bbox of the layer's rows the connection sees (row-level security
    applies, unlike to ``ST_EstimatedExtent``'s statistics of the whole table)."""
    sub = select(func.ST_Extent(table_for(spec.id).c.geom).label("e")).subquery()
    extent = conn.execute(
        select(
            func.ST_XMin(sub.c.e),
            func.ST_YMin(sub.c.e),
            func.ST_XMax(sub.c.e),
            func.ST_YMax(sub.c.e),
        )
    ).one()
    return None if extent[0] is None else (extent[0], extent[1], extent[2], extent[3])


def temporal_extent(conn: Connection, spec: LayerSpec, field: str) -> list[str | None]:
    """First and last value of ``field`` (both read from its index)."""
    column = table_for(spec.id).c[field]
    low, high = conn.execute(select(func.min(column), func.max(column))).one()
    return [_iso(low), _iso(high)]


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "hour"):
        return value.isoformat().replace("+00:00", "Z")
    return f"{value.isoformat()}T00:00:00Z"


def check_sortby(spec: LayerSpec, sortby: str | None) -> tuple[tuple[str, bool], ...]:
    """Parse ``sortby`` (``+name,-name``) against the queryables of ``spec``."""
    if not sortby:
        return ()
    allowed = queryables(spec)
    keys: list[tuple[str, bool]] = []
    for raw in sortby.split(","):
        item = raw.strip()
        descending = item.startswith("-")
        name = item.lstrip("+- ")
        if name not in allowed or allowed[name].type == "json":
            raise InvalidParameter(
                f"sortby: unknown property {name!r} (sortable: {', '.join(allowed)})"
            )
        keys.append((name, descending))
    return tuple(keys)


def check_properties(spec: LayerSpec, value: str | None) -> tuple[str, ...] | None:
    """Parse ``properties`` (comma separated) against the layer's properties."""
    if value is None:
        return None
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    known = output_properties(spec)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidParameter(
            f"properties: unknown {', '.join(map(repr, unknown))} "
            f"(available: {', '.join(known)})"
        )
    return names
