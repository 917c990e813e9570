"""The one definition of the question, the label set and the chat turns.

Building, training, evaluation and the Space all import these names; nothing
else in the project spells the prompt out.
"""

from __future__ import annotations

from typing import Final, Literal

Label = Literal["No", "Yes"]
# Order matters: ClassLabel index 0 is "No", 1 is "Yes" (dataset card, metadata.csv).
LABELS: Final[tuple[Label, Label]] = ("No", "Yes")

SYSTEM_PROMPT: Final = (
    "You are an expert in archaeological remote sensing. You look at Sentinel-2 "
    "false-colour images of farmland (R = NIR B08, G = Red B04, B = Red Edge B05)."
)

PROMPT: Final = (
    "Does this Sentinel-2 tile show cropmark stress from buried archaeology "
    "(ring ditches, enclosures, linear features) in the crop? Answer Yes or No."
)


def is_label(value: object) -> bool:
    """True when ``value`` is exactly one of :data:`LABELS` (case matters)."""
    return isinstance(value, str) and value in LABELS
