"""OGC API - Features routes: collections, items, one item, queryables."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import shutil
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from sqlalchemy import Connection
from starlette.background import BackgroundTask

from gis_server.api.auth import PrincipalDep, get_principal
from gis_server.api.deps import (
    BaseUrlDep,
    BBoxDep,
    CrsDep,
    DatetimeDep,
    EngineDep,
    FeaturesSettingsDep,
    FormatDep,
    LayerDep,
    PagingDep,
    cache_control,
)
from gis_server.api.html import render_html
from gis_server.auth import policy
from gis_server.cache import CachedTile, scoped_tag
from gis_server.errors import InvalidFilter, InvalidParameter, Unauthorized
from gis_server.features import models
from gis_server.features.cql import FILTER_LANGS, parse_filter
from gis_server.features.crs import CRS, DEFAULT_CRS, SUPPORTED_CRS, parse_crs
from gis_server.features.export import csv_chunks, write_gpkg
from gis_server.features.props import (
    coerce_value,
    feature_schema,
    queryables,
    queryables_schema,
    temporal_fields,
)
from gis_server.features.query import (
    ItemsQuery,
    bbox_candidates,
    check_properties,
    check_sortby,
    count_matched,
    estimated_extent,
    exact_extent,
    fetch_feature,
    fetch_page,
    fetch_rows,
    temporal_extent,
)
from layers import LayerSpec

log = logging.getLogger("gis_server.api.features")

router = APIRouter(tags=["Features"])

GEOJSON = "application/geo+json"
JSON = "application/json"
HTML = "text/html"

#: Query parameters of ``/items`` besides the property equality filters.
ITEMS_PARAMETERS = frozenset(
    {
        "f",
        "bbox",
        "bbox-crs",
        "datetime",
        "datetime-field",
        "limit",
        "offset",
        "properties",
        "sortby",
        "filter",
        "filter-lang",
        "filter-crs",
        "crs",
    }
)


def _json(content: Any, media_type: str = JSON, **headers: str) -> Response:
    return Response(orjson.dumps(content), media_type=media_type, headers=headers)


def _link(href: str, rel: str, type_: str | None = None, title: str | None = None):
    link = {"href": href, "rel": rel}
    if type_:
        link["type"] = type_
    if title:
        link["title"] = title
    return link


def _url(base: str, request: Request, **changes: Any) -> str:
    """The request URL under ``base`` with some query parameters replaced.

    Repeated parameters (``?floors=2&floors=3``) are kept as they came.
    """
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in changes]
    params += [(k, str(v)) for k, v in changes.items() if v is not None]
    query = urlencode(params)
    return f"{base}{request.url.path}" + (f"?{query}" if query else "")


# -- collections -------------------------------------------------------------------


#: Cache-Control of items and features: revalidated on every use (the ETag
#: makes that a 304), and ``private`` unless the answer is anyone's
ITEMS_CACHE_CONTROL = "public, max-age=0, must-revalidate"
PRIVATE_CACHE_CONTROL = ITEMS_CACHE_CONTROL.replace("public", "private")


def _read_scope(request: Request, spec: LayerSpec) -> policy.Scope:
    return policy.read_scope(
        get_principal(request), spec, request.app.state.auth_settings
    )


def _cache_control(request: Request, spec: LayerSpec) -> str:
    return cache_control(
        ITEMS_CACHE_CONTROL,
        spec,
        _read_scope(request, spec),
        request.app.state.auth_settings,
    )


def _extent(
    conn: Connection, request: Request | None, spec: LayerSpec
) -> tuple[float, float, float, float] | None:
    """The layer's bbox as this caller sees it.

    Callers reaching every feature get the planner's estimate; a row scope
    (a district's buildings) gets the exact extent of its rows, measured on
    this connection, which row-level security restricts -- an estimate comes
    from statistics of the whole table -- and kept in the tile cache under the
    scope's version tag, like the scope's tiles.
    """
    scope = _read_scope(request, spec) if request is not None else policy.ALL
    if scope.kind != "rows":
        return estimated_extent(conn, spec)
    service = getattr(request.app.state, "tile_service", None)
    if service is None or not service.cache.enabled:
        return exact_extent(conn, spec)
    key = (spec.id, scoped_tag(service.versions.tag(spec.id), scope.key), "extent")
    entry = service.cache.get(key)
    if entry is None:
        entry = CachedTile(orjson.dumps(exact_extent(conn, spec)), False, 0, False)
        service.cache.put(key, entry)
    bbox = orjson.loads(entry.content)
    return None if bbox is None else tuple(bbox)


def _collection(
    conn: Connection | None,
    spec: LayerSpec,
    base: str,
    request: Request | None = None,
) -> dict[str, Any]:
    href = f"{base}/collections/{spec.id}"
    fields = temporal_fields(spec)
    doc: dict[str, Any] = {
        "id": spec.id,
        "title": f"{spec.title} ({spec.title_zh})",
        "description": (
            f"{spec.description} Feature properties: the declared ones, "
            "`updated_at`, and `extra` (source attributes not declared, nested). "
            f"`datetime` filters `{fields[0]}` unless `datetime-field` says "
            "otherwise."
        ),
        "keywords": list(spec.keywords),
        "itemType": "feature",
        "crs": [c.uri for c in SUPPORTED_CRS],
        "storageCrs": DEFAULT_CRS.uri,
        "datetimeField": fields[0],
        "datetimeFields": list(fields),
        "geometryTypes": list(spec.geometry_types),
        "links": [
            _link(href, "self", JSON, "This collection"),
            _link(f"{href}?f=html", "alternate", HTML, "This collection as HTML"),
            _link(f"{href}/items", "items", GEOJSON, "Features"),
            _link(f"{href}/items?f=html", "items", HTML, "Features as HTML"),
            _link(f"{href}/items?f=csv", "items", "text/csv", "Features as CSV"),
            _link(
                f"{href}/items?f=gpkg",
                "enclosure",
                "application/geopackage+sqlite3",
                "Whole layer as GeoPackage",
            ),
            _link(
                f"{href}/queryables",
                "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                "application/schema+json",
                "Queryables",
            ),
            _link(
                f"{href}/schema",
                "describedby",
                "application/schema+json",
                "Schema of the features",
            ),
            _link(
                f"{href}/tiles",
                "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector",
                JSON,
                "Vector tilesets (OGC API - Tiles)",
            ),
        ],
    }
    if conn is not None:
        extent: dict[str, Any] = {}
        bbox = _extent(conn, request, spec)
        if bbox is not None:
            extent["spatial"] = {"bbox": [list(bbox)], "crs": DEFAULT_CRS.uri}
        interval = temporal_extent(conn, spec, fields[0])
        if interval != [None, None]:
            extent["temporal"] = {
                "interval": [interval],
                "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
            }
        if extent:
            doc["extent"] = extent
    return doc


@router.get(
    "/collections",
    name="collections",
    summary="The layers served",
    response_model=models.Collections,
    responses={200: {"content": {HTML: {}}}},
)
def collections(
    request: Request,
    engine: EngineDep,
    base: BaseUrlDep,
    fmt: FormatDep,
    principal: PrincipalDep,
) -> Response:
    """The layers the caller may read, computed ones included."""
    _json_or_html(fmt)
    readable = policy.readable_layers(principal, request.app.state.auth_settings)
    if not readable and principal.anonymous:
        raise Unauthorized("sign in to list the collections")
    with engine.connect() as conn:
        docs = [_collection(conn, spec, base, request) for spec in readable]
    body = {
        "links": [
            _link(f"{base}/collections", "self", JSON, "Collections"),
            _link(
                f"{base}/collections?f=html", "alternate", HTML, "Collections as HTML"
            ),
        ],
        "collections": docs,
    }
    if fmt == "html":
        return render_html(request, "collections.html", body, title="Collections")
    # the list (and its extents) is the caller's: no shared cache keeps it
    # unless every listed collection is anyone's
    shared = all(
        _cache_control(request, spec) == ITEMS_CACHE_CONTROL for spec in readable
    )
    return _json(
        body,
        **{"Cache-Control": ITEMS_CACHE_CONTROL if shared else PRIVATE_CACHE_CONTROL},
    )


@router.get(
    "/collections/{collection_id}",
    summary="One layer",
    response_model=models.Collection,
    responses={200: {"content": {HTML: {}}}, 404: {"description": "No such layer"}},
)
def collection(
    request: Request,
    spec: LayerDep,
    engine: EngineDep,
    base: BaseUrlDep,
    fmt: FormatDep,
) -> Response:
    """Description, extent and links of one layer."""
    _json_or_html(fmt)
    with engine.connect() as conn:
        doc = _collection(conn, spec, base, request)
    if fmt == "html":
        return render_html(request, "collection.html", doc, title=doc["title"])
    return _json(doc, **{"Cache-Control": _cache_control(request, spec)})


@router.get(
    "/collections/{collection_id}/queryables",
    summary="Properties usable in filters",
    response_model=models.Queryables,
    responses={200: {"content": {"application/schema+json": {}, HTML: {}}}},
)
def collection_queryables(
    request: Request, spec: LayerDep, base: BaseUrlDep, fmt: FormatDep
) -> Response:
    """JSON Schema of the queryable properties (filters, equality, sortby)."""
    _json_or_html(fmt)
    schema = queryables_schema(spec, f"{base}/collections/{spec.id}/queryables")
    if fmt == "html":
        return render_html(request, "queryables.html", schema, title=spec.title)
    return _json(schema, "application/schema+json")


@router.get(
    "/collections/{collection_id}/schema",
    summary="Schema of the features",
    response_model=models.Queryables,
    responses={200: {"content": {"application/schema+json": {}}}},
)
def collection_schema(spec: LayerDep, base: BaseUrlDep) -> Response:
    """JSON Schema of the properties every feature of the layer has."""
    schema = feature_schema(spec, f"{base}/collections/{spec.id}/schema")
    return _json(schema, "application/schema+json")


def _json_or_html(fmt: str) -> None:
    if fmt not in ("json", "html"):
        raise InvalidParameter(f"f={fmt} is only available for items")


# -- items --------------------------------------------------------------------------


def _equality_conditions(request: Request, spec: LayerSpec) -> list:
    """``?name=value`` filters on queryables; unknown parameters are a 400."""
    allowed = queryables(spec)
    conditions = []
    grouped: dict[str, list[str]] = {}
    credential = request.app.state.auth_settings.api_key_query  # not a filter
    for key, value in request.query_params.multi_items():
        if key in ITEMS_PARAMETERS or key == credential:
            continue
        if key not in allowed or allowed[key].type == "json":
            raise InvalidParameter(
                f"unknown query parameter {key!r}; properties of {spec.id!r} usable "
                f"as filters: {', '.join(allowed)}"
            )
        grouped.setdefault(key, []).append(value)
    for key, values in grouped.items():
        q = allowed[key]
        coerced = [coerce_value(key, q.type, v) for v in values]
        conditions.append(
            q.column == coerced[0] if len(coerced) == 1 else q.column.in_(coerced)
        )
    return conditions


def build_items_query(
    request: Request,
    spec: LayerSpec,
    settings: Any,
    *,
    bbox: tuple[float, float, float, float] | None,
    limit: int,
    offset: int,
    crs: CRS,
    time: Any,
    datetime_field: str | None,
    properties: str | None,
    sortby: str | None,
    filter_: str | None,
    filter_lang: str | None,
    filter_crs: str | None,
) -> ItemsQuery:
    """Validate every items parameter once, into one :class:`ItemsQuery`."""
    fields = temporal_fields(spec)
    if datetime_field is not None and datetime_field not in fields:
        raise InvalidParameter(
            f"datetime-field {datetime_field!r} is not one of {', '.join(fields)}"
        )
    conditions = _equality_conditions(request, spec)
    if filter_lang is not None and filter_ is None:
        raise InvalidFilter("filter-lang given without filter")
    if filter_ is not None:
        conditions.append(
            parse_filter(
                filter_,
                filter_lang,
                spec,
                queryables(spec),
                parse_crs(filter_crs, "filter-crs"),
            )
        )
    return ItemsQuery(
        spec=spec,
        bbox=bbox,
        time=time,
        time_field=datetime_field or fields[0],
        conditions=tuple(conditions),
        properties=check_properties(spec, properties),
        sortby=check_sortby(spec, sortby),
        limit=limit,
        offset=offset,
        crs=crs,
        degree_digits=settings.coordinate_precision,
    )


def _version_etag(request: Request, spec: LayerSpec, fmt: str) -> str | None:
    """A weak ETag of this URL at the layer's current data version, if known."""
    service = getattr(request.app.state, "tile_service", None)
    if service is None:
        return None
    tag = service.versions.tag(spec.id)
    # the caller's scope is part of what this URL answers
    scope = policy.read_scope(
        get_principal(request), spec, request.app.state.auth_settings
    )
    digest = hashlib.sha1(f"{fmt} {request.url} {scope.key}".encode()).hexdigest()[:12]
    return f'W/"{spec.id}-{tag}-{digest}"'


def _not_modified(request: Request, etag: str | None) -> bool:
    header = request.headers.get("if-none-match")
    if not etag or not header:
        return False
    return any(t.strip() in (etag, "*") for t in header.split(","))


_FILTER_DOC = (
    "CQL2 filter on the queryables (see `/queryables`), e.g. "
    "`safety_grade = 'D' AND floors >= 6` or "
    "`S_INTERSECTS(geom, POLYGON((113.26 23.12, 113.28 23.12, 113.28 23.14, "
    "113.26 23.12)))`. Comparison, LIKE, BETWEEN, IN, IS NULL, CASEI, arithmetic, "
    "the S_* spatial functions, BBOX and T_AFTER / T_BEFORE / T_DURING."
)


@router.get(
    "/collections/{collection_id}/items",
    summary="Features of a layer",
    response_model=None,
    responses={
        200: {
            "model": models.FeatureCollection,
            "content": {
                GEOJSON: {},
                HTML: {},
                "text/csv": {},
                "application/geopackage+sqlite3": {},
            },
            "description": "A page of features (or a CSV / GeoPackage export).",
        },
        304: {"description": "Not modified (If-None-Match matched the ETag)."},
        400: {"description": "A parameter is invalid (OGC exception JSON)."},
        404: {"description": "No such layer."},
    },
)
def items(
    request: Request,
    spec: LayerDep,
    engine: EngineDep,
    settings: FeaturesSettingsDep,
    base: BaseUrlDep,
    bbox: BBoxDep,
    paging: PagingDep,
    crs: CrsDep,
    time: DatetimeDep,
    fmt: FormatDep,
    datetime_field: Annotated[
        str | None,
        Query(
            alias="datetime-field",
            description=(
                "Property `datetime` applies to: one of the layer's date properties "
                "or `updated_at` (see `datetimeFields` of the collection). Default: "
                "the layer's first date property, else `updated_at`."
            ),
        ),
    ] = None,
    properties: Annotated[
        str | None,
        Query(description="Comma-separated properties to return (default: all)."),
    ] = None,
    sortby: Annotated[
        str | None,
        Query(
            description=(
                "Comma-separated queryables to sort by, `-` for descending "
                "(`-height_m,address`); ties are broken by `id`."
            )
        ),
    ] = None,
    filter_: Annotated[
        str | None, Query(alias="filter", description=_FILTER_DOC)
    ] = None,
    filter_lang: Annotated[
        str | None,
        Query(alias="filter-lang", description=f"One of {', '.join(FILTER_LANGS)}."),
    ] = None,
    filter_crs: Annotated[
        str | None,
        Query(alias="filter-crs", description="CRS of geometries in `filter`."),
    ] = None,
) -> Response:
    """Features of a layer, filtered, sorted and paged. Any queryable name is
    also an equality filter: `?safety_grade=D&district=越秀区`."""
    export = fmt in ("csv", "gpkg")
    limit = paging.limit or (
        settings.export_max_features if export else settings.default_limit
    )
    query = build_items_query(
        request,
        spec,
        settings,
        bbox=bbox,
        limit=limit,
        offset=paging.offset,
        crs=crs,
        time=time,
        datetime_field=datetime_field,
        properties=properties,
        sortby=sortby,
        filter_=filter_,
        filter_lang=filter_lang,
        filter_crs=filter_crs,
    )
    cache = _cache_control(request, spec)
    if export:
        return _export(
            engine, query, fmt, settings, explicit_limit=bool(paging.limit), cache=cache
        )

    etag = _version_etag(request, spec, fmt)
    if _not_modified(request, etag):
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": cache})
    with engine.connect() as conn:
        estimate, candidates = bbox_candidates(conn, query)
        if fmt == "html":
            features = fetch_rows(conn, query, candidates)
            returned, body = len(features), b""
        else:
            returned, body = fetch_page(conn, query, candidates)
        matched = count_matched(
            conn, query, returned, settings.exact_count_threshold, estimate
        )

    links = [
        _link(_url(base, request), "self", GEOJSON, "This page"),
        _link(_url(base, request, f="html"), "alternate", HTML, "This page as HTML"),
        _link(f"{base}/collections/{spec.id}", "collection", JSON, "The collection"),
    ]
    if returned == query.limit and query.offset + returned < matched.count + (
        0 if matched.exact else 1
    ):
        links.append(
            _link(
                _url(
                    base, request, offset=query.offset + query.limit, limit=query.limit
                ),
                "next",
                GEOJSON,
                "Next page",
            )
        )
    if query.offset > 0:
        links.append(
            _link(
                _url(
                    base,
                    request,
                    offset=max(0, query.offset - query.limit),
                    limit=query.limit,
                ),
                "prev",
                GEOJSON,
                "Previous page",
            )
        )
    head = {
        "type": "FeatureCollection",
        "timeStamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "numberMatched": matched.count,
        "numberMatchedExact": matched.exact,
        "numberReturned": returned,
        "links": links,
    }
    headers = {"Content-Crs": f"<{crs.uri}>", "Vary": "Accept", "Cache-Control": cache}
    if etag:
        headers["ETag"] = etag
    if fmt == "html":
        head["features"] = features
        return render_html(
            request,
            "items.html",
            head,
            title=spec.title,
            spec=spec,
            headers=headers,
            show_map=crs == DEFAULT_CRS,
        )
    content = orjson.dumps(head)[:-1] + b',"features":[' + body + b"]}"
    return Response(content, media_type=GEOJSON, headers=headers)


def _export(
    engine: Any,
    query: ItemsQuery,
    fmt: str,
    settings: Any,
    *,
    explicit_limit: bool,
    cache: str,
) -> Response:
    if not explicit_limit:
        with engine.connect() as conn:
            matched = count_matched(conn, query, query.limit, 0)
        if matched.count > settings.export_max_features:
            raise InvalidParameter(
                f"the export would hold about {matched.count} features, over the "
                f"maximum of {settings.export_max_features}; narrow it with bbox or "
                "filter, or page through it with limit and offset"
            )
    headers = {"Content-Crs": f"<{query.crs.uri}>", "Cache-Control": cache}
    if fmt == "csv":
        headers["Content-Disposition"] = f'attachment; filename="{query.spec.id}.csv"'
        return StreamingResponse(
            csv_chunks(engine, query),
            media_type="text/csv; charset=utf-8",
            headers=headers,
        )
    path, _ = write_gpkg(engine, query)
    return FileResponse(
        path,
        media_type="application/geopackage+sqlite3",
        filename=f"{query.spec.id}.gpkg",
        headers=headers,
        background=BackgroundTask(shutil.rmtree, path.parent, ignore_errors=True),
    )


@router.get(
    "/collections/{collection_id}/items/{featureId}",
    summary="One feature",
    response_model=None,
    responses={
        200: {"model": models.Feature, "content": {GEOJSON: {}, HTML: {}}},
        404: {"description": "No such layer or feature."},
    },
)
def item(
    request: Request,
    spec: LayerDep,
    engine: EngineDep,
    settings: FeaturesSettingsDep,
    base: BaseUrlDep,
    crs: CrsDep,
    fmt: FormatDep,
    feature_id: Annotated[
        str, Path(alias="featureId", description="The feature's `id`.")
    ],
) -> Response:
    """One feature by its id."""
    _json_or_html(fmt)
    href = f"{base}/collections/{spec.id}/items/{feature_id}"
    links = [
        _link(href, "self", GEOJSON, "This feature"),
        _link(f"{href}?f=html", "alternate", HTML, "This feature as HTML"),
        _link(f"{base}/collections/{spec.id}", "collection", JSON, "The collection"),
    ]
    with engine.connect() as conn:
        text = fetch_feature(conn, spec, feature_id, crs, settings.coordinate_precision)
    headers = {
        "Content-Crs": f"<{crs.uri}>",
        "Cache-Control": _cache_control(request, spec),
    }
    if fmt == "html":
        feature = orjson.loads(text)
        feature["links"] = links
        return render_html(
            request,
            "item.html",
            feature,
            title=spec.title,
            spec=spec,
            headers=headers,
            show_map=crs == DEFAULT_CRS,
        )
    content = text[:-1] + b',"links":' + orjson.dumps(links) + b"}"
    return Response(content, media_type=GEOJSON, headers=headers)
