"""Release pushes of the dataset, the model and the Space to the Hub.

    python scripts/publish.py dataset build/cropmark-disambiguator-s2/1.0.0 \\
        --repo-id ORG/cropmark-disambiguator-s2 --tag v1.0.0 [--dry-run] [--private]
    python scripts/publish.py model runs/lora-001 --repo-id ORG/cropmark-lfm2.5-vl-lora --tag v1.0.0
    python scripts/publish.py space space/ --repo-id ORG/cropmark-disambiguator

The same code as ``cropmark publish`` (builder/hub/publish.py); see its docstring.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.cli import main

if __name__ == "__main__":
    sys.exit(main(["publish", *sys.argv[1:]]))
