"""The records passed between stages: plain frozen dataclasses.

The public record (:class:`PublicTile`) has no field that could identify a place
or a time. Everything private (paths, hashes of sources, sites) lives in
:class:`PrivateTile`, which is written only to the private report beside the
release.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from builder.domain import Label, Reason, Split


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
    label: Label


# How a Candidate's ``sha256`` starts when curation could not read the file (it is then the
# file's path): no hash of bytes was taken.
UNREADABLE = "unreadable:"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A unique composite after curation, before it is cut.

    Attributes:
        split: where it will be published.
        source: corpus-relative POSIX path of the copy that is cut (private).
        sha256: hash of that copy's bytes (private); :data:`UNREADABLE` and its path when
            curation could not read it.
        label: the agreed label of all its rows.
        rows: ``manifest:line`` of every row that referenced it, sorted.
        content: SHA-256 of its decoded Sentinel-2 half: its identity, and its tile name.
        copies: every corpus-relative path it was listed under, sorted (``source`` among them).
        bands, landcover, clouds: its side files, found from any of its copies' names.
    """

    split: Split
    source: str
    sha256: str
    label: Label
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
    label: Label


@dataclass(frozen=True, slots=True)
class PrivateTile:
    """The private side of a published tile, for the report beside the release."""

    split: Split
    file_name: str
    label: Label
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
