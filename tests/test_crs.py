"""GCJ-02 and the CRS plumbing of ingest."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from pyproj import Geod

from gis_server.errors import UnsupportedCRS
from ingest.crs import gcj02_to_wgs84, normalise_crs, to_wgs84, wgs84_to_gcj02


def test_inverse_matches_an_independent_implementation():
    # gcoord (JavaScript) publishes GCJ02 -> WGS84 of (123, 45) as
    # (122.99395597, 44.99804071), checked to 5 decimals in its tests.
    out = gcj02_to_wgs84(np.array([[123.0, 45.0]]))[0]
    assert out == pytest.approx([122.99395597, 44.99804071], abs=5e-6)


def test_round_trip_and_size_of_the_shift_in_guangzhou():
    rng = np.random.default_rng(7)
    pts = np.column_stack(
        [rng.uniform(113.1, 113.7, 500), rng.uniform(22.6, 23.6, 500)]
    )
    gcj = wgs84_to_gcj02(pts)
    assert np.abs(gcj02_to_wgs84(gcj) - pts).max() < 1e-9
    metres = Geod(ellps="WGS84").inv(pts[:, 0], pts[:, 1], gcj[:, 0], gcj[:, 1])[2]
    # DOMAIN.md: roughly 100-700 m in Guangzhou.
    assert 100 < metres.min() and metres.max() < 700


def test_outside_china_is_unchanged():
    pts = np.array([[2.35, 48.85], [-74.0, 40.7], [183.0, 45.0]])
    assert (wgs84_to_gcj02(pts) == pts).all()
    assert (gcj02_to_wgs84(pts) == pts).all()


def test_normalise_and_transform():
    assert normalise_crs("4490") == "EPSG:4490"
    assert normalise_crs("GCJ-02") == "gcj02"
    assert normalise_crs(None) is None
    with pytest.raises(UnsupportedCRS):
        normalise_crs("EPSG:99999")
    utm = shapely.Point(500000, 2560000)  # UTM 49N, near Guangzhou
    lonlat = to_wgs84(np.array([utm], dtype=object), "EPSG:32649")[0]
    assert lonlat.x == pytest.approx(111.0, abs=1e-6) and 23.1 < lonlat.y < 23.2
    cgcs = to_wgs84(np.array([shapely.Point(113.3, 23.1)], dtype=object), "EPSG:4490")
    assert cgcs[0].distance(shapely.Point(113.3, 23.1)) < 1e-7
    z = to_wgs84(np.array([shapely.Point(113.3, 23.1, 5.0), None], dtype=object), None)
    assert not z[0].has_z and z[1] is None
