"""A release is byte-identical to the one the committed manifest recorded.

``tests/golden/release_sha256.json`` holds the SHA-256 of every file of the sample corpus's
release in each layout (``make golden`` refreshes it; see ``tests/golden/release.py``).
Moving code around must not move a byte of what is published.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.layouts import registry
from builder.release.build import BuildResult
from tests.golden.release import LAYOUTS, MANIFEST, release_files, sha256_files


@pytest.fixture(scope="module")
def manifest() -> dict[str, dict[str, str]]:
    recorded: dict[str, dict[str, str]] = json.loads(MANIFEST.read_text(encoding="utf-8"))
    assert sorted(recorded) == sorted(LAYOUTS)
    return recorded


def _differences(recorded: dict[str, str], built: dict[str, str]) -> list[str]:
    return [
        f"{path}: {'missing' if path not in built else 'new' if path not in recorded else 'changed'}"
        for path in sorted(set(recorded) | set(built))
        if recorded.get(path) != built.get(path)
    ]


def test_imagefolder_release_is_byte_identical(
    sample_release: BuildResult, manifest: dict[str, dict[str, str]]
) -> None:
    # conftest's session release is this build: the sample corpus (seed 0), 2 workers, 1.0.0.
    built = sha256_files(sample_release.release)
    assert len(built) > 100
    assert _differences(manifest["imagefolder"], built) == []


@pytest.mark.parametrize("layout", [layout for layout in LAYOUTS if not registry.get(layout).primary])
def test_sibling_layout_is_byte_identical(
    layout: str, sample_corpus: Path, tmp_path: Path, manifest: dict[str, dict[str, str]]
) -> None:
    built = release_files(sample_corpus, tmp_path, layout)
    assert built
    assert _differences(manifest[layout], built) == []
