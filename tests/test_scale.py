"""A split larger than one folder holds is written into sub-folders that ``load_dataset`` reads.

The Hub refuses more than 10,000 entries per folder; a split of more tiles goes into
``data/<split>/0000/``, ``0001/``, ... with ``metadata.csv`` in the split's folder listing each
tile by its path under it. The tests lower the limit to 11 entries (10 tiles a folder) instead of
building 10,000 real tiles: the small corpus's 24 train tiles then take three sub-folders and its
8 eval tiles stay in one folder.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from builder.errors import ConfigError
from builder.release import audit
from builder.release import build as release
from builder.release.build import BuildConfig, build

LIMIT = 11  # entries per folder in these tests: 10 tiles and metadata.csv


@pytest.fixture
def low_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from builder import domain, files

    monkeypatch.setattr(domain, "MAX_FILES_PER_FOLDER", LIMIT)  # the build's
    monkeypatch.setattr(files, "MAX_FILES_PER_FOLDER", LIMIT)  # the audit's crowded-folder check


def rows_of(folder: Path) -> dict[str, Any]:
    """What ``load_dataset`` reads from a release folder, in a fresh process (the README's way)."""
    script = (
        "import hashlib, json, sys\n"
        "from datasets import load_dataset\n"
        "ds = load_dataset(sys.argv[1])\n"
        "print(json.dumps({s: sorted([hashlib.sha256(r['image'].tobytes()).hexdigest(), r['label']]"
        " for r in ds[s]) for s in ds}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(folder)], capture_output=True, text=True, check=True
    ).stdout
    loaded: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return loaded


def test_a_large_split_goes_into_sub_folders_that_load_dataset_reads(
    low_limit: None, _small_corpus_master: Path, small_release: Path, tmp_path: Path
) -> None:
    result = build(BuildConfig(_small_corpus_master, tmp_path / "out", "1.0.0"))
    train = result.release / "data" / "train"
    shards = sorted(p.name for p in train.iterdir() if p.is_dir())
    assert shards == ["0000", "0001", "0002"]
    assert sorted(p.name for p in train.iterdir() if p.is_file()) == ["metadata.csv"]
    for folder in [train, *(train / s for s in shards), result.release / "data" / "eval"]:
        assert sum(1 for _ in folder.iterdir()) <= LIMIT
    assert not any(p.is_dir() for p in (result.release / "data" / "eval").iterdir())  # 8 tiles: one folder
    with (train / "metadata.csv").open(newline="") as handle:
        listed = list(csv.DictReader(handle))
    assert all(row["file_name"][:5] in {"0000/", "0001/", "0002/"} for row in listed)
    assert len(listed) == sum(1 for p in train.rglob("*.jpg"))

    # The same tiles, labels and bytes as the one-folder release of the same corpus.
    def tiles(root: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "data").rglob("*.jpg")}

    assert tiles(result.release) == tiles(small_release)
    assert rows_of(result.release) == rows_of(small_release)
    # The standalone audit accepts the sub-folders.
    assert audit.audit_release(result.release, audit.load_report(result.private / "report.json")) == []


def test_the_audit_still_refuses_a_crowded_folder(
    low_limit: None, _small_corpus_master: Path, tmp_path: Path
) -> None:
    result = build(BuildConfig(_small_corpus_master, tmp_path / "out", "1.0.0"))
    report = audit.load_report(result.private / "report.json")
    train = result.release / "data" / "train"
    # Every tile of shard 0001 moved into shard 0000: more tiles than one folder may hold, and the paths
    # listed in metadata.csv and the report follow them, so only the crowding is wrong.
    for tile in sorted((train / "0001").iterdir()):
        tile.rename(train / "0000" / tile.name)
    (train / "0001").rmdir()
    text = (train / "metadata.csv").read_text().replace("0001/", "0000/")
    (train / "metadata.csv").write_text(text)
    tiles = tuple(replace(t, file_name=t.file_name.replace("0001/", "0000/")) for t in report.tiles)
    files = {rel.replace("0001/", "0000/"): d for rel, d in report.files.items()}
    files["data/train/metadata.csv"] = hashlib.sha256(text.encode()).hexdigest()
    report = replace(report, tiles=tiles, files=files, release_digest=None)
    crowded = sum(1 for _ in (train / "0000").iterdir())
    assert crowded > LIMIT
    findings = audit.audit_release(result.release, report)
    assert findings == [f"data/train/0000/: {crowded} entries; the Hub refuses more than {LIMIT} per folder"]
    # A folder that is not a four-digit sub-folder is not a place for tiles.
    (train / "0000").rename(train / "extra")
    findings = audit.audit_release(result.release, report)
    assert "data/train/extra: not listed in metadata.csv" in findings
    assert any("listed but missing" in f for f in findings)


def test_the_sibling_layouts_name_tiles_without_the_sub_folder(
    low_limit: None, _small_corpus_master: Path, tmp_path: Path
) -> None:
    result = build(BuildConfig(_small_corpus_master, tmp_path / "out", "1.0.0", layout="parquet"))
    assert result.report.audit is not None and result.report.audit.passed
    assert sorted(p.name for p in (result.release / "data").iterdir())[0].endswith(".parquet")


def test_past_the_hubs_files_per_repository_the_build_points_to_parquet_before_cutting(
    monkeypatch: pytest.MonkeyPatch, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(release, "HUB_FILES_PER_REPO", 20)

    def never(task: Any) -> Any:
        raise AssertionError("a tile was cut")

    monkeypatch.setattr(release, "tile_task", never)
    with pytest.raises(ConfigError, match=r"fewer than 20 files per repository .*--layout parquet") as caught:
        build(BuildConfig(small_corpus, tmp_path / "out", "1.0.0"))
    assert release.HUB_LIMITS_URL in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out" / "cropmark-disambiguator-s2" / "1.0.0").exists()
    from builder.cli import main

    assert (
        main(["build", "--corpus", str(small_corpus), "--out", str(tmp_path / "cli"), "--version", "1.0.0"])
        == 2
    )
    err = capsys.readouterr().err
    assert "--layout parquet" in err and "Traceback" not in err
    shutil.rmtree(tmp_path / "cli", ignore_errors=True)


def test_near_duplicates_and_dropped_tiles_in_sub_folders(
    low_limit: None, small_corpus: Path, small_release: Path, tmp_path: Path
) -> None:
    """Pairs name a tile by its path under the split, in the report and the card (which the
    build validates), and a dropped train tile leaves its sub-folder."""
    from tests.test_leakage import eval_sources, seed_near_duplicates

    made = seed_near_duplicates(small_corpus, eval_sources(small_release, 2))
    kept = build(BuildConfig(small_corpus, tmp_path / "kept", "1.0.0"))
    pairs = kept.report.leakage.pairs
    assert len(pairs) == len(made) and all(re.match(r"^\d{4}/d_tile_", p.train) for p in pairs)
    card = (kept.release / "README.md").read_text()
    assert all(f"`{p.train}`" in card for p in pairs)
    dropped = build(BuildConfig(small_corpus, tmp_path / "dropped", "1.0.0", drop_near_duplicates=True))
    assert dropped.report.leakage.dropped == len(made)
    for pair in pairs:
        assert not (dropped.release / "data" / "train" / pair.train).exists()
        assert (kept.release / "data" / "train" / pair.train).is_file()
    assert audit.audit_release(dropped.release, audit.load_report(dropped.private / "report.json")) == []


def test_shard_folders_rank_tiles_by_name(low_limit: None) -> None:
    """A sharded split's tile goes to the folder of its rank among the split's names; a split
    that fits one folder has none; a name that is not a candidate's is refused."""
    from builder.domain import tile_name
    from builder.records import Candidate

    contents = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(25)]
    candidates = [
        Candidate("train", f"c{i}.jpg", "0" * 64, "Yes", (), content) for i, content in enumerate(contents)
    ]
    candidates += [Candidate("eval", "e.jpg", "0" * 64, "No", (), contents[0])]
    folders = release.ShardFolders(candidates)
    ranked = sorted(tile_name(c) for c in contents)
    assert [folders["train", name] for name in ranked] == ["0000/"] * 10 + ["0001/"] * 10 + ["0002/"] * 5
    assert folders["eval", tile_name(contents[0])] == ""
    with pytest.raises(KeyError):
        folders["train", "d_tile_notacandidate.jpg"]


def test_a_tile_name_collision_is_refused_before_any_tile_is_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two composites whose opaque names agree (48 bits of their identities) are refused in one
    line naming both, before the per-tile stage starts, and nothing is left behind."""
    from builder import domain
    from tests.data.factory import TinyCorpus

    corpus = TinyCorpus(tmp_path / "corpus").write()
    real = domain.tile_name
    monkeypatch.setattr(release, "tile_name", lambda content: real("0" * 64))
    cut: list[object] = []
    monkeypatch.setattr(release, "tile_task", lambda task: cut.append(task))
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"^tile name d_tile_a{12}\.jpg collides for composites/site_"):
        build(BuildConfig(corpus, out, "1.0.0", workers=1))
    assert cut == []
    assert not (out / "cropmark-disambiguator-s2" / "1.0.0").exists()


def test_composites_that_do_not_decode_are_counted_not_named(tmp_path: Path) -> None:
    """Two composites that cannot be read (over the size limit: their identity is their path)
    have no tile name to collide: the cut counts them as unreadable, and the build goes on."""
    from tests.data.factory import TinyCorpus

    corpus = TinyCorpus(tmp_path / "corpus")
    for name in ("big_a.jpg", "big_b.jpg"):
        with (corpus.root / "composites" / name).open("wb") as f:
            f.truncate(17 * 2**20)  # sparse: over the 16 MiB a composite may have
        corpus.add_row("train", f"composites/{name}", "No")
    with build(BuildConfig(corpus.write(), tmp_path / "out", "1.0.0", workers=1)) as result:
        unreadable = [r for r in result.report.rejections if r.reason.value == "unreadable_image"]
        assert sorted(r.where for r in unreadable) == ["composites/big_a.jpg", "composites/big_b.jpg"]
        assert result.report.audit is not None and result.report.audit.passed
