"""The SHA-256 of every file of the sample corpus's release, in each layout.

    python -m tests.golden.release      (or: make golden)

``tests/test_identical.py`` builds the same releases and compares them with
``tests/golden/release_sha256.json``: a change that moves code around must leave every
published byte as it was. Refresh the manifest only for a change that means to alter a
release, and say in its commit which files changed and why.

Every file of every layout is compared: the sample corpus is generated from a fixed seed,
and a build is deterministic (same corpus, same bytes, whatever the worker count; the
sibling layouts are written from the staged imagefolder release, with no clock or
random state of their own).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

from builder.layouts import registry
from builder.release.build import BuildConfig, build
from builder.testing.sample import generate

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "release_sha256.json"
# Every registered layout: one added to the registry fails tests/test_identical.py until recorded.
LAYOUTS = registry.names()
SEED = 0
VERSION = "1.0.0"
WORKERS = 2


def sha256_files(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, by POSIX path relative to it."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def release_files(corpus: Path, out: Path, layout: str) -> dict[str, str]:
    """Build ``corpus`` in ``layout`` under ``out`` and hash every file of the release."""
    result = build(BuildConfig(corpus, out / layout, VERSION, workers=WORKERS, layout=layout))
    return sha256_files(result.release)


def manifest(corpus: Path, out: Path) -> dict[str, dict[str, str]]:
    """Every layout's file hashes, by layout."""
    return {layout: release_files(corpus, out, layout) for layout in LAYOUTS}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cropmark-golden-") as tmp:
        corpus = Path(tmp) / "corpus"
        generate(corpus, seed=SEED)
        hashes = manifest(corpus, Path(tmp) / "build")
    MANIFEST.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    counts = ", ".join(f"{layout} {len(files)}" for layout, files in hashes.items())
    print(f"wrote tests/golden/{MANIFEST.name} ({counts} files)", file=sys.stderr)


if __name__ == "__main__":
    main()
