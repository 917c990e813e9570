"""The one definition of the question and the chat turns (the labels are :mod:`builder.domain`'s).

Building, training, evaluation and the Space all import these names; nothing
else in the project spells the prompt out.
"""

from __future__ import annotations

from typing import Final

from builder.domain import LABELS, is_label

SYSTEM_PROMPT: Final = (
    "You are an expert in archaeological remote sensing. You look at Sentinel-2 "
    "false-colour images of farmland (R = NIR B08, G = Red B04, B = Red Edge B05)."
)

PROMPT: Final = (
    "Does this Sentinel-2 tile show cropmark stress from buried archaeology "
    "(ring ditches, enclosures, linear features) in the crop? Answer Yes or No."
)


def messages(image: object, answer: str | None = None) -> list[dict[str, object]]:
    """The chat turns of one question, as training, evaluation and the Space send them.

    Args:
        image: what the processor's chat template receives as the image part: a
            PIL image at inference, a relative path in SFT rows.
        answer: ``"Yes"`` or ``"No"`` for a training row; ``None`` to ask.

    The turns are the private corpus's: a system turn, a user turn with the
    image before the question, and (for training) the assistant's one-word answer.
    """
    turns: list[dict[str, object]] = [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": PROMPT}]},
    ]
    if answer is not None:
        if not is_label(answer):
            raise ValueError(f"answer {answer!r} is not one of {LABELS}")
        turns.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return turns


def sft_row(image: str, answer: str) -> dict[str, object]:
    """One leap-finetune VLM SFT row: ``{"messages": [...]}`` with the image as a relative path."""
    return {"messages": messages(image, answer)}
