"""Every bad input of the issue: a counted rejection with its reason, never a traceback.

Each case adds one bad row or file to a tiny valid corpus; the build must still
succeed with the good tiles, count the bad one under its reason, and publish
nothing of it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builder.release.build import BuildConfig, build
from tests.data.factory import TinyCorpus, composite_pixels, jpeg_bytes, png16_rgb, png_bomb


def _build(corpus: TinyCorpus, out: Path) -> dict[str, dict[str, int]]:
    result = build(BuildConfig(corpus.write(), out, "1.0.0"))
    assert result.report.counts.tiles == {"train": 4, "eval": 2}  # the good tiles survive
    rejected: dict[str, dict[str, int]] = result.report.counts.rejected
    return rejected


def _image(mode: str, size: tuple[int, int], fmt: str) -> bytes:
    import io

    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, format=fmt)
    return buf.getvalue()


FILES: dict[str, tuple[Callable[[], bytes], str]] = {
    "corrupt.jpg": (lambda: b"\xff\xd8\xff\xe0" + bytes(range(256)) * 20, "unreadable_image"),
    "truncated.jpg": (lambda: jpeg_bytes(composite_pixels(1))[:20_000], "unreadable_image"),
    "empty.jpg": (lambda: b"", "unreadable_image"),
    "wide.jpg": (lambda: jpeg_bytes(composite_pixels(2)[:256]), "bad_geometry"),  # 512 wide x 256 tall
    "big.jpg": (lambda: _image("RGB", (1024, 1024), "JPEG"), "bad_geometry"),
    "sixteen.png": (lambda: png16_rgb(3), "bad_pixel_format"),
    "grey.png": (lambda: _image("L", (512, 512), "PNG"), "bad_pixel_format"),
    "grey.jpg": (lambda: _image("L", (512, 512), "JPEG"), "bad_pixel_format"),
    "cmyk.jpg": (lambda: _image("CMYK", (512, 512), "JPEG"), "bad_pixel_format"),
    "rgba.png": (lambda: _image("RGBA", (512, 512), "PNG"), "bad_pixel_format"),
    "bomb.png": (png_bomb, "decompression_bomb"),
    "text.jpg": (lambda: b"not an image at all\n", "unreadable_image"),
    "gif.jpg": (lambda: _image("RGB", (512, 512), "GIF"), "unreadable_image"),
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_bad_composite_is_a_counted_rejection(name: str, tmp_path: Path) -> None:
    make, reason = FILES[name]
    corpus = TinyCorpus(tmp_path / "corpus")
    corpus.add_file(f"composites/{name}", make())
    rejected = _build(corpus, tmp_path / "out")
    assert rejected == {reason: {"train": 1, "eval": 0}}


ROWS: dict[str, tuple[str, str]] = {
    "not json": ("{this is not json", "unreadable_row"),
    "json but not a row": ('["a", "list"]', "unreadable_row"),
    "no assistant": (
        '{"messages": [{"role": "user", "content": [{"type": "image", "image": "composites/site_train_0.jpg"}]}]}',
        "no_answer",
    ),
    "no image": (
        '{"messages": [{"role": "assistant", "content": [{"type": "text", "text": "Yes"}]}]}',
        "no_image",
    ),
}


@pytest.mark.parametrize("case", sorted(ROWS))
def test_unreadable_row_is_counted_with_its_line(case: str, tmp_path: Path) -> None:
    line, reason = ROWS[case]
    corpus = TinyCorpus(tmp_path / "corpus")
    corpus.add_raw_line("train", line)
    result = build(BuildConfig(corpus.write(), tmp_path / "out", "1.0.0"))
    assert result.report.counts.rejected == {reason: {"train": 1, "eval": 0}}
    (rejection,) = result.report.rejections
    assert rejection.where == "sft/train.jsonl:5"  # the 4 good rows come first


def test_non_utf8_line_is_counted(tmp_path: Path) -> None:
    corpus = TinyCorpus(tmp_path / "corpus")
    corpus.rows["eval"].append(b'{"messages": "caf\xe9"}')  # type: ignore[arg-type]
    result = build(BuildConfig(corpus.write(), tmp_path / "out", "1.0.0"))
    (rejection,) = result.report.rejections
    assert rejection.reason == "unreadable_row" and "UTF-8" in rejection.detail
    assert rejection.where == "sft/eval.jsonl:3"


@pytest.mark.parametrize("label", ["yes", "YES", "Maybe", '=HYPERLINK("http://x","Yes")', "", "Yes No"])
def test_label_must_be_exactly_yes_or_no(label: str, tmp_path: Path) -> None:
    corpus = TinyCorpus(tmp_path / "corpus")
    corpus.add_row("train", "composites/site_train_0.jpg", label)
    rejected = _build(corpus, tmp_path / "out")
    reason = "no_answer" if not label else "bad_label"
    assert rejected == {reason: {"train": 1, "eval": 0}}


@pytest.mark.parametrize(
    "path",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "composites/../../outside.jpg",
        "C:/corpus/x.jpg",
        "composites/link.jpg",
    ],
)
def test_paths_that_escape_the_corpus_are_refused(path: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(jpeg_bytes(composite_pixels(9)))
    corpus = TinyCorpus(tmp_path / "corpus")
    os.symlink(outside, tmp_path / "corpus" / "composites" / "link.jpg")
    corpus.add_row("train", path, "Yes")
    rejected = _build(corpus, tmp_path / "out")
    assert rejected == {"unsafe_path": {"train": 1, "eval": 0}}


def test_symlink_inside_the_corpus_is_followed(tmp_path: Path) -> None:
    corpus = TinyCorpus(tmp_path / "corpus")
    os.symlink("site_train_0.jpg", tmp_path / "corpus" / "composites" / "alias.jpg")
    corpus.add_row("train", "composites/alias.jpg", "No")
    # alias of a composite already used with the same label: a sibling, not a new tile
    assert _build(corpus, tmp_path / "out") == {"sibling_duplicate": {"train": 1, "eval": 0}}


def test_csv_manifest_is_read_like_jsonl(tmp_path: Path) -> None:
    corpus = TinyCorpus(tmp_path / "corpus").write()
    (corpus / "sft" / "train.jsonl").unlink()
    rows = ["image,label"] + [f"composites/site_train_{i}.jpg,{'Yes' if i % 2 else 'No'}" for i in range(4)]
    rows.append("composites/site_train_0.jpg,=cmd|' /C calc'!A0")
    (corpus / "sft" / "train.csv").write_text("\n".join(rows) + "\n")
    result = build(BuildConfig(corpus, tmp_path / "out", "1.0.0"))
    assert result.report.counts.tiles == {"train": 4, "eval": 2}
    assert result.report.counts.rejected == {"bad_label": {"train": 1, "eval": 0}}


def test_published_image_has_no_metadata_even_when_the_source_has(tmp_path: Path) -> None:
    from builder.ingest.scrub import metadata_segments

    exif = Image.Exif()
    exif[0x010E] = "Site AIM0012345 at 52.123456,-1.234567 on 2021-06-14"  # ImageDescription
    corpus = TinyCorpus(tmp_path / "corpus", train=0)
    pixels = composite_pixels(5)
    for i, extra in enumerate(
        [{"exif": exif.tobytes()}, {"comment": b"52.1234 -1.2345"}, {"icc_profile": b"\0" * 200}, {}]
    ):
        corpus.add_file(
            f"composites/meta_{i}.jpg", jpeg_bytes(np.roll(pixels, i, axis=0), **extra), label="Yes"
        )
    result = build(BuildConfig(corpus.write(), tmp_path / "out", "1.0.0"))
    for path in (result.release / "data").rglob("*.jpg"):
        assert metadata_segments(path.read_bytes()) == []
