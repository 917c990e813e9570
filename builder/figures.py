"""How a measured figure or a threshold is written in a card, a report detail or the CLI.

Exactly the value used: never rounded into another number.
"""

from __future__ import annotations

from decimal import Decimal


def number(value: float) -> str:
    """A threshold as written in a card, a report detail or the CLI: exactly the value used.

    The shortest decimal that reads back as the same float (``repr``), without a
    trailing ``.0`` (``4000``, ``0.045``, ``0.123456789012``); very small or large
    values in exponent form (``1e-300``). Rounding (``:g``, ``:.0%``) would quote a
    threshold other than the one that decided.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _decimal(Decimal(repr(float(value) + 0.0)))  # + 0.0: -0.0 is quoted "0"


def pct(share: float) -> str:
    """A share as an exact percentage: ``0.3`` -> ``30 %``, ``0.123456789`` -> ``12.3456789 %``."""
    return f"{_decimal(Decimal(repr(float(share) + 0.0)).scaleb(2))} %"


def _decimal(value: Decimal) -> str:
    value = value.normalize()
    if value.is_zero():
        return "0"
    if -7 <= value.adjusted() <= 15:
        return format(value, "f")
    return f"{float(value)!r}"
