"""The cut sees the composite as displayed: EXIF orientation, colour transforms, strict decoding."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builder.domain import HALF_SIZE, Reason
from builder.ingest.composite import Rejected, cut_s2_half, open_displayed
from tests.data.adversarial import (
    INVERSE,
    adobe_rgb_jpeg,
    corrupt_scan,
    oriented_jpeg,
    oriented_png,
    raw_profile_png,
    xmp_oriented_jpeg,
)
from tests.data.factory import composite_pixels, jpeg_bytes


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def _assert_left_half(tile: bytes, displayed: np.ndarray) -> None:
    """The tile is the left half of ``displayed`` (q95 re-encode noise only), never the right."""
    pixels = _pixels(tile)
    assert pixels.shape == (HALF_SIZE[1], HALF_SIZE[0], 3)
    to_left = np.abs(pixels - displayed[:, :256]).mean()
    to_right = np.abs(pixels - displayed[:, 256:]).mean()
    assert to_left < 3.0, to_left
    assert to_right > 20 * max(to_left, 1.0), (to_left, to_right)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_tile_is_the_left_half_of_the_displayed_composite(orientation: int, tmp_path: Path) -> None:
    truth = composite_pixels(40 + orientation)  # what a viewer must show
    path = tmp_path / "c.jpg"
    path.write_bytes(oriented_jpeg(truth, orientation))
    cut = cut_s2_half(path)
    _assert_left_half(cut.data, truth.astype(np.int16))
    # The model's own loader shows the same image (transformers calls exif_transpose).
    load_image = pytest.importorskip("transformers.image_utils").load_image
    shown = np.asarray(load_image(str(path)), dtype=np.int16)
    assert np.abs(shown - truth).mean() < 4.0  # one q95 encode of a textured composite
    assert np.array_equal(np.asarray(open_displayed(path), dtype=np.int16), shown)
    if orientation == 1:
        assert cut.mode == "lossless"
    else:
        assert cut.mode == "reencoded" and cut.detail == f"EXIF orientation {orientation} applied"


@pytest.mark.parametrize("orientation", [3, 6, 8])
@pytest.mark.parametrize("where", ["before IDAT", "after IDAT"])
def test_png_exif_chunk_orientation_is_applied(orientation: int, where: str, tmp_path: Path) -> None:
    truth = composite_pixels(60 + orientation)
    path = tmp_path / "c.png"
    path.write_bytes(oriented_png(truth, orientation, after_idat=where == "after IDAT"))
    cut = cut_s2_half(path)
    _assert_left_half(cut.data, truth.astype(np.int16))
    assert np.array_equal(np.asarray(open_displayed(path)), truth)  # PNG: lossless, exactly


def test_other_orientation_carriers_are_applied_as_pillow_does(tmp_path: Path) -> None:
    truth = composite_pixels(70)
    for name, data in (
        ("raw-profile.png", raw_profile_png(truth, 8)),  # ImageMagick's text chunk
        ("xmp.jpg", xmp_oriented_jpeg(truth, 6)),  # XMP tiff:Orientation, no EXIF
    ):
        path = tmp_path / name
        path.write_bytes(data)
        _assert_left_half(cut_s2_half(path).data, truth.astype(np.int16))


@pytest.mark.parametrize("value", [0, 9, 255])
def test_orientation_outside_1_to_8_is_a_counted_rejection(value: int, tmp_path: Path) -> None:
    path = tmp_path / "c.jpg"
    path.write_bytes(oriented_jpeg(composite_pixels(80), value, transpose=False))
    with pytest.raises(Rejected) as caught:
        cut_s2_half(path)
    assert caught.value.reason is Reason.BAD_ORIENTATION
    assert f"orientation {value}" in caught.value.detail


def test_orientation_is_applied_before_the_geometry_check(tmp_path: Path) -> None:
    raw = composite_pixels(81)[:256]  # 512 wide x 256 tall: displayed 256 x 512 with orientation 6
    path = tmp_path / "c.jpg"
    path.write_bytes(oriented_jpeg(raw, 6, transpose=False))
    with pytest.raises(Rejected) as caught:
        cut_s2_half(path)
    assert caught.value.reason is Reason.BAD_GEOMETRY
    assert "256x512 (w x h) (orientation 6 turns 512x256)" in caught.value.detail


def test_adobe_rgb_jpeg_is_reencoded_in_its_true_colours(tmp_path: Path) -> None:
    truth = composite_pixels(82)
    path = tmp_path / "c.jpg"
    path.write_bytes(adobe_rgb_jpeg(truth))
    cut = cut_s2_half(path)
    assert cut.mode == "reencoded"
    assert cut.detail == "colour space signalled by Adobe APP14 transform 0, not plainly YCbCr"
    _assert_left_half(cut.data, truth.astype(np.int16))


def test_ycbcr_jpeg_with_an_adobe_segment_stays_lossless(tmp_path: Path) -> None:
    truth = composite_pixels(83)
    path = tmp_path / "c.jpg"
    buffer = io.BytesIO()
    Image.fromarray(truth).save(buffer, format="JPEG", quality=95, subsampling=0)
    data = buffer.getvalue()
    adobe = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x01"  # transform 1: YCbCr
    path.write_bytes(data[:2] + adobe + data[2:])
    cut = cut_s2_half(path)
    assert cut.mode == "lossless"
    with Image.open(path) as image:
        assert np.array_equal(_pixels(cut.data), np.asarray(image.convert("RGB"), dtype=np.int16)[:, :256])


def test_corrupt_scan_data_is_refused_not_published(tmp_path: Path) -> None:
    data = corrupt_scan(jpeg_bytes(composite_pixels(84)))
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # Pillow alone decodes it silently, damaged
    path = tmp_path / "c.jpg"
    path.write_bytes(data)
    with pytest.raises(Rejected) as caught:
        cut_s2_half(path)
    assert caught.value.reason is Reason.UNREADABLE_IMAGE
    assert caught.value.detail.startswith("decoder warning: Corrupt JPEG data")


def test_gates_see_the_displayed_context_half(tmp_path: Path) -> None:
    """A composite whose displayed right half is black fails gate 3, whatever its raw order."""
    from builder.quality import gates, sides

    truth = composite_pixels(85)
    truth[:, 256:] = 0
    path = tmp_path / "c.jpg"
    path.write_bytes(oriented_jpeg(truth, 3))  # raw order: the black half is on the left
    cut = cut_s2_half(path)
    result = sides.evaluate_corpus_tile(tmp_path, "c.jpg", cut.data, gates.GateConfig(), sides.Sides())
    context = next(r for r in result.results if r.gate == "context_available")
    assert context.evaluated and context.passed is False


def test_inverse_table_undoes_each_orientation() -> None:
    from builder.ingest.composite import TRANSPOSE

    image = Image.fromarray(composite_pixels(86))
    for orientation, method in TRANSPOSE.items():
        assert image.transpose(INVERSE[orientation]).transpose(method).tobytes() == image.tobytes()


def _crop_through_files(data: bytes) -> bytes:
    """The lossless crop as the build made it before it worked in memory: jpeglib reading the
    source from a file, writing the half through that source into another file. The release's
    tiles must stay byte-identical to this (only the segments the scrub keeps count)."""
    import os
    import tempfile

    import jpeglib

    fd, source = tempfile.mkstemp(suffix=".jpg")
    os.write(fd, data)
    os.close(fd)
    fd, target = tempfile.mkstemp(suffix=".jpg")
    os.close(fd)
    try:
        with jpeglib.version("turbo210"):
            dct = jpeglib.read_dct(source)
            factors = np.asarray(dct.samp_factor)
            h_max = int(factors[:, 1].max())
            for name, h in zip(("Y", "Cb", "Cr"), factors[:, 1], strict=True):
                blocks = HALF_SIZE[0] * int(h) // h_max // 8
                setattr(dct, name, np.ascontiguousarray(getattr(dct, name)[:, :blocks]))
            dct.width = HALF_SIZE[0]
            dct.write_dct(target)
        return Path(target).read_bytes()
    finally:
        os.unlink(source)
        os.unlink(target)


def _jpegs() -> dict[str, bytes]:
    """Composites in every chroma sampling the strict decoder accepts, and the encoder options
    that change how a JPEG is coded (progressive, optimised Huffman tables, restart markers,
    own quantisation tables, extreme qualities)."""
    import simplejpeg

    pixels = composite_pixels(seed=5)
    found = {
        f"simplejpeg {sub}": simplejpeg.encode_jpeg(pixels, 90, colorsubsampling=sub)
        for sub in ("444", "422", "420", "440", "411")
    }
    options: list[dict[str, object]] = [
        {},
        {"progressive": True},
        {"optimize": True},
        {"quality": 100},
        {"quality": 30},
        {"restart_marker_blocks": 7},
        {"qtables": [list(range(1, 65)), [2] * 64, [3] * 64]},
    ]
    for sub in (0, 1, 2):
        for kw in options:
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, "JPEG", subsampling=sub, **kw)
            found[f"pillow subsampling {sub} {sorted(kw)}"] = buffer.getvalue()
    return found


@pytest.mark.parametrize("name", sorted(_jpegs()))
def test_the_in_memory_crop_publishes_the_same_bytes_as_the_crop_through_files(
    name: str, tmp_path: Path
) -> None:
    from builder.ingest.scrub import strip_jpeg

    data = _jpegs()[name]
    path = tmp_path / "c.jpg"
    path.write_bytes(data)
    cut = cut_s2_half(path)
    assert cut.mode == "lossless", cut.detail  # 8 to 32 px MCUs all divide the 256 px cut
    assert cut.data == strip_jpeg(_crop_through_files(data))


@pytest.mark.parametrize("name", sorted(_jpegs()))
def test_the_direct_crop_writes_no_file_and_matches_jpeglibs_public_api(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crop calls jpeglib's C library on memory files: no temporary file is made (the
    public API makes two), and the bytes are those of the public API, which stays the path
    for any other jpeglib version."""
    import tempfile

    from builder.ingest import composite

    data = _jpegs()[name]
    assert composite._jpeglib_c() is not None  # the pinned jpeglib: the direct path runs
    expected = composite._lossless_left_half_public(data)
    assert isinstance(expected, bytes)
    empty = tmp_path / "tmp"
    empty.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(empty))

    def no_temporary_file(*args: object, **kwargs: object) -> None:
        raise AssertionError("the crop made a temporary file")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_temporary_file)
    monkeypatch.setattr(tempfile, "mkstemp", no_temporary_file)
    assert composite._lossless_left_half(data) == expected
    assert not any(empty.iterdir())
    monkeypatch.undo()
    monkeypatch.setattr(composite, "_DIRECT_JPEGLIB", "0.0.0")  # another jpeglib: public API
    assert composite._jpeglib_c() is None
    assert composite._lossless_left_half(data) == expected


def test_the_cut_skips_the_strict_decode_only_for_the_bytes_curation_checked(
    tmp_path: Path,
) -> None:
    """The worker skips the strict entropy decode for the very bytes curation decoded
    strictly; a file replaced since (here by a damaged one) is not cut at all (the build
    stops: tests/test_release.py), and a file curation could not decode is decoded strictly."""
    import hashlib

    from builder.quality import sides, thresholds
    from builder.release import build as release
    from builder.release.curate import identify
    from builder.release.tile import CHANGED

    good = jpeg_bytes(composite_pixels(84))
    path = tmp_path / "composites" / "c.jpg"
    path.parent.mkdir()
    path.write_bytes(good)
    checked = identify(str(path))
    assert checked.content is not None and checked.sha256 == hashlib.sha256(good).hexdigest()
    task = (str(tmp_path), "composites/c.jpg", thresholds.GateConfig(), sides.Sides(None, None, None), "t")
    assert release.tile_task((*task, checked.sha256, True)).cut is not None
    path.write_bytes(corrupt_scan(good))  # replaced after curation
    outcome = release.tile_task((*task, checked.sha256, True))
    assert outcome.cut is None and outcome.reason == CHANGED
    damaged = hashlib.sha256(corrupt_scan(good)).hexdigest()
    for read in (damaged, None):  # curation read these bytes and could not decode them
        outcome = release.tile_task((*task, read, False))
        assert outcome.cut is None and outcome.reason == Reason.UNREADABLE_IMAGE.value
        assert outcome.detail.startswith("decoder warning: Corrupt JPEG data")


def test_a_non_image_is_rejected_with_the_same_words_in_every_process() -> None:
    """Pillow's message names its stream's memory address; the counted reason must not (the
    private report is the same bytes on every rebuild and every engine)."""
    from builder.ingest.composite import open_checked

    details = set()
    for data in (b"hello", b"hello", bytes(100)):
        with pytest.raises(Rejected) as caught:
            open_checked(data)
        assert caught.value.reason == Reason.UNREADABLE_IMAGE
        assert "0x" not in caught.value.detail and "object at" not in caught.value.detail
        details.add(caught.value.detail)
    assert details == {"cannot decode: cannot identify image file"}
