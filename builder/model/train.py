"""LoRA fine-tuning of LFM2.5-VL on a release: VLM SFT on the Yes/No question.

The adapter covers the language model's linear layers and the multi-modal
projector, never the vision tower. The attention names ``q_proj``… exist in the
SigLIP2 tower too (transformers' ``Siglip2Attention``), so the targets are one regex
that PEFT full-matches against module names; after wrapping, the run refuses to go
on if any adapted module sits in the vision tower.

The loop is plain PyTorch (AdamW, linear warm-up and decay, gradient
accumulation, clipping at 1.0): few moving parts, every step's loss recorded.
The run is written to ``OUTPUT.partial`` and renamed when complete, so a failed
or interrupted run never leaves a folder that looks like a model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from builder.config import read_mapping, unknown_keys
from builder.domain import BASE_MODEL
from builder.errors import ConfigError
from builder.model import data
from builder.model.schema import TRAIN_SCHEMA, check_training_summary, describe_release, release_record
from builder.model.scoring import batch, label_token_ids, load_base, pick_device, require_model_extra

# Language-model linear layers (attention, short convolution projections, SwiGLU) and
# the projector. Anchored at "model." so "model.vision_tower.…q_proj" never matches.
TARGET_MODULES = (
    r"model\.(language_model\.layers\.\d+\.(self_attn\.(q|k|v|out)_proj|conv\.(in|out)_proj"
    r"|feed_forward\.w[123])|multi_modal_projector\.linear_[12])"
)


@dataclass
class TrainConfig:
    """Every setting of a run; a YAML or JSON file sets any subset of them."""

    base_model: str = BASE_MODEL
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: str = TARGET_MODULES
    learning_rate: float = 2e-4
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    epochs: float = 3.0
    batch_size: int = 8
    gradient_accumulation: int = 2
    max_steps: int | None = None
    seed: int = 42
    output_dir: str = "runs/lora"
    device: str = "auto"

    def check(self) -> None:
        """Raise :class:`ConfigError` naming the first setting out of range."""
        positive = {
            "lora_r": self.lora_r,
            "lora_alpha": self.lora_alpha,
            "learning_rate": self.learning_rate,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "gradient_accumulation": self.gradient_accumulation,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"training config: {name} = {value}; it must be greater than 0")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"training config: lora_dropout = {self.lora_dropout}; allowed 0 <= x < 1")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"training config: warmup_ratio = {self.warmup_ratio}; allowed 0 <= x < 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(
                f"training config: max_steps = {self.max_steps}; give 1 or more, or leave it out"
            )
        if "vision_tower" in self.target_modules:
            raise ConfigError("training config: target_modules names the vision tower; it is never adapted")


def load_config(path: Path | None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML/JSON file (read by :func:`builder.config.read_mapping`)
    and overrides; unknown keys and wrong types are one-line errors."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values.update(read_mapping(path, "a mapping of settings", "training setting", yaml=True))
        except ConfigError as exc:
            raise ConfigError(f"training config {exc}") from None
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = unknown_keys(values, TrainConfig)
    if unknown:
        raise ConfigError(f"training config: unknown setting(s) {unknown}; known: {sorted(known)}")
    defaults = TrainConfig()
    for name, value in values.items():
        expected = type(getattr(defaults, name))
        if name == "max_steps" or value is None:
            continue
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            values[name] = float(value)
        elif not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
            raise ConfigError(f"training config: {name} = {value!r}; expected {expected.__name__}")
    config = TrainConfig(**values)
    config.check()
    return config


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    return {name: md.version(name) for name in ("torch", "transformers", "peft", "cropmark")}


def train(
    config: TrainConfig, release: str, progress: bool = True, overwrite: bool = False
) -> dict[str, Any]:
    """Fine-tune a LoRA on the release's ``train`` split and save the run.

    Writes ``adapter_config.json``, ``adapter_model.safetensors``, the processor
    files and ``training_summary.json`` (schema ``cropmark-train/2``) to
    ``config.output_dir``.

    Returns:
        The training summary.

    Raises:
        ConfigError: a bad setting, or an output folder that exists without ``overwrite``.
        ReleaseNotFoundError, ReleaseLayoutError: the release cannot be read or has no labels.
        ModelLoadError: the model extra is missing or the base model cannot be loaded.
    """
    require_model_extra()
    import torch

    config.check()
    out = Path(config.output_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} exists and is not empty; choose another output_dir or pass --overwrite")
    folder = data.resolve(release)
    examples = data.examples(folder, "train")
    trained_on = release_record(release, folder)

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = pick_device(config.device)
    model, processor = load_base(config.base_model, device)
    label_token_ids(processor.tokenizer)  # both labels must be single tokens before we train on them
    model.config.use_cache = False
    model, adapted = _with_lora(model, config)
    per_step = config.batch_size * config.gradient_accumulation
    total = config.max_steps or max(1, math.ceil(math.ceil(len(examples) / per_step) * config.epochs))
    loop = _Loop(rng, device, total, progress)
    run = _fit(model, processor, examples, config, loop)
    partial = _save_model(model, processor, out)
    summary = _summary(
        config, trained_on, run, loop, n_train=len(examples), per_step=per_step, adapted=len(adapted)
    )
    check_training_summary(summary)
    _finish(partial, summary, out)
    return summary


def _with_lora(model: Any, config: TrainConfig) -> tuple[Any, list[str]]:
    """The model wrapped with the config's LoRA, and the names of the modules it adapts.

    Raises:
        ConfigError: the targets match nothing, or reach into the vision tower.
    """
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.target_modules,
        bias="none",
    )
    try:
        model = get_peft_model(model, lora)
    except ValueError as exc:
        raise ConfigError(
            f"training config: target_modules matches nothing in {config.base_model} ({exc})"
        ) from None
    adapted = [name for name, module in model.named_modules() if hasattr(module, "lora_A")]
    if any("vision_tower" in name for name in adapted):
        raise ConfigError("training config: target_modules adapts the vision tower; narrow the regex")
    return model, adapted


@dataclass
class _Loop:
    """How the loop runs: its shuffling, device, number of optimiser steps and progress bar."""

    rng: np.random.Generator
    device: str
    total: int
    progress: bool
    order: list[int] = dataclasses.field(default_factory=list)  # examples not yet drawn this epoch

    def draw(self, n_examples: int, size: int) -> list[int]:
        """The next ``size`` example indexes: each epoch a fresh permutation, drawn in order."""
        if len(self.order) < size:
            self.order.extend(self.rng.permutation(n_examples).tolist())
        chosen, self.order = self.order[:size], self.order[size:]
        return chosen


@dataclass(frozen=True)
class _Run:
    """What the loop measured: each step's loss and wall time, and the loop's whole duration."""

    losses: list[float]
    step_times: list[float]
    duration: float


def _fit(model: Any, processor: Any, examples: list[data.Example], config: TrainConfig, loop: _Loop) -> _Run:
    """AdamW with linear warm-up and decay, gradient accumulation and clipping at 1.0."""
    import torch
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * loop.total), loop.total)
    model.train()
    losses: list[float] = []
    step_times: list[float] = []
    started = time.perf_counter()
    bar = tqdm(total=loop.total, desc="train", unit="step", disable=not loop.progress)
    while len(losses) < loop.total:
        step_start = time.perf_counter()
        micro_losses = []
        for _ in range(config.gradient_accumulation):
            picked = [examples[i] for i in loop.draw(len(examples), config.batch_size)]
            micro_losses.append(
                _backward(model, processor, picked, config.gradient_accumulation, loop.device)
            )
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(np.mean(micro_losses)))
        step_times.append(time.perf_counter() - step_start)
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    bar.close()
    return _Run(losses, step_times, time.perf_counter() - started)


def _backward(
    model: Any, processor: Any, picked: list[data.Example], accumulation: int, device: str
) -> float:
    """One micro-batch's loss, its gradient (scaled for accumulation) added to the model's."""
    inputs = batch(processor, [e.rgb() for e in picked], [e.label for e in picked]).to(device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(next(model.parameters()).dtype)
    loss = model(**inputs).loss
    (loss / accumulation).backward()
    return float(loss.detach())


def _save_model(model: Any, processor: Any, out: Path) -> Path:
    """The adapter and processor files written to ``OUT.partial`` (see the module docstring)."""
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(str(partial))
    processor.save_pretrained(partial)
    return partial


def _summary(
    config: TrainConfig,
    trained_on: dict[str, Any],
    run: _Run,
    loop: _Loop,
    *,
    n_train: int,
    per_step: int,
    adapted: int,
) -> dict[str, Any]:
    """The training summary (schema ``cropmark-train/2``) of a finished run."""
    return {
        "schema": TRAIN_SCHEMA,
        "base_model": config.base_model,
        "dataset": describe_release(trained_on),
        "release": trained_on,
        # The released tiles are the Sentinel-2 half only: the context half is never published.
        "halves": ["sentinel-2"],
        "lora": {
            "r": config.lora_r,
            "alpha": config.lora_alpha,
            "dropout": config.lora_dropout,
            "target_modules": config.target_modules,
        },
        "learning_rate": config.learning_rate,
        "epochs": round(loop.total * per_step / n_train, 3),
        "batch_size": config.batch_size,
        "gradient_accumulation": config.gradient_accumulation,
        "seed": config.seed,
        "steps": loop.total,
        "final_loss": round(run.losses[-1], 6),
        "losses": [round(x, 6) for x in run.losses],
        "duration_s": round(run.duration, 3),
        "step_time_s": round(float(np.median(run.step_times)), 4),
        "n_train": n_train,
        "adapted_modules": adapted,
        "device": loop.device,
        "versions": _versions(),
        # Settings only: output_dir is a path of this machine and never leaves it.
        "config": {k: v for k, v in dataclasses.asdict(config).items() if k != "output_dir"},
    }


def _finish(partial: Path, summary: Mapping[str, Any], out: Path) -> None:
    """Write the summary into ``OUT.partial``, then rename it to ``out``."""
    (partial / "training_summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    partial.replace(out)
