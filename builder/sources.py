"""The vetted registry of record sources: the only source names a release may print.

``sites.csv`` names each composite's record source in its ``source_db`` column.
That column is private free text: copied into ``NOTICE.md`` or the card it could
carry a coordinate, a date or a record number. So nothing from it is ever
copied out. A ``source_db`` value must be the exact name of one entry of
:data:`SOURCES` (or :func:`read_sites` refuses ``sites.csv`` with a one-line
error that names the line, never the value), and the release prints the
registry's own name, licence and attribution text for it.

The statements follow each licensor's published terms:

- Historic England Aerial Investigation and Mapping records: Open Government
  Licence v3.0, which asks for "Contains public sector information licensed
  under the Open Government Licence v3.0"
  (https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/).
- Riksantikvaren (Norwegian Directorate for Cultural Heritage), Askeladden,
  public OGC API service: name the source and link its terms.
- Prehistoric sites of the Tavoliere (Apulia, Italy) compiled from the
  published literature: cite the literature.

Adding a source is a code change, reviewed like any other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Source:
    """One record source a release may attribute.

    Attributes:
        name: the exact ``source_db`` value of ``sites.csv``, printed in the card and notice.
        licence: the licence of the records, as the licensor names it.
        attribution: the statement the licensor asks for, printed in ``NOTICE.md``.
    """

    name: str
    licence: str
    attribution: str


SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source(
            "Historic England AIM",
            "Open Government Licence v3.0",
            "Historic England Aerial Investigation and Mapping records. Contains public sector "
            "information licensed under the Open Government Licence v3.0 "
            "(https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/).",
        ),
        Source(
            "Riksantikvaren Askeladden",
            "Riksantikvaren's terms of use (https://www.riksantikvaren.no/)",
            "Riksantikvaren (Norwegian Directorate for Cultural Heritage), Askeladden, through its "
            "public OGC API service; terms: https://www.riksantikvaren.no/.",
        ),
        Source(
            "Tavoliere literature",
            "none stated; the literature is cited",
            "Prehistoric sites of the Tavoliere (Apulia, Italy), compiled from published "
            "archaeological literature; the bibliography is in Gravanis & Agapiou (2026), "
            "https://doi.org/10.1038/s41598-026-45441-0.",
        ),
    )
}
# Tiles without a sites.csv row are counted under this name (it is not a source_db value).
UNRECORDED = Source(
    "unrecorded",
    "none known",
    "Record source not recorded in the private corpus; no attribution statement is known.",
)


def known_source(name: str) -> Source | None:
    """The registry entry whose name is exactly ``name``, or ``None``."""
    return SOURCES.get(name)
