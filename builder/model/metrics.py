"""Binary metrics, the evaluation JSON entry of one model, and a confusion-matrix PNG.

The same functions score the VLM and the physics baseline, so the rows of the
model card's table are comparable: a tile is ``Yes`` when ``P(Yes) >= 0.5``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from builder.domain import LABELS
from builder.model.schema import CONFUSION, EVAL_SCHEMA, check_evaluation, derived_metrics

THRESHOLD = 0.5


def confusion(y_true: np.ndarray, p_yes: np.ndarray, threshold: float = THRESHOLD) -> dict[str, int]:
    """tn, fp, fn, tp of predictions ``p_yes >= threshold`` against 0/1 labels."""
    y = np.asarray(y_true).astype(bool)
    pred = np.asarray(p_yes) >= threshold
    return {
        "tn": int(np.sum(~y & ~pred)),
        "fp": int(np.sum(~y & pred)),
        "fn": int(np.sum(y & ~pred)),
        "tp": int(np.sum(y & pred)),
    }


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: the Mann-Whitney U statistic with average ranks for ties.

    Equals scikit-learn's ``roc_auc_score``; 0.5 when one class is absent
    (undefined there; a constant score gives 0.5 too).
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return 0.5
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # Average ranks (1-based) over runs of equal scores.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
    ends = np.r_[starts[1:], len(s)]
    for a, b in zip(starts, ends, strict=True):
        ranks[order[a:b]] = (a + b + 1) / 2
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def model_entry(name: str, kind: str, y_true: np.ndarray, p_yes: np.ndarray) -> dict[str, Any]:
    """One ``models[]`` entry of evaluation.json: metrics rounded to 4 places, the confusion matrix."""
    matrix = confusion(y_true, p_yes)
    metrics = {k: round(v, 4) for k, v in derived_metrics(matrix).items()}
    metrics["roc_auc"] = round(roc_auc(y_true, p_yes), 4)
    return {"name": name, "kind": kind, "metrics": metrics, "confusion": matrix}


def evaluation(split: str, dataset: str, entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation JSON (schema ``cropmark-eval/1``), checked before it is returned."""
    n = sum(entries[0]["confusion"][k] for k in CONFUSION) if entries else 0
    out = {"schema": EVAL_SCHEMA, "split": split, "n": n, "dataset": dataset, "models": list(entries)}
    check_evaluation(out)
    return out


def confusion_png(matrix: dict[str, int], title: str, path: Path, cell: int = 120) -> None:
    """Draw the 2x2 confusion matrix (rows: true label, columns: predicted) as a PNG."""
    grid = np.array([[matrix["tn"], matrix["fp"]], [matrix["fn"], matrix["tp"]]])
    margin_left, margin_top = 110, 70
    width, height = margin_left + 2 * cell + 20, margin_top + 2 * cell + 50
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=16)
    peak = max(int(grid.max()), 1)
    draw.text((10, 10), title, fill="black", font=font)
    for j, label in enumerate(LABELS):
        draw.text((margin_left + j * cell + cell // 2 - 10, margin_top - 24), label, fill="black", font=font)
        draw.text((margin_left - 40, margin_top + j * cell + cell // 2 - 8), label, fill="black", font=font)
    draw.text((margin_left + cell - 30, height - 30), "predicted", fill="black", font=font)
    draw.text((10, margin_top + cell - 8), "true", fill="black", font=font)
    for i in range(2):
        for j in range(2):
            shade = int(255 - 200 * grid[i, j] / peak)
            x0, y0 = margin_left + j * cell, margin_top + i * cell
            draw.rectangle((x0, y0, x0 + cell - 2, y0 + cell - 2), fill=(shade, shade, 255), outline="black")
            ink = "white" if shade < 140 else "black"
            draw.text((x0 + cell // 2 - 12, y0 + cell // 2 - 8), str(grid[i, j]), fill=ink, font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
