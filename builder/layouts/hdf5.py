"""HDF5 layout: a main file that external-links shard files, one group per sample.

::

    main.h5                    /<key> -> external link "shards/shard-00000.h5":/<key>
    shards/shard-00000.h5      /<key>/image   uint8 (bands x H x W), gzip (float32 / 255: an option)
                               /<key>/coords  float32 (2 x H x W): x, y of pixel centres in `crs`
                               attrs: labels (strings), crs (int EPSG code),
                               timestamp (float64 POSIX seconds)
    metadata.parquet           key, split, labels, shard
    queries.jsonl              one text query per label (text-to-image retrieval)
    qrels/{split}.tsv          query-id, corpus-id, score (BEIR layout)
    README.md  LICENSE  NOTICE.md

``image`` holds the published tile's three false-colour bands (B08, B04, B05,
8-bit stretched values) as ``uint8``, so the layout stores exactly what the release
publishes; ``--hdf5-dtype float32`` stores the same values / 255 instead (four
times the bytes before compression). ``crs`` is the numeric EPSG code of the
site's UTM zone (an integer attribute, as in the EPSG registry: 32633 is
WGS 84 / UTM zone 33N). ``timestamp`` is float64 because float32 rounds
present-day epoch seconds to multiples of 128 s. ``coords``, ``crs`` and ``timestamp`` are written
only where the release's policy allows (the cropmark policy allows none of
them); ``coords`` are the 10 m grid of a ``HALF_SIZE`` window centred on the
site, in the site's UTM zone, as the corpus's tiles were cut.

External links are stored by **relative** path, so the release folder can move
as a whole; :func:`open_main` refuses, with the missing path, a main file moved
away from its shards.

The split is a stratified multi-label split over site groups (iterative
stratification, Sechidis et al. 2011): every label keeps its share in each split,
and a site never spans two splits.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from builder import progress
from builder.domain import COMPOSITE_BANDS, HALF_SIZE, LABELS, TILE_NAME_RE
from builder.errors import LayoutDataError
from builder.layouts.base import (
    SFT_SPLITS,
    AuditContext,
    LayoutOptions,
    LayoutSpec,
    Sample,
    require_filled,
    unit_hash,
)
from builder.layouts.policy import Policy, require
from builder.scan import mask, text_findings

PIXEL_M = 10.0
QUERIES = {
    "Yes": "Sentinel-2 false-colour tile of farmland showing cropmark stress from buried archaeology",
    "No": "Sentinel-2 false-colour tile of farmland with no cropmark stress from buried archaeology",
}


def tile_array(path: Path, dtype: str = "uint8") -> np.ndarray:
    """The published tile as bands x H x W: its 8-bit values (``uint8``), or them / 255 (``float32``)."""
    with Image.open(path) as image:
        rgb = np.ascontiguousarray(np.moveaxis(np.asarray(image.convert("RGB")), -1, 0))
    if dtype == "uint8":
        return rgb
    return (rgb.astype(np.float32) / np.float32(255)).astype(np.float32)


def utm_epsg(lat: float, lon: float) -> int:
    zone = min(int((lon + 180) // 6) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def site_coords(lat: float, lon: float) -> tuple[np.ndarray, int]:
    """Pixel-centre x, y (2 x H x W float32) of the tile window centred on a site, and its EPSG code."""
    from rasterio.warp import transform

    epsg = utm_epsg(lat, lon)
    xs, ys = transform("EPSG:4326", f"EPSG:{epsg}", [lon], [lat])
    width, height = HALF_SIZE
    cols = (np.arange(width) - width / 2 + 0.5) * PIXEL_M + xs[0]
    rows = ys[0] - (np.arange(height) - height / 2 + 0.5) * PIXEL_M
    grid = np.stack(np.meshgrid(cols, rows)).astype(np.float32)
    return grid, epsg


def finite(array: np.ndarray, key: str, name: str) -> np.ndarray:
    """``array`` if every value is finite; else a one-line error naming the sample."""
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise LayoutDataError(
            f"sample {key}: {name} has {bad} non-finite value(s) (NaN or infinity); "
            "HDF5 samples must be finite: fix or drop the source tile"
        )
    return array


def stratify(samples: Sequence[Sample], fractions: Sequence[float], salt: str) -> dict[str, str]:
    """Split of every group: iterative stratification over the groups' label counts.

    Labels are taken rarest first; each group holding the label goes to the split
    that still wants most of it (then most samples, then by stable hash).

    Raises:
        ConfigError: a split with a positive fraction gets no group.
    """
    counts: dict[str, Counter[str]] = {}
    for sample in samples:
        counts.setdefault(sample.group, Counter())[sample.label] += 1
    total = Counter[str]()
    for c in counts.values():
        total.update(c)
    n = sum(total.values())
    want_all = [f * n for f in fractions]
    want = {label: [f * total[label] for f in fractions] for label in total}
    open_splits = [i for i, f in enumerate(fractions) if f > 0]
    remaining = set(counts)
    out: dict[str, str] = {}
    while remaining:
        present = Counter[str]()
        for group in remaining:
            present.update(counts[group])
        label = min(present, key=lambda lab: (present[lab], lab))
        chosen = sorted((g for g in remaining if counts[g][label]), key=lambda g: unit_hash(g, salt))
        for group in chosen:
            best = max(open_splits, key=lambda i: (want[label][i], want_all[i], -i))
            out[group] = SFT_SPLITS[best]
            want_all[best] -= sum(counts[group].values())
            for lab, k in counts[group].items():
                want[lab][best] -= k
            remaining.discard(group)
    return require_filled(out, fractions, "")


def write(
    samples: Sequence[Sample], dest: Path, private: Path, options: LayoutOptions, policy: Policy
) -> dict[str, Any]:
    """Write shards, the main file, metadata, queries and qrels; return the layout summary."""
    split_of = stratify(samples, options.fractions, options.salt)
    ordered = sorted(samples, key=lambda s: s.file_name)
    shard_of, written = _write_shards(ordered, dest, options, policy)
    _write_main(ordered, shard_of, dest / "main.h5", options.hdf5_dtype)
    _write_metadata(ordered, split_of, shard_of, dest / "metadata.parquet")
    _write_retrieval(ordered, split_of, dest)
    return {
        "fractions": list(options.fractions),
        "salt": options.salt,
        "samples_per_shard": options.samples_per_shard,
        "shards": -(-len(ordered) // options.samples_per_shard),
        "splits": _split_counts(ordered, split_of),
        "groups": len(split_of),
        "dtype": options.hdf5_dtype,
        "coords": written["coords"],
        "timestamps": written["timestamp"],
    }


def _write_shards(
    ordered: Sequence[Sample], dest: Path, options: LayoutOptions, policy: Policy
) -> tuple[dict[str, str], Counter[str]]:
    """``shards/shard-NNNNN.h5``, one group a sample; each key's shard, and how many
    samples got coordinates and timestamps (as the policy and options allow)."""
    import h5py

    coords_on = policy.coordinates if options.coords is None else options.coords
    per = options.samples_per_shard
    (dest / "shards").mkdir()
    shard_of: dict[str, str] = {}
    written = Counter[str]()
    stream = iter(progress.bar(ordered, "write hdf5", len(ordered), unit="sample"))
    for start in range(0, len(ordered), per):
        rel = f"shards/shard-{start // per:05d}.h5"
        with h5py.File(dest / rel, "w", track_order=True) as shard:
            for sample in itertools.islice(stream, per):
                group = shard.create_group(sample.key)
                image = finite(tile_array(sample.path, options.hdf5_dtype), sample.key, "image")
                group.create_dataset(
                    "image", data=image, chunks=image.shape, compression="gzip", compression_opts=1
                )
                group.attrs.create("labels", [sample.label], dtype=h5py.string_dtype())
                if coords_on and sample.site is not None:
                    grid, epsg = site_coords(sample.site.lat, sample.site.lon)
                    grid = finite(grid, sample.key, "coords")
                    group.create_dataset("coords", data=grid, compression="gzip", compression_opts=1)
                    group.attrs.create("crs", epsg, dtype="int32")
                    written["coords"] += 1
                if policy.timestamps and sample.timestamp is not None:
                    group.attrs.create("timestamp", sample.timestamp, dtype="float64")
                    written["timestamp"] += 1
                shard_of[sample.key] = rel
    return shard_of, written


def _write_main(ordered: Sequence[Sample], shard_of: Mapping[str, str], path: Path, dtype: str) -> None:
    """``main.h5``: the band names, what the values are, the labels, and a link a sample."""
    import h5py

    with h5py.File(path, "w", track_order=True) as main:
        main.attrs.create("bands", list(COMPOSITE_BANDS), dtype=h5py.string_dtype())
        main.attrs["values"] = (
            "8-bit stretched false colour (not reflectance)"
            if dtype == "uint8"
            else "8-bit stretched false colour / 255 (not reflectance)"
        )
        main.attrs.create("label_names", list(LABELS), dtype=h5py.string_dtype())
        for sample in ordered:
            main[sample.key] = h5py.ExternalLink(shard_of[sample.key], f"/{sample.key}")


def _write_metadata(
    ordered: Sequence[Sample], split_of: Mapping[str, str], shard_of: Mapping[str, str], path: Path
) -> None:
    """``metadata.parquet``: key, split, labels and shard of every sample."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "key": [s.key for s in ordered],
            "split": [split_of[s.group] for s in ordered],
            "labels": [[s.label] for s in ordered],
            "shard": [shard_of[s.key] for s in ordered],
        }
    )
    pq.write_table(table, path)


def _write_retrieval(ordered: Sequence[Sample], split_of: Mapping[str, str], dest: Path) -> None:
    """``queries.jsonl`` (one query a label) and ``qrels/{split}.tsv`` (the samples each finds)."""
    with (dest / "queries.jsonl").open("w", encoding="utf-8") as handle:
        for label in LABELS:
            handle.write(
                json.dumps({"_id": f"q-{label.lower()}", "text": QUERIES[label], "labels": [label]}) + "\n"
            )
    (dest / "qrels").mkdir()
    for split in SFT_SPLITS:
        lines = ["query-id\tcorpus-id\tscore"]
        for label in LABELS:
            lines += [
                f"q-{label.lower()}\t{s.key}\t1"
                for s in ordered
                if split_of[s.group] == split and s.label == label
            ]
        (dest / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _split_counts(ordered: Sequence[Sample], split_of: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """Samples, groups and samples a label of each split."""
    return {
        split: {
            "samples": sum(split_of[s.group] == split for s in ordered),
            "groups": sum(v == split for v in split_of.values()),
            **{
                label: sum(split_of[s.group] == split and s.label == label for s in ordered)
                for label in LABELS
            },
        }
        for split in SFT_SPLITS
    }


def configs() -> list[dict[str, Any]]:
    """``load_dataset`` reads the sample index; the arrays are read with h5py (see the card)."""
    return [{"config_name": "default", "data_files": [{"split": "metadata", "path": "metadata.parquet"}]}]


def missing_shards(main: Path) -> list[str]:
    """External-link targets of ``main`` that do not exist relative to its folder."""
    import h5py

    missing: set[str] = set()
    with h5py.File(main, "r") as handle:
        for key in handle:
            link = handle.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink) and not (main.parent / link.filename).is_file():
                missing.add(link.filename)
    return sorted(missing)


@contextmanager
def open_main(main: Path) -> Iterator[Any]:
    """Open a main file for reading after checking its shards sit where its links say.

    Raises:
        LayoutDataError: the main file is missing, or moved away from its shards.
    """
    import h5py

    if not main.is_file():
        raise LayoutDataError(f"{main} does not exist; pass the main.h5 of an HDF5 release")
    missing = missing_shards(main)
    if missing:
        raise LayoutDataError(
            f"{main} links {len(missing)} shard file(s) it cannot find beside it "
            f"(first: {main.parent / missing[0]}); links are relative: keep main.h5 in its "
            "release folder with shards/"
        )
    with h5py.File(main, "r") as handle:
        yield handle


def read_sample(handle: Any, key: str) -> dict[str, Any]:
    """One sample's arrays and attributes from an open main file."""
    group = handle[key]
    out: dict[str, Any] = {"image": group["image"][()], "labels": [str(v) for v in group.attrs["labels"]]}
    if "coords" in group:
        out["coords"] = group["coords"][()]
    for name in ("crs", "timestamp"):
        if name in group.attrs:
            value = group.attrs[name]
            out[name] = value.decode() if isinstance(value, bytes) else value
    return out


KEY_NAMES = frozenset({"image", "coords"})
HDF5_ATTRS = {"labels": None, "crs": "coordinates", "timestamp": "timestamps"}


def checks(context: AuditContext) -> Iterator[str]:
    """The HDF5 layout's own audit: links, opaque keys, datasets and attributes against the policy."""
    import h5py
    import pyarrow.parquet as pq

    root, policy, secrets = context.root, context.policy, context.secrets
    main = root / "main.h5"
    if not main.is_file():
        yield "main.h5: missing"
        return
    for missing in missing_shards(main):
        yield f"main.h5: links {missing}, which is not in the release"
    forbidden_coords = not policy.coordinates
    for path in sorted((root / "shards").glob("*.h5")):
        rel = path.relative_to(root).as_posix()
        with h5py.File(path, "r") as shard:
            for key, group in shard.items():
                where = f"{rel}:/{key}"
                if not TILE_NAME_RE.match(f"{key}.jpg"):
                    yield f"{where}: sample key is not opaque"
                for name in group:
                    if name not in KEY_NAMES:
                        yield f"{where}/{name}: not a sample dataset (allowed: image, coords)"
                    elif name == "coords" and forbidden_coords:
                        yield f"{where}/coords: policy {policy.name!r} forbids coordinates"
                for name, value in group.attrs.items():
                    field = HDF5_ATTRS.get(name, "unknown")
                    if field == "unknown":
                        yield f"{where}: attribute {name!r} is not part of the layout"
                    elif field is not None and not getattr(policy, field):
                        yield f"{where}: attribute {name!r}: policy {policy.name!r} forbids {field}"
                    elif field is not None:
                        continue  # a CRS or a timestamp the policy publishes on purpose
                    yield from text_findings(f"{where} attribute {name}", str(value), secrets)
    table = pq.read_table(root / "metadata.parquet")
    if table.column_names != ["key", "split", "labels", "shard"]:
        yield f"metadata.parquet: columns {table.column_names}; allowed: key, split, labels, shard"
    else:
        for key in table["key"].to_pylist():
            if not TILE_NAME_RE.match(f"{key}.jpg"):
                yield f"metadata.parquet: key {mask(str(key))} is not opaque"


def policy_check(options: LayoutOptions, policy: Policy) -> None:
    """Refuse ``--coords`` unless the policy publishes coordinates."""
    if options.coords:
        require(policy, "coordinates", "--coords (HDF5 coords and crs)")


LAYOUT = LayoutSpec(
    name="hdf5",
    top_level=frozenset(
        {
            "README.md",
            "LICENSE",
            "NOTICE.md",
            "main.h5",
            "shards",
            "metadata.parquet",
            "queries.jsonl",
            "qrels",
        }
    ),
    options=("fractions", "salt", "samples_per_shard", "coords", "hdf5_dtype"),
    audited="images, text and policy",
    configs=configs,
    writer=write,
    checks=checks,
    policy_check=policy_check,
    # main.h5 and shards/*.h5, with metadata.parquet and queries.jsonl at the top
    marks=(("", ".h5"), ("shards", ".h5"), ("", ".parquet"), ("", ".jsonl")),
)
