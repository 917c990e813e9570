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
a window moved by a tenth of the tile or more. The pairs (and the closest distance)
are always those of comparing every pair; past :data:`BRUTE_FORCE_PAIRS`
comparisons they are found with a multi-index hash (:class:`HammingIndex`, below
quadratic; the method and its source are described above it).

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
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
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


# --- Near-duplicate search below quadratic -------------------------------------------------
#
# Multi-index hashing (M. Norouzi, A. Punjani, D. J. Fleet, "Fast Search in Hamming Space with
# Multi-Index Hashing", CVPR 2012; the pigeonhole principle in its Proposition 1). Split the 64
# bits into ``m`` disjoint blocks. If two hashes differ in at most ``r`` bits, some block differs
# in at most ``r // m`` bits: were every block ``r // m + 1`` or more apart, the whole hashes would
# differ in at least ``m * (r // m + 1) > r`` bits. So every pair within ``r`` is among the pairs
# that agree on some block up to ``r // m`` flipped bits; those candidates are looked up in a
# sorted table per block and then verified with their exact 64-bit distance, so the result is
# exactly the full comparison's. With ``m = r + 1`` each block must match exactly; the paper's
# choice, blocks of about log2(n) bits for n indexed hashes, keeps the table sparse (about one
# hash per block value) at the price of enumerating the few flips within ``r // m`` bits.

BRUTE_FORCE_PAIRS = 1 << 22  # below this many (train, eval view) comparisons, compare every pair
_CHUNK = 1 << 22  # comparisons per step of the full comparison (bounded memory)
# One flip pattern (a table lookup of every query) costs about as much as comparing every query
# with this many indexed hashes (benchmarks/bench_leakage.py prints it: 2 to 6 in its runs; 8
# leaves a margin). Up to _MIN_PATTERNS patterns are enumerated whatever the size. Only the
# speed depends on these two, never the result.
_PATTERN_COST = 8
_MIN_PATTERNS = 4096
_DENSE_BITS = 22  # a block this narrow gets a table of 2**bits + 1 start offsets (32 MiB at 22 bits)


def blocks(count: int) -> list[tuple[int, int]]:
    """``count`` disjoint blocks covering the 64 bits as evenly as possible, as (shift, width)."""
    if not 1 <= count <= 64:
        raise ValueError(f"block count {count}; use 1 to 64")
    widths = [64 // count + (k < 64 % count) for k in range(count)]
    shifts = [sum(widths[k + 1 :]) for k in range(count)]
    return list(zip(shifts, widths, strict=True))


def block_count(radius: int, indexed: int) -> int:
    """Blocks for a search within ``radius`` bits over ``indexed`` hashes: about log2(n) bits a
    block (at most ``radius + 1`` blocks: more could only be searched within 0 bits as well)."""
    bits = max(8.0, math.log2(max(indexed, 2)))
    return max(1, min(radius + 1, round(64 / bits)))


def _popcount(x: np.ndarray) -> np.ndarray:
    counts: np.ndarray = np.bitwise_count(x).astype(np.int64)
    return counts


def _flips(width: int, weight: int) -> np.ndarray:
    """Every ``width``-bit pattern with exactly ``weight`` bits set."""
    return np.array(
        [sum(1 << b for b in bits) for bits in itertools.combinations(range(width), weight)], dtype=np.uint64
    )


class HammingIndex:
    """Multi-index hashing over 64-bit hashes: every hash within ``radius`` bits of a query,
    exactly (see the method above).

    Args:
        hashes: the indexed hashes (uint64).
        radius: the search radius in bits (0 to 63).
        count: blocks (default: :func:`block_count`).
    """

    def __init__(self, hashes: np.ndarray, radius: int, count: int | None = None) -> None:
        if not 0 <= radius < 64:
            raise ValueError(f"radius {radius}; use 0 to 63 bits")
        self.hashes = np.asarray(hashes, dtype=np.uint64)
        self.radius = radius
        self.blocks = blocks(count or block_count(radius, len(self.hashes)))
        # Set by a search that compared every pair instead, for the pairs or for the closest.
        self.pairs_compared_all = False
        self.closest_compared_all = False
        # Per block: (start offsets by block value, or the sorted block values; indexed hashes in order).
        self._tables: list[tuple[np.ndarray, np.ndarray]] = []
        for shift, width in self.blocks:
            keys = self._key(self.hashes, shift, width)
            order = np.argsort(keys, kind="stable")
            if width <= _DENSE_BITS:  # where each block value starts in ``order``: one lookup
                counts = np.bincount(keys.astype(np.int64), minlength=1 << width)
                self._tables.append((np.concatenate([[0], np.cumsum(counts)]), order))
            else:  # wide blocks (few of them): binary search in the sorted keys
                self._tables.append((keys[order], order))

    @staticmethod
    def _key(values: np.ndarray, shift: int, width: int) -> np.ndarray:
        mask = np.uint64((1 << width) - 1)
        keys: np.ndarray = (values >> np.uint64(shift)) & mask
        return keys

    def candidates(self, queries: np.ndarray, level: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(query index, indexed index) of every pair whose block differs in exactly ``level`` bits,
        block by block and flip pattern by flip pattern (bounded memory)."""
        for (shift, width), (keys, order) in zip(self.blocks, self._tables, strict=True):
            if level > width:
                continue
            mine = self._key(queries, shift, width)
            for flip in _flips(width, level):
                wanted = mine ^ flip
                if width <= _DENSE_BITS:
                    lo, hi = keys[wanted], keys[wanted + np.uint64(1)]
                else:
                    lo = np.searchsorted(keys, wanted, side="left")
                    hi = np.searchsorted(keys, wanted, side="right")
                hits = hi - lo
                if not hits.any():
                    continue
                rows = np.repeat(np.arange(len(queries)), hits)
                starts = np.repeat(lo - np.cumsum(hits) + hits, hits)
                yield rows, order[starts + np.arange(len(rows))]

    def _affordable(self, patterns: int) -> bool:
        """Whether enumerating ``patterns`` flip patterns costs less than comparing every pair."""
        return patterns <= max(_MIN_PATTERNS, len(self.hashes) // _PATTERN_COST)

    def search(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Every (query index, indexed index, distance) within the radius, each pair once and
        sorted by query then indexed hash, and the smallest distance of all pairs.

        Where the radius needs more flip patterns per block than comparing every pair costs (a
        wide radius over few blocks), every pair is compared instead (:attr:`pairs_compared_all`).
        """
        queries = np.asarray(queries, dtype=np.uint64)
        per_block = self.radius // len(self.blocks)
        patterns = sum(math.comb(width, level) for _, width in self.blocks for level in range(per_block + 1))
        if not self._affordable(patterns):
            self.pairs_compared_all = self.closest_compared_all = True
            return compare_all(queries, self.hashes, self.radius)
        found_q, found_i = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=np.int64)]
        best = 64
        for level in range(per_block + 1):
            for rows, cols in self.candidates(queries, level):
                d = _popcount(queries[rows] ^ self.hashes[cols])
                best = min(best, int(d.min()))
                keep = d <= self.radius
                found_q.append(rows[keep])
                found_i.append(cols[keep])
        size = max(len(self.hashes), 1)
        key = np.unique(np.concatenate(found_q) * size + np.concatenate(found_i))  # found via several blocks
        q, i = key // size, key % size
        return q, i, _popcount(queries[q] ^ self.hashes[i]), self._closest(queries, best, per_block, patterns)

    def _closest(self, queries: np.ndarray, best: int, level: int, patterns: int) -> int:
        """The smallest distance of all pairs, given the smallest ``best`` among the candidates of
        block radii up to ``level`` (``patterns`` flip patterns so far): once every block was
        searched to ``s`` flipped bits, every pair closer than ``m * (s + 1)`` bits has been seen
        (pigeonhole, as above), so the search goes on radius by radius until ``best`` is below
        that bound, or compares every pair where that is cheaper than the next radius."""
        count = len(self.blocks)
        while best > count * (level + 1) - 1:
            level += 1
            patterns += sum(math.comb(width, level) for _, width in self.blocks)
            if not self._affordable(patterns):
                self.closest_compared_all = True
                return compare_all(queries, self.hashes, -1)[3]
            for rows, cols in self.candidates(queries, level):
                best = min(best, int(_popcount(queries[rows] ^ self.hashes[cols]).min()))
        return best


def compare_all(
    queries: np.ndarray, hashes: np.ndarray, radius: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The full comparison, a block of queries at a time: (query, indexed, distance) within
    ``radius`` (sorted) and the smallest distance of all pairs."""
    step = max(1, _CHUNK // max(len(hashes), 1))
    found_q, found_i, found_d = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=np.int64)], []
    found_d.append(np.empty(0, dtype=np.int64))
    best = 64
    for start in range(0, len(queries), step):
        d = _popcount(queries[start : start + step, None] ^ hashes[None, :])
        best = min(best, int(d.min()))
        rows, cols = np.nonzero(d <= radius)
        found_q.append(rows + start)
        found_i.append(cols)
        found_d.append(d[rows, cols])
    return np.concatenate(found_q), np.concatenate(found_i), np.concatenate(found_d), best


def near_duplicates(
    train: Mapping[str, int],
    eval_: Mapping[str, int | Sequence[int]],
    threshold: int = DEFAULT_THRESHOLD,
    method: str = "auto",
) -> tuple[list[Pair], int | None]:
    """Every (train, eval) pair at Hamming distance <= ``threshold``, and the smallest distance seen.

    The result is the full comparison's, whichever way it is found: ``method`` ``full``
    compares every pair, ``index`` looks pairs up in a :class:`HammingIndex` (multi-index
    hashing, below quadratic); ``auto`` compares every pair up to :data:`BRUTE_FORCE_PAIRS`
    comparisons and uses the index beyond.

    Args:
        train: published train file name -> pHash.
        eval_: published eval file name -> pHash, or its pHashes in the :data:`VIEWS`
            (:func:`phash_views`): then a train tile's distance to an eval tile is the smallest
            over the views, so a mirrored or upside-down copy is found like a re-encoded one.
        threshold: 0 to 63 bits.
        method: ``auto``, ``full`` or ``index``.
    """
    if method not in ("auto", "full", "index"):
        raise ValueError(f"method {method!r}; use auto, full or index")
    if not train or not eval_:
        return [], None
    names_t, names_e = sorted(train), sorted(eval_)
    views = [(h,) if isinstance(h, int) else tuple(h) for h in (eval_[n] for n in names_e)]
    count = min(len(v) for v in views)
    ours = np.array([train[n] for n in names_t], dtype=np.uint64)
    # Eval tile j seen in view k is entry j * count + k.
    theirs = np.array([v[k] for v in views for k in range(count)], dtype=np.uint64)
    if method == "auto":
        method = "full" if len(ours) * len(theirs) <= BRUTE_FORCE_PAIRS else "index"
    if method == "full":
        t, e, d, closest = compare_all(ours, theirs, threshold)
    elif len(theirs) >= len(ours):  # index the larger side, query with the smaller
        t, e, d, closest = HammingIndex(theirs, threshold).search(ours)
    else:
        e, t, d, closest = HammingIndex(ours, threshold).search(theirs)
    j, k = e // count, e % count
    # Per (train, eval) pair: the smallest distance over the views, the first such view.
    order = np.lexsort((k, d, j, t))
    t, j, k, d = t[order], j[order], k[order], d[order]
    first = np.ones(len(t), dtype=bool)
    first[1:] = (t[1:] != t[:-1]) | (j[1:] != j[:-1])
    pairs = [
        Pair(names_t[r], names_e[c], int(dist), VIEWS[int(view)])
        for r, c, dist, view in zip(t[first], j[first], d[first], k[first], strict=True)
    ]
    pairs.sort(key=lambda p: (p.distance, p.train, p.eval))
    return pairs, closest


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
