"""The physics baseline, the metrics and the release reader: no torch needed."""

from __future__ import annotations

import csv
import io
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builder.cli import main
from builder.domain import LABELS
from builder.errors import ConfigError, ModelLoadError, ReleaseLayoutError
from builder.model import baseline, data, metrics
from builder.model.prompt import PROMPT, SYSTEM_PROMPT
from builder.model.schema import check_evaluation, derived_metrics
from builder.release.build import BuildResult
from builder.testing.sample import _cropmark_mask, s2_reflectance, to_pixels

# -- metrics -----------------------------------------------------------------------------------


def _auc_pairs(y: np.ndarray, s: np.ndarray) -> float:
    """ROC-AUC by its definition: P(score of a positive > score of a negative), ties count 1/2."""
    pos, neg = s[y == 1], s[y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_roc_auc_equals_the_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        y = rng.integers(0, 2, 40)
        s = np.round(rng.random(40), 1)  # many ties
        assert metrics.roc_auc(y, s) == pytest.approx(_auc_pairs(y, s))
    assert metrics.roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert metrics.roc_auc(np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert metrics.roc_auc(np.array([1, 1]), np.array([0.3, 0.4])) == 0.5


def test_model_entry_thresholds_at_one_half_and_passes_the_schema() -> None:
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.5, 0.49, 0.5, 0.9, 0.2, 0.7])
    entry = metrics.model_entry("m", "baseline", y, p)
    assert entry["confusion"] == {"tn": 2, "fp": 1, "fn": 1, "tp": 3}
    assert entry["metrics"]["accuracy"] == round(5 / 7, 4)
    assert entry["metrics"]["f1"] == round(derived_metrics(entry["confusion"])["f1"], 4)
    result = metrics.evaluation("eval", "o/d", [entry])
    check_evaluation(result)
    assert result["n"] == 7


def test_confusion_png_is_a_png_with_the_counts_drawn(tmp_path: Path) -> None:
    metrics.confusion_png({"tn": 5, "fp": 1, "fn": 2, "tp": 9}, "title", tmp_path / "c.png")
    with Image.open(tmp_path / "c.png") as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB"))
    # The darkest cell (tp = 9) is darker than the lightest (fp = 1).
    assert pixels[70 + 120 + 10, 110 + 120 + 10].sum() < pixels[70 + 10, 110 + 120 + 10].sum()


# -- features and fit ----------------------------------------------------------------------------


def test_white_top_hat_share_sees_a_ring_ditch_that_the_field_means_do_not() -> None:
    rng = np.random.default_rng(11)
    plain, _ = s2_reflectance(rng, "No")
    marked = plain.copy()
    mask = _cropmark_mask(np.random.default_rng(2))
    marked += mask[..., None] * np.array([0.04, -0.013, 0.02], dtype=np.float32)
    a, b = baseline.features(to_pixels(plain)), baseline.features(to_pixels(marked))
    i = baseline.FEATURES.index("dvi_tophat_white_share")
    assert b[i] > a[i] + 0.01
    j = baseline.FEATURES.index("dvi_tophat_white_p99")
    assert b[j] > 3 * a[j]
    # The mark covers a few percent of the tile: the mean moves far less than the top-hat share.
    m = baseline.FEATURES.index("ndvi_mean")
    assert abs(b[m] - a[m]) < 0.02


def _resaved(rgb: np.ndarray, fmt: str, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, fmt, quality=quality)  # Pillow's defaults: JPEG and WebP 4:2:0
    buffer.seek(0)
    with Image.open(buffer) as image:
        return np.asarray(image.convert("RGB"))


def test_the_baseline_survives_ordinary_re_encoding(sample_release: BuildResult) -> None:
    """Re-saving every eval tile as JPEG q90 or WebP q90 flips at most 5 % of the verdicts
    and moves ROC-AUC by at most 0.02 (the card-scale sample release: 767 train, 155 eval)."""
    train = data.examples(sample_release.release, "train")
    evals = data.examples(sample_release.release, "eval")
    model = baseline.fit(baseline.features_of([e.path for e in train]), np.array([e.y for e in train]))
    y = np.array([e.y for e in evals])
    tiles = [np.asarray(Image.open(e.path).convert("RGB")) for e in evals]
    p = model.p_yes(np.vstack([baseline.features(t) for t in tiles]))
    auc = metrics.roc_auc(y, p)
    # A baseline that says No to everything would flip nothing: it must rank and answer both ways.
    assert auc > 0.8 and 0 < int((p >= 0.5).sum()) < len(p)
    for fmt in ("JPEG", "WEBP"):
        resaved = model.p_yes(np.vstack([baseline.features(_resaved(t, fmt, 90)) for t in tiles]))
        flipped = int(((resaved >= 0.5) != (p >= 0.5)).sum())
        assert flipped <= 0.05 * len(p), f"{fmt} q90 flipped {flipped} of {len(p)} verdicts"
        assert abs(metrics.roc_auc(y, resaved) - auc) <= 0.02, fmt


def test_features_reject_a_grey_image() -> None:
    with pytest.raises(ConfigError, match="H x W x 3"):
        baseline.features(np.zeros((8, 8)))


def test_fit_separates_separable_features_and_saves_a_small_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, len(baseline.FEATURES)))
    y = (x[:, 3] + 0.5 * x[:, 7] > 0).astype(int)
    model = baseline.fit(x, y, l2=0.1)
    assert metrics.roc_auc(y, model.p_yes(x)) > 0.99
    model.save(tmp_path / "baseline.json")
    assert (tmp_path / "baseline.json").stat().st_size < 4096
    again = baseline.load(tmp_path / "baseline.json")
    np.testing.assert_allclose(again.p_yes(x), model.p_yes(x))


def test_fit_needs_both_labels_and_finite_features() -> None:
    with pytest.raises(ConfigError, match="at least 2 tiles of each label"):
        baseline.fit(np.zeros((5, len(baseline.FEATURES))), np.ones(5))
    x = np.zeros((6, len(baseline.FEATURES)))
    x[0, 0] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        baseline.fit(x, np.array([0, 1, 0, 1, 0, 1]))


def test_load_refuses_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        baseline.load(tmp_path / "none.json")
    (tmp_path / "x.json").write_text(json.dumps({"schema": "other"}))
    with pytest.raises(ModelLoadError, match=f"is not a {baseline.SCHEMA} file"):
        baseline.load(tmp_path / "x.json")
    (tmp_path / "y.json").write_text(json.dumps({"schema": baseline.SCHEMA, "features": ["a"]}))
    with pytest.raises(ModelLoadError, match="other features"):
        baseline.load(tmp_path / "y.json")


# -- the release as examples and SFT rows -----------------------------------------------------------


def test_sft_rows_are_leap_finetune_rows_of_every_published_tile(small_release: Path, tmp_path: Path) -> None:
    assert main(["sft", str(small_release), "--out", str(tmp_path / "sft")]) == 0
    for split in ("train", "eval"):
        with (small_release / "data" / split / "metadata.csv").open(encoding="utf-8") as f:
            published = {r["file_name"]: r["label"] for r in csv.DictReader(f)}
        rows = [json.loads(line) for line in (tmp_path / "sft" / f"{split}.jsonl").read_text().splitlines()]
        assert len(rows) == len(published)
        for row in rows:
            system, user, assistant = row["messages"]
            assert [system["role"], user["role"], assistant["role"]] == ["system", "user", "assistant"]
            assert system["content"] == [{"type": "text", "text": SYSTEM_PROMPT}]
            image, question = user["content"]
            assert image["type"] == "image" and question == {"type": "text", "text": PROMPT}
            assert (small_release / image["image"]).is_file()
            assert assistant["content"][0]["text"] == published[Path(image["image"]).name]
            assert assistant["content"][0]["text"] in LABELS


def test_the_private_corpus_rows_use_the_same_turns(small_corpus: Path, small_release: Path) -> None:
    """Training on the release asks exactly what the private corpus asked."""
    corpus_row = json.loads((small_corpus / "sft" / "train.jsonl").read_text().splitlines()[0])
    release_row = next(data.sft_rows(small_release, "train"))
    strip = [
        [{k: v for k, v in part.items() if k != "image"} for part in turn["content"]]
        for turn in corpus_row["messages"][:2]
    ]
    assert strip == [
        [{k: v for k, v in part.items() if k != "image"} for part in turn["content"]]
        for turn in release_row["messages"][:2]
    ]


def _copy(release: Path, tmp_path: Path) -> Path:
    target = tmp_path / "release"
    shutil.copytree(release, target)
    return target


def test_release_without_labels_gets_one_line(
    small_release: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release = _copy(small_release, tmp_path)
    metadata = release / "data" / "train" / "metadata.csv"
    metadata.write_text("\n".join(line.split(",")[0] for line in metadata.read_text().splitlines()) + "\n")
    assert main(["baseline", str(release), "--out", str(tmp_path / "b"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and "has columns ['file_name']; a labelled release needs file_name,label" in err
    )
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.write_text("file_name,label\nx.jpg,maybe\n"), "label 'maybe'; expected one of"),
        (lambda m: m.write_text("file_name,label\nnot-there.jpg,Yes\n"), "not-there.jpg does not exist"),
        (lambda m: m.unlink(), "has no 'train' split"),
        (lambda m: m.write_text("file_name,label\n"), "lists no tiles"),
    ],
)
def test_bad_release_layouts_are_named(small_release: Path, tmp_path: Path, edit, message: str) -> None:
    release = _copy(small_release, tmp_path)
    edit(release / "data" / "train" / "metadata.csv")
    with pytest.raises(ReleaseLayoutError, match=message):
        data.examples(release, "train")


def test_a_release_that_is_neither_folder_nor_hub_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sft", str(tmp_path / "nothing" / "here"), "--out", str(tmp_path / "o")]) == 2
    assert "is not a folder nor a Hub dataset id; give a built release or ORG/NAME" in capsys.readouterr().err


def test_baseline_command_trains_saves_and_evaluates(small_release: Path, tmp_path: Path) -> None:
    assert main(["baseline", str(small_release), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    result = json.loads((tmp_path / "b" / "evaluation.json").read_text())
    check_evaluation(result)
    assert result["models"][0]["kind"] == "baseline"
    assert result["n"] == len(data.examples(small_release, "eval"))
    assert (tmp_path / "b" / "confusion-baseline.png").is_file()
    with (tmp_path / "b" / "predictions.csv").open(encoding="utf-8") as f:
        predictions = list(csv.DictReader(f))
    assert len(predictions) == result["n"]
    assert set(predictions[0]) == {"file_name", "label", "p_yes_baseline"}
    model = baseline.load(tmp_path / "b" / "baseline.json")
    assert model.n_train == len(data.examples(small_release, "train"))
