"""Cards: render the release's README (and later the model card and Space README).

YAML headers come only from huggingface_hub's card-data classes; templates in
``cards/`` hold prose. Rendering uses a Jinja ``Environment`` with
``StrictUndefined`` so that a misspelt variable fails the build instead of
printing an empty string (huggingface_hub's own ``from_template`` does not).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from huggingface_hub import DatasetCard, DatasetCardData

from builder.model.prompt import LABELS
from builder.records import SPLITS

CARDS_DIR = Path(os.environ.get("CROPMARK_CARDS_DIR", Path(__file__).resolve().parent.parent / "cards"))


def environment() -> jinja2.Environment:
    """The one Jinja environment of the project: strict, no autoescape (Markdown)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(CARDS_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(template: str, context: Mapping[str, Any]) -> str:
    """Render ``cards/<template>`` with ``context``; an unknown variable raises."""
    return environment().get_template(template).render(**context)


def features_yaml() -> list[dict[str, Any]]:
    """``image`` + ``label`` as ClassLabel, in the YAML form datasets reads inside ``configs``.

    datasets ignores ``dataset_info.features`` for imagefolder; ``features`` inside
    the configs entry is what gives ``ClassLabel(names=["No", "Yes"])`` (FACTS.md).
    """
    names = {str(i): name for i, name in enumerate(LABELS)}
    return [
        {"name": "image", "dtype": "image"},
        {"name": "label", "dtype": {"class_label": {"names": names}}},
    ]


def configs_yaml() -> list[dict[str, Any]]:
    """The ``configs:`` entry: one split per ``data/<split>/`` folder, with the features."""
    return [
        {
            "config_name": "default",
            "data_files": [{"split": split, "path": f"data/{split}/**"} for split in SPLITS],
            "features": features_yaml(),
        }
    ]


def minimal_dataset_card(pretty_name: str, counts: Mapping[str, int]) -> str:
    """A small README that makes the folder loadable; the full card replaces it."""
    data = DatasetCardData(
        license="cdla-permissive-2.0",
        pretty_name=pretty_name,
        configs=configs_yaml(),
    )
    body = render("minimal_card.md.j2", {"pretty_name": pretty_name, "counts": counts})
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}"))
