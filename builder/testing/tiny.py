"""A tiny random LFM2-VL written to disk from a seed, for tests and offline runs.

The real ``LiquidAI/LFM2.5-VL-450M`` cannot be downloaded on every machine that
runs this project (CI, offline laptops). This generator writes a model folder
with the same *shape of parts* — an ``Lfm2VlConfig`` (SigLIP2 vision tower,
projector, LFM2 language model with ``conv`` and ``full_attention`` layers), a
tokenizer with the model's special tokens and chat template, and the real
``Lfm2VlImageProcessor`` settings — so the real ``AutoProcessor`` /
``AutoModelForImageTextToText`` / PEFT code paths run on it on a CPU in seconds
(the module names of LiquidAI/LFM2.5-VL-450M's ``config.json`` on the Hub). Its
answers are random until it is trained.

The weights are random but seeded: the same seed gives the same bytes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

from builder.domain import LABELS
from builder.model.prompt import PROMPT, SYSTEM_PROMPT

# The published Lfm2VlImageProcessor settings of LFM2-VL-450M:
# https://huggingface.co/LiquidAI/LFM2-VL-450M/blob/refs%2Fpr%2F4/processor_config.json (tiling, tokens)
# and https://huggingface.co/LiquidAI/LFM2-VL-450M/blob/main/preprocessor_config.json (normalisation).
# The LFM2.5-VL-450M card (https://huggingface.co/LiquidAI/LFM2.5-VL-450M) recommends
# min_image_tokens=32; a 256x512 tile gives 128 image tokens with either.
PROCESSOR_SETTINGS: Final[dict[str, Any]] = {
    "do_image_splitting": True,
    "downsample_factor": 2,
    "encoder_patch_size": 16,
    "max_image_tokens": 256,
    "min_image_tokens": 64,
    "max_pixels_tolerance": 2.0,
    "min_tiles": 2,
    "max_tiles": 10,
    "tile_size": 512,
    "use_thumbnail": False,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "rescale_factor": 1 / 255,
    "resample": 2,  # PIL bilinear
}

# The published chat template of LFM2-VL-450M, verbatim
# (https://huggingface.co/LiquidAI/LFM2-VL-450M/blob/main/chat_template.jinja):
# <|im_start|>role\n...<|im_end|>\n per turn, images as <image>.
CHAT_TEMPLATE: Final = (
    "{{bos_token}}{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<image>' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{'<|im_end|>\n'}}{% endfor %}{% if add_generation_prompt %}{{'<|im_start|>assistant\n' }}{% endif %}"
)

# Special tokens of LFM2-VL's tokenizer that the processor and the template use.
SPECIAL_TOKENS: Final = (
    "<|pad|>",
    "<|startoftext|>",
    "<|im_end|>",
    "<|im_start|>",
    "<image>",
    "<|image_start|>",
    "<|image_end|>",
    "<|img_thumbnail|>",
    *(f"<|img_row_{r}_col_{c}|>" for r in range(1, 11) for c in range(1, 11)),
)
_WORD = re.compile(r"\w+|[^\w\s]")
# The key of a model's config.json that says its weights are random (written by this
# module and by builder.testing.standin; transformers keeps unknown config keys), and its values.
RANDOM_WEIGHTS_KEY: Final = "cropmark_random_weights"
TINY_KIND: Final = "a tiny random test model"
STANDIN_KIND: Final = "a random-weight stand-in of the real model's size"


def _vocabulary() -> list[str]:
    words: list[str] = []
    for text in (SYSTEM_PROMPT, PROMPT, " ".join(LABELS), "user assistant system \n"):
        for word in [*_WORD.findall(text), "\n"]:
            if word not in words:
                words.append(word)
    return [*SPECIAL_TOKENS, "[UNK]", *words]


def save_tokenizer(path: Path) -> Any:
    """Write a small word-level tokenizer with LFM2-VL's special tokens and chat template to ``path``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(_vocabulary())}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    # Newlines are tokens (the chat format needs them); other whitespace separates words.
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\n"), behavior="isolated"),
            pre_tokenizers.Split(Regex(r"[ \t]+"), behavior="removed"),
            pre_tokenizers.Split(Regex(r"[^\w\s]"), behavior="isolated"),
        ]
    )
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|startoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token="[UNK]",
        additional_special_tokens=list(SPECIAL_TOKENS[3:]),
        chat_template=CHAT_TEMPLATE,
    )
    tokenizer.save_pretrained(path)
    return tokenizer


def write_tiny_lfm2_vl(path: Path, seed: int = 0, text_hidden_size: int = 64) -> Path:
    """Write a tiny random LFM2-VL (config, weights, tokenizer, processor) to ``path``.

    Args:
        path: the folder to create; an existing one is overwritten file by file.
        seed: the seed of the random weights.
        text_hidden_size: the language model's width (another width makes a base
            that an adapter trained on the default cannot fit).

    Returns:
        ``path``, loadable with ``AutoProcessor.from_pretrained`` and
        ``AutoModelForImageTextToText.from_pretrained``.
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
    config = Lfm2VlConfig(
        vision_config={
            "model_type": "siglip2_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_patches": 256,
            "patch_size": 16,
            "vision_use_head": False,
        },
        text_config={
            "model_type": "lfm2",
            "vocab_size": len(tokenizer),
            "hidden_size": text_hidden_size,
            "intermediate_size": 2 * text_hidden_size,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "layer_types": ["conv", "full_attention", "conv", "full_attention"],
            "block_auto_adjust_ff_dim": False,
            "max_position_embeddings": 2048,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        projector_hidden_size=64,
        downsample_factor=2,
    )
    setattr(config, RANDOM_WEIGHTS_KEY, TINY_KIND)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config)
    model.save_pretrained(path)
    # The real model's image settings: a 256x512 tile is one tile of 128 image tokens.
    processor = Lfm2VlProcessor(
        image_processor=Lfm2VlImageProcessor(**PROCESSOR_SETTINGS), tokenizer=tokenizer
    )
    processor.chat_template = CHAT_TEMPLATE
    processor.save_pretrained(path)
    (path / "TINY_MODEL.json").write_text(
        json.dumps(
            {
                "generator": "builder.testing.tiny.write_tiny_lfm2_vl",
                "seed": seed,
                "text_hidden_size": text_hidden_size,
            }
        )
        + "\n",
        encoding="utf-8",
    )
    return path


def is_tiny(path: str | Path) -> bool:
    """True when ``path`` is a folder this generator wrote (the Space says so on its page)."""
    return (Path(path) / "TINY_MODEL.json").is_file()


def random_model_kind(model: str | Path | Any) -> str | None:
    """What kind of random test model ``model`` is, in words; None for any other model.

    ``model`` is a model folder or a loaded model's configuration. The kind is
    written into the model's own ``config.json`` (:data:`RANDOM_WEIGHTS_KEY`), so
    it travels with every copy of the model: a folder renamed, pushed to a Hub
    and downloaded again, or loaded from a Hub id. The Space, the evaluation and
    the CLI mark every prediction of such a model as a test model's.
    """
    if isinstance(model, (str, Path)):
        folder = Path(model)
        if is_tiny(folder):
            return TINY_KIND
        if (folder / "STANDIN_MODEL.json").is_file():
            return STANDIN_KIND
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        kind = config.get(RANDOM_WEIGHTS_KEY) if isinstance(config, dict) else None
    else:
        kind = getattr(model, RANDOM_WEIGHTS_KEY, None)
    return str(kind) if kind else None
