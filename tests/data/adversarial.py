"""A seeded generator of hostile composites, manifest rows, corpus files and planted leaks.

Three kinds of case, each with the outcome the release system must give:

- :func:`plant_corpus` adds hostile composites, rows and files to a corpus (mixed
  into the sample corpus in the tests): each becomes a counted rejection with a
  named reason, or a published tile that is exactly what it must be (the left
  half of the composite as displayed, in its true colours, with no metadata);
- :func:`plant_release` plants leaks into a built release (text in the card and
  notice, stray files, a listed tile the report does not know, a flipped label,
  pasted context patches, a rotated tile, a symlink): each must be a named audit
  finding, even when the report's hashes were forged to match;
- :data:`FATAL` lists corpus-level faults (a broken ``sites.csv`` or
  ``gates.json``, a FIFO for a manifest): each must be a one-line error with exit
  status 2 and nothing written.

Everything is made from code and a seed; nothing is downloaded.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from builder.ingest.corpus import Site
from builder.ingest.scrub import segments, strip_jpeg
from builder.release.report import BuildReport
from builder.testing.sample import _row
from tests.data.factory import composite_pixels, jpeg_bytes, png16_rgb, png_bomb

# The transpose that turns the displayed image into the raw pixel order stored with
# orientation N (the inverse of PIL.ImageOps.exif_transpose's table).
INVERSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def _raw(truth: np.ndarray, orientation: int, transpose: bool) -> Image.Image:
    image = Image.fromarray(truth)
    if transpose and orientation in INVERSE:
        image = image.transpose(INVERSE[orientation])
    return image


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def oriented_jpeg(truth: np.ndarray, orientation: int, transpose: bool = True) -> bytes:
    """A JPEG that displays as ``truth``: stored in raw order with its EXIF orientation."""
    buffer = io.BytesIO()
    _raw(truth, orientation, transpose).save(
        buffer, format="JPEG", quality=95, subsampling=0, exif=_exif(orientation)
    )
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def oriented_png(truth: np.ndarray, orientation: int, after_idat: bool = False) -> bytes:
    """A PNG with an ``eXIf`` chunk (before or after the image data) that displays as ``truth``."""
    raw = np.asarray(_raw(truth, orientation, True))
    height, width = raw.shape[:2]
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"".join(b"\x00" + row.tobytes() for row in raw))
    exif = _chunk(b"eXIf", _exif(orientation).removeprefix(b"Exif\x00\x00"))
    body = [_chunk(b"IDAT", idat), exif] if after_idat else [exif, _chunk(b"IDAT", idat)]
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + b"".join(body) + _chunk(b"IEND", b"")


def raw_profile_png(truth: np.ndarray, orientation: int) -> bytes:
    """A PNG carrying its EXIF as ImageMagick does: a ``Raw profile type exif`` text chunk."""
    exif = _exif(orientation)
    info = PngInfo()
    info.add_text("Raw profile type exif", f"\nexif\n{len(exif):8d}\n{exif.hex()}\n")
    buffer = io.BytesIO()
    _raw(truth, orientation, True).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def xmp_oriented_jpeg(truth: np.ndarray, orientation: int) -> bytes:
    """A JPEG whose only orientation is XMP's ``tiff:Orientation`` (no EXIF)."""
    xmp = f'<x:xmpmeta><rdf:Description tiff:Orientation="{orientation}"/></x:xmpmeta>'.encode()
    buffer = io.BytesIO()
    _raw(truth, orientation, True).save(buffer, format="JPEG", quality=95, subsampling=0, xmp=xmp)
    return buffer.getvalue()


def adobe_rgb_jpeg(truth: np.ndarray) -> bytes:
    """An RGB-colourspace JPEG (Adobe APP14 transform 0: no YCbCr conversion)."""
    buffer = io.BytesIO()
    Image.fromarray(truth).save(buffer, format="JPEG", quality=95, subsampling=0, keep_rgb=True)
    return buffer.getvalue()


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def adobe_rgb_ids_jpeg(truth: np.ndarray, ids: tuple[int, int, int]) -> bytes:
    """RGB data with Adobe APP14 transform 0, no JFIF, and component IDs ``ids``.

    With IDs 1, 2, 3 (or 0, 1, 2) some libjpeg versions read it as YCbCr; Pillow
    (and so the model's loader) reads it as RGB, in its true colours.
    """
    data = adobe_rgb_jpeg(truth)
    out = bytearray(data[:2])
    for seg in list(segments(data))[1:]:
        if seg.name not in ("APP0", "APP14"):
            out += data[seg.start : seg.end]
    for seg in segments(bytes(out)):
        if seg.name.startswith("SOF"):
            for k in range(3):
                out[seg.start + 10 + 3 * k] = ids[k]
        if seg.name == "SOS":
            for k in range(3):
                out[seg.start + 5 + 2 * k] = ids[k]
    adobe = _segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x00")
    return bytes(out[:2]) + adobe + bytes(out[2:])


def sampled_jpeg(truth: np.ndarray, factors: tuple[tuple[int, int], ...]) -> bytes:
    """A JPEG with the given (h, v) sampling factors of Y, Cb, Cr, written by libjpeg."""
    import tempfile

    import jpeglib

    image = jpeglib.from_spatial(np.ascontiguousarray(truth))
    image.samp_factor = np.array(factors)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.jpg"
        image.write_spatial(str(path), qt=95)
        return path.read_bytes()


def apng(truth: np.ndarray) -> bytes:
    """An animated PNG whose first frame is the composite (a viewer may show another)."""
    buffer = io.BytesIO()
    first = Image.fromarray(truth)
    first.save(buffer, format="PNG", save_all=True, append_images=[Image.fromarray(truth[:, ::-1])])
    return buffer.getvalue()


def corrupt_scan(data: bytes) -> bytes:
    """``data`` with a few entropy-coded bytes flipped where libjpeg notices (and Pillow does not)."""
    import simplejpeg

    scan = next(s for s in segments(data) if s.name == "SOS")
    length = scan.end - scan.start
    for step in range(2, 40):
        damaged = bytearray(data)
        middle = scan.start + 20 + length // step
        for k in range(3):
            damaged[middle + 37 * k] ^= 0x5A
            if damaged[middle + 37 * k] == 0xFF:
                damaged[middle + 37 * k] = 0x12
        try:
            simplejpeg.decode_jpeg(bytes(damaged), strict=True)
        except ValueError:
            return bytes(damaged)
    raise AssertionError("no corruption that libjpeg notices")


def _with_segment(data: bytes, marker: int, payload: bytes) -> bytes:
    return data[:2] + bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:]


def _png_bad_crc(truth: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(truth).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    idat = data.find(b"IDAT")
    data[idat + 4 + 100] ^= 0xFF  # inside the compressed data: its CRC no longer matches
    return bytes(data)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _fmt(truth: np.ndarray, fmt: str, **kw: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(truth).save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def _jpeg_header_size(data: bytes, width: int, height: int) -> bytes:
    sof = next(s for s in segments(data) if s.name.startswith("SOF"))
    out = bytearray(data)
    out[sof.start + 5 : sof.start + 9] = struct.pack(">HH", height, width)
    return bytes(out)


def _premature_eoi(data: bytes) -> bytes:
    scan = next(s for s in segments(data) if s.name == "SOS")
    cut = scan.start + (scan.end - scan.start) // 2
    while data[cut - 1] == 0xFF:
        cut -= 1
    return data[:cut] + b"\xff\xd9"


def _mpo(truth: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    first, second = Image.fromarray(truth), Image.fromarray(truth[::-1].copy())
    first.save(buffer, format="MPO", save_all=True, append_images=[second], quality=95)
    return buffer.getvalue()


def _corrupt_exif(truth: np.ndarray) -> bytes:
    data = jpeg_bytes(truth, subsampling=0)
    # An EXIF block whose first IFD claims 200 entries in 20 bytes of data.
    tiff = b"MM\x00*\x00\x00\x00\x08" + (200).to_bytes(2, "big") + b"\x01\x12\x00\x03" + b"\x00" * 10
    return _with_segment(data, 0xE1, b"Exif\x00\x00" + tiff)


# -- cases added to a corpus --------------------------------------------------------------------


@dataclass
class CorpusCase:
    """One hostile thing in a corpus and what the build must make of it.

    Attributes:
        kind: a short name.
        expect: the counted rejection reason, or ``published``.
        where: the manifest line of its row (``sft/train.jsonl:1150``).
        source: the corpus-relative composite path, when there is one.
        truth: for a published case, the composite as a viewer shows it.
        lossless: for a published case, whether the cut must be lossless.
    """

    kind: str
    expect: str
    where: str = ""
    source: str | None = None
    truth: np.ndarray | None = field(default=None, repr=False)
    lossless: bool | None = None


def _composite_cases() -> list[tuple[str, str, str, Any, bool | None]]:
    """(kind, file name, expected, bytes or a callable of the corpus root, lossless?)."""
    cases: list[tuple[str, str, str, Any, bool | None]] = []
    for orientation in range(1, 9):
        cases.append(
            (
                f"jpeg orientation {orientation}",
                f"or{orientation}.jpg",
                "published",
                ("or", orientation),
                None,
            )
        )
    cases += [
        ("png eXIf orientation 6", "png6.png", "published", ("png", 6, False), False),
        ("png eXIf orientation 3 after IDAT", "png3.png", "published", ("png", 3, True), False),
        ("png raw-profile orientation 8", "raw8.png", "published", ("raw", 8), False),
        ("jpeg XMP orientation 6", "xmp6.jpg", "published", ("xmp", 6), False),
        ("jpeg orientation 0", "or0.jpg", "bad_orientation", ("bad", 0), None),
        ("jpeg orientation 9", "or9.jpg", "bad_orientation", ("bad", 9), None),
        ("png eXIf orientation 65535", "png65535.png", "bad_orientation", ("pngbad", 65535), None),
        ("jpeg orientation 6 on 512x256", "wide6.jpg", "bad_geometry", ("wide", 6), None),
        ("jpeg corrupt scan data", "scan.jpg", "unreadable_image", ("scan",), None),
        ("jpeg truncated", "trunc.jpg", "unreadable_image", ("trunc",), None),
        ("jpeg EOI mid-scan", "eoi.jpg", "unreadable_image", ("eoi",), None),
        ("jpeg corrupt EXIF", "badexif.jpg", "unreadable_image", ("badexif",), None),
        ("jpeg Adobe RGB", "adobe.jpg", "published", ("adobe",), False),
        ("jpeg Adobe YCbCr", "adobe1.jpg", "published", ("adobe1",), True),
        ("jpeg Adobe RGB, IDs 1 2 3, no JFIF", "adobe123.jpg", "published", ("adobeids", (1, 2, 3)), False),
        ("jpeg Adobe RGB, IDs 0 1 2, no JFIF", "adobe012.jpg", "published", ("adobeids", (0, 1, 2)), False),
        ("animated PNG", "apng.png", "unreadable_image", ("apng",), None),
        ("jpeg 4:1:1", "s411.jpg", "published", ("sampling", ((4, 1), (1, 1), (1, 1))), True),
        (
            "jpeg 3x1 luma sampling",
            "s311.jpg",
            "unreadable_image",
            ("sampling", ((3, 1), (1, 1), (1, 1))),
            None,
        ),
        (
            "jpeg chroma finer than luma",
            "cgl.jpg",
            "unreadable_image",
            ("sampling", ((1, 1), (2, 2), (1, 1))),
            None,
        ),
        ("jpeg progressive", "prog.jpg", "published", ("jpeg", {"progressive": True}), True),
        ("jpeg restart markers", "rst.jpg", "published", ("jpeg", {"restart_marker_blocks": 4}), True),
        ("jpeg 4:2:2", "s422.jpg", "published", ("jpeg", {"subsampling": 1}), True),
        ("jpeg 4:2:0", "s420.jpg", "published", ("jpeg", {"subsampling": 2}), True),
        ("jpeg GPS EXIF and comment", "gps.jpg", "published", ("gps",), True),
        ("jpeg bytes after EOI", "tail.jpg", "published", ("tail",), True),
        ("jpeg ICC profile", "icc.jpg", "published", ("jpeg", {"icc_profile": b"\0" * 300}), True),
        ("mpo two images", "mpo.jpg", "unreadable_image", ("mpo",), None),
        ("jpeg cmyk", "cmyk.jpg", "bad_pixel_format", ("mode", "CMYK", "JPEG"), None),
        ("jpeg grey", "grey.jpg", "bad_pixel_format", ("mode", "L", "JPEG"), None),
        ("png 16-bit", "p16.png", "bad_pixel_format", ("p16",), None),
        ("png palette", "pal.png", "bad_pixel_format", ("mode", "P", "PNG"), None),
        ("png rgba", "rgba.png", "bad_pixel_format", ("mode", "RGBA", "PNG"), None),
        ("png bad crc", "crc.png", "unreadable_image", ("crc",), None),
        ("png truncated", "ptrunc.png", "unreadable_image", ("ptrunc",), None),
        ("png bomb", "bomb.png", "decompression_bomb", ("bomb",), None),
        ("jpeg bomb header", "jbomb.jpg", "decompression_bomb", ("jbomb",), None),
        ("jpeg 512x513", "tall.jpg", "bad_geometry", ("tall",), None),
        ("zero bytes", "zero.jpg", "unreadable_image", ("bytes", b""), None),
        ("text as jpg", "text.jpg", "unreadable_image", ("bytes", b"not an image\n"), None),
        ("gif", "gif.jpg", "unreadable_image", ("fmt", "GIF"), None),
        ("webp", "webp.jpg", "unreadable_image", ("fmt", "WEBP"), None),
        ("bmp", "bmp.jpg", "unreadable_image", ("fmt", "BMP"), None),
        ("tiff", "tiff.jpg", "unreadable_image", ("fmt", "TIFF"), None),
        ("ordinary word image.jpg", "image.jpg", "published", ("jpeg", {}), True),
        ("ordinary word cloudy.jpg", "cloudy.jpg", "published", ("jpeg", {}), True),
    ]
    return cases


def _make(spec: tuple[Any, ...], truth: np.ndarray) -> bytes:
    kind = spec[0]
    if kind == "or":
        return oriented_jpeg(truth, spec[1])
    if kind == "png":
        return oriented_png(truth, spec[1], after_idat=spec[2])
    if kind == "raw":
        return raw_profile_png(truth, spec[1])
    if kind == "xmp":
        return xmp_oriented_jpeg(truth, spec[1])
    if kind == "bad":
        return oriented_jpeg(truth, spec[1], transpose=False)
    if kind == "pngbad":
        data = oriented_png(truth, 1)
        return data.replace(_chunk(b"eXIf", _exif(1)[6:]), _chunk(b"eXIf", _exif(spec[1])[6:]))
    if kind == "wide":
        return oriented_jpeg(truth[:256], spec[1], transpose=False)
    if kind == "scan":
        return corrupt_scan(jpeg_bytes(truth))
    if kind == "trunc":
        return jpeg_bytes(truth)[:30_000]
    if kind == "eoi":
        return _premature_eoi(jpeg_bytes(truth))
    if kind == "badexif":
        return _corrupt_exif(truth)
    if kind == "adobe":
        return adobe_rgb_jpeg(truth)
    if kind == "adobeids":
        return adobe_rgb_ids_jpeg(truth, spec[1])
    if kind == "apng":
        return apng(truth)
    if kind == "sampling":
        return sampled_jpeg(truth, spec[1])
    if kind == "adobe1":
        return _with_segment(jpeg_bytes(truth, subsampling=0), 0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x01")
    if kind == "jpeg":
        return jpeg_bytes(truth, **spec[1])
    if kind == "gps":
        exif = Image.Exif()
        exif[0x8825] = {2: (52.0, 7.0, 30.0), 4: (1.0, 14.0, 5.0)}
        exif[0x010E] = "AIM0012345 2021-06-14"
        return jpeg_bytes(truth, exif=exif.tobytes(), comment=b"52.1234, -1.2345")
    if kind == "tail":
        return jpeg_bytes(truth) + b"52.123456,-1.234567 ASK123456"
    if kind == "mpo":
        return _mpo(truth)
    if kind == "mode":
        image = Image.fromarray(truth).convert(spec[1])
        buffer = io.BytesIO()
        image.save(buffer, format=spec[2])
        return buffer.getvalue()
    if kind == "p16":
        return png16_rgb(int(truth[0, 0, 0]))
    if kind == "crc":
        return _png_bad_crc(truth)
    if kind == "ptrunc":
        return _png(Image.fromarray(truth))[:40_000]
    if kind == "bomb":
        return png_bomb()
    if kind == "jbomb":
        return _jpeg_header_size(jpeg_bytes(truth), 60_000, 60_000)
    if kind == "tall":
        return jpeg_bytes(np.concatenate([truth, truth[:1]], axis=0))
    if kind == "bytes":
        return bytes(spec[1])
    if kind == "fmt":
        return _fmt(truth, spec[1])
    raise ValueError(kind)


class _Rows:
    """Appends rows to a corpus's manifests and remembers their line numbers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lines: dict[str, int] = {}
        for split in ("train", "eval"):
            path = root / "sft" / f"{split}.jsonl"
            self.lines[split] = len(path.read_bytes().splitlines()) if path.exists() else 0

    def add(self, line: bytes | str, split: str = "train") -> str:
        path = self.root / "sft" / f"{split}.jsonl"
        data = path.read_bytes() if path.exists() else b""
        if data and not data.endswith(b"\n"):
            data += b"\n"
        path.write_bytes(data + (line.encode() if isinstance(line, str) else line) + b"\n")
        self.lines[split] += 1
        return f"sft/{split}.jsonl:{self.lines[split]}"

    def row(self, image: str, label: str, split: str = "train") -> str:
        return self.add(json.dumps(_row(image, label)), split)


def plant_corpus(root: Path, seed: int = 2024) -> list[CorpusCase]:
    """Add every hostile composite, row and file to the corpus at ``root``; return the cases."""
    rows = _Rows(root)
    folder = root / "composites" / "hostile"
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[CorpusCase] = []
    counter = iter(range(seed * 1000, seed * 1000 + 1000))

    def truth() -> np.ndarray:
        return composite_pixels(next(counter))

    for kind, name, expect, spec, lossless in _composite_cases():
        pixels = truth()
        rel = f"composites/hostile/{name}"
        (root / rel).write_bytes(_make(spec, pixels))
        label = "Yes" if len(cases) % 2 else "No"
        cases.append(CorpusCase(kind, expect, rows.row(rel, label), rel, pixels, lossless))

    # Files that are not regular files, or paths the file system or the corpus refuses.
    fifo = "composites/hostile/fifo.jpg"
    os.mkfifo(root / fifo)
    cases.append(CorpusCase("FIFO as a composite", "unsafe_path", rows.row(fifo, "No")))
    (root / "composites/hostile/folder.jpg").mkdir()
    cases.append(
        CorpusCase("folder as a composite", "unsafe_path", rows.row("composites/hostile/folder.jpg", "No"))
    )
    os.symlink("/dev/zero", root / "composites/hostile/device.jpg")
    cases.append(
        CorpusCase("symlink to a device", "unsafe_path", rows.row("composites/hostile/device.jpg", "No"))
    )
    os.symlink("loop_b.jpg", root / "composites/hostile/loop_a.jpg")
    os.symlink("loop_a.jpg", root / "composites/hostile/loop_b.jpg")
    cases.append(CorpusCase("symlink loop", "unsafe_path", rows.row("composites/hostile/loop_a.jpg", "No")))
    cases.append(
        CorpusCase(
            "path component too long", "unsafe_path", rows.row("composites/" + "x" * 300 + ".jpg", "No")
        )
    )
    outside = root.parent / f"{root.name}-outside.jpg"
    outside.write_bytes(jpeg_bytes(truth()))
    os.symlink(outside, root / "composites/hostile/escape.jpg")
    cases.append(
        CorpusCase(
            "symlink out of the corpus", "unsafe_path", rows.row("composites/hostile/escape.jpg", "No")
        )
    )
    for kind, path in (
        ("absolute path", "/etc/hostname"),
        ("dot-dot path", "composites/../../etc/hostname"),
        ("NUL in path", "composites/a\x00b.jpg"),
        ("drive letter", "C:/corpus/x.jpg"),
        ("URL as path", "https://example.org/x.jpg"),
    ):
        cases.append(CorpusCase(kind, "unsafe_path", rows.row(path, "No")))
    cases.append(CorpusCase("missing file", "missing_file", rows.row("composites/hostile/none.jpg", "No")))
    lone = _row("composites/hostile/x.jpg", "No")
    lone["messages"][1]["content"][0]["image"] = "composites/hostile/\ud800.jpg"  # JSON "\ud800"
    cases.append(CorpusCase("lone surrogate in a path", "unsafe_path", rows.add(json.dumps(lone))))
    # A valid JPEG followed by a gigabyte of zeros (a sparse file: no disk, no memory here).
    huge = "composites/hostile/huge.jpg"
    with (root / huge).open("wb") as handle:
        handle.write(jpeg_bytes(truth()))
        handle.truncate(1 << 30)
    cases.append(CorpusCase("1 GiB of trailing zeros", "unreadable_image", rows.row(huge, "No"), huge))

    # Raw bands that are not regular files: refused by type, never opened (a FIFO would hang).
    for kind, name, make in (
        ("FIFO at bands/<stem>.tif", "bandfifo", lambda p: os.mkfifo(p.with_suffix(".tif"))),
        ("FIFO inside bands/<stem>/", "banddir", lambda p: (p.mkdir(), os.mkfifo(p / "T33_B04_10m.tif"))),
    ):
        rel = f"composites/hostile/{name}.jpg"
        (root / rel).write_bytes(jpeg_bytes(truth()))
        (root / "bands").mkdir(exist_ok=True)
        make(root / "bands" / name)
        cases.append(CorpusCase(kind, "bad_bands", rows.row(rel, "No"), rel))

    # Rows.
    good = "composites/hostile/rows.jpg"
    (root / good).write_bytes(jpeg_bytes(truth()))
    for kind, label in (
        ("label ' Yes'", " Yes"),
        ("label 'Yes\\n'", "Yes\n"),
        ("label 'No '", "No "),
        ("label 'yes'", "yes"),
        ("label formula", '=HYPERLINK("http://x","Yes")'),
    ):
        cases.append(CorpusCase(kind, "bad_label", rows.row(good, label)))
    two_parts = {
        "messages": [
            *_row(good, "Yes")["messages"][:-1],
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "Yes"}, {"type": "text", "text": "No"}],
            },
        ]
    }
    cases.append(CorpusCase("answer in two parts", "bad_label", rows.add(json.dumps(two_parts))))
    cases.append(CorpusCase("nested JSON", "unreadable_row", rows.add("[" * 100_000 + "]" * 100_000)))
    cases.append(CorpusCase("not UTF-8", "unreadable_row", rows.add(b'{"messages": "caf\xe9"}')))
    cases.append(CorpusCase("JSON list", "unreadable_row", rows.add('["a", "list"]')))
    cases.append(CorpusCase("long string line", "unreadable_row", rows.add(json.dumps("x" * 2_000_000))))
    two_images = _row(good, "No")
    two_images["messages"][1]["content"].append({"type": "image", "image": good})
    cases.append(CorpusCase("two images", "no_image", rows.add(json.dumps(two_images))))
    no_answer = {"messages": _row(good, "No")["messages"][:-1]}
    cases.append(CorpusCase("no answer", "no_answer", rows.add(json.dumps(no_answer))))
    whitespace = _row(good, "No")
    whitespace["messages"][-1]["content"] = [{"type": "text", "text": "  "}]
    cases.append(CorpusCase("blank answer", "no_answer", rows.add(json.dumps(whitespace))))
    cases.append(CorpusCase("the good row of those", "published", rows.row(good, "No"), good, None, True))

    # A byte-order mark before the first eval row: read like the CSV reader reads one.
    eval_path = root / "sft" / "eval.jsonl"
    eval_path.write_bytes(b"\xef\xbb\xbf" + eval_path.read_bytes())
    cases.append(CorpusCase("BOM before the first JSONL row", "read", "sft/eval.jsonl:1"))
    # A gate threshold with many decimals: the card quotes it, the audit must not refuse it.
    (root / "gates.json").write_text(json.dumps({"min_ndvi": 0.100000000123}))
    cases.append(CorpusCase("gate threshold with many decimals", "card quotes it"))
    return cases


# -- leaks planted into a built release ---------------------------------------------------------


@dataclass
class Leak:
    """A leak planted into a release and the finding that must name it."""

    kind: str
    where: str  # the start of the finding (file, or file:line)
    expect: str  # a fragment of the finding


def _site(report: BuildReport) -> Site:
    return next(t.site for t in report.tiles if t.site)


def _rewrite(path: Path, edit: Callable[[list[list[str]]], list[list[str]]]) -> None:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(edit(rows))
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _paste(tile: Path, composite: Image.Image, size: int, at: tuple[int, int]) -> None:
    """Paste a ``size`` x ``size`` patch of the context half into the tile at ``at``."""
    from builder.ingest.composite import encode_jpeg

    with Image.open(tile) as image:
        pixels = np.asarray(image.convert("RGB")).copy()
    context = np.asarray(composite)[:, 256:]
    x, y = at
    pixels[y : y + size, x : x + size] = context[100 : 100 + size, 30 : 30 + size]
    tile.write_bytes(strip_jpeg(encode_jpeg(Image.fromarray(pixels))))


def plant_release(release: Path, report: BuildReport) -> tuple[list[Leak], BuildReport]:
    """Plant every leak into ``release``; return them and ``report`` with hashes forged to match.

    A forged hash means each leak must be caught by its own check, not by the
    file's changed hash. Files the build never wrote stay out of the report.
    """
    from builder.files import files_digest
    from builder.ingest.composite import open_displayed

    leaks: list[Leak] = []
    readme = release / "README.md"
    lines = readme.read_text(encoding="utf-8").splitlines()
    site = _site(report)
    planted = [
        ("UTM pair", "EPSG:32633 500000 4600000", "UTM coordinate"),
        ("CRS code", "reprojected from EPSG:27700", "CRS code"),
        ("hemisphere prefix", "near N51.5074 W0.1278", "hemisphere coordinate"),
        ("hemisphere suffix", "at 51.5074N, 0.1278W", "hemisphere coordinate"),
        ("lat lon words", "lat 51.5 lon -0.12", "latitude/longitude label"),
        ("British National Grid", "grid TQ 30080 80445", "British National Grid reference"),
        ("British National Grid compact", "grid TQ3008080445", "British National Grid reference"),
        ("record number", "list entry 1012345", "record number"),
        ("HER record", "monument MSO1234", "record identifier"),
        ("day/month/year", "flown 14/06/2025", "date"),
        ("day.month.year", "flown 14.06.2025", "date"),
        ("day month-name year", "flown 14 June 2025", "date with a month name"),
        ("month-name day, year", "flown June 14, 2025", "date with a month name"),
        ("ISO date", "acquired 2021-06-14", "date"),
        ("compact date", "scene 20210614", "compact date"),
        ("degrees", "51° 30′ N", "degrees"),
        ("MGRS tile", "tile T33TWM", "MGRS reference"),
        ("MGRS reference", "33TWM 12345 67890", "MGRS reference"),
        ("plus code", "9C3XGV4F+8Q", "plus code"),
        ("what3words", "///filled.count.soap", "what3words address"),
        ("product id", "S2B_MSIL2A_20210614T105619_N0500_R094_T30UXC", "Sentinel-2 product id"),
        ("high-precision decimal", "ratio 0.123456789", "high-precision decimal"),
        ("private latitude", f"about {site.lat:.4f}", "private value of the report"),
        ("private record id", f"see {site.source_id}", "private value of the report"),
        ("comma decimals", "at 51,5074", "decimal-comma decimal"),
        ("comma-decimal pair", "at 51,5074 -0,1278", "coordinate pair"),
        ("fullwidth digits", "at \uff15\uff11.\uff15\uff10\uff17\uff14, -0.1278", "coordinate pair"),
        ("Arabic-Indic digits", "at \u0665\u0661\u066b\u0665\u0660\u0667\u0664", "high-precision decimal"),
        ("DMS with letters", "at 51d30m26s N", "degrees, minutes, seconds"),
        ("DMS with spaces", "at 51 30 26 N", "degrees, minutes, seconds"),
        ("DMS with primes", "at 51 30' 26\" N", "degrees, minutes, seconds"),
        ("glued latitude", "lat51.5074", "latitude/longitude label"),
        ("glued decimal", "x51.5074", "high-precision decimal"),
        ("geohash", "cell gcpvj0dyd", "geohash"),
        ("Maidenhead locator", "locator IO91wm", "Maidenhead locator"),
        ("lowercase BNG", "grid tq 300 804", "British National Grid reference"),
        ("lowercase MGRS", "tile t30uxc", "MGRS reference"),
        ("ISO week", "week 2025-W24", "week or ordinal date"),
        ("ordinal date", "day 2025-165", "week or ordinal date"),
        ("month name and year", "flown June 2025", "date with a month name"),
        ("month/year", "flown 06/2025", "month and year"),
        ("two-digit year", "flown 14-06-25", "date"),
        ("year month day with spaces", "flown 2025 06 14", "date"),
        ("zero-width space in a date", "flown 2021-\u200b06-14", "date"),
        ("HTML entities", "at &#53;&#49;.&#53;&#48;&#55;&#52;, -0.1278", "coordinate pair"),
        ("lowercase record identifier", "monument mso1234", "record identifier"),
        ("labelled record number", "HER 12345", "labelled record number"),
        (
            "private record id with a space",
            "see " + re.sub(r"(\d)", r" \1", site.source_id, count=1),
            "private value",
        ),
        ("private latitude glued", f"at{site.lat:.4f}x", "private value of the report"),
    ]
    for kind, text, expect in planted:
        lines.append(text)
        leaks.append(Leak(kind, f"README.md:{len(lines)}:", expect))
    readme.write_text("\n".join(lines) + "\n", encoding="utf-8")

    notice = release / "NOTICE.md"
    stem = Path(report.tiles[5].source).stem
    notice.write_text(notice.read_text(encoding="utf-8") + f"\nsource {stem}\n", encoding="utf-8")
    n = len(notice.read_text(encoding="utf-8").splitlines())
    leaks.append(Leak("source file name", f"NOTICE.md:{n}:", "private value of the report"))

    (release / "data" / "train" / "extra.txt").write_text("hello\n")
    leaks.append(Leak("unknown file", "data/train/extra.txt:", "not written by the build"))
    leaks.append(Leak("unknown file (listing)", "data/train/extra.txt:", "not listed in metadata.csv"))
    (release / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    leaks.append(Leak("hidden file", ".DS_Store:", "not part of a release"))
    leaks.append(Leak("hidden file (report)", ".DS_Store:", "not written by the build"))
    (release / "data" / "eval" / "link.jpg").symlink_to(
        release.parent / f"{release.name}.private" / "report.json"
    )
    leaks.append(Leak("symlink", "data/eval/link.jpg:", "a symbolic link"))
    leaks.append(Leak("symlink (listing)", "data/eval/link.jpg:", "not listed in metadata.csv"))
    leaks.append(Leak("symlink (report)", "data/eval/link.jpg:", "not written by the build"))
    dated = release / "data" / "train" / "m_20210614.csv"
    dated.write_text("file_name,label\n")
    leaks.append(Leak("date in a file name", "path data/train/m_2021…", "compact date"))
    leaks.append(Leak("date in a file name (report)", "data/train/m_2021…", "not written by the build"))
    leaks.append(Leak("date in a file name (listing)", "data/train/m_2021…", "not listed in metadata.csv"))

    train = [t for t in report.tiles if t.split == "train"]
    meta = release / "data" / "train" / "metadata.csv"
    flipped = train[0]
    other = "No" if flipped.label == "Yes" else "Yes"
    stranger = "d_tile_aaaaaaaaaaaa.jpg"
    (release / "data" / "train" / stranger).write_bytes(
        (release / "data" / "train" / train[1].file_name).read_bytes()
    )

    def edit(rows: list[list[str]]) -> list[list[str]]:
        out = [[name, other if name == flipped.file_name else label] for name, label in rows]
        return [*out, [stranger, "No"]]

    _rewrite(meta, edit)
    names = [row[0] for row in csv.reader(io.StringIO(meta.read_text(encoding="utf-8")))]
    line = names.index(flipped.file_name) + 1
    leaks.append(
        Leak("label flipped", f"data/train/metadata.csv:{line}:", f"labelled {other}; the build wrote")
    )
    leaks.append(
        Leak(
            "tile the report does not know",
            f"data/train/metadata.csv:{len(names)}:",
            "not a tile of the private report",
        )
    )
    leaks.append(
        Leak("tile the report does not know (file)", f"data/train/{stranger}:", "not written by the build")
    )

    corpus = Path(report.corpus)
    for kind, tile, size, at in (
        ("pasted 32x32 context patch", train[2], 32, (101, 203)),
        ("pasted 64x64 context patch", train[3], 64, (7, 400)),
    ):
        composite = open_displayed(corpus / tile.source)
        _paste(release / "data" / "train" / tile.file_name, composite, size, at)
        leaks.append(
            Leak(kind, f"data/train/{tile.file_name}:", "blocks differ from its composite's Sentinel-2 half")
        )
    rotated = train[4]
    path = release / "data" / "train" / rotated.file_name
    with Image.open(path) as image:
        turned = image.transpose(Image.Transpose.ROTATE_180)
        from builder.ingest.composite import encode_jpeg

        path.write_bytes(strip_jpeg(encode_jpeg(turned)))
    leaks.append(Leak("tile in raw orientation", f"data/train/{rotated.file_name}:", "blocks differ"))
    right = train[6]
    composite = open_displayed(corpus / right.source)
    from builder.ingest.composite import encode_jpeg

    (release / "data" / "train" / right.file_name).write_bytes(
        strip_jpeg(encode_jpeg(composite.crop((256, 0, 512, 512))))
    )
    leaks.append(
        Leak(
            "context half published",
            f"data/train/{right.file_name}:",
            "matches its composite's right (context) half",
        )
    )
    gps = train[7]
    path = release / "data" / "train" / gps.file_name
    with Image.open(path) as image:
        image.load()
        exif = Image.Exif()
        exif[0x8825] = {2: (52.0, 7.0, 30.0)}
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=95, subsampling=0, exif=exif.tobytes())
    path.write_bytes(buffer.getvalue())
    leaks.append(Leak("EXIF GPS in a tile", f"data/train/{gps.file_name}:", "APP1)"))

    # Forge the report's hashes for every file the build wrote, so the content checks must speak.
    files = {
        rel: hashlib.sha256(target.read_bytes()).hexdigest()
        if (target := release / rel).is_file()
        else digest
        for rel, digest in report.files.items()
    }
    return leaks, replace(report, files=files, release_digest=files_digest(files))


# -- corpus-level faults: one-line errors ---------------------------------------------------------


def _write(rel: str, data: bytes) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)

    return apply


def _fifo(rel: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / rel).unlink(missing_ok=True)
        os.mkfifo(root / rel)

    return apply


def _csv_manifest(root: Path) -> None:
    (root / "sft" / "train.jsonl").unlink()
    (root / "sft" / "train.csv").write_text(
        "image,label\n" + "composites/site_train_0.jpg," + "x" * 200_000 + "\n"
    )


_SITES = b"composite,lat,lon,source_db,source_id,date\n"
# (kind, change to a valid tiny corpus, fragment of the one-line error)
FATAL: list[tuple[str, Callable[[Path], None], str]] = [
    (
        "sites.csv not UTF-8",
        _write(
            "sites.csv",
            _SITES + b"composites/site_train_0.jpg,51.5,-0.1,Historic England AIM,caf\xe9,2021-06-14\n",
        ),
        "sites.csv is not UTF-8 (bad byte on line 2)",
    ),
    (
        "sites.csv latitude not a number",
        _write(
            "sites.csv",
            _SITES + b"composites/site_train_0.jpg,abc,-0.1,Historic England AIM,AIM1,2021-06-14\n",
        ),
        "line 2: the latitude is not a number",
    ),
    (
        "sites.csv latitude out of range",
        _write(
            "sites.csv",
            _SITES + b"composites/site_train_0.jpg,95.12345,-0.1,Historic England AIM,AIM1,2021-06-14\n",
        ),
        "the latitude is not a finite number within +-90 degrees",
    ),
    (
        "sites.csv NaN longitude",
        _write(
            "sites.csv",
            _SITES + b"composites/site_train_0.jpg,51.5,nan,Historic England AIM,AIM1,2021-06-14\n",
        ),
        "the longitude is not a finite number",
    ),
    (
        "sites.csv two rows for one composite",
        _write(
            "sites.csv",
            _SITES
            + b"composites/site_train_0.jpg,51.5,-0.1,Historic England AIM,AIM1,2021-06-14\ncomposites/site_train_0.jpg,52.5,-0.1,Historic England AIM,AIM2,2021-06-14\n",
        ),
        "a second, different row for one composite",
    ),
    ("sites.csv a FIFO", _fifo("sites.csv"), "sites.csv is a FIFO, not a regular file"),
    (
        "sites.csv source outside the registry, holding a coordinate",
        _write(
            "sites.csv",
            _SITES + b"composites/site_train_0.jpg,51.5,-0.1,HER at 51.50740: -0.12780,AIM1,2021-06-14\n",
        ),
        "line 2: source_db is not a source of the registry",
    ),
    (
        "sites.csv source with a glued coordinate",
        _write(
            "sites.csv",
            _SITES + b"composites/site_train_0.jpg,51.5,-0.1,Kent HER lat41.2733,AIM1,2021-06-14\n",
        ),
        "line 2: source_db is not a source of the registry",
    ),
    *(
        (
            f"sites.csv date {shown}",
            _write(
                "sites.csv",
                _SITES + b"composites/site_train_0.jpg,51.5,-0.1,Historic England AIM,AIM1," + date + b"\n",
            ),
            "line 2: the date is not an ISO date YYYY-MM-DD from 2015-06-23",
        )
        for shown, date in (
            ("day/month/year", b"14/06/2025"),
            ("ISO week", b"2025-W24"),
            ("empty", b""),
            ("before Sentinel-2", b"2014-06-14"),
            ("not a day", b"2021-02-30"),
            ("in the future", b"2999-06-14"),
        )
    ),
    (
        "sites.csv composite outside the corpus",
        _write("sites.csv", _SITES + b"../outside.jpg,51.5,-0.1,Historic England AIM,AIM1,2021-06-14\n"),
        "line 2: the composite is not a path inside the corpus",
    ),
    ("gates.json a FIFO", _fifo("gates.json"), "gates.json is a FIFO, not a file"),
    (
        "gates.json a folder",
        lambda root: (root / "gates.json").mkdir(),
        "gates.json is a folder, not a file",
    ),
    (
        "gates.json nested too deeply",
        _write("gates.json", b"[" * 100_000 + b"]" * 100_000),
        "gates.json: JSON nested too deeply",
    ),
    (
        "gates.json threshold a string",
        _write("gates.json", b'{"max_cloud": "0.3"}'),
        "gate setting max_cloud = '0.3': expected a number",
    ),
    (
        "gates.json classes not integers",
        _write("gates.json", b'{"cropland_classes": [true]}'),
        "gate setting cropland_classes",
    ),
    ("gates.json threshold a list", _write("gates.json", b'{"min_ndvi": [0.1]}'), "gate setting min_ndvi"),
    ("manifest a FIFO", _fifo("sft/train.jsonl"), "train.jsonl is a FIFO, not a regular file"),
    ("CSV field over the csv module's limit", _csv_manifest, "not CSV (field larger than field limit"),
]
