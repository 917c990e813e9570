"""Render the golden cards from the fixtures in tests/data/.

    python -m tests.golden.refresh      (or: make golden)

Review the diff before committing: a golden card is what users will read.
"""

from __future__ import annotations

import json
from pathlib import Path

from builder.release import cards
from builder.release.report import BuildReport

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data"
REPO_ID = "ORG/cropmark-disambiguator-s2"
MODEL_ID = "ORG/cropmark-lfm2.5-vl-lora"
GRADIO = "6.31.0"


def rendered() -> dict[str, str]:
    """Every golden card, rendered from the fixtures, by file name."""
    report = BuildReport.from_dict(json.loads((DATA / "build_report.json").read_text()))
    training = json.loads((DATA / "training_summary.json").read_text())
    evaluation = json.loads((DATA / "evaluation.json").read_text())
    return {
        "dataset_card.md": cards.dataset_card(report, REPO_ID),
        "model_card.md": cards.model_card(training, evaluation, MODEL_ID, REPO_ID),
        "space_readme.md": cards.space_readme("Cropmark Disambiguator", MODEL_ID, REPO_ID, GRADIO),
    }


def main() -> None:
    for name, text in rendered().items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote tests/golden/{name}")


if __name__ == "__main__":
    main()
