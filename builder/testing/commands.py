"""The ``cropmark sample`` subcommand: the seeded sample private corpus."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from builder.errors import CropmarkError


def cmd_sample(args: argparse.Namespace) -> int:
    """Write the corpus into ``out`` (a new or empty folder, or a link to one); an error or
    Ctrl-C part-way removes what was written, leaving ``out`` as it was: no partial corpus."""
    from builder.testing.sample import SMALL_PLAN, Plan, generate

    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise CropmarkError(f"{out} is not a folder; choose a new folder for the sample corpus")
    existed = out.exists()
    if existed and any(out.iterdir()):
        raise CropmarkError(f"{out} exists and is not empty; choose a new folder for the sample corpus")
    try:
        plan = generate(out, seed=args.seed, plan=SMALL_PLAN if args.small else Plan())
    except BaseException:
        if not existed:
            shutil.rmtree(out, ignore_errors=True)
        elif out.is_dir():  # the folder the user gave (a mount point, a link) stays; its new contents go
            for entry in out.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        raise
    print(f"wrote a sample corpus to {out}: {plan.train_rows} train + {plan.eval_rows} eval rows")
    return 0


def register(sub: Any) -> None:
    """Add ``sample`` to ``cropmark``'s subparsers."""
    s = sub.add_parser("sample", help="write the seeded sample private corpus")
    s.add_argument("out", type=Path, help="a new (or empty) folder for the corpus")
    s.add_argument("--seed", type=int, default=0, help="random seed (the same seed writes the same corpus)")
    s.add_argument("--small", action="store_true", help="a small corpus with every edge case")
    s.set_defaults(func=cmd_sample)
