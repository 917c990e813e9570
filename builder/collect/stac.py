"""Searching a STAC API for Sentinel-2 items over a site, with pystac-client.

An item becomes a :class:`Candidate`: its id, acquisition time, the scene-wide
``eo:cloud_cover`` (recorded, never the site's cloud), the HTTP(S) hrefs of the band assets
the collection needs, and the DN offset that turns its DNs into reflectance.

Band assets are found by ESA band name (``B04``, ``SCL``: Microsoft Planetary Computer,
Copernicus Data Space) or by the common names of Element 84's Earth Search v1 (``red``,
``nir``, ``rededge1``, ``scl``, ...). The DN offset comes, in this order, from the asset's
``raster:bands`` ``offset`` and ``scale`` (Earth Search v1 writes ``offset -0.1``,
``scale 0.0001``: a DN offset of -1000), else from ``s2:processing_baseline`` (-1000 from
processing baseline 04.00, ESA's L2A product specification), else the item is not used:
a guessed offset shifts every reflectance by 0.1.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from builder.collect.remote import Remote, RemoteError, redact
from builder.errors import CropmarkError
from builder.raster.bands import NEW_BASELINE_OFFSET

# ESA band name -> asset keys, ESA's first, then Earth Search v1's common names.
ASSET_KEYS: Mapping[str, tuple[str, ...]] = {
    "B01": ("B01", "coastal"),
    "B02": ("B02", "blue"),
    "B03": ("B03", "green"),
    "B04": ("B04", "red"),
    "B05": ("B05", "rededge1"),
    "B06": ("B06", "rededge2"),
    "B07": ("B07", "rededge3"),
    "B08": ("B08", "nir"),
    "B8A": ("B8A", "nir08"),
    "B09": ("B09", "nir09"),
    "B10": ("B10", "cirrus"),
    "B11": ("B11", "swir16"),
    "B12": ("B12", "swir22"),
    "SCL": ("SCL", "scl"),
}


class CatalogueError(CropmarkError, ValueError):
    """The STAC API cannot be used for this collection (one line, with the fix)."""


@dataclass(frozen=True)
class Candidate:
    """One acquisition that may become a site's composite."""

    item_id: str
    collection: str
    acquired: datetime.datetime
    scene_cloud: float | None  # eo:cloud_cover in percent, scene-wide
    hrefs: Mapping[str, str]  # ESA band name -> HTTP(S) href of its COG
    offset: int | None  # DN offset, None when the item does not say
    offset_from: str
    level: str  # "L2A" or "L1C"

    @property
    def date(self) -> datetime.date:
        return self.acquired.date()


def _offset(item: Any, hrefs: Mapping[str, str], assets: Mapping[str, Any]) -> tuple[int | None, str]:
    for band in ("B04", "B08", "B05"):
        key = next((k for k in ASSET_KEYS[band] if k in assets), None)
        if key is None:
            continue
        for info in assets[key].extra_fields.get("raster:bands", []) or []:
            offset, scale = info.get("offset"), info.get("scale")
            if isinstance(offset, (int, float)) and isinstance(scale, (int, float)) and scale > 0:
                dn = offset / scale
                if math.isfinite(dn) and abs(dn - round(dn)) < 1e-6:
                    return round(dn), f"raster:bands offset {offset:g} / scale {scale:g}"
    baseline = item.properties.get("s2:processing_baseline")
    if baseline is not None:
        try:
            value = float(baseline)
        except (TypeError, ValueError):
            return None, f"s2:processing_baseline {str(baseline)[:20]!r} is not a number"
        offset = NEW_BASELINE_OFFSET if value >= 4.0 else 0
        return offset, f"s2:processing_baseline {baseline}"
    return None, "no raster:bands offset and no s2:processing_baseline"


def _level(item: Any, collection: str, hrefs: Mapping[str, str]) -> str:
    text = " ".join(
        str(item.properties.get(k, ""))
        for k in ("s2:product_type", "processing:level", "s2:processing_level")
    )
    text = f"{text} {collection}".upper()
    if "SCL" in hrefs or "2A" in text:
        return "L2A"
    return "L1C" if "1C" in text else "L2A"


def candidate(item: Any, collection: str) -> Candidate:
    """An item as a :class:`Candidate` (bands it lacks are simply absent from ``hrefs``)."""
    assets = item.assets
    hrefs: dict[str, str] = {}
    for band, keys in ASSET_KEYS.items():
        for key in keys:
            if key in assets and assets[key].href.startswith(("http://", "https://")):
                hrefs[band] = assets[key].href
                break
    offset, offset_from = _offset(item, hrefs, assets)
    cover = item.properties.get("eo:cloud_cover")
    acquired = item.datetime or item.common_metadata.start_datetime
    if acquired is None:
        raise ValueError(f"item {item.id} has no datetime")
    if acquired.tzinfo is None:
        acquired = acquired.replace(tzinfo=datetime.UTC)
    return Candidate(
        item.id,
        item.collection_id or collection,
        acquired,
        float(cover) if isinstance(cover, (int, float)) else None,
        hrefs,
        offset,
        offset_from,
        _level(item, collection, hrefs),
    )


class Catalogue:
    """One STAC API and collection, opened once; searches go through ``remote``."""

    def __init__(self, url: str, collection: str, remote: Remote, timeout_s: float = 60.0) -> None:
        try:
            from pystac_client import Client
        except ImportError:
            raise CatalogueError(
                "cropmark collect needs pystac-client, which the collect extra installs: "
                "pip install -c constraints.txt 'cropmark[collect]'"
            ) from None
        if not url.startswith(("http://", "https://")):
            raise CatalogueError(f"--stac {redact(url)[:80]!r}: give the STAC API's http(s) URL")
        self.url, self.collection, self.remote = url, collection, remote
        shown = redact(url)  # a signed or token-bearing URL is never printed
        try:
            self.client = remote.call(
                f"open the STAC API {shown}", lambda: Client.open(url, timeout=timeout_s)
            )
        except RemoteError as exc:
            raise CatalogueError(f"cannot open the STAC API ({exc}); check --stac and the network") from None
        if not self.client.conforms_to("ITEM_SEARCH"):
            raise CatalogueError(f"{shown} does not offer STAC API item search; pass a STAC API's root URL")
        try:
            found = remote.call(f"collection {collection}", lambda: self.client.get_collection(collection))
            problem = "" if found is not None else "not found"
        except RemoteError as exc:
            problem = str(exc)
        if problem:
            names = self._collections()
            raise CatalogueError(
                f"the STAC API has no collection {collection!r} ({problem}); "
                f"it has: {', '.join(names[:12]) or 'none listed'}; pass --collection NAME"
            )

    def _collections(self) -> list[str]:
        try:
            return sorted(c.id for c in self.client.get_collections())
        except Exception:
            return []

    def search(
        self, lon: float, lat: float, start: datetime.date, end: datetime.date, limit: int
    ) -> list[Any]:
        """Items of the collection whose footprint holds the point, acquired from ``start`` to ``end``
        (whole days, UTC), at most ``limit`` (by the API's order)."""
        when = f"{start.isoformat()}T00:00:00Z/{end.isoformat()}T23:59:59Z"
        point = {"type": "Point", "coordinates": [lon, lat]}

        def run() -> list[Any]:
            found = self.client.search(
                collections=[self.collection], intersects=point, datetime=when, max_items=limit
            )
            return list(found.items())

        return self.remote.call("search", run)


def candidates(items: Sequence[Any], collection: str) -> list[Candidate]:
    """The items as candidates; an item without a time (the STAC spec requires one) is left out."""
    found: list[Candidate] = []
    for item in items:
        try:
            found.append(candidate(item, collection))
        except ValueError:
            continue
    return found
