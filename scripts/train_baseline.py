"""Fit the physics baseline (logistic regression on proxy features) and evaluate it.

    python scripts/train_baseline.py build/cropmark-disambiguator-s2/1.0.0 --out runs/baseline

The same code as ``cropmark baseline`` (builder/model/baseline.py, evaluate.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.cli import main

if __name__ == "__main__":
    sys.exit(main(["baseline", *sys.argv[1:]]))
