"""Are the halves in order? Tell the Sentinel-2 false colour from a true-colour image.

A composite's left half is Sentinel-2 false colour (R = B08 near infrared,
G = B04 red, B = B05 red edge), its right half a true-colour context image. A
composite whose halves were swapped would publish the context (Mapbox) image.
Both are RGB images, but they differ in how red relates to green:

- over vegetation, near infrared is high where red is low (chlorophyll absorbs
  red and the leaf structure scatters infrared), so in false colour R > G on most
  pixels **and** R and G are only loosely correlated across the image (each
  channel stretched on its own does not change a correlation);
- in a true-colour image R and G follow the same brightness (soil, roads, crops
  are brighter or darker in all visible bands together), so R and G are tightly
  correlated, whatever their balance.

A half is **false-colour-like** when at least :data:`FC_MIN_RED_OVER_GREEN` of
its pixels have R > G and the R/G correlation is at most
:data:`FC_MAX_RG_CORRELATION`; **true-colour-like** when the R/G correlation is
at least :data:`TC_MIN_RG_CORRELATION`. The verdict:

- ``in order``: the left half is false-colour-like;
- ``swapped``: the right half is false-colour-like and the left half
  true-colour-like: a counted ``swapped_halves`` rejection;
- ``not evaluated`` otherwise (a scene without vegetation, clouds, a flat image):
  the statistic cannot tell, and the report counts it so, never as a pass.

Measured on the five real Sentinel-2 scenes of eo-learn's example patch (1 km
over Slovenia; each scene whole and in four 50x50 px quarters, each rendered on
its own as a tile is: false colour B08/B04/B05 with the project's per-band 2-98 %
stretch; true colour B04/B03/B02 as reflectance x 2.5, with a gamma of 2.2, and
per-band stretched):

- false colour of the three vegetated scenes (mean NDVI 0.69-0.73): R > G on
  0.80-0.89 of the pixels (0.20 above the threshold), R/G correlation 0.12-0.69
  (0.11 under it): always "in order";
- false colour of the scene with sparse vegetation (NDVI 0.44): 0.61 and 0.69 as
  a whole (at the threshold), false-colour-like in one quarter of four; of the
  cloudy scene (NDVI 0.18): R/G correlation 0.93-0.95, never: "not evaluated";
- true colour, every rendering, scene and quarter: R/G correlation 0.91-0.99, so
  never false-colour-like (0.11 above the bound): a correct composite is never
  rejected by its context half alone, and a swapped one of a vegetated scene is.

``tests/test_halves.py`` repeats these measurements on the real scenes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

FC_MIN_RED_OVER_GREEN = 0.6
FC_MAX_RG_CORRELATION = 0.8
TC_MIN_RG_CORRELATION = 0.85

Verdict = Literal["in order", "swapped", "not evaluated"]


@dataclass(frozen=True, slots=True)
class HalvesCheck:
    """The verdict on one composite's halves and the statistics it rests on."""

    verdict: Verdict
    left: dict[str, float | None]
    right: dict[str, float | None]
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def colour_statistics(rgb: np.ndarray) -> dict[str, float | None]:
    """Share of pixels with R > G and the R/G correlation of an H x W x 3 image.

    The correlation is ``None`` when a channel is flat (it is undefined). For 8-bit
    pixels both come from one joint histogram of (R, G) whose moments are exact
    integers, so only the final square root and divisions round: within 1e-12 of NumPy's
    float ``std`` and ``corrcoef``, whose sums round as they go and whose last digits depend
    on the pixels' order (``tests/test_halves.py`` compares them), in a fifth of their time.
    The private report's figures therefore differ from earlier builds' in the last digits.
    """
    if rgb.dtype != np.uint8 or rgb.size == 0:
        return _float_statistics(rgb)
    joint = rgb[..., 0].astype(np.intp) << 8
    joint |= rgb[..., 1]
    counts = np.bincount(joint.ravel(), minlength=65536).reshape(256, 256)  # [red, green]
    levels = np.arange(256, dtype=np.int64)
    n = int(joint.size)
    red_counts, green_counts = counts.sum(axis=1), counts.sum(axis=0)
    s_r, s_g = int(red_counts @ levels), int(green_counts @ levels)
    s_rr, s_gg = int(red_counts @ (levels * levels)), int(green_counts @ (levels * levels))
    s_rg = int(levels @ counts @ levels)
    share = int(np.tril(counts, -1).sum()) / n  # below the diagonal: red > green
    var_r, var_g = n * s_rr - s_r * s_r, n * s_gg - s_g * s_g  # n^2 times the variances, exact
    correlation: float | None = None
    if n > 1 and var_r > 0 and var_g > 0:
        value = (n * s_rg - s_r * s_g) / math.sqrt(var_r * var_g)
        correlation = min(1.0, max(-1.0, value))
    return {"red_over_green": share, "rg_correlation": correlation}


def _float_statistics(rgb: np.ndarray) -> dict[str, float | None]:
    """:func:`colour_statistics` in floating point, for pixels that are not 8-bit."""
    red = rgb[..., 0].astype(np.float64).ravel()
    green = rgb[..., 1].astype(np.float64).ravel()
    share = float(np.mean(red > green)) if red.size else 0.0
    correlation: float | None = None
    if red.size > 1 and red.std() > 0 and green.std() > 0:
        value = float(np.corrcoef(red, green)[0, 1])
        correlation = value if math.isfinite(value) else None
    return {"red_over_green": share, "rg_correlation": correlation}


def false_colour_like(stats: dict[str, float | None]) -> bool:
    share, correlation = stats["red_over_green"], stats["rg_correlation"]
    return (
        share is not None
        and correlation is not None
        and share >= FC_MIN_RED_OVER_GREEN
        and correlation <= FC_MAX_RG_CORRELATION
    )


def true_colour_like(stats: dict[str, float | None]) -> bool:
    correlation = stats["rg_correlation"]
    return correlation is not None and correlation >= TC_MIN_RG_CORRELATION


def check_halves(left: np.ndarray, right: np.ndarray) -> HalvesCheck:
    """The verdict on a composite's displayed halves (H x W x 3 uint8 each)."""
    stats_left, stats_right = colour_statistics(left), colour_statistics(right)
    if false_colour_like(stats_left):
        return HalvesCheck("in order", stats_left, stats_right, "")
    if false_colour_like(stats_right) and true_colour_like(stats_left):
        return HalvesCheck(
            "swapped",
            stats_left,
            stats_right,
            "the right half looks like Sentinel-2 false colour (R > G on "
            f"{stats_right['red_over_green']:.0%} of pixels) and the left half like true colour "
            f"(R/G correlation {stats_left['rg_correlation']:.2f}): the halves are swapped",
        )
    return HalvesCheck(
        "not evaluated",
        stats_left,
        stats_right,
        "neither half is clearly Sentinel-2 false colour (no vegetation signal)",
    )
