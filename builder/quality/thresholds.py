"""The one source of truth for the quality gates' thresholds: :class:`GateConfig`.

The defaults are the dataset card's. A corpus's ``gates.json`` (an object of
settings) overrides some of them; it is validated on load: an unknown key, a wrong
type or a value out of range is one line naming the file, the setting and what it
may hold. The build records the config it used in its report, and the card
(:func:`reason_texts`) and the CLI (:func:`changed_settings`) quote that config, so
one build never states two thresholds for one gate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from builder.config import load, shown, unknown_keys
from builder.errors import ConfigError
from builder.figures import number, pct

GATES = ("s2_not_blank", "s2_not_cloudy", "context_available", "agricultural")

# What each setting may hold: (kind, lowest, highest, what it is). "share" is a fraction of pixels.
_RANGES: dict[str, tuple[str, float, float, str]] = {
    "min_file_bytes": ("int", 0, 10**9, "bytes"),
    "min_nonzero": ("float", 0.0, 1.0, "a share of pixels"),
    "max_cloud": ("float", 0.0, 1.0, "a share of pixels"),
    "max_mean_reflectance": ("float", 0.0, 20_000.0, "DN units (reflectance x 10000)"),
    "min_ndvi": ("float", -1.0, 1.0, "an NDVI"),
    "max_saturated": ("float", 0.0, 1.0, "a share of pixels"),
    "min_context_nonzero": ("float", 0.0, 1.0, "a share of pixels"),
    "min_context_std": ("float", 0.0, 255.0, "grey levels"),
    "min_vegetated": ("float", 0.0, 1.0, "a share of pixels"),
    "vegetated_ndvi": ("float", -1.0, 1.0, "an NDVI"),
    "max_canopy": ("float", 0.0, 1.0, "a share of pixels"),
    "canopy_ndvi": ("float", -1.0, 1.0, "an NDVI"),
    "canopy_red": ("float", 0.0, 1.0, "a reflectance"),
    "min_green_edge_density": ("float", 0.0, 1.0, "a share of pixels"),
    "edge_step": ("float", 0.0, 2.0, "an NDVI change per pixel"),
    "min_cropland": ("float", 0.0, 1.0, "a share of pixels"),
    "cropland_classes": ("classes", 1, 65_535, "land-cover class values"),
    "min_side_coverage": ("float", 0.0, 1.0, "a share of the window"),
}


@dataclass(frozen=True)
class GateConfig:
    """Every threshold of the four gates; the defaults are the dataset card's.

    Validated on construction: a wrong type or a value out of range raises
    :class:`~builder.errors.ConfigError` naming the setting and what it may hold.
    """

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
    # A cloud mask or land-cover raster must hold valid pixels over this share of the bands'
    # window, or the tile is rejected: a raster of another place must not read as "0 % cloud".
    min_side_coverage: float = 0.90

    def __post_init__(self) -> None:
        for name, (kind, low, high, what) in _RANGES.items():
            value = getattr(self, name)
            if kind == "classes":
                ok = (
                    isinstance(value, tuple)
                    and len(value) > 0
                    and all(_is_int(v) and low <= v <= high for v in value)
                )
                allowed = f"a non-empty list of whole numbers from {low} to {high} ({what})"
            elif kind == "int":
                ok = _is_int(value) and low <= value <= high
                allowed = f"a whole number from {low} to {high} ({what})"
            else:
                ok = _is_number(value) and low <= value <= high
                allowed = f"a number from {low:g} to {high:g} ({what})"
            if not ok:
                raise ConfigError(f"gate setting {name} = {shown(value)}: expected {allowed}")
            if isinstance(value, float) and value == 0:
                object.__setattr__(self, name, 0.0)  # -0.0 is 0: quoted "0", never "-0"

    def replace(self, **changes: Any) -> GateConfig:
        return GateConfig(**{**asdict(self), **changes})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A finite int or float (not a bool). Ints are finite however large: ``math.isfinite``
    would convert them to float and overflow on a 400-digit number."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def config_from(mapping: Mapping[str, Any]) -> GateConfig:
    """A config from a mapping (a JSON file's content).

    Raises:
        ConfigError: an unknown key, a wrong type or a value out of range (one line).
    """
    known = [f.name for f in fields(GateConfig)]
    unknown = unknown_keys(mapping, GateConfig)
    if unknown:
        names = ", ".join(shown(k, 40) if not k.isidentifier() else k for k in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise ConfigError(f"unknown gate setting(s) {names}{more}; known: {', '.join(sorted(known))}")
    values = dict(mapping)
    if isinstance(values.get("cropland_classes"), list):
        values["cropland_classes"] = tuple(values["cropland_classes"])
    return GateConfig().replace(**values)


def changed_settings(config: GateConfig) -> dict[str, Any]:
    """The settings of ``config`` that differ from the card's defaults."""
    default = asdict(GateConfig())
    return {k: v for k, v in asdict(config).items() if default[k] != v}


def reason_texts(config: Mapping[str, Any]) -> dict[str, str]:
    """One sentence per gate rejection, with the thresholds of ``config`` (a report's ``asdict``)."""
    c = config
    return {
        "s2_not_blank": (
            f"gate 1: Sentinel-2 half blank (file <= {c['min_file_bytes']} bytes or "
            f"<= {pct(c['min_nonzero'])} non-zero pixels)"
        ),
        "s2_not_cloudy": (
            f"gate 2: cloud or shadow > {pct(c['max_cloud'])}, mean reflectance >= "
            f"{number(c['max_mean_reflectance'])}, NDVI <= {number(c['min_ndvi'])} "
            f"or >= {pct(c['max_saturated'])} saturated"
        ),
        "context_available": "gate 3: context half missing or blank",
        "agricultural": "gate 4: not agricultural land cover (forest, water, urban, rock)",
    }


def load_config(path: Path) -> GateConfig:
    """The thresholds of a ``gates.json`` file (an object of :class:`GateConfig` settings).

    The file must be a regular file of UTF-8 JSON (a byte-order mark is ignored) with
    each key once; NaN, Infinity and numbers out of range are refused by the settings'
    ranges.

    Raises:
        ConfigError: missing, not a regular file (a folder, a FIFO: refused by type, never
            opened), not JSON, nested too deeply, a key given twice, not an object, an
            unknown key, a wrong type or a value out of range; one line naming the file.
    """
    return load(path, "an object of gate thresholds", "gate threshold", config_from, special="not a file")
