"""Reading a site's window from an item's cloud-optimised GeoTIFFs over HTTP, with rasterio.

Only the window's pixels are read: GDAL's ``/vsicurl/`` reader fetches the COG's header and
then the internal tiles that overlap the window, with HTTP range requests (``tests/``
measures the bytes a collection reads against the files' sizes).

The window is the site's ``width_m`` x ``height_m`` metres centred on its point, on the grid
of the item's reference band (B04, 10 m). Every band is put on that grid as the project's
raster path does (:mod:`builder.raster.bands`): a band on the same grid is read as it is; a coarser
one (B05, SCL at 20 m) through a :class:`rasterio.vrt.WarpedVRT`, bilinear for reflectance,
nearest neighbour for the categorical SCL. DNs stay DNs (uint16, 0 = no data); the file
written for the corpus carries the item's offset as its ``BOA_ADD_OFFSET`` (or
``RADIO_ADD_OFFSET``) tag, so :func:`builder.raster.bands.read_bands` applies it as for any scene.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from builder.collect.remote import Remote
from builder.collect.stac import Candidate
from builder.raster.bands import CATEGORICAL

# GDAL settings for reading COGs over HTTP: no directory listing on open (one request saved per
# file), consecutive ranges merged into one request, one shared block cache; retries are
# Remote's (GDAL's own are off, so every retry is counted and paced in one place).
GDAL_ENV: Mapping[str, str] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_HTTP_MAX_RETRY": "0",
    "GDAL_HTTP_TIMEOUT": "60",
    "GDAL_HTTP_CONNECTTIMEOUT": "20",
    "VSI_CACHE": "TRUE",
}


class BandError(ValueError):
    """An asset that is not a band this reader can use (the message is the skip reason)."""


@dataclass(frozen=True)
class Grid:
    """The site's window on the reference band's grid."""

    crs: Any
    transform: Any  # affine.Affine
    width: int
    height: int


def _env() -> Any:
    import rasterio

    return rasterio.Env(**GDAL_ENV)


def site_grid(
    remote: Remote, candidate: Candidate, lon: float, lat: float, size_m: tuple[float, float]
) -> Grid:
    """The grid of the site's window: its centre on the reference band's pixel grid."""
    import rasterio
    from rasterio.warp import transform as warp_transform
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    href = candidate.hrefs["B04"]

    def opened() -> tuple[Any, Any]:
        with _env(), rasterio.open(href) as src:
            return src.crs, src.transform

    crs, transform = remote.call(f"B04 of {candidate.item_id}", opened)
    if crs is None or transform.is_identity:
        raise BandError(f"B04 of {candidate.item_id} has no georeferencing")
    xs, ys = warp_transform("EPSG:4326", crs, [lon], [lat])
    res_x, res_y = abs(transform.a), abs(transform.e)
    width, height = round(size_m[0] / res_x), round(size_m[1] / res_y)
    col = round((xs[0] - transform.c) / transform.a - width / 2)
    row = round((ys[0] - transform.f) / transform.e - height / 2)
    window = Window(col, row, width, height)
    return Grid(crs, window_transform(window, transform), width, height)


def read_band(remote: Remote, candidate: Candidate, band: str, grid: Grid) -> np.ndarray:
    """``band`` of the candidate on ``grid`` as uint16 DNs (SCL classes), 0 where there is no data."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import from_bounds

    href = candidate.hrefs[band]
    categorical = band in CATEGORICAL

    def read() -> np.ndarray:
        with _env(), rasterio.open(href) as src:
            dtype = np.dtype(src.dtypes[0])
            if dtype.kind not in "u" or dtype.itemsize > 2:
                raise BandError(f"{band} of {candidate.item_id} holds {dtype}, not uint8/uint16 DNs")
            declared = src.nodata
            nodata = 0 if declared is None or not np.isfinite(declared) else int(declared)
            left, top = grid.transform.c, grid.transform.f
            right = left + grid.width * grid.transform.a
            bottom = top + grid.height * grid.transform.e
            window = from_bounds(left, bottom, right, top, transform=src.transform)
            aligned = (
                src.crs == grid.crs
                and abs(src.transform.a - grid.transform.a) < 1e-9
                and abs(src.transform.e - grid.transform.e) < 1e-9
                and abs(window.col_off - round(window.col_off)) < 1e-6
                and abs(window.row_off - round(window.row_off)) < 1e-6
            )
            if aligned:
                window = window.round_offsets().round_lengths()
                raw = src.read(1, window=window, boundless=True, fill_value=nodata)
            else:
                method = Resampling.nearest if categorical else Resampling.bilinear
                with WarpedVRT(
                    src,
                    crs=grid.crs,
                    transform=grid.transform,
                    width=grid.width,
                    height=grid.height,
                    resampling=method,
                    src_nodata=nodata,
                    nodata=nodata,
                ) as vrt:
                    raw = vrt.read(1)
            out: np.ndarray = raw.astype(np.uint16)
            if nodata != 0:
                out[raw == nodata] = 0
            return out

    return remote.call(f"{band} of {candidate.item_id}", read)


def read_bands(
    remote: Remote, candidate: Candidate, bands: Sequence[str], grid: Grid
) -> dict[str, np.ndarray]:
    return {band: read_band(remote, candidate, band, grid) for band in bands if band in candidate.hrefs}


def write_bands(
    path: Path, candidate: Candidate, grid: Grid, data: Mapping[str, np.ndarray], offset: int
) -> Path:
    """The window's DNs as one GeoTIFF with ESA band names, the level and the offset tag, written
    to a temporary name and renamed into place (so a killed collection leaves no half file)."""
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(data)
    level = "Level-2A" if candidate.level == "L2A" else "Level-1C"
    tags = {
        "PROCESSING_LEVEL": level,
        ("BOA_ADD_OFFSET" if candidate.level == "L2A" else "RADIO_ADD_OFFSET"): str(offset),
    }
    if candidate.scene_cloud is not None:
        # The granule's own cloud percentage: the build records it, never uses it as the tile's.
        tags["CLOUDY_PIXEL_PERCENTAGE"] = f"{candidate.scene_cloud:g}"
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with rasterio.open(
            temp,
            "w",
            driver="GTiff",
            width=grid.width,
            height=grid.height,
            count=len(names),
            dtype="uint16",
            crs=grid.crs,
            transform=grid.transform,
            nodata=0,
            compress="deflate",
        ) as dst:
            for index, band in enumerate(names, 1):
                dst.write(data[band], index)
                dst.set_band_description(index, band)
            dst.update_tags(**tags)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path
