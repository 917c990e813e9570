"""The audit of a sibling layout: the same border post, for every registered layout but imagefolder.

A layout release passes only with zero findings. Checked for every layout:
only the layout's own top-level entries; at most 10,000 entries per folder;
every file unchanged since the build; every text (file contents, paths, Parquet
string columns, HDF5 attribute values) free of coordinate-, date- and ID-like
strings and of the private report's values; every image one of the tiles the
imagefolder audit passed (by SHA-256), with no metadata segment; and nothing the
release's policy forbids: no public sidecars, no ``coords``/``crs``/``timestamp``
unless allowed. The layout's own ``checks`` (its registry entry) run last: Parquet
columns and embedded images, SFT JSONL rows (:func:`builder.layouts.sft_jsonl.validate`
with the private site map, so no site spans two splits), HDF5 links, keys and attributes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from builder.domain import TILE_NAME_RE
from builder.files import crowded_folders, journal_findings, read_file
from builder.layouts import registry
from builder.layouts.base import AuditContext, AuditedTile, Layout
from builder.layouts.policy import Policy
from builder.scan import TEXT_SUFFIXES, masked_path, private_values, redact, text_findings


def _layout(root: Path, layout: Layout) -> Iterator[str]:
    allowed = layout.top_level
    for entry in sorted(root.iterdir()):
        if entry.name not in allowed:
            yield (
                f"{masked_path(entry.name)}: not part of a {layout.name} release "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
    yield from crowded_folders(root)


def _texts(root: Path, secrets: set[str], policy: Policy, allowed: frozenset[float]) -> Iterator[str]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        opaque = TILE_NAME_RE.match(path.name) or TILE_NAME_RE.match(path.with_suffix(".jpg").name)
        yield from text_findings(f"path {masked_path(rel)}", rel, () if opaque else secrets)
        if rel.startswith("sidecars/") and policy.sidecars:
            continue  # published on purpose; their keys are the SFT JSONL checks hold them to the policy
        raw = read_file(path) if path.suffix.lower() in TEXT_SUFFIXES or path.suffix == ".tsv" else None
        if raw is not None and not path.is_symlink():
            text = raw.decode("utf-8", errors="replace")
            # The card's own figures (shard bytes, counts, thresholds) are allowed in README.md only.
            yield from text_findings(
                masked_path(rel), text, secrets, allowed if rel == "README.md" else frozenset()
            )


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
        layout: the layout the private report names (its registry entry's checks run last).
        policy: the release's policy as the report records it (None: the default policy).
        tiles: the report's tiles (their private values are secrets; their published hashes
            the only images allowed).
        files: the report's SHA-256 of every file the build wrote.
        allowed: the numbers the card quotes (:func:`builder.scan.card_numbers`).
        private: the release's ``<version>.private`` folder (the SFT site map), if any.
    """
    entry = registry.LAYOUTS.get(layout)
    if entry is None or entry.checks is None:
        return [f"report names layout {layout!r}; not a sibling layout"]
    if root.is_symlink():
        return [f"{root.name}: a symbolic link; a release is a folder of regular files"]
    if not root.is_dir():
        return [f"{root}: not a folder"]
    policy = policy or Policy()
    secrets = private_values(tiles)
    published = {t.published_sha256 for t in tiles}
    findings = list(_layout(root, entry))
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
    try:
        for finding in entry.checks(AuditContext(root, private, policy, secrets, published, digests)):
            findings.append(finding)
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        # A file that cannot be parsed (truncated, not the format its name says) is a
        # finding: the audit could not prove the release clean.
        findings.append(f"{layout} files cannot be read ({type(exc).__name__}); the rest was not checked")
    return redact(findings, secrets)
