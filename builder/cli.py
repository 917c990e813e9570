"""``cropmark``: the command line. Parses arguments, calls :mod:`builder`, prints.

Known errors (:class:`~builder.errors.CropmarkError`, and OS errors such as a
folder that cannot be written) are printed as one line and exit with status 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from builder.errors import CropmarkError, ReleaseNotFoundError


def _print_summary(report: dict[str, Any], release: Path, private: Path) -> None:
    counts = report["counts"]
    print(f"built {report['name']} {report['version']} -> {release}")
    print("  rows read      " + "  ".join(f"{s} {n}" for s, n in counts["rows"].items()))
    for split, labels in counts["published"].items():
        detail = ", ".join(f"{label} {n}" for label, n in labels.items())
        print(f"  published      {split} {sum(labels.values())} ({detail})")
    for reason, per_split in sorted(counts["rejected"].items()):
        total = sum(per_split.values())
        detail = ", ".join(f"{s} {n}" for s, n in per_split.items())
        print(f"  rejected       {reason:<18} {total:>5}  ({detail})")
    print("  cut            " + ", ".join(f"{m} {n}" for m, n in sorted(report["cut_modes"].items())))
    audit = report["audit"]
    print(f"  audit          {'passed' if audit['passed'] else 'FAILED'} ({len(audit['findings'])} findings)")
    print(f"  private report {private / 'report.json'}  (private: never publish this folder)")


def cmd_build(args: argparse.Namespace) -> int:
    from builder.release import BuildConfig, build

    result = build(BuildConfig(args.corpus, args.out, args.version, args.name, args.workers))
    _print_summary(result.report, result.release, result.private)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from builder.audit import audit_release
    from builder.release import private_dir

    release: Path = args.release
    if not release.is_dir():
        raise ReleaseNotFoundError(f"release folder {release} does not exist; build it with `cropmark build`")
    report_path: Path = args.report or private_dir(release) / "report.json"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else None
    findings = audit_release(release, report)
    for finding in findings:
        print(f"FINDING {finding}")
    if findings:
        print(f"audit refused {release}: {len(findings)} finding(s)")
        return 1
    print(f"audit passed {release}: layout, metadata, images, text and halves clean")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from builder.sample import SMALL_PLAN, Plan, generate

    if args.out.exists() and any(args.out.iterdir()):
        raise CropmarkError(f"{args.out} exists and is not empty; choose a new folder for the sample corpus")
    plan = generate(args.out, seed=args.seed, plan=SMALL_PLAN if args.small else Plan())
    print(f"wrote a sample corpus to {args.out}: {plan.train_rows} train + {plan.eval_rows} eval rows")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="cropmark", description=__doc__.splitlines()[0] if __doc__ else None)
    top.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = top.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="build, audit and put in place a release from a private corpus")
    b.add_argument("--corpus", type=Path, required=True, help="private corpus folder (sft/, composites/)")
    b.add_argument("--out", type=Path, required=True, help="output root; release goes to OUT/NAME/VERSION")
    b.add_argument("--version", required=True, help="release version, e.g. 1.0.0")
    b.add_argument("--name", default="cropmark-disambiguator-s2", help="dataset name")
    b.add_argument("--workers", type=int, default=1, help="processes that cut tiles")
    b.set_defaults(func=cmd_build)

    a = sub.add_parser("audit", help="refuse a release that leaks or is malformed")
    a.add_argument("release", type=Path)
    a.add_argument("--report", type=Path, help="private report (default: RELEASE.private/report.json)")
    a.set_defaults(func=cmd_audit)

    s = sub.add_parser("sample", help="write the seeded sample private corpus")
    s.add_argument("out", type=Path)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--small", action="store_true", help="a small corpus with every edge case")
    s.set_defaults(func=cmd_sample)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (CropmarkError, OSError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the previous release, if any, is untouched", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
