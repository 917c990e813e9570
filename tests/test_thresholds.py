"""One source of truth for the gate thresholds: validated gates.json, quoted as used by card, CLI, report."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from builder import figures
from builder.cli import main
from builder.errors import ConfigError
from builder.quality import thresholds
from builder.quality.thresholds import GateConfig
from builder.release.cards import validate_dataset_card
from builder.release.report import BuildReport


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
    report = BuildReport.from_json((release.with_name("1.0.0.private") / "report.json").read_bytes())
    assert report.gates.config["max_cloud"] == 0.2 and report.gates.changed == {
        "max_cloud": 0.2,
        "min_nonzero": 0.4,
    }
    per_tile = {
        g["thresholds"]["max_cloud"] for t in report.tiles for g in t.gates if g["gate"] == "s2_not_cloudy"
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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"max_cloud": NaN}', "gate setting max_cloud = nan: expected a number from 0 to 1"),
        ('{"max_cloud": Infinity}', "gate setting max_cloud = inf: expected a number from 0 to 1"),
        ('{"min_ndvi": -Infinity}', "gate setting min_ndvi = -inf: expected a number from -1 to 1"),
        ('{"max_cloud": 1e400}', "gate setting max_cloud = inf"),
        ('{"canopy_red": -0.01}', "gate setting canopy_red = -0.01: expected a number from 0 to 1"),
        ('{"min_file_bytes": 1000000001}', "min_file_bytes = 1000000001: expected a whole number from 0"),
        ('{"max_cloud": 0.2, "max_cloud": 0.9}', "setting 'max_cloud' is given twice; keep one"),
        ("[" * 100_000 + "]" * 100_000, "JSON nested too deeply"),
        ('{"max_cloud": ' + "[" * 100_000 + "]" * 100_000 + "}", "JSON nested too deeply"),
        ('{"max_cloud": true}', "gate setting max_cloud = True: expected a number"),
        ('{"min_file_bytes": false}', "gate setting min_file_bytes = False: expected a whole number"),
        ('{"cropland_classes": [true]}', "gate setting cropland_classes = (True,)"),
        ('{"max_cloud": ' + "9" * 400 + "}", "a whole number of 400 digits is not a gate threshold"),
        ('{"min_file_bytes": ' + "9" * 5000 + "}", "a whole number of 5000 digits is not a gate threshold"),
        ('{"cropland_classes": "' + "x" * 100_000 + '"}', "... (100002 characters): expected a non-empty"),
        ('{"max\\ncloud": 0.2}', "unknown gate setting(s) 'max\\ncloud'; known:"),
        ("", "not JSON"),
        ("null", "expected an object of gate thresholds, found NoneType"),
    ],
)
def test_hostile_gates_json_is_one_short_line(text: str, message: str, tmp_path: Path) -> None:
    """Values JSON allows (NaN, Infinity, a key twice, any depth, any length of digits) are refused
    by name; nothing escapes as a RecursionError, an OverflowError or a ValueError."""
    path = tmp_path / "gates.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        thresholds.load_config(path)
    error = str(caught.value)
    assert message in error and error.startswith(str(path)) and "\n" not in error and len(error) < 400


def test_a_byte_order_mark_is_ignored_as_in_the_manifests(tmp_path: Path) -> None:
    path = tmp_path / "gates.json"
    path.write_bytes(b'\xef\xbb\xbf{"max_cloud": 0.25}')
    assert thresholds.load_config(path).max_cloud == 0.25
    path.write_bytes(b'{"max_cloud": 0.2, "x\xe9": 1}')
    with pytest.raises(ConfigError, match="not UTF-8"):
        thresholds.load_config(path)


@pytest.mark.parametrize("kind", ["folder", "fifo", "dangling symlink"])
def test_a_gates_json_that_is_not_a_file_is_one_line_never_the_defaults(
    kind: str, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder, a FIFO (never opened: it would block) or a broken link named gates.json is an
    error, not silently "no gates.json": the user meant to give thresholds."""
    import os

    path = small_corpus / "gates.json"
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(tmp_path / "nowhere.json")
    code = main(["build", "--corpus", str(small_corpus), "--out", str(tmp_path / "o"), "--version", "1.0.0"])
    err = capsys.readouterr().err
    expected = {"folder": "is a folder", "fifo": "is a FIFO", "dangling symlink": "symbolic link to nothing"}
    assert code == 2 and err.count("\n") == 1 and expected[kind] in err and "gates.json" in err
    assert not (tmp_path / "o" / "cropmark-disambiguator-s2" / "1.0.0").exists()


def test_thresholds_are_quoted_exactly_and_the_audit_accepts_them(
    small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Many decimals, a tiny value and -0.0: the card, the rejection details and the CLI quote the
    value that decided (no rounding to 6 digits or whole percents), and the card still passes the
    audit's coordinate-like-number scan."""
    settings = {
        "max_cloud": 0.123456789012345,
        "min_ndvi": 0.1234567891,
        "max_mean_reflectance": 4000.75,
        "min_context_std": 2.125,
        "canopy_red": 1e-300,
        "min_cropland": -0.0,
        "cropland_classes": [1, 40],
    }
    (small_corpus / "gates.json").write_text(json.dumps(settings))
    out = tmp_path / "out"
    args = ["build", "--corpus", str(small_corpus), "--out", str(out), "--version", "1.0.0"]
    assert main([*args, "--site-distance", "2560.5"]) == 0
    printed = capsys.readouterr().out
    assert "max_cloud=0.123456789012345" in printed and "min_ndvi=0.1234567891" in printed
    release = out / "cropmark-disambiguator-s2" / "1.0.0"
    report = BuildReport.from_json((release.with_name("1.0.0.private") / "report.json").read_bytes())
    assert report.audit.passed and report.gates.config["min_cropland"] == 0.0
    card = (release / "README.md").read_text()
    assert "cloud and cloud shadow <= 12.3456789012345 %" in card
    assert "mean reflectance < 4000.75 (x 10^-4), mean NDVI > 0.1234567891, < 20 % saturated" in card
    assert "cropland fraction (classes 1, 40) >= 0 %, else" in card
    assert (
        "gate 2: cloud or shadow > 12.3456789012345 %, mean reflectance >= 4000.75, NDVI <= 0.1234567891"
        in card
    )
    assert "standard deviation > 2.125 grey levels" in card
    assert "2560.5 m to one" in card  # the --site-distance used, not "2560"
    assert "-0 %" not in card and "12.3457" not in card and "0.123457" not in card
    assert validate_dataset_card(card, report, release) == []
    cloudy = [r.detail for r in report.rejections if r.reason == "gate_s2_cloudy"]
    assert cloudy and all("> 12.3456789012345% (" in d for d in cloudy)  # not "> 12%"
    no_context = [r.detail for r in report.rejections if r.reason == "gate_no_context"]
    assert no_context and all("<= 2.125 (a flat fill)" in d for d in no_context)


def test_number_and_pct_round_trip_to_the_value_used() -> None:
    for value in (0.3, 0.07, 0.123456789012345, 4000.0, 4000.75, 1e-300, 0.045, 1 / 3):
        assert float(figures.number(value)) == value
        assert float(figures.pct(value).removesuffix(" %")) / 100 == pytest.approx(value, rel=1e-15)
    assert figures.pct(0.07) == "7 %" and figures.pct(0.3) == "30 %" and figures.number(4000.0) == "4000"
    assert figures.number(-0.0) == "0" and figures.pct(-0.0) == "0 %" and figures.number(5120) == "5120"
