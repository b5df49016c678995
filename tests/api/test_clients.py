"""Clients no one here wrote: GDAL's OAPIF driver (ogrinfo, ogr2ogr) and OWSLib.

They talk to the app served by uvicorn on a free port. The districts layer
holds the real Guangzhou districts (DataV, GCJ-02, converted by the ingest).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pyogrio
import pytest
import shapely
from features_fixtures import N_BUILDINGS

pytestmark = pytest.mark.skipif(
    shutil.which("ogrinfo") is None, reason="gdal-bin is not installed"
)


@pytest.fixture(scope="module")
def real_districts(api_engine, real_data) -> int:
    """The 11 real districts, loaded by the project's own ingest."""
    from ingest.loader import load_batch
    from ingest.readers import read_file
    from layers import get_layer

    spec = get_layer("districts")
    path = real_data / "guangzhou_districts_gcj02.geojson"
    batch = read_file(path, crs="gcj02", id_aliases=spec.id_aliases)
    report = load_batch(api_engine, spec, batch, source=path.name)
    assert report.rejected == 0
    return report.inserted + report.updated + report.unchanged


def gdal(*args: str) -> str:
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=120,
        env={"GDAL_HTTP_TIMEOUT": "60", "CPL_DEBUG": "OFF", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_ogrinfo_lists_every_layer(live_server):
    from layers import all_layers

    out = gdal("ogrinfo", "-ro", "-q", f"OAPIF:{live_server}")
    for spec in all_layers():
        assert f": {spec.id} " in out or f": {spec.id}\n" in out


def test_ogrinfo_summary_of_buildings(live_server):
    out = gdal("ogrinfo", "-ro", "-so", f"OAPIF:{live_server}", "buildings")
    assert f"Feature Count: {N_BUILDINGS}" in out
    assert "Geometry: Multi Polygon" in out
    assert "height_m: Real" in out  # floats keep their decimal point
    assert "floors: Integer" in out


def test_ogrinfo_attribute_filter_goes_to_the_server(live_server):
    out = gdal(
        "ogrinfo",
        "-ro",
        "-q",
        f"OAPIF:{live_server}",
        "buildings",
        "-where",
        "floors > 27 AND safety_grade = 'A'",
    )
    assert out.count("OGRFeature(buildings)") == 1
    assert "floors (Integer) = 29" in out


def test_ogrinfo_spatial_filter(live_server):
    out = gdal(
        "ogrinfo",
        "-ro",
        "-q",
        f"OAPIF:{live_server}",
        "buildings",
        "-spat",
        "113.2995",
        "23.0995",
        "113.3035",
        "23.1015",
    )
    assert out.count("OGRFeature(buildings)") == 2


def test_ogr2ogr_pages_through_a_layer(live_server, tmp_path):
    out = tmp_path / "buildings.gpkg"
    gdal(
        "ogr2ogr",
        "-f",
        "GPKG",
        str(out),
        f"OAPIF:{live_server}",
        "buildings",
        "-oo",
        "PAGE_SIZE=7",
    )
    info = pyogrio.read_info(out)
    assert info["features"] == N_BUILDINGS


def test_ogr2ogr_real_districts(live_server, real_districts, tmp_path):
    assert real_districts == 11
    out = tmp_path / "districts.geojson"
    gdal("ogr2ogr", "-f", "GeoJSON", str(out), f"OAPIF:{live_server}", "districts")
    doc = json.loads(Path(out).read_text())
    names = {f["properties"]["name"] for f in doc["features"]}
    assert len(doc["features"]) == 11
    assert {"越秀区", "天河区", "海珠区"} <= names
    # converted from GCJ-02: Yuexiu's centre is ~ 113.27E 23.13N in WGS84
    yuexiu = next(f for f in doc["features"] if f["properties"]["name"] == "越秀区")
    centre = shapely.geometry.shape(yuexiu["geometry"]).centroid
    assert 113.2 < centre.x < 113.33 and 23.1 < centre.y < 23.17


def test_owslib_features(live_server, real_districts):
    from owslib.ogcapi.features import Features

    api = Features(live_server)
    ids = [c["id"] for c in api.collections()["collections"]]
    assert "buildings" in ids and "districts" in ids
    assert (
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
        in (api.conformance()["conformsTo"])
    )
    page = api.collection_items("buildings", limit=5, safety_grade="D")
    assert page["numberReturned"] == 5
    assert {f["properties"]["safety_grade"] for f in page["features"]} == {"D"}
    queryables = api.collection_queryables("buildings")
    assert "floors" in queryables["properties"]
    bboxed = api.collection_items("districts", bbox=[113.26, 23.12, 113.28, 23.14])
    by_name = {f["properties"]["name"]: f["id"] for f in bboxed["features"]}
    assert "越秀区" in by_name
    one = api.collection_item("districts", str(by_name["越秀区"]))
    assert one["type"] == "Feature" and one["properties"]["name"] == "越秀区"
