"""A STAC API on loopback over the real eo-learn scenes, for ``cropmark collect``'s tests and benchmark.

What runs:

- **the STAC API** is rustac's (``rustac serve``, the PyPI package ``rustac``: an in-memory
  STAC API with item search by ``intersects``, ``bbox``, ``datetime`` and ``collections``,
  paging, conformance classes), loaded with the collection and items this module writes;
- **the assets** are served by :class:`RangeServer`, a small HTTP file server of this module
  that answers ``Range: bytes=a-b`` (and ``a-``, ``-n``) with ``206 Partial Content`` as object
  stores do, logs every request with the bytes it sent, and injects faults (a status for the
  next N requests to a path) for the retry tests. It models what GDAL's ``/vsicurl/`` needs of
  S3 or a CDN: ``HEAD``, ranged ``GET``, ``Content-Length``, ``Accept-Ranges``; not ETags,
  multi-range replies or redirects.

The catalogue (:func:`write_catalogue`): one item per real scene, with its real acquisition
time (``tests/data/eolearn-s2/timestamps.json``) and footprint (EPSG:32633), written as
cloud-optimised GeoTIFFs (GDAL's COG driver, 16 px internal tiles, so a window is a subset of a
file's tiles) at each band's native resolution (10 m; B05 and SCL at 20 m by 2x2 means, as
ESA aggregates). The values are the scenes' top-of-atmosphere reflectance written as a
Level-2A product of processing baseline 04.00 stores DNs (reflectance x 10000 + 1000), the
offset declared the way Element 84's Earth Search v1 declares it (``raster:bands`` offset -0.1,
scale 0.0001) and not in the files' tags. SCL is made from eo-learn's reference cloud mask
``CLM`` (s2cloudless): class 9 (cloud, high probability) wherever a 20 m pixel holds a cloudy
10 m pixel, else 4 (vegetation) where the reference NDVI is at least 0.3, else 5 (not
vegetated). ``eo:cloud_cover`` is eo-learn's ``CLOUD_COVERAGE`` x 100 unless a test sets it.
A Level-1C variant has all 13 bands under their ESA names and no SCL.
"""

from __future__ import annotations

import datetime
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from builder.raster.bands import BANDS
from tests.data import eolearn

TIMESTAMPS = Path(__file__).resolve().parent / "data" / "eolearn-s2" / "timestamps.json"
CRS = "EPSG:32633"
L2A_ASSETS = {"B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B08": "nir", "SCL": "scl"}
NATIVE_M = {
    "B01": 60,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B8A": 20,
    "B09": 60,
    "B10": 60,
    "B11": 20,
    "B12": 20,
    "SCL": 20,
}
CLOUDY_SCENES = (0, 1)  # eo-learn's reference mask: 100 % cloud; scenes 2, 3, 4 are clear


def acquired(k: int) -> datetime.datetime:
    times = json.loads(TIMESTAMPS.read_text(encoding="utf-8"))["scenes"]
    return datetime.datetime.fromisoformat(times[k]).replace(tzinfo=datetime.UTC)


def patch_lonlat() -> tuple[float, float, float, float]:
    """The patch's footprint as WGS84 bounds (west, south, east, north)."""
    from rasterio.warp import transform_bounds

    x, y = eolearn.origin()
    height, width = eolearn.scenes().shape[1:3]
    return tuple(transform_bounds(CRS, "EPSG:4326", x, y - 10 * height, x + 10 * width, y))  # type: ignore[return-value]


def lonlat_at(col: float, row: float) -> tuple[float, float]:
    """WGS84 (lon, lat) of a point of the patch given in 10 m pixels from its upper-left corner."""
    from rasterio.warp import transform

    x, y = eolearn.origin()
    xs, ys = transform(CRS, "EPSG:4326", [x + 10 * col], [y - 10 * row])
    return xs[0], ys[0]


def _aggregate(values: np.ndarray, factor: int, how: str = "mean") -> np.ndarray:
    h, w = -(-values.shape[0] // factor) * factor, -(-values.shape[1] // factor) * factor
    padded = np.pad(values, ((0, h - values.shape[0]), (0, w - values.shape[1])), mode="edge")
    blocks = padded.reshape(h // factor, factor, w // factor, factor)
    return blocks.max(axis=(1, 3)) if how == "max" else blocks.mean(axis=(1, 3))


def _write_cog(path: Path, values: np.ndarray, res: float, dtype: str) -> None:
    import rasterio
    from rasterio.transform import from_origin

    x, y = eolearn.origin()
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="COG",
        width=values.shape[1],
        height=values.shape[0],
        count=1,
        dtype=dtype,
        crs=CRS,
        transform=from_origin(x, y, res, res),
        nodata=0,
        blocksize=16,
        compress="deflate",
        overviews="none",
    ) as dst:
        dst.write(values.astype(dtype), 1)


def _scl(k: int) -> np.ndarray:
    clm = eolearn.reference("CLM")[eolearn.ORDER[k], ..., 0]
    ndvi = eolearn.reference("NDVI")[eolearn.ORDER[k], ..., 0]
    cloud = _aggregate(clm.astype(np.float32), 2, "max") > 0
    green = _aggregate(ndvi.astype(np.float32), 2) >= 0.3
    return np.where(cloud, 9, np.where(green, 4, 5)).astype(np.uint8)


def write_catalogue(
    root: Path,
    base_url: str,
    *,
    collection: str = "sentinel-2-l2a",
    level: str = "L2A",
    scene_cloud: Mapping[int, float] | None = None,
    scenes: tuple[int, ...] = (0, 1, 2, 3, 4),
) -> tuple[Path, Path]:
    """COGs under ``root/<collection>/<item>/`` and the collection and items JSON; their paths."""
    from rasterio.warp import transform_geom

    x, y = eolearn.origin()
    data = eolearn.scenes()
    height, width = data.shape[1:3]
    footprint = {
        "type": "Polygon",
        "coordinates": [
            [(x, y), (x + 10 * width, y), (x + 10 * width, y - 10 * height), (x, y - 10 * height), (x, y)]
        ],
    }
    geometry = transform_geom(CRS, "EPSG:4326", footprint)
    west, south, east, north = patch_lonlat()
    coverage = eolearn.reference("CLOUD_COVERAGE")
    features: list[dict[str, Any]] = []
    for k in scenes:
        when = acquired(k)
        item_id = f"S2A_eolearn{k}_{when:%Y%m%d}_{level}"
        folder = root / collection / item_id
        assets: dict[str, Any] = {}
        if level == "L2A":
            bands = {b: L2A_ASSETS[b] for b in ("B02", "B03", "B04", "B05", "B08", "SCL")}
        else:
            bands = {b: b for b in BANDS}
        for band, key in bands.items():
            res = NATIVE_M.get(band, 10)
            if band == "SCL":
                values, dtype = _scl(k), "uint8"
                info: dict[str, Any] = {"nodata": 0, "data_type": "uint8", "spatial_resolution": res}
            else:
                refl = data[k][..., BANDS.index(band)]
                if res > 10:
                    refl = _aggregate(refl, res // 10)
                add = 0.1 if level == "L2A" else 0.0
                values, dtype = eolearn.dn(refl + add), "uint16"
                info = {"nodata": 0, "data_type": "uint16", "spatial_resolution": res, "scale": 0.0001}
                if level == "L2A":
                    info["offset"] = -0.1
            file = folder / f"{band}.tif"
            _write_cog(file, values, float(res), dtype)
            assets[key] = {
                "href": f"{base_url}/{collection}/{item_id}/{band}.tif",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
                "raster:bands": [info],
            }
        cover = float(coverage[eolearn.ORDER[k]][0]) * 100 if scene_cloud is None else scene_cloud[k]
        properties: dict[str, Any] = {
            "datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eo:cloud_cover": cover,
            "platform": "sentinel-2a",
            "proj:code": CRS,
        }
        if level == "L1C":
            properties["s2:processing_baseline"] = "02.01"
        features.append(
            {
                "type": "Feature",
                "stac_version": "1.1.0",
                "id": item_id,
                "collection": collection,
                "geometry": geometry,
                "bbox": [west, south, east, north],
                "properties": properties,
                "links": [],
                "assets": assets,
            }
        )
    coll = {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": collection,
        "description": "Real Sentinel-2 scenes of eo-learn's example patch (MIT; contains modified "
        "Copernicus Sentinel data 2015), served for tests",
        "license": "MIT",
        "extent": {
            "spatial": {"bbox": [[west, south, east, north]]},
            "temporal": {"interval": [["2015-07-01T00:00:00Z", "2015-10-01T00:00:00Z"]]},
        },
        "links": [],
    }
    root.mkdir(parents=True, exist_ok=True)
    collection_path = root / f"{collection}.collection.json"
    items_path = root / f"{collection}.items.json"
    collection_path.write_text(json.dumps(coll), encoding="utf-8")
    items_path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return collection_path, items_path


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    status: int
    sent: int


@dataclass
class RangeServer:
    """An HTTP file server with byte ranges, a request log and injected faults (see the module)."""

    root: Path
    log: list[Request] = field(default_factory=list)
    # path substring -> (status, seconds the fault lasts from its first hit or None: until cleared,
    # time of the first hit)
    faults: dict[str, tuple[int, float | None, float | None]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, path_part: str, status: int, seconds: float | None = None) -> None:
        """Answer ``status`` to every request whose path holds ``path_part``: until :meth:`clear`,
        or for ``seconds`` from the first such request (a client that waits longer before trying
        again gets the file: a transient fault, whatever number of requests GDAL makes per try)."""
        with self.lock:
            self.faults[path_part] = (status, seconds, None)

    def clear(self) -> None:
        with self.lock:
            self.log.clear()
            self.faults.clear()

    def sent(self, part: str = "") -> int:
        return sum(r.sent for r in self.log if part in r.path)

    @contextmanager
    def serve(self) -> Iterator[str]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _fault(self) -> int | None:
                now = time.monotonic()
                with server.lock:
                    for part, (status, seconds, first) in server.faults.items():
                        if part not in self.path:
                            continue
                        if first is None:
                            server.faults[part] = (status, seconds, now)
                            return status
                        if seconds is None or now < first + seconds:
                            return status
                return None

            def _record(self, status: int, sent: int) -> None:
                with server.lock:
                    server.log.append(
                        Request(self.command, self.path, self.headers.get("Range"), status, sent)
                    )

            def _reply(self, body: bool) -> None:
                status = self._fault()
                if status is not None:
                    page = b"<html><body>injected fault</body></html>"
                    self.send_response(status)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    if body:
                        self.wfile.write(page)
                    self._record(status, 0)
                    return
                path = (server.root / self.path.split("?", 1)[0].lstrip("/")).resolve()
                if server.root.resolve() not in path.parents or not path.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    self._record(404, 0)
                    return
                size = path.stat().st_size
                start, end, status = 0, size - 1, 200
                wanted = self.headers.get("Range")
                match = re.fullmatch(r"bytes=(\d*)-(\d*)", wanted or "")
                if match and (match.group(1) or match.group(2)):
                    if match.group(1):
                        start = int(match.group(1))
                        end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
                    else:
                        start, end = max(size - int(match.group(2)), 0), size - 1
                    if start >= size or start > end:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        self._record(416, 0)
                        return
                    status = 206
                self.send_response(status)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "image/tiff")
                self.send_header("Content-Length", str(end - start + 1))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.end_headers()
                sent = 0
                if body:
                    with path.open("rb") as handle:
                        handle.seek(start)
                        chunk = handle.read(end - start + 1)
                    self.wfile.write(chunk)
                    sent = len(chunk)
                self._record(status, sent)

            def do_GET(self) -> None:
                self._reply(True)

            def do_HEAD(self) -> None:
                self._reply(False)

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            httpd.shutdown()
            httpd.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rustac() -> str:
    found = Path(sys.executable).parent / "rustac"
    if found.exists():
        return str(found)
    which = shutil.which("rustac")
    if which is None:
        raise RuntimeError("rustac is not installed: pip install -c constraints.txt -e '.[dev]'")
    return which


@contextmanager
def stac_api(*hrefs: Path, timeout_s: float = 60.0) -> Iterator[str]:
    """``rustac serve`` on a free loopback port with these collection and item files; its URL."""
    for _ in range(3):  # a port found free may be taken before rustac binds it
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            [rustac(), "serve", *map(str, hrefs), "--addr", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "RUST_LOG": "error"},
        )
        deadline = time.monotonic() + timeout_s
        ready = False
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(url + "/", timeout=5) as reply:
                    ready = reply.status == 200
                    break
            except OSError:
                time.sleep(0.1)
        if ready:
            break
        process.kill()
        process.wait()
    else:
        raise RuntimeError("rustac serve did not start")
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def write_tiles(root: Path, zoom: int = 16, scene: int = 2) -> Path:
    """An XYZ tile folder ``root/{z}/{x}/{y}.png`` of a real scene's true colour (B04/B03/B02,
    reflectance x 3.5 clipped), reprojected to Web Mercator: the context half of the tests."""
    from PIL import Image
    from rasterio.enums import Resampling
    from rasterio.transform import from_bounds, from_origin
    from rasterio.warp import reproject

    from builder.collect.context import _tile_xy

    x, y = eolearn.origin()
    data = eolearn.scenes()[scene]
    rgb = np.stack([data[..., BANDS.index(b)] for b in ("B04", "B03", "B02")])
    rgb8 = (np.clip(rgb * 3.5, 0, 1) * 254 + 1).astype(np.uint8)
    west, south, east, north = patch_lonlat()
    x0, y0 = _tile_xy(west, north, zoom)
    x1, y1 = _tile_xy(east, south, zoom)
    n = 2**zoom
    half = 20037508.342789244
    for tx in range(int(x0), int(x1) + 1):
        for ty in range(int(y0), int(y1) + 1):
            left, right = -half + tx * 2 * half / n, -half + (tx + 1) * 2 * half / n
            top, bottom = half - ty * 2 * half / n, half - (ty + 1) * 2 * half / n
            out = np.zeros((3, 256, 256), dtype=np.uint8)
            reproject(
                rgb8,
                out,
                src_transform=from_origin(x, y, 10.0, 10.0),
                src_crs=CRS,
                src_nodata=0,
                dst_transform=from_bounds(left, bottom, right, top, 256, 256),
                dst_crs="EPSG:3857",
                dst_nodata=0,
                resampling=Resampling.bilinear,
            )
            path = root / str(zoom) / str(tx) / f"{ty}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.moveaxis(out, 0, -1)).save(path)
    return root
