"""Cloud detection on Sentinel-2 Level-1C bands with s2cloudless, when no SCL or mask is given.

s2cloudless (Sentinel Hub, https://github.com/sentinel-hub/sentinel2-cloud-detector) is a
LightGBM pixel classifier trained on Level-1C top-of-atmosphere reflectance; it is the
detector behind eo-learn's cloud masks (``CLM``/``CLP``). It needs ten bands, B01 B02 B04
B05 B08 B8A B09 B10 B11 B12, as reflectance 0..1. B10 (cirrus) exists only in Level-1C
products, and the model was not trained on Level-2A surface reflectance, so a Level-2A
scene without SCL or a cloud mask is not run through it: its cloud cover stays unknown.

The settings are the ones of eo-learn's reference masks: probability threshold 0.4,
probabilities averaged over a disk of radius 4 pixels, the mask dilated by a disk of
radius 2 (the tests check agreement with eo-learn's ``CLM`` on its example scenes).
s2cloudless finds clouds (and thin cirrus through B10), not cloud shadows.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from builder.errors import CropmarkError
from builder.raster.bands import Bands

DETECTOR = "s2cloudless"
DETECTOR_BANDS = ("B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12")
THRESHOLD = 0.4
AVERAGE_OVER = 4
DILATION_SIZE = 2


def unavailable(bands: Bands) -> str | None:
    """Why s2cloudless cannot run on ``bands`` (one phrase), or None when it can."""
    missing = [b for b in DETECTOR_BANDS if b not in bands]
    if missing:
        return f"{DETECTOR} needs {', '.join(missing)}, which the bands lack"
    if bands.info.level == "L2A":
        return f"{DETECTOR} is made for Level-1C top-of-atmosphere reflectance; these bands are L2A"
    return None


@cache
def _detector() -> Any:
    """One detector per process: the model (about 11 MB of trees) is loaded on first use.

    Raises:
        CropmarkError: s2cloudless (a dependency of this package) cannot be imported: a broken
            install stops the build rather than leave cloud cover silently unmeasured.
    """
    try:
        from s2cloudless.cloud_detector import S2PixelCloudDetector
    except ImportError as exc:
        raise CropmarkError(
            f"s2cloudless cannot be imported ({exc}); reinstall the package with its pins: "
            "pip install -c constraints.txt -e ."
        ) from None
    return S2PixelCloudDetector(
        threshold=THRESHOLD, average_over=AVERAGE_OVER, dilation_size=DILATION_SIZE, all_bands=False
    )


def detect(bands: Bands) -> np.ma.MaskedArray:
    """The cloud mask of ``bands`` (True = cloud), masked where any detector band has no data.

    Raises:
        ValueError: the bands do not allow the detector (see :func:`unavailable`).
    """
    why = unavailable(bands)
    if why is not None:
        raise ValueError(why)
    stack = np.stack([bands[b] for b in DETECTOR_BANDS], axis=-1).astype(np.float32)
    valid = np.isfinite(stack).all(axis=-1)
    # LightGBM reads NaN as a missing value; those pixels are masked out of the result anyway.
    # One thread: the build already runs one worker process per core.
    mask = _detector().get_cloud_masks(stack[np.newaxis], num_threads=1)[0].astype(bool)
    return np.ma.MaskedArray(mask, mask=~valid)


def probability(bands: Bands) -> np.ndarray:
    """The detector's cloud probability per pixel (0..1), before averaging and dilation."""
    why = unavailable(bands)
    if why is not None:
        raise ValueError(why)
    stack = np.stack([bands[b] for b in DETECTOR_BANDS], axis=-1).astype(np.float32)
    result: np.ndarray = _detector().get_cloud_probability_maps(stack[np.newaxis], num_threads=1)[0]
    return result
