"""Cut: open a private 512x512 composite as it is displayed, check it, keep its Sentinel-2 half.

The left half (256 px wide x 512 px tall) is the Sentinel-2 false colour
(RGB = B08/B04/B05); the right half is the high-resolution context image, whose
terms forbid redistribution, and is never written anywhere.

**Orientation.** A composite is the image a viewer shows, not its raw pixel
order. An EXIF ``Orientation`` tag (JPEG APP1, PNG ``eXIf`` chunk, PNG
``Raw profile type exif`` text, or XMP ``tiff:Orientation``) is applied exactly
as Pillow's ``ImageOps.exif_transpose`` applies it, because that is how the
model's own loader reads images: transformers' ``image_utils.load_image`` calls
``PIL.ImageOps.exif_transpose`` before ``convert("RGB")``. So the cut, the gates,
the leakage hash and the audit all see the composite as displayed
(:func:`open_displayed`); an orientation outside 1-8 is a counted rejection
(``bad_orientation``), never a guess.

**Cut.** JPEG sources in YCbCr with orientation 1 are cut **losslessly**: the DCT
coefficients of the left 32 block columns are kept as they are (libjpeg-turbo
through ``jpeglib``, on the very bytes that were checked and decoded, handed to it
as files in memory), so no generation loss is added and, for 4:4:4 sources, the
published pixels are bit-identical to the left half the model trained on. With
4:2:0 chroma only the last pixel column can differ, by the decoder's chroma
upsampling at the new edge. Everything else is decoded, oriented, and encoded
once as JPEG quality 95 with 4:4:4 chroma (Pillow's default 4:2:0 would halve
the colour resolution of a false-colour image): PNG sources, JPEGs with an
orientation other than 1, and JPEGs whose colour space is not plainly YCbCr
(:func:`colour_signal`: an Adobe APP14 segment, or component IDs other than
1, 2, 3 without a JFIF marker; an RGB JPEG's meaning lives in segments that the
scrub removes, so a lossless crop would be decoded as YCbCr and mis-coloured).

**Decoding is strict.** A JPEG is entropy-decoded by libjpeg-turbo with warnings
as errors (``simplejpeg`` ``strict=True``: "Corrupt JPEG data: ...", premature
end of data); any Pillow warning while opening a composite (corrupt EXIF,
decompression bomb) is an error too. Both are counted ``unreadable_image``
rejections: a damaged composite is never published.
"""

from __future__ import annotations

import ctypes
import io
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from builder.domain import COMPOSITE_SIZE, HALF_SIZE, Reason
from builder.errors import FileTooLargeError
from builder.files import read_regular
from builder.ingest.scrub import JpegFormatError, segments, strip_jpeg

JPEG_QUALITY = 95
# A composite is 512x512; a header that promises more than 16x that is refused
# before any pixel is decoded (a decompression bomb costs nothing to send).
MAX_PIXELS = COMPOSITE_SIZE[0] * COMPOSITE_SIZE[1] * 16
# A composite file is at most 16 MiB: an uncompressed 512x512 RGB image is 0.75 MiB,
# so this leaves 20x room for PNG overhead and metadata, and a file padded with a
# gigabyte of trailing bytes is refused before it is read (it would cost its size
# in memory, twice).
MAX_COMPOSITE_BYTES = 16 * 1024 * 1024
_JPEGLIB_VERSION = "turbo210"
_OBJECT_REPR = re.compile(r"\s*<[^<>]*\bat 0x[0-9a-fA-F]+>")
ORIENTATION_TAG = 0x0112  # EXIF Orientation (TIFF 6.0 tag 274)
# EXIF orientation -> the transpose that shows the image as displayed (the table of
# PIL.ImageOps.exif_transpose).
TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class Rejected(Exception):
    """A composite that cannot become a tile, with the counted reason."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Cut:
    """The published bytes of one tile and how they were made.

    Attributes:
        data: the scrubbed JPEG of the Sentinel-2 half.
        mode: ``lossless`` (DCT-domain crop) or ``reencoded`` (decoded, encoded once).
        detail: why a tile was re-encoded (empty for a lossless cut).
    """

    data: bytes
    mode: Literal["lossless", "reencoded"]
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Opened:
    """A checked composite: its decoded image (raw pixel order), its orientation and bytes."""

    image: Image.Image
    orientation: int
    data: bytes
    reduced: bool = False  # decoded at 1/8 scale (a check only, no pixels to keep)

    def displayed(self) -> Image.Image:
        """The composite as a viewer (and the model's loader) shows it."""
        return as_displayed(self.image, self.orientation)


def as_displayed(image: Image.Image, orientation: int) -> Image.Image:
    """``image`` turned by its EXIF ``orientation`` (from :func:`orientation_of`) as
    ``PIL.ImageOps.exif_transpose`` turns it: the one orientation rule of the cut, the
    gates, the audit and the Space's uploads."""
    method = TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


def _png_bit_depth(head: bytes) -> int | None:
    # IHDR is always the first chunk: 8-byte signature, 4 length, 4 type, 4 w, 4 h, depth.
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        return head[24]
    return None


def orientation_of(image: Image.Image) -> int:
    """The EXIF orientation that ``PIL.ImageOps.exif_transpose`` would apply (1 when none).

    Raises:
        Rejected: an orientation outside 1-8 (``bad_orientation``): no viewer agrees
            on what such an image looks like, so it is not guessed.
    """
    value = image.getexif().get(ORIENTATION_TAG, 1)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 8:
        shown = repr(value)[:20]
        raise Rejected(Reason.BAD_ORIENTATION, f"EXIF orientation {shown}; allowed 1 to 8")
    return value


def strict_jpeg(data: bytes) -> None:
    """Entropy-decode a JPEG with libjpeg-turbo's warnings as errors (1/8 scale: every
    coefficient is still read, only the inverse DCT is smaller)."""
    import simplejpeg  # imported here: only the JPEG path needs it

    try:
        simplejpeg.decode_jpeg(data, colorspace="rgb", strict=True, min_factor=8)
    except ValueError as exc:
        if "subsampling level" in str(exc):
            # libjpeg-turbo's TurboJPEG API checks only the chroma samplings that encoders
            # write (4:4:4, 4:2:2, 4:4:0, 4:2:0, 4:1:1, ...); an exotic one (3x1 luma, chroma
            # sampled finer than luma) cannot be decoded strictly, so it cannot be vouched for.
            raise Rejected(
                Reason.UNREADABLE_IMAGE,
                "chroma sampling that the strict decoder cannot check; re-save the composite "
                "with 4:4:4, 4:2:2 or 4:2:0 chroma",
            ) from None
        raise Rejected(Reason.UNREADABLE_IMAGE, f"decoder warning: {str(exc)[:120]}") from None


def open_checked(data: bytes, reduced: bool = False, strict: bool = True) -> Opened:
    """Open, check and decode a composite's bytes, or raise :class:`Rejected` with the reason.

    Refuses zero-byte, corrupt and truncated files (and any decoder warning),
    formats other than JPEG and PNG, a displayed geometry other than 512x512,
    anything but 8-bit RGB, an EXIF orientation outside 1-8, and headers that
    promise more than :data:`MAX_PIXELS` pixels.

    Args:
        data: the composite's bytes.
        reduced: decode a JPEG at 1/8 scale. Every entropy-coded block is still
            read, so corrupt and truncated streams fail just the same, without
            the cost of the full inverse DCT (for callers that keep no pixels).
        strict: entropy-decode a JPEG with decoder warnings as errors first (the
            build does; the audit, which re-opens composites the build accepted, need not).
    """
    if not data:
        raise Rejected(Reason.UNREADABLE_IMAGE, "zero-byte file")
    depth = _png_bit_depth(data[:32])
    if depth is not None and depth != 8:
        raise Rejected(Reason.BAD_PIXEL_FORMAT, f"{depth}-bit PNG; expected 8-bit RGB")
    try:
        with warnings.catch_warnings():
            # A warning while reading a composite (corrupt EXIF, a bomb, a broken chunk)
            # means the pixels or the orientation cannot be trusted.
            warnings.simplefilter("error")
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise Rejected(
                    Reason.DECOMPRESSION_BOMB,
                    f"header promises {width}x{height} pixels; a composite is 512x512",
                )
            if image.format not in ("JPEG", "PNG"):
                raise Rejected(Reason.UNREADABLE_IMAGE, f"{image.format} file; expected JPEG or PNG")
            if image.mode != "RGB":
                raise Rejected(Reason.BAD_PIXEL_FORMAT, f"mode {image.mode}; expected 8-bit RGB")
            frames = getattr(image, "n_frames", 1)
            if frames != 1:  # an animated PNG: viewers and loaders disagree on which frame is "the" image
                raise Rejected(
                    Reason.UNREADABLE_IMAGE,
                    f"{image.format} file with {frames} frames; a composite is one image",
                )
            if image.format == "JPEG":
                if strict:
                    strict_jpeg(data)
                if reduced:
                    image.draft("RGB", (width // 8, height // 8))
            image.load()
            orientation = orientation_of(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Rejected(Reason.DECOMPRESSION_BOMB, str(exc).split(".")[0]) from None
    except Rejected:
        raise
    except (OSError, SyntaxError, ValueError, Warning) as exc:  # Pillow's ways of saying "corrupt"
        # Pillow names the stream it read ("<_io.BytesIO object at 0x7f...>"): an address that
        # differs in every process, and a report must be the same bytes on every rebuild.
        said = _OBJECT_REPR.sub("", str(exc))
        raise Rejected(Reason.UNREADABLE_IMAGE, f"cannot decode: {said[:120]}") from None
    shown = (height, width) if orientation >= 5 else (width, height)
    if shown != COMPOSITE_SIZE:
        turned = f" (orientation {orientation} turns {width}x{height})" if orientation >= 5 else ""
        raise Rejected(
            Reason.BAD_GEOMETRY, f"{shown[0]}x{shown[1]} (w x h){turned}; expected a 512x512 composite"
        )
    return Opened(image, orientation, data, reduced and image.format == "JPEG")


def open_displayed(path: Path, strict: bool = True) -> Image.Image:
    """The composite at ``path`` decoded and oriented as displayed, 512x512 RGB.

    The one way the build, its gates, the audit and the Space open a composite.

    Raises:
        Rejected: the composite cannot be published (the reason is counted).
    """
    return open_checked(read_composite(path), strict=strict).displayed()


def read_composite(path: Path) -> bytes:
    """A composite's bytes; a special file, a file over :data:`MAX_COMPOSITE_BYTES` or an
    unreadable path is a counted rejection (``unreadable_image``)."""

    try:
        return read_regular(path, MAX_COMPOSITE_BYTES)
    except FileTooLargeError as exc:
        raise Rejected(Reason.UNREADABLE_IMAGE, f"file too large for a composite: {exc}") from None
    except OSError as exc:
        raise Rejected(Reason.UNREADABLE_IMAGE, f"cannot read: {exc.strerror or exc}") from None


def colour_signal(data: bytes) -> str | None:
    """Why a JPEG's colour space is not plainly YCbCr to every decoder, or ``None`` when it is.

    The published tile keeps only the segments a decoder needs, and a decoder
    reads a 3-component JPEG without JFIF or Adobe markers as YCbCr when its
    component IDs are 1, 2, 3. A source whose meaning rests on anything else (an
    Adobe APP14 transform other than 1, YCbCr; component IDs other than 1, 2, 3
    without a JFIF marker, such as ``R``, ``G``, ``B`` or 0, 1, 2) is read
    differently by different libjpeg versions (libjpeg-turbo's
    ``default_decompress_parms`` and IJG libjpeg 9 order these rules
    differently), so it is decoded once, as displayed, and re-encoded.
    """
    jfif = False
    transform: int | None = None
    ids: tuple[int, ...] = ()
    try:
        for seg in segments(data):
            body = data[seg.start + 4 : seg.end]
            if seg.marker == 0xE0 and body.startswith(b"JFIF\x00"):
                jfif = True
            elif seg.marker == 0xEE and body.startswith(b"Adobe"):
                transform = body[11] if len(body) > 11 else -1
            elif seg.name.startswith("SOF") and len(body) >= 6:
                count = body[5]
                ids = tuple(body[6 + 3 * k] for k in range(count) if 6 + 3 * k < len(body))
            elif seg.name == "SOS":
                break
    except JpegFormatError:
        return "malformed marker segments"
    if transform not in (None, 1):  # 1 is YCbCr; 0 RGB, 2 YCCK
        return f"Adobe APP14 transform {transform}"
    if not jfif and ids != (1, 2, 3):
        return f"component IDs {ids} without a JFIF marker"
    return None


@contextmanager
def _memory_file(data: bytes = b"") -> Iterator[str]:
    """A path to a file in memory holding ``data`` (Linux ``memfd_create``; a temporary file
    elsewhere), for libraries that read and write JPEGs by path only."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("cropmark-tile", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            # Linux names an open descriptor of this process under /proc (proc(5)); the path is
            # joined from its parts, so no text of the module reads as a path of this machine.
            yield os.path.join(os.sep, "proc", "self", "fd", str(fd))
        finally:
            os.close(fd)
        return
    handle, tmp = tempfile.mkstemp(suffix=".jpg")
    try:
        os.write(handle, data)
        os.close(handle)
        yield tmp
    finally:
        os.unlink(tmp)


# Direct calls into jpeglib's bundled C library (the libjpeg-turbo 2.1.0 build of its wheel):
# its read_jpeg_dct / write_jpeg_dct read and write by path, and are given memory files, so
# the crop writes no file anywhere. jpeglib's public API (DCTJPEG.load / write_dct) wraps the
# same two calls but first runs a third libjpeg pass for the header (read_jpeg_info) and
# copies the bytes through two temporary files on disk. The C signatures are those of the
# jpeglib version named here (jpeglib/_bind.py of that release); with any other version the
# public API is used instead, so a changed signature can never be called.
_DIRECT_JPEGLIB = "1.0.2"
_JCS_YCBCR = 3  # libjpeg's J_COLOR_SPACE: JCS_YCbCr


@dataclass(frozen=True, slots=True)
class _Frame:
    """A JPEG frame header (ITU-T T.81 B.2.2): size, and per component (id, h, v, table)."""

    height: int
    width: int
    components: tuple[tuple[int, int, int, int], ...]

    def blocks(self, index: int) -> tuple[int, int]:
        """(rows, columns) of 8x8 blocks of component ``index`` (T.81 A.1.1, libjpeg's
        ``width_in_blocks``: ceil(ceil(X * H_i / H_max) / 8))."""
        h_max = max(c[1] for c in self.components)
        v_max = max(c[2] for c in self.components)
        _, h, v, _ = self.components[index]
        return -(-self.height * v // (8 * v_max)), -(-self.width * h // (8 * h_max))


def _frame(data: bytes) -> _Frame | None:
    for seg in segments(data):
        if seg.name in ("SOF0", "SOF1", "SOF2"):
            body = data[seg.start + 4 : seg.end]
            if len(body) < 6 or len(body) < 6 + 3 * body[5]:
                return None
            comps = tuple(
                (body[6 + 3 * k], body[7 + 3 * k] >> 4, body[7 + 3 * k] & 15, body[8 + 3 * k])
                for k in range(body[5])
            )
            height, width = int.from_bytes(body[1:3], "big"), int.from_bytes(body[3:5], "big")
            return _Frame(height, width, comps)
        if seg.name == "SOS":
            return None
    return None


_direct_library: ctypes.CDLL | None = None


def _jpeglib_c() -> ctypes.CDLL | None:
    """jpeglib's C library for :data:`_JPEGLIB_VERSION`, when jpeglib is the version whose C
    signatures the direct crop calls (``None`` otherwise)."""
    global _direct_library
    import jpeglib
    from jpeglib import cjpeglib

    if jpeglib.__version__ != _DIRECT_JPEGLIB:
        return None
    if _direct_library is None:
        folder = Path(next(iter(cjpeglib.__path__)))
        found = sorted(folder.glob(f"cjpeglib_{_JPEGLIB_VERSION}.*"))
        if len(found) != 1:
            return None
        _direct_library = ctypes.CDLL(str(found[0]))
    return _direct_library


def _crop_direct(library: ctypes.CDLL, data: bytes, frame: _Frame) -> bytes:
    """The left :data:`HALF_SIZE` of ``data`` from its coefficients: one libjpeg read, one write."""
    shapes = [frame.blocks(i) for i in range(3)]
    planes = [np.zeros((rows, cols, 64), dtype=np.int16) for rows, cols in shapes]
    tables = np.zeros((4, 64), dtype=np.uint16)
    table_of = np.zeros(4, dtype=np.int16)
    as_c = np.ctypeslib.as_ctypes
    with _memory_file(data) as source:
        status = library.read_jpeg_dct(
            source.encode(), *(as_c(p) for p in planes), None, as_c(tables), as_c(table_of)
        )
    if status == 0:
        raise OSError("libjpeg could not read the coefficients")
    h_max = max(c[1] for c in frame.components)
    kept = [
        np.ascontiguousarray(p[:, : HALF_SIZE[0] * c[1] // h_max // 8])
        for p, c in zip(planes, frame.components, strict=True)
    ]
    used = table_of[:3]
    # What jpeglib.from_dct infers for these planes: sampling factors from the plane sizes.
    ratios = np.array([np.array(kept[0].shape[:2]) / np.array(k.shape[:2]) for k in kept[1:]])
    largest = ratios.max(axis=0)
    factors = np.ceil(np.array([largest, *(largest / ratios)])).astype(np.int32)
    quant = np.full(4, -1, dtype=np.int16)
    quant[:3] = used
    block_dims = (ctypes.c_int * 6)(*(n for k in kept for n in k.shape[:2]))
    image_dims = (ctypes.c_int * 2)(kept[0].shape[0] * 8, kept[0].shape[1] * 8)
    with _memory_file() as target:
        status = library.write_jpeg_dct(
            None,
            target.encode(),
            *(as_c(k) for k in kept),
            None,
            image_dims,
            block_dims,
            as_c(factors),
            _JCS_YCBCR,
            3,
            as_c(tables[: int(used.max()) + 1].astype(np.int16)),
            -1,
            as_c(quant),
            0,
            None,
            None,
            None,
            ctypes.c_uint(0),
            ctypes.c_uint(0xFFFFFFFF),
        )
        if status == 0:
            raise OSError("libjpeg could not write the coefficients")
        return Path(target).read_bytes()


def _lossless_left_half(data: bytes) -> bytes | str:
    """Crop the left half of the JPEG ``data`` in the DCT domain, or say why it does not allow it.

    The bytes are the ones the caller checked and decoded (the composite is not read from
    its path again), and whose colour space :func:`colour_signal` found plainly YCbCr (the
    caller, :func:`cut_opened`, checks it once). A baseline or progressive JPEG is cropped by
    :func:`_crop_direct`, in memory; anything else, or another jpeglib version, goes through
    jpeglib's public API (:func:`_lossless_left_half_public`), which writes the same bytes
    (tests/test_composite.py compares the two).
    """
    library = _jpeglib_c()
    frame = _frame(data) if library is not None else None
    if library is None or frame is None or len(frame.components) != 3:
        return _lossless_left_half_public(data)
    h_max = max(c[1] for c in frame.components)
    if HALF_SIZE[0] % (8 * h_max):
        return f"a {8 * h_max} px MCU does not divide the cut"
    return _crop_direct(library, data, frame)


def _lossless_left_half_public(data: bytes) -> bytes | str:
    """Crop the left half of the JPEG ``data`` in the DCT domain, or say why it does not allow it.

    The bytes are the ones the caller checked and decoded (the composite is not read from
    its path again); jpeglib reads and writes by path, so it is handed files in memory.

    Why jpeglib: a lossless crop needs libjpeg's coefficient API or TurboJPEG's
    ``tjTransform``. jpeglib (maintained; its wheels carry libjpeg-turbo builds) offers the
    former. PyTurboJPEG, the maintained ``tjTransform`` wrapper, loads the system's
    ``libturbojpeg`` through ctypes, which no wheel provides and this project's install
    cannot bring; the ``turbojpeg`` wheel that bundles it has had one early release
    (0.0.2); jpegtran-cffi's last release is from 2015.
    """
    import jpeglib  # imported here: only the JPEG path needs libjpeg

    with jpeglib.version(_JPEGLIB_VERSION), _memory_file(data) as source:
        dct = jpeglib.read_dct(source)
        space = str(dct.jpeg_color_space)
        if space != "JCS_YCbCr" or dct.K is not None or dct.Cb is None or dct.Cr is None:
            return f"colour space {space.removeprefix('JCS_')}, not YCbCr"
        factors = np.asarray(dct.samp_factor)  # rows: Y, Cb, Cr; columns: (v, h)
        h_max = int(factors[:, 1].max())
        mcu_width = 8 * h_max
        if HALF_SIZE[0] % mcu_width:
            return f"a {mcu_width} px MCU does not divide the cut"
        kept = []
        for name, h in zip(("Y", "Cb", "Cr"), factors[:, 1], strict=True):
            blocks = HALF_SIZE[0] * int(h) // h_max // 8
            kept.append(np.ascontiguousarray(getattr(dct, name)[:, :blocks]))
        # Written from the coefficients alone (not through the source file, which jpeglib would
        # decode once more): the same bytes once scrubbed (tests/test_composite.py).
        half = jpeglib.from_dct(*kept, qt=dct.qt, quant_tbl_no=list(dct.quant_tbl_no))
        with _memory_file() as target:
            half.write_dct(target)
            return Path(target).read_bytes()


def encode_jpeg(image: Image.Image) -> bytes:
    """Encode pixels as the release's JPEG: quality 95, 4:4:4 chroma, no metadata."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False)
    return buffer.getvalue()


def cut_s2_half(path: Path) -> Cut:
    """Cut the published Sentinel-2 half of the composite at ``path``, as displayed.

    Raises:
        Rejected: the composite cannot be published (the reason is counted).
    """
    return cut_opened(open_checked(read_composite(path), reduced=True), path)


def cut_opened(opened: Opened, path: Path) -> Cut:
    """Cut the Sentinel-2 half of a checked composite (``path``: the file its bytes came from)."""
    if opened.image.format != "JPEG":
        detail = f"{opened.image.format} source"
    elif opened.orientation != 1:
        detail = f"EXIF orientation {opened.orientation} applied"
    elif (signal := colour_signal(opened.data)) is not None:
        detail = f"colour space signalled by {signal}, not plainly YCbCr"  # the card counts "colour space"
    else:
        try:
            lossless = _lossless_left_half(opened.data)
        except OSError:
            lossless = "libjpeg refused the DCT crop"  # Pillow read it: fall back to one re-encode
        if isinstance(lossless, bytes):
            return Cut(strip_jpeg(lossless), "lossless")
        detail = lossless
    if opened.reduced:
        opened = open_checked(opened.data)  # full resolution for the re-encode
    half = opened.displayed().crop((0, 0, *HALF_SIZE))
    return Cut(strip_jpeg(encode_jpeg(half)), "reencoded", detail)
