"""Real Sentinel-2 scenes (eo-learn example data) as GeoTIFFs.

Five L1C scenes over 1 km x 1 km in Slovenia (EPSG:32633, 10 m pixels, 101 rows x
100 columns), top-of-atmosphere reflectance 0..1 in the arrays. They are written as
uint16 DNs (reflectance x 10000, processing baseline 02.01: no offset), either as one
13-band GeoTIFF with ESA band names as descriptions, or as a folder of per-band files
with the 20 m and 60 m bands aggregated to their native resolution (mean of 2x2 or
6x6 blocks), the way ESA ships them.

The arrays ship with the tests in ``tests/data/eolearn-s2/eolearn-s2.npz`` (1.2 MB; its
README names the source commit, the licence and the Copernicus notice), so the real-scene
tests run on every checkout and in CI, never skipped for want of data.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from builder.raster.bands import BANDS

DATA = Path(__file__).resolve().parent / "eolearn-s2" / "eolearn-s2.npz"
# Scene k of REFERENCE_SCENES is acquisition ORDER[k] of eo-learn's 68 acquisitions (NDVI, CLM,
# CLP, CLOUD_COVERAGE); only those five acquisitions are kept, in scene order.
ORDER = (2, 1, 4, 3, 0)
NATIVE = {"B01": 60, "B05": 20, "B06": 20, "B07": 20, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20}
TAGS = {"PROCESSING_LEVEL": "Level-1C", "PROCESSING_BASELINE": "02.01"}
PER_ACQUISITION = ("NDVI", "CLM", "CLP", "CLOUD_COVERAGE")


@cache
def _arrays() -> dict[str, np.ndarray]:
    with np.load(DATA) as archive:
        arrays = {name: archive[name] for name in archive.files}
    for array in arrays.values():
        array.setflags(write=False)
    return arrays


class _Acquisitions:
    """eo-learn's per-acquisition arrays, indexed by acquisition number as in the original
    (``reference("CLM")[ORDER[k], ..., 0]``); only the five acquisitions of the scenes exist."""

    def __init__(self, name: str, rows: np.ndarray) -> None:
        self._name, self._rows = name, rows

    def __getitem__(self, key: object) -> np.ndarray:
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if not isinstance(first, int) or first not in ORDER:
            raise KeyError(f"{self._name}: only acquisitions {ORDER} are kept, not {first!r}")
        return self._rows[ORDER.index(first)][rest]


def scenes() -> np.ndarray:
    return _arrays()["scenes"]


def reference(name: str) -> np.ndarray | _Acquisitions:
    if name in PER_ACQUISITION:
        return _Acquisitions(name, _arrays()[name])
    return _arrays()[name]


def origin() -> tuple[float, float]:
    """Upper-left corner (minimum x, maximum y) of the patch's bounding box in EPSG:32633."""
    x, y = _arrays()["origin"]
    return float(x), float(y)


def _profile(width: int, height: int, res: float, count: int) -> dict[str, object]:
    from rasterio.transform import from_origin

    x, y = origin()
    return {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": "uint16",
        "crs": "EPSG:32633",
        "transform": from_origin(x, y, res, res),
        "nodata": 0,
    }


def dn(reflectance: np.ndarray) -> np.ndarray:
    return np.clip(np.round(reflectance * 10_000), 1, 65535).astype(np.uint16)


def write_multiband(k: int, path: Path) -> Path:
    import rasterio

    scene = scenes()[k]
    height, width, _ = scene.shape
    with rasterio.open(path, "w", **_profile(width, height, 10.0, len(BANDS))) as dst:
        for i, band in enumerate(BANDS, 1):
            dst.write(dn(scene[..., i - 1]), i)
            dst.set_band_description(i, band)
        dst.update_tags(**TAGS)
    return path


def write_band_folder(k: int, folder: Path) -> Path:
    """One file per band, 20 m and 60 m bands block-averaged to their native grid."""
    import rasterio

    scene = scenes()[k]
    folder.mkdir(parents=True, exist_ok=True)
    for i, band in enumerate(BANDS):
        values = scene[..., i]
        factor = NATIVE.get(band, 10) // 10
        if factor > 1:  # pad by the edge to whole blocks, as a coarser grid covers the finer one
            h, w = -(-values.shape[0] // factor) * factor, -(-values.shape[1] // factor) * factor
            values = np.pad(values, ((0, h - values.shape[0]), (0, w - values.shape[1])), mode="edge")
            values = values.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
        height, width = values.shape
        with rasterio.open(
            folder / f"T33TWM_20150711_{band}_{NATIVE.get(band, 10)}m.tif",
            "w",
            **_profile(width, height, 10.0 * factor, 1),
        ) as dst:
            dst.write(dn(values), 1)
            dst.update_tags(**TAGS)
    return folder


def write_l2a_copy(k: int, path: Path) -> Path:
    """Scene ``k`` as a Level-2A product would store it from processing baseline 04.00: DN =
    reflectance x 10000 + 1000 with ``BOA_ADD_OFFSET=-1000``, no B10 (L2A has no cirrus band) and
    no SCL. (The values are the L1C reflectance: what matters here is the offset and the bands.)"""
    import rasterio

    scene = scenes()[k]
    height, width, _ = scene.shape
    bands = [b for b in BANDS if b != "B10"]
    with rasterio.open(path, "w", **_profile(width, height, 10.0, len(bands))) as dst:
        for i, band in enumerate(bands, 1):
            dst.write(dn(scene[..., BANDS.index(band)] + 0.1), i)
            dst.set_band_description(i, band)
        dst.update_tags(PROCESSING_LEVEL="Level-2A", PROCESSING_BASELINE="05.10", BOA_ADD_OFFSET="-1000")
    return path
