"""Risk zones in PostGIS against hand-computed cases, and incremental refresh.

Features are laid out in metres in EPSG:32649 (about 113.5 E, 22.9 N) and
stored in EPSG:4326, so every expected distance below is exact arithmetic.
All rows carry ``source = 'test_risk'`` and are removed afterwards.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, text

from models.risk import RiskSettings, compute, refresh, status
from models.risk.service import RiskBusy, UnknownRiskKind, _lock

SRC = "test_risk"
X, Y = 760_000.0, 2_535_000.0          # UTM 49N origin of the test world
TODAY = dt.date(2026, 12, 3)
LAYERS = ("buildings", "roads", "curtain_walls", "rivers", "construction_sites",
          "plants")


def box(x: float, y: float, w: float, h: float | None = None) -> str:
    h = w if h is None else h
    return (f"ST_Multi(ST_Transform(ST_MakeEnvelope({X + x}, {Y + y}, {X + x + w}, "
            f"{Y + y + h}, 32649), 4326))")


def point(x: float, y: float) -> str:
    return f"ST_Transform(ST_SetSRID(ST_MakePoint({X + x}, {Y + y}), 32649), 4326)"


def line(*pts: tuple[float, float]) -> str:
    coords = ", ".join(f"ST_MakePoint({X + x}, {Y + y})" for x, y in pts)
    return (f"ST_Multi(ST_Transform(ST_SetSRID(ST_MakeLine(ARRAY[{coords}]), 32649), "
            "4326))")


def insert(conn, layer: str, sid: str, geom: str, **props) -> int:
    cols = ", ".join(["source", "source_id", *props, "geom"])
    vals = ", ".join([":source", ":sid", *(f":{k}" for k in props), geom])
    return conn.execute(text(f"INSERT INTO layer_{layer} ({cols}) VALUES ({vals}) "
                             "RETURNING id"), {"source": SRC, "sid": sid, **props}
                        ).scalar_one()


def clean(engine: Engine) -> None:
    with engine.begin() as conn:
        for layer in LAYERS:
            conn.execute(text(f"DELETE FROM layer_{layer} WHERE source = :s"),
                         {"s": SRC})


@pytest.fixture
def settings(tmp_path: Path) -> RiskSettings:
    return RiskSettings(raster_path=tmp_path / "risk.tif", workers=1)


@pytest.fixture
def world(engine: Engine, settings: RiskSettings):
    """A D building with neighbours and roads, a C building, a river network
    A -> B -> C with a plant and a site, and curtain walls."""
    clean(engine)
    ids: dict[str, int] = {}
    with engine.begin() as conn:
        # D building, 20 x 20 m, 30 m high: hazard radius 30 m around the footprint
        ids["d"] = insert(conn, "buildings", "d", box(0, 0, 20), safety_grade="D",
                          height_m=30.0, use="residential")
        # 10 m east of it: inside; a school
        ids["school"] = insert(conn, "buildings", "school", box(30, 0, 10),
                               safety_grade="A", height_m=12.0, use="school")
        # 40 m east: outside
        ids["far"] = insert(conn, "buildings", "far", box(60, 0, 10),
                            safety_grade="B", height_m=12.0, use="residential")
        # diagonal off the NE corner (20, 20): corner at (40, 40) is 28.3 m away
        ids["diag_in"] = insert(conn, "buildings", "diag_in", box(40, 40, 5),
                                safety_grade="A", use="shop")
        # corner at (43, 43) is 32.5 m away: inside the bbox of the zone, not in it
        ids["diag_out"] = insert(conn, "buildings", "diag_out", box(43, 43, 5),
                                 safety_grade="A", use="hospital")
        # road through the middle: 20 + 2 x 30 = 80 m inside
        ids["road_mid"] = insert(conn, "roads", "road_mid",
                                 line((-100, 10), (100, 10)), road_class="primary")
        # road 15 m north of the top edge: 20 + 2 x sqrt(30^2 - 15^2) = 71.96 m
        ids["road_top"] = insert(conn, "roads", "road_top", line((-100, 35), (100, 35)),
                                 road_class="local")
        # road 35 m south: outside
        ids["road_out"] = insert(conn, "roads", "road_out",
                                 line((-100, -35), (100, -35)), road_class="local")
        # C building 1 km away, 4 floors, no height: 12 m -> 6 m -> minimum 10 m
        ids["c"] = insert(conn, "buildings", "c", box(1000, 0, 10), safety_grade="C",
                          floors=4, use="residential")
        # rivers: A (0..1000 m north), B (1000..2000), C (2000..3000) at x = 5000
        for code, down, y0 in (("TA", "TB", 0), ("TB", "TC", 1000),
                               ("TC", None, 2000)):
            ids[code] = insert(conn, "rivers", code,
                               line((5000, y0), (5000, y0 + 1000)),
                               code=code, downstream_code=down)
        # plant 100 m east of A's middle, 100,000 m3/a: 2 x 1 x (1 - 100/500) = 1.6
        ids["plant"] = insert(conn, "plants", "plant", point(5100, 500),
                              capacity_m3_per_year=100_000.0)
        # 1 ha site 400 m east of B, >= 600 m from A and C: 1 x 1 x (1 - 400/500)
        ids["site"] = insert(conn, "construction_sites", "site",
                             box(5400, 1450, 100), status="active")
        # a completed site next to C: ignored
        ids["done"] = insert(conn, "construction_sites", "done", box(5050, 2500, 100),
                             status="completed")
        # curtain walls 3 km away: one overdue (40 m high), one checked recently
        ids["wall_due"] = insert(conn, "curtain_walls", "wall_due", point(3000, 0),
                                 support_type="frame", accepted_on=dt.date(2015, 1, 1),
                                 last_checked_on=dt.date(2016, 1, 1), height_m=40.0)
        ids["wall_ok"] = insert(conn, "curtain_walls", "wall_ok", point(3000, 300),
                                support_type="point", accepted_on=dt.date(2015, 1, 1),
                                last_checked_on=dt.date(2024, 6, 1), height_m=40.0)
    compute(engine, settings, today=TODAY)
    yield ids
    clean(engine)
    compute(engine, settings, today=TODAY, write_raster=False)


def zone(engine: Engine, kind: str, subject_id: int) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT id, level, score, radius_m, building_ids, sensitive_ids, "
            "building_count, sensitive_count, road_length_m, cause_ids, reasons, "
            "detail, computed_at, stale, "
            "ST_Area(ST_Transform(geom, 32649)) AS area_m2 "
            "FROM layer_risk_zones WHERE kind = :k AND subject_id = :s"),
            {"k": kind, "s": subject_id}).mappings().first()
    return dict(row) if row else None


def my_zones(engine: Engine, ids: dict[str, int]) -> dict[tuple[str, int], tuple]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT kind, subject_id, id, computed_at FROM layer_risk_zones "
            "WHERE subject_id = ANY(:ids)"), {"ids": list(ids.values())}).all()
    return {(k, s): (i, c) for k, s, i, c in rows}


def test_dangerous_building_zone_hand_computed(engine, world):
    z = zone(engine, "dangerous_building", world["d"])
    assert z is not None
    assert z["radius_m"] == 30.0
    # area of a 20 m square buffered by 30 m: 400 + 4*20*30 + pi*30^2 (32-gon corners)
    exact = 400 + 2400 + math.pi * 900
    assert z["area_m2"] == pytest.approx(exact, rel=0.005)
    assert z["building_ids"] == sorted([world["school"], world["diag_in"]])
    assert z["building_count"] == 2
    assert z["sensitive_ids"] == [world["school"]]
    expected_road = 80.0 + 20.0 + 2 * math.sqrt(30**2 - 15**2)
    assert z["road_length_m"] == pytest.approx(expected_road, abs=0.5)
    # score 1.0 x (1 + 0.05*2 + 0.5*1 + 0.5*road_km) -> orange
    assert z["score"] == pytest.approx(1.0 + 0.1 + 0.5 + 0.5 * expected_road / 1000,
                                       abs=1e-3)
    assert z["level"] == "orange"
    assert z["cause_ids"] == {"buildings": [world["d"]]}
    assert z["stale"] is False


def test_c_building_uses_floors_and_minimum_radius(engine, world):
    z = zone(engine, "dangerous_building", world["c"])
    assert z["radius_m"] == 10.0
    assert z["detail"]["height_m"] == 12.0
    assert z["level"] == "yellow"          # 0.6, nothing around
    assert zone(engine, "dangerous_building", world["far"]) is None  # grade B


def test_river_pressure_accumulates_downstream(engine, world):
    a = zone(engine, "river_pressure", world["TA"])
    b = zone(engine, "river_pressure", world["TB"])
    c = zone(engine, "river_pressure", world["TC"])
    assert a["score"] == pytest.approx(1.6)
    assert a["detail"]["local"] == pytest.approx(1.6)
    assert a["cause_ids"] == {"plants": [world["plant"]]}
    assert b["detail"]["local"] == pytest.approx(0.2, abs=1e-3)
    assert b["detail"]["upstream"] == pytest.approx(1.6)
    assert b["score"] == pytest.approx(1.8, abs=1e-3)
    assert b["cause_ids"]["construction_sites"] == [world["site"]]
    assert b["cause_ids"]["upstream_segments"] == ["TA"]
    assert c["score"] == pytest.approx(1.8, abs=1e-3)      # completed site ignored
    assert c["detail"]["local"] == 0.0
    assert c["reasons"] == ["upstream"]
    assert c["radius_m"] == 500.0


def test_curtain_wall_fall_zone(engine, world):
    z = zone(engine, "curtain_wall", world["wall_due"])
    assert z["radius_m"] == 20.0                        # 0.5 x 40 m
    assert z["area_m2"] == pytest.approx(math.pi * 400, rel=0.01)
    assert z["reasons"] == ["overdue_check"]
    assert z["detail"]["next_due"] == "2021-01-01"
    assert zone(engine, "curtain_wall", world["wall_ok"]) is None


def test_grid_and_raster(engine, world, settings):
    import rasterio

    with engine.connect() as conn:
        cells = conn.execute(text(
            "SELECT cell_id, building_score, curtain_wall_score, river_score, "
            "composite, hotspot FROM layer_risk_grid "
            "WHERE ST_Intersects(geom, (SELECT geom FROM layer_buildings "
            "WHERE id = :d))"), {"d": world["d"]}).mappings().all()
        zone_sum, cell_sum, districts = conn.execute(text(
            "SELECT (SELECT sum(score) FROM layer_risk_zones "
            "        WHERE kind = 'dangerous_building'), "
            "(SELECT sum(building_score) FROM layer_risk_grid), "
            "(SELECT count(*) FROM layer_districts)")).one()
    assert cells and all(c["building_score"] > 0 and c["composite"] > 0 for c in cells)
    if districts == 0:   # all cells in the study area: zone scores are conserved
        assert cell_sum == pytest.approx(zone_sum, rel=1e-4)
    with rasterio.open(settings.raster_path) as src:
        assert src.crs.to_epsg() == 32649
        assert src.res == (settings.grid_cell_m, settings.grid_cell_m)
        value = next(src.sample([(X + 10, Y + 10)]))[0]
        assert value > 0
        assert np.isclose(value, max(c["composite"] for c in cells), rtol=1e-5)


def test_edit_updates_exactly_the_touched_zones(engine, world, settings):
    before = my_zones(engine, world)
    assert ("dangerous_building", world["d"]) in before
    with engine.begin() as conn:
        # taller D building: its zone grows to 45 m and takes in "far" (40 m)
        conn.execute(text("UPDATE layer_buildings SET height_m = 45 WHERE id = :i"),
                     {"i": world["d"]})
    assert zone(engine, "dangerous_building", world["d"])["stale"] is True
    assert zone(engine, "dangerous_building", world["c"])["stale"] is False
    report = refresh(engine, settings, today=TODAY)
    after = my_zones(engine, world)
    z = zone(engine, "dangerous_building", world["d"])
    assert z["radius_m"] == 45.0 and z["stale"] is False
    assert world["far"] in z["building_ids"] and world["diag_out"] in z["sensitive_ids"]
    changed = {k for k in before if after.get(k) != before[k]}
    assert changed == {("dangerous_building", world["d"])}
    assert after[("dangerous_building", world["d"])][0] == before[
        ("dangerous_building", world["d"])][0]                  # same zone id
    runs = {r.kind: r for r in report.kinds}
    assert runs["dangerous_building"].mode == "incremental"
    assert "river_pressure" not in runs

    # a new plant next to B: B and C (downstream) change, A and the rest do not
    before = after
    with engine.begin() as conn:
        world["plant2"] = insert(conn, "plants", "plant2", point(4900, 1500))
    refresh(engine, settings, today=TODAY)
    after = my_zones(engine, world)
    changed = {k for k in before if after.get(k) != before[k]}
    assert changed == {("river_pressure", world["TB"]), ("river_pressure", world["TC"])}
    assert zone(engine, "river_pressure", world["TC"])["score"] == pytest.approx(
        1.8 + 2 * 0.8, abs=1e-3)

    # downgrading the D building to B removes its zone and nothing else
    before = after
    with engine.begin() as conn:
        conn.execute(text("UPDATE layer_buildings SET safety_grade = 'B' "
                          "WHERE id = :i"), {"i": world["d"]})
    refresh(engine, settings, today=TODAY)
    after = my_zones(engine, world)
    assert set(before) - set(after) == {("dangerous_building", world["d"])}
    assert all(after[k] == before[k] for k in after)


def test_road_edit_reaches_zone_exposure(engine, world, settings):
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM layer_roads WHERE id = :i"),
                     {"i": world["road_mid"]})
    refresh(engine, settings, today=TODAY)
    z = zone(engine, "dangerous_building", world["d"])
    assert z["road_length_m"] == pytest.approx(2 * math.sqrt(30**2 - 15**2) + 20,
                                               abs=0.5)


def test_wall_zone_follows_the_calendar_without_edits(engine, world, settings):
    # the point-supported wall checked 2024-06-01 falls due 2027-06-01
    refresh(engine, settings, today=dt.date(2027, 6, 1))
    assert zone(engine, "curtain_wall", world["wall_ok"]) is None
    report = refresh(engine, settings, today=dt.date(2027, 6, 2))
    z = zone(engine, "curtain_wall", world["wall_ok"])
    assert z is not None and z["reasons"] == ["overdue_check"]
    runs = {r.kind: r for r in report.kinds}
    assert runs["curtain_wall"].mode == "incremental"
    # a check recorded: the zone goes
    with engine.begin() as conn:
        conn.execute(text("UPDATE layer_curtain_walls SET last_checked_on = "
                          "'2027-06-02' WHERE id = :i"), {"i": world["wall_ok"]})
    refresh(engine, settings, today=dt.date(2027, 6, 2))
    assert zone(engine, "curtain_wall", world["wall_ok"]) is None


def test_typhoon_flag_in_extra(engine, world, settings):
    with engine.begin() as conn:
        conn.execute(text("UPDATE layer_curtain_walls SET extra = extra || "
                          "'{\"typhoon_flagged_on\": \"2026-09-16\"}' WHERE id = :i"),
                     {"i": world["wall_ok"]})
    refresh(engine, settings, today=TODAY)
    z = zone(engine, "curtain_wall", world["wall_ok"])
    assert z["reasons"] == ["typhoon"] and z["level"] == "red"


def test_wall_zone_follows_the_curtain_wall_feeds(engine, world, settings):
    """The zones read the same schedule as supervision: feed checks and events."""
    from ingest.feeds import load_feed
    from layers.feeds import get_feed

    feed_src = f"{SRC}-feed"
    try:
        # the overdue wall (layer: checked 2016) checked again per the feed
        report = load_feed(engine, get_feed("curtain_wall_checks"), records=[
            {"wall_id": "wall_due", "checked_on": "2026-06-01",
             "kind": "safety_check"}], source=feed_src)
        assert report.rejected == 0
        # burst glass on the other one, not yet appraised
        load_feed(engine, get_feed("curtain_wall_events"), records=[
            {"wall_id": "wall_ok", "occurred_on": "2026-11-20",
             "event": "burst_glass"}], source=feed_src)
        refresh(engine, settings, today=TODAY)
        assert zone(engine, "curtain_wall", world["wall_due"]) is None
        z = zone(engine, "curtain_wall", world["wall_ok"])
        assert z["reasons"] == ["event_appraisal"] and z["level"] == "red"
        # the appraisal recorded: the zone goes
        load_feed(engine, get_feed("curtain_wall_checks"), records=[
            {"wall_id": "wall_ok", "checked_on": "2026-11-25", "kind": "appraisal"}],
            source=feed_src)
        refresh(engine, settings, today=TODAY)
        assert zone(engine, "curtain_wall", world["wall_ok"]) is None
    finally:
        with engine.begin() as conn:
            for feed in ("curtain_wall_checks", "curtain_wall_events"):
                conn.execute(text(f"DELETE FROM feed_{feed} WHERE source = :s"),
                             {"s": feed_src})
        refresh(engine, settings, today=TODAY)


def test_wall_on_a_dangerous_building_gets_a_zone(engine, world, settings):
    with engine.begin() as conn:
        conn.execute(text("UPDATE layer_curtain_walls SET building = 'c' "
                          "WHERE id = :i"), {"i": world["wall_ok"]})
    refresh(engine, settings, today=TODAY)
    z = zone(engine, "curtain_wall", world["wall_ok"])
    assert z["reasons"] == ["dangerous_building"]


def test_full_recompute_without_changes_writes_nothing(engine, world, settings):
    before = my_zones(engine, world)
    report = compute(engine, settings, today=TODAY, write_raster=False)
    assert my_zones(engine, world) == before
    assert sum(r.inserted + r.updated for r in report.kinds) == 0


def test_status_and_errors(engine, world, settings):
    info = status(engine)
    kinds = {row["kind"] for row in info["zones"]}
    assert {"dangerous_building", "curtain_wall", "river_pressure"} <= kinds
    with pytest.raises(UnknownRiskKind):
        compute(engine, settings, ["volcano"])
    with _lock(engine), pytest.raises(RiskBusy):
        refresh(engine, settings, today=TODAY)


def test_bulk_change_falls_back_to_full(engine, world, tmp_path):
    bulk = RiskSettings(raster_path=tmp_path / "r.tif", workers=1,
                        refresh_full_threshold=0)
    with engine.begin() as conn:
        conn.execute(text("UPDATE layer_plants SET capacity_m3_per_year = 200000 "
                          "WHERE id = :i"), {"i": world["plant"]})
    report = refresh(engine, bulk, today=TODAY, write_raster=False)
    runs = {r.kind: r for r in report.kinds}
    assert runs["river_pressure"].mode == "full"
    assert zone(engine, "river_pressure", world["TA"])["score"] == pytest.approx(3.2)


def test_cli(engine, world, db_settings, tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from gis_server.cli_risk import risk_app
    from gis_server.settings import database_settings

    monkeypatch.setenv("DATABASE_URL", db_settings.effective_url())
    monkeypatch.setenv("GIS_RISK_RASTER_PATH", str(tmp_path / "cli.tif"))
    database_settings.cache_clear()
    try:
        runner = CliRunner()
        result = runner.invoke(risk_app, ["compute", "--kind", "river_pressure",
                                          "--today", "2026-12-03", "--json"])
        assert result.exit_code == 0, result.output
        assert [r["kind"] for r in json.loads(result.output)["kinds"]] == [
            "river_pressure"]
        assert (tmp_path / "cli.tif").exists()
        result = runner.invoke(risk_app, ["status", "--json"])
        assert result.exit_code == 0, result.output
        info = json.loads(result.output)
        assert any(r["kind"] == "river_pressure" for r in info["runs"])
        result = runner.invoke(risk_app, ["refresh", "--no-raster"])
        assert result.exit_code == 0, result.output
        result = runner.invoke(risk_app, ["compute", "--kind", "volcano"])
        assert result.exit_code != 0
    finally:
        database_settings.cache_clear()


def _grid_values(engine: Engine) -> dict[str, tuple]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT cell_id, building_score, curtain_wall_score, river_score, "
            "composite, gi_z, hotspot FROM layer_risk_grid")).all()
    return {r[0]: tuple(r[1:]) for r in rows}


def test_incremental_grid_matches_full_grid(engine, world, settings):
    from models.risk.grid import compute_grid

    with engine.begin() as conn:
        conn.execute(text("UPDATE layer_buildings SET height_m = 60 WHERE id = :i"),
                     {"i": world["d"]})
        insert(conn, "plants", "plant3", point(4900, 2500))
        conn.execute(text("DELETE FROM layer_buildings WHERE id = :i"),
                     {"i": world["c"]})
    report = refresh(engine, settings, today=TODAY, write_raster=False)
    assert report.grid is not None
    incremental = _grid_values(engine)
    compute_grid(engine, settings, write_raster=False)
    full = _grid_values(engine)
    assert incremental.keys() == full.keys()
    for key, values in full.items():
        assert incremental[key][:4] == pytest.approx(values[:4], abs=2e-6), key
        assert incremental[key][4] == pytest.approx(values[4], abs=2e-3), key
        assert incremental[key][5] == values[5], key
