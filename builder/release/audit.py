"""Audit: the border post. Prove a release leaks nothing and is well formed.

A release passes only with zero findings. Every finding names the file (and the
line, for text), what was found, and masks any value it quotes (``51.5…``): a
finding never prints a private value in full. Checked:

- layout: only ``README.md``, ``LICENSE``, ``NOTICE.md`` and ``data/{train,eval}/``;
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
- text (every text file, line by line, and every path): none of :data:`PATTERNS`,
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
import functools
import hashlib
import html
import io
import math
import os
import re
import stat
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from builder import progress
from builder.ingest.composite import COMPOSITE_SIZE, HALF_SIZE, Rejected, open_displayed
from builder.ingest.scrub import metadata_segments
from builder.model.prompt import LABELS
from builder.records import SPLITS

TOP_LEVEL = frozenset({"README.md", "LICENSE", "NOTICE.md", "data"})
# Hub hard limit per folder: https://huggingface.co/docs/hub/repositories-recommendations
MAX_FILES_PER_FOLDER = 10_000
NAME_RE = re.compile(r"^d_tile_[a-p]{12}\.jpg$")
# The half check compares 16x16-pixel blocks (mean absolute difference over the
# block's 768 values, 0-255) with the composite's left half. Measured on the sample
# corpus: lossless cuts stay under 1 in every block (4:2:0 sources differ only in
# the last column), q95 4:4:4 re-encodes under 2.5; a pasted context patch gives
# tens. Any patch of 32x32 pixels or more covers at least one whole aligned block.
BLOCK = 16
BLOCK_TOLERANCE = 6.0

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?"
_YEAR = r"(?:19|20)\d{2}"
_NUM_END = r"(?!\.?\d)"  # not followed by more digits (a full stop may end a sentence)
_GEOHASH = "0-9b-hjkmnp-z"  # the geohash base-32 alphabet (no a, i, l, o)
# Things that look like a place, a time or a record identifier; see the README for
# examples. Every pattern runs on normalised text (:func:`normalise`: entities
# unescaped, NFKC, every decimal digit as ASCII, invisible characters removed,
# whitespace runs as one space), and no two adjacent parts of a pattern can both
# match the same run of characters, so matching stays linear in the line's length.
PATTERNS: dict[str, re.Pattern[str]] = {
    "coordinate pair": re.compile(
        r"(?<![\d.])-?\d{1,3}\.\d{3,}(?: ?[,;/_] ?| )-?\d{1,3}\.\d{3,}"
        + _NUM_END
        + r"|(?<![\d.,])-?\d{1,3},\d{3,}(?: ?[;/_] ?| )-?\d{1,3},\d{3,}(?![\d,])"
    ),
    "hemisphere coordinate": re.compile(
        r"(?<![A-Za-z0-9])[NSEW] ?\d{1,3}[.,]\d{2,}"
        r"|(?<![\d.,])\d{1,3}[.,]\d{2,} ?°? ?[NSEW](?![A-Za-z])"
    ),
    "latitude/longitude label": re.compile(
        r"(?i)(?<![a-z])(?:lat(?:itude)?|lon(?:g(?:itude)?)?|lng)(?![a-z]) ?(?:[:=] ?)?-?\d+(?:[.,]\d+)?"
    ),
    "degrees": re.compile(r"\d{1,3}(?:\.\d+)? ?°"),
    "degrees, minutes, seconds": re.compile(
        r"(?i)(?<![\d.])\d{1,3} ?[d°] ?\d{1,2} ?['m\u2032] ?\d{1,2}(?:\.\d+)?"
        r"|(?<![\d.:])\d{1,3}:[0-5]\d:[0-5]\d(?:\.\d+)?(?![\d:])"
        r"|(?<![\d.])\d{1,3} [0-5]?\d [0-5]?\d(?:\.\d+)? ?[NSEW](?![A-Za-z])"
        r"|(?<![\d.])\d{1,3} ?[°d]? ?[0-5]?\d ?['\u2032] ?[0-5]?\d(?:\.\d+)? ?(?:\"|''|\u2033)"
    ),
    "high-precision decimal": re.compile(r"(?<![\d.])-?\d{1,3}\.\d{4,}" + _NUM_END),
    "decimal-comma decimal": re.compile(r"(?<![\d.,])-?\d{1,3},\d{4,}(?![\d,])"),
    "UTM coordinate": re.compile(r"(?<![\d.])\d{6,7}(?:\.\d+)?(?: ?[,;] ?| )\d{6,7}(?:\.\d+)?" + _NUM_END),
    "CRS code": re.compile(r"(?i)(?<![a-z])epsg ?:? ?\d{4,5}(?!\d)"),
    "British National Grid reference": re.compile(
        r"(?<![A-Za-z0-9])[HJNOST][A-HJ-Z] ?"
        r"(?:\d{2} ?\d{2}|\d{3} ?\d{3}|\d{4} ?\d{4}|\d{5} ?\d{5})(?!\d)"
        r"|(?i:(?<![a-z0-9])[hjnost][a-hj-z] ?(?:\d{3} ?\d{3}|\d{4} ?\d{4}|\d{5} ?\d{5})(?!\d))"
    ),
    "MGRS reference": re.compile(r"(?i)(?<![a-z0-9])t?\d{2}[c-hj-np-x][a-hj-np-z]{2}(?![a-z])"),
    "Maidenhead locator": re.compile(r"(?<![A-Za-z0-9])[A-R]{2}\d{2}[A-Xa-x]{2}(?:\d{2})?(?![A-Za-z0-9])"),
    "geohash": re.compile(rf"(?<![A-Za-z0-9_])[{_GEOHASH}]{{7,12}}(?![A-Za-z0-9_])"),
    "plus code": re.compile(r"(?<![A-Z0-9])[23456789CFGHJMPQRVWX]{4,8}\+[23456789CFGHJMPQRVWX]{2,3}"),
    "what3words address": re.compile(r"///[a-z]+\.[a-z]+\.[a-z]+"),
    "date": re.compile(
        r"(?<!\d)" + _YEAR + r"([-/. ])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12]\d|3[01])(?!\d)"
        r"|(?<!\d)\d{1,2}[-/.]\d{1,2}[-/.]" + _YEAR + r"(?!\d)"
        r"|(?<![\d.:/-])\d{1,2}([-/.])\d{1,2}\2\d{2}(?![\d.:/-])"
    ),
    "week or ordinal date": re.compile(
        r"(?i)(?<!\d)" + _YEAR + r"-?w(?:0[1-9]|[1-4]\d|5[0-3])(?:-?[1-7])?(?![\d])"
        r"|(?<![\d.-])" + _YEAR + r"-(?:00[1-9]|0[1-9]\d|[12]\d{2}|3[0-5]\d|36[0-6])(?![\d-])"
    ),
    "month and year": re.compile(
        r"(?<![\d/.-])(?:(?:0?[1-9]|1[0-2])/|(?:0[1-9]|1[0-2])[.-])" + _YEAR + r"(?![\d/.-])"
        r"|(?<!\d)" + _YEAR + r"[/-](?:0[1-9]|1[0-2])(?![\d/-])"
    ),
    "date with a month name": re.compile(
        r"(?i)(?<![a-z0-9])" + _DAY + r"[ -]+" + _MONTH + r"\.?,?[ -]+'?(?:" + _YEAR + r"|\d{2})(?!\d)"
        r"|(?<![a-z])" + _MONTH + r"\.? " + _DAY + r",? " + _YEAR + r"(?!\d)"
        r"|(?<![a-z])" + _MONTH + r"\.?,? '?" + _YEAR + r"(?!\d)"
        r"|(?<!\d)" + _YEAR + r" " + _MONTH + r"(?![a-z])"
    ),
    "compact date": re.compile(r"(?<!\d)" + _YEAR + r"(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)"),
    "Sentinel-2 product id": re.compile(r"S2[ABC]_MSI|_N0\d{3}_R\d{3}_"),
    # Capitals, with or without a separator (MSO1234, ASK-123456); any case when glued
    # (mso1234), so that the release's own lower-case names (train-00000) are not one.
    "record identifier": re.compile(
        r"(?<![A-Za-z0-9])[A-Z]{2,5}[-_]?\d{4,}(?![A-Za-z0-9])|(?i:(?<![a-z0-9])[a-z]{2,5}\d{4,}(?![a-z0-9]))"
    ),
    "labelled record number": re.compile(
        r"(?i)(?<![a-z])(?:her|smr|nmr|canmore|id|record|monument|entry|ref|reference|no\.|nr\.?)"
        r" ?[:#]? ?\d{4,}(?!\d)"
    ),
    "record number": re.compile(r"(?<![\d.,])\d{6,}" + _NUM_END),
}
# Patterns that match one number: a match equal to one of the card's own figures is allowed.
NUMBER_PATTERNS = frozenset({"high-precision decimal", "record number"})
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
_WORD = "A-Za-z0-9"


# A match of these patterns is a finding only when its characters pass the test too.
_CHECKS: dict[str, Callable[[str], bool]] = {
    # A geohash mixes digits and letters; an ordinary word or number is not one.
    "geohash": lambda found: any(c.isdigit() for c in found) and sum(c.isalpha() for c in found) >= 2,
}
_INVISIBLE = re.compile(r"[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")
_SPACE = re.compile(r"\s+")
_DIGIT_GROUP = re.compile(r"(?<=\d)_(?=\d)")


def normalise(line: str) -> str:
    """``line`` as the patterns read it, so that no spelling hides a value from them.

    HTML entities are unescaped (``&#52;`` is ``4``, repeatedly for ``&amp;#52;``),
    the text is NFKC-normalised (fullwidth digits U+FF10-FF19 become ``0``-``9``),
    every other decimal digit (Arabic-Indic U+0660-0669) becomes its ASCII digit, invisible
    format characters (zero-width space and joiners, soft hyphen, bidi controls)
    are removed, and every run of whitespace becomes one space (which also bounds
    the work of every pattern on long runs of spaces). An underscore between two
    digits is dropped (``51.50_74`` is ``51.5074``, Python's digit grouping).
    """
    line = _DIGIT_GROUP.sub("", line)
    if line.isascii() and "&" not in line:
        return _SPACE.sub(" ", line)
    for _ in range(3):
        unescaped = html.unescape(line)
        if unescaped == line:
            break
        line = unescaped
    line = unicodedata.normalize("NFKC", line).replace("\u066b", ".").replace("\u066c", ",")
    line = "".join(
        str(unicodedata.decimal(c)) if not c.isascii() and unicodedata.decimal(c, None) is not None else c
        for c in line
        if unicodedata.category(c) != "Cf"
    )
    line = _DIGIT_GROUP.sub("", line)
    return _SPACE.sub(" ", _INVISIBLE.sub("", line))


def mask(value: str) -> str:
    """A value shortened so that it can be recognised but never read in full: ``51.5…``."""
    value = value.strip()
    keep = min(4, max(1, len(value) - 3))
    return f"{value[:keep]}…"


def text_findings(
    where: str, text: str, secrets: Iterable[str], allowed: frozenset[float] = frozenset()
) -> Iterator[str]:
    """Findings of :data:`PATTERNS` and private values in ``text``, one per line and kind.

    Each line is read :func:`normalise`-d.

    Args:
        where: the file (``README.md``) or a description (``path data/x``) named in findings.
        text: the text to scan.
        secrets: private values of the report (see :func:`secret_re`, any case).
        allowed: the card's own figures; a number-only pattern matching one is not a finding.
    """
    lines = [normalise(line) for line in text.splitlines() or [""]]
    squashed = _squash("\n".join(lines))
    # Values are read normalised too (a stem's "_2022" loses its digit-grouping underscore).
    normal = {s: normalise(s) for s in secrets}
    needles = [(s, secret_re(normal[s])) for s in secrets if _squash(normal[s]) in squashed]  # fast first
    fixed = fixed_text()
    for number, line in enumerate(lines, start=1):
        at = f"{where}:{number}" if "\n" in text else where
        for label, pattern in PATTERNS.items():
            check = _CHECKS.get(label)
            for match in pattern.finditer(line):
                found = match.group(0)
                if found.lower() in fixed or (label in NUMBER_PATTERNS and _is_allowed(found, allowed)):
                    continue  # the project's own template or licence text, or the card's own figure
                if check is not None and not check(found):
                    continue
                yield f"{at}: {label}-like string {mask(found)}"
                break
        for secret, needle in needles:
            if needle.search(line):
                yield f"{at}: holds a private value of the report ({mask(secret)})"


def _squash(text: str) -> str:
    """``text`` lower case without the separators a record ID may be written with (``TAV 0263``)."""
    return text.lower().replace(" ", "").replace("-", "").replace("_", "")


@functools.lru_cache(maxsize=65536)
def _word_re(secret: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![{_WORD}]){re.escape(secret)}(?![{_WORD}])", re.IGNORECASE)


@functools.lru_cache(maxsize=65536)
def secret_re(secret: str) -> re.Pattern[str]:
    """How a private value is found in text, in any case.

    A value with a digit (a record ID, a coordinate, a date, a hash) is found
    wherever it is not part of a longer number, glued to letters too
    (``lat41.2733``, ``idAIM0012345x``); a value of letters only (a source file
    stem) as a whole word, so that a stem does not match inside ordinary words.
    """
    if match := re.fullmatch(r"([A-Za-z]+)[-_ ]?(\d+)", secret):  # a record ID: TAV0263, TAV 0263, TAV-0263
        letters, digits = match.groups()
        return re.compile(rf"(?<![A-Za-z]){re.escape(letters)}[-_ ]?{digits}(?!\d)", re.IGNORECASE)
    if any(c.isdigit() for c in secret):
        return re.compile(rf"(?<!\d){re.escape(secret)}(?!\d)", re.IGNORECASE)
    return _word_re(secret)


def _is_allowed(text: str, allowed: frozenset[float]) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return any(math.isclose(value, a, rel_tol=1e-9, abs_tol=1e-12) for a in allowed)


def numbers_in(value: Any, skip: frozenset[str] = frozenset()) -> Iterator[float]:
    """Every finite number (never a bool) in a JSON-like ``value``; mapping keys in ``skip`` are not read."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float) and math.isfinite(value):
        yield float(value)
    elif isinstance(value, Mapping):
        for key, inner in value.items():
            if key not in skip:
                yield from numbers_in(inner, skip)
    elif isinstance(value, list | tuple):
        for inner in value:
            yield from numbers_in(inner, skip)


def card_numbers(report: Mapping[str, Any]) -> frozenset[float]:
    """The allow-list: every number the card quotes from the report, and each as a percentage.

    Taken from the report's ``counts``, ``gates`` (thresholds and counts), ``leakage``
    (threshold, distances), ``cut_modes`` and ``layout_summary`` (shard rows and
    bytes); never from tiles or sites.
    """
    found: set[float] = set()
    for key in ("counts", "gates", "leakage", "cut_modes", "layout_summary"):
        for number in numbers_in(report.get(key), frozenset({"hashes"})):
            found.update({number, number * 100})
    return frozenset(found)


@functools.lru_cache(maxsize=1)
def fixed_text() -> str:
    """The project's own fixed text (card templates, licences, the source registry), lower case.

    It is written by the project, not taken from any corpus: a pattern match that
    is part of it (a link in the Copernicus notice) is allowed, and a source file
    named after one of its words ("image", "cloudy") is not a leak.
    """
    from builder.ingest.sources import SOURCES, UNRECORDED
    from builder.release.cards import CARDS_DIR

    parts = [p.read_text(encoding="utf-8") for p in sorted(CARDS_DIR.rglob("*")) if p.is_file()]
    parts += [f"{s.name}\n{s.licence}\n{s.attribution}" for s in (*SOURCES.values(), UNRECORDED)]
    return "\n".join(parts).lower()


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
                    values.add(f"{abs(site[key]):.{decimals}f}")
    fixed = fixed_text()
    return {v for v in values if len(v) >= 5 and not (v.lower() in fixed and secret_re(v).search(fixed))}


def _entries(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry under ``root`` (relative POSIX path, lstat), symlinks never followed."""
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted([*dirs, *files]):
            path = Path(folder) / name
            yield path.relative_to(root).as_posix(), path.lstat()


def read_file(path: Path) -> bytes | None:
    """The bytes of a release file, or ``None`` when it is not a regular file or cannot be read.

    Read with :func:`builder.ingest.corpus.read_regular`: a FIFO, a device or a folder in a
    file's place is refused by type, never opened for a blocking read, so nothing
    in a release can hang the audit.
    """
    from builder.ingest.corpus import read_regular

    try:
        return read_regular(path)
    except OSError:
        return None


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


def masked_path(rel: str) -> str:
    """``rel`` with every :data:`PATTERNS` match masked (``data/m_2021….csv``)."""
    spans = sorted(m.span() for pattern in PATTERNS.values() for m in pattern.finditer(rel))
    return _mask_spans(rel, spans)


def _mask_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each span masked; overlapping or touching spans are masked as one."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, last = [], 0
    for start, end in merged:
        out += [text[last:start], mask(text[start:end])]
        last = end
    return "".join(out) + text[last:]


def redact(findings: Iterable[str], secrets: Iterable[str]) -> list[str]:
    """``findings`` with every private value that a finding quotes masked (a last safety net).

    A value is masked wherever it occurs, inside a word or a longer number too: a
    finding never prints a private value in full.
    """
    secrets = sorted(secrets, key=len, reverse=True)
    out = []
    for finding in findings:
        lowered = finding.lower()
        spans = [
            (i, i + len(s)) for s in secrets if s.lower() in lowered for i in _occurrences(lowered, s.lower())
        ]
        out.append(_mask_spans(finding, sorted(spans)))
    return out


def _occurrences(text: str, needle: str) -> Iterator[int]:
    start = text.find(needle)
    while start >= 0:
        yield start
        start = text.find(needle, start + 1)


def crowded_folders(root: Path) -> Iterator[str]:
    """Every folder under ``root`` (itself included) with more entries than the Hub accepts."""
    for folder in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
        n = sum(1 for _ in folder.iterdir())
        if n > MAX_FILES_PER_FOLDER:
            where = folder.relative_to(root).as_posix() or "."
            yield f"{where}/: {n} entries; the Hub refuses more than {MAX_FILES_PER_FOLDER} per folder"


def _check_split(
    release: Path, split: str, tiles: list[str], known: Mapping[str, str] | None
) -> Iterator[str]:
    """``metadata.csv`` of one split; ``known``: the report's ``{name: label}`` of the split."""
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
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8", errors="replace"))))
    except csv.Error as exc:  # a field over the csv module's limit, a NUL byte
        yield f"{where}: not CSV ({str(exc)[:60]})"
        return
    if not rows or rows[0] != ["file_name", "label"]:
        shown = [masked_path(c[:40]) for c in (rows[0] if rows else [])]
        yield f"{where}: columns {shown}; allowed: file_name,label"
        return
    listed: dict[str, int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 2:
            yield f"{where}:{number}: {len(row)} fields; expected 2"
            continue
        name, label = row
        listed[name] = listed.get(name, 0) + 1
        shown_name = masked_path(name[:60])
        if label not in LABELS:
            yield f"{where}:{number}: label {masked_path(label[:40])!r}; allowed: Yes, No"
        if not NAME_RE.match(name):
            yield f"{where}:{number}: file name {shown_name} is not opaque (d_tile_<12 letters>.jpg)"
        elif known is not None and name not in known:
            yield (
                f"{where}:{number}: {name} is not a tile of the private report "
                "(no hash or half check possible)"
            )
        elif known is not None and label in LABELS and known[name] != label:
            yield f"{where}:{number}: {name} labelled {label}; the build wrote {known[name]}"
    for name, times in listed.items():
        shown_name = masked_path(name[:60])
        if times > 1:
            yield f"data/{split}/{shown_name}: listed {times} times"
        if not (folder / name).is_file():
            yield f"data/{split}/{shown_name}: listed but missing"
    for path in sorted(folder.iterdir()):
        if path.name == "metadata.csv":
            continue
        if path.name not in listed:
            yield f"data/{split}/{masked_path(path.name)}: not listed in metadata.csv"
        if path.is_file() and not path.is_symlink() and path.name in listed and NAME_RE.match(path.name):
            tiles.append(f"data/{split}/{path.name}")


def check_image(data: bytes, where: str) -> Iterator[str]:
    """Findings of a published tile's bytes: an RGB JPEG of 256x512, no metadata, a clean decode."""
    import simplejpeg

    found = metadata_segments(data)
    if found:
        yield f"{where}: metadata in image ({', '.join(found[:4])})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a decoder warning (a bomb, a broken chunk) is a finding
            with Image.open(io.BytesIO(data)) as image:
                if image.format != "JPEG" or image.size != HALF_SIZE or image.mode != "RGB":
                    yield (
                        f"{where}: {image.format} {image.mode} {image.size[0]}x{image.size[1]}; "
                        "expected an RGB JPEG of 256x512 (w x h)"
                    )
                    return
                image.load()
        simplejpeg.decode_jpeg(data, colorspace="rgb", strict=True, min_factor=8)
    except (OSError, SyntaxError, ValueError, Warning, Image.DecompressionBombError) as exc:
        yield f"{where}: does not decode cleanly ({type(exc).__name__}: {str(exc)[:80]})"


def _check_text(release: Path, secrets: set[str], allowed: frozenset[float]) -> Iterator[str]:
    for rel, info in _entries(release):
        path = release / rel
        # An opaque tile name (letters only) or a structural name holds no private
        # value; anything else is checked against the report's values too.
        structural = NAME_RE.match(path.name) or rel in STRUCTURAL
        yield from text_findings(f"path {masked_path(rel)}", rel, () if structural else secrets)
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


def _check_files(release: Path, report: dict[str, Any]) -> Iterator[str]:
    files: dict[str, str] = report.get("files", {})
    present = {rel for rel, info in _entries(release) if not stat.S_ISDIR(info.st_mode)}
    for rel in sorted(present - set(files)):
        yield f"{masked_path(rel)}: not written by the build (the private report does not list it)"
    for rel in sorted(set(files) - present):
        yield f"{rel}: written by the build but missing"
    for rel, digest in sorted(files.items()):
        path = release / rel
        tile = NAME_RE.match(path.name)  # tiles are hashed in audit_tile, in parallel
        if rel not in present or tile:
            continue
        raw = read_file(path)
        if raw is None or hashlib.sha256(raw).hexdigest() != digest:
            yield f"{rel}: differs from the file the build wrote and audited"
    if "release_digest" in report:
        from builder.release.build import files_digest

        if files_digest(files) != report["release_digest"]:
            yield "private report: its file list does not match its own release digest (edited?)"


def audit_tile(task: tuple[str, str, str | None, str | None]) -> list[str]:
    """Every per-tile check of one published image (pure: runs in a worker process).

    Args:
        task: ``(release, relative path, composite path or None, recorded sha256 or None)``.
    """
    release, rel, source, digest = task
    path = Path(release) / rel
    data = read_file(path)  # read once: metadata, decoding and the hash all use it
    if data is None:
        return [f"{rel}: not a regular file, or cannot be read"]
    findings = list(check_image(data, rel))
    if digest is not None and hashlib.sha256(data).hexdigest() != digest:
        findings.append(f"{rel}: differs from the file the build wrote and audited")
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
    shown = np.asarray(composite, dtype=np.int16)
    left, right = shown[:, : HALF_SIZE[0]], shown[:, HALF_SIZE[0] :]
    with Image.open(io.BytesIO(published)) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
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


_TILE_FIELDS = ("split", "file_name", "label", "source", "source_sha256")


def load_report(path: Path) -> dict[str, Any]:
    """The private report of a build at ``path``, checked for the fields the audit reads.

    Raises:
        ConfigError: not a regular file, not JSON, nested too deeply, not an object, or
            without the ``tiles`` and ``files`` of a report that ``cropmark build`` writes;
            one line naming the file (never a value of it: the report is private).
    """
    from builder.errors import ConfigError
    from builder.model.schema import load_json

    report = load_json(path, "private report of `cropmark build`")
    problem = _report_problem(report)
    if problem:
        raise ConfigError(f"{path} is not a private report of `cropmark build`: {problem}")
    return report


def _report_problem(report: Mapping[str, Any]) -> str | None:
    tiles, files = report.get("tiles"), report.get("files")
    if not isinstance(tiles, list):
        return "no list of tiles"
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        return "no file digests"
    for i, tile in enumerate(tiles):
        if not isinstance(tile, dict):
            return f"tile {i} is not an object"
        missing = [k for k in _TILE_FIELDS if not isinstance(tile.get(k), str)]
        if missing:
            return f"tile {i} has no text field {missing[0]!r}"
        site = tile.get("site")
        if site is not None and not (
            isinstance(site, dict)
            and all(isinstance(site.get(k), int | float) for k in ("lat", "lon"))
            and all(isinstance(site.get(k), str) for k in ("source_id", "date"))
        ):
            return f"tile {i} has a malformed site"
    return None


def journal_findings(release: Path) -> list[str]:
    """A finding when the journal of an unfinished commit lies beside ``release``."""
    from builder.release.build import journal_path

    if os.path.lexists(journal_path(release)):
        return [
            f"{release.name}: a build was killed while putting this release and its report in place; "
            "run the build again to finish it"
        ]
    return []


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
    if release.is_symlink():
        return [f"{release.name}: a symbolic link; a release is a folder of regular files"]
    if not release.is_dir():
        return [f"{release}: not a folder"]
    findings = list(_check_layout(release))
    findings += journal_findings(release)
    tiles: list[str] = []
    known: dict[str, dict[str, str]] = {split: {} for split in SPLITS}
    for tile in (report or {}).get("tiles", []):
        known.setdefault(tile["split"], {})[tile["file_name"]] = tile["label"]
    for split in SPLITS:
        findings.extend(_check_split(release, split, tiles, known[split] if report is not None else None))
    allowed = card_numbers(report or {})
    findings.extend(_check_text(release, private_values(report or {}), allowed))
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
    for tile_findings in progress.bar(map_(audit_tile, tasks), "audit", len(tasks), unit="tile"):
        findings.extend(tile_findings)
    return redact(findings, private_values(report or {}))


def audit_any(
    release: Path, report: dict[str, Any] | None, map_: Callable[..., Iterable[list[str]]] = map
) -> list[str]:
    """:func:`audit_release`, or the sibling layout's audit when the report names one."""
    layout = (report or {}).get("layout", "imagefolder")
    if layout == "imagefolder":
        return audit_release(release, report, map_)
    from builder.layouts.audit import audit_layout

    return audit_layout(release, report or {}, release.with_name(release.name + ".private"))
