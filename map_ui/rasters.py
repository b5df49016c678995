"""A registered raster as one coloured PNG for an image overlay."""

from __future__ import annotations

import warnings

import numpy as np
from sqlalchemy import Engine

from ingest.raster import raster_record

#: Colour ramp (low -> high) of raster overlays: light yellow to dark red.
RAMP = np.array([[255, 255, 178], [254, 204, 92], [253, 141, 60], [240, 59, 32],
                 [189, 0, 38]], dtype=float)


def colourise(data: np.ma.MaskedArray) -> np.ndarray:
    """RGBA (4, h, w) uint8 of band ``data``, 2nd-98th percentile stretched.

    Masked or non-finite cells, and cells at the minimum of a raster that is
    zero almost everywhere, are transparent.

    >>> out = colourise(np.ma.masked_invalid(np.array([[0.0, 1.0], [2.0, np.nan]])))
    >>> out.shape, int(out[3, 1, 1]), int(out[3, 0, 1])
    ((4, 2, 2), 0, 180)
    """
    values = np.ma.masked_invalid(np.ma.asarray(data, dtype=float))
    valid = values.compressed()
    rgba = np.zeros((4, *values.shape), dtype=np.uint8)
    if valid.size == 0:
        return rgba
    lo, hi = np.percentile(valid, [2, 98])
    if hi <= lo:
        hi = lo + 1.0
    scaled = np.clip((values.filled(lo) - lo) / (hi - lo), 0, 1) * (len(RAMP) - 1)
    low = np.floor(scaled).astype(int).clip(0, len(RAMP) - 2)
    frac = scaled - low
    for band in range(3):
        rgba[band] = (RAMP[low, band] * (1 - frac) + RAMP[low + 1, band] * frac
                      ).astype(np.uint8)
    shown = ~np.ma.getmaskarray(values) & (values.filled(lo) > lo)
    rgba[3] = np.where(shown, 180, 0).astype(np.uint8)
    return rgba


def raster_png(engine: Engine, name: str, max_px: int = 1024) -> bytes:
    """Raster ``name`` warped to Web Mercator, at most ``max_px`` wide, as PNG.

    Leaflet stretches an image overlay linearly in Web Mercator between its two
    corners, so the image is warped to EPSG:3857 first and lines up exactly.
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile
    from rasterio.vrt import WarpedVRT

    record = raster_record(engine, name)
    with rasterio.open(record["path"]) as src, WarpedVRT(
        src, crs="EPSG:3857", resampling=Resampling.bilinear
    ) as vrt:
        scale = max(vrt.width / max_px, vrt.height / max_px, 1.0)
        shape = (max(int(vrt.height / scale), 1), max(int(vrt.width / scale), 1))
        data = vrt.read(1, out_shape=shape, masked=True)
    rgba = colourise(data)
    with warnings.catch_warnings(), MemoryFile() as mem:
        # a PNG has no georeferencing; the page places it by its corners
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with mem.open(driver="PNG", width=shape[1], height=shape[0], count=4,
                      dtype="uint8") as dst:
            dst.write(rgba)
        return mem.read()
