"""Named dependencies: the engine, settings, and query parameters validated once."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Path, Query, Request
from sqlalchemy import Engine

from gis_server.api.auth import get_principal
from gis_server.auth import policy
from gis_server.auth.principal import ANONYMOUS
from gis_server.auth.settings import AuthSettings
from gis_server.errors import InvalidBBox, InvalidParameter
from gis_server.features.config import FeaturesSettings
from gis_server.features.crs import CRS, SUPPORTED_CRS, bbox_to_wgs84, parse_crs
from gis_server.features.temporal import TimeInterval, parse_datetime
from gis_server.settings import ServerSettings
from layers import LayerSpec, UnknownLayer, get_layer

_CRS_LIST = ", ".join(c.uri for c in SUPPORTED_CRS)


def refuse_nul(request: Request) -> None:
    """A NUL character (``%00``) in the path or query is a 400, for every route.

    No value the server compares or stores can hold one (PostgreSQL text
    cannot, nor can a file name): refused here, before any query, rather than
    failing in the database driver -- a 500, or a CSV export broken off after
    its first line.
    """
    scope = request.scope
    if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
        raise InvalidParameter(
            "the request's path or query holds a NUL character (%00), which no "
            "value here can hold"
        )


def get_engine(request: Request) -> Engine:
    """The database engine opened by the app's lifespan."""
    return request.app.state.engine


def get_features_settings(request: Request) -> FeaturesSettings:
    return request.app.state.features_settings


def get_server_settings(request: Request) -> ServerSettings:
    return request.app.state.server_settings


EngineDep = Annotated[Engine, Depends(get_engine)]
FeaturesSettingsDep = Annotated[FeaturesSettings, Depends(get_features_settings)]


def get_collection(
    request: Request,
    collection_id: Annotated[
        str,
        Path(description="Collection (layer) id, as listed by `/collections`."),
    ],
) -> LayerSpec:
    """The layer named in the path, if the caller may read it: 404 when there
    is none or it is outside the caller's scope, 401 for anonymous callers."""
    try:
        spec = get_layer(collection_id)
    except UnknownLayer:
        raise policy.not_found(collection_id) from None
    policy.require_read(get_principal(request), spec, request.app.state.auth_settings)
    return spec


LayerDep = Annotated[LayerSpec, Depends(get_collection)]


def cache_control(
    directives: str, spec: LayerSpec, scope: policy.Scope, settings: AuthSettings
) -> str:
    """``directives`` (``public, max-age=0, ...``) for an answer about ``spec``
    to a caller of ``scope``: ``public`` becomes ``private`` unless the answer
    is anyone's -- the layer readable without signing in and the caller seeing
    all of it -- so that no shared (proxy) cache keeps what a signed-in or
    scoped caller was given.

    Examples
    --------
    >>> from layers import get_layer
    >>> cache_control("public, max-age=0", get_layer("buildings"), policy.ALL,
    ...               AuthSettings(anonymous="off"))
    'private, max-age=0'
    >>> cache_control("public, max-age=0", get_layer("buildings"), policy.ALL,
    ...               AuthSettings(anonymous="read"))
    'public, max-age=0'
    """
    anyones = (
        scope.kind == "all"
        and policy.read_scope(ANONYMOUS, spec, settings).kind == "all"
    )
    return directives if anyones else directives.replace("public", "private")


def base_url(request: Request) -> str:
    """Root URL for links: ``GIS_PUBLIC_URL`` when behind a proxy."""
    public = request.app.state.server_settings.public_url
    return (public or str(request.base_url)).rstrip("/")


BaseUrlDep = Annotated[str, Depends(base_url)]


def parse_bbox(value: str, crs: CRS) -> tuple[float, float, float, float]:
    """A ``bbox`` parameter (4 or 6 numbers in ``crs``) as lon/lat EPSG:4326.

    Examples
    --------
    >>> from gis_server.features.crs import DEFAULT_CRS
    >>> parse_bbox("113.2,23.1,113.3,23.2", DEFAULT_CRS)
    (113.2, 23.1, 113.3, 23.2)
    """
    try:
        numbers = [float(v) for v in value.split(",")]
    except ValueError:
        raise InvalidBBox(f"bbox {value!r} is not a list of numbers") from None
    if len(numbers) == 6:  # min/max height are ignored: features are 2D
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        raise InvalidBBox(f"bbox {value!r} needs 4 (or 6) finite numbers")
    minx, miny, maxx, maxy = numbers
    if minx > maxx or miny > maxy:
        # NOTE: a CRS84 bbox across the antimeridian (minx > maxx) is valid OGC
        # but never needed for Guangdong; refused with a clear message.
        raise InvalidBBox(f"bbox {value!r}: the lower corner must come first")
    if not crs.projected:
        lon = (miny, maxy) if crs.lat_first else (minx, maxx)
        lat = (minx, maxx) if crs.lat_first else (miny, maxy)
        if not (
            -180 <= lon[0] <= 180
            and -180 <= lon[1] <= 180
            and -90 <= lat[0] <= 90
            and -90 <= lat[1] <= 90
        ):
            raise InvalidBBox(
                f"bbox {value!r} is outside the valid range of {crs.epsg} "
                f"({'latitude first' if crs.lat_first else 'longitude first'})"
            )
    return bbox_to_wgs84((minx, miny, maxx, maxy), crs)


def get_bbox(
    bbox: Annotated[
        str | None,
        Query(
            description=(
                "Only features whose geometry intersects this box: "
                "`minx,miny,maxx,maxy` in `bbox-crs` (CRS84 longitude/latitude by "
                "default; latitude first for EPSG:4326 and EPSG:4490)."
            ),
            examples=["113.26,23.12,113.28,23.14"],
        ),
    ] = None,
    bbox_crs: Annotated[
        str | None,
        Query(alias="bbox-crs", description=f"CRS of `bbox`; one of {_CRS_LIST}."),
    ] = None,
) -> tuple[float, float, float, float] | None:
    """The validated bbox, transformed to lon/lat EPSG:4326."""
    crs = parse_crs(bbox_crs, "bbox-crs")
    if bbox is None:
        return None
    return parse_bbox(bbox, crs)


BBoxDep = Annotated[tuple[float, float, float, float] | None, Depends(get_bbox)]


@dataclass(frozen=True)
class Paging:
    limit: int
    offset: int


def get_paging(
    settings: FeaturesSettingsDep,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            description=(
                "Features per page (default 10; at most the server's maximum, "
                "10,000 unless configured: a larger value is a 400). CSV and "
                "GeoPackage exports take every matching feature by default."
            ),
        ),
    ] = None,
    offset: Annotated[
        int,
        Query(ge=0, description="Features to skip (the `next` link sets it)."),
    ] = 0,
) -> Paging:
    """``limit`` and ``offset``; ``limit`` 0 means "not given"."""
    if limit is not None and limit > settings.max_limit:
        raise InvalidParameter(
            f"limit {limit} is over the maximum of {settings.max_limit}"
        )
    return Paging(limit=limit or 0, offset=offset)


PagingDep = Annotated[Paging, Depends(get_paging)]


def get_crs(
    crs: Annotated[
        str | None,
        Query(
            description=(
                f"CRS of the response geometries; one of {_CRS_LIST} "
                "(CRS84 by default). The response names it in `Content-Crs`."
            )
        ),
    ] = None,
) -> CRS:
    return parse_crs(crs, "crs")


CrsDep = Annotated[CRS, Depends(get_crs)]


def get_datetime(
    datetime: Annotated[
        str | None,
        Query(
            description=(
                "An instant (`2024-05-01`, `2024-05-01T08:00:00Z`) or an interval "
                "(`2024-01-01/2024-06-30`, `../2024-06-30`, `2024-01-01/..`), bounds "
                "included; a date means the whole day (UTC). Applies to "
                "`datetime-field`."
            ),
        ),
    ] = None,
) -> TimeInterval | None:
    return None if datetime is None else parse_datetime(datetime)


DatetimeDep = Annotated[TimeInterval | None, Depends(get_datetime)]

OutputFormat = Literal["json", "html", "csv", "gpkg"]


def get_format(
    request: Request,
    f: Annotated[
        str | None,
        Query(
            description=(
                "Response format: `json` (GeoJSON), `html`, `csv` (WKT geometry) or "
                "`gpkg` (GeoPackage download). Without it, browsers get HTML and "
                "everyone else JSON."
            ),
        ),
    ] = None,
) -> OutputFormat:
    """The requested output format (``f`` first, then the Accept header)."""
    if f is not None:
        lowered = f.lower()
        aliases = {
            "geojson": "json",
            "application/geo+json": "json",
            "application/json": "json",
            "text/html": "html",
            "geopackage": "gpkg",
            "text/csv": "csv",
        }
        lowered = aliases.get(lowered, lowered)
        if lowered not in ("json", "html", "csv", "gpkg"):
            raise InvalidParameter(f"f={f!r} is not one of json, html, csv, gpkg")
        return lowered  # type: ignore[return-value]
    accept = request.headers.get("accept", "")
    if "text/html" in accept and "json" not in accept:
        return "html"
    return "json"


FormatDep = Annotated[OutputFormat, Depends(get_format)]
