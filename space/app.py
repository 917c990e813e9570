"""Cropmark Disambiguator: the Gradio Space that serves the fine-tuned model.

Upload a Sentinel-2 false-colour tile (or a 512x512 composite, cut to its
Sentinel-2 half) and get the fine-tuned model's Yes/No probability, the physics
baseline's verdict, NDVI- and NDRE-like proxy maps and a short explanation.

The prompt, the scoring and the baseline are the project's own
(``builder.model``): the same code as ``scripts/evaluate.py``. ``scripts/publish.py
space`` sends an allow-list, never this whole folder: this file, ``requirements.txt``,
the project modules this file imports, the README, ``baseline.json``,
``cropmark_space.json``, and tiles under ``examples/`` only when each is a tile of the
published dataset; every text is scanned for leaks and tokens first.

What it serves: ``cropmark_space.json`` beside this file, written by
``scripts/publish.py space`` (base model, adapter and dataset ids, the revisions the
adapter and the dataset were published at, which are the ones loaded, and the baseline
file shipped beside it), so a published Space serves the model it was published for.
Without that file (a checkout), the base model is LiquidAI/LFM2.5-VL-450M with no
adapter and no dataset; a file that cannot be read counts as absent, and the status
line says so. Environment variables override either:

Environment (all optional):
    CROPMARK_BASE_MODEL  base model id or folder; ``tiny`` serves the seeded tiny
                         random test model
    CROPMARK_ADAPTER     LoRA adapter id or folder ("" for none)
    CROPMARK_ADAPTER_REVISION  the adapter's revision (commit or tag; "" for main)
    CROPMARK_BASELINE    baseline.json of the physics baseline
    CROPMARK_EXAMPLES    folder of example tiles (default: examples/ beside app.py,
                         else a few eval tiles of CROPMARK_DATASET from the Hub)
    CROPMARK_DATASET     the dataset id the examples come from
    CROPMARK_DATASET_REVISION  the dataset's revision ("" for main)
    CROPMARK_CONCURRENCY requests scored at once (default 2; CPU Spaces have 2 cores)
    CROPMARK_MAX_MB      upload limit in MB (default 10)
    HF_TOKEN             a read token, only if the adapter or the dataset is private or
                         gated (set it as a Space secret)
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# On the Space, builder/ sits beside app.py; in the repository, one level up.
for root in (HERE, HERE.parent):
    if (root / "builder").is_dir() and str(root) not in sys.path:
        sys.path.insert(0, str(root))

import gradio as gr  # noqa: E402
import torch  # noqa: E402

from builder.errors import CropmarkError  # noqa: E402
from builder.model import baseline as physics  # noqa: E402
from builder.model.scoring import VlmScorer, load_scorer  # noqa: E402
from builder.model.tiny import is_tiny, write_tiny_lfm2_vl  # noqa: E402
from builder.model.upload import UploadError, proxy_maps, read_upload  # noqa: E402


def published_config() -> dict[str, str]:
    """What to serve: ``cropmark_space.json``, then the environment (see the module docstring).

    ``problem`` is empty, or says why ``cropmark_space.json`` could not be read (the Space
    then starts on the defaults and its status line says so).
    """
    config = {
        "base_model": "LiquidAI/LFM2.5-VL-450M",
        "adapter": "",
        "adapter_revision": "",
        "dataset": "",
        "dataset_revision": "",
        "baseline": "baseline.json",
    }
    problem = ""
    path = HERE / "cropmark_space.json"
    if path.is_file():
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(found, dict):
                raise ValueError(f"it holds a JSON {type(found).__name__}, not an object")
            values = {key: found[key] for key in config if key in found}
            if not all(isinstance(value, str) for value in values.values()):
                raise ValueError("a value is not a string")
            config |= values
        except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            problem = (
                f"cropmark_space.json could not be read ({str(exc)[:120]}), so this Space serves "
                f"{config['base_model']} without the adapter it was published for; publish it again."
            )
    config["baseline"] = str(HERE / config["baseline"])
    served = {key: os.environ.get(f"CROPMARK_{key.upper()}", value) for key, value in config.items()}
    return {**served, "problem": problem}


CONFIG = published_config()
BASE_MODEL, ADAPTER, DATASET = CONFIG["base_model"], CONFIG["adapter"], CONFIG["dataset"]
ADAPTER_REVISION, DATASET_REVISION = CONFIG["adapter_revision"] or None, CONFIG["dataset_revision"] or None
BASELINE = Path(CONFIG["baseline"])
EXAMPLES = Path(os.environ.get("CROPMARK_EXAMPLES", str(HERE / "examples")))
CONCURRENCY = max(1, int(os.environ.get("CROPMARK_CONCURRENCY", "2")))
MAX_BYTES = int(float(os.environ.get("CROPMARK_MAX_MB", "10")) * 2**20)
LOAD_WAIT_S = 120.0

DISCLAIMER = (
    "Results are **candidates for verification** by archaeologists and heritage agencies, "
    "never a find and never a reason to dig, detect or trespass: heritage law protects these "
    "sites, and most countries forbid disturbing them. Labels of the training data record where "
    "sites are known, not what is visible on the day."
)


def pinned_adapter() -> str:
    """The adapter to load: a Hub id is downloaded at the revision it was published at."""
    if not ADAPTER or Path(ADAPTER).exists():
        return ADAPTER
    from huggingface_hub import snapshot_download

    try:
        return str(snapshot_download(ADAPTER, revision=ADAPTER_REVISION))
    except Exception as exc:  # the Hub client raises many kinds; all mean "cannot load it"
        at = f" at {ADAPTER_REVISION[:12]}" if ADAPTER_REVISION else ""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CropmarkError(f"adapter {ADAPTER}{at} could not be downloaded ({first})") from None


class Models:
    """The VLM and the baseline, loaded once in a background thread."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.scorer: VlmScorer | None = None
        self.baseline: physics.Baseline | None = None
        self.status = f"Loading {BASE_MODEL} and its adapter..."

    def load(self) -> None:
        notes = [CONFIG["problem"]] if CONFIG["problem"] else []
        try:
            self.baseline = physics.load(BASELINE)
        except CropmarkError as exc:
            notes.append(f"No physics baseline: {exc}.")
        try:
            if BASE_MODEL == "tiny":
                raise CropmarkError("the tiny test model was asked for")
            self.scorer = load_scorer(
                BASE_MODEL, pinned_adapter() or None, device=os.environ.get("CROPMARK_DEVICE", "cpu")
            )
            if is_tiny(BASE_MODEL):
                notes.insert(
                    0, "**Test mode**: the VLM is a tiny random test model; its verdicts mean nothing."
                )
            else:
                pinned = f" at {ADAPTER_REVISION[:12]}" if ADAPTER and ADAPTER_REVISION else ""
                notes.insert(0, f"Model: {BASE_MODEL} + {ADAPTER or 'no adapter'}{pinned}.")
        except CropmarkError as exc:
            tiny = write_tiny_lfm2_vl(Path(tempfile.gettempdir()) / "cropmark-tiny-lfm2-vl", seed=0)
            self.scorer = load_scorer(str(tiny), device="cpu")
            notes.insert(
                0,
                f"**Offline test mode**: {exc}. The VLM column shows a tiny random test model, "
                "whose verdicts mean nothing; the physics baseline is real.",
            )
        self.status = " ".join(notes)
        self.ready.set()

    def p_yes(self, tile: Any) -> float:
        assert self.scorer is not None
        return float(self.scorer.p_yes([tile.image], batch_size=1)[0])


MODELS = Models()


def example_tiles() -> list[str]:
    """Example tiles: a local folder, else three Yes and three No eval tiles of the dataset."""
    if EXAMPLES.is_dir():
        return sorted(str(p) for p in EXAMPLES.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:8]
    try:
        from huggingface_hub import hf_hub_download

        pinned = {"repo_type": "dataset", "revision": DATASET_REVISION}
        metadata = hf_hub_download(DATASET, "data/eval/metadata.csv", **pinned)
        with open(metadata, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        picked = [r for r in rows if r["label"] == "Yes"][:3] + [r for r in rows if r["label"] == "No"][:3]
        return [hf_hub_download(DATASET, f"data/eval/{r['file_name']}", **pinned) for r in picked]
    except Exception:  # offline or no such dataset: the page works without examples
        return []


def _verdict(p: float) -> dict[str, float]:
    return {"Yes": round(p, 4), "No": round(1.0 - p, 4)}


def predict(upload: str | None) -> tuple[dict[str, float], dict[str, float] | None, Any, str]:
    """Score one upload: VLM verdict, baseline verdict, proxy maps, explanation."""
    if upload is None:
        raise gr.Error("Upload a tile or pick an example first.")
    try:
        tile = read_upload(upload, MAX_BYTES)
    except UploadError as exc:
        raise gr.Error(str(exc)) from None
    if not MODELS.ready.wait(timeout=LOAD_WAIT_S):
        raise gr.Error("The model is still loading; try again in a minute.")
    p = MODELS.p_yes(tile)
    lines = [tile.note, f"The fine-tuned model's P(Yes) is {p:.3f}: **{'Yes' if p >= 0.5 else 'No'}**."]
    baseline = None
    if MODELS.baseline is not None:
        pb = MODELS.baseline.p_yes_tile(tile.rgb)
        baseline = _verdict(pb)
        lines.append(
            f"The physics baseline (logistic regression on the proxy maps' statistics) says "
            f"**{'Yes' if pb >= 0.5 else 'No'}** ({pb:.3f})."
        )
    lines.append(DISCLAIMER)
    return _verdict(p), baseline, proxy_maps(tile.rgb), "\n\n".join(lines)


def status() -> str:
    """The loading status shown at the top of the page."""
    return MODELS.status


def build() -> gr.Blocks:
    with gr.Blocks(title="Cropmark Disambiguator") as demo:
        gr.Markdown(
            "# Cropmark Disambiguator\n"
            "Does a Sentinel-2 tile of farmland show **cropmark stress from buried archaeology** "
            "(ring ditches, enclosures, linear features)? Upload a false-colour tile "
            "(R = B08 NIR, G = B04 red, B = B05 red edge; 256x512 px) or a 512x512 composite "
            "(its right half is ignored). A fine-tuned LFM2.5-VL answers Yes/No with a probability, "
            "beside a simple physics baseline.\n\n" + DISCLAIMER
        )
        status_box = gr.Markdown(MODELS.status, elem_id="status")
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Sentinel-2 tile (JPEG/PNG)", type="filepath", elem_id="upload")
                button = gr.Button("Score the tile", variant="primary", elem_id="score")
                examples = example_tiles()
                if examples:
                    gr.Examples(
                        examples=[[e] for e in examples], inputs=[upload], label="Tiles of the dataset"
                    )
            with gr.Column():
                vlm = gr.Label(label="Fine-tuned model", num_top_classes=2, elem_id="vlm")
                base = gr.Label(label="Physics baseline", num_top_classes=2, elem_id="baseline")
        maps = gr.Image(label="NDVI- and NDRE-like proxies", type="pil", elem_id="maps")
        explanation = gr.Markdown(elem_id="explanation")
        button.click(predict, inputs=[upload], outputs=[vlm, base, maps, explanation], api_name="predict")
        # The status is read when the page opens, then every second until the models are ready.
        timer = gr.Timer(1.0)
        demo.load(status, outputs=[status_box], api_name=False, queue=False)
        timer.tick(
            lambda: (status(), gr.Timer(active=not MODELS.ready.is_set())),
            outputs=[status_box, timer],
            api_name=False,
            queue=False,
        )
        gr.Button(visible=False).click(status, outputs=[status_box], api_name="status", queue=False)
    return demo


def main() -> None:
    # CPU-friendly: share the cores between the requests scored at once.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // CONCURRENCY))
    threading.Thread(target=MODELS.load, name="load-models", daemon=True).start()
    demo = build()
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64)
    demo.launch(
        max_file_size=4 * MAX_BYTES,  # gradio's hard stop; read_upload answers above MAX_BYTES
        allowed_paths=[str(EXAMPLES)] if EXAMPLES.is_dir() else None,
    )


if __name__ == "__main__":
    main()
