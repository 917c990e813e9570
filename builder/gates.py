"""The four quality gates of the collection pipeline, thresholds from the dataset card.

1. **S2 not blank** (the published half): file size > 5 KiB and > 50 % of pixels
   non-zero (any channel above 0).
2. **S2 not cloudy** (reflectance): cloud cover ≤ 30 % (SCL classes 8, 9, 10 over
   valid SCL pixels when SCL is present, else a cloud mask, else the scene's
   ``CLOUDY_PIXEL_PERCENTAGE``/``CLOUD_COVERAGE_ASSESSMENT`` tag), mean reflectance
   of B02/B03/B04 (B08/B04/B05 when the blue and green bands are absent) below
   4000 in DN units (0.4), mean NDVI above 0.1, and under 20 % saturated pixels
   (SCL class 1, or reflectance ≥ 1.0 in B08, B04 or B05).
3. **Context available** (collection time only, never published): the composite's
   right half exists and is not blank (> 50 % non-zero pixels, standard deviation
   above 2 grey levels, so a flat fill fails).
4. **Agricultural land cover**. With a land-cover raster, its cropland fraction
   decides (≥ 30 % of the valid pixels in ``cropland_classes``). Without one, the
   *green-edge density* check on reflectance:

   - *vegetated fraction*: share of valid pixels with NDVI ≥ 0.3; at least 40 %
     (water, urban, rock and bare land fail here);
   - *closed-canopy fraction*: share of valid pixels with NDVI ≥ 0.6 and red
     (B04) reflectance < 0.045, the dark red of a shaded multi-layer canopy; at
     most 50 % (forest fails here; crops and grass are brighter in red);
   - *green-edge density*: share of vegetated pixels on a field edge, where the
     NDVI smoothed over 3x3 pixels changes by ≥ 0.03 per pixel (0.06 across
     20 m); at least 2 % (a parcel mosaic has edges; one homogeneous sheet of
     vegetation does not).

A gate that cannot be evaluated for a tile (a composite-only tile has no
reflectance for gates 2 and 4) is recorded as not evaluated, with the reason;
it neither passes nor rejects the tile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from builder import indices
from builder.raster import Bands

GATES = ("s2_not_blank", "s2_not_cloudy", "context_available", "agricultural")
SCL_CLOUD = (8, 9, 10)  # cloud medium, cloud high, thin cirrus
SCL_SATURATED = 1
SCL_NODATA = 0


@dataclass(frozen=True)
class GateConfig:
    """Every threshold of the four gates; the defaults are the dataset card's."""

    min_file_bytes: int = 5 * 1024
    min_nonzero: float = 0.5
    max_cloud: float = 0.30
    max_mean_reflectance: float = 4000.0  # DN units (reflectance x 10000)
    min_ndvi: float = 0.1
    max_saturated: float = 0.20
    min_context_nonzero: float = 0.5
    min_context_std: float = 2.0
    min_vegetated: float = 0.40
    vegetated_ndvi: float = 0.3
    max_canopy: float = 0.50
    canopy_ndvi: float = 0.6
    canopy_red: float = 0.045
    min_green_edge_density: float = 0.02
    edge_step: float = 0.03
    min_cropland: float = 0.30
    cropland_classes: tuple[int, ...] = (40,)  # ESA WorldCover "cropland"; eo-learn's LULC uses 1

    def replace(self, **changes: Any) -> GateConfig:
        return GateConfig(**{**asdict(self), **changes})


@dataclass(frozen=True)
class GateResult:
    gate: str
    evaluated: bool
    passed: bool | None  # None when not evaluated
    values: dict[str, float | str | None] = field(default_factory=dict)
    thresholds: dict[str, float | str] = field(default_factory=dict)
    reason: str = ""  # the failing measure, or why it was not evaluated

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _not_evaluated(gate: str, why: str) -> GateResult:
    return GateResult(gate, False, None, reason=why)


def _verdict(
    gate: str, checks: list[tuple[str, bool, str]], values: dict[str, Any], thresholds: dict[str, Any]
) -> GateResult:
    failed = [text for _, ok, text in checks if not ok]
    return GateResult(gate, True, not failed, values, thresholds, "; ".join(failed))


def nonzero_fraction(rgb: np.ndarray) -> float:
    """Share of pixels with any channel above 0 (H x W x C uint8)."""
    if rgb.size == 0:
        return 0.0
    any_channel = rgb[..., 0].copy()
    for channel in range(1, rgb.shape[-1]):  # plane by plane: ten times faster than .any(axis=-1)
        any_channel |= rgb[..., channel]
    return float(np.count_nonzero(any_channel) / any_channel.size)


def not_blank(jpeg_bytes: int, rgb: np.ndarray, config: GateConfig = GateConfig()) -> GateResult:
    """Gate 1 on the published half: its file size and its share of non-zero pixels."""
    nonzero = nonzero_fraction(rgb)
    values = {"file_bytes": float(jpeg_bytes), "nonzero_fraction": nonzero}
    thresholds = {"min_file_bytes": config.min_file_bytes, "min_nonzero": config.min_nonzero}
    checks = [
        ("size", jpeg_bytes > config.min_file_bytes, f"file {jpeg_bytes} B <= {config.min_file_bytes} B"),
        (
            "nonzero",
            nonzero > config.min_nonzero,
            f"non-zero pixels {nonzero:.1%} <= {config.min_nonzero:.0%}",
        ),
    ]
    return _verdict("s2_not_blank", checks, values, thresholds)


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def cloud_cover(bands: Bands, cloud_mask: np.ndarray | None = None) -> tuple[float | None, str]:
    """The cloud fraction and where it came from: SCL, a cloud mask, the scene's tags, or nothing."""
    if "SCL" in bands:
        scl = bands["SCL"]
        valid = scl != SCL_NODATA
        if valid.any():
            return float(np.isin(scl[valid], SCL_CLOUD).mean()), "SCL"
    if cloud_mask is not None:
        return float(np.asarray(cloud_mask, dtype=bool).mean()), "cloud mask"
    for key in ("CLOUDY_PIXEL_PERCENTAGE", "CLOUD_COVERAGE_ASSESSMENT", "CLOUD_COVER"):
        if key in bands.info.tags:
            try:
                return float(bands.info.tags[key]) / 100.0, f"metadata {key}"
            except ValueError:
                continue
    return None, "none"


def not_cloudy(
    bands: Bands | None, config: GateConfig = GateConfig(), cloud_mask: np.ndarray | None = None
) -> GateResult:
    """Gate 2 on reflectance: cloud cover, brightness, NDVI and saturation."""
    if bands is None:
        return _not_evaluated("s2_not_cloudy", "no reflectance: a composite-only tile")
    cover, source = cloud_cover(bands, cloud_mask)
    visible = ["B02", "B03", "B04"]
    bright = visible if all(b in bands for b in visible) else ["B08", "B04", "B05"]
    stack = np.stack([bands[b] for b in bright])
    mean_reflectance = _mean(stack)
    mean_dn = mean_reflectance * 10_000 if mean_reflectance is not None else None
    ndvi = _mean(indices.ndvi(bands["B08"], bands["B04"]))
    composite = np.stack([bands[b] for b in ("B08", "B04", "B05")])
    valid = np.isfinite(composite).all(axis=0)
    saturated_px = (np.nan_to_num(composite, nan=0.0) >= 1.0).any(axis=0)
    if "SCL" in bands:
        saturated_px |= bands["SCL"] == SCL_SATURATED
        valid |= bands["SCL"] == SCL_SATURATED
    saturated = float(saturated_px[valid].mean()) if valid.any() else None
    values: dict[str, Any] = {
        "cloud_cover": cover,
        "cloud_source": source,
        "mean_reflectance_dn": mean_dn,
        "brightness_bands": "/".join(bright),
        "mean_ndvi": ndvi,
        "saturated_fraction": saturated,
    }
    thresholds = {
        "max_cloud": config.max_cloud,
        "max_mean_reflectance": config.max_mean_reflectance,
        "min_ndvi": config.min_ndvi,
        "max_saturated": config.max_saturated,
    }
    checks: list[tuple[str, bool, str]] = []
    if cover is not None:
        checks.append(
            ("cloud", cover <= config.max_cloud, f"cloud cover {cover:.1%} > {config.max_cloud:.0%}")
        )
    if mean_dn is None or ndvi is None or saturated is None:
        checks.append(("valid", False, "no valid reflectance in the window"))
    else:
        checks += [
            (
                "bright",
                mean_dn < config.max_mean_reflectance,
                f"mean reflectance {mean_dn:.0f} >= {config.max_mean_reflectance:.0f}",
            ),
            ("ndvi", ndvi > config.min_ndvi, f"mean NDVI {ndvi:.3f} <= {config.min_ndvi}"),
            (
                "saturated",
                saturated < config.max_saturated,
                f"saturated {saturated:.1%} >= {config.max_saturated:.0%}",
            ),
        ]
    return _verdict("s2_not_cloudy", checks, values, thresholds)


def context_available(right: np.ndarray | None, config: GateConfig = GateConfig()) -> GateResult:
    """Gate 3 on the composite's right half (collection time only)."""
    if right is None:
        return _not_evaluated("context_available", "no composite: raw bands only")
    nonzero = nonzero_fraction(right)
    std = float(right.std()) if right.size else 0.0
    values = {"nonzero_fraction": nonzero, "std": std}
    thresholds = {"min_nonzero": config.min_context_nonzero, "min_std": config.min_context_std}
    checks = [
        (
            "nonzero",
            nonzero > config.min_context_nonzero,
            f"context non-zero {nonzero:.1%} <= {config.min_context_nonzero:.0%}",
        ),
        (
            "std",
            std > config.min_context_std,
            f"context std {std:.2f} <= {config.min_context_std} (a flat fill)",
        ),
    ]
    return _verdict("context_available", checks, values, thresholds)


def _smooth3(values: np.ndarray) -> np.ndarray:
    """3x3 mean ignoring NaN (edges padded by reflection)."""
    filled = np.where(np.isfinite(values), values, 0.0)
    weight = np.isfinite(values).astype(np.float32)
    p, w = np.pad(filled, 1, mode="reflect"), np.pad(weight, 1, mode="reflect")
    h, wd = values.shape
    total = np.sum([p[i : i + h, j : j + wd] for i in range(3) for j in range(3)], axis=0)
    count = np.sum([w[i : i + h, j : j + wd] for i in range(3) for j in range(3)], axis=0)
    return indices.safe_divide(total, count)


def green_edge(bands: Bands, config: GateConfig = GateConfig()) -> dict[str, float]:
    """The three measures of the green-edge density check (see the module docstring)."""
    ndvi = indices.ndvi(bands["B08"], bands["B04"])
    valid = np.isfinite(ndvi)
    n_valid = max(int(valid.sum()), 1)
    vegetated = valid & (ndvi >= config.vegetated_ndvi)
    canopy = (
        vegetated & (ndvi >= config.canopy_ndvi) & (np.nan_to_num(bands["B04"], nan=1.0) < config.canopy_red)
    )
    smooth = _smooth3(ndvi)
    if min(smooth.shape) >= 2:
        gy, gx = np.gradient(smooth)
        step = np.nan_to_num(np.hypot(gx, gy), nan=0.0)
    else:
        step = np.zeros_like(smooth)
    edges = vegetated & (step >= config.edge_step)
    return {
        "vegetated_fraction": float(vegetated.sum() / n_valid),
        "canopy_fraction": float(canopy.sum() / n_valid),
        "green_edge_density": float(edges.sum() / max(int(vegetated.sum()), 1)),
    }


def agricultural(
    bands: Bands | None, config: GateConfig = GateConfig(), landcover: np.ndarray | None = None
) -> GateResult:
    """Gate 4: a land-cover raster's cropland fraction, else the green-edge density check."""
    thresholds: dict[str, float | str]
    if landcover is not None:
        classes = np.asarray(landcover)
        valid = classes != 0
        crop = float(np.isin(classes[valid], config.cropland_classes).mean()) if valid.any() else 0.0
        values: dict[str, Any] = {"method": "land cover", "cropland_fraction": crop}
        thresholds = {
            "min_cropland": config.min_cropland,
            "cropland_classes": ",".join(map(str, config.cropland_classes)),
        }
        checks = [("crop", crop >= config.min_cropland, f"cropland {crop:.1%} < {config.min_cropland:.0%}")]
        return _verdict("agricultural", checks, values, thresholds)
    if bands is None:
        return _not_evaluated(
            "agricultural", "no reflectance and no land-cover raster: a composite-only tile"
        )
    measures = green_edge(bands, config)
    values = {"method": "green-edge density", **measures}
    thresholds = {
        "min_vegetated": config.min_vegetated,
        "max_canopy": config.max_canopy,
        "min_green_edge_density": config.min_green_edge_density,
    }
    veg, canopy, ged = (
        measures["vegetated_fraction"],
        measures["canopy_fraction"],
        measures["green_edge_density"],
    )
    checks = [
        (
            "vegetated",
            veg >= config.min_vegetated,
            f"vegetated {veg:.1%} < {config.min_vegetated:.0%} (water, urban, rock or bare)",
        ),
        (
            "canopy",
            canopy <= config.max_canopy,
            f"closed canopy {canopy:.1%} > {config.max_canopy:.0%} (forest)",
        ),
        (
            "edges",
            ged >= config.min_green_edge_density,
            f"green-edge density {ged:.1%} < {config.min_green_edge_density:.0%} (no field mosaic)",
        ),
    ]
    return _verdict("agricultural", checks, values, thresholds)


def evaluate(
    *,
    s2_jpeg_bytes: int,
    s2_rgb: np.ndarray,
    right: np.ndarray | None,
    bands: Bands | None,
    config: GateConfig = GateConfig(),
    cloud_mask: np.ndarray | None = None,
    landcover: np.ndarray | None = None,
) -> list[GateResult]:
    """All four gates for one tile, in order."""
    return [
        not_blank(s2_jpeg_bytes, s2_rgb, config),
        not_cloudy(bands, config, cloud_mask),
        context_available(right, config),
        agricultural(bands, config, landcover),
    ]


def first_failure(results: list[GateResult]) -> GateResult | None:
    return next((r for r in results if r.evaluated and not r.passed), None)


def config_from(mapping: Mapping[str, Any]) -> GateConfig:
    """A config from a mapping (a JSON file's content); unknown keys are an error."""
    from builder.errors import ConfigError

    known = set(GateConfig.__dataclass_fields__)
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise ConfigError(f"unknown gate setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values = dict(mapping)
    for key, value in values.items():
        # JSON numbers only (a bool is not a number); cropland classes a list of integers.
        if key == "cropland_classes":
            ok = isinstance(value, list) and all(type(v) is int for v in value)
        else:
            ok = type(value) in ((int,) if key == "min_file_bytes" else (int, float))
        if not ok:
            wanted = "a list of integers" if key == "cropland_classes" else "a number"
            raise ConfigError(f"gate setting {key}: {str(value)[:20]!r} is not {wanted}")
    if "cropland_classes" in values:
        values["cropland_classes"] = tuple(values["cropland_classes"])
    return GateConfig().replace(**values)


BANDS_DIR = "bands"  # corpus/bands/<composite stem>.tif, or a folder of per-band files
LANDCOVER_DIR = "landcover"  # corpus/landcover/<composite stem>.tif (optional)
CONFIG_FILE = "gates.json"  # corpus/gates.json: thresholds other than the card's (optional)


def bands_for(root: Path, source: str) -> Path | None:
    """The raw bands of the composite ``source`` in the corpus, if any."""
    from builder.corpus import special_kind
    from builder.raster import RasterError

    stem = Path(source).stem
    for candidate in (
        root / BANDS_DIR / f"{stem}.tif",
        root / BANDS_DIR / f"{stem}.tiff",
        root / BANDS_DIR / stem,
    ):
        if candidate.exists():
            # A FIFO or a device would block the raster reader forever: refused by type.
            kind = special_kind(candidate)
            if kind not in (None, "folder"):
                raise RasterError(
                    f"{BANDS_DIR}/{candidate.name} is a {kind}, not a GeoTIFF or a folder of bands"
                )
            if kind == "folder":
                for inner in sorted(candidate.iterdir()):
                    inner_kind = special_kind(inner)
                    if inner_kind not in (None, "folder"):
                        raise RasterError(
                            f"{BANDS_DIR}/{stem}/{inner.name} is a {inner_kind}, not a band file"
                        )
            return candidate
    return None


@dataclass(frozen=True)
class TileGates:
    results: tuple[GateResult, ...]
    read: dict[str, Any] | None  # what reading the raw bands did, if there were any


def evaluate_corpus_tile(
    root: Path, source: str, s2_jpeg: bytes, config: GateConfig, composite: Any = None
) -> TileGates:
    """The four gates for a composite of the corpus: gate 1 on the published half's bytes,
    gate 3 on the composite's right half, gates 2 and 4 on the raw bands when the corpus has them.

    Args:
        composite: the composite as displayed (``builder.composite.open_displayed``), if the
            caller has it; otherwise it is opened here the same way.

    Raises:
        RasterError: the raw bands exist but cannot be read (counted as ``bad_bands``).
    """
    import io

    from PIL import Image

    from builder.composite import open_displayed
    from builder.raster import read_aligned, read_bands

    with Image.open(io.BytesIO(s2_jpeg)) as tile:
        s2_rgb = np.asarray(tile.convert("RGB"))
    image = composite if composite is not None else open_displayed(root / source)
    width, height = image.size
    right = np.asarray(image.convert("RGB").crop((width // 2, 0, width, height)))
    bands = read = cover = None
    band_path = bands_for(root, source)
    if band_path is not None:
        bands = read_bands(band_path)
        info = bands.info
        read = {
            "level": info.level,
            "offset": info.offset,
            "offset_from": info.offset_from,
            "shape": list(info.shape),
        }
        landcover = root / LANDCOVER_DIR / f"{Path(source).stem}.tif"
        if landcover.is_file():
            cover = read_aligned(landcover, bands, "land-cover raster")
    results = evaluate(
        s2_jpeg_bytes=len(s2_jpeg), s2_rgb=s2_rgb, right=right, bands=bands, config=config, landcover=cover
    )
    return TileGates(tuple(results), read)


def load_config(root: Path) -> GateConfig:
    """The corpus's ``gates.json`` thresholds, or the card's."""
    import json

    from builder.errors import ConfigError

    path = root / CONFIG_FILE
    if not path.is_file():
        return GateConfig()
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not JSON ({exc}); write an object of gate thresholds") from None
    if not isinstance(mapping, dict):
        raise ConfigError(f"{path}: expected an object of gate thresholds")
    return config_from(mapping)
