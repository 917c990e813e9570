"""Loading the VLM (base + LoRA adapter) and scoring tiles by next-token probability.

The one inference path of the project: ``scripts/evaluate.py`` and the Space call
:meth:`VlmScorer.p_yes`, training calls :func:`batch` for its inputs. A tile's
score is ``P(Yes) / (P(Yes) + P(No))`` of the first answer token after the
prompt, not free generation: it gives a ranking (ROC-AUC) and never an answer
outside the label set.

torch, transformers and peft are imported lazily: importing this
module costs nothing until a model is loaded.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from builder.domain import LABELS, hub_id_problem
from builder.errors import ModelLoadError
from builder.hub import client as hub
from builder.model.prompt import messages

INSTALL_HINT = "install the model extra: pip install -c constraints.txt -e '.[model]'"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _named(exc: BaseException) -> str:
    """``Type: first line`` for an error of another library (a corrupt file, a full disk...)."""
    return f"{type(exc).__name__}: {_first_line(exc)}"


def require_model_extra() -> None:
    """Raise a one-line error naming the install command when torch/transformers/peft are absent."""
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ModelLoadError(f"{exc.name} is not installed; {INSTALL_HINT}") from None


def label_token_ids(tokenizer: Any) -> tuple[int, int]:
    """Token ids of ``No`` and ``Yes`` (LABELS order); each label must be one token."""
    ids = []
    for label in LABELS:
        encoded = tokenizer(label, add_special_tokens=False)["input_ids"]
        if len(encoded) != 1:
            raise ModelLoadError(
                f"the tokenizer splits {label!r} into {len(encoded)} tokens {encoded}; "
                "next-token scoring needs each label to be one token"
            )
        ids.append(int(encoded[0]))
    return ids[0], ids[1]


def prompt_text(processor: Any, answer: str | None = None) -> str:
    """The chat text of one question (and its answer), with the image placeholder."""
    text: str = processor.apply_chat_template(
        messages(None, answer), tokenize=False, add_generation_prompt=answer is None
    )
    return text


def batch(processor: Any, images: Sequence[Any], answers: Sequence[str] | None = None) -> Any:
    """Processor inputs for a batch of tiles, right-padded; with ``labels`` when answers are given.

    ``labels`` keep only the assistant's answer (the label token, its end-of-turn
    and what the template closes the turn with); the system turn, the question
    and the image tokens are ``-100``, so the loss is on the answer only.
    """
    processor.tokenizer.padding_side = "right"
    if answers is None:
        texts = [prompt_text(processor)] * len(images)
    else:
        texts = [prompt_text(processor, answer) for answer in answers]
    inputs = processor(text=texts, images=[[image] for image in images], padding=True, return_tensors="pt")
    _drop_padding_patches(inputs)
    if answers is not None:
        asked = prompt_text(processor)
        tokenizer = processor.tokenizer
        prefix = tokenizer(asked, add_special_tokens=False)["input_ids"]
        labels = inputs["input_ids"].clone()
        labels[inputs["attention_mask"] == 0] = -100
        for row, text in enumerate(texts):
            full = tokenizer(text, add_special_tokens=False)["input_ids"]
            if full[: len(prefix)] != prefix:
                raise ModelLoadError(
                    "the chat template tokenizes the question differently with and without "
                    "the answer; the answer-only loss mask cannot be placed"
                )
            answer_tokens = len(full) - len(prefix)
            end = int(inputs["attention_mask"][row].sum())
            labels[row, : end - answer_tokens] = -100
        inputs["labels"] = labels
    return inputs


def _drop_padding_patches(inputs: Any) -> None:
    """Drop the patch slots that are padding in every image of the batch.

    The LFM2-VL image processor pads every image to ``max_num_patches`` (1024
    with the published settings) and masks the padding out of the vision
    tower's attention; a 256x512 tile has 512 patches, so half of the vision
    tower's work was padding. The tower's outputs for real patches are the same
    without it (``tests/test_model_vlm.py``).
    """
    mask = inputs.get("pixel_attention_mask")
    if mask is None or "pixel_values" not in inputs or mask.ndim != 2:
        return
    used = int(mask.sum(dim=1).max())
    if 0 < used < mask.shape[1] and not bool(mask[:, used:].any()):
        inputs["pixel_values"] = inputs["pixel_values"][:, :used]
        inputs["pixel_attention_mask"] = mask[:, :used]


@dataclass
class VlmScorer:
    """A loaded base model (with its adapter, if any) and its processor."""

    model: Any
    processor: Any
    no_id: int
    yes_id: int
    base: str
    adapter: str | None
    # What kind of random test model the base is ("a tiny random test model"...), None for
    # a real one: every output of its predictions says so (builder.testing.tiny.random_model_kind).
    test_model: str | None = None

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def p_yes(
        self,
        images: Sequence[Any],
        batch_size: int = 8,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """P(Yes) among {Yes, No} for each RGB tile (PIL images), as float64.

        Args:
            images: RGB PIL images (256x512 tiles of the release).
            batch_size: tiles per forward pass.
            progress: called with the number of tiles done after each batch.
        """
        import torch

        out: list[np.ndarray] = []
        dtype = next(self.model.parameters()).dtype
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            inputs = batch(self.processor, chunk).to(self.device)
            if "pixel_values" in inputs:
                inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
            last = inputs["attention_mask"].sum(dim=1) - 1
            with torch.inference_mode():
                # Only the last prompt position's logits are needed: the head runs on one row per tile.
                logits = self.model(**inputs, logits_to_keep=last[:, None]).logits
            rows = logits[:, 0]
            pair = rows[:, [self.no_id, self.yes_id]].float()
            out.append(torch.softmax(pair, dim=-1)[:, 1].cpu().double().numpy())
            if progress is not None:
                progress(len(chunk))
        return np.concatenate(out) if out else np.zeros(0)


def pick_device(device: str = "auto") -> str:
    """``cuda`` when asked for ``auto`` and a GPU is present, else what was asked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_base(base: str, device: str = "auto") -> tuple[Any, Any]:
    """The base model and processor from a Hub id or a local folder, with a one-line error."""
    require_model_extra()
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device = pick_device(device)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        processor = AutoProcessor.from_pretrained(base)
        model = AutoModelForImageTextToText.from_pretrained(base, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"base model {base!r} could not be loaded ({_first_line(exc)}); give a local model "
            "folder or a Hub id this machine can download"
        ) from None
    except Exception as exc:  # a truncated or corrupt weights file (SafetensorError), a bad config...
        raise ModelLoadError(
            f"base model {base!r} could not be loaded ({_named(exc)}); its files may be truncated "
            "or corrupt: download them again"
        ) from exc
    return model.to(device), processor  # type: ignore[arg-type]  # transformers types .to oddly


def local_adapter(adapter: str | Path) -> Path:
    """A local adapter folder: ``adapter`` itself, or a Hub model id downloaded into the cache."""
    folder = Path(adapter)
    if folder.is_dir() or folder.exists() or hub_id_problem(str(adapter)) is not None:
        return folder
    try:
        return hub.download_repo(str(adapter))
    except Exception as exc:  # the Hub client raises many kinds; all mean "not here"
        raise ModelLoadError(
            f"adapter {adapter!r} could not be downloaded ({_first_line(exc)}); give a local run folder"
        ) from None


def _trained_on(config: Path) -> str:
    """The base model an ``adapter_config.json`` names; a one-line error for a file PEFT cannot read."""
    try:
        value = json.loads(config.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{config} is not JSON ({_first_line(exc)}); the adapter is damaged") from None
    base = value.get("base_model_name_or_path") if isinstance(value, dict) else None
    if not isinstance(base, str) or not base:
        raise ModelLoadError(
            f"{config} is not a PEFT adapter config (a JSON object naming base_model_name_or_path); "
            "the adapter is damaged"
        )
    return base


def attach_adapter(model: Any, base: str, adapter: str | Path) -> Any:
    """``PeftModel.from_pretrained`` with a one-line error when the adapter does not fit."""
    from peft import PeftModel

    folder = local_adapter(adapter)
    config = folder / "adapter_config.json"
    if not config.is_file():
        raise ModelLoadError(f"{config} does not exist; give the output folder of scripts/train_lora.py")
    trained_on = _trained_on(config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = PeftModel.from_pretrained(model, str(folder))
        except (RuntimeError, ValueError, KeyError) as exc:
            # torch lists every mismatch under a generic first line; name the first one.
            lines = [ln.strip() for ln in str(exc).splitlines() if "mismatch" in ln]
            raise ModelLoadError(
                f"adapter {folder} does not fit base model {base!r} "
                f"({lines[0].rstrip('.') if lines else _first_line(exc)}); "
                f"it was trained on {trained_on!r}"
            ) from None
        except Exception as exc:  # a truncated or corrupt adapter_model.safetensors (SafetensorError)...
            raise ModelLoadError(
                f"adapter {folder} could not be loaded ({_named(exc)}); its files may be truncated or "
                "corrupt: copy or download the run folder again"
            ) from exc
    for warning in caught:
        text = str(warning.message)
        if "missing adapter keys" in text.lower() or "unexpected" in text.lower():
            raise ModelLoadError(
                f"adapter {folder} does not fit base model {base!r} ({text.splitlines()[0]})"
            )
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return model


def load_scorer(base: str, adapter: str | Path | None = None, device: str = "auto") -> VlmScorer:
    """Load the base model, attach the LoRA adapter (if given) and prepare Yes/No scoring.

    Raises:
        ModelLoadError: the model extra is missing, the base model cannot be
            loaded, or the adapter does not fit it.
    """
    from builder.testing import random_model_kind

    model, processor = load_base(base, device)
    test_model = random_model_kind(model.config)
    if adapter is not None:
        model = attach_adapter(model, base, adapter)
    model.eval()
    no_id, yes_id = label_token_ids(processor.tokenizer)
    return VlmScorer(
        model, processor, no_id, yes_id, base, None if adapter is None else str(adapter), test_model
    )
