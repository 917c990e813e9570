"""Spectral indices on Sentinel-2 reflectance, and the proxies the published composite allows.

Every index divides safely: no warnings, NaN where the denominator is zero or an
input is NaN. Formulas (band names as ESA's):

- NDVI = (B08 - B04) / (B08 + B04)
- NDRE = (B08 - B05) / (B08 + B05)
- PSRI = (B04 - B02) / B06
- NMDI = (B8A - (B11 - B12)) / (B8A + (B11 - B12))
- NBR  = (B08 - B12) / (B08 + B12)
- red/green = B04 / B03

The published tile is an 8-bit stretch of R = B08, G = B04, B = B05, so from it
alone only **proxies** can be computed: the *NDVI proxy* (R - G) / (R + G) and the
*NDRE proxy* (R - B) / (R + B) on the stretched values. They rank pixels within a
tile the way NDVI and NDRE do, but they are not reflectance indices: each band was
stretched on its own, so their values are not comparable between tiles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

INDICES = ("ndvi", "ndre", "psri", "nmdi", "nbr", "red_green")
NEEDS = {
    "ndvi": ("B08", "B04"),
    "ndre": ("B08", "B05"),
    "psri": ("B04", "B02", "B06"),
    "nmdi": ("B8A", "B11", "B12"),
    "nbr": ("B08", "B12"),
    "red_green": ("B04", "B03"),
}


def safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` as float32; NaN where ``den`` is 0 or either side is NaN, with no warning."""
    num = np.asarray(num, dtype=np.float32)
    den = np.asarray(den, dtype=np.float32)
    out = np.full(np.broadcast(num, den).shape, np.nan, dtype=np.float32)
    ok = np.isfinite(num) & np.isfinite(den) & (den != 0)
    np.divide(num, den, out=out, where=ok)
    return out


def normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    return safe_divide(a - b, a + b)


def ndvi(b08: np.ndarray, b04: np.ndarray) -> np.ndarray:
    return normalized_difference(b08, b04)


def ndre(b08: np.ndarray, b05: np.ndarray) -> np.ndarray:
    return normalized_difference(b08, b05)


def psri(b04: np.ndarray, b02: np.ndarray, b06: np.ndarray) -> np.ndarray:
    return safe_divide(np.asarray(b04, np.float32) - np.asarray(b02, np.float32), b06)


def nmdi(b8a: np.ndarray, b11: np.ndarray, b12: np.ndarray) -> np.ndarray:
    return normalized_difference(b8a, np.asarray(b11, np.float32) - np.asarray(b12, np.float32))


def nbr(b08: np.ndarray, b12: np.ndarray) -> np.ndarray:
    return normalized_difference(b08, b12)


def red_green(b04: np.ndarray, b03: np.ndarray) -> np.ndarray:
    return safe_divide(b04, b03)


def compute(bands: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every index whose bands are present in ``bands``."""
    out: dict[str, np.ndarray] = {}
    functions: dict[str, Callable[..., np.ndarray]] = {
        "ndvi": ndvi,
        "ndre": ndre,
        "psri": psri,
        "nmdi": nmdi,
        "nbr": nbr,
        "red_green": red_green,
    }
    for name in INDICES:
        if all(b in bands for b in NEEDS[name]):
            out[name] = functions[name](*(bands[b] for b in NEEDS[name]))
    return out


def ndvi_proxy(rgb: np.ndarray) -> np.ndarray:
    """(R - G) / (R + G) of the published false colour (R = B08, G = B04): a proxy, not NDVI."""
    return normalized_difference(rgb[..., 0], rgb[..., 1])


def ndre_proxy(rgb: np.ndarray) -> np.ndarray:
    """(R - B) / (R + B) of the published false colour (R = B08, B = B05): a proxy, not NDRE."""
    return normalized_difference(rgb[..., 0], rgb[..., 2])


def summary(values: np.ndarray) -> dict[str, float | None]:
    """Mean, standard deviation and 5/95 % percentiles of the finite values (None if there are none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"mean": None, "std": None, "p05": None, "p95": None}
    p05, p95 = np.percentile(finite, (5, 95))
    return {"mean": float(finite.mean()), "std": float(finite.std()), "p05": float(p05), "p95": float(p95)}
