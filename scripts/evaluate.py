"""Evaluate the fine-tuned model and the physics baseline on a release's eval split.

    python scripts/evaluate.py build/cropmark-disambiguator-s2/1.0.0 --out runs/lora/eval \\
        --base-model LiquidAI/LFM2.5-VL-450M --adapter runs/lora --baseline runs/baseline/baseline.json

Scores are next-token probabilities of Yes against No, not free generation. The
same code as ``cropmark evaluate`` (builder/model/evaluate.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
