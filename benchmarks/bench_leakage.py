"""Near-duplicate search: the full comparison against the multi-index hashing index.

Times :func:`builder.leakage.near_duplicates` with ``method="full"`` (every train hash
against every eval hash in the four views) and ``method="index"``
(:class:`builder.leakage.HammingIndex`) on the same hashes, checks that both give the same
pairs and the same closest distance, and prints the ratio. The hashes are uniform random
64-bit values with planted near-duplicates (1 % of train tiles within 0-8 bits of one of
an eval tile's views), so both methods have pairs to find.

    python benchmarks/bench_leakage.py [--sizes 10000x10000,100000x10000] [--write]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import write_section  # noqa: E402
from builder.release import leakage  # noqa: E402


def hashes(n_train: int, n_eval: int, seed: int = 0) -> tuple[dict[str, int], dict[str, tuple[int, ...]]]:
    rng = np.random.default_rng(seed)
    train = rng.integers(0, 2**64, size=n_train, dtype=np.uint64)
    views = rng.integers(0, 2**64, size=(n_eval, 4), dtype=np.uint64)
    planted = rng.choice(n_train, size=n_train // 100, replace=False)
    for t in planted:
        value = int(views[rng.integers(n_eval), rng.integers(4)])
        for bit in rng.choice(64, size=int(rng.integers(0, 9)), replace=False):
            value ^= 1 << int(bit)
        train[t] = value
    return (
        {f"t{i:07d}": int(h) for i, h in enumerate(train)},
        {f"e{i:07d}": tuple(int(h) for h in row) for i, row in enumerate(views)},
    )


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def pattern_cost(n: int = 40_000, queries: int = 10_000) -> float:
    """How many indexed hashes one full comparison pass costs as much as one flip pattern."""
    rng = np.random.default_rng(1)
    indexed = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    asked = rng.integers(0, 2**64, size=queries, dtype=np.uint64)
    index = leakage.HammingIndex(indexed, 10)
    patterns = sum(1 for _ in index.candidates(asked, 1))
    start = time.perf_counter()
    for _ in index.candidates(asked, 1):
        pass
    per_pattern = (time.perf_counter() - start) / max(patterns, 1)
    start = time.perf_counter()
    leakage.compare_all(asked, indexed, -1)
    per_hash = (time.perf_counter() - start) / n
    return per_pattern / per_hash


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000x10000,100000x10000", help="train x eval tile counts")
    parser.add_argument("--threshold", type=int, default=leakage.DEFAULT_THRESHOLD)
    parser.add_argument("--write", action="store_true", help="write the figures to benchmarks/RESULTS.md")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    lines = [
        f"machine: {os.cpu_count()} cores, load average {load:.1f} at the start; threshold "
        f"{args.threshold} bits; eval tiles in 4 views each; one run per row"
    ]

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    for number, size in enumerate(args.sizes.split(",")):
        n_train, n_eval = (int(x) for x in size.split("x"))
        train, eval_ = hashes(n_train, n_eval)
        full_s, full = timed(leakage.near_duplicates, train, eval_, args.threshold, method="full")
        index_s, found = timed(leakage.near_duplicates, train, eval_, args.threshold, method="index")
        views = np.array([h for v in eval_.values() for h in v], dtype=np.uint64)
        ours = np.array(list(train.values()), dtype=np.uint64)
        big, small = (views, ours) if len(views) >= len(ours) else (ours, views)
        auto = leakage.HammingIndex(big, args.threshold)
        same = "same pairs and closest" if found == full else "DIFFERENT RESULTS"
        say(
            f"{n_train:>7,} train x {n_eval:>6,} eval: full comparison {full_s:7.2f} s, "
            f"index ({len(auto.blocks)} blocks) {index_s:6.2f} s = {index_s / full_s:.3f}x "
            f"({same}: {len(full[0])} pairs, closest {full[1]})"
        )
        if number:  # the exact-match variant only at the first size (it is the slowest)
            continue
        pigeon = leakage.HammingIndex(big, args.threshold, args.threshold + 1)
        pigeon_s, pigeon_found = timed(pigeon.search, small)
        say(
            f"{'':>25}pigeonhole's m = threshold + 1 = {args.threshold + 1} exact-match blocks: "
            f"{pigeon_s:6.2f} s = {pigeon_s / full_s:.3f}x (pair search and closest; "
            f"{len(pigeon_found[0])} entries within the threshold)"
        )
    say(f"one flip pattern costs a full comparison pass over {pattern_cost():.0f} indexed hashes")
    if args.write:
        write_section("bench_leakage", "Near-duplicate search (`benchmarks/bench_leakage.py`)", lines)


if __name__ == "__main__":
    main()
