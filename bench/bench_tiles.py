"""Tile and items speed of this server against tipg, on one database, in one run.

What it does (``python bench/bench_tiles.py --help`` for the options):

1. Opens the benchmark database: ``--database-url`` or an embedded cluster of
   its own under ``var/bench-pgdata`` (port 55433), migrated to head.
2. Loads the synthetic demo city with ``--buildings`` footprints (1,000,000 by
   default) unless it is there already (``ingest.demo_city`` +
   ``ingest.loader.load_batch``), then ``VACUUM ANALYZE``.
3. Builds the fixed tile list around the dense centre (113.30E 23.13N): the
   tiles nearest the centre tile, 50 at z14, 20 at z12, 10 at z10, 5 at z8.
4. Starts this server (uvicorn, ``--workers``) and tipg (from its own venv,
   ``--tipg-python``) against the same database with the same feature cap and
   tile buffer, requesting the same properties from both; checks on a sample
   of tiles that both tiles hold the same feature ids.
5. Measures, interleaving the contenders so drift hits both alike:
   - cold tiles (this server with its cache off): single-client latency
     against the server's own tile SQL run directly with psycopg2, and
     throughput with 8 and 32 concurrent clients against tipg;
   - warm tiles (cache on, primed): throughput and latency;
   - tile-sized ``items?bbox=`` requests: latency against tipg.
6. Writes JSON and Markdown to ``bench/out/`` and prints the Markdown.

Both servers are started and stopped by the script. Numbers vary by 15-30 %
between runs on a shared machine; compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CENTRE = (113.30, 23.13)
DEFAULT_TILES = {14: 50, 12: 20, 10: 10, 8: 5}
SOURCE = "bench-city"
LAYER = "buildings"


# -- HTTP client: a lean keep-alive HTTP/1.1 client on asyncio streams ----------


class Http:
    """One keep-alive connection; enough HTTP/1.1 for GET benchmarks."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, limit=1 << 22
        )

    async def get(self, path: str, gzip: bool = True) -> tuple[int, dict, bytes]:
        for attempt in (1, 2):
            try:
                if self.writer is None:
                    await self._open()
                return await self._get(path, gzip)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _get(self, path: str, gzip: bool) -> tuple[int, dict, bytes]:
        assert self.reader and self.writer
        enc = "Accept-Encoding: gzip\r\n" if gzip else ""
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n{enc}\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            body = b"".join(parts)
        else:
            body = b""
        if headers.get("connection") == "close":
            self.close()
        return status, headers, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# -- results -------------------------------------------------------------------------


@dataclass
class Run:
    """Latencies (ms) and wall time of one measurement."""

    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: int = 0
    bytes: int = 0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        n = len(lat)
        return {
            "requests": n,
            "errors": self.errors,
            "p50_ms": round(statistics.median(lat), 2) if n else None,
            "p95_ms": round(lat[min(n - 1, math.ceil(0.95 * n) - 1)], 2) if n else None,
            "per_s": round(n / self.seconds, 1) if self.seconds else None,
            "mb_per_s": round(self.bytes / self.seconds / 1e6, 1)
            if self.seconds
            else None,
        }


async def sequential(port: int, paths: list[str], repeat: int) -> Run:
    """One client, one request at a time, every path ``repeat`` times."""
    http = Http("127.0.0.1", port)
    run = Run()
    start = time.perf_counter()
    for _ in range(repeat):
        for path in paths:
            t0 = time.perf_counter()
            status, _, body = await http.get(path)
            run.latencies.append((time.perf_counter() - t0) * 1000)
            run.bytes += len(body)
            run.errors += status >= 400
    run.seconds = time.perf_counter() - start
    http.close()
    return run


async def concurrent(port: int, paths: list[str], clients: int, seconds: float) -> Run:
    """``clients`` connections, each walking the paths from its own offset."""
    run = Run()
    stop_at = time.perf_counter() + seconds

    async def client(i: int) -> None:
        http = Http("127.0.0.1", port)
        k = (i * len(paths)) // clients
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            status, _, body = await http.get(paths[k % len(paths)])
            run.latencies.append((time.perf_counter() - t0) * 1000)
            run.bytes += len(body)
            run.errors += status >= 400
            k += 1
        http.close()

    start = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    run.seconds = time.perf_counter() - start
    return run


WRK_SCRIPT = """
paths = {%s}
local n = 0
setup = function(thread) thread:set("offset", n * %d); n = n + 1 end
request = function()
  offset = offset + 1
  return wrk.format("GET", paths[(offset %% #paths) + 1],
                    {["Accept-Encoding"] = "gzip"})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    summary.bytes, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(95)))
end
"""


def wrk_load(port: int, paths: list[str], clients: int, seconds: float) -> dict:
    """Throughput with ``wrk`` (C, light on the CPU the servers need)."""
    import tempfile

    threads = min(2, clients)
    lua = WRK_SCRIPT % (
        ", ".join(json.dumps(p) for p in paths),
        max(1, len(paths) // threads),
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{clients}",
            f"-d{int(seconds)}s",
            "--timeout",
            "60s",
            "-s",
            f.name,
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(f.name)
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT"))
    n, us, nbytes, errors, p50, p95 = map(int, line.split()[1:])
    return {
        "requests": n,
        "errors": errors,
        "p50_ms": round(p50 / 1000, 2),
        "p95_ms": round(p95 / 1000, 2),
        "per_s": round(n / (us / 1e6), 1),
        "mb_per_s": round(nbytes / (us / 1e6) / 1e6, 1),
        "client": "wrk",
    }


def load(args, port: int, paths: list[str], clients: int, seconds: float) -> dict:
    """Concurrent load with wrk when installed, else the Python client."""
    if args.client == "wrk":
        return wrk_load(port, paths, clients, seconds)
    summary = run_async(concurrent(port, paths, clients, seconds)).summary()
    return {**summary, "client": "python"}


def prime(port: int, paths: list[str], workers: int, passes: int = 8) -> int:
    """Fill every worker's cache: several connections (spread over the workers
    by the kernel) each request every tile, until a pass meets no miss."""

    async def misses() -> int:
        async def walk(i: int) -> int:
            http, missed = Http("127.0.0.1", port), 0
            for k in range(len(paths)):
                _, headers, _ = await http.get(paths[(k + i * 7) % len(paths)])
                missed += headers.get("x-tile-cache") != "hit"
            http.close()
            return missed

        return sum(await asyncio.gather(*(walk(i) for i in range(4 * workers))))

    for n in range(1, passes + 1):
        if run_async(misses()) == 0:
            return n
    return passes


def run_async(coro):
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


# -- servers -------------------------------------------------------------------------


class Server:
    """A uvicorn process this script started (and stops, by its own group)."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        env: dict[str, str],
        port: int,
        ready_path: str,
        log_dir: Path,
    ) -> None:
        self.name, self.cmd, self.env, self.port = name, cmd, env, port
        self.ready_path = ready_path
        self.log = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(
            self.cmd,
            env=env,
            cwd=ROOT,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log}")
            try:
                status, _, _ = run_async(_probe(self.port, self.ready_path))
                if status < 500:
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} did not start in 120 s; see {self.log}")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


async def _probe(port: int, path: str):
    http = Http("127.0.0.1", port)
    try:
        return await http.get(path)
    finally:
        http.close()


# -- database and city --------------------------------------------------------------


def open_database(args) -> str:
    """The benchmark database: ``--database-url`` as is, or our own cluster."""
    if args.database_url:
        return args.database_url  # someone else's database: no migrations here
    from gis_server import db
    from gis_server.embedded import EmbeddedCluster
    from gis_server.settings import DatabaseSettings

    settings = DatabaseSettings(
        url=None, data_dir=args.data_dir, port=args.port, name="gis_bench"
    )
    EmbeddedCluster(settings).start()
    url = settings.effective_url()
    db.upgrade(url)
    return url


def ensure_city(url: str, buildings: int, load: bool) -> int:
    """Buildings in the database; loads the demo city first when ``load``."""
    from sqlalchemy import create_engine, text

    # the URL itself, not settings that could fall back to another database
    engine = create_engine(url)
    with engine.connect() as conn:
        have = conn.execute(text("SELECT count(*) FROM layer_buildings")).scalar()
    if have < buildings * 0.95 and not load:
        raise SystemExit(
            f"the database holds {have:,} buildings, fewer than --buildings "
            f"{buildings:,}; pass --load to add the demo city to it"
        )
    if have < buildings * 0.95:
        from ingest.demo_city import generate_city
        from ingest.loader import load_batch
        from layers import LAYERS

        declared = {spec.id: spec for spec in LAYERS}
        print(f"generating the demo city with {buildings:,} buildings ...", flush=True)
        t0 = time.perf_counter()
        city = generate_city(buildings=buildings)
        print(f"  generated in {time.perf_counter() - t0:.0f} s", flush=True)
        for layer_id, batch in city.items():
            if layer_id not in declared or not _table_exists(engine, layer_id):
                continue
            t0 = time.perf_counter()
            report = load_batch(engine, declared[layer_id], batch, source=SOURCE)
            print(
                f"  {layer_id}: {report.inserted:,} inserted, "
                f"{report.rejected:,} rejected in {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
        raw = engine.raw_connection()
        raw.set_isolation_level(0)
        with raw.cursor() as cur:
            for spec in LAYERS:
                if _table_exists(engine, spec.id):
                    cur.execute(f"VACUUM ANALYZE {spec.table}")
        raw.close()
    with engine.connect() as conn:
        have = conn.execute(text("SELECT count(*) FROM layer_buildings")).scalar()
    engine.dispose()
    return int(have)


def _table_exists(engine, layer_id: str) -> bool:
    from sqlalchemy import text

    with engine.connect() as conn:
        return bool(
            conn.execute(
                text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"layer_{layer_id}"}
            ).scalar()
        )


def tile_list(counts: dict[int, int]) -> list[tuple[int, int, int]]:
    """The tiles nearest the centre tile at each zoom, nearest first."""
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    tiles = []
    for z, n in counts.items():
        centre = tms.tile(*CENTRE, z)
        r = math.ceil(math.sqrt(n)) + 1
        ring = [
            (centre.x + dx, centre.y + dy)
            for dx in range(-r, r + 1)
            for dy in range(-r, r + 1)
        ]
        ring.sort(
            key=lambda t: ((t[0] - centre.x) ** 2 + (t[1] - centre.y) ** 2, t[0], t[1])
        )
        tiles += [(z, x, y) for x, y in ring[:n]]
    return tiles


def direct_sql(url: str, tiles: list, settings, repeat: int) -> tuple[Run, dict]:
    """The server's own tile SQL, run with psycopg2 as the server runs it."""
    import psycopg2
    from sqlalchemy.engine import make_url

    from gis_server import tiles as tilesql
    from layers import get_layer

    spec = get_layer(LAYER)
    conn = psycopg2.connect(
        make_url(url).set(drivername="postgresql").render_as_string(False)
    )
    run, per_tile = Run(), {}
    start = time.perf_counter()
    with conn.cursor() as cur:
        for _ in range(repeat):
            for z, x, y in tiles:
                t0 = time.perf_counter()
                body = tilesql.render_tile(
                    cur, spec, tilesql.Tile(z, x, y), "mvt", settings
                )
                ms = (time.perf_counter() - t0) * 1000
                run.latencies.append(ms)
                per_tile.setdefault((z, x, y), []).append(ms)
                run.bytes += len(body.content)
        conn.commit()
    run.seconds = time.perf_counter() - start
    conn.close()
    return run, per_tile


# -- the benchmark ------------------------------------------------------------------


def props_query() -> str:
    from layers import get_layer

    return ",".join(["id", *(p.name for p in get_layer(LAYER).properties)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        help="use this PostGIS database (else an embedded cluster under --data-dir)",
    )
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench-pgdata")
    parser.add_argument("--port", type=int, default=55433, help="embedded cluster port")
    parser.add_argument("--buildings", type=int, default=1_000_000)
    parser.add_argument(
        "--load",
        action="store_true",
        help="load the demo city "
        "into --database-url when it has fewer buildings (our own "
        "cluster is loaded without asking)",
    )
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="open and load the database, measure nothing",
    )
    parser.add_argument(
        "--tipg-python",
        default="/work/tipg-venv/bin/python",
        help="python of a venv with tipg and uvicorn installed "
        "(never the project venv: its pins may clash)",
    )
    parser.add_argument(
        "--tipg-geom-column",
        default="geom",
        help="geometry column tipg serves (geom: EPSG:4326, as "
        "tipg users configure it; geom_3857 to spare its transform)",
    )
    parser.add_argument(
        "--no-tipg", action="store_true", help="measure this server only"
    )
    parser.add_argument(
        "--app",
        default="gis_server.app:create_app",
        help="uvicorn factory of this server",
    )
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers, each")
    parser.add_argument(
        "--warm-workers",
        type=int,
        default=None,
        help="workers for the warm (cache hit) run; default --workers",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="passes over the tiles for single-client latency",
    )
    parser.add_argument("--clients", default="8,32", help="concurrency levels")
    parser.add_argument(
        "--seconds",
        type=float,
        default=20.0,
        help="duration of each throughput measurement",
    )
    parser.add_argument(
        "--feature-cap",
        type=int,
        default=20_000,
        help="feature cap of both servers (tipg max features per tile)",
    )
    parser.add_argument("--items-limit", type=int, default=1000)
    parser.add_argument(
        "--simplify-px",
        type=float,
        default=0.0,
        help="this server's per-zoom simplification (GIS_TILES_"
        "SIMPLIFY_PX); 0 keeps every feature tipg keeps",
    )
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator for concurrent runs (auto: wrk if "
        "installed; apt-get install wrk)",
    )
    parser.add_argument(
        "--items-tiles",
        type=int,
        default=20,
        help="how many z14 tiles give the bbox of items requests",
    )
    parser.add_argument(
        "--zooms", default="14:50,12:20,10:10,8:5", help="zoom:count of the tile list"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--our-port", type=int, default=8801)
    parser.add_argument("--tipg-port", type=int, default=8802)
    args = parser.parse_args(argv)
    if args.client == "auto":
        import shutil

        args.client = "wrk" if shutil.which("wrk") else "python"

    from gis_server.settings import TileSettings

    args.out.mkdir(parents=True, exist_ok=True)
    counts = {int(z): int(n) for z, n in (p.split(":") for p in args.zooms.split(","))}
    clients = [int(c) for c in args.clients.split(",")]
    url = open_database(args)
    have = ensure_city(url, args.buildings, load=args.load or not args.database_url)
    print(f"benchmark city: {have:,} buildings", flush=True)
    if args.prepare_only:
        return 0
    tiles = tile_list(counts)

    # both servers: same cap, buffer 0 (tipg takes features intersecting the
    # tile itself; with no buffer this server does too), same properties
    common = {
        "GIS_TILES_BUFFER": "0",
        "GIS_TILES_FEATURE_CAP": str(args.feature_cap),
        "GIS_TILES_RESPECT_LAYER_ZOOM": "false",
        "GIS_TILES_SIMPLIFY_PX": str(args.simplify_px),
        "GIS_LOG_REQUESTS": "false",
        "DATABASE_URL": url,
    }
    settings = TileSettings(
        buffer=0,
        feature_cap=args.feature_cap,
        respect_layer_zoom=False,
        simplify_px=args.simplify_px,
    )
    uv = [
        "-m",
        "uvicorn",
        "--host",
        "127.0.0.1",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    ours_cmd = [
        sys.executable,
        *uv,
        "--factory",
        args.app,
        "--port",
        str(args.our_port),
        "--workers",
        str(args.workers),
    ]
    tipg_url = url.replace("postgresql+psycopg2://", "postgresql://")
    tipg_env = {
        "DATABASE_URL": tipg_url,
        "TIPG_DB_SCHEMAS": '["public"]',
        "TIPG_DB_TABLES": '["public.layer_buildings"]',
        "TIPG_MAX_FEATURES_PER_TILE": str(args.feature_cap),
        "TIPG_MAX_FEATURES_PER_QUERY": str(max(10_000, args.items_limit)),
        "TIPG_TILE_BUFFER": "0",
        "TIPG_DB_MAX_CONN_SIZE": "16",
    }
    tipg_cmd = [
        args.tipg_python,
        *uv,
        "tipg.main:app",
        "--port",
        str(args.tipg_port),
        "--workers",
        str(args.workers),
    ]

    props = props_query()
    ours_tiles = [
        f"/collections/{LAYER}/tiles/WebMercatorQuad/{z}/{y}/{x}" for z, x, y in tiles
    ]
    tipg_tiles = [
        f"/collections/public.layer_buildings/tiles/WebMercatorQuad/{z}/{x}/{y}"
        f"?geom-column={args.tipg_geom_column}&properties={props}"
        f"&limit={args.feature_cap}"
        for z, x, y in tiles
    ]
    items_bboxes = [_bbox(t) for t in tiles if t[0] == 14][: args.items_tiles]
    # the feature id is not a property in our items (it is the GeoJSON id)
    ours_items = [
        f"/collections/{LAYER}/items?bbox={b}&limit={args.items_limit}"
        f"&properties={props.removeprefix('id,')}"
        for b in items_bboxes
    ]
    tipg_items = [
        f"/collections/public.layer_buildings/items?bbox={b}"
        f"&limit={args.items_limit}&properties={props.removeprefix('id,')}"
        f"&geom-column=geom"
        for b in items_bboxes
    ]

    result: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "buildings": have,
        "tiles": {z: n for z, n in counts.items()},
        "workers": args.workers,
        "feature_cap": args.feature_cap,
        "cpu_count": os.cpu_count(),
        "load_avg_start": os.getloadavg(),
        "tipg_geom_column": args.tipg_geom_column,
        "simplify_px": args.simplify_px,
        "client": args.client,
    }
    log_dir = args.out
    ours_cold = Server(
        "ours-cold",
        ours_cmd,
        {**common, "GIS_TILES_CACHE_BYTES": "0"},
        args.our_port,
        "/tileMatrixSets",
        log_dir,
    )
    tipg = (
        None
        if args.no_tipg
        else Server("tipg", tipg_cmd, tipg_env, args.tipg_port, "/collections", log_dir)
    )

    with ours_cold, tipg or contextlib.nullcontext():
        print(
            "warming the database cache and checking both tiles agree ...", flush=True
        )
        run_async(sequential(args.our_port, ours_tiles, 1))
        if tipg:
            run_async(sequential(args.tipg_port, tipg_tiles, 1))
            result["same_features"] = compare_features(
                args, tiles, ours_tiles, tipg_tiles
            )
        print("cold tiles, one client ...", flush=True)
        direct_sql(url, tiles, settings, 1)  # warm this path too
        cold = {"sql": Run(), "ours": Run(), "tipg": Run()}
        for _ in range(args.repeat):
            # interleave by pass so slow drift touches all three alike
            r, _ = direct_sql(url, tiles, settings, 1)
            _merge(cold["sql"], r)
            _merge(cold["ours"], run_async(sequential(args.our_port, ours_tiles, 1)))
            if tipg:
                _merge(
                    cold["tipg"], run_async(sequential(args.tipg_port, tipg_tiles, 1))
                )
        result["cold_latency"] = {
            k: v.summary() for k, v in cold.items() if v.latencies
        }
        result["cold_latency_by_zoom"] = by_zoom(
            args, tiles, url, settings, tipg, ours_tiles, tipg_tiles
        )
        result["cold_throughput"] = {}
        for c in clients:
            print(f"cold tiles, {c} clients ...", flush=True)
            entry = {"ours": load(args, args.our_port, ours_tiles, c, args.seconds)}
            if tipg:
                entry["tipg"] = load(args, args.tipg_port, tipg_tiles, c, args.seconds)
            result["cold_throughput"][c] = entry
        print("items, one client ...", flush=True)
        items = {"ours": Run(), "tipg": Run()}
        for _ in range(args.repeat):
            _merge(items["ours"], run_async(sequential(args.our_port, ours_items, 1)))
            if tipg:
                _merge(
                    items["tipg"], run_async(sequential(args.tipg_port, tipg_items, 1))
                )
        result["items_latency"] = {
            k: v.summary() for k, v in items.items() if v.latencies
        }
        result["items_returned"] = items_returned(args, ours_items, tipg_items, tipg)

    warm_workers = args.warm_workers or args.workers
    warm_cmd = [*ours_cmd[:-1], str(warm_workers)]
    with Server(
        "ours-warm", warm_cmd, common, args.our_port, "/tileMatrixSets", log_dir
    ):
        print("warm tiles (cache hits) ...", flush=True)
        result["warm_priming_passes"] = prime(args.our_port, ours_tiles, warm_workers)
        result["warm"] = {"workers": warm_workers}
        for c in clients:
            result["warm"][c] = load(args, args.our_port, ours_tiles, c, args.seconds)
    result["load_avg_end"] = os.getloadavg()
    result["ratios"] = ratios(result, clients)
    write(result, args.out)
    return 0


def _bbox(tile: tuple[int, int, int]) -> str:
    import morecantile

    b = morecantile.tms.get("WebMercatorQuad").bounds(tile[1], tile[2], tile[0])
    return f"{b.left:.7f},{b.bottom:.7f},{b.right:.7f},{b.top:.7f}"


def _merge(into: Run, run: Run) -> None:
    into.latencies += run.latencies
    into.seconds += run.seconds
    into.errors += run.errors
    into.bytes += run.bytes


def by_zoom(args, tiles, url, settings, tipg, ours_tiles, tipg_tiles) -> dict:
    """Median single-client latency per zoom (one more pass)."""
    out: dict[int, dict] = {}
    for z in sorted({t[0] for t in tiles}, reverse=True):
        idx = [i for i, t in enumerate(tiles) if t[0] == z]
        sub = [tiles[i] for i in idx]
        r, _ = direct_sql(url, sub, settings, 1)
        entry = {
            "sql_p50_ms": r.summary()["p50_ms"],
            "ours_p50_ms": run_async(
                sequential(args.our_port, [ours_tiles[i] for i in idx], 1)
            ).summary()["p50_ms"],
        }
        if tipg:
            entry["tipg_p50_ms"] = run_async(
                sequential(args.tipg_port, [tipg_tiles[i] for i in idx], 1)
            ).summary()["p50_ms"]
        out[z] = entry
    return out


def compare_features(args, tiles, ours_tiles, tipg_tiles, per_zoom: int = 2) -> dict:
    """Feature ids of a sample of tiles from both servers (decoded MVT)."""
    import gzip

    import mapbox_vector_tile

    sample = []
    for z in sorted({t[0] for t in tiles}):
        sample += [i for i, t in enumerate(tiles) if t[0] == z][:per_zoom]
    report = []

    async def fetch(port, path):
        status, headers, body = await _probe(port, path)
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        return status, body

    for i in sample:
        _, a = run_async(fetch(args.our_port, ours_tiles[i]))
        _, b = run_async(fetch(args.tipg_port, tipg_tiles[i]))
        ours = mapbox_vector_tile.decode(a).get(LAYER, {"features": []})["features"]
        layers = mapbox_vector_tile.decode(b)
        theirs = next(iter(layers.values()), {"features": []})["features"]
        ids_a = {f["id"] for f in ours}
        ids_b = {f["properties"].get("id", f.get("id")) for f in theirs}
        keys_a = set().union(*(f["properties"] for f in ours)) if ours else set()
        keys_b = set().union(*(f["properties"] for f in theirs)) if theirs else set()
        report.append(
            {
                "tile": "/".join(map(str, tiles[i])),
                "ours": len(ids_a),
                "tipg": len(ids_b),
                "common": len(ids_a & ids_b),
                "ours_bytes": len(a),
                "tipg_bytes": len(b),
                "property_keys_equal": keys_a | {"id"} == keys_b | {"id"},
            }
        )
    return {"sample": report}


def items_returned(args, ours_items, tipg_items, tipg) -> dict:
    async def count(port, path):
        import gzip

        _, headers, body = await _probe(port, path)
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        doc = json.loads(body)
        return len(doc.get("features", []))

    out = {"ours": run_async(count(args.our_port, ours_items[0]))}
    if tipg:
        out["tipg"] = run_async(count(args.tipg_port, tipg_items[0]))
    return out


def ratios(r: dict, clients: list[int]) -> dict:
    def div(a, b):
        return round(a / b, 2) if a and b else None

    cl = r["cold_latency"]
    out = {
        "cold_p50_ours_over_sql (target <= 1.2)": div(
            cl["ours"]["p50_ms"], cl["sql"]["p50_ms"]
        ),
        "cold_p95_ours_over_sql": div(cl["ours"]["p95_ms"], cl["sql"]["p95_ms"]),
    }
    if "tipg" in cl:
        out["cold_p50_ours_over_tipg"] = div(cl["ours"]["p50_ms"], cl["tipg"]["p50_ms"])
        for c in clients:
            t = r["cold_throughput"][c]
            out[f"cold_throughput_{c}_ours_over_tipg (target >= 1.5)"] = div(
                t["ours"]["per_s"], t["tipg"]["per_s"]
            )
        il = r["items_latency"]
        out["items_p50_ours_over_tipg (target <= 1.0)"] = div(
            il["ours"]["p50_ms"], il["tipg"]["p50_ms"]
        )
    for c in clients:
        out[f"warm_tiles_per_s_{c} (target >= 2000)"] = r["warm"][c]["per_s"]
    return out


def write(result: dict, out: Path) -> None:
    stamp = result["when"].replace(":", "").replace("-", "")[:15]
    (out / f"tiles-{stamp}.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "tiles-latest.json").write_text(json.dumps(result, indent=2, default=str))
    md = markdown(result)
    (out / f"tiles-{stamp}.md").write_text(md)
    (out / "tiles-latest.md").write_text(md)
    print(md)


def markdown(r: dict) -> str:
    lines = [
        f"# Tile benchmark, {r['when']}",
        "",
        f"{r['buildings']:,} buildings; tiles {r['tiles']} around "
        f"{CENTRE[0]}E {CENTRE[1]}N; {r['workers']} uvicorn workers each; "
        f"feature cap {r['feature_cap']}; {r['cpu_count']} CPUs, load average "
        f"{r['load_avg_start'][0]:.1f} at start, {r['load_avg_end'][0]:.1f} at end; "
        f"tipg serves `{r['tipg_geom_column']}`.",
        "",
        "## Ratios",
        "",
        "| measure | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in r["ratios"].items()]
    lines += [
        "",
        "## Single client, cold tiles (ms)",
        "",
        "| | p50 | p95 | tiles/s |",
        "|---|---|---|---|",
    ]
    for k, v in r["cold_latency"].items():
        lines.append(f"| {k} | {v['p50_ms']} | {v['p95_ms']} | {v['per_s']} |")
    lines += [
        "",
        "## By zoom, median ms",
        "",
        "| zoom | SQL | ours | tipg |",
        "|---|---|---|---|",
    ]
    for z, v in r["cold_latency_by_zoom"].items():
        lines.append(
            f"| {z} | {v['sql_p50_ms']} | {v['ours_p50_ms']} | "
            f"{v.get('tipg_p50_ms', '-')} |"
        )
    lines += [
        "",
        "## Concurrent clients, cold tiles",
        "",
        "| clients | server | p50 ms | p95 ms | tiles/s | MB/s | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for c, entry in r["cold_throughput"].items():
        for k, v in entry.items():
            lines.append(
                f"| {c} | {k} | {v['p50_ms']} | {v['p95_ms']} | "
                f"{v['per_s']} | {v['mb_per_s']} | {v['errors']} |"
            )
    lines += [
        "",
        f"## Warm tiles (cache hits, {r['warm']['workers']} workers)",
        "",
        "| clients | p50 ms | p95 ms | tiles/s | MB/s | errors |",
        "|---|---|---|---|---|---|",
    ]
    for c, v in r["warm"].items():
        if c == "workers":
            continue
        lines.append(
            f"| {c} | {v['p50_ms']} | {v['p95_ms']} | {v['per_s']} | {v['mb_per_s']} "
            f"| {v['errors']} |"
        )
    lines += [
        "",
        "## Items, tile-sized bbox, one client (ms)",
        "",
        "| | p50 | p95 | features returned |",
        "|---|---|---|---|",
    ]
    for k, v in r["items_latency"].items():
        lines.append(
            f"| {k} | {v['p50_ms']} | {v['p95_ms']} | {r['items_returned'].get(k)} |"
        )
    if "same_features" in r:
        lines += [
            "",
            "## Same features (sample of tiles)",
            "",
            "| tile | ours | tipg | common | same property keys | ours bytes | "
            "tipg bytes |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in r["same_features"]["sample"]:
            lines.append(
                f"| {s['tile']} | {s['ours']} | {s['tipg']} | {s['common']} | "
                f"{s['property_keys_equal']} | {s['ours_bytes']} | "
                f"{s['tipg_bytes']} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
