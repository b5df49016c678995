"""Ingest of the real third-party files in ../shared/data/real (and their traps)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely
from sqlalchemy import text

from ingest.crs import gcj02_to_wgs84
from ingest.loader import load_batch
from ingest.raster import read_window, register_raster
from ingest.readers import read_file
from layers import get_layer


def ingest(engine, layer_id, path, source=None, **kwargs):
    spec = get_layer(layer_id)
    read_kw = {k: kwargs.pop(k) for k in ("crs", "layer", "id_field") if k in kwargs}
    batch = read_file(path, id_aliases=spec.id_aliases, **read_kw)
    return load_batch(engine, spec, batch, source=source or Path(path).name, **kwargs)


def count(engine, layer_id, source):
    with engine.connect() as conn:
        return conn.execute(
            text(f"SELECT count(*) FROM {get_layer(layer_id).table} WHERE source = :s"),
            {"s": source},
        ).scalar()


def test_shanghai_buildings_keep_pieces_and_reject_label_points(engine, real_data):
    path = real_data / "osm_shanghai_buildings.geojson"
    first = ingest(engine, "buildings", path, source="sh-buildings")
    assert (first.read, first.inserted, first.rejected) == (1981, 1572, 409)
    assert {i.reason for i in first.issues if i.action == "rejected"} == {
        "Point is not accepted by layer buildings (MultiPolygon)"
    }
    # The 114 OSM ids cut at tile edges keep every piece, numbered.
    with engine.connect() as conn:
        repeated = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT source_id FROM layer_buildings "
                "WHERE source = 'sh-buildings' "
                "GROUP BY source_id HAVING count(*) > 1) t"
            )
        ).scalar()
        heights = conn.execute(
            text(
                "SELECT count(height_m), max(height_m) FROM layer_buildings "
                "WHERE source = 'sh-buildings'"
            )
        ).one()
        extra = conn.execute(
            text(
                "SELECT extra FROM layer_buildings WHERE source = 'sh-buildings' "
                "AND extra ? 'name:en' LIMIT 1"
            )
        ).scalar()
    raw = json.loads(path.read_text())
    ids = [
        f["properties"]["id"]
        for f in raw["features"]
        if f["geometry"]["type"] == "Polygon"
    ]
    expected_repeated = sum(1 for v in set(ids) if ids.count(v) > 1)
    assert repeated == expected_repeated > 0
    assert count(engine, "buildings", "sh-buildings") == len(ids)
    with_height = [
        f
        for f in raw["features"]
        if f["geometry"]["type"] == "Polygon" and "height" in f["properties"]
    ]
    assert heights[0] == len(with_height)
    assert heights[1] == pytest.approx(632, abs=1)
    # Properties the layer does not know, with ':' and Chinese, are kept.
    assert extra["name:en"] and "kind" in extra

    again = ingest(engine, "buildings", path, source="sh-buildings")
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 1572)


def test_wuhan_buildings(engine, real_data):
    report = ingest(
        engine, "buildings", real_data / "osm_wuhan_buildings.geojson", source="wuhan"
    )
    assert (report.read, report.inserted, report.rejected) == (355, 265, 90)


def test_mixed_water_layer_into_rivers(engine, real_data):
    path = real_data / "osm_shanghai_water.geojson"
    raw = json.loads(path.read_text())
    types = [f["geometry"]["type"] for f in raw["features"]]
    lines = sum(t in ("LineString", "MultiLineString") for t in types)
    report = ingest(engine, "rivers", path, source="sh-water")
    assert report.inserted == lines
    assert report.rejected == len(types) - lines
    reasons = {i.reason.split(" is not")[0] for i in report.issues}
    assert reasons <= {"Polygon", "MultiPolygon", "Point"}
    # Features without an id are keyed by content and stay stable on re-run.
    with engine.connect() as conn:
        hashed = conn.execute(
            text(
                "SELECT count(*) FROM layer_rivers WHERE source = 'sh-water' "
                "AND source_id LIKE 'sha1:%'"
            )
        ).scalar()
    no_id = [
        f
        for f in raw["features"]
        if "id" not in f["properties"]
        and f["geometry"]["type"] in ("LineString", "MultiLineString")
    ]
    assert hashed == len(no_id)
    again = ingest(engine, "rivers", path, source="sh-water")
    assert again.unchanged == lines and again.inserted == 0
    with engine.connect() as conn:
        kinds = (
            conn.execute(
                text(
                    "SELECT DISTINCT GeometryType(geom) FROM layer_rivers "
                    "WHERE source='sh-water'"
                )
            )
            .scalars()
            .all()
        )
    assert kinds == ["MULTILINESTRING"]


def test_datav_districts_need_gcj02(engine, real_data):
    path = real_data / "guangzhou_districts_gcj02.geojson"
    silent = read_file(path, id_aliases=get_layer("districts").id_aliases)
    assert any("GCJ-02" in w for w in silent.warnings)

    report = ingest(engine, "districts", path, source="gz", crs="gcj02")
    assert (report.inserted, report.rejected) == (11, 0)
    assert not any("DataV" in n for n in report.notes)
    raw = json.loads(path.read_text())
    tianhe = next(f for f in raw["features"] if f["properties"]["adcode"] == 440106)
    original = shapely.geometry.shape(tianhe["geometry"])
    with engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT ST_AsBinary(geom), name FROM layer_districts "
                "WHERE source = 'gz' AND adcode = '440106'"
            )
        ).one()
    geom = shapely.from_wkb(bytes(stored[0]))
    assert stored[1] == "天河区"
    expected = shapely.transform(original, gcj02_to_wgs84)
    assert shapely.hausdorff_distance(geom, expected) < 1e-7
    # The shift is the few hundred metres DOMAIN.md describes (~0.005 deg here).
    dx = original.centroid.x - geom.centroid.x
    dy = original.centroid.y - geom.centroid.y
    assert 0.003 < np.hypot(dx, dy) < 0.008


def test_guangdong_cities_are_repaired_not_dropped(engine, real_data):
    report = ingest(
        engine,
        "districts",
        real_data / "guangdong_cities_gcj02.geojson",
        source="gd",
        crs="gcj02",
    )
    assert report.inserted == 21 and report.rejected == 0
    assert report.repaired == len([i for i in report.issues if i.action == "repaired"])
    with engine.connect() as conn:
        invalid = conn.execute(
            text(
                "SELECT count(*) FROM layer_districts "
                "WHERE source='gd' AND NOT ST_IsValid(geom)"
            )
        ).scalar()
    assert invalid == 0


def test_landsat_raster_registration(engine, real_data, tmp_path):
    info = register_raster(
        engine,
        "landsat_test",
        real_data / "landsat_rgb_utm18n.tif",
        raster_dir=tmp_path,
    )
    assert info.crs == "EPSG:32618"
    assert (info.width, info.height, info.band_count) == (791, 718, 3)
    assert info.nodata == 0 and info.dtypes == ["uint8"] * 3
    assert info.res[0] == pytest.approx(300, rel=1e-3)
    assert info.path.parent == tmp_path and info.path.exists()
    west, south, east, north = info.footprint.bounds
    assert -80 < west < east < -76 and 23 < south < north < 26
    centre = info.footprint.centroid
    data, transform = read_window(
        engine,
        "landsat_test",
        (centre.x - 0.1, centre.y - 0.1, centre.x + 0.1, centre.y + 0.1),
    )
    assert 60 <= data.shape[0] <= 90 and transform.a == pytest.approx(300, rel=1e-3)


def test_geopackage_and_zipped_shapefile_in_utm(engine, real_data, tmp_path):
    """Files in a projected CRS are reprojected; zipped shapefiles are read."""
    src = read_file(real_data / "osm_wuhan_buildings.geojson")
    polys = np.array([g.geom_type == "Polygon" for g in src.geometries])
    utm = shapely.transform(src.geometries[polys], lambda c: _to_utm50(c))
    ids = np.asarray(src.columns["id"])[polys]
    heights = np.asarray(src.columns["height"], dtype=float)[polys]
    gpkg = tmp_path / "wuhan.gpkg"
    pyogrio.raw.write(
        gpkg,
        shapely.to_wkb(utm),
        [ids.astype(np.int64), heights],
        ["id", "height"],
        geometry_type="Polygon",
        crs="EPSG:32650",
        layer="wuhan",
        driver="GPKG",
    )
    report = ingest(engine, "buildings", gpkg, source="wuhan-gpkg")
    assert report.inserted == int(polys.sum()) and report.crs == "EPSG:32650"

    shp_dir = tmp_path / "shp"
    shp_dir.mkdir()
    pyogrio.raw.write(
        shp_dir / "wuhan.shp",
        shapely.to_wkb(utm),
        [ids.astype(np.int64)],
        ["id"],
        geometry_type="Polygon",
        crs="EPSG:32650",
        driver="ESRI Shapefile",
    )
    import zipfile

    archive = tmp_path / "wuhan_shp.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for part in shp_dir.iterdir():
            zf.write(part, part.name)
    zipped = ingest(engine, "buildings", archive, source="wuhan-zip")
    assert zipped.inserted == int(polys.sum())
    with engine.connect() as conn:
        gap = conn.execute(
            text(
                "SELECT max(ST_HausdorffDistance(a.geom, b.geom)) "
                "FROM layer_buildings a "
                "JOIN layer_buildings b USING (source_id, source_part) "
                "WHERE a.source = 'wuhan' AND b.source = 'wuhan-zip'"
            )
        ).scalar()
    assert gap < 1e-6  # round trip through UTM 50N is sub-millimetre


def _to_utm50(coords):
    import pyproj

    t = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32650", always_xy=True)
    x, y = t.transform(coords[:, 0], coords[:, 1])
    return np.column_stack([x, y])
