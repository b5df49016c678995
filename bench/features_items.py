"""Latency of ``/collections/buildings/items?bbox=`` on a large generated layer.

Creates a throw-away PostGIS cluster (the embedded-cluster code the server
uses), fills ``layer_buildings`` with N synthetic buildings around central
Guangzhou by SQL -- ids follow space (rows are inserted in geohash order), as
they do after an ingest of a real file -- serves the app with uvicorn on a
free port, and times tile-sized bbox requests (a z14 tile is ~0.022 x 0.020
degrees here) with several limits. Prints p50 / p95 / mean per case.

    .venv/bin/python bench/features_items.py --rows 200000 --requests 100

``--span 0.1`` packs the rows into 0.1 x 0.1 degrees (~9,000 per tile, like
the dense centre of the 1M-building benchmark city). With ``--url`` it uses
an existing database (read only) instead.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from gis_server import db
from gis_server.app import create_app
from gis_server.embedded import EmbeddedCluster
from gis_server.settings import DatabaseSettings, ServerSettings

CENTRE = (113.30, 23.12)
SPAN = 0.5  # degrees: the generated buildings cover CENTRE +- SPAN/2
TILE = (0.022, 0.020)

GENERATE = """
INSERT INTO layer_buildings (source, source_id, address, district, structure, floors,
    height_m, built_year, safety_grade, appraised_on, historic, use, extra, geom)
SELECT 'bench', g::text, g || ' Bench Road',
       (ARRAY['越秀区', '天河区', '海珠区'])[1 + g %% 3],
       'concrete', 1 + g %% 30, 3.0 * (1 + g %% 30), 1950 + g %% 70,
       (ARRAY['A','B','C','D'])[1 + g %% 4], DATE '2015-01-01' + (g %% 3000),
       g %% 50 = 0, 'residential', jsonb_build_object('osm_id', g),
       ST_Multi(ST_Expand(ST_SetSRID(ST_MakePoint(x, y), 4326), 0.00008))
FROM (SELECT g, %(x0)s + random() * %(span)s AS x, %(y0)s + random() * %(span)s AS y
      FROM generate_series(1, %(rows)s) g) s
ORDER BY ST_GeoHash(ST_SetSRID(ST_MakePoint(x, y), 4326), 7)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(settings: DatabaseSettings) -> tuple[uvicorn.Server, str]:
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(db=settings, server=ServerSettings(log_requests=False)),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def _boxes(n: int, span: float, seed: int = 1) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        x = CENTRE[0] + (rnd.random() - 0.5) * span * 0.8
        y = CENTRE[1] + (rnd.random() - 0.5) * span * 0.8
        out.append(f"{x:.5f},{y:.5f},{x + TILE[0]:.5f},{y + TILE[1]:.5f}")
    return out


def run(base: str, requests: int, span: float = SPAN) -> None:
    boxes = _boxes(requests, span)
    with httpx.Client(base_url=base, timeout=60) as client:
        client.get("/collections/buildings/items", params={"bbox": boxes[0]})
        for limit in (10, 100, 1000):
            times, matched, exact = [], [], 0
            for box in boxes:
                start = time.perf_counter()
                r = client.get(
                    "/collections/buildings/items", params={"bbox": box, "limit": limit}
                )
                times.append((time.perf_counter() - start) * 1000)
                r.raise_for_status()
                body = r.json()
                matched.append(body["numberMatched"])
                exact += body["numberMatchedExact"]
            times.sort()
            print(
                f"limit={limit:5d}  p50={statistics.median(times):7.1f} ms  "
                f"p95={times[int(0.95 * len(times)) - 1]:7.1f} ms  "
                f"mean={statistics.fmean(times):7.1f} ms  "
                f"matched~{statistics.median(matched):.0f}  exact={exact}/{len(boxes)}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument(
        "--span",
        type=float,
        default=SPAN,
        help="degrees covered by the buildings (density)",
    )
    parser.add_argument("--url", help="existing database (read only)")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep serving for an hour (manual profiling)",
    )
    args = parser.parse_args()
    # a terminated bench still stops its cluster (SystemExit runs the finally)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    if args.url:
        serve_and_time(DatabaseSettings(url=args.url), args)
        return
    tmp = Path(tempfile.mkdtemp(prefix="gis-bench-items-"))
    tmp.chmod(0o755)
    settings = DatabaseSettings(
        url=None, data_dir=tmp / "pgdata", port=_free_port(), name="bench"
    )
    cluster = EmbeddedCluster(settings, fsync=False)
    try:  # the cluster goes away whatever happens (Ctrl-C included)
        cluster.start()
        db.upgrade(settings.effective_url())
        generate(settings, args.rows, args.span)
        serve_and_time(settings, args)
    finally:
        cluster.destroy()
        shutil.rmtree(tmp, ignore_errors=True)


def generate(settings: DatabaseSettings, rows: int, span: float) -> None:
    engine = db.make_engine(settings)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            GENERATE,
            {
                "x0": CENTRE[0] - span / 2,
                "y0": CENTRE[1] - span / 2,
                "span": span,
                "rows": rows,
            },
        )
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            "VACUUM ANALYZE layer_buildings"
        )
    engine.dispose()
    print(f"generated {rows} buildings in {time.perf_counter() - started:.1f} s")


def serve_and_time(settings: DatabaseSettings, args: argparse.Namespace) -> None:
    server, base = _serve(settings)
    try:
        if args.keep:
            print("serving", base, settings.effective_url(), flush=True)
            time.sleep(3600)
        else:
            run(base, args.requests, args.span)
    finally:
        server.should_exit = True


if __name__ == "__main__":
    main()
