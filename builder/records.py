"""The records passed between stages: plain frozen dataclasses.

The public record (:class:`PublicTile`) has no field that could identify a place
or a time. Everything private (paths, hashes of sources, sites) lives in
:class:`PrivateTile`, which is written only to the private report beside the
release.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

Split = Literal["train", "eval"]
SPLITS: tuple[Split, ...] = ("train", "eval")


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


@dataclass(frozen=True, slots=True)
class Rejection:
    """One thing that did not make it into the release, and why.

    Attributes:
        reason: the counted reason.
        where: ``manifest:line`` for a row, the corpus-relative path for a file.
        detail: one human sentence (the value found, the value allowed).
        split: the split the row came from, when known.
    """

    reason: Reason
    where: str
    detail: str
    split: Split | None = None


@dataclass(frozen=True, slots=True)
class SftRow:
    """One readable manifest row: a composite path and its answer."""

    split: Split
    where: str  # manifest:line
    image: str  # the path as written in the row (private)
    label: Literal["No", "Yes"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A unique composite after curation, before it is cut.

    Attributes:
        split: where it will be published.
        source: corpus-relative POSIX path of the copy that is cut (private).
        sha256: hash of that copy's bytes (private).
        label: the agreed label of all its rows.
        rows: ``manifest:line`` of every row that referenced it, sorted.
        content: SHA-256 of its decoded Sentinel-2 half: its identity, and its tile name.
        copies: every corpus-relative path it was listed under, sorted (``source`` among them).
        bands, landcover, clouds: its side files, found from any of its copies' names.
    """

    split: Split
    source: str
    sha256: str
    label: Literal["No", "Yes"]
    rows: tuple[str, ...]
    content: str = ""
    copies: tuple[str, ...] = ()
    bands: str | None = None
    landcover: str | None = None
    clouds: str | None = None


@dataclass(frozen=True, slots=True)
class PublicTile:
    """A published tile: nothing in it names a place, a time or a source."""

    split: Split
    file_name: str
    label: Literal["No", "Yes"]


@dataclass(frozen=True, slots=True)
class PrivateTile:
    """The private side of a published tile, for the report beside the release."""

    split: Split
    file_name: str
    label: Literal["No", "Yes"]
    source: str
    source_sha256: str
    published_sha256: str
    cut: Literal["lossless", "reencoded"]
    rows: tuple[str, ...]
    gates: tuple[dict[str, Any], ...] = ()  # each gate's values, thresholds and verdict
    bands: dict[str, Any] | None = None  # what reading the raw bands did (level, offset), if any
    cut_detail: str = ""  # why the tile was re-encoded (orientation, colour space, format)
    content_sha256: str = ""  # the composite's identity: hash of its decoded Sentinel-2 half
    copies: tuple[str, ...] = ()  # every corpus path the composite was listed under
    halves: dict[str, Any] | None = (
        None  # the halves-order check (builder.quality.halves): verdict, statistics
    )
