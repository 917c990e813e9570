"""What the Space accepts: one rule for EXIF orientation, one for 16-bit input, the images it shows."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps

from builder.model.upload import (
    COMPOSITE,
    TILE,
    UploadError,
    figure,
    limit_message,
    read_upload,
    scored_view,
)
from tests.upload_files import exif_jpeg, png16, tiff16

RNG = np.random.default_rng(17)
TILE_RGB = RNG.integers(0, 255, (512, 256, 3), dtype=np.uint8)


def test_an_exif_rotated_tile_is_turned_upright_and_scored(tmp_path: Path) -> None:
    """Stored 512x256 with orientation 6 (rotate 90 CW to display): displayed, it is a 256x512 tile."""
    stored = np.ascontiguousarray(np.rot90(TILE_RGB, k=1))  # 256 tall, 512 wide
    path = exif_jpeg(tmp_path / "turned.jpg", stored, orientation=6)
    with Image.open(path) as image:
        expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    tile = read_upload(path)
    assert tile.rgb.shape == (512, 256, 3)
    np.testing.assert_array_equal(tile.rgb, expected)
    assert "turned upright by its EXIF orientation tag" in tile.note


def test_a_tile_that_exif_turns_sideways_is_refused_as_displayed(tmp_path: Path) -> None:
    path = exif_jpeg(tmp_path / "sideways.jpg", TILE_RGB, orientation=8)
    with pytest.raises(UploadError) as caught:
        read_upload(path)
    assert "The image is 512x256 (width x height) as displayed" in str(caught.value)
    assert "EXIF orientation tag turns the stored 256x512 pixels" in str(caught.value)


def test_an_upside_down_composite_is_turned_before_its_left_half_is_cut(tmp_path: Path) -> None:
    context = np.zeros_like(TILE_RGB)
    upright = np.hstack([TILE_RGB, context])
    path = exif_jpeg(tmp_path / "composite.jpg", np.ascontiguousarray(upright[::-1, ::-1]), orientation=3)
    with Image.open(path) as image:
        expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))[:, :256]
    tile = read_upload(path)
    assert tile.composite and tile.upload.shape == (512, 512, 3)
    np.testing.assert_array_equal(tile.rgb, expected)
    # The left half of the upright composite is the tile, not the black context.
    assert tile.rgb.mean() > 60


@pytest.mark.parametrize("kind", ["png", "tiff", "tiff-raw"])
def test_16_bit_input_gets_one_sentence_whatever_the_format(tmp_path: Path, kind: str) -> None:
    rgb16 = TILE_RGB.astype(np.uint16) * 257
    if kind == "png":
        path = png16(tmp_path / "tile16.png", rgb16)
    else:
        path = tiff16(tmp_path / "tile16.tif", rgb16, "deflate" if kind == "tiff" else "none")
    with pytest.raises(UploadError) as caught:
        read_upload(path)
    assert str(caught.value) == (
        "The image has 16 bits per channel. The model reads 8-bit tiles, as the dataset publishes "
        "them: save the tile as an 8-bit RGB JPEG or PNG."
    )


def test_16_bit_grey_is_refused_for_its_depth(tmp_path: Path) -> None:
    Image.fromarray(TILE_RGB[..., 0].astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    with pytest.raises(UploadError, match="16 bits per channel"):
        read_upload(tmp_path / "grey16.png")


def test_8_bit_tiff_and_webp_tiles_are_scored(tmp_path: Path) -> None:
    for fmt, suffix in (("TIFF", "tif"), ("WEBP", "webp")):
        path = tmp_path / f"tile.{suffix}"
        Image.fromarray(TILE_RGB).save(path, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        np.testing.assert_array_equal(read_upload(path).rgb, TILE_RGB)


def test_the_limit_sentence_names_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(RNG.bytes(3 * 2**19))
    with pytest.raises(UploadError) as caught:
        read_upload(path, max_bytes=2**20)
    assert str(caught.value) == limit_message(3 * 2**19, 2**20)
    assert "the upload limit is 1 MiB" in str(caught.value)


def test_the_page_shows_what_was_scored(tmp_path: Path) -> None:
    Image.fromarray(TILE_RGB).save(tmp_path / "tile.png")
    tile = read_upload(tmp_path / "tile.png")
    np.testing.assert_array_equal(np.asarray(scored_view(tile)), TILE_RGB)
    composite = np.hstack([TILE_RGB, np.full_like(TILE_RGB, 40)])
    Image.fromarray(composite).save(tmp_path / "composite.png")
    view = np.asarray(scored_view(read_upload(tmp_path / "composite.png"))).astype(int)
    assert view.shape == (*COMPOSITE[::-1], 3)
    # The ignored right half is washed out; the scored left half keeps its pixels inside the frame.
    assert view[100:, TILE[0] + 20 :].mean() > 150
    np.testing.assert_array_equal(view[100:500, 10:246], TILE_RGB[100:500, 10:246])
    # The page's one picture: what was scored beside the two proxy maps with colour bars.
    with Image.open(io.BytesIO(_png(figure(tile)))) as shown:
        assert shown.width > 3 * TILE[0] and shown.height >= TILE[1]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _composite_truth() -> np.ndarray:
    """A 512x512 composite as displayed: a tile on the left, a different context on the right."""
    context = np.random.default_rng(5).integers(0, 255, TILE_RGB.shape, dtype=np.uint8)
    return np.ascontiguousarray(np.hstack([TILE_RGB, context]))


def _encodings() -> dict[str, Any]:
    from tests.data import adversarial as adv

    cases: dict[str, Any] = {
        f"JPEG EXIF orientation {o}": (lambda t, o=o: adv.oriented_jpeg(t, o), ".jpg") for o in range(1, 9)
    }
    cases["PNG eXIf chunk, orientation 6"] = (lambda t: adv.oriented_png(t, 6), ".png")
    cases["PNG eXIf after the image data, orientation 8"] = (
        lambda t: adv.oriented_png(t, 8, after_idat=True),
        ".png",
    )
    cases["PNG raw profile text, orientation 5"] = (lambda t: adv.raw_profile_png(t, 5), ".png")
    cases["JPEG XMP tiff:Orientation 7"] = (lambda t: adv.xmp_oriented_jpeg(t, 7), ".jpg")
    cases["JPEG Adobe RGB (transform 0)"] = (lambda t: adv.adobe_rgb_jpeg(t), ".jpg")
    return cases


ENCODINGS = _encodings()


@pytest.mark.parametrize("case", sorted(ENCODINGS))
def test_the_space_scores_the_half_the_build_cuts_from_any_encoding(tmp_path: Path, case: str) -> None:
    """One orientation rule: an upload is turned exactly as ``builder.ingest.composite.open_displayed``
    turns a corpus composite (EXIF in JPEG APP1, PNG eXIf or raw-profile text, XMP), so the
    Space scores the left half that the build would publish."""
    from builder.domain import HALF_SIZE
    from builder.ingest.composite import open_displayed

    make, suffix = ENCODINGS[case]
    truth = _composite_truth()
    path = tmp_path / f"composite{suffix}"
    path.write_bytes(make(truth))
    build_half = np.asarray(open_displayed(path).convert("RGB").crop((0, 0, *HALF_SIZE)))
    tile = read_upload(path)
    assert tile.composite
    np.testing.assert_array_equal(tile.rgb, build_half)
    # And that half is the tile, whatever the file did (lossy JPEG: close, not equal).
    assert np.abs(tile.rgb.astype(int) - TILE_RGB.astype(int)).mean() < 4


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_an_orientation_outside_1_to_8_is_refused_as_the_build_counts_it(
    tmp_path: Path, orientation: int
) -> None:
    from builder.domain import Reason
    from builder.ingest.composite import Rejected, open_displayed

    path = exif_jpeg(tmp_path / "odd.jpg", _composite_truth(), orientation=orientation)
    with pytest.raises(Rejected) as rejected:
        open_displayed(path)
    assert rejected.value.reason is Reason.BAD_ORIENTATION
    with pytest.raises(UploadError) as caught:
        read_upload(path)
    assert str(caught.value).startswith(f"The image's EXIF orientation {orientation}; allowed 1 to 8")
    assert "\n" not in str(caught.value)


def test_a_damaged_jpeg_that_pillow_decodes_is_refused(tmp_path: Path) -> None:
    """Flipped bytes in the scan: Pillow decodes grey blocks without a word; the Space, like the
    build, refuses the file."""
    from tests.data.adversarial import corrupt_scan

    buffer = io.BytesIO()
    Image.fromarray(TILE_RGB).save(buffer, "JPEG", quality=95, subsampling=0)
    path = tmp_path / "damaged.jpg"
    path.write_bytes(corrupt_scan(buffer.getvalue()))
    with Image.open(path) as image:
        image.load()  # Pillow alone accepts it
    with pytest.raises(UploadError, match=r"^The JPEG is damaged \(decoder warning: "):
        read_upload(path)


def test_a_path_that_does_not_exist_is_an_upload_error(tmp_path: Path) -> None:
    """Gradio's HTTP API hands the app any path a caller sends: a missing one gets a sentence."""
    with pytest.raises(UploadError, match="This upload cannot be found"):
        read_upload(tmp_path / "never-uploaded.jpg")
