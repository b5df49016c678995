"""Vector and GeoJSON tiles of the declared layers, in WebMercatorQuad.

Every layer is served from its declaration (no per-layer code): the tile
holds the layer's declared properties plus ``id``. The SQL filters on the
stored Web Mercator copy ``geom_3857`` with the buffered tile envelope, so the
GiST index is used and no row is transformed; lines and polygons are simplified
to about one screen pixel at the tile's zoom; point layers are clustered on a
global grid at low zoom; a tile holds at most ``feature_cap`` features and
says so when the cap bites.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import morecantile

from gis_server.errors import InvalidParameter, TileNotFound
from gis_server.settings import TileSettings
from layers import LayerSpec

log = logging.getLogger("gis_server.tiles")

TileFormat = Literal["mvt", "geojson"]

TMS_ID = "WebMercatorQuad"
TMS = morecantile.tms.get(TMS_ID)
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
CRS_3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"

#: Half the width of the Web Mercator square (metres).
MERCATOR_HALF = 20037508.342789244

MEDIA_TYPES: dict[str, str] = {
    "mvt": "application/vnd.mapbox-vector-tile",
    "geojson": "application/geo+json",
}

#: Property types ST_AsMVT writes natively; the others are sent as text.
_MVT_NATIVE = {"text", "int", "float", "bool"}


@dataclass(frozen=True)
class Tile:
    """One tile of WebMercatorQuad: zoom ``z``, column ``x``, row ``y``."""

    z: int
    x: int
    y: int


@dataclass(frozen=True)
class TileBody:
    """A rendered tile: its bytes, how many features it holds, and whether the
    feature cap left some out."""

    content: bytes
    features: int
    truncated: bool


def check_tile(spec: LayerSpec, tile: Tile, settings: TileSettings) -> None:
    """Refuse a tile outside the tile matrix set or the layer's zoom range.

    Raises
    ------
    TileNotFound
        The zoom is outside ``0..24`` or the layer's declared range, or the
        row / column is outside the tile matrix.

    Examples
    --------
    >>> from layers import get_layer
    >>> check_tile(get_layer("buildings"), Tile(14, 13345, 7115), TileSettings())
    >>> check_tile(get_layer("buildings"), Tile(8, 208, 111), TileSettings())
    Traceback (most recent call last):
    ...
    gis_server.errors.TileNotFound: layer 'buildings' has tiles at zooms 12..22, not 8
    >>> every_zoom = TileSettings(respect_layer_zoom=False)
    >>> check_tile(get_layer("plants"), Tile(3, 8, 0), every_zoom)
    Traceback (most recent call last):
    ...
    gis_server.errors.TileNotFound: tile column 8 is outside 0..7 at zoom 3
    """
    if not TMS.minzoom <= tile.z <= TMS.maxzoom:
        raise TileNotFound(
            f"zoom {tile.z} is outside {TMS_ID} ({TMS.minzoom}..{TMS.maxzoom})"
        )
    if settings.respect_layer_zoom and not spec.min_zoom <= tile.z <= spec.max_zoom:
        raise TileNotFound(
            f"layer {spec.id!r} has tiles at zooms {spec.min_zoom}..{spec.max_zoom}, "
            f"not {tile.z}"
        )
    size = 1 << tile.z
    if not 0 <= tile.x < size:
        raise TileNotFound(
            f"tile column {tile.x} is outside 0..{size - 1} at zoom {tile.z}"
        )
    if not 0 <= tile.y < size:
        raise TileNotFound(
            f"tile row {tile.y} is outside 0..{size - 1} at zoom {tile.z}"
        )


def parse_tile(z: str, x: str, y: str) -> Tile:
    """A tile from its path segments; non-integers are an invalid parameter."""
    try:
        return Tile(int(z), int(x), int(y))
    except ValueError:
        raise InvalidParameter(
            f"tile indices must be integers, got z={z!r} x={x!r} y={y!r}"
        ) from None


def tile_width_m(z: int) -> float:
    """Width of a WebMercatorQuad tile at zoom ``z``, in metres.

    >>> round(tile_width_m(14), 1)
    2446.0
    """
    return 2 * MERCATOR_HALF / (1 << z)


def is_point_layer(spec: LayerSpec) -> bool:
    """Whether every geometry type of the layer is a point type."""
    return all(g in ("Point", "MultiPoint") for g in spec.geometry_types)


def clusters_at(spec: LayerSpec, z: int, settings: TileSettings) -> bool:
    """Whether tiles of ``spec`` at zoom ``z`` hold point clusters."""
    return is_point_layer(spec) and z <= settings.cluster_max_zoom


def simplify_tolerance_m(z: int, settings: TileSettings) -> float:
    """Simplification tolerance at zoom ``z``: ``simplify_px`` screen pixels.

    >>> round(simplify_tolerance_m(14, TileSettings(simplify_px=1, tile_px=512)), 2)
    4.78
    """
    return settings.simplify_px * tile_width_m(z) / settings.tile_px


def _q(name: str) -> str:
    """A quoted SQL identifier (names come from the declarations only)."""
    return '"' + name.replace('"', '""') + '"'


def _mvt_columns(spec: LayerSpec, alias: str) -> str:
    cols = [f"{alias}.id"]
    for p in spec.properties:
        col = f"{alias}.{_q(p.name)}"
        cols.append(col if p.type in _MVT_NATIVE else f"{col}::text AS {_q(p.name)}")
    return ", ".join(cols)


def _envelope(tile: Tile, margin: float = 0.0) -> str:
    if margin:
        return f"ST_TileEnvelope({tile.z}, {tile.x}, {tile.y}, margin => {margin!r})"
    return f"ST_TileEnvelope({tile.z}, {tile.x}, {tile.y})"


def _geometry_3857(spec: LayerSpec, tile: Tile, settings: TileSettings) -> str:
    tol = simplify_tolerance_m(tile.z, settings)
    if tol > 0 and not is_point_layer(spec):
        return f"ST_Simplify(t.geom_3857, {tol!r}, true)"
    return "t.geom_3857"


def _cluster_rows(
    spec: LayerSpec, tile: Tile, settings: TileSettings, limit: int
) -> str:
    """One row per occupied grid cell: ``point_count``, ``first_id``, ``g``.

    Cells are aligned to the Web Mercator origin and divide the tile evenly,
    so a cluster lies in exactly one tile and adjacent tiles agree.
    """
    cell = tile_width_m(tile.z) * settings.cluster_px / settings.tile_px
    point = (
        "t.geom_3857"
        if spec.geometry_types == ("Point",)
        else ("ST_Centroid(t.geom_3857)")
    )
    return (
        f"SELECT count(*) AS point_count, min(t.id) AS first_id, "
        f"ST_Centroid(ST_Collect({point})) AS g "
        f"FROM {_q(spec.table)} t WHERE t.geom_3857 && {_envelope(tile)} "
        f"GROUP BY floor((ST_X({point}) + {MERCATOR_HALF!r}) / {cell!r}), "
        f"floor((ST_Y({point}) + {MERCATOR_HALF!r}) / {cell!r}) "
        f"LIMIT {int(limit)}"
    )


def mvt_sql(spec: LayerSpec, tile: Tile, settings: TileSettings) -> str:
    """The SQL of one Mapbox Vector Tile: ``(mvt bytea, features, rows read)``.

    The statement holds only integers and floats computed here and identifiers
    from the layer declaration, so it is built as text (no user input).
    """
    extent, buffer = settings.extent, settings.buffer
    env = _envelope(tile)
    layer = spec.id.replace("'", "''")
    if clusters_at(spec, tile.z, settings):
        props = ", ".join(
            f"p.{_q(p.name)}"
            if p.type in _MVT_NATIVE
            else f"p.{_q(p.name)}::text AS {_q(p.name)}"
            for p in spec.properties
        )
        rows = (
            f"SELECT CASE WHEN c.point_count = 1 THEN c.first_id END AS id, "
            f"{props + ', ' if props else ''}c.point_count, "
            f"ST_AsMVTGeom(c.g, {env}, {extent}, {buffer}, true) AS geom "
            f"FROM ({_cluster_rows(spec, tile, settings, settings.feature_cap)}) c "
            f"LEFT JOIN {_q(spec.table)} p ON c.point_count = 1 AND p.id = c.first_id"
        )
    else:
        margin = buffer / extent
        rows = (
            f"SELECT {_mvt_columns(spec, 't')}, "
            f"ST_AsMVTGeom({_geometry_3857(spec, tile, settings)}, {env}, "
            f"{extent}, {buffer}, true) AS geom "
            f"FROM {_q(spec.table)} t WHERE t.geom_3857 && {_envelope(tile, margin)} "
            f"LIMIT {int(settings.feature_cap)}"
        )
    return (
        f"SELECT ST_AsMVT(q, '{layer}', {extent}, 'geom', 'id') "
        f"FILTER (WHERE q.geom IS NOT NULL), "
        f"count(*) FILTER (WHERE q.geom IS NOT NULL), count(*) FROM ({rows}) q"
    )


def geojson_sql(spec: LayerSpec, tile: Tile, settings: TileSettings) -> str:
    """The SQL of one GeoJSON tile: ``(FeatureCollection text, features, rows)``.

    Geometries are clipped to the buffered tile (in EPSG:4326, where a Web
    Mercator tile is a longitude/latitude box) and simplified per zoom.
    """
    margin = settings.buffer / settings.extent
    box = f"ST_Transform({_envelope(tile, margin)}, 4326)"
    props = ", ".join(f"'{p.name}', p.{_q(p.name)}" for p in spec.properties)
    if clusters_at(spec, tile.z, settings):
        rows = (
            f"SELECT CASE WHEN c.point_count = 1 THEN c.first_id END AS id, "
            f"ST_Transform(c.g, 4326) AS g, "
            f"CASE WHEN c.point_count = 1 THEN "
            f"json_build_object({props + ', ' if props else ''}'point_count', 1) "
            f"ELSE json_build_object('point_count', c.point_count) END AS props "
            f"FROM ({_cluster_rows(spec, tile, settings, settings.feature_cap)}) c "
            f"LEFT JOIN {_q(spec.table)} p ON c.point_count = 1 AND p.id = c.first_id"
        )
    else:
        tol_deg = simplify_tolerance_m(tile.z, settings) * 360 / (2 * MERCATOR_HALF)
        geom = "p.geom"
        if tol_deg > 0 and not is_point_layer(spec):
            geom = f"ST_Simplify(p.geom, {tol_deg!r}, true)"
        if not is_point_layer(spec):
            geom = f"ST_ClipByBox2D({geom}, {box})"
        rows = (
            f"SELECT p.id, {geom} AS g, json_build_object({props}) AS props "
            f"FROM {_q(spec.table)} p WHERE p.geom_3857 && {_envelope(tile, margin)} "
            f"LIMIT {int(settings.feature_cap)}"
        )
    # a cluster has no id: the member is left out rather than written as null
    feature = (
        "CASE WHEN r.id IS NULL THEN json_build_object('type', 'Feature', "
        "'geometry', ST_AsGeoJSON(r.g, 7)::json, 'properties', r.props) "
        "ELSE json_build_object('type', 'Feature', 'id', r.id, "
        "'geometry', ST_AsGeoJSON(r.g, 7)::json, 'properties', r.props) END"
    )
    return (
        f"SELECT json_build_object('type', 'FeatureCollection', 'features', "
        f"coalesce(json_agg({feature}) FILTER (WHERE NOT ST_IsEmpty(r.g)), "
        f"'[]'::json))::text, count(*) FILTER (WHERE NOT ST_IsEmpty(r.g)), count(*) "
        f"FROM ({rows}) r"
    )


def cap_check_sql(spec: LayerSpec, tile: Tile, settings: TileSettings) -> str:
    """Whether the layer has more than ``feature_cap`` features in the tile."""
    cap = int(settings.feature_cap)
    if clusters_at(spec, tile.z, settings):
        inner = _cluster_rows(spec, tile, settings, cap + 1)
    else:
        margin = settings.buffer / settings.extent
        inner = (
            f"SELECT 1 FROM {_q(spec.table)} t "
            f"WHERE t.geom_3857 && {_envelope(tile, margin)} LIMIT {cap + 1}"
        )
    return f"SELECT count(*) > {cap} FROM ({inner}) s"


def render_tile(
    cursor: Any, spec: LayerSpec, tile: Tile, fmt: str, settings: TileSettings
) -> TileBody:
    """Run the tile SQL on a DB-API cursor and return the tile.

    When the tile holds exactly ``feature_cap`` features a second, cheap query
    (no geometry processing) tells whether the cap left features out.
    """
    sql = (
        mvt_sql(spec, tile, settings)
        if fmt == "mvt"
        else geojson_sql(spec, tile, settings)
    )
    cursor.execute(sql)
    content, count, rows = cursor.fetchone()
    if content is None:
        content = (
            b"" if fmt == "mvt" else ('{"type":"FeatureCollection","features":[]}')
        )
    body = bytes(content) if fmt == "mvt" else content.encode()
    truncated = False
    if rows >= settings.feature_cap:
        cursor.execute(cap_check_sql(spec, tile, settings))
        truncated = bool(cursor.fetchone()[0])
        if truncated:
            log.info(
                "tile feature cap reached",
                extra={
                    "layer": spec.id,
                    "z": tile.z,
                    "x": tile.x,
                    "y": tile.y,
                    "cap": settings.feature_cap,
                },
            )
    return TileBody(body, int(count), truncated)


# --------------------------------------------------------------------------
# documents: tile matrix sets, tilesets, TileJSON


def tile_matrix_set_document() -> dict[str, Any]:
    """The WebMercatorQuad tile matrix set (OGC 17-083r4 JSON)."""
    return TMS.model_dump(mode="json", exclude_none=True, by_alias=True)


def zoom_range(spec: LayerSpec, settings: TileSettings) -> tuple[int, int]:
    """The zooms a layer has tiles at."""
    if not settings.respect_layer_zoom:
        return TMS.minzoom, TMS.maxzoom
    return max(spec.min_zoom, TMS.minzoom), min(spec.max_zoom, TMS.maxzoom)


def _json_type(prop_type: str) -> str:
    return {"int": "Number", "float": "Number", "bool": "Boolean"}.get(
        prop_type, "String"
    )


def tilejson(
    spec: LayerSpec,
    settings: TileSettings,
    tiles_url: str,
    bounds: tuple[float, float, float, float] | None,
) -> dict[str, Any]:
    """A TileJSON 3.0.0 document of one layer."""
    minzoom, maxzoom = zoom_range(spec, settings)
    west, south, east, north = bounds or (
        -180.0,
        -85.0511287798066,
        180.0,
        85.0511287798066,
    )
    fields = {p.name: f"{_json_type(p.type)}: {p.title}" for p in spec.properties}
    if is_point_layer(spec) and settings.cluster_max_zoom >= minzoom:
        fields["point_count"] = (
            f"Number: points in a cluster (zoom {settings.cluster_max_zoom} and below)"
        )
    return {
        "tilejson": "3.0.0",
        "name": spec.title,
        "description": spec.description,
        "version": "1.0.0",
        "scheme": "xyz",
        "tiles": [tiles_url],
        "minzoom": minzoom,
        "maxzoom": maxzoom,
        "bounds": [west, south, east, north],
        "center": [
            (west + east) / 2,
            (south + north) / 2,
            max(minzoom, min(maxzoom, 12)),
        ],
        "vector_layers": [
            {
                "id": spec.id,
                "description": spec.title_zh,
                "fields": fields,
                "minzoom": minzoom,
                "maxzoom": maxzoom,
            }
        ],
    }


def layer_bounds_sql(spec: LayerSpec, exact: bool = False) -> str:
    """Layer extent in EPSG:4326: the planner's estimate, exact when small
    (or when ``exact``: what row-level security lets the caller see)."""
    table = spec.table.replace("'", "''")
    if exact:
        return f"SELECT ST_Extent(geom)::box2d::text FROM {_q(spec.table)}"
    return (
        "SELECT coalesce("
        f"(SELECT ST_EstimatedExtent('public', '{table}', 'geom')::geometry), "
        f"(SELECT ST_Extent(geom)::geometry FROM {_q(spec.table)} "
        f"WHERE (SELECT reltuples FROM pg_class WHERE relname = '{table}') < 100000))"
        "::box2d::text"
    )


def parse_box2d(text: str | None) -> tuple[float, float, float, float] | None:
    """``BOX(x1 y1,x2 y2)`` as ``(west, south, east, north)``.

    >>> parse_box2d("BOX(113.1 23.0,113.5 23.3)")
    (113.1, 23.0, 113.5, 23.3)
    """
    if not text:
        return None
    inner = text[text.index("(") + 1 : text.rindex(")")]
    (x1, y1), (x2, y2) = (tuple(map(float, c.split())) for c in inner.split(","))
    return (
        max(x1, -180.0),
        max(y1, -85.0511287798066),
        min(x2, 180.0),
        min(y2, 85.0511287798066),
    )
