"""Cards: strict rendering, YAML from the card-data classes, validation, golden files."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from huggingface_hub import DatasetCard, ModelCard, SpaceCard

from builder import figures
from builder.cli import main
from builder.errors import ConfigError
from builder.model.schema import check_evaluation, check_training_summary
from builder.release import cards
from builder.release.build import BuildResult
from builder.release.report import BuildReport
from tests.golden import refresh

DATA = Path(__file__).parent / "data"


def _json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


@pytest.mark.parametrize("name", ["dataset_card.md", "model_card.md", "space_readme.md"])
def test_golden_cards_are_current(name: str) -> None:
    golden = (Path(refresh.__file__).parent / name).read_text(encoding="utf-8")
    assert refresh.rendered()[name] == golden, "run `make golden` and review the diff"


def test_a_misspelt_variable_fails_the_render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bad.md.j2").write_text("{{ counts.trian }}")
    monkeypatch.setattr(cards, "CARDS_DIR", tmp_path)
    with pytest.raises(jinja2.UndefinedError):
        cards.render("bad.md.j2", {"counts": {"train": 1}})


def test_dataset_card_yaml(sample_release: BuildResult) -> None:
    text = (sample_release.release / "README.md").read_text()
    data = DatasetCard(text).data.to_dict()
    assert data["license"] == "cdla-permissive-2.0"
    assert data["size_categories"] == ["n<1K"]
    assert {"sentinel-2", "remote-sensing", "archaeology", "cropmarks"} <= set(data["tags"])
    assert data["configs"][0]["features"][1]["dtype"]["class_label"]["names"] == {"0": "No", "1": "Yes"}
    header = yaml.safe_load(text.split("---")[1])  # 'No'/'Yes' quoted: not booleans
    assert header["configs"][0]["features"][1]["dtype"]["class_label"]["names"]["0"] == "No"
    assert cards.validate_dataset_card(text, sample_release.report, sample_release.release) == []


def test_dataset_card_quotes_the_builds_figures(sample_release: BuildResult) -> None:
    body = DatasetCard((sample_release.release / "README.md").read_text()).text
    assert "**767 train** and **155 eval** tiles" in body
    assert "1147 train and 157 eval SFT rows" in body
    assert (
        "| `sibling_duplicate` | repeats a composite already used by a sibling row (same label) | 353 | 0 |"
        in body
    )
    assert "| `quarantined` | composite later quarantined | 10 | 1 |" in body
    for heading in (
        "Why only the Sentinel-2 half",
        "What you can and cannot reuse",
        "Source attribution",
        "Quality checks",
        "What a label means",
        "Intended use",
        "Limitations",
        "Licence",
        "Citation",
        "Training context",
        "How the SFT corpus became this release",
        "Dataset structure",
    ):
        assert f"## {heading}" in body
    assert "doi     = {10.1038/s41598-026-45441-0}" in body
    assert "author  = {Gravanis, E. and Agapiou, A.}" in body


def test_dataset_card_yaml_describes_the_dataset_for_the_hub(sample_release: BuildResult) -> None:
    data = DatasetCard((sample_release.release / "README.md").read_text()).data.to_dict()
    assert data["language"] == ["en"]
    assert data["annotations_creators"] == ["found"]
    assert data["source_datasets"] == ["original"]
    assert data["task_categories"] == ["image-classification"]
    assert data["task_ids"] == ["multi-class-image-classification"]


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda t: t.replace("**767 train**", "**768 train**"), "body quotes tiles"),
        (lambda t: t.replace("1147 train", "1146 train"), "body quotes rows"),
        (lambda t: t.replace("| 353 | 0 |", "| 360 | 0 |"), "curation table"),
        (lambda t: t.replace("- n<1K", "- 1K<n<10K"), "size_categories"),
        (lambda t: t.replace("| eval | 155 | 58 | 97 |", "| eval | 155 | 57 | 98 |"), "split table"),
        (
            lambda t: t.replace("- Tavoliere literature: 316 tiles", "- Tavoliere literature: 300 tiles"),
            "source counts",
        ),
        (lambda t: t.replace("license: cdla-permissive-2.0\n", ""), "'license' missing"),
        (
            lambda t: t.replace("- Tavoliere literature: 316 tiles", "- Tavoliere: literature: 316 tiles"),
            "source counts {'Historic England AIM'",  # a ':' in a name is read up to the last ': '
        ),
        (
            lambda t: t.replace(
                "**0** composites were rejected with swapped", "**1** composites were rejected with swapped"
            ),
            "halves-order counts",
        ),
        (lambda t: t.replace("path: data/eval/**", "path: data/test/**"), "matches no file"),
        (
            lambda t: t.replace("- multi-class-image-classification\n", "").replace("task_ids:\n", ""),
            "'task_ids' missing",
        ),
        (lambda t: t.replace("language:\n- en\n", ""), "'language' missing"),
        (lambda t: t.replace("heritage protection laws apply", "laws may apply"), "heritage protection laws"),
        (lambda t: t.replace("at least 1 km from any known", "far from a"), "at least 1 km"),
        (lambda t: t.replace("Cereal-land bias", "Land-cover bias"), "Cereal-land bias"),
        (lambda t: t.replace("E. Gravanis and A. Agapiou", "Gravanis and Agapiou"), "E. Gravanis"),
        (lambda t: t.replace("data files ", "data  files ", 1), "configs description names data files"),
    ],
)
def test_validation_catches_a_wrong_card(sample_release: BuildResult, edit: Any, problem: str) -> None:
    text = edit((sample_release.release / "README.md").read_text())
    problems = cards.validate_dataset_card(text, sample_release.report, sample_release.release)
    assert any(problem in p for p in problems), problems


def test_size_categories_follow_the_counts() -> None:
    assert [cards.size_category(n) for n in (0, 999, 1000, 9999, 10_000, 250_000)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "1K<n<10K",
        "10K<n<100K",
        "100K<n<1M",
    ]


def test_model_card_yaml_and_model_index() -> None:
    text = refresh.rendered()["model_card.md"]
    card = ModelCard(text)
    data = card.data.to_dict()
    assert data["base_model"] == "LiquidAI/LFM2.5-VL-450M"
    assert data["library_name"] == "peft"
    assert data["license"] == "other" and data["license_name"] == "lfm1.0"
    assert data["datasets"] == ["ORG/cropmark-disambiguator-s2"]
    results = data["model-index"][0]["results"][0]
    metrics = {m["type"]: m["value"] for m in results["metrics"]}
    assert metrics == {"accuracy": 0.8, "precision": 0.75, "recall": 0.7119, "f1": 0.7304}
    assert results["dataset"]["split"] == "eval"
    assert "| physics baseline (logistic regression) | 0.652 |" in card.text
    assert "never" in card.text and "heritage law" in card.text


def test_space_readme_pins_the_gradio_of_constraints() -> None:
    text = cards.space_readme("Cropmark Disambiguator", "O/m", "O/d", cards.SPACE_GRADIO)
    data = SpaceCard(text).data.to_dict()
    assert data["sdk"] == "gradio" and data["sdk_version"] == "6.31.0"
    assert data["app_file"] == "app.py" and data["python_version"]
    assert data["models"] == ["LiquidAI/LFM2.5-VL-450M", "O/m"] and data["datasets"] == ["O/d"]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("lora", "r"), None, "lora: key 'r' missing"),
        (("learning_rate",), "fast", "'learning_rate' is 'fast'"),
        (("schema",), "cropmark-train/1", "expected 'cropmark-train/2'"),
    ],
)
def test_training_summary_schema(path: tuple[str, ...], value: Any, message: str) -> None:
    summary = copy.deepcopy(_json("training_summary.json"))
    check_training_summary(summary)
    target = summary
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        check_training_summary(summary)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda e: e["models"][0]["metrics"].update(accuracy=1.5), "outside"),
        (lambda e: e["models"][0]["metrics"].update(accuracy=0.9), "confusion matrix gives 0.8000"),
        (lambda e: e["models"][1]["confusion"].update(tp=0), "sums to"),
        (lambda e: e.update(models=[]), "'models' is empty"),
    ],
)
def test_evaluation_schema(edit: Any, message: str) -> None:
    evaluation = copy.deepcopy(_json("evaluation.json"))
    check_evaluation(evaluation)
    edit(evaluation)
    with pytest.raises(ConfigError, match=message):
        check_evaluation(evaluation)


def test_card_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "README.md"
    assert (
        main(
            [
                "card",
                "model",
                "--training",
                str(DATA / "training_summary.json"),
                "--evaluation",
                str(DATA / "evaluation.json"),
                "--repo-id",
                refresh.MODEL_ID,
                "--dataset-id",
                refresh.REPO_ID,
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert out.read_text() == refresh.rendered()["model_card.md"]
    assert (
        main(["card", "dataset", "--report", str(DATA / "build_report.json"), "--repo-id", refresh.REPO_ID])
        == 0
    )
    assert capsys.readouterr().out.endswith(refresh.rendered()["dataset_card.md"])
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert (
        main(
            [
                "card",
                "model",
                "--training",
                str(bad),
                "--evaluation",
                str(bad),
                "--repo-id",
                "a/b",
                "--dataset-id",
                "c/d",
            ]
        )
        == 2
    )
    assert "is not JSON" in capsys.readouterr().err


def test_card_problems_never_print_a_private_value(sample_release: BuildResult) -> None:
    """A problem quotes values; one that equals a private value of the report is masked."""
    site = next(t.site for t in sample_release.report.tiles if t.site)
    report = replace(sample_release.report, sources={f"{site.source_id} at {site.lat:.4f}": 1})
    text = (sample_release.release / "README.md").read_text()
    problems = cards.validate_dataset_card(text, report, sample_release.release)
    joined = "\n".join(problems)
    assert "source counts" in joined
    assert site.source_id not in joined and f"{site.lat:.4f}" not in joined


def test_a_percentage_threshold_is_quoted_exactly() -> None:
    """The card's percentages keep 12 significant digits: 0.0123456789 is quoted 1.23456789 %, which the
    audit finds among the card's own figures (``:g`` printed 1.23457 and refused the build)."""
    from builder.scan import card_numbers, text_findings

    shown = figures.pct(0.0123456789)
    assert shown == "1.23456789 %" and figures.pct(0.3) == "30 %"
    report = BuildReport.from_dict(_json("build_report.json"))
    allowed = card_numbers(
        replace(report, gates=replace(report.gates, config={"max_saturated": 0.0123456789})).quoted_parts()
    )
    assert list(text_findings("README.md", f"< {shown} saturated pixels", (), allowed)) == []
