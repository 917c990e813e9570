"""The private site list that a collection starts from, and the corpus ``sites.csv`` it writes.

Input (UTF-8 CSV, one row per site)::

    site,lat,lon,label,split,source_db,source_id,date

- ``site``: the site's name in the corpus, 1-64 of ``A-Z a-z 0-9 _ . -`` starting with a letter
  or digit; its composite is ``composites/<site>.jpg`` and its bands ``bands/<site>.tif``;
- ``lat``, ``lon``: WGS84 degrees of the site's centre;
- ``label``: exactly ``Yes`` or ``No`` (the SFT row's answer);
- ``split``: ``train`` or ``eval`` (optional column; ``train`` when absent or empty);
- ``source_db``, ``source_id``: the record the site comes from (``source_db`` a name of the
  vetted registry ``builder/sources.py``, as the build requires);
- ``date``: the date the search is centred on (ISO ``YYYY-MM-DD``, Sentinel-2 era); the
  collection searches ``--window-days`` either side.

Every problem is one line naming the line and the column, never the value (all of it is
private), before anything is fetched or written.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
from dataclasses import dataclass
from pathlib import Path

from builder.domain import is_label
from builder.errors import CorpusLayoutError
from builder.files import read_regular
from builder.ingest.corpus import _date, _degrees, _source

COLUMNS = ("site", "lat", "lon", "label", "source_db", "source_id", "date")
SPLITS = ("train", "eval")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", re.ASCII)


@dataclass(frozen=True)
class SiteRequest:
    """One site to collect."""

    site: str
    lat: float
    lon: float
    label: str
    split: str
    source_db: str
    source_id: str
    date: datetime.date

    @property
    def composite(self) -> str:
        return f"composites/{self.site}.jpg"


def read_site_list(path: Path) -> list[SiteRequest]:
    """The sites of ``path``, in file order.

    Raises:
        CorpusLayoutError: not UTF-8, not CSV, a missing column, a bad value, a site named twice.
    """
    if not path.is_file():
        raise CorpusLayoutError(f"site list {path} does not exist or is not a file; pass --sites SITES.csv")
    raw = read_regular(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CorpusLayoutError(
            f"{path} is not UTF-8 (bad byte on line {line}); re-save it as UTF-8"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    sites: list[SiteRequest] = []
    seen: set[str] = set()
    try:
        fields = reader.fieldnames or []
        missing = [c for c in COLUMNS if c not in fields]
        if missing:
            raise CorpusLayoutError(
                f"{path} lacks the column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}[,split]"
            )
        for row in reader:
            where = f"{path} line {reader.line_num}"
            if any(row.get(c) is None for c in COLUMNS):
                raise CorpusLayoutError(f"{where}: fewer fields than columns")
            name = row["site"]
            if not _NAME.fullmatch(name):
                raise CorpusLayoutError(
                    f"{where}: the site name must be 1-64 of A-Z a-z 0-9 _ . - starting with a letter or "
                    "digit (it names the composite's file)"
                )
            if name.lower() in seen:
                raise CorpusLayoutError(f"{where}: a second row for one site name; keep one")
            seen.add(name.lower())
            if not is_label(row["label"]):
                raise CorpusLayoutError(f"{where}: the label must be exactly Yes or No")
            split = (row.get("split") or "").strip() or "train"
            if split not in SPLITS:
                raise CorpusLayoutError(f"{where}: the split must be train or eval")
            sites.append(
                SiteRequest(
                    name,
                    _degrees(row["lat"], 90.0, where, "latitude"),
                    _degrees(row["lon"], 180.0, where, "longitude"),
                    row["label"],
                    split,
                    _source(row["source_db"], where),
                    row["source_id"],
                    datetime.date.fromisoformat(_date(row["date"], where)),
                )
            )
    except csv.Error as exc:
        raise CorpusLayoutError(f"{path} line {reader.line_num}: not CSV ({exc})") from None
    if not sites:
        raise CorpusLayoutError(f"{path} holds no site; add rows under the header {','.join(COLUMNS)},split")
    return sites
