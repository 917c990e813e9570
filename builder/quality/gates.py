"""The four quality gates of the collection pipeline, thresholds from the dataset card.

1. **S2 not blank** (the published half): file size > 5 KiB and > 50 % of pixels
   non-zero (any channel above 0).
2. **S2 not cloudy** (reflectance): cloud cover ≤ 30 %, mean reflectance of
   B02/B03/B04 (B08/B04/B05 when the blue and green bands are absent) below 4000 in
   DN units (0.4), mean NDVI above 0.1, and under 20 % saturated pixels (SCL class 1,
   or reflectance ≥ 1.0 in B08, B04 or B05). Cloud cover is the share of valid pixels
   that are cloud **or cloud shadow**, measured by, in this order:

   - the scene's SCL band: classes 3 (cloud shadow), 8, 9 (cloud) and 10 (thin
     cirrus) over the pixels that are not class 0 (no data);
   - a cloud mask raster: any value other than 0 is cloud or shadow, its declared
     no-data and anything outside its footprint are not counted;
   - s2cloudless (:mod:`builder.raster.clouds`) on Level-1C bands that have the detector's
     ten bands; it finds clouds, not shadows.

   The granule's ``CLOUDY_PIXEL_PERCENTAGE`` tag describes a 110 km product, not the
   tile's window: it is recorded, never used as the tile's cloud cover. When cloud
   cover cannot be measured, gate 2 can still reject a tile on a measured failure
   (bright, no vegetation signal, saturated); otherwise it is **not evaluated**,
   never passed.
3. **Context available** (collection time only, never published): the composite's
   right half exists and is not blank (> 50 % non-zero pixels, standard deviation
   above 2 grey levels, so a flat fill fails).
4. **Agricultural land cover**. With a land-cover raster, its cropland fraction
   decides (≥ 30 % of the valid pixels in ``cropland_classes``; 0 and the declared
   no-data are not valid). Without one, the *green-edge density* check on reflectance:

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

Every threshold lives in :class:`~builder.quality.thresholds.GateConfig`, the one source of
the numbers that the report, the card and the CLI quote.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from builder.domain import COMPOSITE_BANDS, Reason
from builder.figures import number, pct
from builder.quality.thresholds import GATES, GateConfig
from builder.raster import clouds, indices
from builder.raster.bands import Bands


def _share(value: float) -> str:
    """A threshold share exactly as configured, in the style of the measured value (``30%``)."""
    return pct(value).replace(" ", "")


__all__ = ["GATES", "GATE_REASONS", "GateConfig", "GateResult", "evaluate", "first_failure"]

GATE_REASONS = {  # the counted reason of a tile that a gate rejects
    "s2_not_blank": Reason.GATE_S2_BLANK,
    "s2_not_cloudy": Reason.GATE_S2_CLOUDY,
    "context_available": Reason.GATE_NO_CONTEXT,
    "agricultural": Reason.GATE_NOT_AGRICULTURAL,
}

DEFAULT_CONFIG = GateConfig()  # the card's thresholds
SCL_CLOUD = (3, 8, 9, 10)  # cloud shadow, cloud medium, cloud high, thin cirrus
SCL_SATURATED = 1
SCL_NODATA = 0
SCENE_CLOUD_TAGS = ("CLOUDY_PIXEL_PERCENTAGE", "CLOUD_COVERAGE_ASSESSMENT", "CLOUD_COVER")


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


def _not_evaluated(
    gate: str,
    why: str,
    values: dict[str, Any] | None = None,
    thresholds: dict[str, Any] | None = None,
) -> GateResult:
    return GateResult(gate, False, None, values or {}, thresholds or {}, reason=why)


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


def pixel_std(values: np.ndarray) -> float:
    """Population standard deviation of all of ``values``; for 8-bit pixels from exact
    integer sums (sum and sum of squares, each below 2**63 for any image under the
    decompression-bomb limit), in 60 % of the time of NumPy's float ``std``.

    Only the final square root and division round, so the value does not depend on the
    pixels' order and a deviation exactly at gate 3's threshold reads as exactly that (NumPy's
    float sums can put it a few units in the last place above or below); it is within 1e-14
    of NumPy's (``tests/test_raster.py`` compares them)."""
    if values.size == 0:
        return 0.0
    if values.dtype != np.uint8:
        return float(values.std())
    n = int(values.size)
    s1 = int(values.sum(dtype=np.int64))
    s2 = int(np.square(values, dtype=np.uint16).sum(dtype=np.int64))
    return math.sqrt(n * s2 - s1 * s1) / n


def not_blank(jpeg_bytes: int, rgb: np.ndarray, config: GateConfig = DEFAULT_CONFIG) -> GateResult:
    """Gate 1 on the published half: its file size and its share of non-zero pixels."""
    nonzero = nonzero_fraction(rgb)
    values = {"file_bytes": float(jpeg_bytes), "nonzero_fraction": nonzero}
    thresholds = {"min_file_bytes": config.min_file_bytes, "min_nonzero": config.min_nonzero}
    checks = [
        ("size", jpeg_bytes > config.min_file_bytes, f"file {jpeg_bytes} B <= {config.min_file_bytes} B"),
        (
            "nonzero",
            nonzero > config.min_nonzero,
            f"non-zero pixels {nonzero:.1%} <= {_share(config.min_nonzero)}",
        ),
    ]
    return _verdict("s2_not_blank", checks, values, thresholds)


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def _masked_share(mask: np.ndarray, positive: np.ndarray) -> float | None:
    """Share of the valid (unmasked) pixels of ``mask`` where ``positive`` holds."""
    valid = ~np.ma.getmaskarray(mask)
    return float(positive[valid].mean()) if valid.any() else None


def cloud_cover(bands: Bands | None, cloud_mask: np.ndarray | None = None) -> tuple[float | None, str]:
    """The share of cloud and cloud shadow, and what measured it (or why nothing could).

    In order: the SCL band, a cloud mask (0 = clear, masked = no data), s2cloudless on
    Level-1C bands. The second item is ``"SCL"``, ``"cloud mask"``, ``"s2cloudless"``, or
    a sentence saying why cloud cover is unknown (then the first item is None).
    """
    if bands is not None and "SCL" in bands:
        scl = bands["SCL"]
        valid = scl != SCL_NODATA
        if valid.any():
            return float(np.isin(scl[valid], SCL_CLOUD).mean()), "SCL"
    if cloud_mask is not None:
        share = _masked_share(cloud_mask, np.ma.getdata(cloud_mask) != 0)
        if share is not None:
            return share, "cloud mask"
    if bands is None:
        return None, "no SCL, no cloud mask and no bands for s2cloudless"
    why = clouds.unavailable(bands)
    if why is None:
        share = _masked_share(mask := clouds.detect(bands), np.ma.getdata(mask))
        if share is not None:
            return share, clouds.DETECTOR
        why = f"{clouds.DETECTOR} found no pixel with all its bands"
    return None, f"no SCL and no cloud mask; {why}"


def scene_cloud_tag(bands: Bands) -> float | None:
    """The product's own cloud percentage tag as a share (recorded; it is not the window's)."""
    for key in SCENE_CLOUD_TAGS:
        if key in bands.info.tags:
            try:
                return float(bands.info.tags[key]) / 100.0
            except ValueError:
                continue
    return None


def not_cloudy(
    bands: Bands | None, config: GateConfig = DEFAULT_CONFIG, cloud_mask: np.ndarray | None = None
) -> GateResult:
    """Gate 2 on reflectance: cloud and shadow cover, brightness, NDVI and saturation.

    Passes only when every measure was taken and is within its threshold; a measured
    failure rejects; an unmeasured cloud cover with no failure is "not evaluated".
    """
    gate = "s2_not_cloudy"
    cover, source = cloud_cover(bands, cloud_mask)
    thresholds: dict[str, float | str] = {
        "max_cloud": config.max_cloud,
        "max_mean_reflectance": config.max_mean_reflectance,
        "min_ndvi": config.min_ndvi,
        "max_saturated": config.max_saturated,
    }
    measured = cover is not None
    values: dict[str, Any] = {"cloud_cover": cover, "cloud_source": source if measured else None}
    checks: list[tuple[str, bool, str]] = []
    if cover is not None:
        checks.append(
            (
                "cloud",
                cover <= config.max_cloud,
                f"cloud and shadow {cover:.1%} > {_share(config.max_cloud)} ({source})",
            )
        )
    if bands is None:
        failed = [text for _, ok, text in checks if not ok]
        if failed:
            return GateResult(gate, True, False, values, thresholds, "; ".join(failed))
        return _not_evaluated(
            gate,
            "no reflectance: a composite-only tile"
            if cover is None
            else "no reflectance: brightness, NDVI and saturation not measured",
            values,
            thresholds,
        )
    visible = ["B02", "B03", "B04"]
    bright = visible if all(b in bands for b in visible) else list(COMPOSITE_BANDS)
    stack = np.stack([bands[b] for b in bright])
    mean_reflectance = _mean(stack)
    mean_dn = mean_reflectance * 10_000 if mean_reflectance is not None else None
    ndvi = _mean(indices.ndvi(bands["B08"], bands["B04"]))
    composite = np.stack([bands[b] for b in COMPOSITE_BANDS])
    valid = np.isfinite(composite).all(axis=0)
    saturated_px = (np.nan_to_num(composite, nan=0.0) >= 1.0).any(axis=0)
    if "SCL" in bands:
        saturated_px |= bands["SCL"] == SCL_SATURATED
        valid |= bands["SCL"] == SCL_SATURATED
    saturated = float(saturated_px[valid].mean()) if valid.any() else None
    values |= {
        "mean_reflectance_dn": mean_dn,
        "brightness_bands": "/".join(bright),
        "mean_ndvi": ndvi,
        "saturated_fraction": saturated,
        "scene_cloud_tag": scene_cloud_tag(bands),
    }
    if mean_dn is None or ndvi is None or saturated is None:
        checks.append(("valid", False, "no valid reflectance in the window"))
    else:
        checks += [
            (
                "bright",
                mean_dn < config.max_mean_reflectance,
                f"mean reflectance {mean_dn:.0f} >= {number(config.max_mean_reflectance)}",
            ),
            ("ndvi", ndvi > config.min_ndvi, f"mean NDVI {ndvi:.3f} <= {number(config.min_ndvi)}"),
            (
                "saturated",
                saturated < config.max_saturated,
                f"saturated {saturated:.1%} >= {_share(config.max_saturated)}",
            ),
        ]
    result = _verdict(gate, checks, values, thresholds)
    if result.passed and not measured:
        return _not_evaluated(gate, f"cloud cover not measured: {source}", values, thresholds)
    return result


def context_available(right: np.ndarray | None, config: GateConfig = DEFAULT_CONFIG) -> GateResult:
    """Gate 3 on the composite's right half (collection time only)."""
    if right is None:
        return _not_evaluated("context_available", "no composite: raw bands only")
    nonzero = nonzero_fraction(right)
    std = pixel_std(right)
    values = {"nonzero_fraction": nonzero, "std": std}
    thresholds = {"min_nonzero": config.min_context_nonzero, "min_std": config.min_context_std}
    checks = [
        (
            "nonzero",
            nonzero > config.min_context_nonzero,
            f"context non-zero {nonzero:.1%} <= {_share(config.min_context_nonzero)}",
        ),
        (
            "std",
            std > config.min_context_std,
            f"context std {std:.2f} <= {number(config.min_context_std)} (a flat fill)",
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


def green_edge(bands: Bands, config: GateConfig = DEFAULT_CONFIG) -> dict[str, float]:
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
    bands: Bands | None, config: GateConfig = DEFAULT_CONFIG, landcover: np.ndarray | None = None
) -> GateResult:
    """Gate 4: a land-cover raster's cropland fraction, else the green-edge density check.

    A land-cover raster with no valid pixel in the window (all class 0 or no data) measures
    nothing: the green-edge check decides, or the gate is not evaluated; never "0 % cropland".
    """
    thresholds: dict[str, float | str]
    classes = valid = None
    if landcover is not None:
        classes = np.ma.getdata(landcover)
        valid = (classes != 0) & ~np.ma.getmaskarray(landcover)  # 0: no data in WorldCover and LULC
    if classes is not None and valid is not None and valid.any():
        crop = float(np.isin(classes[valid], config.cropland_classes).mean())
        values: dict[str, Any] = {"method": "land cover", "cropland_fraction": crop}
        thresholds = {
            "min_cropland": config.min_cropland,
            "cropland_classes": ",".join(map(str, config.cropland_classes)),
        }
        checks = [
            ("crop", crop >= config.min_cropland, f"cropland {crop:.1%} < {_share(config.min_cropland)}")
        ]
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
            f"vegetated {veg:.1%} < {_share(config.min_vegetated)} (water, urban, rock or bare)",
        ),
        (
            "canopy",
            canopy <= config.max_canopy,
            f"closed canopy {canopy:.1%} > {_share(config.max_canopy)} (forest)",
        ),
        (
            "edges",
            ged >= config.min_green_edge_density,
            f"green-edge density {ged:.1%} < {_share(config.min_green_edge_density)} (no field mosaic)",
        ),
    ]
    return _verdict("agricultural", checks, values, thresholds)


def evaluate(
    *,
    s2_jpeg_bytes: int,
    s2_rgb: np.ndarray,
    right: np.ndarray | None,
    bands: Bands | None,
    config: GateConfig = DEFAULT_CONFIG,
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
