"""The context half of a composite: a small provider interface and its two providers.

A provider turns the site's window (a WGS84 bounding box) into an RGB image of the half's
size (256 x 512). The composite keeps it on the right; the release never publishes it.

- :class:`MapboxStatic` (``--context mapbox``): Mapbox's Static Images API with the user's
  own access token from ``MAPBOX_ACCESS_TOKEN``. One request per site::

      GET https://api.mapbox.com/styles/v1/mapbox/satellite-v9/static/[W,S,E,N]/256x512
          ?access_token=TOKEN

  (the Static Images API's bounding-box form: Web Mercator, a JPEG for a raster style such
  as satellite-v9, width and height 1-1280 px, the token needs the ``styles:tiles`` scope;
  https://docs.mapbox.com/api/maps/static-images/). Mapbox's logo and attribution stay on
  the image (its default; Mapbox's attribution guide requires them on its maps,
  https://docs.mapbox.com/help/dive-deeper/attribution/). The token is never printed or
  written: every message is redacted. Mapbox's terms of service
  (https://www.mapbox.com/legal/tos) do not let these images be redistributed, which is why
  the context half stays in the private corpus and the release is the Sentinel-2 half only;
  the requests count against the token owner's account and its plan's limits.
- :class:`XyzTiles` (``--context xyz:TEMPLATE``): a slippy-map tile source in Web Mercator,
  either a folder (``tiles/{z}/{x}/{y}.png``) or an HTTP URL template
  (``http://127.0.0.1:8080/{z}/{x}/{y}.png``): the tiles covering the window at the zoom
  whose pixels are at least as fine as the half's, cut to the window and resized. Any tile
  source whose terms allow this use works; the tests use a folder made from real scenes.
"""

from __future__ import annotations

import io
import math
import os
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Protocol

from PIL import Image

from builder.collect.remote import Remote, redact
from builder.errors import CropmarkError

HALF = (256, 512)
TOKEN_ENV = "MAPBOX_ACCESS_TOKEN"
MAPBOX_URL_ENV = "CROPMARK_MAPBOX_URL"  # another endpoint of the same API (a proxy, a test server)
MAPBOX_URL = "https://api.mapbox.com"
MAPBOX_STYLE = "mapbox/satellite-v9"
EARTH_CIRCUMFERENCE_M = 40_075_016.686  # Web Mercator (EPSG:3857) at the equator
TILE_PX = 256
MAX_ZOOM = 22
MAX_IMAGE_BYTES = 32 * 1024 * 1024


class ContextError(CropmarkError, ValueError):
    """A context provider that cannot be used as given (one line, before anything is fetched)."""


Bounds = tuple[float, float, float, float]  # west, south, east, north (degrees)


class ContextProvider(Protocol):
    """What the collector needs of a context source."""

    name: str

    def fetch(self, remote: Remote, bounds: Bounds, size: tuple[int, int] = HALF) -> Image.Image:
        """An RGB image of ``size`` showing ``bounds``; raises on failure (the site is skipped)."""
        ...


def _get(url: str, timeout_s: float = 60.0) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "cropmark-collect"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        data: bytes = response.read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"reply over {MAX_IMAGE_BYTES} bytes")
    return data


def _image(data: bytes, what: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except OSError as exc:
        raise ValueError(f"{what}: not an image ({exc})") from None
    return image.convert("RGB")


class MapboxStatic:
    """Mapbox Static Images API (see the module docstring for the request and the terms)."""

    name = "mapbox"

    def __init__(
        self, token: str | None = None, base_url: str | None = None, style: str = MAPBOX_STYLE
    ) -> None:
        token = token if token is not None else os.environ.get(TOKEN_ENV, "")
        if not token.strip():
            raise ContextError(
                f"--context mapbox needs your Mapbox access token in {TOKEN_ENV} (scope styles:tiles); "
                "or pass --context xyz:TEMPLATE"
            )
        if not token.isprintable() or any(c.isspace() for c in token):
            raise ContextError(f"{TOKEN_ENV} holds spaces or unprintable characters; set the token alone")
        self._token = token
        self.base_url = (base_url or os.environ.get(MAPBOX_URL_ENV) or MAPBOX_URL).rstrip("/")
        self.style = style

    def __repr__(self) -> str:  # never the token
        return f"MapboxStatic(base_url={self.base_url!r}, style={self.style!r})"

    def url(self, bounds: Bounds, size: tuple[int, int]) -> str:
        west, south, east, north = bounds
        box = f"[{west:.6f},{south:.6f},{east:.6f},{north:.6f}]"
        return (
            f"{self.base_url}/styles/v1/{self.style}/static/{box}/{size[0]}x{size[1]}"
            f"?access_token={urllib.parse.quote(self._token, safe='')}"
        )

    def fetch(self, remote: Remote, bounds: Bounds, size: tuple[int, int] = HALF) -> Image.Image:
        url = self.url(bounds, size)
        data = remote.call("Mapbox static image", lambda: _get(url))
        image = _image(data, "Mapbox static image")
        return image if image.size == size else image.resize(size, Image.Resampling.BILINEAR)


def _tile_xy(lon: float, lat: float, zoom: int) -> tuple[float, float]:
    """Fractional XYZ tile coordinates of a point (the slippy-map formula, OpenStreetMap wiki)."""
    n = 2**zoom
    lat_rad = math.radians(max(min(lat, 85.05112878), -85.05112878))
    x = (lon + 180.0) / 360.0 * n
    y = (1.0 - math.asinh(math.tan(lat_rad)) / math.pi) / 2.0 * n
    return x, y


class XyzTiles:
    """A slippy-map tile source: a folder or an HTTP URL template with ``{z}``, ``{x}``, ``{y}``."""

    name = "xyz"

    def __init__(self, template: str, max_zoom: int | None = None) -> None:
        if not all(f"{{{k}}}" in template for k in "zxy"):
            raise ContextError(
                "--context xyz:TEMPLATE needs {z}, {x} and {y} in TEMPLATE "
                "(a folder such as tiles/{z}/{x}/{y}.png or an http URL)"
            )
        self.template = template
        self.remote_source = template.startswith(("http://", "https://"))
        if max_zoom is None and not self.remote_source:
            root = Path(template.split("{z}", 1)[0])
            if not root.is_dir():
                raise ContextError(f"--context xyz: the tile folder {root} does not exist")
            zooms = [int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit()]
            if not zooms:
                raise ContextError(f"--context xyz: {root} holds no zoom folder (0, 1, ... 22)")
            max_zoom = max(zooms)
        self.max_zoom = MAX_ZOOM if max_zoom is None else max_zoom

    def zoom(self, bounds: Bounds, size: tuple[int, int]) -> int:
        """The least zoom whose pixels are as fine as the half's across the window (capped)."""
        west, south, east, north = bounds
        lat = (south + north) / 2
        width_m = (east - west) / 360.0 * EARTH_CIRCUMFERENCE_M * math.cos(math.radians(lat))
        want = width_m / size[0]  # metres per pixel of the half
        at_zero = EARTH_CIRCUMFERENCE_M * math.cos(math.radians(lat)) / TILE_PX
        return max(0, min(self.max_zoom, math.ceil(math.log2(at_zero / want))))

    def _tile(self, remote: Remote, z: int, x: int, y: int) -> Image.Image:
        where = self.template.format(z=z, x=x, y=y)
        if self.remote_source:
            data = remote.call(f"tile {z}/{x}/{y}", lambda: _get(where))
        else:
            path = Path(where)
            if not path.is_file():
                raise FileNotFoundError(f"tile {z}/{x}/{y} is not in the tile folder")
            data = path.read_bytes()
        return _image(data, f"tile {z}/{x}/{y}")

    def fetch(self, remote: Remote, bounds: Bounds, size: tuple[int, int] = HALF) -> Image.Image:
        west, south, east, north = bounds
        z = self.zoom(bounds, size)
        x0, y0 = _tile_xy(west, north, z)
        x1, y1 = _tile_xy(east, south, z)
        tx0, ty0, tx1, ty1 = int(x0), int(y0), int(x1), int(y1)
        canvas = Image.new("RGB", ((tx1 - tx0 + 1) * TILE_PX, (ty1 - ty0 + 1) * TILE_PX))
        for tx in range(tx0, tx1 + 1):
            for ty in range(ty0, ty1 + 1):
                tile = self._tile(remote, z, tx, ty)
                if tile.size != (TILE_PX, TILE_PX):
                    tile = tile.resize((TILE_PX, TILE_PX), Image.Resampling.BILINEAR)
                canvas.paste(tile, ((tx - tx0) * TILE_PX, (ty - ty0) * TILE_PX))
        box = ((x0 - tx0) * TILE_PX, (y0 - ty0) * TILE_PX, (x1 - tx0) * TILE_PX, (y1 - ty0) * TILE_PX)
        return canvas.resize(size, Image.Resampling.BILINEAR, box=box)


def provider(spec: str) -> ContextProvider:
    """The provider that ``--context SPEC`` names: ``mapbox`` or ``xyz:TEMPLATE``.

    Raises:
        ContextError: an unknown provider, a Mapbox provider without a token, a bad template.
    """
    if spec == "mapbox":
        return MapboxStatic()
    if spec.startswith("xyz:"):
        return XyzTiles(spec[4:])
    raise ContextError(f"--context {redact(spec)[:60]!r}: give mapbox or xyz:TEMPLATE")
