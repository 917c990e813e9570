"""LoRA training, Yes/No scoring and evaluation on a tiny random LFM2-VL (real code paths, CPU)."""

from __future__ import annotations

import csv
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")
pytest.importorskip("peft")

from builder.cli import main
from builder.errors import ConfigError, ModelLoadError
from builder.model import data
from builder.model.schema import check_evaluation, check_training_summary
from builder.model.scoring import batch, label_token_ids, load_scorer
from builder.model.train import TARGET_MODULES, load_config, train
from builder.release import cards
from builder.testing.tiny import is_tiny, write_tiny_lfm2_vl

ROOT = Path(__file__).resolve().parent.parent


def _tiles(release: Path, split: str, n: int | None = None) -> list[Image.Image]:
    return [Image.open(e.path).convert("RGB") for e in data.examples(release, split)[:n]]


def _adapter_names(run: Path) -> list[str]:
    raw = (run / "adapter_model.safetensors").read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    return [k for k in json.loads(raw[8 : 8 + size]) if k != "__metadata__"]


@pytest.fixture(scope="module")
def trained(
    tiny_model: Path, small_release: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A short real LoRA run on the small release: 16 steps of 4 tiles."""
    out = tmp_path_factory.mktemp("run") / "lora"
    config = load_config(
        ROOT / "scripts" / "lora.yaml",
        {
            "base_model": str(tiny_model),
            "output_dir": str(out),
            "batch_size": 4,
            "gradient_accumulation": 1,
            "max_steps": 16,
            "learning_rate": 5e-3,
            "lora_dropout": 0.0,
        },
    )
    summary = train(config, str(small_release), progress=False)
    return {"run": out, "summary": summary}


# -- the tiny model -----------------------------------------------------------------------------------


def test_tiny_model_is_seeded_and_loads_with_the_auto_classes(tiny_model: Path, tmp_path: Path) -> None:
    again = write_tiny_lfm2_vl(tmp_path / "again", seed=0)
    assert (again / "model.safetensors").read_bytes() == (tiny_model / "model.safetensors").read_bytes()
    other = write_tiny_lfm2_vl(tmp_path / "other", seed=1)
    assert (other / "model.safetensors").read_bytes() != (tiny_model / "model.safetensors").read_bytes()
    assert is_tiny(tiny_model)
    scorer = load_scorer(str(tiny_model))
    assert type(scorer.model).__name__ == "Lfm2VlForConditionalGeneration"
    assert type(scorer.processor).__name__ == "Lfm2VlProcessor"
    assert scorer.no_id != scorer.yes_id


def test_a_tile_is_one_image_of_128_tokens_and_labels_cover_the_answer_only(
    tiny_model: Path, small_release: Path
) -> None:
    scorer = load_scorer(str(tiny_model))
    tiles = _tiles(small_release, "train", 2)
    inputs = batch(scorer.processor, tiles, ["Yes", "No"])
    image_id = scorer.processor.tokenizer.convert_tokens_to_ids("<image>")
    assert (inputs["input_ids"] == image_id).sum(dim=1).tolist() == [128, 128]
    tokenizer = scorer.processor.tokenizer
    for row, answer in enumerate(("Yes", "No")):
        kept = inputs["labels"][row][inputs["labels"][row] != -100].tolist()
        assert kept[0] == tokenizer.convert_tokens_to_ids(answer)
        assert tokenizer.convert_tokens_to_ids("<|im_end|>") in kept
        assert len(kept) <= 3  # the answer, end of turn, newline: nothing of the question


def test_batched_scores_equal_one_by_one_scores(tiny_model: Path, small_release: Path) -> None:
    scorer = load_scorer(str(tiny_model))
    tiles = _tiles(small_release, "eval", 5)
    together = scorer.p_yes(tiles, batch_size=5)
    alone = np.concatenate([scorer.p_yes([t], batch_size=1) for t in tiles])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert ((together > 0) & (together < 1)).all()


def test_a_list_of_names_adapts_the_vision_tower_and_the_regex_does_not(tiny_model: Path) -> None:
    """q_proj... exist in the SigLIP2 tower too (transformers' Siglip2Attention)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    def adapted(targets: Any) -> list[str]:
        model = get_peft_model(
            AutoModelForImageTextToText.from_pretrained(tiny_model), LoraConfig(r=2, target_modules=targets)
        )
        return [n for n, m in model.named_modules() if hasattr(m, "lora_A")]

    plain = adapted(["q_proj", "k_proj", "v_proj", "out_proj"])
    assert any("vision_tower" in n for n in plain)
    ours = adapted(TARGET_MODULES)
    assert not any("vision_tower" in n for n in ours)
    assert any("multi_modal_projector.linear_1" in n for n in ours)
    assert any("conv.in_proj" in n for n in ours) and any("feed_forward.w2" in n for n in ours)


# -- training ------------------------------------------------------------------------------------------


def test_training_lowers_the_loss_and_saves_adapter_processor_and_summary(trained: dict[str, Any]) -> None:
    run, summary = trained["run"], trained["summary"]
    check_training_summary(summary)
    assert summary["steps"] == len(summary["losses"]) == 16
    assert np.mean(summary["losses"][-3:]) < np.mean(summary["losses"][:3]) - 0.5
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "training_summary.json",
        "processor_config.json",
        "tokenizer.json",
    } <= {p.name for p in run.iterdir()}
    assert not run.with_name("lora.partial").exists()
    assert json.loads((run / "training_summary.json").read_text()) == summary
    names = _adapter_names(run)
    assert names and not any("vision_tower" in n for n in names)
    assert any("multi_modal_projector" in n for n in names) and any("language_model" in n for n in names)
    assert set(summary["versions"]) == {"torch", "transformers", "peft", "cropmark"}


def test_the_adapter_reloads_onto_the_base_and_changes_its_output(
    trained: dict[str, Any], tiny_model: Path, small_release: Path
) -> None:
    tiles = _tiles(small_release, "eval", 4)
    base = load_scorer(str(tiny_model)).p_yes(tiles)
    tuned = load_scorer(str(tiny_model), trained["run"]).p_yes(tiles)
    assert np.abs(tuned - base).max() > 0.01
    # Reloading is deterministic: the same adapter gives the same scores.
    np.testing.assert_allclose(load_scorer(str(tiny_model), trained["run"]).p_yes(tiles), tuned, atol=1e-6)


def test_same_seed_same_losses(tiny_model: Path, small_release: Path, tmp_path: Path) -> None:
    settings = {"base_model": str(tiny_model), "batch_size": 2, "gradient_accumulation": 2, "max_steps": 3}
    a = train(
        load_config(None, {**settings, "output_dir": str(tmp_path / "a")}), str(small_release), progress=False
    )
    b = train(
        load_config(None, {**settings, "output_dir": str(tmp_path / "b")}), str(small_release), progress=False
    )
    assert a["losses"] == b["losses"]


def test_evaluate_writes_valid_json_pngs_and_predictions(
    trained: dict[str, Any],
    tiny_model: Path,
    small_release: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    assert main(["baseline", str(small_release), "--out", str(tmp_path / "baseline"), "--quiet"]) == 0
    code = main([
        "evaluate", str(small_release), "--out", str(trained["run"]), "--base-model", str(tiny_model),
        "--adapter", str(trained["run"]), "--baseline", str(tmp_path / "baseline" / "baseline.json"),
        "--batch-size", "3",
    ])  # fmt: skip
    assert code == 0
    out, err = capfd.readouterr()
    assert "evaluate VLM: 100%" in err and "evaluate baseline: 100%" in err  # the progress bars
    result = json.loads((trained["run"] / "evaluation.json").read_text())
    check_evaluation(result)
    assert [m["kind"] for m in result["models"]] == ["vlm-lora", "baseline"]
    # A random test model's figures say so wherever they are read: the JSON (and the model
    # card's table, which shows the name), the console, the confusion PNG's title, every CSV row.
    marker = "TEST MODEL: a tiny random test model, random weights; its predictions mean nothing"
    assert result["models"][0]["name"] == f"tiny-lfm2-vl + LoRA ({marker})"
    assert result["models"][0]["test_model"] == "a tiny random test model"
    assert result["warning"].startswith(marker)
    assert "test_model" not in result["models"][1] and "TEST" not in result["models"][1]["name"]
    assert f"tiny-lfm2-vl + LoRA ({marker}): accuracy" in out
    assert result["n"] == len(data.examples(small_release, "eval"))
    assert set(result["throughput_tiles_per_s"]) == {"vlm-lora", "baseline"}
    for kind in ("vlm-lora", "baseline"):
        with Image.open(trained["run"] / f"confusion-{kind}.png") as png:
            assert png.format == "PNG"
    # The saved scores are the scorer's: the JSON metrics follow from predictions.csv.
    with (trained["run"] / "predictions.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["vlm-lora_test_model"] for r in rows} == {marker}
    yes = sum(float(r["p_yes_vlm-lora"]) >= 0.5 for r in rows)
    confusion = result["models"][0]["confusion"]
    assert yes == confusion["tp"] + confusion["fp"]


def test_the_model_card_how_to_runs_against_the_trained_adapter(
    trained: dict[str, Any], tiny_model: Path, small_release: Path, tmp_path: Path
) -> None:
    evaluation = json.loads((ROOT / "tests" / "data" / "evaluation.json").read_text())
    card = cards.model_card(trained["summary"], evaluation, "o/tiny-lora", "o/d")
    snippet = re.search(r"```python\n(.*?)```", card, re.S)
    assert snippet is not None
    tile = data.examples(small_release, "eval")[0].path
    code = (
        snippet.group(1)
        .replace('"o/tiny-lora"', repr(str(trained["run"])))
        .replace('"tile.jpg"', repr(str(tile)))
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    verdict, p = done.stdout.split()[-2:]
    expected = load_scorer(str(tiny_model), trained["run"]).p_yes([Image.open(tile).convert("RGB")])[0]
    assert float(p) == pytest.approx(expected, abs=1e-3)
    assert verdict == ("Yes" if expected >= 0.5 else "No")


# -- errors a user can make -------------------------------------------------------------------------------


def test_missing_base_model_is_one_line(
    small_release: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", str(small_release), "--base-model", str(tmp_path / "no-model"),
                 "--output-dir", str(tmp_path / "out"), "--quiet"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "base model" in err and "could not be loaded" in err
    assert not (tmp_path / "out").exists()


def test_an_adapter_that_does_not_fit_the_base_is_one_line(
    trained: dict[str, Any], small_release: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wider = write_tiny_lfm2_vl(tmp_path / "wider", seed=0, text_hidden_size=96)
    with pytest.raises(ModelLoadError, match="does not fit base model"):
        load_scorer(str(wider), trained["run"])
    code = main(["evaluate", str(small_release), "--out", str(tmp_path / "e"), "--base-model", str(wider),
                 "--adapter", str(trained["run"]), "--quiet"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1  # progress bars of the loading may come before it
    assert err.strip().splitlines()[-1].startswith("error: adapter ")
    assert "does not fit base model" in err and "size mismatch for" in err
    with pytest.raises(ModelLoadError, match=r"adapter_config\.json does not exist"):
        load_scorer(str(wider), tmp_path)


def test_training_refuses_to_overwrite_a_run_and_bad_settings(
    trained: dict[str, Any], small_release: Path
) -> None:
    config = load_config(None, {"base_model": "x", "output_dir": str(trained["run"])})
    with pytest.raises(ConfigError, match="exists and is not empty"):
        train(config, str(small_release), progress=False)
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['lora_rank'\]"):
        load_config(None, {"lora_rank": 8})
    with pytest.raises(ConfigError, match="learning_rate = 0"):
        load_config(None, {"learning_rate": 0})
    with pytest.raises(ConfigError, match="batch_size = '8'; expected int"):
        load_config(None, {"batch_size": "8"})
    with pytest.raises(ConfigError, match="vision tower"):
        load_config(None, {"target_modules": r"model\.vision_tower\..*"})


def test_label_tokens_must_be_single_tokens() -> None:
    class Splitting:
        def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
            return {"input_ids": [1, 2] if text == "Yes" else [3]}

    with pytest.raises(ModelLoadError, match="splits 'Yes' into 2 tokens"):
        label_token_ids(Splitting())


def test_train_script_runs_from_a_fresh_interpreter(
    tiny_model: Path, small_release: Path, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_lora.py"), str(small_release), "--config",
         str(ROOT / "scripts" / "lora.yaml"), "--base-model", str(tiny_model), "--output-dir",
         str(tmp_path / "run"), "--max-steps", "2", "--device", "cpu"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trained 2 steps" in done.stdout
    assert "train: 100%" in done.stderr  # the progress bar
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{bad", "is not JSON"),
        (b"\xff{}", "is not JSON"),
        (b"[1]", "is not a PEFT adapter config"),
        (b'{"base_model_name_or_path": 5}', "is not a PEFT adapter config"),
    ],
)
def test_a_damaged_adapter_config_is_one_line_before_peft_reads_it(
    tmp_path: Path, content: bytes, message: str
) -> None:
    """What the Space meets when the adapter on the Hub holds a bad adapter_config.json."""
    from builder.model.scoring import attach_adapter

    (tmp_path / "adapter_config.json").write_bytes(content)
    with pytest.raises(ModelLoadError, match=message) as caught:
        attach_adapter(None, "LiquidAI/LFM2.5-VL-450M", tmp_path)
    assert "\n" not in str(caught.value) and "the adapter is damaged" in str(caught.value)
