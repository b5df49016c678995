"""Coordinate reference systems the features API speaks (OGC API - Features Part 2).

Stored geometries are EPSG:4326 in longitude/latitude order. A response or a
``bbox-crs`` / ``filter-crs`` can be any CRS of :data:`SUPPORTED_CRS`; the
EPSG geographic CRSs (4326, 4490) have latitude first in their definition, and
OGC API - Features Part 2 requires that axis order in coordinates and bboxes
given in them (CRS84 is the longitude-first variant).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pyproj import Transformer

from gis_server.errors import UnsupportedCRS

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{code}"


@dataclass(frozen=True)
class CRS:
    """One supported CRS: its OGC URI, PostGIS SRID and axis order."""

    uri: str
    srid: int
    #: coordinates are (latitude, longitude) in this CRS's definition
    lat_first: bool
    #: decimal digits that keep ~1 cm in this CRS's units
    projected: bool = False

    @property
    def epsg(self) -> str:
        return "OGC:CRS84" if self.uri == CRS84 else f"EPSG:{self.srid}"


#: CRSs accepted in ``crs``, ``bbox-crs`` and ``filter-crs``; the first is the default.
SUPPORTED_CRS: tuple[CRS, ...] = (
    CRS(CRS84, 4326, lat_first=False),
    CRS(EPSG_URI.format(code=4326), 4326, lat_first=True),
    CRS(EPSG_URI.format(code=4490), 4490, lat_first=True),
    CRS(EPSG_URI.format(code=3857), 3857, lat_first=False, projected=True),
)
DEFAULT_CRS = SUPPORTED_CRS[0]

_ALIASES: dict[str, CRS] = {}
for _crs in SUPPORTED_CRS:
    _code = _crs.epsg.split(":")[1]
    _auth = _crs.epsg.split(":")[0]
    for _alias in (
        _crs.uri,
        _crs.uri.replace("http://", "https://"),
        _crs.epsg,
        f"[{_crs.epsg}]",
        f"urn:ogc:def:crs:{_auth}::{_code}",
        f"urn:ogc:def:crs:{_auth}:1.3:{_code}",
    ):
        _ALIASES[_alias.lower()] = _crs
_ALIASES["crs84"] = DEFAULT_CRS


def parse_crs(value: str | None, parameter: str = "crs") -> CRS:
    """The supported CRS a URI, URN or ``EPSG:nnnn`` string names.

    Examples
    --------
    >>> parse_crs("http://www.opengis.net/def/crs/EPSG/0/3857").srid
    3857
    >>> parse_crs(None) is DEFAULT_CRS
    True
    """
    if value is None or value == "":
        return DEFAULT_CRS
    crs = _ALIASES.get(value.strip().lower())
    if crs is None:
        supported = ", ".join(c.uri for c in SUPPORTED_CRS)
        raise UnsupportedCRS(
            f"{parameter} {value!r} is not supported; use one of: {supported}"
        )
    return crs


@lru_cache(maxsize=16)
def _to_wgs84(srid: int) -> Transformer:
    return Transformer.from_crs(srid, 4326, always_xy=True)


def bbox_to_wgs84(
    bbox: tuple[float, float, float, float], crs: CRS
) -> tuple[float, float, float, float]:
    """A bbox given in ``crs`` (in that CRS's axis order) as lon/lat EPSG:4326.

    Parameters
    ----------
    bbox
        ``(min axis 1, min axis 2, max axis 1, max axis 2)`` in ``crs``.
    crs
        The CRS the values are in.

    Returns
    -------
    tuple
        ``(min lon, min lat, max lon, max lat)``; a projected box is
        densified along its edges before transforming, so the result covers it.

    Examples
    --------
    >>> bbox_to_wgs84((23.0, 113.0, 23.5, 113.5), parse_crs("EPSG:4326"))
    (113.0, 23.0, 113.5, 23.5)
    """
    a1, a2, b1, b2 = bbox
    if crs.lat_first:
        a1, a2, b1, b2 = a2, a1, b2, b1
    if crs.srid == 4326:
        return (a1, a2, b1, b2)
    minx, miny, maxx, maxy = _to_wgs84(crs.srid).transform_bounds(
        a1, a2, b1, b2, densify_pts=21
    )
    return (minx, miny, maxx, maxy)


def output_precision(crs: CRS, degrees_digits: int) -> int:
    """Decimal digits for coordinates in ``crs`` (cm in metres, else as set)."""
    return 2 if crs.projected else degrees_digits
