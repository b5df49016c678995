"""A synthetic, Guangzhou-like demo city.

**Everything this module makes is invented.** District names and adcodes are
Guangzhou's real ones and the city sits where Guangzhou is, but every boundary,
river course, road, building, curtain wall, construction site and concrete
plant is drawn by a seeded random generator around a few hand-placed anchor
points. No real geometry or record is copied in; do not use the output for
anything but demonstrations, tests and benchmarks.

The city is generated in a local metric plane (an equirectangular projection
centred on Tianhe/Yuexiu, an affine map of longitude and latitude, so straight
lines stay straight and points on a line stay on it) and converted to WGS84 at
the end. Every layer is one :class:`ingest.batch.FeatureBatch` whose columns
use the property names of ``layers/catalog.py``; ids are stable strings, and
the same seed gives the same city.

>>> city = generate_city(buildings=500, segments=150)
>>> sorted(city)[:3]
['buildings', 'construction_sites', 'curtain_walls']
>>> city["districts"].columns["name"][2]
'海珠区'
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely import LineString, Polygon

from ingest.batch import FeatureBatch

__all__ = ["AS_OF", "DISTRICT_SEEDS", "LAYER_IDS", "generate_city", "write_city"]

log = logging.getLogger("gis_server.ingest.demo")

#: Layer ids :func:`generate_city` returns, in the order they are generated.
LAYER_IDS = (
    "districts",
    "rivers",
    "roads",
    "construction_sites",
    "plants",
    "buildings",
    "curtain_walls",
    "monitoring_stations",
)

#: The "today" of the demo data (dates are drawn relative to it, so the output
#: does not depend on the day it is generated).
AS_OF = dt.date(2026, 11, 30)

# -- the metric plane ---------------------------------------------------------

#: Origin of the local plane: between Tianhe and Yuexiu.
LON0, LAT0 = 113.30, 23.13
#: Metres per degree at LAT0 on the WGS84 ellipsoid (meridian / parallel arcs).
M_PER_DEG_LAT = 110_744.0
M_PER_DEG_LON = 102_422.0


def _to_m(lonlat: Sequence[tuple[float, float]] | np.ndarray) -> np.ndarray:
    a = np.asarray(lonlat, dtype=float)
    return np.column_stack(
        ((a[:, 0] - LON0) * M_PER_DEG_LON, (a[:, 1] - LAT0) * M_PER_DEG_LAT)
    )


def _to_lonlat_coords(xy: np.ndarray) -> np.ndarray:
    return np.column_stack(
        (xy[:, 0] / M_PER_DEG_LON + LON0, xy[:, 1] / M_PER_DEG_LAT + LAT0)
    )


def _to_wgs84(geoms: np.ndarray) -> np.ndarray:
    """Plane geometries -> WGS84 geometries (vectorised over all coordinates)."""
    return shapely.transform(np.asarray(geoms, dtype=object), _to_lonlat_coords)


# -- hand-placed anchors (approximate, typed in by hand, not real boundaries) --

#: A coarse, hand-drawn outline of the city (lon, lat), clockwise from Huadu.
# fmt: off
OUTLINE_LONLAT = (
    (113.20, 23.60), (113.35, 23.62), (113.45, 23.78), (113.62, 23.85),
    (113.78, 23.75), (113.82, 23.55), (113.90, 23.35), (113.85, 23.12),
    (113.72, 23.05), (113.62, 22.95), (113.66, 22.75), (113.62, 22.58),
    (113.52, 22.60), (113.45, 22.72), (113.30, 22.82), (113.22, 22.95),
    (113.18, 23.05), (113.20, 23.12), (113.15, 23.20), (113.05, 23.30),
    (113.03, 23.45), (113.10, 23.58),
)
# fmt: on


@dataclass(frozen=True)
class DistrictSeed:
    """A district: real name and adcode, invented Voronoi anchor points."""

    name: str
    adcode: str
    #: (lon, lat) anchors; the first is the district's urban centre
    anchors: tuple[tuple[float, float], ...]
    #: relative share of buildings around the urban centre
    density: float
    #: spread of the buildings around the centre (m)
    spread_m: float

    @property
    def stem(self) -> str:
        return self.name.removesuffix("区")


# fmt: off
DISTRICT_SEEDS: tuple[DistrictSeed, ...] = (
    DistrictSeed("荔湾区", "440103", ((113.243, 23.125), (113.225, 23.075)),
                 0.07, 2500),
    DistrictSeed("越秀区", "440104", ((113.275, 23.130),), 0.10, 2200),
    DistrictSeed("海珠区", "440105", ((113.310, 23.092), (113.362, 23.088)),
                 0.09, 3200),
    DistrictSeed("天河区", "440106", ((113.345, 23.140), (113.400, 23.175)),
                 0.12, 3800),
    DistrictSeed("白云区", "440111", ((113.272, 23.205), (113.220, 23.270),
                                     (113.300, 23.310), (113.380, 23.330)), 0.13, 5500),
    DistrictSeed("黄埔区", "440112", ((113.460, 23.110), (113.470, 23.220),
                                     (113.540, 23.360)), 0.08, 4500),
    DistrictSeed("番禺区", "440113", ((113.370, 22.970), (113.280, 22.950),
                                     (113.460, 22.960), (113.380, 23.030)), 0.13, 5500),
    DistrictSeed("花都区", "440114", ((113.220, 23.400), (113.100, 23.430),
                                     (113.270, 23.520)), 0.07, 5000),
    DistrictSeed("南沙区", "440115", ((113.550, 22.800), (113.500, 22.680),
                                     (113.440, 22.830)), 0.05, 5000),
    DistrictSeed("从化区", "440117", ((113.590, 23.550), (113.660, 23.750),
                                     (113.480, 23.620)), 0.04, 4500),
    DistrictSeed("增城区", "440118", ((113.810, 23.290), (113.720, 23.420),
                                     (113.820, 23.140), (113.640, 23.130)), 0.07, 5500),
)
# fmt: on

#: Zhujiang New Town, where the tallest towers stand.
CBD_LONLAT = (113.325, 23.120)
#: The old city (Yuexiu / Liwan), where the oldest buildings stand.
OLD_CITY_LONLAT = (113.262, 23.125)


@dataclass(frozen=True)
class RiverSeed:
    """A named river drawn by hand (lon, lat upstream -> downstream)."""

    name: str
    rank: int  # 0 main stem, 1 major river, 2 urban channel / small river
    points: tuple[tuple[float, float], ...]
    joins: str | None  # the river it flows into
    meander_m: float


# fmt: off
RIVER_SEEDS: tuple[RiverSeed, ...] = (
    RiverSeed("珠江", 0, (
        (113.160, 23.125), (113.205, 23.118), (113.235, 23.112), (113.262, 23.118),
        (113.290, 23.116), (113.320, 23.112), (113.350, 23.108), (113.380, 23.105),
        (113.420, 23.098), (113.460, 23.090), (113.500, 23.060), (113.525, 23.010),
        (113.555, 22.930), (113.585, 22.860), (113.615, 22.790), (113.640, 22.700),
        (113.650, 22.600)), None, 120),
    RiverSeed("流溪河", 1, (
        (113.720, 23.800), (113.660, 23.700), (113.600, 23.600), (113.570, 23.540),
        (113.500, 23.470), (113.420, 23.420), (113.340, 23.390), (113.280, 23.340),
        (113.250, 23.280), (113.235, 23.220), (113.220, 23.170), (113.207, 23.130)),
        "珠江", 250),
    RiverSeed("白坭河", 1, (
        (113.050, 23.500), (113.080, 23.420), (113.120, 23.350), (113.170, 23.300),
        (113.225, 23.262)), "流溪河", 200),
    RiverSeed("东江北干流", 1, (
        (113.840, 23.110), (113.780, 23.090), (113.720, 23.080), (113.660, 23.075),
        (113.600, 23.070), (113.540, 23.045)), "珠江", 150),
    RiverSeed("增江", 1, (
        (113.780, 23.760), (113.760, 23.620), (113.780, 23.480), (113.810, 23.360),
        (113.820, 23.240), (113.785, 23.100)), "东江北干流", 250),
    RiverSeed("沙湾水道", 1, (
        (113.200, 22.990), (113.260, 22.960), (113.320, 22.930), (113.400, 22.920),
        (113.470, 22.910), (113.550, 22.925)), "珠江", 150),
    RiverSeed("蕉门水道", 1, (
        (113.350, 22.850), (113.420, 22.800), (113.480, 22.760), (113.550, 22.730),
        (113.630, 22.705)), "珠江", 150),
    RiverSeed("石井河", 2, (
        (113.270, 23.250), (113.255, 23.200), (113.248, 23.160), (113.245, 23.122)),
        "珠江", 60),
    RiverSeed("沙河涌", 2, (
        (113.310, 23.200), (113.325, 23.160), (113.330, 23.130), (113.330, 23.115)),
        "珠江", 60),
    RiverSeed("车陂涌", 2, (
        (113.410, 23.200), (113.400, 23.150), (113.395, 23.106)), "珠江", 60),
)
# fmt: on

#: Half-width of a river by rank (m): buildings keep out of it plus a margin [D].
RIVER_HALF_WIDTH_M = (250.0, 60.0, 12.0)
#: Half-width of a road by class (m), including pavements [D].
ROAD_HALF_WIDTH_M = {"motorway": 30.0, "primary": 20.0, "secondary": 12.0, "local": 7.0}

_SYLLABLES = tuple("东西南北大小新沙石龙凤白黄清赤金马鹤潭岗塘田林桥湾洲岭冲埔头坑")


def _syllable_names(
    rng: np.random.Generator,
    n: int,
    suffixes: Sequence[str],
    p: Sequence[float] | None = None,
) -> np.ndarray:
    syl = np.array(_SYLLABLES)
    a = syl[rng.integers(0, len(syl), n)]
    b = syl[rng.integers(0, len(syl), n)]
    s = np.array(suffixes)[rng.choice(len(suffixes), n, p=p)]
    return np.strings.add(np.strings.add(a, b), s)


def _zfill(numbers: np.ndarray, width: int) -> np.ndarray:
    """Integers -> zero-padded decimal strings (an empty array stays empty)."""
    if len(numbers) == 0:
        return np.empty(0, dtype=f"U{width}")
    return np.strings.zfill(np.asarray(numbers).astype("U64"), width)


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    if n == 0:
        return np.empty(0, dtype=object)
    digits = _zfill(np.arange(1, n + 1), width)
    return np.strings.add(prefix, digits).astype(object)


def _dates(days: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Days since 1970-01-01 -> ``datetime.date`` objects (None where not valid)."""
    d = np.asarray(days).astype("int64").astype("datetime64[D]")
    if valid is not None:
        d = np.where(valid, d, np.datetime64("NaT"))
    return d.astype(object)


def _days(date: dt.date) -> int:
    return (date - dt.date(1970, 1, 1)).days


# -- context shared by the layer generators ----------------------------------


@dataclass
class _City:
    outline: Polygon
    district_polys: list[Any]
    district_angles: np.ndarray
    rivers: dict[str, Any] = field(default_factory=dict)
    roads: dict[str, Any] = field(default_factory=dict)
    sites: np.ndarray | None = None
    plants: np.ndarray | None = None
    buildings: dict[str, Any] = field(default_factory=dict)

    def district_of(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Index of the district containing each point (nearest centre if none)."""
        out = np.full(len(x), -1, dtype=np.int64)
        for k, poly in enumerate(self.district_polys):
            hit = shapely.contains_xy(poly, x, y) & (out < 0)
            out[hit] = k
        miss = out < 0
        if miss.any():
            centres = _to_m([d.anchors[0] for d in DISTRICT_SEEDS])
            d2 = (x[miss, None] - centres[None, :, 0]) ** 2 + (
                y[miss, None] - centres[None, :, 1]
            ) ** 2
            out[miss] = d2.argmin(axis=1)
        return out


def _district_names() -> np.ndarray:
    return np.array([d.name for d in DISTRICT_SEEDS])


# -- districts ----------------------------------------------------------------


def _districts() -> tuple[Polygon, list[Any]]:
    outline = Polygon(_to_m(OUTLINE_LONLAT))
    anchors = [(k, a) for k, d in enumerate(DISTRICT_SEEDS) for a in d.anchors]
    owner = np.array([k for k, _ in anchors])
    pts = shapely.multipoints(_to_m([a for _, a in anchors]))
    cells = shapely.get_parts(
        shapely.voronoi_polygons(pts, extend_to=outline.buffer(50_000), ordered=True)
    )
    polys = []
    for k in range(len(DISTRICT_SEEDS)):
        merged = shapely.union_all(cells[owner == k])
        polys.append(shapely.intersection(merged, outline))
    shapely.prepare(polys)
    return outline, polys


def _district_batch(city: _City) -> FeatureBatch:
    geoms = _to_wgs84(np.array(city.district_polys, dtype=object))
    geoms = np.array(
        [
            g if g.geom_type == "MultiPolygon" else shapely.multipolygons([g])
            for g in geoms
        ],
        dtype=object,
    )
    adcodes = np.array([d.adcode for d in DISTRICT_SEEDS], dtype=object)
    return FeatureBatch(
        geometries=geoms,
        columns={"name": _district_names().astype(object), "adcode": adcodes},
        ids=adcodes.copy(),
        crs="EPSG:4326",
        origin="demo",
    )


# -- rivers -------------------------------------------------------------------


class _Occupancy:
    """A coarse raster of where water already runs (and where the city ends)."""

    def __init__(self, outline: Polygon, cell: float = 100.0) -> None:
        x0, y0, x1, y1 = outline.bounds
        self.x0, self.y0, self.cell = x0, y0, cell
        self.nx = math.ceil((x1 - x0) / cell) + 1
        self.ny = math.ceil((y1 - y0) / cell) + 1
        xs = x0 + (np.arange(self.nx) + 0.5) * cell
        ys = y0 + (np.arange(self.ny) + 0.5) * cell
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        self.within = shapely.contains_xy(outline.buffer(-cell), gx, gy)
        self.blocked = ~self.within

    def _ij(self, x: float, y: float) -> tuple[int, int]:
        return int((x - self.x0) // self.cell), int((y - self.y0) // self.cell)

    def inside(self, x: float, y: float) -> bool:
        """Whether the cell of (x, y) lies inside the city (whatever runs there)."""
        i, j = self._ij(x, y)
        return 0 <= i < self.nx and 0 <= j < self.ny and bool(self.within[i, j])

    def free(self, x: float, y: float) -> bool:
        i, j = self._ij(x, y)
        if i < 1 or j < 1 or i >= self.nx - 1 or j >= self.ny - 1:
            return False
        return not self.blocked[i - 1 : i + 2, j - 1 : j + 2].any()

    def mark(self, coords: np.ndarray, radius_m: float = 0.0) -> None:
        dense = _resample(coords, self.cell / 2)
        i = ((dense[:, 0] - self.x0) // self.cell).astype(int)
        j = ((dense[:, 1] - self.y0) // self.cell).astype(int)
        r = math.ceil(radius_m / self.cell)
        for di in range(-r, r + 1):
            for dj in range(-r, r + 1):
                ii = np.clip(i + di, 0, self.nx - 1)
                jj = np.clip(j + dj, 0, self.ny - 1)
                self.blocked[ii, jj] = True


def _resample(coords: np.ndarray, step: float) -> np.ndarray:
    """Vertices every ``step`` metres along a polyline (ends kept)."""
    seg = np.hypot(*np.diff(coords, axis=0).T)
    cum = np.concatenate(([0.0], np.cumsum(seg)))
    total = cum[-1]
    n = max(2, math.ceil(total / step) + 1)
    t = np.linspace(0.0, total, n)
    return np.column_stack(
        (np.interp(t, cum, coords[:, 0]), np.interp(t, cum, coords[:, 1]))
    )


def _meander(
    coords: np.ndarray, amplitude: float, rng: np.random.Generator
) -> np.ndarray:
    """Smooth sideways wiggle, zero at both ends."""
    n = len(coords)
    if n < 4 or amplitude <= 0:
        return coords
    noise = rng.normal(size=n + 16)
    kernel = np.hanning(17)
    smooth = np.convolve(noise, kernel / kernel.sum(), mode="valid")[:n]
    smooth = smooth / (np.abs(smooth).max() + 1e-9)
    taper = np.sin(np.linspace(0, math.pi, n)) ** 0.5
    tangent = np.gradient(coords, axis=0)
    tangent /= np.hypot(*tangent.T)[:, None] + 1e-12
    normal = np.column_stack((-tangent[:, 1], tangent[:, 0]))
    return coords + normal * (smooth * taper * amplitude)[:, None]


def _split_lengths(
    total: float, mean_len: float, rng: np.random.Generator
) -> list[float]:
    """Break points (m along the river) for managed segments of ~1-5 km."""
    lo, hi = 1000.0, 5000.0
    cuts, at = [], 0.0
    while True:
        step = float(np.clip(rng.uniform(0.5, 1.5) * mean_len, lo, hi))
        if total - (at + step) < lo:
            break
        at += step
        cuts.append(at)
    return cuts


@dataclass
class _RiverBuild:
    coords: list[np.ndarray] = field(default_factory=list)
    river: list[str] = field(default_factory=list)
    rank: list[int] = field(default_factory=list)
    river_no: list[int] = field(default_factory=list)
    seq_in_river: list[int] = field(default_factory=list)
    downstream: list[int] = field(default_factory=list)  # index, -1 at the outlet
    lengths: list[float] = field(default_factory=list)

    def add_river(
        self,
        coords: np.ndarray,
        name: str,
        rank: int,
        into: int,
        mean_len: float,
        rng: np.random.Generator,
    ) -> list[int]:
        """Split one river (flow direction) into segments; return their indices."""
        seg = np.hypot(*np.diff(coords, axis=0).T)
        cum = np.concatenate(([0.0], np.cumsum(seg)))
        cuts = _split_lengths(cum[-1], mean_len, rng)
        idx = [
            0,
            *sorted({int(np.argmin(np.abs(cum - c))) for c in cuts}),
            len(coords) - 1,
        ]
        idx = sorted(set(idx))
        # every segment needs an interior vertex for tributaries to join at
        idx = [
            i
            for k, i in enumerate(idx)
            if k == 0 or k == len(idx) - 1 or (i - idx[k - 1] >= 2)
        ]
        if len(idx) >= 3 and idx[-1] - idx[-2] < 2:
            idx.pop(-2)
        river_no = (self.river_no[-1] + 1) if self.river_no else 0
        first = len(self.coords)
        pieces = list(itertools.pairwise(idx))
        for k, (a, b) in enumerate(pieces):
            self.coords.append(coords[a : b + 1].copy())
            self.river.append(name)
            self.rank.append(rank)
            self.river_no.append(river_no)
            self.seq_in_river.append(k + 1)
            self.lengths.append(float(cum[b] - cum[a]))
            last = k == len(pieces) - 1
            self.downstream.append(into if last else first + k + 1)
        return list(range(first, first + len(pieces)))


def _inside_run(coords: np.ndarray, outline: Polygon, keep_end: bool) -> np.ndarray:
    """The run of vertices inside the outline: ending at the last vertex, or longest."""
    inside = shapely.contains_xy(outline, coords[:, 0], coords[:, 1])
    if keep_end:
        k = len(coords) - 1
        while k > 0 and inside[k - 1]:
            k -= 1
        return coords[k:]
    best, start = (0, 0), None
    for k, flag in enumerate([*inside, False]):
        if flag and start is None:
            start = k
        elif not flag and start is not None:
            if k - start > best[1] - best[0]:
                best = (start, k)
            start = None
    return coords[best[0] : best[1]]


def _rivers(city: _City, segments: int, rng: np.random.Generator) -> dict[str, Any]:
    step = 250.0
    mean_len = float(np.clip(9.0e6 / max(segments, 1), 1000.0, 3000.0))
    occ = _Occupancy(city.outline)
    build = _RiverBuild()
    by_name: dict[str, list[int]] = {}
    for seed in RIVER_SEEDS:
        coords = _meander(_resample(_to_m(seed.points), step), seed.meander_m, rng)
        into = -1
        if seed.joins is not None:
            parent = by_name[seed.joins]
            cands = np.array(
                [(s, v) for s in parent for v in range(1, len(build.coords[s]) - 1)]
            )
            verts = np.array([build.coords[s][v] for s, v in cands])
            best = int(np.argmin(np.hypot(*(verts - coords[-1]).T)))
            into = int(cands[best, 0])
            coords = np.vstack((coords[:-1], verts[best]))
        coords = _inside_run(coords, city.outline, keep_end=seed.joins is not None)
        ids = build.add_river(coords, seed.name, seed.rank, into, mean_len, rng)
        by_name[seed.name] = ids
        occ.mark(coords, RIVER_HALF_WIDTH_M[seed.rank])

    # procedural tributaries until the target count is reached
    names = iter(
        _syllable_names(
            rng, 4 * segments + 100, ("涌", "河", "坑", "水"), (0.5, 0.3, 0.1, 0.1)
        )
    )
    failures = 0
    while len(build.coords) < segments and failures < 200 + 20 * segments:
        # a parent segment with probability ~ its length (rejection sampling,
        # O(1) per draw however many segments there are)
        parent = int(rng.integers(0, len(build.coords)))
        weight = build.lengths[parent] * (0.6 if build.rank[parent] == 2 else 1.0)
        if rng.random() * 5000.0 > weight:
            continue
        pc = build.coords[parent]
        v = int(rng.integers(1, len(pc) - 1))
        tangent = pc[v + 1] - pc[v - 1]
        heading0 = (
            math.atan2(tangent[1], tangent[0])
            + math.pi
            + rng.choice((-1, 1)) * rng.uniform(math.radians(35), math.radians(80))
        )
        target = mean_len * rng.uniform(1.0, 3.5)
        x, y = float(pc[v][0]), float(pc[v][1])
        pts = [(x, y)]
        heading, walked = heading0, 0.0
        clearance = RIVER_HALF_WIDTH_M[build.rank[parent]] + 400.0
        for turn in rng.normal(0, 0.2, int(target // step) + 1).tolist():
            if walked >= target:
                break
            heading += turn + 0.15 * (heading0 - heading)
            x, y = x + step * math.cos(heading), y + step * math.sin(heading)
            near_parent = walked + step <= clearance
            if not (occ.inside(x, y) if near_parent else occ.free(x, y)):
                break
            pts.append((x, y))
            walked += step
        if walked < 1000.0:
            failures += 1
            continue
        coords = np.array(pts[::-1])  # flow direction: source -> confluence
        name = str(next(names))
        build.add_river(coords, name, 2, parent, mean_len, rng)
        occ.mark(coords[: -max(2, int(clearance // step))], 0.0)
    log.debug(
        "demo city: river network",
        extra={"segments": len(build.coords), "failed_tributaries": failures},
    )
    if len(build.coords) < segments:
        log.warning(
            "demo city: river network saturated",
            extra={"segments": len(build.coords), "requested": segments},
        )
    return _river_attributes(city, build, rng)


def _river_attributes(
    city: _City, build: _RiverBuild, rng: np.random.Generator
) -> dict[str, Any]:
    n = len(build.coords)
    index = np.repeat(np.arange(n), [len(c) for c in build.coords])
    lines_m = np.asarray(
        shapely.linestrings(np.vstack(build.coords), indices=index), dtype=object
    )
    codes = _ids("HD", n, 5)
    down = np.array(build.downstream)
    downstream_code = np.where(down >= 0, codes[np.maximum(down, 0)], None)
    rank = np.array(build.rank)
    river = np.array(build.river, dtype=object)
    mid = shapely.line_interpolate_point(lines_m, 0.5, normalized=True)
    mx, my = shapely.get_x(mid), shapely.get_y(mid)
    district = _district_names()[city.district_of(mx, my)].astype(object)
    seg_names = np.strings.add(
        np.strings.add(river.astype("U64"), "第"),
        np.strings.add(np.array(build.seq_in_river).astype("U64"), "段"),
    ).astype(object)

    # river chiefs: consecutive segments of one river share a chief
    level = np.empty(n, dtype=object)
    chief = np.empty(n, dtype=object)
    counters = {"city": 0, "district": 0, "town": 0, "village": 0}
    river_no = np.array(build.river_no)
    remediated = np.zeros(n, dtype=bool)
    for r in np.unique(river_no):
        segs = np.flatnonzero(river_no == r)
        rk = rank[segs[0]]
        if rk == 2 and str(river[segs[0]]).endswith("涌") and rng.random() < 0.4:
            remediated[segs] = True
        k = 0
        while k < len(segs):
            size = int(rng.integers(1, 5))
            if rk == 0:
                lvl = "city"
            elif rk == 1:
                lvl = "district" if rng.random() < 0.7 else "town"
            else:
                lvl = "town" if rng.random() < 0.4 else "village"
            counters[lvl] += 1
            group = segs[k : k + size]
            level[group] = lvl
            chief[group] = f"HZ-{lvl[0].upper()}{counters[lvl]:05d}"
            k += size
    remediated |= (rank > 0) & (rng.random(n) < 0.05)

    lines = _to_wgs84(lines_m)
    length_m = _geodesic_lengths(lines)
    return {
        "lines_m": lines_m,
        "rank": rank,
        "batch": FeatureBatch(
            geometries=lines,
            columns={
                "name": seg_names,
                "code": codes.copy(),
                "river_name": river,
                "district": district,
                "chief_id": chief,
                "chief_level": level,
                "length_m": np.round(length_m, 1),
                "remediated": remediated,
                "downstream_code": downstream_code.astype(object),
            },
            ids=codes.copy(),
            crs="EPSG:4326",
            origin="demo",
        ),
    }


def _geodesic_lengths(lines: np.ndarray) -> np.ndarray:
    """Geodesic length (m) of WGS84 linestrings, vectorised over all vertices."""
    from pyproj import Geod

    coords, index = shapely.get_coordinates(lines, return_index=True)
    same = index[1:] == index[:-1]
    _, _, dist = Geod(ellps="WGS84").inv(
        coords[:-1, 0], coords[:-1, 1], coords[1:, 0], coords[1:, 1]
    )
    return np.bincount(
        index[1:][same], weights=np.asarray(dist)[same], minlength=len(lines)
    )


# -- roads --------------------------------------------------------------------

_RADIALS = (
    ("机场高速", (113.300, 23.400)),
    ("京港澳高速", (113.220, 23.580)),
    ("广河高速", (113.800, 23.450)),
    ("大广高速", (113.620, 23.800)),
    ("广深高速", (113.840, 23.160)),
    ("南沙港快速", (113.560, 22.700)),
    ("广珠西线", (113.230, 22.880)),
    ("广佛高速", (113.060, 23.300)),
)


def _roads(city: _City, rng: np.random.Generator) -> dict[str, Any]:
    geoms: list[Any] = []
    names: list[str] = []
    classes: list[str] = []
    district_of_road: list[int] = []

    def add(line: Any, name: str, cls: str, district: int = -1) -> None:
        parts = shapely.get_parts(line)
        parts = parts[shapely.get_type_id(parts) == 1]
        parts = parts[shapely.length(parts) > 50]
        if len(parts):
            geoms.append(shapely.multilinestrings(parts))
            names.append(name)
            classes.append(cls)
            district_of_road.append(district)

    for name, cls, radius in (
        ("内环路", "primary", 3500.0),
        ("环城高速", "motorway", 7500.0),
        ("绕城高速", "motorway", 21000.0),
    ):
        theta = np.linspace(0, 2 * math.pi, 241)
        wobble = np.convolve(rng.normal(size=241 + 30), np.hanning(31), "valid")[:241]
        wobble = wobble - np.linspace(wobble[0], wobble[-1], 241)
        r = radius * (1 + 0.04 * wobble / (np.abs(wobble).max() + 1e-9))
        ring = np.column_stack((r * np.cos(theta), r * np.sin(theta)))
        add(shapely.intersection(LineString(ring), city.outline), name, cls)
    for name, dest in _RADIALS:
        end = _to_m([dest])[0]
        start = end / np.hypot(*end) * 7500.0
        coords = _meander(_resample(np.vstack((start, end)), 300.0), 600.0, rng)
        add(shapely.intersection(LineString(coords), city.outline), name, "motorway")

    for k, seed in enumerate(DISTRICT_SEEDS):
        centre = _to_m([seed.anchors[0]])[0]
        angle = city.district_angles[k]
        area = shapely.intersection(city.district_polys[k], city.outline)
        core = seed.spread_m < 3000
        for cls, spacing, half, suffix in (
            ("primary", 3000.0, 7000.0, "大道"),
            ("secondary", 900.0, 4500.0 if core else 5500.0, "路"),
            ("local", 280.0, 2600.0 if core else 2000.0, "街"),
        ):
            offsets = np.arange(-half, half + 1, spacing)
            for axis, word in ((0, "横"), (1, "纵")):
                a = angle + axis * math.pi / 2 + math.radians(rng.normal(0, 1.5))
                d = np.array((math.cos(a), math.sin(a)))
                nrm = np.array((-d[1], d[0]))
                for i, off in enumerate(offsets):
                    if cls == "local" and i % 3 == 0:
                        continue  # a secondary road runs there
                    o = centre + nrm * (off + rng.normal(0, 20))
                    line = LineString([o - d * half * 1.1, o + d * half * 1.1])
                    clipped = shapely.intersection(line, area)
                    name = f"{seed.stem}{word}{i + 1}{suffix}"
                    if cls == "local":
                        clipped = _cut_by_rivers(clipped, city)
                    add(clipped, name, cls, k)

    geoms_m = np.array(geoms, dtype=object)
    cls_arr = np.array(classes, dtype=object)
    n = len(geoms_m)
    ids = _ids("RD", n, 5)
    return {
        "lines_m": geoms_m,
        "class": cls_arr,
        "names": np.array(names, dtype=object),
        "district": np.array(district_of_road),
        "batch": FeatureBatch(
            geometries=_to_wgs84(geoms_m),
            columns={"name": np.array(names, dtype=object), "road_class": cls_arr},
            ids=ids,
            crs="EPSG:4326",
            origin="demo",
        ),
    }


def _cut_by_rivers(line: Any, city: _City) -> Any:
    """Local streets stop at the water (no bridges at this level)."""
    tree: shapely.STRtree = city.rivers["keepout_tree"]
    hits = tree.query(line, predicate="intersects")
    if len(hits) == 0:
        return line
    return shapely.difference(line, shapely.union_all(city.rivers["keepout"][hits]))


# -- construction sites and plants -------------------------------------------


def _rects(
    cx: np.ndarray,
    cy: np.ndarray,
    length: np.ndarray,
    width: np.ndarray,
    angle: np.ndarray,
) -> np.ndarray:
    """Rotated rectangles (plane coordinates) from centres, sides and angles."""
    hx, hy = length / 2, width / 2
    ux = np.array((-1, 1, 1, -1, -1))
    uy = np.array((-1, -1, 1, 1, -1))
    dx = ux[None, :] * hx[:, None]
    dy = uy[None, :] * hy[:, None]
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    xs = cx[:, None] + dx * c - dy * s
    ys = cy[:, None] + dx * s + dy * c
    return shapely.polygons(np.stack((xs, ys), axis=-1))


def _mixture(
    rng: np.random.Generator, n: int, city: _City, background: float = 0.08
) -> np.ndarray:
    """Points drawn from the city's density: Gaussians around district centres."""
    centres = _to_m([d.anchors[0] for d in DISTRICT_SEEDS])
    spread = np.array([d.spread_m for d in DISTRICT_SEEDS])
    w = np.array([d.density for d in DISTRICT_SEEDS])
    # a second, wider ring of suburbs around the core
    centres = np.vstack((centres, [[0.0, 0.0]]))
    spread = np.append(spread, 9000.0)
    w = np.append(w, 0.12)
    w = np.append(w * (1 - background) / w.sum(), background)
    comp = rng.choice(len(w), n, p=w)
    xy = np.empty((n, 2))
    normal = comp < len(centres)
    k = comp[normal]
    xy[normal] = centres[k] + rng.normal(size=(len(k), 2)) * spread[k, None]
    x0, y0, x1, y1 = city.outline.bounds
    m = int((~normal).sum())
    xy[~normal] = np.column_stack((rng.uniform(x0, x1, m), rng.uniform(y0, y1, m)))
    return xy


def _point_near_lines(
    lines: np.ndarray, rng: np.random.Generator, n: int, offset: np.ndarray
) -> np.ndarray:
    """Points at ``offset`` metres to either side of random places on ``lines``."""
    lengths = shapely.length(lines)
    pick = rng.choice(len(lines), n, p=lengths / lengths.sum())
    at = rng.uniform(0.05, 0.95, n) * lengths[pick]
    p = shapely.line_interpolate_point(lines[pick], at)
    q = shapely.line_interpolate_point(lines[pick], at + 5.0)
    t = np.column_stack(
        (shapely.get_x(q) - shapely.get_x(p), shapely.get_y(q) - shapely.get_y(p))
    )
    t /= np.hypot(*t.T)[:, None] + 1e-12
    side = rng.choice((-1.0, 1.0), n)
    return np.column_stack(
        (
            shapely.get_x(p) - t[:, 1] * offset * side,
            shapely.get_y(p) + t[:, 0] * offset * side,
        )
    )


_SITE_KINDS = (
    "安置房",
    "商住楼",
    "学校",
    "医院",
    "产业园",
    "地铁站",
    "污水处理厂",
    "综合体",
    "保障性住房",
    "道路改造",
)
_SITE_STATUS = ("planned", "active", "suspended", "completed")


def _construction_sites(
    city: _City, n: int, rng: np.random.Generator, as_of: dt.date
) -> dict[str, Any]:
    river_tree: shapely.STRtree = city.rivers["keepout_tree"]
    road_tree = shapely.STRtree(shapely.buffer(city.roads["lines_m"], 10.0))
    accepted: list[Any] = []
    near_river: list[bool] = []
    tries = 0
    while len(accepted) < n and tries < 40:
        tries += 1
        m = 2 * (n - len(accepted)) + 20
        length = rng.uniform(80, 320, m)
        width = rng.uniform(60, 220, m)
        by_river = rng.random(m) < 0.25
        xy = _mixture(rng, m, city, background=0.05)
        rivers_m = city.rivers["lines_m"][city.rivers["rank"] > 0]
        half = RIVER_HALF_WIDTH_M[1]
        off = half + 40 + np.maximum(length, width) / 2 + rng.uniform(0, 200, m)
        xy[by_river] = _point_near_lines(
            rivers_m, rng, int(by_river.sum()), off[by_river]
        )
        dist = city.district_of(xy[:, 0], xy[:, 1])
        angle = city.district_angles[dist] + np.radians(rng.normal(0, 3, m))
        rects = _rects(xy[:, 0], xy[:, 1], length, width, angle)
        ok = shapely.contains(city.outline, rects)
        bad = np.zeros(m, dtype=bool)
        for tree in (river_tree, road_tree):
            hit = tree.query(rects, predicate="intersects")[0]
            bad[hit] = True
        for k in np.flatnonzero(ok & ~bad):
            if len(accepted) >= n:
                break
            if (
                accepted
                and shapely.STRtree(accepted)
                .query(rects[k], predicate="intersects")
                .size
            ):
                continue
            accepted.append(rects[k])
            near_river.append(bool(by_river[k]))
    rects_m = np.array(accepted, dtype=object)
    n = len(rects_m)
    cx, cy = (
        shapely.get_x(shapely.centroid(rects_m)),
        shapely.get_y(shapely.centroid(rects_m)),
    )
    dnames = _district_names()[city.district_of(cx, cy)]
    kinds = np.array(_SITE_KINDS)[rng.integers(0, len(_SITE_KINDS), n)]
    place = _syllable_names(rng, n, ("",))
    project = np.strings.add(
        np.strings.add(dnames, place), np.strings.add(kinds, "项目")
    ).astype(object)
    firms = _syllable_names(
        rng, 40, ("建设工程有限公司", "建筑工程有限公司", "建工集团有限公司")
    )
    contractor = np.strings.add("广州", firms[rng.integers(0, 40, n)]).astype(object)
    area = shapely.area(rects_m)
    workers = np.clip(area / 100 * rng.uniform(0.3, 1.2, n), 15, 2500).astype(np.int64)
    account = np.strings.add("4400", _zfill(rng.integers(0, 10**12, n), 12)).astype(
        object
    )
    account[rng.random(n) < 0.08] = None  # no dedicated wage account yet
    status = np.array(_SITE_STATUS)[rng.choice(4, n, p=(0.08, 0.72, 0.07, 0.13))]
    today = _days(as_of)
    started = np.where(
        status == "planned",
        today + rng.integers(20, 180, n),
        np.where(
            status == "completed",
            today - rng.integers(700, 2500, n),
            today - rng.integers(30, 1500, n),
        ),
    )
    city.sites = rects_m
    ids = _ids("GD", n, 4)
    return {
        "near_river": np.array(near_river),
        "batch": FeatureBatch(
            geometries=_to_wgs84(rects_m),
            columns={
                "project": project,
                "contractor": contractor,
                "district": dnames.astype(object),
                "registered_workers": workers,
                "wage_account": account,
                "started_on": _dates(started),
                "status": status.astype(object),
            },
            ids=ids,
            crs="EPSG:4326",
            origin="demo",
        ),
    }


#: Plants stand within this distance (m) of a road or a river centre line [D].
PLANT_MAX_DISTANCE_M = 400.0


def _plants(city: _City, n: int, rng: np.random.Generator) -> FeatureBatch:
    roads = city.roads["lines_m"][
        np.isin(city.roads["class"], ("motorway", "secondary"))
    ]
    rivers = city.rivers["lines_m"][city.rivers["rank"] > 0]
    keepout: shapely.STRtree = city.rivers["keepout_tree"]
    got: list[np.ndarray] = [np.empty((0, 2))]
    for _ in range(100):
        if sum(len(g) for g in got) >= n:
            break
        m = 4 * n
        by_river = rng.random(m) < 0.5
        xy = np.empty((m, 2))
        k = int(by_river.sum())
        # at most ~310 m from a river's or road's centre line, inside
        # PLANT_MAX_DISTANCE_M
        xy[by_river] = _point_near_lines(
            rivers, rng, k, RIVER_HALF_WIDTH_M[1] + rng.uniform(40, 250, k)
        )
        xy[~by_river] = _point_near_lines(
            roads, rng, m - k, rng.uniform(60, 300, m - k)
        )
        pts = shapely.points(xy)
        ok = shapely.contains_xy(city.outline, xy[:, 0], xy[:, 1])
        ok &= np.hypot(*xy.T) > 6000  # not in the old centre
        ok[keepout.query(pts, predicate="intersects")[0]] = False
        got.append(xy[ok])
    xy = np.vstack(got)[:n]
    n = len(xy)
    city.plants = shapely.points(xy)
    ids = _ids("P", n, 3)
    names = np.strings.add(
        np.strings.add("广州市", _syllable_names(rng, n, ("",))), "混凝土有限公司"
    )
    licence = np.strings.add("粤建预拌", _zfill(rng.integers(1, 10**6, n), 6)).astype(
        object
    )
    return FeatureBatch(
        geometries=_to_wgs84(city.plants),
        columns={
            "enterprise": names.astype(object),
            "licence": licence,
            "capacity_m3_per_year": np.round(rng.uniform(3e5, 1.5e6, n), -3),
            "credit_score": np.round(np.clip(rng.normal(84, 8, n), 60, 100), 1),
        },
        ids=ids,
        crs="EPSG:4326",
        origin="demo",
    )


# -- buildings ----------------------------------------------------------------

_USES = np.array(
    ("residential", "commercial", "office", "industrial", "school", "hospital")
)


class _LotGrid:
    """A square grid of building lots over the city, with a mask of blocked lots.

    A lot is blocked when its centre is outside the city or closer than a
    building's reach to water, a road, a construction site or a plant: the
    keep-out is rasterised once (vectorised), so testing a million candidate
    lots is an array lookup.
    """

    def __init__(self, city: _City, cell: float, reach: float) -> None:
        x0, y0, x1, y1 = city.outline.bounds
        self.x0, self.y0, self.cell = x0, y0, cell
        self.nx = math.ceil((x1 - x0) / cell) + 1
        self.ny = math.ceil((y1 - y0) / cell) + 1
        self.blocked = np.zeros((self.nx, self.ny), dtype=bool)
        rivers, rank = city.rivers["lines_m"], city.rivers["rank"]
        for r, half in enumerate(RIVER_HALF_WIDTH_M):
            self._mark_near(rivers[rank == r], half + reach)
        roads, cls = city.roads["lines_m"], city.roads["class"]
        for c, half in ROAD_HALF_WIDTH_M.items():
            self._mark_near(roads[cls == c], half + reach)
        if city.plants is not None:
            self._mark_near(city.plants, 80.0 + reach)
        if city.sites is not None:
            for site in shapely.buffer(city.sites, 5.0 + reach, quad_segs=2):
                self._mark_inside(site)

    def centres(self, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.x0 + (i + 0.5) * self.cell, self.y0 + (j + 0.5) * self.cell

    def _mark_near(self, geoms: np.ndarray, distance: float) -> None:
        """Block lots whose centre lies within ``distance`` of the geometries.

        Conservative: a lot is blocked when its centre is within reach of the
        centre of a cell the geometry passes through, the reach padded by the
        sampling step and half a cell diagonal.
        """
        if len(geoms) == 0:
            return
        step = self.cell / 2
        pts = shapely.get_coordinates(shapely.segmentize(geoms, step))
        i0 = np.floor((pts[:, 0] - self.x0) / self.cell).astype(np.int64)
        j0 = np.floor((pts[:, 1] - self.y0) / self.cell).astype(np.int64)
        cells = np.unique(i0 * self.ny + j0)
        i0, j0 = cells // self.ny, cells % self.ny
        reach = (distance + step / 2 + self.cell * math.sqrt(0.5)) / self.cell
        r = math.ceil(reach)
        di, dj = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1), indexing="ij")
        disc = di**2 + dj**2 <= reach**2
        di, dj = di[disc], dj[disc]
        chunk = max(1, 4_000_000 // len(di))
        for k in range(0, len(cells), chunk):
            i = (i0[k : k + chunk, None] + di[None, :]).ravel()
            j = (j0[k : k + chunk, None] + dj[None, :]).ravel()
            ok = (i >= 0) & (j >= 0) & (i < self.nx) & (j < self.ny)
            self.blocked[i[ok], j[ok]] = True

    def _mark_inside(self, polygon: Polygon) -> None:
        bx0, by0, bx1, by1 = polygon.bounds
        i = np.arange(
            max(0, int((bx0 - self.x0) // self.cell)),
            min(self.nx, int((bx1 - self.x0) // self.cell) + 1),
        )
        j = np.arange(
            max(0, int((by0 - self.y0) // self.cell)),
            min(self.ny, int((by1 - self.y0) // self.cell) + 1),
        )
        ii, jj = np.meshgrid(i, j, indexing="ij")
        cx, cy = self.centres(ii, jj)
        inside = shapely.contains_xy(polygon, cx, cy)
        self.blocked[ii[inside], jj[inside]] = True


def _sample_lots(
    city: _City, grid: _LotGrid, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct free lots drawn from the city's density; marks them taken.

    Returns the lot centres and the lots' (i, j) grid indices.
    """
    chosen: list[np.ndarray] = []
    have = 0
    for _ in range(60):
        if have >= n:
            break
        m = int((n - have) * 1.5) + 1000
        xy = _mixture(rng, m, city)
        i = np.floor((xy[:, 0] - grid.x0) / grid.cell).astype(np.int64)
        j = np.floor((xy[:, 1] - grid.y0) / grid.cell).astype(np.int64)
        ok = (i >= 0) & (j >= 0) & (i < grid.nx) & (j < grid.ny)
        i, j = i[ok], j[ok]
        ok = ~grid.blocked[i, j]
        i, j = i[ok], j[ok]
        lot = i * grid.ny + j
        _, first = np.unique(lot, return_index=True)
        first.sort()  # keep the random drawing order, not the spatial one
        i, j = i[first], j[first]
        cx, cy = grid.centres(i, j)
        ok = shapely.contains_xy(city.outline, cx, cy)
        i, j = i[ok][: n - have], j[ok][: n - have]
        grid.blocked[i, j] = True
        chosen.append(np.column_stack((i, j)))
        have += len(i)
    ij = np.vstack(chosen) if chosen else np.empty((0, 2), np.int64)
    if have < n:
        log.warning(
            "demo city: not enough free lots",
            extra={"requested": n, "placed": have, "cell_m": grid.cell},
        )
    cx, cy = grid.centres(ij[:, 0], ij[:, 1])
    return np.column_stack((cx, cy)), ij


def _pick(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One category per row of a (n, k) probability matrix."""
    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    return (
        (rng.random(len(probs))[:, None] > cum).sum(axis=1).clip(0, probs.shape[1] - 1)
    )


#: Expected share of C and D grades in the demo [D] (a demo choice, not statistics).
GRADE_SHARE = {"C": 0.035, "D": 0.005}


def _calibrated(weight: np.ndarray, share: float, cap: float) -> np.ndarray:
    """Per-row probabilities proportional to ``weight``, capped, averaging ``share``."""
    if len(weight) == 0:
        return np.zeros(0)
    scale = share / weight.mean()
    for _ in range(20):
        p = np.clip(scale * weight, 0.0, cap)
        if abs(p.mean() - share) < 1e-4 * share:
            break
        scale *= share / max(p.mean(), 1e-12)
    return p


def _buildings(
    city: _City, n: int, rng: np.random.Generator, as_of: dt.date
) -> FeatureBatch:
    n_large = round(n * 0.18)
    # big buildings on a 50 m lot grid first, then small ones on the 25 m grid
    # the reach of a footprint from its lot centre (lot half-diagonal + margin)
    large_grid = _LotGrid(city, 50.0, 50.0 * 0.5 * math.sqrt(2) + 2.0)
    large_xy, large_ij = _sample_lots(city, large_grid, n_large, rng)
    small_grid = _LotGrid(city, 25.0, 25.0 * 0.5 * math.sqrt(2) + 2.0)
    for di in (0, 1):  # the four small lots under each big one are taken
        for dj in (0, 1):
            i, j = 2 * large_ij[:, 0] + di, 2 * large_ij[:, 1] + dj
            ok = (i < small_grid.nx) & (j < small_grid.ny)
            small_grid.blocked[i[ok], j[ok]] = True
    small_xy, _ = _sample_lots(city, small_grid, n - len(large_xy), rng)
    xy = np.vstack((large_xy, small_xy))
    large = np.zeros(len(xy), dtype=bool)
    large[: len(large_xy)] = True
    n = len(xy)

    cbd = _to_m([CBD_LONLAT])[0]
    old = _to_m([OLD_CITY_LONLAT])[0]
    d_core = np.hypot(*xy.T) / 1000.0
    d_cbd = np.hypot(*(xy - cbd).T) / 1000.0
    d_old = np.hypot(*(xy - old).T) / 1000.0

    # use: big lots hold towers, factories, schools, hospitals
    p = np.zeros((n, 6))
    periphery = np.clip((d_core - 8) / 20, 0, 1)
    comm = 0.30 * np.exp(-d_core / 8) + 0.05
    p[:, 0] = np.where(large, 0.55, 0.92)
    p[:, 1] = np.where(large, comm * 0.5, 0.05)
    p[:, 2] = np.where(large, comm * 0.5, 0.005)
    p[:, 3] = np.where(large, 0.04 + 0.25 * periphery, 0.02 + 0.04 * periphery)
    p[:, 4] = np.where(large, 0.06, 0.0)
    p[:, 5] = np.where(large, 0.025, 0.0)
    use_i = _pick(rng, p)

    # footprint: fits inside its lot's circle, so lots never overlap
    r_max = np.where(large, 23.0, 11.5)
    length = np.where(large, rng.uniform(24, 40, n), rng.uniform(8, 18, n))
    w_max = np.sqrt(np.maximum((2 * r_max) ** 2 - length**2, 1.0))
    width = np.minimum(
        np.where(large, rng.uniform(14, 30, n), rng.uniform(7, 14, n)), w_max
    )
    # shift within the lot, keeping the footprint inside the lot's circle
    slack = 0.95 * (r_max - np.hypot(length, width) / 2)
    shift = slack * np.sqrt(rng.random(n))
    towards = rng.uniform(0, 2 * math.pi, n)
    centre = xy + np.column_stack((shift * np.cos(towards), shift * np.sin(towards)))
    district = city.district_of(centre[:, 0], centre[:, 1])
    # aligned with the district's street grid, some at odd angles
    angle = (
        city.district_angles[district]
        + rng.integers(0, 2, n) * math.pi / 2
        + np.radians(rng.normal(0, 3, n))
    )
    free_angle = rng.random(n) < 0.15
    angle[free_angle] = rng.uniform(0, math.pi, int(free_angle.sum()))
    footprints = _rects(centre[:, 0], centre[:, 1], length, width, angle)

    # floors by use and place
    floors = np.empty(n)
    res, com = use_i == 0, (use_i == 1) | (use_i == 2)
    small_res = res & ~large
    floors[small_res] = np.round(rng.normal(6.0 - 0.08 * d_core[small_res], 1.5))
    big_res = res & large
    floors[big_res] = np.round(
        np.exp(rng.normal(np.log(11 + 10 * np.exp(-d_core[big_res] / 10)), 0.35))
    )
    floors[com & ~large] = rng.integers(1, 5, int((com & ~large).sum()))
    big_com = com & large
    floors[big_com] = np.round(
        np.exp(rng.normal(np.log(8 + 30 * np.exp(-d_cbd[big_com] / 3)), 0.45))
    )
    ind = use_i == 3
    floors[ind] = rng.integers(1, 6, int(ind.sum()))
    sch = use_i == 4
    floors[sch] = rng.integers(3, 7, int(sch.sum()))
    hos = use_i == 5
    floors[hos] = rng.integers(4, 21, int(hos.sum()))
    floors = np.clip(floors, 1, 110).astype(np.int64)
    height = np.round(floors * rng.uniform(2.9, 3.3, n) + np.where(com, 2.0, 0.0), 1)

    # year built: older towards the old city, towers recent
    year = np.round(rng.normal(1982 + 1.0 * np.minimum(d_core, 30), 13))
    tall = floors >= 10
    year[tall] = np.round(rng.normal(2006, 9, int(tall.sum())))
    old_city = (~large) & (d_old < 3.0) & (rng.random(n) < 0.12)
    year[old_city] = rng.integers(1900, 1950, int(old_city.sum()))
    year = np.clip(year, np.where(old_city, 1900, 1950), as_of.year - 1).astype(
        np.int64
    )
    historic = ((year < 1950) & (rng.random(n) < 0.5)) | (rng.random(n) < 0.002)

    structure = np.full(n, "rc_frame", dtype=object)
    structure[(year < 1995) & (floors <= 7)] = "brick_concrete"
    structure[year < 1960] = "masonry"
    structure[tall] = "shear_wall"
    structure[com & tall & (rng.random(n) < 0.4)] = "rc_frame"
    structure[com & (floors > 50)] = "steel"
    structure[ind & (rng.random(n) < 0.5)] = "steel"

    # safety grade: older, lower, masonry buildings are worse (JGJ 125-2016 A-D)
    age = as_of.year - year
    risk = np.exp(0.03 * age - 0.05 * floors) * np.where(
        np.isin(structure, ("masonry", "brick_concrete")), 1.6, 1.0
    )
    p_c = _calibrated(risk, GRADE_SHARE["C"], cap=0.5)
    p_d = _calibrated(risk**2, GRADE_SHARE["D"], cap=0.25)
    p_b = 0.18 + 0.15 * np.clip(age / 60, 0, 1)
    u = rng.random(n)
    grade = np.full(n, "A", dtype=object)
    grade[u < p_d + p_c + p_b] = "B"
    grade[u < p_d + p_c] = "C"
    grade[u < p_d] = "D"
    cd = (grade == "C") | (grade == "D")
    first = np.maximum(_days(dt.date(2012, 1, 1)), (year - 1970) * 365.25 + 365).astype(
        np.int64
    )
    appraised = first + (rng.random(n) * (_days(as_of) - first)).astype(np.int64)

    # addresses: a street of the building's district
    streets = _street_table(city)
    street_i = (rng.random(n) * streets["count"][district]).astype(np.int64)
    street = streets["names"][streets["start"][district] + street_i]
    number = rng.integers(1, 400, n).astype("U64")
    dnames = _district_names()[district]
    address = np.strings.add(
        np.strings.add(dnames, street), np.strings.add(number, "号")
    )

    city.buildings = {
        "footprints_m": footprints,
        "use": use_i,
        "height": height,
        "year": year,
        "large": large,
    }
    ids = _ids("B", n, 7)
    return FeatureBatch(
        geometries=_to_wgs84(footprints),
        columns={
            "address": address.astype(object),
            "district": dnames.astype(object),
            "structure": structure,
            "floors": floors,
            "height_m": height,
            "built_year": year,
            "safety_grade": grade,
            "appraised_on": _dates(appraised, cd),
            "historic": historic,
            "use": _USES[use_i].astype(object),
        },
        ids=ids,
        crs="EPSG:4326",
        origin="demo",
    )


def _street_table(city: _City) -> dict[str, np.ndarray]:
    """Street names per district (from the generated roads), flattened."""
    names, starts, counts = [], [], []
    for k, seed in enumerate(DISTRICT_SEEDS):
        mine = sorted(set(city.roads["names"][city.roads["district"] == k].tolist()))
        mine = mine or [f"{seed.stem}路"]
        starts.append(len(names))
        counts.append(len(mine))
        names.extend(mine)
    return {
        "names": np.array(names),
        "start": np.array(starts),
        "count": np.array(counts),
    }


# -- curtain walls ------------------------------------------------------------

_SUPPORT = np.array(("frame", "structural_silicone", "point", "cable"))


def _curtain_walls(
    city: _City, building_ids: np.ndarray, rng: np.random.Generator, as_of: dt.date
) -> FeatureBatch:
    b = city.buildings
    commercial = np.isin(b["use"], (1, 2))
    cand = np.flatnonzero(commercial & (b["height"] >= 24) & (b["year"] >= 1993))
    walls = cand[rng.random(len(cand)) < 0.6]
    n = len(walls)
    fp = b["footprints_m"][walls]
    as_point = rng.random(n) < 0.2
    geoms = fp.copy()
    geoms[as_point] = shapely.centroid(fp[as_point])
    height = b["height"][walls]
    area = np.round(shapely.length(fp) * height * rng.uniform(0.3, 0.85, n), 1)
    support = _SUPPORT[rng.choice(4, n, p=(0.55, 0.30, 0.10, 0.05))]
    acc_year = np.clip(b["year"][walls] + rng.integers(0, 3, n), 1995, as_of.year - 1)
    accepted = ((acc_year - 1970) * 365.25).astype(np.int64) + rng.integers(0, 365, n)
    accepted = np.minimum(accepted, _days(as_of) - 30)
    # first check a year after acceptance, then every five years (JGJ 102-2003 [S]);
    # about a quarter have missed the latest one
    today = _days(as_of)
    first_check = accepted + 365
    due = np.where(today >= first_check, 1 + (today - first_check) // 1826, 0)
    done = due - (rng.random(n) < 0.25)
    last = first_check + (done - 1) * 1826 + rng.integers(0, 90, n)
    last = np.minimum(last, today)
    ids = _ids("CW", n, 6)
    return FeatureBatch(
        geometries=_to_wgs84(geoms),
        columns={
            "building": building_ids[walls].astype(object),
            "area_m2": area,
            "height_m": height,
            "support_type": support.astype(object),
            "accepted_on": _dates(accepted),
            "last_checked_on": _dates(last, done > 0),
            "design_life_years": np.full(n, 25, dtype=np.int64),
        },
        ids=ids,
        crs="EPSG:4326",
        origin="demo",
    )


# -- monitoring stations ------------------------------------------------------


def _stations(
    city: _City, rivers: FeatureBatch, rng: np.random.Generator
) -> FeatureBatch:
    lines = city.rivers["lines_m"]
    rank = city.rivers["rank"]
    length = shapely.length(lines)
    k = rng.choice((1, 2, 3), len(lines), p=(0.45, 0.35, 0.2))
    spacing = rng.uniform(200, 600, len(lines))  # 2015 guideline: 200-600 m [S]
    k = np.minimum(k, 1 + ((length - 100) // spacing).astype(np.int64)).clip(1)
    room = np.maximum(length - 100 - (k - 1) * spacing, 0)
    start = 50 + rng.random(len(lines)) * room
    seg = np.repeat(np.arange(len(lines)), k)
    nth = np.arange(len(seg)) - np.repeat(np.cumsum(k) - k, k)
    at = start[seg] + nth * spacing[seg]
    pts = shapely.line_interpolate_point(lines[seg], at)
    codes = rivers.columns["code"]
    automatic = rng.random(len(seg)) < np.where(rank[seg] < 2, 0.4, 0.12)
    names = np.strings.add(
        np.strings.add(
            rivers.columns["name"][seg].astype("U64"), (nth + 1).astype("U64")
        ),
        "号监测点",
    )
    ids = _ids("JC", len(seg), 6)
    return FeatureBatch(
        geometries=_to_wgs84(pts),
        columns={
            "code": ids.copy(),
            "name": names.astype(object),
            "river_code": codes[seg].astype(object),
            "kind": np.where(automatic, "automatic", "manual").astype(object),
        },
        ids=ids,
        crs="EPSG:4326",
        origin="demo",
    )


# -- public API ---------------------------------------------------------------


def generate_city(
    *,
    buildings: int = 50_000,
    seed: int = 20261203,
    segments: int = 300,
    sites: int = 300,
    plants: int = 40,
    as_of: dt.date = AS_OF,
) -> dict[str, FeatureBatch]:
    """Generate the synthetic demo city.

    Parameters
    ----------
    buildings
        Number of building footprints.
    seed
        Seed of the random generator; the same seed gives the same city.
    segments
        About how many managed river segments (at least the named rivers'
        own segments, ~150 at the default length).
    sites, plants
        Number of construction sites and concrete plants.
    as_of
        The demo's "today": every date is drawn relative to it.

    Returns
    -------
    dict
        Layer id -> :class:`FeatureBatch` in WGS84 for ``districts``,
        ``rivers``, ``roads``, ``construction_sites``, ``plants``,
        ``buildings``, ``curtain_walls`` and ``monitoring_stations``.

    Examples
    --------
    >>> a = generate_city(buildings=300, segments=100, sites=20, plants=5)
    >>> b = generate_city(buildings=300, segments=100, sites=20, plants=5)
    >>> bool((a["buildings"].ids == b["buildings"].ids).all())
    True
    """
    streams = [
        np.random.default_rng(s)
        for s in np.random.SeedSequence(seed).spawn(len(LAYER_IDS))
    ]
    rng = dict(zip(LAYER_IDS, streams, strict=True))
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[name] = round(now - t, 3)
        t = now

    outline, polys = _districts()
    angles = np.radians(rng["districts"].uniform(-25, 25, len(polys)))
    city = _City(outline=outline, district_polys=polys, district_angles=angles)
    out: dict[str, FeatureBatch] = {"districts": _district_batch(city)}
    lap("districts")

    city.rivers = _rivers(city, segments, rng["rivers"])
    keepout = shapely.buffer(
        city.rivers["lines_m"],
        np.array(RIVER_HALF_WIDTH_M)[city.rivers["rank"]] + 15.0,
        quad_segs=4,
    )
    city.rivers["keepout"] = keepout
    city.rivers["keepout_tree"] = shapely.STRtree(keepout)
    out["rivers"] = city.rivers["batch"]
    lap("rivers")

    city.roads = _roads(city, rng["roads"])
    out["roads"] = city.roads["batch"]
    lap("roads")

    out["construction_sites"] = _construction_sites(
        city, sites, rng["construction_sites"], as_of
    )["batch"]
    lap("construction_sites")
    out["plants"] = _plants(city, plants, rng["plants"])
    lap("plants")
    out["buildings"] = _buildings(city, buildings, rng["buildings"], as_of)
    lap("buildings")
    out["curtain_walls"] = _curtain_walls(
        city, out["buildings"].ids, rng["curtain_walls"], as_of
    )
    lap("curtain_walls")
    out["monitoring_stations"] = _stations(
        city, out["rivers"], rng["monitoring_stations"]
    )
    lap("monitoring_stations")
    log.info(
        "demo city generated",
        extra={
            "seed": seed,
            "counts": {k: len(v) for k, v in out.items()},
            "seconds": timings,
        },
    )
    return out


#: File drivers :func:`write_city` knows: format -> (GDAL driver, extension).
FORMATS = {"gpkg": ("GPKG", ".gpkg"), "geojson": ("GeoJSON", ".geojson")}


def write_city(
    city: dict[str, FeatureBatch], directory: Path, fmt: str = "gpkg"
) -> dict[str, Path]:
    """Write each layer to ``directory/<layer id>.<ext>`` with pyogrio.

    The batch ids go to an ``id`` field (a name every layer's id aliases
    match) unless a property already holds them (a district's ``adcode``);
    dates go to Date fields, and the CRS is EPSG:4326.

    Returns
    -------
    dict
        Layer id -> path of the file written (an existing file is replaced).
    """
    import pyogrio.raw

    try:
        driver, ext = FORMATS[fmt]
    except KeyError:
        raise ValueError(
            f"unknown format {fmt!r} (known: {', '.join(FORMATS)})"
        ) from None
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for layer_id, batch in city.items():
        path = directory / f"{layer_id}{ext}"
        if path.exists():
            path.unlink()
        names = list(batch.columns)
        data = [_field_array(v) for v in batch.columns.values()]
        if _needs_id_field(layer_id, batch):
            ids = batch.ids if batch.ids is not None else np.arange(1, len(batch) + 1)
            names.insert(0, "id")
            data.insert(0, _field_array(np.asarray(ids, dtype=object)))
        geom_type, promote = _geometry_type(batch.geometries)
        pyogrio.raw.write(
            path,
            shapely.to_wkb(batch.geometries),
            data,
            names,
            layer=layer_id,
            driver=driver,
            geometry_type=geom_type,
            crs=batch.crs or "EPSG:4326",
            promote_to_multi=promote,
        )
        written[layer_id] = path
        log.debug(
            "demo layer written",
            extra={"layer": layer_id, "path": str(path), "features": len(batch)},
        )
    return written


def _needs_id_field(layer_id: str, batch: FeatureBatch) -> bool:
    """False when a property the layer takes ids from already holds the ids.

    Districts are keyed by ``adcode``: a separate ``id`` field would only end
    up in ``extra``.
    """
    from layers import UnknownLayer, get_layer

    try:
        aliases = get_layer(layer_id).id_aliases
    except UnknownLayer:
        return True
    for alias in aliases:
        if alias == "id":
            return True
        values = batch.columns.get(alias)
        if values is not None and batch.ids is not None:
            return list(values) != list(batch.ids)
    return True


def _field_array(values: Any) -> np.ndarray:
    a = np.asarray(values)
    if a.dtype != object:
        return a
    sample = next((v for v in a if v is not None), None)
    if isinstance(sample, dt.date):
        nat = np.datetime64("NaT")
        return np.array(
            [nat if v is None else np.datetime64(v, "D") for v in a],
            dtype="datetime64[D]",
        )
    return a


def _geometry_type(geoms: np.ndarray) -> tuple[str, bool | None]:
    types = set(shapely.get_type_id(geoms).tolist())
    names = {
        0: "Point",
        1: "LineString",
        3: "Polygon",
        4: "MultiPoint",
        5: "MultiLineString",
        6: "MultiPolygon",
    }
    if len(types) == 1 and (t := next(iter(types))) in names:
        return names[t], None
    if types <= {3, 6}:
        return "MultiPolygon", True
    if types <= {1, 5}:
        return "MultiLineString", True
    return "Unknown", None
