"""One composite's work in the per-tile stage of a build: what the engine's workers run.

:func:`tile_task` cuts one composite's Sentinel-2 half, runs the four gates, the halves
order, the audit's per-tile checks and the pHash, and returns a :class:`TileOutcome`; the
build (:mod:`builder.release.build`) writes what passes. It is a module of its own so that
a worker process imports only what a tile needs: importing the build would also import
the cards, the layouts and the Hub client, about a third of a second of every worker's
start (``benchmarks/bench_build.py`` prints where a build's time goes).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from builder.domain import HALF_SIZE, Reason
from builder.ingest.composite import Cut, Rejected, cut_opened, open_checked, read_composite
from builder.quality import gates, halves, sides
from builder.quality.thresholds import GateConfig
from builder.records import UNREADABLE
from builder.release import audit, leakage

CHANGED = "changed"  # not a counted Reason: the build stops (builder.release.build._write_tiles)


@dataclass(frozen=True)
class TileOutcome:
    """What a worker made of one composite: a cut that passed the gates, or a counted rejection."""

    cut: Cut | None
    reason: str | None
    detail: str
    gates: tuple[dict[str, Any], ...]
    bands: dict[str, Any] | None
    phash: tuple[int, ...] = ()  # pHash in each of leakage.VIEWS; the first is the tile as stored
    halves: dict[str, Any] | None = None  # builder.quality.halves: in order, swapped or not evaluated
    checked: audit.Checked | None = None  # the audit's per-tile checks of the cut (audit.check_tile)


def tile_task(task: tuple[str, str, GateConfig, sides.Sides, str, str | None, bool]) -> TileOutcome:
    """Worker: cut one composite (as displayed), run the four gates on it with its side files,
    and the audit's per-tile checks (``where``: the tile's path in the release).

    The composite is decoded once and the published half once: the gates, the halves check
    and the audit's half check share those pixels; the pHash reads the half at 1/8 scale, as
    it always has. ``read``: the SHA-256 of the bytes curation read
    (:func:`builder.curate.identify`; ``None``: not known), and ``decoded``: whether it
    decoded them strictly, so that the strict entropy decode is not repeated (the same bytes
    give the same verdict). A file that no longer holds those bytes, or can no longer be read,
    is not cut, whether it decoded or not: curation decided its identity, its copies and its
    split on other bytes, so the outcome's reason is :data:`CHANGED` and the build stops.
    """
    root, source, config, side_files, where, read, decoded = task
    path = Path(root) / source
    try:
        try:
            data = read_composite(path)
        except Rejected as exc:
            if read is not None and not read.startswith(UNREADABLE):  # curation read it: it changed
                detail = exc.detail.removeprefix("cannot read: ")  # said once: "it can no longer be read"
                return TileOutcome(None, CHANGED, f"it can no longer be read: {detail}", (), None)
            raise
        if read is not None and hashlib.sha256(data).hexdigest() != read:
            return TileOutcome(None, CHANGED, "its bytes are not the ones curation read", (), None)
        opened = open_checked(data, strict=read is None or not decoded)
        cut = cut_opened(opened, path)
    except Rejected as exc:
        return TileOutcome(None, exc.reason.value, exc.detail, (), None)
    displayed = opened.displayed()
    shown = np.asarray(displayed.convert("RGB"))
    audit_findings, s2_rgb = audit.inspect_image(cut.data, where)
    try:
        tile_gates = sides.evaluate_corpus_tile(
            Path(root), source, cut.data, config, side_files, displayed, s2_rgb
        )
    except sides.SideRejected as exc:
        return TileOutcome(None, exc.reason.value, exc.detail, (), None)
    results = tuple(r.as_dict() for r in tile_gates.results)
    failed = gates.first_failure(list(tile_gates.results))
    if failed is not None:
        return TileOutcome(
            None, gates.GATE_REASONS[failed.gate].value, failed.reason, results, tile_gates.read
        )
    order = halves.check_halves(shown[:, : HALF_SIZE[0]], shown[:, HALF_SIZE[0] :])
    if order.verdict == "swapped":
        return TileOutcome(
            None, Reason.SWAPPED_HALVES.value, order.reason, results, tile_gates.read, (), order.as_dict()
        )
    if s2_rgb is not None and not audit_findings:
        audit_findings.extend(audit.half_findings(s2_rgb, shown, where))
    checked = (hashlib.sha256(cut.data).hexdigest(), tuple(audit_findings))
    return TileOutcome(
        cut, None, "", results, tile_gates.read, leakage.phash_views(cut.data), order.as_dict(), checked
    )
