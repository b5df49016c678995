"""Landing page, conformance and the OpenAPI document."""

from __future__ import annotations

from gis_server.api.landing import CONFORMANCE
from gis_server.api.tiles import CONFORMANCE_CLASSES as TILES_CONFORMANCE
from gis_server.features import models


def test_landing_links(client):
    r = client.get("/")
    assert r.status_code == 200
    doc = models.Landing.model_validate(r.json())
    rels = {link.rel: link.href for link in doc.links}
    for rel in ("self", "service-desc", "service-doc", "conformance", "data"):
        assert rel in rels
    assert client.get(rels["service-desc"]).json()["openapi"].startswith("3.")
    assert client.get(rels["data"]).status_code == 200


def test_landing_html(client):
    r = client.get("/?f=html")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "/collections" in r.text


def test_browser_gets_html_without_f(client):
    r = client.get("/collections", headers={"Accept": "text/html,*/*"})
    assert r.headers["content-type"].startswith("text/html")


def test_conformance(client):
    doc = models.Conformance.model_validate(client.get("/conformance").json())
    assert doc.conformsTo == [*CONFORMANCE, *TILES_CONFORMANCE]
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt" in doc.conformsTo
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in CONFORMANCE
    assert "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json" in CONFORMANCE
    assert client.get("/conformance?f=html").status_code == 200


def test_landing_refuses_csv(client):
    r = client.get("/?f=csv")
    assert r.status_code == 400
    assert r.json()["code"] == "InvalidParameterValue"


def test_every_parameter_is_described(client):
    """The OpenAPI page is documentation: no parameter without a description."""
    spec = client.get("/api").json()
    missing = []
    for path, operations in spec["paths"].items():
        if not (path.startswith("/collections") or path in ("/", "/conformance")):
            continue
        if "/tiles" in path:  # the tiles routes are documented by their module
            continue
        for method, op in operations.items():
            assert op.get("summary"), f"{method} {path} has no summary"
            for param in op.get("parameters", []):
                if not param.get("description"):
                    missing.append(f"{method} {path} {param['name']}")
    assert missing == []


def test_items_parameters_in_openapi(client):
    spec = client.get("/api").json()
    names = {
        p["name"]
        for p in spec["paths"]["/collections/{collection_id}/items"]["get"][
            "parameters"
        ]
    }
    assert {
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
        "f",
    } <= names
