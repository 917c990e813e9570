"""Raw Sentinel-2 bands to reflectance on the 10 m grid, and the false-colour composite.

Input is either one multi-band GeoTIFF/COG whose bands carry ESA band names as
descriptions (``B02``, ``B8A``, ``SCL``, ...), or a folder with one file per band
whose names contain the band name (``B04.tif``, ``T33TWM_20200611_B05_20m.tif``).

Reading puts every band on the 10 m grid of the scene's reference band (B04, else
B08, else the finest band): continuous bands through a bilinear warp
(:class:`rasterio.vrt.WarpedVRT`), categorical ones (``SCL``) with nearest
neighbour only. DN 0 and a band's declared no-data value (65535, -9999, ...) are
no-data. Integer DNs become reflectance as ``(DN + offset) / 10000``; the offset
(``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET``, -1000 from processing baseline 04.00)
comes from the scene's tags or an explicit option, and what was done is returned in
:class:`ReadInfo` for the private report. Float input is taken as reflectance
already.

Reading refuses, with one line naming the likely cause and the fix:

- a window with a negative or zero size, inverted or non-finite bounds, or a window
  outside the raster;
- a window smaller than :data:`MIN_WINDOW_PX` pixels on a side (the 256x512 tile
  would enlarge it more than 4x across and 8x down, and the gates would measure a
  handful of pixels), unless the caller allows it;
- implausible reflectance: a median of B08, B04 or B05 outside
  :data:`PLAUSIBLE_MEDIAN` after the offset. A negative median is the mark of DNs
  already harmonised but still tagged with ``BOA_ADD_OFFSET`` (the offset applied
  twice: every red value negative, NDVI above 1); a median above 1.5 is the mark of
  float DNs (0..10000) written as if they were reflectance.

Side rasters (a cloud mask, a land-cover map) are warped onto the bands' grid with
nearest neighbour only (:func:`read_side`); the share of the window they cover with
valid pixels (inside their footprint, not their declared no-data) is measured, and a
raster that covers less than the caller's minimum share is refused: a mask of another
place must not read as "0 % cloud".

The composite is RGB = B08/B04/B05 with a per-band 2-98 % percentile stretch over
the valid pixels (:func:`stretch`), resized to the 256x512 Sentinel-2 half.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from builder.domain import COMPOSITE_BANDS
from builder.errors import CropmarkError
from builder.figures import pct

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
CATEGORICAL = frozenset({"SCL"})
ALL_BANDS = (*BANDS, "SCL")
STRETCH_PERCENTILES = (2.0, 98.0)
SCALE = 10_000.0
NEW_BASELINE_OFFSET = -1000  # BOA_ADD_OFFSET / RADIO_ADD_OFFSET from processing baseline 04.00
# An offset outside this range cannot be Sentinel-2's: DNs are 0..65535 for reflectance x 10000, and
# ESA's offsets are 0 and -1000. A larger one (a tag "1e300") would turn every value into no data.
OFFSET_RANGE = (-10_000, 10_000)
INTEGER_DN = (np.dtype("uint16"), np.dtype("int16"), np.dtype("uint32"), np.dtype("int32"))
# The smallest window (pixels on each side at 10 m) that becomes a tile without an explicit
# allowance: 64 px is a quarter of the tile's width; smaller windows are enlarged beyond 4x / 8x.
MIN_WINDOW_PX = 64
# Median reflectance of each composite band must lie in here (after the offset): below 0 means
# the offset was applied to DNs already harmonised; above 1.5 means DNs taken as reflectance
# (top-of-atmosphere reflectance of bright cloud and snow stays near or below 1.0).
PLAUSIBLE_MEDIAN = (0.0, 1.5)
# Class 0 is "no data" in ESA WorldCover and in eo-learn's LULC: a land-cover raster whose window
# holds it is missing land cover there, not a class (a map of zeros must not read as "0 % cropland").
LANDCOVER_NODATA = (0,)
_BAND_IN_NAME = re.compile(r"(?<![A-Za-z0-9])(B0[1-9]|B1[0-2]|B8A|SCL)(?![A-Za-z0-9])", re.I)


class RasterError(CropmarkError, ValueError):
    """Bands that cannot be read as a Sentinel-2 scene; the message names the file and the fix."""


@dataclass(frozen=True)
class ReadInfo:
    """What reading did, for the private report."""

    source: str
    level: str  # "L2A", "L1C" or "unknown"
    offset: int  # added to DNs before / 10000 (0 for float reflectance)
    offset_from: (
        str  # "metadata BOA_ADD_OFFSET", "processing baseline 04.00", "option", "float reflectance", ...
    )
    crs: str
    shape: tuple[int, int]
    resampled: tuple[str, ...]  # bands warped onto the 10 m grid
    tags: dict[str, str]


@dataclass(frozen=True)
class Bands:
    """Reflectance (float32, NaN = no-data) per band on one 10 m grid; SCL as uint8 classes."""

    data: dict[str, np.ndarray]
    transform: Any  # affine.Affine
    crs: Any  # rasterio CRS
    info: ReadInfo

    def __getitem__(self, band: str) -> np.ndarray:
        return self.data[band]

    def __contains__(self, band: object) -> bool:
        return band in self.data


def _band_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".tif", ".tiff", ".jp2", ".vrt"):
            continue
        found = {m.upper() for m in _BAND_IN_NAME.findall(path.stem)}
        if len(found) == 1:
            band = found.pop()
            if band in files:
                raise RasterError(
                    f"{folder}: two files for {band} ({files[band].name}, {path.name}); keep one"
                )
            files[band] = path
    return files


def _open(path: Path) -> Any:
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with warnings.catch_warnings():  # we check georeferencing ourselves, with a clearer message
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioIOError as exc:
        raise RasterError(
            f"{path}: not a readable raster ({str(exc).splitlines()[0]}); re-download it"
        ) from None


def _check_georef(src: Any, path: Path) -> None:
    if src.crs is None or src.transform.is_identity:
        raise RasterError(
            f"{path}: no georeferencing (CRS or transform missing); write the scene as a GeoTIFF with its CRS"
        )


def _offset(tags: Mapping[str, str], level: str, option: int | None, path: Path) -> tuple[int, str]:
    low, high = OFFSET_RANGE
    if option is not None:
        if not low <= option <= high:
            raise RasterError(
                f"offset {option}: a Sentinel-2 DN offset lies from {low} to {high} "
                "(-1000 from processing baseline 04.00, else 0); pass --boa-offset -1000 or 0"
            )
        return option, "option"
    for key in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET"):
        if key in tags:
            try:
                value = float(tags[key])
            except ValueError:
                value = math.nan
            if not (math.isfinite(value) and value == int(value) and low <= value <= high):
                raise RasterError(
                    f"{path}: {key}={tags[key][:40]!r} is not a whole number from {low} to {high}; "
                    "pass --boa-offset -1000 (processing baseline 04.00 or later) or --boa-offset 0"
                )
            return int(value), f"metadata {key}"
    if "PROCESSING_BASELINE" in tags:
        try:
            baseline = float(tags["PROCESSING_BASELINE"])
            if not math.isfinite(baseline):
                raise ValueError(baseline)
        except ValueError:
            raise RasterError(
                f"{path}: PROCESSING_BASELINE={tags['PROCESSING_BASELINE']!r} is not a number; "
                "pass --boa-offset"
            ) from None
        if baseline >= 4.0:
            return NEW_BASELINE_OFFSET, f"processing baseline {tags['PROCESSING_BASELINE']}"
        return 0, f"processing baseline {tags['PROCESSING_BASELINE']}"
    raise RasterError(
        f"{path}: integer DNs with no BOA_ADD_OFFSET, RADIO_ADD_OFFSET or PROCESSING_BASELINE tag; "
        "pass --boa-offset -1000 (processing baseline 04.00 or later, products from 2022-01-25 on) "
        "or --boa-offset 0"
    )


def _level(tags: Mapping[str, str], bands: Iterable[str]) -> str:
    text = " ".join(tags.get(k, "") for k in ("PROCESSING_LEVEL", "PRODUCT_TYPE", "LEVEL")).upper()
    if "2A" in text or "SCL" in bands:
        return "L2A"
    if "1C" in text:
        return "L1C"
    return "unknown"


def read_bands(
    path: Path,
    bands: Sequence[str] = ALL_BANDS,
    *,
    bounds: tuple[float, float, float, float] | None = None,
    box: tuple[int, int, int, int] | None = None,
    offset: int | None = None,
    required: Sequence[str] = COMPOSITE_BANDS,
    min_window: int = MIN_WINDOW_PX,
) -> Bands:
    """Read ``bands`` (those present) of the scene at ``path`` onto its 10 m grid.

    Args:
        path: a multi-band GeoTIFF with band descriptions, or a folder of per-band files.
        bands: bands to read if present; ``required`` ones must be present.
        bounds: window in the scene's CRS (left, bottom, right, top); or
        box: window in pixels of the 10 m grid (col_off, row_off, width, height).
        offset: DN offset to apply; ``None`` reads it from the scene's tags.
        min_window: the smallest width and height in pixels accepted (1 allows any).

    Raises:
        RasterError: the scene, the window or its values cannot make a tile (one line).
    """
    from rasterio.windows import transform as window_transform

    if not path.exists():
        raise RasterError(f"{path} does not exist; pass a GeoTIFF or a folder of per-band files")
    opened: dict[Path, Any] = {}
    try:
        sources = _find_sources(path, opened)
        _check_required(path, sources, required)
        for file, src in opened.items():
            _check_georef(src, file)
        tags = _scene_tags(opened)
        ref = _reference_grid(sources, opened)
        window = _window(path, ref, bounds, box, min_window)
        grid = _Grid(ref, window, window_transform(window, ref.transform))
        floats = _reads_floats(path, sources, opened)
        level = _level(tags, sources)
        add, offset_from = (0, "float reflectance") if floats else _offset(tags, level, offset, path)
        data: dict[str, np.ndarray] = {}
        resampled: list[str] = []
        for band in (b for b in bands if b in sources):
            file, index = sources[band]
            raw, warped, nodata = _read_raw(opened[file], index, band in CATEGORICAL, grid, floats)
            if warped:
                resampled.append(band)
            data[band] = _values(raw, band, nodata, floats, add)
    finally:
        for src in opened.values():
            src.close()
    if all(np.isnan(data[b]).all() for b in required):
        raise RasterError(
            f"{path}: every pixel of {', '.join(required)} in the window is no-data "
            "(DN 0, the declared no-data value or NaN)"
        )
    _check_plausible(path, data, required, add, offset_from, floats)
    shape = (int(window.height), int(window.width))
    info = ReadInfo(str(path), level, add, offset_from, str(ref.crs), shape, tuple(resampled), tags)
    return Bands(data, grid.transform, ref.crs, info)


@dataclass(frozen=True)
class _Grid:
    """The reference grid of a read: its dataset, the window read, and the window's transform."""

    ref: Any  # the rasterio dataset of the finest band
    window: Any  # rasterio.windows.Window
    transform: Any  # affine.Affine of the window


def _find_sources(path: Path, opened: dict[Path, Any]) -> dict[str, tuple[Path, int]]:
    """Band name -> (file, band index) of a per-band folder or a described GeoTIFF.

    Every file opened is put in ``opened`` (the caller closes them, also on an error).
    """
    sources: dict[str, tuple[Path, int]] = {}
    if path.is_dir():
        for band, file in _band_files(path).items():
            src = opened[file] = _open(file)
            if src.count != 1:
                raise RasterError(f"{file}: {src.count} bands in a per-band file; expected 1")
            sources[band] = (file, 1)
        return sources
    src = opened[path] = _open(path)
    names = [(d or "").strip().upper() for d in src.descriptions]
    if not any(names):
        raise RasterError(
            f"{path}: {src.count} bands without descriptions; name each band (B02, B04, B08, ...) "
            "in the GeoTIFF band descriptions, or pass a folder of per-band files"
        )
    for index, name in enumerate(names, 1):
        if name in ALL_BANDS:
            sources[name] = (path, index)
    return sources


def _check_required(path: Path, sources: Mapping[str, tuple[Path, int]], required: Sequence[str]) -> None:
    missing = [b for b in required if b not in sources]
    if missing:
        raise RasterError(
            f"{path}: missing band(s) {', '.join(missing)}; the composite needs B08, B04 and B05"
        )


def _scene_tags(opened: Mapping[Path, Any]) -> dict[str, str]:
    """The metadata tags of every file, upper-cased keys (a later file's tag wins)."""
    tags: dict[str, str] = {}
    for src in opened.values():
        tags.update({k.upper(): str(v) for k, v in src.tags().items()})
    return tags


def _reference_grid(sources: Mapping[str, tuple[Path, int]], opened: Mapping[Path, Any]) -> Any:
    """The finest band's dataset (B04 first); every band must share its CRS and extent."""
    ref_band = min(
        sources, key=lambda b: (abs(opened[sources[b][0]].res[0]), b not in ("B04", "B08"), b != "B04")
    )
    ref = opened[sources[ref_band][0]]
    for band, (file, _) in sources.items():
        src = opened[file]
        if src.crs != ref.crs:
            raise RasterError(
                f"{file}: {band} is in {src.crs}, {ref_band} in {ref.crs}; reproject all bands to one CRS"
            )
        if not _same_extent(src, ref):
            raise RasterError(
                f"{file}: {band}'s grid does not line up with {ref_band}'s "
                f"(bounds {tuple(src.bounds)} vs {tuple(ref.bounds)}); use bands of one tile"
            )
    return ref


def _reads_floats(path: Path, sources: Mapping[str, tuple[Path, int]], opened: Mapping[Path, Any]) -> bool:
    """Whether the reflectance bands are float reflectance (else integer DNs); refuses a mix."""
    dtypes = {np.dtype(opened[f].dtypes[i - 1]) for b, (f, i) in sources.items() if b not in CATEGORICAL}
    floats = all(d.kind == "f" for d in dtypes)
    bad = [d for d in dtypes if d.kind != "f" and d not in INTEGER_DN]
    if bad:
        raise RasterError(
            f"{path}: band type {bad[0]} cannot hold Sentinel-2 reflectance; "
            "expected uint16 DNs or float reflectance"
        )
    if not floats and any(d.kind == "f" for d in dtypes):
        raise RasterError(f"{path}: some bands are float, some integer; use one kind for all bands")
    return floats


def _read_raw(
    src: Any, index: int, categorical: bool, grid: _Grid, floats: bool
) -> tuple[np.ndarray, bool, float | None]:
    """One band's raw values in the window, warped onto the grid when its own differs.

    Returns the values, whether they were resampled, and the band's declared no-data value.
    """
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    declared = src.nodatavals[index - 1]
    nodata = None if declared is None or np.isnan(declared) else float(declared)
    ref = grid.ref
    if src.res == ref.res and src.transform == ref.transform:
        return src.read(index, window=grid.window), False, nodata
    fill = nodata if nodata is not None else (None if floats else 0)
    with WarpedVRT(
        src,
        crs=ref.crs,
        transform=grid.transform,
        width=int(grid.window.width),
        height=int(grid.window.height),
        resampling=Resampling.nearest if categorical else Resampling.bilinear,
        src_nodata=fill,
        nodata=fill,
    ) as vrt:
        return vrt.read(index), True, nodata


def _values(raw: np.ndarray, band: str, nodata: float | None, floats: bool, add: int) -> np.ndarray:
    """Reflectance (float32, NaN = no-data) of a band's raw values; SCL as uint8 classes."""
    if band in CATEGORICAL:
        return raw.astype(np.uint8)
    if floats:
        values = raw.astype(np.float32)
        values[~np.isfinite(values)] = np.nan
        values[values == 0] = np.nan
    else:
        values = (raw.astype(np.float32) + add) / SCALE
        values[raw == 0] = np.nan
    if nodata is not None:
        values[raw == nodata] = np.nan
    return values


def _window(
    path: Path,
    ref: Any,
    bounds: tuple[float, float, float, float] | None,
    box: tuple[int, int, int, int] | None,
    min_window: int,
) -> Any:
    """The pixel window of the reference grid, or a one-line error that says how to fix it."""
    from rasterio.errors import WindowError
    from rasterio.windows import Window, from_bounds

    if box is not None and bounds is not None:
        raise RasterError("pass a window by bounds or by pixel box, not both")
    if bounds is not None:
        left, bottom, right, top = bounds
        if not all(np.isfinite(v) for v in bounds):
            raise RasterError(f"bounds {tuple(bounds)} hold a non-finite number; pass LEFT BOTTOM RIGHT TOP")
        if left >= right or bottom >= top:
            raise RasterError(
                f"bounds {tuple(bounds)} are inverted or empty: LEFT must be less than RIGHT and BOTTOM "
                "less than TOP (the order is LEFT BOTTOM RIGHT TOP, in the scene's CRS)"
            )
        try:
            window = from_bounds(*bounds, transform=ref.transform).round_offsets().round_lengths()
        except WindowError as exc:
            raise RasterError(f"bounds {tuple(bounds)}: {exc}; pass LEFT BOTTOM RIGHT TOP") from None
        if window.width < 1 or window.height < 1:
            res = abs(ref.res[0])
            raise RasterError(
                f"bounds {tuple(bounds)} are {right - left:g} x {top - bottom:g} in the scene's units: less "
                f"than one {res:g}-unit pixel across, so no pixel can be read; pass a larger window"
            )
    elif box is not None:
        col, row, width, height = box
        if width <= 0 or height <= 0 or col < 0 or row < 0:
            raise RasterError(
                f"box {tuple(box)}: WIDTH and HEIGHT must be positive and COL, ROW 0 or more "
                "(the order is COL ROW WIDTH HEIGHT, in pixels of the 10 m grid)"
            )
        window = Window(col, row, width, height)
    else:
        window = Window(0, 0, ref.width, ref.height)
    if (
        window.width <= 0
        or window.height <= 0
        or window.col_off < 0
        or window.row_off < 0
        or window.col_off + window.width > ref.width
        or window.row_off + window.height > ref.height
    ):
        raise RasterError(
            f"{path}: window {_box(window)} lies (partly) outside the raster "
            f"(0, 0, {ref.width}, {ref.height}); choose a window inside it"
        )
    if min(window.width, window.height) < min_window:
        raise RasterError(
            f"{path}: window {int(window.width)}x{int(window.height)} px is smaller than the minimum "
            f"{min_window}x{min_window} px (the 256x512 tile would enlarge it "
            f"{max(256 / window.width, 512 / window.height):.0f}x); read a larger window, or pass "
            "--allow-small-window to `cropmark composite`"
        )
    return window


def _check_plausible(
    path: Path, data: dict[str, np.ndarray], required: Sequence[str], add: int, offset_from: str, floats: bool
) -> None:
    """Refuse reflectance whose median says the scale or the offset is wrong (see PLAUSIBLE_MEDIAN)."""
    low, high = PLAUSIBLE_MEDIAN
    for band in required:
        finite = data[band][np.isfinite(data[band])]
        if finite.size == 0:
            continue
        median = float(np.median(finite))
        if median < low and not floats:
            raise RasterError(
                f"{path}: median {band} reflectance is {median:.3f} after adding the offset {add} "
                f"({offset_from}): the DNs look already harmonised (offset applied twice); "
                "pass --boa-offset 0, or set the scene's BOA_ADD_OFFSET tag to 0"
            )
        if median < low:
            raise RasterError(
                f"{path}: median {band} value is {median:.3f}: negative, not reflectance; "
                "write reflectance 0..1 as float, or DNs as uint16"
            )
        if median > high and floats:
            raise RasterError(
                f"{path}: median {band} value is {median:.1f}: float DNs (0..10000), not reflectance "
                "(0..1); divide by 10000, or write the DNs as uint16 with their offset tag"
            )
        if median > high:
            raise RasterError(
                f"{path}: median {band} reflectance is {median:.2f} after (DN + {add}) / 10000: "
                "not Sentinel-2 DNs (reflectance x 10000); write the product's DNs unscaled"
            )


def _below(share: float) -> str:
    """A measured share rounded down to 0.1 %, so that a share just under a threshold never
    reads as the threshold itself (89.96 % is "89.9%", not "90%")."""
    tenths = math.floor(share * 1000 + 1e-9) / 10
    return f"{tenths:g}%"


def _box(window: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in (window.col_off, window.row_off, window.width, window.height))


def _same_extent(src: Any, ref: Any) -> bool:
    """Same upper-left corner (within half a pixel of the coarser grid) and same extent
    within one coarse pixel (a 60 m grid cannot end exactly where a 10 m grid does)."""
    coarse = max(abs(src.res[0]), abs(ref.res[0]))
    corner = (
        abs(src.bounds.left - ref.bounds.left) <= coarse / 2
        and abs(src.bounds.top - ref.bounds.top) <= coarse / 2
    )
    extent = (
        abs(src.bounds.right - ref.bounds.right) < coarse
        and abs(src.bounds.bottom - ref.bounds.bottom) < coarse
    )
    return bool(corner and extent)


def stretch(values: np.ndarray, percentiles: tuple[float, float] = STRETCH_PERCENTILES) -> np.ndarray:
    """Linear stretch of the valid (finite) values between two percentiles to 0..255; NaN -> 0."""
    valid = values[np.isfinite(values)]
    out = np.zeros(values.shape, dtype=np.uint8)
    if valid.size == 0:
        return out
    low, high = np.percentile(valid, percentiles)
    if high <= low:
        high = low + 1e-6
    with np.errstate(invalid="ignore"):
        scaled = np.clip((values - low) / (high - low), 0.0, 1.0) * 254.0 + 1.0  # 1..255: valid is never 0
    finite = np.isfinite(values)
    out[finite] = np.round(scaled[finite]).astype(np.uint8)
    return out


def false_colour(bands: Bands) -> np.ndarray:
    """H x W x 3 uint8: R = B08, G = B04, B = B05, each stretched on its own; no-data is black."""
    return np.dstack([stretch(bands[b]) for b in COMPOSITE_BANDS])


def s2_half(rgb: np.ndarray, size: tuple[int, int] = (256, 512)) -> Image.Image:
    """The false colour resized (bilinear) to the published half's size (width, height)."""
    image = Image.fromarray(rgb, mode="RGB")
    return image if image.size == size else image.resize(size, Image.Resampling.BILINEAR)


def composite(s2: Image.Image, context: Image.Image | None) -> Image.Image:
    """The 512x512 training composite: S2 half left, context half (or black) right."""
    out = Image.new("RGB", (s2.width * 2, s2.height))
    out.paste(s2, (0, 0))
    if context is not None:
        out.paste(context.convert("RGB").resize(s2.size, Image.Resampling.BILINEAR), (s2.width, 0))
    return out


def read_side(
    path: Path,
    what: str,
    like: Bands | None = None,
    min_coverage: float = 0.0,
    nodata_classes: tuple[int, ...] = (),
) -> np.ma.MaskedArray:
    """A categorical raster (cloud mask, land cover): its classes, masked where there is no data.

    With ``like``, the raster is warped onto the bands' grid with nearest neighbour only;
    pixels outside its footprint and pixels of its declared no-data value are masked.
    Without, it is read on its own grid (the composite's footprint), declared no-data masked.
    Pixels of ``nodata_classes`` are no data too (land cover: :data:`LANDCOVER_NODATA`), and
    count against the coverage like pixels outside the footprint.

    Raises:
        RasterError: unreadable, not georeferenced, not one band of integer classes, or
            valid over less than ``min_coverage`` of the window (one line, naming the file).
    """
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioError
    from rasterio.vrt import WarpedVRT

    if not path.is_file():
        raise RasterError(f"{path} does not exist; pass the {what} as a GeoTIFF")
    with _open(path) as src:
        _check_georef(src, path)
        if src.count != 1:
            raise RasterError(f"{path}: the {what} has {src.count} bands; it must have one band of classes")
        if np.dtype(src.dtypes[0]).kind not in "iu":
            raise RasterError(
                f"{path}: the {what} holds {src.dtypes[0]} values; it must hold integer classes"
            )
        try:
            if like is None:
                values, valid = src.read(1), src.read_masks(1) > 0
            else:
                height, width = like.info.shape
                # The alpha band is 0 outside the raster's footprint and on its declared no-data.
                with WarpedVRT(
                    src,
                    crs=like.crs,
                    transform=like.transform,
                    width=width,
                    height=height,
                    resampling=Resampling.nearest,
                    add_alpha=True,
                ) as vrt:
                    values, valid = vrt.read(1), vrt.read(vrt.count) > 0
        except RasterioError as exc:
            raise RasterError(
                f"{path}: the {what} cannot be put on the bands' grid ({str(exc).splitlines()[0]})"
            ) from None
    if nodata_classes:
        valid &= ~np.isin(values, nodata_classes)
    coverage = float(valid.mean()) if valid.size else 0.0
    if coverage < min_coverage:
        where = (
            "has no valid pixel over the scene (it does not overlap the scene, or holds only its "
            f"no-data value{' or class 0' if nodata_classes else ''} there)"
            if coverage == 0
            else "covers only part of the scene"
        )
        raise RasterError(
            f"{path}: the {what} {where}: {_below(coverage)} of the window has valid pixels, at least "
            f"{pct(min_coverage).replace(' ', '')} needed; "
            f"use the {what} of this scene (same place and extent)"
        )
    return np.ma.MaskedArray(np.asarray(values), mask=~valid)
