"""Sibling layouts: load + one pass over every image, Parquet against imagefolder; build cost per layout.

The seeded sample corpus (767 train + 155 eval tiles) is built once per layout.
Then, alternating the two layouts ``--repeat`` times, each is loaded with
``load_dataset`` into a fresh cache and every image of every split is decoded
once; medians are compared. The build time of each sibling layout is reported
as a ratio to the imagefolder build it starts from, its size on disk as a ratio
to the imagefolder's JPEG tiles. The HDF5 writer alone is then timed on the same
tiles with ``uint8`` (the default) and ``float32`` images, alternating
``--repeat`` times: medians of write time and the size of the shards, each as a
ratio to the JPEG tiles (size) and to the ``uint8`` write (time).

    python benchmarks/bench_formats.py [--repeat 3] [--write]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import write_section  # noqa: E402
from builder.layouts import hdf5  # noqa: E402
from builder.layouts.base import LayoutOptions, samples  # noqa: E402
from builder.layouts.policy import CROPMARK  # noqa: E402
from builder.release.build import BuildConfig, build  # noqa: E402
from builder.release.report import BuildReport  # noqa: E402
from builder.testing.sample import generate  # noqa: E402


def load_and_pass(release: Path, cache: Path) -> tuple[float, int]:
    """Seconds to load ``release`` into an empty cache and decode every image once."""
    import datasets
    from datasets import load_dataset

    datasets.disable_progress_bars()
    start = time.perf_counter()
    ds = load_dataset(str(release), cache_dir=str(cache))
    n = 0
    for split in ds.values():
        for row in split:
            row["image"].load()
            n += 1
    return time.perf_counter() - start, n


def size(folder: Path, skip: tuple[str, ...] = ("README.md", "LICENSE", "NOTICE.md")) -> int:
    """Bytes of every file under ``folder`` but the card and licence texts."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name not in skip)


def hdf5_write(release: Path, report: BuildReport, out: Path, dtype: str) -> tuple[float, int]:
    """Seconds for the HDF5 writer alone on ``release``'s tiles, and the bytes of its shards."""
    items = samples(release, report.tiles, {})
    out.mkdir()
    (out / "private").mkdir()
    start = time.perf_counter()
    hdf5.write(items, out, out / "private", LayoutOptions(hdf5_dtype=dtype), CROPMARK)
    seconds = time.perf_counter() - start
    return seconds, size(out / "shards")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="write the figures to benchmarks/RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_formats_") as tmp:
        root = Path(tmp)
        generate(root / "corpus", seed=0)
        releases, build_s, reports = {}, {}, {}
        options = LayoutOptions()
        for layout in ("imagefolder", "parquet", "sft-jsonl", "hdf5"):
            start = time.perf_counter()
            out = root / layout
            config = BuildConfig(root / "corpus", out, "1.0.0", layout=layout, layout_options=options)
            result = build(config)
            releases[layout], reports[layout] = result.release, result.report
            build_s[layout] = time.perf_counter() - start
        sizes = {layout: size(release) for layout, release in releases.items()}
        jpeg = size(releases["imagefolder"] / "data")
        writes: dict[str, list[float]] = {"uint8": [], "float32": []}
        shard_bytes: dict[str, int] = {}
        for i in range(args.repeat):
            for dtype in writes:
                seconds, shard_bytes[dtype] = hdf5_write(
                    releases["imagefolder"], reports["imagefolder"], root / f"h5-{dtype}-{i}", dtype
                )
                writes[dtype].append(seconds)
        times: dict[str, list[float]] = {"imagefolder": [], "parquet": []}
        count = 0
        for i in range(args.repeat):
            for layout in times:
                seconds, count = load_and_pass(releases[layout], root / f"cache-{layout}-{i}")
                times[layout].append(seconds)
    folder, parquet = statistics.median(times["imagefolder"]), statistics.median(times["parquet"])
    base = build_s["imagefolder"]
    lines = [
        f"sample release, {count} tiles; median of {args.repeat} alternating runs, fresh cache each",
        f"imagefolder: load + decode every image {folder:6.2f} s (the reference)",
        f"parquet:     load + decode every image {parquet:6.2f} s = {parquet / folder:.2f}x",
        "build, 1 worker (curate, cut, gates, audit, then the layout and its audit):",
        f"  imagefolder {base:6.1f} s (the reference)",
        *(
            f"  {layout:<11} {build_s[layout]:6.1f} s = {build_s[layout] / base:.2f}x"
            for layout in ("parquet", "sft-jsonl", "hdf5")
        ),
        f"size on disk (all but README, LICENSE, NOTICE) against the {jpeg / 2**20:.1f} MiB of JPEG tiles:",
        *(f"  {name:<11} {sizes[name] / 2**20:6.1f} MiB = {sizes[name] / jpeg:.2f}x" for name in sizes),
        f"HDF5 writer alone, {count} tiles, median of {args.repeat} alternating runs (gzip level 1):",
        *(
            f"  {dtype:<7} write {statistics.median(writes[dtype]):5.2f} s = "
            f"{statistics.median(writes[dtype]) / statistics.median(writes['uint8']):.2f}x the uint8 write; "
            f"shards {shard_bytes[dtype] / 2**20:6.1f} MiB = {shard_bytes[dtype] / jpeg:.2f}x the JPEG tiles"
            for dtype in writes
        ),
    ]
    print("\n".join(lines))
    if args.write:
        write_section("bench_formats", "Sibling layouts (`benchmarks/bench_formats.py`)", lines)


if __name__ == "__main__":
    main()
