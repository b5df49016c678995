"""Running the risk models: full computation, incremental refresh, status.

Incremental design
------------------
Statement-level triggers on the source layers (migration 0002) append every
changed row to ``risk_dirty`` (layer, feature id, operation, old and new
bounding box) and, for statements of up to 10,000 rows, flag the zones whose
bounding box the change touches as ``stale`` at once. ``refresh`` then takes a
snapshot of the queue and recomputes only:

* dangerous buildings: the changed buildings themselves, plus the C/D zones a
  changed building or road touches (old or new bbox): their exposure changed;
* curtain walls: the changed walls, the zones a changed building or road
  touches, and walls whose schedule status changed with the date or with a
  record of the curtain-wall feeds (a check falling due or a check recorded
  needs no edit of the layer);
* rivers: changed segments and segments within ``river_distance_m`` of a
  changed site or plant get their local pressure recomputed; accumulation is
  rerun over the whole network (cheap, in memory) and only the zones whose
  values changed are rewritten (so downstream segments follow);
* the grid: a trigger on the zones queues the old/new bbox of every zone
  whose geometry or score changed (``risk_grid_dirty``); only the cells under
  them are re-measured, the others keep their stored scores, and the global
  steps (normalisation, composite, Gi*) are rerun over the whole grid.

A TRUNCATE, or more queued changes than ``refresh_full_threshold`` (a bulk
ingest), makes the kinds concerned recompute in full. Every write compares old
and new zone content, so a zone's ``computed_at`` changes only when the zone
does; ``risk_runs`` records each kind's last run. The queue entries read are
deleted in the same run; entries arriving meanwhile wait for the next one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from gis_server.errors import GisServerError, InvalidParameter
from models.risk import zones as zmod
from models.risk.dbutil import canonical_json, raw_connection
from models.risk.grid import GridResult, compute_grid
from models.risk.rivers import compute_rivers
from models.risk.settings import RiskSettings
from models.risk.walls import wall_statuses

log = logging.getLogger("gis_server.risk")

KINDS = ("dangerous_building", "curtain_wall", "river_pressure")

#: Source layers whose edits each kind depends on (as the triggers of 0002).
KIND_LAYERS = {
    "dangerous_building": ("buildings", "roads"),
    "curtain_wall": ("curtain_walls", "buildings", "roads"),
    "river_pressure": ("rivers", "construction_sites", "plants"),
}

_LOCK_KEY = "gis_server.risk"


class RiskBusy(GisServerError):
    """Another risk computation is running on this database."""

    code = "Conflict"


class UnknownRiskKind(InvalidParameter):
    """A risk kind that is not one of :data:`KINDS`."""


@dataclass
class KindRun:
    """What one kind's computation did."""

    kind: str
    mode: str
    candidates: int = 0
    zones: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.deleted


@dataclass
class RunReport:
    """What a compute or refresh did."""

    kinds: list[KindRun] = field(default_factory=list)
    grid: GridResult | None = None
    dirty_consumed: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        out = asdict(self)
        if self.grid and self.grid.raster:
            out["grid"]["raster"] = str(self.grid.raster)
        return out


def local_today() -> dt.date:
    """Today in Guangzhou (the schedules are counted in local dates)."""
    return dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()


@contextlib.contextmanager
def _lock(engine: Engine) -> Iterator[None]:
    conn = raw_connection(engine)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (_LOCK_KEY,))
            got = cur.fetchone()[0]
        conn.commit()
        if not got:
            raise RiskBusy("another risk computation is running; try again later")
        try:
            yield
        finally:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(hashtext(%s))", (_LOCK_KEY,))
            conn.commit()
    finally:
        conn.close()


def _check_kinds(kinds: Sequence[str] | None) -> tuple[str, ...]:
    if not kinds:
        return KINDS
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise UnknownRiskKind(f"unknown risk kind(s) {bad}; known: {', '.join(KINDS)}")
    return tuple(k for k in KINDS if k in kinds)


def _scalar(engine: Engine, sql: str, args: Sequence | dict | None = None):
    conn = raw_connection(engine)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            row = cur.fetchone()
        conn.commit()
        return row[0] if row else None
    finally:
        conn.close()


def _column(engine: Engine, sql: str, args: Sequence | dict | None = None) -> list:
    conn = raw_connection(engine)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            rows = [r[0] for r in cur.fetchall()]
        conn.commit()
        return rows
    finally:
        conn.close()


# -- one kind ----------------------------------------------------------------------


def _run_kind(engine: Engine, settings: RiskSettings, kind: str,
              scope: set[int] | None, today: dt.date,
              wall_status_changed: set[int] | None = None) -> KindRun:
    """Compute one kind in full (``scope`` None) or for the subjects in scope."""
    start = time.perf_counter()
    run = KindRun(kind, "full" if scope is None else "incremental")
    params_json = canonical_json(settings.params(kind))
    if kind == "dangerous_building":
        ids = None if scope is None else sorted(scope)
        subjects = zmod.building_subjects(engine, settings, ids)
        stats = zmod.write_zones(
            engine, kind, "buildings", subjects=subjects,
            scorer=zmod.building_scorer(settings), settings=settings,
            params_json=params_json, exclude_self=True, scope=ids)
    elif kind == "curtain_wall":
        ids = None if scope is None else sorted(scope)
        statuses = wall_statuses(engine, settings, today, ids)
        stats = zmod.write_zones(
            engine, kind, "curtain_walls", subjects=zmod.wall_subjects(statuses,
                                                                       settings),
            scorer=zmod.wall_scorer(settings), settings=settings,
            params_json=params_json, exclude_self=False, scope=ids)
    else:
        stats = compute_rivers(engine, settings,
                               None if scope is None else sorted(scope), params_json)
    run.candidates = stats.candidates if scope is None else len(scope)
    run.inserted, run.updated = stats.inserted, stats.updated
    run.deleted = stats.deleted
    run.zones = _scalar(engine, "SELECT count(*) FROM layer_risk_zones WHERE kind = %s",
                        (kind,))
    run.seconds = round(time.perf_counter() - start, 3)
    _record_run(engine, run, params_json)
    log.info("risk kind computed", extra={
        "kind": kind, "mode": run.mode, "candidates": run.candidates,
        "zones": run.zones, "changed": run.changed, "seconds": run.seconds})
    return run


def _record_run(engine: Engine, run: KindRun, params_json: str) -> None:
    conn = raw_connection(engine)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO risk_runs (kind, mode, params, zones, changed, seconds, "
                "finished_at) VALUES (%s, %s, %s::jsonb, %s, %s, %s, now()) "
                "ON CONFLICT (kind) DO UPDATE SET mode = EXCLUDED.mode, "
                "params = EXCLUDED.params, zones = EXCLUDED.zones, "
                "changed = EXCLUDED.changed, seconds = EXCLUDED.seconds, "
                "finished_at = EXCLUDED.finished_at",
                (run.kind, run.mode, params_json, run.zones, run.changed, run.seconds))
        conn.commit()
    finally:
        conn.close()


def _snapshot(engine: Engine) -> int:
    """The last queued change id, once every change up to it is committed.

    Identity values are handed out before commit, so a plain ``max(id)`` could
    cover a row of a transaction still running, which ``_consume`` would then
    delete unseen. A SHARE lock waits for the writers in flight (it blocks new
    ones only for the instant of the read).
    """
    conn = raw_connection(engine)
    try:
        with conn.cursor() as cur:
            cur.execute("LOCK TABLE risk_dirty IN SHARE MODE")
            cur.execute("SELECT coalesce(max(id), 0) FROM risk_dirty")
            snap = cur.fetchone()[0]
        conn.commit()
        return snap
    finally:
        conn.close()


def _consume(engine: Engine, snapshot: int, layers: Sequence[str]) -> int:
    conn = raw_connection(engine)
    try:
        with conn.cursor() as cur:
            cur.execute("DELETE FROM risk_dirty WHERE id <= %s AND layer_id = ANY (%s)",
                        (snapshot, list(layers)))
            n = cur.rowcount
        conn.commit()
        return n
    finally:
        conn.close()


# -- public entry points -------------------------------------------------------------


def compute(engine: Engine, settings: RiskSettings, kinds: Sequence[str] | None = None,
            *, today: dt.date | None = None, grid: bool = True,
            write_raster: bool = True) -> RunReport:
    """Recompute the zones of ``kinds`` (default all) in full, then the grid."""
    chosen = _check_kinds(kinds)
    today = today or local_today()
    start = time.perf_counter()
    report = RunReport()
    with _lock(engine):
        snapshot = _snapshot(engine)
        for kind in chosen:
            report.kinds.append(_run_kind(engine, settings, kind, None, today))
        if grid:
            report.grid = compute_grid(engine, settings, write_raster=write_raster)
        # a layer's queued changes are done with when every kind reading it ran
        done = [layer for layer in {x for k in chosen for x in KIND_LAYERS[k]}
                if all(k in chosen for k in KINDS if layer in KIND_LAYERS[k])]
        report.dirty_consumed = _consume(engine, snapshot, done)
    report.seconds = round(time.perf_counter() - start, 3)
    return report


def _affected(engine: Engine, settings: RiskSettings, kind: str, snapshot: int
              ) -> set[int]:
    args = {"snap": snapshot, "srid": settings.metric_srid,
            "d": settings.river_distance_m}
    if kind in ("dangerous_building", "curtain_wall"):
        own = "buildings" if kind == "dangerous_building" else "curtain_walls"
        touched = " UNION ".join(
            f"SELECT z.subject_id FROM risk_dirty d JOIN layer_risk_zones z "
            f"ON z.geom && d.{box} WHERE d.id <= %(snap)s "
            f"AND d.layer_id IN ('buildings', 'roads') AND z.kind = '{kind}'"
            for box in ("old_bbox", "new_bbox"))
        sql = (f"SELECT feature_id FROM risk_dirty WHERE id <= %(snap)s "
               f"AND layer_id = '{own}' AND feature_id IS NOT NULL UNION {touched}")
    else:
        near = " UNION ".join(
            f"SELECT r.id FROM risk_dirty d JOIN layer_rivers r "
            f"ON r.geom && ST_Expand(d.{box}, %(d)s / (110000.0 * cos(radians("
            f"greatest(abs(ST_YMin(d.{box})), abs(ST_YMax(d.{box})))))), "
            f"%(d)s / 110000.0) "
            f"WHERE d.id <= %(snap)s "
            f"AND d.layer_id IN ('construction_sites', 'plants') "
            f"AND ST_DWithin(ST_Transform(r.geom, %(srid)s), "
            f"ST_Transform(d.{box}, %(srid)s), %(d)s)"
            for box in ("old_bbox", "new_bbox"))
        sql = ("SELECT feature_id FROM risk_dirty WHERE id <= %(snap)s "
               f"AND layer_id = 'rivers' AND feature_id IS NOT NULL UNION {near}")
    return set(_column(engine, sql, args))


def _wall_status_changes(engine: Engine, settings: RiskSettings,
                         today: dt.date) -> set[int]:
    """Walls whose zone-deciding status differs from their stored zone."""
    statuses = wall_statuses(engine, settings, today)
    conn = raw_connection(engine)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT subject_id, detail -> 'status_key' FROM "
                        "layer_risk_zones WHERE kind = 'curtain_wall'")
            stored = dict(cur.fetchall())
        conn.commit()
    finally:
        conn.close()
    changed = set()
    for wid, (status, _height) in statuses.items():
        want = status.key() if status.reasons else None
        if canonical_json(want) != canonical_json(stored.get(wid)):
            changed.add(wid)
    changed |= set(stored) - set(statuses)
    return changed


def refresh(engine: Engine, settings: RiskSettings, *, today: dt.date | None = None,
            write_raster: bool = True) -> RunReport:
    """Fold the queued source changes into the zones that they touch."""
    today = today or local_today()
    start = time.perf_counter()
    report = RunReport()
    with _lock(engine):
        snapshot = _snapshot(engine)
        conn = raw_connection(engine)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT layer_id, count(*), bool_or(op = 'T') "
                            "FROM risk_dirty WHERE id <= %s GROUP BY 1", (snapshot,))
                queued = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
                cur.execute("SELECT kind FROM risk_runs")
                ran_before = {r[0] for r in cur.fetchall()}
            conn.commit()
        finally:
            conn.close()
        for kind in KINDS:
            layers = KIND_LAYERS[kind]
            count = sum(queued.get(layer, (0, False))[0] for layer in layers)
            truncated = any(queued.get(layer, (0, False))[1] for layer in layers)
            if (kind not in ran_before or truncated
                    or count > settings.refresh_full_threshold):
                report.kinds.append(_run_kind(engine, settings, kind, None, today))
                continue
            scope = _affected(engine, settings, kind, snapshot) if count else set()
            if kind == "curtain_wall":
                scope |= _wall_status_changes(engine, settings, today)
            if scope:
                report.kinds.append(_run_kind(engine, settings, kind, scope, today))
        grid_queue = _scalar(engine, "SELECT count(*) FROM risk_grid_dirty")
        if grid_queue or any(run.changed for run in report.kinds):
            report.grid = compute_grid(engine, settings, write_raster=write_raster,
                                       incremental=True)
        report.dirty_consumed = _consume(
            engine, snapshot, sorted({x for layers in KIND_LAYERS.values()
                                      for x in layers}))
    report.seconds = round(time.perf_counter() - start, 3)
    return report


def status(engine: Engine) -> dict:
    """Zone counts by kind and level, stale zones, queued changes, last runs."""
    conn = raw_connection(engine)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT kind, level, count(*), count(*) FILTER (WHERE stale) "
                        "FROM layer_risk_zones GROUP BY 1, 2 ORDER BY 1, 2")
            zones = [dict(zip(("kind", "level", "zones", "stale"), r, strict=True))
                     for r in cur.fetchall()]
            cur.execute("SELECT layer_id, count(*) FROM risk_dirty GROUP BY 1 "
                        "ORDER BY 1")
            queued = dict(cur.fetchall())
            cur.execute("SELECT kind, mode, zones, changed, seconds, finished_at "
                        "FROM risk_runs ORDER BY kind")
            runs = [dict(zip(("kind", "mode", "zones", "changed", "seconds",
                              "finished_at"), r, strict=True))
                    for r in cur.fetchall()]
            cur.execute("SELECT count(*), count(*) FILTER (WHERE hotspot = 'hot'), "
                        "count(*) FILTER (WHERE hotspot = 'cold') FROM layer_risk_grid")
            cells, hot, cold = cur.fetchone()
        conn.commit()
    finally:
        conn.close()
    for run in runs:
        run["finished_at"] = run["finished_at"].isoformat()
    return {"zones": zones, "queued_changes": queued, "runs": runs,
            "grid": {"cells": cells, "hot": hot, "cold": cold}}
