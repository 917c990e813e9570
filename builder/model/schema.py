"""The JSON the model scripts write and the model card reads.

``training_summary.json`` (written by training) and ``evaluation.json`` (written
by evaluation) are checked here before a card is rendered, so a missing or
mistyped figure fails with its key named instead of rendering a wrong card.

training_summary.json::

    {"schema": "cropmark-train/2", "base_model": str, "dataset": str,
     "release": RELEASE, "halves": ["sentinel-2"] | ["sentinel-2", "context"],
     "n_train": int,
     "lora": {"r": int, "alpha": int, "dropout": float, "target_modules": str},
     "learning_rate": float, "epochs": int|float, "batch_size": int,
     "gradient_accumulation": int, "seed": int, "steps": int,
     "final_loss": float, "losses": [float], "duration_s": float,
     "versions": {package: version}}

evaluation.json::

    {"schema": "cropmark-eval/2", "split": "eval", "n": int, "dataset": str,
     "models": [{"name": str, "kind": str,
                 "metrics": {"accuracy", "precision", "recall", "f1",
                             "balanced_accuracy", "roc_auc": float},
                 "confusion": {"tn", "fp", "fn", "tp": int},
                 # kind "vlm-lora" only: what was scored
                 "base_model": str, "adapter_sha256": str | null}]}

RELEASE says which release the data came from, without a path of this machine::

    {"hub_id": "ORG/NAME" | null, "revision": commit | null, "version": str | null,
     "train_metadata_sha256": SHA-256 of data/train/metadata.csv}

``halves`` says what the model saw: the published Sentinel-2 half only (a run of
``scripts/train_lora.py`` on a release), or also the private context half (the
original 512x512 composites). The model card states both from here.

The first entry of ``models`` is the fine-tuned model (``adapter_sha256`` ties it to
the adapter file it scored); further entries are baselines (the physics baseline)
evaluated on the same tiles.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from builder.domain import HUB_ID, hub_id_problem
from builder.errors import ConfigError

TRAIN_SCHEMA = "cropmark-train/2"
EVAL_SCHEMA = "cropmark-eval/2"
HALVES = ("sentinel-2", "context")
METRICS = ("accuracy", "precision", "recall", "f1", "balanced_accuracy", "roc_auc")
CONFUSION = ("tn", "fp", "fn", "tp")
_TRAIN_KEYS: dict[str, type | tuple[type, ...]] = {
    "base_model": str,
    "dataset": str,
    "lora": dict,
    "learning_rate": (int, float),
    "epochs": (int, float),
    "batch_size": int,
    "gradient_accumulation": int,
    "release": dict,
    "halves": list,
    "n_train": int,
    "seed": int,
    "steps": int,
    "final_loss": (int, float),
    "losses": list,
    "duration_s": (int, float),
    "versions": dict,
}
_LORA_KEYS: dict[str, type | tuple[type, ...]] = {
    "r": int,
    "alpha": (int, float),
    "dropout": (int, float),
    "target_modules": str,
}


def _require(obj: Mapping[str, Any], keys: Mapping[str, type | tuple[type, ...]], where: str) -> None:
    for key, kind in keys.items():
        if key not in obj:
            raise ConfigError(f"{where}: key {key!r} missing")
        if not isinstance(obj[key], kind) or isinstance(obj[key], bool):
            raise ConfigError(f"{where}: {key!r} is {obj[key]!r}; expected {kind}")


def check_training_summary(summary: Mapping[str, Any], where: str = "training summary") -> None:
    """Raise :class:`ConfigError` naming the first key that is missing or mistyped."""
    if summary.get("schema") != TRAIN_SCHEMA:
        raise ConfigError(f"{where}: schema {summary.get('schema')!r}; expected {TRAIN_SCHEMA!r}")
    _require(summary, _TRAIN_KEYS, where)
    _require(summary["lora"], _LORA_KEYS, f"{where}: lora")
    check_release(summary["release"], f"{where}: release")
    halves = summary["halves"]
    if (
        not halves
        or halves[0] != "sentinel-2"
        or not set(halves) <= set(HALVES)
        or len(set(halves)) != len(halves)
    ):
        raise ConfigError(f"{where}: halves {halves!r}; expected ['sentinel-2'] or ['sentinel-2', 'context']")


def check_release(record: Mapping[str, Any], where: str) -> None:
    """Raise :class:`ConfigError` unless ``record`` is a release record (see the module docstring)."""
    for key in ("hub_id", "revision", "version"):
        if key not in record or not isinstance(record[key], (str, type(None))):
            raise ConfigError(f"{where}: {key!r} must be a string or null")
    digest = record.get("train_metadata_sha256")
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ConfigError(f"{where}: 'train_metadata_sha256' must be a SHA-256 hex digest")


def check_hub_id(value: str, what: str = "repo id") -> str:
    """``value`` if it is a Hub repo id (:func:`hub_id_problem`), else a :class:`ConfigError`."""
    problem = hub_id_problem(value, what)
    if problem is not None:
        raise ConfigError(problem)
    return value


def release_record(release: str | Path, folder: Path) -> dict[str, Any]:
    """Which release ``folder`` is (``release`` as the user named it): no path of this machine.

    A Hub dataset id keeps its id and the snapshot's commit; a local build keeps the
    version its card states. Both keep the SHA-256 of ``data/train/metadata.csv``
    (file names are content hashes, so it names the train split's exact tiles and labels).
    """
    hub_id = str(release) if not Path(release).exists() and HUB_ID.fullmatch(str(release)) else None
    revision = folder.name if hub_id and folder.parent.name == "snapshots" else None
    card = folder / "README.md"
    stated = re.search(r"\(release ([^)\s]+)\)", card.read_text(encoding="utf-8")) if card.is_file() else None
    metadata = (folder / "data" / "train" / "metadata.csv").read_bytes()
    return {
        "hub_id": hub_id,
        "revision": revision,
        "version": stated.group(1) if stated else None,
        "train_metadata_sha256": hashlib.sha256(metadata).hexdigest(),
    }


def describe_release(record: Mapping[str, Any]) -> str:
    """One path-free phrase for a release record (the JSON's ``dataset`` field)."""
    if record["hub_id"]:
        return str(record["hub_id"])
    return f"a local build of release {record['version']}" if record["version"] else "a local build"


def check_evaluation(evaluation: Mapping[str, Any], where: str = "evaluation") -> None:
    """Raise :class:`ConfigError` naming the first key that is missing or out of range."""
    if evaluation.get("schema") != EVAL_SCHEMA:
        raise ConfigError(f"{where}: schema {evaluation.get('schema')!r}; expected {EVAL_SCHEMA!r}")
    _require(evaluation, {"split": str, "n": int, "dataset": str, "models": list}, where)
    if not evaluation["models"]:
        raise ConfigError(f"{where}: 'models' is empty; the fine-tuned model comes first")
    for i, model in enumerate(evaluation["models"]):
        here = f"{where}: models[{i}]"
        _require(model, {"name": str, "kind": str, "metrics": dict, "confusion": dict}, here)
        _require(model["metrics"], dict.fromkeys(METRICS, (int, float)), f"{here}.metrics")
        _require(model["confusion"], dict.fromkeys(CONFUSION, int), f"{here}.confusion")
        if model["kind"] == "vlm-lora":
            _require(model, {"base_model": str}, here)
            if "adapter_sha256" not in model or not isinstance(model["adapter_sha256"], (str, type(None))):
                raise ConfigError(f"{here}: 'adapter_sha256' (the scored adapter's digest, or null) missing")
        for metric in METRICS:
            if not 0.0 <= model["metrics"][metric] <= 1.0:
                raise ConfigError(f"{here}.metrics: {metric} = {model['metrics'][metric]} is outside [0, 1]")
        total = sum(model["confusion"].values())
        if total != evaluation["n"]:
            raise ConfigError(f"{here}.confusion sums to {total}, not n = {evaluation['n']}")
        for metric, value in derived_metrics(model["confusion"]).items():
            if abs(model["metrics"][metric] - value) > 1e-3:
                raise ConfigError(
                    f"{here}.metrics: {metric} = {model['metrics'][metric]} but the confusion "
                    f"matrix gives {value:.4f}"
                )


def derived_metrics(confusion: Mapping[str, int]) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and balanced accuracy from a confusion matrix.

    A ratio with a zero denominator is 0.0 (scikit-learn's ``zero_division=0``).
    """
    tn, fp, fn, tp = (confusion[k] for k in CONFUSION)

    def ratio(a: float, b: float) -> float:
        return a / b if b else 0.0

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    return {
        "accuracy": ratio(tp + tn, tn + fp + fn + tp),
        "precision": precision,
        "recall": recall,
        "f1": ratio(2 * precision * recall, precision + recall),
        "balanced_accuracy": (recall + ratio(tn, tn + fp)) / 2,
    }
