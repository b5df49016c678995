"""The river network the water models work on, read from the database or batches.

Segment positions are midpoints in a local metric plane (Web Mercator scaled
by cos(latitude), good to a fraction of a percent across one city), enough for
the kilometre-scale distances of pollution pressure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree
from sqlalchemy import Engine, text

R_EARTH = 6_378_137.0


@dataclass
class Network:
    """River segments, their stations and the pollution sources around them."""

    codes: np.ndarray  # segment codes (object array of str)
    downstream: np.ndarray  # index of the downstream segment, -1 at an outlet
    xy: np.ndarray  # (n, 2) midpoints in metres
    length_m: np.ndarray
    remediated: np.ndarray  # bool
    chief_id: np.ndarray  # object array (None where unknown)
    chief_level: np.ndarray  # object array
    station_codes: np.ndarray  # object array
    station_segment: np.ndarray  # segment index of each station
    source_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    source_weight: np.ndarray = field(default_factory=lambda: np.zeros(0))
    source_kind: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    lonlat: np.ndarray | None = None  # (n, 2) midpoints in degrees, if known

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.codes)}


def _to_local(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    lat0 = float(np.nanmean(lat)) if len(lat) else 0.0
    k = math.cos(math.radians(lat0))
    x = np.radians(lon) * R_EARTH * k
    y = np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)) * R_EARTH * k
    return np.column_stack([x, y])


def _downstream_index(codes: np.ndarray, downstream_codes: np.ndarray) -> np.ndarray:
    idx = {c: i for i, c in enumerate(codes)}
    return np.array(
        [idx.get(d, -1) if d else -1 for d in downstream_codes], dtype=np.int64
    )


def network_from_database(engine: Engine) -> Network:
    """The network as stored in the rivers, stations, sites and plants layers."""
    with engine.connect() as conn:
        rivers = conn.execute(
            text("""
            SELECT code, downstream_code,
                   coalesce(length_m, ST_Length(geom::geography)),
                   coalesce(remediated, false), chief_id, chief_level,
                   ST_X(p), ST_Y(p)
            FROM (SELECT DISTINCT ON (code) *, ST_PointOnSurface(geom) AS p
                  FROM layer_rivers WHERE code IS NOT NULL ORDER BY code, id) r
            ORDER BY code""")
        ).all()
        stations = conn.execute(
            text(
                "SELECT DISTINCT ON (code) code, river_code "
                "FROM layer_monitoring_stations WHERE code IS NOT NULL "
                "ORDER BY code, id"
            )
        ).all()
        sources = conn.execute(
            text("""
            SELECT 'construction_site', ST_X(c), ST_Y(c),
                   CASE WHEN status IN ('completed', 'planned') THEN 0.3 ELSE 1.0 END
            FROM (SELECT ST_PointOnSurface(geom) c, status
                  FROM layer_construction_sites) s
            UNION ALL
            SELECT 'plant', ST_X(geom), ST_Y(geom),
                   1.0 + least(coalesce(capacity_m3_per_year, 0) / 1e6, 3.0)
            FROM layer_plants""")
        ).all()
    codes = np.array([r[0] for r in rivers], dtype=object)
    down = np.array([r[1] for r in rivers], dtype=object)
    lon = np.array([r[6] for r in rivers], dtype=float)
    lat = np.array([r[7] for r in rivers], dtype=float)
    idx = {c: i for i, c in enumerate(codes)}
    st = [(c, idx[rc]) for c, rc in stations if rc in idx]
    src_lon = np.array([s[1] for s in sources], dtype=float)
    src_lat = np.array([s[2] for s in sources], dtype=float)
    all_xy = _to_local(np.r_[lon, src_lon], np.r_[lat, src_lat])
    return Network(
        codes=codes,
        downstream=_downstream_index(codes, down),
        xy=all_xy[: len(codes)],
        length_m=np.array([r[2] or 0.0 for r in rivers], dtype=float),
        remediated=np.array([bool(r[3]) for r in rivers], dtype=bool),
        chief_id=np.array([r[4] for r in rivers], dtype=object),
        chief_level=np.array([r[5] for r in rivers], dtype=object),
        station_codes=np.array([s[0] for s in st], dtype=object),
        station_segment=np.array([s[1] for s in st], dtype=np.int64),
        source_xy=all_xy[len(codes) :],
        source_weight=np.array([s[3] for s in sources], dtype=float),
        source_kind=np.array([s[0] for s in sources], dtype=object),
        lonlat=np.column_stack([lon, lat]),
    )


def network_from_batches(rivers, stations, sites=None, plants=None) -> Network:
    """The network from the demo generator's FeatureBatches (EPSG:4326).

    Columns used: rivers ``code``, ``downstream_code``, ``length_m``,
    ``remediated``, ``chief_id``, ``chief_level``; stations ``code``,
    ``river_code``; plants ``capacity_m3_per_year`` (optional).
    """

    def col(batch, name, default=None):
        values = batch.columns.get(name)
        return np.array(
            values if values is not None else [default] * len(batch), dtype=object
        )

    mids = [
        g.interpolate(0.5, normalized=True) if g is not None else None
        for g in rivers.geometries
    ]
    lon = np.array([p.x if p is not None else np.nan for p in mids])
    lat = np.array([p.y if p is not None else np.nan for p in mids])
    codes = col(rivers, "code")
    idx = {c: i for i, c in enumerate(codes)}
    st_codes, st_seg = [], []
    for c, rc in zip(col(stations, "code"), col(stations, "river_code"), strict=True):
        if rc in idx:
            st_codes.append(c)
            st_seg.append(idx[rc])
    src_lon, src_lat, weight, kind = [], [], [], []
    for batch, name in ((sites, "construction_site"), (plants, "plant")):
        if batch is None:
            continue
        cap = col(batch, "capacity_m3_per_year", 0.0)
        status = col(batch, "status", "active")
        for g, c, st in zip(batch.geometries, cap, status, strict=True):
            if g is None:
                continue
            p = g.representative_point()
            src_lon.append(p.x)
            src_lat.append(p.y)
            if name == "plant":
                weight.append(1.0 + min((c or 0) / 1e6, 3.0))
            else:  # same weights as network_from_database
                weight.append(0.3 if st in ("completed", "planned") else 1.0)
            kind.append(name)
    all_xy = _to_local(np.r_[lon, np.array(src_lon)], np.r_[lat, np.array(src_lat)])
    length = col(rivers, "length_m", None)
    return Network(
        codes=codes,
        downstream=_downstream_index(codes, col(rivers, "downstream_code")),
        xy=all_xy[: len(codes)],
        length_m=np.array([float(v) if v is not None else 0.0 for v in length]),
        remediated=np.array(
            [bool(v) for v in col(rivers, "remediated", False)], dtype=bool
        ),
        chief_id=col(rivers, "chief_id"),
        chief_level=col(rivers, "chief_level"),
        station_codes=np.array(st_codes, dtype=object),
        station_segment=np.array(st_seg, dtype=np.int64),
        source_xy=all_xy[len(codes) :],
        source_weight=np.array(weight, dtype=float),
        source_kind=np.array(kind, dtype=object),
        lonlat=np.column_stack([lon, lat]),
    )


def topological_order(downstream: np.ndarray) -> np.ndarray:
    """Segments ordered so that every segment comes before its downstream one.

    Cycles (bad data) are broken: their segments come last, in index order.

    >>> topological_order(np.array([2, 2, -1])).tolist()
    [0, 1, 2]
    """
    n = len(downstream)
    indeg = np.zeros(n, dtype=np.int64)
    valid = downstream >= 0
    np.add.at(indeg, downstream[valid], 1)
    order = []
    stack = list(np.flatnonzero(indeg == 0)[::-1])
    while stack:
        i = stack.pop()
        order.append(i)
        d = downstream[i]
        if d >= 0:
            indeg[d] -= 1
            if indeg[d] == 0:
                stack.append(d)
    if len(order) < n:
        seen = np.zeros(n, bool)
        seen[order] = True
        order += list(np.flatnonzero(~seen))
    return np.asarray(order, dtype=np.int64)


def accumulate_downstream(
    values: np.ndarray, downstream: np.ndarray, decay: float
) -> np.ndarray:
    """What each segment receives from upstream: decayed sum of upstream values.

    ``out[i] = sum over upstream u of values[u] * decay ** hops(u, i)``,
    excluding the segment's own value.

    >>> down = np.array([1, 2, -1])
    >>> accumulate_downstream(np.array([1.0, 1.0, 0.0]), down, 0.5).tolist()
    [0.0, 0.5, 0.75]
    """
    values = np.asarray(values, dtype=float)
    if values.ndim == 2 or len(values) > 2000:
        return _accumulate_sparse(values, downstream, decay)
    total = values.copy()
    for i in topological_order(downstream):
        d = downstream[i]
        if d >= 0:
            total[d] += decay * total[i]
    return total - values


def _accumulate_sparse(
    values: np.ndarray, downstream: np.ndarray, decay: float
) -> np.ndarray:
    """Same as :func:`accumulate_downstream`, for many columns at once.

    Solves ``(I - decay * P) total = values`` with ``P[d, i] = 1`` when ``d``
    is downstream of ``i`` (a tree: the LU factorisation is cheap).
    """
    from scipy.sparse import csc_matrix, identity
    from scipy.sparse.linalg import splu

    n = len(downstream)
    src = np.flatnonzero(downstream >= 0)
    p = csc_matrix((np.full(len(src), decay), (downstream[src], src)), shape=(n, n))
    lu = splu((identity(n, format="csc") - p).tocsc())
    total = lu.solve(values if values.ndim == 2 else values[:, None])
    total = total if values.ndim == 2 else total[:, 0]
    return total - values


def local_pressure(net: Network, radius_m: float) -> np.ndarray:
    """Sources near each segment, weighted by ``1 - distance / radius``.

    Distances are taken from the segment midpoint (a simplification: a long
    segment passing close to a site at one end is under-counted).
    """
    out = np.zeros(len(net))
    if len(net.source_xy) == 0 or len(net) == 0:
        return out
    tree = cKDTree(net.xy)
    pairs = tree.query_ball_point(net.source_xy, r=radius_m)
    for s, segs in enumerate(pairs):
        if not segs:
            continue
        segs = np.asarray(segs)
        d = np.linalg.norm(net.xy[segs] - net.source_xy[s], axis=1)
        np.add.at(out, segs, net.source_weight[s] * (1 - d / radius_m))
    return out


def synthetic_network(
    n_segments: int,
    *,
    seed: int = 0,
    extent_km: float | None = None,
    stations_per_segment: float = 1.3,
    sources_per_segment: float = 0.25,
) -> Network:
    """A random dendritic network for tests and benchmarks (not the demo city).

    Rivers grow upstream from a few outlets in ~500 m steps; stations sit on
    about 70 % of the segments; construction sites and plants cluster.
    """
    rng = np.random.default_rng(seed)
    n = n_segments
    extent_km = extent_km or 0.9 * np.sqrt(n)  # constant density: 10,000 -> 90 km
    xy = np.zeros((n, 2))
    down = np.full(n, -1, dtype=np.int64)
    outlets = max(1, n // 400)
    xy[:outlets] = rng.uniform(0, extent_km * 1000, (outlets, 2))
    heading = rng.uniform(0, 2 * np.pi, n)
    for i in range(outlets, n):
        parent = (
            int(rng.integers(max(0, i - 60), i))
            if rng.random() < 0.85
            else int(rng.integers(0, i))
        )
        ang = heading[parent] + rng.normal(0, 0.6)
        heading[i] = ang
        xy[i] = xy[parent] + 500 * np.array([np.cos(ang), np.sin(ang)])
        down[i] = parent
    codes = np.array([f"R{i:06d}" for i in range(n)], dtype=object)
    n_st = int(n * stations_per_segment)
    has = rng.random(n) < 0.7
    seg_pool = np.flatnonzero(has) if has.any() else np.arange(n)
    st_seg = np.sort(rng.choice(seg_pool, n_st, replace=True))
    n_src = max(1, int(n * sources_per_segment))
    centres = xy[rng.integers(0, n, max(1, n_src // 8))]
    src = centres[rng.integers(0, len(centres), n_src)] + rng.normal(
        0, 1200, (n_src, 2)
    )
    kind = np.where(rng.random(n_src) < 0.85, "construction_site", "plant").astype(
        object
    )
    levels = np.array(
        ["village", "village", "village", "town", "district"], dtype=object
    )
    lon = 113.0 + xy[:, 0] / (111_320 * 0.92)
    lat = 23.0 + xy[:, 1] / 110_570
    return Network(
        codes=codes,
        downstream=down,
        xy=xy,
        length_m=np.full(n, 500.0),
        remediated=rng.random(n) < 0.35,
        chief_id=np.array([f"C{i // 8:05d}" for i in range(n)], dtype=object),
        chief_level=levels[rng.integers(0, len(levels), n)],
        station_codes=np.array([f"S{i:06d}" for i in range(n_st)], dtype=object),
        station_segment=st_seg.astype(np.int64),
        source_xy=src,
        source_weight=np.where(kind == "plant", 2.0, 1.0),
        source_kind=kind,
        lonlat=np.column_stack([lon, lat]),
    )
