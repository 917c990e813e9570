"""What the Space accepts from the public, and the proxy maps it shows.

An upload is checked before any pixel is decoded: its size on disk, its format,
the pixel count its header promises (a decompression bomb costs nothing to
send), then its geometry. A 256x512 (width x height) Sentinel-2 tile is used as
it is; a 512x512 composite is cut to its left (Sentinel-2) half, and the right
half, the context image the public model never sees, is ignored. Everything
else gets one friendly sentence (:class:`UploadError`), never a traceback.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from builder.errors import CropmarkError
from builder.indices import ndre_proxy, ndvi_proxy

TILE = (256, 512)  # width, height of a published Sentinel-2 tile
COMPOSITE = (512, 512)  # width, height of a training composite (S2 left, context right)
MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 4096 * 4096  # refused from the header alone, before decoding
FORMATS = ("JPEG", "PNG", "WEBP", "TIFF")


class UploadError(CropmarkError, ValueError):
    """An upload the Space cannot score; the message is shown to the user as it is."""


@dataclass(frozen=True)
class Tile:
    """The Sentinel-2 tile to score (512 x 256 x 3 uint8) and a note on what was done to the upload."""

    rgb: np.ndarray
    note: str

    @property
    def image(self) -> Image.Image:
        return Image.fromarray(self.rgb)


def read_upload(path: str | Path, max_bytes: int = MAX_BYTES) -> Tile:
    """Check and open an upload; return its Sentinel-2 tile or raise :class:`UploadError`."""
    path = Path(path)
    size = os.path.getsize(path)
    if size == 0:
        raise UploadError("The file is empty. Upload a 256x512 Sentinel-2 tile (JPEG or PNG).")
    if size > max_bytes:
        raise UploadError(
            f"The file is {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB. "
            "A 256x512 tile is well under 1 MB."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise UploadError(
                    f"The image claims {width}x{height} pixels, far more than a 256x512 tile; "
                    "it was not opened."
                )
            if image.format not in FORMATS:
                raise UploadError(f"{image.format} images are not accepted; upload a JPEG or PNG tile.")
            if image.size not in (TILE, COMPOSITE):
                raise UploadError(
                    f"The image is {width}x{height} (width x height). Upload a 256x512 Sentinel-2 tile "
                    "from the dataset, or a 512x512 composite whose left half is the Sentinel-2 image."
                )
            if image.mode not in ("RGB", "RGBA", "P"):
                raise UploadError(
                    f"The image is {image.mode} (not RGB). The model reads a false-colour RGB tile: "
                    "R = B08, G = B04, B = B05."
                )
            image.load()
    except UploadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError("The image claims too many pixels to open safely.") from None
    except (OSError, SyntaxError, ValueError):  # Pillow's ways of saying "not an image" or "corrupt"
        raise UploadError("This file is not an image that can be read. Upload a JPEG or PNG tile.") from None
    rgb = np.asarray(image.convert("RGB"))
    if image.size == COMPOSITE:
        return Tile(
            np.ascontiguousarray(rgb[:, : TILE[0]]),
            "A 512x512 composite: the left (Sentinel-2) half was scored; the right half was ignored.",
        )
    return Tile(rgb, "A 256x512 Sentinel-2 tile.")


# A perceptually ordered brown-to-green ramp for vegetation proxies (low vigour -> high).
_RAMP = np.array(
    [
        [84, 48, 5],
        [191, 129, 45],
        [246, 232, 195],
        [199, 234, 229],
        [90, 180, 172],
        [1, 102, 94],
        [0, 60, 48],
    ],
    dtype=np.float64,
)


def _colour(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((np.nan_to_num(values, nan=lo) - lo) / max(hi - lo, 1e-6), 0, 1) * (len(_RAMP) - 1)
    i = np.minimum(t.astype(int), len(_RAMP) - 2)
    f = (t - i)[..., None]
    out: np.ndarray = ((1 - f) * _RAMP[i] + f * _RAMP[i + 1]).astype(np.uint8)
    return out


def proxy_maps(rgb: np.ndarray) -> Image.Image:
    """The NDVI- and NDRE-like proxy maps of a tile side by side, each with a colour bar.

    Each map is stretched between its own 2nd and 98th percentiles, printed on
    its bar: the proxies come from stretched 8-bit pixels, so they rank places
    within a tile and are not reflectance indices.
    """
    font = ImageFont.load_default(size=14)
    height, width = rgb.shape[:2]
    bar_w, gap, top = 16, 70, 26
    canvas = Image.new("RGB", (2 * (width + bar_w + gap) + 10, height + top + 10), "white")
    draw = ImageDraw.Draw(canvas)
    for k, (name, proxy) in enumerate((("NDVI-like", ndvi_proxy(rgb)), ("NDRE-like", ndre_proxy(rgb)))):
        finite = proxy[np.isfinite(proxy)]
        lo, hi = (float(v) for v in np.percentile(finite, (2, 98))) if finite.size else (0.0, 1.0)
        x0 = 10 + k * (width + bar_w + gap)
        canvas.paste(Image.fromarray(_colour(proxy, lo, hi)), (x0, top))
        ramp = np.linspace(hi, lo, height)[:, None].repeat(bar_w, axis=1)
        canvas.paste(Image.fromarray(_colour(ramp, lo, hi)), (x0 + width + 6, top))
        draw.text((x0, 4), name, fill="black", font=font)
        draw.text((x0 + width + bar_w + 9, top - 2), f"{hi:.2f}", fill="black", font=font)
        draw.text((x0 + width + bar_w + 9, top + height - 14), f"{lo:.2f}", fill="black", font=font)
    return canvas
