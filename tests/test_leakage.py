"""Train/eval leakage: perceptual hashes find seeded near-duplicates, and only those."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builder.cli import main
from builder.ingest.corpus import Site
from builder.release import leakage
from builder.release.audit import audit_release
from builder.release.build import BuildConfig, build
from builder.release.cards import validate_dataset_card
from builder.release.report import BuildReport

KINDS = ("reencoded", "shifted", "brightened")


def _variant(pixels: np.ndarray, kind: str) -> np.ndarray:
    out = pixels.copy()
    left = out[:, :256]
    if kind == "shifted":  # 3 px right and 2 px down, edges repeated
        left[:, 3:] = left[:, :-3].copy()
        left[2:, :] = left[:-2, :].copy()
    elif kind == "brightened":
        left[:] = np.clip(left.astype(np.int16) * 1.08 + 6, 0, 255).astype(np.uint8)
    return out


def seed_near_duplicates(corpus: Path, eval_sources: list[str]) -> dict[str, str]:
    """Add to the train manifest one variant per kind of each eval composite; return variant -> original.

    Variants are a site's jittered copies: their sites.csv rows keep the original's
    source record and move the point by a few metres.
    """
    labels = {}
    for line in (corpus / "sft" / "eval.jsonl").read_text().splitlines():
        row = json.loads(line)
        image = row["messages"][1]["content"][0]["image"]
        labels[image] = row["messages"][2]["content"][0]["text"]
    with (corpus / "sites.csv").open(newline="") as handle:
        sites = {r["composite"]: r for r in csv.DictReader(handle)}
    made: dict[str, str] = {}
    rows, site_rows = [], []
    for n, source in enumerate(eval_sources):
        with Image.open(corpus / source) as image:
            pixels = np.asarray(image.convert("RGB"))
        for kind in KINDS:
            rel = f"composites/variant_{n}_{kind}.jpg"
            buffer = io.BytesIO()
            quality = 75 if kind == "reencoded" else 92
            Image.fromarray(_variant(pixels, kind)).save(buffer, format="JPEG", quality=quality)
            (corpus / rel).write_bytes(buffer.getvalue())
            made[rel] = source
            turns = [
                {"role": "user", "content": [{"type": "image", "image": rel}, {"type": "text", "text": "?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": labels[source]}]},
            ]
            rows.append(json.dumps({"messages": turns}))
            site = dict(sites[source])
            site.update(composite=rel, lat=f"{float(site['lat']) + 0.0001:.6f}")
            site_rows.append(site)
    with (corpus / "sft" / "train.jsonl").open("a") as handle:
        handle.write("\n".join(rows) + "\n")
    with (corpus / "sites.csv").open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(site_rows[0]))
        writer.writerows(site_rows)
    return made


def eval_sources(release: Path, count: int) -> list[str]:
    report = BuildReport.from_json(
        (release.with_name(release.name + ".private") / "report.json").read_bytes()
    )
    return sorted(t.source for t in report.tiles if t.split == "eval")[:count]


def test_dct_matrix_is_orthonormal_and_phash_is_stable() -> None:
    c = leakage.dct_matrix(32)
    np.testing.assert_allclose(c @ c.T, np.eye(32), atol=1e-12)
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (32, 32))
    assert leakage.phash_pixels(grey) == leakage.phash_pixels(grey.astype(np.float32))
    # A constant offset moves only the DC term: the hash is unchanged.
    assert leakage.phash_pixels(grey + 40) == leakage.phash_pixels(grey)
    hashes = [leakage.phash_pixels(rng.integers(0, 256, (32, 32))) for _ in range(200)]
    d = leakage.distances(hashes[:100], hashes[100:])
    assert 28 <= d.mean() <= 36  # unrelated images: about half of the 64 bits differ
    with pytest.raises(ValueError, match="32x32"):
        leakage.phash_pixels(np.zeros((16, 16)))


def test_near_duplicates_lists_pairs_within_threshold() -> None:
    train = {"a": 0b1111, "b": 0xFFFF_FFFF_0000_0000}
    eval_ = {"x": 0b0111, "y": 0x0000_0000_FFFF_FFFF}
    pairs, closest = leakage.near_duplicates(train, eval_, threshold=2)
    assert [(p.train, p.eval, p.distance) for p in pairs] == [("a", "x", 1)]
    assert closest == 1
    assert leakage.near_duplicates({}, eval_) == ([], None)


def test_seeded_near_duplicates_are_found_reported_and_droppable(
    small_corpus: Path, small_release: Path, tmp_path: Path
) -> None:
    made = seed_near_duplicates(small_corpus, eval_sources(small_release, 2))
    result = build(BuildConfig(small_corpus, tmp_path / "kept", "1.0.0"))
    leaks = result.report.leakage
    by_source = {t.source: t.file_name for t in result.report.tiles}
    expected = {(by_source[variant], by_source[original]) for variant, original in made.items()}
    found = {(p.train, p.eval) for p in leaks.pairs}
    assert found == expected  # every seeded copy, and nothing else
    assert leaks.train_tiles == 6 and leaks.dropped == 0
    assert all(p.distance <= leaks.threshold for p in leaks.pairs)
    unrelated = leakage.distances(
        [int(h, 16) for n, h in leaks.hashes["train"].items() if n not in {t for t, _ in expected}],
        [int(h, 16) for h in leaks.hashes["eval"].values()],
    )
    assert unrelated.min() > leaks.threshold
    card = (result.release / "README.md").read_text()
    assert "**6** train tiles within **10** bits of an eval tile were found and kept" in card
    for train_name, eval_name in expected:
        assert f"| `{train_name}` | `{eval_name}` |" in card
    assert validate_dataset_card(card, result.report, result.release) == []
    train_name, eval_name = sorted(expected)[0]
    row = next(line for line in card.splitlines() if line.startswith(f"| `{train_name}` | `{eval_name}` |"))
    problems = validate_dataset_card(card.replace(row + "\n", ""), result.report, result.release)
    assert any("near-duplicate table lists 5 pairs; the build report has 6" in p for p in problems)
    assert result.report.counts.tiles["train"] == 24 + 6

    dropped = build(BuildConfig(small_corpus, tmp_path / "dropped", "1.0.0", drop_near_duplicates=True))
    counts = dropped.report.counts
    assert counts.tiles == {"train": 24, "eval": 8}
    assert counts.rejected["near_duplicate"] == {"train": 6, "eval": 0}
    assert dropped.report.leakage.dropped == 6
    published = {p.name for p in (dropped.release / "data" / "train").iterdir()}
    assert not published & {t for t, _ in expected}
    card = (dropped.release / "README.md").read_text()
    assert "were found and dropped from `train`" in card
    assert "| `near_duplicate` |" in card
    assert validate_dataset_card(card, dropped.report, dropped.release) == []
    assert audit_release(dropped.release, dropped.report) == []


def test_card_validation_catches_a_wrong_near_duplicate_count(
    small_release: Path,
) -> None:
    report = BuildReport.from_json((small_release.with_name("1.0.0.private") / "report.json").read_bytes())
    card = (small_release / "README.md").read_text()
    assert validate_dataset_card(card, report, small_release) == []
    wrong = card.replace("**0** train tiles within", "**2** train tiles within")
    assert any("near-duplicate count" in p for p in validate_dataset_card(wrong, report, small_release))


def test_cli_leak_options(small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "build",
            "--corpus",
            str(small_corpus),
            "--out",
            str(tmp_path),
            "--version",
            "1.0.0",
            "--leak-threshold",
            "64",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "leak threshold 64" in err
    assert not (tmp_path / "cropmark-disambiguator-s2" / "1.0.0").exists()
    assert main(["build", "--corpus", str(small_corpus), "--out", str(tmp_path), "--version", "1.0.0"]) == 0
    assert "near-dups      0 train tiles within 10 bits of an eval tile (none" in capsys.readouterr().out


# -- what pHash cannot see, and the site check that covers it ------------------------------------


def _train_tiles(release: Path) -> list[np.ndarray]:
    tiles = []
    for path in sorted((release / "data" / "train").glob("*.jpg")):
        pixels = np.asarray(Image.open(path).convert("RGB"))
        if pixels.std() > 10:  # leave out near-uniform tiles: any hash of a flat image is noise
            tiles.append(pixels)
    return tiles


def _phash_of(pixels: np.ndarray) -> int:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="JPEG", quality=95)
    return leakage.phash(buffer.getvalue())


def _moved(pixels: np.ndarray, k: int) -> np.ndarray:
    """The window moved ``k`` px east: the tile's columns shifted, the new edge repeated."""
    return np.concatenate([pixels[:, k:], np.repeat(pixels[:, -1:], k, axis=1)], axis=1)


def _encoded(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def test_what_phash_sees_and_what_it_cannot(small_release: Path) -> None:
    """The card's sentence: the check finds copies moved by a few pixels, mirrored, upside down or
    turned half a turn (pHash alone does not: the eval tile's views do), but not reliably a window
    moved by 16 px or more."""
    tiles = _train_tiles(small_release)
    assert len(tiles) >= 15
    t = leakage.DEFAULT_THRESHOLD

    def distance(a: np.ndarray, b: np.ndarray) -> int:
        return bin(_phash_of(a) ^ _phash_of(b)).count("1")

    def checked(train: np.ndarray, eval_: np.ndarray) -> list[leakage.Pair]:
        views = {"e": leakage.phash_views(_encoded(eval_))}
        return leakage.near_duplicates({"t": _phash_of(train)}, views, t)[0]

    assert all(distance(p, _moved(p, 4)) <= t for p in tiles)
    flips = {
        "mirrored": lambda p: p[:, ::-1],
        "upside down": lambda p: p[::-1],
        "turned half a turn": lambda p: p[::-1, ::-1],
    }
    for view, flip in flips.items():
        assert all(distance(p, flip(p)) > t for p in tiles)  # pHash alone: as far as unrelated tiles
        found = [checked(flip(p), p) for p in tiles]
        assert all(len(pairs) == 1 and pairs[0].view == view for pairs in found), view
    far = [distance(p, _moved(p, 16)) for p in tiles]
    assert sum(d > t for d in far) > len(far) / 2
    assert sum(not checked(_moved(p, 16), p) for p in tiles) > len(tiles) / 2
    # Views do not bring unrelated tiles closer than the threshold.
    hashes = {f"t{i}": _phash_of(p) for i, p in enumerate(tiles[::2])}
    views = {f"e{i}": leakage.phash_views(_encoded(p)) for i, p in enumerate(tiles[1::2])}
    assert leakage.near_duplicates(hashes, views, t)[0] == []


def test_a_mirrored_eval_composite_in_train_is_found_without_a_site_list(
    small_corpus: Path, small_release: Path, tmp_path: Path
) -> None:
    """An eval composite flipped upside down (the whole composite) and one whose Sentinel-2 half
    is mirrored, added to train with no sites.csv row: both once published silently (closest
    pHash distance 22 bits); they are near-duplicates of the eval tile, and droppable."""
    source = eval_sources(small_release, 1)[0]
    with Image.open(small_corpus / source) as image:
        pixels = np.asarray(image.convert("RGB"))
    mirrored = pixels.copy()
    mirrored[:, :256] = pixels[:, 255::-1]
    labels = {}
    for line in (small_corpus / "sft" / "eval.jsonl").read_text().splitlines():
        row = json.loads(line)
        labels[row["messages"][1]["content"][0]["image"]] = row["messages"][2]["content"][0]["text"]
    rows = []
    for name, copy in (("upside_down.png", pixels[::-1]), ("mirrored.png", mirrored)):
        Image.fromarray(np.ascontiguousarray(copy)).save(small_corpus / "composites" / name)
        turns = [
            {"role": "user", "content": [{"type": "image", "image": f"composites/{name}"}]},
            {"role": "assistant", "content": [{"type": "text", "text": labels[source]}]},
        ]
        rows.append(json.dumps({"messages": turns}))
    with (small_corpus / "sft" / "train.jsonl").open("a") as handle:
        handle.write("\n".join(rows) + "\n")
    report = build(BuildConfig(small_corpus, tmp_path / "kept", "1.0.0")).report
    by_source = {t.source: t.file_name for t in report.tiles}
    pairs = {(p.train, p.eval): p.view for p in report.leakage.pairs}
    eval_name = by_source[source]
    assert pairs[by_source["composites/upside_down.png"], eval_name] == "upside down"
    assert pairs[by_source["composites/mirrored.png"], eval_name] == "mirrored"
    dropped = build(BuildConfig(small_corpus, tmp_path / "dropped", "1.0.0", drop_near_duplicates=True))
    gone = {r.where: r.detail for r in dropped.report.rejections if r.reason == "near_duplicate"}
    assert gone["composites/upside_down.png"].endswith(f"to eval tile {eval_name} upside down")
    assert gone["composites/mirrored.png"].endswith(f"to eval tile {eval_name} mirrored")


def test_same_sites_by_record_or_distance() -> None:
    def site(lat: float, lon: float, record: str) -> Site:
        return Site("x", lat, lon, "Historic England AIM", record, "2020-06-01")

    train = {
        "revisit": site(52.0, -1.0, "AIM1"),  # same record, 5 km away: still the same site
        "near": site(52.5 + 0.015, 0.0, "AIM7"),  # 1.67 km north of an eval site
        "far": site(52.5 + 0.03, 0.0, "AIM8"),  # 3.34 km: not the same site
    }
    eval_ = {"a": site(52.045, -1.0, "AIM1"), "b": site(52.5, 0.0, "AIM2")}
    pairs, closest = leakage.same_sites(train, eval_)
    assert [(p.train, p.eval, p.same_record) for p in pairs] == [("near", "b", False), ("revisit", "a", True)]
    assert pairs[0].metres == pytest.approx(1668, abs=2) and pairs[1].metres == pytest.approx(5004, abs=5)
    assert closest == pytest.approx(1668, abs=2)
    assert [p.train for p in leakage.same_sites(train, eval_, distance_m=4000)[0]] == [
        "near",
        "far",
        "revisit",
    ]
    assert leakage.same_sites({}, eval_) == ([], None)


def _add_revisits(corpus: Path, eval_sources: list[str]) -> dict[str, str]:
    """Train revisits of eval sites: the window moved 24 px and mirrored, as another pass would give.
    One keeps the eval site's record; one is another record 400 m away."""
    with (corpus / "sites.csv").open(newline="") as handle:
        sites = {r["composite"]: r for r in csv.DictReader(handle)}
    labels = {}
    for line in (corpus / "sft" / "eval.jsonl").read_text().splitlines():
        row = json.loads(line)
        labels[row["messages"][1]["content"][0]["image"]] = row["messages"][2]["content"][0]["text"]
    made: dict[str, str] = {}
    rows, site_rows = [], []
    for n, source in enumerate(eval_sources):
        pixels = np.asarray(Image.open(corpus / source).convert("RGB")).copy()
        left = _moved(pixels[:, :256], 24)[:, ::-1]
        revisit = np.concatenate([left, pixels[:, 256:]], axis=1)
        rel = f"composites/revisit_{n}.jpg"
        buffer = io.BytesIO()
        Image.fromarray(revisit).save(buffer, format="JPEG", quality=92)
        (corpus / rel).write_bytes(buffer.getvalue())
        made[rel] = source
        turns = [
            {"role": "user", "content": [{"type": "image", "image": rel}, {"type": "text", "text": "?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": labels[source]}]},
        ]
        rows.append(json.dumps({"messages": turns}))
        site = dict(sites[source], composite=rel, date="2024-07-01")
        if n == 1:  # another record of the same place
            site.update(source_id=site["source_id"] + "9", lat=f"{float(site['lat']) + 0.0036:.6f}")
        site_rows.append(site)
    with (corpus / "sft" / "train.jsonl").open("a") as handle:
        handle.write("\n".join(rows) + "\n")
    with (corpus / "sites.csv").open("a", newline="") as handle:
        csv.DictWriter(handle, fieldnames=list(site_rows[0])).writerows(site_rows)
    return made


def test_revisits_of_eval_sites_are_found_listed_counted_and_droppable(
    small_corpus: Path, small_release: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = _add_revisits(small_corpus, eval_sources(small_release, 2))
    result = build(BuildConfig(small_corpus, tmp_path / "kept", "1.0.0"))
    by_source = {t.source: t.file_name for t in result.report.tiles}
    expected = {(by_source[revisit], by_source[original]) for revisit, original in made.items()}
    assert result.report.leakage.train_tiles == 0  # pHash does not see them
    site = result.report.site_leakage
    assert {(p.train, p.eval) for p in site.pairs} == expected  # the private report lists them
    assert site.train_tiles == 2 and site.same_record == 1 and site.dropped == 0
    other = next(p for p in site.pairs if not p.same_record)
    assert other.metres == pytest.approx(400, abs=5)
    card = (result.release / "README.md").read_text()
    assert (
        "**2** train tiles of an eval tile's site were found and kept (1 of them from the same record" in card
    )
    assert validate_dataset_card(card, result.report, result.release) == []
    wrong = card.replace(
        "**2** train tiles of an eval tile's site", "**0** train tiles of an eval tile's site"
    )
    assert any("same-site count" in p for p in validate_dataset_card(wrong, result.report, result.release))
    for name in (n for pair in expected for n in pair):  # no private site value in the card
        assert name not in card

    out = tmp_path / "dropped"
    argv = [
        "build",
        "--corpus",
        str(small_corpus),
        "--out",
        str(out),
        "--version",
        "1.0.0",
        "--drop-site-leaks",
    ]
    assert main(argv) == 0
    assert "same site      2 train tiles of an eval tile's site (same record or < 2560 m; dropped" in (
        capsys.readouterr().out
    )
    release = out / "cropmark-disambiguator-s2" / "1.0.0"
    report = BuildReport.from_json((release.with_name("1.0.0.private") / "report.json").read_bytes())
    assert report.counts.rejected["site_leak"] == {"train": 2, "eval": 0}
    assert not {t for t, _ in expected} & {p.name for p in (release / "data" / "train").iterdir()}
    card = (release / "README.md").read_text()
    assert (
        "were found and dropped from `train` (the `site_leak` row above)" in card
        and "| `site_leak` |" in card
    )


def test_without_a_site_list_the_site_check_is_not_evaluated(small_corpus: Path, tmp_path: Path) -> None:
    (small_corpus / "sites.csv").unlink()
    result = build(BuildConfig(small_corpus, tmp_path / "out", "1.0.0"))
    assert result.report.site_leakage.evaluated is False
    card = (result.release / "README.md").read_text()
    assert "the same-site check was **not\nevaluated**" in card
    assert validate_dataset_card(card, result.report, result.release) == []


def test_a_bad_site_distance_is_one_line(
    small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for bad in ("-5", "nan", "1e9", "100.123456"):  # the last once made the audit refuse the card
        argv = ["build", "--corpus", str(small_corpus), "--out", str(tmp_path), "--version", "1.0.0"]
        assert main([*argv, "--site-distance", bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "site distance" in err
    assert not (tmp_path / "cropmark-disambiguator-s2").exists()


def test_sites_csv_paths_are_matched_as_the_manifests_resolve_them(
    small_corpus: Path, tmp_path: Path
) -> None:
    """A sites.csv written with "./composites/a.jpg" or "composites\\a.jpg" names the same files as
    the manifests' "composites/a.jpg": its rows were once silently unused, and the card said the
    same-site check was not evaluated although the site list was given."""
    sites = small_corpus / "sites.csv"
    plain = build(BuildConfig(small_corpus, tmp_path / "plain", "1.0.0")).report.site_leakage
    lines = sites.read_text(encoding="utf-8").splitlines()
    rewritten = [lines[0]] + [
        ("./" if i % 2 else "") + (line.replace("/", "\\", 1) if i % 3 == 0 else line)
        for i, line in enumerate(lines[1:])
    ]
    assert any(line.startswith("./") for line in rewritten) and any("\\" in line for line in rewritten)
    sites.write_text("\n".join(rewritten) + "\n", encoding="utf-8")
    site = build(BuildConfig(small_corpus, tmp_path / "prefixed", "1.0.0")).report.site_leakage
    assert site.evaluated and site.unchecked == plain.unchecked == {"train": 0, "eval": 0}
    assert site.pairs == plain.pairs


def test_an_empty_record_id_is_no_record_and_the_distance_is_strict() -> None:
    """Sites known only by their point (empty source_id) once all paired as "the same record",
    3,000 km apart; an id with a stray space did not match its record. 2559.9 m is one site,
    2560.1 m is not ("closer than" the tile width)."""
    metre = 180 / math.pi / leakage.EARTH_RADIUS_M  # degrees of latitude per metre

    def site(lat: float, db: str, record: str) -> Site:
        return Site("x", lat, 0.0, db, record, "2020-06-01")

    train = {
        "no id": site(10.0, "DB", ""),
        "blank id": site(20.0, "DB", "  "),
        "spaced": site(30.0, "DB ", " R1 "),
        "just under": site(52.0 + 2559.9 * metre, "DB", "A"),
        "just over": site(52.0 + 2560.1 * metre, "DB", "B"),
    }
    eval_ = {
        "e no id": site(-10.0, "DB", ""),
        "e blank": site(-20.0, "DB", " "),
        "e1": site(-30.0, "DB", "R1"),
    }
    eval_["near"] = site(52.0, "DB", "C")
    pairs, _ = leakage.same_sites(train, eval_)
    assert [(p.train, p.eval, p.same_record) for p in pairs] == [
        ("just under", "near", False),
        ("spaced", "e1", True),
    ]
