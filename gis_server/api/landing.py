"""Landing page and conformance declaration (the OpenAPI document is at ``/api``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gis_server.api.deps import BaseUrlDep, FormatDep
from gis_server.api.html import render_html
from gis_server.api.tiles import CONFORMANCE_CLASSES as TILES_CONFORMANCE
from gis_server.errors import InvalidParameter
from gis_server.features import models

router = APIRouter(tags=["Capabilities"])

_FEATURES = "http://www.opengis.net/spec/ogcapi-features-{part}/1.0/conf/{name}"
_CQL2 = "http://www.opengis.net/spec/cql2/1.0/conf/{name}"

#: Conformance classes this server implements (and its tests exercise).
#: NOTE: "oas30" is not claimed: FastAPI writes an OpenAPI 3.1 document.
CONFORMANCE: tuple[str, ...] = (
    _FEATURES.format(part=1, name="core"),
    _FEATURES.format(part=1, name="geojson"),
    _FEATURES.format(part=1, name="html"),
    _FEATURES.format(part=2, name="crs"),
    _FEATURES.format(part=3, name="queryables"),
    _FEATURES.format(part=3, name="queryables-query-parameters"),
    _FEATURES.format(part=3, name="filter"),
    _FEATURES.format(part=3, name="features-filter"),
    _CQL2.format(name="cql2-text"),
    _CQL2.format(name="cql2-json"),
    _CQL2.format(name="basic-cql2"),
    _CQL2.format(name="advanced-comparison-operators"),
    _CQL2.format(name="case-insensitive-comparison"),
    _CQL2.format(name="basic-spatial-functions"),
    _CQL2.format(name="basic-spatial-functions-plus"),
    _CQL2.format(name="spatial-functions"),
    _CQL2.format(name="property-property"),
    _CQL2.format(name="arithmetic"),
)


def _json_or_html(fmt: str) -> None:
    if fmt not in ("json", "html"):
        raise InvalidParameter(f"f={fmt} is not available here; use json or html")


@router.get("/", name="landing", summary="Landing page", response_model=models.Landing)
def landing(request: Request, base: BaseUrlDep, fmt: FormatDep) -> Response:
    """Links to the API definition, the conformance classes and the layers."""
    _json_or_html(fmt)
    app = request.app
    doc = {
        "title": app.title,
        "description": app.description,
        "links": [
            {
                "href": f"{base}/",
                "rel": "self",
                "type": "application/json",
                "title": "This document",
            },
            {
                "href": f"{base}/?f=html",
                "rel": "alternate",
                "type": "text/html",
                "title": "This document as HTML",
            },
            {
                "href": f"{base}/api",
                "rel": "service-desc",
                "type": "application/vnd.oai.openapi+json;version=3.1",
                "title": "The API definition (OpenAPI)",
            },
            {
                "href": f"{base}/api.html",
                "rel": "service-doc",
                "type": "text/html",
                "title": "The API documentation",
            },
            {
                "href": f"{base}/conformance",
                "rel": "conformance",
                "type": "application/json",
                "title": "Conformance classes",
            },
            {
                "href": f"{base}/collections",
                "rel": "data",
                "type": "application/json",
                "title": "The layers (collections)",
            },
        ],
    }
    if fmt == "html":
        return render_html(request, "landing.html", doc, title=app.title)
    return _json_response(doc)


@router.get(
    "/conformance",
    name="conformance",
    summary="Conformance classes",
    response_model=models.Conformance,
)
def conformance(request: Request, fmt: FormatDep) -> Response:
    """The OGC conformance classes this server implements."""
    _json_or_html(fmt)
    doc = {"conformsTo": [*CONFORMANCE, *TILES_CONFORMANCE]}
    if fmt == "html":
        return render_html(request, "conformance.html", doc, title="Conformance")
    return _json_response(doc)


def _json_response(doc: dict) -> Response:
    import orjson

    return Response(orjson.dumps(doc), media_type="application/json")
