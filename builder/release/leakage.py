"""Train/eval leakage: near-duplicate pixels (pHash) and shared sites across splits.

Exact copies are caught earlier by content identity (curation); this module
catches the same place published twice, in two ways.

**Pixels.** A re-encoded, slightly shifted or brightened copy of an eval tile in
train. Each tile gets a 64-bit DCT perceptual hash (pHash, as
``imagehash.phash``: grey 32x32, 2-D DCT-II, the 8x8 lowest frequencies compared
with their median); a train tile within ``threshold`` bits (Hamming distance) of
an eval tile is reported with its distance, and can be dropped from train.

The threshold is a trade-off: two independent 64-bit hashes differ in 32 bits on
average. On the sample corpora, seeded re-encoded, shifted and brightened copies
landed 0-4 bits from their originals and the closest unrelated train/eval pair
was 14 bits apart, so the default of 10 separates them. The build report keeps
the smallest cross-split distance it saw, so a corpus whose unrelated tiles
crowd the threshold shows it. pHash alone does not see a mirrored or upside-down
copy (it lands as far from the original as unrelated tiles do), so every train tile
is compared with each eval tile in the four :data:`VIEWS` (as stored, mirrored,
upside down, turned half a turn) and the smallest distance counts. What it still
cannot see, measured on the sample tiles in the tests (``tests/test_leakage.py``):
a window moved by a tenth of the tile or more.

**Sites.** With the private ``sites.csv``, a train tile and an eval tile are one
site when they come from the same source record (``source_db`` and a non-empty ``source_id``)
or their points are closer than ``site_distance`` metres (great-circle distance on
the mean Earth sphere, radius 6,371,008.8 m). The default, 2,560 m, is the width of
a published tile (256 px at 10 m): two north-up tiles of 2.56 km x 5.12 km whose
centres are closer than that always share ground, whatever the direction. Tiles
further apart can still overlap along the long side (up to 5.12 km north-south);
raise ``site_distance`` to catch those too. A revisit of a site (another date, a
window moved by 16-32 px, a flipped copy) is found here whatever pHash says;
tiles without a ``sites.csv`` row are not checked, and the report counts them.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

from builder.ingest.corpus import Site

HASH_SIZE = 8  # 8x8 low frequencies -> 64 bits
SCALE = 4  # the grey image is HASH_SIZE * SCALE = 32 px square before the DCT
DEFAULT_THRESHOLD = 10
# The ways a copy of a 256x512 tile can come back as another 256x512 tile without new pixels;
# a quarter turn would make it 512x256.
VIEWS = ("as stored", "mirrored", "upside down", "turned half a turn")
EARTH_RADIUS_M = 6_371_008.8  # IUGG mean radius
DEFAULT_SITE_DISTANCE_M = 2_560.0  # one tile width: 256 px at 10 m
MAX_SITE_DISTANCE_M = 100_000.0


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


def _grey(data: bytes) -> np.ndarray:
    size = HASH_SIZE * SCALE
    with Image.open(io.BytesIO(data)) as image:
        image.draft("L", (size, size))
        grey = image.convert("L").resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(grey)


def phash(data: bytes) -> int:
    """pHash of an encoded image (JPEG decoding uses DCT scaling: cheap)."""
    return phash_pixels(_grey(data))


def phash_views(data: bytes) -> tuple[int, ...]:
    """pHash of an encoded image in each of :data:`VIEWS`: as stored, mirrored, upside down,
    and turned half a turn (the flips of its 32x32 grey image; one decode)."""
    grey = _grey(data)
    return tuple(phash_pixels(view) for view in (grey, grey[:, ::-1], grey[::-1], grey[::-1, ::-1]))


def distances(a: Sequence[int], b: Sequence[int]) -> np.ndarray:
    """Hamming distances between every hash of ``a`` and every hash of ``b`` (len(a) x len(b))."""
    left = np.array(a, dtype=np.uint64)[:, None]
    right = np.array(b, dtype=np.uint64)[None, :]
    counts: np.ndarray = np.bitwise_count(left ^ right).astype(np.int64)
    return counts


@dataclass(frozen=True, slots=True)
class Pair:
    """A train tile within the threshold of an eval tile (seen as the eval tile's ``view``)."""

    train: str
    eval: str
    distance: int
    view: str = VIEWS[0]


def near_duplicates(
    train: Mapping[str, int],
    eval_: Mapping[str, int | Sequence[int]],
    threshold: int = DEFAULT_THRESHOLD,
) -> tuple[list[Pair], int | None]:
    """Every (train, eval) pair at Hamming distance <= ``threshold``, and the smallest distance seen.

    Args:
        train: published train file name -> pHash.
        eval_: published eval file name -> pHash, or its pHashes in the :data:`VIEWS`
            (:func:`phash_views`): then a train tile's distance to an eval tile is the smallest
            over the views, so a mirrored or upside-down copy is found like a re-encoded one.
    """
    if not train or not eval_:
        return [], None
    names_t, names_e = sorted(train), sorted(eval_)
    views = [(h,) if isinstance(h, int) else tuple(h) for h in (eval_[n] for n in names_e)]
    count = min(len(v) for v in views)
    stack = np.stack([distances([train[n] for n in names_t], [v[k] for v in views]) for k in range(count)])
    d, which = stack.min(axis=0), stack.argmin(axis=0)
    rows, cols = np.nonzero(d <= threshold)
    pairs = [
        Pair(names_t[r], names_e[c], int(d[r, c]), VIEWS[int(which[r, c])])
        for r, c in zip(rows, cols, strict=True)
    ]
    pairs.sort(key=lambda p: (p.distance, p.train, p.eval))
    return pairs, int(d.min())


@dataclass(frozen=True, slots=True)
class SitePair:
    """A train tile of the same site as an eval tile."""

    train: str
    eval: str
    metres: float
    same_record: bool


def great_circle_m(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Haversine distance in metres between points given in degrees (broadcasting)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2) - np.radians(lon1)
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    metres: np.ndarray = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    return metres


def _record(site: Site) -> tuple[str, str] | None:
    """The source record of a site (surrounding spaces ignored), or None without an id: two sites
    with an empty ``source_id`` are not one record (they would pair every such tile)."""
    source_id = site.source_id.strip()
    return (site.source_db.strip(), source_id) if source_id else None


def same_sites(
    train: Mapping[str, Site], eval_: Mapping[str, Site], distance_m: float = DEFAULT_SITE_DISTANCE_M
) -> tuple[list[SitePair], float | None]:
    """Every (train, eval) pair of one site, and the smallest train/eval distance seen (metres).

    One site: the same ``(source_db, source_id)`` (a non-empty id; spaces around either are
    ignored), or points closer than ``distance_m``.

    Args:
        train: published train file name -> its site.
        eval_: published eval file name -> its site.
    """
    if not train or not eval_:
        return [], None
    names_t, names_e = sorted(train), sorted(eval_)
    lat_e = np.array([eval_[n].lat for n in names_e])[None, :]
    lon_e = np.array([eval_[n].lon for n in names_e])[None, :]
    records_e: dict[tuple[str, str], list[int]] = {}
    for j, name in enumerate(names_e):
        if (key := _record(eval_[name])) is not None:
            records_e.setdefault(key, []).append(j)
    pairs: list[SitePair] = []
    closest = np.inf
    for start in range(0, len(names_t), 1024):  # bounded memory: 1024 x n_eval distances at a time
        block = names_t[start : start + 1024]
        lat_t = np.array([train[n].lat for n in block])[:, None]
        lon_t = np.array([train[n].lon for n in block])[:, None]
        d = great_circle_m(lat_t, lon_t, lat_e, lon_e)
        closest = min(closest, float(d.min()))
        near = d < distance_m
        for i, name in enumerate(block):
            key = _record(train[name])
            same = set(records_e.get(key, [])) if key is not None else set()
            for j in sorted(same | set(np.flatnonzero(near[i]).tolist())):
                pairs.append(SitePair(name, names_e[j], round(float(d[i, j]), 1), j in same))
    pairs.sort(key=lambda p: (p.metres, p.train, p.eval))
    return pairs, round(closest, 1)
