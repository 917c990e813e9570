"""Train/eval leakage: perceptual hashes of published tiles and near-duplicates across splits.

Exact copies are caught earlier by content hash (curation); this catches the
same place published twice: a re-encoded, slightly shifted or brightened copy of
an eval tile in train. Each tile gets a 64-bit DCT perceptual hash (pHash, as
``imagehash.phash``: grey 32x32, 2-D DCT-II, the 8x8 lowest frequencies compared
with their median); a train tile within ``threshold`` bits (Hamming distance) of
an eval tile is reported with its distance, and can be dropped from train.

The threshold is a trade-off: two independent 64-bit hashes differ in 32 bits on
average. On the sample corpora, seeded re-encoded, shifted and brightened copies
landed 0-4 bits from their originals and the closest unrelated train/eval pair
was 14 bits apart, so the default of 10 separates them. The build report keeps
the smallest cross-split distance it saw, so a corpus whose unrelated tiles
crowd the threshold shows it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

HASH_SIZE = 8  # 8x8 low frequencies -> 64 bits
SCALE = 4  # the grey image is HASH_SIZE * SCALE = 32 px square before the DCT
DEFAULT_THRESHOLD = 10


@cache
def dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix ``C`` (``C @ x`` is the DCT of column ``x``)."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    matrix[0] /= np.sqrt(2)
    return np.asarray(matrix, dtype=np.float64)


def phash_pixels(grey: np.ndarray) -> int:
    """pHash of a 32x32 grey image (any real dtype)."""
    size = HASH_SIZE * SCALE
    if grey.shape != (size, size):
        raise ValueError(f"expected a {size}x{size} grey image, got {grey.shape}")
    c = dct_matrix(size)
    low = (c @ grey.astype(np.float64) @ c.T)[:HASH_SIZE, :HASH_SIZE]
    bits = (low > np.median(low)).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def phash(data: bytes) -> int:
    """pHash of an encoded image (JPEG decoding uses DCT scaling: cheap)."""
    size = HASH_SIZE * SCALE
    with Image.open(io.BytesIO(data)) as image:
        image.draft("L", (size, size))
        grey = image.convert("L").resize((size, size), Image.Resampling.LANCZOS)
    return phash_pixels(np.asarray(grey))


def distances(a: Sequence[int], b: Sequence[int]) -> np.ndarray:
    """Hamming distances between every hash of ``a`` and every hash of ``b`` (len(a) x len(b))."""
    left = np.array(a, dtype=np.uint64)[:, None]
    right = np.array(b, dtype=np.uint64)[None, :]
    counts: np.ndarray = np.bitwise_count(left ^ right).astype(np.int64)
    return counts


@dataclass(frozen=True, slots=True)
class Pair:
    """A train tile within the threshold of an eval tile."""

    train: str
    eval: str
    distance: int


def near_duplicates(
    train: dict[str, int], eval_: dict[str, int], threshold: int = DEFAULT_THRESHOLD
) -> tuple[list[Pair], int | None]:
    """Every (train, eval) pair at Hamming distance <= ``threshold``, and the smallest distance seen.

    Args:
        train: published train file name -> pHash.
        eval_: published eval file name -> pHash.
    """
    if not train or not eval_:
        return [], None
    names_t, names_e = sorted(train), sorted(eval_)
    d = distances([train[n] for n in names_t], [eval_[n] for n in names_e])
    rows, cols = np.nonzero(d <= threshold)
    pairs = [Pair(names_t[r], names_e[c], int(d[r, c])) for r, c in zip(rows, cols, strict=True)]
    pairs.sort(key=lambda p: (p.distance, p.train, p.eval))
    return pairs, int(d.min())
