"""Benchmarks of the water domain (synthetic data); prints figures, asserts nothing.

Model part (light, default):
    .venv/bin/python bench/bench_water.py model [--segments 10000]
  simulate a 10,000-segment city, build features, train (20 % labels), score all
  segments, and evaluate model vs rules baseline at 5 / 20 / 50 % labels.

Observation store (heavy; run rarely -- it loads ten million readings):
    .venv/bin/python bench/bench_water.py store [--readings 10000000] [--partitioned]
  writes a wide CSV of simulated readings, loads it with the observation ingest
  into a throw-away embedded cluster (or GIS_BENCH_DATABASE_URL), then times
  queries by station and time range, and reading the scoring look-back window
  (the old GROUP BY pivot of water_observations vs read_readings from the
  pre-pivoted water_samples); with the demo city also trains and scores all
  segments through the database; with --partitioned also copies the data
  into a monthly-partitioned table and times the same queries there.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.water import model as relapse
from models.water.evaluate import evaluate, format_rows
from models.water.features import segment_state
from models.water.network import synthetic_network
from models.water.settings import WaterSettings
from models.water.simulate import label_segments, simulate, write_wide_csv


def _t(label: str, t0: float) -> float:
    dt_s = time.perf_counter() - t0
    print(f"  {label:<42} {dt_s:8.2f} s", flush=True)
    return dt_s


def _network(segments: int, seed: int, synthetic: bool):
    """The demo city's network (default) or the random one of models.water."""
    if synthetic:
        return synthetic_network(segments, seed=seed), None
    from ingest.demo_city import generate_city
    from models.water.network import network_from_batches

    t0 = time.perf_counter()
    layers = generate_city(buildings=200, segments=segments, sites=1500, plants=120)
    net = network_from_batches(
        layers["rivers"],
        layers["monitoring_stations"],
        layers["construction_sites"],
        layers["plants"],
    )
    _t(f"demo city ({len(net):,} segments, {len(net.station_codes):,} stations)", t0)
    return net, layers


def bench_model(segments: int, seed: int, skip_eval: bool, synthetic: bool) -> None:
    settings = WaterSettings()
    kind = "synthetic network" if synthetic else "demo city"
    print(f"model: {segments:,} segments ({kind}, synthetic data, seed {seed})")
    net, _ = _network(segments, seed, synthetic)
    t0 = time.perf_counter()
    city = simulate(net, seed=seed)
    _t(f"simulate ({len(city.readings):,} samples)", t0)
    t0 = time.perf_counter()
    state = segment_state(
        net,
        city.readings,
        city.now_day,
        settings,
        rain=city.rain,
        impervious=city.impervious,
    )
    _t("features + standard grades, all segments", t0)
    labels = label_segments(city, 0.2, seed=seed)
    t0 = time.perf_counter()
    model = relapse.train(state.features, labels, settings, seed=seed)
    train_s = _t(f"train (20 % labels = {int((labels >= 0).sum()):,})", t0)
    t0 = time.perf_counter()
    state = segment_state(
        net,
        city.readings,
        city.now_day,
        settings,
        rain=city.rain,
        impervious=city.impervious,
    )
    _proba, _factors = model.predict(state.features, top=settings.top_factors)
    score_s = _t("score all segments (features + predict + factors)", t0)
    print(
        f"  train < 60 s: {'yes' if train_s < 60 else 'NO'}; "
        f"score < 10 s: {'yes' if score_s < 10 else 'NO'}"
    )
    if not skip_eval:
        t0 = time.perf_counter()
        rows = evaluate(city, state, settings, seed=seed)
        _t("evaluate at 5 / 20 / 50 % labels", t0)
        print(format_rows(rows))


def _cluster():
    from gis_server import db
    from gis_server.embedded import EmbeddedCluster
    from gis_server.settings import DatabaseSettings

    url = os.environ.get("GIS_BENCH_DATABASE_URL")
    if url:
        settings = DatabaseSettings(url=url)
        db.upgrade(url)
        return settings, None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = Path(tempfile.mkdtemp(prefix="gis-bench-water-"))
    os.chmod(tmp, 0o755)
    settings = DatabaseSettings(
        url=None, data_dir=tmp / "pgdata", port=port, name="bench"
    )
    cluster = EmbeddedCluster(settings, fsync=False)
    cluster.start()
    db.upgrade(settings.effective_url())
    return settings, cluster


def _query_times(
    engine, table: str, stations: list[str], start: dt.datetime, days: int, rng
) -> tuple[float, float, int]:
    from sqlalchemy import text

    times, rows = [], 0
    with engine.connect() as conn:
        for s in stations:
            a = start + dt.timedelta(days=int(rng.integers(0, 200)))
            t0 = time.perf_counter()
            rows += len(
                conn.execute(
                    text(
                        f"SELECT observed_at, indicator, value FROM {table} "
                        "WHERE station_code = :s "
                        "AND observed_at >= :a AND observed_at < :b"
                    ),
                    {"s": s, "a": a, "b": a + dt.timedelta(days=days)},
                ).all()
            )
            times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000), float(np.percentile(times, 95) * 1000), rows


def bench_store(readings: int, seed: int, partitioned: bool, synthetic: bool) -> None:
    from sqlalchemy import text

    from gis_server import db
    from ingest.observations import load_observations

    indicators = 10
    samples = readings // indicators
    segments = 10_000
    net, layers = _network(segments, seed, synthetic)
    stations = len(net.station_codes)
    every = max(1, round(stations * 240 / samples))
    print(
        f"store: ~{readings:,} readings ({stations:,} stations, a sample every "
        f"{every} d over 240 d, {indicators} indicators)"
    )
    t0 = time.perf_counter()
    city = simulate(net, seed=seed, sample_every_days=every)
    tmp = Path(tempfile.mkdtemp(prefix="gis-bench-water-csv-"))
    csv_path = tmp / "readings.csv"
    n = write_wide_csv(city, csv_path)
    _t(
        f"simulate + write wide CSV ({n:,} readings, "
        f"{csv_path.stat().st_size / 1e6:.0f} MB)",
        t0,
    )
    settings, cluster = _cluster()
    try:
        engine = db.make_engine(settings)
        if layers is not None:
            from ingest.loader import load_batch
            from layers import get_layer

            t0 = time.perf_counter()
            for layer_id in (
                "rivers",
                "monitoring_stations",
                "construction_sites",
                "plants",
            ):
                load_batch(
                    engine, get_layer(layer_id), layers[layer_id], source="bench"
                )
            _t("load rivers, stations, sites, plants layers", t0)
        t0 = time.perf_counter()
        report = load_observations(engine, csv_path, check_stations=False)
        load_s = _t("ingest (parse, COPY to staging, INSERT ON CONFLICT)", t0)
        print(f"  {report.summary()}")
        print(f"  {report.inserted / load_s:,.0f} readings/s")
        t0 = time.perf_counter()
        again = load_observations(engine, csv_path, check_stations=False)
        _t(f"reload same file (all duplicates: {again.duplicates:,})", t0)
        with engine.begin() as conn:
            conn.execute(text("ANALYZE water_observations"))
            conn.execute(text("ANALYZE water_samples"))
            wide = conn.execute(
                text(
                    "SELECT count(*), pg_size_pretty(pg_total_relation_size("
                    "'water_samples')) FROM water_samples"
                )
            ).one()
            print(f"  water_samples: {wide[0]:,} rows, {wide[1]} with its key")
            sizes = conn.execute(
                text("""
                SELECT pg_size_pretty(pg_relation_size('water_observations')),
                       pg_size_pretty(pg_relation_size('pk_water_observations')),
                       pg_size_pretty(pg_relation_size(
                           'ix_water_observations_observed_at_brin'))""")
            ).one()
        print(f"  table {sizes[0]}, primary key btree {sizes[1]}, BRIN {sizes[2]}")
        rng = np.random.default_rng(seed)
        picks = list(rng.choice(net.station_codes, 200, replace=False))
        start = city.readings.start
        for days in (7, 30):
            med, p95, rows = _query_times(
                engine, "water_observations", picks, start, days, rng
            )
            print(
                f"  station + {days:>2} d range (plain): median {med:.2f} ms, "
                f"p95 {p95:.2f} ms, {rows / len(picks):.0f} rows/query"
            )
        t0 = time.perf_counter()
        with engine.connect() as conn:
            cnt = conn.execute(
                text(
                    "SELECT count(*) FROM water_observations WHERE observed_at >= :a "
                    "AND observed_at < :b"
                ),
                {
                    "a": start + dt.timedelta(days=100),
                    "b": start + dt.timedelta(days=101),
                },
            ).scalar()
        _t(f"city-wide one-day window ({cnt:,} rows, BRIN)", t0)
        _bench_read_readings(engine, net, city.now, WaterSettings().lookback_days)
        if layers is not None:
            _bench_database_path(engine, city, seed)
        if partitioned:
            with engine.begin() as conn:
                conn.execute(
                    text("""
                    CREATE TABLE bench_obs_part (LIKE water_observations)
                    PARTITION BY RANGE (observed_at)""")
                )
                m0 = dt.date(start.year, start.month, 1)
                for k in range(10):
                    a = (m0 + dt.timedelta(days=31 * k)).replace(day=1)
                    b = (a + dt.timedelta(days=32)).replace(day=1)
                    conn.execute(
                        text(
                            f"CREATE TABLE bench_obs_part_{k} "
                            "PARTITION OF bench_obs_part "
                            f"FOR VALUES FROM ('{a}') TO ('{b}')"
                        )
                    )
                conn.execute(
                    text(
                        "ALTER TABLE bench_obs_part ADD PRIMARY KEY "
                        "(station_code, observed_at, indicator)"
                    )
                )
            t0 = time.perf_counter()
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO bench_obs_part SELECT * FROM "
                        "water_observations ON CONFLICT DO NOTHING"
                    )
                )
                conn.execute(text("ANALYZE bench_obs_part"))
            _t("partitioned: INSERT ... SELECT ... ON CONFLICT (10 monthly parts)", t0)
            for days in (7, 30):
                med, p95, rows = _query_times(
                    engine, "bench_obs_part", picks, start, days, rng
                )
                print(
                    f"  station + {days:>2} d range (partitioned): median "
                    f"{med:.2f} ms, p95 {p95:.2f} ms"
                )
        engine.dispose()
    finally:
        if cluster is not None:
            cluster.destroy()
        csv_path.unlink(missing_ok=True)


def _old_pivot_copy(engine, net, now: dt.datetime, days: int) -> int:
    """The GROUP BY pivot of water_observations that read_readings ran before
    water_samples (the "before" figure); returns the bytes streamed."""
    import io

    from models.water.store import PIVOT_INDICATORS

    start = now - dt.timedelta(days=days)
    cols = ", ".join(
        f"coalesce(max(o.value) FILTER (WHERE o.indicator = '{k}'), 'NaN') AS v{j}"
        for j, k in enumerate(PIVOT_INDICATORS)
    )
    outer = ", ".join(f"g.v{j}" for j in range(len(PIVOT_INDICATORS)))
    sql = (
        f"COPY (SELECT s.idx::float8, g.t, {outer} FROM (SELECT o.station_code, "
        f"extract(epoch FROM o.observed_at)::float8 AS t, {cols} "
        "FROM water_observations o "
        "WHERE o.observed_at >= %s AND o.observed_at < %s "
        "GROUP BY o.station_code, o.observed_at) g "
        "JOIN unnest(%s::text[]) WITH ORDINALITY AS s(code, idx) "
        "ON s.code = g.station_code) TO STDOUT WITH (FORMAT binary)"
    )
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        buf = io.BytesIO()
        cur.copy_expert(
            cur.mogrify(sql, (start, now, list(net.station_codes))).decode(), buf
        )
    finally:
        raw.close()
    return len(buf.getvalue())


def _bench_read_readings(engine, net, now: dt.datetime, days: int) -> None:
    """Readings of the look-back window: pivot at query time vs water_samples."""
    from models.water import service

    for run in ("run 1", "run 2"):
        t0 = time.perf_counter()
        size = _old_pivot_copy(engine, net, now, days)
        _t(f"before: GROUP BY pivot, {days} d ({run}, {size / 1e6:.0f} MB)", t0)
        t0 = time.perf_counter()
        r = service.read_readings(engine, net, now, days)
        _t(f"after: read_readings from water_samples ({run}, {len(r):,} rows)", t0)


def _bench_database_path(engine, city, seed: int) -> None:
    """Train and score through the database (features read from the store)."""
    from models.water import service
    from models.water.simulate import label_segments

    tmp = Path(tempfile.mkdtemp(prefix="gis-bench-water-models-"))
    settings = WaterSettings(model_dir=tmp)
    labels = label_segments(city, 0.2, seed=seed)
    net = city.network
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(
            text("""
            INSERT INTO water_patrol_records (chief_id, segment_code, started_at,
                duration_min, distance_km, black_odorous, meets_standard)
            VALUES (:c, :s, :t, 20, 1.5, :b, true)"""),
            [
                {
                    "c": net.chief_id[i] or "unknown",
                    "s": net.codes[i],
                    "t": city.now - dt.timedelta(days=2),
                    "b": bool(labels[i]),
                }
                for i in np.flatnonzero(labels >= 0)
            ],
        )
    t0 = time.perf_counter()
    model, _ = service.train_from_database(engine, settings, city.now, seed=seed)
    _t(f"database: train ({model.labelled:,} labels, features from store)", t0)
    t0 = time.perf_counter()
    _net2, _state = service.compute_state(engine, settings, city.now)
    _t("database: features of all segments (180 d of readings)", t0)
    t0 = time.perf_counter()
    counts = service.score_database(engine, settings, city.now)
    score_s = _t("database: score all + write warnings layer", t0)
    print(f"  warnings {counts}; score < 10 s: {'yes' if score_s < 10 else 'NO'}")
    t0 = time.perf_counter()
    tasks = service.plan_patrols(
        engine,
        settings,
        city.now,
        period_start=city.now.date(),
        period_end=city.now.date() + dt.timedelta(days=9),
    )
    _t(f"database: plan {len(tasks):,} patrol tasks", t0)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="what", required=True)
    m = sub.add_parser("model")
    m.add_argument("--segments", type=int, default=10_000)
    m.add_argument("--seed", type=int, default=1)
    m.add_argument("--skip-eval", action="store_true")
    m.add_argument(
        "--synthetic",
        action="store_true",
        help="Random network instead of the demo city.",
    )
    s = sub.add_parser("store")
    s.add_argument("--readings", type=int, default=10_000_000)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--partitioned", action="store_true")
    s.add_argument(
        "--synthetic",
        action="store_true",
        help="Random network instead of the demo city (no DB scoring).",
    )
    args = ap.parse_args()
    if args.what == "model":
        bench_model(args.segments, args.seed, args.skip_eval, args.synthetic)
    else:
        bench_store(args.readings, args.seed, args.partitioned, args.synthetic)


if __name__ == "__main__":
    main()
