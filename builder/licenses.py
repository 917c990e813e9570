"""The licence bundle of a release: ``LICENSE`` and ``NOTICE.md``.

``LICENSE`` is the full CDLA-Permissive-2.0 text (its section 2.1 requires the
text to travel with the data). ``NOTICE.md`` carries the Copernicus statement
with the years of the imagery and the attribution of every record source the
release's tiles came from (statements from shared/licenses/README.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from builder.cards import CARDS_DIR, render
from builder.corpus import Site

CDLA_FILE = CARDS_DIR / "licenses" / "CDLA-Permissive-2.0.txt"

# Attribution each licensor asks for. Keys are the source_db values of sites.csv.
ATTRIBUTIONS = {
    "Historic England AIM": (
        "Historic England Aerial Investigation and Mapping records. Contains public sector "
        "information licensed under the Open Government Licence v3.0 "
        "(https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/)."
    ),
    "Riksantikvaren Askeladden": (
        "Riksantikvaren (Norwegian Directorate for Cultural Heritage), Askeladden, through its "
        "public OGC API service; terms: https://www.riksantikvaren.no/."
    ),
    "Tavoliere literature": (
        "Prehistoric sites of the Tavoliere (Apulia, Italy), compiled from published "
        "archaeological literature; the bibliography is in Gravanis & Agapiou (2026), "
        "https://doi.org/10.1038/s41598-026-45441-0."
    ),
}
UNKNOWN_SOURCE = "Record source not recorded in the private corpus; no attribution statement is known."


@dataclass(frozen=True, slots=True)
class SourceCount:
    name: str
    tiles: int
    statement: str


def license_text() -> str:
    """The verbatim CDLA-Permissive-2.0 text."""
    return CDLA_FILE.read_text(encoding="utf-8")


def sources(sites: Iterable[Site | None]) -> list[SourceCount]:
    """Tiles per record source, with the attribution each one requires."""
    counts = Counter(site.source_db if site else "unrecorded" for site in sites)
    return [
        SourceCount(name, n, ATTRIBUTIONS.get(name, UNKNOWN_SOURCE)) for name, n in sorted(counts.items())
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
