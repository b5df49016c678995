"""Benchmark: all risk zones and the grid for the demo city.

Creates a throw-away PostGIS cluster (or a fresh database on the server named
by ``GIS_BENCH_DATABASE_URL``, a superuser URL), loads the synthetic demo city
(``ingest.demo_city``) through the normal ingest path, then times

1. a full ``risk compute`` (every kind, the grid, the GeoTIFF);
2. a second full compute with no change (nothing rewritten);
3. an incremental ``risk refresh`` after editing one D building.

Usage::

    .venv/bin/python bench/bench_risk.py --buildings 1000000

Print-only; nothing is kept. The target (issue 4) is under two minutes for
step 1 with 1,000,000 buildings on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database():
    """(settings, cleanup) of a fresh, migrated database."""
    from gis_server import db
    from gis_server.embedded import EmbeddedCluster
    from gis_server.settings import DatabaseSettings

    external = os.environ.get("GIS_BENCH_DATABASE_URL")
    if external:
        import psycopg2
        from sqlalchemy.engine import make_url

        url = make_url(external)
        name = f"gis_bench_{uuid.uuid4().hex[:8]}"
        admin = psycopg2.connect(
            url.set(drivername="postgresql").render_as_string(False)
        )
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        settings = DatabaseSettings(
            url=url.set(database=name).render_as_string(hide_password=False)
        )
        with db.make_engine(settings).begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        db.upgrade(settings.effective_url())

        def cleanup() -> None:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            admin.close()

        return settings, cleanup

    tmp = Path(tempfile.mkdtemp(prefix="gis-bench-risk-"))
    os.chmod(tmp, 0o755)
    settings = DatabaseSettings(
        url=None, data_dir=tmp / "pgdata", port=_free_port(), name="gis_bench"
    )
    cluster = EmbeddedCluster(settings, fsync=False)
    cluster.start()
    db.upgrade(settings.effective_url())

    def cleanup() -> None:
        cluster.destroy()
        shutil.rmtree(tmp, ignore_errors=True)

    return settings, cleanup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from gis_server import db
    from ingest.demo_city import generate_city
    from ingest.loader import load_batch
    from layers import get_layer
    from models.risk import RiskSettings, compute, refresh

    settings, cleanup = _database()
    tmp = Path(tempfile.mkdtemp(prefix="gis-bench-raster-"))
    try:
        engine = db.make_engine(settings)
        t0 = time.perf_counter()
        city = generate_city(buildings=args.buildings)
        print(
            f"generated demo city ({args.buildings:,} buildings) in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        t0 = time.perf_counter()
        for layer_id, batch in city.items():
            load_batch(engine, get_layer(layer_id), batch, source="demo")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        with engine.connect() as conn:
            counts = dict(
                conn.execute(
                    text(
                        "SELECT 'buildings', count(*) FROM layer_buildings UNION ALL "
                        "SELECT 'C/D buildings', count(*) FROM layer_buildings "
                        "WHERE safety_grade IN ('C', 'D') UNION ALL "
                        "SELECT 'curtain walls', count(*) FROM layer_curtain_walls "
                        "UNION ALL "
                        "SELECT 'roads', count(*) FROM layer_roads UNION ALL "
                        "SELECT 'river segments', count(*) FROM layer_rivers UNION ALL "
                        "SELECT 'sites', count(*) FROM layer_construction_sites "
                        "UNION ALL "
                        "SELECT 'plants', count(*) FROM layer_plants"
                    )
                ).all()
            )
        print(
            f"loaded in {time.perf_counter() - t0:.1f} s: "
            + ", ".join(f"{k} {v:,}" for k, v in counts.items())
        )

        risk = RiskSettings(raster_path=tmp / "risk.tif", workers=args.workers)
        for label in ("full compute", "full compute, unchanged"):
            report = compute(engine, risk)
            print(f"{label}: {report.seconds:.1f} s")
            for run in report.kinds:
                print(
                    f"  {run.kind:20s} {run.zones:8,} zones  {run.changed:8,} "
                    f"written  {run.seconds:6.1f} s"
                )
            g = report.grid
            print(
                f"  grid: {g.cells:,} cells, {g.scored:,} scored, {g.hot:,} hot, "
                f"{g.cold:,} cold, {g.seconds:.1f} s {g.phases}"
            )

        with engine.begin() as conn:
            target = conn.execute(
                text(
                    "SELECT id FROM layer_buildings WHERE safety_grade = 'D' "
                    "ORDER BY id LIMIT 1"
                )
            ).scalar_one()
            conn.execute(
                text(
                    "UPDATE layer_buildings SET height_m = height_m + 10 WHERE id = :i"
                ),
                {"i": target},
            )
        report = refresh(engine, risk)
        print(
            f"refresh after editing one D building: {report.seconds:.2f} s; "
            + "; ".join(
                f"{r.kind}: {r.candidates} recomputed, {r.changed} written, "
                f"{r.seconds:.2f} s"
                for r in report.kinds
            )
            + (f"; grid {report.grid.seconds:.2f} s" if report.grid else "")
        )
        engine.dispose()
    finally:
        cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
