"""The licence bundle of a release: ``LICENSE`` and ``NOTICE.md``.

``LICENSE`` is the full CDLA-Permissive-2.0 text (its section 2.1 requires the
text to travel with the data). ``NOTICE.md`` carries the Copernicus statement
with the years of the imagery and the attribution of every record source the
release's tiles came from, taken from the vetted registry :data:`builder.sources.SOURCES`
(never from ``sites.csv``'s free text).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from builder.files import CARDS_DIR
from builder.ingest.corpus import Site
from builder.release.cards import render
from builder.sources import SOURCES, UNRECORDED

CDLA_FILE = CARDS_DIR / "licenses" / "CDLA-Permissive-2.0.txt"


@dataclass(frozen=True, slots=True)
class SourceCount:
    name: str
    tiles: int
    licence: str
    statement: str


def license_text() -> str:
    """The verbatim CDLA-Permissive-2.0 text."""
    return CDLA_FILE.read_text(encoding="utf-8")


def sources(sites: Iterable[Site | None]) -> list[SourceCount]:
    """Tiles per record source, with the registry's licence and attribution for each.

    Raises:
        KeyError: a site names a source outside the registry (``read_sites`` refuses
            those, so this is a programming error, never a way to print free text).
    """
    counts = Counter(SOURCES[site.source_db] if site else UNRECORDED for site in sites)
    return [
        SourceCount(source.name, n, source.licence, source.attribution)
        for source, n in sorted(counts.items(), key=lambda item: item[0].name)
    ]


def copernicus_years(sites: Iterable[Site | None]) -> str:
    """``"2017-2024"`` style year span of the imagery; a span reveals no tile's date."""
    years = sorted({site.date[:4] for site in sites if site and site.date[:4].isdigit()})
    if not years:
        return ""
    return years[0] if years[0] == years[-1] else f"{years[0]}-{years[-1]}"


def notice_text(sites: Iterable[Site | None]) -> str:
    """Render ``NOTICE.md`` for the tiles whose private sites are ``sites``."""
    sites = list(sites)
    return render(
        "notice.md.j2",
        {"copernicus_years": copernicus_years(sites), "sources": sources(sites)},
    )
