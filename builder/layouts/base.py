"""Sibling release layouts written from the same curated, audited tiles.

``cropmark build --layout imagefolder`` (the cropmark release) writes
``data/{train,eval}/`` with ``metadata.csv``. The other layouts serve related
Sentinel-2 datasets of the same family:

- ``parquet``: images embedded as bytes, ``ClassLabel`` in the schema, size-capped
  shards ``data/{split}-0000i-of-0000N.parquet`` (:mod:`builder.layouts.parquet`);
- ``sft-jsonl``: leap-finetune VLM SFT rows split by a stable hash of a site id,
  images in leaf folders of at most 8,000 files (:mod:`builder.layouts.sft_jsonl`);
- ``hdf5``: a main file that external-links shard files, one group per sample,
  ``metadata.parquet``, retrieval queries and qrels (:mod:`builder.layouts.hdf5`).

Each is written from the staged imagefolder release *after* that release passed
its audit, into its own hidden temporary folder; its own audit (layout, text,
policy) runs before the build puts it in place. Nothing partial is ever left.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Protocol

from builder.domain import MAX_FILES_PER_FOLDER
from builder.errors import ConfigError
from builder.ingest.corpus import Site
from builder.layouts.policy import Policy, require

LAYOUTS = ("imagefolder", "parquet", "sft-jsonl", "hdf5")
SFT_SPLITS = ("train", "validation", "test")


@dataclass(frozen=True, slots=True)
class LayoutOptions:
    """Options of the sibling layouts (each layout reads its own).

    Attributes:
        shard_mb: Parquet: the largest shard, in MiB (images bytes included).
        fractions: SFT JSONL: train/validation/test shares of the *groups* (sum 1).
        salt: SFT JSONL and HDF5: mixed into the split hash; change it to draw other splits.
        files_per_folder: SFT JSONL: images per leaf folder (the Hub refuses > 10,000).
        samples_per_shard: HDF5: sample groups per shard file.
        coords: HDF5: write ``coords`` and ``crs``; None = as far as the policy allows.
        public_sidecars: SFT JSONL: also publish the per-tile sidecars (policy permitting).
        hdf5_dtype: HDF5: ``uint8`` (the published 8-bit values, the default) or ``float32``
            (the same values / 255).
    """

    shard_mb: float = 500.0
    fractions: tuple[float, ...] = (0.8, 0.1, 0.1)
    salt: str = "cropmark"
    files_per_folder: int = 8_000
    samples_per_shard: int = 256
    coords: bool | None = None
    public_sidecars: bool = False
    hdf5_dtype: str = "uint8"


HDF5_DTYPES = ("uint8", "float32")


def check(layout: str, options: LayoutOptions | None, policy: Policy) -> None:
    """Refuse bad layout options before anything is read or written.

    Raises:
        ConfigError: unknown layout, a limit below 1, fractions that are not shares.
        PolicyError: an option would write a field the policy forbids.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    if options is not None and options.hdf5_dtype not in HDF5_DTYPES:
        raise ConfigError(f"HDF5 dtype {options.hdf5_dtype!r} is not one of {', '.join(HDF5_DTYPES)}")
    o = options or LayoutOptions()
    if not o.shard_mb > 0 or not math.isfinite(o.shard_mb):
        raise ConfigError(f"shard size {o.shard_mb} MiB: use a positive size")
    if o.files_per_folder < 1:
        raise ConfigError(f"files per folder {o.files_per_folder}: use 1 or more")
    if o.files_per_folder > MAX_FILES_PER_FOLDER:
        raise ConfigError(
            f"files per folder {o.files_per_folder}: the Hub refuses more than "
            f"{MAX_FILES_PER_FOLDER}; use 8000"
        )
    if o.samples_per_shard < 1:
        raise ConfigError(f"samples per shard {o.samples_per_shard}: use 1 or more")
    if len(o.fractions) != len(SFT_SPLITS) or any(not 0 <= f <= 1 for f in o.fractions):
        raise ConfigError(
            f"split fractions {list(o.fractions)}: give three shares in [0, 1] (train validation test)"
        )
    if not math.isclose(sum(o.fractions), 1.0, abs_tol=1e-9) or o.fractions[0] == 0:
        raise ConfigError(
            f"split fractions {list(o.fractions)} sum to {sum(o.fractions):g}; "
            "they must sum to 1, with train > 0"
        )
    if layout == "hdf5" and o.coords:
        require(policy, "coordinates", "--coords (HDF5 coords and crs)")
    if layout == "sft-jsonl" and o.public_sidecars:
        require(policy, "sidecars", "--public-sidecars (per-tile sidecars with coordinates and scene ids)")


@dataclass(frozen=True, slots=True)
class Sample:
    """A published tile with its private side, as the layouts receive it.

    ``group`` is the site id (source database and record) when the corpus's
    ``sites.csv`` knows the composite, else the composite's hash: jittered copies
    of one site share it, so group splits keep them together.
    """

    split: str
    file_name: str
    label: str
    path: Path  # the audited tile in the staged imagefolder release
    source: str
    rows: tuple[str, ...]
    site: Site | None
    group: str

    @property
    def key(self) -> str:
        """Opaque sample key: the tile name without its suffix."""
        return self.file_name.removesuffix(".jpg")

    @property
    def timestamp(self) -> float | None:
        """Acquisition date as POSIX seconds (UTC midnight), if known."""
        if self.site is None:
            return None
        return datetime.fromisoformat(self.site.date).replace(tzinfo=UTC).timestamp()


class AuditedTile(Protocol):
    """What a layout reads of one tile of the private report (``builder.release.report.TileRecord``).

    The report itself belongs to the release package above this one; a layout takes its
    tiles, never the whole report.
    """

    @property
    def split(self) -> str: ...
    @property
    def file_name(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def source_sha256(self) -> str: ...
    @property
    def published_sha256(self) -> str: ...
    @property
    def rows(self) -> tuple[str, ...]: ...
    @property
    def site(self) -> Site | None: ...


def samples(staged: Path, tiles: Sequence[AuditedTile], sites: dict[str, Site]) -> list[Sample]:
    """The audited ``tiles`` of the staged imagefolder release, in a stable order."""
    out = []
    # A tile of a split in sub-folders is listed by its path under the split (0000/d_tile_….jpg);
    # the sibling layouts name it by its file name.
    for tile in sorted(tiles, key=lambda t: (t.split, PurePosixPath(t.file_name).name)):
        site = sites.get(tile.source)
        group = f"{site.source_db}:{site.source_id}" if site else f"sha256:{tile.source_sha256}"
        out.append(
            Sample(
                tile.split,
                PurePosixPath(tile.file_name).name,
                tile.label,
                staged / "data" / tile.split / tile.file_name,
                tile.source,
                tile.rows,
                site,
                group,
            )
        )
    return out


def require_filled(split_of: dict[str, str], fractions: Sequence[float], hint: str) -> dict[str, str]:
    """``split_of`` if every split with a positive fraction got a group.

    Raises:
        ConfigError: too few groups for the fractions asked (a split got none).
    """
    empty = [s for s, f in zip(SFT_SPLITS, fractions, strict=True) if f > 0 and s not in split_of.values()]
    if empty:
        raise ConfigError(
            f"{len(split_of)} site group(s) cannot fill the split fractions {list(fractions)}: "
            f"{', '.join(empty)} got no group; set its fraction to 0{hint} or add sites"
        )
    return split_of


def unit_hash(text: str, salt: str) -> float:
    """A stable number in [0, 1) from ``text`` (SHA-256; no seed, no process state)."""
    digest = hashlib.sha256(f"{salt}\0{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def shard_names(count: int, folder: str = "s") -> Iterator[str]:
    """``s00000``, ``s00001``, … (five digits: 100,000 folders of 8,000 files)."""
    for index in range(count):
        yield f"{folder}{index:05d}"


def common_files(staged: Path, dest: Path) -> None:
    """The licence files every layout carries, copied from the audited release."""
    for name in ("LICENSE", "NOTICE.md"):
        shutil.copyfile(staged / name, dest / name)
