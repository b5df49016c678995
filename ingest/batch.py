"""The in-memory form every reader produces and the loader consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class FeatureBatch:
    """Features read from one source, column-wise.

    Parameters
    ----------
    geometries
        Object array of shapely geometries (``None`` where the source row had
        no readable geometry), in the CRS named by ``crs``.
    columns
        Source property name -> sequence of values, one per feature.
    ids
        The source's own feature ids (``None`` entries where a row has none),
        or ``None`` when the source has no id field at all.
    crs
        What the coordinates are in: an EPSG code or WKT understood by pyproj,
        or ``"gcj02"``. ``None`` means unknown (taken as WGS84 and reported).
    row_numbers
        Row numbers in the source (1-based) for reports; default 1..n.
    errors
        Row number -> reason for rows the reader could not parse at all; they
        appear in the report as rejected.
    """

    geometries: np.ndarray
    columns: dict[str, Any] = field(default_factory=dict)
    ids: np.ndarray | None = None
    crs: str | None = "EPSG:4326"
    row_numbers: np.ndarray | None = None
    errors: dict[int, str] = field(default_factory=dict)
    #: where the batch came from, for reports ("buildings.gpkg", "demo")
    origin: str = ""
    #: the source field the ids were taken from (not repeated in ``extra``)
    id_field: str | None = None
    #: things the reader noticed that the user should know (a guessed CRS)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.geometries)
        if self.row_numbers is None:
            self.row_numbers = np.arange(1, n + 1)
        for name, values in self.columns.items():
            if len(values) != n:
                raise ValueError(
                    f"column {name!r} has {len(values)} values for {n} rows"
                )
        if self.ids is not None and len(self.ids) != n:
            raise ValueError("ids and geometries differ in length")

    def __len__(self) -> int:
        return len(self.geometries)
