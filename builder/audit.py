"""Audit: the border post. Prove a release leaks nothing and is well formed.

A release passes only with zero findings. Checked:

- layout: only ``README.md``, ``LICENSE``, ``NOTICE.md`` and ``data/{train,eval}/``;
  at most 10,000 files in any folder (the Hub's hard limit);
- ``metadata.csv``: exactly the columns ``file_name,label``, labels ``Yes``/``No``,
  opaque file names, every image listed once and every listed file present;
- images: 256x512 RGB JPEG with no metadata segment (EXIF, XMP, ICC, JFIF, COM,
  trailing bytes: see :mod:`builder.scrub`);
- text (every text file and every path): nothing coordinate-, date- or ID-like,
  and none of the private report's own values (source IDs, coordinates, dates,
  source file names);
- against the private report: every published file has the hash the build
  recorded, and every published image matches its composite's **left**
  (Sentinel-2) half, not the right (context) half.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from builder.composite import COMPOSITE_SIZE, HALF_SIZE
from builder.model.prompt import LABELS
from builder.records import SPLITS
from builder.scrub import metadata_segments

TOP_LEVEL = frozenset({"README.md", "LICENSE", "NOTICE.md", "data"})
MAX_FILES_PER_FOLDER = 10_000  # Hub hard limit per folder (FACTS.md, Hub limits)
NAME_RE = re.compile(r"^d_tile_[a-p]{12}\.jpg$")
# A published tile must be this close to its composite's left half (mean absolute
# difference, 0-255); lossless cuts give 0 to 0.02, one q95 re-encode about 1.
LEFT_TOLERANCE = 4.0

# Things that look like a place, a time or a record identifier.
PATTERNS = {
    "coordinate pair": re.compile(r"-?\d{1,3}\.\d{3,}\s*[,;/ _]\s*-?\d{1,3}\.\d{3,}"),
    "high-precision decimal": re.compile(r"(?<![\d.])-?\d{1,3}\.\d{5,}(?![\d.])"),
    "degrees-minutes": re.compile(r"\d{1,3}\s*°\s*\d{1,2}\s*['′]"),  # noqa: RUF001 (prime)
    "date": re.compile(r"(?<!\d)(?:19|20)\d{2}[-/.](?:0[1-9]|1[0-2])[-/.](?:0[1-9]|[12]\d|3[01])(?!\d)"),
    "compact date": re.compile(r"(?<!\d)(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)"),
    "Sentinel-2 product id": re.compile(r"S2[ABC]_MSI|_N0\d{3}_R\d{3}_"),
    "MGRS tile id": re.compile(r"(?<![A-Za-z0-9])T\d{2}[C-HJ-NP-X][A-HJ-NP-Z]{2}(?![A-Za-z0-9])"),
    "UTM coordinate": re.compile(r"(?<!\d)\d{6,7}(?:\.\d+)?\s*[,;]\s*\d{6,7}(?:\.\d+)?(?!\d)"),
}
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
TEXT_SUFFIXES = {".md", ".txt", ".csv", ".json", ".jsonl", ".yaml", ".yml", ""}


def text_findings(where: str, text: str, secrets: Iterable[str]) -> Iterator[str]:
    for label, pattern in PATTERNS.items():
        match = pattern.search(text)
        if match:
            yield f"{where}: {label}-like string {match.group(0)!r}"
    lowered = text.lower()
    for secret in secrets:
        if secret.lower() in lowered:
            yield f"{where}: holds a private value of the report ({secret[:3]}…)"


def private_values(report: dict[str, Any]) -> set[str]:
    """Strings from the private report that must never appear in a release."""
    values: set[str] = set()
    for tile in report.get("tiles", []):
        source = PurePosixPath(tile["source"])
        values.add(source.stem)
        values.add(tile["source_sha256"][:12])
        site = tile.get("site")
        if site:
            values.add(site["source_id"])
            values.add(site["date"])
            values.add(site["date"].replace("-", ""))
            for key in ("lat", "lon"):
                for decimals in (3, 4, 5, 6):
                    values.add(f"{site[key]:.{decimals}f}")
    return {v for v in values if len(v) >= 5}


def _check_layout(release: Path) -> Iterator[str]:
    for entry in sorted(release.iterdir()):
        if entry.name not in TOP_LEVEL:
            yield f"{entry.name}: not part of a release (allowed: {', '.join(sorted(TOP_LEVEL))})"
    for required in ("README.md", "LICENSE", "NOTICE.md"):
        if not (release / required).is_file():
            yield f"{required}: missing"
    data = release / "data"
    if not data.is_dir():
        yield "data/: missing"
        return
    for entry in sorted(data.iterdir()):
        if entry.name not in SPLITS:
            yield f"data/{entry.name}: not a split (allowed: {', '.join(SPLITS)})"
    yield from crowded_folders(release)


def crowded_folders(root: Path) -> Iterator[str]:
    """Every folder under ``root`` (itself included) with more entries than the Hub accepts."""
    for folder in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
        n = sum(1 for _ in folder.iterdir())
        if n > MAX_FILES_PER_FOLDER:
            where = folder.relative_to(root).as_posix() or "."
            yield f"{where}/: {n} entries; the Hub refuses more than {MAX_FILES_PER_FOLDER} per folder"


def _check_split(release: Path, split: str, tiles: list[str]) -> Iterator[str]:
    folder = release / "data" / split
    if not folder.is_dir():
        yield f"data/{split}/: missing"
        return
    meta = folder / "metadata.csv"
    if not meta.is_file():
        yield f"data/{split}/metadata.csv: missing"
        return
    rows = list(csv.reader(io.StringIO(meta.read_text(encoding="utf-8", errors="replace"))))
    if not rows or rows[0] != ["file_name", "label"]:
        yield f"data/{split}/metadata.csv: columns {rows[0] if rows else []}; allowed: file_name,label"
        return
    listed: dict[str, int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 2:
            yield f"data/{split}/metadata.csv:{number}: {len(row)} fields; expected 2"
            continue
        name, label = row
        listed[name] = listed.get(name, 0) + 1
        if label not in LABELS:
            yield f"data/{split}/metadata.csv:{number}: label {label[:20]!r}; allowed: Yes, No"
        if not NAME_RE.match(name):
            yield (
                f"data/{split}/metadata.csv:{number}: file name {name[:40]!r} is not opaque "
                "(d_tile_<12 letters>.jpg)"
            )
    for name, times in listed.items():
        if times > 1:
            yield f"data/{split}/{name}: listed {times} times"
        if not (folder / name).is_file():
            yield f"data/{split}/{name}: listed but missing"
    for path in sorted(folder.iterdir()):
        if path.name == "metadata.csv":
            continue
        if path.name not in listed:
            yield f"data/{split}/{path.name}: not listed in metadata.csv"
        if path.is_file() and path.name in listed:
            tiles.append(f"data/{split}/{path.name}")


def _check_image(data: bytes, where: str) -> Iterator[str]:
    found = metadata_segments(data)
    if found:
        yield f"{where}: metadata in image ({', '.join(found[:4])})"
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "JPEG" or image.size != HALF_SIZE or image.mode != "RGB":
                yield (
                    f"{where}: {image.format} {image.mode} {image.size[0]}x{image.size[1]}; "
                    "expected an RGB JPEG of 256x512 (w x h)"
                )
            image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        yield f"{where}: does not decode ({exc})"


def _check_text(release: Path, secrets: set[str]) -> Iterator[str]:
    for path in sorted(release.rglob("*")):
        rel = path.relative_to(release).as_posix()
        # An opaque tile name (letters only) or a structural name holds no private
        # value; anything else is checked against the report's values too.
        structural = NAME_RE.match(path.name) or rel in STRUCTURAL
        yield from text_findings(f"path {rel}", rel, () if structural else secrets)
        if path.is_file() and path.suffix.lower() in TEXT_SUFFIXES:
            text = path.read_bytes().decode("utf-8", errors="replace")
            # metadata.csv rows are checked field by field (opaque names, Yes/No).
            yield from text_findings(rel, text, () if path.name == "metadata.csv" else secrets)


def _check_files(release: Path, report: dict[str, Any]) -> Iterator[str]:
    files: dict[str, str] = report.get("files", {})
    for rel, digest in sorted(files.items()):
        path = release / rel
        tile = NAME_RE.match(path.name)  # tiles are hashed in audit_tile, in parallel
        if path.is_file() and not tile and hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            yield f"{rel}: differs from the file the build wrote and audited"


def _reduced(image: Image.Image) -> np.ndarray:
    """Pixels at 1/4 scale: JPEG DCT scaling where possible (enough to tell halves apart)."""
    width, height = image.size
    image.draft("RGB", (width // 4, height // 4))
    small = image.convert("RGB")
    if small.size != (width // 4, height // 4):
        small = small.resize((width // 4, height // 4), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.int16)


def audit_tile(task: tuple[str, str, str | None, str | None]) -> list[str]:
    """Every per-tile check of one published image (pure: runs in a worker process).

    Args:
        task: ``(release, relative path, composite path or None, recorded sha256 or None)``.
    """
    release, rel, source, digest = task
    path = Path(release) / rel
    data = path.read_bytes()  # read once: metadata, decoding and the hash all use it
    findings = list(_check_image(data, rel))
    if digest is not None and hashlib.sha256(data).hexdigest() != digest:
        findings.append(f"{rel}: differs from the file the build wrote and audited")
    if source is not None and not findings:
        findings.extend(_check_half(path, Path(source), rel))
    return findings


def _check_half(published: Path, source: Path, where: str) -> Iterator[str]:
    if not source.is_file():
        yield f"{where}: its composite is not at hand; cannot prove it is the Sentinel-2 half"
        return
    with Image.open(source) as composite:
        if composite.size != COMPOSITE_SIZE:
            yield f"{where}: its composite is {composite.size}, not 512x512"
            return
        reduced = _reduced(composite)
    quarter = HALF_SIZE[0] // 4
    left, right = reduced[:, :quarter], reduced[:, quarter:]
    with Image.open(published) as image:
        pixels = _reduced(image)
    to_left = float(np.abs(pixels - left).mean())
    to_right = float(np.abs(pixels - right).mean())
    if to_right <= to_left:
        yield f"{where}: matches its composite's right (context) half, not the Sentinel-2 half"
    elif to_left > LEFT_TOLERANCE:
        yield (
            f"{where}: differs from its composite's Sentinel-2 half "
            f"(mean |diff| {to_left:.1f} > {LEFT_TOLERANCE})"
        )


def audit_release(
    release: Path, report: dict[str, Any] | None, map_: Callable[..., Iterable[list[str]]] = map
) -> list[str]:
    """Every finding against ``release``; an empty list means it may be published.

    Args:
        release: the release folder (final or staged).
        report: the private report of the build; ``None`` is itself a finding,
            because without it nothing proves the images are Sentinel-2 halves.
        map_: how to map :func:`audit_tile` over the tiles (``map``, or a process
            pool's ``map`` to spread the image checks over cores).
    """
    if not release.is_dir():
        return [f"{release}: not a folder"]
    findings = list(_check_layout(release))
    tiles: list[str] = []
    for split in SPLITS:
        findings.extend(_check_split(release, split, tiles))
    findings.extend(_check_text(release, private_values(report or {})))
    sources: dict[str, str] = {}
    if report is None:
        findings.append("no private report: cannot check hashes or which half was published")
    else:
        findings.extend(_check_files(release, report))
        corpus = Path(report.get("corpus", ""))
        sources = {f"data/{t['split']}/{t['file_name']}": str(corpus / t["source"]) for t in report["tiles"]}
        findings.extend(
            f"{rel}: in the private report but not published" for rel in sorted(set(sources) - set(tiles))
        )
    digests: dict[str, str] = (report or {}).get("files", {})
    tasks = [(str(release), rel, sources.get(rel), digests.get(rel)) for rel in tiles]
    for tile_findings in map_(audit_tile, tasks):
        findings.extend(tile_findings)
    return findings


def audit_any(
    release: Path, report: dict[str, Any] | None, map_: Callable[..., Iterable[list[str]]] = map
) -> list[str]:
    """:func:`audit_release`, or the sibling layout's audit when the report names one."""
    layout = (report or {}).get("layout", "imagefolder")
    if layout == "imagefolder":
        return audit_release(release, report, map_)
    from builder.formats.audit import audit_layout

    return audit_layout(release, report or {}, release.with_name(release.name + ".private"))
