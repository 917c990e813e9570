"""The ``cropmark collect`` subcommand: a private site list and a STAC API -> a corpus."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from builder.domain import count_argument


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if not 0 <= value <= 3660:
        raise argparse.ArgumentTypeError(f"{value} days: give 0 to 3660")
    return value


def _number(low: float, high: float, what: str) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:  # also refuses NaN
            raise argparse.ArgumentTypeError(f"{text} {what}: give {low:g} to {high:g}")
        return value

    return parse


def cmd_collect(args: argparse.Namespace) -> int:
    from builder.collect.run import CollectConfig, collect

    config = CollectConfig(
        sites=args.sites,
        stac=args.stac,
        out=args.out,
        collection=args.collection,
        window_days=args.window_days,
        context=args.context,
        size_m=tuple(args.window_m),
        max_items=args.max_items,
        attempts=args.attempts,
        backoff_s=args.backoff,
        max_wait_s=args.max_wait,
        rate=args.rate,
        gates=args.gates,
    )
    verbose = args.verbose

    def said(site: str, what: str) -> None:
        if verbose or what.startswith("skipped"):
            print(f"  {site}: {what}", file=sys.stderr if what.startswith("skipped") else sys.stdout)

    outcome = collect(config, said)
    total = len(outcome.collected) + len(outcome.resumed)
    splits = ", ".join(f"{s} {n}" for s, n in sorted(outcome.splits.items(), reverse=True))
    print(
        f"collected {total} site(s) into {args.out} ({len(outcome.collected)} fetched, "
        f"{len(outcome.resumed)} already there): {splits}"
    )
    for reason, n in sorted(outcome.reasons.items()):
        print(f"  skipped        {reason:<16} {n:>4}")
    print(f"  remote calls   {outcome.calls} ({outcome.retries} retried)")
    for gate in ("s2_not_blank", "s2_not_cloudy", "context_available", "agricultural"):
        verdicts = {v: n for (g, v), n in outcome.gates.items() if g == gate}
        text = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
        print(f"  gate           {gate:<18} {text}")
    sites_csv = args.out / "sites.csv"
    print(f"  private        {sites_csv} records the item chosen per site and why (never publish it)")
    return 0


def register(sub: Any) -> None:
    """Add ``collect`` to ``cropmark``'s subparsers."""
    from builder.collect.run import DEFAULT_COLLECTION, DEFAULT_SIZE_M, DEFAULT_WINDOW_DAYS

    c = sub.add_parser(
        "collect",
        help="a private site list + a STAC API -> a corpus of composites, SFT rows and sites.csv",
        description="Search a STAC API per site, choose the acquisition with the least cloud over the "
        "site's window (SCL, or s2cloudless for Level-1C), read only the window from the COGs, add the "
        "context half, and write a corpus that `cropmark build` accepts. Run it again to resume.",
    )
    c.add_argument(
        "--sites",
        type=Path,
        required=True,
        help="site list CSV: site,lat,lon,label,source_db,source_id,date[,split]",
    )
    c.add_argument("--stac", required=True, help="the STAC API's root URL")
    c.add_argument("--out", type=Path, required=True, help="the corpus folder (created; resumed if there)")
    c.add_argument("--collection", default=DEFAULT_COLLECTION, help=f"default {DEFAULT_COLLECTION}")
    c.add_argument(
        "--window-days",
        type=_days,
        default=DEFAULT_WINDOW_DAYS,
        help=f"search this many days either side of each site's date (default {DEFAULT_WINDOW_DAYS})",
    )
    c.add_argument(
        "--context",
        default="mapbox",
        help="the context half: mapbox (Static Images API, token in MAPBOX_ACCESS_TOKEN; default) or "
        "xyz:TEMPLATE (a tile folder or URL with {z}/{x}/{y})",
    )
    c.add_argument(
        "--window-m",
        type=_number(640, 100_000, "metres"),
        nargs=2,
        default=DEFAULT_SIZE_M,
        metavar=("WIDTH", "HEIGHT"),
        help="the site's window in metres, 640 (64 px at 10 m) or more (default 2560 5120: 256 x 512 px)",
    )
    c.add_argument(
        "--max-items", type=count_argument, default=50, help="items per search at most (default 50)"
    )
    c.add_argument(
        "--gates", type=Path, help="gates.json of thresholds other than the card's (copied into the corpus)"
    )
    c.add_argument(
        "--attempts", type=count_argument, default=4, help="tries in all per remote call (default 4)"
    )
    c.add_argument(
        "--backoff", type=_number(0, 600, "seconds"), default=1.0, help="first retry wait, doubled"
    )
    c.add_argument("--max-wait", type=_number(0, 600, "seconds"), default=30.0, help="longest retry wait")
    c.add_argument(
        "--rate",
        type=_number(0, 10_000, "calls per second"),
        default=0.0,
        help="remote calls started per second at most (default 0: no limit)",
    )
    c.add_argument("--verbose", action="store_true", help="print each site's choice")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_collect)
