"""Shared fixtures. No test talks to the internet; HF_TOKEN is blanked for every test."""

from __future__ import annotations

import os
import tempfile

# Read by huggingface_hub at import time: the local Hub server speaks classic LFS, not Xet.
os.environ["HF_HUB_DISABLE_XET"] = "1"
# A fresh Hugging Face home per test session (datasets' cache, hub cache, token): the tests see
# what a new user sees, never the developer's own cache or credentials.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="cropmark-hf-home-")

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from builder.release.build import BuildConfig, BuildResult, build
from builder.testing.sample import SMALL_PLAN, generate


@pytest.fixture(scope="session", autouse=True)
def _fresh_hf_home() -> Iterator[None]:
    yield
    shutil.rmtree(os.environ["HF_HOME"], ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default (card-scale) sample corpus, generated once per session."""
    root = tmp_path_factory.mktemp("corpus") / "corpus"
    generate(root, seed=0)
    return root


@pytest.fixture(scope="session")
def sample_release(sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    """The release of the default sample corpus, built once per session (2 workers)."""
    out = tmp_path_factory.mktemp("build")
    return build(BuildConfig(sample_corpus, out, "1.0.0", workers=2))


@pytest.fixture(scope="session")
def _small_corpus_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("small") / "corpus"
    generate(root, seed=7, plan=SMALL_PLAN)
    return root


@pytest.fixture
def small_corpus(_small_corpus_master: Path, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the small corpus (every edge case, 32 tiles) a test may change."""
    root = tmp_path / "corpus"
    shutil.copytree(_small_corpus_master, root, symlinks=True)
    yield root


@pytest.fixture(scope="session")
def small_release(_small_corpus_master: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The release folder of the small corpus (24 train + 8 eval tiles), built once per session."""
    out = tmp_path_factory.mktemp("small-build")
    return build(BuildConfig(_small_corpus_master, out, "1.0.0")).release


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """A local Hub server (tests/hub/server.py) with the tests' write token set in ``HF_TOKEN``.

    At teardown, nothing the test printed holds the token.
    """
    from tests.hub import ORG, TOKEN
    from tests.hub.server import Account, serve

    with serve({TOKEN: Account("tester", orgs=(ORG,))}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        yield server
    out = capfd.readouterr()
    assert TOKEN not in out.out + out.err
    assert "TopSecretToken" not in out.out + out.err


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random LFM2-VL (seed 0) on disk: the real model's code paths on a CPU."""
    pytest.importorskip("torch")
    from builder.testing.tiny import write_tiny_lfm2_vl

    return write_tiny_lfm2_vl(tmp_path_factory.mktemp("tiny") / "tiny-lfm2-vl", seed=0)
