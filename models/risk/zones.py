"""Hazard zones around dangerous buildings and curtain walls (PostGIS + rules).

A zone is the subject's footprint (or point) buffered by its radius in the
metric frame (``RiskSettings.metric_srid``, EPSG:32649 by default) and
transformed back to EPSG:4326. "Inside the zone" means intersecting it: a
building counts when any part of its footprint is within the radius, a road
contributes the length of its part inside (measured in the metric frame).

Subjects are processed in slices on parallel connections; each slice measures
its zones into a temporary table, scores them with :mod:`models.risk.scoring`
and upserts them, rewriting a stored zone only when something in it changed
(so ``computed_at`` says when a zone last changed, and an unchanged recompute
writes nothing). A zone carries its subject's district (:data:`DISTRICT_SQL`),
the column housing officers' row-level policy reads it by.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from models.risk import scoring
from models.risk.dbutil import copy_rows, raw_connection
from models.risk.settings import RiskSettings

log = logging.getLogger("gis_server.risk")

#: Zone columns compared to decide whether a recomputed zone changed (the
#: scope columns too: a subject moved to another district moves its zone).
COMPARED = ("level", "score", "reasons", "cause_ids", "radius_m", "building_ids",
            "sensitive_ids", "road_length_m", "detail", "params", "district",
            "chief_id", "geom")

#: The district scoping a zone (``layers.risk.RISK_ZONES``), per subject
#: layer, for the subject row ``t``: a building's own; a curtain wall's
#: building's (``building`` holds its source id), else the district the wall
#: lies in.
DISTRICT_SQL = {
    "buildings": "t.district",
    "curtain_walls": """coalesce(
        (SELECT b.district FROM layer_buildings b
         WHERE b.source_id = t.building AND b.district IS NOT NULL
         ORDER BY b.id LIMIT 1),
        (SELECT d.name FROM layer_districts d
         WHERE ST_Intersects(d.geom, ST_PointOnSurface(t.geom))
         ORDER BY d.id LIMIT 1))""",
}

MEASURE_SQL = """
CREATE TEMP TABLE risk_meas ON COMMIT DROP AS
WITH z AS (
    SELECT s.subject_id, s.radius, {district} AS district,
           ST_Buffer(ST_Transform(t.geom, %(srid)s), s.radius) AS zu
    FROM risk_subj s JOIN {subject_table} t ON t.id = s.subject_id
), z4 AS (
    SELECT z.*, ST_Multi(ST_Transform(z.zu, 4326)) AS g FROM z
)
SELECT z4.subject_id, z4.radius, z4.district, z4.g AS geom,
       b.building_ids, b.building_count, b.sensitive_ids, b.sensitive_count,
       r.road_length_m
FROM z4
CROSS JOIN LATERAL (
    SELECT coalesce(jsonb_agg(o.id ORDER BY o.id), '[]'::jsonb) AS building_ids,
           count(o.id)::int AS building_count,
           coalesce(jsonb_agg(o.id ORDER BY o.id)
                    FILTER (WHERE o.use = ANY (%(sensitive)s)), '[]'::jsonb)
               AS sensitive_ids,
           (count(o.id) FILTER (WHERE o.use = ANY (%(sensitive)s)))::int
               AS sensitive_count
    FROM layer_buildings o
    WHERE ST_Intersects(o.geom, z4.g) AND o.id <> {exclude}
) b
CROSS JOIN LATERAL (
    SELECT round(coalesce(sum(ST_Length(ST_Intersection(
               ST_Transform(rd.geom, %(srid)s), z4.zu)))::numeric, 0), 3)
               ::double precision AS road_length_m
    FROM layer_roads rd
    WHERE ST_Intersects(rd.geom, z4.g)
) r
"""

UPSERT_SQL = """
INSERT INTO layer_risk_zones AS z (source, source_id, source_part, kind, level,
    score, subject_layer, subject_id, district, chief_id, reasons, cause_ids,
    radius_m, building_count, building_ids, sensitive_count, sensitive_ids,
    road_length_m, detail, params, computed_at, stale, geom)
SELECT %(kind)s, m.subject_id::text, 0, %(kind)s, s.level, s.score,
    %(subject_layer)s, m.subject_id, m.district, NULL, s.reasons, s.cause_ids,
    m.radius, m.building_count, m.building_ids, m.sensitive_count, m.sensitive_ids,
    m.road_length_m, s.detail, %(params)s::jsonb, now(), false, m.geom
FROM risk_meas m JOIN risk_score s USING (subject_id)
ON CONFLICT (source, source_id, source_part) DO UPDATE SET
    level = EXCLUDED.level, score = EXCLUDED.score, reasons = EXCLUDED.reasons,
    cause_ids = EXCLUDED.cause_ids, radius_m = EXCLUDED.radius_m,
    building_count = EXCLUDED.building_count, building_ids = EXCLUDED.building_ids,
    sensitive_count = EXCLUDED.sensitive_count,
    sensitive_ids = EXCLUDED.sensitive_ids, road_length_m = EXCLUDED.road_length_m,
    detail = EXCLUDED.detail, params = EXCLUDED.params, geom = EXCLUDED.geom,
    district = EXCLUDED.district, chief_id = EXCLUDED.chief_id,
    computed_at = EXCLUDED.computed_at, stale = false, updated_at = now()
WHERE ({old}) IS DISTINCT FROM ({new})
RETURNING (xmax = 0) AS inserted
""".format(
    old=", ".join(f"z.{c}" for c in COMPARED),
    new=", ".join(f"EXCLUDED.{c}" for c in COMPARED),
)

SCORE_TABLE = """
CREATE TEMP TABLE risk_score (subject_id bigint PRIMARY KEY, score double precision,
    level text, reasons jsonb, cause_ids jsonb, detail jsonb) ON COMMIT DROP
"""


@dataclass
class Subject:
    """One feature a zone is drawn around, with what its score needs."""

    id: int
    radius: float
    info: dict[str, Any] = field(default_factory=dict)


#: (subject, building_count, sensitive_count, road_length_m)
#:   -> (score, level, reasons, cause_ids, detail)
Scorer = Callable[[Subject, int, int, float], tuple[float, str, list, dict, dict]]


@dataclass
class WriteStats:
    """What an upsert of zones did."""

    candidates: int = 0
    produced: list[int] = field(default_factory=list)
    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    def add(self, other: WriteStats) -> None:
        self.candidates += other.candidates
        self.produced += other.produced
        self.inserted += other.inserted
        self.updated += other.updated
        self.deleted += other.deleted


def _slice(engine: Engine, kind: str, subject_layer: str, exclude_self: bool,
           subjects: Sequence[Subject], scorer: Scorer, settings: RiskSettings,
           params_json: str) -> WriteStats:
    stats = WriteStats(candidates=len(subjects))
    by_id = {s.id: s for s in subjects}
    conn = raw_connection(engine)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE risk_subj (subject_id bigint PRIMARY KEY, "
                        "radius double precision) ON COMMIT DROP")
            copy_rows(cur, "risk_subj", ("subject_id", "radius"),
                      ((s.id, s.radius) for s in subjects))
            cur.execute("ANALYZE risk_subj")
            cur.execute(
                MEASURE_SQL.format(subject_table=f"layer_{subject_layer}",
                                   district=DISTRICT_SQL[subject_layer],
                                   exclude="z4.subject_id" if exclude_self else "-1"),
                {"srid": settings.metric_srid,
                 "sensitive": list(settings.sensitive_uses)},
            )
            cur.execute("SELECT subject_id, building_count, sensitive_count, "
                        "road_length_m FROM risk_meas")
            rows = []
            for sid, n_b, n_s, road in cur.fetchall():
                score, level, reasons, causes, detail = scorer(by_id[sid], n_b, n_s,
                                                               road)
                rows.append((sid, round(score, 6), level, reasons, causes, detail))
                stats.produced.append(sid)
            cur.execute(SCORE_TABLE)
            copy_rows(cur, "risk_score", ("subject_id", "score", "level", "reasons",
                                          "cause_ids", "detail"), rows)
            cur.execute(UPSERT_SQL, {"kind": kind, "subject_layer": subject_layer,
                                     "params": params_json})
            for (inserted,) in cur.fetchall():
                if inserted:
                    stats.inserted += 1
                else:
                    stats.updated += 1
            cur.execute(
                "UPDATE layer_risk_zones SET stale = false WHERE kind = %s "
                "AND subject_id = ANY (%s) AND stale",
                (kind, [s.id for s in subjects]),
            )
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    finally:
        conn.close()
    return stats


def write_zones(engine: Engine, kind: str, subject_layer: str, *,
                subjects: Sequence[Subject], scorer: Scorer, settings: RiskSettings,
                params_json: str, exclude_self: bool,
                scope: Sequence[int] | None) -> WriteStats:
    """Measure, score and upsert the zones of ``subjects``; drop obsolete ones.

    ``scope`` is the set of subject ids recomputed (None: the whole kind):
    stored zones of this kind in scope that were not produced are deleted.
    """
    stats = WriteStats()
    workers = max(1, min(settings.workers, len(subjects) // 500 + 1))
    ordered = sorted(subjects, key=lambda s: s.id)
    slices = [ordered[i::workers] for i in range(workers)]
    if workers == 1:
        results = [_slice(engine, kind, subject_layer, exclude_self, ordered, scorer,
                          settings, params_json)]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(
                lambda part: _slice(engine, kind, subject_layer, exclude_self, part,
                                    scorer, settings, params_json),
                slices,
            ))
    for r in results:
        stats.add(r)
    conn = raw_connection(engine)
    try:
        with conn.cursor() as cur:
            if scope is None:
                cur.execute(
                    "DELETE FROM layer_risk_zones WHERE kind = %s "
                    "AND NOT (subject_id = ANY (%s))", (kind, stats.produced))
            else:
                gone = sorted(set(scope) - set(stats.produced))
                cur.execute(
                    "DELETE FROM layer_risk_zones WHERE kind = %s "
                    "AND subject_id = ANY (%s)", (kind, gone))
            stats.deleted = cur.rowcount
        conn.commit()
    finally:
        conn.close()
    return stats


# -- dangerous buildings ---------------------------------------------------------


def building_subjects(engine: Engine, settings: RiskSettings,
                      ids: Sequence[int] | None) -> list[Subject]:
    """C/D buildings (all, or among ``ids``) with their hazard radius."""
    sql = ("SELECT id, safety_grade, height_m, floors FROM layer_buildings "
           "WHERE safety_grade = ANY (%s)")
    args: list[Any] = [list(settings.building_grades)]
    if ids is not None:
        sql += " AND id = ANY (%s)"
        args.append(list(ids))
    conn = raw_connection(engine)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            rows = cur.fetchall()
    finally:
        conn.close()
    out = []
    for bid, grade, height_m, floors in rows:
        height = scoring.building_height(height_m, floors, settings)
        out.append(Subject(bid, scoring.building_radius(grade, height, settings),
                           {"grade": grade, "height_m": height}))
    return out


def building_scorer(settings: RiskSettings) -> Scorer:
    def score(subject: Subject, n_b: int, n_s: int, road: float):
        grade = subject.info["grade"]
        value = scoring.building_score(grade, n_b, n_s, road, settings)
        level = scoring.level_for(value, settings.building_orange,
                                  settings.building_red)
        reasons = [f"grade_{grade}"]
        detail = {"grade": grade, "height_m": round(subject.info["height_m"], 3)}
        return value, level, reasons, {"buildings": [subject.id]}, detail
    return score


# -- curtain walls ---------------------------------------------------------------


def wall_subjects(statuses: dict[int, tuple[scoring.WallStatus, float | None]],
                  settings: RiskSettings) -> list[Subject]:
    """Walls that need a fall zone, with its radius."""
    return [
        Subject(wid, scoring.wall_radius(height, settings),
                {"status": status, "height_m": height})
        for wid, (status, height) in statuses.items() if status.reasons
    ]


def wall_scorer(settings: RiskSettings) -> Scorer:
    def score(subject: Subject, n_b: int, n_s: int, road: float):
        status: scoring.WallStatus = subject.info["status"]
        value = scoring.wall_score(status, n_b, n_s, road, settings)
        level = scoring.level_for(value, settings.wall_orange, settings.wall_red)
        detail = {
            "next_due": status.next_due.isoformat() if status.next_due else None,
            "overdue_years": status.overdue_years,
            "status_key": status.key(),
        }
        return value, level, status.reasons, {"curtain_walls": [subject.id]}, detail
    return score
