"""The model gate and the Space bundle: what they refuse, and what they send to the local Hub."""

from __future__ import annotations

import copy
import hashlib
import json
import os
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
from PIL import Image

from builder.cli import main
from builder.errors import PublishError
from builder.hub.bundles import LocalFile, model_bundle, run_figures, scan, space_bundle, space_config
from builder.release import cards
from builder.release.build import BuildConfig, BuildResult, build
from tests.hub import TOKEN
from tests.hub.server import Fault, HubServer, metadata_errors

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
ORG = "cropmark-org"
DATASET = f"{ORG}/cropmark-disambiguator-s2"
MODEL = f"{ORG}/cropmark-lfm2.5-vl-lora"
SPACE = f"{ORG}/cropmark-disambiguator"
BASE = "LiquidAI/LFM2.5-VL-450M"
REVS = ("a" * 40, "b" * 40)  # pinned revisions for Space bundles built offline
SHIPPED = [
    "README.md",
    "adapter_config.json",
    "adapter_model.safetensors",
    "evaluation.json",
    "training_summary.json",
]


def _cli(*args: str) -> int:
    return main(["publish", *args, "--backoff", "0.01"])


def _one_line_error(capfd: pytest.CaptureFixture[str]) -> str:
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]  # progress bars aside
    assert len(lines) == 1 and "Traceback" not in err, err
    assert TOKEN not in err
    return lines[0]


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


def _tie_evaluation(run: Path) -> None:
    """What evaluate.py records: the SHA-256 of the adapter it scored."""
    digest = hashlib.sha256((run / "adapter_model.safetensors").read_bytes()).hexdigest()
    _edit(run / "evaluation.json", lambda e: e["models"][0].update(adapter_sha256=digest))


def _run(tmp_path: Path, target_modules: object = None, release: dict[str, Any] | None = None) -> Path:
    """A run folder as training and evaluation leave it (the weights are a stand-in), with the
    files a run holds besides the adapter: a checkpoint, PEFT's card, the processor, logs."""
    run = tmp_path / "runs" / "lora-001"
    (run / "checkpoint-10").mkdir(parents=True)
    training = _json(DATA / "training_summary.json")
    if release is not None:
        training["release"] = release
    lora = training["lora"]
    config = {
        "peft_type": "LORA",
        "base_model_name_or_path": training["base_model"],
        "r": lora["r"],
        "lora_alpha": lora["alpha"],
        "lora_dropout": lora["dropout"],
        "target_modules": target_modules or lora["target_modules"],
    }
    (run / "adapter_config.json").write_text(json.dumps(config))
    _safetensors(
        run / "adapter_model.safetensors",
        ["base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight"],
    )
    (run / "checkpoint-10" / "optimizer.pt").write_bytes(b"\0" * 64)
    (run / "README.md").write_text("---\nlibrary_name: peft\n---\n# PEFT's placeholder card\n")
    (run / "training_summary.json").write_text(json.dumps(training))
    shutil.copy(DATA / "evaluation.json", run)
    _tie_evaluation(run)
    (run / "tokenizer.json").write_text('{"model": {"merges": ["/ *", "/ /"]}}')
    (run / "training_args.bin").write_bytes(b"\x80\x04output_dir/home/alice/runs/lora")
    (run / "train.log").write_text("saving to /home/alice/runs/lora\n")
    (run / ".env").write_text(f"HF_TOKEN={TOKEN}\n")
    return run


def _release_record(release: Path) -> dict[str, Any]:
    digest = hashlib.sha256((release / "data" / "train" / "metadata.csv").read_bytes()).hexdigest()
    return {"hub_id": DATASET, "revision": None, "version": "1.0.0", "train_metadata_sha256": digest}


@pytest.fixture
def base_model(hub: HubServer) -> str:
    """The base model on the local Hub, under LiquidAI's namespace (as on the Hub)."""
    hub.add_repo("model", BASE, {"config.json": b"{}"})
    return BASE


@pytest.fixture
def dataset(hub: HubServer, base_model: str, small_corpus: Path, tmp_path: Path) -> BuildResult:
    """The small release, published as the dataset."""
    release = build(BuildConfig(small_corpus, tmp_path / "b", "1.0.0", repo_id=DATASET))
    assert _cli("dataset", str(release.release), "--repo-id", DATASET) == 0
    return release


# -- the model ------------------------------------------------------------------------------------


def test_model_publish_sends_the_allow_list_and_the_card_written_after_peft(
    hub: HubServer, dataset: BuildResult, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run = _run(tmp_path)
    # The summary says the adapter was trained on ORG/cropmark-disambiguator-s2: a card that names
    # another dataset (here the default, cropmark-org/...) is refused.
    assert _cli("model", str(run), "--repo-id", MODEL) == 2
    assert "the adapter was trained on ORG/cropmark-disambiguator-s2" in _one_line_error(capfd)
    _edit(run / "training_summary.json", lambda s: s.update(release=_release_record(dataset.release)))
    assert _cli("model", str(run), "--repo-id", MODEL, "--tag", "v1.0.0") == 0
    out = capfd.readouterr().out
    remote = _remote(hub, "model", MODEL)
    assert sorted(remote) == SHIPPED  # no checkpoint, processor, log, pickle or dotfile
    for left in (".env", "checkpoint-10/optimizer.pt", "tokenizer.json", "train.log", "training_args.bin"):
        assert left in out.split("not sent (")[1].splitlines()[0]
    expected = cards.model_card(
        _json(run / "training_summary.json"), _json(run / "evaluation.json"), MODEL, DATASET
    )
    assert remote["README.md"].decode() == expected
    assert "PEFT's placeholder" not in remote["README.md"].decode()
    assert metadata_errors(expected, "model") == []  # the Hub's metadata rules


def test_an_adapter_of_the_vision_tower_is_refused(tmp_path: Path) -> None:
    run = _run(tmp_path, target_modules=["q_proj", "v_proj"])
    _edit(run / "training_summary.json", lambda s: s["lora"].update(target_modules="q_proj"))
    with pytest.raises(PublishError, match="would adapt the vision tower"):
        model_bundle(run, "o/m", "ORG/cropmark-disambiguator-s2")


def test_a_run_without_its_adapter_is_refused(tmp_path: Path) -> None:
    run = _run(tmp_path)
    (run / "adapter_model.safetensors").unlink()
    with pytest.raises(PublishError, match=r"lacks adapter_model\.safetensors"):
        model_bundle(run, "o/m", "ORG/cropmark-disambiguator-s2")


@pytest.mark.parametrize(
    "base", ["/tmp/tiny-lfm2-vl", "./tiny-lfm2-vl", "~/models/lfm", "C:\\models\\lfm", "lfm", "a--b/c..d"]
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
        ("evaluation.json", lambda e: e.update(dataset="local build at /srv/alice/cropmark/1.0.0")),
        ("evaluation.json", lambda e: e["models"][1].update(name="baseline from /home/bob/runs/b.json")),
        ("adapter_config.json", lambda c: c.update(revision="C:\\Users\\alice\\lfm")),
        ("training_summary.json", lambda s: s.update(note="file:///srv/alice/x")),
        ("training_summary.json", lambda s: s.update(per_file={"/home/alice/data/train": 767})),
        ("training_summary.json", lambda s: s.update(cmd="python train.py C:\\Users\\alice\\data")),
        ("training_summary.json", lambda s: s.update(x="C:/Users/alice/data")),
        ("training_summary.json", lambda s: s.update(x="../../home/alice/x")),
        ("training_summary.json", lambda s: s.update(argv=["--output-dir=/scratch/alice/lora"])),
        ("training_summary.json", lambda s: s.update(x="~/LFM")),
    ],
)
def test_a_path_of_this_machine_anywhere_in_a_sent_file_is_refused(
    tmp_path: Path, name: str, edit: Any
) -> None:
    run = _run(tmp_path)
    _edit(run / name, edit)
    with pytest.raises(PublishError, match=f"{re.escape(name)}.*: a path of this machine"):
        model_bundle(run, "o/m", "ORG/cropmark-disambiguator-s2")


def test_the_rendered_card_is_scanned_too() -> None:
    training, evaluation = _json(DATA / "training_summary.json"), _json(DATA / "evaluation.json")
    card = cards.model_card(training, evaluation, MODEL, DATASET)
    figures = run_figures(training, evaluation)
    # The project's own card passes: its 4-decimal figures (a recall of 0.7119, a learning rate of
    # 0.0002) are the run's measurements; without them, they have a coordinate decimal's shape.
    scan([LocalFile.from_bytes("README.md", card.encode())], allowed=figures)
    with pytest.raises(PublishError, match="high-precision decimal"):
        scan([LocalFile.from_bytes("README.md", card.encode())])
    leaked = card.replace(
        "## Evaluation", "## Evaluation\n\nScored on /srv/alice/cropmark/1.0.0 at 51.50740, -0.12780."
    )
    with pytest.raises(PublishError) as refused:
        scan([LocalFile.from_bytes("README.md", leaked.encode())], allowed=figures)
    assert "README.md:" in str(refused.value) and "a path of this machine (/srv…)" in str(refused.value)
    assert "coordinate pair-like string 51.5…" in str(refused.value)


def test_the_publishers_token_and_token_shaped_strings_are_refused_unprinted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    run = _run(tmp_path)
    _edit(run / "training_summary.json", lambda s: s.update(note=f"pushed with {TOKEN}"))
    with pytest.raises(PublishError, match=r"training_summary\.json\.note: holds your Hub token") as refused:
        model_bundle(run, "o/m", "ORG/cropmark-disambiguator-s2")
    assert TOKEN not in str(refused.value)
    other = "hf_" + "Abcdefghijklmnopqrstuvwxyz01234567"  # 34 letters and digits: a token's shape
    _edit(run / "training_summary.json", lambda s: s.update(note=f"pushed with {other}"))
    with pytest.raises(PublishError, match=r"holds a Hub access token \(hf_\*\*\*\)") as refused:
        model_bundle(run, "o/m", "ORG/cropmark-disambiguator-s2")
    assert other not in str(refused.value)
    _edit(run / "training_summary.json", lambda s: s.update(note="see myorg/hf_cropmarks"))  # not a token
    model_bundle(run, "o/m", "ORG/cropmark-disambiguator-s2")


def test_the_audits_patterns_apply_to_every_sent_text(tmp_path: Path) -> None:
    run = _run(tmp_path)
    _edit(
        run / "evaluation.json", lambda e: e.update(dataset="tiles around 51.50740, -0.12780 (June 14, 2021)")
    )
    with pytest.raises(PublishError) as refused:
        model_bundle(run, "o/m", "ORG/cropmark-disambiguator-s2")
    assert "coordinate pair-like string" in str(refused.value) and "-0.12780" not in str(refused.value)


def _bad_header(run: Path) -> None:
    blob = b"[1,2]"
    (run / "adapter_model.safetensors").write_bytes(struct.pack("<Q", len(blob)) + blob)
    _tie_evaluation(run)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda r: _edit(r / "adapter_config.json", lambda c: c.update(target_modules="model\\.((")),
            "not a regex",
        ),
        (lambda r: _edit(r / "adapter_config.json", lambda c: c.update(exclude_modules="((")), "not a regex"),
        (
            lambda r: _edit(r / "adapter_config.json", lambda c: c.update(target_modules=5)),
            "target_modules is 5",
        ),
        (lambda r: _edit(r / "adapter_config.json", lambda c: c.pop("target_modules")), "no target_modules"),
        (_bad_header, "is not a safetensors file (its header is not an object of tensors)"),
        (lambda r: (r / "adapter_model.safetensors").write_bytes(b""), "is not a safetensors file"),
        (lambda r: (r / "evaluation.json").write_bytes(b"\xff\xfe{}"), "is not UTF-8 text"),
        (
            lambda r: (r / "adapter_config.json").write_text("[1]"),
            "holds a JSON list; expected a JSON object",
        ),
        (lambda r: (r / "training_summary.json").write_text("{bad"), "is not JSON"),
        (lambda r: _edit(r / "training_summary.json", lambda s: s.update(release="x")), "'release' is 'x'"),
        (lambda r: _edit(r / "adapter_config.json", lambda c: c.update(r=4, lora_alpha=8)), "r is 4 but"),
        (lambda r: _edit(r / "adapter_config.json", lambda c: c.update(lora_alpha=8)), "lora_alpha is 8 but"),
        (lambda r: _edit(r / "adapter_config.json", lambda c: c.pop("lora_alpha")), "lora_alpha missing"),
        (
            lambda r: (
                (r / "evaluation.json").unlink()
                or os.symlink(DATA / "evaluation.json", r / "evaluation.json")
            ),
            "is not a regular file",
        ),
    ],
)
def test_a_malformed_run_folder_is_one_line_never_a_traceback(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], change: Callable[[Path], object], message: str
) -> None:
    run = _run(tmp_path)
    change(run)
    assert (
        _cli(
            "model",
            str(run),
            "--repo-id",
            MODEL,
            "--dataset-id",
            "ORG/cropmark-disambiguator-s2",
            "--dry-run",
        )
        == 2
    )
    assert message in _one_line_error(capfd)


def test_the_card_states_the_adapters_own_lora_settings(tmp_path: Path) -> None:
    run = _run(tmp_path)
    bundle = model_bundle(run, "o/m", "ORG/cropmark-disambiguator-s2")
    card = next(f for f in bundle.files if f.path == "README.md").source
    assert isinstance(card, bytes)
    config = _json(run / "adapter_config.json")
    assert (
        f"| rank | {config['r']} |" in card.decode()
        and f"| alpha | {config['lora_alpha']} |" in card.decode()
    )


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


# -- what the model card claims, read from the Hub ------------------------------------------------


def test_the_dataset_the_card_names_must_hold_the_train_split_the_model_saw(
    hub: HubServer, dataset: BuildResult, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    local_build = {**_release_record(dataset.release), "hub_id": None}
    run = _run(tmp_path, release=local_build)
    # A dataset that does not exist on the Hub.
    assert _cli("model", str(run), "--repo-id", MODEL, "--dataset-id", f"{ORG}/no-such-dataset") == 2
    line = _one_line_error(capfd)
    assert f"cannot read the base model {BASE} and dataset {ORG}/no-such-dataset from the Hub" in line
    assert "publish them first" in line
    # A dataset that exists but holds other tiles (the summary's digest is another release's).
    _edit(run / "training_summary.json", lambda s: s["release"].update(train_metadata_sha256="0" * 64))
    assert _cli("model", str(run), "--repo-id", MODEL, "--dataset-id", DATASET) == 2
    line = _one_line_error(capfd)
    assert f"{DATASET} at main does not hold the train split the adapter was trained on" in line
    assert ("model", MODEL) not in hub.state.repos
    # The dataset it was trained on (a local build of the same release): published.
    _edit(run / "training_summary.json", lambda s: s.update(release=local_build))
    assert _cli("model", str(run), "--repo-id", MODEL, "--dataset-id", DATASET) == 0


def test_a_base_model_that_is_not_a_public_model_on_the_hub_is_refused(
    hub: HubServer, dataset: BuildResult, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run = _run(tmp_path, release=_release_record(dataset.release))
    nobody = "nobody/no-such-model"
    _edit(run / "adapter_config.json", lambda c: c.update(base_model_name_or_path=nobody))
    _edit(run / "training_summary.json", lambda s: s.update(base_model=nobody))
    _edit(run / "evaluation.json", lambda e: e["models"][0].update(base_model=nobody))
    assert _cli("model", str(run), "--repo-id", MODEL) == 2
    assert (
        "the adapter's base model nobody/no-such-model is not a public model on the Hub"
        in _one_line_error(capfd)
    )
    hub.add_repo("model", "nobody/no-such-model", {"config.json": b"{}"}, private=True)  # private: the same
    assert _cli("model", str(run), "--repo-id", MODEL) == 2
    assert "is not a public model on the Hub" in _one_line_error(capfd)
    assert ("model", MODEL) not in hub.state.repos


def test_a_dry_run_without_the_hub_says_the_claims_were_not_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    run = _run(tmp_path)
    assert (
        _cli(
            "model",
            str(run),
            "--repo-id",
            MODEL,
            "--dataset-id",
            "ORG/cropmark-disambiguator-s2",
            "--dry-run",
        )
        == 0
    )
    out = capfd.readouterr().out
    assert (
        f"cannot read the base model {BASE} and dataset ORG/cropmark-disambiguator-s2 at the revision" in out
    )
    assert "not checked in a dry run" in out and "dry run: nothing was written" in out


@pytest.mark.parametrize("bad", ["myorg/lora-", "myorg/a--b", "myorg/a..b", "myorg/x.git", "m/" + "x" * 97])
def test_repo_ids_huggingface_hub_refuses_are_one_line_on_every_entry_point(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], bad: str
) -> None:
    run = _run(tmp_path)
    space = _space(tmp_path)
    for argv in (
        ["publish", "model", str(run), "--repo-id", bad, "--dry-run"],
        ["publish", "model", str(run), "--repo-id", MODEL, "--dataset-id", bad, "--dry-run"],
        ["publish", "space", str(space), "--repo-id", SPACE, "--model-id", bad, "--baseline", "b.json"],
        [
            "build",
            "--corpus",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
            "--version",
            "1.0.0",
            "--repo-id",
            bad,
        ],
        ["card", "space", "--model-id", bad, "--dataset-id", DATASET],
    ):
        assert main(argv) == 2
        assert f"{bad!r} is not a Hub id ORG/NAME" in _one_line_error(capfd)


def test_the_repo_id_rule_is_huggingface_hubs() -> None:
    """The one validator agrees with huggingface_hub's validate_repo_id on ORG/NAME strings."""
    import random

    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    from builder.domain import hub_id_problem

    rng = random.Random(0)
    alphabet = "abAB09_-./é "
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10)))
        try:
            validate_repo_id(text)
            valid = text.count("/") == 1
        except HFValidationError:
            valid = False
        assert (hub_id_problem(text) is None) == valid, text
    assert hub_id_problem("o/" + "x" * 96) is None and hub_id_problem("o/" + "x" * 97) is not None


# -- the Space ------------------------------------------------------------------------------------


APP = "import gradio as gr\nimport numpy as np\nfrom builder.model.prompt import LABELS, PROMPT\n"


def _space(tmp_path: Path, app: str = APP, requirements: str | None = None) -> Path:
    space = tmp_path / "space"
    space.mkdir(exist_ok=True)
    (space / "app.py").write_text(app)
    gradio = cards.SPACE_GRADIO
    (space / "requirements.txt").write_text(requirements or f"gradio=={gradio}\nnumpy==2.3.4\n")
    return space


@pytest.fixture
def baseline(small_release: Path, tmp_path: Path) -> Path:
    """The physics baseline fitted on the small release (no torch needed)."""
    assert main(["baseline", str(small_release), "--out", str(tmp_path / "baseline"), "--quiet"]) == 0
    return tmp_path / "baseline" / "baseline.json"


@pytest.fixture
def published(hub: HubServer, dataset: BuildResult, tmp_path: Path) -> dict[str, Any]:
    """The dataset (the small release), a model trained on it and its baseline, on the local Hub."""
    run = _run(tmp_path, release=_release_record(dataset.release))
    assert _cli("model", str(run), "--repo-id", MODEL, "--no-tag") == 0
    assert main(["baseline", str(dataset.release), "--out", str(tmp_path / "bl"), "--quiet"]) == 0
    return {"release": dataset, "run": run, "baseline": tmp_path / "bl" / "baseline.json"}


def test_space_publish_ships_the_ids_the_pinned_revisions_the_baseline_and_the_modules_app_imports(
    hub: HubServer, published: dict[str, Any], tmp_path: Path
) -> None:
    space = _space(tmp_path)
    (space / "helper.py").write_text("VALUE = 1\n")
    (space / "app.py").write_text(APP + "import helper\n")
    args = ("space", str(space), "--repo-id", SPACE, "--baseline", str(published["baseline"]))
    assert _cli(*args) == 0
    remote = _remote(hub, "space", SPACE)
    assert sorted(remote) == [
        "README.md",
        "app.py",
        "baseline.json",
        "builder/__init__.py",
        "builder/domain.py",
        "builder/model/__init__.py",
        "builder/model/prompt.py",
        "cropmark_space.json",
        "helper.py",
        "requirements.txt",
    ]
    config = json.loads(remote["cropmark_space.json"])
    # The base model is read from the published adapter: the Space loads what fits it; the adapter
    # and the dataset are pinned to the commits they were published at.
    assert config == {
        "schema": "cropmark-space/2",
        "base_model": BASE,
        "adapter": MODEL,
        "adapter_revision": hub.repo("model", MODEL).branches["main"],
        "dataset": DATASET,
        "dataset_revision": hub.repo("dataset", DATASET).branches["main"],
        "baseline": "baseline.json",
    }
    assert remote["baseline.json"] == published["baseline"].read_bytes()
    readme = remote["README.md"].decode()
    assert "sdk: gradio" in readme and f"sdk_version: {cards.SPACE_GRADIO}" in readme
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


def _private_composite(corpus: Path, to: Path) -> None:
    to.mkdir(parents=True, exist_ok=True)
    source = sorted((corpus / "composites").glob("*.png"))[0]
    shutil.copy(source, to / "site_2021-06-14_51.50740_-0.12780.png")  # both halves, Mapbox's included
    image = Image.open(source).convert("RGB")
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 12.5), 3: "W", 4: (1.0, 5.0, 3.2)}  # GPS
    image.crop((0, 0, 256, 512)).save(to / "tile.jpg", exif=exif)


def test_space_publish_sends_an_allow_list_never_the_folder(
    hub: HubServer,
    published: dict[str, Any],
    small_corpus: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    space = _space(tmp_path)
    _private_composite(small_corpus, space / "examples")
    (space / "settings.json").write_text(json.dumps({"hf_token": TOKEN}))
    (space / "notes.txt").write_text("site visit 14 June 2021 at 51.50740, -0.12780\n")
    (space / ".env").write_text(f"HF_TOKEN={TOKEN}\n")
    args = ("space", str(space), "--repo-id", SPACE, "--baseline", str(published["baseline"]))
    assert _cli(*args) == 2
    line = _one_line_error(capfd)
    assert "example tiles refused: examples/site_2021…_51.5….png: metadata in image" in line
    assert "examples/site_2021…_51.5….png: PNG RGB 512x512; expected an RGB JPEG" in line
    assert "51.50740" not in line and "0.12780" not in line  # a site name is never printed in full
    assert "examples/tile.jpg: metadata in image" in line and "not a tile of the published dataset" in line
    assert ("space", SPACE) not in hub.state.repos
    shutil.rmtree(space / "examples")
    # Example tiles byte for byte from the published dataset are fine.
    (space / "examples").mkdir()
    tiles = sorted((published["release"].release / "data" / "eval").glob("*.jpg"))[:2]
    for tile in tiles:
        shutil.copy(tile, space / "examples" / tile.name)
    # A published tile under a name that holds a place or a date is refused: names are published too.
    shutil.copy(tiles[0], space / "examples" / "site_51.50740_-0.12780.jpg")
    assert _cli(*args) == 2
    line = _one_line_error(capfd)
    assert "the name examples/site_51.5….jpg: coordinate pair-like" in line
    assert "51.50740" not in line and "0.12780" not in line and ("space", SPACE) not in hub.state.repos
    (space / "examples" / "site_51.50740_-0.12780.jpg").unlink()
    assert _cli(*args) == 0
    out = capfd.readouterr().out
    remote = _remote(hub, "space", SPACE)
    assert {f"examples/{t.name}" for t in tiles} <= set(remote)
    assert not {".env", "settings.json", "notes.txt"} & set(remote)
    assert "not sent (3 file(s)" in out and "settings.json" in out and "notes.txt" in out
    assert not any(TOKEN.encode() in data for data in remote.values())


def test_a_token_in_the_spaces_code_is_refused_and_never_printed(
    hub: HubServer, published: dict[str, Any], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    space = _space(tmp_path, APP + f"# pushed with {TOKEN}\n")
    args = ("space", str(space), "--repo-id", SPACE, "--baseline", str(published["baseline"]))
    assert _cli(*args) == 2
    assert "app.py:4: holds your Hub token" in _one_line_error(capfd)
    assert ("space", SPACE) not in hub.state.repos


def test_a_space_for_a_model_or_dataset_a_reader_without_token_cannot_read_is_refused(
    hub: HubServer, published: dict[str, Any], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    args = ("space", str(_space(tmp_path)), "--repo-id", SPACE, "--baseline", str(published["baseline"]))
    hub.repo("model", MODEL).private = True
    assert _cli(*args) == 2
    line = _one_line_error(capfd)
    assert f"{MODEL} cannot be read without a token (private or gated), and a Space has no token" in line
    assert "--private-sources" in line and ("space", SPACE) not in hub.state.repos
    hub.repo("model", MODEL).private = False
    hub.repo("dataset", DATASET).gated = "auto"
    assert _cli(*args) == 2
    assert f"{DATASET} cannot be read without a token" in _one_line_error(capfd)
    assert _cli(*args, "--private-sources") == 0
    out = capfd.readouterr().out
    assert f"{DATASET} need a token: add a read token as the secret HF_TOKEN in the Space's settings" in out


def test_reading_the_spaces_model_is_retried(
    hub: HubServer, published: dict[str, Any], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # hf_hub_download asks again at once, once, when the HEAD of a file it has not cached fails
    # (file_download.hf_hub_download, "No local file found. Retrying.."): two 502s fail an attempt.
    hub.inject(Fault("HEAD", r"/resolve/.*/adapter_config\.json", status=502, times=2))
    args = ("space", str(_space(tmp_path)), "--repo-id", SPACE, "--baseline", str(published["baseline"]))
    assert _cli(*args) == 0
    out = capfd.readouterr().out
    assert "attempt 1 failed (HTTP 502: an HTML error page (no title)); retrying in 0.01 s" in out  # a HEAD
    hub.stats.reset()
    hub.inject(Fault("HEAD", r"/resolve/.*/adapter_config\.json", status=502, times=99))
    assert _cli(*args, "--attempts", "2") == 2
    heads = [r for r in hub.stats.requests if r[0] == "HEAD" and r[1].endswith("/adapter_config.json")]
    assert [r[2] for r in heads] == [502] * 4  # 2 attempts, no backoff of huggingface_hub's own
    line = _one_line_error(capfd)
    assert (
        f"cannot read the Space's model {MODEL} and dataset {DATASET} from the Hub after 2 attempt(s)" in line
    )
    assert "check the network" in line


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[1]", "holds a JSON list; expected a JSON object"),
        (b"{bad", "is not JSON"),
        (b'{"base_model_name_or_path": 5}', "names no usable base model"),
    ],
)
def test_a_bad_adapter_config_on_the_hub_is_named_not_taken_for_a_network_problem(
    hub: HubServer,
    published: dict[str, Any],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    content: bytes,
    message: str,
) -> None:
    hub.commit_file("model", MODEL, "adapter_config.json", content)
    args = ("space", str(_space(tmp_path)), "--repo-id", SPACE, "--baseline", str(published["baseline"]))
    assert _cli(*args) == 2
    line = _one_line_error(capfd)
    assert f"{MODEL}'s adapter_config.json on the Hub" in line and message in line
    assert "network" not in line and ("space", SPACE) not in hub.state.repos


def test_a_space_whose_baseline_was_fitted_on_other_data_is_refused(
    hub: HubServer, published: dict[str, Any], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # The small release has the published release's train split; make the baseline claim another one.
    _edit(published["baseline"], lambda b: b["release"].update(train_metadata_sha256="0" * 64))
    args = ("space", str(_space(tmp_path)), "--repo-id", SPACE, "--baseline", str(published["baseline"]))
    assert _cli(*args) == 2
    line = _one_line_error(capfd)
    assert "the baseline was not fitted on cropmark-org/cropmark-disambiguator-s2 as published" in line
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
    config = space_config(BASE, MODEL, DATASET, *REVS)
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
    config = space_config(BASE, MODEL, DATASET, *REVS)
    with pytest.raises(PublishError, match=re.escape(message)):
        space_bundle(space, ROOT, "T", config, baseline)
