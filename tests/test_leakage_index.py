"""The near-duplicate index finds exactly the pairs of the full comparison.

A reference written with Python integers (no NumPy) is the judge; the full comparison and the
multi-index hashing search (:class:`builder.leakage.HammingIndex`) must both agree with it on
random hash sets and on sets made to be hard: clusters of close hashes, all hashes equal,
hashes that differ only across block boundaries, complements (64 bits apart), the thresholds 0
and 63, and eval tiles seen in the four views or in one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from builder.release import leakage
from builder.release.leakage import VIEWS, HammingIndex, Pair, near_duplicates


def reference(
    train: Mapping[str, int], eval_: Mapping[str, Sequence[int]], threshold: int
) -> tuple[list[Pair], int | None]:
    """Every pair compared with Python integers: the definition the index must meet."""
    if not train or not eval_:
        return [], None
    count = min(len(v) for v in eval_.values())
    pairs, closest = [], 64
    for t in sorted(train):
        for e in sorted(eval_):
            ds = [bin(train[t] ^ v).count("1") for v in eval_[e][:count]]
            best = min(ds)
            closest = min(closest, best)
            if best <= threshold:
                pairs.append(Pair(t, e, best, VIEWS[ds.index(best)]))
    pairs.sort(key=lambda p: (p.distance, p.train, p.eval))
    return pairs, closest


def random_hashes(rng: np.random.Generator, n: int) -> list[int]:
    return [int(x) for x in rng.integers(0, 2**64, size=n, dtype=np.uint64)]


def flip(rng: np.random.Generator, value: int, bits: int) -> int:
    for b in rng.choice(64, size=bits, replace=False):
        value ^= 1 << int(b)
    return value


def agree(train: dict[str, int], eval_: dict[str, tuple[int, ...]], threshold: int) -> list[Pair]:
    expected = reference(train, eval_, threshold)
    assert near_duplicates(train, eval_, threshold, method="full") == expected
    assert near_duplicates(train, eval_, threshold, method="index") == expected
    assert near_duplicates(train, eval_, threshold) == expected
    # Whichever side is indexed, and with the pigeonhole's m = threshold + 1 blocks or others.
    ours = np.array(list(train.values()), dtype=np.uint64)
    theirs = np.array([h for v in eval_.values() for h in v], dtype=np.uint64)
    truth = {
        (i, j)
        for i, a in enumerate(ours.tolist())
        for j, b in enumerate(theirs.tolist())
        if bin(a ^ b).count("1") <= threshold
    }
    for count in {1, 2, 4, min(64, threshold + 1), 64}:
        index = HammingIndex(theirs, threshold, count)
        q, i, d, closest = index.search(ours)
        if count == threshold + 1:  # the pigeonhole's exact-match blocks: always the index
            assert not index.pairs_compared_all
        assert set(zip(q.tolist(), i.tolist(), strict=True)) == truth
        assert len(q) == len(truth)  # each pair once
        assert (d <= threshold).all()
        if expected[1] is not None:
            assert closest == min(bin(a ^ b).count("1") for a in ours.tolist() for b in theirs.tolist())
    return expected[0]


def views_of(rng: np.random.Generator, base: int) -> tuple[int, ...]:
    return (base, *random_hashes(rng, 3))


@pytest.mark.parametrize("seed", range(6))
def test_random_sets_at_every_kind_of_threshold(seed: int) -> None:
    rng = np.random.default_rng(seed)
    threshold = int(rng.choice([0, 1, 5, 10, 16, 31, 40, 63]))
    train = {f"t{i}": h for i, h in enumerate(random_hashes(rng, 60))}
    eval_ = {f"e{i}": views_of(rng, h) for i, h in enumerate(random_hashes(rng, 25))}
    # Plant copies: some train tiles a few bits from an eval tile's view (any of the four).
    for i in range(15):
        e = eval_[f"e{i}"]
        train[f"t{i}"] = flip(rng, e[i % 4], int(rng.integers(0, 14)))
    agree(train, eval_, threshold)


@pytest.mark.parametrize("threshold", [0, 3, 10, 63])
def test_clusters_of_close_hashes(threshold: int) -> None:
    rng = np.random.default_rng(threshold)
    centres = random_hashes(rng, 4)
    train = {f"t{i}": flip(rng, centres[i % 4], int(rng.integers(0, 8))) for i in range(80)}
    eval_ = {
        f"e{i}": tuple(flip(rng, centres[(i + k) % 4], int(rng.integers(0, 8))) for k in range(4))
        for i in range(30)
    }
    pairs = agree(train, eval_, threshold)
    if threshold >= 10:
        assert len(pairs) > 100  # the clusters make many pairs, so the check has something to check


@pytest.mark.parametrize("threshold", [0, 10, 63])
def test_all_equal_complements_and_block_boundaries(threshold: int) -> None:
    same = 0x0123_4567_89AB_CDEF
    assert (
        len(agree({f"t{i}": same for i in range(20)}, {f"e{i}": (same,) * 4 for i in range(9)}, threshold))
        == 180
    )
    # Complements are 64 bits apart: no pair at any threshold, and the closest is 64.
    ones = (1 << 64) - 1
    assert agree({"t": 0, "u": 0}, {"e": (ones,), "f": (ones,)}, threshold) == []
    assert near_duplicates({"t": 0}, {"e": (ones,)}, threshold, method="index")[1] == 64
    # Differences spread so that each block of an index differs by one bit, or all in one block.
    train = {f"s{k}": sum(1 << b for b in range(0, 64, k)) for k in range(1, 17)}
    train |= {f"w{k}": (1 << k) - 1 for k in range(0, 64, 5)}
    eval_ = {"zero": (0, 0, 0, 0), "top": ((1 << 64) - (1 << 48), 0, 0, 0), "one": (1, ones, ones, ones)}
    agree(train, eval_, threshold)


def test_one_view_and_four_views_mixed() -> None:
    """An eval tile given as one hash counts one view for all, as the full comparison does."""
    rng = np.random.default_rng(7)
    base = random_hashes(rng, 10)
    train = {f"t{i}": flip(rng, h, 3) for i, h in enumerate(base)}
    eval_ = {f"e{i}": (h, *random_hashes(rng, 3)) for i, h in enumerate(base)}
    eval_["single"] = (base[0],)
    agree(train, eval_, 4)
    assert near_duplicates({"t": 5}, {"e": 4}, 1, method="index") == ([Pair("t", "e", 1)], 1)


def test_the_closest_pair_beyond_the_threshold_is_exact() -> None:
    """With no pair within the threshold, the index widens its block radius (or compares every
    pair where that is cheaper) until the smallest distance is certain."""
    rng = np.random.default_rng(11)
    for gap in (11, 14, 20, 33, 50):
        train = {f"t{i}": h for i, h in enumerate(random_hashes(rng, 40))}
        eval_ = {f"e{i}": (flip(rng, (1 << 64) - 1 - train[f"t{i}"], 64 - gap),) for i in range(5)}
        pairs, closest = near_duplicates(train, eval_, 10, method="index")
        assert (pairs, closest) == reference(train, eval_, 10)
        assert closest is not None and closest <= gap
        ours = np.array(list(train.values()), dtype=np.uint64)
        index = HammingIndex(ours, 10, 8)  # 8 blocks of 8 bits: radius 1 a block, then wider
        assert index.search(np.array([v[0] for v in eval_.values()], dtype=np.uint64))[3] == closest
        assert not index.closest_compared_all  # found by widening, not by comparing every pair
        one = HammingIndex(ours, 10, 1)  # one 64-bit block: radius 10 is C(64, 10) patterns, too many
        assert one.search(np.array([v[0] for v in eval_.values()], dtype=np.uint64))[3] == closest
        assert one.pairs_compared_all and one.closest_compared_all


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="method"):
        near_duplicates({"t": 1}, {"e": 1}, 1, method="fast")
    with pytest.raises(ValueError, match="radius"):
        HammingIndex(np.zeros(3, dtype=np.uint64), 64)
    with pytest.raises(ValueError, match="block count"):
        leakage.blocks(65)
    assert sum(width for _, width in leakage.blocks(11)) == 64
