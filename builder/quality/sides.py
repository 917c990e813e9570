"""A composite's side files in the corpus, found from any of its names, and its four gates.

Beside ``composites/`` a corpus may hold, per composite stem (the file name without
its extension)::

    bands/<stem>.tif        raw Sentinel-2 bands (or bands/<stem>/, a folder of per-band files)
    landcover/<stem>.tif    a land-cover raster: its cropland fraction decides gate 4
    clouds/<stem>.tif       a cloud mask (0 = clear, other values = cloud or cloud shadow)

A composite listed under several names (copies that differ only in metadata are
one composite, see :mod:`builder.release.curate`) has the side files of **every** name:
the manifest's order never decides which copy's bands are read. Two names that
point at side files of one kind with different content are a conflict
(:data:`~builder.domain.Reason.SIDE_CONFLICT`); byte-identical side files are one.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from builder.domain import Reason
from builder.files import special_kind
from builder.ingest.composite import open_displayed
from builder.quality import gates
from builder.quality.thresholds import GateConfig
from builder.quality.thresholds import load_config as load_thresholds
from builder.raster.bands import LANDCOVER_NODATA, RasterError, read_bands, read_side

BANDS_DIR = "bands"
LANDCOVER_DIR = "landcover"
CLOUDS_DIR = "clouds"
CONFIG_FILE = "gates.json"  # corpus/gates.json: thresholds other than the card's (optional)
KINDS = {"bands": BANDS_DIR, "landcover": LANDCOVER_DIR, "clouds": CLOUDS_DIR}
_WHAT = {"bands": "raw bands", "landcover": "land-cover raster", "clouds": "cloud mask"}


@dataclass(frozen=True, slots=True)
class Sides:
    """Corpus-relative paths of a composite's side files (None where it has none)."""

    bands: str | None = None
    landcover: str | None = None
    clouds: str | None = None


class SideRejected(Exception):
    """Side files that make a tile unpublishable, with the counted reason."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _paths(root: Path, kind: str, stem: str) -> list[Path]:
    """The side files of one kind for ``stem``; anything but a regular file (or a folder of
    regular band files) is refused by type, never opened: a FIFO would block the reader."""

    folder = root / KINDS[kind]
    names = [f"{stem}.tif", f"{stem}.tiff"] + ([stem] if kind == "bands" else [])
    found = [folder / n for n in names if (folder / n).exists()]
    reason = Reason.BAD_BANDS if kind == "bands" else Reason.BAD_SIDE_RASTER
    for path in found:
        shown = path.relative_to(root).as_posix()
        what = special_kind(path)
        if what == "folder" and kind == "bands":
            for inner in sorted(path.iterdir()):
                if (inner_kind := special_kind(inner)) not in (None, "folder"):
                    raise SideRejected(reason, f"{shown}/{inner.name} is a {inner_kind}, not a band file")
        elif what is not None:
            expected = "a GeoTIFF or a folder of bands" if kind == "bands" else "a GeoTIFF"
            raise SideRejected(reason, f"{shown} is a {what}, not {expected}")
    return found


def _digest(path: Path) -> str:
    """SHA-256 of a file, or of a folder's sorted (name, file hash) pairs."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode() if path.is_dir() else b"")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def find_sides(root: Path, names: Iterable[str]) -> Sides:
    """The side files of a composite known under ``names`` (corpus-relative paths).

    Raises:
        SideRejected: two names (or ``<stem>.tif`` and ``<stem>/``) point at side files of
            one kind whose content differs.
    """
    found: dict[str, str | None] = {}
    for kind in KINDS:
        paths = sorted({p for name in names for p in _paths(root, kind, PurePosixPath(name).stem)})
        if len({_digest(p) for p in paths}) > 1:
            shown = ", ".join(p.relative_to(root).as_posix() for p in paths[:3])
            raise SideRejected(
                Reason.SIDE_CONFLICT,
                f"copies of this composite name {_WHAT[kind]} with different content ({shown}); keep one",
            )
        found[kind] = paths[0].relative_to(root).as_posix() if paths else None
    return Sides(**found)


@dataclass(frozen=True)
class TileGates:
    results: tuple[gates.GateResult, ...]
    read: dict[str, Any] | None  # what reading the raw bands did, if there were any


def evaluate_corpus_tile(
    root: Path,
    source: str,
    s2_jpeg: bytes,
    config: GateConfig,
    sides: Sides,
    composite: Image.Image | None = None,
    s2_rgb: np.ndarray | None = None,
) -> TileGates:
    """The four gates for a composite of the corpus: gate 1 on the published half's bytes,
    gate 3 on the composite's right half (as displayed), gates 2 and 4 on its side files.

    Args:
        composite: the composite as displayed (``builder.ingest.composite.open_displayed``), if the
            caller has it; otherwise it is opened here the same way.
        s2_rgb: the published half's RGB pixels decoded from ``s2_jpeg``, if the caller has
            them; otherwise they are decoded here.

    Raises:
        SideRejected: bands that cannot be read as a scene (``bad_bands``), or a cloud mask or
            land-cover raster that cannot be used for them (``bad_side_raster``).
    """
    if s2_rgb is None:
        with Image.open(io.BytesIO(s2_jpeg)) as tile:
            s2_rgb = np.asarray(tile.convert("RGB"))
    image = composite if composite is not None else open_displayed(root / source)
    width, height = image.size
    right = np.asarray(image.convert("RGB").crop((width // 2, 0, width, height)))
    bands = read = mask = cover = None
    if sides.bands is not None:
        try:
            bands = read_bands(root / sides.bands)
        except RasterError as exc:
            raise SideRejected(Reason.BAD_BANDS, str(exc)) from None
        info = bands.info
        read = {
            "level": info.level,
            "offset": info.offset,
            "offset_from": info.offset_from,
            "shape": list(info.shape),
        }
    try:
        if sides.clouds is not None:
            mask = read_side(root / sides.clouds, "cloud mask", bands, config.min_side_coverage)
        if sides.landcover is not None:
            cover = read_side(
                root / sides.landcover, "land-cover raster", bands, config.min_side_coverage, LANDCOVER_NODATA
            )
    except RasterError as exc:
        raise SideRejected(Reason.BAD_SIDE_RASTER, str(exc)) from None
    results = gates.evaluate(
        s2_jpeg_bytes=len(s2_jpeg),
        s2_rgb=s2_rgb,
        right=right,
        bands=bands,
        config=config,
        cloud_mask=mask,
        landcover=cover,
    )
    return TileGates(tuple(results), read)


def load_config(root: Path) -> GateConfig:
    """The corpus's ``gates.json`` thresholds, or the card's when there is none.

    Anything at that name is read as thresholds: a folder, a FIFO or a dangling
    symlink named ``gates.json`` is a one-line error, never silently the card's defaults.
    """
    path = root / CONFIG_FILE
    return load_thresholds(path) if os.path.lexists(path) else GateConfig()
