"""What the Space accepts from the public, and the images it shows back.

An upload is checked before any pixel is decoded: its size on disk, its format,
the pixel count its header promises (a decompression bomb costs nothing to
send), its bit depth, then its geometry *as displayed*. A 256x512 (width x
height) Sentinel-2 tile is used as it is; a 512x512 composite is cut to its left
(Sentinel-2) half, and the right half, the context image the public model never
sees, is ignored. Everything else gets one friendly sentence
(:class:`UploadError`), never a traceback.

Two rules make the answer the same for the same picture, whatever the file:

- **EXIF orientation is applied**: the displayed image is the truth, as in every
  viewer and in transformers' ``load_image`` (``PIL.ImageOps.exif_transpose``),
  by the cut's own rule (``builder.ingest.composite.orientation_of`` and
  ``as_displayed``, as ``open_displayed`` applies them): a tile stored 512x256
  with an orientation tag that turns it upright is a 256x512 tile; a composite
  is turned upright before its left half is cut, so the Space scores the half
  the build would publish; an orientation outside 1-8, which the build counts
  as ``bad_orientation``, is refused.
- **A damaged JPEG is refused**, as the build refuses it: the entropy-coded data
  is decoded with libjpeg-turbo's warnings as errors (``composite.strict_jpeg``),
  where Pillow would quietly score grey blocks.
- **8 bits per channel only**: the released tiles are 8-bit, and a 16-bit file
  is refused with the same sentence whether it is a PNG or a TIFF (Pillow would
  otherwise read a 16-bit RGB PNG from its high bytes and fail on some TIFFs).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from builder.errors import CropmarkError
from builder.ingest.composite import Rejected, as_displayed, orientation_of, strict_jpeg
from builder.raster.indices import ndre_proxy, ndvi_proxy

TILE = (256, 512)  # width, height of a published Sentinel-2 tile
COMPOSITE = (512, 512)  # width, height of a training composite (S2 left, context right)
MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 4096 * 4096  # refused from the header alone, before decoding
FORMATS = ("JPEG", "PNG", "WEBP", "TIFF")
_BITS_PER_SAMPLE = 258  # TIFF tag
_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


class UploadError(CropmarkError, ValueError):
    """An upload the Space cannot score; the message is shown to the user as it is."""


def limit_message(size: int, max_bytes: int) -> str:
    """The one sentence for a file over the upload limit (the app's check and Gradio's agree on it)."""
    return (
        f"The file is {size / 2**20:.1f} MiB; the upload limit is {max_bytes / 2**20:g} MiB. "
        "A 256x512 tile is well under 1 MiB."
    )


@dataclass(frozen=True)
class Tile:
    """The Sentinel-2 tile to score (512 x 256 x 3 uint8), what was done to the upload, and what it was.

    Attributes:
        rgb: the tile the models score.
        note: one sentence on what was done to the upload.
        upload: the whole upload as displayed (a composite with both halves), for the page.
        composite: True when ``upload`` is a composite whose left half was cut.
    """

    rgb: np.ndarray
    note: str
    upload: np.ndarray
    composite: bool = False

    @property
    def image(self) -> Image.Image:
        return Image.fromarray(self.rgb)


def _bit_depth(image: Image.Image, head: bytes) -> int:
    """Bits per channel from the header: PNG's IHDR, TIFF's BitsPerSample, or the mode."""
    if image.format == "PNG" and head[12:16] == b"IHDR":
        return head[24]
    if image.format == "TIFF":
        bits = getattr(image, "tag_v2", {}).get(_BITS_PER_SAMPLE)
        if bits:
            return max(int(b) for b in (bits if isinstance(bits, tuple) else (bits,)))
    return 16 if image.mode in _HIGH_DEPTH_MODES else 8


def read_upload(path: str | Path, max_bytes: int = MAX_BYTES) -> Tile:
    """Check and open an upload; return its Sentinel-2 tile or raise :class:`UploadError`."""
    path = Path(path)
    try:
        size = os.path.getsize(path)
        with path.open("rb") as handle:
            head = handle.read(32)
    except OSError:  # a path no upload returned (Gradio's HTTP API takes any path it is given)
        raise UploadError(
            "This upload cannot be found: upload the file first and pass the path the upload returned."
        ) from None
    if size == 0:
        raise UploadError("The file is empty. Upload a 256x512 Sentinel-2 tile (JPEG or PNG).")
    if size > max_bytes:
        raise UploadError(limit_message(size, max_bytes))
    try:
        with warnings.catch_warnings(), contextlib.ExitStack() as stack:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = stack.enter_context(Image.open(path))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise UploadError(
                    f"The image claims {width}x{height} pixels, far more than a 256x512 tile; "
                    "it was not opened."
                )
            if image.format not in FORMATS:
                raise UploadError(f"{image.format} images are not accepted; upload a JPEG or PNG tile.")
            depth = _bit_depth(image, head)
            if depth > 8:
                raise UploadError(
                    f"The image has {depth} bits per channel. The model reads 8-bit tiles, as the dataset "
                    "publishes them: save the tile as an 8-bit RGB JPEG or PNG."
                )
            try:
                orientation = orientation_of(image)  # values 5 to 8 swap width and height
            except Rejected as exc:
                raise UploadError(
                    f"The image's {exc.detail}: no viewer agrees on how to show it. Save it again "
                    "without the tag, or upload the tile as the dataset publishes it."
                ) from None
            shown = (height, width) if orientation >= 5 else (width, height)
            if shown not in (TILE, COMPOSITE):
                turned = (
                    f" (its EXIF orientation tag turns the stored {width}x{height} pixels)"
                    if shown != (width, height)
                    else ""
                )
                raise UploadError(
                    f"The image is {shown[0]}x{shown[1]} (width x height) as displayed{turned}. Upload a "
                    "256x512 Sentinel-2 tile from the dataset, or a 512x512 composite whose left half is "
                    "the Sentinel-2 image."
                )
            if image.mode not in ("RGB", "RGBA", "P"):
                raise UploadError(
                    f"The image is {image.mode} (not RGB). The model reads a false-colour RGB tile: "
                    "R = B08, G = B04, B = B05."
                )
            if image.format == "JPEG":
                try:
                    strict_jpeg(path.read_bytes())
                except Rejected as exc:
                    raise UploadError(
                        f"The JPEG is damaged ({exc.detail}); its pixels cannot be trusted. "
                        "Upload an undamaged copy."
                    ) from None
            image.load()
            rgb = np.asarray(as_displayed(image, orientation).convert("RGB"))
    except UploadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError("The image claims too many pixels to open safely.") from None
    except (OSError, SyntaxError, ValueError):  # Pillow's ways of saying "not an image" or "corrupt"
        raise UploadError("This file is not an image that can be read. Upload a JPEG or PNG tile.") from None
    turned = " It was turned upright by its EXIF orientation tag." if orientation != 1 else ""
    if rgb.shape[:2] == COMPOSITE[::-1]:
        return Tile(
            np.ascontiguousarray(rgb[:, : TILE[0]]),
            "A 512x512 composite: the left (Sentinel-2) half was scored; the right half was ignored."
            + turned,
            rgb,
            composite=True,
        )
    return Tile(rgb, "A 256x512 Sentinel-2 tile." + turned, rgb)


def scored_view(tile: Tile) -> Image.Image:
    """The upload as displayed; for a composite, the ignored right half is dimmed and both halves named."""
    if not tile.composite:
        return Image.fromarray(tile.upload)
    view = tile.upload.astype(np.float32)
    view[:, TILE[0] :] = 0.35 * view[:, TILE[0] :] + 0.65 * 255  # washed out: not scored
    canvas = Image.fromarray(view.astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=18)
    draw.rectangle((1, 1, TILE[0] - 2, TILE[1] - 2), outline=(255, 215, 0), width=3)
    for x, text in ((10, "scored: Sentinel-2 half"), (TILE[0] + 10, "ignored: context half")):
        box = draw.textbbox((x, 10), text, font=font)
        draw.rectangle((box[0] - 4, box[1] - 3, box[2] + 4, box[3] + 3), fill=(0, 0, 0))
        draw.text((x, 10), text, fill=(255, 255, 255), font=font)
    return canvas


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


def figure(tile: Tile) -> Image.Image:
    """One picture for the page: what was scored (:func:`scored_view`) beside its proxy maps."""
    font = ImageFont.load_default(size=14)
    view, maps = scored_view(tile), proxy_maps(tile.rgb)
    top = 26  # the maps' title band
    size = (10 + view.width + maps.width, max(view.height + top + 10, maps.height))
    canvas = Image.new("RGB", size, "white")
    canvas.paste(view, (10, top))
    ImageDraw.Draw(canvas).text(
        (10, 4), "Scored tile" if not tile.composite else "Upload (composite)", fill="black", font=font
    )
    canvas.paste(maps, (10 + view.width, 0))
    return canvas
