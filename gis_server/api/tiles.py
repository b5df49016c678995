"""OGC API - Tiles routes (WebMercatorQuad), XYZ aliases and TileJSON.

Tiles are answered from the in-process cache when the layer's data version
is unchanged, and rendered by :mod:`gis_server.tiles` otherwise. ``ETag`` is
derived from the layer's data version, so ``If-None-Match`` is answered with
a 304 without touching the database.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import re
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg2
from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine, create_engine
from sqlalchemy import exc as sa_exc
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

try:  # ISA-L's gzip: same format, much faster (pyproject dependency)
    from isal import igzip
except ImportError:  # pragma: no cover - falls back to zlib
    igzip = None

from gis_server import tiles
from gis_server.api.auth import get_principal
from gis_server.api.deps import cache_control
from gis_server.auth import dbsecurity, policy
from gis_server.auth.principal import ANONYMOUS, CURRENT
from gis_server.cache import CachedTile, LayerVersions, TileCache, scoped_tag
from gis_server.errors import DatabaseUnavailable, InvalidParameter, NotFound
from gis_server.settings import DatabaseSettings, TileSettings, database_settings
from layers import LayerSpec, UnknownLayer, get_layer

log = logging.getLogger("gis_server.api.tiles")

#: OGC API - Tiles conformance classes these routes implement (for /conformance).
CONFORMANCE_CLASSES = (
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
)

_FORMATS = {"mvt": "mvt", "pbf": "mvt", "geojson": "geojson", "json": "geojson"}


def gzip_compress(data: bytes, level: int) -> bytes:
    """A gzip stream of ``data``; ISA-L when installed (~8x faster than zlib
    at level 1 for the same size, which shows on cold tiles), else zlib.

    >>> import gzip
    >>> gzip.decompress(gzip_compress(b"tile" * 100, 1)) == b"tile" * 100
    True
    """
    if igzip is not None:
        return igzip.compress(data, min(level, 3), mtime=0)
    return gzip.compress(data, level, mtime=0)


class TileService:
    """What the tile routes share: settings, engine, versions and the cache."""

    def __init__(self, engine: Engine, settings: TileSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.cache = TileCache(settings.cache_bytes)
        dsn = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self.versions = LayerVersions(dsn, listen=settings.listen)
        self.versions.on_change(self._changed)
        self._inflight: dict[tuple, asyncio.Future] = {}
        #: settings that change tile content take part in every ETag
        shape = settings.model_dump(
            include={
                "extent",
                "buffer",
                "feature_cap",
                "tile_px",
                "simplify_px",
                "cluster_max_zoom",
                "cluster_px",
            }
        )
        self.fingerprint = hashlib.sha1(
            repr(sorted(shape.items())).encode()
        ).hexdigest()[:8]

    def start(self) -> None:
        self.versions.start()

    def stop(self) -> None:
        self.versions.stop()

    def _changed(self, layer_id: str) -> None:
        dropped = self.cache.drop_layer(layer_id)
        log.info("tile cache invalidated", extra={"layer": layer_id, "tiles": dropped})

    async def version_tag(self, layer_id: str) -> str:
        if self.versions.live:
            return self.versions.tag(layer_id)
        return await run_in_threadpool(self.versions.tag, layer_id)

    def render(self, spec: LayerSpec, tile: tiles.Tile, fmt: str) -> CachedTile:
        """Render one tile (blocking: run in a worker thread).

        A pooled connection found dead (the database restarted) is dropped
        and the tile tried once more on a fresh one, so the service recovers
        by itself; a second failure is a 503.
        """
        for attempt in (1, 2):
            try:
                conn = self.engine.raw_connection()
            except sa_exc.DBAPIError as exc:
                raise DatabaseUnavailable(
                    "the database is unavailable; retry shortly"
                ) from exc
            scoped = False
            try:
                with conn.cursor() as cur:
                    # the pool is autocommit: a scoped caller's tile runs in a
                    # transaction of its own, under the caller's database role
                    principal = CURRENT.get()
                    if dbsecurity.scope_statements(principal) is not None:
                        cur.execute("BEGIN")
                        scoped = dbsecurity.apply_scope(conn, principal)
                    body = tiles.render_tile(cur, spec, tile, fmt, self.settings)
                    if scoped:
                        cur.execute("COMMIT")
                        scoped = False
                break
            except psycopg2.extensions.QueryCanceledError as exc:
                raise DatabaseUnavailable(
                    "the tile took longer than the server allows; retry later"
                ) from exc
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                conn.invalidate()
                if attempt == 2:
                    raise DatabaseUnavailable(
                        "the database is unavailable; retry shortly"
                    ) from exc
                log.info(
                    "retrying a tile on a fresh connection",
                    extra={"layer": spec.id, "error": type(exc).__name__},
                )
            finally:
                if scoped:  # failed inside the scoped transaction
                    try:
                        with conn.cursor() as cur:
                            cur.execute("ROLLBACK")
                    except psycopg2.Error:
                        conn.invalidate()
                conn.close()
        level = self.settings.gzip_level
        if level and len(body.content) >= self.settings.gzip_min_bytes:
            return CachedTile(
                gzip_compress(body.content, level),
                True,
                body.features,
                body.truncated,
            )
        return CachedTile(body.content, False, body.features, body.truncated)

    async def tile(
        self, spec: LayerSpec, tile: tiles.Tile, fmt: str, tag: str
    ) -> tuple[CachedTile, bool]:
        """A tile and whether it came from the cache; rendered once however
        many ask for it at the same time."""
        if not self.cache.enabled:
            return await run_in_threadpool(self.render, spec, tile, fmt), False
        key = (spec.id, tag, fmt, tile.z, tile.x, tile.y)
        entry = self.cache.get(key)
        if entry is not None:
            return entry, True
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending), False
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            entry = await run_in_threadpool(self.render, spec, tile, fmt)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(entry)
        self.cache.put(key, entry)
        return entry, False


def tile_engine(db: DatabaseSettings) -> Engine:
    """The tiles' own connection pool: autocommit and no pre-ping.

    A tile is one read-only statement: in autocommit it costs one round trip
    (no BEGIN, COMMIT or reset on return) and no ping before it; a dead
    connection is handled by :meth:`TileService.render` instead.
    """
    options = f"-c statement_timeout={int(db.statement_timeout_ms)}"
    return create_engine(
        db.effective_url(),
        pool_size=db.pool_size,
        max_overflow=db.pool_size,
        pool_pre_ping=False,
        pool_reset_on_return=None,
        isolation_level="AUTOCOMMIT",
        connect_args={
            "connect_timeout": 5,
            "application_name": "gis-server-tiles",
            "options": options,
        },
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the tile service and its pool; stop its listener after."""
    settings = getattr(app.state, "tile_settings", None) or TileSettings()
    db = getattr(app.state, "db_settings", None)
    if db is None:
        app_engine = getattr(app.state, "engine", None)
        db = (
            DatabaseSettings(url=app_engine.url.render_as_string(hide_password=False))
            if app_engine is not None
            else database_settings()
        )
    engine = tile_engine(db)
    service = TileService(engine, settings)
    service.start()
    app.state.tile_service = service
    try:
        yield
    finally:
        service.stop()
        engine.dispose()


router = APIRouter(tags=["Tiles"], lifespan=lifespan)

# -- helpers -----------------------------------------------------------------


def _service(request: Request) -> TileService:
    return request.app.state.tile_service


def _layer(request: Request, collection_id: str) -> LayerSpec:
    """The layer, if the caller may read it (else 401/404, as for items)."""
    try:
        spec = get_layer(collection_id)
    except UnknownLayer:
        raise policy.not_found(collection_id) from None
    policy.require_read(get_principal(request), spec, request.app.state.auth_settings)
    return spec


def _caller_scope(request_scope: Scope, spec: LayerSpec) -> policy.Scope:
    """The read scope of this request's caller on ``spec``."""
    principal = request_scope.get("state", {}).get("principal", ANONYMOUS)
    settings = request_scope["app"].state.auth_settings
    return policy.read_scope(principal, spec, settings)


def _caller_tag(request_scope: Scope, spec: LayerSpec, tag: str) -> str | None:
    """``tag`` for the caller of this request; None when they may not read."""
    scope = _caller_scope(request_scope, spec)
    if scope.kind == "none":
        return None
    return scoped_tag(tag, scope.key)


def _cache_control(
    service: TileService, request_scope: Scope, spec: LayerSpec, tag: str
) -> str:
    """Cache-Control of a tile or TileJSON: ``private`` unless it is anyone's
    (a layer readable without signing in, the caller seeing all of it)."""
    if "~" in tag:  # a row scope's own version
        return service.settings.cache_control.replace("public", "private")
    return cache_control(
        service.settings.cache_control,
        spec,
        policy.ALL,
        request_scope["app"].state.auth_settings,
    )


def _check_tms(tile_matrix_set_id: str) -> None:
    if tile_matrix_set_id != tiles.TMS_ID:
        raise NotFound(
            f"tile matrix set {tile_matrix_set_id!r} is not offered; use {tiles.TMS_ID}"
        )


def _base(request: Request) -> str:
    public = getattr(
        getattr(request.app.state, "server_settings", None), "public_url", None
    )
    return (public or str(request.base_url)).rstrip("/")


def _accepts_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "")


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(t.strip().removeprefix("W/") == bare for t in header.split(","))


def _etag(
    service: TileService, layer_id: str, tag: str, fmt: str, t: tiles.Tile
) -> str:
    return f'W/"{layer_id}-{tag}-{service.fingerprint}-{fmt}-{t.z}-{t.x}-{t.y}"'


def _reply(
    service: TileService,
    etag: str,
    entry: CachedTile | None,
    fmt: str,
    accepts_gzip: bool,
    hit: bool,
    cache_control: str,
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a tile answer (``entry`` None: a 304)."""
    headers = {
        "etag": etag,
        "cache-control": cache_control,
        "vary": "Accept-Encoding",
        "x-tile-cache": "hit" if hit else "miss",
    }
    if entry is None:
        return 304, headers, b""
    content = entry.content
    if entry.gzipped:
        if accepts_gzip:
            headers["content-encoding"] = "gzip"
        else:
            content = zlib.decompress(content, 31)
    headers["content-type"] = tiles.MEDIA_TYPES[fmt]
    headers["x-tile-features"] = str(entry.features)
    if entry.truncated:
        cap = service.settings.feature_cap
        headers["x-tile-truncated"] = (
            f"feature cap {cap} reached; zoom in for all features"
        )
        headers["x-tile-feature-cap"] = str(cap)
    status = 200 if entry.features or fmt == "geojson" else 204
    return status, headers, content


async def _tile_response(
    request: Request, collection_id: str, tile: tiles.Tile, fmt: str
) -> Response:
    service = _service(request)
    spec = _layer(request, collection_id)
    tiles.check_tile(spec, tile, service.settings)
    tag = _caller_tag(request.scope, spec, await service.version_tag(spec.id))
    etag = _etag(service, spec.id, tag, fmt, tile)
    entry, hit = None, False
    if not _etag_matches(request.headers.get("if-none-match"), etag):
        entry, hit = await service.tile(spec, tile, fmt, tag)
    status, headers, body = _reply(
        service,
        etag,
        entry,
        fmt,
        _accepts_gzip(request),
        hit,
        _cache_control(service, request.scope, spec, tag),
    )
    return Response(body, status_code=status, headers=headers)


_OGC_TILE = re.compile(r"/collections/([^/]+)/tiles/WebMercatorQuad/(\d+)/(\d+)/(\d+)")
_XYZ_TILE = re.compile(r"/tiles/([^/]+)/(\d+)/(\d+)/(\d+)\.(pbf|geojson)")
_QUERY_FORMATS = {
    b"": "mvt",
    b"f=mvt": "mvt",
    b"f=pbf": "mvt",
    b"f=geojson": "geojson",
    b"f=json": "geojson",
}


class TileCacheMiddleware:
    """Answer cached tiles (and 304s) before the framework routes the request.

    A cache hit needs no validation, no dependency and no database: the path
    is matched with one regular expression and the answer comes from memory.
    Everything else -- misses, unusual query strings, a listener that is not
    connected -- goes on to the routes. Add it last (outermost).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            answer = self._answer(scope)
            if answer is not None:
                status, headers, body = answer
                raw = [(k.encode(), v.encode()) for k, v in headers.items()]
                raw.append((b"content-length", str(len(body)).encode()))
                await send(
                    {"type": "http.response.start", "status": status, "headers": raw}
                )
                await send(
                    {
                        "type": "http.response.body",
                        "body": body,
                    }
                )
                state = scope.setdefault("state", {})  # for the request log
                state["cache"], state["layer"] = "hit", scope["path"].split("/")[2]
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _answer(scope: Scope) -> tuple[int, dict[str, str], bytes] | None:
        app = scope.get("app")
        service: TileService | None = getattr(
            getattr(app, "state", None), "tile_service", None
        )
        if service is None or not service.versions.live:
            return None
        path = scope["path"]
        if m := _OGC_TILE.fullmatch(path):
            layer_id, z, y, x = m.groups()
            fmt = _QUERY_FORMATS.get(scope["query_string"])
        elif m := _XYZ_TILE.fullmatch(path):
            layer_id, z, x, y, ext = m.groups()
            fmt = (
                ("mvt" if ext == "pbf" else "geojson")
                if not scope["query_string"]
                else None
            )
        else:
            return None
        tag = service.versions.known_tag(layer_id)
        if fmt is None or tag is None:
            return None
        try:
            spec = get_layer(layer_id)
        except UnknownLayer:
            return None
        tag = _caller_tag(scope, spec, tag)
        if tag is None:
            return None  # not readable: the route answers 401/404
        tile = tiles.Tile(int(z), int(x), int(y))
        inm = gzip_ok = None
        for key, value in scope["headers"]:
            if key == b"if-none-match":
                inm = value.decode("latin-1")
            elif key == b"accept-encoding":
                gzip_ok = b"gzip" in value
        etag = _etag(service, layer_id, tag, fmt, tile)
        entry = service.cache.get((layer_id, tag, fmt, tile.z, tile.x, tile.y))
        if entry is None:
            return None  # a 304 for an uncached tile is left to the checked route
        if _etag_matches(inm, etag):
            entry = None
        return _reply(
            service,
            etag,
            entry,
            fmt,
            bool(gzip_ok),
            True,
            _cache_control(service, scope, spec, tag),
        )


def _format(f: str | None, default: str = "mvt") -> str:
    if f is None:
        return default
    try:
        return _FORMATS[f.lower()]
    except KeyError:
        raise InvalidParameter(
            f"f={f!r} is not a tile format; use mvt or geojson"
        ) from None


_TILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The tile (Mapbox Vector Tile or GeoJSON).",
        "content": {tiles.MEDIA_TYPES["mvt"]: {}, tiles.MEDIA_TYPES["geojson"]: {}},
    },
    204: {"description": "An empty vector tile."},
    304: {"description": "Not modified (If-None-Match matched the ETag)."},
    400: {"description": "Malformed tile indices or format."},
    404: {"description": "Unknown collection or tile outside the zoom range/matrix."},
}

CollectionId = Path(description="Collection (layer) id, e.g. `buildings`.")
TileMatrixSetId = Path(description="Tile matrix set; only `WebMercatorQuad`.")

# -- tile matrix sets ----------------------------------------------------------


@router.get("/tileMatrixSets", summary="Tile matrix sets offered")
async def tile_matrix_sets(request: Request) -> JSONResponse:
    """The tile matrix sets this server offers (WebMercatorQuad)."""
    base = _base(request)
    return JSONResponse(
        {
            "tileMatrixSets": [
                {
                    "id": tiles.TMS_ID,
                    "title": tiles.TMS.title or "Google Maps Compatible for the World",
                    "uri": tiles.TMS_URI,
                    "links": [
                        {
                            "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
                            "type": "application/json",
                            "href": f"{base}/tileMatrixSets/{tiles.TMS_ID}",
                        }
                    ],
                }
            ]
        }
    )


@router.get("/tileMatrixSets/{tile_matrix_set_id}", summary="A tile matrix set")
async def tile_matrix_set(tile_matrix_set_id: str = TileMatrixSetId) -> JSONResponse:
    """The definition of one tile matrix set (OGC 17-083r4)."""
    _check_tms(tile_matrix_set_id)
    return JSONResponse(tiles.tile_matrix_set_document())


# -- tilesets of a collection -----------------------------------------------------


def _tileset_links(base: str, spec: LayerSpec) -> list[dict[str, Any]]:
    root = f"{base}/collections/{spec.id}/tiles/{tiles.TMS_ID}"
    return [
        {"rel": "self", "type": "application/json", "href": root},
        {
            "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
            "type": "application/json",
            "href": f"{base}/tileMatrixSets/{tiles.TMS_ID}",
        },
        {
            "rel": "item",
            "type": tiles.MEDIA_TYPES["mvt"],
            "templated": True,
            "href": f"{root}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}",
        },
        {
            "rel": "item",
            "type": tiles.MEDIA_TYPES["geojson"],
            "templated": True,
            "href": f"{root}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}?f=geojson",
        },
        {
            "rel": "describedby",
            "type": "application/json",
            "title": "TileJSON",
            "href": f"{root}/tilejson.json",
        },
    ]


@router.get("/collections/{collection_id}/tiles", summary="Tilesets of a collection")
async def collection_tilesets(
    request: Request, collection_id: str = CollectionId
) -> JSONResponse:
    """The vector tilesets of a collection (one: WebMercatorQuad)."""
    spec = _layer(request, collection_id)
    base = _base(request)
    return JSONResponse(
        {
            "links": [
                {
                    "rel": "self",
                    "type": "application/json",
                    "href": f"{base}/collections/{spec.id}/tiles",
                }
            ],
            "tilesets": [
                {
                    "title": f"{spec.title} ({tiles.TMS_ID})",
                    "dataType": "vector",
                    "crs": tiles.CRS_3857,
                    "tileMatrixSetURI": tiles.TMS_URI,
                    "links": _tileset_links(base, spec),
                }
            ],
        }
    )


@router.get(
    "/collections/{collection_id}/tiles/{tile_matrix_set_id}",
    summary="Tileset metadata",
)
async def collection_tileset(
    request: Request,
    collection_id: str = CollectionId,
    tile_matrix_set_id: str = TileMatrixSetId,
) -> JSONResponse:
    """Metadata of a collection's vector tileset: zooms, layer and its fields."""
    spec = _layer(request, collection_id)
    _check_tms(tile_matrix_set_id)
    settings = _service(request).settings
    minzoom, maxzoom = tiles.zoom_range(spec, settings)
    props = {
        p.name: {
            "type": {"int": "integer", "float": "number", "bool": "boolean"}.get(
                p.type, "string"
            ),
            "title": p.title,
        }
        for p in spec.properties
    }
    props["id"] = {"type": "integer", "title": "Feature id"}
    return JSONResponse(
        {
            "title": f"{spec.title} ({tiles.TMS_ID})",
            "description": spec.description,
            "dataType": "vector",
            "crs": tiles.CRS_3857,
            "tileMatrixSetURI": tiles.TMS_URI,
            "links": _tileset_links(_base(request), spec),
            "layers": [
                {
                    "id": spec.id,
                    "title": spec.title,
                    "dataType": "vector",
                    "geometryDimension": 0
                    if tiles.is_point_layer(spec)
                    else (1 if all("Line" in g for g in spec.geometry_types) else 2),
                    "minTileMatrix": str(minzoom),
                    "maxTileMatrix": str(maxzoom),
                    "propertiesSchema": {"type": "object", "properties": props},
                }
            ],
        }
    )


async def _tilejson(
    request: Request, collection_id: str, template: str
) -> JSONResponse:
    service = _service(request)
    spec = _layer(request, collection_id)
    scope = _caller_scope(request.scope, spec)
    # the bounds of what this caller sees, cached per scope like tiles
    tag = scoped_tag(await service.version_tag(spec.id), scope.key)
    key = (spec.id, tag, "bounds")
    entry = service.cache.get(key) if service.cache.enabled else None
    if entry is None:
        text = await run_in_threadpool(
            _bounds, service.engine, spec, scope.kind == "rows"
        )
        entry = CachedTile((text or "").encode(), False, 0, False)
        if service.cache.enabled:
            service.cache.put(key, entry)
    bounds = tiles.parse_box2d(entry.content.decode() or None)
    return JSONResponse(
        tiles.tilejson(spec, service.settings, template, bounds),
        headers={"Cache-Control": _cache_control(service, request.scope, spec, tag)},
    )


def _bounds(engine: Engine, spec: LayerSpec, scoped: bool) -> str | None:
    """The layer's bounds: the planner's estimate for callers seeing every
    feature; for a row scope the exact extent of its rows, measured under the
    caller's database role (an estimate comes from statistics of the whole
    table, which row-level security does not filter)."""
    conn = engine.raw_connection()
    try:
        with conn.cursor() as cur:
            # the pool is autocommit: SET LOCAL ROLE needs a transaction, ended
            # here whatever happens (the pool does not reset connections)
            cur.execute("BEGIN")
            try:
                if scoped:
                    dbsecurity.apply_scope(conn, CURRENT.get())
                cur.execute(tiles.layer_bounds_sql(spec, exact=scoped))
                row = cur.fetchone()
            finally:
                cur.execute("ROLLBACK")  # read only: nothing to keep
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        conn.invalidate()
        raise DatabaseUnavailable("the database is unavailable; retry shortly") from exc
    finally:
        conn.close()
    return row[0] if row else None


@router.get(
    "/collections/{collection_id}/tiles/{tile_matrix_set_id}/tilejson.json",
    summary="TileJSON of a collection",
)
async def collection_tilejson(
    request: Request,
    collection_id: str = CollectionId,
    tile_matrix_set_id: str = TileMatrixSetId,
) -> JSONResponse:
    """TileJSON 3.0 of a collection's vector tiles (MapLibre, Leaflet plugins)."""
    _check_tms(tile_matrix_set_id)
    base = _base(request)
    template = (
        f"{base}/collections/{collection_id}/tiles/{tiles.TMS_ID}/{{z}}/{{y}}/{{x}}"
    )
    return await _tilejson(request, collection_id, template)


@router.get("/tiles/{collection_id}/tilejson.json", summary="TileJSON (XYZ alias)")
async def xyz_tilejson(
    request: Request, collection_id: str = CollectionId
) -> JSONResponse:
    """TileJSON 3.0 pointing at the XYZ ``.pbf`` tile URLs."""
    template = f"{_base(request)}/tiles/{collection_id}/{{z}}/{{x}}/{{y}}.pbf"
    return await _tilejson(request, collection_id, template)


# -- tiles ---------------------------------------------------------------------------


@router.get(
    "/collections/{collection_id}/tiles/{tile_matrix_set_id}/{tile_matrix}/{tile_row}/{tile_col}",
    summary="A tile (OGC order: tileMatrix/tileRow/tileCol)",
    response_class=Response,
    responses=_TILE_RESPONSES,
)
async def collection_tile(
    request: Request,
    collection_id: str = CollectionId,
    tile_matrix_set_id: str = TileMatrixSetId,
    tile_matrix: str = Path(description="Zoom level (tile matrix id), 0-24."),
    tile_row: str = Path(description="Tile row (y), counted from the north."),
    tile_col: str = Path(description="Tile column (x), counted from the west."),
    f: str | None = Query(
        None, description="`mvt` (default, Mapbox Vector Tile) or `geojson`."
    ),
) -> Response:
    """One vector tile of a collection, as MVT (default) or GeoJSON."""
    _check_tms(tile_matrix_set_id)
    tile = tiles.parse_tile(tile_matrix, tile_col, tile_row)
    return await _tile_response(request, collection_id, tile, _format(f))


_XYZ = {
    "z": Path(description="Zoom level."),
    "x": Path(description="Tile column, counted from the west."),
    "y": Path(description="Tile row, counted from the north."),
}


@router.get(
    "/tiles/{collection_id}/{z}/{x}/{y}.pbf",
    summary="A vector tile (XYZ alias)",
    response_class=Response,
    responses=_TILE_RESPONSES,
)
async def xyz_mvt(
    request: Request,
    collection_id: str = CollectionId,
    z: str = _XYZ["z"],
    x: str = _XYZ["x"],
    y: str = _XYZ["y"],
) -> Response:
    """A Mapbox Vector Tile at ``z/x/y`` (Leaflet, Folium, MapLibre URL order)."""
    return await _tile_response(
        request, collection_id, tiles.parse_tile(z, x, y), "mvt"
    )


@router.get(
    "/tiles/{collection_id}/{z}/{x}/{y}.geojson",
    summary="A GeoJSON tile (XYZ alias)",
    response_class=Response,
    responses=_TILE_RESPONSES,
)
async def xyz_geojson(
    request: Request,
    collection_id: str = CollectionId,
    z: str = _XYZ["z"],
    x: str = _XYZ["x"],
    y: str = _XYZ["y"],
) -> Response:
    """A GeoJSON tile at ``z/x/y``: features clipped to the tile, in EPSG:4326."""
    tile = tiles.parse_tile(z, x, y)
    return await _tile_response(request, collection_id, tile, "geojson")
