"""Benchmark: the buildings supervision rules on the demo city.

Creates a throw-away database (as ``bench_risk.py`` does: an embedded cluster,
or a fresh database on ``GIS_BENCH_DATABASE_URL``), loads the demo city and
the synthetic monitoring records of ``--monitored`` buildings and
``--walls`` curtain walls (``models.supervision.buildings.demo_records``),
then times ``evaluate`` and ``hazard_list``.

Usage::

    .venv/bin/python bench/bench_supervision_buildings.py --monitored 2000

Print-only; nothing is kept.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings", type=int, default=50_000)
    parser.add_argument("--monitored", type=int, default=40)
    parser.add_argument("--walls", type=int, default=100_000)
    args = parser.parse_args()

    from bench_risk import _database

    from gis_server import db
    from ingest.demo_city import AS_OF, generate_city
    from ingest.feeds import load_feed
    from ingest.loader import load_batch
    from layers import get_layer
    from layers.feeds import get_feed
    from models.supervision.buildings import demo_records, evaluate, hazard_list

    settings, cleanup = _database()
    try:
        engine = db.make_engine(settings)
        city = generate_city(buildings=args.buildings)
        for layer_id in ("districts", "buildings", "curtain_walls"):
            load_batch(engine, get_layer(layer_id), city[layer_id], source="demo")
        with engine.connect() as conn:
            t0 = time.perf_counter()
            records = demo_records(
                conn, 1, AS_OF, buildings=args.monitored, walls=args.walls
            )
            drawn = time.perf_counter() - t0
        t0 = time.perf_counter()
        for feed_id, recs in records.items():
            load_feed(engine, get_feed(feed_id), records=recs, source="demo")
        loaded = time.perf_counter() - t0
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        print(
            f"{args.buildings:,} buildings, {len(city['curtain_walls']):,} walls; "
            + ", ".join(f"{k} {len(v):,}" for k, v in records.items())
            + f" (drawn in {drawn:.2f} s, loaded in {loaded:.2f} s)"
        )
        with engine.connect() as conn:
            for _ in range(2):
                t0 = time.perf_counter()
                findings = evaluate(conn, AS_OF)
                print(
                    f"evaluate: {len(findings):,} findings in "
                    f"{time.perf_counter() - t0:.2f} s"
                )
            counts = Counter((f.rule, f.level) for f in findings)
            for (rule, level), n in sorted(counts.items()):
                print(f"  {rule:40s} {level:7s} {n:6,}")
            t0 = time.perf_counter()
            rows = hazard_list(conn, AS_OF)
            print(
                f"hazard_list: {len(rows):,} rows in {time.perf_counter() - t0:.2f} s"
            )
        engine.dispose()
    finally:
        cleanup()


if __name__ == "__main__":
    main()
