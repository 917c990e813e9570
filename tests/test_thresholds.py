"""One source of truth for the gate thresholds: validated gates.json, quoted as used by card, CLI, report."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from builder import thresholds
from builder.cards import validate_dataset_card
from builder.cli import main
from builder.errors import ConfigError
from builder.thresholds import GateConfig


def test_every_setting_has_a_type_and_a_range() -> None:
    assert {f.name for f in fields(GateConfig)} == set(thresholds._RANGES)
    GateConfig()  # the card's defaults are valid


BAD = {
    "max_cloud": (
        "high",
        "gate setting max_cloud = 'high': expected a number from 0 to 1 (a share of pixels)",
    ),
    "min_ndvi": (2.5, "gate setting min_ndvi = 2.5: expected a number from -1 to 1 (an NDVI)"),
    "max_saturated": (-0.1, "gate setting max_saturated = -0.1: expected a number from 0 to 1"),
    "min_file_bytes": (5120.5, "gate setting min_file_bytes = 5120.5: expected a whole number from 0"),
    "min_nonzero": (True, "gate setting min_nonzero = True: expected a number from 0 to 1"),
    "canopy_red": (None, "gate setting canopy_red = None: expected a number"),
    "min_cropland": (float("nan"), "gate setting min_cropland = nan: expected a number"),
    "cropland_classes": (
        [],
        "gate setting cropland_classes = (): expected a non-empty list of whole numbers",
    ),
    "min_side_coverage": (1.2, "gate setting min_side_coverage = 1.2: expected a number from 0 to 1"),
}


@pytest.mark.parametrize("setting", sorted(BAD))
def test_a_wrong_type_or_range_is_refused_naming_the_setting(setting: str) -> None:
    value, message = BAD[setting]
    with pytest.raises(ConfigError, match=re.escape(message)):
        thresholds.config_from({setting: value})


def test_cropland_classes_must_be_positive_whole_numbers() -> None:
    for bad in (["40"], [0], [40, 2.5], "40"):
        with pytest.raises(ConfigError, match="cropland_classes"):
            thresholds.config_from({"cropland_classes": bad})
    assert thresholds.config_from({"cropland_classes": [1, 40]}).cropland_classes == (1, 40)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"max_clouds": 0.5}', "unknown gate setting(s) max_clouds"),
        ('{"max_cloud": "30 %"}', "gate setting max_cloud = '30 %': expected a number from 0 to 1"),
        ('{"max_cloud": 30}', "gate setting max_cloud = 30: expected a number from 0 to 1"),
        ("[0.3]", "expected an object of gate thresholds, found list"),
        ("{max_cloud: 0.3}", "not JSON"),
    ],
)
def test_a_bad_gates_json_is_one_line_and_nothing_is_written(
    text: str, message: str, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (small_corpus / "gates.json").write_text(text)
    code = main(["build", "--corpus", str(small_corpus), "--out", str(tmp_path / "o"), "--version", "1.0.0"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err and "gates.json" in err
    assert not list((tmp_path / "o").rglob("*.jpg"))
    assert not (tmp_path / "o" / "cropmark-disambiguator-s2" / "1.0.0").exists()


def test_card_cli_and_report_quote_the_thresholds_the_build_used(
    small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (small_corpus / "gates.json").write_text(json.dumps({"max_cloud": 0.2, "min_nonzero": 0.4}))
    out = tmp_path / "out"
    assert main(["build", "--corpus", str(small_corpus), "--out", str(out), "--version", "1.0.0"]) == 0
    printed = capsys.readouterr().out
    assert "thresholds     min_nonzero=0.4, max_cloud=0.2 (gates.json; others: the card's)" in printed
    release = out / "cropmark-disambiguator-s2" / "1.0.0"
    report = json.loads((release.with_name("1.0.0.private") / "report.json").read_text())
    assert report["gates"]["config"]["max_cloud"] == 0.2 and report["gates"]["changed"] == {
        "max_cloud": 0.2,
        "min_nonzero": 0.4,
    }
    per_tile = {
        g["thresholds"]["max_cloud"]
        for t in report["tiles"]
        for g in t["gates"]
        if g["gate"] == "s2_not_cloudy"
    }
    assert per_tile == {0.2}
    card = (release / "README.md").read_text()
    # The gate table and the rejection table quote 20 % and 40 %; the card's defaults appear nowhere.
    assert "cloud and cloud shadow <= 20 %" in card and "> 40 % non-zero pixels" in card
    assert "gate 2: cloud or shadow > 20 %" in card
    assert "cloud or shadow > 30 %" not in card and "<= 50 % non-zero" not in card
    assert validate_dataset_card(card, report, release) == []


def test_composite_takes_the_same_gates_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_raster import dn_scene, write_scene

    scene = write_scene(tmp_path / "scene.tif", dn_scene(64))
    out = tmp_path / "tile.jpg"
    assert main(["composite", str(scene), "--out", str(out), "--gates", str(tmp_path / "none.json")]) == 2
    assert "none.json does not exist" in capsys.readouterr().err and not out.exists()
    (tmp_path / "gates.json").write_text('{"max_mean_reflectance": 1000}')
    assert main(["composite", str(scene), "--out", str(out), "--gates", str(tmp_path / "gates.json")]) == 0
    printed = capsys.readouterr().out
    assert "thresholds     max_mean_reflectance=1000 (others: the card's)" in printed
    assert "FAIL: mean reflectance 2000 >= 1000" in printed
