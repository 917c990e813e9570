"""Curation rules: identity by content, siblings, conflicts, quarantine, cross-split, missing files,
side files and sites found from any name, and independence from manifest order."""

from __future__ import annotations

import csv
import io
import json
import random
import shutil
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from builder.ingest.corpus import read_manifests, read_sites
from builder.release.build import BuildConfig, build
from builder.release.curate import curate
from tests.data.factory import TinyCorpus, composite_pixels, jpeg_bytes


def _curate(corpus: TinyCorpus) -> tuple[list[tuple[str, str, str]], dict[str, int]]:
    root = corpus.write()
    curated = curate(root, read_manifests(root).rows)
    reasons: dict[str, int] = {}
    for r in curated.rejections:
        reasons[r.reason.value] = reasons.get(r.reason.value, 0) + 1
    return [(c.split, c.source, c.label) for c in curated.candidates], reasons


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def with_comment(data: bytes) -> bytes:
    return data[:2] + _segment(0xFE, b"exported by a viewer") + data[2:]


def with_exif(data: bytes) -> bytes:
    tiff = b"II*\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00"  # little-endian TIFF, an empty IFD
    return data[:2] + _segment(0xE1, b"Exif\x00\x00" + tiff) + data[2:]


def with_trailing_byte(data: bytes) -> bytes:
    return data + b"\x00"


def test_byte_identical_copies_are_one_composite(tmp_path: Path) -> None:
    corpus = TinyCorpus(tmp_path, train=1, eval_=0)
    shutil.copy(tmp_path / "composites/site_train_0.jpg", tmp_path / "composites/copy.jpg")
    corpus.add_row("train", "composites/copy.jpg", "No")
    candidates, reasons = _curate(corpus)
    # The copy that is cut is chosen by content (same bytes: then by path), not by manifest order.
    assert candidates == [("train", "composites/copy.jpg", "No")]
    assert reasons == {"sibling_duplicate": 1}


def test_copies_differing_only_in_metadata_are_one_composite_for_every_rule(tmp_path: Path) -> None:
    corpus = TinyCorpus(tmp_path, train=1, eval_=1)
    original = (tmp_path / "composites/site_eval_0.jpg").read_bytes()
    for name, make in (("comment", with_comment), ("exif", with_exif), ("trailing", with_trailing_byte)):
        corpus.add_file(f"composites/{name}.jpg", make(original), split="train", label="No")
    root = corpus.write()
    curated = curate(root, read_manifests(root).rows)
    # Each copy is the eval composite: its train rows are cross-split rows, not new tiles.
    (held_out,) = [c for c in curated.candidates if c.split == "eval"]
    assert held_out.copies == tuple(
        f"composites/{n}.jpg" for n in ("comment", "exif", "site_eval_0", "trailing")
    )
    assert [c.source for c in curated.candidates if c.split == "train"] == ["composites/site_train_0.jpg"]
    assert [r.reason.value for r in curated.rejections] == ["cross_split"] * 3


def test_a_copy_with_the_opposite_label_drops_every_copy(tmp_path: Path) -> None:
    corpus = TinyCorpus(tmp_path, train=2, eval_=1)
    original = (tmp_path / "composites/site_train_0.jpg").read_bytes()  # labelled No
    corpus.add_file("composites/renamed.jpg", with_comment(original), split="eval", label="Yes")
    corpus.add_file("composites/again.jpg", with_trailing_byte(original), split="train", label="No")
    candidates, reasons = _curate(corpus)
    assert all(
        "site_train_0" not in c[1] and c[1] not in ("composites/renamed.jpg", "composites/again.jpg")
        for c in candidates
    )
    assert reasons == {"label_conflict": 3}


def test_the_same_pixels_as_png_are_the_same_composite_and_the_jpeg_is_cut(tmp_path: Path) -> None:
    corpus = TinyCorpus(tmp_path, train=1, eval_=1)
    pixels = composite_pixels(7)
    jpeg = jpeg_bytes(pixels, subsampling=0)  # 4:4:4: decoded pixels are exact per block
    decoded = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    png = io.BytesIO()
    Image.fromarray(decoded).save(png, format="PNG")
    corpus.add_file("composites/a_first.png", png.getvalue(), split="train", label="Yes")
    corpus.add_file("composites/z_last.jpg", jpeg, split="train", label="Yes")
    candidates, reasons = _curate(corpus)
    assert ("train", "composites/z_last.jpg", "Yes") in candidates  # the JPEG: a lossless cut
    assert not any(c[1] == "composites/a_first.png" for c in candidates)
    assert reasons == {"sibling_duplicate": 1}


def test_conflicting_labels_drop_the_composite_in_every_split(tmp_path: Path) -> None:
    corpus = TinyCorpus(tmp_path, train=2, eval_=0)
    corpus.add_row("eval", "composites/site_train_0.jpg", "Yes")  # train says No
    candidates, reasons = _curate(corpus)
    assert candidates == [("train", "composites/site_train_1.jpg", "Yes")]
    assert reasons == {"label_conflict": 2}


def test_eval_keeps_a_composite_used_in_both_splits(tmp_path: Path) -> None:
    corpus = TinyCorpus(tmp_path, train=1, eval_=1)
    corpus.add_row("train", "composites/site_eval_0.jpg", "No")
    corpus.add_row("train", "composites/site_eval_0.jpg", "No")
    candidates, reasons = _curate(corpus)
    assert ("eval", "composites/site_eval_0.jpg", "No") in candidates
    assert all(source != "composites/site_eval_0.jpg" for split, source, _ in candidates if split == "train")
    assert reasons == {"cross_split": 2}


def test_quarantine_by_folder_by_bytes_and_by_content(tmp_path: Path) -> None:
    corpus = TinyCorpus(tmp_path, train=3, eval_=0)
    (tmp_path / "rejected_composites").mkdir()
    shutil.copy(tmp_path / "composites/site_train_1.jpg", tmp_path / "rejected_composites/bad.jpg")
    held = (tmp_path / "composites/site_train_2.jpg").read_bytes()
    (tmp_path / "rejected_composites/held.jpg").write_bytes(with_exif(held))  # same pixels, other bytes
    corpus.add_row("train", "rejected_composites/bad.jpg", "Yes")
    root = corpus.write()
    curated = curate(root, read_manifests(root).rows)
    assert [c.source for c in curated.candidates] == ["composites/site_train_0.jpg"]
    details = sorted(r.detail for r in curated.rejections)
    assert all(r.reason.value == "quarantined" for r in curated.rejections) and len(details) == 3
    assert (
        "composites/site_train_2.jpg has the same Sentinel-2 half as a file in rejected_composites/"
        in details
    )
    assert "composites/site_train_1.jpg has the same bytes as a file in rejected_composites/" in details


def test_missing_file_is_counted(tmp_path: Path) -> None:
    corpus = TinyCorpus(tmp_path, train=1, eval_=0)
    corpus.add_row("train", "composites/gone.jpg", "Yes")
    _, reasons = _curate(corpus)
    assert reasons == {"missing_file": 1}


# -- side files and sites from any name --------------------------------------------------------


def _bands_of(corpus: Path, source: str) -> Path:
    return corpus / "bands" / f"{Path(source).stem}.tif"


def _prepend_row(corpus: Path, split: str, image: str, label: str) -> None:
    manifest = corpus / "sft" / f"{split}.jsonl"
    row = {"messages": [{"role": "user", "content": [{"type": "image", "image": image}]}]}
    row["messages"].append({"role": "assistant", "content": [{"type": "text", "text": label}]})
    manifest.write_text(json.dumps(row) + "\n" + manifest.read_text())


def test_a_copy_without_side_files_listed_first_still_gets_the_bands_gates_and_site(
    small_corpus: Path, tmp_path: Path
) -> None:
    rejected = build(BuildConfig(small_corpus, tmp_path / "before", "1.0.0")).report
    cloudy = next(r.where for r in rejected.rejections if r.reason == "gate_s2_cloudy")
    published = next(t for t in rejected.tiles if t.bands is not None and t.split == "train")
    # A copy with a trailing byte of the cloudy composite, and a byte-identical copy of a published
    # one whose name sorts first (so it is the copy that is cut), each listed first, without bands.
    copies = {
        "composites/0_cloudy.jpg": with_trailing_byte((small_corpus / cloudy).read_bytes()),
        "composites/0_copy.jpg": (small_corpus / published.source).read_bytes(),
    }
    for copy, data in copies.items():
        (small_corpus / copy).write_bytes(data)
    _prepend_row(small_corpus, "train", "composites/0_cloudy.jpg", "No")
    _prepend_row(small_corpus, "train", "composites/0_copy.jpg", published.label)
    report = build(BuildConfig(small_corpus, tmp_path / "after", "1.0.0")).report
    again = [r for r in report.rejections if r.reason == "gate_s2_cloudy"]
    assert len(again) == 1 and again[0].where in (cloudy, "composites/0_cloudy.jpg")
    assert not any(t.source == "composites/0_cloudy.jpg" for t in report.tiles)
    tile = next(t for t in report.tiles if t.file_name == published.file_name)
    assert tile.source == "composites/0_copy.jpg" and tile.bands == published.bands
    assert tile.site == published.site and tile.site is not None
    assert tile.gates == published.gates
    assert report.sources == rejected.sources  # no "unrecorded" attribution


def test_copies_naming_different_side_files_or_sites_are_a_counted_conflict(tmp_path: Path) -> None:
    corpus = TinyCorpus(tmp_path, train=3, eval_=1)
    original = (tmp_path / "composites/site_train_0.jpg").read_bytes()
    corpus.add_file("composites/copy_0.jpg", with_comment(original), label="No")
    (tmp_path / "bands").mkdir()
    (tmp_path / "bands/site_train_0.tif").write_bytes(b"one scene")
    (tmp_path / "bands/copy_0.tif").write_bytes(b"another scene")
    # Identical side files under two names are one: no conflict for site_train_1's copy.
    corpus.add_file(
        "composites/copy_1.jpg",
        with_exif((tmp_path / "composites/site_train_1.jpg").read_bytes()),
        label="Yes",
    )
    (tmp_path / "clouds").mkdir()
    (tmp_path / "clouds/site_train_1.tif").write_bytes(b"same mask")
    (tmp_path / "clouds/copy_1.tif").write_bytes(b"same mask")
    # Two sites for one composite.
    corpus.add_file(
        "composites/copy_2.jpg", with_trailing_byte((tmp_path / "composites/site_train_2.jpg").read_bytes())
    )
    with (tmp_path / "sites.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["composite", "lat", "lon", "source_db", "source_id", "date"])
        writer.writerow(
            [
                "composites/site_train_2.jpg",
                "51.5",
                "-1.0",
                "Historic England AIM",
                "AIM0000001",
                "2020-06-01",
            ]
        )
        writer.writerow(
            ["composites/copy_2.jpg", "51.6", "-1.0", "Historic England AIM", "AIM0000002", "2020-06-01"]
        )
        writer.writerow(
            ["composites/site_train_1.jpg", "52.0", "0.1", "Historic England AIM", "AIM0000003", "2021-06-01"]
        )
    root = corpus.write()
    curated = curate(root, read_manifests(root).rows, sites=read_sites(root))
    conflicts = {r.where: r.detail for r in curated.rejections if r.reason.value == "side_conflict"}
    assert set(conflicts) == {"composites/copy_0.jpg", "composites/copy_2.jpg"}  # the copies that are cut
    assert (
        "raw bands with different content (bands/copy_0.tif, bands/site_train_0.tif)"
        in conflicts["composites/copy_0.jpg"]
    )
    assert "different sites.csv rows" in conflicts["composites/copy_2.jpg"]
    kept = next(c for c in curated.candidates if c.label == "Yes" and c.split == "train")
    assert kept.clouds in ("clouds/copy_1.tif", "clouds/site_train_1.tif")
    assert curated.sites[kept.source].source_id == "AIM0000003"  # found from the other name


def test_one_side_file_named_by_two_different_composites_is_a_conflict(tmp_path: Path) -> None:
    corpus = TinyCorpus(tmp_path, train=2, eval_=1)
    corpus.add_file("composites/north/x.jpg", jpeg_bytes(composite_pixels(301)), label="No")
    corpus.add_file("composites/south/x.jpg", jpeg_bytes(composite_pixels(302)), label="Yes")
    (tmp_path / "landcover").mkdir()
    (tmp_path / "landcover/x.tif").write_bytes(b"whose?")
    candidates, reasons = _curate(corpus)
    assert not any(c[1].endswith("/x.jpg") for c in candidates)
    assert reasons == {"side_conflict": 2}


# -- order --------------------------------------------------------------------------------------


def test_a_shuffled_manifest_gives_the_identical_release_and_gate_verdicts(
    small_corpus: Path, tmp_path: Path
) -> None:
    # Copies that differ in metadata (one with the other's side files) make the order matter if anything does.
    sources = sorted((small_corpus / "bands").glob("*.tif"))[:2]
    for n, bands in enumerate(sources):
        source = next((small_corpus / "composites").glob(f"{bands.stem}.*"))
        if source.suffix == ".jpg":
            copy = small_corpus / "composites" / f"aa_copy_{n}.jpg"
            copy.write_bytes(with_comment(source.read_bytes()))
            _prepend_row(small_corpus, "train", copy.relative_to(small_corpus).as_posix(), "No")
    first = build(BuildConfig(small_corpus, tmp_path / "one", "1.0.0"))
    for split in ("train", "eval"):
        manifest = small_corpus / "sft" / f"{split}.jsonl"
        lines = manifest.read_text().splitlines()
        random.Random(split).shuffle(lines)
        manifest.write_text("\n".join(reversed(lines)) + "\n")
    second = build(BuildConfig(small_corpus, tmp_path / "two", "1.0.0", workers=2))

    def files(release: Path) -> dict[str, bytes]:
        return {
            p.relative_to(release).as_posix(): p.read_bytes()
            for p in sorted(release.rglob("*"))
            if p.is_file()
        }

    assert files(first.release) == files(second.release)
    verdicts = {t.file_name: (t.source, t.gates, t.site) for t in first.report.tiles}
    assert verdicts == {t.file_name: (t.source, t.gates, t.site) for t in second.report.tiles}
    assert first.report.gates == second.report.gates
    assert first.report.counts == second.report.counts


def test_a_copy_stored_rotated_with_its_exif_orientation_is_the_same_composite(tmp_path: Path) -> None:
    """Identity is the composite as displayed: raw pixel order and orientation tag do not matter."""
    from tests.data.adversarial import oriented_png

    corpus = TinyCorpus(tmp_path, train=1, eval_=1)
    truth = composite_pixels(11)
    plain = io.BytesIO()
    Image.fromarray(truth).save(plain, format="PNG")
    corpus.add_file("composites/upright.png", plain.getvalue(), split="eval", label="Yes")
    corpus.add_file("composites/turned.png", oriented_png(truth, 6), split="train", label="Yes")
    root = corpus.write()
    curated = curate(root, read_manifests(root).rows)
    (held_out,) = [c for c in curated.candidates if c.split == "eval" and c.label == "Yes"]
    assert held_out.copies == ("composites/turned.png", "composites/upright.png")
    assert [r.reason.value for r in curated.rejections] == ["cross_split"]


def test_sites_csv_paths_are_normalised(tmp_path: Path) -> None:
    """``./composites/x.jpg``, ``composites//x.jpg`` and ``composites\\x.jpg`` name the composite
    that rows call ``composites/x.jpg``."""
    corpus = TinyCorpus(tmp_path)
    keys = ["./composites/site_train_0.jpg", "composites//site_train_1.jpg", "composites\\site_train_2.jpg"]
    with (tmp_path / "sites.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["composite", "lat", "lon", "source_db", "source_id", "date"])
        for n, key in enumerate(keys):
            writer.writerow([key, "51.5", f"-1.{n}", "Historic England AIM", f"AIM000000{n}", "2020-06-01"])
    root = corpus.write()
    curated = curate(root, read_manifests(root).rows, sites=read_sites(root))
    found = {source: site.source_id for source, site in curated.sites.items()}
    assert found == {f"composites/site_train_{n}.jpg": f"AIM000000{n}" for n in range(3)}


def test_copies_in_sibling_folders_are_ordered_folder_by_folder(tmp_path: Path) -> None:
    """Curation holds paths as text, but orders them as paths, part by part: ``a/`` before
    ``a-b/`` (as text, ``-`` sorts before ``/``). Byte-identical copies are then chosen and
    listed as they always were, so a rebuild names the same source."""
    corpus = TinyCorpus(tmp_path, train=1, eval_=0)
    data = (tmp_path / "composites/site_train_0.jpg").read_bytes()
    corpus.add_file("composites/a-b/c.jpg", data, split="train", label="No")
    corpus.add_file("composites/a/c.jpg", data, split="train", label="No")
    root = corpus.write()
    curated = curate(root, read_manifests(root).rows)
    (candidate,) = curated.candidates
    assert candidate.copies == ("composites/a/c.jpg", "composites/a-b/c.jpg", "composites/site_train_0.jpg")
    assert candidate.source == "composites/a/c.jpg"


def test_byte_identical_files_that_do_not_decode_are_each_rejected_as_unreadable(tmp_path: Path) -> None:
    """Two copies of one damaged file are no composite: they are not grouped as copies (which
    rejected them as a label or split conflict and named only one), each is rejected by the
    cut as unreadable, under its own name."""
    corpus = TinyCorpus(tmp_path, train=2, eval_=1)
    damaged = (tmp_path / "composites/site_train_0.jpg").read_bytes()[:600]  # cut off in its scan
    corpus.add_file("composites/broken_a.jpg", damaged, split="train", label="Yes")
    corpus.add_file("composites/broken_b.jpg", damaged, split="eval", label="No")
    corpus.add_row("train", "composites/broken_a.jpg", "Yes")  # the same file twice: a sibling row
    report = build(BuildConfig(corpus.write(), tmp_path / "out", "1.0.0")).report
    about = {(r.reason.value, r.where) for r in report.rejections if "broken" in r.where or ":4" in r.where}
    assert about == {
        ("unreadable_image", "composites/broken_a.jpg"),
        ("unreadable_image", "composites/broken_b.jpg"),
        ("sibling_duplicate", "sft/train.jsonl:4"),
    }
