"""Parquet layout: what ``push_to_hub`` would make, written locally and deterministically.

::

    data/train-00000-of-00002.parquet   image {bytes, path} + label (ClassLabel)
    data/train-00001-of-00002.parquet
    data/eval-00000-of-00001.parquet
    README.md (configs: data/{split}-*.parquet)  LICENSE  NOTICE.md

Images are embedded as bytes (``Dataset.to_parquet`` alone would store paths:
datasets' ``Image`` feature encodes a file by its path unless given its bytes);
``path`` holds only the opaque tile name, as ``push_to_hub`` keeps the
base name. The ``huggingface`` schema metadata carries the features, so
``ClassLabel(names=["No", "Yes"])`` survives without the README. Shards are cut
so that no shard's image bytes exceed ``shard_mb``; row groups hold 100 images,
the size ``datasets`` uses for image data.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from builder import progress
from builder.domain import LABELS, SPLITS, TILE_NAME_RE
from builder.layouts.base import AuditContext, LayoutOptions, LayoutSpec, Sample, image_findings
from builder.layouts.policy import Policy
from builder.scan import mask, text_findings

ROW_GROUP = 100  # datasets.config.PARQUET_ROW_GROUP_SIZE_FOR_IMAGE_DATASETS


def features() -> Any:
    import datasets

    return datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(LABELS))})


def shard(sizes: Sequence[int], limit: int) -> list[tuple[int, int]]:
    """Cut a sequence of item sizes into ``[start, stop)`` runs of at most ``limit`` bytes.

    An item larger than the limit gets a shard of its own (it cannot be split).
    """
    runs: list[tuple[int, int]] = []
    start, total = 0, 0
    for index, size in enumerate(sizes):
        if index > start and total + size > limit:
            runs.append((start, index))
            start, total = index, 0
        total += size
    if sizes:
        runs.append((start, len(sizes)))
    return runs


def shard_name(split: str, index: int, count: int) -> str:
    return f"data/{split}-{index:05d}-of-{count:05d}.parquet"


def write(
    samples: Sequence[Sample], dest: Path, private: Path, options: LayoutOptions, policy: Policy
) -> dict[str, Any]:
    """Write the Parquet shards of every split; return the layout summary for the report and card."""
    import datasets

    limit = int(options.shard_mb * 2**20)
    (dest / "data").mkdir()
    summary: dict[str, Any] = {"shard_mb": options.shard_mb, "splits": {}}
    for split in SPLITS:
        items = [s for s in samples if s.split == split]
        blobs = [s.path.read_bytes() for s in progress.bar(items, f"read {split} tiles", len(items))]
        runs = shard([len(b) for b in blobs], limit)
        files = []
        for index, (start, stop) in enumerate(runs):
            table = datasets.Dataset.from_dict(
                {
                    "image": [
                        {"bytes": b, "path": s.file_name}
                        for s, b in zip(items[start:stop], blobs[start:stop], strict=True)
                    ],
                    "label": [LABELS.index(s.label) for s in items[start:stop]],
                },
                features=features(),
            )
            name = shard_name(split, index, len(runs))
            table.to_parquet(dest / name, batch_size=ROW_GROUP)
            files.append(
                {"file": name, "rows": stop - start, "image_bytes": sum(map(len, blobs[start:stop]))}
            )
        summary["splits"][split] = {"rows": len(items), "shards": files}
    return summary


def configs() -> list[dict[str, Any]]:
    """The README ``configs:`` entry of the Parquet layout (features live in the files)."""
    return [
        {
            "config_name": "default",
            "data_files": [{"split": split, "path": f"data/{split}-*.parquet"} for split in SPLITS],
        }
    ]


def checks(context: AuditContext) -> Iterator[str]:
    """The Parquet layout's own audit: columns, embedded images, opaque paths, labels, schema text."""
    import pyarrow.parquet as pq

    root, published, secrets = context.root, context.published, context.secrets
    for path in sorted((root / "data").glob("*.parquet")):
        rel = path.relative_to(root).as_posix()
        try:
            table = pq.read_table(path)
        except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
            yield f"{rel}: not a readable Parquet file ({type(exc).__name__}); nothing in it was checked"
            continue
        if table.column_names != ["image", "label"]:
            yield f"{rel}: columns {table.column_names}; allowed: image, label"
            continue
        meta = (table.schema.metadata or {}).get(b"huggingface", b"").decode("utf-8", errors="replace")
        yield from text_findings(f"{rel} schema metadata", meta, secrets)
        for number, (image, label) in enumerate(
            zip(table["image"].to_pylist(), table["label"].to_pylist(), strict=True)
        ):
            where = f"{rel} row {number}"
            if not (isinstance(image, dict) and isinstance(image.get("bytes"), bytes)):
                yield f"{where}: image is not embedded as bytes"
                continue
            if image.get("path") is not None and not TILE_NAME_RE.match(str(image["path"])):
                yield f"{where}: image path {mask(str(image['path']))} is not an opaque tile name"
            if label not in range(len(LABELS)):
                yield f"{where}: label {label!r}; allowed 0..{len(LABELS) - 1}"
            yield from image_findings(image["bytes"], where, published)


LAYOUT = LayoutSpec(
    name="parquet",
    top_level=frozenset({"README.md", "LICENSE", "NOTICE.md", "data"}),
    options=("shard_mb",),
    audited="images, text and policy",
    configs=configs,
    writer=write,
    checks=checks,
    marks=(("data", ".parquet"),),
)
