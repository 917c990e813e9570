"""The model gate and the Space bundle: what they refuse, and what they send to the local Hub."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from builder import cards
from builder.bundles import model_bundle, space_bundle, space_config
from builder.cli import main, pinned_version
from builder.errors import PublishError
from builder.release import BuildConfig, BuildResult, build
from tests.hub.server import HubServer, metadata_errors

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
ORG = "cropmark-org"
DATASET = f"{ORG}/cropmark-disambiguator-s2"
MODEL = f"{ORG}/cropmark-lfm2.5-vl-lora"
SPACE = f"{ORG}/cropmark-disambiguator"


def _cli(*args: str) -> int:
    return main(["publish", *args, "--backoff", "0.01"])


def _remote(hub: HubServer, kind: str, repo: str) -> dict[str, bytes]:
    files = hub.files(kind, repo)
    files.pop(".gitattributes")
    return files


def _safetensors(path: Path, names: list[str]) -> None:
    header: dict[str, object] = {}
    offset = 0
    for name in names:
        header[name] = {"dtype": "F32", "shape": [2, 2], "data_offsets": [offset, offset + 16]}
        offset += 16
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + np.arange(4 * len(names), dtype="<f4").tobytes())


def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _edit(path: Path, change: Callable[[dict[str, Any]], object]) -> None:
    data = _json(path)
    change(data)
    path.write_text(json.dumps(data))


def _run(tmp_path: Path, target_modules: object = None) -> Path:
    """A run folder as training and evaluation leave it (the weights are a stand-in)."""
    run = tmp_path / "runs" / "lora-001"
    (run / "checkpoint-10").mkdir(parents=True)
    training = _json(DATA / "training_summary.json")
    config = {
        "peft_type": "LORA",
        "base_model_name_or_path": training["base_model"],
        "r": 16,
        "target_modules": target_modules or training["lora"]["target_modules"],
    }
    (run / "adapter_config.json").write_text(json.dumps(config))
    _safetensors(
        run / "adapter_model.safetensors",
        ["base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight"],
    )
    (run / "checkpoint-10" / "optimizer.pt").write_bytes(b"\0" * 64)
    (run / "README.md").write_text("---\nlibrary_name: peft\n---\n# PEFT's placeholder card\n")
    shutil.copy(DATA / "training_summary.json", run)
    evaluation = _json(DATA / "evaluation.json")
    digest = hashlib.sha256((run / "adapter_model.safetensors").read_bytes()).hexdigest()
    evaluation["models"][0]["adapter_sha256"] = digest  # evaluate.py records what it scored
    (run / "evaluation.json").write_text(json.dumps(evaluation))
    (run / "tokenizer.json").write_text('{"model": {"merges": ["/ *", "/ /"]}}')  # tokens may start with '/'
    return run


# -- the model ------------------------------------------------------------------------------------


def test_model_publish_sends_the_adapter_and_the_card_written_after_peft(
    hub: HubServer, tmp_path: Path
) -> None:
    run = _run(tmp_path)
    # The summary says the adapter was trained on ORG/cropmark-disambiguator-s2: a card that names
    # another dataset (here the default, cropmark-org/...) is refused.
    assert _cli("model", str(run), "--repo-id", MODEL) == 2
    assert not hub.state.repos
    _edit(run / "training_summary.json", lambda s: s["release"].update(hub_id=DATASET))
    assert _cli("model", str(run), "--repo-id", MODEL, "--tag", "v1.0.0") == 0
    remote = _remote(hub, "model", MODEL)
    assert sorted(remote) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "evaluation.json",
        "tokenizer.json",
        "training_summary.json",
    ]
    expected = cards.model_card(
        _json(run / "training_summary.json"), _json(run / "evaluation.json"), MODEL, DATASET
    )
    assert remote["README.md"].decode() == expected
    assert "PEFT's placeholder" not in remote["README.md"].decode()
    assert metadata_errors(expected, "model") == []  # the Hub's metadata rules


def test_an_adapter_of_the_vision_tower_is_refused(tmp_path: Path) -> None:
    run = _run(tmp_path, target_modules=["q_proj", "v_proj"])
    with pytest.raises(PublishError, match="would adapt the vision tower"):
        model_bundle(run, "o/m", "ORG/cropmark-disambiguator-s2")


def test_a_run_without_its_adapter_is_refused(tmp_path: Path) -> None:
    run = _run(tmp_path)
    (run / "adapter_model.safetensors").unlink()
    with pytest.raises(PublishError, match=r"lacks adapter_model\.safetensors"):
        model_bundle(run, "o/m", "ORG/cropmark-disambiguator-s2")


@pytest.mark.parametrize(
    "base", ["/tmp/tiny-lfm2-vl", "./tiny-lfm2-vl", "~/models/lfm", "C:\\models\\lfm", "lfm"]
)
def test_a_local_base_model_is_refused(tmp_path: Path, base: str) -> None:
    run = _run(tmp_path)
    _edit(run / "adapter_config.json", lambda c: c.update(base_model_name_or_path=base))
    _edit(run / "training_summary.json", lambda s: s.update(base_model=base))
    with pytest.raises(PublishError, match="is not a Hub model id"):
        model_bundle(run, "o/m", "ORG/cropmark-disambiguator-s2")


def test_a_base_model_id_that_is_also_a_local_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _run(tmp_path)
    (tmp_path / "LiquidAI" / "LFM2.5-VL-450M").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # transformers would load this folder, not the Hub's model
    with pytest.raises(PublishError, match="a local folder"):
        model_bundle(run, "o/m", "ORG/cropmark-disambiguator-s2")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda e: e["models"].reverse(), r"first model is 'physics baseline .*' \(kind 'baseline'\)"),
        (
            lambda e: e["models"][0].update(adapter_sha256="ab" * 32),
            r"scored adapter abababababab, but this run's",
        ),
        (lambda e: e["models"][0].update(adapter_sha256=None), r"scored adapter None"),
        (
            lambda e: e["models"][0].update(base_model="LiquidAI/LFM2-VL-1.6B"),
            "not on 'LiquidAI/LFM2.5-VL-450M'",
        ),
    ],
)
def test_an_evaluation_of_another_model_is_refused(tmp_path: Path, edit: Any, message: str) -> None:
    run = _run(tmp_path)
    _edit(run / "evaluation.json", edit)
    with pytest.raises(PublishError, match=message):
        model_bundle(run, "o/m", "ORG/cropmark-disambiguator-s2")


def test_an_evaluation_of_the_previous_adapter_is_refused(tmp_path: Path) -> None:
    run = _run(tmp_path)
    _safetensors(run / "adapter_model.safetensors", ["base_model.model.model.language_model.x.lora_B.weight"])
    with pytest.raises(PublishError, match="evaluate this adapter again"):
        model_bundle(run, "o/m", "ORG/cropmark-disambiguator-s2")


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("training_summary.json", lambda s: s.update(config={"output_dir": "/home/alice/runs/lora-001"})),
        ("evaluation.json", lambda e: e.update(dataset="/srv/data/cropmark/1.0.0")),
        ("adapter_config.json", lambda c: c.update(revision="C:\\Users\\alice\\lfm")),
    ],
)
def test_published_json_never_holds_an_absolute_path(tmp_path: Path, name: str, edit: Any) -> None:
    run = _run(tmp_path)
    _edit(run / name, edit)
    with pytest.raises(PublishError, match=f"absolute paths of this machine: {re.escape(name)}"):
        model_bundle(run, "o/m", "ORG/cropmark-disambiguator-s2")


def test_the_card_says_which_release_and_which_halves_the_model_saw() -> None:
    training, evaluation = _json(DATA / "training_summary.json"), _json(DATA / "evaluation.json")
    public = cards.model_card(training, evaluation, MODEL, DATASET)
    assert "The model saw the Sentinel-2 half only" in public and "context half" not in public
    assert "The `train` split (767 tiles) of\n[ORG/cropmark-disambiguator-s2]" in public
    assert "at revision `4c0ffee5d1e0`" in public
    original = copy.deepcopy(training)
    original.update(halves=["sentinel-2", "context"])
    original["release"].update(hub_id=None, revision=None, version="1.0.0")
    card = cards.model_card(original, evaluation, MODEL, DATASET)
    assert "a high-resolution context half that the public dataset does not contain" in card
    assert "of a local build of\nrelease 1.0.0." in card
    assert "three regions" not in card  # the summary does not say so


# -- the Space ------------------------------------------------------------------------------------


APP = "import gradio as gr\nimport numpy as np\nfrom builder.model.prompt import LABELS, PROMPT\n"


def _space(tmp_path: Path, app: str = APP, requirements: str | None = None) -> Path:
    space = tmp_path / "space"
    space.mkdir()
    (space / "app.py").write_text(app)
    gradio = pinned_version("gradio")
    (space / "requirements.txt").write_text(requirements or f"gradio=={gradio}\nnumpy==2.3.4\n")
    return space


@pytest.fixture
def baseline(small_release: Path, tmp_path: Path) -> Path:
    """The physics baseline fitted on the small release (no torch needed)."""
    assert main(["baseline", str(small_release), "--out", str(tmp_path / "baseline"), "--quiet"]) == 0
    return tmp_path / "baseline" / "baseline.json"


@pytest.fixture
def published(hub: HubServer, small_corpus: Path, tmp_path: Path) -> dict[str, Any]:
    """The dataset (as the small release) and a model, published to the local Hub."""
    release = build(BuildConfig(small_corpus, tmp_path / "b", "1.0.0", repo_id=DATASET))
    assert _cli("dataset", str(release.release), "--repo-id", DATASET) == 0
    run = _run(tmp_path)
    _edit(run / "training_summary.json", lambda s: s["release"].update(hub_id=DATASET))
    assert _cli("model", str(run), "--repo-id", MODEL, "--no-tag") == 0
    return {"release": release}


def test_space_publish_ships_the_ids_the_baseline_and_the_modules_app_imports(
    hub: HubServer, published: dict[str, Any], tmp_path: Path
) -> None:
    result: BuildResult = published["release"]
    assert main(["baseline", str(result.release), "--out", str(tmp_path / "bl"), "--quiet"]) == 0
    space = _space(tmp_path)
    args = ("space", str(space), "--repo-id", SPACE, "--baseline", str(tmp_path / "bl" / "baseline.json"))
    assert _cli(*args) == 0
    remote = _remote(hub, "space", SPACE)
    assert sorted(remote) == [
        "README.md",
        "app.py",
        "baseline.json",
        "builder/__init__.py",
        "builder/model/__init__.py",
        "builder/model/prompt.py",
        "cropmark_space.json",
        "requirements.txt",
    ]
    config = json.loads(remote["cropmark_space.json"])
    # The base model is read from the published adapter: the Space loads what fits it.
    assert config == {
        "schema": "cropmark-space/1",
        "base_model": "LiquidAI/LFM2.5-VL-450M",
        "adapter": MODEL,
        "dataset": DATASET,
        "baseline": "baseline.json",
    }
    assert remote["baseline.json"] == (tmp_path / "bl" / "baseline.json").read_bytes()
    readme = remote["README.md"].decode()
    assert "sdk: gradio" in readme and f"sdk_version: {pinned_version('gradio')}" in readme
    assert metadata_errors(readme, "space") == []
    assert hub.repo("space", SPACE).sdk == "gradio"
    # The shipped files import on their own (no project checkout beside them).
    shipped = tmp_path / "shipped"
    for path, data in remote.items():
        (shipped / path).parent.mkdir(parents=True, exist_ok=True)
        (shipped / path).write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-S", "-c", "import builder.model.prompt as p; print(p.LABELS)"],
        cwd=shipped,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "('No', 'Yes')"


def test_a_space_whose_baseline_was_fitted_on_other_data_is_refused(
    hub: HubServer,
    published: dict[str, Any],
    baseline: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # The small release has the published release's train split; make the baseline claim another one.
    _edit(baseline, lambda b: b["release"].update(train_metadata_sha256="0" * 64))
    args = ("space", str(_space(tmp_path)), "--repo-id", SPACE, "--baseline", str(baseline))
    assert _cli(*args) == 2
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]  # progress bars aside
    assert len(errors) == 1 and "Traceback" not in err
    assert "the baseline was not fitted on cropmark-org/cropmark-disambiguator-s2 as published" in errors[0]
    assert ("space", SPACE) not in hub.state.repos


def test_a_space_for_a_model_that_is_not_on_the_hub_is_refused(
    hub: HubServer, baseline: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    args = ("space", str(_space(tmp_path)), "--repo-id", SPACE, "--baseline", str(baseline))
    assert _cli(*args) == 2
    err = capfd.readouterr().err
    assert f"cannot read the Space's model {MODEL}" in err and "publish them first" in err
    assert err.count("\n") == 1 and not hub.state.repos


def test_a_space_without_a_baseline_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("space", str(_space(tmp_path)), "--repo-id", SPACE) == 2
    assert "publish space needs --baseline" in capsys.readouterr().err


def test_a_baseline_that_does_not_say_its_release_is_refused(tmp_path: Path, baseline: Path) -> None:
    _edit(baseline, lambda b: b.pop("release"))
    config = space_config("LiquidAI/LFM2.5-VL-450M", MODEL, DATASET)
    with pytest.raises(PublishError, match="does not say which release it was fitted on"):
        space_bundle(_space(tmp_path), ROOT, "T", config, baseline)


@pytest.mark.parametrize(
    ("app", "requirements", "message"),
    [
        (APP, "gradio>=5\nnumpy==2.3.4\n", "is not pinned"),
        (APP, "numpy==2.3.4\n", "does not pin gradio"),
        (APP + "import scipy\n", None, "app imports scipy"),
        ("from . import x\n", None, "relative imports"),
        ("def broken(:\n", None, "the Space would not start"),
    ],
)
def test_a_space_that_would_not_start_is_refused(
    tmp_path: Path, baseline: Path, app: str, requirements: str | None, message: str
) -> None:
    space = _space(tmp_path, app, requirements)
    config = space_config("LiquidAI/LFM2.5-VL-450M", MODEL, DATASET)
    with pytest.raises(PublishError, match=re.escape(message)):
        space_bundle(space, ROOT, "T", config, baseline)
