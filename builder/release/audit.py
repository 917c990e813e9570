"""Audit: the border post. Prove a release leaks nothing and is well formed.

A release passes only with zero findings. Every finding names the file (and the
line, for text), what was found, and masks any value it quotes (``51.5…``): a
finding never prints a private value in full. Checked:

- layout: only ``README.md``, ``LICENSE``, ``NOTICE.md`` and ``data/{train,eval}/``
  (a split too large for one folder in sub-folders ``0000/``, ``0001/``, ...);
  only regular files (no symlink, FIFO or device); at most 10,000 files in any
  folder (the Hub's hard limit);
- every file against the private report: a file the report does not list, a
  listed file that is missing, and a file whose SHA-256 differs are findings; so
  is the journal of a build that was killed while putting the release in place;
- ``metadata.csv``: exactly the columns ``file_name,label``, labels ``Yes``/``No``,
  opaque file names, every image listed once, every listed file present, every
  row a tile of the report **with the report's label**;
- images: 256x512 RGB JPEG with no metadata segment (EXIF, XMP, ICC, JFIF, COM,
  trailing bytes: see :mod:`builder.ingest.scrub`), decoding without a decoder warning;
- text (every text file, line by line, and every path): none of :data:`builder.scan.PATTERNS`,
  and none of the private report's own values (source IDs, coordinates, dates,
  source file names) as a whole word;
- halves: every published image, block by block (16x16 pixels), matches the
  **left** (Sentinel-2) half of its composite **as displayed** (EXIF orientation
  applied, :func:`builder.ingest.composite.open_displayed`); a tile that matches the right
  (context) half, or any block that does not match the left half (a pasted patch
  of 32x32 pixels or more always covers a whole block), is a finding.

The card's own measured numbers (gate thresholds, counts, distances) are not
refused by the number-only patterns: :func:`card_numbers` lists them from the
report, and a match whose value is one of them is allowed in ``README.md``.
Private values are never allowed, whatever they equal.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import stat
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from builder import progress
from builder.domain import COMPOSITE_SIZE, HALF_SIZE, LABELS, SPLITS, TILE_NAME_PATTERN, TILE_NAME_RE
from builder.errors import ConfigError
from builder.files import crowded_folders, files_digest, journal_findings, load_json, raise_error, read_file
from builder.ingest.composite import Rejected, open_displayed
from builder.ingest.scrub import metadata_segments
from builder.layouts import registry
from builder.layouts.audit import audit_layout
from builder.release.report import BuildReport, ReportError
from builder.scan import TEXT_SUFFIXES, card_numbers, masked_path, private_values, redact, text_findings

TOP_LEVEL = registry.primary().top_level
# What a build's worker checked of a tile: the SHA-256 of the bytes, and the findings.
Checked = tuple[str, tuple[str, ...]]


class WorkerChecks(Mapping[str, Checked]):
    """What a build's workers checked, per tile path, kept as small as the tiles allow.

    Every tile a build writes was checked by its worker (:func:`check_tile`) on the very bytes
    whose SHA-256 the build records in its report's ``files`` (``digests``), so the checks
    are ``digests`` itself for every tile path it lists, with the findings of the few tiles
    that have any (``findings``); no per-tile pair is held.
    """

    def __init__(self, digests: Mapping[str, str], findings: Mapping[str, tuple[str, ...]]) -> None:
        self._digests = digests
        self._findings = findings

    @staticmethod
    def _tile(rel: str) -> bool:
        return bool(TILE_NAME_RE.match(rel.rpartition("/")[2])) and rel.startswith("data/")

    def __getitem__(self, rel: str) -> Checked:
        if not self._tile(rel):
            raise KeyError(rel)
        return self._digests[rel], tuple(self._findings.get(rel, ()))

    def __iter__(self) -> Iterator[str]:
        return (rel for rel in self._digests if self._tile(rel))

    def __len__(self) -> int:
        return sum(1 for _ in self)


# A split larger than one folder holds is written into sub-folders 0000/, 0001/, ...
SHARD_RE = re.compile(r"^\d{4}$")
# A tile's path under its split's folder, as metadata.csv lists it.
TILE_PATH_RE = re.compile(rf"^(?:\d{{4}}/)?{TILE_NAME_PATTERN}$")
# The half check compares 16x16-pixel blocks (mean absolute difference over the
# block's 768 values, 0-255) with the composite's left half. Measured on the sample
# corpus: lossless cuts stay under 1 in every block (4:2:0 sources differ only in
# the last column), q95 4:4:4 re-encodes under 2.5; a pasted context patch gives
# tens. Any patch of 32x32 pixels or more covers at least one whole aligned block.
BLOCK = 16
BLOCK_TOLERANCE = 6.0

STRUCTURAL = frozenset(
    {
        "README.md",
        "LICENSE",
        "NOTICE.md",
        "data",
        *(f"data/{s}" for s in SPLITS),
        *(f"data/{s}/metadata.csv" for s in SPLITS),
    }
)
SHARD_PATH_RE = re.compile(rf"^data/(?:{'|'.join(SPLITS)})/\d{{4}}$")


def _entries(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry under ``root`` (relative POSIX path, lstat), symlinks never followed; a
    folder that cannot be listed is an error (``os.walk`` would skip it unchecked)."""
    for folder, dirs, files in os.walk(root, followlinks=False, onerror=raise_error):
        dirs.sort()
        for name in sorted([*dirs, *files]):
            path = Path(folder) / name
            yield path.relative_to(root).as_posix(), path.lstat()


def _check_layout(release: Path) -> Iterator[str]:
    for entry in sorted(release.iterdir()):
        if entry.name not in TOP_LEVEL:
            allowed = ", ".join(sorted(TOP_LEVEL))
            yield f"{masked_path(entry.name)}: not part of a release (allowed: {allowed})"
    for required in ("README.md", "LICENSE", "NOTICE.md"):
        if not os.path.lexists(release / required):
            yield f"{required}: missing"
    data = release / "data"
    if not data.is_dir():
        yield "data/: missing"
        return
    for entry in sorted(data.iterdir()):
        if entry.name not in SPLITS:
            yield f"data/{masked_path(entry.name)}: not a split (allowed: {', '.join(SPLITS)})"
    for rel, info in _entries(release):
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
            kind = "symbolic link" if stat.S_ISLNK(info.st_mode) else "special file"
            yield f"{masked_path(rel)}: a {kind}; a release holds regular files only"
    yield from crowded_folders(release)


def _check_split(
    release: Path,
    split: str,
    tiles: list[str],
    known: Mapping[str, tuple[str, str]] | None,
    unread: set[str],
) -> Iterator[str]:
    """``metadata.csv`` of one split; ``known``: the report's ``{name: (label, source)}`` of the
    split. A split whose ``metadata.csv`` cannot be read is added to ``unread``."""
    unread.add(split)  # until its rows are read
    folder = release / "data" / split
    if not folder.is_dir():
        yield f"data/{split}/: missing"
        return
    meta = folder / "metadata.csv"
    where = f"data/{split}/metadata.csv"
    if not os.path.lexists(meta):
        yield f"{where}: missing"
        return
    raw = read_file(meta)
    if raw is None:
        yield f"{where}: not a regular file"
        return
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:  # the rows are still read, with the bad bytes replaced
        line = raw[: exc.start].count(b"\n") + 1
        yield f"{where}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x}); the loader reads the file as UTF-8"
        text = raw.decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
    except csv.Error as exc:  # a field over the csv module's limit, a stray carriage return
        yield f"{where}:{reader.line_num}: not CSV ({exc})"
        return
    if header != ["file_name", "label"]:
        shown = [masked_path(c[:40]) for c in (header or [])]
        yield f"{where}: columns {shown}; allowed: file_name,label"
        return
    listed: dict[str, int] = {}
    try:
        yield from _check_rows(where, enumerate(reader, start=2), listed, known)
    except csv.Error as exc:  # read row by row: a bad row further down
        yield f"{where}:{reader.line_num}: not CSV ({exc})"
        return
    unread.discard(split)
    for name, times in listed.items():
        shown_name = masked_path(name[:60])
        if times > 1:
            yield f"data/{split}/{shown_name}: listed {times} times"
        if not _is_file(folder, name):
            yield f"data/{split}/{shown_name}: listed but missing"
    for rel in _split_entries(folder):
        if rel not in listed:
            yield f"data/{split}/{masked_path(rel)}: not listed in metadata.csv"
        elif TILE_PATH_RE.match(rel) and _regular(folder / rel):
            tiles.append(f"data/{split}/{rel}")


def _regular(path: Path) -> bool:
    """Whether ``path`` is a regular file itself (not a symbolic link to one)."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _is_file(folder: Path, name: str) -> bool:
    """Whether ``folder / name`` is a file; a name the system cannot look up (too long, a NUL)
    is not one."""
    try:
        return (folder / name).is_file()
    except (OSError, ValueError):
        return False


def _check_rows(
    where: str,
    rows: Iterable[tuple[int, list[str]]],
    listed: dict[str, int],
    known: Mapping[str, tuple[str, str]] | None,
) -> Iterator[str]:
    """Findings of ``metadata.csv``'s rows (numbered), read one by one; counts each listed name."""
    for number, row in rows:
        if len(row) != 2:
            yield f"{where}:{number}: {len(row)} fields; expected 2"
            continue
        name, label = row
        listed[name] = listed.get(name, 0) + 1
        shown_name = masked_path(name[:60])
        if label not in LABELS:
            yield f"{where}:{number}: label {masked_path(label[:40])!r}; allowed: Yes, No"
        if not TILE_PATH_RE.match(name):
            yield (
                f"{where}:{number}: file name {shown_name} is not opaque "
                "(d_tile_<12 letters>.jpg, or NNNN/d_tile_<12 letters>.jpg in a sub-folder)"
            )
        elif known is not None and name not in known:
            yield (
                f"{where}:{number}: {name} is not a tile of the private report "
                "(no hash or half check possible)"
            )
        elif known is not None and label in LABELS and known[name][0] != label:
            yield f"{where}:{number}: {name} labelled {label}; the build wrote {known[name][0]}"


def _split_entries(folder: Path) -> Iterator[str]:
    """The path under a split's folder of every entry but its ``metadata.csv``, with the entries
    of its sub-folders (``0000/``, ...: a real folder named by four digits) instead of the
    sub-folders; names, not ``Path`` objects (one folder holds up to 10,000)."""
    for name in sorted(os.listdir(folder)):
        if name == "metadata.csv":
            continue
        path = folder / name
        if SHARD_RE.match(name) and path.is_dir() and not path.is_symlink():
            yield from (f"{name}/{entry}" for entry in sorted(os.listdir(path)))
        else:
            yield name


def check_image(data: bytes, where: str) -> Iterator[str]:
    """Findings of a published tile's bytes: an RGB JPEG of 256x512, no metadata, a clean decode."""
    yield from inspect_image(data, where)[0]


def inspect_image(data: bytes, where: str) -> tuple[list[str], np.ndarray | None]:
    """:func:`check_image`'s findings, and the tile's RGB pixels (H x W x 3, uint8) when it
    decoded cleanly as an RGB JPEG of 256x512 (``None`` otherwise): the one decode that the
    build's gates and the half check share."""
    import simplejpeg

    findings: list[str] = []
    found = metadata_segments(data)
    if found:
        findings.append(f"{where}: metadata in image ({', '.join(found[:4])})")
    pixels: np.ndarray | None = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a decoder warning (a bomb, a broken chunk) is a finding
            with Image.open(io.BytesIO(data)) as image:
                if image.format != "JPEG" or image.size != HALF_SIZE or image.mode != "RGB":
                    findings.append(
                        f"{where}: {image.format} {image.mode} {image.size[0]}x{image.size[1]}; "
                        "expected an RGB JPEG of 256x512 (w x h)"
                    )
                    return findings, None
                image.load()
                pixels = np.asarray(image)
        simplejpeg.decode_jpeg(data, colorspace="rgb", strict=True, min_factor=8)
    except (OSError, SyntaxError, ValueError, Warning, Image.DecompressionBombError) as exc:
        findings.append(f"{where}: does not decode cleanly ({type(exc).__name__}: {str(exc)[:80]})")
        return findings, None
    return findings, pixels


def check_tile(data: bytes, where: str, composite: np.ndarray) -> tuple[list[str], np.ndarray | None]:
    """Every per-tile check of :func:`audit_tile` on a tile's bytes and its composite as
    displayed (512 x 512 x 3 RGB), decoded once by the caller; and the tile's pixels."""
    findings, pixels = inspect_image(data, where)
    if pixels is not None and not findings:
        findings.extend(half_findings(pixels, composite, where))
    return findings, pixels


def _check_text(release: Path, secrets: set[str], allowed: frozenset[float]) -> Iterator[str]:
    for rel, info in _entries(release):
        path = release / rel
        # An opaque tile name (letters only) or a structural name holds no private
        # value; anything else is checked against the report's values too.
        structural = TILE_NAME_RE.match(path.name) or rel in STRUCTURAL or SHARD_PATH_RE.match(rel)
        # Named (masked) only in a finding: most paths have none, and masking costs a scan.
        for finding in text_findings("", rel, () if structural else secrets):
            yield f"path {masked_path(rel)}{finding}"
        if stat.S_ISREG(info.st_mode) and path.suffix.lower() in TEXT_SUFFIXES:
            raw = read_file(path)
            if raw is None:
                continue  # replaced by a special file since the walk: the layout check says so
            text = raw.decode("utf-8", errors="replace")
            # metadata.csv rows are checked field by field (opaque names, Yes/No).
            where = masked_path(rel)
            yield from text_findings(
                where,
                text,
                () if path.name == "metadata.csv" else secrets,
                allowed if rel == "README.md" else frozenset(),
            )


def _check_files(release: Path, report: BuildReport) -> Iterator[str]:
    files = report.files
    present = {rel for rel, info in _entries(release) if not stat.S_ISDIR(info.st_mode)}
    # Set operations on the keys' view: only the differences are new sets, not a copy of files.
    for rel in sorted(present - files.keys()):
        yield f"{masked_path(rel)}: not written by the build (the private report does not list it)"
    for rel in sorted(files.keys() - present):
        yield f"{rel}: written by the build but missing"
    for rel in sorted(files):
        digest = files[rel]
        path = release / rel
        tile = TILE_NAME_RE.match(path.name)  # tiles are hashed in audit_tile, in parallel
        if rel not in present or tile:
            continue
        raw = read_file(path)
        if raw is None or hashlib.sha256(raw).hexdigest() != digest:
            yield f"{rel}: differs from the file the build wrote and audited"
    if report.release_digest is not None and files_digest(files) != report.release_digest:
        yield "private report: its file list does not match its own release digest (edited?)"


def audit_tile(task: tuple[str, str, str | None, str | None, Checked | None]) -> list[str]:
    """Every per-tile check of one published image (pure: runs in a worker process).

    Args:
        task: ``(release, relative path, composite path or None, recorded sha256 or None,
            checked or None)``. ``checked``: the SHA-256 of the bytes that the build's worker
            already checked with :func:`check_tile` (on the composite it had decoded) and the
            findings; they stand for this file when its bytes hash the same, so the tile and
            its composite are not decoded a second time.
    """
    release, rel, source, digest, checked = task
    path = Path(release) / rel
    data = read_file(path)  # read once: metadata, decoding and the hash all use it
    if data is None:
        return [f"{rel}: not a regular file, or cannot be read"]
    sha256 = hashlib.sha256(data).hexdigest()
    if digest is not None and sha256 != digest:
        return [*check_image(data, rel), f"{rel}: differs from the file the build wrote and audited"]
    if checked is not None and checked[0] == sha256 and source is not None:
        return list(checked[1])
    findings = list(check_image(data, rel))
    if source is not None and not findings:
        findings.extend(check_half(data, Path(source), rel))
    return findings


def check_half(published: bytes, source: Path, where: str) -> Iterator[str]:
    """Findings unless ``published`` is, block by block, the left half of ``source`` as displayed."""
    try:
        composite = open_displayed(source, strict=False)  # the build decoded it strictly
    except Rejected as exc:
        yield (
            f"{where}: its composite cannot be opened ({exc.reason.value}); "
            "cannot prove it is the Sentinel-2 half"
        )
        return
    except OSError:
        yield f"{where}: its composite is not at hand; cannot prove it is the Sentinel-2 half"
        return
    assert composite.size == COMPOSITE_SIZE
    with Image.open(io.BytesIO(published)) as image:
        pixels = np.asarray(image.convert("RGB"))
    yield from half_findings(pixels, np.asarray(composite), where)


def half_findings(pixels: np.ndarray, composite: np.ndarray, where: str) -> Iterator[str]:
    """Findings unless the tile's ``pixels`` are, block by block, the left half of the
    ``composite`` as displayed (both RGB arrays)."""
    shown = composite.astype(np.int16)
    left, right = shown[:, : HALF_SIZE[0]], shown[:, HALF_SIZE[0] :]
    pixels = pixels.astype(np.int16)
    to_left = np.abs(pixels - left)
    # A lossless cut of a 4:2:0 source may differ in its last column only (chroma
    # upsampling at the new edge): that column is left out of the block check.
    to_left[:, -1] = 0
    diff_left = _block_means(to_left)
    diff_right = _block_means(np.abs(pixels - right))
    if diff_right.mean() <= diff_left.mean():
        yield f"{where}: matches its composite's right (context) half, not the Sentinel-2 half"
        return
    bad = np.argwhere(diff_left > BLOCK_TOLERANCE)
    if len(bad):
        row, col = (int(v) for v in np.unravel_index(int(np.argmax(diff_left)), diff_left.shape))
        yield (
            f"{where}: {len(bad)} of {diff_left.size} {BLOCK}x{BLOCK} blocks differ from its composite's "
            f"Sentinel-2 half (worst at x={col * BLOCK}, y={row * BLOCK}: mean |diff| "
            f"{diff_left[row, col]:.1f} > {BLOCK_TOLERANCE}); context pixels may have been pasted in"
        )


def _block_means(diff: np.ndarray) -> np.ndarray:
    """Mean of ``diff`` (H x W x 3) over each BLOCK x BLOCK block: (H/BLOCK) x (W/BLOCK)."""
    height, width = diff.shape[0] // BLOCK, diff.shape[1] // BLOCK
    blocks = diff[: height * BLOCK, : width * BLOCK].reshape(height, BLOCK, width, BLOCK, -1)
    means: np.ndarray = blocks.mean(axis=(1, 3, 4))
    return means


def load_report(path: Path) -> BuildReport:
    """The private report of a build at ``path``, checked for the fields the audit reads.

    Raises:
        ConfigError: not a regular file, not JSON, nested too deeply, not an object, or
            without the ``tiles`` and ``files`` of a report that ``cropmark build`` writes, or
            with a field missing or of the wrong type; one line naming the file and the field
            (never a value of it: the report is private).
    """
    data = load_json(path, "private report of `cropmark build`")
    try:
        return BuildReport.from_dict(data, private=True)
    except ReportError as exc:
        raise ConfigError(f"{path} is not a private report of `cropmark build`: {exc}") from None


def audit_release(
    release: Path,
    report: BuildReport | None,
    map_: Callable[..., Iterable[list[str]]] = map,
    checked: Mapping[str, Checked] | None = None,
) -> list[str]:
    """Every finding against ``release``; an empty list means it may be published.

    Args:
        release: the release folder (final or staged).
        report: the private report of the build; ``None`` is itself a finding,
            because without it nothing proves the images are Sentinel-2 halves.
        map_: how to map :func:`audit_tile` over the tiles (``map``, or a process
            pool's ``map`` to spread the image checks over cores).
        checked: per tile path, what the build's worker checked (:func:`check_tile`): the
            SHA-256 of the bytes and the findings, used only where the file hashes the same.
    """
    if release.is_symlink():
        return [f"{release.name}: a symbolic link; a release is a folder of regular files"]
    if not release.is_dir():
        return [f"{release}: not a folder"]
    findings = list(_check_layout(release))
    findings += journal_findings(release)
    tiles: list[str] = []
    known: dict[str, dict[str, tuple[str, str]]] = {split: {} for split in SPLITS}  # name: (label, source)
    secrets = private_values(report.tiles if report is not None else ())
    for tile in report.tiles if report is not None else ():
        # One text per label, not one per record read back: the map holds a tuple per tile.
        known.setdefault(tile.split, {})[tile.file_name] = (sys.intern(tile.label), tile.source)
    unread: set[str] = set()  # splits whose metadata.csv is missing or cannot be read
    for split in SPLITS:
        findings.extend(
            _check_split(release, split, tiles, known[split] if report is not None else None, unread)
        )
    allowed = card_numbers(report.quoted_parts() if report is not None else ())
    findings.extend(_check_text(release, secrets, allowed))
    if report is None:
        findings.append("no private report: cannot check hashes or which half was published")
    else:
        findings.extend(_check_files(release, report))
        published = set(tiles)
        findings.extend(  # in the order of the paths: by split, then by name
            f"data/{split}/{name}: in the private report but not published"
            for split in sorted(known)
            if split not in unread  # its metadata.csv's own finding says it: not one per tile
            for name in sorted(known[split])
            if f"data/{split}/{name}" not in published
        )
        del published

    def source(rel: str) -> str | None:
        """The composite of the tile at ``rel``, when the report has one."""
        _, split, name = rel.split("/", 2)
        if report is None or name not in known.get(split, {}):
            return None
        return str(Path(report.corpus) / known[split][name][1])

    digests = report.files if report is not None else {}
    done = checked or {}
    tasks = (  # made as the map takes them, not all at once
        (str(release), rel, source(rel), digests.get(rel), done.get(rel)) for rel in tiles
    )
    for tile_findings in progress.bar(map_(audit_tile, tasks), "audit", len(tiles), unit="tile"):
        findings.extend(tile_findings)
    return redact(findings, secrets)


def audit_sibling(root: Path, report: BuildReport, private: Path | None = None) -> list[str]:
    """:func:`builder.layouts.audit.audit_layout` of ``root`` with the parts of ``report`` it reads.

    Args:
        root: the sibling-layout release's folder.
        report: the private report of its build.
        private: the release's ``<version>.private`` folder (the SFT site map), if any.
    """
    allowed = card_numbers(report.quoted_parts())
    return audit_layout(root, report.layout, report.policy, report.tiles, report.files, allowed, private)


def audit_any(
    release: Path, report: BuildReport | None, map_: Callable[..., Iterable[list[str]]] = map
) -> list[str]:
    """:func:`audit_release` for the primary layout (or no report), else the layout audit of the
    one the report names."""
    layout = registry.LAYOUTS.get(report.layout) if report is not None else registry.primary()
    if report is None and (sibling := _sibling_without_report(release)) is not None:
        # Its layout is not checked; what needs no report still is: values and patterns that
        # must never be published, in every path and text file (a hostile test hid a
        # coordinate in README.md behind a stray data/x.parquet).
        return redact([sibling, *_check_text(release, set(), card_numbers(()))], set())
    if report is None or (layout is not None and layout.primary):
        return audit_release(release, report, map_)
    return audit_sibling(release, report, release.with_name(release.name + ".private"))


def _sibling_without_report(release: Path) -> str | None:
    """The layout finding for a release of another layout than the primary one audited
    without its private report (which names the layout), or ``None``: checked as the primary layout,
    it got a finding for each missing ``metadata.csv`` and each file that layout never writes.

    A release with a split folder of the primary layout (``data/train/``) is one of it,
    whatever stray files it holds: it is audited as one, and those files are findings.
    """
    if not release.is_dir() or release.is_symlink():
        return None
    if any(os.path.lexists(release / "data" / split) for split in SPLITS):
        return None
    marks = (
        (folder, suffix, layout.name) for layout in registry.siblings() for folder, suffix in layout.marks
    )
    for folder, suffix, layout in marks:
        where = release / folder
        if where.is_symlink() or not where.is_dir():
            continue
        found = sorted(
            p for p in where.iterdir() if p.suffix == suffix and p.is_file() and not p.is_symlink()
        )
        if found:
            rel = masked_path(found[0].relative_to(release).as_posix())
            return (
                f"no private report: {rel} is a file of the {layout} layout, which is audited only "
                "against its build's private report (read from RELEASE.private/report.json, or "
                "give --report)"
            )
    return None
