"""The four gates inside `cropmark build`: counted per gate, recorded per tile, on the card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.cli import main
from builder.release import cards
from builder.release.build import BuildConfig, build
from builder.testing.sample import SMALL_PLAN


def test_every_gate_rejects_its_sample_scene_and_counts_it(small_corpus: Path, tmp_path: Path) -> None:
    result = build(BuildConfig(small_corpus, tmp_path / "out", "1.0.0"))
    report = result.report
    rejected = report.counts.rejected
    assert rejected["gate_s2_blank"] == {"train": SMALL_PLAN.gate_blank, "eval": 0}
    assert rejected["gate_s2_cloudy"] == {"train": SMALL_PLAN.gate_cloudy, "eval": 0}
    assert rejected["gate_no_context"] == {"train": SMALL_PLAN.gate_no_context, "eval": 0}
    forest_water_urban = SMALL_PLAN.gate_forest + SMALL_PLAN.gate_water + SMALL_PLAN.gate_urban
    assert rejected["gate_not_agricultural"] == {"train": forest_water_urban, "eval": 0}
    assert report.counts.tiles == {"train": SMALL_PLAN.unique_train, "eval": SMALL_PLAN.unique_eval}
    details = {r.detail for r in report.rejections if r.reason == "gate_not_agricultural"}
    assert any("(forest)" in d for d in details)
    assert sum("(water, urban, rock or bare)" in d for d in details) == 2
    gates = report.gates
    assert gates.per_gate["s2_not_blank"].rejected == SMALL_PLAN.gate_blank
    assert gates.per_gate["agricultural"].rejected == forest_water_urban
    # Gates 1 and 3 run on every cut tile; 2 and 4 only where raw bands exist.
    cut = gates.tiles
    assert gates.per_gate["s2_not_blank"].evaluated == gates.per_gate["context_available"].evaluated == cut
    assert 0 < gates.per_gate["s2_not_cloudy"].evaluated == gates.per_gate["agricultural"].evaluated < cut
    for gate in ("s2_not_cloudy", "agricultural"):
        g = gates.per_gate[gate]
        assert g.evaluated + g.not_evaluated == cut and g.passed + g.failed == g.evaluated
    assert gates.per_gate["s2_not_cloudy"].not_evaluated_reasons == {
        "no reflectance: a composite-only tile": gates.per_gate["s2_not_cloudy"].not_evaluated
    }


def test_each_published_tile_records_its_gate_values_thresholds_and_verdicts(
    small_corpus: Path, tmp_path: Path
) -> None:
    report = build(BuildConfig(small_corpus, tmp_path / "out", "1.0.0")).report
    with_bands = [t for t in report.tiles if t.bands is not None]
    without = [t for t in report.tiles if t.bands is None]
    assert with_bands and without
    assert report.gates.published_full == len(with_bands)
    for tile in with_bands:
        assert [g["gate"] for g in tile.gates] == [
            "s2_not_blank",
            "s2_not_cloudy",
            "context_available",
            "agricultural",
        ]
        assert all(g["evaluated"] and g["passed"] for g in tile.gates)
        assert tile.bands["offset"] == -1000 and tile.bands["offset_from"] == "metadata BOA_ADD_OFFSET"
        cloudy = tile.gates[1]
        assert cloudy["values"]["cloud_source"] == "SCL" and cloudy["thresholds"]["max_cloud"] == 0.3
    for tile in without:
        assert [g["evaluated"] for g in tile.gates] == [True, False, True, False]


def test_unreadable_bands_are_a_counted_rejection(small_corpus: Path, tmp_path: Path) -> None:
    band_file = sorted((small_corpus / "bands").glob("*.tif"))[0]
    band_file.write_bytes(band_file.read_bytes()[:300])
    report = build(BuildConfig(small_corpus, tmp_path / "out", "1.0.0")).report
    bad = [r for r in report.rejections if r.reason == "bad_bands"]
    assert len(bad) == 1 and "not a readable raster" in bad[0].detail


def test_gate_thresholds_from_the_corpus_gates_json(small_corpus: Path, tmp_path: Path) -> None:
    (small_corpus / "gates.json").write_text(json.dumps({"min_context_nonzero": 0.0, "min_context_std": 0.0}))
    report = build(BuildConfig(small_corpus, tmp_path / "out", "1.0.0")).report
    assert "gate_no_context" not in report.counts.rejected  # a nearly black context now passes
    assert report.counts.tiles["train"] == SMALL_PLAN.unique_train + SMALL_PLAN.gate_no_context
    assert report.gates.config["min_context_std"] == 0.0


def test_a_bad_gates_json_is_one_line(
    small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (small_corpus / "gates.json").write_text(json.dumps({"max_clouds": 0.5}))
    code = main(["build", "--corpus", str(small_corpus), "--out", str(tmp_path / "o"), "--version", "1.0.0"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown gate setting(s) max_clouds" in err and err.count("\n") == 1
    assert not (tmp_path / "o" / "cropmark-disambiguator-s2" / "1.0.0").exists()


def test_the_card_quotes_the_gate_table_and_validation_catches_a_wrong_figure(
    small_corpus: Path, tmp_path: Path
) -> None:
    result = build(BuildConfig(small_corpus, tmp_path / "out", "1.0.0"))
    text = (result.release / "README.md").read_text(encoding="utf-8")
    g = result.report.gates.per_gate["agricultural"]
    row = f"| {g.evaluated} | {g.passed} | {g.failed} | {g.not_evaluated} | {g.rejected} |"
    assert row in text
    assert cards.validate_dataset_card(text, result.report, result.release) == []
    for cell in range(5):  # every figure of the row is checked
        cells = [g.evaluated, g.passed, g.failed, g.not_evaluated, g.rejected]
        cells[cell] += 1
        wrong = text.replace(row, "| " + " | ".join(map(str, cells)) + " |")
        assert any(
            "gate table" in p for p in cards.validate_dataset_card(wrong, result.report, result.release)
        )
