"""Composite risk surface on a square grid, Gi* hot spots, GeoTIFF raster.

Why a square grid rather than H3: the GeoTIFF asked for by desktop-GIS users
*is* a square grid, so one grid serves the layer, the raster (one pixel per
cell, no resampling) and the hot-spot statistic, whose neighbour sums become a
3 x 3 convolution (:mod:`models.risk.hotspot`). Cells are laid in the metric
frame (EPSG:32649) so they are equal-area squares of ``grid_cell_m``; their
indices come from PostGIS ``ST_SquareGrid``, anchored at the frame's origin,
so a cell keeps its id (``"i_j"``) from one run to the next. H3 cells would
vary in area and need the extra ``h3`` dependency, and rasterising them would
resample anyway.

Cell scores: each zone spreads its score over the cells it covers in
proportion to the covered share of its area; per kind the cell sums are
divided by their ``normalise_quantile`` (capped at 1) and combined with the
configured weights. The study area is the districts layer when loaded (cells
touching a district, rasterised), otherwise the extent of the scored cells
plus a ring of two cells. Zone scores outside the study area are not kept.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from sqlalchemy import Engine

from models.risk.dbutil import copy_rows, raw_connection
from models.risk.hotspot import classify, gi_star
from models.risk.settings import RiskSettings

log = logging.getLogger("gis_server.risk")

KIND_COLUMN = {"dangerous_building": "building_score",
               "curtain_wall": "curtain_wall_score",
               "river_pressure": "river_score"}

#: Zone pieces (subdivided so long river corridors stay cheap to cut) spread
#: their zone's score over the cells under them by covered area.
CELL_SCORES_SQL = """
WITH z AS (
    SELECT kind, score, ST_Transform(geom, %(srid)s) AS zu FROM layer_risk_zones
    WHERE score > 0 {zone_filter}
), parts AS (
    SELECT kind, score, ST_Area(zu) AS total, ST_Subdivide(zu, 64) AS part
    FROM z WHERE ST_Area(zu) > 0
)
SELECT p.kind, g.i, g.j,
       sum(p.score / p.total * CASE WHEN ST_Contains(g.geom, p.part)
                                    THEN ST_Area(p.part)
                                    ELSE ST_Area(ST_Intersection(g.geom, p.part))
                               END)
FROM parts p CROSS JOIN LATERAL ST_SquareGrid(%(cell)s, p.part) AS g
WHERE ST_Intersects(g.geom, p.part) {cell_filter}
GROUP BY 1, 2, 3
"""

#: Cells under the bboxes of zones changed since the last grid computation,
#: and their envelopes in EPSG:4326 (to find every zone overlapping them).
AFFECTED_CELLS_SQL = """
CREATE TEMP TABLE risk_cells_aff ON COMMIT DROP AS
SELECT DISTINCT g.i, g.j,
       ST_Transform(ST_MakeEnvelope(g.i * %(cell)s, g.j * %(cell)s,
           (g.i + 1) * %(cell)s, (g.j + 1) * %(cell)s, %(srid)s), 4326) AS env
FROM risk_grid_dirty d
CROSS JOIN LATERAL unnest(ARRAY[d.old_bbox, d.new_bbox]) AS b(box)
CROSS JOIN LATERAL ST_SquareGrid(%(cell)s, ST_Transform(b.box, %(srid)s)) AS g
WHERE d.id <= %(snap)s AND b.box IS NOT NULL
"""

STUDY_AREA_SQL = """
SELECT ST_AsBinary(ST_Transform(geom, %(srid)s)) FROM layer_districts
"""

#: Changed cells are updated in place (no geometry work); new cells inserted.
#: Which cells are new is known from the stored cells read before: an
#: anti-join against the table being filled would rescan the rows it has
#: just inserted (quadratic on a fresh, unanalysed table).
UPDATE_SQL = """
UPDATE layer_risk_grid c SET building_score = t.b, curtain_wall_score = t.w,
    river_score = t.r, composite = t.composite, gi_z = t.gi_z, gi_p = t.gi_p,
    hotspot = t.hotspot, computed_at = now(), updated_at = now()
FROM risk_cells t
WHERE NOT t.is_new
  AND c.source = 'risk_grid' AND c.source_id = t.cell_id AND c.source_part = 0
  AND (c.building_score, c.curtain_wall_score, c.river_score, c.composite,
       c.gi_z, c.gi_p, c.hotspot)
      IS DISTINCT FROM (t.b, t.w, t.r, t.composite, t.gi_z, t.gi_p, t.hotspot)
"""

INSERT_SQL = """
INSERT INTO layer_risk_grid (source, source_id, source_part, cell_id, cell_size_m,
    building_score, curtain_wall_score, river_score, composite, gi_z, gi_p,
    hotspot, computed_at, geom)
SELECT 'risk_grid', t.cell_id, 0, t.cell_id, %(cell)s, t.b, t.w, t.r, t.composite,
    t.gi_z, t.gi_p, t.hotspot, now(),
    ST_Transform(ST_MakeEnvelope(t.i * %(cell)s, t.j * %(cell)s,
        (t.i + 1) * %(cell)s, (t.j + 1) * %(cell)s, %(srid)s), 4326)
FROM risk_cells t
WHERE t.is_new
RETURNING id
"""

#: The district scoping a cell (``layers.risk.RISK_GRID``): the one its
#: centre lies in. Set on new cells, and on every cell by a full computation
#: (districts are edited rarely; an incremental run leaves old cells as
#: they are). District by district, so each polygon is prepared once for all
#: the cells under it.
DISTRICT_SQL = (
    """
UPDATE layer_risk_grid c SET district = d.name FROM layer_districts d
WHERE d.geom && c.geom AND ST_Intersects(d.geom, ST_Centroid(c.geom))
  AND ({which}) AND c.district IS DISTINCT FROM d.name
""",
    """
UPDATE layer_risk_grid c SET district = NULL
WHERE c.district IS NOT NULL AND ({which}) AND NOT EXISTS (
    SELECT 1 FROM layer_districts d
    WHERE d.geom && c.geom AND ST_Intersects(d.geom, ST_Centroid(c.geom)))
""",
)


@dataclass
class GridResult:
    """Summary of a grid computation."""

    cells: int
    scored: int
    hot: int
    cold: int
    written: int
    deleted: int
    raster: Path | None
    shape: tuple[int, int]
    seconds: float = 0.0
    #: seconds per step (snapshot, scores, study_area, numpy, write, raster)
    phases: dict = field(default_factory=dict)


def normalise(values: np.ndarray, quantile: float,
              mask: np.ndarray | None = None) -> np.ndarray:
    """Values divided by the ``quantile`` of the non-zero ones, capped at 1.

    Only cells in ``mask`` (the study area) set the reference quantile.

    >>> normalise(np.array([0.0, 1.0, 2.0, 4.0]), 1.0).tolist()
    [0.0, 0.25, 0.5, 1.0]
    """
    inside = values if mask is None else values[mask]
    nz = inside[inside > 0]
    if nz.size == 0:
        return np.zeros_like(values, dtype=np.float64)
    ref = float(np.quantile(nz, quantile))
    return np.minimum(values / ref, 1.0) if ref > 0 else np.zeros_like(values)


def _grid_snapshot(cur) -> int:
    # zones (and so this queue) are written only by risk runs, which hold the
    # advisory lock of models.risk.service: no writer can be in flight here
    cur.execute("SELECT coalesce(max(id), 0) FROM risk_grid_dirty")
    return cur.fetchone()[0]


def _scores_full(engine: Engine, params: dict, workers: int) -> list[tuple]:
    """Every zone's share of every cell, the zones split over ``workers``
    connections (PostgreSQL would parallelise only the scan, not the cutting).
    """
    def part(k: int) -> list[tuple]:
        conn = raw_connection(engine)
        try:
            with conn.cursor() as cur:
                where = f"AND id %% {workers} = {k}" if workers > 1 else ""
                cur.execute(CELL_SCORES_SQL.format(zone_filter=where, cell_filter=""),
                            params)
                rows = cur.fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()

    if workers == 1:
        return part(0)
    merged: dict[tuple, float] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for rows in pool.map(part, range(workers)):
            for kind, i, j, value in rows:
                merged[(kind, i, j)] = merged.get((kind, i, j), 0.0) + value
    return [(kind, i, j, value) for (kind, i, j), value in merged.items()]


#: What a stored cell holds, in the order compared with a recomputed one.
CELL_VALUES = ("building_score", "curtain_wall_score", "river_score", "composite",
               "gi_z", "gi_p", "hotspot")


def _stored_cells(cur) -> dict[str, tuple]:
    cur.execute(f"SELECT source_id, {', '.join(CELL_VALUES)} FROM layer_risk_grid "
                "WHERE source = 'risk_grid'")
    return {row[0]: tuple(row[1:]) for row in cur.fetchall()}


def _scores_incremental(cur, params: dict, stored: dict[str, tuple]) -> list[tuple]:
    """Stored kind scores, with the cells under changed zones recomputed."""
    cur.execute(AFFECTED_CELLS_SQL, params)
    cur.execute("SELECT i, j FROM risk_cells_aff")
    affected = {f"{i}_{j}" for i, j in cur.fetchall()}
    cur.execute(CELL_SCORES_SQL.format(
        zone_filter="AND id IN (SELECT z2.id FROM risk_cells_aff a "
                    "JOIN layer_risk_zones z2 ON z2.geom && a.env)",
        cell_filter="AND EXISTS (SELECT 1 FROM risk_cells_aff a "
                    "WHERE a.i = g.i AND a.j = g.j)"), params)
    scored = cur.fetchall()
    for cell_id, values in stored.items():
        if cell_id in affected:
            continue
        i, j = (int(v) for v in cell_id.split("_"))
        for kind, value in zip(KIND_COLUMN, values[:3], strict=True):
            if value:
                scored.append((kind, i, j, value))
    return scored


def compute_grid(engine: Engine, settings: RiskSettings, *,
                 write_raster: bool = True, incremental: bool = False) -> GridResult:
    """Recompute the grid from the stored zones and rewrite the changed cells.

    With ``incremental`` only cells under zones changed since the last run
    (``risk_grid_dirty``, filled by a trigger on the zones) are re-measured;
    the others keep their stored kind scores. Normalisation, composite and
    Gi* are always recomputed over the whole grid (they are global); only
    cells whose values changed are written.
    """
    start = time.perf_counter()
    phases: dict[str, float] = {}

    def lap(name: str) -> None:
        phases[name] = round(time.perf_counter() - start - sum(phases.values()), 3)

    cell = float(settings.grid_cell_m)
    params = {"srid": settings.metric_srid, "cell": cell}
    conn = raw_connection(engine)
    try:
        with conn.cursor() as cur:
            params["snap"] = _grid_snapshot(cur)
            conn.commit()
            lap("snapshot")
            cur.execute("SELECT cell_size_m FROM layer_risk_grid LIMIT 1")
            row = cur.fetchone()
            if row is not None and row[0] != cell:   # new cell size: start over
                cur.execute("DELETE FROM layer_risk_grid")
                row = None
            stored = _stored_cells(cur)
            incremental = incremental and row is not None
            if incremental:
                scored = _scores_incremental(cur, params, stored)
            else:
                conn.commit()
                scored = _scores_full(engine, params, settings.workers)
            lap("scores")
            cur.execute(STUDY_AREA_SQL, params)
            districts = [shapely.from_wkb(bytes(r[0])) for r in cur.fetchall()]
        conn.commit()
    finally:
        conn.close()
    lap("study_area")
    log.debug("grid cell scores measured", extra={
        "incremental": incremental, "cells": len(scored),
        "seconds": round(time.perf_counter() - start, 3)})
    # scores are kept to 6 decimals; cells a zone only grazes (touching along
    # an edge, or a sliver of rounding noise) score 0 and do not count
    scored = [(k, i, j, round(v, 6)) for k, i, j, v in scored if round(v, 6) > 0]

    bounds = []       # (i0, j0, i1, j1) of what the grid must cover
    if scored:
        ii = np.array([r[1] for r in scored])
        jj = np.array([r[2] for r in scored])
        ring = 0 if districts else 2
        bounds.append((int(ii.min()) - ring, int(jj.min()) - ring,
                       int(ii.max()) + ring, int(jj.max()) + ring))
    if districts:
        x0, y0, x1, y1 = shapely.total_bounds(districts)
        bounds.append((math.floor(x0 / cell), math.floor(y0 / cell),
                       math.floor(x1 / cell), math.floor(y1 / cell)))
    if not bounds:
        with engine.begin() as sa_conn:
            deleted = sa_conn.exec_driver_sql("DELETE FROM layer_risk_grid").rowcount
            sa_conn.exec_driver_sql("DELETE FROM risk_grid_dirty WHERE id <= %(snap)s",
                                    params)
        return GridResult(0, 0, 0, 0, 0, deleted, None, (0, 0))
    i0, j0 = min(b[0] for b in bounds), min(b[1] for b in bounds)
    i1, j1 = max(b[2] for b in bounds), max(b[3] for b in bounds)
    shape = (j1 - j0 + 1, i1 - i0 + 1)          # rows from north: row = j1 - j

    layers = {k: np.zeros(shape) for k in KIND_COLUMN}
    for kind, i, j, value in scored:
        layers[kind][j1 - j, i - i0] += value
    if districts:
        from rasterio.features import geometry_mask
        from rasterio.transform import from_origin

        mask = geometry_mask(districts, out_shape=shape, all_touched=True,
                             invert=True,
                             transform=from_origin(i0 * cell, (j1 + 1) * cell,
                                                   cell, cell))
    else:
        mask = np.ones(shape, dtype=bool)
    weights = {"dangerous_building": settings.weight_building,
               "curtain_wall": settings.weight_curtain_wall,
               "river_pressure": settings.weight_river}
    composite = np.zeros(shape)
    for kind, arr in layers.items():
        composite += weights[kind] * normalise(arr, settings.normalise_quantile,
                                               mask)
    z, p = gi_star(composite, mask)
    klass = classify(z, p, settings.hotspot_alpha, settings.hotspot_fdr)

    any_score = sum(arr for arr in layers.values()) > 0
    keep = mask & (any_score | (composite > 0) | (klass != "not_significant"))
    rows_idx, cols_idx = np.nonzero(keep)
    ii = (cols_idx + i0).tolist()
    jj = (j1 - rows_idx).tolist()
    columns = [
        *(np.round(layers[k][keep], 6).tolist() for k in KIND_COLUMN),
        np.round(composite[keep], 6).tolist(),
        np.round(z[keep], 3).tolist(),
        np.round(p[keep], 5).tolist(),
        klass[keep].tolist(),
    ]
    records, kept = [], set()
    for n, values in enumerate(zip(*columns, strict=True)):
        cell_id = f"{ii[n]}_{jj[n]}"
        kept.add(cell_id)
        old = stored.get(cell_id)
        if old != values:
            records.append((cell_id, ii[n], jj[n], *values, old is None))
    gone = [cell_id for cell_id in stored if cell_id not in kept]
    lap("numpy")
    conn = raw_connection(engine)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE risk_cells (cell_id text PRIMARY KEY, "
                        "i bigint, j bigint, b double precision, w double precision, "
                        "r double precision, composite double precision, "
                        "gi_z double precision, gi_p double precision, hotspot text, "
                        "is_new boolean) ON COMMIT DROP")
            copy_rows(cur, "risk_cells", ("cell_id", "i", "j", "b", "w", "r",
                                          "composite", "gi_z", "gi_p", "hotspot",
                                          "is_new"), records)
            cur.execute("ANALYZE risk_cells")
            cur.execute(UPDATE_SQL, params)
            written = cur.rowcount
            cur.execute(INSERT_SQL, params)
            written += cur.rowcount
            new_ids = [row[0] for row in cur.fetchall()]
            which = "c.id = ANY (%(ids)s)" if incremental else "true"
            for statement in DISTRICT_SQL:
                cur.execute(statement.format(which=which), {"ids": new_ids})
            cur.execute("DELETE FROM layer_risk_grid WHERE source = 'risk_grid' "
                        "AND source_id = ANY (%s)", (gone,))
            deleted = cur.rowcount
            cur.execute("DELETE FROM risk_grid_dirty WHERE id <= %(snap)s", params)
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    finally:
        conn.close()

    lap("write")
    raster = None
    if write_raster:
        raster = write_geotiff(settings.raster_path, composite, mask,
                               origin=(i0 * cell, (j1 + 1) * cell), cell=cell,
                               srid=settings.metric_srid)
        _register(engine, settings, raster)
    lap("raster")
    return GridResult(cells=int(mask.sum()),
                      scored=int((mask & (composite > 0)).sum()),
                      hot=int((klass == "hot").sum()),
                      cold=int((klass == "cold").sum()),
                      written=written, deleted=deleted, raster=raster, shape=shape,
                      seconds=round(time.perf_counter() - start, 3), phases=phases)


NODATA = -9999.0


def write_geotiff(path: Path, values: np.ndarray, mask: np.ndarray, *,
                  origin: tuple[float, float], cell: float, srid: int) -> Path:
    """Write ``values`` (rows from north) as a one-band float32 GeoTIFF."""
    import rasterio
    from rasterio.transform import from_origin

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.where(mask, values, NODATA).astype("float32")
    tmp = path.with_suffix(".tmp.tif")
    with rasterio.open(
        tmp, "w", driver="GTiff", width=data.shape[1], height=data.shape[0],
        count=1, dtype="float32", crs=f"EPSG:{srid}", nodata=NODATA,
        transform=from_origin(origin[0], origin[1], cell, cell),
        compress="deflate", tiled=data.shape[0] >= 256 and data.shape[1] >= 256,
    ) as dst:
        dst.write(data, 1)
        dst.set_band_description(1, "composite risk score")
        dst.update_tags(computed_at=dt.datetime.now(dt.UTC).isoformat(),
                        source="gis-server risk compute")
    tmp.replace(path)
    return path


def _register(engine: Engine, settings: RiskSettings, path: Path) -> None:
    try:
        from ingest.raster import register_raster
    except ImportError:  # raster ingest not installed: the file is still written
        log.warning("raster ingest unavailable; GeoTIFF written, not registered",
                    extra={"path": str(path)})
        return
    register_raster(engine, settings.raster_name, path, raster_dir=path.parent,
                    in_place=True)
