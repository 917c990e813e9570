"""The release subcommands of ``cropmark``: ``build``, ``audit``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from builder.domain import DATASET_NAME, hub_id_argument
from builder.errors import ConfigError, ReleaseNotFoundError
from builder.release.report import BuildReport, GateSummary


def _print_summary(report: BuildReport, release: Path, private: Path) -> None:
    """What a build did, one line a figure (the private report holds the rest)."""
    counts = report.counts
    print(f"built {report.name} {report.version} -> {release}")
    print("  rows read      " + "  ".join(f"{s} {n}" for s, n in counts.rows.items()))
    for split, labels in counts.published.items():
        detail = ", ".join(f"{label} {n}" for label, n in labels.items())
        print(f"  published      {split} {sum(labels.values())} ({detail})")
    for reason, per_split in sorted(counts.rejected.items()):
        total = sum(per_split.values())
        detail = ", ".join(f"{s} {n}" for s, n in per_split.items())
        print(f"  rejected       {reason:<21} {total:>5}  ({detail})")
    print("  cut            " + ", ".join(f"{m} {n}" for m, n in sorted(report.cut_modes.items())))
    _print_gates(report.gates)
    _print_checks(report)
    if report.layout_summary is not None:  # a sibling layout's (the primary layout has none)
        splits = ", ".join(
            f"{split} {info.get('rows', info.get('samples'))}"
            for split, info in report.layout_summary["splits"].items()
        )
        print(f"  layout         {report.layout} ({splits})")
    audit = report.audit
    assert audit is not None  # a build always audits
    print(f"  audit          {'passed' if audit.passed else 'FAILED'} ({len(audit.findings)} findings)")
    print(f"  private report {private / 'report.json'}  (private: never publish this folder)")


def _print_gates(gates: GateSummary) -> None:
    """The thresholds in force and what each of the four gates did."""
    changed = gates.changed
    print(
        "  thresholds     "
        + (
            ", ".join(f"{k}={v}" for k, v in changed.items()) + " (gates.json; others: the card's)"
            if changed
            else "the card's"
        )
    )
    for number, gate in enumerate(("s2_not_blank", "s2_not_cloudy", "context_available", "agricultural"), 1):
        g = gates.per_gate[gate]
        print(
            f"  gate {number}         {gate:<21} {g.evaluated:>5} evaluated, {g.passed} passed, "
            f"{g.rejected} rejected, {g.not_evaluated} not evaluated"
        )
    print(
        f"  all four gates {gates.published_full} of {gates.published} published tiles "
        "(the others have gates not evaluated)"
    )


def _print_checks(report: BuildReport) -> None:
    """Halves order, train/eval near-duplicates and same-site leaks."""
    order = report.halves
    assert order is not None  # a build always runs the halves-order check
    print(
        f"  halves         {order.in_order} in order, {order.swapped} swapped (rejected), "
        f"{order.not_evaluated} not evaluated"
    )
    leaks = report.leakage
    kept = "dropped" if leaks.dropped else ("kept" if leaks.train_tiles else "none")
    print(
        f"  near-dups      {leaks.train_tiles} train tiles within {leaks.threshold} bits "
        f"of an eval tile ({kept}; closest pair {leaks.closest} bits)"
    )
    site = report.site_leakage
    assert site is not None  # a build always writes the same-site check (evaluated or not)
    if site.evaluated:
        kept = "dropped" if site.dropped else ("kept" if site.train_tiles else "none")
        unchecked = sum(site.unchecked.values())
        print(
            f"  same site      {site.train_tiles} train tiles of an eval tile's site (same record or "
            f"< {site.distance_m:g} m; {kept}; {unchecked} tiles without a site unchecked)"
        )
    else:
        print("  same site      not evaluated (no sites.csv)")


def cmd_build(args: argparse.Namespace) -> int:
    from builder.engine import keep_large_blocks
    from builder.layouts import policy
    from builder.layouts.base import LayoutOptions
    from builder.release.build import BuildConfig, build

    options = LayoutOptions(
        shard_mb=args.shard_mb,
        fractions=tuple(args.split_fractions),
        salt=args.split_salt,
        files_per_folder=args.files_per_folder,
        samples_per_shard=args.samples_per_shard,
        coords=args.coords,
        public_sidecars=args.public_sidecars,
        hdf5_dtype=args.hdf5_dtype,
    )
    if args.engine == "ray" and args.workers is not None:
        raise ConfigError(
            "--workers sets the local engine's processes; with --engine ray the cluster's CPUs run the tiles"
        )
    config = BuildConfig(
        args.corpus,
        args.out,
        args.version,
        args.name,
        1 if args.workers is None else args.workers,
        args.repo_id,
        leak_threshold=args.leak_threshold,
        drop_near_duplicates=args.drop_near_duplicates,
        site_distance=args.site_distance,
        drop_site_leaks=args.drop_site_leaks,
        layout=args.layout,
        layout_options=options,
        policy=policy.load(args.policy),
        engine=args.engine,
        ray_address=args.ray_address,
    )
    if config.engine == "local" and config.workers == 1:
        # The tiles are cut in this process, which is the build's own: its allocator keeps a
        # tile's large arrays for the next tile (the workers of a pool set theirs). An API
        # caller's process is left as it is.
        keep_large_blocks()
    with build(config) as result:
        _print_summary(result.report, result.release, result.private)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from builder.layouts import registry
    from builder.release.audit import audit_any, load_report
    from builder.release.build import private_dir

    release: Path = args.release
    if not release.is_dir():
        raise ReleaseNotFoundError(f"release folder {release} does not exist; build it with `cropmark build`")
    report_path: Path = args.report or private_dir(release) / "report.json"
    if args.report is not None and not os.path.lexists(args.report):
        raise ConfigError(f"private report {args.report} does not exist")
    # The default report may be absent (that is a finding); one that is there must be whole.
    report = load_report(report_path) if os.path.lexists(report_path) else None
    findings = audit_any(release, report)
    for finding in findings:
        print(f"FINDING {finding}")
    if findings:
        print(f"audit refused {release}: {len(findings)} finding(s)")
        return 1
    layout = registry.get(report.layout if report is not None else registry.primary().name)
    print(f"audit passed {release} ({layout.name}): layout, {layout.audited} clean")
    return 0


def register(sub: Any) -> None:
    """Add the release subcommands to ``cropmark``'s subparsers."""
    _register_build(sub)
    a = sub.add_parser("audit", help="refuse a release that leaks or is malformed")
    a.add_argument("release", type=Path, help="the release folder (OUT/NAME/VERSION) to check")
    a.add_argument("--report", type=Path, help="private report (default: RELEASE.private/report.json)")
    a.set_defaults(func=cmd_audit)


def _register_build(sub: Any) -> None:
    """``build``: where from and to, the checks' settings, then the layouts' options."""
    from builder.engine import ENGINES
    from builder.layouts import registry
    from builder.release.leakage import DEFAULT_SITE_DISTANCE_M

    b = sub.add_parser("build", help="build, audit and put in place a release from a private corpus")
    b.add_argument("--corpus", type=Path, required=True, help="private corpus folder (sft/, composites/)")
    b.add_argument("--out", type=Path, required=True, help="output root; release goes to OUT/NAME/VERSION")
    b.add_argument("--version", required=True, help="release version, e.g. 1.0.0")
    b.add_argument("--name", default=DATASET_NAME, help="dataset name")
    b.add_argument(
        "--engine",
        default="local",
        choices=ENGINES,
        help="what runs the per-tile stage: local (a pool of --workers processes) or ray "
        "(a Ray cluster's CPUs; needs the ray extra); the release is the same bytes",
    )
    b.add_argument("--workers", type=int, help="processes of the local engine that cut tiles (default 1)")
    b.add_argument(
        "--ray-address",
        help="with --engine ray: the cluster (HOST:PORT, ray://HOST:PORT or auto; default: "
        "RAY_ADDRESS, else a Ray instance started on this machine for the build)",
    )
    b.add_argument(
        "--repo-id",
        type=hub_id_argument,
        help="Hub id (ORG/NAME) for the card's loading example and citation",
    )
    b.add_argument(
        "--layout",
        default=registry.primary().name,
        choices=registry.names(),
        help=f"release layout ({registry.primary().name} is the cropmark release; "
        "the others serve sibling datasets)",
    )
    b.add_argument(
        "--policy", type=Path, help="policy.json of what may be published (default: cropmark, none)"
    )
    b.add_argument(
        "--leak-threshold", type=int, default=10, help="pHash bits for a train/eval near-duplicate"
    )
    b.add_argument(
        "--drop-near-duplicates",
        action="store_true",
        help="drop train tiles that near-duplicate an eval tile",
    )
    b.add_argument(
        "--site-distance",
        type=float,
        default=DEFAULT_SITE_DISTANCE_M,
        help="metres under which a train site and an eval site (sites.csv) are one site "
        f"(default {DEFAULT_SITE_DISTANCE_M:g}: one tile width)",
    )
    b.add_argument(
        "--drop-site-leaks",
        action="store_true",
        help="drop train tiles of the same site as an eval tile (same record or closer than --site-distance)",
    )
    _add_layout_options(b)
    b.set_defaults(func=cmd_build)


def _add_layout_options(b: argparse.ArgumentParser) -> None:
    """The options of the layouts other than imagefolder, each help naming the layouts that read it."""
    from builder.layouts import registry
    from builder.layouts.base import HDF5_DTYPES

    b.add_argument(
        "--shard-mb", type=float, default=500.0, help=f"{registry.readers('shard_mb')}: largest shard in MiB"
    )
    b.add_argument(
        "--split-fractions",
        type=float,
        nargs=3,
        default=(0.8, 0.1, 0.1),
        metavar=("TRAIN", "VALIDATION", "TEST"),
        help=f"{registry.readers('fractions')}: shares of the site groups",
    )
    b.add_argument(
        "--split-salt", default="cropmark", help=f"{registry.readers('salt')}: change to draw other splits"
    )
    b.add_argument(
        "--files-per-folder",
        type=int,
        default=8000,
        help=f"{registry.readers('files_per_folder')}: images per leaf folder",
    )
    b.add_argument(
        "--samples-per-shard",
        type=int,
        default=256,
        help=f"{registry.readers('samples_per_shard')}: sample groups per shard file",
    )
    b.add_argument(
        "--coords",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"{registry.readers('coords')}: write coords and crs (default: as far as the policy allows)",
    )
    b.add_argument(
        "--public-sidecars",
        action="store_true",
        help=f"{registry.readers('public_sidecars')}: publish per-tile sidecars (policy permitting)",
    )
    b.add_argument(
        "--hdf5-dtype",
        choices=HDF5_DTYPES,
        default="uint8",
        help=f"{registry.readers('hdf5_dtype')}: store the tile's 8-bit values (uint8, default) "
        "or them / 255 (float32)",
    )
