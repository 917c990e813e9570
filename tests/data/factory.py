"""Seeded generators of small corpora and of every kind of bad input, as code.

The full-scale sample corpus comes from :mod:`builder.testing.sample`; these helpers
make tiny corpora (a few tiles) that one test can bend in one way.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from builder.testing.sample import _row, context_half, s2_half


def composite_pixels(seed: int, label: str = "No") -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([s2_half(rng, label), context_half(rng)], axis=1)  # type: ignore[arg-type]


def jpeg_bytes(pixels: np.ndarray, subsampling: int = -1, **kw: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=95, subsampling=subsampling, **kw)
    return buf.getvalue()


def png_bytes(width: int, height: int, bit_depth: int, color_type: int, raw: bytes) -> bytes:
    """A PNG written chunk by chunk (Pillow cannot write 16-bit RGB or lie about size)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def png16_rgb(seed: int) -> bytes:
    pixels = composite_pixels(seed).astype(">u2") * 257
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)
    return png_bytes(512, 512, 16, 2, raw)


def png_bomb() -> bytes:
    """A few hundred bytes whose header promises 60,000 x 60,000 pixels."""
    return png_bytes(60_000, 60_000, 8, 2, b"\x00" * 64)


class TinyCorpus:
    """A corpus of a few valid tiles per split that a test extends with bad rows and files."""

    def __init__(self, root: Path, train: int = 4, eval_: int = 2, seed: int = 100) -> None:
        self.root = root
        self.rows: dict[str, list[str]] = {"train": [], "eval": []}
        (root / "composites").mkdir(parents=True)
        (root / "sft").mkdir()
        n = 0
        for split, count in (("train", train), ("eval", eval_)):
            for i in range(count):
                label = "Yes" if i % 2 else "No"
                rel = f"composites/site_{split}_{i}.jpg"
                (root / rel).write_bytes(jpeg_bytes(composite_pixels(seed + n, label)))
                self.add_row(split, rel, label)
                n += 1

    def add_row(self, split: str, image: str, label: str) -> None:
        self.rows[split].append(json.dumps(_row(image, label)))

    def add_raw_line(self, split: str, line: str) -> None:
        self.rows[split].append(line)

    def add_file(self, rel: str, data: bytes, split: str = "train", label: str = "No") -> None:
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (self.root / rel).write_bytes(data)
        self.add_row(split, rel, label)

    def write(self) -> Path:
        for split, lines in self.rows.items():
            (self.root / "sft" / f"{split}.jsonl").write_bytes(
                b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines)
            )
        return self.root
