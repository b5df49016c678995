"""CSV and GeoPackage exports of a layer or of the features matching a query.

Rows are read with a server-side cursor in chunks, so an export of a whole
layer never holds it in memory at once. The GeoPackage is written with
pyogrio to a temporary file that the caller streams back and deletes.
"""

from __future__ import annotations

import csv
import io
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Engine

from gis_server.features.props import output_properties
from gis_server.features.query import ItemsQuery, bbox_candidates, rows_statement

log = logging.getLogger("gis_server.features.export")

CHUNK_ROWS = 20_000

#: OGR field type of each property type in a GeoPackage.
_NUMPY_TYPES = {
    "int": "int64",
    "float": "float64",
    "bool": "bool",
    "date": "datetime64[D]",
}


def _columns(query: ItemsQuery) -> tuple[str, ...]:
    return (
        query.properties
        if query.properties is not None
        else output_properties(query.spec)
    )


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


def csv_chunks(engine: Engine, query: ItemsQuery) -> Iterator[bytes]:
    """The features as CSV (``id``, properties..., ``geometry`` as WKT), in chunks.

    Nested values (``extra``) are JSON text; WKT is x/y (longitude first).
    """
    names = _columns(query)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", *names, "geometry"])
    yield ("\ufeff" + buffer.getvalue()).encode()  # BOM: Excel reads UTF-8 CSV
    with engine.connect() as conn:
        _, candidates = bbox_candidates(conn, query)
        result = conn.execution_options(
            stream_results=True, yield_per=CHUNK_ROWS
        ).execute(rows_statement(query, geometry="wkt", candidates=candidates))
        for rows in result.partitions():
            buffer.seek(0)
            buffer.truncate()
            for row in rows:
                props = row.properties or {}
                writer.writerow(
                    [row.id, *(_cell(props.get(n)) for n in names), row.geometry]
                )
            yield buffer.getvalue().encode()


def _geometry_type(query: ItemsQuery) -> str:
    types = query.spec.geometry_types
    return types[0] if len(types) == 1 else "Unknown"


def write_gpkg(engine: Engine, query: ItemsQuery) -> tuple[Path, int]:
    """Write the features to a temporary GeoPackage; returns its path and size.

    The caller deletes the file (its folder) once it has been sent.
    """
    import pyogrio.raw

    names = _columns(query)
    kinds = {p.name: p.type for p in query.spec.properties}
    folder = Path(tempfile.mkdtemp(prefix="gis-export-"))
    path = folder / f"{query.spec.id}.gpkg"
    written = 0
    with engine.connect() as conn:
        _, candidates = bbox_candidates(conn, query)
        result = conn.execution_options(
            stream_results=True, yield_per=CHUNK_ROWS
        ).execute(rows_statement(query, geometry="wkb", candidates=candidates))
        for rows in result.partitions():
            fields, data, masks = ["source_fid"], [], []
            data.append(np.array([r.id for r in rows], dtype="int64"))
            masks.append(None)
            for name in names:
                values = [(r.properties or {}).get(name) for r in rows]
                array, mask = _field_array(values, kinds.get(name, "json"))
                fields.append(name)
                data.append(array)
                masks.append(mask)
            geometry = np.array([bytes(r.geometry) for r in rows], dtype=object)
            pyogrio.raw.write(
                str(path),
                geometry=geometry,
                field_data=data,
                fields=fields,
                field_mask=masks,
                layer=query.spec.id,
                driver="GPKG",
                geometry_type=_geometry_type(query),
                crs=f"EPSG:{query.crs.srid}",
                append=written > 0,
                layer_metadata={"DESCRIPTION": query.spec.title},
            )
            written += len(rows)
    if written == 0:  # an empty layer in the file still says what it holds
        pyogrio.raw.write(
            str(path),
            geometry=np.array([], dtype=object),
            field_data=[np.array([], dtype="int64")],
            fields=["source_fid"],
            layer=query.spec.id,
            driver="GPKG",
            geometry_type=_geometry_type(query),
            crs=f"EPSG:{query.crs.srid}",
        )
    log.info("gpkg export written", extra={"layer": query.spec.id, "features": written})
    return path, written


def _field_array(values: list[Any], kind: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A column for pyogrio and its null mask (None when nothing is null)."""
    mask = np.array([v is None for v in values], dtype=bool)
    dtype = _NUMPY_TYPES.get(kind)
    if dtype is not None:
        filler = {
            "int64": 0,
            "float64": 0.0,
            "bool": False,
            "datetime64[D]": "1970-01-01",
        }[dtype]
        array = np.array([filler if v is None else v for v in values], dtype=dtype)
    else:
        array = np.array(
            [
                None
                if v is None
                else (
                    orjson.dumps(v).decode() if isinstance(v, dict | list) else str(v)
                )
                for v in values
            ],
            dtype=object,
        )
    return array, (mask if mask.any() else None)
