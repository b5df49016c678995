"""Stored network -> simulated readings -> train -> score -> patrols, in PostGIS."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import text

from ingest.observations import load_observations
from models.water import service
from models.water.network import network_from_database, synthetic_network
from models.water.settings import WaterSettings
from models.water.simulate import simulate
from models.water.store import PIVOT_INDICATORS

SOURCE = "test-water-pipeline"


@pytest.fixture
def stored_city(engine):
    """A 300-segment synthetic network written to the rivers/stations layers."""
    net = synthetic_network(300, seed=11)
    # codes of their own: other tests may have stored rivers too
    net.codes = np.array([f"WP{c}" for c in net.codes], dtype=object)
    net.station_codes = np.array([f"WP{c}" for c in net.station_codes], dtype=object)
    with engine.begin() as conn:
        for table in (
            "layer_rivers",
            "layer_monitoring_stations",
            "layer_construction_sites",
            "layer_plants",
        ):
            conn.execute(text(f"DELETE FROM {table} WHERE source = :s"), {"s": SOURCE})
        rivers = []
        for i, code in enumerate(net.codes):
            lon, lat = net.lonlat[i]
            d = int(net.downstream[i])
            rivers.append(
                {
                    "c": code,
                    "d": net.codes[d] if d >= 0 else None,
                    "ch": net.chief_id[i],
                    "cl": net.chief_level[i],
                    "r": bool(net.remediated[i]),
                    "wkt": f"LINESTRING({lon - 0.002} {lat}, {lon + 0.002} {lat})",
                }
            )
        conn.execute(
            text("""
            INSERT INTO layer_rivers (source, source_id, code, downstream_code,
                chief_id, chief_level, remediated, length_m, geom)
            VALUES (:src, :c, :c, :d, :ch, :cl, :r, 500,
                    ST_Multi(ST_GeomFromText(:wkt, 4326)))"""),
            [dict(r, src=SOURCE) for r in rivers],
        )
        conn.execute(
            text("""
            INSERT INTO layer_monitoring_stations (source, source_id, code, river_code,
                kind, geom)
            VALUES (:src, :c, :c, :r, 'manual',
                    ST_SetSRID(ST_MakePoint(:x, :y), 4326))"""),
            [
                {
                    "src": SOURCE,
                    "c": c,
                    "r": net.codes[s],
                    "x": float(net.lonlat[s][0]),
                    "y": float(net.lonlat[s][1]),
                }
                for c, s in zip(net.station_codes, net.station_segment, strict=True)
            ],
        )
        lon = 113.0 + net.source_xy[:, 0] / (111_320 * 0.92)
        lat = 23.0 + net.source_xy[:, 1] / 110_570
        conn.execute(
            text("""
            INSERT INTO layer_plants (source, source_id, enterprise, geom)
            VALUES (:src, :i, 'plant', ST_SetSRID(ST_MakePoint(:x, :y), 4326))"""),
            [
                {"src": SOURCE, "i": str(i), "x": float(x), "y": float(y)}
                for i, (x, y) in enumerate(zip(lon, lat, strict=True))
            ],
        )
        conn.execute(text("DELETE FROM water_observations"))
        conn.execute(text("DELETE FROM water_samples"))
        conn.execute(text("DELETE FROM water_patrol_records"))
    yield
    with engine.begin() as conn:
        for table in ("layer_rivers", "layer_monitoring_stations", "layer_plants"):
            conn.execute(text(f"DELETE FROM {table} WHERE source = :s"), {"s": SOURCE})
        conn.execute(text("DELETE FROM water_observations"))
        conn.execute(text("DELETE FROM water_samples"))
        conn.execute(text("DELETE FROM water_patrol_records"))
        conn.execute(text("DELETE FROM layer_water_quality_warnings"))
        conn.execute(text("DELETE FROM layer_patrol_tasks"))


def test_pipeline_through_the_database(engine, stored_city, tmp_path):
    settings = WaterSettings(model_dir=tmp_path, clusters=4)
    net = network_from_database(engine)
    mine = np.char.startswith(net.codes.astype(str), "WPR")
    assert mine.sum() == 300
    assert np.char.startswith(net.station_codes.astype(str), "WPS").sum() > 200
    city = simulate(net, seed=5, history_days=120)
    stored = service.write_simulation(engine, city, label_fraction=0.3, seed=5)
    assert stored["readings"] == len(city.readings) * len(city.readings.values)
    assert stored["labels"] > 50

    model, path = service.train_from_database(engine, settings, city.now, seed=5)
    assert path.exists() and model.labelled == stored["labels"]
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT labelled FROM water_models WHERE version = :v"),
                {"v": model.version},
            ).scalar()
            == model.labelled
        )
    counts = service.score_database(engine, settings, city.now)
    assert sum(counts.values()) == len(net)
    with engine.connect() as conn:
        rows = conn.execute(
            text("""
            SELECT segment_code, probability, model_version, top_factors,
                   GeometryType(geom)
            FROM layer_water_quality_warnings""")
        ).all()
    assert len(rows) == len(net)
    assert {r[2] for r in rows} == {model.version}
    assert all(len(r[3]) == settings.top_factors for r in rows)
    assert {r[4] for r in rows} == {"MULTILINESTRING"}
    # scores from the database agree with the truth far better than chance
    from sklearn.metrics import roc_auc_score

    prob = {r[0]: r[1] for r in rows}
    p = np.array([prob[c] for c in city.network.codes])
    assert roc_auc_score(city.truth[mine], p[mine]) > 0.8

    tasks = service.plan_patrols(
        engine,
        settings,
        city.now,
        period_start=city.now.date(),
        period_end=city.now.date() + dt.timedelta(days=9),
    )
    assert tasks and all(t.urgency_rank >= 1 for t in tasks)


def _old_pivot(engine, net, now, lookback_days):
    """Reference: the GROUP BY pivot of water_observations that read_readings ran
    before water_samples existed, as rows sorted by (station index, time)."""
    start = now - dt.timedelta(days=lookback_days)
    cols = ", ".join(
        f"coalesce(max(o.value) FILTER (WHERE o.indicator = '{k}'), 'NaN')"
        for k in PIVOT_INDICATORS
    )
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT s.idx - 1, extract(epoch FROM o.observed_at), {cols} "
                "FROM water_observations o JOIN unnest(CAST(:codes AS text[])) "
                "WITH ORDINALITY AS s(code, idx) ON s.code = o.station_code "
                "WHERE o.observed_at >= :a AND o.observed_at < :b "
                "GROUP BY s.idx, o.observed_at ORDER BY 1, 2"
            ),
            {"codes": list(net.station_codes), "a": start, "b": now},
        ).all()
    table = np.array([[float(v) for v in r] for r in rows])
    table[:, 1] = (table[:, 1] - start.timestamp()) / 86400
    return table


def test_read_readings_equals_the_pivot_of_observations(engine, stored_city, tmp_path):
    net = network_from_database(engine)
    city = simulate(net, seed=7, history_days=40, sample_every_days=3)
    service.write_simulation(engine, city, label_fraction=0.0, seed=7)
    # a second source of readings at the same samples: new indicators, repeats
    path_rows = ["station,time,indicator,value"]
    for code in net.station_codes[:20]:
        t = (city.now - dt.timedelta(days=1)).isoformat()
        path_rows += [f"{code},{t},cod,25", f"{code},{t},bod5,4"]
    csv = tmp_path / "extra.csv"
    csv.write_text("\n".join(path_rows) + "\n", encoding="utf-8")
    load_observations(engine, csv, check_stations=False, update=True)
    for lookback in (30, 10):
        got = service.read_readings(engine, net, city.now, lookback)
        ref = _old_pivot(engine, net, city.now, lookback)
        assert len(got.station) == len(ref) > 100
        table = np.column_stack(
            [got.station, got.day] + [got.values[k] for k in PIVOT_INDICATORS]
        )
        table = table[np.lexsort((table[:, 1], table[:, 0]))]
        np.testing.assert_array_equal(table[:, 0], ref[:, 0])
        np.testing.assert_allclose(table[:, 1], ref[:, 1], rtol=0, atol=1e-9)
        np.testing.assert_array_equal(table[:, 2:], ref[:, 2:])  # NaN == NaN here


def test_zonal_mean_over_river_buffers(engine, stored_city, tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    from models.water.rasters import river_buffers, zonal_mean

    net = network_from_database(engine)
    mine = np.char.startswith(net.codes.astype(str), "WPR")
    lon0 = net.lonlat[mine, 0].min() - 0.05
    lat1 = net.lonlat[mine, 1].max() + 0.05
    width, height = 400, 400
    res = 0.002
    data = np.zeros((height, width), dtype="float32")
    data[:, width // 2 :] = 1.0  # east half fully impervious
    path = tmp_path / "impervious.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=from_origin(lon0, lat1, res, res),
    ) as dst:
        dst.write(data, 1)
    zones = river_buffers(engine, net.codes, 200.0)
    values = zonal_mean(path, zones)
    mid = lon0 + width // 2 * res
    east = mine & (net.lonlat[:, 0] > mid + 0.01)
    west = mine & (net.lonlat[:, 0] < mid - 0.01)
    assert np.all(values[east] > 0.99) and np.all(values[west] < 0.01)
