"""The ``cropmark sample`` subcommand: the seeded sample private corpus."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from builder.errors import CropmarkError


def cmd_sample(args: argparse.Namespace) -> int:
    from builder.testing.sample import SMALL_PLAN, Plan, generate

    if args.out.exists() and any(args.out.iterdir()):
        raise CropmarkError(f"{args.out} exists and is not empty; choose a new folder for the sample corpus")
    plan = generate(args.out, seed=args.seed, plan=SMALL_PLAN if args.small else Plan())
    print(f"wrote a sample corpus to {args.out}: {plan.train_rows} train + {plan.eval_rows} eval rows")
    return 0


def register(sub: Any) -> None:
    """Add ``sample`` to ``cropmark``'s subparsers."""
    s = sub.add_parser("sample", help="write the seeded sample private corpus")
    s.add_argument("out", type=Path, help="a new (or empty) folder for the corpus")
    s.add_argument("--seed", type=int, default=0, help="random seed (the same seed writes the same corpus)")
    s.add_argument("--small", action="store_true", help="a small corpus with every edge case")
    s.set_defaults(func=cmd_sample)
