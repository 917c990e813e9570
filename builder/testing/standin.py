"""A random-weight LFM2.5-VL-450M at its real sizes, for speed and memory figures.

The real weights cannot be downloaded on every machine that runs this project,
but latency, memory and throughput depend on the architecture's sizes, not on
the weights' values. This writes a model folder built from the *published*
configuration of LFM2-VL-450M / LFM2.5-VL-450M (``lfm2_vl_450m.json``, every
value with its public source): the SigLIP2 NaFlex vision tower (12 layers,
width 768, 16 px patches), the two-layer projector with pixel unshuffle
(downsample factor 2, width 2560), and the LFM2 language model (16 layers, 10
gated short convolutions and 6 grouped-query attention layers, width 1024,
vocabulary 65,536, tied embeddings), with the published image-processor
settings and chat template. A 256x512 tile becomes 128 image tokens, as with
the real model.

What differs from the real model: the weights are random (seeded), and the
tokenizer is the small word-level one of :mod:`builder.testing.tiny` with the
model's special tokens (the real ``tokenizer.json`` is not at hand), so the
prompt's text tokens are counted by that tokenizer (85 around the 128 image
tokens); the embedding table still has the real 65,536 rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from builder.testing.tiny import (
    CHAT_TEMPLATE,
    PROCESSOR_SETTINGS,
    RANDOM_WEIGHTS_KEY,
    STANDIN_KIND,
    save_tokenizer,
)

MARKER = "STANDIN_MODEL.json"
# The published configuration of LFM2-VL-450M / LFM2.5-VL-450M, each value with its source.
PUBLISHED = Path(__file__).with_name("lfm2_vl_450m.json")


def published_config() -> dict[str, Any]:
    """The ``Lfm2VlConfig`` keyword arguments of ``lfm2_vl_450m.json``, nested (``text_config``...)."""
    published = json.loads(PUBLISHED.read_text(encoding="utf-8"))
    config: dict[str, Any] = {}
    for entry in published["values"]:
        *parents, leaf = entry["key"].split(".")
        node = config
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = entry["value"]
    return config


def write_standin(path: Path, seed: int = 0, dtype: str = "bfloat16") -> Path:
    """Write the random-weight LFM2.5-VL-450M stand-in (config, weights, tokenizer, processor).

    Args:
        path: the folder to create; an existing one is overwritten file by file.
        seed: the seed of the random weights.
        dtype: the stored weights' dtype (the published checkpoint is bfloat16).

    Returns:
        ``path``, loadable with ``AutoProcessor`` and ``AutoModelForImageTextToText``.
    """
    import torch
    from transformers import (
        AutoModelForImageTextToText,
        Lfm2VlConfig,
        Lfm2VlImageProcessor,
        Lfm2VlProcessor,
    )

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = save_tokenizer(path)
    values = published_config()
    values["text_config"].update(
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = Lfm2VlConfig(**values, image_token_id=tokenizer.convert_tokens_to_ids("<image>"))
    setattr(config, RANDOM_WEIGHTS_KEY, STANDIN_KIND)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config, dtype=getattr(torch, dtype))
    model.save_pretrained(path)
    parameters = sum(p.numel() for p in model.parameters())
    del model
    processor = Lfm2VlProcessor(
        image_processor=Lfm2VlImageProcessor(**PROCESSOR_SETTINGS),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(path)
    (path / MARKER).write_text(
        json.dumps(
            {
                "generator": "builder.testing.standin.write_standin",
                "seed": seed,
                "dtype": dtype,
                "parameters": parameters,
                "configuration": PUBLISHED.name,
            }
        )
        + "\n",
        encoding="utf-8",
    )
    return path
