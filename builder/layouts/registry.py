"""THE registry of release layouts: a layout is added here, in one place.

The CLI's ``--layout`` choices and help, the option check, the build (which layout it
writes first, which temporaries are its own), the dataset card's ``configs``, the
release audit's top level and the layout audit's dispatch all read :data:`LAYOUTS`.
Exactly one layout is ``primary`` (imagefolder): the build writes it first and the
release audit audits it; the others are written from it by their ``writer``.
"""

from __future__ import annotations

from builder.errors import ConfigError
from builder.layouts import hdf5, imagefolder, parquet, sft_jsonl
from builder.layouts.base import Layout, LayoutOptions, check_options
from builder.layouts.policy import Policy

LAYOUTS: dict[str, Layout] = {
    layout.name: layout for layout in (imagefolder.LAYOUT, parquet.LAYOUT, sft_jsonl.LAYOUT, hdf5.LAYOUT)
}


def names() -> tuple[str, ...]:
    """Every layout's name, the primary one first (the CLI's ``--layout`` choices)."""
    return tuple(LAYOUTS)


def primary() -> Layout:
    """The layout every build writes first and the release audit audits."""
    (first,) = (layout for layout in LAYOUTS.values() if layout.primary)
    return first


def siblings() -> tuple[Layout, ...]:
    """The layouts written from the audited primary release."""
    return tuple(layout for layout in LAYOUTS.values() if not layout.primary)


def get(name: str) -> Layout:
    """The layout called ``name``.

    Raises:
        ConfigError: no layout has that name.
    """
    if name not in LAYOUTS:
        raise ConfigError(f"layout {name!r} is not one of {', '.join(LAYOUTS)}")
    return LAYOUTS[name]


def readers(option: str) -> str:
    """``sft-jsonl, hdf5``: the layouts that read ``option`` (a :class:`LayoutOptions` field)."""
    return ", ".join(layout.name for layout in LAYOUTS.values() if option in layout.options)


def check(layout: str, options: LayoutOptions | None, policy: Policy) -> None:
    """Refuse bad layout options before anything is read or written.

    Raises:
        ConfigError: unknown layout, a limit below 1, fractions that are not shares.
        PolicyError: an option would write a field the policy forbids.
    """
    entry = get(layout)
    o = options or LayoutOptions()
    check_options(o)
    if entry.policy_check is not None:
        entry.policy_check(o, policy)
