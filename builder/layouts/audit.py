"""The audit of a sibling layout: the same border post, for Parquet, SFT JSONL and HDF5.

A layout release passes only with zero findings. Checked for every layout:
only the layout's own top-level entries; at most 10,000 entries per folder;
every file unchanged since the build; every text (file contents, paths, Parquet
string columns, HDF5 attribute values) free of coordinate-, date- and ID-like
strings and of the private report's values; every image one of the tiles the
imagefolder audit passed (by SHA-256), with no metadata segment; and nothing the
release's policy forbids: no public sidecars, no ``coords``/``crs``/``timestamp``
unless allowed. SFT JSONL rows also pass :func:`builder.layouts.sft_jsonl.validate`
with the private site map, so no site spans two splits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath

from builder.domain import LABELS, TILE_NAME_RE
from builder.files import crowded_folders, journal_findings, read_file
from builder.ingest.scrub import metadata_segments
from builder.layouts.base import AuditedTile
from builder.layouts.hdf5 import missing_shards
from builder.layouts.policy import Policy
from builder.layouts.sft_jsonl import SIDECAR_POLICY, validate
from builder.scan import TEXT_SUFFIXES, mask, masked_path, private_values, redact, text_findings

TOP_LEVEL = {
    "parquet": {"README.md", "LICENSE", "NOTICE.md", "data"},
    "sft-jsonl": {"README.md", "LICENSE", "NOTICE.md", "data", "images", "sidecars"},
    "hdf5": {
        "README.md",
        "LICENSE",
        "NOTICE.md",
        "main.h5",
        "shards",
        "metadata.parquet",
        "queries.jsonl",
        "qrels",
    },
}
KEY_NAMES = frozenset({"image", "coords"})
HDF5_ATTRS = {"labels": None, "crs": "coordinates", "timestamp": "timestamps"}


def _layout(root: Path, layout: str) -> Iterator[str]:
    allowed = TOP_LEVEL[layout]
    for entry in sorted(root.iterdir()):
        if entry.name not in allowed:
            yield (
                f"{masked_path(entry.name)}: not part of a {layout} release "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
    yield from crowded_folders(root)


def _texts(root: Path, secrets: set[str], policy: Policy, allowed: frozenset[float]) -> Iterator[str]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        opaque = TILE_NAME_RE.match(path.name) or TILE_NAME_RE.match(path.with_suffix(".jpg").name)
        yield from text_findings(f"path {masked_path(rel)}", rel, () if opaque else secrets)
        if rel.startswith("sidecars/") and policy.sidecars:
            continue  # published on purpose; their keys are checked against the policy in _sft
        raw = read_file(path) if path.suffix.lower() in TEXT_SUFFIXES or path.suffix == ".tsv" else None
        if raw is not None and not path.is_symlink():
            text = raw.decode("utf-8", errors="replace")
            # The card's own figures (shard bytes, counts, thresholds) are allowed in README.md only.
            yield from text_findings(
                masked_path(rel), text, secrets, allowed if rel == "README.md" else frozenset()
            )


def _image(data: bytes, where: str, published: set[str]) -> Iterator[str]:
    if hashlib.sha256(data).hexdigest() not in published:
        yield f"{where}: not one of the tiles the imagefolder audit passed"
    found = metadata_segments(data)
    if found:
        yield f"{where}: metadata in image ({', '.join(found[:4])})"


def _parquet(root: Path, published: set[str], secrets: set[str]) -> Iterator[str]:
    import pyarrow.parquet as pq

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
            yield from _image(image["bytes"], where, published)


def _sft(
    root: Path, published: set[str], private: Path | None, policy: Policy, digests: dict[str, str]
) -> Iterator[str]:
    if (root / "sidecars").exists() and not policy.sidecars:
        yield f"sidecars/: policy {policy.name!r} forbids publishing per-tile sidecars"
    elif (root / "sidecars").exists():
        for path in sorted((root / "sidecars").rglob("*.json")):
            for key in json.loads(path.read_text(encoding="utf-8")):
                field = SIDECAR_POLICY.get(key, "never")
                if field == "never" or (field is not None and not getattr(policy, field)):
                    rel = path.relative_to(root).as_posix()
                    yield f"{rel}: key {key!r} is not allowed by policy {policy.name!r}"
    groups_path = private / "groups.json" if private is not None else None
    groups = (
        json.loads(groups_path.read_text(encoding="utf-8")) if groups_path and groups_path.is_file() else None
    )
    if groups is None:
        yield "no private site map (groups.json): cannot prove that no site spans two splits"
    yield from validate(root, groups, folders=False)
    # An image whose bytes hash to an audited tile is that tile: metadata and all.
    for rel, digest in sorted(digests.items()):
        if rel.startswith("images/"):
            if not TILE_NAME_RE.match(PurePosixPath(rel).name):
                yield f"{rel}: not an opaque tile name"
            if digest not in published:
                yield f"{rel}: not one of the tiles the imagefolder audit passed"


def _hdf5(root: Path, policy: Policy, secrets: set[str]) -> Iterator[str]:
    import h5py
    import pyarrow.parquet as pq

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


def audit_layout(
    root: Path,
    layout: str,
    policy: Policy | None,
    tiles: Sequence[AuditedTile],
    files: Mapping[str, str],
    allowed: frozenset[float],
    private: Path | None = None,
) -> list[str]:
    """Every finding against a sibling-layout release; an empty list means it may be published.

    Args:
        root: the layout release's folder.
        layout: the layout the private report names.
        policy: the release's policy as the report records it (None: the default policy).
        tiles: the report's tiles (their private values are secrets; their published hashes
            the only images allowed).
        files: the report's SHA-256 of every file the build wrote.
        allowed: the numbers the card quotes (:func:`builder.scan.card_numbers`).
        private: the release's ``<version>.private`` folder (the SFT site map), if any.
    """
    if layout not in TOP_LEVEL:
        return [f"report names layout {layout!r}; not a sibling layout"]
    if root.is_symlink():
        return [f"{root.name}: a symbolic link; a release is a folder of regular files"]
    if not root.is_dir():
        return [f"{root}: not a folder"]
    policy = policy or Policy()
    secrets = private_values(tiles)
    published = {t.published_sha256 for t in tiles}
    findings = list(_layout(root, layout))
    findings += journal_findings(root)
    findings += list(_texts(root, secrets, policy, allowed))
    digests = {
        p.relative_to(root).as_posix(): hashlib.sha256(raw).hexdigest()
        for p in sorted(root.rglob("*"))
        if not p.is_symlink() and (raw := read_file(p)) is not None
    }
    for rel in sorted(set(digests) - set(files)):
        findings.append(f"{masked_path(rel)}: not written by the build")
    for rel, digest in sorted(files.items()):
        if rel not in digests:
            findings.append(f"{rel}: written by the build but missing")
        elif digests[rel] != digest:
            findings.append(f"{rel}: differs from the file the build wrote and audited")
    if layout == "parquet":
        checks = _parquet(root, published, secrets)
    elif layout == "sft-jsonl":
        checks = _sft(root, published, private, policy, digests)
    else:
        checks = _hdf5(root, policy, secrets)
    try:
        for finding in checks:
            findings.append(finding)
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        # A file that cannot be parsed (truncated, not the format its name says) is a
        # finding: the audit could not prove the release clean.
        findings.append(f"{layout} files cannot be read ({type(exc).__name__}); the rest was not checked")
    return redact(findings, secrets)
