"""Progress bars of the command line, drawn by tqdm on standard error.

A bar shows only when standard error is a terminal (tqdm's ``disable=None``) and the
command was not given ``--quiet``; piped or captured output never holds one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_quiet = False


def set_quiet(quiet: bool) -> None:
    """``--quiet``: no bar at all, even on a terminal, ours or those of huggingface_hub (uploads)
    and datasets (the Parquet layout's writer)."""
    global _quiet
    _quiet = quiet
    if quiet:
        # Read when each library is imported; a library imported already is told directly.
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
        from huggingface_hub.utils.tqdm import disable_progress_bars

        disable_progress_bars()
        if "datasets" in sys.modules:
            import datasets

            datasets.disable_progress_bars()


def quiet() -> bool:
    return _quiet


def bar(items: Iterable[T], desc: str, total: int | None = None, unit: str = "file") -> Iterator[T]:
    """``items``, with a bar labelled ``desc`` on a terminal."""
    from tqdm import tqdm

    yield from tqdm(
        items,
        desc=desc,
        total=total,
        unit=unit,
        file=sys.stderr,
        # No standard error at all (``2>&-``: Python sets sys.stderr to None): no bar.
        disable=True if _quiet or sys.stderr is None else None,
        leave=False,
        dynamic_ncols=True,
    )
