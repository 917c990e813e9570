"""Fine-tune the LoRA of LFM2.5-VL-450M on a release (folder or Hub id).

    python scripts/train_lora.py build/cropmark-disambiguator-s2/1.0.0 --config scripts/lora.yaml
    python scripts/train_lora.py ORG/cropmark-disambiguator-s2 --config scripts/lora.yaml \\
        --output-dir runs/lora-001

The same code as ``cropmark train`` (builder/model/train.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
