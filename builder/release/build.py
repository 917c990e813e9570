"""Write a release: ingest → curate → cut → scrub → write → audit → rename into place.

Layout of ``<out>/<name>/<version>/`` (public)::

    data/train/*.jpg + metadata.csv    file_name,label
    data/eval/*.jpg  + metadata.csv
    README.md  LICENSE  NOTICE.md

and of ``<out>/<name>/<version>.private/`` (never published): ``report.json``
with counts per reason, the published-name → private-source mapping, hashes and
the audit result.

Atomicity: the release and its private report are written into hidden
temporary siblings and put in place only after the audit passes, as **one
commit**: a small journal (``.<version>.commit``, written to a temporary name and
renamed, so it exists whole or not at all) names both temporaries and the
release's digest; then the release and the report are each swapped in with
``renameat2(RENAME_EXCHANGE)``. Before the journal exists a killed build leaves
the previous pair untouched; once it exists the commit has happened, and the
next build (under the lock) finishes it: it swaps in whichever half is not yet
in place, recognised by content (the release by its digest, the report by the
hash the journal records). A reader that comes in between finds the journal or
a report whose digest does not match the release, and the audit refuses both,
so no mismatched pair is ever published.

Concurrency: a build holds an exclusive ``flock`` on ``.<version>.lock`` beside
the release while it writes; a second build into the same release is refused
with a one-line error. Worker processes ask the kernel to kill them when the
build dies (``PR_SET_PDEATHSIG``), so a killed build leaves no worker holding
its output open.

Engines: the per-tile stage (curation's identity decode; the cut, gates, hashes and a
tile's audit checks, :mod:`builder.release.tile`) runs on :mod:`builder.engine`'s local
process pool or on Ray; the workers only read the corpus and return their results, and
this process writes the release, so the bytes do not depend on the engine.
"""

from __future__ import annotations

import bisect
import csv
import ctypes
import errno
import fcntl
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import signal
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, cast

from builder import domain, engine, progress
from builder.domain import DATASET_NAME, LABELS, SPLITS, Label, Reason, Split, hub_id_problem, tile_name
from builder.engine import Mapper
from builder.errors import (
    AuditError,
    BuildLockedError,
    ConfigError,
    CorpusLayoutError,
    EmptyReleaseError,
    Interrupted,
    ReleaseLayoutError,
)
from builder.files import files_digest, journal_path, tree
from builder.ingest.corpus import Ingested, Site, read_manifests, read_sites
from builder.layouts import registry
from builder.layouts.base import LayoutOptions
from builder.layouts.policy import CROPMARK, Policy
from builder.quality import gates, halves, sides, thresholds
from builder.quality.thresholds import GateConfig
from builder.records import Candidate, PrivateTile, PublicTile, Rejection, SftRow
from builder.release import audit, cards, leakage, licenses, siblings
from builder.release.curate import curate
from builder.release.report import (
    AuditResult,
    BuildReport,
    Counts,
    GateCounts,
    GateSummary,
    HalvesSummary,
    Leakage,
    LeakPair,
    SiteLeakage,
    SitePair,
    TileRecord,
)
from builder.release.tile import CHANGED, tile_task
from builder.spill import Mapped, Spilled

# "Files per repo <100k: merge data into fewer files" (Repository limitations and recommendations).
HUB_FILES_PER_REPO = 100_000
HUB_LIMITS_URL = "https://huggingface.co/docs/hub/repositories-recommendations"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,95}$")
_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?$")


@dataclass(frozen=True, slots=True)
class BuildConfig:
    """What to build and where.

    Attributes:
        corpus: the private corpus folder.
        out: the output root; the release goes to ``out/name/version``.
        version: semantic version of the release (``1.0.0``).
        name: dataset name (lowercase slug).
        workers: processes of the local engine's pool (1 = in this process).
        engine: what runs the per-tile stage, one of :data:`builder.engine.ENGINES`:
            ``local`` (a pool of ``workers`` processes) or ``ray`` (the cluster's CPUs).
        ray_address: the Ray cluster (``HOST:PORT``, ``ray://HOST:PORT``, ``auto``); ``None``:
            ``RAY_ADDRESS``, else a Ray instance started for the build on this machine.
        repo_id: Hub id the card's loading example names (``ORG/NAME``), if known.
        leak_threshold: Hamming distance (of 64 pHash bits) at or under which a train
            tile counts as a near-duplicate of an eval tile.
        drop_near_duplicates: drop such train tiles (counted) instead of only reporting them.
        site_distance: metres under which a train site and an eval site are one site.
        drop_site_leaks: drop train tiles of an eval tile's site (counted) instead of only
            reporting them.
        layout: a name of :mod:`builder.layouts.registry`: ``imagefolder`` (the
            primary layout, the cropmark release) or a sibling layout.
        layout_options: options of that layout (:class:`builder.layouts.base.LayoutOptions`).
        policy: what the release may publish about place and time.
    """

    corpus: Path
    out: Path
    version: str
    name: str = DATASET_NAME
    workers: int = 1
    repo_id: str | None = None
    leak_threshold: int = leakage.DEFAULT_THRESHOLD
    drop_near_duplicates: bool = False
    layout: str = registry.primary().name
    layout_options: LayoutOptions | None = None
    policy: Policy = CROPMARK
    site_distance: float = leakage.DEFAULT_SITE_DISTANCE_M
    drop_site_leaks: bool = False
    engine: str = "local"
    ray_address: str | None = None

    def check(self) -> None:
        if not _VERSION_RE.match(self.version):
            raise ConfigError(f"version {self.version!r} is not semantic (MAJOR.MINOR.PATCH, e.g. 1.0.0)")
        if not _NAME_RE.match(self.name):
            raise ConfigError(f"name {self.name!r}: use lowercase letters, digits and '-' only")
        if self.repo_id is not None and (problem := hub_id_problem(self.repo_id)) is not None:
            raise ConfigError(problem)
        if self.workers < 1:
            raise ConfigError(f"workers={self.workers}; use 1 or more")
        if self.engine not in engine.ENGINES:
            raise ConfigError(f"engine {self.engine!r}: use one of {', '.join(engine.ENGINES)}")
        if self.ray_address is not None and self.engine != "ray":
            raise ConfigError("a Ray address is for --engine ray; the local engine runs on this machine")
        if not 0 <= self.leak_threshold < 64:
            raise ConfigError(f"leak threshold {self.leak_threshold}: use 0 to 63 bits of the 64-bit pHash")
        if not (math.isfinite(self.site_distance) and 0 <= self.site_distance <= leakage.MAX_SITE_DISTANCE_M):
            raise ConfigError(
                f"site distance {self.site_distance} m: use 0 to {leakage.MAX_SITE_DISTANCE_M:g} metres"
            )
        if round(self.site_distance, 3) != self.site_distance:
            # The card quotes the distance as given; five decimals would read as a coordinate there.
            raise ConfigError(
                f"site distance {self.site_distance!r} m: give it to the millimetre at most (3 decimals)"
            )
        self.policy.check()
        registry.check(self.layout, self.layout_options, self.policy)


@dataclass(frozen=True, slots=True)
class BuildResult:
    """A built release, its private folder and its report.

    ``report.tiles`` reads each published tile's private record from an unnamed temporary file
    beside the release (:mod:`builder.spill`), which stays open, taking disk space there, until
    the result is freed or :meth:`close`-d (``with build(config) as result:``); reading the
    tiles afterwards raises ``ValueError``. The same report is in ``private/report.json``.
    """

    release: Path
    private: Path
    report: BuildReport

    def close(self) -> None:
        """Free the temporary file of the report's tile records now."""
        if isinstance(self.report.tiles, Mapped):
            self.report.tiles.close()

    def __enter__(self) -> BuildResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def private_dir(release: Path) -> Path:
    """Where the private report of ``release`` lives: a sibling, never inside it."""
    return release.with_name(release.name + ".private")


def _write_csv(path: Path, tiles: Iterable[PublicTile]) -> None:
    rows = sorted((tile.file_name, tile.label) for tile in tiles)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["file_name", "label"])
        writer.writerows(rows)


def _public(tile: PrivateTile) -> PublicTile:
    """A published tile's public record (one text per split and label, not one per record read
    back from the spill)."""
    split, label = cast(Split, sys.intern(tile.split)), cast(Label, sys.intern(tile.label))
    return PublicTile(split, tile.file_name, label)


@contextmanager
def _interrupts_deferred() -> Iterator[list[int]]:
    """Hold Ctrl-C (SIGINT) off for the block, and say whether one came.

    The commit (journal, two swaps, journal removed) must run whole in this process: a
    KeyboardInterrupt between its first swap and the journal's removal left the new release
    beside the previous private report, and the clean-up then removed the new report that
    recovery needed. A SIGKILL cannot be held off; the journal covers that. Python runs signal
    handlers in the main thread only, so elsewhere (a build in a thread) nothing changes.
    """
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield caught
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def _rename_exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux renameat2(RENAME_EXCHANGE); False if unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return bool(result == 0)


def _swap_in(staged: Path, final: Path) -> None:
    """Put ``staged`` at ``final``; the previous ``final`` (if any) ends up at ``staged``."""
    if not final.exists():
        staged.rename(final)
    elif not _rename_exchange(staged, final):
        # No renameat2 here (not Linux, or a file system without it): two renames.
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
        staged.rename(final)
        old.rename(staged)


def tree_digest(folder: Path) -> str:
    """SHA-256 over the sorted ``path sha256`` lines of every file under ``folder``."""
    files = {rel: path for rel, path, _ in tree(folder) if path.is_file()}
    return files_digest({rel: hashlib.sha256(path.read_bytes()).hexdigest() for rel, path in files.items()})


def _commit(final: Path, staged: Path, staged_private: Path, report_sha256: str, digest: str) -> None:
    """Put the release and its private report in place as one commit (see the module docstring)."""
    journal = journal_path(final)
    plan = {
        "release": staged.name,
        "private": staged_private.name,
        "release_digest": digest,
        "report_sha256": report_sha256,
    }
    temporary = journal.with_name(journal.name + f".tmp-{os.getpid()}")
    with temporary.open("w", encoding="utf-8") as f:
        json.dump(plan, f)
        f.flush()
        os.fsync(f.fileno())
    temporary.rename(journal)  # the commit point
    _swap_in(staged, final)
    _swap_in(staged_private, private_dir(final))
    journal.unlink()


def _recover(final: Path) -> None:
    """Finish a commit that a killed build left: swap in each half not yet in place.

    Each temporary holds either the new half (not swapped yet: it matches the
    journal's digest or report hash) or, once swapped, the previous one.
    """
    journal = journal_path(final)
    if not journal.is_file():
        return
    plan = json.loads(journal.read_text(encoding="utf-8"))
    staged, staged_private = final.with_name(plan["release"]), final.with_name(plan["private"])
    if staged.is_dir() and tree_digest(staged) == plan["release_digest"]:
        _swap_in(staged, final)
    report = staged_private / "report.json"
    if report.is_file() and hashlib.sha256(report.read_bytes()).hexdigest() == plan["report_sha256"]:
        _swap_in(staged_private, private_dir(final))
    journal.unlink()
    shutil.rmtree(staged, ignore_errors=True)  # the previous pair, if any
    shutil.rmtree(staged_private, ignore_errors=True)


@contextmanager
def build_lock(final: Path) -> Iterator[None]:
    """Hold the exclusive build lock of ``final`` (``.<version>.lock`` beside it).

    Raises:
        BuildLockedError: another build holds it (one line, naming its process).
    """
    path = final.with_name(f".{final.name}.lock")
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise BuildLockedError(
                f"another build (process {holder}) is writing {final}; "
                "wait for it to finish, or build into another --out"
            ) from None
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:  # not a lock file that its last holder unlinked after we opened it
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.unlink(path)
        os.close(fd)


def stale_name(name: str) -> re.Pattern[str]:
    """The names of the temporaries a build of version ``name`` writes beside its release.

    Exactly ``.<name>.tmp-PID``, ``.<name>.private.tmp-PID``, ``.<name>.<layout>.tmp-PID``,
    ``.<name>.commit.tmp-PID`` and the ``.old-PID`` of a swap, so that the build of
    ``1.0.0-rc`` never touches the temporaries of ``1.0.0-rc.1``.
    """
    kinds = "|".join(re.escape(k) for k in ("private", "commit", *(s.name for s in registry.siblings())))
    return re.compile(rf"\.{re.escape(name)}(?:\.(?:{kinds}))?\.(?:tmp|old)-(?P<pid>\d+)")


def _clean_stale(parent: Path, name: str) -> None:
    """Remove temporaries that a killed build of version ``name`` left (their process is gone)."""
    pattern = stale_name(name)
    for stale in parent.iterdir():
        match = pattern.fullmatch(stale.name)
        if match is not None and not _alive(int(match["pid"])):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


def _check_targets(final: Path) -> None:
    """Refuse, before anything is written, a release or report path that the build cannot replace.

    Raises:
        ReleaseLayoutError: ``final`` or its ``.private`` folder is a symbolic link (dangling
            or not) or anything but a folder: the commit swaps folders, and a link would
            put the release or its private report wherever the link points.
    """
    for target in (final, private_dir(final)):
        if target.is_symlink() or (os.path.lexists(target) and not target.is_dir()):
            kind = "a symbolic link" if target.is_symlink() else "not a folder"
            raise ReleaseLayoutError(
                f"{target} is {kind}; a build replaces only the folders it wrote: remove it and build again"
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        pass
    return True


def _counts(rows: dict[str, int], rejections: Sequence[Rejection], tiles: Sequence[PublicTile]) -> Counts:
    rejected: dict[str, dict[str, int]] = {}
    for reason in Reason:
        per_split = Counter(r.split or "unknown" for r in rejections if r.reason is reason)
        if per_split:
            rejected[reason.value] = {split: per_split.get(split, 0) for split in SPLITS}
    published: dict[str, dict[str, int]] = {
        split: {label: sum(1 for t in tiles if t.split == split and t.label == label) for label in LABELS}
        for split in SPLITS
    }
    return Counts(
        rows={split: rows.get(split, 0) for split in SPLITS},
        rejected=rejected,
        published=published,
        tiles={split: sum(published[split].values()) for split in SPLITS},
    )


def build(config: BuildConfig) -> BuildResult:
    """Build, audit and put in place the release described by ``config``.

    Raises:
        CropmarkError: a bad corpus or option, an empty release, or an audit finding.
            Nothing is left at the release path in any of these cases.
    """
    config.check()
    corpus = config.corpus
    ingested = read_manifests(corpus)
    # The rows are read once, by curation, and then freed: handed over as an iterator (which
    # drops the tuple when it is done) and no longer held in ``ingested``.
    rows, ingested = iter(ingested.rows), replace(ingested, rows=())
    all_sites = read_sites(corpus)
    gate_config = sides.load_config(corpus)  # before anything is written: a bad gates.json is one line

    parent = config.out / config.name
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / config.version
    try:
        with build_lock(final):
            _recover(final)
            _clean_stale(parent, config.version)
            _check_targets(final)
            report = _build_locked(config, final, ingested, rows, all_sites, gate_config)
    except OSError as exc:
        if exc.filename is not None or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # A write's own error names no file ("No space left on device"): say which folder
        # fills up (the lock, the release, its staging and its temporary records are all in it).
        raise OSError(exc.errno, f"{exc.strerror} (writing the release)", str(parent)) from None
    return BuildResult(final, private_dir(final), report)


def _build_locked(
    config: BuildConfig,
    final: Path,
    ingested: Ingested,
    rows: Iterator[SftRow],
    all_sites: dict[str, Site],
    gate_config: GateConfig,
) -> BuildReport:
    parent = final.parent
    staged = parent / f".{config.version}.tmp-{os.getpid()}"
    staged_private = parent / f".{config.version}.private.tmp-{os.getpid()}"
    ready = staged
    report: BuildReport | None = None
    candidates: Spilled[Candidate] | None = None
    try:
        with engine.engine_map(config.engine, config.workers, config.ray_address) as map_:
            # Identity decodes every composite: on the engine, like the cut.
            # The candidates wait on disk (builder.spill), beside the release, as curation makes
            # them, and are read back in order as the engine takes them.
            curated = curate(config.corpus, rows, map_, all_sites, folder=parent)
            sites = curated.sites
            rejections = [*ingested.rejections, *curated.rejections]
            candidates = curated.candidates
            del curated
            check_repository_size(config, candidates)
            check_tile_names(candidates)
            # The audit reads the staged release, which only this machine holds: a Ray cluster's
            # workers may not see it. Its per-tile work there is a hash (the workers checked the
            # pixels), so it runs here, in this process.
            audit_map = map_ if config.engine == "local" else map
            report = _stage(
                config, staged, ingested, sites, candidates, rejections, map_, gate_config, audit_map
            )
        assert report.audit is not None
        findings = list(report.audit.findings)
        if findings:
            raise AuditError(str(final), findings)
        staged_private.mkdir()
        if not registry.get(config.layout).primary:
            # A sibling layout is written from the audited imagefolder and audited itself.
            ready, report = siblings.convert(config, staged, staged_private, report, sites)
        digest = files_digest(report.files)
        report = replace(report, release_digest=digest)
        report_sha256 = report.write_json(staged_private / "report.json")
        with _interrupts_deferred() as interrupted:
            _commit(final, ready, staged_private, report_sha256, digest)
        if interrupted:
            raise Interrupted(
                f"it came during the commit, which was finished first: {final} and its private "
                "report are this build's"
            )
    except BaseException:
        if report is not None and isinstance(report.tiles, Mapped):
            report.tiles.close()  # the spilled records: now, not when the traceback is freed
        raise
    finally:
        if candidates is not None:
            candidates.close()
        # After the commit each temporary holds the previous release or report (or nothing).
        for temporary in {staged, staged_private, ready}:
            shutil.rmtree(temporary, ignore_errors=True)
    return report


def _stage(
    config: BuildConfig,
    staged: Path,
    ingested: Ingested,
    sites: dict[str, Site],
    candidates: Sequence[Candidate],
    rejections: list[Rejection],
    map_: Mapper,
    gate_config: GateConfig,
    audit_map: Mapper = map,
) -> BuildReport:
    """Write the whole release into ``staged``, audit it, and return the private report.

    ``map_`` runs the per-tile stage (the engine's), ``audit_map`` the audit's hash of each
    written tile (the local pool's, or this process's).
    """
    # Every published tile's private record, and every cut tile's gate results, wait on disk
    # for the report (builder.spill), not in memory: they were most of what grew with the tiles.
    private: Spilled[PrivateTile] = Spilled(staged.parent)
    gate_log: Spilled[tuple[dict[str, Any], ...]] = Spilled(staged.parent)
    try:
        hashes, views, found = _write_tiles(
            staged, config, candidates, rejections, map_, gate_config, private, gate_log
        )
        # The public records are read from the private ones as they are needed, not held:
        # a train tile the leakage steps drop leaves both at once (Spilled.retain).
        tiles = Mapped(private, _public)
        return _report(
            config,
            staged,
            ingested,
            sites,
            rejections,
            gate_config,
            audit_map,
            tiles,
            private,
            gate_log,
            hashes,
            views,
            found,
        )
    except BaseException:
        private.close()  # now, not when the traceback is freed: the clean-up needs descriptors
        raise
    finally:
        gate_log.close()


def _report(
    config: BuildConfig,
    staged: Path,
    ingested: Ingested,
    sites: dict[str, Site],
    rejections: list[Rejection],
    gate_config: GateConfig,
    audit_map: Mapper,
    tiles: Sequence[PublicTile],
    private: Spilled[PrivateTile],
    gate_log: Spilled[tuple[dict[str, Any], ...]],
    hashes: dict[str, dict[str, int]],
    views: dict[str, tuple[int, ...]],
    found: dict[str, tuple[str, ...]],
) -> BuildReport:
    """The leakage searches, ``metadata.csv``, licence, card and audit of the staged tiles."""
    site_leaks = _site_leakage(staged, config, hashes, private, rejections, sites)
    leaks = _leakage(staged, config, hashes, views, private, rejections)
    if leaks.dropped and not site_leaks.dropped:  # what the pHash step dropped is no longer kept
        published = {p.file_name for p in private if p.split == "train"}
        kept = tuple(pair for pair in site_leaks.pairs if pair.train in published)
        site_leaks = replace(site_leaks, pairs=kept, train_tiles=len({pair.train for pair in kept}))
    for split in SPLITS:
        _write_csv(staged / "data" / split / "metadata.csv", (t for t in tiles if t.split == split))
    gate_stats = gate_summary(gate_config, gate_log, private)
    for split in SPLITS:
        if not any(t.split == split for t in tiles):
            by_reason = Counter(r.reason.value for r in rejections if r.split == split)
            raise EmptyReleaseError(
                f"no tile of split {split!r} survived curation (rejected: "
                + ", ".join(f"{k}={v}" for k, v in sorted(by_reason.items()))
                + "); check the corpus's manifests and composites"
            )
    used_sites = [sites.get(p.source) for p in private]
    counts = _counts(ingested.row_counts, rejections, tiles)
    (staged / "LICENSE").write_text(licenses.license_text(), encoding="utf-8")
    (staged / "NOTICE.md").write_text(licenses.notice_text(used_sites), encoding="utf-8")
    report = BuildReport(
        name=config.name,
        version=config.version,
        corpus=str(config.corpus.resolve()),
        manifests=tuple(ingested.manifests),
        counts=counts,
        cut_modes=dict(Counter(p.cut for p in private)),
        cut_reasons=dict(sorted(Counter(p.cut_detail for p in private if p.cut == "reencoded").items())),
        sources={s.name: s.tiles for s in licenses.sources(sites.get(p.source) for p in private)},
        tiles=Mapped(private, lambda p: _tile_record(p, sites.get(p.source))),
        rejections=tuple(rejections),
        gates=gate_stats,
        halves=halves_summary(private, rejections),
        leakage=leaks,
        site_leakage=site_leaks,
        layout=registry.primary().name,
        policy=config.policy,
        data_fingerprint=cards.data_fingerprint(staged),
    )
    card = cards.dataset_card(report, config.repo_id)
    (staged / "README.md").write_text(card, encoding="utf-8")
    report = replace(report, files=_file_digests(staged, private))
    findings = [f"README.md: {problem}" for problem in cards.validate_dataset_card(card, report, staged)]
    findings += audit.audit_release(staged, report, audit_map, audit.WorkerChecks(report.files, found))
    return replace(report, audit=AuditResult.of(findings))


def _file_digests(staged: Path, private: Iterable[PrivateTile]) -> dict[str, str]:
    """The SHA-256 of every file of ``staged``, by its path: the tiles' as they were written
    (their private records), only the few text files read back."""
    # One map, in path order: every file first, then the tiles' digests from their records, then
    # the others' read back (a second map of the tiles' digests was as large again).
    files = {rel: "" for rel, path, _ in tree(staged) if path.is_file()}
    for p in private:
        rel = f"data/{p.split}/{p.file_name}"
        if rel in files:
            files[rel] = p.published_sha256
    for rel, digest in files.items():
        if not digest:
            files[rel] = hashlib.sha256((staged / rel).read_bytes()).hexdigest()
    return files


def tiles_per_folder() -> int:
    """Tiles one folder of a split holds: the Hub's limit of entries per folder, less one for
    the split's ``metadata.csv``."""
    return domain.MAX_FILES_PER_FOLDER - 1


class ShardFolders:
    """Per ``(split, tile name)``, the sub-folder of the split the tile goes to (``""``: none).

    A split of at most :func:`tiles_per_folder` candidates is one folder, as always. A larger
    split is written into sub-folders ``0000/``, ``0001/``, ... of that many tiles each, in the
    order of the tile names, and ``metadata.csv`` (in the split's folder) lists each tile by
    its path under it (``0000/d_tile_….jpg``), which the ``imagefolder`` loader reads. Rejected
    candidates leave gaps, so no sub-folder ever holds more. Only a sharded split's sorted
    names are kept (a tile's folder is its rank among them), not a mapping of every tile.
    """

    def __init__(self, candidates: Sequence[Candidate]) -> None:
        self._capacity = tiles_per_folder()
        self._names: dict[str, list[str]] = {}
        for split in SPLITS:
            names = sorted(tile_name(c.content) for c in candidates if c.split == split)
            if len(names) > self._capacity:
                self._names[split] = names

    def __getitem__(self, key: tuple[str, str]) -> str:
        split, name = key
        names = self._names.get(split)
        if names is None:
            return ""
        index = bisect.bisect_left(names, name)
        if index == len(names) or names[index] != name:
            raise KeyError(key)
        return f"{index // self._capacity:04d}/"


def check_tile_names(candidates: Sequence[Candidate]) -> None:
    """Refuse, before any tile is cut, two candidates whose opaque tile names are the same (the
    name keeps 48 bits of the composite's identity: a collision is unlikely, never silent).

    Only a composite that decoded has a name: one that did not (its identity is its bytes'
    hash, ``bytes:…``) is rejected by the cut, counted, and never named.

    Raises:
        ConfigError: one line naming the two composites.
    """
    named = sorted((tile_name(c.content), c.source) for c in candidates if not c.content.startswith("bytes:"))
    for (name, first), (other, second) in itertools.pairwise(named):
        if name == other:
            raise ConfigError(f"tile name {name} collides for {first} and {second}")


def check_repository_size(config: BuildConfig, candidates: Sequence[Candidate]) -> None:
    """Refuse, before any tile is cut, an imagefolder release with more files than the Hub
    recommends per repository (one file a tile, and the card, licence and notice).

    Raises:
        ConfigError: one line, pointing to the Parquet layout.
    """
    files = len(candidates) + len(SPLITS) + 3
    if registry.get(config.layout).primary and files >= HUB_FILES_PER_REPO:
        raise ConfigError(
            f"{len(candidates):,} tiles would make an imagefolder release of {files:,} files; the Hub "
            f"recommends fewer than {HUB_FILES_PER_REPO:,} files per repository ({HUB_LIMITS_URL}): "
            "build with --layout parquet, which packs the tiles into a few shards"
        )


def _write_tiles(
    staged: Path,
    build: BuildConfig,
    candidates: Sequence[Candidate],
    rejections: list[Rejection],
    map_: Mapper,
    config: GateConfig,
    private: Spilled[PrivateTile],
    gate_log: Spilled[tuple[dict[str, Any], ...]],
) -> tuple[
    dict[str, dict[str, int]],
    dict[str, tuple[int, ...]],
    dict[str, tuple[str, ...]],
]:
    """Cut and gate every candidate in the pool; write the tiles that pass into ``staged``,
    each tile's private record into ``private`` and every cut tile's gate results into
    ``gate_log``.

    Returns the pHashes (as stored, per split; in every view, per eval
    tile), and what the workers' audit checks found, per path of a tile with findings.
    """
    corpus = build.corpus
    for split in SPLITS:
        (staged / "data" / split).mkdir(parents=True)
    root = str(corpus.resolve())
    folders = ShardFolders(candidates)
    tasks = (  # made as the engine takes them (it streams), not all at once
        (
            root,
            c.source,
            config,
            sides.Sides(c.bands, c.landcover, c.clouds),
            f"data/{c.split}/{folders[c.split, tile_name(c.content)]}{tile_name(c.content)}",
            c.sha256,  # the bytes curation read (records.UNREADABLE… when it could not read the file)
            not c.content.startswith("bytes:"),  # and decoded strictly
        )
        for c in candidates
    )
    found: dict[str, tuple[str, ...]] = {}  # the workers' audit findings, of the tiles with any
    hashes: dict[str, dict[str, int]] = {split: {} for split in SPLITS}
    views: dict[str, tuple[int, ...]] = {}  # an eval tile's pHash in each of leakage.VIEWS
    outcomes = progress.bar(map_(tile_task, tasks), "cut and gate", len(candidates), unit="tile")
    for candidate, outcome in zip(candidates, outcomes, strict=True):
        if outcome.gates:
            gate_log.append(outcome.gates)
        if outcome.reason == CHANGED:
            raise CorpusLayoutError(
                f"{candidate.source} changed while the build ran ({outcome.detail}); build again "
                "when nothing writes to the corpus"
            )
        if outcome.cut is None:
            assert outcome.reason is not None
            rejections.append(
                Rejection(Reason(outcome.reason), candidate.source, outcome.detail, candidate.split)
            )
            continue
        result = outcome.cut
        name = tile_name(candidate.content)  # unique: check_tile_names
        folder = folders[candidate.split, name]
        if folder and not (staged / "data" / candidate.split / folder).is_dir():
            (staged / "data" / candidate.split / folder).mkdir()
        name = folder + name  # the path under the split's folder, as metadata.csv lists it
        (staged / "data" / candidate.split / name).write_bytes(result.data)
        assert outcome.phash and outcome.checked is not None
        hashes[candidate.split][name] = outcome.phash[0]
        if candidate.split == "eval":  # a train tile is compared as stored (leakage.near_duplicates)
            views[name] = outcome.phash
        # The worker hashed the bytes it checked, which are these; the audit hashes the file again.
        published_sha256, tile_findings = outcome.checked
        if tile_findings:
            found[f"data/{candidate.split}/{name}"] = tile_findings
        private.append(
            PrivateTile(
                candidate.split,
                name,
                candidate.label,
                candidate.source,
                candidate.sha256,
                published_sha256,
                result.mode,
                candidate.rows,
                outcome.gates,
                outcome.bands,
                result.detail,
                candidate.content,
                candidate.copies,
                outcome.halves,
            )
        )
    return hashes, views, found


def _leakage(
    staged: Path,
    build: BuildConfig,
    hashes: dict[str, dict[str, int]],
    views: dict[str, tuple[int, ...]],
    private: Spilled[PrivateTile],
    rejections: list[Rejection],
) -> Leakage:
    """Find train tiles that near-duplicate an eval tile (as stored, mirrored, upside down or
    turned half a turn); drop them (counted) if asked."""
    pairs, closest = leakage.near_duplicates(hashes["train"], views, build.leak_threshold)
    involved = sorted({p.train for p in pairs})
    dropped: list[str] = []
    if build.drop_near_duplicates and involved:
        nearest = {p.train: p for p in reversed(pairs)}  # pairs are sorted: keep the closest
        details = {
            name: f"pHash distance {pair.distance} <= {build.leak_threshold} to eval tile {pair.eval}"
            + ("" if pair.view == leakage.VIEWS[0] else f" {pair.view}")
            for name, pair in nearest.items()
        }
        _drop_train(staged, involved, Reason.NEAR_DUPLICATE, details, hashes, private, rejections)
        dropped = involved
    return Leakage(
        method=(
            "pHash (64-bit DCT); Hamming distance between every train tile and every eval tile "
            f"{', '.join(leakage.VIEWS[:-1])} or {leakage.VIEWS[-1]} (the smallest)"
        ),
        threshold=build.leak_threshold,
        pairs=tuple(LeakPair(p.train, p.eval, p.distance, p.view) for p in pairs),
        train_tiles=len(involved),
        eval_tiles=len({p.eval for p in pairs}),
        closest=closest,
        dropped=len(dropped),
        hashes={split: {n: f"{h:016x}" for n, h in sorted(hashes[split].items())} for split in SPLITS},
    )


def _drop_train(
    staged: Path,
    names: Sequence[str],
    reason: Reason,
    details: dict[str, str],
    hashes: dict[str, dict[str, int]],
    private: Spilled[PrivateTile],
    rejections: list[Rejection],
) -> None:
    """Remove train tiles from the staged release, counted as ``reason``."""
    by_name = {p.file_name: p for p in private if p.split == "train"}
    for name in names:
        (staged / "data" / "train" / name).unlink()
        rejections.append(Rejection(reason, by_name[name].source, details[name], "train"))
        hashes["train"].pop(name, None)
    gone = set(names)
    private.retain(lambda p: not (p.split == "train" and p.file_name in gone))


def _site_leakage(
    staged: Path,
    build: BuildConfig,
    hashes: dict[str, dict[str, int]],
    private: Spilled[PrivateTile],
    rejections: list[Rejection],
    sites: dict[str, Site],
) -> SiteLeakage:
    """Find train tiles of an eval tile's site (same record, or closer than the distance); drop if asked."""
    by_split = {
        split: {p.file_name: sites[p.source] for p in private if p.split == split and p.source in sites}
        for split in SPLITS
    }
    unchecked: dict[str, int] = {
        split: sum(p.split == split and p.source not in sites for p in private) for split in SPLITS
    }
    pairs, closest = leakage.same_sites(by_split["train"], by_split["eval"], build.site_distance)
    involved = sorted({p.train for p in pairs})
    if build.drop_site_leaks and involved:
        nearest = {p.train: p for p in reversed(pairs)}  # pairs are sorted by distance: keep the closest
        details = {
            name: (
                f"same source record as eval tile {pair.eval}"
                if pair.same_record
                else f"{pair.metres:.0f} m from the site of eval tile {pair.eval} "
                f"(< {build.site_distance:g} m)"
            )
            for name, pair in nearest.items()
        }
        _drop_train(staged, involved, Reason.SITE_LEAK, details, hashes, private, rejections)
    return SiteLeakage(
        method="same source record, or great-circle distance between sites.csv points",
        evaluated=bool(sites),
        distance_m=build.site_distance,
        pairs=tuple(SitePair(p.train, p.eval, p.metres, p.same_record) for p in pairs),
        train_tiles=len(involved),
        same_record=len({p.train for p in pairs if p.same_record}),
        closest_m=closest,
        dropped=len(involved) if build.drop_site_leaks else 0,
        unchecked=unchecked,
    )


def halves_summary(published: Sequence[PrivateTile], rejections: Sequence[Rejection]) -> HalvesSummary:
    """How many tiles the halves-order check (:mod:`builder.quality.halves`) found in order, swapped
    (rejected) or could not tell (not evaluated), with its thresholds."""
    verdicts = Counter((p.halves or {}).get("verdict", "not evaluated") for p in published)
    swapped = sum(r.reason is Reason.SWAPPED_HALVES for r in rejections)
    return HalvesSummary(
        in_order=verdicts["in order"],
        swapped=swapped,
        not_evaluated=verdicts["not evaluated"],
        evaluated=verdicts["in order"] + swapped,
        thresholds={
            "fc_min_red_over_green": halves.FC_MIN_RED_OVER_GREEN,
            "fc_max_rg_correlation": halves.FC_MAX_RG_CORRELATION,
            "tc_min_rg_correlation": halves.TC_MIN_RG_CORRELATION,
        },
    )


def gate_summary(
    config: GateConfig, log: Iterable[tuple[dict[str, Any], ...]], published: Iterable[PrivateTile] = ()
) -> GateSummary:
    """Per gate: on how many tiles it was evaluated, passed, failed, rejected, or not evaluated (and why).

    ``log`` holds the gate results of every tile that was cut; a tile stops at its first
    failing gate, so ``rejected`` counts first failures only (the counts of the rejection
    table) and ``failed`` every failure. ``published_*`` count the same over the published
    tiles only.
    """
    # One pass over each sequence, counting as it goes: the log and the published records are
    # read back from disk (builder.spill), and no gate's rows are gathered in memory.
    counts = {gate: Counter[str]() for gate in gates.GATES}
    reasons = {gate: Counter[str]() for gate in gates.GATES}
    first: Counter[str | None] = Counter()
    tiles = 0
    for results in log:
        tiles += 1
        first[next((r["gate"] for r in results if r["evaluated"] and not r["passed"]), None)] += 1
        for r in results:
            if r["gate"] in counts:
                counted = counts[r["gate"]]
                counted["evaluated"] += bool(r["evaluated"])
                counted["passed"] += bool(r["passed"])
                counted["failed"] += bool(r["evaluated"] and not r["passed"])
                if not r["evaluated"]:
                    reasons[r["gate"]][r["reason"]] += 1
    published_count = published_full = 0
    for p in published:
        published_count += 1
        published_full += len(p.gates) == len(gates.GATES) and all(g["evaluated"] for g in p.gates)
        for r in p.gates:
            if r["gate"] in counts:
                counts[r["gate"]]["published_passed"] += bool(r["passed"])
                counts[r["gate"]]["published_not_evaluated"] += not r["evaluated"]
    per_gate = {
        gate: GateCounts(
            evaluated=counts[gate]["evaluated"],
            passed=counts[gate]["passed"],
            failed=counts[gate]["failed"],
            rejected=first.get(gate, 0),
            not_evaluated=sum(reasons[gate].values()),
            not_evaluated_reasons=dict(sorted(reasons[gate].items())),
            published_passed=counts[gate]["published_passed"],
            published_not_evaluated=counts[gate]["published_not_evaluated"],
        )
        for gate in gates.GATES
    }
    return GateSummary(
        config=asdict(config),
        changed=thresholds.changed_settings(config),
        tiles=tiles,
        published=published_count,
        per_gate=per_gate,
        published_full=published_full,
    )


def _tile_record(tile: PrivateTile, site: Site | None) -> TileRecord:
    """The report's record of a published tile: its private side and its site."""
    return TileRecord(
        split=tile.split,
        file_name=tile.file_name,
        label=tile.label,
        source=tile.source,
        source_sha256=tile.source_sha256,
        published_sha256=tile.published_sha256,
        cut=tile.cut,
        rows=tile.rows,
        gates=tile.gates,
        bands=tile.bands,
        cut_detail=tile.cut_detail,
        content_sha256=tile.content_sha256,
        copies=tile.copies,
        halves=tile.halves,
        site=site,
    )
