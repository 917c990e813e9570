"""Indices + gates per tile against the time to read the tile's bands.

A tile's raw L2A bands (B02 B03 B04 B05 B08 SCL, 256x512 px at 10 m, the sample
corpus's GeoTIFF layout) are read with ``read_bands``; then the six indices that
its bands allow and the four gates run on them. The ratio (compute / read) says
whether the gates cost more than the I/O they sit behind.

    python benchmarks/bench_gates.py [--tiles 50] [--write]
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
from builder import gates, indices, raster  # noqa: E402
from builder.sample import s2_reflectance, write_bands  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=50)
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
    n = len(paths)
    lines = [
        f"{n} tiles of 256x512 px, 6 bands (deflate GeoTIFF)",
        f"read bands:                  {read_s / n * 1000:7.2f} ms/tile",
        f"indices + composite + gates: {compute_s / n * 1000:7.2f} ms/tile "
        f"= {compute_s / read_s:.2f}x the read time",
    ]
    print("\n".join(lines))
    if args.write:
        write_section("bench_gates", "Indices and gates per tile (`benchmarks/bench_gates.py`)", lines)


if __name__ == "__main__":
    main()
