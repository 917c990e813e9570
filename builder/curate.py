"""Curate: from readable rows to unique, label-consistent composites.

Rules (each dropped row is counted under its reason):

1. A path that is unsafe (absolute, leaves the corpus root) or missing is dropped.
2. A composite inside ``rejected_composites/``, or byte-identical to one there,
   is quarantined.
3. Rows are grouped by composite: the same resolved file or the same content
   hash (SHA-256 of the bytes) is one composite.
4. A composite whose rows disagree on the label is dropped whole, in every split.
5. A composite never lands in two splits: when it appears in ``eval`` and in
   ``train``, ``eval`` keeps it and its ``train`` rows are dropped. Eval is the
   held-out set the published metrics were measured on; keeping it unchanged
   keeps those metrics comparable, and removing the tile from train removes the
   leak.
6. Of the remaining rows of a composite, the first (manifest order) stands for
   it; the others are sibling duplicates.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from builder.corpus import QUARANTINE_DIR, resolve_image
from builder.records import Candidate, Reason, Rejection, SftRow, Split

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Curated:
    """Unique composites to cut, and every row curation dropped."""

    candidates: tuple[Candidate, ...]
    rejections: tuple[Rejection, ...]


def quarantine_hashes(corpus: Path) -> frozenset[str]:
    """Hashes of every file in ``rejected_composites/`` (a copy elsewhere is still quarantined)."""
    folder = corpus / QUARANTINE_DIR
    if not folder.is_dir():
        return frozenset()
    return frozenset(sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file())


def curate(corpus: Path, rows: Iterable[SftRow]) -> Curated:
    """Apply the curation rules of this module to ``rows`` of ``corpus``."""
    root = corpus.resolve()
    quarantine_root = root / QUARANTINE_DIR
    quarantined = quarantine_hashes(corpus)
    rejections: list[Rejection] = []
    hashes: dict[Path, str] = {}
    groups: dict[str, list[tuple[SftRow, Path]]] = defaultdict(list)

    for row in rows:
        resolved = resolve_image(corpus, row.image)
        if isinstance(resolved, str):
            rejections.append(Rejection(Reason.UNSAFE_PATH, row.where, resolved, row.split))
            continue
        shown = resolved.relative_to(root).as_posix()
        if not resolved.is_file():
            rejections.append(Rejection(Reason.MISSING_FILE, row.where, f"{shown} does not exist", row.split))
            continue
        if resolved.is_relative_to(quarantine_root):
            rejections.append(
                Rejection(Reason.QUARANTINED, row.where, f"{shown} is in {QUARANTINE_DIR}/", row.split)
            )
            continue
        if resolved not in hashes:
            hashes[resolved] = sha256_file(resolved)
        digest = hashes[resolved]
        if digest in quarantined:
            rejections.append(
                Rejection(
                    Reason.QUARANTINED,
                    row.where,
                    f"{shown} is byte-identical to a file in {QUARANTINE_DIR}/",
                    row.split,
                )
            )
            continue
        groups[digest].append((row, resolved))

    candidates: list[Candidate] = []
    for digest, members in groups.items():
        labels = {row.label for row, _ in members}
        if len(labels) > 1:
            detail = (
                "rows of this composite disagree ("
                + ", ".join(f"{row.where}={row.label}" for row, _ in members[:4])
                + ("" if len(members) <= 4 else ", ...")
                + "); dropped whole"
            )
            rejections.extend(
                Rejection(Reason.LABEL_CONFLICT, row.where, detail, row.split) for row, _ in members
            )
            continue
        splits = {row.split for row, _ in members}
        keep: Split = "eval" if "eval" in splits else "train"
        for row, _ in members:
            if row.split != keep:
                rejections.append(
                    Rejection(
                        Reason.CROSS_SPLIT,
                        row.where,
                        "composite is also in eval; eval keeps it, its train rows are dropped",
                        row.split,
                    )
                )
        kept = [(row, path) for row, path in members if row.split == keep]
        first_row, first_path = kept[0]
        for row, _ in kept[1:]:
            rejections.append(
                Rejection(
                    Reason.SIBLING_DUPLICATE,
                    row.where,
                    f"repeats the composite of {first_row.where} with the same label",
                    row.split,
                )
            )
        candidates.append(
            Candidate(
                split=keep,
                source=first_path.relative_to(root).as_posix(),
                sha256=digest,
                label=first_row.label,
                rows=tuple(row.where for row, _ in kept),
            )
        )
    candidates.sort(key=lambda c: (c.split, c.sha256))
    return Curated(tuple(candidates), tuple(rejections))
