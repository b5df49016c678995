"""Zonal statistics of rasters (rainfall, imperviousness) per river buffer.

Reads GeoTIFFs with rasterio through ``rasterstats`` (a maintained library);
buffers are built in metres in the database (geography) and handed over in
EPSG:4326, then reprojected to the raster's CRS when it differs.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, text

from gis_server.errors import IngestError

log = logging.getLogger("gis_server.models.water")


def river_buffers(engine: Engine, codes: np.ndarray, buffer_m: float) -> list:
    """Shapely buffers of the segments, in the order of ``codes`` (None if absent)."""
    from shapely import from_wkb

    with engine.connect() as conn:
        rows = dict(
            conn.execute(
                text("""
            SELECT DISTINCT ON (code) code,
                   ST_AsBinary(ST_Buffer(geom::geography, :m)::geometry)
            FROM layer_rivers WHERE code IS NOT NULL ORDER BY code, id"""),
                {"m": buffer_m},
            ).all()
        )
    return [from_wkb(bytes(rows[c])) if c in rows else None for c in codes]


def zonal_mean(
    raster: Path | str, zones: list, *, band: int = 1, scale: float = 1.0
) -> np.ndarray:
    """Mean of ``band`` over each zone (EPSG:4326 shapely geometries); NaN if none.

    ``scale`` multiplies the values (e.g. 0.01 for imperviousness stored in %).
    """
    import rasterio
    from pyproj import Transformer
    from rasterstats import zonal_stats
    from shapely.ops import transform

    path = Path(raster)
    if not path.exists():
        raise IngestError(f"raster {path} not found")
    with rasterio.open(path) as src:
        crs, nodata = src.crs, src.nodata
    geoms = zones
    if crs is not None and crs.to_epsg() != 4326:
        fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform
        geoms = [transform(fwd, g) if g is not None else None for g in zones]
    out = np.full(len(geoms), np.nan)
    present = [i for i, g in enumerate(geoms) if g is not None]
    with warnings.catch_warnings():
        # rasterstats still uses the affine ``*`` operator (deprecated upstream)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        stats = zonal_stats(
            [geoms[i] for i in present],
            str(path),
            band=band,
            stats=["mean"],
            all_touched=True,
            nodata=nodata if nodata is not None else np.nan,
        )
    for i, s in zip(present, stats, strict=True):
        if s["mean"] is not None:
            out[i] = s["mean"] * scale
    log.info(
        "zonal statistics",
        extra={
            "raster": path.name,
            "zones": len(present),
            "covered": int(np.isfinite(out).sum()),
        },
    )
    return out
