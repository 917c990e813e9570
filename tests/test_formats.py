"""Sibling layouts: Parquet, SFT JSONL and HDF5 from the same curated, audited tiles."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from builder.cli import main
from builder.errors import ConfigError, LayoutDataError, PolicyError
from builder.layouts import hdf5, policy, sft_jsonl
from builder.layouts.base import LayoutOptions
from builder.release.audit import audit_sibling
from builder.release.build import BuildConfig, BuildResult, build
from builder.release.report import BuildReport
from tests.test_leakage import eval_sources, seed_near_duplicates

OPEN = policy.Policy("open-sibling", coordinates=True, timestamps=True, source_ids=True, sidecars=True)


def _build(corpus: Path, out: Path, layout: str, **options: Any) -> BuildResult:
    pol = options.pop("policy", policy.CROPMARK)
    return build(
        BuildConfig(corpus, out, "1.0.0", layout=layout, layout_options=LayoutOptions(**options), policy=pol)
    )


def _cli_build(corpus: Path, out: Path, *args: str) -> int:
    return main(["build", "--corpus", str(corpus), "--out", str(out), "--version", "1.0.0", *args])


def _private(release: Path) -> Path:
    return release.with_name(release.name + ".private")


def _load(path: Path, cache: Path, **kwargs: Any) -> Any:
    from datasets import load_dataset

    return load_dataset(str(path), cache_dir=str(cache), **kwargs)


def _multiset(split: Any) -> Counter[tuple[str, int]]:
    from datasets import Image

    raw = split.cast_column("image", Image(decode=False))
    out: Counter[tuple[str, int]] = Counter()
    for row in raw:
        data = row["image"]["bytes"] or Path(row["image"]["path"]).read_bytes()
        out[(hashlib.sha256(data).hexdigest(), row["label"])] += 1
    return out


# Parquet ---------------------------------------------------------------------------------------


# datasets' imagefolder loader leaves metadata.csv open when it first generates a split
# (its code, not ours); the garbage collector reports it at a random later moment.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_parquet_round_trip_equals_imagefolder(
    _small_corpus_master: Path, small_release: Path, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    limit_mb = 0.25
    result = _build(_small_corpus_master, tmp_path / "out", "parquet", shard_mb=limit_mb)
    release = result.release
    names = sorted(p.relative_to(release).as_posix() for p in (release / "data").iterdir())
    train = [n for n in names if n.startswith("data/train-")]
    assert len(train) > 1  # the small limit forces several shards
    assert train == [f"data/train-{i:05d}-of-{len(train):05d}.parquet" for i in range(len(train))]
    for name in names:
        table = pq.read_table(release / name)
        sizes = [len(image["bytes"]) for image in table["image"].to_pylist()]
        assert sum(sizes) <= limit_mb * 2**20 or len(sizes) == 1
        assert b"ClassLabel" in table.schema.metadata[b"huggingface"]  # features live in the file
    card = (release / "README.md").read_text()
    assert "path: data/train-*.parquet" in card and "path: data/eval-*.parquet" in card

    parquet = _load(release, tmp_path / "cache-p")
    folder = _load(small_release, tmp_path / "cache-i")
    assert parquet["train"].features["label"].names == ["No", "Yes"]
    assert type(parquet["train"].features["image"]).__name__ == "Image"
    for split in ("train", "eval"):
        assert _multiset(parquet[split]) == _multiset(folder[split])
    # Without the README, ClassLabel still comes back from the Parquet schema.
    from datasets import Dataset

    alone = Dataset.from_parquet(str(release / train[0]), cache_dir=str(tmp_path / "cache-a"))
    assert alone.features["label"].names == ["No", "Yes"]
    assert main(["audit", str(release)]) == 0


# SFT JSONL -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sft_release(
    _small_corpus_master: Path, small_release: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[BuildResult, dict[str, str]]:
    corpus = tmp_path_factory.mktemp("sft") / "corpus"
    shutil.copytree(_small_corpus_master, corpus)
    made = seed_near_duplicates(corpus, eval_sources(small_release, 3))
    out = tmp_path_factory.mktemp("sft-out")
    return _build(corpus, out, "sft-jsonl", files_per_folder=5, fractions=(0.5, 0.25, 0.25)), made


def _rows(release: Path) -> dict[str, list[dict[str, Any]]]:
    return {
        split: [json.loads(line) for line in (release / "data" / f"{split}.jsonl").read_text().splitlines()]
        for split in ("train", "validation", "test")
    }


def test_sft_rows_are_the_one_prompt_with_relative_paths(
    sft_release: tuple[BuildResult, dict[str, str]], small_release: Path
) -> None:
    """Every SFT producer writes the turns training, evaluation and the Space use: [image, question]."""
    from builder.model import data
    from builder.model.prompt import PROMPT, SYSTEM_PROMPT, messages

    result, _ = sft_release
    rows = _rows(result.release)
    total = sum(len(r) for r in rows.values())
    assert total == sum(result.report.counts.tiles.values())
    label_of = {t.file_name: t.label for t in result.report.tiles}
    for row in (r for split in rows.values() for r in split):
        image = row["messages"][1]["content"][0]["image"]
        assert image.startswith("images/s0000") and (result.release / image).is_file()
        assert row == {"messages": messages(image, label_of[Path(image).name])}
    user = rows["train"][0]["messages"][1]["content"]
    assert [p["type"] for p in user] == ["image", "text"] and user[1]["text"] == PROMPT
    assert rows["train"][0]["messages"][0]["content"][0]["text"] == SYSTEM_PROMPT
    # `cropmark sft` (builder.model.data) writes the same turns for the same tile.
    (produced, *_) = data.sft_rows(small_release, "train")
    path = produced["messages"][1]["content"][0]["image"]  # type: ignore[index]
    mine = sft_jsonl.row(path, produced["messages"][2]["content"][0]["text"])  # type: ignore[index]
    assert mine == produced
    from datasets import load_dataset

    loaded = load_dataset(str(result.release), cache_dir=str(result.release.parent / "cache"))
    assert {s: len(loaded[s]) for s in loaded} == {s: len(r) for s, r in rows.items()}


def test_the_sft_card_snippet_loads_rows_and_opens_their_images(
    sft_release: tuple[BuildResult, dict[str, str]], tmp_path: Path
) -> None:
    import re
    import subprocess
    import sys

    result, _ = sft_release
    card = (result.release / "README.md").read_text(encoding="utf-8")
    assert 'image_root: "path/to/this/folder"' in card and 'type: "vlm_sft"' in card
    (snippet,) = re.findall(r"```python\n(.*?)```", card, re.S)
    code = snippet.replace("path/to/this/folder", str(result.release)) + (
        "\nimage.load()\nprint(image.size, answer, question == "
        "__import__('builder.model.prompt').model.prompt.PROMPT)\n"
    )
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] in ("(256, 512) Yes True", "(256, 512) No True")


def test_sft_images_are_sharded_and_paths_rewritten(sft_release: tuple[BuildResult, dict[str, str]]) -> None:
    result, _ = sft_release
    folders = sorted((result.release / "images").iterdir())
    n = sum(result.report.counts.tiles.values())
    assert [f.name for f in folders] == [f"s{i:05d}" for i in range(-(-n // 5))]
    assert all(len(list(f.iterdir())) <= 5 for f in folders)
    used = {
        part["image"]
        for rows in _rows(result.release).values()
        for r in rows
        for part in r["messages"][1]["content"]
        if part["type"] == "image"
    }
    on_disk = {p.relative_to(result.release).as_posix() for p in (result.release / "images").rglob("*.jpg")}
    assert used == on_disk


def test_sft_split_keeps_each_site_in_one_split(sft_release: tuple[BuildResult, dict[str, str]]) -> None:
    result, made = sft_release
    split_of = {
        Path(part["image"]).name: split
        for split, rows in _rows(result.release).items()
        for r in rows
        for part in r["messages"][1]["content"]
        if part["type"] == "image"
    }
    name = {t.source: t.file_name for t in result.report.tiles}
    # Jittered copies of an eval site sit in the curated train split; here they follow their site.
    for variant, original in made.items():
        assert split_of[name[variant]] == split_of[name[original]]
    groups = json.loads((_private(result.release) / "groups.json").read_text())
    assert sft_jsonl.validate(result.release, groups) == []
    summary = result.report.layout_summary
    assert sum(s["groups"] for s in summary["splits"].values()) == summary["groups"]


def test_group_hash_split_is_stable_and_refuses_too_few_groups() -> None:
    groups = [f"site-{i}" for i in range(200)]
    first = sft_jsonl.assign(groups, (0.8, 0.1, 0.1), "s")
    more = sft_jsonl.assign([*groups, *(f"new-{i}" for i in range(50))], (0.8, 0.1, 0.1), "s")
    assert all(more[g] == first[g] for g in groups)  # adding sites moves none
    shares = Counter(first.values())
    assert 130 <= shares["train"] <= 190 and shares["validation"] and shares["test"]
    assert sft_jsonl.assign(groups, (0.8, 0.1, 0.1), "other") != first
    with pytest.raises(ConfigError, match="2 site group"):
        sft_jsonl.assign(["a", "b"], (0.4, 0.3, 0.3), "s")


def test_sft_validator_catches_every_kind_of_bad_row(
    sft_release: tuple[BuildResult, dict[str, str]], tmp_path: Path
) -> None:
    result, _ = sft_release
    root = tmp_path / "copy"
    shutil.copytree(result.release, root)
    groups = json.loads((_private(result.release) / "groups.json").read_text())
    rows = _rows(root)
    bad = json.loads(json.dumps(rows["train"][0]))
    bad["messages"][1]["role"] = "assistant"
    missing = json.loads(json.dumps(rows["train"][1]))
    missing["messages"][1]["content"][0]["image"] = "images/s00000/nope.jpg"
    untyped = json.loads(json.dumps(rows["train"][2]))
    untyped["messages"][1]["content"][1] = {"text": "no type"}
    escaping = json.loads(json.dumps(rows["train"][3]))
    escaping["messages"][1]["content"][0]["image"] = "../outside.jpg"
    old_prompt = json.loads(json.dumps(rows["train"][4]))  # a text part before the image
    old_prompt["messages"][1]["content"].insert(0, {"type": "text", "text": "Image: Sentinel-2."})
    corrupt = root / rows["train"][5]["messages"][1]["content"][0]["image"]
    corrupt.write_bytes(b"\xff\xd8 not a jpeg")
    moved = rows["train"][6]  # the same image (and so its site) in a second split
    lines = [bad, missing, untyped, escaping, old_prompt, *rows["train"][5:]]
    (root / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    with (root / "data" / "test.jsonl").open("a") as handle:
        handle.write(json.dumps(moved) + "\n" + "not json\n")
    problems = "\n".join(sft_jsonl.validate(root, groups))
    for expected in (
        "train.jsonl:1: roles",
        "train.jsonl:2: image images/s00000/nope.jpg does not exist",
        "train.jsonl:3: a content part is not",
        "train.jsonl:4: image '../outside.jpg' is not a relative path",
        "train.jsonl:5: turns are not the project's prompt",
        "train.jsonl:6: image",  # does not open
        "is also in train",
        "a site of test is also in train",
        "not JSON",
    ):
        assert expected in problems, expected


def test_sidecars_stay_private_unless_the_policy_allows(
    _small_corpus_master: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = _build(_small_corpus_master, tmp_path / "a", "sft-jsonl", fractions=(0.6, 0.2, 0.2))
    assert not (result.release / "sidecars").exists()
    sidecars = sorted((_private(result.release) / "sidecars").glob("*.json"))
    assert len(sidecars) == sum(result.report.counts.tiles.values())
    full = json.loads(sidecars[0].read_text())
    assert {"lat", "lon", "scene_id", "date", "label_stats"} <= set(full)
    # Asking for public sidecars under the cropmark policy: one line, nothing built.
    code = _cli_build(_small_corpus_master, tmp_path / "b", "--layout", "sft-jsonl", "--public-sidecars")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "forbids sidecars" in err
    assert not (tmp_path / "b" / "cropmark-disambiguator-s2" / "1.0.0").exists()
    # A sibling policy that allows them publishes what it allows, never the source path.
    no_dates = policy.Policy("no-dates", coordinates=True, source_ids=True, sidecars=True)
    opened = _build(
        _small_corpus_master,
        tmp_path / "c",
        "sft-jsonl",
        fractions=(0.6, 0.2, 0.2),
        public_sidecars=True,
        policy=no_dates,
    )
    public = sorted((opened.release / "sidecars").rglob("*.json"))
    assert len(public) == len(sidecars)
    shown = json.loads(public[0].read_text())
    assert "lat" in shown and "date" not in shown and "source" not in shown
    # The audit enforces the policy: a date slipped into a sidecar is refused (no-dates allows
    # sidecars but not timestamps), and so are the sidecars themselves under the cropmark policy.
    report = BuildReport.from_json((_private(opened.release) / "report.json").read_bytes())
    assert audit_sibling(opened.release, report, _private(opened.release)) == []
    public[0].write_text(json.dumps({**shown, "date": full["date"]}))
    findings = audit_sibling(opened.release, report, _private(opened.release))
    assert any("key 'date' is not allowed by policy 'no-dates'" in f for f in findings)
    report = replace(report, policy=policy.CROPMARK)
    findings = audit_sibling(opened.release, report, _private(opened.release))
    assert any("forbids publishing per-tile sidecars" in f for f in findings)


def test_policy_file_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text('{"coordinates": true, "colour": true}')
    with pytest.raises(ConfigError, match="unknown key"):
        policy.load(path)
    path.write_text('{"sidecars": true}')
    with pytest.raises(ConfigError, match="sidecars hold coordinates"):
        policy.load(path)
    path.write_text('{"coordinates": "yes"}')
    with pytest.raises(ConfigError, match="expected a bool"):
        policy.load(path)
    path.write_text('{"name": "sibling", "coordinates": true}')
    assert policy.load(path) == policy.Policy("sibling", coordinates=True)
    assert policy.load(None) == policy.CROPMARK
    with pytest.raises(PolicyError, match="forbids coordinates"):
        policy.require(policy.CROPMARK, "coordinates", "--coords")


# HDF5 ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hdf5_open(_small_corpus_master: Path, tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    out = tmp_path_factory.mktemp("h5-open")
    return _build(
        _small_corpus_master, out, "hdf5", samples_per_shard=7, fractions=(0.6, 0.2, 0.2), policy=OPEN
    )


def test_hdf5_round_trip_is_bit_exact(hdf5_open: BuildResult) -> None:
    import pyarrow.parquet as pq

    release = hdf5_open.release
    shards = sorted((release / "shards").glob("*.h5"))
    n = sum(hdf5_open.report.counts.tiles.values())
    assert len(shards) == -(-n // 7)
    sites = {t.file_name.removesuffix(".jpg"): t for t in hdf5_open.report.tiles}
    checked = 0
    with hdf5.open_main(release / "main.h5") as handle:
        import h5py

        assert len(handle) == n
        for key in handle:
            link = handle.get(key, getlink=True)
            assert isinstance(link, h5py.ExternalLink) and not Path(link.filename).is_absolute()
            sample = hdf5.read_sample(handle, key)
            tile = sites[key]
            image = sample["image"]
            assert image.dtype == np.uint8 and image.shape == (3, 512, 256)
            assert sample["labels"] == [tile.label]
            site = tile.site
            if site is None:
                continue
            grid, epsg = hdf5.site_coords(site.lat, site.lon)
            assert isinstance(sample["crs"], np.integer) and sample["crs"] == epsg
            assert 32601 <= epsg <= 32660 or 32701 <= epsg <= 32760  # WGS 84 / UTM zones
            assert sample["coords"].dtype == np.float32
            assert np.array_equal(sample["coords"].view(np.uint32), grid.view(np.uint32))
            stamp = datetime.fromisoformat(site.date).replace(tzinfo=UTC).timestamp()
            assert isinstance(sample["timestamp"], np.float64) and sample["timestamp"] == stamp
            assert float(np.float32(stamp)) != stamp or stamp % 128 == 0  # float32 would round it
            checked += 1
    assert checked == hdf5_open.report.layout_summary["coords"] > 0
    meta = pq.read_table(release / "metadata.parquet").to_pylist()
    assert [m["key"] for m in meta] == sorted(sites)
    assert main(["audit", str(release)]) == 0


def test_hdf5_images_equal_the_published_tiles_bit_for_bit(
    _small_corpus_master: Path, small_release: Path, hdf5_open: BuildResult
) -> None:
    with hdf5.open_main(hdf5_open.release / "main.h5") as handle:
        for path in sorted((small_release / "data").rglob("*.jpg")):
            stored = hdf5.read_sample(handle, path.stem)["image"]
            with Image.open(path) as tile:
                decoded = np.moveaxis(np.asarray(tile.convert("RGB")), -1, 0)
            assert stored.dtype == np.uint8 and np.array_equal(stored, decoded)


def test_hdf5_float32_option_stores_the_same_values_over_255(
    _small_corpus_master: Path, hdf5_open: BuildResult, tmp_path: Path
) -> None:
    wide = _build(
        _small_corpus_master,
        tmp_path,
        "hdf5",
        samples_per_shard=7,
        fractions=(0.6, 0.2, 0.2),
        policy=OPEN,
        hdf5_dtype="float32",
    )
    assert wide.report.layout_summary["dtype"] == "float32"
    with (
        hdf5.open_main(hdf5_open.release / "main.h5") as small,
        hdf5.open_main(wide.release / "main.h5") as big,
    ):
        for key in small:
            narrow, floats = hdf5.read_sample(small, key)["image"], hdf5.read_sample(big, key)["image"]
            assert floats.dtype == np.float32
            assert np.array_equal(floats, (narrow.astype(np.float32) / np.float32(255)).astype(np.float32))
    size = {
        r: sum(p.stat().st_size for p in (r / "shards").glob("*.h5"))
        for r in (hdf5_open.release, wide.release)
    }
    assert size[hdf5_open.release] < size[wide.release]


def test_hdf5_split_is_stratified_and_keeps_sites_together(hdf5_open: BuildResult) -> None:
    import pyarrow.parquet as pq

    meta = pq.read_table(hdf5_open.release / "metadata.parquet").to_pylist()
    summary = hdf5_open.report.layout_summary["splits"]
    for split, info in summary.items():
        rows = [m for m in meta if m["split"] == split]
        assert info["samples"] == len(rows) > 0
        assert info["Yes"] == sum(m["labels"] == ["Yes"] for m in rows)
    total = {label: sum(info[label] for info in summary.values()) for label in ("Yes", "No")}
    for label, n in total.items():
        wanted = [f * n for f in (0.6, 0.2, 0.2)]
        got = [summary[s][label] for s in ("train", "validation", "test")]
        assert all(abs(g - w) <= 1.0 for g, w in zip(got, wanted, strict=True)), (label, got, wanted)
    # qrels: each sample is relevant to the query of its label, in its own split.
    queries = [json.loads(line) for line in (hdf5_open.release / "queries.jsonl").read_text().splitlines()]
    by_query = {q["_id"]: q["labels"][0] for q in queries}
    for split in ("train", "validation", "test"):
        lines = (hdf5_open.release / "qrels" / f"{split}.tsv").read_text().splitlines()
        assert lines[0] == "query-id\tcorpus-id\tscore"
        pairs = {(q, k) for q, k, _ in (line.split("\t") for line in lines[1:])}
        expected = {(f"q-{m['labels'][0].lower()}", m["key"]) for m in meta if m["split"] == split}
        assert pairs == expected and all(by_query[q] for q, _ in pairs)


def test_stratify_keeps_groups_whole_with_multi_label_counts() -> None:
    from builder.layouts.base import Sample

    samples = [
        Sample(
            "train",
            f"d_tile_{i:012d}.jpg",
            "Yes" if i % 4 == 0 else "No",
            Path("x"),
            "s",
            (),
            None,
            f"g{i // 2}",
        )
        for i in range(400)
    ]
    split = hdf5.stratify(samples, (0.8, 0.1, 0.1), "s")
    assert len(split) == 200
    per = Counter((split[s.group], s.label) for s in samples)
    assert abs(per[("validation", "Yes")] - 10) <= 2 and abs(per[("test", "No")] - 30) <= 2
    with pytest.raises(ConfigError, match="got no group"):
        hdf5.stratify(samples[:2], (0.5, 0.25, 0.25), "s")


def test_hdf5_main_moved_away_from_its_shards_fails_clearly(hdf5_open: BuildResult, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere" / "main.h5"
    moved.parent.mkdir()
    shutil.copyfile(hdf5_open.release / "main.h5", moved)
    with (
        pytest.raises(LayoutDataError, match=r"links \d+ shard file\(s\) it cannot find beside it"),
        hdf5.open_main(moved),
    ):
        pass
    # The whole folder moved keeps working: links are relative.
    whole = tmp_path / "copy"
    shutil.copytree(hdf5_open.release, whole)
    with hdf5.open_main(whole / "main.h5") as handle:
        key = next(iter(handle))
        assert hdf5.read_sample(handle, key)["image"].shape == (3, 512, 256)


def test_hdf5_under_the_cropmark_policy_has_no_place_or_time(
    _small_corpus_master: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = _build(_small_corpus_master, tmp_path / "a", "hdf5", fractions=(0.6, 0.2, 0.2))
    import h5py

    for shard in (result.release / "shards").glob("*.h5"):
        with h5py.File(shard) as handle:
            for group in handle.values():
                assert set(group) == {"image"} and set(group.attrs) == {"labels"}
    card = (result.release / "README.md").read_text()
    assert "No sample carries `coords`, `crs` or `timestamp`" in card
    code = _cli_build(_small_corpus_master, tmp_path / "b", "--layout", "hdf5", "--coords")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "forbids coordinates" in err
    assert not (tmp_path / "b" / "cropmark-disambiguator-s2").exists() or not any(
        (tmp_path / "b" / "cropmark-disambiguator-s2").iterdir()
    )


def test_hdf5_audit_refuses_coordinates_the_policy_forbids(hdf5_open: BuildResult) -> None:
    report = BuildReport.from_json((_private(hdf5_open.release) / "report.json").read_bytes())
    assert audit_sibling(hdf5_open.release, report, _private(hdf5_open.release)) == []
    report = replace(report, policy=policy.CROPMARK)
    findings = "\n".join(audit_sibling(hdf5_open.release, report, _private(hdf5_open.release)))
    assert (
        "forbids coordinates" in findings and "'timestamp': policy 'cropmark' forbids timestamps" in findings
    )


def test_non_finite_sample_fails_the_build_and_leaves_nothing(
    _small_corpus_master: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = hdf5.tile_array
    calls = {"n": 0}

    def poisoned(path: Path, dtype: str = "uint8") -> np.ndarray:
        calls["n"] += 1
        array = real(path, dtype)
        if calls["n"] == 5:
            array[0, 0, 0] = np.nan
        return array

    monkeypatch.setattr(hdf5, "tile_array", poisoned)
    out = tmp_path / "out"
    with pytest.raises(LayoutDataError, match="image has 1 non-finite value"):
        _build(_small_corpus_master, out, "hdf5", fractions=(0.6, 0.2, 0.2), hdf5_dtype="float32")
    assert [p.name for p in (out / "cropmark-disambiguator-s2").iterdir()] == []


# Bad options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layout", "sft-jsonl", "--files-per-folder", "0"], "files per folder 0: use 1 or more"),
        (["--layout", "sft-jsonl", "--files-per-folder", "12000"], "the Hub refuses more than 10000"),
        (["--layout", "hdf5", "--samples-per-shard", "0"], "samples per shard 0: use 1 or more"),
        (["--layout", "parquet", "--shard-mb", "0"], "shard size 0.0 MiB"),
        (["--layout", "sft-jsonl", "--split-fractions", "0.8", "0.3", "0.1"], "sum to 1.2"),
        (["--layout", "sft-jsonl", "--split-fractions", "0.998", "0.001", "0.001"], "got no group"),
    ],
)
def test_bad_layout_options_are_one_line_errors_and_write_nothing(
    _small_corpus_master: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    code = _cli_build(_small_corpus_master, tmp_path, *args)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    parent = tmp_path / "cropmark-disambiguator-s2"
    assert not parent.exists() or [p.name for p in parent.iterdir()] == []


def test_layout_audit_refuses_tampered_releases(_small_corpus_master: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    result = _build(_small_corpus_master, tmp_path / "out", "parquet")
    release, private = result.release, _private(result.release)
    report = BuildReport.from_json((private / "report.json").read_bytes())
    assert audit_sibling(release, report, private) == []
    (release / "notes.txt").write_text("found at 52.27468, -1.23456 on 2022-05-20\n")
    shard = release / "data" / "eval-00000-of-00001.parquet"
    table = pq.read_table(shard)
    images = table["image"].to_pylist()
    images[0]["path"] = "AIM0000264_20220520.jpg"
    pq.write_table(
        table.set_column(0, "image", pa.array(images, type=table.schema.field("image").type)), shard
    )
    findings = "\n".join(audit_sibling(release, report, private))
    for expected in (
        "notes.txt: not part of a parquet release",
        "notes.txt: not written by the build",
        "notes.txt:1: coordinate pair-like string 52.2…",
        "notes.txt:1: date-like string 2022…",
        "data/eval-00000-of-00001.parquet: differs from the file the build wrote",
        "row 0: image path AIM0… is not an opaque tile name",
    ):
        assert expected in findings, expected
    assert main(["audit", str(release)]) == 1


def test_layout_audit_refuses_a_truncated_parquet_and_an_unfinished_commit(tmp_path: Path) -> None:
    """A file the audit cannot parse is a finding, never a traceback; so is a commit journal."""
    from builder.files import journal_path
    from builder.release.audit import audit_any, load_report
    from tests.data.factory import TinyCorpus

    corpus = TinyCorpus(tmp_path / "corpus").write()
    result = build(BuildConfig(corpus, tmp_path / "out", "1.0.0", layout="parquet"))
    report = load_report(result.private / "report.json")
    shard = next((result.release / "data").glob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:200])
    journal_path(result.release).write_text("{}")
    findings = audit_any(result.release, report)
    rel = shard.relative_to(result.release).as_posix()
    assert any(f.startswith(f"{rel}: not a readable Parquet file") for f in findings), findings
    assert any("a build was killed while putting this release" in f for f in findings), findings


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply to read"),
        ("[true]", "holds a JSON list; expected a policy object of booleans"),
        (None, "is a FIFO, not a regular file"),
    ],
)
def test_a_broken_policy_file_is_one_line(
    content: str | None, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    from tests.data.factory import TinyCorpus

    corpus = TinyCorpus(tmp_path / "corpus").write()
    path = tmp_path / "policy.json"
    if content is None:
        os.mkfifo(path)
    else:
        path.write_text(content)
    out = tmp_path / "out"
    args = ["build", "--corpus", str(corpus), "--out", str(out), "--version", "1.0.0", "--policy", str(path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: policy file: ") and message in err, err
    assert not out.exists() or not any(out.rglob("*.jpg"))


@pytest.mark.parametrize("layout", ["parquet", "hdf5", "sft-jsonl"])
def test_a_sibling_layout_audited_without_its_report_is_one_finding_naming_its_layout(
    layout: str, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the private report (which names the layout), a Parquet, HDF5 or SFT JSONL
    release was audited as an imagefolder: a finding for each missing metadata.csv and each
    file an imagefolder never holds. It is now refused by a finding that says what it is;
    only the text scan, which needs no report, runs besides (without the report it cannot
    tell a figure of the card from a record number, so it names those too)."""
    import shutil

    from builder.release.audit import audit_any

    result = build(BuildConfig(small_corpus, tmp_path / "out", "1.0.0", layout=layout))
    shutil.rmtree(result.private)
    finding, *others = audit_any(result.release, None)
    assert finding.startswith("no private report: ") and f"a file of the {layout} layout" in finding
    assert all(f.startswith("README.md:") for f in others), others
    assert main(["audit", str(result.release)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"FINDING {finding}"
    assert out[-1] == f"audit refused {result.release}: {1 + len(others)} finding(s)"


def test_an_imagefolder_release_without_its_report_is_still_audited_as_one(tmp_path: Path) -> None:
    from builder.release.audit import audit_any
    from tests.data.factory import TinyCorpus

    corpus = TinyCorpus(tmp_path / "corpus").write()
    result = build(BuildConfig(corpus, tmp_path / "out", "1.0.0"))
    assert audit_any(result.release, None) == [
        "no private report: cannot check hashes or which half was published"
    ]


def test_an_imagefolder_with_a_stray_parquet_and_no_report_keeps_its_findings(
    small_release: Path, tmp_path: Path
) -> None:
    """A stray ``.parquet`` in an imagefolder release (hostile test) made the no-report audit
    one finding about the Parquet layout, hiding the imagefolder's own findings; an HDF5
    release without its ``main.h5`` was named an SFT JSONL one."""
    import shutil

    from builder.release.audit import audit_any

    release = tmp_path / "release"
    shutil.copytree(small_release, release)
    (release / "x.parquet").write_bytes(b"PAR1")
    (release / "README.md").write_text("AIM0000048\n")
    findings = audit_any(release, None)
    assert "x.parquet: not part of a release (allowed: LICENSE, NOTICE.md, README.md, data)" in findings
    assert any("AIM0000048" not in f and "README.md" in f for f in findings), findings
    assert not any("parquet layout" in f for f in findings), findings
    hdf5 = tmp_path / "hdf5"
    (hdf5 / "shards").mkdir(parents=True)
    (hdf5 / "queries.jsonl").write_text("{}\n")
    (hdf5 / "shards" / "shard-00000.h5").write_bytes(b"")
    (finding,) = audit_any(hdf5, None)
    assert "a file of the hdf5 layout" in finding
    # What needs no report is still checked behind such a file (hostile test).
    (hdf5 / "README.md").write_text("site at 51.52341, -0.12345\n")
    findings = audit_any(hdf5, None)
    assert "a file of the hdf5 layout" in findings[0], findings
    assert any(f.startswith("README.md:1: coordinate pair") for f in findings[1:]), findings
