"""Coordinate reference systems on the way in: EPSG codes, CGCS2000, GCJ-02.

Everything is stored in EPSG:4326. CGCS2000 (EPSG:4490) goes through pyproj
like any other EPSG code. GCJ-02 -- the obfuscated datum of Chinese web maps
(AMap/Gaode, Tencent), which DataV exports use without saying so -- is not an
EPSG CRS: the WGS84 -> GCJ-02 direction is a published closed formula and the
inverse is solved by fixed-point iteration (see DOMAIN.md, "Coordinates in
China").
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyproj
import shapely

from gis_server.errors import UnsupportedCRS

GCJ02 = "gcj02"
WGS84 = "EPSG:4326"

# Parameters of the GCJ-02 formula (Krasovsky 1940 ellipsoid, as published).
_GCJ_A = 6378245.0
_GCJ_EE = 0.00669342162296594323
#: The formula is applied inside this box only; outside China GCJ-02 == WGS84.
CHINA_BOUNDS = (72.004, 0.8293, 137.8347, 55.8271)
#: Iterations of the inverse; each step gains roughly two orders of magnitude.
GCJ_INVERSE_STEPS = 6


def _offsets(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = lon - 105.0
    y = lat - 35.0
    pi = np.pi
    common = (20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlat = (
        -100.0
        + 2.0 * x
        + 3.0 * y
        + 0.2 * y * y
        + 0.1 * x * y
        + 0.2 * np.sqrt(np.abs(x))
        + common
        + (20.0 * np.sin(y * pi) + 40.0 * np.sin(y / 3.0 * pi)) * 2.0 / 3.0
        + (160.0 * np.sin(y / 12.0 * pi) + 320.0 * np.sin(y * pi / 30.0)) * 2.0 / 3.0
    )
    dlon = (
        300.0
        + x
        + 2.0 * y
        + 0.1 * x * x
        + 0.1 * x * y
        + 0.1 * np.sqrt(np.abs(x))
        + common
        + (20.0 * np.sin(x * pi) + 40.0 * np.sin(x / 3.0 * pi)) * 2.0 / 3.0
        + (150.0 * np.sin(x / 12.0 * pi) + 300.0 * np.sin(x / 30.0 * pi)) * 2.0 / 3.0
    )
    radlat = lat / 180.0 * pi
    magic = 1.0 - _GCJ_EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_GCJ_A * (1.0 - _GCJ_EE)) / (magic * sqrtmagic) * pi)
    dlon = (dlon * 180.0) / (_GCJ_A / sqrtmagic * np.cos(radlat) * pi)
    return dlon, dlat


def _in_china(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    west, south, east, north = CHINA_BOUNDS
    return (lon >= west) & (lon <= east) & (lat >= south) & (lat <= north)


def wgs84_to_gcj02(coords: np.ndarray) -> np.ndarray:
    """Shift WGS84 lon/lat pairs to GCJ-02.

    Parameters
    ----------
    coords : (N, 2) array of lon, lat in degrees.

    Examples
    --------
    >>> out = wgs84_to_gcj02(np.array([[113.3245, 23.1064]]))
    >>> bool(0.004 < out[0, 0] - 113.3245 < 0.007)
    True
    """
    coords = np.asarray(coords, dtype=float)
    lon, lat = coords[:, 0], coords[:, 1]
    dlon, dlat = _offsets(lon, lat)
    inside = _in_china(lon, lat)
    out = coords.copy()
    out[:, 0] = np.where(inside, lon + dlon, lon)
    out[:, 1] = np.where(inside, lat + dlat, lat)
    return out


def gcj02_to_wgs84(coords: np.ndarray) -> np.ndarray:
    """Invert :func:`wgs84_to_gcj02` by fixed-point iteration.

    Six steps bring the round trip below 1e-9 degrees (well under a
    millimetre) anywhere in China.

    Examples
    --------
    >>> p = np.array([[113.2644, 23.1291]])
    >>> bool(np.abs(wgs84_to_gcj02(gcj02_to_wgs84(p)) - p).max() < 1e-9)
    True
    """
    target = np.asarray(coords, dtype=float)
    guess = target.copy()
    for _ in range(GCJ_INVERSE_STEPS):
        guess = guess - (wgs84_to_gcj02(guess) - target)
    return guess


@lru_cache(maxsize=64)
def _transformer(crs: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(crs, WGS84, always_xy=True)


def normalise_crs(crs: str | None) -> str | None:
    """A canonical spelling: ``"gcj02"``, ``"EPSG:n"``, or the input (WKT).

    Raises :class:`UnsupportedCRS` when pyproj cannot read it.
    """
    if crs is None or str(crs).strip() == "":
        return None
    text = str(crs).strip()
    if text.lower().replace("-", "").replace("_", "") in {"gcj02", "mars"}:
        return GCJ02
    if text.isdigit():
        text = f"EPSG:{text}"
    try:
        parsed = pyproj.CRS.from_user_input(text)
    except pyproj.exceptions.CRSError as exc:
        raise UnsupportedCRS(f"unknown CRS {crs!r}: {exc}") from exc
    epsg = parsed.to_epsg(min_confidence=90)
    if epsg is not None:
        return f"EPSG:{epsg}"
    return parsed.to_wkt()


def is_wgs84(crs: str | None) -> bool:
    return crs in (None, WGS84, "EPSG:4979") or (
        crs is not None and crs.upper() in {"OGC:CRS84", "CRS84"}
    )


def to_wgs84(geoms: np.ndarray, crs: str | None) -> np.ndarray:
    """Reproject an array of shapely geometries to WGS84 lon/lat.

    ``crs`` is a canonical spelling from :func:`normalise_crs`; ``None`` means
    the coordinates are already WGS84. Geometries are 2-D after this.
    """
    present = ~shapely.is_missing(geoms)
    if shapely.has_z(geoms[present]).any():
        geoms = shapely.force_2d(geoms)
    if is_wgs84(crs):
        return geoms
    if crs == GCJ02:
        return shapely.transform(geoms, gcj02_to_wgs84)
    transformer = _transformer(crs)

    def _project(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, _project)
