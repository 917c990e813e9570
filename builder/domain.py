"""The dataset's vocabulary: the one definition of each name every stage shares.

Splits, labels, rejection reasons, the tile-name rule, the composite and tile sizes,
the Hub's per-folder limit, the false-colour band triplet, the base model and the
dataset's name. This module imports nothing of the project, so any module may import it.
"""

from __future__ import annotations

import argparse
import re
from enum import StrEnum
from typing import Final, Literal

Split = Literal["train", "eval"]
SPLITS: tuple[Split, ...] = ("train", "eval")

Label = Literal["No", "Yes"]
# Order matters: ClassLabel index 0 is "No", 1 is "Yes" (dataset card, metadata.csv).
LABELS: Final[tuple[Label, Label]] = ("No", "Yes")


def is_label(value: object) -> bool:
    """True when ``value`` is exactly one of :data:`LABELS` (case matters)."""
    return isinstance(value, str) and value in LABELS


class Reason(StrEnum):
    """Why a manifest row or a composite did not become a published tile."""

    UNREADABLE_ROW = "unreadable_row"  # not UTF-8, not JSON, not a manifest row
    NO_ANSWER = "no_answer"  # no assistant answer in the row
    BAD_LABEL = "bad_label"  # answer is not exactly "Yes" or "No"
    NO_IMAGE = "no_image"  # no image part in the user turn
    UNSAFE_PATH = "unsafe_path"  # absolute, escapes the corpus root, symlink out
    MISSING_FILE = "missing_file"  # image path does not exist
    QUARANTINED = "quarantined"  # composite sits in (or matches) rejected_composites/
    SIBLING_DUPLICATE = "sibling_duplicate"  # repeats a composite already used, same label
    LABEL_CONFLICT = "label_conflict"  # rows of one composite disagree: dropped whole
    CROSS_SPLIT = "cross_split"  # composite also in eval: its train rows are dropped
    UNREADABLE_IMAGE = "unreadable_image"  # zero-byte, corrupt, truncated, not an image
    BAD_GEOMETRY = "bad_geometry"  # not 512 x 512
    BAD_PIXEL_FORMAT = "bad_pixel_format"  # not 8-bit RGB (greyscale, CMYK, 16-bit, alpha)
    DECOMPRESSION_BOMB = "decompression_bomb"  # header promises too many pixels
    BAD_ORIENTATION = "bad_orientation"  # EXIF orientation outside 1-8: how it displays is unknown
    SIDE_CONFLICT = "side_conflict"  # copies name different bands/land cover/cloud mask/site
    BAD_BANDS = "bad_bands"  # raw bands beside the composite cannot be read as a scene
    BAD_SIDE_RASTER = "bad_side_raster"  # cloud mask or land cover unusable (unreadable, off the scene)
    GATE_S2_BLANK = "gate_s2_blank"  # gate 1: the Sentinel-2 half is (nearly) empty
    GATE_S2_CLOUDY = "gate_s2_cloudy"  # gate 2: cloud, haze, saturation or no vegetation signal
    GATE_NO_CONTEXT = "gate_no_context"  # gate 3: the context half is missing or blank
    GATE_NOT_AGRICULTURAL = "gate_not_agricultural"  # gate 4: forest, water, urban, rock
    SWAPPED_HALVES = "swapped_halves"  # the false colour is on the right: the left half is context
    NEAR_DUPLICATE = "near_duplicate"  # train tile perceptually close to an eval tile (when dropped)
    SITE_LEAK = "site_leak"  # train tile of the same site as an eval tile (when dropped)


# Tile names are d_tile_<12 letters a-p>.jpg: 48 bits of a SHA-256 written as letters, so no
# name can look like a date, a coordinate or a record number.
TILE_PREFIX: Final = "d_tile_"
TILE_NAME_PATTERN: Final = r"d_tile_[a-p]{12}\.jpg"
TILE_NAME_RE: Final = re.compile(rf"^{TILE_NAME_PATTERN}$")
_NIBBLE_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")


def tile_name(content_sha256: str) -> str:
    """Opaque, stable file name of a tile: from its composite's identity (see :mod:`builder.release.curate`),
    the hash of its decoded Sentinel-2 half, so every copy of one composite has one name.

    Content-derived names stay the same when other tiles are added or removed,
    so an incremental publish uploads only what changed.
    """
    return f"{TILE_PREFIX}{content_sha256[:12].translate(_NIBBLE_LETTERS)}.jpg"


COMPOSITE_SIZE: Final = (512, 512)  # width, height of a private composite
HALF_SIZE: Final = (256, 512)  # width, height of the published Sentinel-2 half

# Hub hard limit per folder: https://huggingface.co/docs/hub/repositories-recommendations
MAX_FILES_PER_FOLDER: Final = 10_000

COMPOSITE_BANDS: Final = ("B08", "B04", "B05")  # R, G, B of the published false colour

BASE_MODEL: Final = "LiquidAI/LFM2.5-VL-450M"
DATASET_NAME: Final = "cropmark-disambiguator-s2"

# A Hub repo id, ORG/NAME, by huggingface_hub's own rules (``utils/_validators.py``,
# ``validate_repo_id``, which every HfApi call applies): each part 1-96 ASCII letters,
# digits, '_', '-' or '.', starting and ending with a letter, digit or '_'; no '--' or
# '..' anywhere; not ending in '.git'.
_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
HUB_ID = re.compile(rf"(?!.*(?:--|\.\.))(?!.*\.git$){_PART}/{_PART}")


def hub_id_problem(value: object, what: str = "repo id") -> str | None:
    """Why ``value`` is not a Hub repo id ORG/NAME that huggingface_hub accepts, or None."""
    if isinstance(value, str) and HUB_ID.fullmatch(value):
        return None
    return (
        f"{what} {value!r} is not a Hub id ORG/NAME (each part 1-96 ASCII letters, digits, '_', '-' or '.', "
        "starting and ending with a letter, digit or '_'; no '--' or '..'; not ending in '.git')"
    )


def hub_id_argument(text: str) -> str:
    """An argparse type: a Hub repo id ORG/NAME, by huggingface_hub's own rules."""
    problem = hub_id_problem(text, "")
    if problem is not None:
        raise argparse.ArgumentTypeError(problem.strip())
    return text


def count_argument(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value
