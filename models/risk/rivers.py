"""River pollution pressure: nearby sources per segment, accumulated downstream.

1. *Local pressure* of a segment: every construction site (by area, hectares)
   and concrete plant (by yearly capacity) within ``river_distance_m`` of it,
   each weighted by :func:`models.risk.scoring.source_pressure` (linear decay
   with distance). Distances are measured in the metric frame (EPSG:32649).
   Local pressures are kept in ``risk_river_local`` so a refresh recomputes
   only the segments near a changed source.
2. *Accumulation*: a Python topological pass over ``code`` ->
   ``downstream_code`` (:func:`models.risk.network.accumulate_downstream`):
   a segment carries its own pressure plus what flows in from upstream.
3. A zone per segment with pressure > 0: the segment's corridor (buffer of
   ``river_distance_m``), rewritten only when its values or geometry change,
   carrying the segment's ``chief_id`` (the river chief's scope).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from models.risk import scoring
from models.risk.dbutil import canonical_json, copy_rows, raw_connection
from models.risk.network import accumulate_downstream
from models.risk.settings import RiskSettings
from models.risk.zones import COMPARED, WriteStats

log = logging.getLogger("gis_server.risk")

# Bounding-box prefilter in degrees, widened by the latitude (1 degree of
# longitude is 111.32 km x cos(lat)); 110,000 m per degree leaves a margin.
_EXPAND = ("ST_Expand(r.geom, %(d)s / (110000.0 * cos(radians(greatest("
           "abs(ST_YMin(r.geom)), abs(ST_YMax(r.geom)))))), %(d)s / 110000.0)")

PAIRS_SQL = f"""
WITH r AS (
    SELECT id, geom, ST_Transform(geom, %(srid)s) AS ru FROM layer_rivers
    WHERE %(all)s OR id = ANY (%(ids)s)
)
SELECT r.id, 'construction_sites', c.id,
       ST_Distance(r.ru, ST_Transform(c.geom, %(srid)s)),
       ST_Area(ST_Transform(c.geom, %(srid)s)) / 10000.0
FROM r JOIN layer_construction_sites c ON c.geom && {_EXPAND}
WHERE (c.status IS NULL OR c.status = ANY (%(statuses)s))
  AND ST_DWithin(r.ru, ST_Transform(c.geom, %(srid)s), %(d)s)
UNION ALL
SELECT r.id, 'plants', p.id,
       ST_Distance(r.ru, ST_Transform(p.geom, %(srid)s)),
       coalesce(p.capacity_m3_per_year / %(cap_ref)s, 1.0)
FROM r JOIN layer_plants p ON p.geom && {_EXPAND}
WHERE ST_DWithin(r.ru, ST_Transform(p.geom, %(srid)s), %(d)s)
"""

UPSERT_SQL = """
INSERT INTO layer_risk_zones AS z (source, source_id, source_part, kind, level,
    score, subject_layer, subject_id, district, chief_id, reasons, cause_ids,
    radius_m, detail, params, computed_at, stale, geom)
SELECT 'river_pressure', s.subject_id::text, 0, 'river_pressure', s.level, s.score,
    'rivers', s.subject_id, NULL, r.chief_id, s.reasons, s.cause_ids, %(d)s,
    s.detail, %(params)s::jsonb, now(), false,
    ST_Multi(ST_Transform(ST_Buffer(ST_Transform(r.geom, %(srid)s), %(d)s), 4326))
FROM risk_score s JOIN layer_rivers r ON r.id = s.subject_id
ON CONFLICT (source, source_id, source_part) DO UPDATE SET
    level = EXCLUDED.level, score = EXCLUDED.score, reasons = EXCLUDED.reasons,
    cause_ids = EXCLUDED.cause_ids, radius_m = EXCLUDED.radius_m,
    detail = EXCLUDED.detail, params = EXCLUDED.params, geom = EXCLUDED.geom,
    district = EXCLUDED.district, chief_id = EXCLUDED.chief_id,
    computed_at = EXCLUDED.computed_at, stale = false, updated_at = now()
WHERE ({old}) IS DISTINCT FROM ({new})
RETURNING (xmax = 0)
""".format(
    old=", ".join(f"z.{c}" for c in COMPARED),
    new=", ".join(f"EXCLUDED.{c}" for c in COMPARED),
)


def local_pressures(cur, settings: RiskSettings, ids: Sequence[int] | None
                    ) -> dict[int, tuple[float, dict[str, list[int]]]]:
    """Local pressure and causing source ids of segments (all, or ``ids``)."""
    cur.execute(PAIRS_SQL, {
        "srid": settings.metric_srid, "d": settings.river_distance_m,
        "all": ids is None, "ids": list(ids or []),
        "statuses": list(settings.river_site_statuses),
        "cap_ref": settings.river_plant_capacity_ref,
    })
    weights = {"construction_sites": settings.river_site_weight,
               "plants": settings.river_plant_weight}
    out: dict[int, tuple[float, dict[str, list[int]]]] = {}
    for river_id, layer, source_id, dist, size in cur.fetchall():
        p = scoring.source_pressure(dist, size, weights[layer], settings)
        total, causes = out.get(river_id, (0.0, {}))
        if p > 0:
            causes.setdefault(layer, []).append(source_id)
        out[river_id] = (total + p, causes)
    for _, causes in out.values():
        for ids_ in causes.values():
            ids_.sort()
    return out


def compute_rivers(engine: Engine, settings: RiskSettings,
                   dirty_ids: Sequence[int] | None, params_json: str) -> WriteStats:
    """Recompute local pressure (all segments, or ``dirty_ids``), accumulate
    over the whole network and rewrite the zones that changed."""
    stats = WriteStats()
    conn = raw_connection(engine)
    try:
        with conn.cursor() as cur:
            local = local_pressures(cur, settings, dirty_ids)
            if dirty_ids is None:
                cur.execute("DELETE FROM risk_river_local")
                cur.execute("SELECT id, code, downstream_code FROM layer_rivers")
            else:
                cur.execute("DELETE FROM risk_river_local WHERE river_id = ANY (%s)",
                            (list(dirty_ids),))
                cur.execute("SELECT id, code, downstream_code FROM layer_rivers "
                            "WHERE id = ANY (%s)", (list(dirty_ids),))
            copy_rows(cur, "risk_river_local",
                      ("river_id", "code", "downstream_code", "local_pressure",
                       "cause_ids"),
                      ((rid, code, down, round(local.get(rid, (0.0, {}))[0], 9),
                        local.get(rid, (0.0, {}))[1])
                       for rid, code, down in cur.fetchall()))
            stats.candidates = len(local) if dirty_ids is None else len(dirty_ids)

            cur.execute("SELECT river_id, code, downstream_code, local_pressure, "
                        "cause_ids FROM risk_river_local")
            rows = cur.fetchall()
            node_of: dict[int, str] = {}
            node_local: dict[str, float] = defaultdict(float)
            node_down: dict[str, str | None] = {}
            for rid, code, down, p, _ in rows:
                node = code if code else f"#{rid}"
                node_of[rid] = node
                node_local[node] += p
                if node_down.get(node) is None:
                    node_down[node] = down
            acc, cycles = accumulate_downstream(node_local, node_down,
                                                settings.river_attenuation)
            upstream_of: dict[str, list[str]] = defaultdict(list)
            for node, down in node_down.items():
                if down and acc.get(node, 0) > 0:
                    upstream_of[down].append(node)

            desired: dict[int, tuple] = {}
            for rid, _code, _down, _p, causes in rows:
                node = node_of[rid]
                total = acc.get(node, 0.0)
                if total <= 0:
                    continue
                own = node_local[node]
                score = round(total, 6)
                level = scoring.level_for(score, settings.river_orange,
                                          settings.river_red)
                reasons = ["local_sources"] if own > 0 else []
                if total - own > 1e-9:
                    reasons.append("upstream")
                cause_ids = dict(causes)
                ups = sorted(upstream_of.get(node, []))
                if ups:
                    cause_ids["upstream_segments"] = ups
                detail = {"local": round(own, 6), "upstream": round(total - own, 6),
                          "accumulated": score, "on_cycle": node in cycles}
                desired[rid] = (score, level, reasons, cause_ids, detail)

            cur.execute("SELECT subject_id, score, level, reasons, cause_ids, detail "
                        "FROM layer_risk_zones WHERE kind = 'river_pressure'")
            stored = {r[0]: r[1:] for r in cur.fetchall()}
            geometry_dirty = set(desired) if dirty_ids is None else set(dirty_ids)
            changed = [rid for rid, row in desired.items()
                       if rid in geometry_dirty or rid not in stored
                       or _differs(stored[rid], row)]
            stats.produced = list(desired)
            cur.execute("CREATE TEMP TABLE risk_score (subject_id bigint PRIMARY KEY, "
                        "score double precision, level text, reasons jsonb, "
                        "cause_ids jsonb, detail jsonb) ON COMMIT DROP")
            copy_rows(cur, "risk_score", ("subject_id", "score", "level", "reasons",
                                          "cause_ids", "detail"),
                      ((rid, *desired[rid]) for rid in changed))
            cur.execute(UPSERT_SQL, {"d": settings.river_distance_m,
                                     "srid": settings.metric_srid,
                                     "params": params_json})
            for (inserted,) in cur.fetchall():
                if inserted:
                    stats.inserted += 1
                else:
                    stats.updated += 1
            cur.execute("UPDATE layer_risk_zones SET stale = false "
                        "WHERE kind = 'river_pressure' AND stale "
                        "AND subject_id = ANY (%s)", (list(desired),))
            cur.execute("DELETE FROM layer_risk_zones WHERE kind = 'river_pressure' "
                        "AND NOT (subject_id = ANY (%s))", (list(desired),))
            stats.deleted = cur.rowcount
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    finally:
        conn.close()
    stats.candidates = max(stats.candidates, len(changed))
    return stats


def _differs(stored: tuple[Any, ...], new: tuple) -> bool:
    score, level, reasons, causes, detail = stored
    return (abs(score - new[0]) > 1e-9 or level != new[1]
            or canonical_json(reasons) != canonical_json(new[2])
            or canonical_json(causes) != canonical_json(new[3])
            or canonical_json(detail) != canonical_json(new[4]))
