"""Ingest rules on hand-made files: CSV, CRS, bad rows, strict, mapping, upsert."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely
from sqlalchemy import text

from gis_server.errors import IngestError, InvalidParameter, StrictIngestFailed
from ingest.batch import FeatureBatch
from ingest.loader import load_batch
from ingest.readers import read_file
from layers import get_layer

PLANTS = get_layer("plants")
BUILDINGS = get_layer("buildings")


def rows(engine, layer, source, cols="*"):
    with engine.connect() as conn:
        return (
            conn.execute(
                text(
                    f"SELECT {cols} FROM {get_layer(layer).table} WHERE source = :s "
                    "ORDER BY source_id, source_part"
                ),
                {"s": source},
            )
            .mappings()
            .all()
        )


def write(tmp_path: Path, name: str, content: str, encoding="utf-8") -> Path:
    path = tmp_path / name
    path.write_text(content, encoding=encoding)
    return path


def test_csv_lon_lat_with_bad_rows(engine, tmp_path):
    path = write(
        tmp_path,
        "plants.csv",
        (
            "id,企业名称,经度,纬度,capacity,credit\n"
            "P1,华南混凝土,113.30,23.12,600000,88\n"
            "P2,越秀建材,abc,23.10,500000,90\n"
            "P3,北方站,200.5,23.10,1,1\n"
            "P4,番禺商砼,113.36,22.95,not-a-number,75\n"
            "P5,短行,113.1\n"
        ),
    )
    batch = read_file(path, id_aliases=PLANTS.id_aliases)
    report = load_batch(engine, PLANTS, batch, source="csv-plants")
    assert (report.read, report.inserted, report.rejected) == (5, 2, 3)
    by_row = {i.row: i for i in report.issues}
    # Row numbers are file lines (header is line 1).
    assert "not numbers" in by_row[3].reason and by_row[3].source_id == "P2"
    assert "out of range" in by_row[4].reason
    assert "columns" in by_row[6].reason
    assert by_row[5].action == "warning" and "capacity" in by_row[5].reason
    stored = rows(engine, "plants", "csv-plants")
    assert [r["enterprise"] for r in stored] == ["华南混凝土", "番禺商砼"]
    assert stored[1]["capacity_m3_per_year"] is None
    assert stored[1]["extra"] == {"capacity": "not-a-number"}
    assert stored[0]["credit_score"] == 88


def test_csv_wkt_gb18030_and_cgcs2000(engine, tmp_path):
    path = write(
        tmp_path,
        "sites.csv",
        (
            "编号;项目名称;WKT;status\n"
            "S1;天河工地;POLYGON((113.30 23.10,113.31 23.10,113.31 23.11,"
            "113.30 23.10));active\n"
            "S2;坏几何;POLYGON((1 1, 2;planned\n"
        ),
        encoding="gb18030",
    )
    spec = get_layer("construction_sites")
    batch = read_file(path, crs="4490", id_field="编号")
    report = load_batch(engine, spec, batch, source="wkt-sites")
    assert (report.inserted, report.rejected) == (1, 1)
    assert report.crs == "EPSG:4490"
    assert "unparseable WKT" in report.issues[0].reason
    stored = rows(
        engine,
        "construction_sites",
        "wkt-sites",
        "project, status, source_id, ST_AsText(geom) AS wkt",
    )
    assert stored[0]["project"] == "天河工地" and stored[0]["source_id"] == "S1"
    # CGCS2000 and WGS84 coincide to well under a millimetre here.
    assert stored[0]["wkt"].startswith("MULTIPOLYGON(((113.3 23.1")


def test_strict_writes_nothing(engine, tmp_path):
    path = write(tmp_path, "strict.csv", "id,lon,lat\nA,113.3,23.1\nB,,23.1\n")
    batch = read_file(path, id_aliases=PLANTS.id_aliases)
    with pytest.raises(StrictIngestFailed) as info:
        load_batch(engine, PLANTS, batch, source="strict", strict=True)
    assert info.value.report.rejected == 1
    assert rows(engine, "plants", "strict") == []
    # Without --strict the good row commits and the bad one is listed.
    report = load_batch(engine, PLANTS, batch, source="strict")
    assert report.committed and report.inserted == 1 and report.rejected == 1


def test_field_mapping_and_choices(engine):
    geoms = np.array([shapely.box(113.3, 23.1, 113.3001, 23.1001)] * 3, dtype=object)
    batch = FeatureBatch(
        geoms,
        {
            "H": [12.5, 30, -4],
            "grade": ["c", "E", "D"],
            "层数": ["5", "5.5", "12"],
            "建成": ["1990", "", "2001"],
        },
        ids=np.array(["a", "b", "c"], dtype=object),
    )
    report = load_batch(
        engine,
        BUILDINGS,
        batch,
        source="mapping",
        field_map={"H": "height_m", "建成": "built_year"},
    )
    assert report.field_mapping == {
        "H": "height_m",
        "建成": "built_year",
        "grade": "safety_grade",
        "层数": "floors",
    }
    warnings = sorted(i.reason.split(" is not")[0] for i in report.issues)
    assert warnings == ["H=-4", "grade='E'", "层数='5.5'"]
    stored = rows(engine, "buildings", "mapping")
    assert [r["safety_grade"] for r in stored] == ["C", None, "D"]
    assert [r["height_m"] for r in stored] == [12.5, 30, None]
    assert [r["floors"] for r in stored] == [5, None, 12]
    assert stored[1]["extra"] == {"grade": "E", "层数": "5.5"}
    assert stored[2]["extra"] == {"H": -4}
    with pytest.raises(InvalidParameter, match="no property 'heigth'"):
        load_batch(engine, BUILDINGS, batch, source="x", field_map={"H": "heigth"})


def test_upsert_updates_changed_rows_and_keeps_ids(engine):
    def batch(heights):
        geoms = np.array(
            [shapely.Point(113.3 + i * 0.001, 23.1) for i in range(3)], dtype=object
        )
        return FeatureBatch(
            geoms, {"capacity": heights}, ids=np.array(["x", "y", "z"], dtype=object)
        )

    first = load_batch(engine, PLANTS, batch([1.0, 2.0, 3.0]), source="upsert")
    before = {r["source_id"]: r for r in rows(engine, "plants", "upsert")}
    second = load_batch(engine, PLANTS, batch([1.0, 2.5, 3.0]), source="upsert")
    after = {r["source_id"]: r for r in rows(engine, "plants", "upsert")}
    assert (first.inserted, second.updated, second.unchanged) == (3, 1, 2)
    assert {k: v["id"] for k, v in before.items()} == {
        k: v["id"] for k, v in after.items()
    }
    assert after["y"]["updated_at"] > before["y"]["updated_at"]
    assert after["x"]["updated_at"] == before["x"]["updated_at"]

    shrunk = FeatureBatch(
        np.array([shapely.Point(113.3, 23.1)], dtype=object),
        {"capacity": [1.0]},
        ids=np.array(["x"], dtype=object),
    )
    synced = load_batch(engine, PLANTS, shrunk, source="upsert", sync=True)
    assert synced.deleted == 2 and [
        r["source_id"] for r in rows(engine, "plants", "upsert")
    ] == ["x"]


def test_multi_types_and_mixed_layer(engine):
    walls = get_layer("curtain_walls")
    geoms = np.array(
        [
            shapely.box(113.3, 23.1, 113.301, 23.101),  # polygon -> multipolygon
            shapely.Point(113.31, 23.11),  # point stays a point
            shapely.LineString([(113.3, 23.1), (113.4, 23.2)]),  # refused
            shapely.Polygon(),  # empty
            None,  # missing
        ],
        dtype=object,
    )
    batch = FeatureBatch(geoms, {}, ids=np.array(list("abcde"), dtype=object))
    report = load_batch(engine, walls, batch, source="walls")
    assert (report.inserted, report.rejected) == (2, 3)
    reasons = [i.reason for i in report.issues]
    assert reasons[0].startswith("LineString is not accepted")
    assert reasons[1] == "empty geometry" and reasons[2].startswith("no geometry")
    kinds = [
        r["t"] for r in rows(engine, "curtain_walls", "walls", "GeometryType(geom) t")
    ]
    assert kinds == ["MULTIPOLYGON", "POINT"]


def test_reader_errors_are_one_line(tmp_path):
    with pytest.raises(IngestError, match="no such file"):
        read_file(tmp_path / "missing.geojson")
    bad = write(tmp_path, "noxy.csv", "id,name\n1,a\n")
    with pytest.raises(IngestError, match="no geometry columns"):
        read_file(bad)
    junk = write(tmp_path, "junk.geojson", "{not json")
    with pytest.raises(IngestError, match=r"cannot read junk\.geojson"):
        read_file(junk)


def _cli(db_settings, *args, cwd=None):
    env = dict(
        os.environ,
        DATABASE_URL=db_settings.effective_url(),
        GIS_INGEST_REPORT_DIR=str(cwd or "."),
        COLUMNS="200",
    )
    exe = Path(sys.executable).parent / "gis-server"
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, env=env, timeout=120, cwd=cwd
    )


def test_cli_ingest_summary_and_report(db_settings, real_data, tmp_path):
    report = tmp_path / "wuhan.json"
    result = _cli(
        db_settings,
        "ingest",
        "buildings",
        str(real_data / "osm_wuhan_buildings.geojson"),
        "--source",
        "cli-wuhan",
        "--report",
        str(report),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("buildings: read 355 / inserted 265 /")
    assert "rejected 90" in summary
    saved = json.loads(report.read_text())
    assert saved["rejected"] == 90 and len(saved["issues"]) == 90
    audited = _cli(db_settings, "audit", "--target", "buildings", "--json")
    entry = json.loads(audited.stdout)[0]
    assert entry["action"] == "ingest" and entry["actor"].startswith("cli:")
    assert entry["after"]["inserted"] == 265 and entry["after"]["rejected"] == 90

    strict = _cli(
        db_settings,
        "ingest",
        "buildings",
        str(real_data / "osm_wuhan_buildings.geojson"),
        "--source",
        "cli-strict",
        "--strict",
        cwd=tmp_path,
    )
    assert strict.returncode == 1
    assert (
        strict.stderr.strip().splitlines()[-1].startswith("error: --strict: 90 of 355")
    )


def test_cli_failures_exit_non_zero_with_one_line(db_settings, tmp_path):
    missing = _cli(db_settings, "ingest", "plants", str(tmp_path / "nope.csv"))
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: no such file: {tmp_path / 'nope.csv'}"
    unknown = _cli(db_settings, "ingest", "volcanoes", "x.csv")
    assert unknown.returncode != 0 and "volcanoes" in unknown.stderr
    bad_field = write(tmp_path, "p.csv", "id,lon,lat\n1,113.3,23.1\n")
    result = _cli(db_settings, "ingest", "plants", str(bad_field), "--field", "oops")
    assert result.returncode == 1
    assert "--field takes SOURCE=PROPERTY" in result.stderr
    bad_crs = _cli(
        db_settings, "ingest", "plants", str(bad_field), "--crs", "EPSG:99999"
    )
    assert bad_crs.returncode == 1 and "unknown CRS" in bad_crs.stderr
    dead = subprocess.run(
        [str(Path(sys.executable).parent / "gis-server"), "layers"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, DATABASE_URL="postgresql+psycopg2://x@127.0.0.1:9/none"),
    )
    assert dead.returncode == 1
    assert dead.stderr.strip().startswith("error: cannot reach the database")


def test_copy_escaping_round_trips_awkward_text(engine):
    awkward = ["tab\there", "back\\slash \\N", "new\nline\r", "引号\"'，", "plain"]
    geoms = np.array([shapely.Point(113.3, 23.1)] * len(awkward), dtype=object)
    batch = FeatureBatch(
        geoms,
        {"enterprise": awkward, "note": awkward},
        ids=np.array([f"e{i}" for i in range(len(awkward))], dtype=object),
    )
    load_batch(engine, PLANTS, batch, source="escapes")
    stored = rows(engine, "plants", "escapes")
    assert [r["enterprise"] for r in stored] == [a.strip() for a in awkward]
    assert [r["extra"]["note"] for r in stored] == awkward


def test_bulk_load_rebuilds_the_indexes_it_drops(engine):
    def indexes():
        with engine.connect() as conn:
            return sorted(
                conn.execute(
                    text(
                        "SELECT indexdef FROM pg_indexes "
                        "WHERE tablename = 'layer_plants'"
                    )
                ).scalars()
            )

    before = indexes()
    n = 60
    geoms = np.array(
        [shapely.Point(113.3 + i * 1e-4, 23.1) for i in range(n)], dtype=object
    )
    batch = FeatureBatch(
        geoms,
        {"capacity": np.arange(n, dtype=float)},
        ids=np.array([f"k{i}" for i in range(n)], dtype=object),
    )
    report = load_batch(engine, PLANTS, batch, source="bulk", bulk_rows=10)
    assert report.inserted == n and "index" in report.phases
    assert indexes() == before
    again = load_batch(engine, PLANTS, batch, source="bulk", bulk_rows=10)
    assert again.unchanged == n and "index" not in again.phases
