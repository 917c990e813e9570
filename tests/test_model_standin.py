"""The real-size stand-in of LFM2.5-VL-450M and the scoring shortcuts that its speed depends on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch

from builder.model import data
from builder.model.scoring import batch, load_scorer, prompt_text
from builder.testing.standin import MARKER, PUBLISHED, published_config, write_standin
from builder.testing.tiny import PROCESSOR_SETTINGS, random_model_kind


def _meta_model() -> torch.nn.Module:
    from transformers import AutoModelForImageTextToText, Lfm2VlConfig

    with torch.device("meta"):
        return AutoModelForImageTextToText.from_config(Lfm2VlConfig(**published_config()))


def test_every_published_value_names_a_public_source() -> None:
    published = json.loads(PUBLISHED.read_text())
    for entry in published["values"]:
        assert entry["source"] in published["sources"], entry
    for source in published["sources"].values():
        assert source["url"].startswith("https://huggingface.co/") or source["url"].startswith(
            "https://github.com/"
        )


def test_the_published_configuration_has_the_real_models_parts_and_sizes() -> None:
    """LFM2.5-VL-450M's card: about 450 M parameters, a SigLIP2 NaFlex tower of 86 M, LFM2.5-350M."""
    model = _meta_model()
    parts: dict[str, int] = {}
    for name, parameter in model.named_parameters():
        part = "vision" if "vision_tower" in name else "projector" if "projector" in name else "language"
        parts[part] = parts.get(part, 0) + parameter.numel()
    assert 440e6 < sum(parts.values()) < 460e6
    assert 85e6 < parts["vision"] < 87e6
    assert 350e6 < parts["language"] < 360e6  # LFM2-350M: 287 M in the blocks + 67 M tied embeddings
    text = model.config.text_config
    assert (text.hidden_size, text.num_hidden_layers, text.vocab_size) == (1024, 16, 65536)
    assert text.layer_types.count("full_attention") == 6 and text.layer_types.count("conv") == 10
    # block_auto_adjust_ff_dim turns the published 6656 into 4608 (2/3 of it, rounded up to 256).
    assert model.model.language_model.layers[0].feed_forward.w1.weight.shape == (4608, 1024)


def test_trimming_padded_patches_changes_no_score(tiny_model: Path, small_release: Path) -> None:
    """The processor pads 512 patches to 1024; scoring drops the padding and gets the same logits."""
    scorer = load_scorer(str(tiny_model))
    tiles = [Image.open(e.path).convert("RGB") for e in data.examples(small_release, "eval")[:3]]
    trimmed = batch(scorer.processor, tiles)
    padded = scorer.processor(
        text=[prompt_text(scorer.processor)] * len(tiles),
        images=[[t] for t in tiles],
        padding=True,
        return_tensors="pt",
    )
    assert padded["pixel_values"].shape[1] == 1024 and trimmed["pixel_values"].shape[1] == 512
    with torch.inference_mode():
        full = scorer.model(**padded).logits
        short = scorer.model(**trimmed).logits
    torch.testing.assert_close(full, short)
    # p_yes keeps only the last prompt position's logits; the same numbers as the full head.
    last = padded["attention_mask"].sum(dim=1) - 1
    pair = full[torch.arange(len(tiles)), last][:, [scorer.no_id, scorer.yes_id]].float()
    expected = torch.softmax(pair, dim=-1)[:, 1].double().numpy()
    np.testing.assert_allclose(scorer.p_yes(tiles, batch_size=3), expected, atol=1e-6)


def test_a_tile_is_128_image_tokens_with_the_published_processor_settings(tiny_model: Path) -> None:
    from transformers import Lfm2VlImageProcessor

    settings = PROCESSOR_SETTINGS
    assert settings["use_thumbnail"] is False and settings["max_image_tokens"] == 256
    processor = Lfm2VlImageProcessor(**settings)
    tile = Image.fromarray(np.zeros((512, 256, 3), dtype=np.uint8))
    out = processor([[tile]], return_tensors="pt")
    assert out["spatial_shapes"].tolist() == [
        [32, 16]
    ]  # 512 patches of 16 px -> 128 tokens after 2x2 unshuffle


@pytest.mark.slow
def test_the_stand_in_writes_loads_and_scores_through_the_projects_loader(tmp_path: Path) -> None:
    """About 860 MB on disk (bfloat16), 1.8 GB in memory (float32 on a CPU)."""
    path = write_standin(tmp_path / "standin", seed=0)
    marker = json.loads((path / MARKER).read_text())
    assert 440e6 < marker["parameters"] < 460e6
    assert random_model_kind(path) == "a random-weight stand-in of the real model's size"
    scorer = load_scorer(str(path), device="cpu")
    assert next(scorer.model.parameters()).dtype == torch.float32
    tile = Image.fromarray(np.random.default_rng(0).integers(0, 255, (512, 256, 3), dtype=np.uint8))
    image_id = scorer.processor.tokenizer.convert_tokens_to_ids("<image>")
    assert int((batch(scorer.processor, [tile])["input_ids"] == image_id).sum()) == 128
    p = scorer.p_yes([tile], batch_size=1)
    assert p.shape == (1,) and 0.0 < p[0] < 1.0
