"""Ingest benchmark: N demo buildings from a GeoPackage, ours vs ogr2ogr.

Generates the synthetic city's buildings (default 1,000,000), writes them to
a GeoPackage, then in a scratch database of the configured server (the
embedded cluster unless DATABASE_URL is set):

1. ``gis-server ingest buildings FILE`` (in-process: read, reproject, check,
   map, COPY, upsert) into an empty layer;
2. the same again (the idempotent re-run: everything unchanged);
3. ``ogr2ogr -f PostgreSQL`` of the same file into a new table (GDAL's COPY
   path with a GiST index; no validation, no upsert).

Run: ``python bench/bench_ingest.py [--buildings N] [--repeat K]``; results
are printed and written to bench/out/ingest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gis_server import db  # noqa: E402
from gis_server.settings import DatabaseSettings  # noqa: E402
from ingest.demo_city import generate_city, write_city  # noqa: E402
from ingest.loader import load_batch  # noqa: E402
from ingest.readers import read_file  # noqa: E402
from layers import get_layer  # noqa: E402

SCRATCH = "gis_bench_ingest"


def scratch_database(settings: DatabaseSettings) -> str:
    """A fresh, migrated database next to the configured one; its URL."""
    db.ensure_database(settings)
    return db.create_database(settings, SCRATCH).effective_url()


def run_ours(url: str, path: Path) -> dict:
    engine = db.make_engine(DatabaseSettings(url=url))
    spec = get_layer("buildings")
    started = time.perf_counter()
    batch = read_file(path, id_aliases=spec.id_aliases)
    read_s = time.perf_counter() - started
    report = load_batch(engine, spec, batch, source=path.name)
    total = time.perf_counter() - started
    engine.dispose()
    return {
        "seconds": round(total, 2),
        "read_seconds": round(read_s, 2),
        "summary": report.summary(),
        "phases": report.phases,
    }


def run_ogr2ogr(url: str, path: Path, table: str) -> dict:
    u = make_url(url)
    pg = f"PG:host={u.host} port={u.port} user={u.username} dbname={u.database}"
    if u.password:
        pg += f" password={u.password}"
    started = time.perf_counter()
    subprocess.run(
        [
            "ogr2ogr",
            "-f",
            "PostgreSQL",
            pg,
            str(path),
            "-nln",
            table,
            "-overwrite",
            "-lco",
            "GEOMETRY_NAME=geom",
            "-lco",
            "SPATIAL_INDEX=GIST",
            "-nlt",
            "PROMOTE_TO_MULTI",
            "-t_srs",
            "EPSG:4326",
            "--config",
            "PG_USE_COPY",
            "YES",
        ],
        check=True,
        capture_output=True,
        text=True,
        env=dict(os.environ, PGPASSWORD=u.password or ""),
    )
    return {"seconds": round(time.perf_counter() - started, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings", type=int, default=1_000_000)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="Runs of each measurement (median reported).",
    )
    parser.add_argument(
        "--keep", action="store_true", help="Keep the scratch database."
    )
    args = parser.parse_args()

    started = time.perf_counter()
    city = generate_city(buildings=args.buildings)
    gen_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        files = write_city({"buildings": city["buildings"]}, Path(tmp))
        path = files["buildings"]
        size_mb = path.stat().st_size / 1e6
        print(
            f"generated {args.buildings:,} buildings in {gen_s:.1f} s; "
            f"{path.name} {size_mb:.0f} MB"
        )
        ours, rerun, ogr = [], [], []
        for _ in range(args.repeat):
            url = scratch_database(DatabaseSettings())
            ours.append(run_ours(url, path))
            print("ours (empty layer):", ours[-1]["summary"], ours[-1]["phases"])
            rerun.append(run_ours(url, path))
            print("ours (re-run):     ", rerun[-1]["summary"], rerun[-1]["phases"])
            ogr.append(run_ogr2ogr(url, path, "ogr_buildings"))
            print(f"ogr2ogr:            {ogr[-1]['seconds']:.1f} s")

    def med(runs):
        return round(statistics.median(r["seconds"] for r in runs), 1)

    result = {
        "buildings": args.buildings,
        "file_mb": round(size_mb),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "ours_seconds": med(ours),
        "ours_rerun_seconds": med(rerun),
        "ours_read_seconds": round(
            statistics.median(r["read_seconds"] for r in ours), 1
        ),
        "ogr2ogr_seconds": med(ogr),
        "runs": args.repeat,
    }
    result["ratio_ours_to_ogr2ogr"] = round(
        result["ours_seconds"] / result["ogr2ogr_seconds"], 2
    )
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ingest.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    if not args.keep:
        db.drop_database(DatabaseSettings(), SCRATCH)


if __name__ == "__main__":
    main()
