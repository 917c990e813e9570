"""The physics baseline: a logistic regression on proxy statistics of the published tile.

What can a model see in the released tile without any learned vision? The tile's
false colour is R = B08, G = B04, B = B05 (stretched to 8 bits), so
(R - G) / (R + G) is an NDVI-like proxy and (R - B) / (R + B) an NDRE-like one
(builder/indices.py). Cropmarks are *local* anomalies of crop vigour: rings and
lines where the crop over a buried ditch stays greener, or over a wall browns
first. So besides each proxy's mean, spread and tails, the features describe the
morphological top-hats of the proxy (a 9 px window, 90 m): what is narrower than
the window and greener (white) or browner (black) than its surroundings, as a
99th percentile and as the share of pixels beyond four times the tile's noise;
and the mean gradient.

A small L2-regularised logistic regression (Newton's method, numpy only) is
trained on ``train`` and scored on ``eval`` with the VLM's metrics; it is saved
as a JSON file of a few hundred bytes that the Space loads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from builder.errors import ConfigError, ModelLoadError
from builder.indices import ndre_proxy, ndvi_proxy

SCHEMA = "cropmark-baseline/1"
WINDOW = 9  # px of the morphological window: 90 m, wider than a ditch's mark, narrower than a field
PROXIES = ("ndvi", "ndre")
_PER_PROXY = (
    "mean",
    "std",
    "p10",
    "p90",
    "tophat_white_p99",
    "tophat_white_share",
    "tophat_black_p99",
    "tophat_black_share",
    "gradient",
)
FEATURES = tuple(f"{proxy}_{stat}" for proxy in PROXIES for stat in _PER_PROXY)


def _running(values: np.ndarray, size: int, op: np.ufunc) -> np.ndarray:
    """Running min or max over a ``size`` x ``size`` square (separable, edges replicated)."""
    pad = size // 2
    rows = np.pad(values, ((pad, pad), (0, 0)), mode="edge")
    n = values.shape[0]
    out = rows[:n].copy()
    for shift in range(1, size):
        op(out, rows[shift : shift + n], out=out)
    cols = np.pad(out, ((0, 0), (pad, pad)), mode="edge")
    m = values.shape[1]
    out = cols[:, :m].copy()
    for shift in range(1, size):
        op(out, cols[:, shift : shift + m], out=out)
    return out


def _proxy_features(proxy: np.ndarray) -> list[float]:
    valid = np.isfinite(proxy)
    if not valid.any():
        return [0.0] * len(_PER_PROXY)
    values = proxy[valid].astype(np.float64)
    filled = np.where(valid, proxy, values.mean()).astype(np.float32)
    p10, p90 = np.percentile(values, (10, 90))
    # Top-hats keep what is narrower than the window: a ditch's mark, not a field's step edge.
    # White: greener than its surroundings (crop over a ditch); black: browner (over a wall).
    opened = _running(_running(filled, WINDOW, np.minimum), WINDOW, np.maximum)
    closed = _running(_running(filled, WINDOW, np.maximum), WINDOW, np.minimum)
    white, black = (filled - opened)[valid], (closed - filled)[valid]
    # Pixel noise from neighbour differences (robust: median absolute difference / sqrt 2).
    noise = float(np.median(np.abs(np.diff(filled, axis=1)))) * 1.4826 / np.sqrt(2) + 1e-6
    gy, gx = np.gradient(filled.astype(np.float64))
    return [
        float(values.mean()),
        float(values.std()),
        float(p10),
        float(p90),
        float(np.percentile(white, 99)),
        float(np.mean(white > 4 * noise)),
        float(np.percentile(black, 99)),
        float(np.mean(black > 4 * noise)),
        float(np.hypot(gx, gy)[valid].mean()),
    ]


def features(rgb: np.ndarray) -> np.ndarray:
    """The :data:`FEATURES` vector of one RGB tile (H x W x 3, uint8 or float)."""
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ConfigError(f"a tile must be H x W x 3 RGB; got shape {rgb.shape}")
    return np.array(_proxy_features(ndvi_proxy(rgb)) + _proxy_features(ndre_proxy(rgb)))


def features_of(paths: Sequence[Path]) -> np.ndarray:
    """Feature rows of tiles on disk (N x len(FEATURES))."""
    rows = []
    for path in paths:
        with Image.open(path) as image:
            rows.append(features(np.asarray(image.convert("RGB"))))
    return np.vstack(rows) if rows else np.zeros((0, len(FEATURES)))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * z))  # stable for large |z|
    return out


@dataclass(frozen=True)
class Baseline:
    """A fitted logistic regression on standardised :data:`FEATURES`."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    l2: float
    n_train: int

    def p_yes(self, x: np.ndarray) -> np.ndarray:
        """P(Yes) for feature rows ``x`` (N x len(FEATURES))."""
        z = ((np.atleast_2d(x) - self.mean) / self.scale) @ self.coef + self.intercept
        return _sigmoid(z)

    def p_yes_tile(self, rgb: np.ndarray) -> float:
        """P(Yes) of one RGB tile."""
        return float(self.p_yes(features(rgb))[0])

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "features": list(FEATURES),
            "window_px": WINDOW,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "l2": self.l2,
            "n_train": self.n_train,
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1.0, max_iter: int = 100) -> Baseline:
    """Fit by Newton's method on standardised features; the intercept is not penalised.

    Raises:
        ConfigError: fewer than two examples of a class, or non-finite features.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ConfigError("baseline features hold NaN or infinity; check the tiles")
    if min(int(y.sum()), int((1 - y).sum())) < 2:
        raise ConfigError(f"the baseline needs at least 2 tiles of each label; got {int(y.sum())} Yes")
    mean, scale = x.mean(0), x.std(0)
    scale[scale == 0] = 1.0
    design = np.hstack([np.ones((len(x), 1)), (x - mean) / scale])
    w = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(max_iter):
        p = _sigmoid(design @ w)
        gradient = design.T @ (p - y) + penalty * w
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return Baseline(mean, scale, w[1:], float(w[0]), l2, len(x))


def load(path: Path) -> Baseline:
    """Read a saved baseline; a one-line error for a missing or foreign file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(
            f"baseline {path} does not exist; train it with scripts/train_baseline.py"
        ) from None
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"baseline {path} is not JSON ({exc.msg})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ModelLoadError(f"baseline {path} is not a {SCHEMA} file")
    if data.get("features") != list(FEATURES):
        raise ModelLoadError(
            f"baseline {path} was fitted on other features; train it again with this version"
        )
    return Baseline(
        np.array(data["mean"]),
        np.array(data["scale"]),
        np.array(data["coef"]),
        float(data["intercept"]),
        float(data["l2"]),
        int(data["n_train"]),
    )
