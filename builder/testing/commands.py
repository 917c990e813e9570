"""The ``cropmark sample`` subcommand: the seeded sample private corpus."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

from builder.errors import CropmarkError


def cmd_sample(args: argparse.Namespace) -> int:
    """Write the corpus into a hidden folder beside ``out`` and rename it into place when it is
    whole: an error or Ctrl-C leaves no partial corpus (and ``out`` as it was)."""
    from builder.testing.sample import SMALL_PLAN, Plan, generate

    out: Path = args.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CropmarkError(f"{out} exists and is not empty; choose a new folder for the sample corpus")
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        plan = generate(staged, seed=args.seed, plan=SMALL_PLAN if args.small else Plan())
        staged.rename(out)  # rename(2) replaces an empty folder
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    print(f"wrote a sample corpus to {out}: {plan.train_rows} train + {plan.eval_rows} eval rows")
    return 0


def register(sub: Any) -> None:
    """Add ``sample`` to ``cropmark``'s subparsers."""
    s = sub.add_parser("sample", help="write the seeded sample private corpus")
    s.add_argument("out", type=Path, help="a new (or empty) folder for the corpus")
    s.add_argument("--seed", type=int, default=0, help="random seed (the same seed writes the same corpus)")
    s.add_argument("--small", action="store_true", help="a small corpus with every edge case")
    s.set_defaults(func=cmd_sample)
