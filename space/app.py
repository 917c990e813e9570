r"""Cropmark Disambiguator: the Gradio Space that serves the fine-tuned model.

Upload a Sentinel-2 false-colour tile (or a 512x512 composite, cut to its
Sentinel-2 half) and get the fine-tuned model's Yes/No probability, the physics
baseline's verdict, NDVI- and NDRE-like proxy maps and a short explanation.

The prompt, the scoring and the baseline are the project's own
(``builder.model``): the same code as ``scripts/evaluate.py``. ``scripts/publish.py
space`` sends an allow-list, never this whole folder: this file, ``requirements.txt``,
the project modules this file imports, the README, ``baseline.json``,
``cropmark_space.json``, and tiles under ``examples/`` only when each is a tile of the
published dataset; every text is scanned for leaks and tokens first.

Loading: the base model and its adapter load once, in a background thread; the
page shows the status. If that fails in any way (a missing or corrupt file, no
network, any exception), or takes longer than ``CROPMARK_LOAD_TIMEOUT_S``, the
Space falls back to the seeded tiny random test model, written to a folder of
its own process, and says so on the page and on every verdict.

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
    CROPMARK_EXAMPLES    folder of example tiles, labelled by its metadata.csv (default:
                         examples/ beside app.py, else a few eval tiles of CROPMARK_DATASET
                         from the Hub)
    CROPMARK_DATASET     the dataset id the examples come from
    CROPMARK_DATASET_REVISION  the dataset's revision ("" for main)
    CROPMARK_CONCURRENCY requests scored at once (default 2; CPU Spaces have 2 cores)
    CROPMARK_MAX_MB      upload limit in MiB (default 10), enforced by Gradio and by the app
    CROPMARK_LOAD_TIMEOUT_S  seconds the model may take to load before the fallback (default 300)
    CROPMARK_DEVICE      torch device of the model (default cpu)
    HF_TOKEN             a read token, only if the adapter or the dataset is private or
                         gated (set it as a Space secret)

Calling the Space from Python (``gradio_client``): make one ``Client`` with one SSL
context, and reuse it for every tile::

    import httpx
    from gradio_client import Client, handle_file

    space = Client("OWNER/SPACE", ssl_verify=httpx.create_ssl_context())
    marker, vlm, baseline, picture, explanation = space.predict(handle_file("tile.jpg"), api_name="/predict")

``vlm`` and ``baseline`` are Label values (``{"label": "Yes", "confidences": [...]}``;
``baseline`` is ``{}`` when the Space has no physics baseline, as its status says),
``picture`` is the downloaded JPEG of what was scored beside its proxy maps (``Client(...,
download_files=False)`` skips that download and returns the Space's file record, its
``path`` and ``url``, instead), and ``explanation`` is the page's Markdown text. A bad
upload raises ``gradio_client.exceptions.AppError`` with the page's message.

Why the SSL context: gradio_client (2.7) opens a new httpx client for each step of a call
(the upload, the queue join, the event stream, the picture's download), and each new httpx
client given ``verify=True`` (gradio_client's default ``ssl_verify``) reads certifi's whole
CA bundle into a new SSL context, even for a plain ``http://`` address. gradio_client
passes ``ssl_verify`` unchanged to httpx as ``verify``, which also takes a ready
``ssl.SSLContext``; ``httpx.create_ssl_context()`` is the context ``verify=True`` builds
(certifi, or ``SSL_CERT_FILE``), so certificates are checked exactly as by default, and
the bundle is read once. One ``Client`` for many calls also fetches the Space's config and
API description once and keeps one heartbeat stream. ``benchmarks/bench_space.py`` measures
a call both ways against the same work in-process (figures in ``benchmarks/RESULTS.md``).

From any language, or without gradio_client's own wait (it checks for the Space's messages
in 50 ms steps, ``gradio_client/utils.py`` in 2.7, which is most of what a fast call costs
beyond the page's): Gradio's HTTP API, three requests::

    curl -s -F "files=@tile.jpg" https://OWNER-SPACE.hf.space/gradio_api/upload
    # -> ["UPLOADED"]: the path the Space stored the tile under, for the next request
    curl -s -H "Content-Type: application/json" \
      -d '{"data": [{"path": "UPLOADED", "meta": {"_type": "gradio.FileData"}}]}' \
      https://OWNER-SPACE.hf.space/gradio_api/call/predict
    # -> {"event_id":"..."}
    curl -sN https://OWNER-SPACE.hf.space/gradio_api/call/predict/EVENT_ID
    # -> event: complete / data: [marker, vlm, baseline, picture record, explanation]

The answer is the same five outputs (the picture as its file record, fetched from its
``url``). A file the app refuses ends the stream with ``event: error`` and
``data: {"error": "<the page's message>", ...}``; a file over the upload limit is refused
by the upload request itself (HTTP 413, one plain-text line); a path outside Gradio's
uploads is refused by Gradio with ``data: {"error": null}``.
"""

from __future__ import annotations

import atexit
import csv
import json
import os
import shutil
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

from builder.domain import BASE_MODEL as BASE_MODEL_ID  # noqa: E402
from builder.errors import CropmarkError  # noqa: E402
from builder.hub import client as hub  # noqa: E402
from builder.model import baseline as physics  # noqa: E402
from builder.model.scoring import VlmScorer, load_scorer  # noqa: E402
from builder.model.upload import UploadError, figure, read_upload  # noqa: E402
from builder.testing.tiny import TINY_KIND, write_tiny_lfm2_vl  # noqa: E402


def published_config() -> dict[str, str]:
    """What to serve: ``cropmark_space.json``, then the environment (see the module docstring).

    ``problem`` is empty, or says why ``cropmark_space.json`` could not be read (the Space
    then starts on the defaults and its status line says so).
    """
    config = {
        "base_model": BASE_MODEL_ID,
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
LOAD_TIMEOUT_S = float(os.environ.get("CROPMARK_LOAD_TIMEOUT_S", "300"))
DEVICE = os.environ.get("CROPMARK_DEVICE", "cpu")

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
    try:
        return str(hub.download_repo(ADAPTER, revision=ADAPTER_REVISION))
    except Exception as exc:  # the Hub client raises many kinds; all mean "cannot load it"
        at = f" at {ADAPTER_REVISION[:12]}" if ADAPTER_REVISION else ""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CropmarkError(f"adapter {ADAPTER}{at} could not be downloaded ({first})") from None


def _reason(exc: BaseException) -> str:
    """One line for the status: the project's own message, or ``Type: first line`` of another."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, CropmarkError) else f"{type(exc).__name__}: {text}".rstrip(": ")


class Models:
    """The VLM and the baseline, loaded once in a background thread."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.scorer: VlmScorer | None = None
        self.baseline: physics.Baseline | None = None
        self.test_model: str | None = None  # "a tiny random test model"... when the verdicts mean nothing
        self.status = (
            f"Loading {BASE_MODEL} and its adapter (the tiny test model takes over if that fails "
            f"or takes more than {LOAD_TIMEOUT_S:g} s)..."
        )

    def load(self) -> None:
        """Load the baseline and the VLM, or fall back; ``ready`` is set whatever happens."""
        try:
            notes = [CONFIG["problem"]] if CONFIG["problem"] else []
            try:
                self.baseline = physics.load(BASELINE)
            except Exception as exc:
                notes.append(f"No physics baseline: {_reason(exc)}.")
            scorer, failure = self._load_vlm()
            if scorer is not None:
                self.scorer = scorer
                # Read from the loaded model's config: a test model from a Hub id is one too.
                self.test_model = scorer.test_model
                pinned = f" at {ADAPTER_REVISION[:12]}" if ADAPTER and ADAPTER_REVISION else ""
                served = f"{BASE_MODEL} + {ADAPTER or 'no adapter'}{pinned}"
                if self.test_model:
                    notes.insert(
                        0,
                        f"**Test mode**: the VLM ({served}) is {self.test_model} with random weights; "
                        "its verdicts mean nothing.",
                    )
                else:
                    notes.insert(0, f"Model: {served}.")
            else:
                notes.insert(0, self._fall_back(failure))
            self.status = " ".join(notes)
        except Exception as exc:  # never leave the page "Loading" forever
            self.status = f"**The Space could not start its models** ({_reason(exc)})."
        finally:
            self.ready.set()

    def _load_vlm(self) -> tuple[VlmScorer | None, str]:
        """The scorer, or None and why: any exception, or no answer within LOAD_TIMEOUT_S."""
        if BASE_MODEL == "tiny":
            return None, "the tiny test model was asked for"
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["scorer"] = load_scorer(BASE_MODEL, pinned_adapter() or None, device=DEVICE)
            except Exception as exc:  # SafetensorError, OSError, MemoryError...: all end in the fallback
                box["error"] = exc

        worker = threading.Thread(target=work, name="load-vlm", daemon=True)
        worker.start()
        worker.join(LOAD_TIMEOUT_S)
        if worker.is_alive():  # the thread cannot be stopped; its result, if any, is ignored
            limit = f"{LOAD_TIMEOUT_S:g} s (CROPMARK_LOAD_TIMEOUT_S)"
            return None, f"loading {BASE_MODEL} took longer than {limit}"
        if "error" in box:
            return None, _reason(box["error"])
        scorer: VlmScorer = box["scorer"]
        return scorer, ""

    def _fall_back(self, why: str) -> str:
        """Load the seeded tiny model from a folder of this process only; the status sentence."""
        try:
            folder = Path(tempfile.mkdtemp(prefix=f"cropmark-tiny-{os.getpid()}-"))
            atexit.register(shutil.rmtree, folder, True)
            self.scorer = load_scorer(str(write_tiny_lfm2_vl(folder, seed=0)), device="cpu")
            self.test_model = self.scorer.test_model or TINY_KIND
        except Exception as exc:
            return (
                f"**No model**: {why}; the tiny test model could not be loaded either ({_reason(exc)}). "
                "Only the physics baseline answers."
            )
        return (
            f"**Offline test mode**: {why}. The VLM column shows a tiny random test model, "
            "whose verdicts mean nothing; the physics baseline is real."
        )

    def p_yes(self, tile: Any) -> float:
        assert self.scorer is not None
        return float(self.scorer.p_yes([tile.image], batch_size=1)[0])


MODELS = Models()


class Pictures:
    """The page's pictures as JPEG files of this process, each under a name of its own.

    Gradio copies a returned file into its cache atomically (a temporary name,
    then a rename), while a returned PIL image is written in place under a name
    taken from its content: two requests for the same tile wrote the same cache
    file at once, and a download could read it half-written (the concurrency
    test saw "peer closed connection without sending complete message body").
    The newest :attr:`KEEP` files are kept; Gradio has copied older ones long ago.
    """

    KEEP = 256

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix=f"cropmark-pictures-{os.getpid()}-"))
        atexit.register(shutil.rmtree, self.folder, True)
        self.lock = threading.Lock()
        self.written: list[Path] = []
        self.count = 0

    def save(self, image: Any) -> str:
        with self.lock:
            self.count += 1
            path = self.folder / f"figure-{self.count}.jpg"
            self.written.append(path)
            old, self.written = self.written[: -self.KEEP], self.written[-self.KEEP :]
        image.save(path, "JPEG", quality=90)
        for stale in old:
            stale.unlink(missing_ok=True)
        return str(path)


PICTURES = Pictures()


def _labels(folder: Path) -> dict[str, str]:
    metadata = folder / "metadata.csv"
    if not metadata.is_file():
        return {}
    with metadata.open(encoding="utf-8", newline="") as handle:
        return {row["file_name"]: row["label"] for row in csv.DictReader(handle) if "label" in row}


def _balanced(tiles: list[tuple[str, str]], n: int = 8) -> list[tuple[str, str]]:
    yes = [t for t in tiles if t[1] == "Yes"]
    no = [t for t in tiles if t[1] == "No"]
    other = [t for t in tiles if t[1] not in ("Yes", "No")]
    picked = yes[: n // 2] + no[: n // 2]
    return (picked + other)[:n]


def example_tiles() -> list[tuple[str, str]]:
    """(path, label) of example tiles: a local folder (labels from its metadata.csv), else
    three Yes and three No eval tiles of the dataset."""
    if EXAMPLES.is_dir():
        labels = _labels(EXAMPLES)
        paths = sorted(p for p in EXAMPLES.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        return _balanced([(str(p), labels.get(p.name, "")) for p in paths])
    try:
        pinned = {"repo_type": "dataset", "revision": DATASET_REVISION}
        metadata = hub.download_file(DATASET, "data/eval/metadata.csv", **pinned)
        with open(metadata, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        picked = [r for r in rows if r["label"] == "Yes"][:3] + [r for r in rows if r["label"] == "No"][:3]
        return [
            (hub.download_file(DATASET, f"data/eval/{r['file_name']}", **pinned), r["label"]) for r in picked
        ]
    except Exception:  # offline or no such dataset: the page works without examples
        return []


def _verdict(p: float, test_model: str | None = None) -> dict[str, float]:
    """The verdict's classes; a test model's carry its marker, so that the value alone says so."""
    mark = " (TEST MODEL)" if test_model else ""
    return {f"Yes{mark}": round(p, 4), f"No{mark}": round(1.0 - p, 4)}


def _caption(path: str, label: str) -> str:
    return f"label: {label}  ·  {Path(path).stem}" if label else Path(path).stem


def predict(upload: str | None) -> tuple[str, Any, Any, Any, str]:
    """Score one upload: the VLM's marker and verdict, the baseline's verdict, the picture of
    what was scored beside its proxy maps, and the explanation."""
    if upload is None:
        raise gr.Error("Upload a tile or pick an example first.")
    try:
        tile = read_upload(upload, MAX_BYTES)
    except UploadError as exc:
        raise gr.Error(str(exc)) from None
    if not MODELS.ready.wait(timeout=LOAD_TIMEOUT_S + 120):
        raise gr.Error("The model is still loading; try again in a minute.")
    lines = [tile.note]
    vlm, marker = None, "**No fine-tuned model is loaded**: only the physics baseline answers."
    if MODELS.scorer is not None:
        p = MODELS.p_yes(tile)
        vlm = _verdict(p, MODELS.test_model)
        if MODELS.test_model:
            marker = (
                f"⚠️ **TEST MODEL**: the verdict below comes from {MODELS.test_model} with random "
                "weights; it means nothing."
            )
            lines.append(marker)
        else:
            marker = f"Fine-tuned model: {BASE_MODEL} + {ADAPTER or 'no adapter'}."
        lines.append(
            f"The {'TEST MODEL' if MODELS.test_model else 'fine-tuned model'}'s P(Yes) is {p:.3f}: "
            f"**{'Yes' if p >= 0.5 else 'No'}**."
        )
    baseline = None
    if MODELS.baseline is not None:
        pb = MODELS.baseline.p_yes_tile(tile.rgb)
        baseline = _verdict(pb)
        lines.append(
            f"The physics baseline (logistic regression on the proxy maps' statistics) says "
            f"**{'Yes' if pb >= 0.5 else 'No'}** ({pb:.3f})."
        )
    lines.append(DISCLAIMER)
    return marker, vlm, baseline, PICTURES.save(figure(tile)), "\n\n".join(lines)


def status() -> str:
    """The loading status shown at the top of the page."""
    return MODELS.status


def build(examples: list[tuple[str, str]]) -> gr.Blocks:
    """The page; ``examples`` are (path, label) pairs shown as labelled thumbnails."""
    with gr.Blocks(title="Cropmark Disambiguator") as demo:
        gr.Markdown(
            "# Cropmark Disambiguator\n"
            "Does a Sentinel-2 tile of farmland show **cropmark stress from buried archaeology** "
            "(ring ditches, enclosures, linear features)? Upload a false-colour tile "
            "(R = B08 NIR, G = B04 red, B = B05 red edge; 256x512 px, 8-bit) or a 512x512 composite "
            "(its right half is ignored). A fine-tuned LFM2.5-VL answers Yes/No with a probability, "
            f"beside a simple physics baseline. Uploads up to {MAX_BYTES / 2**20:g} MiB.\n\n" + DISCLAIMER
        )
        status_box = gr.Markdown(MODELS.status, elem_id="status")
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Sentinel-2 tile (JPEG/PNG)", type="filepath", elem_id="upload")
                button = gr.Button("Score the tile", variant="primary", elem_id="score")
                gallery = gr.Gallery(
                    value=[(path, _caption(path, label)) for path, label in examples],
                    label="Tiles of the dataset (eval split) with their labels: click one to score it",
                    columns=4,
                    height=340,
                    object_fit="contain",
                    allow_preview=False,
                    visible=bool(examples),
                    elem_id="examples",
                )
            with gr.Column():
                marker = gr.Markdown(elem_id="vlm-marker")
                vlm = gr.Label(label="Fine-tuned model", num_top_classes=2, elem_id="vlm")
                base = gr.Label(label="Physics baseline", num_top_classes=2, elem_id="baseline")
        scored = gr.Image(
            label="What was scored, and its NDVI- and NDRE-like proxies",
            type="filepath",
            elem_id="scored",
        )
        explanation = gr.Markdown(elem_id="explanation")
        outputs = [marker, vlm, base, scored, explanation]
        button.click(predict, inputs=[upload], outputs=outputs, api_name="predict")

        def pick(event: gr.SelectData) -> str:
            return examples[event.index][0]

        gallery.select(pick, outputs=[upload], api_name=False, queue=False).then(
            predict, inputs=[upload], outputs=outputs, api_name=False
        )
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
    examples = example_tiles()
    demo = build(examples)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64)
    folders = {str(Path(path).parent) for path, _ in examples}
    demo.launch(
        max_file_size=MAX_BYTES,  # the same limit as read_upload's: one limit, one message
        allowed_paths=sorted(folders | {str(PICTURES.folder)}),
    )


if __name__ == "__main__":
    main()
