"""What scopes cost: tiles and items per role, with row-level security on.

What it does (``python bench/bench_auth.py --help`` for the options):

1. Opens the benchmark database of ``bench_tiles.py`` (its own embedded
   cluster under ``var/bench-pgdata``, port 55433, or ``--database-url``),
   migrated to head (which also applies the row-level policies), with the
   demo city of ``--buildings`` footprints (``--load`` adds it if missing).
2. Creates four accounts: an administrator (runs as the table owner, no
   policy), an analyst (the ``gis_reader`` role: a ``USING (true)`` policy),
   and a housing officer of the district with the most buildings (the
   ``gis_housing`` role: a policy on ``district``), plus a key for each.
3. Serves the app in-process (Starlette's test client; the tile cache off, so
   every tile is rendered) and, interleaving the roles tile by tile, asks each
   for the same cold tiles (``bench_tiles``' list around the dense centre) and
   the same ``items?bbox=`` pages; reports p50/p95 per role and the ratio to
   the administrator.
4. With its own cluster (a superuser at hand), measures the housing officer
   once more with PostGIS' ``&&`` *not* marked LEAKPROOF (what a database
   without that mark gives, see ``gis_server/auth/dbsecurity.py``), then
   restores the mark.

Compare within one run: the machine is shared.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_tiles import ensure_city, open_database, tile_list  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench-pgdata")
    parser.add_argument("--port", type=int, default=55433)
    parser.add_argument("--buildings", type=int, default=1_000_000)
    parser.add_argument("--load", action="store_true", help="load the city if missing")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the tiles")
    args = parser.parse_args(argv)

    from fastapi.testclient import TestClient
    from sqlalchemy import create_engine, text

    from gis_server.app import create_app
    from gis_server.auth import accounts
    from gis_server.auth.settings import AuthSettings
    from gis_server.limits import LimitSettings
    from gis_server.settings import DatabaseSettings, ServerSettings, TileSettings

    url = open_database(args)
    n = ensure_city(url, args.buildings, args.load)
    engine = create_engine(url)
    keys: dict[str, str] = {}
    with engine.begin() as conn:
        district, in_district = conn.execute(
            text(
                "SELECT district, count(*) FROM layer_buildings GROUP BY 1 "
                "ORDER BY 2 DESC LIMIT 1"
            )
        ).one()
        for name, role, extra in (
            ("bench-admin", "admin", {}),
            ("bench-analyst", "analyst", {}),
            ("bench-housing", "housing_officer", {"district": district}),
        ):
            try:
                accounts.get_user(conn, name)
            except Exception:
                accounts.add_user(conn, name, role, None, **extra)
            keys[role] = accounts.create_key(conn, name, "bench")
    engine.dispose()

    app = create_app(
        db=DatabaseSettings(url=url),
        server=ServerSettings(log_requests=False),
        auth=AuthSettings(),
        limits=LimitSettings(rate_limit=False),
    )
    app.state.tile_settings = TileSettings(cache_bytes=0, listen=False)
    tiles = tile_list({14: 50, 12: 20})
    boxes = [
        f"{113.26 + i * 0.01:.3f},{23.10 + i * 0.005:.3f},"
        f"{113.27 + i * 0.01:.3f},{23.11 + i * 0.005:.3f}"
        for i in range(10)
    ]
    times: dict[tuple[str, str], list[float]] = {}
    features: dict[str, int] = {}
    runs = [(list(keys), None)]
    admin_dsn = None
    if not args.database_url:
        admin_dsn = url.replace("postgresql+psycopg2://gis@", "postgresql://postgres@")
        runs.append((["housing_officer"], "housing_officer, && not LEAKPROOF"))
    with TestClient(app) as client:
        for roles, label in runs:
            if label:
                _leakproof(admin_dsn, False)
            try:
                _measure(
                    client,
                    keys,
                    roles,
                    label,
                    tiles,
                    boxes,
                    args.repeat,
                    times,
                    features,
                )
            finally:
                if label:
                    _leakproof(admin_dsn, True)
    print(
        f"\n{n:,} buildings; the housing officer's district {district} holds "
        f"{in_district:,}; {len(tiles)} tiles x {args.repeat} passes, "
        f"{len(boxes)} items pages x {args.repeat}\n"
    )
    print(
        "| role | database role | tile p50 | tile p95 | items p50 | items p95 | "
        "tile features |"
    )
    print("|---|---|---|---|---|---|---|")
    base = statistics.median(times[("admin", "tile")])
    base_items = statistics.median(times[("admin", "items")])
    db_role = {
        "admin": "owner",
        "analyst": "gis_reader",
        "housing_officer": "gis_housing (district policy)",
    }
    for name in dict.fromkeys(role for role, _ in times):
        tile, items = times[(name, "tile")], times[(name, "items")]
        print(
            f"| {name} | {db_role.get(name, 'gis_housing')} | "
            f"{statistics.median(tile):.1f} ms "
            f"({statistics.median(tile) / base:.2f}x) | {_pct(tile, 0.95):.1f} ms | "
            f"{statistics.median(items):.1f} ms "
            f"({statistics.median(items) / base_items:.2f}x) | "
            f"{_pct(items, 0.95):.1f} ms | {features[name]:,} |"
        )
    return 0


def _leakproof(admin_dsn: str, on: bool) -> None:
    import psycopg2

    from gis_server.auth.dbsecurity import LEAKPROOF_FUNCTIONS

    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        for fn in LEAKPROOF_FUNCTIONS:
            cur.execute(f"ALTER FUNCTION {fn} {'LEAKPROOF' if on else 'NOT LEAKPROOF'}")
    conn.close()


def _measure(client, keys, roles, label, tiles, boxes, repeat, times, features):
    """Time every tile and items page for each role, interleaved."""
    for role in roles:  # warm the connection pools and the plan caches
        client.get(
            "/tiles/buildings/14/13351/7119.pbf", headers={"X-API-Key": keys[role]}
        )
    for _ in range(repeat):
        for z, x, y in tiles:
            for role in roles:
                name = label or role
                t0 = time.perf_counter()
                r = client.get(
                    f"/tiles/buildings/{z}/{x}/{y}.pbf",
                    headers={"X-API-Key": keys[role]},
                )
                times.setdefault((name, "tile"), []).append(
                    (time.perf_counter() - t0) * 1000
                )
                assert r.status_code in (200, 204), r.text
                features[name] = features.get(name, 0) + int(
                    r.headers.get("x-tile-features", 0)
                )
        for box in boxes:
            for role in roles:
                name = label or role
                t0 = time.perf_counter()
                r = client.get(
                    "/collections/buildings/items",
                    params={"bbox": box, "limit": 100},
                    headers={"X-API-Key": keys[role]},
                )
                times.setdefault((name, "items"), []).append(
                    (time.perf_counter() - t0) * 1000
                )
                assert r.status_code == 200, r.text


if __name__ == "__main__":
    sys.exit(main())
