"""Cut: open a private 512x512 composite, check it, keep its Sentinel-2 half.

The left half (256 px wide x 512 px tall) is the Sentinel-2 false colour
(RGB = B08/B04/B05); the right half is the high-resolution context image, whose
terms forbid redistribution, and is never written anywhere.

JPEG sources are cut **losslessly**: the DCT coefficients of the left 32 block
columns are kept as they are (libjpeg-turbo through ``jpeglib``), so no
generation loss is added and, for 4:4:4 sources, the published pixels are
bit-identical to the left half the model trained on. With 4:2:0 chroma only the
last pixel column can differ, by the decoder's chroma upsampling at the new
edge. Other sources (PNG) are encoded once as JPEG quality 95 with 4:4:4 chroma
(Pillow's default 4:2:0 would halve the colour resolution of a false-colour
image: FACTS.md, Sentinel-2).
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from builder.records import Reason
from builder.scrub import strip_jpeg

COMPOSITE_SIZE = (512, 512)  # width, height of a private composite
HALF_SIZE = (256, 512)  # width, height of the published Sentinel-2 half
JPEG_QUALITY = 95
# A composite is 512x512; a header that promises more than 16x that is refused
# before any pixel is decoded (a decompression bomb costs nothing to send).
MAX_PIXELS = COMPOSITE_SIZE[0] * COMPOSITE_SIZE[1] * 16
_JPEGLIB_VERSION = "turbo210"


class Rejected(Exception):
    """A composite that cannot become a tile, with the counted reason."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Cut:
    """The published bytes of one tile and how they were made."""

    data: bytes
    mode: Literal["lossless", "reencoded"]


def _png_bit_depth(head: bytes) -> int | None:
    # IHDR is always the first chunk: 8-byte signature, 4 length, 4 type, 4 w, 4 h, depth.
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        return head[24]
    return None


def open_composite(path: Path, reduced: bool = False) -> Image.Image:
    """Open and decode a composite, or raise :class:`Rejected` with the reason.

    Refuses zero-byte, corrupt and truncated files, formats other than JPEG and
    PNG, geometry other than 512x512, anything but 8-bit RGB, and headers that
    promise more than :data:`MAX_PIXELS` pixels.

    Args:
        path: the composite.
        reduced: decode a JPEG at 1/8 scale. Every entropy-coded block is still
            read, so corrupt and truncated streams fail just the same, without
            the cost of the full inverse DCT (for callers that keep no pixels).
    """
    data = path.read_bytes()
    if not data:
        raise Rejected(Reason.UNREADABLE_IMAGE, "zero-byte file")
    depth = _png_bit_depth(data[:32])
    if depth is not None and depth != 8:
        raise Rejected(Reason.BAD_PIXEL_FORMAT, f"{depth}-bit PNG; expected 8-bit RGB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise Rejected(
                    Reason.DECOMPRESSION_BOMB,
                    f"header promises {width}x{height} pixels; a composite is 512x512",
                )
            if image.format not in ("JPEG", "PNG"):
                raise Rejected(Reason.UNREADABLE_IMAGE, f"{image.format} file; expected JPEG or PNG")
            if image.size != COMPOSITE_SIZE:
                raise Rejected(Reason.BAD_GEOMETRY, f"{width}x{height} (w x h); expected a 512x512 composite")
            if image.mode != "RGB":
                raise Rejected(Reason.BAD_PIXEL_FORMAT, f"mode {image.mode}; expected 8-bit RGB")
            if reduced and image.format == "JPEG":
                image.draft("RGB", (width // 8, height // 8))
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Rejected(Reason.DECOMPRESSION_BOMB, str(exc).split(".")[0]) from None
    except Rejected:
        raise
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's ways of saying "corrupt"
        raise Rejected(Reason.UNREADABLE_IMAGE, f"cannot decode: {exc}") from None
    return image


def _lossless_left_half(path: Path) -> bytes | None:
    """Crop the left half in the DCT domain; None when the JPEG does not allow it."""
    import jpeglib  # imported here: only the JPEG path needs libjpeg

    with jpeglib.version(_JPEGLIB_VERSION):
        dct = jpeglib.read_dct(str(path))
        if dct.K is not None or dct.Cb is None or dct.Cr is None:
            return None
        factors = np.asarray(dct.samp_factor)  # rows: Y, Cb, Cr; columns: (v, h)
        h_max = int(factors[:, 1].max())
        mcu_width = 8 * h_max
        if HALF_SIZE[0] % mcu_width:
            return None  # the cut would split an MCU: not losslessly possible
        for name, h in zip(("Y", "Cb", "Cr"), factors[:, 1], strict=True):
            blocks = HALF_SIZE[0] * int(h) // h_max // 8
            setattr(dct, name, np.ascontiguousarray(getattr(dct, name)[:, :blocks]))
        dct.width = HALF_SIZE[0]
        fd, tmp = tempfile.mkstemp(suffix=".jpg")
        os.close(fd)
        try:
            dct.write_dct(tmp)
            return Path(tmp).read_bytes()
        finally:
            os.unlink(tmp)


def encode_jpeg(image: Image.Image) -> bytes:
    """Encode pixels as the release's JPEG: quality 95, 4:4:4 chroma, no metadata."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False)
    return buffer.getvalue()


def cut_s2_half(path: Path) -> Cut:
    """Cut the published Sentinel-2 half of the composite at ``path``.

    Raises:
        Rejected: the composite cannot be published (the reason is counted).
    """
    image = open_composite(path, reduced=True)
    if image.format == "JPEG":
        try:
            data = _lossless_left_half(path)
        except OSError:
            data = None  # libjpeg refused what Pillow read: fall back to one re-encode
        if data is not None:
            return Cut(strip_jpeg(data), "lossless")
        image = open_composite(path)  # full resolution for the re-encode
    return Cut(strip_jpeg(encode_jpeg(image.crop((0, 0, *HALF_SIZE)))), "reencoded")
