"""Imagefolder layout: the cropmark release itself.

::

    data/{train,eval}/d_tile_<12 letters>.jpg   the Sentinel-2 halves
    data/{train,eval}/metadata.csv              file_name,label
    README.md  LICENSE  NOTICE.md

It is the registry's primary layout: every build writes it first, in its own staging
(:mod:`builder.release.build`), and the release audit (:mod:`builder.release.audit`)
audits it; every other layout is written from it once that audit passed.
"""

from __future__ import annotations

from typing import Any

from builder.domain import LABELS, SPLITS
from builder.layouts.base import LayoutSpec


def features_yaml() -> list[dict[str, Any]]:
    """``image`` + ``label`` as ClassLabel, in the YAML form datasets reads inside ``configs``.

    datasets ignores ``dataset_info.features`` for imagefolder; ``features`` inside
    the configs entry is what gives ``ClassLabel(names=["No", "Yes"])``
    (https://huggingface.co/docs/hub/datasets-manual-configuration).
    """
    names = {str(i): name for i, name in enumerate(LABELS)}
    return [
        {"name": "image", "dtype": "image"},
        {"name": "label", "dtype": {"class_label": {"names": names}}},
    ]


def configs() -> list[dict[str, Any]]:
    """The ``configs:`` entry: one split per ``data/<split>/`` folder, with the features."""
    return [
        {
            "config_name": "default",
            "data_files": [{"split": split, "path": f"data/{split}/**"} for split in SPLITS],
            "features": features_yaml(),
        }
    ]


LAYOUT = LayoutSpec(
    name="imagefolder",
    top_level=frozenset({"README.md", "LICENSE", "NOTICE.md", "data"}),
    options=(),
    audited="metadata, images, text and halves",
    configs=configs,
)
