"""``cropmark collect``: a private site list -> a corpus that ``cropmark build`` accepts.

For each site, in the site list's order:

1. **search** the STAC API (:class:`~builder.collect.stac.Catalogue`) for items of the
   collection whose footprint holds the site, acquired within ``window_days`` of its date;
2. **measure** each acquisition's cloud and cloud shadow **over the site's window**, closest
   date first: from its SCL band (classes 3, 8, 9, 10, as gate 2 counts them), or, for a
   Level-1C item without SCL, with the project's cloud detector (s2cloudless,
   :mod:`builder.raster.clouds`) on the window's bands; the scene-wide ``eo:cloud_cover`` is recorded
   but never decides. An acquisition that covers less of the window than the gates'
   ``min_side_coverage`` is not used. The measure stops at the first clear acquisition
   (none later can beat it);
3. **choose** the least cloud, then the closest date; a site whose best is cloudier than gate
   2's ``max_cloud`` is skipped (``cloudy``), never collected;
4. **read** the window of B02, B03, B04, B05, B08 and SCL (a Level-1C item: the detector's
   bands instead of SCL) from the COGs (:mod:`builder.collect.fetch`), write
   ``bands/<site>.tif``, and make the Sentinel-2 half from it with the project's raster path
   (:func:`builder.raster.bands.read_bands`: offset, no data, plausibility; the false colour);
5. **context**: the right half from the provider (:mod:`builder.collect.context`);
6. **write** ``composites/<site>.jpg`` (512 x 512, q95 4:4:4) and record the site in the
   journal ``.collect/journal.jsonl``; the four gates are evaluated as the build will and
   counted.

Then ``sft/train.jsonl``, ``sft/eval.jsonl`` (the project's prompt, the site list's label) and
the private ``sites.csv`` (the columns the build reads, plus which item was chosen and why) are
written from the journal and the site list, each to a temporary name and renamed.

**Resume**: a site whose journal entry matches its request (point, date, window, collection,
catalogue, context) and whose files are there is not fetched again; labels and splits come
from the site list each run. **Failures**: every remote failure left after the retries
(:mod:`builder.collect.remote`) and every unusable acquisition is a counted skip with its
reason; bad input (site list, options, an unreachable catalogue, an unknown collection, a
missing Mapbox token) is one line before anything is fetched or written.
"""

from __future__ import annotations

import csv
import datetime
import fcntl
import io
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from builder import progress
from builder.collect import fetch
from builder.collect.context import ContextProvider, provider
from builder.collect.remote import Remote, RemoteError, redact
from builder.collect.sites import SiteRequest, read_site_list
from builder.collect.stac import Candidate, Catalogue, candidates
from builder.errors import CropmarkError, Interrupted
from builder.ingest.composite import encode_jpeg
from builder.ingest.corpus import SITE_COLUMNS, SITES_FILE
from builder.model.prompt import sft_row
from builder.quality import gates
from builder.quality.thresholds import GateConfig, load_config
from builder.raster import bands as raster
from builder.raster import clouds

DEFAULT_COLLECTION = "sentinel-2-l2a"
DEFAULT_WINDOW_DAYS = 30
DEFAULT_SIZE_M = (2560.0, 5120.0)  # 256 x 512 px at 10 m: the half needs no resizing
TILE_BANDS = ("B02", "B03", "B04", "B05", "B08")  # the gates' bands (brightness, NDVI, false colour)
STATE_DIR = ".collect"
JOURNAL = "journal.jsonl"
LOCK = "lock"
# Extra columns of the private sites.csv (the build reads SITE_COLUMNS and ignores the others).
CHOICE_COLUMNS = (
    "site",
    "label",
    "split",
    "collection",
    "item_id",
    "acquired",
    "window_cloud",
    "cloud_source",
    "scene_cloud",
    "measured",
    "chosen_because",
)


class CollectError(CropmarkError, RuntimeError):
    """A collection that cannot go on (one line)."""


@dataclass(frozen=True)
class CollectConfig:
    sites: Path
    stac: str
    out: Path
    collection: str = DEFAULT_COLLECTION
    window_days: int = DEFAULT_WINDOW_DAYS
    context: str = "mapbox"
    size_m: tuple[float, float] = DEFAULT_SIZE_M
    max_items: int = 50
    attempts: int = 4
    backoff_s: float = 1.0
    max_wait_s: float = 30.0
    rate: float = 0.0
    gates: Path | None = None


@dataclass(frozen=True)
class Measured:
    """One acquisition's cloud over the site's window, or why it could not be used."""

    candidate: Candidate
    cloud: float | None
    source: str
    coverage: float | None
    grid: fetch.Grid | None
    problem: str = ""


@dataclass
class Outcome:
    collected: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # site, reason, detail
    gates: Counter[tuple[str, str]] = field(default_factory=Counter)  # (gate, verdict) -> tiles
    calls: int = 0
    retries: int = 0
    splits: Counter[str] = field(default_factory=Counter)

    @property
    def reasons(self) -> Counter[str]:
        return Counter(reason for _, reason, _ in self.skipped)


class Skip(Exception):
    """A site that is skipped: a counted reason and its detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def _request_key(config: CollectConfig, site: SiteRequest) -> dict[str, Any]:
    """What a site's collected files depend on; a change fetches the site again. URLs are kept
    redacted: the journal never holds an access token (a new token is not a new request)."""
    return {
        "lat": site.lat,
        "lon": site.lon,
        "date": site.date.isoformat(),
        "window_days": config.window_days,
        "collection": config.collection,
        "stac": redact(config.stac),
        "size_m": list(config.size_m),
        "context": redact(config.context),
    }


@contextmanager
def _locked(state: Path) -> Iterator[None]:
    state.mkdir(parents=True, exist_ok=True)
    fd = os.open(state / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CollectError(
                f"another collection is writing {state.parent}; wait for it or choose another --out"
            ) from None
        yield
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def read_journal(out: Path) -> dict[str, dict[str, Any]]:
    """The last journal entry of each site (a line cut short by a kill is ignored)."""
    path = out / STATE_DIR / JOURNAL
    entries: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return entries
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("site"), str):
            entries[entry["site"]] = entry
    return entries


def _append_journal(out: Path, entry: dict[str, Any]) -> None:
    path = out / STATE_DIR / JOURNAL
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _distance_days(candidate: Candidate, site: SiteRequest) -> int:
    return abs((candidate.date - site.date).days)


def measure(remote: Remote, candidate: Candidate, site: SiteRequest, size_m: tuple[float, float]) -> Measured:
    """The candidate's cloud and shadow over the site's window (SCL, else the detector)."""
    missing = [b for b in ("B04", "B08", "B05") if b not in candidate.hrefs]
    if missing:
        return Measured(candidate, None, "", None, None, f"no {', '.join(missing)} asset")
    if candidate.offset is None:
        return Measured(candidate, None, "", None, None, f"DN offset unknown ({candidate.offset_from})")
    detector = all(b in candidate.hrefs for b in clouds.DETECTOR_BANDS) and candidate.level == "L1C"
    if "SCL" not in candidate.hrefs and not detector:
        return Measured(
            candidate, None, "", None, None, "no SCL asset and not the Level-1C bands of the cloud detector"
        )
    try:
        grid = fetch.site_grid(remote, candidate, site.lon, site.lat, size_m)
        if "SCL" in candidate.hrefs:
            scl = fetch.read_band(remote, candidate, "SCL", grid).astype(np.uint8)
            coverage = float((scl != gates.SCL_NODATA).mean())
            info = raster.ReadInfo(
                candidate.item_id, candidate.level, 0, "", str(grid.crs), scl.shape, (), {}
            )
            cloud, source = gates.cloud_cover(raster.Bands({"SCL": scl}, grid.transform, grid.crs, info))
        else:
            data = fetch.read_bands(remote, candidate, clouds.DETECTOR_BANDS, grid)
            with tempfile.TemporaryDirectory(prefix="cropmark-collect-") as temp:
                path = fetch.write_bands(Path(temp) / "window.tif", candidate, grid, data, candidate.offset)
                bands = raster.read_bands(path, clouds.DETECTOR_BANDS, min_window=1)
            coverage = float(np.isfinite(bands["B04"]).mean())
            cloud, source = gates.cloud_cover(bands)
    except (RemoteError, raster.RasterError, fetch.BandError) as exc:
        return Measured(candidate, None, "", None, None, str(exc))
    return Measured(candidate, cloud, source, coverage, grid)


def choose(
    remote: Remote,
    found: Sequence[Candidate],
    site: SiteRequest,
    config: CollectConfig,
    gate_config: GateConfig,
) -> tuple[Measured, list[Measured]]:
    """The acquisition with the least cloud over the window (then the closest date), and every
    acquisition measured; :class:`Skip` when none can be used or the best is too cloudy."""
    ordered = sorted(found, key=lambda c: (_distance_days(c, site), c.acquired, c.item_id))
    measured: list[Measured] = []
    for candidate in ordered:
        m = measure(remote, candidate, site, config.size_m)
        if m.problem == "" and (m.coverage or 0.0) < gate_config.min_side_coverage:
            m = Measured(
                candidate,
                m.cloud,
                m.source,
                m.coverage,
                m.grid,
                f"covers {m.coverage:.1%} of the window, less than {gate_config.min_side_coverage:.0%}",
            )
        measured.append(m)
        if m.problem == "" and m.cloud == 0.0:
            break  # nothing later can be clearer, and later ones are farther from the date
    usable = [m for m in measured if m.problem == "" and m.cloud is not None]
    if not usable:
        first = measured[0].problem if measured else "no acquisition"
        raise Skip("no_usable_item", f"none of {len(measured)} acquisition(s) could be used (first: {first})")
    best = min(usable, key=lambda m: (m.cloud or 0.0, _distance_days(m.candidate, site), m.candidate.item_id))
    assert best.cloud is not None
    if best.cloud > gate_config.max_cloud:
        raise Skip(
            "cloudy",
            f"least cloud and shadow over the window {best.cloud:.1%} ({best.source}) > "
            f"{gate_config.max_cloud:.0%} in {len(usable)} acquisition(s) within {config.window_days} days",
        )
    return best, measured


def _because(best: Measured, measured: Sequence[Measured], site: SiteRequest) -> str:
    others = [m for m in measured if m is not best]
    usable = [m for m in others if m.problem == "" and m.cloud is not None]
    unusable = sum(1 for m in others if m.problem)
    scene = (
        f"scene-wide eo:cloud_cover {best.candidate.scene_cloud:g}%"
        if best.candidate.scene_cloud is not None
        else "no scene-wide eo:cloud_cover"
    )
    return (
        f"least cloud and shadow over the window: {best.cloud:.1%} ({best.source}), "
        f"{_distance_days(best.candidate, site)} day(s) from the site's date; "
        f"{len(measured)} acquisition(s) measured ({len(usable)} other usable, "
        f"{sum(1 for m in usable if (m.cloud or 0.0) > (best.cloud or 0.0))} of them cloudier; "
        f"{unusable} unusable); {scene}"
    )


def collect_site(
    remote: Remote,
    catalogue: Catalogue,
    context: ContextProvider,
    site: SiteRequest,
    config: CollectConfig,
    gate_config: GateConfig,
) -> dict[str, Any]:
    """Collect one site into ``config.out``; its journal entry. Raises :class:`Skip`."""
    start = site.date - datetime.timedelta(days=config.window_days)
    end = site.date + datetime.timedelta(days=config.window_days)
    try:
        items = catalogue.search(site.lon, site.lat, start, end, config.max_items)
    except RemoteError as exc:
        raise Skip("search_failed", str(exc)) from None
    if not items:
        raise Skip("no_items", f"no {config.collection} item over the site from {start} to {end}")
    best, measured = choose(remote, candidates(items, config.collection), site, config, gate_config)
    candidate, grid = best.candidate, best.grid
    assert grid is not None and candidate.offset is not None
    wanted = (
        (*TILE_BANDS, "SCL")
        if "SCL" in candidate.hrefs
        else tuple(dict.fromkeys((*TILE_BANDS, *clouds.DETECTOR_BANDS)))
    )
    try:
        data = fetch.read_bands(remote, candidate, wanted, grid)
    except RemoteError as exc:
        raise Skip("read_failed", str(exc)) from None
    bands_path = config.out / "bands" / f"{site.site}.tif"
    fetch.write_bands(bands_path, candidate, grid, data, candidate.offset)
    try:
        try:
            bands = raster.read_bands(bands_path)
        except raster.RasterError as exc:
            raise Skip("bad_bands", str(exc).replace(str(bands_path), candidate.item_id)) from None
        half = raster.s2_half(raster.false_colour(bands))
        try:
            right = context.fetch(remote, _lonlat_bounds(grid), half.size)
        except (RemoteError, OSError, ValueError) as exc:
            raise Skip("context_failed", f"{context.name}: {exc}") from None
    except BaseException:
        bands_path.unlink(missing_ok=True)  # a site is its composite and its bands, or neither
        raise
    image = raster.composite(half, right)
    _write_atomic(config.out / site.composite, encode_jpeg(image))
    results = gates.evaluate(
        s2_jpeg_bytes=len(encode_jpeg(half)),
        s2_rgb=np.asarray(half),
        right=np.asarray(image)[:, half.width :],
        bands=bands,
        config=gate_config,
    )
    return {
        "site": site.site,
        "request": _request_key(config, site),
        "composite": site.composite,
        "bands": f"bands/{site.site}.tif",
        "collection": candidate.collection,
        "item_id": candidate.item_id,
        "acquired": candidate.acquired.isoformat(),
        "window_cloud": best.cloud,
        "cloud_source": best.source,
        "scene_cloud": candidate.scene_cloud,
        "measured": [
            {"item_id": m.candidate.item_id, "cloud": m.cloud, "coverage": m.coverage, "problem": m.problem}
            for m in measured
        ],
        "chosen_because": _because(best, measured, site),
        "offset": candidate.offset,
        "offset_from": candidate.offset_from,
        "gates": {
            r.gate: ("not evaluated" if not r.evaluated else ("pass" if r.passed else "FAIL"))
            for r in results
        },
    }


def _lonlat_bounds(grid: fetch.Grid) -> tuple[float, float, float, float]:
    from rasterio.warp import transform as warp_transform

    left, top = grid.transform.c, grid.transform.f
    right = left + grid.width * grid.transform.a
    bottom = top + grid.height * grid.transform.e
    xs, ys = warp_transform(grid.crs, "EPSG:4326", [left, right, right, left], [top, top, bottom, bottom])
    if max(xs) - min(xs) > 180:
        # Corners on both sides of +-180 degrees: their min and max would be a box around the world.
        raise ValueError("the window crosses the antimeridian; the context providers take no such box")
    return min(xs), min(ys), max(xs), max(ys)


def _done(out: Path, entry: dict[str, Any] | None, key: dict[str, Any]) -> bool:
    return (
        entry is not None
        and entry.get("request") == key
        and (out / entry["composite"]).is_file()
        and (out / entry["bands"]).is_file()
    )


def _current(
    config: CollectConfig, sites: Sequence[SiteRequest], journal: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The journal entries that hold for the site list as it is now: an entry of a site whose
    request changed (its point, date, ...) and was not fetched again shows another place or time."""
    return {
        s.site: journal[s.site]
        for s in sites
        if _done(config.out, journal.get(s.site), _request_key(config, s))
    }


def write_manifests(
    out: Path, sites: Sequence[SiteRequest], journal: dict[str, dict[str, Any]]
) -> Counter[str]:
    """``sft/{train,eval}.jsonl`` and ``sites.csv`` for the collected sites of the site list."""
    rows: dict[str, list[str]] = {"train": [], "eval": []}
    table = io.StringIO(newline="")
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow((*SITE_COLUMNS, *CHOICE_COLUMNS))
    for site in sites:
        entry = journal.get(site.site)
        if entry is None:
            continue
        rows[site.split].append(json.dumps(sft_row(entry["composite"], site.label), ensure_ascii=False))
        acquired = datetime.datetime.fromisoformat(entry["acquired"])
        writer.writerow(
            (
                entry["composite"],
                f"{site.lat:.6f}",
                f"{site.lon:.6f}",
                site.source_db,
                site.source_id,
                acquired.date().isoformat(),
                site.site,
                site.label,
                site.split,
                entry["collection"],
                entry["item_id"],
                entry["acquired"],
                f"{entry['window_cloud']:.4f}",
                entry["cloud_source"],
                "" if entry["scene_cloud"] is None else f"{entry['scene_cloud']:g}",
                len(entry["measured"]),
                entry["chosen_because"],
            )
        )
    for split, lines in rows.items():
        _write_atomic(out / "sft" / f"{split}.jsonl", "".join(f"{line}\n" for line in lines).encode("utf-8"))
    _write_atomic(out / SITES_FILE, table.getvalue().encode("utf-8"))
    return Counter({split: len(lines) for split, lines in rows.items()})


def _remove_temporaries(out: Path) -> None:
    """Temporary files of a collection that was killed while writing (``.NAME.XXXX.tmp``)."""
    for folder in (out / "composites", out / "bands", out / "sft", out):
        if folder.is_dir():
            for path in folder.glob(".*.tmp"):
                if path.is_file():
                    path.unlink(missing_ok=True)


def _collect_sites(
    remote: Remote,
    catalogue: Catalogue,
    context: ContextProvider,
    sites: Sequence[SiteRequest],
    config: CollectConfig,
    gate_config: GateConfig,
    journal: dict[str, dict[str, Any]],
    outcome: Outcome,
    on_site: Callable[[str, str], None] | None,
) -> None:
    for site in progress.bar(sites, desc="collecting", total=len(sites), unit="site"):
        key = _request_key(config, site)
        if _done(config.out, journal.get(site.site), key):
            outcome.resumed.append(site.site)
            if on_site:
                on_site(site.site, "already collected")
            continue
        try:
            entry = collect_site(remote, catalogue, context, site, config, gate_config)
        except Skip as skip:
            outcome.skipped.append((site.site, skip.reason, skip.detail))
            if on_site:
                on_site(site.site, f"skipped ({skip.reason}): {skip.detail}")
            continue
        _append_journal(config.out, entry)
        journal[site.site] = entry
        outcome.collected.append(site.site)
        if on_site:
            on_site(site.site, f"{entry['item_id']}: {entry['chosen_because']}")


def collect(config: CollectConfig, on_site: Callable[[str, str], None] | None = None) -> Outcome:
    """Collect every site of ``config.sites`` into ``config.out`` (see the module docstring).

    Args:
        on_site: called with (site, what happened) after each site, for the command line.

    Raises:
        CropmarkError: bad input or a catalogue that cannot be used (one line), before anything
            is written; or no site could be collected.
    """
    if config.window_days < 0:
        raise CollectError(f"--window-days {config.window_days}: give 0 or more days")
    low = raster.MIN_WINDOW_PX * 10
    if not all(np.isfinite(v) and low <= v <= 100_000 for v in config.size_m):
        raise CollectError(
            f"--window-m {config.size_m}: give a width and a height from {low} metres "
            f"({raster.MIN_WINDOW_PX} px at 10 m) to 100000 metres"
        )
    if config.backoff_s > config.max_wait_s:
        raise CollectError(
            f"--backoff {config.backoff_s:g} s is longer than --max-wait {config.max_wait_s:g} s; "
            "raise --max-wait or lower --backoff"
        )
    sites = read_site_list(config.sites)
    gates_path = config.gates
    if gates_path is None and (config.out / "gates.json").is_file():
        gates_path = config.out / "gates.json"  # an earlier run's thresholds: the build will use them
    gate_config = load_config(gates_path) if gates_path is not None else GateConfig()
    context = provider(config.context)
    if config.out.exists() and not config.out.is_dir():
        raise CollectError(f"--out {config.out} is not a folder")
    if config.out.is_dir() and any(config.out.iterdir()) and not (config.out / STATE_DIR).is_dir():
        # Its sft/ rows and sites.csv would be replaced by this collection's.
        raise CollectError(
            f"--out {config.out} holds files but no collection (.collect/); collect into a new folder "
            "(or the folder of an earlier collection, to resume it)"
        )
    remote = Remote(config.attempts, config.backoff_s, config.max_wait_s, config.rate)
    catalogue = Catalogue(config.stac, config.collection, remote)
    outcome = Outcome()
    state = config.out / STATE_DIR
    created = not config.out.exists()
    with _locked(state):
        _remove_temporaries(config.out)
        journal = read_journal(config.out)
        try:
            _collect_sites(remote, catalogue, context, sites, config, gate_config, journal, outcome, on_site)
        except KeyboardInterrupt:
            current = _current(config, sites, journal)
            done = [s for s in sites if s.site in current]
            if not done:
                if created:
                    shutil.rmtree(config.out, ignore_errors=True)
                where = "no corpus was written" if created else f"{config.out} is as it was"
                raise Interrupted(f"no site was collected; {where}") from None
            write_manifests(config.out, sites, current)
            raise Interrupted(
                f"{len(done)} site(s) are in {config.out} with their rows; run the same command again "
                "to collect the others (nothing done is fetched again)"
            ) from None
        for name in (*outcome.collected, *outcome.resumed):
            for gate, verdict in journal[name]["gates"].items():
                outcome.gates[(gate, verdict)] += 1
        outcome.calls, outcome.retries = remote.calls, remote.retries
        if not outcome.collected and not outcome.resumed:
            if created:
                shutil.rmtree(config.out, ignore_errors=True)
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(outcome.reasons.items()))
            where = "no corpus was written" if created else f"{config.out} is as it was"
            raise CollectError(f"no site could be collected ({reasons}); {where}")
        if config.gates is not None and not (
            (config.out / "gates.json").exists() and (config.out / "gates.json").samefile(config.gates)
        ):
            shutil.copyfile(config.gates, config.out / "gates.json")
        outcome.splits = write_manifests(config.out, sites, _current(config, sites, journal))
    return outcome
