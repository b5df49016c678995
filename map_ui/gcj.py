"""Shifting what is embedded in a page to the basemap's datum (GCJ-02).

Data drawn from tiles is shifted in the browser (``static/gis/gcj02.js``, a
port of the same formula); data embedded in the page is shifted here with
:func:`ingest.crs.wgs84_to_gcj02`.
"""

from __future__ import annotations

import numpy as np
import shapely

from ingest.crs import wgs84_to_gcj02


def shift_geojson(geometry_json: str, datum: str) -> str:
    """A GeoJSON geometry (text, WGS84) in ``datum`` (``wgs84`` or ``gcj02``).

    Examples
    --------
    >>> shift_geojson('{"type":"Point","coordinates":[113.3,23.1]}', "wgs84")
    '{"type":"Point","coordinates":[113.3,23.1]}'
    >>> import json
    >>> lon = json.loads(shift_geojson(
    ...     '{"type":"Point","coordinates":[113.3,23.1]}', "gcj02"))["coordinates"][0]
    >>> bool(0.004 < lon - 113.3 < 0.007)
    True
    """
    if datum != "gcj02":
        return geometry_json
    geom = shapely.transform(shapely.from_geojson(geometry_json), wgs84_to_gcj02)
    return shapely.to_geojson(geom, indent=None)


def shift_bounds(
    bounds: tuple[float, float, float, float], datum: str
) -> list[list[float]]:
    """``(minx, miny, maxx, maxy)`` as Leaflet bounds ``[[s, w], [n, e]]``.

    >>> shift_bounds((113.0, 23.0, 113.1, 23.1), "wgs84")
    [[23.0, 113.0], [23.1, 113.1]]
    """
    corners = np.array([[bounds[0], bounds[1]], [bounds[2], bounds[3]]], dtype=float)
    if datum == "gcj02":
        corners = wgs84_to_gcj02(corners)
    return [
        [round(float(corners[0, 1]), 7), round(float(corners[0, 0]), 7)],
        [round(float(corners[1, 1]), 7), round(float(corners[1, 0]), 7)],
    ]
