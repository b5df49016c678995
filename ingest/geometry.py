"""Geometry checks on the way in, vectorised over a whole batch.

Each row ends up *ok*, *repaired* (``make_valid`` fixed it) or *rejected*
with a reason: no geometry, empty, a type the
layer does not accept, coordinates out of range, or invalid beyond repair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from layers.base import LayerSpec

OK, REPAIRED, REJECTED = 0, 1, 2

_TYPE_NAMES = {
    0: "Point",
    1: "LineString",
    2: "LinearRing",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
    7: "GeometryCollection",
}
_DIMENSION = {
    "Point": 0,
    "MultiPoint": 0,
    "LineString": 1,
    "MultiLineString": 1,
    "Polygon": 2,
    "MultiPolygon": 2,
}


@dataclass
class CheckedGeometries:
    """Outcome of :func:`check_geometries`, aligned with the input rows."""

    geometries: np.ndarray
    status: np.ndarray
    reasons: list[str | None]

    @property
    def accepted(self) -> np.ndarray:
        return self.status != REJECTED


def _parts_of_dimension(geom, dim: int):
    """The parts of ``geom`` of one dimension, merged into one geometry."""
    parts = [p for p in shapely.get_parts(geom) if shapely.get_dimensions(p) == dim]
    parts = [p for p in parts if not p.is_empty]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    if dim == 2:
        return shapely.union_all(parts)
    return shapely.multilinestrings(parts) if dim == 1 else shapely.multipoints(parts)


def check_geometries(geoms: np.ndarray, spec: LayerSpec) -> CheckedGeometries:
    """Validate, repair and promote WGS84 geometries for ``spec``.

    Parameters
    ----------
    geoms : object array of shapely geometries (or None), already in WGS84.
    spec : the target layer.

    Examples
    --------
    >>> from layers import get_layer
    >>> bow_tie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    >>> out = check_geometries(np.array([bow_tie, shapely.Point(1, 1)]),
    ...                        get_layer("buildings"))
    >>> out.status.tolist(), out.geometries[0].geom_type
    ([1, 2], 'MultiPolygon')

    Single parts are left single here; the loader promotes them in SQL.
    """
    n = len(geoms)
    geoms = np.asarray(geoms, dtype=object).copy()
    status = np.full(n, OK, dtype=np.int8)
    reasons: list[str | None] = [None] * n

    def reject(mask: np.ndarray, reason) -> None:
        for i in np.flatnonzero(mask & (status != REJECTED)):
            reasons[i] = reason(i) if callable(reason) else reason
            status[i] = REJECTED

    missing = shapely.is_missing(geoms)
    reject(missing, "no geometry, or a geometry that could not be parsed")
    present = ~missing
    reject(present & shapely.is_empty(geoms), "empty geometry")

    # Coordinates must be finite and within lon/lat range after reprojection.
    live = status != REJECTED
    bounds = np.full((n, 4), np.nan)
    bounds[live] = shapely.bounds(geoms[live])
    finite = np.isfinite(bounds).all(axis=1)
    in_range = (
        finite
        & (bounds[:, 0] >= -180)
        & (bounds[:, 2] <= 180)
        & (bounds[:, 1] >= -90)
        & (bounds[:, 3] <= 90)
    )
    reject(
        live & ~in_range,
        lambda i: (
            "coordinates out of range for lon/lat "
            f"(bounds {np.round(bounds[i], 6).tolist()}): wrong --crs?"
        ),
    )

    # Repair invalid geometries, keeping only the parts of the layer's dimension.
    live = status != REJECTED
    invalid = np.zeros(n, dtype=bool)
    invalid[live] = ~shapely.is_valid(geoms[live])
    for i in np.flatnonzero(invalid):
        why = shapely.is_valid_reason(geoms[i])
        dim = int(shapely.get_dimensions(geoms[i]))
        fixed = _parts_of_dimension(shapely.make_valid(geoms[i]), dim)
        if fixed is None or not fixed.is_valid:
            reasons[i] = f"invalid geometry that make_valid cannot repair ({why})"
            status[i] = REJECTED
        else:
            geoms[i] = fixed
            reasons[i] = f"repaired with make_valid ({why})"
            status[i] = REPAIRED

    # Geometry collections of one dimension (make_valid output, some
    # exports) are unwrapped before the type check.
    live = status != REJECTED
    type_ids = np.full(n, -1)
    type_ids[live] = shapely.get_type_id(geoms[live])
    for i in np.flatnonzero(type_ids == 7):
        dims = {int(shapely.get_dimensions(p)) for p in shapely.get_parts(geoms[i])}
        if len(dims) == 1:
            geoms[i] = _parts_of_dimension(geoms[i], dims.pop())
            type_ids[i] = shapely.get_type_id(geoms[i])

    # Type check (per distinct type, not per row), then promotion of single
    # parts to the layer's multi type.
    for type_id in np.unique(type_ids[live]):
        rows = live & (type_ids == type_id)
        name = _TYPE_NAMES.get(int(type_id), "Unknown")
        target = spec.accepts(name)
        if target is None:
            allowed = "/".join(spec.geometry_types)
            reject(rows, f"{name} is not accepted by layer {spec.id} ({allowed})")
        # A single part bound for a Multi* column (target != name) is
        # promoted by the loader in SQL (ST_Multi), which costs a fraction of
        # building the multi-part objects here.
    return CheckedGeometries(geoms, status, reasons)
