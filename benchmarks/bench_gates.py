"""Indices + gates per tile against the time to read the tile's bands; the cloud detector too.

A tile's raw L2A bands (B02 B03 B04 B05 B08 SCL, 256x512 px at 10 m, the sample
corpus's GeoTIFF layout) are read with ``read_bands``; then the six indices that
its bands allow and the four gates run on them. The ratio (compute / read) says
whether the gates cost more than the I/O they sit behind.

A Level-1C tile (all 13 bands, no SCL: gate 2 runs s2cloudless on it) is read the
same way, and s2cloudless's mask of it is timed against that read. Its one-off
cost per process (importing s2cloudless and loading its model) is printed apart.

    python benchmarks/bench_gates.py [--tiles 50] [--cloud-tiles 5] [--write]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks._results import write_section  # noqa: E402
from builder.quality import gates  # noqa: E402
from builder.raster import bands as raster  # noqa: E402
from builder.raster import clouds, indices  # noqa: E402
from builder.testing.sample import s2_reflectance, write_bands  # noqa: E402


def write_l1c(path: Path, reflectance: np.ndarray) -> None:
    """13 bands of a farmland tile as L1C DNs (the other bands follow B08, B04 and B05)."""
    import rasterio
    from rasterio.transform import from_origin

    nir, red, edge = (reflectance[..., i] for i in range(3))
    made = {
        "B01": red * 0.9 + 0.03, "B02": red * 0.75 + 0.02, "B03": red * 1.25 + 0.02, "B04": red,
        "B05": edge, "B06": nir * 0.8, "B07": nir * 0.95, "B08": nir, "B8A": nir * 1.02,
        "B09": nir * 0.3, "B10": np.full_like(nir, 0.002), "B11": red + 0.15, "B12": red + 0.07,
    }  # fmt: skip
    height, width = nir.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 13, "dtype": "uint16"}
    profile |= {"crs": "EPSG:32633", "transform": from_origin(500_000, 4_600_000, 10, 10), "nodata": 0}
    with rasterio.open(path, "w", **profile) as dst:
        for i, (band, values) in enumerate(made.items(), 1):
            dst.write(np.clip(np.round(values * 10_000), 1, 65535).astype(np.uint16), i)
            dst.set_band_description(i, band)
        dst.update_tags(PROCESSING_LEVEL="Level-1C", PROCESSING_BASELINE="02.14")


def bench_clouds(tmp: Path, tiles: int, rng: np.random.Generator) -> list[str]:
    paths = []
    for i in range(tiles):
        reflectance, _ = s2_reflectance(rng, "No")
        paths.append(tmp / f"l1c{i}.tif")
        write_l1c(paths[-1], reflectance)
    start = time.perf_counter()
    clouds.detect(raster.read_bands(paths[0]))  # import s2cloudless and load its model once
    first_s = time.perf_counter() - start
    read_s = detect_s = 0.0
    for path in paths:
        start = time.perf_counter()
        bands = raster.read_bands(path)
        read_s += time.perf_counter() - start
        start = time.perf_counter()
        clouds.detect(bands)
        detect_s += time.perf_counter() - start
    n = len(paths)
    return [
        f"{n} L1C tiles of 256x512 px, 13 bands (GeoTIFF), no SCL: gate 2 runs s2cloudless",
        f"read bands:                  {read_s / n * 1000:7.2f} ms/tile",
        f"s2cloudless mask:            {detect_s / n * 1000:7.2f} ms/tile "
        f"= {detect_s / read_s:.0f}x the read time",
        f"first call in a process:     {first_s:7.2f} s (import s2cloudless, load its model)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=50)
    parser.add_argument("--cloud-tiles", type=int, default=5, help="L1C tiles for the cloud detector")
    parser.add_argument("--write", action="store_true", help="write the figures to benchmarks/RESULTS.md")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    site = {"source_db": "Tavoliere literature", "lat": "41.5", "lon": "15.5"}
    with tempfile.TemporaryDirectory(prefix="bench_gates_") as tmp:
        paths = []
        for i in range(args.tiles):
            reflectance, _ = s2_reflectance(rng, "No")
            scl = np.where(reflectance[..., 0] > 0.24, 4, 5).astype(np.uint16)
            paths.append(Path(tmp) / f"t{i}.tif")
            write_bands(paths[-1], reflectance, scl, site)
        read_s = compute_s = 0.0
        for path in paths:
            start = time.perf_counter()
            bands = raster.read_bands(path)
            read_s += time.perf_counter() - start
            start = time.perf_counter()
            indices.compute(bands.data)
            half = raster.s2_half(raster.false_colour(bands))
            gates.evaluate(s2_jpeg_bytes=10_000, s2_rgb=np.asarray(half), right=None, bands=bands)
            compute_s += time.perf_counter() - start
        cloud_lines = bench_clouds(Path(tmp), args.cloud_tiles, rng)
    n = len(paths)
    lines = [
        f"{n} tiles of 256x512 px, 6 bands (deflate GeoTIFF)",
        f"read bands:                  {read_s / n * 1000:7.2f} ms/tile",
        f"indices + composite + gates: {compute_s / n * 1000:7.2f} ms/tile "
        f"= {compute_s / read_s:.2f}x the read time",
        "",
        *cloud_lines,
    ]
    print("\n".join(lines))
    if args.write:
        write_section("bench_gates", "Indices and gates per tile (`benchmarks/bench_gates.py`)", lines)


if __name__ == "__main__":
    main()
