"""The JPEG segment parser shared by scrub and audit."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from builder.ingest.scrub import JpegFormatError, metadata_segments, segments, strip_jpeg
from tests.data.factory import composite_pixels, jpeg_bytes


def test_strip_keeps_pixels_and_drops_every_app_and_comment() -> None:
    exif = Image.Exif()
    exif[0x010E] = "secret"
    data = jpeg_bytes(composite_pixels(1), exif=exif.tobytes(), comment=b"hi", icc_profile=b"\0" * 128)
    assert {"APP0", "APP1", "APP2", "COM"} <= set(metadata_segments(data))
    clean = strip_jpeg(data + b"trailing")
    assert metadata_segments(clean) == []
    with Image.open(io.BytesIO(data)) as a, Image.open(io.BytesIO(clean)) as b:
        assert a.tobytes() == b.tobytes()


def test_progressive_jpeg_walks_every_scan() -> None:
    data = jpeg_bytes(composite_pixels(2), progressive=True)
    names = [s.name for s in segments(data)]
    assert names.count("SOS") > 1 and names[-1] == "EOI"
    assert metadata_segments(strip_jpeg(data)) == []


@pytest.mark.parametrize("data", [b"", b"GIF89a", b"\xff\xd8\xff\xdb\x00\x43"])
def test_malformed_jpeg_raises_and_is_a_finding(data: bytes) -> None:
    with pytest.raises(JpegFormatError):
        list(segments(data))
    assert metadata_segments(data)[0].startswith("malformed JPEG")


def test_truncated_scan_is_malformed() -> None:
    data = jpeg_bytes(composite_pixels(3))
    with pytest.raises(JpegFormatError, match="truncated"):
        strip_jpeg(data[: len(data) // 2])
