"""What the row-level policies on records cost: feeds, loop history,
evidence, patrols, risk zones, per database role.

What it does (``python bench/bench_scopes.py --help`` for the options):

1. Opens a database of its own (an embedded cluster under
   ``var/bench-scopes-pgdata``, port 55434, or ``--database-url``, which it
   fills: use an empty one) migrated to head, so the policies of
   ``gis_server/auth/dbsecurity.py`` are on.
2. Fills it with SQL (``generate_series``, seeded): ``--buildings``
   footprints over 11 districts of unequal size, structural readings of
   ``--monitored`` buildings (20 each), construction sites with 100 workers
   each, warnings with three loop events each citing photos, the evidence
   register, river segments of 500 chiefs with patrols, and a hazard zone per
   C/D building.
3. Times each query ``--repeat`` times per role -- the owner (no policy; with
   the scope written into the query where the result would differ, so every
   role gets the same rows), the analyst (``USING (true)``), the housing
   officer of the largest district and a river chief -- inside a
   transaction begun as the server does (``SET LOCAL ROLE`` + settings,
   not timed), and prints p50 / p95 and the ratio to the owner.

Compare within one run: the machine is shared.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DISTRICTS = 11

FILL = [
    # districts: squares in a row, the first ones holding more buildings
    """INSERT INTO layer_districts (source, source_id, name, geom)
    SELECT 'bench', 'd' || d, 'D' || d,
           ST_Multi(ST_MakeEnvelope(113.0 + d * 0.1, 23.0, 113.1 + d * 0.1, 23.1,
                                    4326))
    FROM generate_series(0, {districts} - 1) d""",
    """INSERT INTO layer_buildings (source, source_id, district, safety_grade,
        height_m, geom)
    SELECT 'bench', 'b' || i, 'D' || d,
           (ARRAY['A','A','A','A','A','A','B','B','C','D'])[1 + i % 10], 12,
           ST_Multi(ST_MakeEnvelope(x, y, x + 0.0001, y + 0.0001, 4326))
    FROM (SELECT i, floor(sqrt(random()) * {districts} * 0.999)::int AS d,
                 random() AS rx, random() AS ry
          FROM generate_series(1, {buildings}) i) s,
         LATERAL (SELECT 113.0 + d * 0.1 + rx * 0.099 AS x,
                         23.0 + ry * 0.099 AS y) p""",
    "TRUNCATE risk_dirty",
    """INSERT INTO feed_building_readings (source, building_id, sensor_id,
        measured_at, kind, value)
    SELECT 'bench', 'b' || b, 's1', timestamp '2026-01-01' + k * interval '1 week',
           'settlement_mm', k * 0.5
    FROM generate_series(1, {buildings}, {buildings} / {monitored}) b,
         generate_series(1, 20) k""",
    """INSERT INTO layer_construction_sites (source, source_id, district, status,
        geom)
    SELECT 'bench', 'site' || i, 'D' || (i % {districts}), 'active',
           ST_Multi(ST_MakeEnvelope(113.0 + (i % {districts}) * 0.1 + 0.05, 23.05,
                                    113.0 + (i % {districts}) * 0.1 + 0.051, 23.051,
                                    4326))
    FROM generate_series(1, {sites}) i""",
    """INSERT INTO feed_site_workers (source, site_id, worker_id)
    SELECT 'bench', 'site' || s, 'w' || w
    FROM generate_series(1, {sites}) s, generate_series(1, 100) w""",
    """INSERT INTO layer_supervision_warnings (source, source_id, district,
        responsible, state, domain, geom)
    SELECT 'bench', 'warn' || i, 'D' || (i % {districts}),
           CASE WHEN i % 5 = 0 THEN 'C' || (i % 500) ELSE 'party' || (i % 300) END,
           'rectified', 'buildings', ST_SetSRID(ST_MakePoint(113.05, 23.05), 4326)
    FROM generate_series(1, {warnings}) i""",
    """INSERT INTO supervision_warning_events (warning_id, actor, action, evidence)
    SELECT w.id, 'bench', a,
           CASE WHEN a = 'rectify' THEN jsonb_build_array(
               jsonb_build_object('sha256', md5('p' || w.id) || md5('q' || w.id)))
           ELSE '[]'::jsonb END
    FROM layer_supervision_warnings w,
         unnest(ARRAY['raise', 'dispatch', 'rectify']) a""",
    """INSERT INTO supervision_evidence (sha256, name, size, content_type, path)
    SELECT md5('p' || id) || md5('q' || id), 'photo.jpg', 1000, 'image/jpeg', 'x'
    FROM layer_supervision_warnings""",
    """INSERT INTO layer_rivers (source, source_id, code, chief_id, geom)
    SELECT 'bench', 'r' || i, 'R' || i, 'C' || (i % 500),
           ST_Multi(ST_MakeLine(ST_SetSRID(ST_MakePoint(113.0 + i * 0.0001, 23.2),
                                           4326),
                                ST_SetSRID(ST_MakePoint(113.0 + i * 0.0001, 23.21),
                                           4326)))
    FROM generate_series(1, {rivers}) i""",
    """INSERT INTO water_patrol_records (chief_id, segment_code, started_at,
        duration_min, distance_km, meets_standard)
    SELECT 'C' || (r % 500), 'R' || r, timestamp '2026-01-01' + p * interval '1 day',
           30, 2, true
    FROM generate_series(1, {rivers}) r, generate_series(1, {patrols_per_river}) p""",
    """INSERT INTO layer_risk_zones (source, source_id, kind, level, score,
        subject_layer, subject_id, district, geom)
    SELECT 'dangerous_building', b.id::text, 'dangerous_building', 'orange', 1,
           'buildings', b.id, b.district, ST_Multi(ST_Buffer(b.geom, 0.0003))
    FROM layer_buildings b WHERE b.safety_grade IN ('C', 'D')""",
    "TRUNCATE risk_dirty, risk_grid_dirty",
    "ANALYZE",
]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url")
    parser.add_argument(
        "--data-dir", type=Path, default=ROOT / "var" / "bench-scopes-pgdata"
    )
    parser.add_argument("--port", type=int, default=55434)
    parser.add_argument("--buildings", type=int, default=1_000_000)
    parser.add_argument("--monitored", type=int, default=50_000)
    parser.add_argument("--warnings", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args(argv)

    import psycopg2

    from gis_server.auth import dbsecurity
    from gis_server.auth.principal import Principal

    url = _open(args)
    dsn = url.replace("postgresql+psycopg2://", "postgresql://")
    conn = psycopg2.connect(dsn)
    sizes = {
        "districts": DISTRICTS,
        "buildings": args.buildings,
        "monitored": args.monitored,
        "sites": 5_000,
        "warnings": args.warnings,
        "rivers": 10_000,
        "patrols_per_river": 20,
    }
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM layer_buildings")
        if cur.fetchone()[0] == 0:
            t0 = time.perf_counter()
            for statement in FILL:
                cur.execute(statement.format(**sizes))
            conn.commit()
            print(f"filled in {time.perf_counter() - t0:.0f} s", flush=True)
        cur.execute(
            "SELECT district, count(*) FROM layer_buildings GROUP BY 1 "
            "ORDER BY 2 DESC LIMIT 1"
        )
        district, in_district = cur.fetchone()
        counts = {}
        for table in (
            "feed_building_readings",
            "feed_site_workers",
            "supervision_warning_events",
            "supervision_evidence",
            "water_patrol_records",
            "layer_risk_zones",
        ):
            cur.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cur.fetchone()[0]
        rng = random.Random(7)
        cur.execute(
            "SELECT DISTINCT building_id FROM feed_building_readings r "
            "JOIN layer_buildings b ON b.source_id = r.building_id "
            "WHERE b.district = %s",
            (district,),
        )
        monitored = [r[0] for r in cur.fetchall()]
        cur.execute(
            "SELECT id FROM layer_supervision_warnings WHERE district = %s",
            (district,),
        )
        warnings = [r[0] for r in cur.fetchall()]
        cur.execute(
            "SELECT source_id FROM layer_construction_sites WHERE district = %s",
            (district,),
        )
        sites = [r[0] for r in cur.fetchall()]
    conn.commit()
    housing = Principal("bench-housing", "housing_officer", district=district)
    chief = Principal("bench-chief", "river_chief", chief_id="C7")
    analyst = Principal("bench-analyst", "analyst")

    def one(seq):
        return lambda: (rng.choice(seq),)

    def photo(seq):
        def pick():
            w = rng.choice(seq)
            return (f"{_md5('p', w)}{_md5('q', w)}",)

        return pick

    # (name, roles, sql for the scoped roles, sql for the owner, parameters)
    district_join = (
        "JOIN layer_buildings b ON b.source_id = r.building_id "
        f"AND b.district = '{district}'"
    )
    queries = [
        (
            "a building's readings (trend chart)",
            ("analyst", "housing"),
            "SELECT measured_at, value FROM feed_building_readings "
            "WHERE building_id = %s ORDER BY measured_at",
            None,
            one(monitored),
        ),
        (
            "readings of the district's buildings (count)",
            ("housing",),
            "SELECT count(*) FROM feed_building_readings",
            f"SELECT count(*) FROM feed_building_readings r {district_join}",
            lambda: (),
        ),
        (
            "a site's workers",
            ("analyst", "housing"),
            "SELECT count(*) FROM feed_site_workers WHERE site_id = %s",
            None,
            one(sites),
        ),
        (
            "a warning's history (loop events)",
            ("analyst", "housing"),
            "SELECT action, at FROM supervision_warning_events "
            "WHERE warning_id = %s ORDER BY id",
            None,
            one(warnings),
        ),
        (
            "a cited photo's register row",
            ("analyst", "housing"),
            "SELECT content_type FROM supervision_evidence WHERE sha256 = %s",
            None,
            photo(warnings),
        ),
        (
            "a chief's patrols (count)",
            ("chief",),
            "SELECT count(*) FROM water_patrol_records",
            "SELECT count(*) FROM water_patrol_records p WHERE EXISTS "
            "(SELECT 1 FROM layer_rivers r WHERE r.code = p.segment_code "
            "AND r.chief_id = 'C7')",
            lambda: (),
        ),
        (
            "a patrol recorded (insert, rolled back)",
            ("chief",),
            "INSERT INTO water_patrol_records (chief_id, segment_code, started_at, "
            "duration_min, distance_km, meets_standard) "
            "VALUES ('C7', 'R7', now(), 30, 2, true)",
            None,
            lambda: (),
        ),
        (
            "the district's hazard zones (count)",
            ("housing",),
            "SELECT count(*) FROM layer_risk_zones",
            f"SELECT count(*) FROM layer_risk_zones WHERE district = '{district}'",
            lambda: (),
        ),
    ]
    who = {"analyst": analyst, "housing": housing, "chief": chief}
    results = []
    for name, roles, sql, owner_sql, params in queries:
        times: dict[str, list[float]] = {}
        rows: dict[str, object] = {}
        for _ in range(args.repeat):
            args_ = params()
            for role in ("owner", *roles):
                statement = owner_sql if role == "owner" and owner_sql else sql
                with conn.cursor() as cur:
                    if role != "owner":
                        scope, values = dbsecurity.scope_statements(who[role])
                        cur.execute(scope, values)
                    t0 = time.perf_counter()
                    cur.execute(statement, args_)
                    elapsed = (time.perf_counter() - t0) * 1000
                    rows[role] = cur.fetchall() if cur.description else cur.rowcount
                conn.rollback()
                times.setdefault(role, []).append(elapsed)
        same = len({repr(v) for v in rows.values()}) == 1
        results.append((name, times, same))
    print(
        f"\n{args.buildings:,} buildings (the housing officer's district {district} "
        f"holds {in_district:,}); "
        + ", ".join(f"{t} {n:,}" for t, n in counts.items())
        + f"; {args.repeat} runs per query and role\n"
    )
    print("| query | owner p50 | analyst p50 | housing p50 | chief p50 | p95 max |")
    print("|---|---|---|---|---|---|")
    for name, times, same in results:
        base = statistics.median(times["owner"])
        cells = []
        for role in ("owner", "analyst", "housing", "chief"):
            if role not in times:
                cells.append("")
                continue
            p50 = statistics.median(times[role])
            ratio = "" if role == "owner" else f" ({p50 / base:.2f}x)"
            cells.append(f"{p50:.2f} ms{ratio}")
        worst = max(_pct(v, 0.95) for v in times.values())
        flag = "" if same else " (rows differ!)"
        print(f"| {name}{flag} | " + " | ".join(cells) + f" | {worst:.2f} ms |")
    conn.close()
    return 0


def _md5(prefix: str, value: int) -> str:
    import hashlib

    return hashlib.md5(f"{prefix}{value}".encode()).hexdigest()


def _open(args) -> str:
    if args.database_url:
        return args.database_url
    from gis_server import db
    from gis_server.embedded import EmbeddedCluster
    from gis_server.settings import DatabaseSettings

    settings = DatabaseSettings(
        url=None, data_dir=args.data_dir, port=args.port, name="gis_bench_scopes"
    )
    EmbeddedCluster(settings).start()
    url = settings.effective_url()
    db.upgrade(url)
    return url


if __name__ == "__main__":
    sys.exit(main())
