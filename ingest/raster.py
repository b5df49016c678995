"""Raster layers: register a GeoTIFF by name, read windows from it later.

Registration records what rasterio says of the file -- CRS, size, bands,
data types, nodata, resolution, bounds, and its footprint in WGS84 -- and by
default copies the file into the server's raster folder so that moving or
deleting the original loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy import Engine, text

from gis_server.errors import IngestError, InvalidParameter, NotFound
from ingest.crs import normalise_crs

log = logging.getLogger("gis_server.ingest")

RASTER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
#: Points per footprint edge when reprojecting bounds (curved in lon/lat).
FOOTPRINT_DENSIFY = 21


@dataclass
class RasterInfo:
    name: str
    path: Path
    crs: str | None
    width: int
    height: int
    band_count: int
    dtypes: list[str]
    nodata: float | None
    res: tuple[float, float]
    bounds: tuple[float, float, float, float]
    footprint: shapely.Polygon | None
    sha256: str

    def summary(self) -> str:
        return (
            f"raster {self.name}: {self.width}x{self.height}, "
            f"{self.band_count} band(s) "
            f"{'/'.join(sorted(set(self.dtypes)))}, {self.crs}, "
            f"res {self.res[0]:g}x{self.res[1]:g}, nodata {self.nodata}"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def inspect_raster(name: str, path: Path, crs: str | None = None) -> RasterInfo:
    """Open ``path`` with rasterio and describe it (nothing is written)."""
    import rasterio
    from rasterio.errors import RasterioIOError
    from rasterio.warp import transform as warp_transform

    if not RASTER_NAME.match(name):
        raise InvalidParameter(
            f"raster name {name!r}: use lower-case letters, digits and _ "
            "(starting with a letter)"
        )
    if not path.exists():
        raise IngestError(f"no such file: {path}")
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise IngestError(
            f"{path.name} is not a raster rasterio can read: {exc}"
        ) from exc
    with src:
        user_crs = normalise_crs(crs)
        if user_crs == "gcj02":
            raise InvalidParameter("GCJ-02 rasters are not supported: warp them first")
        src_crs = user_crs or (src.crs.to_string() if src.crs else None)
        footprint = None
        if src_crs:
            left, bottom, right, top = src.bounds
            t = np.linspace(0.0, 1.0, FOOTPRINT_DENSIFY)
            xs = np.concatenate(
                [
                    left + (right - left) * t,
                    np.full_like(t, right),
                    right - (right - left) * t,
                    np.full_like(t, left),
                ]
            )
            ys = np.concatenate(
                [
                    np.full_like(t, bottom),
                    bottom + (top - bottom) * t,
                    np.full_like(t, top),
                    top - (top - bottom) * t,
                ]
            )
            lon, lat = warp_transform(src_crs, "EPSG:4326", xs.tolist(), ys.tolist())
            footprint = shapely.Polygon(zip(lon, lat, strict=True))
            if not footprint.is_valid:
                footprint = shapely.make_valid(footprint).convex_hull
        return RasterInfo(
            name=name,
            path=path.resolve(),
            crs=src_crs,
            width=src.width,
            height=src.height,
            band_count=src.count,
            dtypes=list(src.dtypes),
            nodata=src.nodata,
            res=(abs(src.res[0]), abs(src.res[1])),
            bounds=tuple(src.bounds),
            footprint=footprint,
            sha256=_sha256(path),
        )


def register_raster(
    engine: Engine,
    name: str,
    path: str | Path,
    *,
    raster_dir: Path,
    crs: str | None = None,
    in_place: bool = False,
) -> RasterInfo:
    """Record a GeoTIFF as raster layer ``name`` (replacing one of that name)."""
    path = Path(path)
    info = inspect_raster(name, path, crs)
    if info.crs is None:
        raise IngestError(f"{path.name} has no CRS: pass --crs")
    stored = info.path
    if not in_place:
        raster_dir.mkdir(parents=True, exist_ok=True)
        stored = (raster_dir / f"{name}{path.suffix.lower() or '.tif'}").resolve()
        if stored != info.path:
            shutil.copyfile(info.path, stored)
    with engine.begin() as conn:
        conn.execute(
            text("""
            INSERT INTO raster_layers (name, path, original_path, crs, width, height,
                band_count, dtypes, nodata, res_x, res_y, bounds_native, footprint,
                sha256, registered_at)
            VALUES (:name, :path, :original, :crs, :width, :height, :bands,
                CAST(:dtypes AS jsonb), :nodata, :res_x, :res_y, CAST(:bounds AS jsonb),
                ST_GeomFromText(:footprint, 4326), :sha256, now())
            ON CONFLICT (name) DO UPDATE SET path = EXCLUDED.path,
                original_path = EXCLUDED.original_path, crs = EXCLUDED.crs,
                width = EXCLUDED.width, height = EXCLUDED.height,
                band_count = EXCLUDED.band_count, dtypes = EXCLUDED.dtypes,
                nodata = EXCLUDED.nodata, res_x = EXCLUDED.res_x,
                res_y = EXCLUDED.res_y, bounds_native = EXCLUDED.bounds_native,
                footprint = EXCLUDED.footprint, sha256 = EXCLUDED.sha256,
                registered_at = now()
        """),
            {
                "name": name,
                "path": str(stored),
                "original": str(info.path),
                "crs": info.crs,
                "width": info.width,
                "height": info.height,
                "bands": info.band_count,
                "dtypes": json.dumps(info.dtypes),
                "nodata": info.nodata,
                "res_x": info.res[0],
                "res_y": info.res[1],
                "bounds": json.dumps(list(info.bounds)),
                "footprint": info.footprint.wkt if info.footprint is not None else None,
                "sha256": info.sha256,
            },
        )
    log.info("raster registered", extra={"raster": name, "path": str(stored)})
    info.path = stored
    return info


def raster_record(engine: Engine, name: str) -> dict[str, Any]:
    """The registry row of raster layer ``name``; raises :class:`NotFound`."""
    with engine.connect() as conn:
        row = (
            conn.execute(
                text(
                    "SELECT *, ST_AsText(footprint) AS footprint_wkt "
                    "FROM raster_layers "
                    "WHERE name = :name"
                ),
                {"name": name},
            )
            .mappings()
            .first()
        )
    if row is None:
        raise NotFound(f"no raster layer named {name!r}")
    return dict(row)


def read_window(
    engine: Engine, name: str, bbox: tuple[float, float, float, float], band: int = 1
) -> tuple[np.ma.MaskedArray, Any]:
    """Read the part of raster ``name`` covering a WGS84 ``bbox``.

    Returns a masked array (nodata masked) and the window's affine transform,
    for zonal statistics and map overlays.
    """
    import rasterio
    from rasterio.warp import transform_bounds
    from rasterio.windows import from_bounds

    record = raster_record(engine, name)
    with rasterio.open(record["path"]) as src:
        if not 1 <= band <= src.count:
            raise InvalidParameter(f"raster {name} has bands 1..{src.count}")
        native = transform_bounds(
            "EPSG:4326", src.crs or record["crs"], *bbox, densify_pts=FOOTPRINT_DENSIFY
        )
        window = (
            from_bounds(*native, transform=src.transform)
            .round_offsets()
            .round_lengths()
        )
        window = window.intersection(
            rasterio.windows.Window(0, 0, src.width, src.height)
        )
        data = src.read(band, window=window, masked=True)
        return data, src.window_transform(window)
