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

A layout is a :class:`Layout`: its name, writer, card ``configs``, audit (top-level
entries and checks), the options it reads and the policy fields those options need.
Each layout module defines one (``LAYOUT``); :mod:`builder.layouts.registry` lists them,
and the CLI, the option check, the build, the cards and the audits take them from there.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from builder.domain import MAX_FILES_PER_FOLDER
from builder.errors import ConfigError
from builder.ingest.corpus import Site
from builder.ingest.scrub import metadata_segments
from builder.layouts.policy import Policy

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


def check_options(options: LayoutOptions) -> None:
    """Refuse option values that no layout can use (whichever layout reads them).

    Raises:
        ConfigError: an unknown HDF5 dtype, a limit below 1, fractions that are not shares.
    """
    o = options
    if o.hdf5_dtype not in HDF5_DTYPES:
        raise ConfigError(f"HDF5 dtype {o.hdf5_dtype!r} is not one of {', '.join(HDF5_DTYPES)}")
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


def image_findings(data: bytes, where: str, published: set[str]) -> Iterator[str]:
    """An image a layout carries must be one of the audited tiles, with no metadata segment."""
    if hashlib.sha256(data).hexdigest() not in published:
        yield f"{where}: not one of the tiles the imagefolder audit passed"
    found = metadata_segments(data)
    if found:
        yield f"{where}: metadata in image ({', '.join(found[:4])})"


@dataclass(frozen=True, slots=True)
class AuditContext:
    """What a layout's own checks get from its audit (:func:`builder.layouts.audit.audit_layout`).

    Attributes:
        root: the layout's release folder.
        private: its ``<version>.private`` folder (sidecars, the site map), if known.
        policy: the release's policy.
        secrets: the private report's values (never to appear in a text).
        published: SHA-256 of every tile the imagefolder audit passed.
        digests: ``{relative path: SHA-256}`` of every regular file under ``root``.
    """

    root: Path
    private: Path | None
    policy: Policy
    secrets: set[str]
    published: set[str]
    digests: dict[str, str]


class Writer(Protocol):
    """Writes a layout into ``dest`` from the audited samples; returns its ``layout_summary``."""

    def __call__(
        self, samples: Sequence[Sample], dest: Path, private: Path, options: LayoutOptions, policy: Policy
    ) -> dict[str, Any]: ...


class Layout(Protocol):
    """A release layout, as the registry (:mod:`builder.layouts.registry`) holds it.

    ``primary`` is the layout every build writes first, in the build's own staging, and the
    release audit (:func:`builder.release.audit.audit_release`) audits: it has no ``writer``
    and no ``checks`` of its own. Every other layout is written by its ``writer`` from the
    audited primary release and audited by :func:`builder.layouts.audit.audit_layout` with
    its ``checks``.
    """

    @property
    def name(self) -> str:
        """The ``--layout`` value and the report's ``layout``."""
        ...

    @property
    def primary(self) -> bool:
        """Written first by the build and audited by the release audit."""
        ...

    @property
    def top_level(self) -> frozenset[str]:
        """The only entries its release folder may hold at the top."""
        ...

    @property
    def options(self) -> tuple[str, ...]:
        """The :class:`LayoutOptions` fields it reads (the CLI's help names it for each)."""
        ...

    @property
    def audited(self) -> str:
        """What its audit checks beyond layout (``cropmark audit`` says it when it passes)."""
        ...

    @property
    def configs(self) -> Callable[[], list[dict[str, Any]]]:
        """The README ``configs:`` entries, without the description the card adds."""
        ...

    @property
    def writer(self) -> Writer | None:
        """Its writer; None for the primary layout, which the build writes itself."""
        ...

    @property
    def checks(self) -> Callable[[AuditContext], Iterator[str]] | None:
        """Its own audit checks; None for the primary layout, which the release audit checks."""
        ...

    @property
    def policy_check(self) -> Callable[[LayoutOptions, Policy], None] | None:
        """Refuses (``PolicyError``) an option the policy forbids, before anything is written."""
        ...

    @property
    def marks(self) -> tuple[tuple[str, str], ...]:
        """``(folder, suffix)`` of the files it writes that no other layout writes there
        (``("data", ".parquet")``): how a release of it audited without its private report is
        known. Empty for the primary layout."""
        ...


@dataclass(frozen=True, slots=True)
class LayoutSpec:
    """A :class:`Layout` as a record: what each layout module defines as its ``LAYOUT``."""

    name: str
    top_level: frozenset[str]
    options: tuple[str, ...]
    audited: str
    configs: Callable[[], list[dict[str, Any]]]
    writer: Writer | None = None
    checks: Callable[[AuditContext], Iterator[str]] | None = None
    policy_check: Callable[[LayoutOptions, Policy], None] | None = None
    marks: tuple[tuple[str, str], ...] = ()

    @property
    def primary(self) -> bool:
        """The layout the build writes itself (no writer of its own)."""
        return self.writer is None
