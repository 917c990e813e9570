"""A published release (a folder or a Hub dataset id) as labelled examples and SFT rows.

Training, evaluation and the baseline read the release users download, not the
private corpus: ``data/{split}/metadata.csv`` (``file_name,label``) beside the
tiles. A Hub id is fetched with :func:`builder.hub.client.download_repo` into the Hub cache, so the
same code trains on ``ORG/cropmark-disambiguator-s2`` and on a local build.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from builder.domain import LABELS, Label, hub_id_problem, is_label
from builder.errors import ReleaseLayoutError, ReleaseNotFoundError
from builder.hub import client as hub
from builder.model.prompt import sft_row


@dataclass(frozen=True)
class Example:
    """One published tile and its label."""

    path: Path
    label: Label

    @property
    def y(self) -> int:
        """The ClassLabel index: 0 for ``No``, 1 for ``Yes``."""
        return LABELS.index(self.label)

    def rgb(self) -> Image.Image:
        """The tile decoded as an RGB PIL image (what the processor receives)."""
        with Image.open(self.path) as image:
            return image.convert("RGB")


def resolve(release: str | Path, revision: str | None = None) -> Path:
    """The local folder of a release: ``release`` itself, or a Hub dataset downloaded.

    Raises:
        ReleaseNotFoundError: neither a folder nor a dataset the Hub serves here.
    """
    path = Path(release)
    if path.is_dir():
        return path
    if path.exists() or hub_id_problem(str(release)) is not None:
        raise ReleaseNotFoundError(
            f"release {release} is not a folder nor a Hub dataset id; give a built release or ORG/NAME"
        )
    try:
        return hub.download_repo(str(release), repo_type="dataset", revision=revision)
    except hub.DownloadError as exc:
        raise ReleaseNotFoundError(
            f"dataset {release} could not be downloaded from the Hub ({exc}); "
            "check the id, HF_ENDPOINT and your network, or give a local release folder"
        ) from None


def examples(release: Path, split: str) -> list[Example]:
    """The labelled tiles of one split, in metadata.csv order.

    Raises:
        ReleaseLayoutError: the split, its metadata.csv, the label column, a label
            or a tile is missing or wrong.
    """
    folder = release / "data" / split
    metadata = folder / "metadata.csv"
    if not metadata.is_file():
        raise ReleaseLayoutError(
            f"{metadata} does not exist: {release} has no '{split}' split "
            "(a release holds data/train and data/eval with a metadata.csv each)"
        )
    with metadata.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        if "file_name" not in fields or "label" not in fields:
            raise ReleaseLayoutError(
                f"{metadata} has columns {fields}; a labelled release needs file_name,label"
            )
        out: list[Example] = []
        for line, row in enumerate(reader, start=2):
            label, name = row["label"], row["file_name"]
            if not is_label(label):
                raise ReleaseLayoutError(f"{metadata} line {line}: label {label!r}; expected one of {LABELS}")
            tile = folder / name
            if not tile.is_file():
                raise ReleaseLayoutError(f"{metadata} line {line}: {tile} does not exist")
            out.append(Example(tile, label))  # type: ignore[arg-type]
    if not out:
        raise ReleaseLayoutError(f"{metadata} lists no tiles")
    return out


def sft_rows(release: Path, split: str) -> Iterator[dict[str, object]]:
    """leap-finetune VLM SFT rows of a split, image paths relative to the release root."""
    for example in examples(release, split):
        yield sft_row(example.path.relative_to(release).as_posix(), example.label)


def write_sft_jsonl(release: Path, split: str, out: Path) -> int:
    """Write a split's SFT rows as JSON lines (atomically); return the row count."""
    rows = list(sft_rows(release, split))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    partial.replace(out)
    return len(rows)
