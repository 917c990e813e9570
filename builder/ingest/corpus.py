"""Ingest: read the private corpus's manifests into rows, and rejections.

A corpus folder holds ``sft/train.jsonl`` and ``sft/eval.jsonl`` (leap-finetune
VLM SFT rows) or ``sft/{train,eval}.csv`` (``image,label`` columns), the
composites they point at, ``rejected_composites/`` (quarantine) and optionally
``sites.csv`` (private: coordinates, source database, source ID, date).

A row that cannot be read becomes a counted :class:`Rejection` with its line
number; it never stops the build.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
import os
import posixpath
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from builder.domain import SPLITS, Reason, Split, is_label
from builder.errors import CorpusLayoutError, CorpusNotFoundError
from builder.files import mode_kind, read_regular, special_kind
from builder.records import Rejection, SftRow
from builder.sources import SOURCES, known_source

MANIFEST_DIR = "sft"
QUARANTINE_DIR = "rejected_composites"
SITES_FILE = "sites.csv"
SITE_COLUMNS = ("composite", "lat", "lon", "source_db", "source_id", "date")
SENTINEL2_START = datetime.date(2015, 6, 23)  # launch of Sentinel-2A (ESA)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


@dataclass(frozen=True, slots=True)
class Site:
    """Private provenance of one composite (never published)."""

    composite: str
    lat: float
    lon: float
    source_db: str
    source_id: str
    date: str


@dataclass(frozen=True, slots=True)
class Ingested:
    """Everything ingest read: rows, their rejections, and the manifests used."""

    rows: tuple[SftRow, ...]
    rejections: tuple[Rejection, ...]
    manifests: tuple[str, ...]
    row_counts: dict[str, int]  # rows read per split, readable or not


def find_manifests(corpus: Path) -> dict[Split, Path]:
    """Return the manifest of each split, JSONL preferred over CSV.

    Raises:
        CorpusNotFoundError: the corpus folder does not exist.
        CorpusLayoutError: a split has no manifest or has two.
    """
    if not corpus.is_dir():
        raise CorpusNotFoundError(
            f"corpus folder {corpus} does not exist; pass --corpus with a folder that holds "
            f"{MANIFEST_DIR}/train.jsonl and {MANIFEST_DIR}/eval.jsonl "
            "(make a sample one with `cropmark sample`)"
        )
    found: dict[Split, Path] = {}
    for split in SPLITS:
        options = [corpus / MANIFEST_DIR / f"{split}.{ext}" for ext in ("jsonl", "csv")]
        for option in options:
            kind = special_kind(option)
            if kind is not None:
                raise CorpusLayoutError(
                    f"{option} is a {kind}, not a regular file; a manifest must be a file"
                )
        present = [p for p in options if p.is_file()]
        if not present:
            raise CorpusLayoutError(
                f"corpus {corpus} has no manifest for split {split!r}: expected "
                f"{MANIFEST_DIR}/{split}.jsonl or {MANIFEST_DIR}/{split}.csv"
            )
        if len(present) > 1:
            raise CorpusLayoutError(
                f"corpus {corpus} has two manifests for split {split!r} "
                f"({present[0].name} and {present[1].name}); keep one"
            )
        found[split] = present[0]
    return found


def _text_parts(content: Any) -> list[str]:
    """Text of a message's content: a string, or a list of typed parts."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            p["text"]
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        ]
    return []


def _image_parts(content: Any) -> list[str]:
    if not isinstance(content, list):
        return []
    out = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "image":
            value = part.get("image", part.get("path", part.get("url")))
            if isinstance(value, str):
                out.append(value)
    return out


def parse_sft_row(obj: Any) -> tuple[str, str] | tuple[Reason, str]:
    """Extract ``(image, answer)`` from one SFT row, or ``(reason, detail)``.

    The row holds ``messages``: a ``user`` turn with one image part and an
    ``assistant`` turn whose text is the label.
    """
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
        return Reason.UNREADABLE_ROW, "row is not an object with a 'messages' list"
    messages = [m for m in obj["messages"] if isinstance(m, dict)]
    images = [img for m in messages if m.get("role") == "user" for img in _image_parts(m.get("content"))]
    answers = [t for m in messages if m.get("role") == "assistant" for t in _text_parts(m.get("content"))]
    if not any(a.strip() for a in answers):
        return Reason.NO_ANSWER, "row has no assistant answer"
    if len(images) != 1:
        return Reason.NO_IMAGE, f"user turn has {len(images)} image parts; expected exactly 1"
    # The label is the answer exactly as written: " Yes" and "Yes\n" are not labels.
    return images[0], " ".join(answers)


def _safe_repr(value: str, limit: int = 40) -> str:
    """A value quoted for a one-line message, cut short (labels may be formula injections)."""
    text = value if len(value) <= limit else value[:limit] + "..."
    return repr(text)


def _read_lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """Yield ``(line_number, text)``; text is None for a line that is not UTF-8.

    A byte-order mark at the start of the file is dropped, as the CSV reader's
    ``utf-8-sig`` does, so both manifest kinds treat it the same.
    """
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError:
                yield number, None


def _iter_jsonl(path: Path, name: str) -> Iterator[tuple[str, tuple[str, str] | tuple[Reason, str]]]:
    for number, text in _read_lines(path):
        where = f"{name}:{number}"
        if text is None:
            yield where, (Reason.UNREADABLE_ROW, "line is not valid UTF-8")
            continue
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield where, (Reason.UNREADABLE_ROW, f"line is not JSON ({exc.msg})")
            continue
        except RecursionError:
            yield where, (Reason.UNREADABLE_ROW, "line is JSON nested too deeply to be an SFT row")
            continue
        yield where, parse_sft_row(obj)


def _iter_csv(path: Path, name: str) -> Iterator[tuple[str, tuple[str, str] | tuple[Reason, str]]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # A CSV is read as a whole; report the row holding the bad byte.
        line = raw[: exc.start].count(b"\n") + 1
        raise CorpusLayoutError(
            f"{path} is not UTF-8 (bad byte on line {line}); re-save it as UTF-8"
        ) from None
    reader = csv.DictReader(io.StringIO(text))
    try:
        if reader.fieldnames is None or not {"image", "label"} <= set(reader.fieldnames):
            raise CorpusLayoutError(
                f"{path} has columns {_safe_repr(str(reader.fieldnames), 80)}; "
                "a CSV manifest needs 'image' and 'label'"
            )
        for row in reader:
            where = f"{name}:{reader.line_num}"
            image, label = row.get("image"), row.get("label")
            if not image:
                yield where, (Reason.NO_IMAGE, "row has no image path")
            elif label is None or not label.strip():
                yield where, (Reason.NO_ANSWER, "row has no label")
            else:
                yield where, (image, label)  # exactly as written: " Yes" is not a label
    except csv.Error as exc:
        raise CorpusLayoutError(
            f"{path} line {reader.line_num}: not CSV ({exc}); fix or remove that line"
        ) from None


def read_manifests(corpus: Path) -> Ingested:
    """Read every manifest of ``corpus`` into rows and counted rejections."""
    rows: list[SftRow] = []
    rejections: list[Rejection] = []
    counts: dict[str, int] = {}
    manifests = find_manifests(corpus)
    for split, path in manifests.items():
        name = path.relative_to(corpus).as_posix()
        reader = _iter_jsonl if path.suffix == ".jsonl" else _iter_csv
        counts[split] = 0
        for where, parsed in reader(path, name):
            counts[split] += 1
            first, second = parsed
            if isinstance(first, Reason):
                rejections.append(Rejection(first, where, second, split))
            elif not is_label(second):
                rejections.append(
                    Rejection(
                        Reason.BAD_LABEL, where, f"answer {_safe_repr(second)} is not 'Yes' or 'No'", split
                    )
                )
            else:
                rows.append(SftRow(split, where, first, "Yes" if second == "Yes" else "No"))
    return Ingested(
        tuple(rows),
        tuple(rejections),
        tuple(p.relative_to(corpus).as_posix() for p in manifests.values()),
        counts,
    )


def resolve_image(corpus: Path, image: str) -> Path | str:
    """Resolve a row's image path inside the corpus, or say why it is unsafe.

    Relative paths are taken from the corpus root. Absolute paths, ``..`` that
    leave the root and symlinks that point out of it are refused, so a manifest
    can never make the builder read (and publish) a file outside the corpus.

    Returns:
        The resolved path, or a one-sentence reason it was refused.
    """
    if "\x00" in image:
        return "path holds a NUL byte"
    try:
        os.fsencode(image)
    except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800") names no file
        return f"path {_safe_repr(image)} holds a character no file name can hold (a lone surrogate)"
    posix = PurePosixPath(image.replace("\\", "/"))
    if posix.is_absolute() or (posix.parts and posix.parts[0].endswith(":")):
        return f"path {_safe_repr(image)} is absolute; paths must be relative to the corpus root"
    root = corpus.resolve()
    try:
        resolved = (root / Path(*posix.parts)).resolve() if posix.parts else root
    except (OSError, RuntimeError) as exc:  # RuntimeError: Python 3.11's "Symlink loop"
        return f"path {_safe_repr(image)} cannot be resolved ({_why(exc)})"
    if not resolved.is_relative_to(root) or resolved == root:
        return f"path {_safe_repr(image)} leaves the corpus root (through '..' or a symlink)"
    try:
        mode = os.stat(resolved).st_mode
    except FileNotFoundError:
        return resolved  # missing: counted by curation as missing_file
    except OSError as exc:  # a name too long for the file system, a symlink loop, no permission
        return f"path {_safe_repr(image)} cannot be looked up ({_why(exc)})"
    if not stat.S_ISREG(mode):
        kind = mode_kind(mode)
        return f"path {_safe_repr(image)} is a {kind}, not a regular file"
    return resolved


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).split(":")[0][:60]


def read_sites(corpus: Path) -> dict[str, Site]:
    """Read the optional private ``sites.csv``, keyed by corpus-relative composite path.

    Composite paths are normalised (``./composites/x.jpg`` is ``composites/x.jpg``).
    Every value is checked, and a message names the line, never the value (all of
    it is private): ``source_db`` must be the exact name of a source of the vetted
    registry :data:`builder.sources.SOURCES` (the release prints the registry's
    text, never this column), and ``date`` an ISO date ``YYYY-MM-DD`` within the
    Sentinel-2 era (from the launch of Sentinel-2A, ``SENTINEL2_START``, to today).

    Raises:
        CorpusLayoutError: not UTF-8, not CSV, missing columns, a latitude or longitude
            that is not a finite number in range, a source outside the registry, a
            date that is not one, a composite path that leaves the corpus, or two
            rows for one composite.
        SpecialFileError: ``sites.csv`` is a FIFO, a device or a folder.
    """
    path = corpus / SITES_FILE
    if not path.exists():
        return {}
    raw = read_regular(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CorpusLayoutError(
            f"{path} is not UTF-8 (bad byte on line {line}); re-save it as UTF-8"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    sites: dict[str, Site] = {}
    try:
        if reader.fieldnames is None or not set(SITE_COLUMNS) <= set(reader.fieldnames):
            raise CorpusLayoutError(
                f"{path} has columns {_safe_repr(str(reader.fieldnames), 80)}; "
                f"expected {', '.join(SITE_COLUMNS)}"
            )
        for row in reader:
            where = f"{path} line {reader.line_num}"
            if any(row.get(c) is None for c in SITE_COLUMNS):
                raise CorpusLayoutError(
                    f"{where}: fewer fields than columns; expected {', '.join(SITE_COLUMNS)}"
                )
            site = Site(
                _site_key(row["composite"], where),
                _degrees(row["lat"], 90.0, where, "latitude"),
                _degrees(row["lon"], 180.0, where, "longitude"),
                _source(row["source_db"], where),
                row["source_id"],
                _date(row["date"], where),
            )
            if site.composite in sites and sites[site.composite] != site:
                raise CorpusLayoutError(f"{where}: a second, different row for one composite; keep one")
            sites[site.composite] = site
    except csv.Error as exc:
        raise CorpusLayoutError(f"{path} line {reader.line_num}: not CSV ({exc})") from None
    return sites


def _site_key(value: str, where: str) -> str:
    """``value`` as the corpus-relative POSIX path that rows resolve to."""
    # As rows are read (resolve_image): a backslash separates folders too.
    normal = posixpath.normpath(value.replace("\\", "/")) if value else ""
    if not normal or normal in (".", "..") or normal.startswith("/") or normal.split("/", 1)[0] == "..":
        raise CorpusLayoutError(f"{where}: the composite is not a path inside the corpus")
    return normal


def _source(value: str, where: str) -> str:
    if known_source(value) is None:
        names = ", ".join(sorted(SOURCES))
        raise CorpusLayoutError(
            f"{where}: source_db is not a source of the registry (builder/sources.py: {names}); "
            "the release prints only the registry's names and attributions"
        )
    return value


def _date(value: str, where: str) -> str:
    try:
        day = datetime.date.fromisoformat(value) if _ISO_DATE.fullmatch(value) else None
    except ValueError:
        day = None
    if day is None or not SENTINEL2_START <= day <= datetime.datetime.now(datetime.UTC).date():
        raise CorpusLayoutError(
            f"{where}: the date is not an ISO date YYYY-MM-DD from {SENTINEL2_START} (Sentinel-2A's "
            "launch) to today"
        )
    return value


def _degrees(value: str, limit: float, where: str, what: str) -> float:
    # The value is private: the message names the line, never the value.
    try:
        number = float(value)
    except ValueError:
        raise CorpusLayoutError(f"{where}: the {what} is not a number") from None
    if not math.isfinite(number) or abs(number) > limit:
        raise CorpusLayoutError(f"{where}: the {what} is not a finite number within +-{limit:g} degrees")
    return number
