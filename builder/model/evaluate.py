"""Evaluation of the fine-tuned VLM and the physics baseline on one split of a release.

Both models score the same tiles; the VLM by next-token probability of ``Yes``
against ``No`` (builder/model/scoring.py), the baseline by its logistic
regression on proxy features (builder/model/baseline.py). Writes the evaluation
JSON the model card renders, a confusion-matrix PNG per model and a per-tile
``predictions.csv`` (file name, label, scores: no place, no time).
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from builder.errors import ConfigError
from builder.model import baseline as physics
from builder.model import data
from builder.model.metrics import confusion_png, evaluation, model_entry
from builder.model.schema import describe_release, release_record

VLM_KIND, BASELINE_KIND = "vlm-lora", "baseline"
BASELINE_NAME = "physics baseline (logistic regression)"


def adapter_digest(adapter: Path) -> str:
    """SHA-256 of the adapter's weights (``adapter_model.safetensors`` of a run folder, or the file)."""
    import hashlib

    weights = adapter / "adapter_model.safetensors" if adapter.is_dir() else adapter
    digest = hashlib.sha256()
    with weights.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def test_model_label(kind: str) -> str:
    """The marker every output of a random test model's predictions carries."""
    return f"TEST MODEL: {kind}, random weights; its predictions mean nothing"


def vlm_name(base: str) -> str:
    """The table row's name: the base model's short name and ``+ LoRA``."""
    return f"{base.rstrip('/').split('/')[-1]} + LoRA"


def run(
    release: str,
    out: Path,
    *,
    base: str | None = None,
    adapter: Path | None = None,
    baseline: Path | None = None,
    split: str = "eval",
    batch_size: int = 8,
    device: str = "auto",
    progress: bool = True,
    folder: Path | None = None,
) -> dict[str, Any]:
    """Score ``split`` with the VLM (base + adapter) and/or the baseline; write the results to ``out``.

    Writes ``out/evaluation.json``, ``out/confusion-<kind>.png`` and
    ``out/predictions.csv``. The VLM, when given, is the first model.

    ``folder`` is ``release`` already resolved (a caller that downloaded it).

    Returns:
        The evaluation JSON, with a ``throughput`` entry (tiles per second per model).
    """
    from tqdm.auto import tqdm

    if base is None and baseline is None:
        raise ConfigError("nothing to evaluate: give --base-model/--adapter, --baseline, or both")
    folder = folder or data.resolve(release)
    examples = data.examples(folder, split)
    y = np.array([e.y for e in examples])
    entries: list[dict[str, Any]] = []
    scores: dict[str, np.ndarray] = {}
    test_model: str | None = None
    throughput: dict[str, float] = {}
    if base is not None:
        from builder.model.scoring import load_scorer, local_adapter

        scorer = load_scorer(base, adapter, device)
        with tqdm(total=len(examples), desc="evaluate VLM", unit="tile", disable=not progress) as bar:
            started = time.perf_counter()
            # Decode one batch at a time: an eval split never sits in memory as pixels.
            p = np.concatenate(
                [
                    scorer.p_yes([e.rgb() for e in examples[i : i + batch_size]], batch_size, bar.update)
                    for i in range(0, len(examples), batch_size)
                ]
            )
            throughput[VLM_KIND] = round(len(examples) / (time.perf_counter() - started), 3)
        name = vlm_name(base) if adapter else base
        if scorer.test_model:  # never mistaken for the real model's figures, wherever they are read
            name = f"{name} ({test_model_label(scorer.test_model)})"
        entry = model_entry(name, VLM_KIND, y, p)
        # What was scored, so that a publish can tie these figures to the adapter it sends.
        entry["base_model"] = base
        entry["test_model"] = scorer.test_model
        entry["adapter_sha256"] = adapter_digest(local_adapter(adapter)) if adapter is not None else None
        entries.append(entry)
        scores[VLM_KIND] = p
        test_model = scorer.test_model
    if baseline is not None:
        model = physics.load(baseline)
        started = time.perf_counter()
        x = physics.features_of(
            [e.path for e in tqdm(examples, desc="evaluate baseline", unit="tile", disable=not progress)]
        )
        p = model.p_yes(x)
        throughput[BASELINE_KIND] = round(len(examples) / (time.perf_counter() - started), 3)
        entries.append(model_entry(BASELINE_NAME, BASELINE_KIND, y, p))
        scores[BASELINE_KIND] = p

    record = release_record(release, folder)
    result = evaluation(split, describe_release(record), entries)
    result["release"] = record
    result["throughput_tiles_per_s"] = throughput
    if test_model:
        result["warning"] = f"{test_model_label(test_model)} (the {VLM_KIND} entry)"
    out.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        confusion_png(
            entry["confusion"], f"{entry['name']} ({split})", out / f"confusion-{entry['kind']}.png"
        )
    with (out / "predictions.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        # A test model's scores carry their marker on every row: a row read alone still says so.
        marked = [f"{VLM_KIND}_test_model"] if test_model else []
        writer.writerow(["file_name", "label", *(f"p_yes_{kind}" for kind in scores), *marked])
        mark = [test_model_label(test_model)] if test_model else []
        for i, example in enumerate(examples):
            writer.writerow(
                [example.path.name, example.label, *(f"{s[i]:.6f}" for s in scores.values()), *mark]
            )
    (out / "evaluation.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


def train_baseline(release: str, out: Path, l2: float = 1.0, progress: bool = True) -> dict[str, Any]:
    """Fit the physics baseline on ``train``, save it to ``out/baseline.json`` and evaluate it on ``eval``."""
    from tqdm.auto import tqdm

    folder = data.resolve(release)
    examples = data.examples(folder, "train")
    x = physics.features_of([e.path for e in tqdm(examples, desc="baseline features", disable=not progress)])
    model = physics.fit(x, np.array([e.y for e in examples]), l2=l2)
    # The release it was fitted on travels with it: a Space publish checks it serves that data.
    payload = {**model.to_json(), "release": release_record(release, folder)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "baseline.json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return run(release, out, baseline=out / "baseline.json", progress=progress, folder=folder)
