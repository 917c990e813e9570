"""``cropmark collect``: sites per second against reading the same windows directly.

A STAC API on loopback (rustac, ``tests/stac_server.py``) serves the five real eo-learn scenes
as COGs over HTTP with byte ranges. ``--sites`` sites at different places of the patch and
dates are collected into a fresh corpus (search, cloud measured over each window for each
acquisition measured, the chosen item's six bands read, ``bands/<site>.tif``, the Sentinel-2
half, the context half from an XYZ tile folder, the composite and the rows). The baseline reads
the same windows of the same chosen items' six bands with rasterio and nothing else: the I/O
a collection cannot avoid. Both run in this process, one after the other, with GDAL's
in-process HTTP cache off (``CPL_VSIL_CURL_NON_CACHED``), so each reads from the server; the
HTTP requests and bytes of each are counted by the server.

    python benchmarks/bench_collect.py [--sites 24] [--write]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import write_section  # noqa: E402
from builder.collect.run import CollectConfig, collect, read_journal  # noqa: E402
from tests import stac_server  # noqa: E402

DATES = ("2015-08-25", "2015-09-05", "2015-07-15", "2015-08-31")  # 1 to 3 acquisitions within 12 days
BANDS = ("B02", "B03", "B04", "B05", "B08", "SCL")


def site_list(path: Path, n: int) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("site", "lat", "lon", "label", "split", "source_db", "source_id", "date"))
        for i in range(n):
            lon, lat = stac_server.lonlat_at(33 + (i * 5) % 35, 50.5)
            writer.writerow(
                (
                    f"site{i:03d}",
                    f"{lat:.6f}",
                    f"{lon:.6f}",
                    ("Yes", "No")[i % 2],
                    ("train", "eval")[i % 4 == 3],
                    "Historic England AIM",
                    f"AIM{i:07d}",
                    DATES[i % len(DATES)],
                )
            )
    return path


def read_direct(base: str, journal: dict[str, dict[str, object]], corpus: Path) -> None:
    """The chosen items' six bands on each site's window, read with rasterio alone."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import from_bounds

    for entry in journal.values():
        with rasterio.open(corpus / str(entry["bands"])) as grid:
            crs, transform, width, height, bounds = (
                grid.crs,
                grid.transform,
                grid.width,
                grid.height,
                grid.bounds,
            )
        for band in BANDS:
            url = f"{base}/sentinel-2-l2a/{entry['item_id']}/{band}.tif"
            with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(url) as src:
                if src.res == (10.0, 10.0):
                    src.read(
                        1,
                        window=from_bounds(*bounds, transform=src.transform).round_offsets().round_lengths(),
                    )
                else:
                    method = Resampling.nearest if band == "SCL" else Resampling.bilinear
                    with WarpedVRT(
                        src, crs=crs, transform=transform, width=width, height=height, resampling=method
                    ) as vrt:
                        vrt.read(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=24)
    parser.add_argument("--write", action="store_true", help="write the figures into benchmarks/RESULTS.md")
    args = parser.parse_args()
    os.environ["CPL_VSIL_CURL_NON_CACHED"] = "/vsicurl/http://127.0.0.1"
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    with tempfile.TemporaryDirectory(prefix="bench-collect-") as temp:
        tmp = Path(temp)
        files = stac_server.RangeServer(tmp / "assets")
        with files.serve() as base:
            hrefs = stac_server.write_catalogue(tmp / "assets", base)
            tiles = stac_server.write_tiles(tmp / "tiles")
            with stac_server.stac_api(*hrefs) as stac:
                sites = site_list(tmp / "sites.csv", args.sites)
                (tmp / "gates.json").write_text(json.dumps({"max_canopy": 0.9}))
                config = CollectConfig(
                    sites,
                    stac,
                    tmp / "corpus",
                    window_days=12,
                    context=f"xyz:{tiles}/{{z}}/{{x}}/{{y}}.png",
                    size_m=(640.0, 1000.0),
                    gates=tmp / "gates.json",
                )
                files.clear()
                start = time.perf_counter()
                outcome = collect(config)
                collect_s = time.perf_counter() - start
                collect_requests, collect_bytes = len(files.log), files.sent()
                n = len(outcome.collected)
                journal = read_journal(tmp / "corpus")
                measured = sum(len(e["measured"]) for e in journal.values())
                files.clear()
                start = time.perf_counter()
                read_direct(base, journal, tmp / "corpus")
                direct_s = time.perf_counter() - start
                direct_requests, direct_bytes = len(files.log), files.sent()
    say(
        f"sites: {args.sites} asked, {n} collected, {len(outcome.skipped)} skipped; window 64 x 100 px; "
        f"{measured} acquisitions measured ({measured / max(n, 1):.2f} per site)"
    )
    say(
        f"collect:          {n / collect_s:7.2f} sites/s  ({collect_s:6.2f} s; "
        f"{collect_requests / n:5.1f} HTTP requests and {collect_bytes / n / 1024:6.1f} KiB of COGs per site)"
    )
    say(
        f"direct reads:     {n / direct_s:7.2f} sites/s  ({direct_s:6.2f} s; {direct_requests / n:5.1f} HTTP "
        f"requests and {direct_bytes / n / 1024:6.1f} KiB of COGs per site: the chosen item's 6 bands)"
    )
    say(f"ratio:            collect takes {collect_s / direct_s:.2f}x the time of the direct reads")
    say(f"machine load (1-minute average): {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.write:
        write_section("collect", "Collecting from STAC (`benchmarks/bench_collect.py`)", lines)


if __name__ == "__main__":
    main()
