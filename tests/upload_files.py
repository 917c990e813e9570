"""Upload files the project's generators do not make: EXIF-rotated JPEGs, 16-bit PNGs and TIFFs."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def exif_jpeg(path: Path, rgb: np.ndarray, orientation: int) -> Path:
    """A JPEG whose pixels are stored as given, with an EXIF orientation tag."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(path, "JPEG", quality=95, subsampling=0, exif=exif.tobytes())
    return path


def png16(path: Path, rgb16: np.ndarray) -> Path:
    """A 16-bit RGB PNG written chunk by chunk (Pillow writes no 48-bit PNG)."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


def tiff16(path: Path, rgb16: np.ndarray, compress: str = "deflate") -> Path:
    """A 16-bit RGB TIFF as GDAL writes one (rasterio), deflate-compressed by default."""
    import warnings

    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=rgb16.shape[1],
            height=rgb16.shape[0],
            count=3,
            dtype="uint16",
            photometric="RGB",
            compress=compress,
        ) as out:
            out.write(np.moveaxis(rgb16, -1, 0))
    return path
