"""The text scanner: what looks like a place, a time or a record identifier, and masking.

Every text a release, a layout, a card or a publish holds is read with :data:`PATTERNS`
on :func:`normalise`-d text (entities unescaped, NFKC, every decimal digit as ASCII,
invisible characters removed, whitespace runs as one space), together with the private
report's own values (:func:`private_values`, found by :func:`secret_re`). Findings and
paths quote a value only masked (:func:`mask`, :func:`masked_path`, :func:`redact`).
The card's own measured figures are allowed by the number-only patterns
(:func:`card_numbers`); the project's own fixed text is never a finding (:func:`fixed_text`).
"""

from __future__ import annotations

import functools
import html
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any, Protocol

from builder.files import CARDS_DIR
from builder.sources import SOURCES, UNRECORDED

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
# The month names of the languages an archaeological record of Europe is often written in
# (French, German, Spanish, Italian, Dutch, Portuguese), beyond English's: "27 luglio 2019",
# "27. Juli 2019", "27 de julio de 2019". Names equal to an English one (april, august) are
# English's pattern's already.
_MONTH_OTHER = (
    r"(?:janvier|f[ée]vrier|mars|avril|mai|juin|juillet|ao[ûu]t|septembre|octobre|novembre|d[ée]cembre"
    r"|j[aä]nner|januar|februar|m[äa]rz|maerz|juni|juli|oktober|dezember"
    r"|enero|febrero|marzo|abril|mayo|junio|julio|agosto|se?ptiembre|octubre|noviembre|diciembre"
    r"|gennaio|febbraio|aprile|maggio|giugno|luglio|settembre|ottobre|dicembre"
    r"|januari|februari|maart|mei|augustus"
    r"|janeiro|fevereiro|março|maio|junho|julho|setembro|outubro|novembro|dezembro)"
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
    "date with a month name in another language": re.compile(
        r"(?i)(?<![a-z0-9])(?:0?[1-9]|[12]\d|3[01])(?:er|º|°)?\.? (?:de )?"
        + _MONTH_OTHER
        + r" (?:de )?"
        + _YEAR
        + r"(?!\d)"
        r"|(?<![a-z])" + _MONTH_OTHER + r",? (?:de )?" + _YEAR + r"(?!\d)"
    ),
    # Chinese and Japanese (年, 月, 日) and Korean (년, 월, 일) dates: 2019年7月27日, 2019년 7월.
    "CJK date": re.compile(r"(?<!\d)" + _YEAR + r" ?[年년] ?(?:0?[1-9]|1[0-2]) ?[月월]"),
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
    # Fast first; in sorted order, so that the findings do not depend on a set's order (which
    # changes from run to run with the hash seed).
    needles = [(s, secret_re(normal[s])) for s in sorted(s for s in normal if _squash(normal[s]) in squashed)]
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


def card_numbers(parts: Iterable[Any]) -> frozenset[float]:
    """The allow-list: every number the card quotes from the report, and each as a percentage.

    ``parts`` are the JSON parts of the report that the card quotes
    (``BuildReport.quoted_parts()``: its ``counts``, ``gates`` (thresholds and counts),
    ``leakage`` (threshold, distances), ``cut_modes`` and ``layout_summary`` (shard rows
    and bytes)); never tiles or sites. The hashes of a leakage pair are not numbers.
    """
    found: set[float] = set()
    for part in parts:
        for number in numbers_in(part, frozenset({"hashes"})):
            found.update({number, number * 100})
    return frozenset(found)


@functools.lru_cache(maxsize=1)
def fixed_text() -> str:
    """The project's own fixed text (card templates, licences, the source registry), lower case.

    It is written by the project, not taken from any corpus: a pattern match that
    is part of it (a link in the Copernicus notice) is allowed, and a source file
    named after one of its words ("image", "cloudy") is not a leak.
    """
    parts = [p.read_text(encoding="utf-8") for p in sorted(CARDS_DIR.rglob("*")) if p.is_file()]
    parts += [f"{s.name}\n{s.licence}\n{s.attribution}" for s in (*SOURCES.values(), UNRECORDED)]
    return "\n".join(parts).lower()


class PrivateSite(Protocol):
    """What the scanner reads of a tile's private site (``builder.ingest.corpus.Site``)."""

    @property
    def source_id(self) -> str: ...
    @property
    def date(self) -> str: ...
    @property
    def lat(self) -> float: ...
    @property
    def lon(self) -> float: ...


class PrivateTileValues(Protocol):
    """What the scanner reads of one tile of the private report (``builder.release.report.TileRecord``)."""

    @property
    def source(self) -> str: ...
    @property
    def source_sha256(self) -> str: ...
    @property
    def site(self) -> PrivateSite | None: ...


def private_values(tiles: Iterable[PrivateTileValues]) -> set[str]:
    """Strings from the private report's ``tiles`` that must never appear in a release."""
    values: set[str] = set()
    for tile in tiles:
        source = PurePosixPath(tile.source)
        values.add(source.stem)
        values.add(tile.source_sha256[:12])
        site = tile.site
        if site:
            values.add(site.source_id)
            values.add(site.date)
            values.add(site.date.replace("-", ""))
            for coordinate in (site.lat, site.lon):
                for decimals in (3, 4, 5, 6):
                    values.add(f"{coordinate:.{decimals}f}")
                    values.add(f"{abs(coordinate):.{decimals}f}")
    fixed = fixed_text()
    return {v for v in values if len(v) >= 5 and not (v.lower() in fixed and secret_re(v).search(fixed))}


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
    """``findings`` with every private value that a finding quotes masked (a last safety net),
    then made :func:`printable`.

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
        out.append(printable(_mask_spans(finding, sorted(spans))))
    return out


def printable(text: str) -> str:
    """``text`` with every character that Python does not print as itself (a newline, a
    terminal's escape, a bidirectional override, a NUL) written as its escape (``\\n``,
    ``\\x1b``, ``\\u202e``): a finding quotes what a release holds, and stays one line that
    can neither pass for another nor drive the terminal that shows it."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _occurrences(text: str, needle: str) -> Iterator[int]:
    start = text.find(needle)
    while start >= 0:
        yield start
        start = text.find(needle, start + 1)


TEXT_SUFFIXES = {".md", ".txt", ".csv", ".json", ".jsonl", ".yaml", ".yml", ""}
