"""Curate: from readable rows to unique, label-consistent composites.

**Identity is content.** A composite is the SHA-256 of its decoded Sentinel-2 half
(the left 256x512 pixels, RGB, as the cut sees them), not of its file: copies
that differ only in a JPEG comment, an EXIF block, a trailing byte or the container
(a PNG of the same pixels) are one composite, and every rule below applies to all
of them. A file that cannot be decoded is no composite: it is its own group (the
SHA-256 of its bytes and its path), never a copy of another file, and the cut
rejects it by name with the decoder's reason.

Rules (each dropped row is counted under its reason):

1. A path that is unsafe (absolute, leaves the corpus root) or missing is dropped.
2. A composite inside ``rejected_composites/``, or with the same content (or the
   same bytes) as a file there, is quarantined.
3. Rows are grouped by composite identity.
4. A composite whose rows disagree on the label is dropped whole, in every split.
5. A composite never lands in two splits: when it appears in ``eval`` and in
   ``train``, ``eval`` keeps it and its ``train`` rows are dropped. Eval is the
   held-out set the published metrics were measured on; keeping it unchanged
   keeps those metrics comparable, and removing the tile from train removes the
   leak.
6. One tile per composite: the other rows are sibling duplicates. The copy that is
   cut is chosen by content, never by manifest order: a JPEG before other formats
   (its cut is lossless), then the smallest file hash.
7. A composite's side files (raw bands, land cover, cloud mask; :mod:`builder.quality.sides`)
   and its ``sites.csv`` row are found from **any** of its names. Copies that name
   different side files or different sites, and a side file that two different
   composites name (one stem in two folders), are ``side_conflict`` rejections.

Every rule depends on the set of rows, not on their order: a shuffled manifest
gives the same candidates, the same counts and so the same release.
"""

from __future__ import annotations

import hashlib
import tempfile
from array import array
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from builder import progress
from builder.domain import HALF_SIZE, SPLITS, Label, Reason, Split
from builder.engine import Mapper
from builder.ingest.composite import Rejected, open_checked, read_composite
from builder.ingest.corpus import QUARANTINE_DIR, Site, resolve_image
from builder.quality.sides import SideRejected, find_sides
from builder.records import UNREADABLE, Candidate, Rejection, SftRow
from builder.spill import Spilled


@dataclass(frozen=True, slots=True)
class Located:
    """A manifest row whose composite file was found: what curation reads of it, and the
    file's resolved path (as text: curation holds one per row until it has grouped them, and a
    ``Path`` costs several times its text; the row's image field is not kept)."""

    where: str
    split: Split
    label: Label
    path: str


@dataclass(frozen=True, slots=True)
class Identity:
    """What a composite file is: its bytes' hash and its decoded Sentinel-2 half's hash.

    Curation holds one per composite file until it has grouped them, so the digests are
    kept as their 32 raw bytes; the hex text is made when it is asked for.
    """

    file_digest: bytes | None  # SHA-256 of the file's bytes; None: the file could not be read
    content_digest: bytes | None  # of its decoded Sentinel-2 half; None: it does not decode
    jpeg: bool  # a JPEG shown as stored: its cut can be lossless
    unreadable: str = ""  # the path of a file that could not be read (its identity)

    @property
    def sha256(self) -> str:
        if self.file_digest is None:
            return f"{UNREADABLE}{self.unreadable}"
        return self.file_digest.hex()

    @property
    def content(self) -> str | None:
        return None if self.content_digest is None else self.content_digest.hex()

    @property
    def key(self) -> str:
        content = self.content
        return content if content is not None else f"bytes:{self.sha256}"


def content_digest(pixels: np.ndarray) -> bytes:
    """SHA-256 of a decoded Sentinel-2 half (shape and RGB bytes)."""
    digest = hashlib.sha256(repr(pixels.shape).encode())
    digest.update(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())
    return digest.digest()


def identify(path: str) -> Identity:
    """The identity of the composite file at ``path`` (a pure function, mapped over a pool).

    The Sentinel-2 half is taken from the composite as displayed (its EXIF orientation
    applied), decoded strictly: the pixels the cut publishes.
    """
    try:
        data = read_composite(Path(path))
    except Rejected:  # not a regular, readable file: the cut says why
        return Identity(None, None, False, path)
    sha = hashlib.sha256(data).digest()
    try:
        opened = open_checked(data)
    except Rejected:
        return Identity(sha, None, False)
    half = np.asarray(opened.displayed().convert("RGB").crop((0, 0, *HALF_SIZE)))
    lossless = opened.image.format == "JPEG" and opened.orientation == 1
    return Identity(sha, content_digest(half), lossless)


@dataclass(frozen=True, slots=True)
class Curated:
    """Unique composites to cut, every row curation dropped, and the site of each candidate.

    The candidates wait on disk (:class:`builder.spill.Spilled`), in the order of their split,
    then their identity: they are read back one at a time as the cut takes them.
    """

    candidates: Spilled[Candidate]
    rejections: tuple[Rejection, ...]
    sites: dict[str, Site]  # keyed by Candidate.source


def _row_order(row: SftRow) -> tuple[str, int]:
    manifest, _, line = row.where.rpartition(":")
    return manifest, int(line) if line.isdigit() else 0


def curate(
    corpus: Path,
    rows: Iterable[SftRow],
    map_: Mapper = map,
    sites: dict[str, Site] | None = None,
    folder: Path | None = None,
) -> Curated:
    """Apply the curation rules of this module to ``rows`` of ``corpus``.

    Args:
        corpus: the corpus root.
        rows: readable manifest rows.
        map_: an ordered ``map`` (an engine's, :mod:`builder.engine`) for decoding the composites.
        sites: ``sites.csv`` rows by corpus-relative composite path.
        folder: where the candidates wait on disk (the system's temporary folder by default).
    """
    sites = sites or {}
    root = corpus.resolve()
    rejections: list[Rejection] = []
    located = _locate(corpus, root, rows, rejections)
    quarantine_root = root / QUARANTINE_DIR
    quarantine_files = (
        sorted(p for p in quarantine_root.rglob("*") if p.is_file()) if quarantine_root.is_dir() else []
    )
    held_files = [str(p) for p in quarantine_files]
    files = sorted({row.path for row in located} | set(held_files))
    decoded = progress.bar(map_(identify, files), "read composites", len(files))
    identities = dict(zip(files, decoded, strict=True))
    held = [identities[p] for p in held_files]
    groups = _group_unquarantined(root, located, identities, held, rejections)
    del located
    # Each candidate goes to disk as it is made; what stays is its number, per split and per
    # side file it names. The groups are taken in the order of their identity, so each split's
    # numbers are in the order the cut takes them (split, then identity).
    spill = folder if folder is not None else Path(tempfile.gettempdir())
    made: Spilled[Candidate] = Spilled(spill)
    by_split: dict[str, array[int]] = {split: array("Q") for split in SPLITS}
    owners: dict[str, list[int]] = defaultdict(list)  # side file: the candidates naming it
    candidate_sites: dict[str, Site] = {}
    for key in sorted(groups):
        found = _candidate(root, key, groups.pop(key), identities, sites, rejections)
        if found is not None:
            candidate, site = found
            by_split[candidate.split].append(len(made))
            for side in (candidate.bands, candidate.landcover, candidate.clouds):
                if side is not None:
                    owners[side].append(len(made))
            made.append(candidate)
            if site is not None:
                candidate_sites[candidate.source] = site
    del groups, identities
    dropped = _one_composite_per_side_file(made, owners, rejections)
    kept: Spilled[Candidate] = Spilled(
        spill,
        (made[i] for split in sorted(by_split) for i in by_split[split] if i not in dropped),
    )
    # The sites of the dropped candidates go; the kept ones are not read back for it.
    gone = {made[i].source for i in dropped}
    made.close()
    kept_sites = {source: site for source, site in candidate_sites.items() if source not in gone}
    return Curated(kept, tuple(rejections), kept_sites)


def _locate(corpus: Path, root: Path, rows: Iterable[SftRow], rejections: list[Rejection]) -> list[Located]:
    """Each row whose composite was found, in row order; the others rejected (an unsafe path,
    a missing file, a file in the quarantine folder)."""
    quarantine_root = root / QUARANTINE_DIR
    located: list[Located] = []
    for row in sorted(rows, key=_row_order):
        resolved = resolve_image(corpus, row.image)
        if isinstance(resolved, str):
            rejections.append(Rejection(Reason.UNSAFE_PATH, row.where, resolved, row.split))
            continue
        shown = resolved.relative_to(root).as_posix()
        if not resolved.is_file():
            rejections.append(Rejection(Reason.MISSING_FILE, row.where, f"{shown} does not exist", row.split))
            continue
        if resolved.is_relative_to(quarantine_root):
            rejections.append(
                Rejection(Reason.QUARANTINED, row.where, f"{shown} is in {QUARANTINE_DIR}/", row.split)
            )
            continue
        located.append(Located(row.where, row.split, row.label, str(resolved)))
    return located


def _group_unquarantined(
    root: Path,
    located: list[Located],
    identities: dict[str, Identity],
    held: list[Identity],
    rejections: list[Rejection],
) -> dict[str, list[Located]]:
    """The located rows grouped by their composite's identity key; a row whose bytes or
    Sentinel-2 half equal a quarantined file's is rejected instead."""
    held_bytes = {i.file_digest for i in held if i.file_digest is not None}
    held_content = {i.content_digest for i in held if i.content_digest is not None}
    groups: dict[str, list[Located]] = defaultdict(list)
    for row in located:
        path = row.path
        identity = identities[path]
        in_bytes = identity.file_digest is not None and identity.file_digest in held_bytes
        if in_bytes or (identity.content_digest is not None and identity.content_digest in held_content):
            shown = _relative(root, path)
            same = "bytes" if in_bytes else "Sentinel-2 half"
            rejections.append(
                Rejection(
                    Reason.QUARANTINED,
                    row.where,
                    f"{shown} has the same {same} as a file in {QUARANTINE_DIR}/",
                    row.split,
                )
            )
            continue
        key = identity.key
        if identity.content_digest is None:
            # A file that does not decode is no composite, so it has no copies: its rows are
            # its own, never grouped with another file's (labels, splits and side files are not
            # compared), and the cut rejects each such file by name with the decoder's reason.
            key = f"{key}:{_relative(root, path)}"
        groups[key].append(row)
    return groups


def _candidate(
    root: Path,
    key: str,
    members: list[Located],
    identities: dict[str, Identity],
    sites: dict[str, Site],
    rejections: list[Rejection],
) -> tuple[Candidate, Site | None] | None:
    """Rules 4 to 7 for the rows of one composite: a candidate, or None when it is dropped."""
    labels = {row.label for row in members}
    if len(labels) > 1:
        detail = (
            "rows of this composite disagree ("
            + ", ".join(f"{row.where}={row.label}" for row in members[:4])
            + ("" if len(members) <= 4 else ", ...")
            + "); dropped whole"
        )
        rejections.extend(Rejection(Reason.LABEL_CONFLICT, row.where, detail, row.split) for row in members)
        return None
    keep: Split = "eval" if any(row.split == "eval" for row in members) else "train"
    for row in members:
        if row.split != keep:
            rejections.append(
                Rejection(
                    Reason.CROSS_SPLIT,
                    row.where,
                    "composite is also in eval; eval keeps it, its train rows are dropped",
                    row.split,
                )
            )
    kept = [row for row in members if row.split == keep]
    first = kept[0]
    for row in kept[1:]:
        rejections.append(
            Rejection(
                Reason.SIBLING_DUPLICATE,
                row.where,
                f"repeats the composite of {first.where} with the same label",
                row.split,
            )
        )
    paths = sorted({row.path for row in members}, key=_path_order)
    best = min(paths, key=lambda p: (not identities[p].jpeg, identities[p].sha256, _path_order(p)))
    source = _relative(root, best)
    copies = tuple(_relative(root, p) for p in paths)
    try:
        sides = find_sides(root, copies)
        site = _site(copies, sites)
    except SideRejected as exc:
        rejections.append(Rejection(exc.reason, source, exc.detail, keep))
        return None
    candidate = Candidate(
        split=keep,
        source=source,
        sha256=identities[best].sha256,
        label=first.label,
        rows=tuple(row.where for row in kept),
        content=key,
        copies=copies,
        bands=sides.bands,
        landcover=sides.landcover,
        clouds=sides.clouds,
    )
    return candidate, site


def _path_order(path: str) -> tuple[str, ...]:
    """The order of ``Path`` objects (part by part), for paths held as text: ``a/b`` sorts
    before ``a-c``, as it did when curation held ``Path`` objects."""
    return PurePosixPath(path).parts


def _relative(root: Path, path: str) -> str:
    """The corpus-relative POSIX path of ``path``, a resolved path under ``root``."""
    return Path(path).relative_to(root).as_posix()


def _site(copies: tuple[str, ...], sites: dict[str, Site]) -> Site | None:
    """The one site of a composite's copies; different sites are a conflict."""
    found = {copy: sites[copy] for copy in copies if copy in sites}
    distinct = {astuple(site)[1:] for site in found.values()}  # all but the composite path
    if len(distinct) > 1:
        raise SideRejected(
            Reason.SIDE_CONFLICT,
            f"copies of this composite have different sites.csv rows ({', '.join(sorted(found))}); keep one",
        )
    return next(iter(found.values()), None)


def _one_composite_per_side_file(
    candidates: Sequence[Candidate], owners: dict[str, list[int]], rejections: list[Rejection]
) -> set[int]:
    """The numbers of the candidates whose side file another composite also names (one stem in
    two folders), each rejected; ``owners`` lists the candidates naming each side file."""
    dropped: dict[int, str] = {}
    for side, named_by in sorted(owners.items()):
        if len(named_by) > 1:
            names = ", ".join(sorted(candidates[i].source for i in named_by))
            for i in named_by:
                dropped.setdefault(
                    i,
                    f"{side} is named by {len(named_by)} different composites ({names}); "
                    "give each composite its own stem",
                )
    for i in sorted(dropped):
        candidate = candidates[i]
        rejections.append(Rejection(Reason.SIDE_CONFLICT, candidate.source, dropped[i], candidate.split))
    return set(dropped)
