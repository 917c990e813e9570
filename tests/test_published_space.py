"""End to end through the local Hub: publish the dataset, the model and the Space, download the
Space into an empty folder, run its app.py in a fresh process, and call it with gradio_client.

The base model is the seeded tiny LFM2-VL, itself published to the local Hub under a Hub id, so
the whole chain runs the code users run: training and evaluation on Hub ids (in fresh processes,
with ``HF_ENDPOINT`` set and Xet left at huggingface_hub's default), the publish gates, and the
Space loading what its ``cropmark_space.json`` names.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")
pytest.importorskip("gradio")

from gradio_client import handle_file

from builder.cli import main
from builder.model import baseline as physics
from builder.model import data
from builder.model.scoring import load_scorer
from builder.release.build import BuildConfig, build
from tests.hub import ORG, TOKEN
from tests.hub.server import HubServer
from tests.space_server import client as space_client
from tests.space_server import run_space

ROOT = Path(__file__).resolve().parent.parent
DATASET, MODEL, SPACE = f"{ORG}/cropmark-disambiguator-s2", f"{ORG}/cropmark-lora", f"{ORG}/cropmark-space"
TINY = f"{ORG}/tiny-lfm2-vl"
P_YES = r"TEST MODEL's P\(Yes\) is ([0-9.]+): \*\*(Yes|No)\*\*"


def _env(hub: HubServer, home: Path) -> dict[str, str]:
    """A user's environment: the endpoint and a token, a fresh cache, Xet at its default."""
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN, "HF_HOME": str(home)}
    for name in ("HF_HUB_DISABLE_XET", "HF_HUB_OFFLINE"):
        env.pop(name, None)
    return env


def _cropmark(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "builder.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_published_space_serves_the_published_adapter_and_baseline(
    hub: HubServer, small_corpus: Path, tiny_model: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.url, token=TOKEN)
    env = _env(hub, tmp_path / "hf-home-user")

    # 1. The dataset, through its gate.
    release = build(BuildConfig(small_corpus, tmp_path / "build", "1.0.0", repo_id=DATASET)).release
    assert main(["publish", "dataset", str(release), "--repo-id", DATASET]) == 0
    # 2. The base model under a Hub id (the tiny stand-in for LiquidAI/LFM2.5-VL-450M).
    api.create_repo(TINY)
    api.upload_folder(repo_id=TINY, folder_path=tiny_model)

    # 3. Train, evaluate and fit the baseline on the dataset's Hub id, as a user would.
    assert main(["sft", DATASET, "--out", str(tmp_path / "sft")]) == 0
    rows = (tmp_path / "sft" / "train.jsonl").read_text().splitlines()
    assert [json.loads(r) for r in rows] == list(data.sft_rows(release, "train"))
    run, bl = tmp_path / "run", tmp_path / "baseline"
    config = tmp_path / "lora.yaml"
    config.write_text("learning_rate: 0.005\nbatch_size: 4\ngradient_accumulation: 1\nlora_dropout: 0.0\n")
    _cropmark(env, "train", DATASET, "--config", str(config), "--base-model", TINY, "--output-dir", str(run),
              "--max-steps", "4", "--quiet")  # fmt: skip
    _cropmark(
        env, "evaluate", DATASET, "--out", str(run), "--base-model", TINY, "--adapter", str(run), "--quiet"
    )
    _cropmark(env, "baseline", DATASET, "--out", str(bl), "--quiet")
    summary = json.loads((run / "training_summary.json").read_text())
    assert summary["release"]["hub_id"] == DATASET and summary["halves"] == ["sentinel-2"]

    # 4. Publish the run and the Space; the Space's base model is read from the published adapter.
    assert (
        main(["publish", "model", str(run), "--repo-id", MODEL, "--dataset-id", DATASET, "--tag", "v1"]) == 0
    )
    card = hub.files("model", MODEL)["README.md"].decode()
    assert f"[{DATASET}](https://huggingface.co/datasets/{DATASET}) at" in card
    # The figures are the tiny model's: the card says so above them and in the table's row.
    assert "> **TEST MODEL: a tiny random test model, random weights; its predictions mean nothing" in card
    assert "| tiny-lfm2-vl + LoRA (TEST MODEL: a tiny random test model" in card
    args = ["publish", "space", str(ROOT / "space"), "--repo-id", SPACE, "--model-id", MODEL]
    assert main([*args, "--dataset-id", DATASET, "--baseline", str(bl / "baseline.json")]) == 0
    out = capfd.readouterr().out
    assert f"published space {SPACE}" in out

    # 5. Download the Space into an empty folder and run its app.py in a fresh process.
    folder = Path(api.snapshot_download(SPACE, repo_type="space", local_dir=tmp_path / "downloaded"))
    pinned = api.model_info(MODEL).sha
    assert pinned is not None
    config = json.loads((folder / "cropmark_space.json").read_text())
    assert config["base_model"] == TINY and config["adapter_revision"] == pinned
    # The model moves on after the Space was published: the Space still serves the pinned commit.
    moved = hub.commit_file(
        "model", MODEL, "adapter_config.json", b'{"base_model_name_or_path": "other/model"}'
    )
    assert moved != pinned
    with run_space(
        # A fresh cache and no token: the Space downloads everything it serves, as on the Hub.
        {
            "HF_ENDPOINT": hub.url,
            "HF_HOME": str(tmp_path / "hf-home-space"),
            "HF_TOKEN": "",
            "CROPMARK_DEVICE": "cpu",
        },
        tmp_path / "space.log",
        app=folder / "app.py",
        offline=False,
    ) as (url, _process):
        client = space_client(url)
        status = client.predict(api_name="/status")
        # It serves the published model at its pinned revision; that model is the tiny one, and
        # the page says so.
        served = f"{TINY} + {MODEL} at {pinned[:12]}"
        assert f"**Test mode**: the VLM ({served}) is a tiny random test model" in status, status
        scorer = load_scorer(str(tiny_model), run, device="cpu")
        fitted = physics.load(bl / "baseline.json")
        examples = data.examples(release, "eval")
        for label in ("Yes", "No"):
            tile = next(e for e in examples if e.label == label).path
            marker, vlm, baseline, _scored, text = client.predict(handle_file(str(tile)), api_name="/predict")
            rgb = np.asarray(Image.open(tile).convert("RGB"))
            expected = float(scorer.p_yes([Image.fromarray(rgb)])[0])
            match = re.search(P_YES, text)
            assert match is not None, text
            assert float(match.group(1)) == pytest.approx(expected, abs=1e-3)
            assert vlm["label"] == ("Yes" if expected >= 0.5 else "No") + " (TEST MODEL)"
            assert "TEST MODEL" in marker and "random weights" in marker
            pb = fitted.p_yes_tile(rgb)
            assert baseline["label"] == ("Yes" if pb >= 0.5 else "No")
            confidences = {c["label"]: c["confidence"] for c in baseline["confidences"]}
            assert confidences["Yes"] == pytest.approx(pb, abs=0.01)
        # The adapter changes the base model's answers: the Space serves the adapter, not the base alone.
        base_only = float(
            load_scorer(str(tiny_model), device="cpu").p_yes([Image.open(tile).convert("RGB")])[0]
        )
        assert abs(base_only - expected) > 1e-3
