"""CSV and GeoPackage exports, and the bbox read path used on large layers."""

from __future__ import annotations

import csv
import io

import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient
from features_fixtures import N_BUILDINGS, building_row, make_app

from gis_server.features.config import FeaturesSettings
from gis_server.features.query import ItemsQuery, fetch_page, fetch_rows
from layers import get_layer

ITEMS = "/collections/buildings/items"
BBOX = "113.2995,23.0995,113.3075,23.1035"  # buildings 0-3 and 6-9


def test_csv_whole_layer(client):
    r = client.get(ITEMS, params={"f": "csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == N_BUILDINGS  # not one page: the whole layer
    first = rows[0]
    assert first["address"] == building_row(0)["address"]
    assert first["floors"] == "1"
    assert shapely.from_wkt(first["geometry"]).geom_type == "MultiPolygon"
    assert '"name:en"' in first["extra"]


def test_csv_bbox_filter_and_properties(client):
    r = client.get(
        ITEMS,
        params={
            "f": "csv",
            "bbox": BBOX,
            "safety_grade": "A",
            "properties": "floors,safety_grade",
        },
    )
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [row["floors"] for row in rows] == ["1", "9"]
    assert list(rows[0]) == ["id", "floors", "safety_grade", "geometry"]


def test_csv_explicit_limit_is_a_page(client):
    r = client.get(ITEMS, params={"f": "csv", "limit": 3, "offset": 3})
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [row["floors"] for row in rows] == ["4", "5", "6"]


def test_gpkg_whole_layer(client, tmp_path):
    r = client.get(ITEMS, params={"f": "gpkg"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/geopackage+sqlite3"
    path = tmp_path / "b.gpkg"
    path.write_bytes(r.content)
    info = pyogrio.read_info(path, layer="buildings")
    assert info["features"] == N_BUILDINGS
    assert info["crs"] == "EPSG:4326"
    assert info["geometry_type"] == "MultiPolygon"
    names = dict(zip(info["fields"], info["dtypes"], strict=True))
    assert names["floors"] == "int64" and names["height_m"] == "float64"
    meta, _, geometry, fields = pyogrio.raw.read(path, layer="buildings")
    floors = list(fields[meta["fields"].tolist().index("floors")])
    assert sorted(floors) == list(range(1, N_BUILDINGS + 1))
    geom = shapely.from_wkb(geometry[0])
    assert 113.29 < geom.centroid.x < 113.32  # x is longitude in a GeoPackage


def test_gpkg_bbox_in_web_mercator(client, tmp_path):
    r = client.get(ITEMS, params={"f": "gpkg", "bbox": BBOX, "crs": "EPSG:3857"})
    path = tmp_path / "b.gpkg"
    path.write_bytes(r.content)
    info = pyogrio.read_info(path)
    assert info["features"] == 8
    assert info["crs"] == "EPSG:3857"


def test_gpkg_of_an_empty_layer(client, tmp_path):
    r = client.get("/collections/rivers/items", params={"f": "gpkg"})
    path = tmp_path / "r.gpkg"
    path.write_bytes(r.content)
    assert pyogrio.read_info(path)["features"] == 0


def test_export_over_the_maximum_is_refused(api_db_settings):
    app = make_app(api_db_settings, export_max_features=5)
    with TestClient(app) as small:
        r = small.get(ITEMS, params={"f": "csv"})
        assert r.status_code == 400
        assert "maximum of 5" in r.json()["description"]
        assert small.get(ITEMS, params={"f": "csv", "limit": 5}).status_code == 200


@pytest.mark.parametrize(
    "sortby", [(), (("floors", True),), (("safety_grade", False),)]
)
@pytest.mark.parametrize("offset", [0, 3])
def test_fenced_bbox_path_matches_plain_path(api_engine, fixture_data, sortby, offset):
    """The index-then-sort read of a narrow bbox returns the same pages."""
    from gis_server.api.deps import parse_bbox
    from gis_server.features.crs import DEFAULT_CRS

    query = ItemsQuery(
        get_layer("buildings"),
        bbox=parse_bbox(BBOX, DEFAULT_CRS),
        sortby=sortby,
        limit=4,
        offset=offset,
        degree_digits=FeaturesSettings().coordinate_precision,
    )
    with api_engine.connect() as conn:
        plain = fetch_page(conn, query, candidates=None)
        fenced = fetch_page(conn, query, candidates=8)
        assert fenced == plain
        assert plain[0] == 4
        rows_plain = [r["id"] for r in fetch_rows(conn, query)]
        rows_fenced = [r["id"] for r in fetch_rows(conn, query, 8)]
        assert rows_fenced == rows_plain
