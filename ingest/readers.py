"""Readers: vector files into :class:`FeatureBatch`.

GeoJSON, GeoPackage, Shapefile (zipped or not) and anything else GDAL reads
go through pyogrio; CSV files with lon/lat or WKT columns are read here.
"""

from __future__ import annotations

import csv
import logging
import warnings
from pathlib import Path

import numpy as np
import shapely

from gis_server.errors import IngestError
from ingest.batch import FeatureBatch
from ingest.crs import normalise_crs
from ingest.fields import normalise_name

log = logging.getLogger("gis_server.ingest")

LON_NAMES = ("lon", "lng", "long", "longitude", "x", "经度")
LAT_NAMES = ("lat", "latitude", "y", "纬度")
WKT_NAMES = ("wkt", "geometry", "geom", "the_geom", "shape", "几何")
CSV_ENCODINGS = ("utf-8-sig", "gb18030")

#: Property names that betray a DataV.GeoAtlas export, which is GCJ-02
#: whatever the file claims (DOMAIN.md, "Coordinates in China"). Two of them
#: must be present: an ``adcode`` alone is common in any Chinese boundary file.
DATAV_MARKERS = {"adcode", "acroutes", "childrennum", "subfeatureindex"}


def _find(fields: list[str], names: tuple[str, ...]) -> str | None:
    keys = {normalise_name(f): f for f in fields}
    for name in names:
        if normalise_name(name) in keys:
            return keys[normalise_name(name)]
    return None


def read_file(
    path: str | Path,
    *,
    crs: str | None = None,
    layer: str | None = None,
    id_field: str | None = None,
    id_aliases: tuple[str, ...] = ("id",),
    lon_field: str | None = None,
    lat_field: str | None = None,
    wkt_field: str | None = None,
) -> FeatureBatch:
    """Read a vector file.

    Parameters
    ----------
    crs : overrides the file's own CRS (``"EPSG:4490"``, ``"gcj02"``).
    layer : the layer inside a multi-layer file (GeoPackage).
    id_field : the field holding the source's feature id; by default the
        first of ``id_aliases`` present in the file.
    """
    path = Path(path)
    if not path.exists():
        raise IngestError(f"no such file: {path}")
    if path.suffix.lower() in (".csv", ".txt", ".tsv"):
        batch = _read_csv(path, lon_field, lat_field, wkt_field)
    else:
        batch = _read_ogr(path, layer)
    fields = list(batch.columns)
    if id_field is not None and id_field not in fields:
        raise IngestError(f"--id-field {id_field!r} is not a field of {path.name}")
    chosen = id_field or _find(fields, id_aliases)
    if chosen is not None:
        batch.ids = np.asarray(batch.columns[chosen], dtype=object)
        batch.id_field = chosen
    else:
        batch.warnings.append(
            "no id field found: features are keyed by a hash of their geometry "
            "(pass --id-field to name one)"
        )
    user_crs = normalise_crs(crs)
    if user_crs is not None:
        if batch.crs and user_crs != batch.crs:
            batch.warnings.append(f"--crs {crs} overrides the file's CRS {batch.crs}")
        batch.crs = user_crs
    elif batch.crs is None:
        batch.warnings.append("the file names no CRS: taken as EPSG:4326 (pass --crs)")
        batch.crs = "EPSG:4326"
    found = DATAV_MARKERS & {normalise_name(f) for f in fields}
    if user_crs is None and len(found) >= 2:
        batch.warnings.append(
            "this looks like a DataV.GeoAtlas export, which is GCJ-02 whatever it "
            "claims: pass --crs gcj02 unless it was converted already"
        )
    return batch


def _read_ogr(path: Path, layer: str | None) -> FeatureBatch:
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    source = str(path)
    try:
        layers = pyogrio.list_layers(source)
        if layer is None and len(layers) > 1:
            names = ", ".join(str(row[0]) for row in layers)
            raise IngestError(
                f"{path.name} holds several layers ({names}): choose one with --layer"
            )
        with warnings.catch_warnings():
            # GDAL renumbers repeated GeoJSON feature ids (its FIDs); the ids
            # themselves are read as a field and kept, pieces numbered.
            warnings.filterwarnings("ignore", message="Several features with id")
            meta, _fids, wkb, field_data = pyogrio.raw.read(source, layer=layer)[:4]
    except (DataSourceError, DataLayerError) as exc:
        raise IngestError(f"cannot read {path.name}: {exc}") from exc
    geoms = (
        shapely.from_wkb(wkb, on_invalid="ignore")
        if wkb is not None
        else (np.full(len(field_data[0]) if field_data else 0, None, dtype=object))
    )
    columns = {
        name: values for name, values in zip(meta["fields"], field_data, strict=True)
    }
    file_crs = normalise_crs(meta.get("crs")) if meta.get("crs") else None
    batch = FeatureBatch(
        np.asarray(geoms, dtype=object), columns, crs=file_crs, origin=path.name
    )
    if wkb is not None:
        for i in np.flatnonzero(shapely.is_missing(batch.geometries)):
            if wkb[i] is not None:
                batch.errors[int(i)] = "unparseable geometry"
    return batch


def _read_csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    last_error: Exception | None = None
    for encoding in CSV_ENCODINGS:
        try:
            with path.open(newline="", encoding=encoding) as fh:
                sample = fh.read(64 * 1024)
                fh.seek(0)
                try:
                    dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
                except csv.Error:
                    dialect = csv.excel
                reader = csv.reader(fh, dialect)
                header = next(reader, None)
                if header is None:
                    raise IngestError(f"{path.name} is empty")
                return [h.strip() for h in header], list(reader)
        except UnicodeDecodeError as exc:
            last_error = exc
    raise IngestError(f"cannot decode {path.name} as UTF-8 or GB18030: {last_error}")


def _read_csv(
    path: Path, lon_field: str | None, lat_field: str | None, wkt_field: str | None
) -> FeatureBatch:
    header, rows = _read_csv_rows(path)
    wkt_col = wkt_field or _find(header, WKT_NAMES)
    lon_col = lon_field or _find(header, LON_NAMES)
    lat_col = lat_field or _find(header, LAT_NAMES)
    for given, name in (
        (wkt_field, "--wkt-field"),
        (lon_field, "--lon-field"),
        (lat_field, "--lat-field"),
    ):
        if given and given not in header:
            raise IngestError(f"{name} {given!r} is not a column of {path.name}")
    if not wkt_col and not (lon_col and lat_col):
        raise IngestError(
            f"{path.name} has no geometry columns: expected lon/lat "
            f"({'/'.join(LON_NAMES)} and {'/'.join(LAT_NAMES)}) or WKT "
            f"({'/'.join(WKT_NAMES)}); name them with --lon-field/--lat-field or "
            "--wkt-field"
        )
    n = len(rows)
    errors: dict[int, str] = {}
    width = len(header)
    for i, row in enumerate(rows):
        if len(row) != width:
            errors[i] = f"{len(row)} columns where the header has {width}"
    cells = [row + [""] * (width - len(row)) for row in rows]
    index = {name: k for k, name in enumerate(header)}
    geoms = np.full(n, None, dtype=object)
    if wkt_col:
        texts = np.array(
            [r[index[wkt_col]].strip() or None for r in cells], dtype=object
        )
        geoms = shapely.from_wkt(texts, on_invalid="ignore")
        for i in np.flatnonzero(shapely.is_missing(geoms)):
            errors.setdefault(int(i), f"unparseable WKT in {wkt_col!r}")
        geometry_cols = {wkt_col}
    else:
        lon = np.full(n, np.nan)
        lat = np.full(n, np.nan)
        for i, r in enumerate(cells):
            try:
                lon[i] = float(r[index[lon_col]])
                lat[i] = float(r[index[lat_col]])
            except ValueError:
                errors.setdefault(
                    i,
                    f"{lon_col}/{lat_col} = {r[index[lon_col]]!r}/"
                    f"{r[index[lat_col]]!r} are not numbers",
                )
        ok = np.isfinite(lon) & np.isfinite(lat)
        geoms[ok] = shapely.points(lon[ok], lat[ok])
        geometry_cols = {lon_col, lat_col}
    columns = {
        name: np.array([r[k] if r[k] != "" else None for r in cells], dtype=object)
        for name, k in index.items()
        if name not in geometry_cols
    }
    # CSV has no CRS of its own: ``read_file`` applies --crs or assumes WGS84.
    batch = FeatureBatch(
        geoms, columns, crs=None, origin=path.name, row_numbers=np.arange(2, n + 2)
    )
    batch.errors = errors
    return batch
